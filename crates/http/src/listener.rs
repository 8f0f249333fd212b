//! The HTTP API's listener: plain TCP, TLS, or both on one port.
//!
//! With a TLS configuration, the first byte of each connection says what the client
//! speaks (a TLS handshake starts with 0x16, an HTTP request with a letter), so `https://`
//! and `http://` clients share the port — unless TLS is required, when a plaintext
//! request gets a `400` that tells the user to use `https://` and the connection closes.
//! Handshakes run on their own tasks, so one slow client cannot hold up the others.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;

/// A client must finish its TLS handshake (or send its first byte) within this time.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The first byte of a TLS record carrying a handshake.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// TLS on the HTTP listener.
#[derive(Clone)]
pub struct HttpTls {
    /// Certificate chain, key and protocol settings.
    pub config: Arc<ServerConfig>,
    /// Refuse plaintext requests instead of serving them.
    pub required: bool,
}

/// One accepted connection: plain TCP or TLS over TCP.
pub type Connection = Either<TcpStream, TlsStream<TcpStream>>;

/// The address of a request's client (what handlers see through `ConnectInfo`).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, HttpListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, HttpListener>) -> Self {
        *stream.remote_addr()
    }
}

/// Accepted (and, for TLS, handshaken) connections, ready for axum.
pub struct HttpListener {
    ready: mpsc::Receiver<(Connection, ClientAddr)>,
    local_addr: SocketAddr,
    accept_task: AbortHandle,
}

impl HttpListener {
    /// Starts accepting on `listener`, with TLS when `tls` is given.
    pub fn new(listener: TcpListener, tls: Option<HttpTls>) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (sender, ready) = mpsc::channel(64);
        let accept_task = tokio::spawn(accept_loop(listener, tls, sender)).abort_handle();
        Ok(Self {
            ready,
            local_addr,
            accept_task,
        })
    }
}

impl Drop for HttpListener {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl Listener for HttpListener {
    type Io = Connection;
    type Addr = ClientAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept loop never ends on its own; if it is gone, nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(ClientAddr(self.local_addr))
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<HttpTls>,
    ready: mpsc::Sender<(Connection, ClientAddr)>,
) {
    let acceptor = tls
        .as_ref()
        .map(|tls| (TlsAcceptor::from(tls.config.clone()), tls.required));
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Usually out of file descriptors: wait instead of spinning.
                tracing::warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let Some((acceptor, required)) = acceptor.clone() else {
            if ready
                .send((Either::Left(socket), ClientAddr(peer)))
                .await
                .is_err()
            {
                return;
            }
            continue;
        };
        let ready = ready.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, secure(socket, acceptor, required)).await
            {
                Ok(Ok(Some(connection))) => {
                    let _ = ready.send((connection, ClientAddr(peer))).await;
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// Looks at the first byte: a TLS handshake is accepted, plaintext is served as is or,
/// when TLS is required, answered with a `400` and closed (`None`).
async fn secure(
    socket: TcpStream,
    acceptor: TlsAcceptor,
    required: bool,
) -> std::io::Result<Option<Connection>> {
    let mut first = [0u8; 1];
    if socket.peek(&mut first).await? == 0 {
        return Ok(None);
    }
    if first[0] == TLS_HANDSHAKE_RECORD {
        return Ok(Some(Either::Right(acceptor.accept(socket).await?)));
    }
    if !required {
        return Ok(Some(Either::Left(socket)));
    }
    refuse_plaintext(socket).await?;
    Ok(None)
}

/// Answers a plaintext request on a TLS-only server with a JSON `400`.
async fn refuse_plaintext(mut socket: TcpStream) -> std::io::Result<()> {
    // Read what the client has sent so far, so that closing does not reset the
    // connection before it has read the answer.
    let mut request = [0u8; 8192];
    let _ = tokio::time::timeout(Duration::from_millis(200), socket.read(&mut request)).await;
    let body = r#"{"code":"tls_required","message":"this server requires TLS: use https:// (the plaintext request was not read)"}"#;
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(response.as_bytes()).await?;
    socket.shutdown().await
}
