//! The listener: accept, TLS handshake, HTTP/1.1 or HTTP/2 by ALPN, graceful shutdown.
//!
//! `run` takes a bound listener and a shutdown future, so tests bind `127.0.0.1:0` and stop
//! the server whenever they like. A semaphore caps open connections: at the cap Zweck stops
//! accepting (the kernel backlog queues) rather than accepting and failing. Handshakes run in
//! the connection's task under a timeout, so a client that never finishes its handshake holds
//! one permit for at most that long and never blocks the accept loop. Shutdown order: stop
//! accepting, tell every connection to finish (HTTP/1.1 closes after the in-flight response,
//! HTTP/2 sends GOAWAY), wait up to the grace period for in-flight requests, then return.
//!
//! Each handshake uses the TLS config of the live state at accept time, so a reload's new
//! certificate and client CA apply to new connections while open ones finish on theirs.
//!
//! A connection without a request in flight for `limits.idle_timeout` is closed the same
//! graceful way, so idle clients (HTTP/2 keeps a connection open forever otherwise) do not
//! hold the connection permits that active ones need. A request counts as in flight until
//! its response body is done, so a long download is never mistaken for idleness.
//!
//! Both protocols cut a request head off at twice `limits.max_header_bytes` (the HTTP/1.1
//! read buffer, the HTTP/2 `SETTINGS_MAX_HEADER_LIST_SIZE`): below that Zweck itself checks
//! the limit the same way on both and answers 431 with a problem (`proxy/wire.rs`). HTTP/1.1
//! connections close with a lingering close (`linger.rs`), so a client still sending a body
//! Zweck refused reads the answer instead of a reset.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::body::{BoxError, ProxyBody};
use crate::linger::Linger;
use crate::proxy::{self, ConnInfo};
use crate::state::State;
use crate::tls::PeerIdentity;

/// hyper's smallest HTTP/1.1 read buffer.
const MIN_H1_BUFFER: usize = 8192;

/// Where the HTTP layer cuts a request head off: twice the limit Zweck checks itself, so a
/// head between the two gets Zweck's 431 problem on both protocols, and no connection
/// buffers more than this for a head.
fn head_cutoff(max_header_bytes: u64) -> usize {
    usize::try_from(max_header_bytes.saturating_mul(2)).unwrap_or(usize::MAX)
}

/// How the accept loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Every in-flight request finished within the grace period.
    Clean,
    /// The grace period ran out; remaining connections were dropped.
    GraceExpired,
}

/// Serves the proxy on `listener` until `shutdown` completes, then drains.
pub async fn run(
    listener: TcpListener,
    state: Arc<State>,
    shutdown: impl Future<Output = ()>,
) -> Drained {
    let limits = state.config.limits.clone();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    // `stop` tells every connection to finish; each connection task holds a clone of
    // `open`, so `closed.recv()` returns once the last one is gone.
    let (stop, stopping) = watch::channel(false);
    let (open, mut closed) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    state.set_ready(true);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        // the TLS config in force now: a reloaded certificate or client CA applies from
        // the next handshake, while open connections keep the one they began with
        let acceptor = TlsAcceptor::from(state.live().tls.clone());
        let state = state.clone();
        let stopping = stopping.clone();
        let open = open.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _open = open;
            let tls =
                match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        state.metrics.tls_handshake_failures.inc();
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        state.metrics.tls_handshake_failures.inc();
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            let identity = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(PeerIdentity::from_cert);
            // ALPN decides the protocol, so hyper never waits for bytes to guess it: a client
            // that sends nothing then meets the header-read timeout instead of hanging.
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
            let tls = Linger::new(tls, (!h2).then_some(limits.linger_timeout));
            let conn = Arc::new(ConnInfo {
                peer,
                identity,
                metrics: Default::default(),
            });
            state.metrics.open_connections.inc();
            let svc_state = state.clone();
            let activity = Arc::new(Activity::new());
            let svc_activity = activity.clone();
            let svc = service_fn(move |req| {
                let in_flight = InFlight::begin(svc_activity.clone());
                // boxed: hyper moves the service future per request (into its HTTP/1.1
                // dispatcher, or into the task it spawns per HTTP/2 stream); a pointer moves
                // cheaper than the pipeline's state (docs/performance.md, "Profile")
                let handled = Box::pin(proxy::handle(svc_state.clone(), conn.clone(), req));
                async move {
                    let resp = handled.await?;
                    Ok::<_, std::convert::Infallible>(resp.map(|body| TrackedBody {
                        body,
                        _in_flight: in_flight,
                    }))
                }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let mut builder = if h2 {
                builder.http2_only()
            } else {
                builder.http1_only()
            };
            let head_cutoff = head_cutoff(limits.max_header_bytes);
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_buf_size(head_cutoff.max(MIN_H1_BUFFER))
                .keep_alive(true);
            builder
                .http2()
                .timer(TokioTimer::new())
                .keep_alive_interval(Some(Duration::from_secs(30)))
                .keep_alive_timeout(Duration::from_secs(20))
                .max_header_list_size(u32::try_from(head_cutoff).unwrap_or(u32::MAX))
                .max_concurrent_streams(256);
            let connection = builder
                .serve_connection(TokioIo::new(tls), svc)
                .into_owned();
            tokio::pin!(connection);
            // The idle timer runs in its own task and reports through a oneshot, so a wake of
            // this task (every read and write) polls a cheap receiver, not a timer.
            let (idle_tx, mut idle) = oneshot::channel::<()>();
            let idle_timeout = limits.idle_timeout;
            let idle_watch = tokio::spawn(async move {
                activity.idle_for(idle_timeout).await;
                let _ = idle_tx.send(());
            });
            let mut stopping = stopping;
            let mut closing = false;
            let ended = loop {
                tokio::select! {
                    biased;
                    ended = connection.as_mut() => break ended,
                    _ = stopping.wait_for(|stop| *stop), if !closing => {
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    }
                    _ = &mut idle, if !closing => {
                        tracing::debug!(%peer, "idle connection closed");
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            };
            idle_watch.abort();
            if let Err(e) = ended {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            state.metrics.open_connections.dec();
        });
    }
    state.set_ready(false);
    drop(listener);
    tracing::info!(
        grace_secs = limits.shutdown_grace.as_secs(),
        "stopped accepting; draining in-flight requests"
    );
    let _ = stop.send(true);
    drop(open);
    match tokio::time::timeout(limits.shutdown_grace, closed.recv()).await {
        Ok(_) => Drained::Clean,
        Err(_) => {
            tracing::warn!("grace period over; dropping remaining connections");
            Drained::GraceExpired
        }
    }
}

/// Whether a connection has requests in flight, and since when it has had none.
struct Activity {
    in_flight: AtomicUsize,
    /// Milliseconds after `base` when the last request finished (or the connection opened).
    idle_since_ms: AtomicU64,
    base: Instant,
}

impl Activity {
    fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            base: Instant::now(),
        }
    }

    /// Completes once the connection has had no request in flight for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            if self.in_flight.load(Ordering::Acquire) > 0 {
                // Checked again one period later: a request may run for a long time.
                tokio::time::sleep(timeout).await;
                continue;
            }
            let since =
                self.base + Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
            let deadline = since + timeout;
            if Instant::now() >= deadline && self.in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// One request in flight on a connection; ends when its response body is done (dropped).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        let now = u64::try_from(a.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        a.idle_since_ms.store(now, Ordering::Release);
        a.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request in flight until hyper is done with it.
struct TrackedBody {
    body: ProxyBody,
    _in_flight: InFlight,
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A future that completes on SIGTERM or SIGINT.
///
/// The handlers are installed when this is called, not when the future is first polled:
/// call it before announcing readiness, or a supervisor's SIGTERM that arrives in between
/// kills the process with the default action instead of draining it.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => tracing::info!("SIGTERM received"),
                        _ = int.recv() => tracing::info!("SIGINT received"),
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async move {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
