//! Physical plans of cached statements, reused with each run's literals.
//!
//! The plan cache (`plan_cache`) binds a repeated statement's literals into its
//! optimized logical plan; planning that physically still cost DataFusion a third of a
//! short query's CPU (its physical optimizer rebuilds every node several times). For a
//! statement run in one partition over one table, the physical plan differs from one
//! run to the next only in the literals and in the files its time range selects, so
//! it is planned once and then *rebound*: the literals of its first run are replaced by
//! the new ones and the Parquet scan is given the files the new run selects.
//!
//! A plan is reused only where that is provably the same plan DataFusion would make:
//! - its nodes are of kinds whose planning depends on their input's shape, not on
//!   values (projection, filter, aggregate, sort without a limit, limits, batching), and
//!   none hands dynamic filters to the scan (a top-k, a join);
//! - it reads one chronosdb table through one Parquet scan of one file group, and the
//!   new run's scan would be one too (no buffered rows in range, no overlapping files);
//! - the literals of its first run are distinct from each other and appear only in
//!   the filter and the scan, so each can be found and replaced;
//! - and it is *checked*: the second run with all-new literals is planned in full and
//!   must print exactly as the rebound plan does (files, predicate, every node), or the
//!   statement is never rebound.
//!
//! Anything else is planned as usual. Session options that shape plans (execution and
//! optimizer settings) must be those the plan was made with.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, ScalarValue};
use datafusion::config::{ExecutionOptions, OptimizerOptions};
use datafusion::datasource::physical_plan::{FileScanConfigBuilder, FileSource, ParquetSource};
use datafusion::datasource::source::{DataSource, DataSourceExec};
use datafusion::datasource::source_as_provider;
use datafusion::execution::{SessionState, TaskContext};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Literal;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{ExecutionPlan, displayable};
use parking_lot::Mutex;

use crate::series_rows::{ParquetScan, known_layouts};
use crate::table::{ChronosTable, file_groups, files_statistics};

/// Node kinds whose physical planning depends on their input's shape only.
const REUSABLE_NODES: [&str; 8] = [
    "ProjectionExec",
    "FilterExec",
    "AggregateExec",
    "SortExec",
    "GlobalLimitExec",
    "LocalLimitExec",
    "CoalesceBatchesExec",
    "CooperativeExec",
];

/// A physical plan rebound from a template, and the task context to run it in.
pub type Rebound = (Arc<dyn ExecutionPlan>, Arc<TaskContext>);

/// The physical plan of one cached statement, once it is known to be reusable.
#[derive(Debug, Default)]
pub struct PhysicalTemplate {
    state: Mutex<TemplateState>,
}

#[derive(Debug, Default)]
enum TemplateState {
    /// No run has given a plan that could be reused yet.
    #[default]
    Empty,
    /// A reusable-looking plan, waiting for the check against a second run.
    Candidate(Arc<Template>),
    /// Checked: runs are rebound from it.
    Ready(Arc<Template>),
    /// The check failed: this statement is always planned in full.
    Refused,
}

/// A physical plan and the literals it was planned with.
#[derive(Debug)]
struct Template {
    plan: Arc<dyn ExecutionPlan>,
    values: Vec<ScalarValue>,
    execution: ExecutionOptions,
    optimizer: OptimizerOptions,
    /// The task context its runs execute in: made from the session as it was planned,
    /// which [`Template::planned_like`] checks is still how the session is.
    task: Arc<TaskContext>,
}

impl Template {
    fn planned_like(&self, state: &SessionState) -> bool {
        let options = state.config_options();
        options.execution == self.execution && options.optimizer == self.optimizer
    }

    /// Whether `state` (a session's own state, as `SET` left it) planned in one
    /// partition is how this template was planned.
    fn planned_like_in_one_partition(&self, state: &SessionState) -> bool {
        let options = state.config_options();
        let same_execution = match options.execution.target_partitions {
            1 => options.execution == self.execution,
            _ => {
                let mut execution = options.execution.clone();
                execution.target_partitions = 1;
                execution == self.execution
            }
        };
        same_execution && options.optimizer == self.optimizer
    }
}

impl PhysicalTemplate {
    /// The physical plan of `plan` (optimized, its literals `values` bound in), rebound
    /// from this statement's template when one is ready; otherwise planned in full, and
    /// learned from.
    pub async fn create_physical_plan(
        &self,
        state: &SessionState,
        plan: &LogicalPlan,
        values: &[ScalarValue],
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let one_partition = state.config_options().execution.target_partitions == 1;
        if one_partition
            && let Some((rebound, _)) = self.rebind_in_one_partition(state, plan, values)?
        {
            return Ok(rebound);
        }
        let physical = state
            .query_planner()
            .create_physical_plan(plan, state)
            .await?;
        if one_partition {
            self.learn(state, plan, values, &physical);
        }
        Ok(physical)
    }

    /// The ready template rebound to `values` for a run in one partition, with the task
    /// context to run it in, if there is one and this run reads a plain Parquet scan.
    /// Synchronous and given the session's state by reference: the front end calls it
    /// under the session's read lock, without copying the state (which copies every
    /// function registry) as a full planning needs.
    pub fn rebind_in_one_partition(
        &self,
        state: &SessionState,
        plan: &LogicalPlan,
        values: &[ScalarValue],
    ) -> Result<Option<Rebound>> {
        let template = match &*self.state.lock() {
            TemplateState::Ready(template) => template.clone(),
            _ => return Ok(None),
        };
        if !template.planned_like_in_one_partition(state) {
            return Ok(None);
        }
        Ok(rebound(&template, state, 1, plan, values)?.map(|p| (p, template.task.clone())))
    }

    /// Keeps `physical` (planned in full from `plan` with `values`) as a candidate, or
    /// checks the candidate against it.
    fn learn(
        &self,
        state: &SessionState,
        plan: &LogicalPlan,
        values: &[ScalarValue],
        physical: &Arc<dyn ExecutionPlan>,
    ) {
        let mut current = self.state.lock();
        let candidate = match &*current {
            TemplateState::Ready(_) | TemplateState::Refused => return,
            TemplateState::Empty => None,
            TemplateState::Candidate(candidate) => Some(candidate.clone()),
        };
        if !reusable(physical, values) {
            return;
        }
        let fresh = || {
            Arc::new(Template {
                plan: physical.clone(),
                values: values.to_vec(),
                execution: state.config_options().execution.clone(),
                optimizer: state.config_options().optimizer.clone(),
                task: Arc::new(TaskContext::from(state)),
            })
        };
        let Some(candidate) = candidate else {
            *current = TemplateState::Candidate(fresh());
            return;
        };
        // The check needs every literal to differ from the candidate's (one that stayed
        // the same could hide where it is used), and the same options.
        let all_new = candidate
            .values
            .iter()
            .zip(values)
            .all(|(old, new)| old != new);
        if !all_new || !candidate.planned_like(state) {
            return;
        }
        let planned = print(physical);
        let partitions = state.config_options().execution.target_partitions;
        let rebound = match rebound(&candidate, state, partitions, plan, values) {
            Ok(Some(rebound)) => print(&rebound),
            Ok(None) => return,
            Err(e) => e.to_string(),
        };
        let same = rebound == planned;
        match same {
            true => tracing::debug!("physical plan template checked: reusable"),
            false => tracing::debug!(%planned, %rebound, "physical plan template refused"),
        }
        *current = match same {
            true => TemplateState::Ready(candidate),
            false => TemplateState::Refused,
        };
    }
}

/// What a bound [`crate::plan_cache::OptimizedPlan`] carries to have its physical
/// plan rebound: its statement's template and the literals bound into it.
#[derive(Debug, Clone)]
pub struct Reuse {
    pub template: Arc<PhysicalTemplate>,
    pub values: Vec<ScalarValue>,
}

// A logical plan node must compare and hash; a reuse is the same when it is the same
// statement's template with the same literals.
impl PartialEq for Reuse {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.template, &other.template) && self.values == other.values
    }
}

impl Eq for Reuse {}

impl std::hash::Hash for Reuse {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.values.hash(state);
    }
}

impl PartialOrd for Reuse {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        match Arc::ptr_eq(&self.template, &other.template) {
            true => self.values.partial_cmp(&other.values),
            false => None,
        }
    }
}

fn print(plan: &Arc<dyn ExecutionPlan>) -> String {
    displayable(plan.as_ref()).indent(true).to_string()
}

/// Whether `plan`, planned with `values`, has the shape a template needs (see the
/// module comment).
fn reusable(plan: &Arc<dyn ExecutionPlan>, values: &[ScalarValue]) -> bool {
    let distinct = values
        .iter()
        .enumerate()
        .all(|(i, v)| !values[..i].contains(v));
    let mut scans = 0;
    let mut ok = distinct;
    let _ = plan.apply(|node| {
        ok &= node.dynamic_expressions_produced().is_empty();
        if let Some(scan) = node.downcast_ref::<DataSourceExec>() {
            scans += 1;
            ok &= scan
                .downcast_to_file_source::<ParquetSource>()
                .is_some_and(|(config, _)| config.file_groups.len() == 1);
        } else {
            ok &= REUSABLE_NODES.contains(&node.name());
            ok &= node
                .downcast_ref::<SortExec>()
                .is_none_or(|sort| sort.fetch().is_none());
            // Only the filter's literals are replaced above the scan.
            if node.downcast_ref::<FilterExec>().is_none() {
                let _ = node.apply_expressions(&mut |expr| {
                    ok &= !holds_any(expr, values);
                    Ok(TreeNodeRecursion::Continue)
                });
            }
        }
        Ok(match ok {
            true => TreeNodeRecursion::Continue,
            false => TreeNodeRecursion::Stop,
        })
    });
    ok && scans == 1
}

/// Whether `expr` holds a literal equal to one of `values`.
fn holds_any(expr: &Arc<dyn PhysicalExpr>, values: &[ScalarValue]) -> bool {
    expr.exists(|e| {
        Ok(e.downcast_ref::<Literal>()
            .is_some_and(|literal| values.contains(literal.value())))
    })
    .unwrap_or(true)
}

/// `template` rebound to `values`: `None` when this run's scan is not one plain
/// Parquet scan.
fn rebound(
    template: &Template,
    state: &SessionState,
    partitions: usize,
    plan: &LogicalPlan,
    values: &[ScalarValue],
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some((table, filters)) = single_scan(plan) else {
        return Ok(None);
    };
    let files = match table.plain_files(&filters)? {
        Some(files) if !files.is_empty() => files,
        _ => return Ok(None),
    };
    // Layouts not read yet are read by a full planning.
    let Some(layouts) = known_layouts(table.engine(), &files) else {
        return Ok(None);
    };
    let scan = ParquetScan::narrowed(files, layouts, &filters);
    if scan.files.is_empty() || Some(scan.prune) != prunes(&template.plan) {
        return Ok(None);
    }
    let rebinder = Rebinder {
        from: &template.values,
        to: values,
        scan,
        partitions,
        repartition_file_min_size: state.config_options().optimizer.repartition_file_min_size,
    };
    rebinder.node(&template.plan).map(Some)
}

/// Whether the Parquet scan in `plan` prunes by statistics (see `series_rows`).
fn prunes(plan: &Arc<dyn ExecutionPlan>) -> Option<bool> {
    if let Some(scan) = plan.downcast_ref::<DataSourceExec>() {
        let (_, parquet) = scan.downcast_to_file_source::<ParquetSource>()?;
        return Some(parquet.table_parquet_options().global.pruning);
    }
    plan.children().into_iter().find_map(prunes)
}

/// The one chronosdb table `plan` reads and the filters its scan was given; `None` if
/// it reads anything else or more than one table.
fn single_scan(plan: &LogicalPlan) -> Option<(ChronosTable, Vec<Expr>)> {
    let mut found = None;
    let mut scans = 0;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            scans += 1;
            found = source_as_provider(&scan.source)
                .ok()
                .and_then(|p| p.downcast_ref::<ChronosTable>().cloned())
                .map(|table| (table, scan.filters.clone()));
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found.filter(|_| scans == 1)
}

/// Rebuilds a template's nodes with new literals and files.
struct Rebinder<'a> {
    from: &'a [ScalarValue],
    to: &'a [ScalarValue],
    scan: ParquetScan,
    partitions: usize,
    repartition_file_min_size: usize,
}

impl Rebinder<'_> {
    fn node(&self, node: &Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
        if let Some(scan) = node.downcast_ref::<DataSourceExec>() {
            return self.scan(scan);
        }
        let children = node
            .children()
            .into_iter()
            .map(|child| self.node(child))
            .collect::<Result<Vec<_>>>()?;
        if let Some(filter) = node.downcast_ref::<FilterExec>() {
            let mut children = children;
            return FilterExecBuilder::from(filter)
                .with_predicate(self.expr(filter.predicate())?)
                .with_input(children.remove(0))
                .build()
                .map(|filter| Arc::new(filter) as Arc<dyn ExecutionPlan>);
        }
        // Fresh metrics and state, the template's computed properties.
        Arc::clone(node).replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Keep),
        )
    }

    fn scan(&self, scan: &DataSourceExec) -> Result<Arc<dyn ExecutionPlan>> {
        let Some((config, parquet)) = scan.downcast_to_file_source::<ParquetSource>() else {
            return datafusion::common::internal_err!("a reusable plan scans Parquet");
        };
        let source: Arc<dyn FileSource> = match parquet.filter() {
            Some(predicate) => Arc::new(parquet.with_predicate(self.expr(&predicate)?)),
            None => Arc::clone(config.file_source()),
        };
        let schema = config.file_source().table_schema().file_schema().clone();
        // The optimizer gives files byte ranges when it repartitions a scan: do the same
        // where it did.
        let ranged = config
            .file_groups
            .iter()
            .flat_map(|group| group.iter())
            .any(|file| file.range.is_some());
        let config = FileScanConfigBuilder::from(config.clone())
            .with_source(source)
            .with_statistics(files_statistics(&self.scan, &schema))
            .with_file_groups(file_groups(self.scan.files.clone(), self.partitions))
            .build();
        let repartitioned = match ranged {
            true => config.repartitioned(
                self.partitions,
                self.repartition_file_min_size,
                scan.properties().eq_properties.output_ordering(),
            )?,
            false => None,
        };
        Ok(Arc::new(DataSourceExec::new(
            repartitioned.unwrap_or_else(|| Arc::new(config)),
        )))
    }

    /// `expr` with each literal of the template's run replaced by this run's.
    fn expr(&self, expr: &Arc<dyn PhysicalExpr>) -> Result<Arc<dyn PhysicalExpr>> {
        Arc::clone(expr)
            .transform_up(|e| {
                let position = e
                    .downcast_ref::<Literal>()
                    .and_then(|literal| self.from.iter().position(|v| v == literal.value()));
                Ok(match position {
                    Some(i) => Transformed::yes(
                        Arc::new(Literal::new(self.to[i].clone())) as Arc<dyn PhysicalExpr>
                    ),
                    None => Transformed::no(e),
                })
            })
            .map(|t| t.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::QueryEngine;
    use crate::plan_cache::{PlanCache, optimized_inner, parameterize};
    use bytes::Bytes;
    use chronosdb_line_protocol::Precision;
    use chronosdb_storage::{CompactionConfig, Engine, EngineConfig};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::physical_plan::collect;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    use object_store::memory::InMemory;
    use std::time::Duration;

    const DAY: i64 = 86_400_000_000_000;
    /// 2024-01-01T00:00:00Z.
    const START: i64 = 1_704_067_200_000_000_000;

    /// Three hosts, one point every ten minutes for two days, persisted into one file
    /// per day.
    async fn engine(dir: &std::path::Path) -> Arc<Engine> {
        let engine = Engine::open(EngineConfig {
            wal_dir: dir.join("wal"),
            object_store: Arc::new(InMemory::new()),
            wal_flush_interval: Duration::ZERO,
            persist_buffer_bytes: usize::MAX,
            persist_max_age: Duration::from_secs(3600),
            persist_when_idle: Duration::ZERO,
            retention_check_interval: Duration::from_secs(3600),
            compaction: CompactionConfig::default(),
            write_limits: chronosdb_storage::WriteLimits::DEFAULT,
        })
        .await
        .expect("open");
        let mut lines = String::new();
        for step in 0..288i64 {
            for (h, host) in ["a", "b", "c"].iter().enumerate() {
                let time = START + step * 600_000_000_000;
                let v = step * 3 + h as i64;
                lines.push_str(&format!("m,host={host} v={v}i {time}\n"));
            }
        }
        engine
            .write_lp("db", Bytes::from(lines), Precision::Nanosecond, false)
            .await
            .expect("write");
        engine.persist().await.expect("persist");
        engine
    }

    fn rfc3339(nanos: i64) -> String {
        chrono::DateTime::from_timestamp_nanos(nanos)
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    }

    /// Runs `sql` through the plan cache and the template, as the front end does with
    /// one partition, and checks the plan and rows against planning it in full. Returns
    /// whether the template was ready when the run began and the front end's rebinding
    /// (for a session planned in two partitions) used it, and the rows.
    async fn run(state: &SessionState, cache: &PlanCache, sql: &str) -> (bool, String) {
        let statement = parameterize(sql).expect("parameterized");
        let cached = match cache.lookup(&statement.key) {
            crate::plan_cache::Lookup::Hit(cached) => cached,
            _ => {
                let generic = Parser::parse_sql(&PostgreSqlDialect {}, &statement.key)
                    .expect("parse")
                    .remove(0);
                let plan = state
                    .create_logical_plan(&statement.key)
                    .await
                    .expect("generic plan");
                cache
                    .insert(state, &statement.key, generic, plan)
                    .expect("cacheable")
            }
        };
        let bound = cached.bind(&statement).expect("bound");
        let optimized = optimized_inner(&bound).expect("optimized");
        let reuse = optimized.reuse.as_ref().expect("reuse");
        let was_ready = matches!(*reuse.template.state.lock(), TemplateState::Ready(_));
        let planned = optimized
            .create_physical_plan(state)
            .await
            .expect("physical plan");
        let full = state
            .query_planner()
            .create_physical_plan(&optimized.plan, state)
            .await
            .expect("full physical plan");
        assert_eq!(print(&planned), print(&full), "{sql}");
        let rows = |plan| async {
            let batches = collect(plan, state.task_ctx()).await.expect("run");
            pretty_format_batches(&batches).expect("format").to_string()
        };
        // The front end's way for a small query of a session planned in two partitions:
        // rebound from the session's own state, run in the template's task context.
        let mut wide = state.clone();
        wide.config_mut().options_mut().execution.target_partitions = 2;
        let fast = optimized.rebind_in_one_partition(&wide).expect("rebind");
        let fast_path = fast.is_some();
        if let Some((fast, task)) = fast {
            assert_eq!(print(&fast), print(&full), "{sql}");
            let batches = collect(fast, task).await.expect("run");
            let fast = pretty_format_batches(&batches).expect("format").to_string();
            let again = state
                .query_planner()
                .create_physical_plan(&optimized.plan, state)
                .await
                .expect("full physical plan");
            assert_eq!(fast, rows(again).await, "{sql}");
        }
        let answer = rows(planned).await;
        assert_eq!(answer, rows(full).await, "{sql}");
        (was_ready && fast_path, answer)
    }

    /// The engine of [`engine`], a one-partition session over it and an empty plan cache.
    async fn fixture(dir: &std::path::Path) -> (Arc<Engine>, SessionState, PlanCache) {
        let engine = engine(dir).await;
        let context = QueryEngine::new(engine.clone(), 1 << 30)
            .expect("query engine")
            .session_for("db")
            .expect("session");
        let mut state = context.state();
        state.config_mut().options_mut().execution.target_partitions = 1;
        let cache = PlanCache::new(engine.clone(), "db");
        (engine, state, cache)
    }

    fn window_query(host: &str, from: i64, to: i64) -> String {
        format!(
            "SELECT time_bucket('1 hour', time) AS hour, max(v), count(*) FROM m \
             WHERE host = '{host}' AND time >= '{}' AND time < '{}' GROUP BY 1 ORDER BY 1",
            rfc3339(from),
            rfc3339(to)
        )
    }

    #[tokio::test]
    async fn rebound_plans_are_the_plans_datafusion_makes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (engine, state, cache) = fixture(dir.path()).await;
        let hour = 3_600_000_000_000;
        // The first run is kept, the second (all literals new) checks it.
        assert!(
            !run(&state, &cache, &window_query("a", START, START + 2 * hour))
                .await
                .0
        );
        assert!(
            !run(
                &state,
                &cache,
                &window_query("b", START + hour, START + 4 * hour)
            )
            .await
            .0
        );
        // Rebound from now on: another host and hour, the second day's file, both files;
        // a host no file holds leaves no file to scan, which is planned in full.
        for (host, from, to, rebound) in [
            ("c", START + 5 * hour, START + 7 * hour, true),
            ("a", START + DAY + hour, START + DAY + 3 * hour, true),
            ("b", START + DAY - hour, START + DAY + hour, true),
            ("zz", START, START + hour, false),
        ] {
            let (was_rebound, _) = run(&state, &cache, &window_query(host, from, to)).await;
            assert_eq!(was_rebound, rebound, "{host} {from} {to}");
        }
        // Buffered rows in range: planned in full (the scan is no longer one Parquet
        // plan), and the answer holds them.
        engine
            .write_lp(
                "db",
                Bytes::from(format!("m,host=a v=1000i {}", START + 30 * 60_000_000_000)),
                Precision::Nanosecond,
                false,
            )
            .await
            .expect("write");
        let (_, answer) = run(&state, &cache, &window_query("a", START, START + hour)).await;
        assert!(answer.contains("1000"), "{answer}");
        // Another host's window is still rebound: the buffer holds none of its rows.
        let (was_rebound, answer) =
            run(&state, &cache, &window_query("b", START, START + hour)).await;
        assert!(was_rebound, "{answer}");
        assert!(!answer.contains("1000"), "{answer}");
    }

    /// One host's window of a file many hosts share is estimated by the file's series
    /// index (its rows of that host), not by the share of the file's time range.
    #[tokio::test]
    async fn estimates_use_the_series_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_engine, state, _cache) = fixture(dir.path()).await;
        let estimate = |sql: String| {
            let state = state.clone();
            async move {
                let plan = state.create_logical_plan(&sql).await.expect("plan");
                let plan = state.optimize(&plan).expect("optimize");
                crate::scan_size::estimated_rows(&plan)
            }
        };
        // 3 hosts x 144 points a day for two days; the index knows host a's 144 of a day.
        assert_eq!(
            estimate(window_query("a", START, START + DAY)).await,
            Some(144)
        );
        assert_eq!(
            estimate(window_query("zz", START, START + DAY)).await,
            Some(0)
        );
        assert_eq!(
            estimate("SELECT count(*) FROM m WHERE v > 3".to_string()).await,
            Some(864)
        );
    }

    #[tokio::test]
    async fn plans_that_depend_on_more_than_their_input_are_not_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_engine, state, cache) = fixture(dir.path()).await;
        // A top-k hands the scan a dynamic filter.
        for host in ["a", "b", "c", "a"] {
            let sql =
                format!("SELECT time, v FROM m WHERE host = '{host}' ORDER BY v DESC LIMIT 3");
            assert!(!run(&state, &cache, &sql).await.0);
        }
        // Literals that repeat cannot be told apart.
        for v in [5, 6, 7, 8] {
            let sql = format!("SELECT count(*) FROM m WHERE v > {v} AND v < {v}");
            assert!(!run(&state, &cache, &sql).await.0);
        }
    }
}
