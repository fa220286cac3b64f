//! Streamed bulk exports: Salesforce Bulk API 2.0 CSV results governed row by row.
//!
//! A Bulk result page can be far larger than any buffer, so it is never collected: the
//! upstream body is decoded chunk by chunk (with the same output and ratio caps), fed to the
//! policy's CSV governor (columns decided once at the header row, rows filtered by consent),
//! charged to the export budget per chunk, and released through a channel. Memory stays at
//! one chunk plus one row, whatever the size of the export.
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

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::mpsc;

use crate::audit::{AuditLog, Decision, Stage, TransferRecord};
use crate::body::encoding::Decoder;
use crate::body::json_stream::{JsonListStream, JsonStreamError};
use crate::body::{BoxError, ProxyBody};
use crate::budget::{StreamCharge, StreamVerdict};
use crate::policy::{CsvFailure, CsvGovernor, Outcome, PolicySet, Refusal};

/// Why a governed stream failed.
#[derive(Debug)]
pub enum StreamFailure {
    /// The policy refused (e.g. a `block` category in the header row).
    Refused(Refusal),
    /// The body could not be inspected; a short reason, never a value.
    Reason(&'static str),
}

/// A body transformer that works chunk by chunk: CSV rows or JSON list records.
pub trait StreamGovernor: Send {
    fn feed(&mut self, chunk: &[u8]) -> Result<Bytes, StreamFailure>;
    fn finish(&mut self) -> Result<Bytes, StreamFailure>;
    /// Records delivered so far.
    fn records(&self) -> u64;
    /// What the policy did so far (for the close record).
    fn outcome(&self) -> Outcome;
}

/// Bulk CSV through the policy's CSV governor.
pub struct CsvStream {
    pub governor: CsvGovernor<Arc<PolicySet>>,
    pub policy: Arc<PolicySet>,
}

fn csv_failure(f: CsvFailure) -> StreamFailure {
    match f {
        CsvFailure::Refused(r) => StreamFailure::Refused(r),
        other => StreamFailure::Reason(other.reason()),
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
pub struct JsonStream {
    pub inner: JsonListStream<RecordFn, EnvelopeFn, Refusal>,
    pub acc: Arc<std::sync::Mutex<Outcome>>,
}

fn json_failure(e: JsonStreamError<Refusal>) -> StreamFailure {
    match e {
        JsonStreamError::Callback(r) => StreamFailure::Refused(r),
        other => StreamFailure::Reason(other.reason()),
    }
}

impl JsonStream {
    /// `apply_one` filters a one-record page; `apply_envelope` the page without records.
    pub fn new(
        array_key: &str,
        limits: crate::body::json_stream::JsonStreamLimits,
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
                .and_then(|a| a.pop()))
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
        *a = crate::proxy::tunnel::merged([&*a, o].into_iter());
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
        self.acc.lock().map(|a| a.records).unwrap_or(0)
    }
    fn outcome(&self) -> Outcome {
        self.acc.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

/// A body fed by a task through a channel.
pub struct ChannelBody {
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

/// Why a stream could not start (answered as a normal error response).
#[derive(Debug)]
pub enum StartFailure {
    Governor(StreamFailure),
    Decode(&'static str),
    Truncated,
}

/// Everything the streaming task needs.
pub struct Export {
    pub upstream: Incoming,
    pub decoder: Option<Decoder>,
    pub governor: Box<dyn StreamGovernor>,
    /// Bytes already read from the upstream (a buffered prefix), fed first.
    pub prefix: Option<Bytes>,
    pub charge: Option<StreamCharge>,
    pub log: Option<AuditLog>,
    /// The intent record; the close record is derived from it.
    pub record: Option<TransferRecord>,
}

fn decode(decoder: &mut Option<Decoder>, data: &[u8]) -> Result<Bytes, &'static str> {
    match decoder {
        Some(d) => d.feed(data).map_err(|_| "content-encoding"),
        None => Ok(Bytes::copy_from_slice(data)),
    }
}

/// Reads until the header row has been decided (a `block` category refuses the export here,
/// before any byte goes out) and returns the first output.
pub async fn prime(export: &mut Export) -> Result<(Bytes, bool), StartFailure> {
    let mut out = BytesMut::new();
    if let Some(prefix) = export.prefix.take() {
        let plain = decode(&mut export.decoder, &prefix).map_err(StartFailure::Decode)?;
        out.extend_from_slice(
            &export
                .governor
                .feed(&plain)
                .map_err(StartFailure::Governor)?,
        );
        if !out.is_empty() {
            return Ok((out.freeze(), false));
        }
    }
    loop {
        match export.upstream.frame().await {
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                let plain = decode(&mut export.decoder, &data).map_err(StartFailure::Decode)?;
                let produced = export
                    .governor
                    .feed(&plain)
                    .map_err(StartFailure::Governor)?;
                if !produced.is_empty() {
                    out.extend_from_slice(&produced);
                    return Ok((out.freeze(), false));
                }
            }
            Some(Err(_)) => return Err(StartFailure::Truncated),
            None => {
                if let Some(d) = export.decoder.take() {
                    let rest = d
                        .finish()
                        .map_err(|_| StartFailure::Decode("content-encoding"))?;
                    out.extend_from_slice(
                        &export
                            .governor
                            .feed(&rest)
                            .map_err(StartFailure::Governor)?,
                    );
                }
                out.extend_from_slice(&export.governor.finish().map_err(StartFailure::Governor)?);
                return Ok((out.freeze(), true));
            }
        }
    }
}

/// Appends the intent record (durable before the first byte), then streams the rest.
pub async fn start(mut export: Export, first: Bytes, ended: bool) -> Result<ProxyBody, BoxError> {
    if let (Some(log), Some(rec)) = (&export.log, &export.record) {
        let mut intent = rec.clone();
        intent.stage = Stage::Intent;
        log.append(intent)
            .await
            .map_err(|e| -> BoxError { Box::new(e) })?;
    }
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let mut charged = 0u64;
        let mut bytes = 0u64;
        let mut pending = Some(first);
        let mut done = ended;
        loop {
            let chunk = match pending.take() {
                Some(c) => c,
                None if done => break,
                None => match next_chunk(&mut export).await {
                    Ok((c, finished)) => {
                        done = finished;
                        c
                    }
                    Err(reason) => {
                        close(close_record(
                            &export,
                            charged,
                            bytes,
                            Decision::Blocked,
                            Some(reason),
                        ))
                        .await;
                        let _ = tx.send(Err(reason.into())).await;
                        return;
                    }
                },
            };
            // pay for the rows in this chunk before releasing it
            let rows = export.governor.records();
            if let Some(c) = export.charge.as_mut() {
                if rows > charged {
                    if let StreamVerdict::Abort(_) = c.charge_stream(rows - charged).await {
                        close(close_record(
                            &export,
                            charged,
                            bytes,
                            Decision::RateLimited,
                            Some("budget-exhausted"),
                        ))
                        .await;
                        let _ = tx.send(Err("export budget exhausted".into())).await;
                        return;
                    }
                }
            }
            charged = rows;
            if done {
                // the close record is durable before the stream may end cleanly
                if !close(close_record(
                    &export,
                    charged,
                    bytes,
                    Decision::Minimised,
                    None,
                ))
                .await
                {
                    let _ = tx.send(Err("transfer log unavailable".into())).await;
                    return;
                }
            }
            bytes += chunk.len() as u64;
            if !chunk.is_empty() && tx.send(Ok(chunk)).await.is_err() {
                // the client went away
                close(close_record(
                    &export,
                    charged,
                    bytes,
                    Decision::Blocked,
                    Some("client-gone"),
                ))
                .await;
                return;
            }
        }
    });
    Ok(http_body_util::BodyExt::boxed_unsync(ChannelBody { rx }))
}

fn reason_of(f: StreamFailure) -> &'static str {
    match f {
        StreamFailure::Refused(_) => "refused",
        StreamFailure::Reason(r) => r,
    }
}

async fn next_chunk(export: &mut Export) -> Result<(Bytes, bool), &'static str> {
    loop {
        match export.upstream.frame().await {
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                let plain = decode(&mut export.decoder, &data)?;
                let out = export.governor.feed(&plain).map_err(reason_of)?;
                if !out.is_empty() {
                    return Ok((out, false));
                }
            }
            Some(Err(_)) => return Err("truncated"),
            None => {
                let mut out = BytesMut::new();
                if let Some(d) = export.decoder.take() {
                    let rest = d.finish().map_err(|_| "content-encoding")?;
                    out.extend_from_slice(&export.governor.feed(&rest).map_err(reason_of)?);
                }
                out.extend_from_slice(&export.governor.finish().map_err(reason_of)?);
                return Ok((out.freeze(), true));
            }
        }
    }
}

/// Appends the close record with the final counts; false when it could not be written.
async fn close(pending: Option<(AuditLog, TransferRecord)>) -> bool {
    let Some((log, record)) = pending else {
        return true;
    };
    match log.append(record).await {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(error = %e, "transfer log append failed: the export is aborted");
            false
        }
    }
}

fn close_record(
    export: &Export,
    charged: u64,
    bytes: u64,
    decision: Decision,
    reason: Option<&str>,
) -> Option<(AuditLog, TransferRecord)> {
    let (Some(log), Some(rec)) = (&export.log, &export.record) else {
        return None;
    };
    let outcome = export.governor.outcome();
    let mut close = rec.clone();
    close.stage = Stage::Close;
    close.records = charged;
    close.bytes = bytes;
    close.categories_received = outcome.received_names();
    close.categories_delivered = outcome.delivered_names();
    close.actions = outcome.action_counts();
    close.decision = if reason.is_none() && !outcome.changed {
        Decision::Allowed
    } else {
        decision
    };
    close.reason = reason.map(str::to_string);
    Some((log.clone(), close))
}
