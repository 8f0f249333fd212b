//! The rows of each Parquet file a scan reads, narrowed by the files' series indexes.
//!
//! Every file chronosdb writes carries a series index in its footer
//! (`chronosdb_storage::series_index`): the rows of each value of its leading tag, where
//! each series starts, and sampled times. A scan filtered on that tag (`host = 'a'`,
//! `host IN (…)`) or on time hands each file to DataFusion with the rows those filters
//! can match (a `ParquetRowSelection`), and leaves out files with none; the predicate
//! still decides row by row. When the filters say nothing else, those rows are already
//! narrower than what row-group statistics and the page index would leave, so that
//! pruning (which cost a one-series query a fifth of its time: statistics are turned into
//! arrays and compared for every row group of every file) is switched off for the scan.
//!
//! Indexes come from the engine (remembered when it wrote the file) or are read once from
//! the file's footer, which DataFusion's metadata cache then keeps for the scan. A file
//! without an index is read as before.

use std::sync::Arc;

use chronosdb_catalog::ParquetFile;
use chronosdb_storage::Engine;
use chronosdb_storage::series_index::{FileLayout, SeriesIndex};
use datafusion::catalog::Session;
use datafusion::common::{Result, ScalarValue};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::ParquetRowSelection;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use datafusion::parquet::arrow::arrow_reader::RowSelection;
use datafusion::parquet::file::metadata::ParquetMetaData;

use crate::table::{TimeBounds, is_time_bound};

/// The Parquet files of a scan, as DataFusion is to read them.
#[derive(Debug, Clone)]
pub(crate) struct ParquetScan {
    /// Each file, with the rows of it to read when its index narrowed them.
    pub files: Vec<PartitionedFile>,
    /// The files' rows and bytes in all (their statistics).
    pub rows: u64,
    pub bytes: u64,
    /// Whether row-group statistics and the page index may narrow the reads further
    /// (false when the selected rows already say all the filters can).
    pub prune: bool,
    /// Whether `rows` is exactly what the scan gives (false when a filter the statistics
    /// cannot see drops some, as the overlap windows of `chunk_merge` do).
    pub exact_rows: bool,
}

impl ParquetScan {
    /// `files` narrowed to what `filters` can match, given each file's layout (its series
    /// index, if it has one, and its schema, handed to the reader).
    pub fn narrowed(
        files: Vec<ParquetFile>,
        layouts: Vec<FileLayout>,
        filters: &[Expr],
    ) -> ParquetScan {
        let bounds = TimeBounds::from_filters(filters);
        let bounded = bounds.min != i64::MIN || bounds.max != i64::MAX;
        let mut scan = ParquetScan {
            files: Vec::with_capacity(files.len()),
            rows: 0,
            bytes: 0,
            prune: false,
            exact_rows: true,
        };
        for (file, layout) in files.into_iter().zip(layouts) {
            let mut partitioned = PartitionedFile::new(file.path.clone(), file.size_bytes)
                .with_arrow_schema(layout.schema);
            match layout.index {
                Some(index) => {
                    scan.prune |= !filters.iter().all(|f| understood(f, index.tag()));
                    let values = tag_values(filters, index.tag());
                    if values.is_some() || bounded {
                        let rows = index.rows(values.as_deref(), bounds.min, bounds.max);
                        if rows.is_empty() {
                            continue;
                        }
                        let all = rows.len() == 1 && rows[0] == (0..index.row_count());
                        if !all {
                            let selection = RowSelection::from_consecutive_ranges(
                                rows.into_iter(),
                                index.row_count(),
                            );
                            partitioned =
                                partitioned.with_extension(ParquetRowSelection::new(selection));
                        }
                    }
                }
                None => scan.prune = true,
            }
            scan.rows += file.row_count;
            scan.bytes += file.size_bytes;
            scan.files.push(partitioned);
        }
        scan
    }
}

/// The rows of a file that a scan with `filters` reads at most, by its series index
/// (the index's rows for the filters' values of its tag and their time bounds); `None`
/// when the layout has no index.
pub(crate) fn indexed_rows(
    layout: &FileLayout,
    filters: &[Expr],
    bounds: &TimeBounds,
) -> Option<u64> {
    let index = layout.index.as_ref()?;
    let values = tag_values(filters, index.tag());
    let rows = index.rows(values.as_deref(), bounds.min, bounds.max);
    Some(rows.iter().map(|r| r.len() as u64).sum())
}

/// The layout of each of `files`, when the engine knows them all; `None` if one has to
/// be read from its file first ([`load_layouts`]).
pub(crate) fn known_layouts(engine: &Engine, files: &[ParquetFile]) -> Option<Vec<FileLayout>> {
    files.iter().map(|f| engine.layout_of(&f.path)).collect()
}

/// The layout of each of `files`: known to the engine, or read from the file's footer
/// (and remembered). A footer whose index cannot be used is logged and the file read
/// without one.
pub(crate) async fn load_layouts(
    engine: &Engine,
    state: &dyn Session,
    files: &[ParquetFile],
) -> Result<Vec<FileLayout>> {
    let mut layouts = Vec::with_capacity(files.len());
    for file in files {
        if let Some(known) = engine.layout_of(&file.path) {
            layouts.push(known);
            continue;
        }
        let metadata = crate::parquet_reader::file_metadata(state, file).await?;
        let index = footer_index(&metadata, &file.path).map(Arc::new);
        let layout = FileLayout::from_footer(index, metadata).map_err(crate::external)?;
        engine.remember_layout(file.path.clone(), layout.clone());
        layouts.push(layout);
    }
    Ok(layouts)
}

/// The index in a file's footer, if it has a usable one.
fn footer_index(metadata: &ParquetMetaData, path: &str) -> Option<SeriesIndex> {
    match SeriesIndex::from_footer(metadata) {
        Ok(index) => index,
        Err(error) => {
            tracing::warn!(path, %error, "not using a file's series index");
            None
        }
    }
}

/// The values `filters` allow for `tag` (`None`: any): equalities and `IN` lists, the
/// intersection when there are several.
pub(crate) fn tag_values(filters: &[Expr], tag: &str) -> Option<Vec<String>> {
    let mut allowed: Option<Vec<String>> = None;
    let mut narrow = |values: Vec<String>| {
        allowed = Some(match allowed.take() {
            None => values,
            Some(before) => before.into_iter().filter(|v| values.contains(v)).collect(),
        });
    };
    for filter in filters {
        for conjunct in conjuncts(filter) {
            if let Some(values) = tag_condition(conjunct, tag) {
                narrow(values);
            }
        }
    }
    allowed
}

fn conjuncts(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            let mut all = conjuncts(left);
            all.extend(conjuncts(right));
            all
        }
        other => vec![other],
    }
}

/// The values `expr` allows for `tag`, if it is `tag = 'v'` or `tag IN ('v', …)`.
fn tag_condition(expr: &Expr, tag: &str) -> Option<Vec<String>> {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => {
            let value = match (is_column(left, tag), is_column(right, tag)) {
                (true, false) => string_literal(right)?,
                (false, true) => string_literal(left)?,
                _ => return None,
            };
            Some(vec![value])
        }
        Expr::InList(list) if !list.negated && is_column(&list.expr, tag) => {
            list.list.iter().map(string_literal).collect()
        }
        _ => None,
    }
}

/// Whether `expr` is the column `name`, possibly cast to a string type.
fn is_column(expr: &Expr, name: &str) -> bool {
    match expr {
        Expr::Column(c) => c.name == name,
        Expr::Cast(cast) if cast.field.data_type().is_string() => is_column(&cast.expr, name),
        _ => false,
    }
}

fn string_literal(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Literal(value, _) => string_value(value),
        _ => None,
    }
}

fn string_value(value: &ScalarValue) -> Option<String> {
    match value {
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => Some(s.clone()),
        ScalarValue::Utf8View(Some(s)) => Some(s.clone()),
        ScalarValue::Dictionary(_, inner) => string_value(inner),
        _ => None,
    }
}

/// Whether the selected rows of a file led by `tag` account for all `expr` can prune:
/// it compares only `tag` (with `=` or `IN`) and `time` (with a time).
fn understood(expr: &Expr, tag: &str) -> bool {
    conjuncts(expr)
        .into_iter()
        .all(|e| is_time_bound(e) || tag_condition(e, tag).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    fn ts(v: i64) -> Expr {
        lit(ScalarValue::TimestampNanosecond(Some(v), None))
    }

    #[test]
    fn tag_values_come_from_equalities_and_in_lists() {
        let filters = vec![
            col("host").eq(lit("a")).and(col("time").gt_eq(ts(5))),
            col("host").in_list(vec![lit("a"), lit("b")], false),
        ];
        assert_eq!(tag_values(&filters, "host"), Some(vec!["a".to_string()]));
        assert_eq!(tag_values(&filters, "region"), None);
        let casted = vec![
            lit(ScalarValue::Dictionary(
                Box::new(datafusion::arrow::datatypes::DataType::Int32),
                Box::new(ScalarValue::from("x")),
            ))
            .eq(col("host")),
        ];
        assert_eq!(tag_values(&casted, "host"), Some(vec!["x".to_string()]));
        // A negated list or another operator says nothing about which rows to read.
        assert_eq!(
            tag_values(&[col("host").in_list(vec![lit("a")], true)], "host"),
            None
        );
        assert_eq!(tag_values(&[col("host").not_eq(lit("a"))], "host"), None);
    }

    #[test]
    fn only_tag_and_time_conditions_are_fully_understood() {
        let host = col("host").eq(lit("a"));
        let window = col("time").gt_eq(ts(1)).and(col("time").lt(ts(9)));
        assert!(understood(&host.clone().and(window.clone()), "host"));
        assert!(understood(&col("time").between(ts(1), ts(2)), "host"));
        assert!(!understood(&host, "region"));
        assert!(!understood(&col("usage").gt(lit(90.0)), "host"));
        assert!(!understood(&host.or(window), "host"));
    }
}
