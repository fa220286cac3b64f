//! Governed response bodies too large to buffer, governed as a stream (part of phase 6, with
//! phases 7 and 8 folded into the stream): Salesforce Bulk API 2.0 CSV results row by row
//! (pages whose filtered rows do not fit `limits.buffer_bytes`; `csv.rs` buffers the others
//! and counts the rows this stream must deliver), and JSON list pages larger than
//! `limits.buffer_bytes` record by record.
//!
//! Such a body is never collected: the upstream body is decoded chunk by chunk (with the
//! same output and ratio caps), fed to a `StreamGovernor` (the policy's CSV governor, whose
//! columns are decided once at the header row and rows filtered by consent, or the JSON list
//! streamer, which filters one record at a time), charged to the export budget per chunk,
//! and released through a channel. Memory stays at one chunk plus one row or record,
//! whatever the size of the export.
//!
//! The transfer log gets an *intent* record before the first byte and a *close* record, with
//! the final counts, after the last byte has been produced but before the stream is allowed
//! to end cleanly. Anything that goes wrong mid-stream (a budget overrun, malformed CSV, an
//! upstream failure, a log that cannot be written) ends the stream with an error, which hyper
//! turns into `RST_STREAM` (HTTP/2) or a closed connection (HTTP/1.1): a client never sees a
//! clean short body it could mistake for the whole export.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::upstream::UpstreamBody;
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::sync::mpsc;

use http::{header, HeaderMap};

use super::{buffer, log, Ctx, Governed};
use crate::audit::{self, AuditLog, Decision, Stage, TransferRecord};
use crate::body::encoding::{self, Decoder};
use crate::body::json_stream::{JsonListStream, JsonStreamError, JsonStreamLimits};
use crate::body::{BoxError, ProxyBody};
use crate::budget::{StreamCharge, StreamVerdict};
use crate::error::{Inspection, ProblemType, ProxyError};
use crate::policy::{self, CsvFailure, CsvGovernor, Direction, Outcome, PolicySet, Refusal};
use crate::state::State;

/// Why a governed stream failed.
#[derive(Debug)]
enum StreamFailure {
    /// The policy refused (e.g. a `block` category in the header row).
    Refused(Refusal),
    /// The body could not be inspected; never a value.
    Reason(Inspection),
}

impl StreamFailure {
    /// The reason, as a stream that already started ends with it.
    fn reason(&self) -> Inspection {
        match self {
            StreamFailure::Refused(_) => Inspection::Refused,
            StreamFailure::Reason(r) => *r,
        }
    }
}

/// A body transformer that works chunk by chunk: CSV rows or JSON list records.
trait StreamGovernor: Send {
    fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, StreamFailure>;
    fn finish(&mut self) -> Result<Bytes, StreamFailure>;
    /// Records delivered so far.
    fn records(&self) -> u64;
    /// What the policy did so far (for the close record).
    fn outcome(&self) -> Outcome;
}

/// Bulk CSV through the policy's CSV governor.
struct CsvStream {
    governor: CsvGovernor<Arc<PolicySet>>,
    policy: Arc<PolicySet>,
}

fn csv_failure(f: CsvFailure) -> StreamFailure {
    match f {
        CsvFailure::Refused(r) => StreamFailure::Refused(r),
        other => StreamFailure::Reason(Inspection::from(&other)),
    }
}

impl StreamGovernor for CsvStream {
    fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, StreamFailure> {
        self.governor.feed(chunk).map_err(csv_failure)
    }
    fn finish(&mut self) -> Result<Bytes, StreamFailure> {
        self.governor.finish().map_err(csv_failure)
    }
    fn records(&self) -> u64 {
        self.governor.report().records()
    }
    fn outcome(&self) -> Outcome {
        self.governor.report().outcome(&self.policy)
    }
}

type RecordFn =
    Box<dyn FnMut(serde_json::Value) -> Result<Option<serde_json::Value>, Refusal> + Send>;
type EnvelopeFn = Box<
    dyn FnMut(
            serde_json::Map<String, serde_json::Value>,
        ) -> Result<serde_json::Map<String, serde_json::Value>, Refusal>
        + Send,
>;

/// A JSON list page larger than the buffer, record by record.
struct JsonStream {
    inner: JsonListStream<RecordFn, EnvelopeFn, Refusal>,
    acc: Arc<std::sync::Mutex<Outcome>>,
}

fn json_failure(e: JsonStreamError<Refusal>) -> StreamFailure {
    match e {
        JsonStreamError::Callback(r) => StreamFailure::Refused(r),
        other => StreamFailure::Reason(Inspection::from(&other)),
    }
}

impl JsonStream {
    /// `apply_one` filters a one-record page; `apply_envelope` the page without records.
    fn new(
        array_key: &str,
        limits: JsonStreamLimits,
        mut apply_one: impl FnMut(&mut serde_json::Value) -> Result<Outcome, Refusal> + Send + 'static,
        mut apply_envelope: impl FnMut(&mut serde_json::Value) -> Result<Outcome, Refusal>
            + Send
            + 'static,
    ) -> JsonStream {
        let acc = Arc::new(std::sync::Mutex::new(Outcome::default()));
        let key = array_key.to_string();
        let (acc_r, acc_e, key_r, key_e) = (acc.clone(), acc.clone(), key.clone(), key.clone());
        let on_record: RecordFn = Box::new(move |record| {
            let mut page = serde_json::Value::Object(
                [(key_r.clone(), serde_json::Value::Array(vec![record]))]
                    .into_iter()
                    .collect(),
            );
            let outcome = apply_one(&mut page)?;
            merge(&acc_r, &outcome);
            Ok(page
                .get_mut(&key_r)
                .and_then(|a| a.as_array_mut())
                .and_then(std::vec::Vec::pop))
        });
        let on_envelope: EnvelopeFn = Box::new(move |mut map| {
            map.insert(key_e.clone(), serde_json::Value::Array(Vec::new()));
            let mut page = serde_json::Value::Object(map);
            let outcome = apply_envelope(&mut page)?;
            merge(&acc_e, &outcome);
            let mut map = match page {
                serde_json::Value::Object(m) => m,
                _ => serde_json::Map::new(),
            };
            map.shift_remove(&key_e);
            Ok(map)
        });
        JsonStream {
            inner: JsonListStream::new(array_key, limits, on_record, on_envelope),
            acc,
        }
    }
}

fn merge(acc: &std::sync::Mutex<Outcome>, o: &Outcome) {
    if let Ok(mut a) = acc.lock() {
        *a = super::tunnel::merged([&*a, o].into_iter());
    }
}

impl StreamGovernor for JsonStream {
    fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, StreamFailure> {
        self.inner.feed(chunk).map_err(json_failure)
    }
    fn finish(&mut self) -> Result<Bytes, StreamFailure> {
        self.inner.finish().map_err(json_failure)
    }
    fn records(&self) -> u64 {
        self.acc.lock().map_or(0, |a| a.records)
    }
    fn outcome(&self) -> Outcome {
        self.acc.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

/// A body fed by a task through a channel.
struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, BoxError>>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|r| r.map(Frame::data)))
    }
}

/// Where a stream's bytes come from and what governs them.
struct Source {
    upstream: UpstreamBody,
    /// Bytes already read from the upstream (a buffered prefix), fed first.
    prefix: Option<Bytes>,
    decoder: Option<Decoder>,
    governor: Box<dyn StreamGovernor>,
}

/// Everything the streaming task needs.
struct Export {
    source: Source,
    charge: Option<StreamCharge>,
    /// The transfer log and the intent record; the close record is derived from it.
    log: Option<(AuditLog, TransferRecord)>,
    /// The incident detector's feed, given the close record once it is durable.
    feed: Option<log::Feed>,
    /// The records the stream must deliver, when its head already said so (a Bulk page's
    /// `Sforce-NumberOfRecords`, counted on a first read): any other number cuts it.
    expected: Option<u64>,
}

/// Why a stream that already started ended early, as its close record says.
#[derive(Debug, Clone, Copy)]
enum Ended {
    Failed(Inspection),
    BudgetExhausted,
    ClientGone,
}

impl Ended {
    fn as_str(self) -> &'static str {
        match self {
            Ended::Failed(r) => r.as_str(),
            Ended::BudgetExhausted => ProblemType::BudgetExhausted.as_str(),
            Ended::ClientGone => "client-gone",
        }
    }
}

/// A Bulk CSV result too large to buffer: the policy's CSV governor, columns decided at the
/// header row; `rows` is what its head already promises (`Sforce-NumberOfRecords`), and the
/// stream is cut if the page delivers any other number. `decoder` decodes `upstream`.
pub async fn export(
    state: &State,
    ctx: &Ctx<Governed>,
    headers: &mut HeaderMap,
    upstream: UpstreamBody,
    decoder: Option<Decoder>,
    status: u16,
    rows: u64,
) -> Result<ProxyBody, ProxyError> {
    let governor = Box::new(CsvStream {
        governor: super::csv::governor(ctx)?,
        policy: ctx.route.policy.clone(),
    });
    let source = Source {
        upstream,
        prefix: None,
        decoder,
        governor,
    };
    start(state, ctx, headers, source, status, Some(rows)).await
}

/// A JSON list page larger than `limits.buffer_bytes`, record by record. Only a page whose
/// records sit in one top-level array (`$.records[*]`) streams; a single record or a nested
/// shape too large to buffer is refused (`too-large`).
pub async fn list(
    state: &State,
    ctx: &Ctx<Governed>,
    headers: &mut HeaderMap,
    prefix: Bytes,
    upstream: UpstreamBody,
    status: u16,
) -> Result<ProxyBody, ProxyError> {
    let op = &ctx.flow.op;
    let paths = ctx.route.policy.record_paths(op);
    let Some(array_key) = paths
        .first()
        .and_then(|p| crate::body::json_stream::array_key_of(p))
        .map(str::to_string)
    else {
        return Err(ProxyError::ResponseNotInspectable {
            reason: Inspection::TooLarge,
        });
    };
    let purpose = ctx.purpose()?.clone();
    let decoder = decoder(state, headers)?;
    let applier = |set: Arc<PolicySet>, purpose: policy::Purpose, op: policy::Operation| {
        let key = ctx.route.pseudonym_key.clone();
        let links = ctx.route.upstream.links.clone();
        let shape = ctx.flow.shape.clone();
        move |page: &mut serde_json::Value| {
            let o = policy::decide::response_body(&set, &purpose, &op, page, key.as_ref(), &shape)?;
            links.rewrite_json(page);
            Ok(o)
        }
    };
    let limits = JsonStreamLimits {
        max_depth: state.config.limits.json_depth,
        ..Default::default()
    };
    let set = &ctx.route.policy;
    let counts = purpose.counts;
    let envelope = {
        let apply = applier(set.clone(), purpose.clone(), op.clone());
        let (set, op) = (set.clone(), op.clone());
        // the envelope goes out before its records are filtered: a `delivered` count cannot
        // be known yet, so it is dropped rather than guessed (and `drop` drops it anyway)
        move |page: &mut serde_json::Value| {
            let mut o = apply(page)?;
            if counts != policy::Counts::Pass {
                o.changed |= policy::drop_counts(&set, &op, page);
            }
            Ok(o)
        }
    };
    let governor = JsonStream::new(
        &array_key,
        limits,
        applier(set.clone(), purpose, op.clone()),
        envelope,
    );
    let source = Source {
        upstream,
        prefix: Some(prefix),
        decoder,
        governor: Box::new(governor),
    };
    start(state, ctx, headers, source, status, None).await
}

/// A decoder for a streamed body's content codings (caps: `limits.max_body_bytes` on the
/// output, `limits.decoded_ratio`).
pub(super) fn decoder(state: &State, headers: &HeaderMap) -> Result<Option<Decoder>, ProxyError> {
    let codings = buffer::codings(headers, Direction::Response)?;
    if codings.is_empty() {
        return Ok(None);
    }
    let limits = encoding::Limits::new(
        state.config.limits.max_body_bytes as usize,
        state.config.limits.decoded_ratio,
    );
    Decoder::new(&codings, limits)
        .map(Some)
        .map_err(|e| ProxyError::ResponseNotInspectable {
            reason: Inspection::from(&e),
        })
}

/// The start every governed stream shares: the budget's stream charger, the first output
/// produced (a refusal at the header or envelope is still an ordinary error response), the
/// intent record, then the rest through the channel body.
async fn start(
    state: &State,
    ctx: &Ctx<Governed>,
    headers: &mut HeaderMap,
    source: Source,
    status: u16,
    expected: Option<u64>,
) -> Result<ProxyBody, ProxyError> {
    let charge = ctx.flow.budget.as_ref().map(|scope| {
        state.budgets.stream(
            scope.key.clone(),
            scope.budget.clone(),
            scope.class,
            scope.shadow,
        )
    });
    let log = state.audit.clone().map(|log| {
        let record = log::record(
            &ctx.exchange(),
            audit::Direction::Response,
            None,
            Decision::Minimised,
            status,
            None,
        );
        (log, record)
    });
    let mut export = Export {
        source,
        charge,
        log,
        feed: log::Feed::of(state, ctx),
        expected,
    };
    let (first, ended) = prime(&mut export).await.map_err(|e| match e {
        StreamFailure::Refused(r) => ctx.refused(r),
        StreamFailure::Reason(reason) => ProxyError::ResponseNotInspectable { reason },
    })?;
    // sent as identity, framed by hyper
    headers.remove(header::CONTENT_ENCODING);
    tracing::info!(request_id = %ctx.request_id, route = ctx.template(), "streaming a governed body");
    release(export, first, ended)
        .await
        .map_err(|_| ProxyError::AuditUnavailable)
}

fn decode(decoder: &mut Option<Decoder>, data: &[u8]) -> Result<Bytes, StreamFailure> {
    match decoder {
        Some(d) => d
            .feed(data)
            .map_err(|e| StreamFailure::Reason(Inspection::from(&e))),
        None => Ok(Bytes::copy_from_slice(data)),
    }
}

/// Reads until the header row (or the envelope before the records) has been decided, so a
/// `block` category refuses the export before any byte goes out, and returns the first
/// output and whether the body has ended.
async fn prime(export: &mut Export) -> Result<(Bytes, bool), StreamFailure> {
    let source = &mut export.source;
    if let Some(prefix) = source.prefix.take() {
        let plain = decode(&mut source.decoder, &prefix)?;
        let out = source.governor.feed(&plain)?;
        if !out.is_empty() {
            return Ok((out, false));
        }
    }
    next_chunk(source).await
}

/// The next non-empty output, or the last one and `true` when the body has ended.
async fn next_chunk(source: &mut Source) -> Result<(Bytes, bool), StreamFailure> {
    loop {
        match source.upstream.frame().await {
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                let plain = decode(&mut source.decoder, &data)?;
                let out = source.governor.feed(&plain)?;
                if !out.is_empty() {
                    return Ok((out, false));
                }
            }
            Some(Err(_)) => return Err(StreamFailure::Reason(Inspection::Truncated)),
            None => {
                let mut out = BytesMut::new();
                if let Some(d) = source.decoder.take() {
                    let rest = d
                        .finish()
                        .map_err(|e| StreamFailure::Reason(Inspection::from(&e)))?;
                    out.extend_from_slice(&source.governor.feed(&rest)?);
                }
                out.extend_from_slice(&source.governor.finish()?);
                return Ok((out.freeze(), true));
            }
        }
    }
}

/// Appends the intent record (durable before the first byte), then streams the rest from a
/// task.
async fn release(export: Export, first: Bytes, ended: bool) -> Result<ProxyBody, BoxError> {
    if let Some((log, record)) = &export.log {
        let mut intent = record.clone();
        intent.stage = Stage::Intent;
        log.append(intent)
            .await
            .map_err(|e| -> BoxError { Box::new(e) })?;
    }
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(pump(export, tx, first, ended));
    Ok(http_body_util::BodyExt::boxed_unsync(ChannelBody { rx }))
}

/// What has gone out so far.
#[derive(Debug, Default, Clone, Copy)]
struct Sent {
    /// Records paid for.
    charged: u64,
    bytes: u64,
}

/// The streaming task: each chunk is paid for before it is released, the close record is
/// durable before the stream may end cleanly, and any failure ends the stream with an error.
async fn pump(
    mut export: Export,
    tx: mpsc::Sender<Result<Bytes, BoxError>>,
    first: Bytes,
    ended: bool,
) {
    let mut sent = Sent::default();
    let mut pending = Some(first);
    let mut done = ended;
    loop {
        let chunk = match pending.take() {
            Some(c) => c,
            None if done => break,
            None => match next_chunk(&mut export.source).await {
                Ok((c, finished)) => {
                    done = finished;
                    c
                }
                Err(f) => {
                    let reason = f.reason();
                    let ended = Some(Ended::Failed(reason));
                    close(
                        export.feed.as_ref(),
                        close_record(&export, sent, Decision::Blocked, ended),
                    )
                    .await;
                    let _ = tx.send(Err(reason.as_str().into())).await;
                    return;
                }
            },
        };
        if !pay(&mut export, &mut sent).await {
            let ended = Some(Ended::BudgetExhausted);
            close(
                export.feed.as_ref(),
                close_record(&export, sent, Decision::RateLimited, ended),
            )
            .await;
            let _ = tx.send(Err("export budget exhausted".into())).await;
            return;
        }
        // the head promised a number of records: more, or (at the end) fewer, cuts the stream
        let records = export.source.governor.records();
        if let Some(expected) = export.expected {
            if records > expected || (done && records != expected) {
                let ended = Some(Ended::Failed(Inspection::CsvChanged));
                close(
                    export.feed.as_ref(),
                    close_record(&export, sent, Decision::Blocked, ended),
                )
                .await;
                let _ = tx.send(Err(Inspection::CsvChanged.as_str().into())).await;
                return;
            }
        }
        if done
            && !close(
                export.feed.as_ref(),
                close_record(&export, sent, Decision::Minimised, None),
            )
            .await
        {
            let _ = tx.send(Err("transfer log unavailable".into())).await;
            return;
        }
        sent.bytes += chunk.len() as u64;
        if !chunk.is_empty() && tx.send(Ok(chunk)).await.is_err() {
            // the client went away
            let ended = Some(Ended::ClientGone);
            close(
                export.feed.as_ref(),
                close_record(&export, sent, Decision::Blocked, ended),
            )
            .await;
            return;
        }
    }
}

/// Pays for the records produced so far; false when the budget aborts the stream.
async fn pay(export: &mut Export, sent: &mut Sent) -> bool {
    let rows = export.source.governor.records();
    if let Some(c) = export.charge.as_mut() {
        if rows > sent.charged {
            if let StreamVerdict::Abort(_) = c.charge_stream(rows - sent.charged).await {
                return false;
            }
        }
    }
    sent.charged = rows;
    true
}

/// The close record with the final counts, when there is a transfer log.
fn close_record(
    export: &Export,
    sent: Sent,
    decision: Decision,
    ended: Option<Ended>,
) -> Option<(AuditLog, TransferRecord)> {
    let (log, record) = export.log.as_ref()?;
    let outcome = export.source.governor.outcome();
    let mut close = record.clone();
    close.stage = Stage::Close;
    close.records = sent.charged;
    close.bytes = sent.bytes;
    close.categories_received = outcome.received_names();
    close.categories_delivered = outcome.delivered_names();
    close.actions = outcome.action_counts();
    close.decision = if ended.is_none() && !outcome.changed {
        Decision::Allowed
    } else {
        decision
    };
    close.reason = ended.map(|e| e.as_str().to_string());
    Some((log.clone(), close))
}

/// Appends the close record; false when it could not be written.
async fn close(feed: Option<&log::Feed>, pending: Option<(AuditLog, TransferRecord)>) -> bool {
    let Some((log, record)) = pending else {
        return true;
    };
    match log.append_record(&record).await {
        Ok(_) => {
            if let Some(feed) = feed {
                feed.observe(&record);
            }
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "transfer log append failed: the export is aborted");
            false
        }
    }
}
