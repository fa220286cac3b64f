//! Zweck's own log on stderr: human-readable text or JSON lines (`log.format`).
//!
//! JSON lines carry `timestamp`, `level`, `target`, the event's fields at the top level
//! (`request_id` among them on every per-request event) and `message`, one object per line,
//! for a SIEM or any log shipper. Text uses colour only when stderr is a terminal and
//! `NO_COLOR` is not set (<https://no-color.org>), so a file or journal never gets escape
//! codes. Both obey `RUST_LOG` (default `info`). What is logged is the same in both formats:
//! ids, names, route templates, rule ids and counts, never field values, raw paths, query
//! strings or credentials.

use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Whether text logs get colour: only on a terminal, and never when `NO_COLOR` is set to a
/// non-empty value.
pub fn colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(std::ffi::OsStr::is_empty)
}

/// A subscriber writing `format` to `writer`, filtered by `filter`.
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.with_target(false).with_ansi(ansi).finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .with_target(true)
                .with_ansi(false)
                .finish(),
        ),
    }
}

/// The `RUST_LOG` filter, `info` when unset or unparsable.
pub fn env_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the process's subscriber: `format` on stderr. Called once, early in `main`.
pub fn init(format: LogFormat) {
    let ansi = colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    // a second call (never in `main`) keeps the first subscriber
    let _ = tracing::subscriber::set_global_default(subscriber(
        format,
        env_filter(),
        std::io::stderr,
        ansi,
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::sync::{Arc, Mutex};

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))));
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
    }

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Lines {
            self.clone()
        }
    }

    fn capture(format: LogFormat, ansi: bool) -> String {
        let lines = Lines::default();
        let sub = subscriber(format, EnvFilter::new("info"), lines.clone(), ansi);
        tracing::subscriber::with_default(sub, || {
            tracing::info!(target: "zweck::access", request_id = "abc-00000001", status = 200u16, "access");
        });
        let out = lines.0.lock().expect("lock").clone();
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn json_lines_carry_timestamp_level_target_and_fields_at_the_top() {
        let text = capture(LogFormat::Json, true);
        let line: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON line");
        assert!(line["timestamp"].is_string(), "{line}");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["target"], "zweck::access");
        assert_eq!(line["request_id"], "abc-00000001");
        assert_eq!(line["status"], 200);
        assert_eq!(line["message"], "access");
        assert!(
            !text.contains('\u{1b}'),
            "no escape codes in JSON: {text:?}"
        );
    }

    #[test]
    fn text_has_no_escape_codes_unless_asked() {
        assert!(!capture(LogFormat::Text, false).contains('\u{1b}'));
        assert!(capture(LogFormat::Text, true).contains('\u{1b}'));
    }
}
