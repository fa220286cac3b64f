//! Salesforce Bulk API 2.0 results (CSV) in phase 6, with the row count SDKs read.
//!
//! simple-salesforce reads `Sforce-NumberOfRecords` of every results page (and fails without
//! it), and the header must say how many rows the app gets, not how many the CRM sent:
//! consent removes rows. A count in the head is only known once the page has been filtered,
//! so a page is filtered whole first, its output held under `limits.buffer_bytes` (and the
//! global buffer budget):
//!
//! - when the purpose's rows fit, the page goes out whole with the exact count, as any
//!   buffered governed response (charged and logged by phases 7 and 8);
//! - when they do not, the rows are only counted to the end, and the same page is fetched
//!   again (Salesforce keeps a locator's results as long as the job exists, and the request is
//!   the same GET) and streamed under that count (`stream.rs`, row by row, charged per chunk,
//!   intent and close records). A page that then delivers another number of rows is cut
//!   (`csv-changed`), like any stream that fails: the app never takes a short body for the
//!   whole page.
//!
//! `Sforce-Locator` passes unchanged: it is the CRM's cursor, and the rows Zweck withholds
//! are not rows the app could page to.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderValue};
use http_body_util::BodyExt;

use super::buffer::{self, Reservation};
use super::log::BodyReport;
use super::{forward, stream, Ctx, Governed};
use crate::body::encoding::Decoder;
use crate::body::{self, media, ProxyBody};
use crate::error::{Inspection, ProxyError};
use crate::policy::{self, CsvFailure, CsvGovernor, Direction, PolicySet};
use crate::state::State;
use crate::upstream::UpstreamBody;

/// The header SDKs read the rows of a results page from.
const NUMBER_OF_RECORDS: &str = "sforce-numberofrecords";

/// The request that fetched a results page, kept to fetch the page again when its rows are
/// too large to hold (a GET: no body).
#[derive(Debug, Clone)]
pub struct Refetch {
    pub method: http::Method,
    pub uri: http::Uri,
    pub headers: HeaderMap,
}

impl Refetch {
    /// What `req` asks, when it can be asked again.
    pub fn of(req: &http::Request<ProxyBody>) -> Option<Refetch> {
        (req.method() == http::Method::GET).then(|| Refetch {
            method: req.method().clone(),
            uri: req.uri().clone(),
            headers: req.headers().clone(),
        })
    }

    fn request(&self) -> http::Request<ProxyBody> {
        let mut req = http::Request::new(body::empty());
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        req
    }
}

/// The policy's CSV governor for the route's objects, columns decided at the header row.
pub(super) fn governor(ctx: &Ctx<Governed>) -> Result<CsvGovernor<Arc<PolicySet>>, ProxyError> {
    let plan = policy::csv_plan(
        &ctx.route.policy,
        ctx.purpose()?,
        &ctx.flow.op,
        ctx.route.pseudonym_key.as_ref(),
        &policy::CsvJob::default(),
    )
    .map_err(|r| ctx.refused(r))?;
    Ok(plan.governor(Default::default()))
}

/// A Bulk results page: filtered whole with its count, or counted and streamed.
pub async fn results(
    state: &State,
    ctx: &mut Ctx<Governed>,
    headers: &mut HeaderMap,
    incoming: UpstreamBody,
    status: u16,
) -> Result<ProxyBody, ProxyError> {
    let decoder = stream::decoder(state, headers)?;
    let mut governor = governor(ctx)?;
    let whole = filter(state, ctx, incoming, decoder, &mut governor).await?;
    let report = governor.report();
    let rows = report.records();
    headers.insert(NUMBER_OF_RECORDS, HeaderValue::from(rows));
    // what goes out is identity-coded: the rows were decoded to be filtered
    headers.remove(header::CONTENT_ENCODING);
    if let Some(bytes) = whole {
        let outcome = report.outcome(&ctx.route.policy);
        ctx.log_outcome(Direction::Response, &outcome);
        ctx.flow.received = Some(BodyReport {
            outcome,
            bytes: bytes.len() as u64,
            parts: Vec::new(),
        });
        return Ok(body::full(bytes));
    }
    let Some(again) = ctx.flow.refetch.take() else {
        return Err(ProxyError::ResponseNotInspectable {
            reason: Inspection::TooLarge,
        });
    };
    tracing::info!(request_id = %ctx.request_id, rows, "bulk page too large to hold: fetched again to stream");
    let resp = forward::forward(state, &ctx.route, again.request()).await?;
    let (parts, incoming) = resp.into_parts();
    if parts.status.as_u16() != status
        || media::classify_headers(&parts.headers) != media::BodyKind::Csv
    {
        return Err(ProxyError::ResponseNotInspectable {
            reason: Inspection::CsvChanged,
        });
    }
    let decoder = stream::decoder(state, &parts.headers)?;
    stream::export(state, ctx, headers, incoming, decoder, status, rows).await
}

/// Reads a page through the governor to its end: the output while it fits
/// `limits.buffer_bytes`, `None` once it did not (the governor has still seen every row).
async fn filter(
    state: &State,
    ctx: &Ctx<Governed>,
    mut incoming: UpstreamBody,
    mut decoder: Option<Decoder>,
    governor: &mut CsvGovernor<Arc<PolicySet>>,
) -> Result<Option<Bytes>, ProxyError> {
    let limit = state.config.limits.buffer_bytes as usize;
    let mut reservation = Some(Reservation::new(state, &HeaderMap::new())?);
    let mut out = Some(BytesMut::new());
    let refuse = |f: CsvFailure| match f {
        CsvFailure::Refused(r) => ctx.refused(r),
        other => ProxyError::ResponseNotInspectable {
            reason: Inspection::from(&other),
        },
    };
    let decode_failed =
        |e: &crate::body::encoding::DecodeError| ProxyError::ResponseNotInspectable {
            reason: Inspection::from(e),
        };
    let keep = |produced: Bytes,
                out: &mut Option<BytesMut>,
                reservation: &mut Option<Reservation>|
     -> Result<(), ProxyError> {
        let Some(buf) = out.as_mut() else {
            return Ok(());
        };
        if buf.len() + produced.len() > limit {
            // too large to hold: count on, release the room
            *out = None;
            *reservation = None;
            return Ok(());
        }
        buf.extend_from_slice(&produced);
        if let Some(r) = reservation.as_mut() {
            r.grow(state, buf.len())?;
        }
        Ok(())
    };
    while let Some(frame) = incoming.frame().await {
        // truncated, or stalled past the upstream's body idle timeout (504)
        let frame = frame.map_err(|e| buffer::stream_failure(e.as_ref(), Direction::Response))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let plain = match decoder.as_mut() {
            Some(d) => d.feed(&data).map_err(|e| decode_failed(&e))?,
            None => data,
        };
        let produced = governor.feed(&plain).map_err(refuse)?;
        keep(produced, &mut out, &mut reservation)?;
    }
    if let Some(d) = decoder.take() {
        let rest = d.finish().map_err(|e| decode_failed(&e))?;
        let produced = governor.feed(&rest).map_err(refuse)?;
        keep(produced, &mut out, &mut reservation)?;
    }
    let produced = governor.finish().map_err(refuse)?;
    keep(produced, &mut out, &mut reservation)?;
    Ok(out.map(BytesMut::freeze))
}
