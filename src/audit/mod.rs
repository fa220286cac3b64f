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
//!   after one `fdatasync` (group commit: lines that arrive during a sync share the next one,
//!   and under load the writer waits, at most `commit_window`, for the records of exchanges
//!   in flight, [`AuditLog::preparing`], since on a busy CPU the queue behind a sync is short;
//!   `pace` decides from how fast records arrive whether a wait is likely to pay).
//! - Fail closed: once a write or a sync fails the writer is failed for good (after a failed
//!   fsync the kernel may have dropped the dirty pages, so carrying on could acknowledge lost
//!   lines); every later append errors and the proxy answers 503.
//! - A crash can leave a torn last line. `open` cuts it back to the last whole line (and keeps
//!   the cut bytes next to the log for inspection); the chain continues from there. Lines
//!   were acknowledged only after their sync, so nothing acknowledged is ever cut.
//!
//! Modules: `config` (the `audit:` section), `error` (what can fail, as types), `record` (what the proxy fills in), `event` (incident and containment entries in the same chain), `jurisdiction`
//! (cross-border test and mechanism decision), `merkle` (RFC 6962), `checkpoint` (signed
//! notes), `sink` (the file the writer writes, and fault injection), `pace` (how long a batch waits), `files` (segments and
//! recovery), `writer` (the [`AuditLog`] handle and its thread), `offbox` (checkpoint copies
//! elsewhere), and the auditor tools `verify`, `report`, `ropa`, `prove`.

pub mod checkpoint;
pub mod config;
mod error;
pub mod event;
pub mod files;
pub mod html;
pub mod jurisdiction;
pub mod keys;
pub mod merkle;
mod offbox;
mod pace;
pub mod period;
pub mod prove;
pub mod record;
pub mod report;
pub mod ropa;
pub mod signature;
pub mod sink;
pub mod synthetic;
mod time;
pub mod verify;
mod writer;

pub use checkpoint::{CheckpointError, NoteError};
pub use config::{
    compile_config, AuditConfig, AuditConfigError, Offbox, OnMissing, RawAuditConfig, RawOffbox,
};
pub use error::{AuditError, Damage, KeyError, WriterFailure};
pub use event::{ContainmentEntry, Event, IncidentEntry, OnAnomaly, Rule};
pub use files::ChainBreak;
pub use jurisdiction::{cross_border, decide_mechanism, MechanismDecision};
pub use keys::{KeyFileError, KeyRing};
pub use offbox::OffboxError;
pub use period::{Period, PeriodArgs, PeriodError};
pub use prove::{prove, ProveError, ProveOptions};
pub use record::{Decision, Direction, Entry, Stage, TransferRecord};
pub use report::{report, report_to, Dimension, Format, Output, ReadError, ReportOptions};
pub use ropa::{ropa, ropa_to, RecordOfProcessing, RopaOptions};
pub use signature::{verify_report, ReportCheckOptions};
pub use sink::{FailingSink, FileSink, Sink};
pub use verify::{verify, verify_fleet, Fleet, LogCheck, Status, VerifyOptions};
pub use writer::{AuditLog, AuditStats, Preparing, Recovery};

/// `YYYY-MM-DDTHH:MM:SSZ` of a time in milliseconds since the Unix epoch (event entries'
/// windows).
pub fn time_secs(ms: u64) -> String {
    time::rfc3339_secs(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
}

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
