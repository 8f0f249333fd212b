//! `chronosdb backup` and `chronosdb restore`.
//!
//! A backup is taken from a running server over its HTTP API (`/api/v3/backup`, admin
//! token): the server persists its buffer, snapshots the catalog and pins the files it
//! names; this client copies every file its destination does not already hold, then
//! writes the manifest (catalog, token file, file list) — last, so a destination whose
//! `backup.json` exists holds a complete backup. Files are immutable and named by unique
//! id, so a file already at the destination with the same size is the same file: a second
//! backup to the same place copies only new files, and a backup that was interrupted
//! resumes where it stopped when run again.
//!
//! Destination layout: `files/<db>/<table>/<day>/<id>.parquet`, `snapshots/<time>.json`
//! (one manifest per backup) and `backup.json` (the latest). A restore copies a
//! manifest's files into an empty data directory's object store, the token file beside
//! it, and the catalog last; it too resumes when run again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use chronosdb_storage::crash_point;
use chronosdb_storage::engine::CATALOG_PATH;
use clap::Args;
use futures::TryStreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::ServerError;
use crate::admin::ServerConnection;
use crate::store;

/// The manifest of the latest backup at a destination.
const LATEST: &str = "backup.json";
/// Where the backup's copies of the Parquet files go.
const FILES: &str = "files";

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to keep the backup: a directory, `file:///path` or `s3://bucket[/prefix]`
    /// (credentials from the standard AWS_* variables).
    #[arg(long)]
    to: String,
    #[command(flatten)]
    server: ServerConnection,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup: a directory, `file:///path` or `s3://bucket[/prefix]`.
    #[arg(long)]
    from: String,
    /// The data directory to rebuild; it must not hold a database yet.
    #[arg(long, env = "CHRONOSDB_DATA_DIR")]
    data_dir: PathBuf,
    /// The object store the restored server will use, as for `serve` (default: under
    /// the data directory).
    #[arg(long, env = "CHRONOSDB_OBJECT_STORE")]
    object_store: Option<String>,
    /// Restore this snapshot (a name under `snapshots/`, e.g. `20261127T101500Z`) rather
    /// than the latest.
    #[arg(long)]
    snapshot: Option<String>,
}

/// A directory path or an object-store URL.
fn open_location(location: &str) -> Result<Arc<dyn ObjectStore>, ServerError> {
    if location.contains("://") {
        store::build(Some(location), Path::new("."))
    } else {
        store::local(Path::new(location))
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> ServerError {
    ServerError::Admin(format!("{what}: {e}"))
}

/// The objects under `prefix` and their sizes, by path relative to it.
async fn existing(
    store: &dyn ObjectStore,
    prefix: Option<&str>,
) -> Result<HashMap<String, u64>, ServerError> {
    let prefix_path = prefix.map(ObjectPath::from);
    let objects: Vec<object_store::ObjectMeta> = store
        .list(prefix_path.as_ref())
        .try_collect()
        .await
        .map_err(|e| failed("cannot list the destination", e))?;
    let strip = prefix.map(|p| format!("{p}/")).unwrap_or_default();
    Ok(objects
        .into_iter()
        .map(|o| {
            let path = o.location.to_string();
            (
                path.strip_prefix(&strip).unwrap_or(&path).to_string(),
                o.size,
            )
        })
        .collect())
}

fn progress(total_bytes: u64, files: usize, verb: &str) -> ProgressBar {
    let bar = ProgressBar::new(total_bytes);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("{verb} 0/{files} files"));
    bar
}

/// A file a manifest names.
#[derive(Debug, Clone)]
struct FileEntry {
    path: String,
    size: u64,
}

fn manifest_files(manifest: &serde_json::Value) -> Result<Vec<FileEntry>, ServerError> {
    let files = manifest["files"]
        .as_array()
        .ok_or_else(|| ServerError::Admin("the backup manifest lists no files".into()))?;
    files
        .iter()
        .map(|f| match (f["path"].as_str(), f["size"].as_u64()) {
            (Some(path), Some(size)) if !path.contains("..") => Ok(FileEntry {
                path: path.to_string(),
                size,
            }),
            _ => Err(ServerError::Admin(format!(
                "the backup manifest has a bad file entry: {f}"
            ))),
        })
        .collect()
}

/// `chronosdb backup --to …`
pub async fn backup(args: BackupArgs) -> Result<(), ServerError> {
    let destination = open_location(&args.to)?;
    let client = reqwest::Client::new();
    let endpoint = format!("{}/api/v3/backup", args.server.base_url());
    let snapshot = args
        .server
        .send(args.server.authorize(client.post(&endpoint)))
        .await?;
    let lease = snapshot["lease"]
        .as_u64()
        .ok_or_else(|| ServerError::Admin("the server's answer names no backup lease".into()))?;
    let result = copy_snapshot(&args, &client, &destination, &snapshot, lease).await;
    // End the lease either way, so the server can delete what it kept for this backup.
    let end = args
        .server
        .send(
            args.server
                .authorize(client.delete(&endpoint).query(&[("lease", lease)])),
        )
        .await;
    let summary = result?;
    end?;
    println!("{summary}");
    Ok(())
}

async fn copy_snapshot(
    args: &BackupArgs,
    client: &reqwest::Client,
    destination: &Arc<dyn ObjectStore>,
    snapshot: &serde_json::Value,
    lease: u64,
) -> Result<String, ServerError> {
    let files = manifest_files(snapshot)?;
    let present = existing(destination.as_ref(), Some(FILES)).await?;
    let (have, missing): (Vec<&FileEntry>, Vec<&FileEntry>) = files
        .iter()
        .partition(|f| present.get(&f.path) == Some(&f.size));
    let bytes: u64 = missing.iter().map(|f| f.size).sum();
    let bar = progress(bytes, missing.len(), "copying");
    let file_endpoint = format!("{}/api/v3/backup/file", args.server.base_url());
    for (n, file) in missing.iter().enumerate() {
        let request = client
            .get(&file_endpoint)
            .query(&[("lease", lease.to_string()), ("path", file.path.clone())]);
        let mut response = args
            .server
            .authorize(request)
            .send()
            .await
            .map_err(|e| failed(&format!("cannot fetch {}", file.path), e))?;
        if !response.status().is_success() {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            return Err(ServerError::Admin(format!(
                "cannot fetch {}: {status}: {text}",
                file.path
            )));
        }
        let mut content = Vec::with_capacity(file.size as usize);
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| failed(&format!("reading {}", file.path), e))?
        {
            bar.inc(chunk.len() as u64);
            content.extend_from_slice(&chunk);
        }
        if content.len() as u64 != file.size {
            return Err(ServerError::Admin(format!(
                "{} arrived with {} bytes, the catalog says {}",
                file.path,
                content.len(),
                file.size
            )));
        }
        destination
            .put(
                &ObjectPath::from(format!("{FILES}/{}", file.path)),
                PutPayload::from(content),
            )
            .await
            .map_err(|e| failed(&format!("cannot write {} to {}", file.path, args.to), e))?;
        bar.set_message(format!("copying {}/{} files", n + 1, missing.len()));
        crash_point("backup-file-copied");
    }
    bar.finish_and_clear();
    let created = now_stamps();
    let manifest = serde_json::json!({
        "format": 1,
        "created_at": created.0,
        "server": args.server.base_url(),
        "catalog": snapshot["catalog"],
        "tokens": snapshot["tokens"],
        "files": snapshot["files"],
    });
    let text = Bytes::from(serde_json::to_vec_pretty(&manifest).unwrap_or_default());
    for path in [format!("snapshots/{}.json", created.1), LATEST.to_string()] {
        destination
            .put(
                &ObjectPath::from(path.as_str()),
                PutPayload::from(text.clone()),
            )
            .await
            .map_err(|e| failed(&format!("cannot write {path} to {}", args.to), e))?;
    }
    Ok(format!(
        "backup {} complete: {} files; copied {} ({} bytes), {} already there; snapshot {}",
        args.to,
        files.len(),
        missing.len(),
        bytes,
        have.len(),
        created.1
    ))
}

/// Now as RFC 3339 and as a compact name for the snapshot file.
fn now_stamps() -> (String, String) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = nanos.div_euclid(86_400);
    let secs = nanos.rem_euclid(86_400);
    let date = chronosdb_storage::engine::civil_date(days);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    (
        format!("{date}T{h:02}:{m:02}:{s:02}Z"),
        format!("{}T{h:02}{m:02}{s:02}Z", date.replace('-', "")),
    )
}

/// `chronosdb restore --from … --data-dir …`
pub async fn restore(args: RestoreArgs) -> Result<(), ServerError> {
    let source = open_location(&args.from)?;
    let manifest_path = match &args.snapshot {
        Some(name) => format!("snapshots/{}.json", name.trim_end_matches(".json")),
        None => LATEST.to_string(),
    };
    let manifest = source
        .get(&ObjectPath::from(manifest_path.as_str()))
        .await
        .map_err(|e| match e {
            object_store::Error::NotFound { .. } => ServerError::Admin(format!(
                "{} holds no backup ({manifest_path} is missing): give the directory or URL `chronosdb backup --to` wrote",
                args.from
            )),
            e => failed(&format!("cannot read {manifest_path}"), e),
        })?
        .bytes()
        .await
        .map_err(|e| failed(&format!("cannot read {manifest_path}"), e))?;
    let manifest: serde_json::Value = serde_json::from_slice(&manifest)
        .map_err(|e| failed(&format!("{manifest_path} is not a backup manifest"), e))?;
    if !manifest["catalog"].is_object() {
        return Err(ServerError::Admin(format!(
            "{manifest_path} holds no catalog"
        )));
    }
    let files = manifest_files(&manifest)?;

    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| failed(&format!("cannot create {}", args.data_dir.display()), e))?;
    let wal = args.data_dir.join("wal");
    if std::fs::read_dir(&wal).is_ok_and(|mut d| d.next().is_some()) {
        return Err(ServerError::Admin(format!(
            "{} already has a WAL ({}): restore needs a new, empty data directory",
            args.data_dir.display(),
            wal.display()
        )));
    }
    let target = store::build(args.object_store.as_deref(), &args.data_dir)?;
    match target.head(&ObjectPath::from(CATALOG_PATH)).await {
        Ok(_) => {
            return Err(ServerError::Admin(format!(
                "{} already holds a database ({CATALOG_PATH} exists): restore needs a new, empty data directory",
                args.data_dir.display()
            )));
        }
        Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(failed("cannot check the target object store", e)),
    }

    // Files from an interrupted restore are kept (same path and size: the same file).
    let present = existing(target.as_ref(), None).await?;
    let (have, missing): (Vec<&FileEntry>, Vec<&FileEntry>) = files
        .iter()
        .partition(|f| present.get(&f.path) == Some(&f.size));
    let bytes: u64 = missing.iter().map(|f| f.size).sum();
    let bar = progress(bytes, missing.len(), "restoring");
    for (n, file) in missing.iter().enumerate() {
        let from = ObjectPath::from(format!("{FILES}/{}", file.path));
        let content = source
            .get(&from)
            .await
            .map_err(|e| failed(&format!("cannot read {from} from the backup"), e))?
            .bytes()
            .await
            .map_err(|e| failed(&format!("cannot read {from} from the backup"), e))?;
        if content.len() as u64 != file.size {
            return Err(ServerError::Admin(format!(
                "{from} in the backup has {} bytes, the manifest says {}: the backup is damaged",
                content.len(),
                file.size
            )));
        }
        bar.inc(content.len() as u64);
        target
            .put(
                &ObjectPath::from(file.path.as_str()),
                PutPayload::from(content),
            )
            .await
            .map_err(|e| failed(&format!("cannot write {}", file.path), e))?;
        bar.set_message(format!("restoring {}/{} files", n + 1, missing.len()));
        crash_point("restore-file-copied");
    }
    bar.finish_and_clear();

    let tokens_path = args.data_dir.join("tokens.json");
    if manifest["tokens"].is_object() && !tokens_path.exists() {
        write_private(
            &tokens_path,
            &serde_json::to_vec_pretty(&manifest["tokens"]).unwrap_or_default(),
        )?;
    }
    // The catalog last: until it exists the directory is not a database, and a second
    // run picks up where this one stopped.
    let catalog = serde_json::to_vec_pretty(&manifest["catalog"]).unwrap_or_default();
    target
        .put(&ObjectPath::from(CATALOG_PATH), PutPayload::from(catalog))
        .await
        .map_err(|e| failed("cannot write the catalog", e))?;
    let databases = manifest["catalog"]["databases"]
        .as_object()
        .map(|d| d.len())
        .unwrap_or(0);
    println!(
        "restored {} from {} into {}: {} databases, {} files; copied {} ({} bytes), {} already there. Start it with: chronosdb serve --data-dir {}",
        manifest["created_at"].as_str().unwrap_or("a backup"),
        args.from,
        args.data_dir.display(),
        databases,
        files.len(),
        missing.len(),
        bytes,
        have.len(),
        args.data_dir.display()
    );
    Ok(())
}

/// Writes a file only its owner can read (the token file holds token hashes).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ServerError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| failed(&format!("cannot write {}", path.display()), e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| failed(&format!("cannot write {}", path.display()), e))
}
