//! Builds the object store named by `--object-store`.

use std::path::Path;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;

use crate::ServerError;

/// `None` → `<data_dir>/objects`; `file:///p`, `memory://`, `s3://bucket[/prefix]`.
pub fn build(url: Option<&str>, data_dir: &Path) -> Result<Arc<dyn ObjectStore>, ServerError> {
    let Some(url) = url else {
        return local(&data_dir.join("objects"));
    };
    if url == "memory://" || url == "memory" {
        return Ok(Arc::new(InMemory::new()));
    }
    if let Some(path) = url.strip_prefix("file://") {
        return local(Path::new(path));
    }
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(ServerError::Config(format!(
                "object store URL {url:?} names no bucket"
            )));
        }
        let s3 = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| ServerError::Config(format!("cannot use {url}: {e}")))?;
        let prefix = prefix.trim_matches('/');
        return Ok(if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, prefix.to_string()))
        });
    }
    Err(ServerError::Config(format!(
        "unsupported object store {url:?}: use file:///path, memory:// or s3://bucket"
    )))
}

/// The local directory `build` keeps the files in, for the same arguments (`None` for
/// remote and in-memory stores).
pub fn local_root(url: Option<&str>, data_dir: &Path) -> Option<std::path::PathBuf> {
    match url {
        None => Some(data_dir.join("objects")),
        Some(url) => url.strip_prefix("file://").map(std::path::PathBuf::from),
    }
}

/// A local directory as an object store (created if missing).
pub fn local(dir: &Path) -> Result<Arc<dyn ObjectStore>, ServerError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| ServerError::Config(format!("cannot create {}: {e}", dir.display())))?;
    let store = LocalFileSystem::new_with_prefix(dir)
        .map_err(|e| ServerError::Config(format!("cannot use {}: {e}", dir.display())))?;
    Ok(Arc::new(store))
}
