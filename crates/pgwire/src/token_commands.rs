//! Token management in SQL, for admins:
//!
//! ```sql
//! CREATE TOKEN grafana FOR DATABASE metrics READ [EXPIRES IN '30d'];  -- or WRITE, READ WRITE
//! CREATE ADMIN TOKEN ops [EXPIRES IN '12h'];
//! SHOW TOKENS;
//! DROP TOKEN grafana;
//! ```
//!
//! `CREATE … TOKEN` answers one row with the token's secret, the only time it is shown.
//! These statements are not SQL any parser knows, so they are recognised here, word by
//! word, before DataFusion sees the text.

use std::sync::Arc;

use chronosdb_catalog::auth::Authenticator;
use chronosdb_catalog::tokens::{Permission, TokenError, TokenScope, expiry_after};
use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::SessionContext;
use datafusion_postgres::arrow_pg::datatypes::arrow_schema_to_pg_fields;
use pgwire::api::ClientInfo;
use pgwire::api::portal::Format;
use pgwire::api::results::{FieldInfo, Response, Tag};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};

use crate::access;
use crate::errors::api_error;

/// A token statement.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenCommand {
    Create {
        name: String,
        scope: TokenScope,
        expires_in: Option<String>,
    },
    Drop {
        name: String,
    },
    Show,
}

fn syntax(message: &str) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        "42601".to_string(),
        message.to_string(),
    )))
}

const CREATE_SYNTAX: &str = "syntax: CREATE TOKEN name FOR DATABASE db READ | WRITE | READ WRITE [EXPIRES IN '30d'], or CREATE ADMIN TOKEN name [EXPIRES IN '30d']";

/// Strips SQL quoting from a name or literal.
fn unquote(word: &str) -> String {
    let trimmed = word.trim_matches(|c| c == '"' || c == '\'');
    trimmed.to_string()
}

/// Recognises a token statement; `None` for anything else.
pub fn parse_token_command(sql: &str) -> Option<PgWireResult<TokenCommand>> {
    let text = sql.trim().trim_end_matches(';').trim();
    let words: Vec<&str> = text.split_whitespace().collect();
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    let upper: Vec<&str> = upper.iter().map(String::as_str).collect();
    match upper.as_slice() {
        ["SHOW", "TOKENS"] => Some(Ok(TokenCommand::Show)),
        ["DROP", "TOKEN", _] => Some(Ok(TokenCommand::Drop {
            name: unquote(words[2]),
        })),
        ["DROP", "TOKEN", ..] => Some(Err(syntax("syntax: DROP TOKEN name"))),
        ["CREATE", "TOKEN", ..] | ["CREATE", "ADMIN", "TOKEN", ..] => {
            Some(parse_create(&words, &upper))
        }
        _ => None,
    }
}

fn parse_create(words: &[&str], upper: &[&str]) -> PgWireResult<TokenCommand> {
    // The optional EXPIRES IN 'lifetime' comes last.
    let (body, expires_in) = match upper {
        [rest @ .., "EXPIRES", "IN", _] => (rest.len(), Some(unquote(words[upper.len() - 1]))),
        _ => (upper.len(), None),
    };
    let (name, scope) = match &upper[..body] {
        ["CREATE", "ADMIN", "TOKEN", _] => (words[3], TokenScope::Admin),
        ["CREATE", "TOKEN", _, "FOR", "DATABASE", _, permission @ ..] => {
            let permission = match permission {
                ["READ"] => Permission::Read,
                ["WRITE"] => Permission::Write,
                ["READ", "WRITE"] | ["WRITE", "READ"] | ["READ_WRITE"] => Permission::ReadWrite,
                _ => return Err(syntax(CREATE_SYNTAX)),
            };
            (
                words[2],
                TokenScope::Database {
                    database: unquote(words[5]),
                    permission,
                },
            )
        }
        _ => return Err(syntax(CREATE_SYNTAX)),
    };
    Ok(TokenCommand::Create {
        name: unquote(name),
        scope,
        expires_in,
    })
}

fn token_error(e: TokenError) -> PgWireError {
    let code = match &e {
        TokenError::Exists(_) => "42710",
        TokenError::NotFound(_) => "42704",
        TokenError::Invalid(_) => "22023",
        TokenError::File { .. } | TokenError::Random => "58030",
    };
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        code.to_string(),
        e.to_string(),
    )))
}

/// The columns a token statement answers with (none for `DROP TOKEN`), for Describe.
pub fn result_fields(
    command: &TokenCommand,
    format: Option<&Format>,
) -> PgWireResult<Vec<FieldInfo>> {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let number = |name: &str| Field::new(name, DataType::Int64, true);
    let fields = match command {
        TokenCommand::Create { .. } => vec![text("name"), text("token")],
        TokenCommand::Show => vec![
            text("name"),
            text("db"),
            text("permission"),
            number("created_at"),
            number("expires_at"),
        ],
        TokenCommand::Drop { .. } => return Ok(Vec::new()),
    };
    arrow_schema_to_pg_fields(
        &Schema::new(fields),
        format.unwrap_or(&Format::UnifiedText),
        None,
    )
}

/// A one-batch result, planned and streamed like any query.
async fn rows<C: ClientInfo + ?Sized>(
    client: &C,
    format: &Format,
    columns: Vec<(&str, ArrayRef)>,
) -> PgWireResult<Response> {
    let batch = RecordBatch::try_from_iter(columns).map_err(|e| api_error(e.into()))?;
    let context = SessionContext::new();
    let plan = context
        .read_batch(batch)
        .map_err(api_error)?
        .into_unoptimized_plan();
    let response = crate::execute::stream_plan(client, &context, plan, format).await?;
    Ok(Response::Query(response))
}

/// Runs a token statement for an admin session.
pub async fn run_token_command<C: ClientInfo + ?Sized>(
    auth: &Arc<Authenticator>,
    client: &C,
    command: TokenCommand,
    format: &Format,
) -> PgWireResult<Response> {
    access::check(client, access::Needs::ADMIN)?;
    let tokens = auth.tokens().ok_or_else(|| {
        token_error(TokenError::Invalid(
            "the server runs with --without-auth: there are no tokens to manage".to_string(),
        ))
    })?;
    match command {
        TokenCommand::Create {
            name,
            scope,
            expires_in,
        } => {
            let expires_at = expires_in
                .as_deref()
                .map(expiry_after)
                .transpose()
                .map_err(token_error)?;
            let made = tokens
                .create(&name, scope, expires_at)
                .map_err(token_error)?;
            rows(
                client,
                format,
                vec![
                    (
                        "name",
                        Arc::new(StringArray::from(vec![made.record.name])) as ArrayRef,
                    ),
                    (
                        "token",
                        Arc::new(StringArray::from(vec![made.token])) as ArrayRef,
                    ),
                ],
            )
            .await
        }
        TokenCommand::Drop { name } => {
            tokens.revoke(&name).map_err(token_error)?;
            Ok(Response::Execution(Tag::new("DROP TOKEN")))
        }
        TokenCommand::Show => {
            let all = tokens.list();
            let text = |key: &str| -> ArrayRef {
                Arc::new(StringArray::from(
                    all.iter()
                        .map(|t| t.describe()[key].as_str().map(str::to_string))
                        .collect::<Vec<_>>(),
                ))
            };
            let number = |key: &str| -> ArrayRef {
                Arc::new(Int64Array::from(
                    all.iter()
                        .map(|t| t.describe()[key].as_i64())
                        .collect::<Vec<_>>(),
                ))
            };
            rows(
                client,
                format,
                vec![
                    ("name", text("name")),
                    ("db", text("db")),
                    ("permission", text("permission")),
                    ("created_at", number("created_at")),
                    ("expires_at", number("expires_at")),
                ],
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_recognised() {
        assert_eq!(
            parse_token_command("create token g for database m read write expires in '30d';")
                .map(|r| r.ok()),
            Some(Some(TokenCommand::Create {
                name: "g".into(),
                scope: TokenScope::Database {
                    database: "m".into(),
                    permission: Permission::ReadWrite
                },
                expires_in: Some("30d".into()),
            }))
        );
        assert_eq!(
            parse_token_command("CREATE ADMIN TOKEN ops").map(|r| r.ok()),
            Some(Some(TokenCommand::Create {
                name: "ops".into(),
                scope: TokenScope::Admin,
                expires_in: None,
            }))
        );
        assert!(matches!(
            parse_token_command("CREATE TOKEN x"),
            Some(Err(_))
        ));
        assert!(parse_token_command("SELECT 1").is_none());
        assert_eq!(
            parse_token_command("show tokens").map(|r| r.ok()),
            Some(Some(TokenCommand::Show))
        );
    }
}
