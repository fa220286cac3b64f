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
use crate::body::{BoxError, ProxyBody};
use crate::budget::{StreamCharge, StreamVerdict};
use crate::policy::{CsvFailure, CsvGovernor, PolicySet};

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
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(b))) => Poll::Ready(Some(Ok(Frame::data(b)))),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Why a stream could not start (answered as a normal error response).
#[derive(Debug)]
pub enum StartFailure {
    Csv(CsvFailure),
    Decode(&'static str),
    Truncated,
}

/// Everything the streaming task needs.
pub struct Export {
    pub upstream: Incoming,
    pub decoder: Option<Decoder>,
    pub governor: CsvGovernor<Arc<PolicySet>>,
    pub policy: Arc<PolicySet>,
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
    loop {
        match export.upstream.frame().await {
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                let plain = decode(&mut export.decoder, &data).map_err(StartFailure::Decode)?;
                let produced = export.governor.feed(&plain).map_err(StartFailure::Csv)?;
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
                    out.extend_from_slice(&export.governor.feed(&rest).map_err(StartFailure::Csv)?);
                }
                out.extend_from_slice(&export.governor.finish().map_err(StartFailure::Csv)?);
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
            let rows = export.governor.report().records();
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

async fn next_chunk(export: &mut Export) -> Result<(Bytes, bool), &'static str> {
    loop {
        match export.upstream.frame().await {
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                let plain = decode(&mut export.decoder, &data)?;
                let out = export.governor.feed(&plain).map_err(|e| e.reason())?;
                if !out.is_empty() {
                    return Ok((out, false));
                }
            }
            Some(Err(_)) => return Err("truncated"),
            None => {
                let mut out = BytesMut::new();
                if let Some(d) = export.decoder.take() {
                    let rest = d.finish().map_err(|_| "content-encoding")?;
                    out.extend_from_slice(&export.governor.feed(&rest).map_err(|e| e.reason())?);
                }
                out.extend_from_slice(&export.governor.finish().map_err(|e| e.reason())?);
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
    let report = export.governor.report();
    let outcome = report.outcome(&export.policy);
    let mut close = rec.clone();
    close.stage = Stage::Close;
    close.records = charged;
    close.bytes = bytes;
    close.categories_received = outcome.categories_received.iter().cloned().collect();
    close.categories_delivered = outcome.categories_delivered.iter().cloned().collect();
    close.actions = outcome.actions.clone();
    close.decision = if reason.is_none() && !outcome.changed {
        Decision::Allowed
    } else {
        decision
    };
    close.reason = reason.map(str::to_string);
    Some((log.clone(), close))
}
