//! The 72-hour clock of GDPR Art. 33(1): the supervisory authority is to be notified
//! "without undue delay and, where feasible, not later than 72 hours after having become
//! aware" of a breach. 72 hours are 72 real hours (an exact duration on the time line),
//! never "the same wall-clock time three days later": across a daylight-saving change the
//! two differ by an hour, and only the first is the law's.
//!
//! Instants are `jiff::Timestamp`s; the controller's people read them in the controller's
//! time zone (`controller.time_zone`, an IANA name). Jiff is built with its bundled copy of
//! the IANA time zone database only (no `tzdb-zoneinfo` feature), so the same name gives the
//! same rules on every machine, one without `/usr/share/zoneinfo` included, and a report does
//! not change with the host it is generated on.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// How long Art. 33(1) allows.
pub const NOTIFY_WITHIN: SignedDuration = SignedDuration::from_hours(72);

/// Why a time or a time zone was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    #[error("unknown time zone {0:?}: expected an IANA name such as Europe/Berlin or UTC")]
    TimeZone(String),
    #[error("{flag} {value:?}: expected an RFC 3339 time (2026-12-07T09:30:00Z, 2026-12-07T10:30:00+01:00) or a local time in the controller's time zone (2026-12-07T10:30)")]
    Time { flag: &'static str, value: String },
    #[error("{flag} {value:?} does not exist or is ambiguous in {zone} (a daylight-saving change): give it with its UTC offset")]
    Ambiguous {
        flag: &'static str,
        value: String,
        zone: String,
    },
}

/// An IANA time zone by name, from the bundled database.
pub fn time_zone(name: &str) -> Result<TimeZone, ClockError> {
    jiff::tz::db()
        .get(name)
        .map_err(|_| ClockError::TimeZone(name.to_string()))
}

/// The zone's IANA name (`UTC` for UTC).
pub fn zone_name(tz: &TimeZone) -> &str {
    tz.iana_name().unwrap_or("UTC")
}

/// An instant as given on the command line: RFC 3339 with `Z` or an offset, or a civil time
/// (`2026-12-07T10:30[:00]`) in `tz`. A civil time that falls into a daylight-saving gap or
/// fold is refused rather than guessed: the deadline hangs on it.
pub fn parse_instant(
    flag: &'static str,
    value: &str,
    tz: &TimeZone,
) -> Result<Timestamp, ClockError> {
    if let Ok(t) = value.parse::<Timestamp>() {
        return Ok(t);
    }
    let civil: DateTime = value.parse().map_err(|_| ClockError::Time {
        flag,
        value: value.to_string(),
    })?;
    tz.to_ambiguous_zoned_datetime(civil)
        .unambiguous()
        .map(|z| z.timestamp())
        .map_err(|_| ClockError::Ambiguous {
            flag,
            value: value.to_string(),
            zone: zone_name(tz).to_string(),
        })
}

/// The instant of a log time in ms since the epoch.
pub fn from_millis(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// ms since the epoch of an instant.
pub fn millis(t: Timestamp) -> i64 {
    t.as_millisecond()
}

/// `2026-12-07T08:30:00Z`: an instant in UTC, whole seconds.
pub fn utc(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `2026-12-07 09:30 CET (UTC+01:00)`: an instant on the controller's wall clock.
pub fn local(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned_datetime(tz.clone())
        .strftime("%Y-%m-%d %H:%M %Z (UTC%:z)")
        .to_string()
}

/// The 72-hour deadline of one incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadline {
    /// When the controller became aware (`--detected-at`).
    pub aware: Timestamp,
    /// `aware` + 72 h.
    pub due: Timestamp,
    /// The instant "time left" is computed at.
    pub as_of: Timestamp,
    pub tz: TimeZone,
}

impl Deadline {
    pub fn new(aware: Timestamp, as_of: Timestamp, tz: TimeZone) -> Deadline {
        Deadline {
            aware,
            due: aware
                .saturating_add(NOTIFY_WITHIN)
                .unwrap_or(Timestamp::MAX),
            as_of,
            tz,
        }
    }

    /// Signed: negative once the deadline has passed.
    pub fn left(&self) -> SignedDuration {
        self.as_of.duration_until(self.due)
    }

    pub fn overdue(&self) -> bool {
        self.left().is_negative()
    }

    /// `47 h 05 min left`, or `OVERDUE by 2 h 10 min`.
    pub fn left_text(&self) -> String {
        let left = self.left();
        let mins = left.as_secs().unsigned_abs() / 60;
        let hm = format!("{} h {:02} min", mins / 60, mins % 60);
        if left.is_negative() {
            format!("OVERDUE by {hm}")
        } else {
            format!("{hm} left")
        }
    }

    /// Whether the controller's clock changes its UTC offset between awareness and the
    /// deadline (the wall clock then shows the deadline an hour off "the same time + 3 days").
    pub fn offset_changes(&self) -> bool {
        self.tz.to_offset(self.aware) != self.tz.to_offset(self.due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin() -> TimeZone {
        time_zone("Europe/Berlin").expect("bundled tzdb has Europe/Berlin")
    }

    #[test]
    fn the_deadline_is_72_real_hours_across_the_end_of_summer_time() {
        // 2026-10-25 (last Sunday of October): 03:00 CEST becomes 02:00 CET in Berlin.
        let tz = berlin();
        let aware = parse_instant("--detected-at", "2026-10-23T10:00", &tz).expect("civil");
        assert_eq!(utc(aware), "2026-10-23T08:00:00Z");
        let as_of: Timestamp = "2026-10-25T08:00:00Z".parse().expect("ts");
        let d = Deadline::new(aware, as_of, tz.clone());
        assert_eq!(utc(d.due), "2026-10-26T08:00:00Z");
        assert_eq!(
            d.aware.duration_until(d.due),
            SignedDuration::from_hours(72)
        );
        // the wall clock shows 09:00, not the naive 10:00 three days later
        assert_eq!(local(d.aware, &tz), "2026-10-23 10:00 CEST (UTC+02:00)");
        assert_eq!(local(d.due, &tz), "2026-10-26 09:00 CET (UTC+01:00)");
        assert!(d.offset_changes());
        assert_eq!(d.left_text(), "24 h 00 min left");
        let late = Deadline::new(aware, "2026-10-26T10:30:00Z".parse().expect("ts"), tz);
        assert!(late.overdue());
        assert_eq!(late.left_text(), "OVERDUE by 2 h 30 min");
    }

    #[test]
    fn the_start_of_summer_time_and_utc() {
        // 2026-03-29: 02:00 CET becomes 03:00 CEST
        let tz = berlin();
        let aware: Timestamp = "2026-03-27T09:00:00Z".parse().expect("ts");
        let d = Deadline::new(aware, aware, tz.clone());
        assert_eq!(local(d.due, &tz), "2026-03-30 11:00 CEST (UTC+02:00)");
        assert_eq!(d.left_text(), "72 h 00 min left");
        let utc_zone = time_zone("UTC").expect("utc");
        let d = Deadline::new(aware, aware, utc_zone.clone());
        assert!(!d.offset_changes());
        assert_eq!(local(d.due, &utc_zone), "2026-03-30 09:00 UTC (UTC+00:00)");
    }

    #[test]
    fn times_in_a_gap_or_fold_and_garbage_are_refused() {
        let tz = berlin();
        for ambiguous in ["2026-03-29T02:30", "2026-10-25T02:30"] {
            assert!(
                matches!(
                    parse_instant("--detected-at", ambiguous, &tz),
                    Err(ClockError::Ambiguous { .. })
                ),
                "{ambiguous}"
            );
        }
        // with an offset the same wall-clock time is one instant
        let t = parse_instant("--detected-at", "2026-10-25T02:30:00+01:00", &tz).expect("offset");
        assert_eq!(utc(t), "2026-10-25T01:30:00Z");
        for bad in ["yesterday", "2026-13-01T00:00", "", "1764000000"] {
            assert!(
                matches!(
                    parse_instant("--detected-at", bad, &tz),
                    Err(ClockError::Time { .. })
                ),
                "{bad}"
            );
        }
        assert_eq!(
            time_zone("Europe/Atlantis"),
            Err(ClockError::TimeZone("Europe/Atlantis".into()))
        );
        assert!(
            time_zone("europe/berlin").is_ok(),
            "IANA names match without case"
        );
    }
}
