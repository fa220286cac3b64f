//! Durations and sizes as people write them in `zweck.yaml` and in policies: one grammar for
//! every file, so `per: 1h` in a purpose and `rotate_age: 1h` in the config mean the same.
//!
//! Why not `humantime`/`bytesize`: neither is in the dependency tree, and each differs from
//! the syntax already documented and shipped (a bare number is seconds here, which humantime
//! refuses; bytesize accepts lower-case and one-letter units that were never documented). The
//! grammar is small enough to state in full:
//!
//! - duration: `<digits>[ ]<unit>` with unit `ms`, `s`, `m` or `min`, `h`, `d`; no unit means
//!   seconds (`250ms`, `10s`, `2m`, `15min`, `1h`, `1d`, `30`);
//! - size: `<digits>[ ]<unit>` with unit `B`, `KiB`, `MiB`, `GiB` (powers of two) or `KB`,
//!   `MB`, `GB` (powers of ten); no unit means bytes (`65536`, `64KiB`, `8MiB`, `1GiB`).
//!
//! A value that overflows is refused, never wrapped. Callers decide whether zero is allowed.

use std::time::Duration;

/// Splits `<digits><rest>` into the number and the trimmed unit.
fn number_and_unit(s: &str) -> Option<(u64, &str)> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    Some((num.parse().ok()?, unit.trim()))
}

/// Parses a duration (see the module doc); `None` when it is not one.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let (n, unit) = number_and_unit(s)?;
    let secs_per_unit: u64 = match unit {
        "ms" => return Some(Duration::from_millis(n)),
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(secs_per_unit).map(Duration::from_secs)
}

/// Parses a size in bytes (see the module doc); `None` when it is not one.
pub fn parse_size(s: &str) -> Option<u64> {
    let (n, unit) = number_and_unit(s)?;
    let mult: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// The instant `d` from now, or about 30 years from now when `d` is too large to add to the
/// clock (a configured timeout of "forever"; adding would panic).
pub fn deadline_after(d: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (text, want) in [
            ("250ms", Duration::from_millis(250)),
            ("10s", Duration::from_secs(10)),
            ("30", Duration::from_secs(30)),
            ("2m", Duration::from_secs(120)),
            ("15min", Duration::from_secs(900)),
            ("1h", Duration::from_secs(3600)),
            ("1d", Duration::from_secs(86_400)),
            (" 5 m ", Duration::from_secs(300)),
            ("0s", Duration::ZERO),
        ] {
            assert_eq!(parse_duration(text), Some(want), "{text:?}");
        }
        for bad in [
            "",
            "x",
            "1w",
            "1.5h",
            "-1s",
            "h",
            "1 hour",
            "1H",
            "99999999999999999999d",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
        assert_eq!(parse_duration(&format!("{}d", u64::MAX / 86_400 + 1)), None);
    }

    #[test]
    fn sizes() {
        for (text, want) in [
            ("65536", 65_536),
            ("512B", 512),
            ("64KiB", 64 << 10),
            ("8MiB", 8 << 20),
            ("1GiB", 1 << 30),
            ("2 KB", 2_000),
            ("3MB", 3_000_000),
            ("1GB", 1_000_000_000),
        ] {
            assert_eq!(parse_size(text), Some(want), "{text:?}");
        }
        for bad in ["", "lots", "8mib", "1TiB", "1.5MiB", "99999999999999GiB"] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_size("8MiB"), Some(8 << 20));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("99999999999999GiB"), None);
    }

    /// Every duration and size the shipped files and the docs use parses.
    #[test]
    fn every_shipped_and_documented_value_parses() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![root.join("zweck.yaml"), root.join("docs/configuration.md")];
        files.push(root.join("policies/purposes.yaml"));
        files.push(root.join("docs/policy.md"));
        files.push(root.join("docs/budgets.md"));
        let duration_keys = [
            "handshake_timeout",
            "header_read_timeout",
            "idle_timeout",
            "shutdown_grace",
            "connect_timeout",
            "response_timeout",
            "body_idle_timeout",
            "body_read_timeout",
            "linger_timeout",
            "checkpoint_interval",
            "rotate_age",
            "per",
        ];
        let size_keys = [
            "buffer_bytes",
            "max_body_bytes",
            "buffered_total",
            "rotate_bytes",
            "max_header_bytes",
            "body_min_rate",
            "drain_bytes",
        ];
        let mut seen = 0;
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read");
            // `key: value` up to a comma, brace, comment or line end.
            for (i, _) in text.match_indices(": ") {
                let key_start = text[..i]
                    .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .map_or(0, |p| p + 1);
                let key = &text[key_start..i];
                let value: String = text[i + 2..]
                    .chars()
                    .take_while(|c| !matches!(c, ',' | '}' | '#' | '\n' | '|'))
                    .collect();
                let value = value.trim();
                if duration_keys.contains(&key) && !value.is_empty() {
                    assert!(
                        parse_duration(value).is_some(),
                        "{}: {key}: {value:?}",
                        file.display()
                    );
                    seen += 1;
                }
                if size_keys.contains(&key) && !value.is_empty() {
                    assert!(
                        parse_size(value).is_some(),
                        "{}: {key}: {value:?}",
                        file.display()
                    );
                    seen += 1;
                }
            }
        }
        assert!(seen >= 15, "only {seen} values found: the scan is broken");
    }
}
