//! Phase 8, append: the transfer log of personal data sent to and received from processors
//! (GDPR Art. 28, 30, 44-49), tamper-evident and durable before a response is released.
//!
//! Why it is built the way it is (the format itself is specified in docs/transfer-log.md):
//!
//! - One JSON line per exchange and direction. Each line carries `prev`, the SHA-256 of the
//!   previous line's bytes, so removing, editing or reordering a line breaks the chain at the
//!   next one. The same line bytes are the leaves of an RFC 6962 Merkle tree whose signed
//!   checkpoints (C2SP `tlog-checkpoint` signed notes, Ed25519) are also written off-box:
//!   a chain alone cannot reveal that its newest lines were cut off, a checkpoint held
//!   elsewhere can.
//! - One writer (a std thread, because fdatasync blocks) owns the file. Callers serialise
//!   their record on their own task, send it and await an acknowledgement; the writer
//!   assigns `seq`, `ts` and `prev`, writes every queued line at once and acknowledges them
//!   after one `fdatasync` (group commit: lines that arrive during a sync share the next one).
//! - Fail closed: once a write or a sync fails the writer is failed for good (after a failed
//!   fsync the kernel may have dropped the dirty pages, so carrying on could acknowledge lost
//!   lines); every later append errors and the proxy answers 503.
//! - A crash can leave a torn last line. `open` cuts it back to the last whole line (and keeps
//!   the cut bytes next to the log for inspection); the chain continues from there. Lines
//!   were acknowledged only after their sync, so nothing acknowledged is ever cut.
//!
//! Modules: `config` (the `audit:` section), `record` (what the proxy fills in), `jurisdiction`
//! (cross-border test and mechanism decision), `merkle` (RFC 6962), `checkpoint` (signed
//! notes), `sink` (the file the writer writes, and fault injection), `files` (segments and
//! recovery), `writer` (the [`AuditLog`] handle and its thread), `offbox` (checkpoint copies
//! elsewhere), and the auditor tools `verify`, `report`, `ropa`, `prove`.

pub mod checkpoint;
pub mod config;
pub mod files;
pub mod jurisdiction;
pub mod merkle;
mod offbox;
pub mod prove;
pub mod record;
pub mod report;
pub mod ropa;
pub mod sink;
mod time;
pub mod verify;
mod writer;

pub use config::{compile_config, AuditConfig, Offbox, OnMissing, RawAuditConfig, RawOffbox};
pub use jurisdiction::{cross_border, decide_mechanism, MechanismDecision};
pub use prove::{prove, ProveOptions};
pub use record::{Decision, Direction, Entry, Stage, TransferRecord};
pub use report::{report, Dimension, Format, ReportOptions};
pub use ropa::ropa;
pub use sink::{FailingSink, FileSink, Sink};
pub use verify::{verify, VerifyOptions};
pub use writer::{AuditLog, AuditStats, Recovery};

/// What an auditor command prints and the process exit code it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliReport {
    /// The report for stdout.
    pub text: String,
    /// 0 ok, 1 tampered (or, for `ropa`, unreconciled), 2 unreadable.
    pub exit_code: i32,
}

impl CliReport {
    fn new(text: String, exit_code: i32) -> Self {
        Self { text, exit_code }
    }
}

/// Why the log could not be opened or appended to. Never carries a field value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    /// The writer failed earlier (write, sync, rotation) and stays failed.
    #[error("transfer log failed and stays failed: {0}")]
    Failed(String),
    /// An I/O error while opening or recovering the log.
    #[error("transfer log {path}: {reason}")]
    Io { path: String, reason: String },
    /// The log on disk does not verify; it is never appended to silently.
    #[error("transfer log {path} is damaged: {reason}")]
    Corrupt { path: String, reason: String },
    /// The signing key could not be loaded.
    #[error("audit signing key {path}: {reason}")]
    Key { path: String, reason: String },
    /// The record could not be encoded.
    #[error("transfer record could not be encoded: {0}")]
    Encode(String),
    /// The log was shut down (or its writer is gone).
    #[error("transfer log is closed")]
    Closed,
    /// Another process (or another open log in this one) is writing this log.
    #[error("transfer log {path} is in use by another writer (its .lock file is locked): one log, one Zweck")]
    InUse { path: String },
    /// The last copy of a checkpoint could not be written off-box.
    #[error("checkpoint could not be written off-box: {0}")]
    Offbox(String),
}

impl AuditError {
    fn io(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        AuditError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        }
    }
}
