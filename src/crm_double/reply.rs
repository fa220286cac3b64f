//! Responses as plain values.
//!
//! Handlers return a [`Reply`] instead of a hyper `Response` so that Salesforce `composite` and
//! Dataverse `$batch` can run sub-requests through the very same handlers and embed the result.
//! Large results (Bulk CSV, the `large` test hook) are produced by a generator closure, so a
//! million-row export never sits in memory at once.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};

/// The response body type of the whole double.
pub(crate) type ResBody = UnsyncBoxBody<Bytes, Infallible>;

/// Produces the next chunk of a streamed body, `None` at the end.
pub(crate) type ChunkFn = Box<dyn FnMut() -> Option<Bytes> + Send>;

pub(crate) enum Payload {
    Full(Bytes),
    Stream { next: ChunkFn, len: Option<u64> },
}

/// A response before it becomes a hyper `Response`.
pub(crate) struct Reply {
    pub status: StatusCode,
    /// Boxed to keep `Reply` small: it is the error type of many `Result`s.
    pub headers: Box<HeaderMap>,
    pub payload: Payload,
}

pub(crate) const JSON: &str = "application/json;charset=UTF-8";

impl Reply {
    pub fn new(status: StatusCode) -> Self {
        Reply {
            status,
            headers: Box::default(),
            payload: Payload::Full(Bytes::new()),
        }
    }

    /// A JSON body with the given content type.
    pub fn json_as(
        status: StatusCode,
        content_type: &'static str,
        value: &serde_json::Value,
    ) -> Self {
        // Serialising a `Value` cannot fail (all keys are strings).
        let body = serde_json::to_vec(value).unwrap_or_default();
        Reply::new(status)
            .header(CONTENT_TYPE, content_type)
            .body(Bytes::from(body))
    }

    pub fn json(status: StatusCode, value: &serde_json::Value) -> Self {
        Reply::json_as(status, JSON, value)
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.payload = Payload::Full(body.into());
        self
    }

    pub fn stream(mut self, len: Option<u64>, next: ChunkFn) -> Self {
        self.payload = Payload::Stream { next, len };
        self
    }

    /// Adds a header; values we build ourselves are always valid, anything else is skipped.
    pub fn header(mut self, name: impl TryInto<HeaderName>, value: impl AsRef<str>) -> Self {
        if let (Ok(name), Ok(value)) = (name.try_into(), HeaderValue::from_str(value.as_ref())) {
            self.headers.append(name, value);
        }
        self
    }

    /// The whole body, draining a stream; used when a reply is embedded in another one.
    pub fn into_bytes(self) -> Bytes {
        match self.payload {
            Payload::Full(b) => b,
            Payload::Stream { mut next, .. } => {
                let mut out = BytesMut::new();
                while let Some(chunk) = next() {
                    out.extend_from_slice(&chunk);
                }
                out.freeze()
            }
        }
    }

    pub fn into_response(self) -> Response<ResBody> {
        let body: ResBody = match self.payload {
            Payload::Full(b) => Full::new(b).boxed_unsync(),
            Payload::Stream { next, len } => Generated::new(next, len).boxed_unsync(),
        };
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        *response.headers_mut() = *self.headers;
        response
    }
}

/// A body pulled from a generator, yielding to the runtime once between chunks so one large
/// response cannot starve other connections on the same worker.
pub(crate) struct Generated {
    next: ChunkFn,
    remaining: Option<u64>,
    yield_now: bool,
    done: bool,
}

impl Generated {
    pub fn new(next: ChunkFn, len: Option<u64>) -> Self {
        Generated {
            next,
            remaining: len,
            yield_now: false,
            done: false,
        }
    }
}

impl Body for Generated {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if this.yield_now {
            this.yield_now = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match (this.next)() {
            Some(chunk) => {
                this.yield_now = true;
                if let Some(rest) = this.remaining.as_mut() {
                    *rest = rest.saturating_sub(chunk.len() as u64);
                }
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            None => {
                this.done = true;
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn generated_body_yields_every_chunk() {
        let mut left = 3;
        let reply = Reply::new(StatusCode::OK).stream(
            Some(6),
            Box::new(move || {
                (left > 0).then(|| {
                    left -= 1;
                    Bytes::from_static(b"ab")
                })
            }),
        );
        let body = reply.into_response().into_body();
        let collected = body
            .collect()
            .await
            .map(http_body_util::Collected::to_bytes);
        assert_eq!(collected.ok(), Some(Bytes::from_static(b"ababab")));
    }
}
