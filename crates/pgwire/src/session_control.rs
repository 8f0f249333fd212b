//! Stopping work a client no longer wants: cancel requests and idle connections.
//!
//! - **Cancel.** pgwire's `ConnectionHandle` interrupts only `do_query`, which for
//!   chronosdb is planning; the work happens while the rows stream. [`Cancels`] keeps a
//!   cancel signal per connection (keyed like pgwire's, by pid and secret key), and
//!   [`interruptible`] ends a row stream with SQLSTATE 57014 when the signal fires or the
//!   session's `statement_timeout` expires. Dropping the stream drops DataFusion's plan,
//!   which stops its tasks.
//! - **Idle connections.** [`Activity`] records when a connection last sent a statement
//!   and how many result streams it has open; [`close_when_idle`] shuts the socket of a
//!   connection idle for longer than `--pg-idle-timeout`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::errors::api_error;
use async_trait::async_trait;
use bytes::Bytes;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use futures::{Stream, StreamExt, stream};
use parking_lot::Mutex;
use pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use pgwire::api::{ClientInfo, ConnectionManager};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::cancel::CancelRequest;
use tokio::sync::watch;
use tokio::time::Instant;

/// The connection metadata key `datafusion-postgres` keeps `SET statement_timeout` under.
const STATEMENT_TIMEOUT_KEY: &str = "statement_timeout_ms";

fn canceled(reason: &str) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        "57014".into(),
        format!("canceling statement due to {reason}"),
    )))
}

/// A connection's cancel signal: a counter bumped by each cancel request.
#[derive(Debug)]
pub struct CancelSignal(watch::Sender<u64>);

type ConnectionKey = (i32, Bytes);

/// Every connection's cancel signal, and the handler of cancel requests.
pub struct Cancels {
    signals: Mutex<HashMap<ConnectionKey, Arc<CancelSignal>>>,
    planning: DefaultCancelHandler,
}

impl Cancels {
    pub fn new(connections: Arc<ConnectionManager>) -> Self {
        Self {
            signals: Mutex::new(HashMap::new()),
            planning: DefaultCancelHandler::new(connections),
        }
    }

    /// Gives a newly started connection its signal, removed when the connection ends.
    pub fn register<C: ClientInfo + ?Sized>(self: &Arc<Self>, client: &C) {
        let (pid, secret) = client.pid_and_secret_key();
        let key = (pid, secret.to_bytes());
        let signal = Arc::new(CancelSignal(watch::channel(0).0));
        self.signals.lock().insert(key.clone(), signal.clone());
        client.session_extensions().insert(signal);
        client.session_extensions().insert(CancelRegistration {
            key,
            cancels: self.clone(),
        });
    }
}

/// Removes a connection's signal when the connection (and its extensions) goes.
struct CancelRegistration {
    key: ConnectionKey,
    cancels: Arc<Cancels>,
}

impl Drop for CancelRegistration {
    fn drop(&mut self) {
        self.cancels.signals.lock().remove(&self.key);
    }
}

/// Cancels by pid and secret key, as PostgreSQL does: the query in planning through
/// pgwire, the streaming one through its signal.
pub struct CancelRequests(pub Arc<Cancels>);

#[async_trait]
impl CancelHandler for CancelRequests {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let key = (request.pid, request.secret_key.to_bytes());
        let signal = self.0.signals.lock().get(&key).cloned();
        if let Some(signal) = signal {
            signal.0.send_modify(|n| *n += 1);
        }
        self.0.planning.on_cancel_request(request).await;
    }
}

/// When a statement of this client must stop: its `statement_timeout`, if set.
pub fn deadline<C: ClientInfo + ?Sized>(client: &C) -> Option<Instant> {
    client
        .metadata()
        .get(STATEMENT_TIMEOUT_KEY)
        .and_then(|ms| ms.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(|ms| Instant::now() + Duration::from_millis(ms))
}

/// Runs `future` (planning) under the client's deadline.
pub async fn within_deadline<T>(
    deadline: Option<Instant>,
    future: impl std::future::Future<Output = T>,
) -> PgWireResult<T> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, future)
            .await
            .map_err(|_| canceled("statement timeout")),
        None => Ok(future.await),
    }
}

/// `batches` as a stream that ends with 57014 when the client cancels or the deadline
/// passes, and that counts as open work for the idle check while it lives.
pub fn interruptible<C: ClientInfo + ?Sized>(
    client: &C,
    batches: SendableRecordBatchStream,
    deadline: Option<Instant>,
) -> impl Stream<Item = PgWireResult<RecordBatch>> + Send + 'static {
    let mut cancel = client
        .session_extensions()
        .get::<Arc<CancelSignal>>()
        .map(|signal| signal.0.subscribe());
    if let Some(cancel) = cancel.as_mut() {
        cancel.mark_unchanged();
    }
    let open = client
        .session_extensions()
        .get::<Arc<Activity>>()
        .map(|activity| OpenStream::new(&activity));
    let state = Some((batches, cancel, open));
    stream::unfold(state, move |state| async move {
        let (mut batches, mut cancel, open) = state?;
        let cancelled = async {
            match cancel.as_mut() {
                Some(cancel) => {
                    if cancel.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        };
        let expired = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending::<()>().await,
            }
        };
        let next = tokio::select! {
            next = batches.next() => next,
            _ = cancelled => return Some((Err(canceled("user request")), None)),
            _ = expired => return Some((Err(canceled("statement timeout")), None)),
        };
        match next? {
            Ok(batch) => Some((Ok(batch), Some((batches, cancel, open)))),
            Err(e) => Some((Err(api_error(e)), None)),
        }
    })
}

/// When a connection last did something, and how many result streams it has open.
#[derive(Debug)]
pub struct Activity {
    started: Instant,
    last_ms: AtomicU64,
    open_streams: AtomicUsize,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            open_streams: AtomicUsize::new(0),
        })
    }

    /// Records a message from the client.
    pub fn touch(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let now = self.started.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// Counts an open result stream; the connection is not idle while one lives.
struct OpenStream(Arc<Activity>);

impl OpenStream {
    fn new(activity: &Arc<Activity>) -> Self {
        activity.open_streams.fetch_add(1, Ordering::Relaxed);
        Self(activity.clone())
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.open_streams.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// Shuts `socket` down once the connection has been idle for `timeout`: no statement and
/// no open result for that long. The caller aborts it when the connection ends first.
pub async fn close_when_idle(
    activity: Arc<Activity>,
    socket: std::net::TcpStream,
    timeout: Duration,
    peer: std::net::SocketAddr,
) {
    let check = (timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
    loop {
        tokio::time::sleep(check).await;
        if activity.open_streams.load(Ordering::Relaxed) == 0 && activity.idle_for() >= timeout {
            tracing::info!(%peer, ?timeout, "closing idle pgwire connection");
            let _ = socket.shutdown(std::net::Shutdown::Both);
            return;
        }
    }
}
