//! The catalog: which databases, tables and columns exist, and which Parquet files hold
//! each table's persisted data.
//!
//! Every change is a [`CatalogOp`] applied to an immutable [`CatalogState`] snapshot
//! (copy-on-write behind an `Arc`). Readers take a snapshot without blocking writers, and
//! the op log is the seam a Raft state machine replicates when the catalog is clustered:
//! a replica that applies the same ops in the same order reaches the same state.

pub mod auth;
mod schema;
pub mod tokens;

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

pub use schema::{Column, ColumnKind, FieldType, TIME_COLUMN, TableSchema};

/// Errors of catalog changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("{table}.{column} is {existing}; this line writes it as {attempted}")]
    TypeConflict {
        table: String,
        column: String,
        existing: String,
        attempted: String,
    },
    #[error("invalid name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("database \"{0}\" does not exist")]
    DatabaseNotFound(String),
    #[error("database \"{0}\" already exists")]
    DatabaseExists(String),
    #[error("table \"{table}\" does not exist in database \"{database}\"")]
    TableNotFound { database: String, table: String },
    #[error("a retention period must be longer than zero")]
    InvalidRetention,
    #[error("invalid retention period {0:?}: use e.g. 30d, 12h, 4w, or none")]
    InvalidRetentionText(String),
    #[error("catalog file is unreadable: {0}")]
    Corrupt(String),
}

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// A persisted Parquet file of one table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParquetFile {
    pub id: u64,
    /// Path inside the object store.
    pub path: String,
    /// Start of the file's time partition (ns since the epoch, UTC day boundary).
    pub partition_start: i64,
    pub min_time: i64,
    pub max_time: i64,
    pub row_count: u64,
    pub size_bytes: u64,
    /// Where the file stands in write order, when that is not its id: a file made from
    /// older files (a compaction, or a rewrite by a delete) takes the newest of theirs, so
    /// a point written again later, in a file outside the merge, still wins over it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_order: Option<u64>,
}

impl ParquetFile {
    /// The file's place in write order: points in a later file replace the same points
    /// (same series and time) in an earlier one, field by field.
    pub fn write_order(&self) -> u64 {
        self.write_order.unwrap_or(self.id)
    }

    /// The key that sorts files into write order (files of one merge share a write
    /// order; their ids break the tie).
    pub fn write_position(&self) -> (u64, u64) {
        (self.write_order(), self.id)
    }
}

/// One table: its schema and its persisted files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableDef {
    pub schema: TableSchema,
    pub files: Vec<ParquetFile>,
}

/// One database: its tables by name, and the metadata users attached to them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DatabaseDef {
    pub tables: BTreeMap<String, Arc<TableDef>>,
    /// Key/value metadata, keyed by (table, series, key); a series is written as its tags,
    /// `host=a,region=eu` ("" for the table itself).
    #[serde(default, with = "metadata_entries")]
    pub metadata: BTreeMap<MetadataKey, String>,
    /// How long points are kept, in nanoseconds (`None`: forever). Older points disappear
    /// from queries at once and their files are deleted by whole partitions.
    #[serde(default)]
    pub retention_nanos: Option<i64>,
    /// Points older than this (ns) are gone for good: the cutoff of a retention period
    /// that was later lengthened or removed, so that what it hid never comes back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_before: Option<i64>,
}

impl DatabaseDef {
    /// The oldest time still kept at `now` (nanoseconds), if the database has a retention
    /// period.
    pub fn retention_cutoff(&self, now: i64) -> Option<i64> {
        let period = self.retention_nanos.map(|r| now.saturating_sub(r));
        match (period, self.hidden_before) {
            (Some(period), Some(hidden)) => Some(period.max(hidden)),
            (period, hidden) => period.or(hidden),
        }
    }
}

/// What a metadata value is attached to, and its name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MetadataKey {
    pub table: String,
    /// The series' tags as `k=v` pairs joined by commas; empty for the whole table.
    pub series: String,
    pub key: String,
}

/// JSON has no tuple keys: metadata is stored as a list of entries.
mod metadata_entries {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::MetadataKey;

    #[derive(Serialize, Deserialize)]
    struct Entry {
        #[serde(flatten)]
        key: MetadataKey,
        value: String,
    }

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<MetadataKey, String>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let entries: Vec<Entry> = map
            .iter()
            .map(|(key, value)| Entry {
                key: key.clone(),
                value: value.clone(),
            })
            .collect();
        entries.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<MetadataKey, String>, D::Error> {
        let entries = Vec::<Entry>::deserialize(d)?;
        Ok(entries.into_iter().map(|e| (e.key, e.value)).collect())
    }
}

/// The whole catalog at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CatalogState {
    pub databases: BTreeMap<String, Arc<DatabaseDef>>,
    /// Next id handed to a Parquet file.
    pub next_file_id: u64,
    /// Every WAL record up to and including this sequence number is in Parquet.
    pub persisted_wal_sequence: u64,
    /// Dropped databases and the last WAL sequence written before each drop: replay skips
    /// their older records. An entry is forgotten once the WAL is persisted past it.
    #[serde(default)]
    pub dropped_databases: BTreeMap<String, u64>,
    /// The same for dropped tables, by database and table.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dropped_tables: BTreeMap<String, BTreeMap<String, u64>>,
}

/// A change to the catalog; the unit of replication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CatalogOp {
    CreateDatabase {
        database: String,
    },
    /// Removes a database and its tables; WAL records up to `through_sequence` no longer
    /// belong to it (a database created again under the name starts empty).
    DropDatabase {
        database: String,
        through_sequence: u64,
    },
    /// Creates the table if needed and appends columns it does not have yet.
    AddColumns {
        database: String,
        table: String,
        columns: Vec<Column>,
    },
    AddFiles {
        database: String,
        table: String,
        files: Vec<ParquetFile>,
    },
    /// Sets (`Some`) or removes (`None`) one metadata value.
    SetMetadata {
        database: String,
        key: MetadataKey,
        value: Option<String>,
    },
    SetPersistedWalSequence {
        sequence: u64,
    },
    /// Removes a table, its files and its metadata; WAL records up to `through_sequence`
    /// no longer write to it.
    DropTable {
        database: String,
        table: String,
        #[serde(default)]
        through_sequence: u64,
    },
    /// Sets (`Some`, nanoseconds) or removes (`None`) a database's retention period.
    SetRetention {
        database: String,
        retention_nanos: Option<i64>,
    },
    /// Makes points older than `before` (ns) gone for good (see
    /// [`DatabaseDef::hidden_before`]); a later op never moves the bound back.
    HideOlderThan {
        database: String,
        before: i64,
    },
    /// Removes files from a table (their data is gone: expired, or rewritten elsewhere).
    /// Ids the table no longer has are ignored, so the op can be applied twice.
    RemoveFiles {
        database: String,
        table: String,
        file_ids: Vec<u64>,
    },
}

impl CatalogState {
    pub fn database(&self, name: &str) -> Option<&Arc<DatabaseDef>> {
        self.databases.get(name)
    }

    pub fn table(&self, database: &str, table: &str) -> Option<&Arc<TableDef>> {
        self.databases.get(database)?.tables.get(table)
    }

    /// Whether the WAL record `sequence` of `database` was written before the database
    /// was dropped (and so must not be replayed).
    pub fn dropped_before(&self, database: &str, sequence: u64) -> bool {
        self.dropped_databases
            .get(database)
            .is_some_and(|through| sequence <= *through)
    }

    /// Whether the WAL record `sequence`'s rows for `table` were written before the table
    /// was dropped (and so must not be replayed).
    pub fn table_dropped_before(&self, database: &str, table: &str, sequence: u64) -> bool {
        self.dropped_tables
            .get(database)
            .and_then(|tables| tables.get(table))
            .is_some_and(|through| sequence <= *through)
    }

    /// Applies one op in place. Fails without changing anything if the op conflicts.
    pub fn apply(&mut self, op: CatalogOp) -> Result<()> {
        match op {
            CatalogOp::CreateDatabase { database } => {
                validate_name(&database)?;
                self.databases.entry(database).or_default();
            }
            CatalogOp::DropDatabase {
                database,
                through_sequence,
            } => {
                if self.databases.remove(&database).is_none() {
                    return Err(CatalogError::DatabaseNotFound(database));
                }
                let through = self.dropped_databases.entry(database).or_default();
                *through = (*through).max(through_sequence);
            }
            CatalogOp::AddColumns {
                database,
                table,
                columns,
            } => {
                validate_name(&table)?;
                let db = self.databases.entry(database).or_default();
                let tables = &mut Arc::make_mut(db).tables;
                let existing = tables.get(&table);
                // Check every column before changing anything.
                if let Some(existing) = existing {
                    for column in &columns {
                        existing.schema.check_compatible(&table, column)?;
                    }
                }
                for column in &columns {
                    validate_name(&column.name)?;
                }
                let def = Arc::make_mut(tables.entry(table).or_default());
                for column in columns {
                    def.schema.add_column(column);
                }
            }
            CatalogOp::AddFiles {
                database,
                table,
                files,
            } => {
                let db = self
                    .databases
                    .get_mut(&database)
                    .ok_or_else(|| CatalogError::DatabaseNotFound(database.clone()))?;
                let def = Arc::make_mut(db).tables.get_mut(&table).ok_or_else(|| {
                    CatalogError::TableNotFound {
                        database: database.clone(),
                        table: table.clone(),
                    }
                })?;
                for file in &files {
                    self.next_file_id = self.next_file_id.max(file.id + 1);
                }
                Arc::make_mut(def).files.extend(files);
            }
            CatalogOp::SetMetadata {
                database,
                key,
                value,
            } => {
                let db = self
                    .databases
                    .get_mut(&database)
                    .ok_or_else(|| CatalogError::DatabaseNotFound(database.clone()))?;
                let db = Arc::make_mut(db);
                if !db.tables.contains_key(&key.table) {
                    return Err(CatalogError::TableNotFound {
                        database,
                        table: key.table,
                    });
                }
                match value {
                    Some(value) => {
                        db.metadata.insert(key, value);
                    }
                    None => {
                        db.metadata.remove(&key);
                    }
                }
            }
            CatalogOp::DropTable {
                database,
                table,
                through_sequence,
            } => {
                let db = self
                    .databases
                    .get_mut(&database)
                    .ok_or_else(|| CatalogError::DatabaseNotFound(database.clone()))?;
                let db = Arc::make_mut(db);
                if db.tables.remove(&table).is_none() {
                    return Err(CatalogError::TableNotFound { database, table });
                }
                db.metadata.retain(|key, _| key.table != table);
                if through_sequence > self.persisted_wal_sequence {
                    let through = self
                        .dropped_tables
                        .entry(database)
                        .or_default()
                        .entry(table)
                        .or_default();
                    *through = (*through).max(through_sequence);
                }
            }
            CatalogOp::SetRetention {
                database,
                retention_nanos,
            } => {
                if retention_nanos.is_some_and(|r| r <= 0) {
                    return Err(CatalogError::InvalidRetention);
                }
                let db = self
                    .databases
                    .get_mut(&database)
                    .ok_or(CatalogError::DatabaseNotFound(database))?;
                Arc::make_mut(db).retention_nanos = retention_nanos;
            }
            CatalogOp::HideOlderThan { database, before } => {
                let db = self
                    .databases
                    .get_mut(&database)
                    .ok_or(CatalogError::DatabaseNotFound(database))?;
                let db = Arc::make_mut(db);
                db.hidden_before = Some(db.hidden_before.map_or(before, |b| b.max(before)));
            }
            CatalogOp::RemoveFiles {
                database,
                table,
                file_ids,
            } => {
                let Some(db) = self.databases.get_mut(&database) else {
                    return Ok(());
                };
                if let Some(def) = Arc::make_mut(db).tables.get_mut(&table) {
                    Arc::make_mut(def)
                        .files
                        .retain(|f| !file_ids.contains(&f.id));
                }
            }
            CatalogOp::SetPersistedWalSequence { sequence } => {
                self.persisted_wal_sequence = self.persisted_wal_sequence.max(sequence);
                let persisted = self.persisted_wal_sequence;
                self.dropped_databases
                    .retain(|_, through| *through > persisted);
                for tables in self.dropped_tables.values_mut() {
                    tables.retain(|_, through| *through > persisted);
                }
                self.dropped_tables.retain(|_, tables| !tables.is_empty());
            }
        }
        Ok(())
    }
}

/// Seconds in a period written `90s`, `30m`, `12h`, `30d` or `4w` (token lifetimes,
/// retention periods); `None` if it is not one.
pub fn parse_period_seconds(period: &str) -> Option<i64> {
    let period = period.trim();
    let split = period
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(period.len());
    let (number, unit) = period.split_at(split);
    let n: i64 = number.parse().ok()?;
    let unit_seconds = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(unit_seconds)
}

/// A retention period (`30d`, `12h`, `4w`, …; `none` or `infinite` for none) in
/// nanoseconds.
pub fn parse_retention(period: &str) -> Result<Option<i64>> {
    let trimmed = period.trim();
    if ["none", "infinite", "inf", "0"]
        .iter()
        .any(|w| trimmed.eq_ignore_ascii_case(w))
    {
        return Ok(None);
    }
    parse_period_seconds(trimmed)
        .filter(|s| *s > 0)
        .and_then(|s| s.checked_mul(1_000_000_000))
        .map(Some)
        .ok_or_else(|| CatalogError::InvalidRetentionText(trimmed.chars().take(64).collect()))
}

/// A retention period as users write it: `30d`, `12h`, `90s`, … (the largest whole unit).
pub fn format_retention(nanos: i64) -> String {
    let seconds = nanos / 1_000_000_000;
    for (unit, size) in [("w", 7 * 86_400), ("d", 86_400), ("h", 3_600), ("m", 60)] {
        if seconds >= size && seconds % size == 0 {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

/// Names must be non-empty, printable and of a sane length.
pub fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "names cannot be empty"
    } else if name.len() > 255 {
        "names are at most 255 bytes"
    } else if name.chars().any(|c| c.is_control()) {
        "names cannot contain control characters"
    } else {
        return Ok(());
    };
    Err(CatalogError::InvalidName {
        name: name.chars().take(64).collect(),
        reason: reason.into(),
    })
}

/// The live catalog: a snapshot pointer swapped atomically on every change.
#[derive(Debug, Default)]
pub struct Catalog {
    state: Mutex<Arc<CatalogState>>,
}

impl Catalog {
    pub fn new(state: CatalogState) -> Self {
        Self {
            state: Mutex::new(Arc::new(state)),
        }
    }

    /// The current state; cheap (an `Arc` clone) and never blocks on I/O.
    pub fn snapshot(&self) -> Arc<CatalogState> {
        self.state.lock().clone()
    }

    /// Applies ops atomically: all of them, or none if one conflicts.
    pub fn apply(&self, ops: Vec<CatalogOp>) -> Result<Arc<CatalogState>> {
        let mut guard = self.state.lock();
        let mut next = CatalogState::clone(&guard);
        for op in ops {
            next.apply(op)?;
        }
        let next = Arc::new(next);
        *guard = next.clone();
        Ok(next)
    }

    /// Reserves `n` consecutive file ids.
    pub fn reserve_file_ids(&self, n: u64) -> u64 {
        let mut guard = self.state.lock();
        let mut next = CatalogState::clone(&guard);
        let first = next.next_file_id;
        next.next_file_id += n;
        *guard = Arc::new(next);
        first
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain maps, strings and integers cannot fail.
        serde_json::to_vec_pretty(&*self.snapshot()).unwrap_or_default()
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let state: CatalogState =
            serde_json::from_slice(bytes).map_err(|e| CatalogError::Corrupt(e.to_string()))?;
        Ok(Self::new(state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(table: &str, cols: Vec<Column>) -> CatalogOp {
        CatalogOp::AddColumns {
            database: "db".into(),
            table: table.into(),
            columns: cols,
        }
    }

    #[test]
    fn columns_accumulate_and_types_are_enforced() {
        let catalog = Catalog::default();
        catalog
            .apply(vec![add(
                "cpu",
                vec![
                    Column::tag("host"),
                    Column::field("usage", FieldType::Float),
                ],
            )])
            .expect("first schema");
        catalog
            .apply(vec![add(
                "cpu",
                vec![Column::field("count", FieldType::Integer)],
            )])
            .expect("new column");
        let err = catalog
            .apply(vec![add(
                "cpu",
                vec![Column::field("usage", FieldType::String)],
            )])
            .expect_err("type conflict");
        assert!(err.to_string().contains("usage"), "{err}");
        assert!(err.to_string().contains("float"), "{err}");
        let snap = catalog.snapshot();
        let names: Vec<_> = snap
            .table("db", "cpu")
            .expect("table")
            .schema
            .columns()
            .iter()
            .map(|c| c.name.clone())
            .collect();
        assert_eq!(names, vec!["time", "host", "usage", "count"]);
    }

    #[test]
    fn tag_and_field_names_cannot_collide() {
        let catalog = Catalog::default();
        catalog
            .apply(vec![add("cpu", vec![Column::tag("host")])])
            .expect("tag");
        assert!(
            catalog
                .apply(vec![add(
                    "cpu",
                    vec![Column::field("host", FieldType::Float)]
                )])
                .is_err()
        );
    }

    #[test]
    fn dropped_tables_mask_older_wal_records_until_persisted() {
        let catalog = Catalog::default();
        catalog
            .apply(vec![add("cpu", vec![Column::tag("host")])])
            .expect("table");
        catalog
            .apply(vec![CatalogOp::DropTable {
                database: "db".into(),
                table: "cpu".into(),
                through_sequence: 10,
            }])
            .expect("drop");
        let snap = catalog.snapshot();
        assert!(snap.table("db", "cpu").is_none());
        assert!(snap.table_dropped_before("db", "cpu", 10));
        assert!(!snap.table_dropped_before("db", "cpu", 11));
        assert!(!snap.table_dropped_before("db", "mem", 1));
        let back = Catalog::from_json(&catalog.to_json()).expect("parse");
        assert!(back.snapshot().table_dropped_before("db", "cpu", 10));
        catalog
            .apply(vec![CatalogOp::SetPersistedWalSequence { sequence: 10 }])
            .expect("persisted");
        assert!(catalog.snapshot().dropped_tables.is_empty());
    }

    #[test]
    fn dropped_databases_mask_older_wal_records() {
        let catalog = Catalog::default();
        catalog
            .apply(vec![add("cpu", vec![Column::tag("host")])])
            .expect("table");
        catalog
            .apply(vec![CatalogOp::DropDatabase {
                database: "db".into(),
                through_sequence: 10,
            }])
            .expect("drop");
        let snap = catalog.snapshot();
        assert!(snap.database("db").is_none());
        assert!(snap.dropped_before("db", 10) && !snap.dropped_before("db", 11));
        assert!(matches!(
            catalog.apply(vec![CatalogOp::DropDatabase {
                database: "db".into(),
                through_sequence: 12,
            }]),
            Err(CatalogError::DatabaseNotFound(_))
        ));
        // Once the WAL is persisted past the drop, the mark is no longer needed.
        catalog
            .apply(vec![CatalogOp::SetPersistedWalSequence { sequence: 10 }])
            .expect("persisted");
        assert!(catalog.snapshot().dropped_databases.is_empty());
    }

    #[test]
    fn json_round_trip() {
        let catalog = Catalog::default();
        catalog
            .apply(vec![
                add("cpu", vec![Column::tag("host")]),
                CatalogOp::AddFiles {
                    database: "db".into(),
                    table: "cpu".into(),
                    files: vec![ParquetFile {
                        id: 7,
                        path: "db/cpu/x.parquet".into(),
                        partition_start: 0,
                        min_time: 1,
                        max_time: 2,
                        row_count: 3,
                        size_bytes: 4,
                        write_order: Some(5),
                    }],
                },
            ])
            .expect("apply");
        let back = Catalog::from_json(&catalog.to_json()).expect("parse");
        assert_eq!(*back.snapshot(), *catalog.snapshot());
        assert_eq!(back.snapshot().next_file_id, 8);
    }

    #[test]
    fn retention_periods() {
        assert_eq!(
            parse_retention("30d"),
            Ok(Some(30 * 86_400 * 1_000_000_000))
        );
        assert_eq!(parse_retention(" none "), Ok(None));
        assert!(parse_retention("0s").is_err());
        assert!(parse_retention("soon").is_err());
        assert_eq!(format_retention(30 * 86_400 * 1_000_000_000), "30d");
        assert_eq!(format_retention(14 * 86_400 * 1_000_000_000), "2w");
        assert_eq!(format_retention(90 * 1_000_000_000), "90s");
        let mut state = CatalogState::default();
        state
            .apply(CatalogOp::CreateDatabase {
                database: "db".into(),
            })
            .expect("create");
        state
            .apply(CatalogOp::SetRetention {
                database: "db".into(),
                retention_nanos: Some(10),
            })
            .expect("retention");
        assert_eq!(state.databases["db"].retention_cutoff(100), Some(90));
        assert!(
            state
                .apply(CatalogOp::SetRetention {
                    database: "nope".into(),
                    retention_nanos: None,
                })
                .is_err()
        );
    }
}
