//! Parquet readers whose cached metadata includes the page index.
//!
//! DataFusion's `CachedParquetFileReaderFactory` caches a file's footer, but its opener asks
//! for the footer *without* the page index and then decodes the page index itself on every
//! query, without caching it. chronosdb's files are immutable and small-paged, so the page
//! index is what makes a one-series query cheap: decoding it per query cost more than the
//! rest of opening the file. This factory asks for the page index when the footer is first
//! read, so it is decoded once and kept in the session's metadata cache with the footer.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::ParquetFileReaderFactory;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::parquet::arrow::arrow_reader::ArrowReaderOptions;
use datafusion::parquet::arrow::async_reader::AsyncFileReader;
use datafusion::parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::future::BoxFuture;

/// Creates readers that load (and cache) the page index together with the footer.
#[derive(Debug)]
pub(crate) struct PageIndexCachingReaderFactory {
    inner: CachedParquetFileReaderFactory,
}

impl PageIndexCachingReaderFactory {
    pub(crate) fn new(inner: CachedParquetFileReaderFactory) -> Self {
        Self { inner }
    }
}

impl ParquetFileReaderFactory for PageIndexCachingReaderFactory {
    fn create_reader(
        &self,
        partition_index: usize,
        partitioned_file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> datafusion::common::Result<Box<dyn AsyncFileReader + Send>> {
        let inner = self.inner.create_reader(
            partition_index,
            partitioned_file,
            metadata_size_hint,
            metrics,
        )?;
        Ok(Box::new(PageIndexCachingReader { inner }))
    }
}

/// Forwards reads; asks for the page index whenever metadata is requested.
struct PageIndexCachingReader {
    inner: Box<dyn AsyncFileReader + Send>,
}

impl AsyncFileReader for PageIndexCachingReader {
    fn get_bytes(
        &mut self,
        range: Range<u64>,
    ) -> BoxFuture<'_, datafusion::parquet::errors::Result<Bytes>> {
        self.inner.get_bytes(range)
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, datafusion::parquet::errors::Result<Vec<Bytes>>> {
        self.inner.get_byte_ranges(ranges)
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, datafusion::parquet::errors::Result<Arc<ParquetMetaData>>> {
        // chronosdb files are not encrypted, so the caller's options carry nothing else the
        // inner reader would use.
        Box::pin(async move {
            let options =
                ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
            self.inner.get_metadata(Some(&options)).await
        })
    }
}
