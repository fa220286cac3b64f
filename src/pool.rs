//! Upstream connection pool gauges, counted at the connector.
//!
//! hyper-util's pooled legacy client exposes no statistics about its pool, so Zweck wraps the
//! connector it hands the client: a connect in progress counts as `connecting`, and every
//! connection it returns carries a guard that counts it as `open` until the pool drops it
//! (idle timeout, error, or the client itself dropped by a reload). Idle connections are
//! `open` ones without a request on them; with HTTP/2 one open connection carries many.
//! Requests waiting for a response head are counted by [`crate::upstream`] around each send.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use prometheus_client::metrics::gauge::Gauge;

/// A gauge raised while the guard lives.
#[derive(Debug)]
pub struct Held(Gauge);

impl Held {
    pub fn new(gauge: &Gauge) -> Held {
        gauge.inc();
        Held(gauge.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The gauges of one upstream's pool.
#[derive(Debug, Clone)]
pub struct PoolCounters {
    pub connecting: Gauge,
    pub open: Gauge,
    pub in_flight: Gauge,
}

/// A connector whose connections count themselves.
#[derive(Debug, Clone)]
pub struct CountingConnector<C> {
    inner: C,
    counters: PoolCounters,
}

impl<C> CountingConnector<C> {
    pub fn new(inner: C, counters: PoolCounters) -> Self {
        Self { inner, counters }
    }
}

impl<C> tower_service::Service<Uri> for CountingConnector<C>
where
    C: tower_service::Service<Uri>,
    C::Future: Send + 'static,
    C::Response: Send + 'static,
{
    type Response = Counted<C::Response>;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = Held::new(&self.counters.connecting);
        let open = self.counters.open.clone();
        let connect = self.inner.call(uri);
        Box::pin(async move {
            let io = connect.await?;
            drop(connecting);
            Ok(Counted {
                io,
                _open: Held::new(&open),
            })
        })
    }
}

/// A connection counted as open while it exists.
#[derive(Debug)]
pub struct Counted<T> {
    io: T,
    _open: Held,
}

impl<T: Read + Unpin> Read for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

impl<T: Connection> Connection for Counted<T> {
    /// The inner connection's facts, ALPN included: the client picks HTTP/2 from them.
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}
