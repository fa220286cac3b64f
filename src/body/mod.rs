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

/// A body of one data frame at least this long is kept as it came. A frame is a slice of
/// the connection's read buffer (hyper, h2), and holding the slice holds the whole buffer:
/// up to ~400 KiB on HTTP/1.1. Below this a body is copied out, so that many small bodies
/// held at once (`limits.buffered_total` counts their bytes) pin no more than they count;
/// at or above it the buffer is at most a few times the body, and the copy would cost more.
pub const SHARE_ONE_FRAME_FROM: usize = 64 * 1024;

/// Collects a body, refusing it as soon as it grows past `limit` (the rest is not read).
pub async fn collect_limited<B>(mut body: B, limit: usize) -> Result<Bytes, CollectError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    if body.size_hint().lower() > limit as u64 {
        return Err(CollectError::TooLarge { limit });
    }
    match gather(&mut body, limit).await {
        Ok(Gathered::Whole(bytes)) => Ok(bytes),
        Ok(Gathered::Over(_)) => Err(CollectError::TooLarge { limit }),
        Err(e) => Err(CollectError::Stream(e)),
    }
}

/// What [`gather`] read.
#[derive(Debug)]
pub enum Gathered {
    /// The whole body.
    Whole(Bytes),
    /// The bytes read until they passed the limit (its last frame whole); the rest is still
    /// in the body.
    Over(Bytes),
}

/// Reads a body to its end or until it passes `limit`, whichever comes first.
///
/// A body of one data frame is returned as it came when it is large (no copy: an upstream
/// page on HTTP/2 is one frame up to `pool::H2_MAX_FRAME`), copied out when it is small
/// ([`SHARE_ONE_FRAME_FROM`]); frames after the first are joined in one buffer, sized from
/// the body's size hint (growing by doubling copied ~2x the body).
pub async fn gather<B>(body: &mut B, limit: usize) -> Result<Gathered, BoxError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let hint = body.size_hint().lower();
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(Into::into)?.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        len += data.len();
        match first.take() {
            None if buf.is_empty() => first = Some(data),
            held => {
                if buf.is_empty() {
                    buf.reserve(
                        usize::try_from(hint)
                            .unwrap_or(usize::MAX)
                            .clamp(len, limit.saturating_add(1)),
                    );
                }
                if let Some(held) = held {
                    buf.extend_from_slice(&held);
                }
                buf.extend_from_slice(&data);
            }
        }
        if len > limit {
            return Ok(Gathered::Over(first.unwrap_or_else(|| buf.freeze())));
        }
    }
    Ok(Gathered::Whole(match first {
        Some(one) if one.len() >= SHARE_ONE_FRAME_FROM => one,
        Some(small) => Bytes::copy_from_slice(&small),
        None => buf.freeze(),
    }))
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

    #[tokio::test]
    async fn collect_joins_frames_in_order_and_counts_them_all_against_the_limit() {
        use http_body::Frame;
        use std::collections::VecDeque;
        use std::pin::Pin;
        use std::task::{Context, Poll};
        /// A body of the given data frames, one per poll.
        struct Frames(VecDeque<Bytes>);
        impl Body for Frames {
            type Data = Bytes;
            type Error = BoxError;
            fn poll_frame(
                mut self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
                Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
            }
        }
        let frames =
            |parts: &[&'static [u8]]| Frames(parts.iter().map(|p| Bytes::from_static(p)).collect());
        let one = collect_limited(frames(&[b"abc"]), 10).await.expect("fits");
        assert_eq!(&one[..], b"abc");
        // one frame: a small one is copied out of the (connection's) buffer it came in, a
        // large one is kept as it came
        let small = Bytes::from(vec![b'x'; SHARE_ONE_FRAME_FROM - 1]);
        let got = collect_limited(Frames([small.clone()].into()), usize::MAX)
            .await
            .expect("fits");
        assert_eq!(got, small);
        assert_ne!(got.as_ptr(), small.as_ptr(), "a small body pins no buffer");
        let large = Bytes::from(vec![b'x'; SHARE_ONE_FRAME_FROM]);
        let got = collect_limited(Frames([large.clone()].into()), usize::MAX)
            .await
            .expect("fits");
        assert_eq!(got.as_ptr(), large.as_ptr(), "a large body is not copied");
        let three = collect_limited(frames(&[b"ab", b"", b"cde", b"f"]), 6)
            .await
            .expect("fits");
        assert_eq!(&three[..], b"abcdef");
        let over = collect_limited(frames(&[b"abcd", b"efg"]), 6).await;
        assert!(matches!(over, Err(CollectError::TooLarge { limit: 6 })));
        let empty = collect_limited(frames(&[]), 6).await.expect("empty");
        assert!(empty.is_empty());
        // gather: past the limit, what was read comes back and the rest stays in the body
        let mut body = frames(&[b"abcd", b"efg", b"hi"]);
        let Ok(Gathered::Over(read)) = gather(&mut body, 6).await else {
            panic!("over the limit");
        };
        assert_eq!(&read[..], b"abcdefg");
        let rest = collect_limited(body, 6).await.expect("the rest");
        assert_eq!(&rest[..], b"hi");
        // a single frame over the limit is handed back as it came
        let mut body = Frames([large.clone()].into());
        let Ok(Gathered::Over(read)) = gather(&mut body, 10).await else {
            panic!("over the limit");
        };
        assert_eq!(read.as_ptr(), large.as_ptr(), "one frame is not copied");
        let Ok(Gathered::Whole(whole)) = gather(&mut frames(&[b"ab", b"c"]), 3).await else {
            panic!("within the limit");
        };
        assert_eq!(&whole[..], b"abc");
    }
}
