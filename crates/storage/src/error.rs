//! The storage crate's error type: every variant says what failed and where.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "WAL file {file} is corrupt at offset {offset}: {reason}; move the file away to start without it (its unpersisted writes are then lost)"
    )]
    WalCorrupt {
        file: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("a WAL record of {0} bytes is larger than the 1 GiB limit")]
    RecordTooLarge(usize),
    #[error("the WAL writer has stopped; the server is shutting down or its disk failed")]
    WalClosed,
    #[error("object store error: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("Arrow/Parquet error: {0}")]
    Arrow(String),
    #[error(transparent)]
    Catalog(#[from] chronosdb_catalog::CatalogError),
}

impl StorageError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        StorageError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl From<datafusion::arrow::error::ArrowError> for StorageError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        StorageError::Arrow(e.to_string())
    }
}

impl From<datafusion::parquet::errors::ParquetError> for StorageError {
    fn from(e: datafusion::parquet::errors::ParquetError) -> Self {
        StorageError::Arrow(e.to_string())
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;
