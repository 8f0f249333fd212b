//! The write-ahead log: numbered segment files of checksummed records on local disk.
//!
//! Record layout: `[payload length: u32 LE][crc32 of sequence+payload: u32 LE]
//! [sequence: u64 LE][payload]`. Segments are named by the first sequence they may hold
//! (`00000000000000000001.wal`) so replay reads them in order, and a segment whose records
//! are all persisted to Parquet is deleted whole.
//!
//! Replay tells a torn tail from corruption: in the last segment, a record that runs past
//! the end of the file, or a bad checksum on the very last record, is what a crash in the
//! middle of an append leaves, and is cut off. A bad record with more data after it, or any
//! bad record in an older segment, is corruption: start-up stops and names file and offset.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Result, StorageError};

const HEADER_LEN: usize = 16;
/// Refuse absurd lengths on replay instead of allocating them.
const MAX_RECORD_LEN: u32 = 1 << 30;

/// One record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalRecord {
    pub sequence: u64,
    pub payload: Vec<u8>,
}

fn segment_name(first_sequence: u64) -> String {
    format!("{first_sequence:020}.wal")
}

fn checksum(sequence: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&sequence.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// Lists segment files in sequence order as (first sequence, path).
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))? {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(first) = name
            .strip_suffix(".wal")
            .and_then(|stem| stem.parse::<u64>().ok())
        {
            segments.push((first, path));
        }
    }
    segments.sort();
    Ok(segments)
}

/// Reads every intact record of the log in `dir`, truncating a torn tail in place.
pub fn replay(dir: &Path) -> Result<Vec<WalRecord>> {
    fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
    let segments = list_segments(dir)?;
    let mut records = Vec::new();
    for (i, (_, path)) in segments.iter().enumerate() {
        let is_last = i + 1 == segments.len();
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| StorageError::io(path, e))?;
        let mut offset = 0usize;
        while offset < bytes.len() {
            match decode_at(&bytes, offset) {
                Decoded::Record(record, next) => {
                    records.push(record);
                    offset = next;
                }
                Decoded::Torn(reason) if is_last => {
                    tracing::warn!(
                        file = %path.display(),
                        offset,
                        dropped_bytes = bytes.len() - offset,
                        "dropping torn WAL tail ({reason}); it was never acknowledged"
                    );
                    let file = OpenOptions::new()
                        .write(true)
                        .open(path)
                        .map_err(|e| StorageError::io(path, e))?;
                    file.set_len(offset as u64)
                        .and_then(|_| file.sync_all())
                        .map_err(|e| StorageError::io(path, e))?;
                    break;
                }
                Decoded::Torn(reason) | Decoded::Corrupt(reason) => {
                    return Err(StorageError::WalCorrupt {
                        file: path.clone(),
                        offset: offset as u64,
                        reason,
                    });
                }
            }
        }
    }
    Ok(records)
}

enum Decoded {
    Record(WalRecord, usize),
    /// What an interrupted append leaves at the end of the log.
    Torn(String),
    /// Damage that an interrupted append cannot explain.
    Corrupt(String),
}

fn decode_at(bytes: &[u8], offset: usize) -> Decoded {
    let rest = &bytes[offset..];
    if rest.len() < HEADER_LEN {
        return Decoded::Torn("incomplete record header".into());
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
    let mut seq_bytes = [0u8; 8];
    seq_bytes.copy_from_slice(&rest[8..16]);
    let sequence = u64::from_le_bytes(seq_bytes);
    if len == 0 && crc == 0 && sequence == 0 && rest.iter().all(|b| *b == 0) {
        return Decoded::Torn("zero-filled tail".into());
    }
    if len > MAX_RECORD_LEN {
        return Decoded::Corrupt(format!("record length {len} is impossible"));
    }
    let end = HEADER_LEN + len as usize;
    if rest.len() < end {
        return Decoded::Torn(format!(
            "record of {len} bytes is cut short at {} bytes",
            rest.len() - HEADER_LEN
        ));
    }
    let payload = &rest[HEADER_LEN..end];
    if checksum(sequence, payload) != crc {
        let reason = format!("checksum mismatch in record {sequence}");
        return if rest.len() == end {
            Decoded::Torn(reason)
        } else {
            Decoded::Corrupt(reason)
        };
    }
    Decoded::Record(
        WalRecord {
            sequence,
            payload: payload.to_vec(),
        },
        offset + end,
    )
}

/// Appends records to the current segment. Used from one thread only (the WAL writer).
pub struct WalWriter {
    dir: PathBuf,
    current: BufWriter<File>,
    current_path: PathBuf,
    current_first_sequence: u64,
    bytes_in_segment: u64,
}

impl WalWriter {
    /// Opens a new segment for records from `next_sequence` on.
    pub fn open(dir: &Path, next_sequence: u64) -> Result<Self> {
        fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
        let (current, current_path) = Self::create_segment(dir, next_sequence)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            current,
            current_path,
            current_first_sequence: next_sequence,
            bytes_in_segment: 0,
        })
    }

    fn create_segment(dir: &Path, first_sequence: u64) -> Result<(BufWriter<File>, PathBuf)> {
        let path = dir.join(segment_name(first_sequence));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| StorageError::io(&path, e))?;
        // Make the new file's directory entry durable before records in it are acknowledged.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StorageError::io(dir, e))?;
        Ok((BufWriter::with_capacity(1 << 20, file), path))
    }

    /// Buffers one record; call [`WalWriter::sync`] before acknowledging it.
    pub fn append(&mut self, sequence: u64, payload: &[u8]) -> Result<()> {
        self.append_parts(sequence, &[payload])
    }

    /// Buffers one record whose payload is `parts` concatenated, without joining them.
    pub fn append_parts(&mut self, sequence: u64, parts: &[&[u8]]) -> Result<()> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let len = u32::try_from(total)
            .ok()
            .filter(|l| *l <= MAX_RECORD_LEN)
            .ok_or(StorageError::RecordTooLarge(total))?;
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&sequence.to_le_bytes());
        for part in parts {
            hasher.update(part);
        }
        let mut header = [0u8; HEADER_LEN];
        header[0..4].copy_from_slice(&len.to_le_bytes());
        header[4..8].copy_from_slice(&hasher.finalize().to_le_bytes());
        header[8..16].copy_from_slice(&sequence.to_le_bytes());
        let path = &self.current_path;
        self.current
            .write_all(&header)
            .map_err(|e| StorageError::io(path, e))?;
        for part in parts {
            self.current
                .write_all(part)
                .map_err(|e| StorageError::io(path, e))?;
        }
        self.bytes_in_segment += (HEADER_LEN + total) as u64;
        Ok(())
    }

    /// Writes buffered records and fsyncs them (one fsync for a whole group).
    pub fn sync(&mut self) -> Result<()> {
        self.current
            .flush()
            .and_then(|_| self.current.get_ref().sync_data())
            .map_err(|e| StorageError::io(&self.current_path, e))
    }

    /// Closes the current segment and starts a new one at `next_sequence`.
    pub fn rotate(&mut self, next_sequence: u64) -> Result<()> {
        self.sync()?;
        if self.bytes_in_segment == 0 && self.current_first_sequence == next_sequence {
            return Ok(());
        }
        let (file, path) = Self::create_segment(&self.dir, next_sequence)?;
        self.current = file;
        self.current_path = path;
        self.current_first_sequence = next_sequence;
        self.bytes_in_segment = 0;
        Ok(())
    }

    /// Deletes the closed segments whose records all precede `next_unpersisted`.
    pub fn remove_segments_before(dir: &Path, next_unpersisted: u64) -> Result<usize> {
        let segments = list_segments(dir)?;
        let mut removed = 0;
        for (i, (_, path)) in segments.iter().enumerate() {
            // A segment ends where the next one starts.
            let Some((next_first, _)) = segments.get(i + 1) else {
                break;
            };
            if *next_first <= next_unpersisted {
                fs::remove_file(path).map_err(|e| StorageError::io(path, e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, records: &[(u64, &[u8])]) {
        let mut w = WalWriter::open(dir, records[0].0).expect("open");
        for (seq, payload) in records {
            w.append(*seq, payload).expect("append");
        }
        w.sync().expect("sync");
    }

    fn only_segment(dir: &Path) -> PathBuf {
        list_segments(dir).expect("list").remove(0).1
    }

    #[test]
    fn round_trip_and_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = WalWriter::open(dir.path(), 1).expect("open");
        w.append(1, b"one").expect("append");
        w.append(2, b"two").expect("append");
        w.rotate(3).expect("rotate");
        w.append(3, b"three").expect("append");
        w.sync().expect("sync");
        let records = replay(dir.path()).expect("replay");
        assert_eq!(records.len(), 3);
        assert_eq!(records[2].payload, b"three");
        assert_eq!(
            WalWriter::remove_segments_before(dir.path(), 3).expect("rm"),
            1
        );
        assert_eq!(replay(dir.path()).expect("replay").len(), 1);
    }

    #[test]
    fn torn_tail_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), &[(1, b"first record"), (2, b"second record")]);
        let path = only_segment(dir.path());
        let len = fs::metadata(&path).expect("meta").len();
        let f = OpenOptions::new().write(true).open(&path).expect("open");
        f.set_len(len - 5).expect("truncate");
        let records = replay(dir.path()).expect("replay");
        assert_eq!(records.len(), 1);
        // The file was cut back to the last whole record, so a second replay agrees.
        assert_eq!(replay(dir.path()).expect("replay").len(), 1);
    }

    #[test]
    fn corruption_before_the_tail_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), &[(1, b"first record"), (2, b"second record")]);
        let path = only_segment(dir.path());
        let mut bytes = fs::read(&path).expect("read");
        bytes[HEADER_LEN + 2] ^= 0xff; // flip a byte in the first payload
        fs::write(&path, &bytes).expect("write");
        let err = replay(dir.path()).expect_err("corrupt");
        let msg = err.to_string();
        assert!(msg.contains("offset 0"), "{msg}");
        assert!(msg.contains(".wal"), "{msg}");
    }
}
