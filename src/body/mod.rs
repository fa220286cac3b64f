//! Bodies as they flow through Zweck.
//!
//! Everything is `Bytes` in a boxed body so the pipeline can hand on a streamed upstream body
//! untouched (ungoverned routes) or a rewritten, fully inspected one (governed routes) through
//! the same type. Collecting is always bounded: there is no unbounded `collect()` anywhere.

pub mod csv;
pub mod encoding;
pub mod headers;
pub mod json_stream;
pub mod media;
pub mod multipart;

use bytes::{Bytes, BytesMut};
use http_body::Body;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// The error type of proxied bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every request and response Zweck produces.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// A body of known bytes.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|e| match e {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> ProxyBody {
    Empty::new().map_err(|e| match e {}).boxed_unsync()
}

/// Wraps any body (e.g. hyper's `Incoming`) without touching its bytes.
pub fn stream<B>(body: B) -> ProxyBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// Why a bounded collect stopped.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("body larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("body stream failed: {0}")]
    Stream(BoxError),
}

/// Collects a body, refusing it as soon as it grows past `limit` (the rest is not read).
pub async fn collect_limited<B>(mut body: B, limit: usize) -> Result<Bytes, CollectError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let hint = body.size_hint();
    if hint.lower() > limit as u64 {
        return Err(CollectError::TooLarge { limit });
    }
    let mut buf = BytesMut::with_capacity((hint.lower() as usize).min(limit));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| CollectError::Stream(e.into()))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(CollectError::TooLarge { limit });
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn collect_stops_at_the_limit() {
        let ok = collect_limited(full(vec![b'a'; 10]), 10)
            .await
            .expect("fits");
        assert_eq!(ok.len(), 10);
        let err = collect_limited(full(vec![b'a'; 11]), 10).await;
        assert!(matches!(err, Err(CollectError::TooLarge { limit: 10 })));
    }
}
