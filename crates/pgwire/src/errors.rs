//! Maps engine errors onto PostgreSQL SQLSTATE codes.
//!
//! Drivers and tools branch on SQLSTATE (an ORM retries on one, a BI tool shows "table not
//! found" on another), so every DataFusion error leaves as the code PostgreSQL would send
//! for the same mistake, with DataFusion's message kept as the text.

use chronosdb_query::{ErrorKind, QueryError};
use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::parser::ParserError;
use pgwire::api::{ClientInfo, ErrorHandler};
use pgwire::error::{ErrorInfo, PgWireError};

pub struct SqlStateErrors;

impl ErrorHandler for SqlStateErrors {
    fn on_error<C>(&self, _client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        let PgWireError::ApiError(inner) = error else {
            return;
        };
        let (code, message) = if let Some(e) = inner.downcast_ref::<DataFusionError>() {
            (sqlstate(e), clean_message(e))
        } else if let Some(e) = inner.downcast_ref::<QueryError>() {
            let code = match (e, e.kind()) {
                (QueryError::DataFusion(e), _) => sqlstate(e),
                (_, ErrorKind::DatabaseNotFound) => "3D000",
                (_, ErrorKind::DatabaseExists) => "42P04",
                (_, ErrorKind::InvalidName) => "42602",
                (_, ErrorKind::InvalidValue) => "22023",
                (_, ErrorKind::TableNotFound) => "42P01",
                (_, ErrorKind::InUse) => "55006",
                (_, ErrorKind::TooComplex) => "54001",
                (_, ErrorKind::Other) => "XX000",
            };
            (code, e.to_string())
        } else if let Some(e) = inner.downcast_ref::<ParserError>() {
            (parser_sqlstate(e), inner.to_string())
        } else {
            ("XX000", inner.to_string())
        };
        let message = if code == "54001" && message.contains("ecursion limit") {
            "statement too complex: it nests parentheses, NOT, CASE or subqueries deeper than \
             the parser allows; flatten the expression or split the statement"
                .to_string()
        } else {
            message
        };
        tracing::debug!(code, %message, "query failed");
        *error = PgWireError::UserError(Box::new(ErrorInfo::new(
            "ERROR".into(),
            code.into(),
            message,
        )));
    }
}

/// A DataFusion error as pgwire carries it; [`SqlStateErrors`] gives it its SQLSTATE.
pub(crate) fn api_error(e: DataFusionError) -> PgWireError {
    PgWireError::ApiError(Box::new(e))
}

/// The SQLSTATE for a DataFusion error.
pub fn sqlstate(error: &DataFusionError) -> &'static str {
    let root = error.find_root();
    let text = root.to_string();
    match root {
        DataFusionError::SQL(e, _) => parser_sqlstate(e),
        DataFusionError::NotImplemented(msg) if msg.starts_with("Unsupported SQL type") => "42704",
        DataFusionError::NotImplemented(_) => "0A000",
        DataFusionError::SchemaError(..) => {
            if text.contains("Ambiguous reference") {
                "42702"
            } else if text.contains("No field named") || text.contains("not found") {
                "42703"
            } else {
                "42P01"
            }
        }
        DataFusionError::Plan(msg) => {
            if msg.contains("table") && msg.contains("not found") {
                "42P01"
            } else if msg.contains("Invalid function")
                || msg.contains("No function matches")
                || msg.contains("Cannot coerce arithmetic expression")
            {
                // PostgreSQL's "function/operator does not exist".
                "42883"
            } else if msg.contains("Cannot infer common")
                || msg.contains("Cannot coerce")
                || msg.contains("non-boolean predicate")
            {
                "42804"
            } else if msg.contains("must appear in the GROUP BY clause") {
                "42803"
            } else if msg.contains("Order by column out of bounds") {
                "42P10"
            } else if msg.contains("queries have different number of columns") {
                "42601"
            } else if msg.contains("Projections require unique expression names") {
                // Only reached inside a subquery; PostgreSQL allows the names and refuses
                // the reference to them as ambiguous.
                "42702"
            } else if msg.starts_with("LIMIT must be >= 0") {
                "2201W"
            } else if msg.starts_with("OFFSET must be >= 0") {
                "2201X"
            } else {
                "42000"
            }
        }
        // `checked_arithmetic`'s "bigint out of range", as PostgreSQL words it.
        DataFusionError::Execution(msg)
            if msg.ends_with(" out of range") || msg.starts_with("value out of range: ") =>
        {
            "22003"
        }
        DataFusionError::Execution(msg) if msg.ends_with("division by zero") => "22012",
        DataFusionError::Execution(msg)
            if msg.starts_with("Unsupported date_trunc granularity")
                || (msg.starts_with("Date part '") && msg.ends_with("not supported")) =>
        {
            "22023"
        }
        DataFusionError::Execution(msg) if msg.contains("square root of a negative number") => {
            "2201F"
        }
        DataFusionError::Execution(msg) if msg.contains("logarithm of ") => "2201E",
        DataFusionError::Execution(msg)
            if msg.starts_with("Scalar subquery returned more than one row") =>
        {
            "21000"
        }
        DataFusionError::ArrowError(e, _) => {
            let s = e.to_string();
            if s.contains("Divide by zero") {
                "22012"
            } else if s.contains("square root of a negative number") {
                // DataFusion's own check, wrapped by Arrow's compute kernel.
                "2201F"
            } else if cast_out_of_range(&s).is_some()
                || s.contains("Overflow")
                || s.contains("overflow")
                || integer_text_out_of_range(&s)
            {
                "22003"
            } else if date_field_out_of_range(&s) {
                "22008"
            } else if is_datetime_syntax(&s) || s.contains("syntax for type interval") {
                "22007"
            } else if s.contains("Cast error") || s.contains("Parser error") {
                "22P02"
            } else {
                "XX000"
            }
        }
        DataFusionError::ResourcesExhausted(_) => "53200",
        _ => "XX000",
    }
}

/// Whether an Arrow error says a string is not a date or timestamp (PostgreSQL's 22007
/// `invalid_datetime_format`, where other bad input is 22P02).
fn is_datetime_syntax(message: &str) -> bool {
    message.contains("Error parsing timestamp")
        || message.contains("to value of Date32 type")
        || message.contains("to value of Date64 type")
        || message.contains("to value of Timestamp(")
}

/// The string an Arrow cast error says it could not cast to `target` (`Cannot cast
/// string '…' to value of Int64 type`).
fn uncastable_string<'a>(message: &'a str, target: &str) -> Option<&'a str> {
    let (_, rest) = message.split_once("Cannot cast string '")?;
    let (value, rest) = rest.rsplit_once("' to value of ")?;
    rest.starts_with(target).then_some(value)
}

/// Whether an Arrow error refuses a string of digits as an integer: it is too large
/// (PostgreSQL's 22003 "value … is out of range for type bigint", not 22P02).
fn integer_text_out_of_range(message: &str) -> bool {
    ["Int16", "Int32", "Int64"].iter().any(|target| {
        uncastable_string(message, target).is_some_and(|value| {
            let digits = value.trim().trim_start_matches(['-', '+']);
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
        })
    })
}

/// Whether an Arrow error refuses a well-formed `YYYY-MM-DD` whose month or day does not
/// exist (PostgreSQL's 22008 "date/time field value out of range").
fn date_field_out_of_range(message: &str) -> bool {
    uncastable_string(message, "Date32").is_some_and(|value| {
        let parts: Vec<&str> = value.trim().split('-').collect();
        parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// sqlparser's nesting limit is PostgreSQL's stack-depth error; anything else a syntax error.
fn parser_sqlstate(error: &ParserError) -> &'static str {
    match error {
        ParserError::RecursionLimitExceeded => "54001",
        _ => "42601",
    }
}

fn clean_message(error: &DataFusionError) -> String {
    match error.find_root() {
        // PostgreSQL's words exactly: "bigint out of range", no "Execution error: " before it.
        DataFusionError::Execution(msg) if msg.ends_with(" out of range") => msg.clone(),
        DataFusionError::ArrowError(e, _) => {
            let text = e.to_string();
            match cast_out_of_range(&text) {
                Some(type_name) => format!("{type_name} out of range"),
                None => text,
            }
        }
        root => root.to_string(),
    }
}

/// The PostgreSQL type an arrow cast overflowed ("Can't cast value 40000 to type Int16"
/// is PostgreSQL's "smallint out of range").
fn cast_out_of_range(arrow_message: &str) -> Option<&'static str> {
    let (_, target) = arrow_message.split_once("Can't cast value ")?;
    let (_, target) = target.rsplit_once(" to type ")?;
    match target.trim() {
        "Int8" | "Int16" | "UInt8" => Some("smallint"),
        "Int32" | "UInt16" => Some("integer"),
        "Int64" | "UInt32" => Some("bigint"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let e = DataFusionError::Plan("table 'db.public.nope' not found".into());
        assert_eq!(sqlstate(&e), "42P01");
        let e = DataFusionError::NotImplemented("x".into());
        assert_eq!(sqlstate(&e), "0A000");
        let cast = |message: &str| {
            DataFusionError::ArrowError(
                Box::new(datafusion::arrow::error::ArrowError::CastError(
                    message.into(),
                )),
                None,
            )
        };
        let e = cast("Cannot cast string '99999999999999999999' to value of Int64 type");
        assert_eq!(sqlstate(&e), "22003");
        let e = cast("Cannot cast string '12x' to value of Int64 type");
        assert_eq!(sqlstate(&e), "22P02");
        let e = cast("Cannot cast string '2024-13-01' to value of Date32 type");
        assert_eq!(sqlstate(&e), "22008");
        let e = cast("Cannot cast string 'soon' to value of Date32 type");
        assert_eq!(sqlstate(&e), "22007");
    }

    #[test]
    fn an_integer_cast_out_of_range_is_22003() {
        let e = DataFusionError::ArrowError(
            Box::new(datafusion::arrow::error::ArrowError::CastError(
                "Can't cast value 40000 to type Int16".into(),
            )),
            None,
        );
        assert_eq!(sqlstate(&e), "22003");
        assert_eq!(clean_message(&e), "smallint out of range");
    }
}
