//! What can go wrong with the transfer log, as types: the proxy maps [`AuditError`] to 503
//! `audit-unavailable`, readiness and metrics report a [`WriterFailure`], and the auditor
//! tools print the same messages the log's documentation shows. None of them ever carries a
//! field value of a record: paths, line numbers, sequence numbers and OS errors only.
//!
//! The types are `Clone` because one failure is handed to every waiting appender (group
//! commit) and kept for readiness; OS errors are shared behind an `Arc` for that.

use std::io;
use std::sync::Arc;

use super::files::ChainBreak;
use super::offbox::OffboxError;
use crate::secrets::SecretsError;

/// Why the log could not be opened or appended to. Never carries a field value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    /// The writer failed earlier (write, sync, rotation) and stays failed.
    #[error("transfer log failed and stays failed: {0}")]
    Failed(WriterFailure),
    /// The blocking task that opens the log died (a panic).
    #[error("transfer log could not be opened: {0}")]
    OpenTask(Arc<tokio::task::JoinError>),
    /// An I/O error while opening or recovering the log.
    #[error("transfer log {path}: {reason}")]
    Io {
        path: String,
        reason: Arc<io::Error>,
    },
    /// The log on disk does not verify; it is never appended to silently.
    #[error("transfer log {path} is damaged: {reason}")]
    Corrupt { path: String, reason: Damage },
    /// The signing key could not be loaded.
    #[error("audit signing key {path}: {reason}")]
    Key { path: String, reason: KeyError },
    /// The record could not be encoded.
    #[error("transfer record could not be encoded: {0}")]
    Encode(Arc<serde_json::Error>),
    /// The log was shut down (or its writer is gone).
    #[error("transfer log is closed")]
    Closed,
    /// Another process (or another open log in this one) is writing this log.
    #[error("transfer log {path} is in use by another writer (its .lock file is locked): one log, one Zweck")]
    InUse { path: String },
    /// The last copy of a checkpoint could not be written off-box.
    #[error("checkpoint could not be written off-box: {0}")]
    Offbox(OffboxError),
}

impl AuditError {
    pub(crate) fn io(path: &std::path::Path, e: io::Error) -> Self {
        AuditError::Io {
            path: path.display().to_string(),
            reason: Arc::new(e),
        }
    }
}

/// Why the writer stopped for good. After a failed write or fsync the kernel may have
/// dropped dirty pages, so carrying on could acknowledge lost lines.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriterFailure {
    #[error("write failed: {0}")]
    Write(Arc<io::Error>),
    #[error("fdatasync failed: {0}")]
    Sync(Arc<io::Error>),
    #[error("rotation failed: {0}")]
    Rotate(Arc<io::Error>),
    #[error("checkpoint write failed: {0}")]
    Checkpoint(Arc<io::Error>),
}

/// What is wrong with a log on disk (recovery refuses to append to it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    /// A whole line that does not continue the chain.
    #[error("line {line}: {why}")]
    Line { line: u64, why: ChainBreak },
    /// A sealed segment whose first seq is not the one after the previous segment.
    #[error("line 1: segment should start at seq {expected}")]
    SegmentStart { expected: u64 },
    /// A sealed segment whose last line has no newline (only the active file may be torn).
    #[error("line {line}: sealed segment ends mid-line")]
    SealedMidLine { line: u64 },
    /// A signed checkpoint commits to more entries than the log holds.
    #[error("a signed checkpoint covers {checkpointed} entries but the log holds {entries}: acknowledged entries are missing")]
    CheckpointAhead { checkpointed: u64, entries: u64 },
}

/// Why the signing key cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Unreadable(Arc<SecretsError>),
    #[error("not an Ed25519 PKCS#8 key: {0}")]
    NotEd25519(ring::error::KeyRejected),
}
