//! Governed bodies read whole: under a hard cap, decoded with output and ratio caps, and
//! held against the global buffer budget until they have been filtered and serialised.
//!
//! Used by phases 3 and 6 (and by tunnels). A parsed tree costs several times its bytes, so
//! `limits.buffered_total` bounds what all buffered bodies may hold at once, across
//! connections: a body that finds it used up is refused with 503 `overloaded`. Nothing here
//! parses; errors say why a body could not be read (`request-not-inspectable`,
//! `response-not-inspectable`, `body-too-large`).

use bytes::Bytes;
use http::{header, HeaderMap};
use tokio::sync::OwnedSemaphorePermit;

use super::headers::content_length;
use super::intake::BodyFailure;
use crate::body::{self, encoding, BoxError};
use crate::error::{Inspection, ProxyError};
use crate::json::JsonLimits;
use crate::policy::Direction;
use crate::state::State;
use crate::upstream::{BodyStalled, UpstreamBody};

/// The caps on a governed JSON document.
pub fn json_limits(state: &State) -> JsonLimits {
    JsonLimits {
        max_depth: state.config.limits.json_depth,
        max_bytes: state.config.limits.buffer_bytes as usize,
    }
}

/// The caps on decoding a buffered body: its output may not pass `limits.buffer_bytes`, nor
/// expand more than `limits.decoded_ratio` times.
pub fn decode_limits(state: &State) -> encoding::Limits {
    encoding::Limits::new(
        state.config.limits.buffer_bytes as usize,
        state.config.limits.decoded_ratio,
    )
}

/// The content codings of a governed body, which must be ones Zweck decodes.
pub fn codings(
    headers: &HeaderMap,
    direction: Direction,
) -> Result<Vec<encoding::Coding>, ProxyError> {
    encoding::content_codings(headers)
        .map_err(|e| ProxyError::not_inspectable(direction, Inspection::from(&e)))
}

/// Room held for one buffered body in the global buffer budget (`limits.buffered_total`),
/// until it is dropped.
#[derive(Debug)]
pub struct Reservation {
    permit: OwnedSemaphorePermit,
}

impl Reservation {
    /// The declared size up front, or 64 KiB for a body of unknown size; [`Reservation::grow`]
    /// tops it up once the size is known.
    pub fn new(state: &State, headers: &HeaderMap) -> Result<Reservation, ProxyError> {
        let cap = state.config.limits.buffer_bytes;
        let bytes = content_length(headers).unwrap_or(64 * 1024).min(cap);
        Ok(Reservation {
            permit: acquire_kib(state, bytes)?,
        })
    }

    /// Tops the reservation up to `actual` bytes.
    pub fn grow(&mut self, state: &State, actual: usize) -> Result<(), ProxyError> {
        let held = self.permit.num_permits() as u64 * 1024;
        if (actual as u64) > held {
            self.permit.merge(acquire_kib(state, actual as u64 - held)?);
        }
        Ok(())
    }
}

fn acquire_kib(state: &State, bytes: u64) -> Result<OwnedSemaphorePermit, ProxyError> {
    let kib = u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
    state
        .buffers
        .clone()
        .try_acquire_many_owned(kib)
        .map_err(|_| {
            tracing::warn!("buffered_total exhausted: refusing a governed body");
            ProxyError::Overloaded {
                retry_after: std::time::Duration::from_secs(1),
            }
        })
}

/// Reads a whole governed body (any media type) under the buffer budget and decodes it; the
/// `Content-Encoding` header goes, since what is sent on is what was inspected. A request
/// over `limits.buffer_bytes` is `body-too-large`, a response `too-large`.
pub async fn read_decoded<B>(
    state: &State,
    headers: &mut HeaderMap,
    incoming: B,
    direction: Direction,
) -> Result<(Bytes, Reservation), ProxyError>
where
    B: http_body::Body<Data = Bytes, Error = BoxError> + Unpin,
{
    let bad = |reason| ProxyError::not_inspectable(direction, reason);
    let mut reservation = Reservation::new(state, headers)?;
    let codings = codings(headers, direction)?;
    let limit = state.config.limits.buffer_bytes;
    let raw = body::collect_limited(incoming, limit as usize)
        .await
        .map_err(|e| match e {
            body::CollectError::TooLarge { .. } if direction == Direction::Request => {
                ProxyError::BodyTooLarge { limit }
            }
            body::CollectError::TooLarge { .. } => bad(Inspection::TooLarge),
            body::CollectError::Stream(e) => stream_failure(e.as_ref(), direction),
        })?;
    let bytes = decode(state, &mut reservation, headers, &raw, &codings, direction)?;
    Ok((bytes, reservation))
}

/// A governed response read as far as the buffer allows.
pub enum Read {
    /// The whole body, decoded.
    Decoded(Bytes, Reservation),
    /// Larger than `limits.buffer_bytes`: the bytes read so far (still encoded) and the rest,
    /// for a list page to go on as a stream (`stream.rs`).
    Overflow(Bytes, UpstreamBody),
}

/// Reads a governed response whole when it fits the buffer, else hands it over to be
/// streamed; one whose `Content-Length` is already too large is not read at all.
pub async fn read_or_overflow(
    state: &State,
    headers: &mut HeaderMap,
    mut incoming: UpstreamBody,
) -> Result<Read, ProxyError> {
    let direction = Direction::Response;
    let codings = codings(headers, direction)?;
    let limit = state.config.limits.buffer_bytes as usize;
    if content_length(headers).is_some_and(|n| n > limit as u64) {
        return Ok(Read::Overflow(Bytes::new(), incoming));
    }
    let mut reservation = Reservation::new(state, headers)?;
    let raw = match body::gather(&mut incoming, limit).await {
        Ok(body::Gathered::Whole(raw)) => raw,
        Ok(body::Gathered::Over(prefix)) => return Ok(Read::Overflow(prefix, incoming)),
        Err(e) => return Err(stream_failure(e.as_ref(), direction)),
    };
    let bytes = decode(state, &mut reservation, headers, &raw, &codings, direction)?;
    Ok(Read::Decoded(bytes, reservation))
}

/// A body that failed while being read: the app's body too slow or too large, the
/// upstream's stalled (504), or either truncated.
pub(super) fn stream_failure(
    e: &(dyn std::error::Error + 'static),
    direction: Direction,
) -> ProxyError {
    if let Some(failure) = BodyFailure::of(e) {
        return failure.into();
    }
    if let Some(stall) = BodyStalled::of(e) {
        return ProxyError::UpstreamTimeout {
            upstream: stall.upstream.to_string(),
        };
    }
    ProxyError::not_inspectable(direction, Inspection::Truncated)
}

/// Decodes a raw body, holding room for both the raw and the decoded bytes.
fn decode(
    state: &State,
    reservation: &mut Reservation,
    headers: &mut HeaderMap,
    raw: &Bytes,
    codings: &[encoding::Coding],
    direction: Direction,
) -> Result<Bytes, ProxyError> {
    reservation.grow(state, raw.len())?;
    let bytes = encoding::decode_bytes(raw, codings, &decode_limits(state))
        .map_err(|e| ProxyError::not_inspectable(direction, Inspection::from(&e)))?;
    reservation.grow(state, raw.len() + bytes.len())?;
    headers.remove(header::CONTENT_ENCODING);
    Ok(bytes)
}
