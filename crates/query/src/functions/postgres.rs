//! Functions whose answers clients parse as PostgreSQL's.
//!
//! Drivers and ORMs read the server's version from `version()` and `SHOW server_version`
//! and refuse to start when it does not look like PostgreSQL's (SQLAlchemy fails outright
//! on DataFusion's "Apache DataFusion …"). chronosdb speaks the protocol and catalog of
//! PostgreSQL 16, so it says so first and names itself after.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};

/// The PostgreSQL version whose protocol and catalog chronosdb presents.
pub const POSTGRES_VERSION: &str = "16.6";

/// `version()`'s text: PostgreSQL's layout, so version parsers find `16.6`.
pub fn version_string() -> String {
    format!(
        "PostgreSQL {POSTGRES_VERSION} (chronosdb {}) on {}-{}, compiled by rustc, 64-bit",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        std::env::consts::OS,
    )
}

/// `version()`, replacing DataFusion's.
pub fn version_udf() -> ScalarUDF {
    let text = version_string();
    create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(text.clone()))))),
    )
}

/// The OIDs of the built-in types drivers look up by name (PostgreSQL's `pg_type.dat`).
const TYPE_OIDS: &[(&str, i32)] = &[
    ("bool", 16),
    ("boolean", 16),
    ("bytea", 17),
    ("char", 18),
    ("name", 19),
    ("int8", 20),
    ("bigint", 20),
    ("int2", 21),
    ("smallint", 21),
    ("int4", 23),
    ("integer", 23),
    ("int", 23),
    ("text", 25),
    ("oid", 26),
    ("json", 114),
    ("float4", 700),
    ("real", 700),
    ("float8", 701),
    ("double precision", 701),
    ("varchar", 1043),
    ("character varying", 1043),
    ("date", 1082),
    ("time", 1083),
    ("timestamp", 1114),
    ("timestamp without time zone", 1114),
    ("timestamptz", 1184),
    ("timestamp with time zone", 1184),
    ("interval", 1186),
    ("numeric", 1700),
    ("uuid", 2950),
    ("jsonb", 3802),
];

/// `to_regtype(name)`: the type's OID, or NULL for a type chronosdb does not have (psycopg
/// and SQLAlchemy probe for `hstore` this way on connect).
pub fn to_regtype_udf() -> ScalarUDF {
    use datafusion::arrow::array::{Array, AsArray, Int32Array};
    create_udf(
        "to_regtype",
        vec![DataType::Utf8],
        DataType::Int32,
        Volatility::Immutable,
        Arc::new(|args| {
            let lookup = |name: &str| {
                let name = name.trim().trim_matches('"').to_ascii_lowercase();
                let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
                TYPE_OIDS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, oid)| *oid)
            };
            Ok(match &args[0] {
                ColumnarValue::Scalar(value) => {
                    ColumnarValue::Scalar(ScalarValue::Int32(match value {
                        ScalarValue::Utf8(Some(s))
                        | ScalarValue::LargeUtf8(Some(s))
                        | ScalarValue::Utf8View(Some(s)) => lookup(s),
                        _ => None,
                    }))
                }
                ColumnarValue::Array(array) => {
                    let strings = datafusion::arrow::compute::cast(array, &DataType::Utf8)?;
                    let strings = strings.as_string::<i32>();
                    let oids: Int32Array = (0..strings.len())
                        .map(|i| {
                            strings
                                .is_valid(i)
                                .then(|| lookup(strings.value(i)))
                                .flatten()
                        })
                        .collect();
                    ColumnarValue::Array(Arc::new(oids))
                }
            })
        }),
    )
}

/// `pg_get_serial_sequence(table, column)`: always NULL, chronosdb has no sequences
/// (SQLAlchemy asks for every column it reflects).
pub fn pg_get_serial_sequence_udf() -> ScalarUDF {
    create_udf(
        "pg_get_serial_sequence",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))),
    )
}
