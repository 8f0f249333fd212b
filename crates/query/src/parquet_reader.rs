//! Parquet readers whose cached metadata includes the page index.
//!
//! DataFusion's `CachedParquetFileReaderFactory` caches a file's footer, but its opener asks
//! for the footer *without* the page index and then decodes the page index itself on every
//! query, without caching it. chronosdb's files are immutable and small-paged, so the page
//! index is what makes a one-series query cheap: decoding it per query cost more than the
//! rest of opening the file. This factory asks for the page index when the footer is first
//! read, so it is decoded once and kept in the session's metadata cache with the footer.
//!
//! On a local data directory, small reads (a one-series query reads a few pages) are made
//! directly with `pread` on the query's thread: the object store's local backend moves
//! every read to tokio's blocking pool, and handing a few kilobytes to another thread
//! and back cost more than reading them from the page cache. Large reads still go
//! through the object store.

use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use chronosdb_catalog::ParquetFile;
use datafusion::catalog::Session;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::ParquetFileReaderFactory;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::parquet::arrow::arrow_reader::ArrowReaderOptions;
use datafusion::parquet::arrow::async_reader::AsyncFileReader;
use datafusion::parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::future::BoxFuture;

use crate::table::STORE_URL;

/// The reader factory of every chronosdb Parquet scan in `state`: footers and page
/// indexes cached in the runtime's metadata cache, small local reads made directly.
pub(crate) fn reader_factory(
    state: &dyn Session,
) -> datafusion::common::Result<PageIndexCachingReaderFactory> {
    let runtime = state.runtime_env();
    let store_url = ObjectStoreUrl::parse(STORE_URL)?;
    Ok(PageIndexCachingReaderFactory::new(
        CachedParquetFileReaderFactory::new(
            runtime.object_store(&store_url)?,
            runtime.cache_manager.get_file_metadata_cache(),
        ),
        state.config().get_extension::<LocalFiles>(),
    ))
}

/// The footer and page index of `file`, from the metadata cache or read (and cached, so
/// a scan of the file that follows finds it there).
pub(crate) async fn file_metadata(
    state: &dyn Session,
    file: &ParquetFile,
) -> datafusion::common::Result<Arc<ParquetMetaData>> {
    let mut reader = reader_factory(state)?.create_reader(
        0,
        PartitionedFile::new(file.path.clone(), file.size_bytes),
        None,
        &ExecutionPlanMetricsSet::new(),
    )?;
    Ok(reader.get_metadata(None).await?)
}

/// Reads up to this many bytes in one call are made directly from a local file.
const DIRECT_READ_BYTES: u64 = 1024 * 1024;

/// The local directory the object store keeps its files in, as a session extension
/// (absent for remote stores).
#[derive(Debug)]
pub struct LocalFiles {
    pub root: PathBuf,
}

/// Creates readers that load (and cache) the page index together with the footer.
#[derive(Debug)]
pub(crate) struct PageIndexCachingReaderFactory {
    inner: CachedParquetFileReaderFactory,
    local: Option<Arc<LocalFiles>>,
}

impl PageIndexCachingReaderFactory {
    pub(crate) fn new(
        inner: CachedParquetFileReaderFactory,
        local: Option<Arc<LocalFiles>>,
    ) -> Self {
        Self { inner, local }
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
        let path = self.local.as_ref().map(|local| {
            local
                .root
                .join(partitioned_file.object_meta.location.as_ref())
        });
        let inner = self.inner.create_reader(
            partition_index,
            partitioned_file,
            metadata_size_hint,
            metrics,
        )?;
        Ok(Box::new(PageIndexCachingReader {
            inner,
            path,
            file: None,
        }))
    }
}

/// Forwards reads (small ones of local files made directly); asks for the page index
/// whenever metadata is requested.
struct PageIndexCachingReader {
    inner: Box<dyn AsyncFileReader + Send>,
    /// The file on local disk, if the store is a local directory.
    path: Option<PathBuf>,
    /// The file, once a direct read opened it.
    file: Option<std::fs::File>,
}

impl PageIndexCachingReader {
    /// `ranges` read from the local file, if there is one and they are small.
    fn read_directly(
        &mut self,
        ranges: &[Range<u64>],
    ) -> Option<datafusion::parquet::errors::Result<Vec<Bytes>>> {
        let path = self.path.as_deref()?;
        let total: u64 = ranges.iter().map(|r| r.end.saturating_sub(r.start)).sum();
        if total > DIRECT_READ_BYTES {
            return None;
        }
        Some(read_ranges(&mut self.file, path, ranges).map_err(|e| {
            datafusion::parquet::errors::ParquetError::External(Box::new(std::io::Error::new(
                e.kind(),
                format!("reading {}: {e}", path.display()),
            )))
        }))
    }
}

/// `ranges` of the file at `path` (opened into `file` on first use).
fn read_ranges(
    file: &mut Option<std::fs::File>,
    path: &Path,
    ranges: &[Range<u64>],
) -> std::io::Result<Vec<Bytes>> {
    if file.is_none() {
        *file = Some(std::fs::File::open(path)?);
    }
    let Some(file) = file.as_ref() else {
        return Err(std::io::ErrorKind::NotFound.into());
    };
    ranges
        .iter()
        .map(|range| {
            let len = usize::try_from(range.end.saturating_sub(range.start))
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
            let mut buffer = vec![0u8; len];
            file.read_exact_at(&mut buffer, range.start)?;
            Ok(Bytes::from(buffer))
        })
        .collect()
}

impl AsyncFileReader for PageIndexCachingReader {
    fn get_bytes(
        &mut self,
        range: Range<u64>,
    ) -> BoxFuture<'_, datafusion::parquet::errors::Result<Bytes>> {
        match self.read_directly(std::slice::from_ref(&range)) {
            Some(read) => Box::pin(async move { read.map(|mut v| v.remove(0)) }),
            None => self.inner.get_bytes(range),
        }
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, datafusion::parquet::errors::Result<Vec<Bytes>>> {
        match self.read_directly(&ranges) {
            Some(read) => Box::pin(async move { read }),
            None => self.inner.get_byte_ranges(ranges),
        }
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
