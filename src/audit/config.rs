//! The `audit:` section of `zweck.yaml`: raw (unknown keys refused) and compiled.
//!
//! ```yaml
//! audit:
//!   log: logs/transfers.jsonl
//!   signing_key: certs/audit.key
//!   offbox: { file: ../auditor/checkpoints }   # or { url: https://witness.example/add } or none
//!   on_missing_mechanism: block                 # or log
//!   checkpoint_every: 1000                      # entries
//!   checkpoint_interval: 5m                     # optional
//!   rotate_bytes: 256MiB                        # optional
//!   rotate_age: 1d                              # optional
//!   origin: zweck.example.com/transfers         # checkpoint origin and key name
//! ```
//!
//! Without `origin`, each instance gets its own: `zweck/<hostname>/<8 hex digits of the
//! SHA-256 of the log's absolute path>`, so two instances on one host (two logs; the lock
//! file forbids two writers on one) never share an origin, and their checkpoints can share
//! one off-box file. A log that already has on-box checkpoints keeps the origin they name
//! (see `writer::prepare`), so an upgrade or a moved log never changes a log's origin.
//!
//! Off-box is required (a chain alone cannot reveal a cut-off tail), so leaving it out is an
//! error and switching it off takes an explicit `offbox: none`. An off-box file inside the
//! log's own directory is refused: whoever can cut the log could cut it too.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::units::{parse_duration, parse_size};

/// `audit:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuditConfig {
    pub log: String,
    pub signing_key: String,
    pub offbox: RawOffbox,
    #[serde(default)]
    pub on_missing_mechanism: Option<String>,
    #[serde(default)]
    pub checkpoint_every: Option<u64>,
    #[serde(default)]
    pub checkpoint_interval: Option<String>,
    #[serde(default)]
    pub rotate_bytes: Option<String>,
    #[serde(default)]
    pub rotate_age: Option<String>,
    #[serde(default)]
    pub origin: Option<String>,
    #[serde(default)]
    pub commit_window: Option<String>,
}

/// `offbox:` as written: `{ file: path }`, `{ url: https://... }` or `none`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawOffbox {
    File(RawOffboxFile),
    Url(RawOffboxUrl),
    Keyword(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOffboxFile {
    pub file: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOffboxUrl {
    pub url: String,
}

/// Where checkpoint copies go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offbox {
    /// Appended (and fsynced) to a file outside the log directory.
    File(PathBuf),
    /// POSTed as `text/plain` to an endpoint.
    Url(http::Uri),
    /// Explicitly switched off.
    None,
}

/// What happens to a cross-border flow without a transfer mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnMissing {
    #[default]
    Block,
    Log,
}

/// The compiled `audit:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// The active log file; rotated segments sit next to it.
    pub log: PathBuf,
    pub signing_key: PathBuf,
    pub offbox: Offbox,
    pub on_missing_mechanism: OnMissing,
    /// A checkpoint after at least this many new entries.
    pub checkpoint_every: u64,
    /// A checkpoint after this long if there are new entries.
    pub checkpoint_interval: Option<Duration>,
    pub rotate_bytes: Option<u64>,
    pub rotate_age: Option<Duration>,
    /// Checkpoint origin line and signing key name.
    pub origin: String,
    /// Whether `origin` was configured. A default origin gives way to the one a log's
    /// existing checkpoints already name.
    pub origin_configured: bool,
    /// How long the writer waits, at most, for the records of other governed exchanges in
    /// flight before it syncs a batch (group commit under load; see the writer's
    /// `await_prepared` and `pace`). It waits only while such exchanges exist and records
    /// arrive closer together than this, so a lone request or a light load never waits.
    /// 0: batches form only while the previous sync runs. `compile_config` bounds it
    /// by [`MAX_COMMIT_WINDOW`]; a config built in code is taken as it is (tests).
    pub commit_window: Duration,
}

/// Default checkpoint spacing in entries.
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 1000;
/// The commit window unless configured.
pub const DEFAULT_COMMIT_WINDOW: Duration = Duration::from_millis(5);
/// Upper bound of the commit window.
pub const MAX_COMMIT_WINDOW: Duration = Duration::from_millis(10);

impl AuditConfig {
    /// A config with defaults for everything but the paths (tests, tools).
    pub fn new(log: impl Into<PathBuf>, signing_key: impl Into<PathBuf>, offbox: Offbox) -> Self {
        Self {
            log: log.into(),
            signing_key: signing_key.into(),
            offbox,
            on_missing_mechanism: OnMissing::Block,
            checkpoint_every: DEFAULT_CHECKPOINT_EVERY,
            checkpoint_interval: None,
            rotate_bytes: None,
            rotate_age: None,
            origin: String::new(),
            origin_configured: false,
            commit_window: DEFAULT_COMMIT_WINDOW,
        }
        .with_default_origin()
    }

    fn with_default_origin(mut self) -> Self {
        self.origin = default_origin(&self.log);
        self
    }
}

/// `zweck/<hostname>/<8 hex of SHA-256(absolute log path)>`: distinct per instance, also
/// for two instances on one host, so the logs of a fleet can share an off-box file and be
/// verified and reported together.
pub fn default_origin(log: &Path) -> String {
    use sha2::Digest as _;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| valid_origin(h) && !h.contains('/'))
        .unwrap_or_else(|| "localhost".to_string());
    let path = normalise(log);
    let digest = sha2::Sha256::digest(path.as_os_str().as_encoded_bytes());
    format!("zweck/{host}/{}", hex::encode(&digest[..4]))
}

/// A signed-note key name: non-empty, no whitespace, no `+`.
fn valid_origin(s: &str) -> bool {
    !s.is_empty()
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

/// One problem of the `audit:` section (the config loader adds its position).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditConfigError {
    #[error("audit.{key}: must name a file")]
    NoFile { key: &'static str },
    #[error(
        "audit.offbox: expected {{ file: PATH }}, {{ url: https://... }} or none, found {found:?}"
    )]
    OffboxKeyword { found: String },
    #[error("audit.offbox.file: {} is inside the log directory {}; it must be off-box", file.display(), log_dir.display())]
    OffboxInsideLogDir { file: PathBuf, log_dir: PathBuf },
    #[error("audit.offbox.url: {url:?} is not an https:// URL (http:// only to localhost)")]
    OffboxUrl { url: String },
    #[error("audit.on_missing_mechanism: expected block or log, found {found:?}")]
    OnMissing { found: String },
    #[error("audit.checkpoint_every: must be at least 1")]
    CheckpointEveryZero,
    #[error("audit.{key}: {value:?} is not a positive duration (250ms, 10s, 5m, 1h, 1d)")]
    Duration { key: &'static str, value: String },
    #[error("audit.commit_window: {value:?} is not a duration from 0ms to 10ms")]
    CommitWindow { value: String },
    #[error("audit.rotate_bytes: {value:?} is not a size of at least 4KiB (64MiB, 1GiB)")]
    RotateBytes { value: String },
    #[error(
        "audit.origin: {value:?} must be non-empty without spaces or '+' (it is also the key name)"
    )]
    Origin { value: String },
}

/// Validates the raw section; relative paths are resolved against `base_dir` (the config
/// file's directory). Returns every problem, not just the first.
pub fn compile_config(
    raw: &RawAuditConfig,
    base_dir: &Path,
) -> Result<AuditConfig, Vec<AuditConfigError>> {
    let mut errors = Vec::new();
    let resolve = |p: &str| -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base_dir.join(p)
        }
    };
    if raw.log.trim().is_empty() {
        errors.push(AuditConfigError::NoFile { key: "log" });
    }
    if raw.signing_key.trim().is_empty() {
        errors.push(AuditConfigError::NoFile { key: "signing_key" });
    }
    let log = resolve(&raw.log);
    let offbox = match &raw.offbox {
        RawOffbox::Keyword(k) if k == "none" => Offbox::None,
        RawOffbox::Keyword(k) => {
            errors.push(AuditConfigError::OffboxKeyword { found: k.clone() });
            Offbox::None
        }
        RawOffbox::File(f) => {
            let path = resolve(&f.file);
            let log_dir = normalise(log.parent().unwrap_or(Path::new("/")));
            if normalise(&path).starts_with(&log_dir) {
                errors.push(AuditConfigError::OffboxInsideLogDir {
                    file: path.clone(),
                    log_dir,
                });
            }
            Offbox::File(path)
        }
        RawOffbox::Url(u) => match u.url.parse::<http::Uri>() {
            Ok(uri) if uri.scheme_str() == Some("https") && uri.host().is_some() => {
                Offbox::Url(uri)
            }
            Ok(uri)
                if uri.scheme_str() == Some("http")
                    && matches!(uri.host(), Some("127.0.0.1" | "localhost" | "[::1]")) =>
            {
                // Plain HTTP only to a local witness (a sidecar); never across a network.
                Offbox::Url(uri)
            }
            _ => {
                errors.push(AuditConfigError::OffboxUrl { url: u.url.clone() });
                Offbox::None
            }
        },
    };
    let on_missing_mechanism = match raw.on_missing_mechanism.as_deref() {
        None | Some("block") => OnMissing::Block,
        Some("log") => OnMissing::Log,
        Some(other) => {
            errors.push(AuditConfigError::OnMissing {
                found: other.to_string(),
            });
            OnMissing::Block
        }
    };
    let checkpoint_every = raw.checkpoint_every.unwrap_or(DEFAULT_CHECKPOINT_EVERY);
    if checkpoint_every == 0 {
        errors.push(AuditConfigError::CheckpointEveryZero);
    }
    let mut duration = |key: &'static str, v: &Option<String>| -> Option<Duration> {
        let s = v.as_ref()?;
        match parse_duration(s) {
            Some(d) if !d.is_zero() => Some(d),
            _ => {
                errors.push(AuditConfigError::Duration {
                    key,
                    value: s.clone(),
                });
                None
            }
        }
    };
    let checkpoint_interval = duration("checkpoint_interval", &raw.checkpoint_interval);
    let rotate_age = duration("rotate_age", &raw.rotate_age);
    let commit_window = match &raw.commit_window {
        None => DEFAULT_COMMIT_WINDOW,
        Some(s) => match parse_duration(s) {
            Some(d) if d <= MAX_COMMIT_WINDOW => d,
            _ => {
                errors.push(AuditConfigError::CommitWindow { value: s.clone() });
                DEFAULT_COMMIT_WINDOW
            }
        },
    };
    let rotate_bytes = match &raw.rotate_bytes {
        None => None,
        Some(s) => match parse_size(s) {
            Some(n) if n >= 4096 => Some(n),
            _ => {
                errors.push(AuditConfigError::RotateBytes { value: s.clone() });
                None
            }
        },
    };
    let origin = match &raw.origin {
        Some(o) if valid_origin(o) && o != crate::audit::signature::REPORT_KEY_NAME => o.clone(),
        Some(o) => {
            errors.push(AuditConfigError::Origin { value: o.clone() });
            String::new()
        }
        None => default_origin(&log),
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(AuditConfig {
        log,
        signing_key: resolve(&raw.signing_key),
        offbox,
        on_missing_mechanism,
        checkpoint_every,
        checkpoint_interval,
        rotate_bytes,
        rotate_age,
        origin,
        origin_configured: raw.origin.is_some(),
        commit_window,
    })
}

/// Lexical normalisation (`.` and `..` removed) after making the path absolute, so
/// `logs/../logs/x` is recognised as inside `logs/`.
fn normalise(p: &Path) -> PathBuf {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(yaml: &str) -> RawAuditConfig {
        serde_saphyr::from_str(yaml).expect("yaml")
    }

    #[test]
    fn compiles_the_design_example() {
        let c = compile_config(
            &raw("{ log: logs/transfers.jsonl, signing_key: certs/audit.key, offbox: { file: ../auditor/checkpoints }, on_missing_mechanism: block }"),
            Path::new("/srv/zweck"),
        )
        .expect("valid");
        assert_eq!(c.log, Path::new("/srv/zweck/logs/transfers.jsonl"));
        assert_eq!(
            c.offbox,
            Offbox::File("/srv/zweck/../auditor/checkpoints".into())
        );
        assert_eq!(c.on_missing_mechanism, OnMissing::Block);
        assert_eq!(c.checkpoint_every, DEFAULT_CHECKPOINT_EVERY);
    }

    #[test]
    fn none_and_url_forms() {
        let c = compile_config(
            &raw("{ log: l.jsonl, signing_key: k, offbox: none, rotate_bytes: 64MiB, rotate_age: 1d, checkpoint_interval: 5m, origin: zweck.example/a }"),
            Path::new("/x"),
        )
        .expect("valid");
        assert_eq!(c.offbox, Offbox::None);
        assert_eq!(c.rotate_bytes, Some(64 << 20));
        assert_eq!(c.rotate_age, Some(Duration::from_secs(86_400)));
        assert_eq!(c.commit_window, DEFAULT_COMMIT_WINDOW);
        for (value, window) in [("0", Duration::ZERO), ("5ms", Duration::from_millis(5))] {
            let c = compile_config(
                &raw(&format!(
                    "{{ log: l, signing_key: k, offbox: none, commit_window: '{value}' }}"
                )),
                Path::new("/x"),
            )
            .expect("valid");
            assert_eq!(c.commit_window, window);
        }
        let c = compile_config(
            &raw("{ log: l, signing_key: k, offbox: { url: 'https://witness.example/add' } }"),
            Path::new("/x"),
        )
        .expect("valid");
        assert!(matches!(c.offbox, Offbox::Url(_)));
    }

    #[test]
    fn reports_every_error() {
        let errs = compile_config(
            &raw("{ log: logs/t.jsonl, signing_key: k, offbox: { file: logs/cp }, on_missing_mechanism: maybe, checkpoint_every: 0, rotate_bytes: lots, origin: 'a b', commit_window: 11ms }"),
            Path::new("/x"),
        )
        .expect_err("invalid");
        assert_eq!(errs.len(), 6, "{errs:?}");
        for bad in ["soon", "1s", "-1ms"] {
            let errs = compile_config(
                &raw(&format!(
                    "{{ log: l, signing_key: k, offbox: none, commit_window: '{bad}' }}"
                )),
                Path::new("/x"),
            )
            .expect_err("not a commit window");
            assert!(
                matches!(&errs[..], [AuditConfigError::CommitWindow { value }] if value == bad),
                "{errs:?}"
            );
        }
        let errs = compile_config(
            &raw("{ log: l, signing_key: k, offbox: { url: 'http://witness.example/add' } }"),
            Path::new("/x"),
        )
        .expect_err("plain http off-host");
        assert_eq!(errs.len(), 1);
        assert!(serde_saphyr::from_str::<RawAuditConfig>("{ log: l, signing_key: k }").is_err());
        assert!(serde_saphyr::from_str::<RawAuditConfig>(
            "{ log: l, signing_key: k, offbox: none, extra: 1 }"
        )
        .is_err());
    }
}
