//! The app's request body as the pipeline reads it: paced, capped, and never dropped unread
//! in a way that loses the answer.
//!
//! Three things no phase should have to remember, so they live in the body type itself:
//!
//! - **Pace.** A body must keep arriving. Zweck waits for it at most `limits.body_read_timeout`
//!   plus one second per `limits.body_min_rate` bytes received, counting only the time it
//!   waits for the client (never the time the body sits unread while Zweck forwards), so a
//!   client that sends one byte every ten seconds gets `request-timeout` (408) after about
//!   `body_read_timeout` instead of holding a connection for minutes.
//! - **Size.** More than `limits.max_body_bytes` fails with `body-too-large` (413) whatever the
//!   framing, also while streaming to the upstream (a chunked body has no length to check up
//!   front). What went wrong is kept in a [`BodyWatch`], so a forward that failed because the
//!   app's body failed is answered as the app's fault, not as a 502.
//! - **The unread rest.** Many refusals are decided before the body is read (`write-denied`,
//!   `unknown-resource`, `unknown-app`, `body-too-large` by its `Content-Length`, ...). Dropped
//!   unread, HTTP/1.1 would close the connection while the client still sends, and the
//!   client's TCP stack discards the answer on the reset (python-requests: `SSLError`);
//!   HTTP/2 would stop granting flow-control credit to a client still uploading (curl: error
//!   92). So a body dropped before its end is drained: read and discarded in its own task, at
//!   the same pace, up to `limits.drain_bytes`, while the answer goes out. After a drained
//!   body an HTTP/1.1 connection stays usable. Past the bound the body is let go: HTTP/1.1
//!   closes the connection once the answer is flushed (a lingering close, `linger.rs`, so the
//!   answer is read before the close), HTTP/2 resets the stream with `NO_ERROR` once the
//!   answer has been sent (RFC 9113 §8.1). A body over `limits.max_body_bytes` is drained the
//!   same way (the client still reads its 413); one that is too slow is let go at once. A
//!   client that sent `Expect: 100-continue` and was answered
//!   before Zweck asked for a byte has sent none: it is not asked for its body now.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::body::BoxError;
use crate::config::Limits;
use crate::error::ProxyError;

/// Why the app's body could not be read to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyFailure {
    /// Slower than `limits.body_min_rate` once `limits.body_read_timeout` was used up.
    #[error("the request body arrived too slowly")]
    TooSlow,
    /// Longer than `limits.max_body_bytes`.
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: u64 },
}

impl From<BodyFailure> for ProxyError {
    fn from(f: BodyFailure) -> ProxyError {
        match f {
            BodyFailure::TooSlow => ProxyError::RequestTimeout,
            BodyFailure::TooLarge { limit } => ProxyError::BodyTooLarge { limit },
        }
    }
}

impl BodyFailure {
    /// The failure behind a body error, when the app's body is what failed (the error went
    /// through a collect or an upstream client, boxed).
    pub fn of(e: &(dyn std::error::Error + 'static)) -> Option<BodyFailure> {
        let mut cur = Some(e);
        while let Some(err) = cur {
            if let Some(f) = err.downcast_ref::<BodyFailure>() {
                return Some(*f);
            }
            cur = err.source();
        }
        None
    }
}

/// The limits a request body is read under (from `limits`).
#[derive(Debug, Clone, Copy)]
pub struct IntakeLimits {
    pub read_timeout: Duration,
    pub min_rate: u64,
    pub max_bytes: u64,
    pub drain_bytes: u64,
}

impl From<&Limits> for IntakeLimits {
    fn from(l: &Limits) -> IntakeLimits {
        IntakeLimits {
            read_timeout: l.body_read_timeout,
            min_rate: l.body_min_rate.max(1),
            max_bytes: l.max_body_bytes,
            drain_bytes: l.drain_bytes,
        }
    }
}

/// What became of a body, readable after it was handed on (to the upstream client).
#[derive(Debug, Clone, Default)]
pub struct BodyWatch(Arc<OnceLock<BodyFailure>>);

impl BodyWatch {
    /// The app's body failure, if that is what ended the body.
    pub fn failure(&self) -> Option<BodyFailure> {
        self.0.get().copied()
    }

    /// An error of a phase that consumed the body, told as the app's fault when the app's
    /// body is what failed.
    pub fn explain(&self, err: ProxyError) -> ProxyError {
        self.failure().map_or(err, ProxyError::from)
    }
}

/// How long Zweck has waited for the client, against what its pace allows.
#[derive(Debug)]
struct Pace {
    read_timeout: Duration,
    min_rate: u64,
    /// Time spent waiting for the client so far (pending polls only).
    waited: Duration,
    /// When the current wait began.
    pending_since: Option<Instant>,
    /// Made on the first wait only: most bodies never wait.
    timer: Option<Pin<Box<Sleep>>>,
}

impl Pace {
    fn new(limits: &IntakeLimits) -> Pace {
        Pace {
            read_timeout: limits.read_timeout,
            min_rate: limits.min_rate,
            waited: Duration::ZERO,
            pending_since: None,
            timer: None,
        }
    }

    /// What `received` bytes earn: the base timeout plus a second per `min_rate` bytes.
    fn allowance(&self, received: u64) -> Duration {
        let earned = Duration::from_millis(received.saturating_mul(1000) / self.min_rate);
        self.read_timeout.saturating_add(earned)
    }

    /// Something arrived: the wait, if any, ends.
    fn arrived(&mut self) {
        if let Some(since) = self.pending_since.take() {
            self.waited += since.elapsed();
        }
    }

    /// Nothing arrived: whether the wait has used up the allowance (else the timer wakes
    /// the task when it will have).
    fn expired(&mut self, cx: &mut Context<'_>, received: u64) -> bool {
        let now = Instant::now();
        let since = *self.pending_since.get_or_insert(now);
        let left = self.allowance(received).saturating_sub(self.waited);
        // a timeout too large to add to the clock never runs out
        let Some(deadline) = since.checked_add(left) else {
            return false;
        };
        if now >= deadline {
            return true;
        }
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        timer.as_mut().poll(cx).is_ready()
    }
}

enum State {
    Reading(Incoming),
    Ended,
    Failed(BodyFailure),
}

/// The app's request body (see the module doc).
pub struct AppBody {
    state: State,
    pace: Pace,
    received: u64,
    limits: IntakeLimits,
    /// The client waits for `100 Continue` before it sends the body.
    expects_continue: bool,
    /// Whether anyone asked for the body (which sends the `100 Continue`).
    polled: bool,
    watch: BodyWatch,
    /// A drain in progress: dropped, it is let go, never drained again.
    draining: bool,
    /// For the log events of a drain.
    request_id: Arc<str>,
}

impl std::fmt::Debug for AppBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppBody")
            .field("received", &self.received)
            .field("failure", &self.watch.failure())
            .finish_non_exhaustive()
    }
}

impl AppBody {
    /// The body of a request with these headers.
    pub fn new(
        incoming: Incoming,
        headers: &HeaderMap,
        limits: IntakeLimits,
        request_id: &str,
    ) -> AppBody {
        let expects_continue = headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        AppBody {
            state: State::Reading(incoming),
            pace: Pace::new(&limits),
            received: 0,
            limits,
            expects_continue,
            polled: false,
            watch: BodyWatch::default(),
            draining: false,
            request_id: Arc::from(request_id),
        }
    }

    /// A handle that tells, after the body was handed on, whether the app's body failed.
    pub fn watch(&self) -> BodyWatch {
        self.watch.clone()
    }

    fn fail(&mut self, failure: BodyFailure) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let _ = self.watch.0.set(failure);
        let rest = std::mem::replace(&mut self.state, State::Failed(failure));
        // too large: the rest is drained like any unread body, so the client reads its 413;
        // too slow: let go at once, waiting longer for it is what the limit forbids
        if failure != BodyFailure::TooSlow && !self.draining {
            let pace = std::mem::replace(&mut self.pace, Pace::new(&self.limits));
            self.drain(rest, pace);
        }
        Poll::Ready(Some(Err(Box::new(failure))))
    }

    /// Reads and discards the rest of a body dropped unread (see the module doc).
    fn drain(&self, state: State, pace: Pace) {
        let State::Reading(incoming) = state else {
            return;
        };
        let (limits, request_id) = (self.limits, &self.request_id);
        if incoming.is_end_stream() {
            return;
        }
        let over = incoming.size_hint().lower() > limits.drain_bytes;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if over {
            tracing::debug!(
                %request_id,
                received = self.received,
                "unread request body over limits.drain_bytes: not drained"
            );
            return;
        }
        let body = AppBody {
            state: State::Reading(incoming),
            pace,
            received: 0,
            limits: IntakeLimits {
                max_bytes: limits.drain_bytes,
                ..limits
            },
            expects_continue: false,
            polled: true,
            watch: BodyWatch::default(),
            draining: true,
            request_id: request_id.clone(),
        };
        runtime.spawn(discard(body));
    }
}

/// Reads a body to its end (or failure) and drops every byte.
async fn discard(mut body: AppBody) {
    use http_body_util::BodyExt;
    let request_id = body.request_id.clone();
    let mut drained: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => drained += frame.data_ref().map_or(0, |d| d.len() as u64),
            Err(e) => {
                tracing::debug!(%request_id, drained, error = %e, "stopped draining an unread request body");
                return;
            }
        }
    }
    tracing::debug!(%request_id, drained, "drained an unread request body");
}

impl Drop for AppBody {
    fn drop(&mut self) {
        if self.draining || (self.expects_continue && !self.polled) {
            return;
        }
        let state = std::mem::replace(&mut self.state, State::Ended);
        let pace = std::mem::replace(&mut self.pace, Pace::new(&self.limits));
        self.drain(state, pace);
    }
}

impl Body for AppBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let incoming = match &mut this.state {
            State::Reading(incoming) => incoming,
            State::Ended => return Poll::Ready(None),
            State::Failed(f) => return Poll::Ready(Some(Err(Box::new(*f)))),
        };
        this.polled = true;
        match Pin::new(incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.pace.arrived();
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    if this.received > this.limits.max_bytes {
                        let limit = this.limits.max_bytes;
                        return this.fail(BodyFailure::TooLarge { limit });
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                // the transport failed (a reset, a closed connection): nothing left to drain
                this.pace.arrived();
                this.state = State::Ended;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.pace.arrived();
                this.state = State::Ended;
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.pace.expired(cx, this.received) {
                    return this.fail(BodyFailure::TooSlow);
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            State::Reading(incoming) => incoming.is_end_stream(),
            State::Ended => true,
            State::Failed(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Reading(incoming) => incoming.size_hint(),
            State::Ended => SizeHint::with_exact(0),
            State::Failed(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> IntakeLimits {
        IntakeLimits {
            read_timeout: Duration::from_secs(10),
            min_rate: 100,
            max_bytes: 1000,
            drain_bytes: 1000,
        }
    }

    #[test]
    fn received_bytes_earn_time_at_the_minimum_rate() {
        let pace = Pace::new(&limits());
        assert_eq!(pace.allowance(0), Duration::from_secs(10));
        assert_eq!(pace.allowance(250), Duration::from_millis(12_500));
    }

    #[tokio::test(start_paused = true)]
    async fn only_time_spent_waiting_counts() {
        let mut pace = Pace::new(&limits());
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(!pace.expired(&mut cx, 0));
        tokio::time::advance(Duration::from_secs(6)).await;
        pace.arrived();
        // not waiting: time passes uncounted
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(!pace.expired(&mut cx, 0));
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(!pace.expired(&mut cx, 0));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(pace.expired(&mut cx, 0), "6 s + 4 s of waiting use up 10 s");
        // bytes received since earn more
        assert!(!pace.expired(&mut cx, 200));
    }

    #[test]
    fn failures_become_their_problems() {
        assert_eq!(
            ProxyError::from(BodyFailure::TooSlow),
            ProxyError::RequestTimeout
        );
        assert_eq!(
            ProxyError::from(BodyFailure::TooLarge { limit: 5 }),
            ProxyError::BodyTooLarge { limit: 5 }
        );
        let boxed: BoxError = Box::new(BodyFailure::TooSlow);
        assert_eq!(BodyFailure::of(boxed.as_ref()), Some(BodyFailure::TooSlow));
        let watch = BodyWatch::default();
        assert_eq!(
            watch.explain(ProxyError::NoRoute),
            ProxyError::NoRoute,
            "nothing failed: the error stands"
        );
        let _ = watch.0.set(BodyFailure::TooSlow);
        assert_eq!(
            watch.explain(ProxyError::UpstreamUnavailable {
                upstream: "u".into()
            }),
            ProxyError::RequestTimeout
        );
    }
}
