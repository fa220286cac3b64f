//! UTC timestamps as RFC 3339 (`2025-03-01T12:00:00.123Z`). The calendar arithmetic is the
//! `time` crate's; the layout is fixed here by hand because the log needs exactly one
//! fixed-width form (a fixed width keeps lexicographic order = time order, which `report`
//! uses for period filters, and every line of a log must look alike for its verifiers),
//! whereas `time`'s RFC 3339 formatter trims the fraction and needs its `formatting` feature.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// The UTC date and time of a point, clamped to the epoch and to the year 9999 (the widest
/// the fixed four-digit year can show).
fn utc(t: SystemTime) -> OffsetDateTime {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    time::Duration::try_from(since)
        .ok()
        .and_then(|d| OffsetDateTime::UNIX_EPOCH.checked_add(d))
        .unwrap_or(PrimitiveDateTime::MAX.assume_utc())
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a point in time (clamped to the epoch).
pub(crate) fn rfc3339_millis(t: SystemTime) -> String {
    let d = utc(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        d.year(),
        u8::from(d.month()),
        d.day(),
        d.hour(),
        d.minute(),
        d.second(),
        d.millisecond()
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ` (whole seconds; checkpoint time lines).
pub(crate) fn rfc3339_secs(t: SystemTime) -> String {
    let d = utc(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        d.year(),
        u8::from(d.month()),
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    )
}

/// Seconds since the epoch of a `YYYY-MM-DDTHH:MM:SS...` prefix (read as UTC); `None` if it
/// is malformed or names no real date. A leap second (`:60`) counts as the second before it.
pub(crate) fn parse_secs(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u16> {
        let digits = s.get(r)?;
        digits
            .bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    let date = Date::from_calendar_date(
        i32::from(num(0..4)?),
        Month::try_from(u8::try_from(num(5..7)?).ok()?).ok()?,
        u8::try_from(num(8..10)?).ok()?,
    )
    .ok()?;
    let second = u8::try_from(num(17..19)?).ok()?;
    let time = Time::from_hms(
        u8::try_from(num(11..13)?).ok()?,
        u8::try_from(num(14..16)?).ok()?,
        if second == 60 { 59 } else { second },
    )
    .ok()?;
    let secs = PrimitiveDateTime::new(date, time)
        .assume_utc()
        .unix_timestamp();
    u64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        let t = UNIX_EPOCH + Duration::from_millis(1_709_294_400_123); // 2024-03-01T12:00:00.123Z
        assert_eq!(rfc3339_millis(t), "2024-03-01T12:00:00.123Z");
        assert_eq!(rfc3339_secs(t), "2024-03-01T12:00:00Z");
        assert_eq!(parse_secs("2024-03-01T12:00:00.123Z"), Some(1_709_294_400));
        assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(parse_secs("2024-02-29T00:00:00Z"), Some(1_709_164_800));
        assert_eq!(parse_secs("garbage"), None);
    }

    #[test]
    fn formatting_matches_the_calendar_for_awkward_dates() {
        // Leap days, the turn of a century that is not a leap year, 2038 and a far year.
        for (secs, text) in [
            (951_782_400, "2000-02-29T00:00:00Z"),
            (4_107_542_399, "2100-02-28T23:59:59Z"),
            (4_107_542_400, "2100-03-01T00:00:00Z"),
            (2_147_483_647, "2038-01-19T03:14:07Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z"),
        ] {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            assert_eq!(rfc3339_secs(t), text);
            assert_eq!(parse_secs(text), Some(secs), "{text}");
        }
        // Before the epoch and after the year 9999 are clamped.
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(rfc3339_secs(before), "1970-01-01T00:00:00Z");
        let far = UNIX_EPOCH + Duration::from_secs(u64::MAX / 2);
        assert_eq!(rfc3339_millis(far), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn malformed_or_impossible_times_are_refused() {
        for bad in [
            "2024-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-00-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:60:00Z",
            "2024-01-01T00:00:61Z",
            "2024-01-01 00:00:00Z",
            "+024-01-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(parse_secs(bad), None, "{bad}");
        }
        assert_eq!(parse_secs("2016-12-31T23:59:60Z"), Some(1_483_228_799));
    }
}
