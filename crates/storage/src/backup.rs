//! The engine's side of a backup: a consistent snapshot of a running server whose files
//! stay readable while a client copies them.
//!
//! [`Engine::begin_backup`] persists the write buffer (so every write acknowledged before
//! the backup began is in a Parquet file and the snapshot needs no WAL), takes the catalog
//! as it is at that instant, and *pins* the files it names under a lease: compaction,
//! deletes and retention may still replace them in the catalog, but the objects are only
//! deleted once no lease pins them. A lease ends when the client says so
//! ([`Engine::end_backup`]) or after [`LEASE_IDLE`] without a request, so an interrupted
//! backup does not keep files forever. Writes go on throughout.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::engine::Engine;
use crate::error::Result;

/// A lease not used for this long ends by itself.
pub const LEASE_IDLE: Duration = Duration::from_secs(600);

/// What a backup copies: the catalog and the files it names.
#[derive(Debug, Clone)]
pub struct BackupSnapshot {
    /// Names the lease in later requests.
    pub lease: u64,
    /// The catalog, as saved in `_catalog/catalog.json`.
    pub catalog_json: Vec<u8>,
    /// Every Parquet file the catalog names: (path in the object store, size in bytes).
    pub files: Vec<(String, u64)>,
}

/// Files pinned by running backups, and deletions waiting for them.
#[derive(Debug, Default)]
pub(crate) struct Pins {
    next_lease: u64,
    leases: HashMap<u64, Lease>,
    /// Files the catalog no longer names but a lease still pins.
    deferred: HashSet<String>,
}

#[derive(Debug)]
struct Lease {
    files: HashSet<String>,
    last_used: Instant,
}

impl Pins {
    /// Ends leases idle for longer than [`LEASE_IDLE`].
    fn expire(&mut self) {
        let now = Instant::now();
        self.leases
            .retain(|_, lease| now.duration_since(lease.last_used) < LEASE_IDLE);
    }

    fn pinned(&self, path: &str) -> bool {
        self.leases.values().any(|l| l.files.contains(path))
    }

    /// Splits `paths` into those that may be deleted now; the others wait for their lease.
    pub(crate) fn deletable<'a>(&mut self, paths: impl Iterator<Item = &'a str>) -> Vec<String> {
        self.expire();
        let mut now = Vec::new();
        for path in paths {
            if self.pinned(path) {
                self.deferred.insert(path.to_string());
            } else {
                now.push(path.to_string());
            }
        }
        now
    }

    /// Deferred files no lease pins any more.
    pub(crate) fn released(&mut self) -> Vec<String> {
        self.expire();
        let free: Vec<String> = self
            .deferred
            .iter()
            .filter(|p| !self.pinned(p))
            .cloned()
            .collect();
        for path in &free {
            self.deferred.remove(path);
        }
        free
    }
}

impl Engine {
    /// Starts a backup: persists the buffer, snapshots the catalog and pins its files.
    pub async fn begin_backup(&self) -> Result<BackupSnapshot> {
        self.persist().await?;
        let snapshot = self.catalog().snapshot();
        let files: Vec<(String, u64)> = snapshot
            .databases
            .values()
            .flat_map(|db| db.tables.values())
            .flat_map(|t| t.files.iter().map(|f| (f.path.clone(), f.size_bytes)))
            .collect();
        let catalog_json = serde_json::to_vec_pretty(&*snapshot)
            .map_err(|e| crate::error::StorageError::Arrow(format!("catalog snapshot: {e}")))?;
        let mut pins = self.pins().lock();
        pins.expire();
        pins.next_lease += 1;
        let lease = pins.next_lease;
        pins.leases.insert(
            lease,
            Lease {
                files: files.iter().map(|(p, _)| p.clone()).collect(),
                last_used: Instant::now(),
            },
        );
        tracing::info!(lease, files = files.len(), "backup started");
        Ok(BackupSnapshot {
            lease,
            catalog_json,
            files,
        })
    }

    /// Whether `lease` is running and pins `path`; keeps the lease alive.
    pub fn backup_pins(&self, lease: u64, path: &str) -> bool {
        let mut pins = self.pins().lock();
        pins.expire();
        match pins.leases.get_mut(&lease) {
            Some(l) => {
                l.last_used = Instant::now();
                l.files.contains(path)
            }
            None => false,
        }
    }

    /// Ends a backup's lease and deletes the files that only it kept. False if there was
    /// no such lease (it ended or expired).
    pub async fn end_backup(&self, lease: u64) -> bool {
        let (existed, free) = {
            let mut pins = self.pins().lock();
            let existed = pins.leases.remove(&lease).is_some();
            (existed, pins.released())
        };
        if !free.is_empty() {
            self.delete_files(free.iter().map(String::as_str), "a file kept for a backup")
                .await;
        }
        tracing::info!(lease, "backup ended");
        existed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_files_wait_for_their_lease() {
        let mut pins = Pins::default();
        pins.leases.insert(
            1,
            Lease {
                files: ["a".to_string()].into(),
                last_used: Instant::now(),
            },
        );
        assert_eq!(
            pins.deletable(["a", "b"].into_iter()),
            vec!["b".to_string()]
        );
        assert!(pins.released().is_empty());
        pins.leases.clear();
        assert_eq!(pins.released(), vec!["a".to_string()]);
        assert!(pins.released().is_empty());
    }
}
