//! The `incidents:` section of zweck.yaml, raw and compiled (docs/configuration.md, keys
//! `incidents.*`; the method in docs/detection.md). Every wrong value is reported at its own
//! line and column by the config compiler; nothing here falls back silently.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use super::alert::{url_allowed, AlertSettings, Webhook};
use super::detect::{ExportHours, LocalTime, RefusalRule, Settings, VolumeRule, DEFAULT_REFUSALS};
use crate::error::ProblemType;

/// `incidents:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIncidents {
    #[serde(default)]
    pub window: Option<Spanned<String>>,
    #[serde(default)]
    pub alpha: Option<Spanned<f64>>,
    #[serde(default)]
    pub warmup: Option<Spanned<String>>,
    #[serde(default)]
    pub cooldown: Option<Spanned<String>>,
    #[serde(default)]
    pub volume: Option<RawVolume>,
    #[serde(default)]
    pub new_category: Option<bool>,
    #[serde(default)]
    pub new_processor: Option<bool>,
    #[serde(default)]
    pub new_country: Option<bool>,
    #[serde(default)]
    pub refusals: Option<RawRefusals>,
    #[serde(default)]
    pub export_hours: Option<RawExportHours>,
    #[serde(default)]
    pub state_file: Option<Spanned<String>>,
    #[serde(default)]
    pub throttle_factor: Option<Spanned<f64>>,
    #[serde(default)]
    pub webhooks: Vec<Spanned<RawWebhook>>,
    #[serde(default)]
    pub alert_queue: Option<Spanned<usize>>,
    #[serde(default)]
    pub alert_retries: Option<Spanned<u32>>,
    #[serde(default)]
    pub alert_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    pub url: Spanned<String>,
    pub secret_file: Spanned<String>,
    #[serde(default)]
    pub ca: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVolume {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub factor: Option<Spanned<f64>>,
    #[serde(default)]
    pub min_records: Option<Spanned<u64>>,
    #[serde(default)]
    pub floor: Option<Spanned<f64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRefusals {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub threshold: Option<Spanned<u64>>,
    #[serde(default)]
    pub reasons: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExportHours {
    pub from: Spanned<u8>,
    pub to: Spanned<u8>,
    #[serde(default)]
    pub utc_offset: Option<Spanned<String>>,
}

/// The compiled section.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentsConfig {
    /// Whether the detector runs (the section is present). Without it Zweck still keeps
    /// containment and revocations (`zweck apps revoke`), with no detection.
    pub detect: bool,
    /// What a throttled purpose's export budget is multiplied by (0 < f < 1).
    pub throttle_factor: f64,
    pub settings: Settings,
    /// Where what the detector learned is kept across restarts; `None`: beside the transfer
    /// log (`<log>.incidents.json`), or nowhere without a log.
    pub state_file: Option<PathBuf>,
    /// Where alerts are POSTed, signed.
    pub webhooks: Vec<Webhook>,
    pub alerts: AlertSettings,
}

impl IncidentsConfig {
    /// No `incidents:` section: no detection, but revocation and containment state.
    pub fn without_detection() -> IncidentsConfig {
        IncidentsConfig {
            detect: false,
            throttle_factor: DEFAULT_THROTTLE,
            settings: Settings::default(),
            state_file: None,
            webhooks: Vec::new(),
            alerts: AlertSettings::default(),
        }
    }
}

/// The default `throttle_factor`: a tenth of the budget.
const DEFAULT_THROTTLE: f64 = 0.1;

/// Shortest and longest counting window; it must divide an hour so windows tile hours.
const MIN_WINDOW: Duration = Duration::from_secs(10);
const MAX_WINDOW: Duration = Duration::from_secs(3600);

/// Compiles the section; `error` receives each problem at its position.
/// `zone` is `controller.time_zone`: the local time of `export_hours` unless it names its own
/// `utc_offset`.
pub fn compile(
    raw: &RawIncidents,
    at: &Location,
    zone: Option<&jiff::tz::TimeZone>,
    resolve: &dyn Fn(&str) -> PathBuf,
    error: &mut dyn FnMut(&Location, String),
) -> IncidentsConfig {
    let d = Settings::default();
    let window_ms = duration_ms(&raw.window, "window", d.window_ms, error);
    let warmup_ms = duration_ms(&raw.warmup, "warmup", d.warmup_ms, error);
    let cooldown_ms = duration_ms(&raw.cooldown, "cooldown", d.cooldown_ms, error);
    let window_at = raw.window.as_ref().map_or(at, |w| &w.referenced);
    let window_ok = (MIN_WINDOW.as_millis() as u64..=MAX_WINDOW.as_millis() as u64)
        .contains(&window_ms)
        && 3_600_000 % window_ms == 0;
    if !window_ok {
        error(
            window_at,
            format!("incidents.window: between 10s and 1h and dividing an hour (1m, 5m, 15m), got {window_ms} ms"),
        );
    }
    let window_ms = if window_ok { window_ms } else { d.window_ms };
    let alpha = match &raw.alpha {
        Some(a) if a.value > 0.0 && a.value <= 1.0 => a.value,
        Some(a) => {
            error(
                &a.referenced,
                format!("incidents.alpha: a weight in (0, 1], got {}", a.value),
            );
            d.alpha
        }
        None => d.alpha,
    };
    let cooldown_ms = if cooldown_ms == 0 {
        let at = raw.cooldown.as_ref().map_or(at, |c| &c.referenced);
        error(
            at,
            "incidents.cooldown: must not be zero (one incident per rule at most per cool-down)"
                .into(),
        );
        d.cooldown_ms
    } else {
        cooldown_ms
    };

    let volume = match &raw.volume {
        Some(v) if v.enabled == Some(false) => None,
        v => {
            let base = d.volume.unwrap_or(VolumeRule {
                factor: 10.0,
                min_records: 100,
                floor: 10.0,
            });
            let v = v.as_ref();
            let mut positive = |f: Option<&Spanned<f64>>, key: &str, default: f64| match f {
                Some(f) if f.value.is_finite() && f.value > 0.0 => f.value,
                Some(f) => {
                    error(
                        &f.referenced,
                        format!("incidents.volume.{key}: a number above 0, got {}", f.value),
                    );
                    default
                }
                None => default,
            };
            let factor = positive(v.and_then(|v| v.factor.as_ref()), "factor", base.factor);
            let floor = positive(v.and_then(|v| v.floor.as_ref()), "floor", base.floor);
            let factor = if factor < 1.0 {
                if let Some(f) = v.and_then(|v| v.factor.as_ref()) {
                    error(
                        &f.referenced,
                        format!("incidents.volume.factor: at least 1 (a multiple of the baseline), got {factor}"),
                    );
                }
                base.factor
            } else {
                factor
            };
            Some(VolumeRule {
                factor,
                min_records: v
                    .and_then(|v| v.min_records.as_ref())
                    .map_or(base.min_records, |m| m.value),
                floor,
            })
        }
    };

    let refusals = match &raw.refusals {
        Some(r) if r.enabled == Some(false) => None,
        r => {
            let r = r.as_ref();
            let threshold = match r.and_then(|r| r.threshold.as_ref()) {
                Some(t) if t.value == 0 => {
                    error(
                        &t.referenced,
                        "incidents.refusals.threshold: at least 1".into(),
                    );
                    20
                }
                Some(t) => t.value,
                None => d.refusals.as_ref().map_or(20, |r| r.threshold),
            };
            let reasons = match r.and_then(|r| r.reasons.as_ref()) {
                None => DEFAULT_REFUSALS.to_vec(),
                Some(list) => list
                    .iter()
                    .filter_map(|s| {
                        let found = ProblemType::ALL
                            .iter()
                            .find(|p| p.as_str() == s.value)
                            .map(|p| p.as_str());
                        if found.is_none() {
                            error(
                                &s.referenced,
                                format!("incidents.refusals.reasons: {:?} is not a problem type (docs/problems.md)", s.value),
                            );
                        }
                        found
                    })
                    .collect(),
            };
            Some(RefusalRule { threshold, reasons })
        }
    };

    let export_hours = raw.export_hours.as_ref().map(|h| {
        if h.from.value > 23 {
            error(
                &h.from.referenced,
                format!(
                    "incidents.export_hours.from: an hour 0-23, got {}",
                    h.from.value
                ),
            );
        }
        if h.to.value > 24 || h.to.value == h.from.value {
            error(
                &h.to.referenced,
                format!(
                    "incidents.export_hours.to: an hour 1-24 other than `from`, got {}",
                    h.to.value
                ),
            );
        }
        let local = match (&h.utc_offset, zone) {
            (Some(o), _) => LocalTime::Offset(parse_offset(&o.value).unwrap_or_else(|| {
                error(
                    &o.referenced,
                    format!(
                        "incidents.export_hours.utc_offset: like +01:00 or -05:30, got {:?}",
                        o.value
                    ),
                );
                0
            })),
            (None, Some(zone)) => LocalTime::Zone(zone.clone()),
            (None, None) => LocalTime::Offset(0),
        };
        ExportHours {
            from: h.from.value.min(23),
            to: h.to.value.min(24),
            local,
        }
    });

    let webhooks = raw
        .webhooks
        .iter()
        .filter_map(|w| {
            let Ok(url) = w.value.url.value.parse::<http::Uri>() else {
                error(
                    &w.value.url.referenced,
                    format!(
                        "incidents.webhooks[].url: not a URL: {:?}",
                        w.value.url.value
                    ),
                );
                return None;
            };
            if let Err(why) = url_allowed(&url) {
                error(
                    &w.value.url.referenced,
                    format!(
                        "incidents.webhooks[].url: {why}, got {:?}",
                        w.value.url.value
                    ),
                );
                return None;
            }
            Some(Webhook {
                url,
                secret_file: resolve(&w.value.secret_file.value),
                ca: w.value.ca.as_ref().map(|c| resolve(&c.value)),
            })
        })
        .collect();
    let a = AlertSettings::default();
    let alert_timeout_ms = duration_ms(
        &raw.alert_timeout,
        "alert_timeout",
        a.timeout.as_millis() as u64,
        error,
    );
    let alerts = AlertSettings {
        queue: match &raw.alert_queue {
            Some(q) if q.value == 0 || q.value > 1_000_000 => {
                error(
                    &q.referenced,
                    format!(
                        "incidents.alert_queue: 1 to 1000000 alerts, got {}",
                        q.value
                    ),
                );
                a.queue
            }
            Some(q) => q.value,
            None => a.queue,
        },
        retries: match &raw.alert_retries {
            Some(r) if r.value > 20 => {
                error(
                    &r.referenced,
                    format!("incidents.alert_retries: at most 20, got {}", r.value),
                );
                a.retries
            }
            Some(r) => r.value,
            None => a.retries,
        },
        timeout: if alert_timeout_ms == 0 {
            let at = raw.alert_timeout.as_ref().map_or(at, |t| &t.referenced);
            error(at, "incidents.alert_timeout: must not be zero".into());
            a.timeout
        } else {
            Duration::from_millis(alert_timeout_ms)
        },
        backoff: a.backoff,
    };

    let throttle_factor = match &raw.throttle_factor {
        Some(f) if f.value > 0.0 && f.value < 1.0 => f.value,
        Some(f) => {
            error(
                &f.referenced,
                format!(
                    "incidents.throttle_factor: between 0 and 1 (exclusive), got {}",
                    f.value
                ),
            );
            DEFAULT_THROTTLE
        }
        None => DEFAULT_THROTTLE,
    };

    IncidentsConfig {
        detect: true,
        throttle_factor,
        webhooks,
        alerts,
        settings: Settings {
            window_ms,
            alpha,
            warmup_ms,
            cooldown_ms,
            volume,
            new_category: raw.new_category.unwrap_or(d.new_category),
            new_processor: raw.new_processor.unwrap_or(d.new_processor),
            new_country: raw.new_country.unwrap_or(d.new_country),
            refusals,
            export_hours,
        },
        state_file: raw.state_file.as_ref().map(|s| resolve(&s.value)),
    }
}

/// A duration key in milliseconds (`default` when absent or wrong; wrong is reported).
fn duration_ms(
    s: &Option<Spanned<String>>,
    key: &str,
    default: u64,
    error: &mut dyn FnMut(&Location, String),
) -> u64 {
    let Some(s) = s else { return default };
    match crate::units::parse_duration(&s.value) {
        Some(v) => v.as_millis() as u64,
        None => {
            error(
                &s.referenced,
                format!(
                    "incidents.{key}: expected a duration like 1m, 30s or 24h, got {:?}",
                    s.value
                ),
            );
            default
        }
    }
}

/// `+01:00`, `-05:30`, `Z` or `+00:00` as minutes east of UTC.
pub fn parse_offset(s: &str) -> Option<i32> {
    if s == "Z" {
        return Some(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if h > 14 || m > 59 {
        return None;
    }
    Some(sign * (h * 60 + m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_parse_and_nonsense_does_not() {
        assert_eq!(parse_offset("+01:00"), Some(60));
        assert_eq!(parse_offset("-05:30"), Some(-330));
        assert_eq!(parse_offset("Z"), Some(0));
        for bad in ["", "01:00", "+1:00", "+15:00", "+01:60", "+aa:00", "CET"] {
            assert_eq!(parse_offset(bad), None, "{bad}");
        }
    }
}
