//! Connections of the receiver, bounded: at most [`ConnectionLimits::max_connections`] open at
//! once, each closed when it sends nothing for [`ConnectionLimits::idle`] or has lived
//! [`ConnectionLimits::lifetime`]. `axum::serve` sets no header-read timeout, so without these
//! a client that sends its headers slowly, or nothing at all, holds a connection for ever.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Bounds of the receiver's connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed (between requests too).
    pub idle: Duration,
    /// A connection is closed at its first read after this long (clients reconnect).
    pub lifetime: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            idle: Duration::from_secs(30),
            lifetime: Duration::from_secs(300),
        }
    }
}

/// A TCP listener whose connections are bounded by [`ConnectionLimits`].
pub struct BoundedListener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    limits: ConnectionLimits,
}

impl BoundedListener {
    /// Bounds the connections of `inner`.
    pub fn new(inner: TcpListener, limits: ConnectionLimits) -> Self {
        Self {
            inner,
            slots: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            limits,
        }
    }
}

impl axum::serve::Listener for BoundedListener {
    type Io = BoundedIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            // The semaphore is never closed; should it be, connections are simply unbounded.
            let slot = self.slots.clone().acquire_owned().await.ok();
            match self.inner.accept().await {
                Ok((io, addr)) => return (BoundedIo::new(io, slot, self.limits), addr),
                Err(e) => {
                    tracing::warn!(error = %e, "receiver cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// One bounded connection.
pub struct BoundedIo {
    io: TcpStream,
    _slot: Option<OwnedSemaphorePermit>,
    idle: Duration,
    idle_timer: Pin<Box<Sleep>>,
    end: Pin<Box<Sleep>>,
}

impl BoundedIo {
    fn new(io: TcpStream, slot: Option<OwnedSemaphorePermit>, limits: ConnectionLimits) -> Self {
        let now = Instant::now();
        Self {
            io,
            _slot: slot,
            idle: limits.idle,
            idle_timer: Box::pin(tokio::time::sleep_until(now + limits.idle)),
            end: Box::pin(tokio::time::sleep_until(now + limits.lifetime)),
        }
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_string())
}

impl AsyncRead for BoundedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.end.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(timed_out("connection lifetime reached")));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let next = Instant::now() + this.idle;
                    this.idle_timer.as_mut().reset(next);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.idle_timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(timed_out("connection idle"))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for BoundedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn serve(limits: ConnectionLimits) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let task = tokio::spawn(async move {
            axum::serve(BoundedListener::new(listener, limits), app)
                .await
                .expect("serve");
        });
        (addr, task)
    }

    /// Reads until EOF or error; `true` when that came within `within`.
    async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
        let mut sink = Vec::new();
        tokio::time::timeout(within, s.read_to_end(&mut sink))
            .await
            .is_ok()
    }

    async fn get(addr: SocketAddr) -> String {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        out
    }

    #[tokio::test]
    async fn slow_or_silent_clients_are_cut_off() {
        let limits = ConnectionLimits {
            max_connections: 1,
            idle: Duration::from_millis(200),
            lifetime: Duration::from_secs(60),
        };
        let (addr, task) = serve(limits).await;
        // Half a request head, then silence: closed after the idle time, not held for ever.
        let mut slow = TcpStream::connect(addr).await.expect("connect");
        slow.write_all(b"GET / HTTP/1.1\r\nHo")
            .await
            .expect("write");
        assert!(closed_within(&mut slow, Duration::from_secs(5)).await);
        // Its slot is free again: the only one.
        let answer = tokio::time::timeout(Duration::from_secs(5), get(addr))
            .await
            .expect("served");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        task.abort();
    }

    #[tokio::test]
    async fn a_connection_ends_at_its_lifetime() {
        let limits = ConnectionLimits {
            max_connections: 4,
            idle: Duration::from_secs(60),
            lifetime: Duration::from_millis(300),
        };
        let (addr, task) = serve(limits).await;
        let mut s = TcpStream::connect(addr).await.expect("connect");
        // A byte now and then keeps it from idling, but not beyond its lifetime.
        let drip = async {
            for b in b"GET / HTTP/1.1\r\nHost: x\r\n" {
                if s.write_all(&[*b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), drip)
            .await
            .expect("drip ends");
        assert!(closed_within(&mut s, Duration::from_secs(5)).await);
        task.abort();
    }
}
