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

/// `pg_get_indexdef(index [, column, pretty])`: always NULL, chronosdb has no indexes
/// (SQLAlchemy's index reflection selects it, over no rows).
pub fn pg_get_indexdef_udf() -> ScalarUDF {
    use datafusion::logical_expr::{Signature, SimpleScalarUDF, TypeSignature};
    let signature = Signature::one_of(
        vec![TypeSignature::Any(1), TypeSignature::Any(3)],
        Volatility::Stable,
    );
    ScalarUDF::from(SimpleScalarUDF::new_with_signature(
        "pg_get_indexdef",
        signature,
        DataType::Utf8,
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))),
    ))
}

/// The value `current_setting(name)` gives: the server's defaults (a session's own `SET`s
/// are answered by `SHOW`).
pub fn setting(name: &str) -> Option<String> {
    let value = match name.to_ascii_lowercase().as_str() {
        "server_version" => POSTGRES_VERSION.to_string(),
        "server_version_num" => {
            let (major, minor) = POSTGRES_VERSION
                .split_once('.')
                .unwrap_or((POSTGRES_VERSION, "0"));
            format!("{major}{:04}", minor.parse::<u32>().unwrap_or(0))
        }
        "server_encoding" | "client_encoding" => "UTF8".into(),
        "timezone" | "log_timezone" => "UTC".into(),
        "datestyle" => "ISO, MDY".into(),
        "intervalstyle" => "postgres".into(),
        "search_path" => "public".into(),
        "standard_conforming_strings" | "integer_datetimes" => "on".into(),
        "default_transaction_read_only" | "transaction_read_only" | "in_hot_standby" => {
            "off".into()
        }
        "transaction_isolation" | "default_transaction_isolation" => "read committed".into(),
        "max_identifier_length" => "63".into(),
        "max_index_keys" => "32".into(),
        "statement_timeout" | "lock_timeout" | "idle_in_transaction_session_timeout" => "0".into(),
        "application_name" => String::new(),
        "block_size" => "8192".into(),
        "default_table_access_method" => "heap".into(),
        "lc_collate" | "lc_ctype" | "lc_messages" | "lc_monetary" | "lc_numeric" | "lc_time" => {
            "C.UTF-8".into()
        }
        _ => return None,
    };
    Some(value)
}

/// `current_setting(name [, missing_ok])`: Grafana reads `server_version_num` with it.
pub fn current_setting_udf() -> ScalarUDF {
    use datafusion::arrow::array::{Array, AsArray, StringArray};
    use datafusion::common::exec_err;
    let lookup = |name: &str, missing_ok: bool| match setting(name) {
        Some(value) => Ok(Some(value)),
        None if missing_ok => Ok(None),
        None => exec_err!("unrecognized configuration parameter \"{name}\""),
    };
    let implementation = move |args: &[ColumnarValue]| {
        let missing_ok = matches!(
            args.get(1),
            Some(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))
        );
        Ok(match &args[0] {
            ColumnarValue::Scalar(value) => ColumnarValue::Scalar(ScalarValue::Utf8(match value {
                ScalarValue::Utf8(Some(s))
                | ScalarValue::LargeUtf8(Some(s))
                | ScalarValue::Utf8View(Some(s)) => lookup(s, missing_ok)?,
                _ => None,
            })),
            ColumnarValue::Array(array) => {
                let names = datafusion::arrow::compute::cast(array, &DataType::Utf8)?;
                let names = names.as_string::<i32>();
                let mut values = Vec::with_capacity(names.len());
                for i in 0..names.len() {
                    values.push(match names.is_valid(i) {
                        true => lookup(names.value(i), missing_ok)?,
                        false => None,
                    });
                }
                ColumnarValue::Array(Arc::new(StringArray::from(values)))
            }
        })
    };
    use datafusion::logical_expr::{Signature, SimpleScalarUDF, TypeSignature};
    let signature = Signature::one_of(
        vec![
            TypeSignature::Exact(vec![DataType::Utf8]),
            TypeSignature::Exact(vec![DataType::Utf8, DataType::Boolean]),
        ],
        Volatility::Stable,
    );
    ScalarUDF::from(SimpleScalarUDF::new_with_signature(
        "current_setting",
        signature,
        DataType::Utf8,
        Arc::new(implementation),
    ))
}

/// `pg_is_in_recovery()`: false, chronosdb has no standbys (Metabase and pgAdmin ask).
pub fn pg_is_in_recovery_udf() -> ScalarUDF {
    create_udf(
        "pg_is_in_recovery",
        vec![],
        DataType::Boolean,
        Volatility::Stable,
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(false))))),
    )
}

/// `json_build_object(key, value, …)`: a JSON object as text (SQLAlchemy's column
/// reflection builds its identity and collation details with it).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonBuildObject {
    signature: datafusion::logical_expr::Signature,
}

impl Default for JsonBuildObject {
    fn default() -> Self {
        Self {
            signature: datafusion::logical_expr::Signature::variadic_any(Volatility::Immutable),
        }
    }
}

fn json_value(value: &ScalarValue) -> String {
    if value.is_null() {
        return "null".into();
    }
    match value {
        ScalarValue::Boolean(Some(b)) => b.to_string(),
        ScalarValue::Int8(_)
        | ScalarValue::Int16(_)
        | ScalarValue::Int32(_)
        | ScalarValue::Int64(_)
        | ScalarValue::UInt8(_)
        | ScalarValue::UInt16(_)
        | ScalarValue::UInt32(_)
        | ScalarValue::UInt64(_)
        | ScalarValue::Float32(_)
        | ScalarValue::Float64(_) => value.to_string(),
        other => {
            let text = other.to_string();
            let mut quoted = String::with_capacity(text.len() + 2);
            quoted.push('"');
            for c in text.chars() {
                match c {
                    '"' => quoted.push_str("\\\""),
                    '\\' => quoted.push_str("\\\\"),
                    '\n' => quoted.push_str("\\n"),
                    c if (c as u32) < 0x20 => quoted.push_str(&format!("\\u{:04x}", c as u32)),
                    c => quoted.push(c),
                }
            }
            quoted.push('"');
            quoted
        }
    }
}

impl datafusion::logical_expr::ScalarUDFImpl for JsonBuildObject {
    fn name(&self) -> &str {
        "json_build_object"
    }

    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        use datafusion::arrow::array::StringArray;
        if !args.args.len().is_multiple_of(2) {
            return datafusion::common::exec_err!(
                "json_build_object takes key/value pairs: an even number of arguments"
            );
        }
        let rows = args.number_rows;
        let arrays: Vec<_> = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<datafusion::common::Result<_>>()?;
        let mut objects = Vec::with_capacity(rows);
        for row in 0..rows {
            let mut object = String::from("{");
            for (i, pair) in arrays.chunks(2).enumerate() {
                if i > 0 {
                    object.push_str(", ");
                }
                let key = ScalarValue::try_from_array(&pair[0], row)?;
                let value = ScalarValue::try_from_array(&pair[1], row)?;
                let key = if key.is_null() {
                    "null".to_string()
                } else {
                    key.to_string()
                };
                object.push_str(&json_value(&ScalarValue::Utf8(Some(key))));
                object.push_str(" : ");
                object.push_str(&json_value(&value));
            }
            object.push('}');
            objects.push(object);
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(objects))))
    }
}

/// `pg_collation_is_visible(oid)`: true, chronosdb has one schema search path.
pub fn pg_collation_is_visible_udf() -> ScalarUDF {
    create_udf(
        "pg_collation_is_visible",
        vec![DataType::Int64],
        DataType::Boolean,
        Volatility::Stable,
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))),
    )
}
