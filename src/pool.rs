//! Connections to one upstream: Zweck's own pool over hyper's client connections, and its
//! gauges.
//!
//! Why not hyper-util's pooled legacy client: it serves any origin, so every request paid
//! for that generality: a pool key hashed under a lock, a connect future raced against the
//! checkout, the connection's metadata captured through a request extension (a map and a
//! watch channel per request, to poison a connection afterwards), a boxed response future,
//! and on HTTP/1.1 a task spawned per request to put the connection back. An upstream here
//! is one origin known at start-up, so the pool is two slots: the shared HTTP/2 connection
//! (every request a stream on it, the sender cloned) and a stack of idle HTTP/1.1
//! connections (one request at a time each, put back by the response body when it ends:
//! [`Lease`]). What it keeps from the legacy client: one HTTP/2 handshake at a time, idle
//! HTTP/1.1 connections closed after [`IDLE_TIMEOUT`], and a request that a reused
//! connection closed before sending it is sent once more on a new connection.
//!
//! The protocol comes from `upstreams.<name>.protocol`: `auto` offers `h2` and `http/1.1` by
//! ALPN and speaks what the upstream picked, `http1` and `http2` offer and speak one.
//!
//! The gauges (`zweck_upstream_connections`, `zweck_upstream_requests_in_flight`): a connect
//! in progress counts as `connecting`, every connection as `open` until it closes (idle
//! timeout, error, the upstream closing it, or the pool dropped by a reload); idle
//! connections are `open` ones without a request on them. Requests waiting for a response
//! head are counted by [`crate::upstream`] around each send.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::header::HOST;
use http::{HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use prometheus_client::metrics::gauge::Gauge;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::body::ProxyBody;
use crate::config::UpstreamProtocol;

/// The read buffer under each upstream connection's TLS.
const READ_BUFFER: usize = 32 * 1024;

/// The largest HTTP/2 frame Zweck accepts from an upstream (`SETTINGS_MAX_FRAME_SIZE`; the
/// protocol's default is 16 KiB). A ~100 KB page then comes as one DATA frame rather than
/// seven: one piece for the body reader to wake for and keep as it came (`body::gather`),
/// instead of seven wake-ups and a copy into a buffer of the whole. It bounds what one frame
/// makes the connection buffer before any of it is handed on (docs/configuration.md,
/// `limits.buffered_total`).
const H2_MAX_FRAME: u32 = 256 * 1024;

/// How long an HTTP/1.1 connection may sit idle in the pool.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

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

/// Why a request could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connect timed out")]
    ConnectTimeout,
    #[error("connect failed: {0}")]
    Connect(io::Error),
    #[error("TLS handshake failed: {0}")]
    Tls(io::Error),
    #[error("{0}")]
    Http(#[from] hyper::Error),
}

/// Where the pool connects, and how.
#[derive(Debug, Clone)]
pub struct Target {
    /// The host as the URL has it (IPv6 in brackets).
    pub host: String,
    pub port: u16,
    pub connect_timeout: Duration,
    pub protocol: UpstreamProtocol,
}

impl Target {
    /// The target of an `https://host[:port]` URL.
    pub fn of(url: &Uri, connect_timeout: Duration, protocol: UpstreamProtocol) -> Target {
        Target {
            host: url.host().unwrap_or_default().to_string(),
            port: url.port_u16().unwrap_or(443),
            connect_timeout,
            protocol,
        }
    }
}

/// The negotiated protocol of an `auto` upstream, once known.
const UNKNOWN: u8 = 0;
const H1: u8 = 1;
const H2: u8 = 2;

/// One upstream's connections.
pub struct Pool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("host", &self.inner.target.host)
            .field("port", &self.inner.target.port)
            .finish_non_exhaustive()
    }
}

struct Inner {
    target: Target,
    server_name: ServerName<'static>,
    /// `Host` on HTTP/1.1 requests (the port only when it is not 443).
    host_header: HeaderValue,
    tls: TlsConnector,
    counters: PoolCounters,
    /// `H1` or `H2` once an `auto` upstream answered ALPN (fixed ones start known).
    speaks: AtomicU8,
    h2: Mutex<Option<http2::SendRequest<ProxyBody>>>,
    /// One HTTP/2 handshake at a time: the requests waiting for it share its connection.
    h2_connecting: tokio::sync::Mutex<()>,
    idle: Mutex<Vec<Idle>>,
    reaper: AtomicBool,
}

struct Idle {
    sender: http1::SendRequest<ProxyBody>,
    since: Instant,
}

/// A connection taken for one request.
enum Conn {
    H1(http1::SendRequest<ProxyBody>),
    H2(http2::SendRequest<ProxyBody>),
}

/// An HTTP/1.1 connection lent to one exchange: back to the pool once its response body
/// has ended, dropped (and so closed) otherwise.
pub struct Lease {
    sender: Option<http1::SendRequest<ProxyBody>>,
    pool: Weak<Inner>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").finish_non_exhaustive()
    }
}

impl Lease {
    /// The response body ended cleanly: the connection may carry the next request.
    pub fn release(&mut self) {
        if let (Some(sender), Some(pool)) = (self.sender.take(), self.pool.upgrade()) {
            pool.check_in(sender);
        }
    }
}

impl Pool {
    /// A pool for `target`; `tls` is the client config (trust), ALPN is set here.
    pub fn new(
        target: Target,
        mut tls: ClientConfig,
        counters: PoolCounters,
    ) -> Result<Pool, PoolSetupError> {
        let bare = target.host.trim_start_matches('[').trim_end_matches(']');
        let server_name = ServerName::try_from(bare.to_string())
            .map_err(|_| PoolSetupError::ServerName(target.host.clone()))?;
        let host_header = if target.port == 443 {
            HeaderValue::from_str(&target.host)
        } else {
            HeaderValue::from_str(&format!("{}:{}", target.host, target.port))
        }
        .map_err(|_| PoolSetupError::ServerName(target.host.clone()))?;
        tls.alpn_protocols = match target.protocol {
            UpstreamProtocol::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            UpstreamProtocol::Http1 => vec![b"http/1.1".to_vec()],
            UpstreamProtocol::Http2 => vec![b"h2".to_vec()],
        };
        let speaks = match target.protocol {
            UpstreamProtocol::Auto => UNKNOWN,
            UpstreamProtocol::Http1 => H1,
            UpstreamProtocol::Http2 => H2,
        };
        Ok(Pool {
            inner: Arc::new(Inner {
                target,
                server_name,
                host_header,
                tls: TlsConnector::from(Arc::new(tls)),
                counters,
                speaks: AtomicU8::new(speaks),
                h2: Mutex::new(None),
                h2_connecting: tokio::sync::Mutex::new(()),
                idle: Mutex::new(Vec::new()),
                reaper: AtomicBool::new(false),
            }),
        })
    }

    /// Sends one request (its URI absolute, `https://host[:port]/path?query`). On HTTP/1.1
    /// the [`Lease`] must travel with the response body. A request a reused connection
    /// closed before sending it goes once more on a new connection.
    pub async fn send(
        &self,
        mut req: Request<ProxyBody>,
    ) -> Result<(Response<Incoming>, Option<Lease>), SendError> {
        let inner = &self.inner;
        let mut fresh_only = false;
        loop {
            let (conn, reused) = inner.checkout(fresh_only).await?;
            let (result, lease) = match conn {
                Conn::H2(mut sender) => (sender.try_send_request(req).await, None),
                Conn::H1(mut sender) => {
                    let h1 = origin_form(req, &inner.host_header);
                    let r = sender.try_send_request(h1).await;
                    let lease = Lease {
                        sender: Some(sender),
                        pool: Arc::downgrade(inner),
                    };
                    (r, Some(lease))
                }
            };
            match result {
                Ok(resp) => return Ok((resp, lease)),
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused && !fresh_only => {
                        tracing::debug!(upstream_host = %inner.target.host, error = %e.error(), "reused connection closed before the request went; sending on a new one");
                        req = absolute_form(unsent, &inner.target);
                        fresh_only = true;
                    }
                    _ => return Err(SendError::Http(e.into_error())),
                },
            }
        }
    }
}

/// HTTP/1.1 sends the path and query (origin form) and names the host in `Host`.
fn origin_form(req: Request<ProxyBody>, host: &HeaderValue) -> Request<ProxyBody> {
    let (mut parts, body) = req.into_parts();
    let mut uri = http::uri::Parts::default();
    uri.path_and_query = parts.uri.path_and_query().cloned();
    if let Ok(u) = Uri::from_parts(uri) {
        parts.uri = u;
    }
    parts.headers.entry(HOST).or_insert_with(|| host.clone());
    Request::from_parts(parts, body)
}

/// The request back in absolute form (after an HTTP/1.1 attempt took it to origin form).
fn absolute_form(req: Request<ProxyBody>, target: &Target) -> Request<ProxyBody> {
    if req.uri().authority().is_some() {
        return req;
    }
    let (mut parts, body) = req.into_parts();
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = if target.port == 443 {
        target.host.clone()
    } else {
        format!("{}:{}", target.host, target.port)
    };
    if let Ok(u) = Uri::try_from(format!("https://{authority}{pq}")) {
        parts.uri = u;
    }
    Request::from_parts(parts, body)
}

impl Inner {
    /// A connection for one request, and whether it carried requests before.
    async fn checkout(self: &Arc<Self>, fresh_only: bool) -> Result<(Conn, bool), SendError> {
        if !fresh_only {
            if let Some(c) = self.reuse().await {
                return Ok((c, true));
            }
        }
        if self.speaks.load(Ordering::Acquire) != H1 {
            // one HTTP/2 handshake at a time; who waited for it shares the connection
            let _one = self.h2_connecting.lock().await;
            if !fresh_only {
                if let Some(s) = self.shared_h2() {
                    return Ok((Conn::H2(s), true));
                }
            }
            return self.connect_boxed().await.map(|c| (c, false));
        }
        self.connect_boxed().await.map(|c| (c, false))
    }

    /// [`Inner::connect`] on the heap: its TCP, TLS and HTTP handshake futures are large,
    /// and inline they would make every request's future (moved by hyper per request) as
    /// large, though a connect is rare.
    async fn connect_boxed(&self) -> Result<Conn, SendError> {
        Box::pin(self.connect()).await
    }

    /// The shared HTTP/2 connection, or an idle HTTP/1.1 one that is still open.
    async fn reuse(&self) -> Option<Conn> {
        if let Some(s) = self.shared_h2() {
            return Some(Conn::H2(s));
        }
        loop {
            let idle = {
                let mut stack = self
                    .idle
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                stack.pop()?
            };
            if idle.since.elapsed() >= IDLE_TIMEOUT || idle.sender.is_closed() {
                continue; // dropped: the connection closes
            }
            let mut sender = idle.sender;
            // put back as its response body ended: the connection may not have caught up
            if sender.ready().await.is_ok() {
                return Some(Conn::H1(sender));
            }
        }
    }

    fn shared_h2(&self) -> Option<http2::SendRequest<ProxyBody>> {
        let mut slot = self
            .h2
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match slot.as_ref() {
            Some(s) if !s.is_closed() => Some(s.clone()),
            Some(_) => {
                *slot = None;
                None
            }
            None => None,
        }
    }

    fn check_in(self: &Arc<Self>, sender: http1::SendRequest<ProxyBody>) {
        if sender.is_closed() {
            return;
        }
        let mut stack = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        stack.push(Idle {
            sender,
            since: Instant::now(),
        });
        drop(stack);
        self.start_reaper();
    }

    /// Closes idle HTTP/1.1 connections past [`IDLE_TIMEOUT`] even when no request comes.
    fn start_reaper(self: &Arc<Self>) {
        if self.reaper.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.reaper.store(false, Ordering::Release);
            return;
        };
        let pool = Arc::downgrade(self);
        rt.spawn(async move {
            let mut tick = tokio::time::interval(IDLE_TIMEOUT / 3);
            loop {
                tick.tick().await;
                let Some(pool) = pool.upgrade() else { return };
                let mut stack = pool
                    .idle
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                stack.retain(|i| i.since.elapsed() < IDLE_TIMEOUT && !i.sender.is_closed());
            }
        });
    }

    /// A new connection: TCP within the connect timeout, TLS, then HTTP/2 or HTTP/1.1.
    async fn connect(&self) -> Result<Conn, SendError> {
        let t = &self.target;
        let connecting = Held::new(&self.counters.connecting);
        let tcp = tokio::time::timeout(
            t.connect_timeout,
            TcpStream::connect((t.host.trim_start_matches('[').trim_end_matches(']'), t.port)),
        )
        .await
        .map_err(|_| SendError::ConnectTimeout)?
        .map_err(SendError::Connect)?;
        let _ = tcp.set_nodelay(true);
        // rustls asks for 4 KiB per read: through a buffer, a 100 KB response is a handful
        // of read calls instead of ~25 (the buffer is per upstream connection, not per app's)
        let tcp = tokio::io::BufReader::with_capacity(READ_BUFFER, tcp);
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(SendError::Tls)?;
        let h2 = match t.protocol {
            UpstreamProtocol::Auto => tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice()),
            UpstreamProtocol::Http1 => false,
            UpstreamProtocol::Http2 => true,
        };
        self.speaks
            .store(if h2 { H2 } else { H1 }, Ordering::Release);
        let io = TokioIo::new(Counted {
            io: tls,
            _open: Held::new(&self.counters.open),
        });
        drop(connecting);
        if h2 {
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .max_frame_size(H2_MAX_FRAME)
                .handshake(io)
                .await?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "upstream HTTP/2 connection ended");
                }
            });
            *self
                .h2
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(sender.clone());
            Ok(Conn::H2(sender))
        } else {
            let (sender, conn) = http1::Builder::new().handshake(io).await?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "upstream HTTP/1.1 connection ended");
                }
            });
            Ok(Conn::H1(sender))
        }
    }
}

/// Why a pool could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PoolSetupError {
    #[error("{0:?} is not a host name TLS can verify")]
    ServerName(String),
}

/// A connection counted as open while it exists.
struct Counted<T> {
    io: T,
    _open: Held,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http1_requests_go_in_origin_form_with_the_upstream_host() {
        let host = HeaderValue::from_static("crm.example:8443");
        let req = Request::builder()
            .uri("https://crm.example:8443/services/data/?a=1")
            .body(crate::body::empty())
            .expect("request");
        let req = origin_form(req, &host);
        assert_eq!(req.uri().to_string(), "/services/data/?a=1");
        assert_eq!(req.headers()[HOST], "crm.example:8443");

        let target = Target {
            host: "crm.example".into(),
            port: 8443,
            connect_timeout: Duration::from_secs(1),
            protocol: UpstreamProtocol::Http1,
        };
        let back = absolute_form(req, &target);
        assert_eq!(
            back.uri().to_string(),
            "https://crm.example:8443/services/data/?a=1"
        );
    }
}
