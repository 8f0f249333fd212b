//! The newest time buckets first: `… GROUP BY time_bucket(…, time) ORDER BY 1 DESC LIMIT k`
//! answered from the newest data, not the whole history.
//!
//! Planned as written, such a query aggregates every row before its upper time bound and
//! then keeps the top `k` buckets, so it slows down as history grows. Bucketing is
//! monotonic in time, which gives a cheaper plan: run it over a recent window
//! `[L, upper]` asking for `k + 1` buckets. Every bucket newer than the oldest one
//! returned holds only rows at or after `L` (a row before `L` cannot fall into a bucket
//! newer than one holding a row at or after `L`), so it is complete; if `k + 1` buckets
//! come back, the newest `k` are the answer. Otherwise the window doubles (1, 2, 4 …
//! days back from the day of the upper bound) until the answer is found or the window
//! covers all of the table's data, so the work is at most about twice that of the last
//! window. Front ends ask [`NewestBuckets::detect`] and then run [`NewestBuckets::window`]
//! plans.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, ScalarValue};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::logical_plan::{FetchType, Filter, Limit, SkipType};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Expr, LogicalPlan, lit};

use crate::table::{ChronosTable, TimeBounds};

/// Nanoseconds in a day: the first window, and the unit it doubles by.
const DAY: i64 = 86_400_000_000_000;
/// Larger limits are left to the general plan.
const MAX_LIMIT: usize = 10_000;
/// Bucketing functions that are monotonic in their time argument.
const MONOTONIC: [&str; 3] = ["time_bucket", "date_trunc", "date_bin"];

/// A query the newest-buckets strategy applies to.
#[derive(Debug)]
pub struct NewestBuckets {
    plan: LogicalPlan,
    /// The `LIMIT`.
    pub limit: usize,
    /// Inclusive upper time bound of the data the query can see.
    upper: i64,
    /// Oldest time of the table's data.
    oldest: i64,
    /// The table's `time` column in the plan, and its timestamp's time zone.
    time: Column,
    time_zone: Option<Arc<str>>,
}

impl NewestBuckets {
    /// Recognizes `Limit(k) → Sort(bucket DESC) → [Projection] → Aggregate(GROUP BY one
    /// monotonic bucket of time) → Filter* → TableScan(chronosdb table)` in an analyzed,
    /// not yet optimized, plan.
    pub fn detect(plan: &LogicalPlan) -> Option<Self> {
        let LogicalPlan::Limit(limit) = plan else {
            return None;
        };
        if !matches!(limit.get_skip_type().ok()?, SkipType::Literal(0)) {
            return None;
        }
        let FetchType::Literal(Some(k)) = limit.get_fetch_type().ok()? else {
            return None;
        };
        if k == 0 || k > MAX_LIMIT {
            return None;
        }
        let LogicalPlan::Sort(sort) = limit.input.as_ref() else {
            return None;
        };
        let [order] = sort.expr.as_slice() else {
            return None;
        };
        let Expr::Column(sorted) = &order.expr else {
            return None;
        };
        if order.asc {
            return None;
        }
        // The sorted column, followed through a projection, must be the aggregate's group.
        let (aggregate, group_column) = match sort.input.as_ref() {
            LogicalPlan::Projection(projection) => {
                let index = projection.schema.index_of_column(sorted).ok()?;
                let Expr::Column(inner) = projection.expr.get(index)?.clone().unalias() else {
                    return None;
                };
                (projection.input.as_ref(), inner)
            }
            other => (other, sorted.clone()),
        };
        let LogicalPlan::Aggregate(aggregate) = aggregate else {
            return None;
        };
        let [group] = aggregate.group_expr.as_slice() else {
            return None;
        };
        if aggregate.schema.index_of_column(&group_column).ok()? != 0 {
            return None;
        }
        let time = monotonic_time_argument(group)?;
        // Below the aggregate: filters, then the scan of a chronosdb table.
        let mut filters = Vec::new();
        let mut node = aggregate.input.as_ref();
        let scan = loop {
            match node {
                LogicalPlan::Filter(filter) => {
                    filters.extend(split_conjunction(&filter.predicate).into_iter().cloned());
                    node = filter.input.as_ref();
                }
                LogicalPlan::TableScan(scan) => break scan,
                _ => return None,
            }
        };
        if time
            .relation
            .as_ref()
            .is_some_and(|r| *r != scan.table_name)
        {
            return None;
        }
        let provider = source_as_provider(&scan.source).ok()?;
        let table = provider.downcast_ref::<ChronosTable>()?;
        let extent = table
            .engine()
            .table_extent(table.database(), table.name())?;
        let (oldest, newest) = extent
            .files
            .iter()
            .map(|f| (f.min_time, f.max_time))
            .chain(extent.buffered.map(|(_, lo, hi)| (lo, hi)))
            .reduce(|(lo1, hi1), (lo2, hi2)| (lo1.min(lo2), hi1.max(hi2)))?;
        filters.extend(scan.filters.iter().cloned());
        let bounds = TimeBounds::from_filters(&filters);
        let upper = bounds.max.min(newest);
        let oldest = oldest.max(bounds.min);
        if upper < oldest {
            // Nothing to see: plan as written.
            return None;
        }
        let time_zone = match scan
            .source
            .schema()
            .field_with_name(&time.name)
            .ok()?
            .data_type()
        {
            datafusion::arrow::datatypes::DataType::Timestamp(_, tz) => tz.clone(),
            _ => return None,
        };
        Some(Self {
            plan: plan.clone(),
            limit: k,
            upper,
            oldest,
            time,
            time_zone,
        })
    }

    /// The lower bound of the `attempt`th window (0, 1, …), or `None` once the previous
    /// window already covered all the data.
    pub fn lower_bound(&self, attempt: u32) -> Option<i64> {
        let day_start = self.upper.div_euclid(DAY) * DAY;
        let back = DAY.saturating_mul((1i64 << attempt.min(40)) - 1);
        let lower = day_start.saturating_sub(back);
        let previous = (attempt > 0).then(|| {
            day_start.saturating_sub(DAY.saturating_mul((1i64 << (attempt - 1).min(40)) - 1))
        });
        match previous {
            Some(p) if p <= self.oldest => None,
            _ => Some(lower),
        }
    }

    /// The query over `[lower, …]`, asking for one bucket more than the limit; `None`
    /// for `lower`: the query as written (the window covers everything).
    pub fn window(&self, lower: Option<i64>) -> datafusion::common::Result<LogicalPlan> {
        let Some(lower) = lower.filter(|l| *l > self.oldest) else {
            return Ok(self.plan.clone());
        };
        let LogicalPlan::Limit(limit) = &self.plan else {
            return Ok(self.plan.clone());
        };
        let bound = Expr::Column(self.time.clone()).gt_eq(lit(ScalarValue::TimestampNanosecond(
            Some(lower),
            self.time_zone.clone(),
        )));
        let input = Arc::unwrap_or_clone(limit.input.clone())
            .transform_up(|node| match node {
                LogicalPlan::TableScan(scan) => {
                    let scan = Arc::new(LogicalPlan::TableScan(scan));
                    Ok(Transformed::yes(LogicalPlan::Filter(Filter::try_new(
                        bound.clone(),
                        scan,
                    )?)))
                }
                other => Ok(Transformed::no(other)),
            })?
            .data;
        Ok(LogicalPlan::Limit(Limit {
            skip: None,
            fetch: Some(Box::new(lit(self.limit as i64 + 1))),
            input: Arc::new(input),
        }))
    }

    /// Whether a window that returned `rows` rows answers the query.
    pub fn answered(&self, rows: usize, lower: Option<i64>) -> bool {
        rows > self.limit || lower.is_none_or(|l| l <= self.oldest)
    }
}

/// The `time` column a monotonic bucketing of `expr` reads, if that is all it reads.
fn monotonic_time_argument(expr: &Expr) -> Option<Column> {
    let expr = expr.clone().unalias();
    let time = match &expr {
        Expr::Column(c) => c.clone(),
        Expr::ScalarFunction(f) if MONOTONIC.contains(&f.name()) => {
            let columns = expr.column_refs();
            let [column] = columns.into_iter().collect::<Vec<_>>()[..] else {
                return None;
            };
            // The time column must be an argument itself, not inside another expression.
            if !f
                .args
                .iter()
                .any(|a| matches!(a, Expr::Column(c) if c == column))
            {
                return None;
            }
            column.clone()
        }
        _ => return None,
    };
    (time.name == "time").then_some(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strategy(upper: i64, oldest: i64) -> NewestBuckets {
        NewestBuckets {
            plan: LogicalPlan::EmptyRelation(datafusion::logical_expr::EmptyRelation {
                produce_one_row: false,
                schema: Arc::new(datafusion::common::DFSchema::empty()),
            }),
            limit: 5,
            upper,
            oldest,
            time: Column::from_name("time"),
            time_zone: None,
        }
    }

    #[test]
    fn windows_double_until_they_cover_the_data() {
        let s = strategy(10 * DAY + 5, 0);
        assert_eq!(s.lower_bound(0), Some(10 * DAY));
        assert_eq!(s.lower_bound(1), Some(9 * DAY));
        assert_eq!(s.lower_bound(2), Some(7 * DAY));
        assert_eq!(s.lower_bound(3), Some(3 * DAY));
        assert_eq!(s.lower_bound(4), Some(-5 * DAY));
        assert_eq!(s.lower_bound(5), None);
        assert!(s.answered(6, Some(10 * DAY)));
        assert!(!s.answered(5, Some(10 * DAY)));
        assert!(s.answered(2, Some(-5 * DAY)));
        assert!(s.answered(0, None));
    }
}
