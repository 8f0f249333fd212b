//! Gap filling: `time_bucket_gapfill`, `locf` and `interpolate`, as TimescaleDB defines them.
//!
//! ```sql
//! SELECT time_bucket_gapfill('1 minute', time) AS minute, host,
//!        avg(usage), locf(avg(usage)), interpolate(avg(usage))
//! FROM cpu WHERE time >= '2024-01-01T00:00:00Z' AND time < '2024-01-01T01:00:00Z'
//! GROUP BY 1, 2
//! ```
//!
//! An aggregate grouped by `time_bucket_gapfill(width, time [, start, finish])` returns one
//! row per bucket from `start` to `finish` for every group, even for buckets without data;
//! the aggregates of such rows are NULL, unless wrapped in `locf` (the previous bucket's
//! value carried forward) or `interpolate` (linear between the neighbouring buckets).
//!
//! How it works: [`GapFillRule`], an analyzer rule, finds a projection over an aggregate
//! grouped by `time_bucket_gapfill` and puts a [`GapFill`] node between them; `locf` and
//! `interpolate` around aggregate columns become fill strategies of that node. The range
//! comes from the function's own `start`/`finish` or from the `WHERE` bounds on the time
//! column; its expressions are node expressions, so the optimizer folds them (`now() -
//! interval '1 hour'` included) before [`GapFillPlanner`] plans [`exec::GapFillExec`].
//! Until the rule runs, `time_bucket_gapfill` evaluates as `time_bucket`.

mod exec;

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, IntervalUnit, TimeUnit};
use datafusion::catalog::Session;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, DFSchemaRef, Result, ScalarValue, exec_err, plan_err};
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Aggregate, BinaryExpr, ColumnarValue, Expr, Extension, Filter, LogicalPlan, Operator,
    Projection, ScalarFunctionArgs, ScalarUDFImpl, Signature, UserDefinedLogicalNode,
    UserDefinedLogicalNodeCore, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};

use crate::functions::time_bucket::TimeBucket;
pub use exec::GapFillExec;

const GAPFILL: &str = "time_bucket_gapfill";
const LOCF: &str = "locf";
const INTERPOLATE: &str = "interpolate";

/// How a gap row's aggregate value is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd)]
pub enum Fill {
    /// The previous bucket's value (last observation carried forward).
    Locf,
    /// Linear interpolation between the previous and the next bucket with a value.
    Interpolate,
}

/// `time_bucket_gapfill(width, time [, start, finish])`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TimeBucketGapfill {
    bucket: TimeBucket,
}

impl TimeBucketGapfill {
    pub fn new() -> Self {
        Self {
            bucket: TimeBucket::new(),
        }
    }
}

impl Default for TimeBucketGapfill {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for TimeBucketGapfill {
    fn name(&self) -> &str {
        GAPFILL
    }

    fn signature(&self) -> &Signature {
        self.bucket.signature()
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        if args.len() != 2 && args.len() != 4 {
            return plan_err!(
                "usage: time_bucket_gapfill(width, time [, start, finish]), called with {} arguments",
                args.len()
            );
        }
        let mut coerced = self.bucket.coerce_types(&args[..2])?;
        for bound in &args[2..] {
            coerced.push(match bound {
                DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Nanosecond, tz.clone()),
                _ => DataType::Timestamp(TimeUnit::Nanosecond, None),
            });
        }
        Ok(coerced)
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[1].clone())
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        // Evaluated as time_bucket(width, time): the range only matters to GapFill.
        args.args.truncate(2);
        args.arg_fields.truncate(2);
        self.bucket.invoke_with_args(args)
    }
}

/// `locf(aggregate)` and `interpolate(aggregate)`: markers that [`GapFillRule`] removes.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FillMarker {
    fill: Fill,
    signature: Signature,
}

impl FillMarker {
    pub fn new(fill: Fill) -> Self {
        Self {
            fill,
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for FillMarker {
    fn name(&self) -> &str {
        match self.fill {
            Fill::Locf => LOCF,
            Fill::Interpolate => INTERPOLATE,
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        if self.fill == Fill::Interpolate && !args[0].is_numeric() {
            return plan_err!("interpolate() needs a numeric aggregate, not {}", args[0]);
        }
        Ok(args[0].clone())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        exec_err!(
            "{}() only works on an aggregate of a query grouped by time_bucket_gapfill(...)",
            self.name()
        )
    }
}

/// The logical node between an aggregate and its projection.
#[derive(Debug, Clone)]
pub struct GapFill {
    input: Arc<LogicalPlan>,
    /// Output column of the bucket (`time_bucket_gapfill(...)`).
    time_column: usize,
    /// Output columns of the other group expressions (the series).
    group_columns: Vec<usize>,
    /// Filled copies of aggregate columns, appended to the output: (aggregate column,
    /// strategy, output name).
    fills: Vec<(usize, Fill, String)>,
    width: Expr,
    start: Expr,
    /// Exclusive end.
    finish: Expr,
    schema: DFSchemaRef,
}

impl PartialEq for GapFill {
    fn eq(&self, other: &Self) -> bool {
        self.input == other.input
            && self.time_column == other.time_column
            && self.group_columns == other.group_columns
            && self.fills == other.fills
            && self.width == other.width
            && self.start == other.start
            && self.finish == other.finish
    }
}

impl Eq for GapFill {}

impl Hash for GapFill {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.input.hash(state);
        self.time_column.hash(state);
        self.group_columns.hash(state);
        self.width.hash(state);
        self.start.hash(state);
        self.finish.hash(state);
    }
}

impl PartialOrd for GapFill {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.time_column.partial_cmp(&other.time_column)
    }
}

/// The aggregate's schema with every non-group column nullable (gap rows hold NULLs),
/// then one column per filled aggregate.
fn gapfill_schema(
    input: &LogicalPlan,
    group_count: usize,
    fills: &[(usize, Fill, String)],
) -> Result<DFSchemaRef> {
    let schema = input.schema();
    let mut fields: Vec<_> = schema
        .iter()
        .enumerate()
        .map(|(i, (qualifier, field))| {
            let field = if i < group_count {
                field.clone()
            } else {
                Arc::new(field.as_ref().clone().with_nullable(true))
            };
            (qualifier.cloned(), field)
        })
        .collect();
    for (source, _, name) in fills {
        let field = schema
            .field(*source)
            .as_ref()
            .clone()
            .with_name(name)
            .with_nullable(true);
        fields.push((None, Arc::new(field)));
    }
    Ok(Arc::new(DFSchema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    )?))
}

impl UserDefinedLogicalNodeCore for GapFill {
    fn name(&self) -> &str {
        "GapFill"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![self.input.as_ref()]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![self.width.clone(), self.start.clone(), self.finish.clone()]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "GapFill: bucket=#{}, series={:?}, fills={:?}, width={}, range=[{}, {})",
            self.time_column, self.group_columns, self.fills, self.width, self.start, self.finish
        )
    }

    fn with_exprs_and_inputs(&self, exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        let (Ok([width, start, finish]), Ok([input])) = (
            <[Expr; 3]>::try_from(exprs),
            <[LogicalPlan; 1]>::try_from(inputs),
        ) else {
            return plan_err!("GapFill takes three expressions and one input");
        };
        let schema = gapfill_schema(&input, self.group_columns.len() + 1, &self.fills)?;
        Ok(Self {
            input: Arc::new(input),
            width,
            start,
            finish,
            schema,
            ..self.clone()
        })
    }
}

/// Inserts [`GapFill`] under projections of aggregates grouped by `time_bucket_gapfill`.
#[derive(Debug, Default)]
pub struct GapFillRule;

impl AnalyzerRule for GapFillRule {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up(rewrite).map(|t| t.data)
    }

    fn name(&self) -> &str {
        "gap_fill"
    }
}

/// The arguments of a `time_bucket_gapfill` call, looking through aliases.
fn gapfill_args(expr: &Expr) -> Option<&[Expr]> {
    match expr {
        Expr::Alias(alias) => gapfill_args(&alias.expr),
        Expr::ScalarFunction(f) if f.name() == GAPFILL => Some(&f.args),
        _ => None,
    }
}

fn rewrite(node: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Projection(projection) = &node else {
        return Ok(Transformed::no(node));
    };
    let (aggregate, having) = match projection.input.as_ref() {
        LogicalPlan::Aggregate(a) => (a, None),
        LogicalPlan::Filter(f) => match f.input.as_ref() {
            LogicalPlan::Aggregate(a) => (a, Some(f)),
            _ => return Ok(Transformed::no(node)),
        },
        _ => return Ok(Transformed::no(node)),
    };
    let calls: Vec<(usize, &[Expr])> = aggregate
        .group_expr
        .iter()
        .enumerate()
        .filter_map(|(i, e)| gapfill_args(e).map(|args| (i, args)))
        .collect();
    let (time_column, args) = match calls.as_slice() {
        [] => return Ok(Transformed::no(node)),
        [one] => *one,
        _ => return plan_err!("a query can group by only one time_bucket_gapfill(...)"),
    };
    let (start, finish) = match args {
        [_, _, start, finish] => (start.clone(), finish.clone()),
        [_, time] => range_from_filters(aggregate, time)?,
        _ => return plan_err!("usage: time_bucket_gapfill(width, time [, start, finish])"),
    };
    let group_count = aggregate.group_expr.len();
    let group_columns: Vec<usize> = (0..group_count).filter(|i| *i != time_column).collect();

    // locf(x) / interpolate(x) in the select list: x must be an aggregate output column.
    let aggregate_schema = aggregate.schema.clone();
    let mut fills: Vec<(usize, Fill, String)> = Vec::new();
    let mut exprs = Vec::with_capacity(projection.expr.len());
    for expr in &projection.expr {
        let rewritten = expr.clone().transform_up(|e| {
            let name = e.schema_name().to_string();
            let Expr::ScalarFunction(ScalarFunction { func, args }) = &e else {
                return Ok(Transformed::no(e));
            };
            let fill = match func.name() {
                LOCF => Fill::Locf,
                INTERPOLATE => Fill::Interpolate,
                _ => return Ok(Transformed::no(e)),
            };
            let Some(Expr::Column(column)) = args.first() else {
                return plan_err!(
                    "{}() must wrap an aggregate, as in locf(avg(x))",
                    func.name()
                );
            };
            let Some(index) = aggregate_schema.maybe_index_of_column(column) else {
                return plan_err!(
                    "{}() must wrap an aggregate, as in locf(avg(x))",
                    func.name()
                );
            };
            if index < group_count {
                return plan_err!(
                    "{}() must wrap an aggregate, not a GROUP BY column",
                    func.name()
                );
            }
            if !fills.iter().any(|(_, _, n)| *n == name) {
                fills.push((index, fill, name.clone()));
            }
            Ok(Transformed::yes(Expr::Column(Column::from_name(name))))
        })?;
        // Keep the select list's names: `locf(avg(x))` still reads as such.
        exprs.push(
            rewritten
                .data
                .alias_if_changed(expr.schema_name().to_string())?,
        );
    }
    let gapfill = GapFill {
        input: Arc::new(LogicalPlan::Aggregate(aggregate.clone())),
        time_column,
        group_columns,
        width: args[0].clone(),
        start,
        finish,
        schema: gapfill_schema(
            &LogicalPlan::Aggregate(aggregate.clone()),
            group_count,
            &fills,
        )?,
        fills,
    };
    let mut input = LogicalPlan::Extension(Extension {
        node: Arc::new(gapfill),
    });
    if let Some(having) = having {
        input = LogicalPlan::Filter(Filter::try_new(having.predicate.clone(), Arc::new(input))?);
    }
    Ok(Transformed::yes(LogicalPlan::Projection(
        Projection::try_new(exprs, Arc::new(input))?,
    )))
}

/// `[start, finish)` from the `WHERE` bounds on the bucketed time column.
fn range_from_filters(aggregate: &Aggregate, time: &Expr) -> Result<(Expr, Expr)> {
    let Expr::Column(time_column) = time else {
        return plan_err!("time_bucket_gapfill needs a time column, or explicit start and finish");
    };
    let mut predicates = Vec::new();
    let mut plan = aggregate.input.as_ref();
    loop {
        match plan {
            LogicalPlan::Filter(f) => {
                predicates.push(f.predicate.clone());
                plan = f.input.as_ref();
            }
            LogicalPlan::TableScan(scan) => {
                predicates.extend(scan.filters.iter().cloned());
                break;
            }
            LogicalPlan::Projection(p) => plan = p.input.as_ref(),
            LogicalPlan::SubqueryAlias(a) => plan = a.input.as_ref(),
            _ => break,
        }
    }
    let mut start = None;
    let mut finish = None;
    for predicate in predicates {
        for conjunct in datafusion::logical_expr::utils::split_conjunction(&predicate) {
            collect_bound(conjunct, &time_column.name, &mut start, &mut finish);
        }
    }
    match (start, finish) {
        (Some(s), Some(f)) => Ok((s, f)),
        _ => {
            let name = &time_column.name;
            plan_err!(
                "time_bucket_gapfill needs a time range: bound {name} in WHERE ({name} >= ... AND {name} < ...) or pass start and finish"
            )
        }
    }
}

fn collect_bound(expr: &Expr, time: &str, start: &mut Option<Expr>, finish: &mut Option<Expr>) {
    let is_time = |e: &Expr| matches!(e, Expr::Column(c) if c.name == time);
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (op, bound) = if is_time(left) {
                (*op, right.as_ref())
            } else if is_time(right) {
                match op.swap() {
                    Some(op) => (op, left.as_ref()),
                    None => return,
                }
            } else {
                return;
            };
            match op {
                Operator::GtEq | Operator::Gt => *start = Some(bound.clone()),
                Operator::Lt => *finish = Some(bound.clone()),
                // An inclusive end: the bucket holding it is still filled.
                Operator::LtEq => {
                    *finish = Some(
                        bound.clone()
                            + datafusion::prelude::lit(ScalarValue::IntervalMonthDayNano(Some(
                                datafusion::arrow::datatypes::IntervalMonthDayNano::new(0, 0, 1),
                            ))),
                    )
                }
                _ => {}
            }
        }
        Expr::Between(between) if !between.negated && is_time(&between.expr) => {
            *start = Some(between.low.as_ref().clone());
            *finish = Some(
                between.high.as_ref().clone()
                    + datafusion::prelude::lit(ScalarValue::IntervalMonthDayNano(Some(
                        datafusion::arrow::datatypes::IntervalMonthDayNano::new(0, 0, 1),
                    ))),
            );
        }
        _ => {}
    }
}

/// Plans [`GapFill`] nodes.
#[derive(Debug, Default)]
pub struct GapFillPlanner;

/// The value of a constant expression of the node.
async fn constant(
    planner: &dyn PhysicalPlanner,
    expr: &Expr,
    schema: &DFSchema,
    session: &dyn Session,
    planning_ctx: &PhysicalPlanningContext,
    what: &str,
) -> Result<ScalarValue> {
    let physical = planner.create_physical_expr(expr, schema, session, planning_ctx)?;
    let empty = RecordBatch::new_empty(Arc::new(schema.as_arrow().clone()));
    match physical.evaluate(&empty) {
        Ok(ColumnarValue::Scalar(value)) => Ok(value),
        _ => plan_err!("time_bucket_gapfill: the {what} must be a constant, not {expr}"),
    }
}

fn timestamp_nanos(value: ScalarValue, what: &str) -> Result<i64> {
    match value.cast_to(&DataType::Timestamp(TimeUnit::Nanosecond, None))? {
        ScalarValue::TimestampNanosecond(Some(v), _) => Ok(v),
        _ => plan_err!("time_bucket_gapfill: the {what} is NULL"),
    }
}

#[async_trait]
impl ExtensionPlanner for GapFillPlanner {
    async fn plan_extension(
        &self,
        planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(gapfill) = node.as_any().downcast_ref::<GapFill>() else {
            return Ok(None);
        };
        let schema = logical_inputs[0].schema();
        let width = match constant(
            planner,
            &gapfill.width,
            schema,
            session,
            planning_ctx,
            "width",
        )
        .await?
        .cast_to(&DataType::Interval(IntervalUnit::MonthDayNano))?
        {
            ScalarValue::IntervalMonthDayNano(Some(w)) => w,
            _ => return plan_err!("time_bucket_gapfill: the width must be an interval"),
        };
        let start = timestamp_nanos(
            constant(
                planner,
                &gapfill.start,
                schema,
                session,
                planning_ctx,
                "start",
            )
            .await?,
            "start",
        )?;
        let finish = timestamp_nanos(
            constant(
                planner,
                &gapfill.finish,
                schema,
                session,
                planning_ctx,
                "finish",
            )
            .await?,
            "finish",
        )?;
        Ok(Some(Arc::new(GapFillExec::try_new(
            physical_inputs[0].clone(),
            Arc::new(gapfill.schema.as_arrow().clone()),
            exec::GapFillParams {
                time_column: gapfill.time_column,
                group_columns: gapfill.group_columns.clone(),
                fills: gapfill.fills.clone(),
                width,
                start,
                finish,
            },
        )?)))
    }
}

/// DataFusion's planner with the [`GapFillPlanner`] added.
#[derive(Debug, Default)]
pub struct ChronosQueryPlanner;

#[async_trait]
impl QueryPlanner for ChronosQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // A cached plan, optimized already (see `plan_cache`), is planned as it is.
        let logical_plan = match crate::plan_cache::optimized_inner(logical_plan) {
            Some(optimized) => &optimized.plan,
            None => logical_plan,
        };
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(GapFillPlanner)])
            .create_physical_plan(logical_plan, session)
            .await
    }
}
