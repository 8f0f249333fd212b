//! Shard routing: every point belongs to a shard keyed by (database, time partition,
//! series-hash bucket).
//!
//! Today one node owns every shard, so routing always answers "local"; the map is the
//! seam where the cluster's shard map (kept by the Raft-managed catalog) plugs in, and the
//! time partition is the same UTC day that names a Parquet file's directory.

use crate::persist::partition_start;

/// Identifies one shard.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardKey {
    pub database: String,
    /// Start of the time partition (ns, UTC day).
    pub partition_start: i64,
    /// Series-hash bucket within the partition.
    pub bucket: u32,
}

/// Which node owns a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardOwner {
    Local,
}

/// The shard map of this node.
#[derive(Debug, Clone)]
pub struct ShardMap {
    buckets_per_partition: u32,
}

impl ShardMap {
    /// One bucket per partition, all owned by this node.
    pub fn single_node() -> Self {
        Self {
            buckets_per_partition: 1,
        }
    }

    pub fn shard_for(&self, database: &str, time: i64, series_hash: u64) -> ShardKey {
        ShardKey {
            database: database.to_string(),
            partition_start: partition_start(time),
            bucket: (series_hash % u64::from(self.buckets_per_partition)) as u32,
        }
    }

    pub fn owner(&self, _shard: &ShardKey) -> ShardOwner {
        ShardOwner::Local
    }

    /// Confirms that every shard a batch spanning `[min_time, max_time]` touches is local.
    pub fn check_local(&self, database: &str, min_time: i64, max_time: i64) {
        for time in [min_time, max_time] {
            let shard = self.shard_for(database, time, 0);
            debug_assert_eq!(self.owner(&shard), ShardOwner::Local);
        }
    }
}
