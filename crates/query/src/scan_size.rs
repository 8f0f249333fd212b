//! How many rows a query will read, told before it is planned physically.
//!
//! A time-series query usually asks for a short window of a long history. Planned for
//! both cores, such a query pays for repartitioning, a two-phase aggregate, a merge of
//! sorted partitions and a second opening of the same file, which together cost more
//! than reading its few thousand rows. Front ends ask [`is_small`] and plan small queries
//! with one partition; large scans keep every core.

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::LogicalPlan;

use crate::table::ChronosTable;

/// Up to this many rows read (estimated), a query runs in one partition.
pub const SMALL_SCAN_ROWS: u64 = 100_000;

/// Schemas whose tables are small catalogs, built in memory.
const CATALOG_SCHEMAS: [&str; 3] = ["pg_catalog", "information_schema", "system"];

/// Whether `plan` reads at most [`SMALL_SCAN_ROWS`] rows by estimate.
pub fn is_small(plan: &LogicalPlan) -> bool {
    estimated_rows(plan).is_some_and(|rows| rows <= SMALL_SCAN_ROWS)
}

/// The rows all table scans of `plan` (subqueries included) will read at most: each
/// file's rows that its series index leaves for the scan's tag and time filters (or its
/// row count scaled by how much of its time range the time filters keep), plus buffered
/// rows. `None` when a scan's size cannot be told.
pub fn estimated_rows(plan: &LogicalPlan) -> Option<u64> {
    let mut total: Option<u64> = Some(0);
    let _ = plan.apply_with_subqueries(|node| {
        let LogicalPlan::TableScan(scan) = node else {
            return Ok(TreeNodeRecursion::Continue);
        };
        let rows = source_as_provider(&scan.source).ok().and_then(|provider| {
            match provider.downcast_ref::<ChronosTable>() {
                Some(table) => table.estimated_rows(&scan.filters),
                None => scan
                    .table_name
                    .schema()
                    .is_some_and(|schema| CATALOG_SCHEMAS.contains(&schema))
                    .then_some(0),
            }
        });
        let rows = rows.map(|rows| match scan.fetch {
            Some(fetch) => rows.min(fetch as u64),
            None => rows,
        });
        total = total.zip(rows).map(|(sum, rows)| sum.saturating_add(rows));
        Ok(if total.is_some() {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    total
}

/// The part of `[lo, hi]` that `[min, max]` keeps, as a fraction.
pub(crate) fn overlap_fraction(lo: i64, hi: i64, min: i64, max: i64) -> f64 {
    let start = lo.max(min) as i128;
    let end = hi.min(max) as i128;
    if end < start {
        return 0.0;
    }
    let span = (hi as i128 - lo as i128 + 1) as f64;
    ((end - start + 1) as f64 / span).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::overlap_fraction;

    #[test]
    fn fractions() {
        assert_eq!(overlap_fraction(0, 99, 0, 99), 1.0);
        assert_eq!(overlap_fraction(0, 99, 50, 1000), 0.5);
        assert_eq!(overlap_fraction(0, 99, 200, 300), 0.0);
        assert_eq!(overlap_fraction(0, 99, i64::MIN, i64::MAX), 1.0);
        assert_eq!(overlap_fraction(5, 5, 0, 10), 1.0);
    }
}
