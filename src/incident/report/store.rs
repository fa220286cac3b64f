//! The incident store: one JSON file per incident in a directory (`incidents/` beside the
//! transfer log by default), each written whole through a temporary file and a rename
//! ([`crate::secrets::write_atomic`]), so a crash leaves the old record or the new one.
//!
//! The CLI never appends to the transfer log: the running proxy is its one writer (it holds
//! the log's exclusive lock), and a second writer would fork the hash chain. What the CLI
//! knows of an incident lives here; what the proxy did lives in the log.
//!
//! An id is claimed by creating the incident's report directory (`mkdir` fails when it
//! exists), so two `open`s at the same moment never share one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::facts::Scope;
use crate::secrets::{write_atomic, SecretsError};

/// Mode of incident records and reports: readable by the group that handles incidents.
pub const RECORD_MODE: u32 = 0o640;

/// Open or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    Closed,
}

/// One incident as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub status: Status,
    /// When the controller became aware (RFC 3339, UTC).
    pub detected_at: String,
    /// When `open` ran.
    pub opened_at: String,
    pub scope: Scope,
    /// The window of the transfers counted (RFC 3339, UTC; `to` exclusive).
    pub window_from: String,
    pub window_to: String,
    /// `aware` + 72 h (RFC 3339, UTC).
    pub notify_by: String,
    /// Records delivered in both directions when the draft was made.
    pub records_concerned: u64,
    /// Detections (incident ids in the log) the incident covers.
    pub detections: Vec<String>,
    /// The files written (relative to the store).
    pub reports: Vec<String>,
    #[serde(default)]
    pub closed_at: Option<String>,
    #[serde(default)]
    pub close_reason: Option<String>,
}

/// Why the store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Write(#[from] SecretsError),
    #[error("{}: not an incident record: {reason}", path.display())]
    Malformed { path: PathBuf, reason: String },
    #[error("no incident {0:?} in the store")]
    Unknown(String),
    #[error("incident {0} is already closed")]
    AlreadyClosed(String),
    #[error("{0:?} is not an incident id (incident-YYYYMMDD-N)")]
    BadId(String),
}

/// An incident store directory.
#[derive(Debug, Clone)]
pub struct Store {
    pub dir: PathBuf,
}

/// The default store: `incidents/` beside the (first) transfer log.
pub fn beside(log: &Path) -> PathBuf {
    log.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("incidents")
}

fn valid_id(id: &str) -> bool {
    let Some(rest) = id.strip_prefix("incident-") else {
        return false;
    };
    let Some((date, n)) = rest.split_once('-') else {
        return false;
    };
    date.len() == 8
        && date.bytes().all(|b| b.is_ascii_digit())
        && !n.is_empty()
        && n.len() <= 6
        && n.bytes().all(|b| b.is_ascii_digit())
}

impl Store {
    pub fn new(dir: PathBuf) -> Store {
        Store { dir }
    }

    fn io(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.to_path_buf();
        move |source| StoreError::Io {
            path,
            action,
            source,
        }
    }

    /// The record file of an id.
    pub fn record_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// The directory of an incident's reports.
    pub fn reports_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Claims the next free id for a day (`YYYYMMDD`): creates its report directory.
    pub fn claim(&self, day: &str) -> Result<String, StoreError> {
        std::fs::create_dir_all(&self.dir).map_err(Self::io(&self.dir, "create"))?;
        for n in 1..1_000_000u32 {
            let id = format!("incident-{day}-{n}");
            if self.record_path(&id).exists() {
                continue;
            }
            match std::fs::create_dir(self.reports_dir(&id)) {
                Ok(()) => return Ok(id),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Self::io(&self.reports_dir(&id), "create")(e)),
            }
        }
        Err(StoreError::BadId(format!("incident-{day}-*")))
    }

    /// Writes a record (whole, atomically).
    pub fn save(&self, incident: &Incident) -> Result<(), StoreError> {
        let mut text =
            serde_json::to_string_pretty(incident).map_err(|e| StoreError::Malformed {
                path: self.record_path(&incident.id),
                reason: e.to_string(),
            })?;
        text.push('\n');
        write_atomic(
            &self.record_path(&incident.id),
            text.as_bytes(),
            RECORD_MODE,
        )?;
        Ok(())
    }

    /// Reads one record.
    pub fn load(&self, id: &str) -> Result<Incident, StoreError> {
        if !valid_id(id) {
            return Err(StoreError::BadId(id.to_string()));
        }
        let path = self.record_path(id);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::Unknown(id.to_string()))
            }
            Err(e) => return Err(Self::io(&path, "read")(e)),
        };
        serde_json::from_str(&text).map_err(|e| StoreError::Malformed {
            path,
            reason: e.to_string(),
        })
    }

    /// Every record, by id (a store that does not exist yet is empty).
    pub fn list(&self) -> Result<Vec<Incident>, StoreError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Self::io(&self.dir, "read")(e)),
        };
        let mut out = Vec::new();
        for e in entries {
            let e = e.map_err(Self::io(&self.dir, "read"))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".json").filter(|id| valid_id(id)) else {
                continue; // reports directories, temporary files
            };
            out.push(self.load(id)?);
        }
        out.sort_by(|a, b| (&a.detected_at, &a.id).cmp(&(&b.detected_at, &b.id)));
        Ok(out)
    }

    /// Closes an open incident.
    pub fn close(
        &self,
        id: &str,
        at: String,
        reason: Option<String>,
    ) -> Result<Incident, StoreError> {
        let mut incident = self.load(id)?;
        if incident.status == Status::Closed {
            return Err(StoreError::AlreadyClosed(id.to_string()));
        }
        incident.status = Status::Closed;
        incident.closed_at = Some(at);
        incident.close_reason = reason;
        self.save(&incident)?;
        Ok(incident)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_before_they_name_a_file() {
        assert!(valid_id("incident-20261207-1"));
        for bad in [
            "../x",
            "incident-2026-1",
            "incident-20261207-",
            "incident-20261207-1/../../a",
            "x.json",
        ] {
            assert!(!valid_id(bad), "{bad}");
        }
        assert_eq!(
            beside(Path::new("logs/transfers.jsonl")),
            Path::new("logs/incidents")
        );
        assert_eq!(
            beside(Path::new("transfers.jsonl")),
            Path::new("./incidents")
        );
    }
}
