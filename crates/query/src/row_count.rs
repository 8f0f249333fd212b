//! Exact row counts of whole-table scans that merge overlapping chunks.
//!
//! A scan whose chunks may share points (see `chunk_merge`) cannot know how many rows it
//! gives before it merges them, so `count(*)` would read the table. But what a snapshot
//! holds never changes: immutable files, and the buffer at one WAL sequence. So a scan of
//! the whole table, with no filter, is wrapped in a [`CountedScanExec`]: it counts the
//! rows going through when it runs to its end and remembers the total in the engine,
//! under a key naming that snapshot; a later plan of the same snapshot declares the count
//! as its exact statistics, and DataFusion answers `count(*)` from it without reading.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::task::{Context, Poll};

use chronosdb_storage::Engine;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, Statistics};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::statistics::{ChildStats, StatisticsArgs};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::{Stream, StreamExt};

/// Passes its input through; declares the input's row count when the engine remembers
/// it for `key`, and otherwise counts the rows and remembers them once every partition
/// has run to its end.
#[derive(Debug)]
pub struct CountedScanExec {
    input: Arc<dyn ExecutionPlan>,
    engine: Arc<Engine>,
    key: String,
    known: Option<u64>,
    /// Rows each partition gave, or -1 until it has ended.
    counted: Arc<Vec<AtomicI64>>,
}

impl CountedScanExec {
    /// `input` (a scan of what `key` names) with its row count declared or counted.
    pub fn new(input: Arc<dyn ExecutionPlan>, engine: Arc<Engine>, key: String) -> Self {
        let known = engine.known_row_count(&key);
        let partitions = input.properties().partitioning.partition_count();
        let counted = Arc::new((0..partitions).map(|_| AtomicI64::new(-1)).collect());
        CountedScanExec {
            input,
            engine,
            key,
            known,
            counted,
        }
    }
}

impl DisplayAs for CountedScanExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match self.known {
            Some(rows) => write!(f, "CountedScanExec: rows={rows}"),
            None => write!(f, "CountedScanExec: counting"),
        }
    }
}

impl ExecutionPlan for CountedScanExec {
    fn name(&self) -> &str {
        "CountedScanExec"
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children.swap_remove(0);
        Ok(Arc::new(CountedScanExec::new(
            input,
            self.engine.clone(),
            self.key.clone(),
        )))
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        let input = input_stats
            .first()
            .cloned()
            .unwrap_or_else(|| Arc::new(Statistics::new_unknown(&self.schema())));
        match (self.known, args.partition()) {
            (Some(rows), None) => {
                let mut stats = input.as_ref().clone();
                stats.num_rows = Precision::Exact(rows as usize);
                Ok(Arc::new(stats))
            }
            _ => Ok(input),
        }
    }

    // No filter is let through to the scan (the default): a dynamic filter of a TopK or
    // a join would end its partitions early with fewer rows, which must not count.

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let stream = self.input.execute(partition, context)?;
        if self.known.is_some() {
            return Ok(stream);
        }
        Ok(Box::pin(CountingStream {
            input: stream,
            rows: 0,
            failed: false,
            partition,
            scan: CountedScan {
                engine: self.engine.clone(),
                key: self.key.clone(),
                counted: self.counted.clone(),
            },
        }))
    }
}

/// Where a partition's count goes when it ends.
struct CountedScan {
    engine: Arc<Engine>,
    key: String,
    counted: Arc<Vec<AtomicI64>>,
}

impl CountedScan {
    /// Records that `partition` gave `rows`; once every partition has, remembers the sum.
    fn ended(&self, partition: usize, rows: i64) {
        if let Some(slot) = self.counted.get(partition) {
            slot.store(rows, Ordering::SeqCst);
        }
        let mut total: u64 = 0;
        for slot in self.counted.iter() {
            match u64::try_from(slot.load(Ordering::SeqCst)) {
                Ok(rows) => total += rows,
                Err(_) => return,
            }
        }
        self.engine.remember_row_count(self.key.clone(), total);
    }
}

/// One partition of a [`CountedScanExec`] that counts: only a partition read to its end
/// counts, so one dropped early (under a LIMIT) or failed records nothing.
struct CountingStream {
    input: SendableRecordBatchStream,
    rows: i64,
    failed: bool,
    partition: usize,
    scan: CountedScan,
}

impl Stream for CountingStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.input.poll_next_unpin(cx);
        match &polled {
            Poll::Ready(Some(Ok(batch))) => self.rows += batch.num_rows() as i64,
            Poll::Ready(Some(Err(_))) => self.failed = true,
            Poll::Ready(None) if !self.failed => {
                self.failed = true; // record once
                self.scan.ended(self.partition, self.rows);
            }
            _ => {}
        }
        polled
    }
}

impl RecordBatchStream for CountingStream {
    fn schema(&self) -> SchemaRef {
        self.input.schema()
    }
}
