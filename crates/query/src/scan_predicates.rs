//! Drops repeated conjuncts from the predicates of Parquet scans.
//!
//! [`crate::table::ChronosTable`] hands its Parquet source the query's filters, so that
//! files, row groups and pages are pruned however the plan is shaped. It reports them as
//! inexact (the write buffer and merged chunks are filtered above the scan), so DataFusion
//! keeps a filter above the scan, and its physical filter pushdown then adds the same
//! conjuncts to the source a second time (a second logical optimizer pass can also hand
//! the scan a conjunct twice). Every conjunct costs at each file the scan opens
//! (pruning predicate, page index, row filter), which for a short query is a measurable
//! part of its time; this rule, run after DataFusion's own, keeps one of each.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::physical_plan::{FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::utils::{conjunction, split_conjunction};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;

/// See the module comment.
#[derive(Debug, Default)]
pub struct DistinctScanPredicates;

impl PhysicalOptimizerRule for DistinctScanPredicates {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            Ok(match without_repeats(node.as_ref()) {
                Some(scan) => Transformed::yes(scan),
                None => Transformed::no(node),
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "distinct_scan_predicates"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `node` again with each conjunct of its Parquet predicate once, if it is a Parquet
/// scan whose predicate repeats one.
fn without_repeats(node: &dyn ExecutionPlan) -> Option<Arc<dyn ExecutionPlan>> {
    let scan = node.downcast_ref::<DataSourceExec>()?;
    let (config, source) = scan.downcast_to_file_source::<ParquetSource>()?;
    #[allow(deprecated)] // `filter()` answers for the whole source, not the predicate
    let predicate = source.predicate()?;
    let conjuncts = split_conjunction(predicate);
    let mut distinct: Vec<Arc<dyn PhysicalExpr>> = Vec::with_capacity(conjuncts.len());
    for conjunct in &conjuncts {
        if !distinct
            .iter()
            .any(|kept| kept.as_ref() == conjunct.as_ref())
        {
            distinct.push(Arc::clone(conjunct));
        }
    }
    if distinct.len() == conjuncts.len() {
        return None;
    }
    let source = source.with_predicate(conjunction(distinct));
    let config = FileScanConfigBuilder::from(config.clone())
        .with_source(Arc::new(source))
        .build();
    Some(DataSourceExec::from_data_source(config))
}
