//! The payload of a WAL record: a write request as received, minus nothing.
//!
//! Storing the request body (decompressed) rather than encoded rows keeps the hot path to
//! one memcpy; replay runs the same parse-and-validate code as the live write, skipping the
//! lines the live write refused, so it rebuilds exactly what was acknowledged.
//!
//! Layout: `[version u8 = 1][db len u16][db][precision u8][default time i64]
//! [skipped count u32][skipped line numbers u32…][body…]`, little-endian.

use chronosdb_line_protocol::Precision;

const VERSION: u8 = 1;

/// One logged write request.
#[derive(Debug, Clone, PartialEq)]
pub struct WalPayload<'a> {
    pub database: String,
    pub precision: Precision,
    /// Timestamp (ns) given to lines without one.
    pub default_time: i64,
    /// Line numbers the live write refused.
    pub skipped_lines: Vec<u32>,
    pub body: &'a [u8],
}

fn precision_code(p: Precision) -> u8 {
    match p {
        Precision::Nanosecond => 0,
        Precision::Microsecond => 1,
        Precision::Millisecond => 2,
        Precision::Second => 3,
        Precision::Minute => 4,
        Precision::Hour => 5,
    }
}

fn precision_from_code(code: u8) -> Option<Precision> {
    Some(match code {
        0 => Precision::Nanosecond,
        1 => Precision::Microsecond,
        2 => Precision::Millisecond,
        3 => Precision::Second,
        4 => Precision::Minute,
        5 => Precision::Hour,
        _ => return None,
    })
}

impl<'a> WalPayload<'a> {
    /// Everything but the body; the record is this header followed by the body.
    pub fn encode_header(&self) -> Vec<u8> {
        let db = self.database.as_bytes();
        let mut out = Vec::with_capacity(16 + db.len() + self.skipped_lines.len() * 4);
        out.push(VERSION);
        out.extend_from_slice(&(db.len() as u16).to_le_bytes());
        out.extend_from_slice(db);
        out.push(precision_code(self.precision));
        out.extend_from_slice(&self.default_time.to_le_bytes());
        out.extend_from_slice(&(self.skipped_lines.len() as u32).to_le_bytes());
        for line in &self.skipped_lines {
            out.extend_from_slice(&line.to_le_bytes());
        }
        out
    }

    /// The whole payload in one buffer (the WAL writes header and body without joining).
    #[cfg(test)]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.encode_header();
        out.extend_from_slice(self.body);
        out
    }

    pub fn decode(bytes: &'a [u8]) -> Result<Self, String> {
        let mut r = Reader { bytes, pos: 0 };
        let version = r.take(1)?[0];
        if version != VERSION {
            return Err(format!("unknown WAL payload version {version}"));
        }
        let db_len = u16::from_le_bytes(r.array()?) as usize;
        let database = std::str::from_utf8(r.take(db_len)?)
            .map_err(|_| "database name is not UTF-8".to_string())?
            .to_string();
        let precision = precision_from_code(r.take(1)?[0]).ok_or("unknown precision code")?;
        let default_time = i64::from_le_bytes(r.array()?);
        let skipped = u32::from_le_bytes(r.array()?) as usize;
        let mut skipped_lines = Vec::with_capacity(skipped.min(1 << 20));
        for _ in 0..skipped {
            skipped_lines.push(u32::from_le_bytes(r.array()?));
        }
        Ok(Self {
            database,
            precision,
            default_time,
            skipped_lines,
            body: &bytes[r.pos..],
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.bytes.len());
        let end = end.ok_or_else(|| "payload is truncated".to_string())?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let p = WalPayload {
            database: "db".into(),
            precision: Precision::Millisecond,
            default_time: -7,
            skipped_lines: vec![2, 9],
            body: b"cpu v=1",
        };
        let bytes = p.encode();
        assert_eq!(WalPayload::decode(&bytes).expect("decode"), p);
        assert!(WalPayload::decode(&bytes[..5]).is_err());
    }
}
