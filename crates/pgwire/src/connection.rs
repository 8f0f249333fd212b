//! One client connection: pgwire's message loop, with replies sent when the server is
//! about to wait for the client.
//!
//! pgwire flushes the socket after most messages it writes, so a query over the
//! extended protocol (Parse, Describe, Sync; Bind, Execute, Sync; Close, Sync) cost
//! nine `sendto` calls, each a trip through the kernel's TCP stack and a wake-up of the
//! client for a fragment of the answer. Like PostgreSQL, chronosdb now writes replies into
//! a buffer and sends it when it has nothing more to read from the client (or the buffer
//! holds 64 KiB): one send per round trip. The loop is pgwire's own (`process_socket`),
//! with that one change; messages are handled by pgwire's `process_message`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use pgwire::api::{ClientInfo, ErrorHandler, PgWireConnectionState, PgWireServerHandlers};
use pgwire::messages::PgWireFrontendMessage;
use pgwire::tokio::TlsAcceptor;
use pgwire::tokio::server::{negotiate_tls, process_error, process_message};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts};

/// How long a client has to complete its start-up (pgwire's own limit).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Replies held before they are sent even though more requests are waiting.
const SEND_BUFFER: usize = 64 * 1024;

/// Serves one TCP connection until the client leaves.
pub async fn serve_connection<H: PgWireServerHandlers>(
    socket: TcpStream,
    tls: Option<TlsAcceptor>,
    handlers: H,
) -> io::Result<()> {
    let startup_deadline = tokio::time::sleep(STARTUP_TIMEOUT);
    tokio::pin!(startup_deadline);
    let negotiated = tokio::select! {
        _ = &mut startup_deadline => return Ok(()),
        negotiated = negotiate_tls(socket, tls) => negotiated?,
    };
    let Some(negotiated) = negotiated else {
        // A direct TLS handshake on a server without TLS.
        return Ok(());
    };
    let parts = negotiated.into_parts();
    let mut coalesced = FramedParts::new(SendWhenIdle::new(parts.io), parts.codec);
    coalesced.read_buf = parts.read_buf;
    coalesced.write_buf = parts.write_buf;
    let mut socket = Framed::from_parts(coalesced);

    let startup = handlers.startup_handler();
    let simple = handlers.simple_query_handler();
    let extended = handlers.extended_query_handler();
    let copy = handlers.copy_handler();
    let cancel = handlers.cancel_handler();
    let errors = handlers.error_handler();
    loop {
        let starting = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        );
        if starting || !holds_message(socket.read_buffer()) {
            // About to wait for the client: what it is owed goes out first.
            socket.flush().await?;
            socket.get_mut().send_all().await?;
        }
        let message = match starting {
            true => tokio::select! {
                _ = &mut startup_deadline => None,
                message = socket.next() => message,
            },
            false => socket.next().await,
        };
        let Some(Ok(message)) = message else {
            break;
        };
        // Terminate: the client is leaving and may wait for the socket to close.
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            break;
        }
        let extended_query = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended_query) => extended_query,
            _ => message.is_extended_query(),
        };
        let outcome = process_message(
            message,
            &mut socket,
            startup.clone(),
            simple.clone(),
            extended.clone(),
            copy.clone(),
            cancel.clone(),
        )
        .await;
        if let Err(mut error) = outcome {
            errors.on_error(&socket, &mut error);
            process_error(&mut socket, error, extended_query).await?;
        }
    }
    Ok(())
}

/// Whether `buffer` starts with a whole frontend message (a type byte, then a length
/// that counts itself).
fn holds_message(buffer: &[u8]) -> bool {
    match buffer.get(1..5) {
        Some(length) => {
            let length = u32::from_be_bytes([length[0], length[1], length[2], length[3]]);
            buffer.len() > length as usize
        }
        None => false,
    }
}

/// A stream whose writes are kept until [`SendWhenIdle::send_all`] (or until
/// [`SEND_BUFFER`] bytes wait); flushing it sends nothing.
struct SendWhenIdle<S> {
    inner: S,
    pending: Vec<u8>,
    /// How much of `pending` the inner stream has taken.
    sent: usize,
}

impl<S: AsyncWrite + Unpin> SendWhenIdle<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            pending: Vec::new(),
            sent: 0,
        }
    }

    /// Writes everything pending to the inner stream and flushes it.
    async fn send_all(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_send_all(cx)).await
    }

    fn poll_send_all(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.pending.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.pending.clear();
        self.sent = 0;
        Pin::new(&mut self.inner).poll_flush(cx)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SendWhenIdle<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SendWhenIdle<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pending.len() >= SEND_BUFFER {
            ready!(this.poll_send_all(cx))?;
        }
        this.pending.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Sent when the connection waits for the client (see `serve_connection`).
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_all(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_messages_are_told_from_partial_ones() {
        // Sync: 'S' and a length of 4.
        assert!(holds_message(b"S\0\0\0\x04"));
        assert!(holds_message(b"S\0\0\0\x04Q"));
        assert!(!holds_message(b"S\0\0\0"));
        assert!(!holds_message(b""));
        // A query of 9 bytes after the length, of which 3 arrived.
        assert!(!holds_message(b"Q\0\0\0\x0dSEL"));
    }
}
