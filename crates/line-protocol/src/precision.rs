//! Timestamp precisions of the write APIs and their conversion to nanoseconds.
//!
//! InfluxDB v1 spells them `n`, `u`, `ms`, `s`, `m`, `h`; v2 and v3 spell them `ns`, `us`,
//! `ms`, `s`. Both spellings are accepted everywhere so a client can never be refused for
//! using the other API's words.

use std::str::FromStr;

/// The unit of the timestamps in a write request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    Nanosecond,
    Microsecond,
    Millisecond,
    Second,
    Minute,
    Hour,
}

/// An unknown precision name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown precision {0:?}: use ns, us, ms, s (or v1's n, u, ms, s, m, h)")]
pub struct PrecisionError(pub String);

impl FromStr for Precision {
    type Err = PrecisionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "" | "n" | "ns" | "nanosecond" => Precision::Nanosecond,
            "u" | "us" | "µ" | "µs" | "microsecond" => Precision::Microsecond,
            "ms" | "millisecond" => Precision::Millisecond,
            "s" | "second" => Precision::Second,
            "m" | "minute" => Precision::Minute,
            "h" | "hour" => Precision::Hour,
            other => return Err(PrecisionError(other.to_string())),
        })
    }
}

impl Precision {
    /// Nanoseconds in one unit of this precision.
    pub fn nanos_per_unit(self) -> i64 {
        match self {
            Precision::Nanosecond => 1,
            Precision::Microsecond => 1_000,
            Precision::Millisecond => 1_000_000,
            Precision::Second => 1_000_000_000,
            Precision::Minute => 60_000_000_000,
            Precision::Hour => 3_600_000_000_000,
        }
    }

    /// Converts a timestamp in this precision to nanoseconds; `None` when it overflows.
    pub fn to_nanos(self, ts: i64) -> Option<i64> {
        ts.checked_mul(self.nanos_per_unit())
    }

    /// Truncates a nanosecond timestamp to this precision (server time for lines without one).
    pub fn truncate_nanos(self, ns: i64) -> i64 {
        let unit = self.nanos_per_unit();
        ns - ns.rem_euclid(unit)
    }
}
