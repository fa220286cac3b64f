//! The listener: accept, TLS handshake, HTTP/1.1 or HTTP/2 by ALPN, graceful shutdown.
//!
//! `run` takes a bound listener and a shutdown future, so tests bind `127.0.0.1:0` and stop
//! the server whenever they like. A semaphore caps open connections: at the cap Zweck stops
//! accepting (the kernel backlog queues) rather than accepting and failing. Handshakes run in
//! the connection's task under a timeout, so a client that never finishes its handshake holds
//! one permit for at most that long and never blocks the accept loop. Shutdown order: stop
//! accepting, tell every connection to finish (HTTP/1.1 closes after the in-flight response,
//! HTTP/2 sends GOAWAY), wait up to the grace period for in-flight requests, then return.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::proxy::{self, ConnInfo};
use crate::state::State;
use crate::tls::PeerIdentity;

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
    tls: Arc<rustls::ServerConfig>,
    state: Arc<State>,
    shutdown: impl Future<Output = ()>,
) -> Drained {
    let limits = state.config.limits.clone();
    let acceptor = TlsAcceptor::from(tls);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    state.set_ready(true);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
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
        let acceptor = acceptor.clone();
        let state = state.clone();
        let watcher = graceful.watcher();
        let limits = limits.clone();
        tokio::spawn(async move {
            let _permit = permit;
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
            let conn = Arc::new(ConnInfo { peer, identity });
            state.metrics.open_connections.inc();
            let svc_state = state.clone();
            let svc = service_fn(move |req| proxy::handle(svc_state.clone(), conn.clone(), req));
            let builder = auto::Builder::new(TokioExecutor::new());
            let mut builder = if h2 {
                builder.http2_only()
            } else {
                builder.http1_only()
            };
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .keep_alive(true);
            builder
                .http2()
                .timer(TokioTimer::new())
                .keep_alive_interval(Some(Duration::from_secs(30)))
                .keep_alive_timeout(Duration::from_secs(20))
                .max_concurrent_streams(256);
            let connection = builder
                .serve_connection(TokioIo::new(tls), svc)
                .into_owned();
            if let Err(e) = watcher.watch(connection).await {
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
    match tokio::time::timeout(limits.shutdown_grace, graceful.shutdown()).await {
        Ok(()) => Drained::Clean,
        Err(_) => {
            tracing::warn!("grace period over; dropping remaining connections");
            Drained::GraceExpired
        }
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
