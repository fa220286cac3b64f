//! Logs written without the proxy, for tests that need entries at chosen times and for the
//! benchmark that generates a million entries (benches/audit_report.rs). The lines, the
//! chain and the checkpoints are made by the writer's own functions, so a synthetic log is a
//! real one in every byte; only `ts` comes from the caller instead of the clock. Any
//! serialisable object is a line body, so tests also write event entries (`kind` after
//! `prev`, docs/transfer-log.md) beside transfer records.

use std::io::{self, BufWriter, Write};
use std::path::Path;

use ring::signature::Ed25519KeyPair;

use super::checkpoint::{self, Checkpoint};
use super::files::{self, ChainState};
use super::record;

/// Writes `records` (each with its `ts`, `YYYY-MM-DDTHH:MM:SS.mmmZ`) as a new log at `log`,
/// with a signed checkpoint every `checkpoint_every` entries and at the end, on box and
/// (when given) appended to `offbox`. Returns the number of entries. A body is any object
/// ([`super::TransferRecord`] for transfers, a `serde_json::Value` object for anything else).
pub fn write_log<I, R>(
    log: &Path,
    key: &Ed25519KeyPair,
    origin: &str,
    records: I,
    checkpoint_every: u64,
    offbox: Option<&Path>,
) -> io::Result<u64>
where
    I: IntoIterator<Item = (String, R)>,
    R: serde::Serialize,
{
    if let Some(dir) = log.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(log)?);
    let mut checkpoints = BufWriter::new(std::fs::File::create(files::checkpoints_path(log))?);
    let mut offbox_notes = String::new();
    let mut chain = ChainState::new();
    let mut last_ts = String::new();
    let every = checkpoint_every.max(1);
    let mut sign = |chain: &ChainState, ts: &str, cps: &mut BufWriter<std::fs::File>| {
        let cp = Checkpoint {
            origin: origin.to_string(),
            size: chain.next_seq,
            root: chain.frontier.root(),
            extensions: vec![format!("time {}Z", ts.get(..19).unwrap_or(ts))],
        };
        let note = checkpoint::sign(&cp, origin, key);
        offbox_notes.push_str(&note);
        offbox_notes.push('\n');
        cps.write_all(note.as_bytes())?;
        cps.write_all(b"\n")
    };
    for (ts, rec) in records {
        let body = serde_json::to_vec(&rec).map_err(io::Error::other)?;
        let line = record::line(chain.next_seq, &ts, &chain.prev, &body);
        chain.advance(&line);
        out.write_all(&line)?;
        out.write_all(b"\n")?;
        if chain.next_seq.is_multiple_of(every) {
            sign(&chain, &ts, &mut checkpoints)?;
        }
        last_ts = ts;
    }
    if !chain.next_seq.is_multiple_of(every) {
        sign(&chain, &last_ts, &mut checkpoints)?;
    }
    out.flush()?;
    checkpoints.flush()?;
    if let Some(path) = offbox {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        f.write_all(offbox_notes.as_bytes())?;
    }
    Ok(chain.next_seq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::checkpoint::{key_from_pkcs8, public_key};
    use crate::audit::{KeyRing, VerifyOptions};

    #[test]
    fn a_synthetic_log_verifies_like_a_written_one() {
        let dir = tempfile::tempdir().expect("dir");
        let doc = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).expect("key");
        let key = key_from_pkcs8(doc.as_ref()).expect("key");
        let log = dir.path().join("logs/t.jsonl");
        let offbox = dir.path().join("offbox/cp");
        let records = (0..25).map(|i| {
            (
                format!("2026-11-{:02}T10:00:00.000Z", 1 + i % 28),
                crate::audit::record::tests::sample(),
            )
        });
        let n = write_log(&log, &key, "o/1", records, 10, Some(&offbox)).expect("write");
        assert_eq!(n, 25);
        let v = crate::audit::verify(&VerifyOptions {
            logs: vec![log],
            keys: KeyRing::single(public_key(&key)),
            offbox: vec![offbox],
            ..VerifyOptions::default()
        });
        assert_eq!(v.exit_code, 0, "{}", v.text);
        assert!(
            v.text.contains("checkpoints: 3 on-box, 3 off-box"),
            "{}",
            v.text
        );
    }
}
