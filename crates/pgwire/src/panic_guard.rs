//! Turns a panic inside one statement into that statement's error.
//!
//! A bug reached by one query (a panic in planning, in an operator, in encoding) must not
//! close the connection, let alone the server: the statement fails with SQLSTATE XX000 and
//! the session goes on. Planning and the row stream are both guarded, since rows are
//! produced after the handler has returned.

use std::any::Any;
use std::panic::AssertUnwindSafe;

use futures::{FutureExt, Stream, StreamExt};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};

/// `work`, with a panic inside it answered as an internal error.
pub async fn caught<T>(work: impl Future<Output = PgWireResult<T>>) -> PgWireResult<T> {
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => Err(panic_error(panic)),
    }
}

/// `rows`, ended by an internal error at the first panic inside it.
pub fn caught_stream<T: Send>(
    rows: impl Stream<Item = PgWireResult<T>> + Send,
) -> impl Stream<Item = PgWireResult<T>> + Send {
    AssertUnwindSafe(rows)
        .catch_unwind()
        .scan(false, |panicked, item| {
            if *panicked {
                return std::future::ready(None);
            }
            std::future::ready(Some(match item {
                Ok(item) => item,
                Err(panic) => {
                    *panicked = true;
                    Err(panic_error(panic))
                }
            }))
        })
}

fn panic_error(panic: Box<dyn Any + Send>) -> PgWireError {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".to_string());
    tracing::error!(panic = %what, "a statement panicked; it failed, the session goes on");
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        "XX000".into(),
        format!("internal error: the statement failed on a server bug ({what}); please report it"),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::stream;

    #[tokio::test]
    async fn a_panic_becomes_the_statements_error() {
        let result: PgWireResult<()> = caught(async { panic!("boom") }).await;
        let Err(PgWireError::UserError(info)) = result else {
            panic!("expected an error");
        };
        assert_eq!(info.code, "XX000");
        assert!(info.message.contains("boom"), "{}", info.message);
    }

    #[tokio::test]
    async fn a_panicking_stream_ends_with_an_error() {
        let rows = stream::iter(0..5).map(|i| {
            assert!(i < 2, "row {i}");
            Ok(i)
        });
        let items: Vec<PgWireResult<i32>> = caught_stream(rows).collect().await;
        assert_eq!(items.len(), 3);
        assert!(matches!(items[0], Ok(0)) && matches!(items[1], Ok(1)) && items[2].is_err());
    }
}
