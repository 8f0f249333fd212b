//! The `TableProvider` of one chronosdb table: the write buffer plus the table's Parquet
//! files, pruned by time before any file is opened.
//!
//! Rows are unique per (series, time) in what a query sees. Each Parquet file is merged
//! when it is written; the buffer and files whose time ranges overlap another chunk may
//! hold the same point twice, so such chunks are merged again here, with the same rule as
//! persistence (last write wins per field). Chunks that overlap nothing are scanned as
//! they are, with projection and predicates pushed into the Parquet reader.

use std::sync::Arc;

use async_trait::async_trait;
use chronosdb_catalog::{ParquetFile, TIME_COLUMN, TableSchema};
use chronosdb_storage::Engine;
use chronosdb_storage::tag_times::TagTimes;

use crate::chunk_merge::{
    ChunkTimes, MergeChunksExec, ValueTimes, in_windows, is_series_and_time_only,
    is_series_or_time, overlap_windows,
};
use crate::delete::DeleteExec;
use crate::insert::InsertSink;
use crate::parquet_reader::reader_factory;
use crate::row_count::CountedScanExec;
use crate::scan_size::overlap_fraction;
use crate::series_rows::{ParquetScan, indexed_rows, load_layouts, tag_values};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::Session;
use datafusion::common::config::TableParquetOptions;
use datafusion::common::stats::Precision;
use datafusion::common::{DFSchema, Result, ScalarValue, Statistics, not_impl_err};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::sink::DataSinkExec;
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::prelude::{col, lit};

/// The URL under which the engine's object store is registered with DataFusion.
pub const STORE_URL: &str = "chronosdb://store/";

/// One table of one database.
#[derive(Debug, Clone)]
pub struct ChronosTable {
    engine: Arc<Engine>,
    database: String,
    name: String,
    schema: SchemaRef,
    /// `now()`: the default of the time column.
    time_default: Expr,
}

impl ChronosTable {
    /// The rows a scan with `filters` reads at most: for each file, the rows its series
    /// index (when the engine holds it) leaves for the tag and time filters, otherwise its
    /// row count scaled by the part of its time range the filters (and the retention
    /// period) keep, and the latter for the buffer; without reading a batch. `Some(0)`
    /// for a table that no longer exists.
    pub fn estimated_rows(&self, filters: &[Expr]) -> Option<u64> {
        let only = self.buffer_narrowing(filters);
        let extent = self.engine.table_extent_of(
            &self.database,
            &self.name,
            only.as_ref().map(|(v, t)| (t.as_str(), v.as_slice())),
        );
        let Some(extent) = extent.ok()? else {
            return Some(0);
        };
        let mut bounds = TimeBounds::from_filters(filters);
        if let Some(cutoff) = extent.retention_cutoff {
            bounds.min = bounds.min.max(cutoff);
        }
        // A file whose series index is at hand says which of its rows the tag and time
        // filters can match; otherwise the part of its time range they keep.
        let in_files: f64 = extent
            .files
            .iter()
            .map(|f| {
                let indexed = self
                    .engine
                    .layout_of(&f.path)
                    .and_then(|layout| indexed_rows(&layout, filters, &bounds));
                match indexed {
                    Some(rows) => rows as f64,
                    None => {
                        f.row_count as f64
                            * overlap_fraction(f.min_time, f.max_time, bounds.min, bounds.max)
                    }
                }
            })
            .sum();
        let in_buffer = extent.buffered.map_or(0.0, |(rows, lo, hi)| {
            rows as f64 * overlap_fraction(lo, hi, bounds.min, bounds.max)
        });
        Some((in_files + in_buffer).ceil() as u64)
    }

    /// The values `filters` allow for a tag (the tag with the fewest): the buffered rows
    /// of those values are all a scan reads of the buffer, and the engine takes just those.
    fn buffer_narrowing(&self, filters: &[Expr]) -> Option<(Vec<String>, String)> {
        self.tag_names()
            .into_iter()
            .filter_map(|tag| Some((tag_values(filters, &tag)?, tag)))
            .min_by_key(|(values, _)| values.len())
    }

    /// What a scan with `filters` reads: the files and buffer whose time ranges the
    /// filters and the retention period keep. `None` for a table that no longer exists.
    fn select(&self, filters: &[Expr]) -> Result<Option<Selection>> {
        let only = self.buffer_narrowing(filters);
        let snapshot = self
            .engine
            .table_snapshot_of(
                &self.database,
                &self.name,
                only.as_ref()
                    .map(|(values, tag)| (tag.as_str(), values.as_slice())),
            )
            .map_err(crate::external)?;
        let Some(snapshot) = snapshot else {
            return Ok(None);
        };
        // Only a scan of the whole table may be counted (see `row_count`).
        let snapshot_key = filters.is_empty().then(|| {
            snapshot_key(
                &self.database,
                &self.name,
                &snapshot.files,
                snapshot.buffered.iter().map(|b| b.num_rows()).sum(),
                snapshot.buffer_sequence,
            )
        });
        let mut bounds = TimeBounds::from_filters(filters);
        // Files wholly older than the retention period are already left out of the
        // snapshot; one that straddles the cutoff still holds older rows.
        let cutoff = snapshot
            .retention_cutoff
            .filter(|cutoff| snapshot.files.iter().any(|f| f.min_time < *cutoff));
        if let Some(cutoff) = snapshot.retention_cutoff {
            bounds.min = bounds.min.max(cutoff);
        }
        let mut chunks: Vec<Chunk> = snapshot
            .files
            .into_iter()
            .filter(|f| bounds.overlaps(f.min_time, f.max_time))
            .map(Chunk::File)
            .collect();
        if let Some((lo, hi)) = snapshot.buffered_range
            && bounds.overlaps(lo, hi)
        {
            chunks.push(Chunk::Buffer(BufferChunk {
                batches: snapshot.buffered,
                lo,
                hi,
                repeats: snapshot.buffered_may_have_duplicates,
                tag_times: snapshot.buffered_tag_times,
            }));
        }
        Ok(Some(Selection {
            snapshot_key,
            table_schema: snapshot.schema,
            cutoff,
            chunks,
        }))
    }

    /// The files a scan with `filters` reads, in the order [`TableProvider::scan`] gives
    /// them to its Parquet plan, when that plan is all the scan is: no buffered rows in
    /// range, no file overlapping another, none straddling the retention cutoff. `None`
    /// otherwise (and for a table that no longer exists).
    pub(crate) fn plain_files(&self, filters: &[Expr]) -> Result<Option<Vec<ParquetFile>>> {
        let Some(selection) = self.select(filters)? else {
            return Ok(None);
        };
        if selection.cutoff.is_some() {
            return Ok(None);
        }
        let bounds = TimeBounds::from_filters(filters);
        let mut files = Vec::new();
        for group in overlap_groups(selection.chunks) {
            if !windows_to_merge(&self.engine, &group, &bounds).is_empty() {
                return Ok(None);
            }
            for chunk in group {
                match chunk {
                    Chunk::File(file) => files.push(file),
                    Chunk::Buffer(..) => return Ok(None),
                }
            }
        }
        Ok(Some(files))
    }

    /// Reads the layouts of the files among `chunks` that share time with another chunk
    /// and that the engine does not hold. True when the buffer's time ranges per tag value
    /// were missing for want of them (the buffer is then worth selecting again).
    async fn load_overlapping_layouts(
        &self,
        state: &dyn Session,
        chunks: &[Chunk],
    ) -> Result<bool> {
        let meets_another = |i: usize| {
            let (lo, hi) = chunks[i].range();
            chunks
                .iter()
                .enumerate()
                .any(|(j, c)| j != i && c.range().0 <= hi && c.range().1 >= lo)
        };
        let missing: Vec<ParquetFile> = (0..chunks.len())
            .filter_map(|i| match &chunks[i] {
                Chunk::File(f) if self.engine.layout_of(&f.path).is_none() && meets_another(i) => {
                    Some(f.clone())
                }
                _ => None,
            })
            .collect();
        if missing.is_empty() {
            return Ok(false);
        }
        load_layouts(&self.engine, state, &missing).await?;
        Ok(chunks
            .iter()
            .any(|c| matches!(c, Chunk::Buffer(b) if b.tag_times.is_none())))
    }

    /// The plans of a group of chunks whose time ranges overlap (see `chunk_merge`): the
    /// rows outside the overlap windows scanned as they are, with the whole predicate, and
    /// those inside merged when the query runs.
    async fn overlapping_group(
        &self,
        state: &dyn Session,
        table_schema: &TableSchema,
        group: Vec<Chunk>,
        windows: Vec<(i64, i64)>,
        projection: &Option<Vec<usize>>,
        filters: &[Expr],
    ) -> Result<Vec<Arc<dyn ExecutionPlan>>> {
        let schema = &table_schema.arrow_schema();
        let time_type = schema.field_with_name(TIME_COLUMN)?.data_type().clone();
        let inside = in_windows(&windows, &time_type);
        let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
        let mut files = Vec::new();
        let mut buffered = Vec::new();
        for chunk in group {
            match chunk {
                Chunk::File(f) => files.push(f),
                Chunk::Buffer(b) => buffered = b.batches,
            }
        }
        let layouts = load_layouts(&self.engine, state, &files).await?;
        let mut plans: Vec<Arc<dyn ExecutionPlan>> = Vec::new();

        // Outside the windows every row is in one chunk only.
        let outside = !inside.clone();
        // The buffer is filtered when the plan runs, not here: planning costs the same
        // whatever the buffer holds, and a plan answered from statistics reads nothing.
        if !buffered.is_empty() {
            let outside_physical = state.create_physical_expr(outside.clone(), &df_schema)?;
            let all = MemorySourceConfig::try_new_exec(&[buffered.clone()], schema.clone(), None)?;
            plans.push(Arc::new(
                FilterExecBuilder::new(outside_physical, all)
                    .apply_projection(projection.clone())?
                    .build()?,
            ));
        }
        let scan = ParquetScan::narrowed(files.clone(), layouts.clone(), filters);
        if !scan.files.is_empty() {
            // The window filter must hold exactly, whatever the reader pushes down: it
            // runs above the scan, which reads `time` for it.
            let time_index = schema.index_of(TIME_COLUMN)?;
            let mut read = projection
                .clone()
                .unwrap_or_else(|| (0..schema.fields().len()).collect());
            let wanted: Vec<usize> = (0..read.len()).collect();
            if !read.contains(&time_index) {
                read.push(time_index);
            }
            let read_schema = Arc::new(schema.project(&read)?);
            let predicate = conjunction(filters.iter().cloned().chain([outside.clone()]))
                .map(|e| state.create_physical_expr(e, &df_schema))
                .transpose()?;
            let mut scan = scan;
            scan.exact_rows = false;
            let files_plan = parquet_plan(state, schema, scan, Some(read), predicate)?;
            let read_df_schema = DFSchema::try_from(read_schema.as_ref().clone())?;
            let keep = state.create_physical_expr(outside, &read_df_schema)?;
            plans.push(Arc::new(
                FilterExecBuilder::new(keep, files_plan)
                    .apply_projection(Some(wanted))?
                    .build()?,
            ));
        }

        // Inside them, the merge reads time, every tag and the projected columns of the
        // rows the series-and-time conjuncts keep, oldest chunk first.
        let mut read_filters: Vec<Expr> = filters
            .iter()
            .filter(|f| is_series_and_time_only(f, table_schema))
            .cloned()
            .collect();
        read_filters.push(inside);
        let tag_or_time = |i: usize| {
            table_schema
                .columns()
                .get(i)
                .is_some_and(|c| is_series_or_time(&c.kind))
        };
        let read: Vec<usize> = (0..schema.fields().len())
            .filter(|i| tag_or_time(*i) || projection.as_ref().is_none_or(|p| p.contains(i)))
            .collect();
        let output: Vec<usize> = match projection {
            Some(p) => p
                .iter()
                .filter_map(|i| read.iter().position(|r| r == i))
                .collect(),
            None => (0..read.len()).collect(),
        };
        let read_schema = Arc::new(schema.project(&read)?);
        let read_predicate = conjunction(read_filters.iter().cloned())
            .map(|e| state.create_physical_expr(e, &df_schema))
            .transpose()?;
        let mut file_plans = Vec::new();
        for (file, layout) in files.into_iter().zip(layouts) {
            let touches = |&(lo, hi): &(i64, i64)| file.min_time <= hi && file.max_time >= lo;
            if !windows.iter().any(touches) {
                continue;
            }
            let scan = ParquetScan::narrowed(vec![file], vec![layout], &read_filters);
            if scan.files.is_empty() {
                continue;
            }
            file_plans.push(parquet_plan(
                state,
                schema,
                scan,
                Some(read.clone()),
                read_predicate.clone(),
            )?);
        }
        // `MergeChunksExec` applies the read filters (`keep`) to these when it runs.
        let inside_buffer = buffered
            .iter()
            .map(|b| b.project(&read))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        if !file_plans.is_empty() || !inside_buffer.is_empty() {
            let read_df_schema = DFSchema::try_from(read_schema.as_ref().clone())?;
            let keep = conjunction(read_filters)
                .map(|e| state.create_physical_expr(e, &read_df_schema))
                .transpose()?;
            plans.push(Arc::new(MergeChunksExec::new(
                file_plans,
                inside_buffer,
                read_schema,
                keep,
                table_schema.clone(),
                output,
                windows,
            )?));
        }
        Ok(plans)
    }

    pub fn new(engine: Arc<Engine>, database: &str, name: &str, schema: &TableSchema) -> Self {
        Self {
            engine,
            database: database.to_string(),
            name: name.to_string(),
            schema: schema.arrow_schema(),
            time_default: datafusion::functions::datetime::expr_fn::now(),
        }
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database the table is in.
    pub fn database(&self) -> &str {
        &self.database
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The names of the tag columns.
    pub fn tag_names(&self) -> Vec<String> {
        self.schema
            .fields()
            .iter()
            .filter(|f| {
                matches!(
                    f.data_type(),
                    datafusion::arrow::datatypes::DataType::Dictionary(..)
                )
            })
            .map(|f| f.name().clone())
            .collect()
    }
}

/// A piece of a table's data with its time range.
enum Chunk {
    File(ParquetFile),
    Buffer(BufferChunk),
}

/// The buffered rows of a table a scan reads.
struct BufferChunk {
    batches: Vec<RecordBatch>,
    /// Their time range.
    lo: i64,
    hi: i64,
    /// Whether they may hold a point twice.
    repeats: bool,
    /// Their time ranges per value of the tag the files they overlap lead with.
    tag_times: Option<Arc<TagTimes>>,
}

impl Chunk {
    fn range(&self) -> (i64, i64) {
        match self {
            Chunk::File(f) => (f.min_time, f.max_time),
            Chunk::Buffer(b) => (b.lo, b.hi),
        }
    }
}

#[async_trait]
impl TableProvider for ChronosTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Used for pruning only; DataFusion still applies every filter on top.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    /// `INSERT` without a time stores the server's time, as a line without a timestamp does.
    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        (column == TIME_COLUMN).then_some(&self.time_default)
    }

    /// `DELETE FROM` this table: the selected points are removed and their files
    /// rewritten when the plan runs (see `delete`).
    async fn delete_from(
        &self,
        state: &dyn Session,
        filters: Vec<Expr>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let snapshot = self.engine.catalog().snapshot();
        let Some(def) = snapshot.table(&self.database, &self.name) else {
            return empty_plan(&self.schema, None);
        };
        Ok(Arc::new(DeleteExec::try_new(
            state,
            self.engine.clone(),
            &self.database,
            &self.name,
            &def.schema,
            &filters,
        )?))
    }

    /// Rows inserted with SQL go through the engine's durable write path.
    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if insert_op != InsertOp::Append {
            return not_impl_err!(
                "{insert_op} is not supported: chronosdb tables are appended to (a point \
                 written again at the same time and series replaces the earlier one)"
            );
        }
        let sink = InsertSink::new(
            self.engine.clone(),
            &self.database,
            &self.name,
            self.schema.clone(),
        );
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(mut selection) = self.select(filters)? else {
            return empty_plan(&self.schema, projection);
        };
        // Overlap detection tells chunks apart by their series indexes: read those not at
        // hand, and select again if the buffer's ranges could then be had.
        if self
            .load_overlapping_layouts(state, &selection.chunks)
            .await?
        {
            match self.select(filters)? {
                Some(again) => selection = again,
                None => return empty_plan(&self.schema, projection),
            }
        }
        let Selection {
            table_schema,
            snapshot_key,
            cutoff,
            chunks,
        } = selection;
        // The table may have gained columns since this provider was made.
        let schema = table_schema.arrow_schema();
        // A file that straddles the retention cutoff still holds older rows, which a
        // filter over the whole scan removes (its `time` column read for that if not
        // asked for).
        let requested = projection.cloned();
        let time_index = schema.index_of(TIME_COLUMN)?;
        let projection = match (&requested, cutoff) {
            (Some(columns), Some(_)) if !columns.contains(&time_index) => {
                let mut columns = columns.clone();
                columns.push(time_index);
                Some(columns)
            }
            _ => requested.clone(),
        };

        let predicate = match conjunction(filters.iter().cloned()) {
            Some(expr) => {
                let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
                Some(state.create_physical_expr(expr, &df_schema)?)
            }
            None => None,
        };

        let mut plain_files = Vec::new();
        let mut plans: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        let bounds = TimeBounds::from_filters(filters);
        let mut merges = false;
        for group in overlap_groups(chunks) {
            let windows = windows_to_merge(&self.engine, &group, &bounds);
            if !windows.is_empty() {
                merges = true;
                plans.extend(
                    self.overlapping_group(
                        state,
                        &table_schema,
                        group,
                        windows,
                        &projection,
                        filters,
                    )
                    .await?,
                );
                continue;
            }
            // No two chunks meet where the query looks: each is read as it is.
            for chunk in group {
                match chunk {
                    Chunk::File(f) => plain_files.push(f),
                    Chunk::Buffer(BufferChunk { batches, .. }) => {
                        // Two partitions, so both cores scan the buffer.
                        let mut partitions = vec![Vec::new(), Vec::new()];
                        for (i, batch) in batches.into_iter().enumerate() {
                            partitions[i % 2].push(batch);
                        }
                        partitions.retain(|p| !p.is_empty());
                        plans.push(MemorySourceConfig::try_new_exec(
                            &partitions,
                            schema.clone(),
                            projection.clone(),
                        )?)
                    }
                }
            }
        }
        if !plain_files.is_empty() {
            let layouts = load_layouts(&self.engine, state, &plain_files).await?;
            let scan = ParquetScan::narrowed(plain_files, layouts, filters);
            if !scan.files.is_empty() {
                plans.push(parquet_plan(
                    state,
                    &schema,
                    scan,
                    projection.clone(),
                    predicate,
                )?);
            }
        }
        let plan = match plans.len() {
            0 => return empty_plan(&schema, requested.as_ref()),
            1 => plans.remove(0),
            _ => UnionExec::try_new(plans)?,
        };
        match cutoff {
            Some(cutoff) => drop_expired(state, plan, cutoff, projection != requested),
            // The whole table, merged: its row count is known only once counted.
            None => match snapshot_key {
                Some(key) if merges => Ok(Arc::new(CountedScanExec::new(
                    plan,
                    self.engine.clone(),
                    key,
                ))),
                _ => Ok(plan),
            },
        }
    }
}

/// A name for what a snapshot of a table holds: its files (immutable) and its buffer,
/// which only grows between two WAL sequences.
fn snapshot_key(
    database: &str,
    table: &str,
    files: &[ParquetFile],
    buffered_rows: usize,
    buffer_sequence: u64,
) -> String {
    let mut ids: Vec<u64> = files.iter().map(|f| f.id).collect();
    ids.sort_unstable();
    let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
    format!(
        "{database}\u{0}{table}\u{0}{buffer_sequence}\u{0}{buffered_rows}\u{0}{}",
        ids.join(",")
    )
}

/// The chunks a scan reads (see [`ChronosTable::select`]).
struct Selection {
    /// The table's schema now: it may have gained columns since the provider was made.
    table_schema: TableSchema,
    /// What the snapshot holds, by name: files, buffered rows and the buffer's sequence
    /// (see `row_count`); only for a scan with no filter.
    snapshot_key: Option<String>,
    /// The retention cutoff, when a file of the table still holds rows older than it.
    cutoff: Option<i64>,
    chunks: Vec<Chunk>,
}

/// Keeps the rows of `plan` at or after `cutoff` (the retention period's start); with
/// `drop_time`, removes the `time` column, the last one, added only for this filter.
fn drop_expired(
    state: &dyn Session,
    plan: Arc<dyn ExecutionPlan>,
    cutoff: i64,
    drop_time: bool,
) -> Result<Arc<dyn ExecutionPlan>> {
    let schema = plan.schema();
    let time_type = schema.field_with_name(TIME_COLUMN)?.data_type().clone();
    let tz = match &time_type {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    };
    let keep = col(TIME_COLUMN).gt_eq(lit(ScalarValue::TimestampNanosecond(Some(cutoff), tz)));
    let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
    let predicate = state.create_physical_expr(keep, &df_schema)?;
    let filtered: Arc<dyn ExecutionPlan> = Arc::new(FilterExec::try_new(predicate, plan)?);
    if !drop_time {
        return Ok(filtered);
    }
    let columns: Vec<(Arc<dyn PhysicalExpr>, String)> = schema
        .fields()
        .iter()
        .enumerate()
        .take(schema.fields().len() - 1)
        .map(|(i, field)| {
            (
                Arc::new(Column::new(field.name(), i)) as Arc<dyn PhysicalExpr>,
                field.name().clone(),
            )
        })
        .collect();
    Ok(Arc::new(ProjectionExec::try_new(columns, filtered)?))
}

pub(crate) fn empty_plan(
    schema: &SchemaRef,
    projection: Option<&Vec<usize>>,
) -> Result<Arc<dyn ExecutionPlan>> {
    Ok(MemorySourceConfig::try_new_exec(
        &[vec![]],
        schema.clone(),
        projection.cloned(),
    )?)
}

/// A Parquet scan of `scan`'s files. Footers and page indexes come from the runtime's
/// metadata cache (files are immutable, so a cached footer never goes stale), and
/// predicates are evaluated while decoding: the filter columns are read first, and the
/// other columns only for the rows that pass (late materialisation). Files whose series
/// index narrowed the rows to read carry that selection (see `series_rows`).
pub(crate) fn parquet_plan(
    state: &dyn Session,
    schema: &SchemaRef,
    scan: ParquetScan,
    projection: Option<Vec<usize>>,
    predicate: Option<Arc<dyn datafusion::physical_plan::PhysicalExpr>>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let reader = reader_factory(state)?;
    let mut options = TableParquetOptions::default();
    // Statistics and the page index only cost time when the selected rows are narrower.
    options.global.pruning = scan.prune;
    // chronosdb writes no bloom filters: looking for them would only cost a read per file.
    let mut source = ParquetSource::new(schema.clone())
        .with_table_parquet_options(options)
        .with_enable_page_index(scan.prune)
        .with_bloom_filter_on_read(false)
        .with_parquet_file_reader_factory(Arc::new(reader));
    if let Some(predicate) = predicate {
        // Late materialisation as the session says (on by default, see `session_for`).
        let pushdown = state.config_options().execution.parquet.pushdown_filters;
        source = source
            .with_predicate(predicate)
            .with_pushdown_filters(pushdown)
            .with_reorder_filters(true);
    }
    let partitions = state.config_options().execution.target_partitions;
    let config = FileScanConfigBuilder::new(ObjectStoreUrl::parse(STORE_URL)?, Arc::new(source))
        .with_statistics(files_statistics(&scan, schema))
        .with_file_groups(file_groups(scan.files, partitions))
        .with_projection_indices(projection)?
        .build();
    Ok(DataSourceExec::from_data_source(config))
}

/// The statistics of a scan. Each file's row count is exact (files are merged when
/// written): with the total declared, `count(*)` without a filter is answered without
/// reading the files.
pub(crate) fn files_statistics(scan: &ParquetScan, schema: &SchemaRef) -> Statistics {
    Statistics {
        num_rows: match scan.exact_rows {
            true => Precision::Exact(scan.rows as usize),
            false => Precision::Inexact(scan.rows as usize),
        },
        total_byte_size: Precision::Inexact(scan.bytes as usize),
        column_statistics: Statistics::unknown_column(schema),
    }
}

/// Spreads `files` over up to two groups (at most `partitions`), so both cores read in
/// parallel unless the query is planned for one partition (see `scan_size`).
pub(crate) fn file_groups(files: Vec<PartitionedFile>, partitions: usize) -> Vec<FileGroup> {
    let parallelism = partitions.clamp(1, 2).min(files.len()).max(1);
    let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); parallelism];
    for (i, f) in files.into_iter().enumerate() {
        groups[i % parallelism].push(f);
    }
    groups.into_iter().map(FileGroup::new).collect()
}

/// What overlap detection knows of each chunk: its time range, whether it may hold a
/// point twice itself, and its time ranges per tag value (a file's from its series index
/// when the engine holds its layout).
fn chunk_times(engine: &Engine, group: &[Chunk]) -> Vec<ChunkTimes> {
    group
        .iter()
        .map(|c| {
            let (lo, hi) = c.range();
            let (repeats, values) = match c {
                Chunk::File(f) => (
                    false,
                    engine
                        .layout_of(&f.path)
                        .and_then(|layout| layout.index)
                        .map(ValueTimes::Index),
                ),
                Chunk::Buffer(b) => (b.repeats, b.tag_times.clone().map(ValueTimes::Buffer)),
            };
            ChunkTimes {
                lo,
                hi,
                repeats,
                values,
            }
        })
        .collect()
}

/// Where the chunks of `group` (see [`overlap_groups`]) can hold the same point, within
/// `bounds`: the times whose rows must be merged. Empty when the group's chunks can be
/// read as they are.
fn windows_to_merge(engine: &Engine, group: &[Chunk], bounds: &TimeBounds) -> Vec<(i64, i64)> {
    let needs_merge = group.len() > 1 || matches!(&group[0], Chunk::Buffer(b) if b.repeats);
    if !needs_merge {
        return Vec::new();
    }
    overlap_windows(&chunk_times(engine, group))
        .into_iter()
        .filter_map(|(lo, hi)| {
            let (lo, hi) = (lo.max(bounds.min), hi.min(bounds.max));
            (lo <= hi).then_some((lo, hi))
        })
        .collect()
}

/// Groups chunks whose time ranges overlap (transitively), each group in write order.
fn overlap_groups(mut chunks: Vec<Chunk>) -> Vec<Vec<Chunk>> {
    // Write order: files by their write order, then the buffer.
    let order = |c: &Chunk| match c {
        Chunk::File(f) => f.write_position(),
        Chunk::Buffer(..) => (u64::MAX, u64::MAX),
    };
    let mut by_start: Vec<usize> = (0..chunks.len()).collect();
    by_start.sort_by_key(|i| chunks[*i].range().0);
    let mut group_of = vec![0usize; chunks.len()];
    let mut groups = 0;
    let mut current_end = i64::MIN;
    for (n, i) in by_start.iter().enumerate() {
        let (lo, hi) = chunks[*i].range();
        if n == 0 || lo > current_end {
            groups += 1;
            current_end = hi;
        } else {
            current_end = current_end.max(hi);
        }
        group_of[*i] = groups - 1;
    }
    let mut out: Vec<Vec<Chunk>> = (0..groups).map(|_| Vec::new()).collect();
    let mut indexed: Vec<(usize, Chunk)> = chunks.drain(..).enumerate().collect();
    indexed.sort_by_key(|(_, c)| order(c));
    for (i, chunk) in indexed {
        out[group_of[i]].push(chunk);
    }
    out
}

/// Inclusive time bounds implied by a query's filters on `time`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeBounds {
    pub min: i64,
    pub max: i64,
}

impl TimeBounds {
    pub fn from_filters(filters: &[Expr]) -> Self {
        let mut bounds = TimeBounds {
            min: i64::MIN,
            max: i64::MAX,
        };
        for f in filters {
            bounds.narrow(f);
        }
        bounds
    }

    fn overlaps(&self, lo: i64, hi: i64) -> bool {
        lo <= self.max && hi >= self.min
    }

    fn narrow(&mut self, expr: &Expr) {
        if let Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) = expr
        {
            self.narrow(left);
            self.narrow(right);
        } else if let Some((min, max)) = time_bound(expr) {
            self.min = self.min.max(min);
            self.max = self.max.min(max);
        }
    }
}

/// Whether `expr` (one conjunct, not an `AND`) bounds `time` in a way [`TimeBounds`]
/// takes: `time` compared with a time, or `time BETWEEN` two.
pub(crate) fn is_time_bound(expr: &Expr) -> bool {
    time_bound(expr).is_some()
}

/// The inclusive bounds one comparison puts on `time`, if it is one.
fn time_bound(expr: &Expr) -> Option<(i64, i64)> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (op, value) = match (time_column(left), timestamp_literal(right)) {
                (true, Some(v)) => (*op, v),
                _ => match (timestamp_literal(left), time_column(right)) {
                    (Some(v), true) => (op.swap()?, v),
                    _ => return None,
                },
            };
            match op {
                Operator::Gt => Some((value.saturating_add(1), i64::MAX)),
                Operator::GtEq => Some((value, i64::MAX)),
                Operator::Lt => Some((i64::MIN, value.saturating_sub(1))),
                Operator::LtEq => Some((i64::MIN, value)),
                Operator::Eq => Some((value, value)),
                _ => None,
            }
        }
        Expr::Between(between) if !between.negated && time_column(&between.expr) => Some((
            timestamp_literal(&between.low)?,
            timestamp_literal(&between.high)?,
        )),
        _ => None,
    }
}

fn time_column(expr: &Expr) -> bool {
    matches!(expr, Expr::Column(c) if c.name == TIME_COLUMN)
}

/// A timestamp literal in nanoseconds, whatever unit the planner gave it.
fn timestamp_literal(expr: &Expr) -> Option<i64> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    match value {
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(*v),
        ScalarValue::TimestampMicrosecond(Some(v), _) => v.checked_mul(1_000),
        ScalarValue::TimestampMillisecond(Some(v), _) => v.checked_mul(1_000_000),
        ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1_000_000_000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    fn ts(v: i64) -> Expr {
        lit(ScalarValue::TimestampNanosecond(Some(v), None))
    }

    #[test]
    fn bounds_from_filters() {
        let filters = vec![
            col("time").gt_eq(ts(10)).and(col("time").lt(ts(20))),
            col("host").eq(lit("a")),
        ];
        assert_eq!(
            TimeBounds::from_filters(&filters),
            TimeBounds { min: 10, max: 19 }
        );
        let flipped = vec![ts(5).lt(col("time"))];
        assert_eq!(TimeBounds::from_filters(&flipped).min, 6);
    }
}
