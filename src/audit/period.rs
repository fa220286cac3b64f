//! The period a report covers: `--since`/`--until` (dates inclusive, or RFC 3339 instants),
//! `--month 2026-11` or `--quarter 2026-Q4`. Everything is UTC, like the log's `ts`.
//!
//! Bounds are parsed into milliseconds since the epoch and entries are compared as times,
//! never as strings: a string compare let `garbage` or `2026-13-45` silently select nothing,
//! and made `--until 2026-12-07` drop all of 7 December. Anything that is not one of the
//! documented forms is refused with a message (exit 2).

use time::{Date, Month, PrimitiveDateTime, Time, UtcOffset};

/// A half-open range of log times in milliseconds since the epoch: `from <= t < to`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Period {
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// Why a period option is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error("--{flag} {value:?}: expected a date (2026-11-30) or an RFC 3339 time (2026-11-30T18:00:00Z, 2026-11-30T19:00:00+01:00)")]
    Bound { flag: &'static str, value: String },
    #[error("--month {0:?}: expected a month as YYYY-MM (2026-11)")]
    Month(String),
    #[error("--quarter {0:?}: expected a quarter as YYYY-QN (2026-Q4)")]
    Quarter(String),
    #[error("--{0} cannot be combined with --since or --until")]
    Combined(&'static str),
    #[error("the period is empty: --since is after --until")]
    Empty,
}

/// The period options as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct PeriodArgs {
    pub since: Option<String>,
    pub until: Option<String>,
    pub month: Option<String>,
    pub quarter: Option<String>,
}

const DAY_MS: i64 = 86_400_000;

impl Period {
    /// Parses the options; at most one of month, quarter, since/until.
    pub fn parse(args: &PeriodArgs) -> Result<Period, PeriodError> {
        let ranged = args.since.is_some() || args.until.is_some();
        let period = match (&args.month, &args.quarter) {
            (Some(_), _) if ranged => return Err(PeriodError::Combined("month")),
            (_, Some(_)) if ranged => return Err(PeriodError::Combined("quarter")),
            (Some(_), Some(_)) => return Err(PeriodError::Combined("month")),
            (Some(m), None) => month(m).ok_or_else(|| PeriodError::Month(m.clone()))?,
            (None, Some(q)) => quarter(q).ok_or_else(|| PeriodError::Quarter(q.clone()))?,
            (None, None) => {
                let bound = |flag: &'static str, v: &Option<String>, until: bool| {
                    v.as_ref()
                        .map(|s| {
                            parse_bound(s, until).ok_or_else(|| PeriodError::Bound {
                                flag,
                                value: s.clone(),
                            })
                        })
                        .transpose()
                };
                Period {
                    from: bound("since", &args.since, false)?,
                    to: bound("until", &args.until, true)?,
                }
            }
        };
        if let (Some(f), Some(t)) = (period.from, period.to) {
            if f >= t {
                return Err(PeriodError::Empty);
            }
        }
        Ok(period)
    }

    /// Whether a log time (ms) falls in the period.
    pub fn contains(&self, t: i64) -> bool {
        self.from.is_none_or(|f| t >= f) && self.to.is_none_or(|e| t < e)
    }

    /// `all entries`, or the first and last millisecond, inclusive.
    pub fn label(&self) -> String {
        match (self.from, self.to) {
            (None, None) => "all entries".to_string(),
            (from, to) => format!(
                "{} to {} (inclusive, UTC)",
                from.map_or("the first entry".to_string(), format_ms),
                to.map_or("the last entry".to_string(), |t| format_ms(t - 1)),
            ),
        }
    }
}

/// A log `ts` (`YYYY-MM-DDTHH:MM:SS.mmmZ`) in ms since the epoch.
pub fn log_millis(ts: &str) -> Option<i64> {
    let secs = i64::try_from(super::time::parse_secs(ts)?).ok()?;
    let ms = ts
        .get(20..23)
        .filter(|_| ts.as_bytes().get(19) == Some(&b'.'))
        .and_then(|m| m.parse::<i64>().ok())
        .unwrap_or(0);
    Some(secs * 1000 + ms)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` of ms since the epoch.
pub fn format_ms(ms: i64) -> String {
    let t = time::OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

fn digits(s: &str) -> Option<u32> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    if s.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let month = Month::try_from(u8::try_from(digits(&s[5..7])?).ok()?).ok()?;
    Date::from_calendar_date(
        digits(&s[0..4])? as i32,
        month,
        u8::try_from(digits(&s[8..10])?).ok()?,
    )
    .ok()
}

fn date_ms(d: Date) -> i64 {
    d.midnight().assume_utc().unix_timestamp() * 1000
}

/// A date (its first millisecond, or with `until` the first of the next day) or an RFC 3339
/// instant (with `until` inclusive: the millisecond after it).
fn parse_bound(s: &str, until: bool) -> Option<i64> {
    if let Some(d) = date(s) {
        return Some(date_ms(d) + if until { DAY_MS } else { 0 });
    }
    let t = instant(s)?;
    Some(if until { t + 1 } else { t })
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` in ms since the epoch (fraction truncated).
fn instant(s: &str) -> Option<i64> {
    let (day, rest) = (s.get(..10)?, s.get(10..)?);
    let rest = rest.strip_prefix(['T', 't'])?;
    let d = date(day)?;
    let clock = rest.get(..8)?;
    let cb = clock.as_bytes();
    if cb[2] != b':' || cb[5] != b':' {
        return None;
    }
    let (h, m, sec) = (
        u8::try_from(digits(&clock[0..2])?).ok()?,
        u8::try_from(digits(&clock[3..5])?).ok()?,
        u8::try_from(digits(&clock[6..8])?).ok()?,
    );
    let mut rest = &rest[8..];
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let padded = format!("{:0<3}", &frac[..n.min(3)]);
        millis = i64::from(digits(&padded)?);
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" | "z" => UtcOffset::UTC,
        o if o.len() == 6 && matches!(o.as_bytes()[0], b'+' | b'-') && o.as_bytes()[3] == b':' => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let oh = i8::try_from(digits(&o[1..3])?).ok()?;
            let om = i8::try_from(digits(&o[4..6])?).ok()?;
            UtcOffset::from_hms(sign * oh, sign * om, 0).ok()?
        }
        _ => return None,
    };
    let t = PrimitiveDateTime::new(d, Time::from_hms(h, m, sec).ok()?).assume_offset(offset);
    Some(t.unix_timestamp() * 1000 + millis)
}

fn month(s: &str) -> Option<Period> {
    let (y, m) = s.split_once('-')?;
    if y.len() != 4 || m.len() != 2 {
        return None;
    }
    let year = digits(y)? as i32;
    let month = Month::try_from(u8::try_from(digits(m)?).ok()?).ok()?;
    let first = Date::from_calendar_date(year, month, 1).ok()?;
    let next = if month == Month::December {
        Date::from_calendar_date(year + 1, Month::January, 1).ok()?
    } else {
        Date::from_calendar_date(year, month.next(), 1).ok()?
    };
    Some(Period {
        from: Some(date_ms(first)),
        to: Some(date_ms(next)),
    })
}

fn quarter(s: &str) -> Option<Period> {
    let (y, q) = s.split_once(['-'])?;
    let q = q.strip_prefix(['Q', 'q'])?;
    if y.len() != 4 || q.len() != 1 {
        return None;
    }
    let year = digits(y)? as i32;
    let n = digits(q)?;
    if !(1..=4).contains(&n) {
        return None;
    }
    let first_month = Month::try_from(u8::try_from(3 * n - 2).ok()?).ok()?;
    let first = Date::from_calendar_date(year, first_month, 1).ok()?;
    let next = if n == 4 {
        Date::from_calendar_date(year + 1, Month::January, 1).ok()?
    } else {
        Date::from_calendar_date(
            year,
            Month::try_from(u8::try_from(3 * n + 1).ok()?).ok()?,
            1,
        )
        .ok()?
    };
    Some(Period {
        from: Some(date_ms(first)),
        to: Some(date_ms(next)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(since: Option<&str>, until: Option<&str>) -> PeriodArgs {
        PeriodArgs {
            since: since.map(str::to_string),
            until: until.map(str::to_string),
            ..PeriodArgs::default()
        }
    }

    fn ms(ts: &str) -> i64 {
        log_millis(ts).expect("log time")
    }

    #[test]
    fn dates_are_inclusive_days_and_instants_are_times() {
        let p = Period::parse(&args(Some("2026-12-01"), Some("2026-12-07"))).expect("valid");
        assert!(p.contains(ms("2026-12-01T00:00:00.000Z")));
        assert!(
            p.contains(ms("2026-12-07T23:59:59.999Z")),
            "all of 7 December"
        );
        assert!(!p.contains(ms("2026-12-08T00:00:00.000Z")));
        assert!(!p.contains(ms("2026-11-30T23:59:59.999Z")));
        assert_eq!(
            p.label(),
            "2026-12-01T00:00:00.000Z to 2026-12-07T23:59:59.999Z (inclusive, UTC)"
        );
        // an instant with an offset is converted; until is inclusive
        let p = Period::parse(&args(
            Some("2026-12-01T10:00:00+01:00"),
            Some("2026-12-01T09:30:00.5Z"),
        ))
        .expect("valid");
        assert!(!p.contains(ms("2026-12-01T08:59:59.999Z")));
        assert!(p.contains(ms("2026-12-01T09:00:00.000Z")));
        assert!(p.contains(ms("2026-12-01T09:30:00.500Z")));
        assert!(!p.contains(ms("2026-12-01T09:30:00.501Z")));
    }

    #[test]
    fn months_and_quarters() {
        let m = |s: &str| {
            Period::parse(&PeriodArgs {
                month: Some(s.into()),
                ..PeriodArgs::default()
            })
        };
        let q = |s: &str| {
            Period::parse(&PeriodArgs {
                quarter: Some(s.into()),
                ..PeriodArgs::default()
            })
        };
        let nov = m("2026-11").expect("month");
        assert!(nov.contains(ms("2026-11-30T23:59:59.999Z")));
        assert!(!nov.contains(ms("2026-12-01T00:00:00.000Z")));
        let dec = m("2026-12").expect("december");
        assert!(dec.contains(ms("2026-12-31T23:59:59.999Z")));
        assert!(!dec.contains(ms("2027-01-01T00:00:00.000Z")));
        let q4 = q("2026-Q4").expect("quarter");
        assert_eq!(q4.from, Some(ms("2026-10-01T00:00:00.000Z")));
        assert_eq!(q4.to, Some(ms("2027-01-01T00:00:00.000Z")));
        let q1 = q("2026-Q1").expect("q1");
        assert_eq!(q1.to, Some(ms("2026-04-01T00:00:00.000Z")));
        for bad in ["2026-13", "2026-1", "26-11", "2026-11-01", "last-month", ""] {
            assert_eq!(m(bad), Err(PeriodError::Month(bad.into())), "{bad}");
        }
        for bad in ["2026-Q5", "2026-Q0", "2026Q4", "2026-4", "Q4"] {
            assert_eq!(q(bad), Err(PeriodError::Quarter(bad.into())), "{bad}");
        }
    }

    #[test]
    fn garbage_and_impossible_bounds_are_refused() {
        for bad in [
            "garbage",
            "2026-13-45",
            "last-month",
            "2026-02-30",
            "2026-12-07T25:00:00Z",
            "2026-12-07T10:00:00",
            "2026-12-07T10:00:00+1:00",
            "2026-12-07 10:00:00Z",
            "1764000000",
        ] {
            assert!(
                matches!(
                    Period::parse(&args(Some(bad), None)),
                    Err(PeriodError::Bound { flag: "since", .. })
                ),
                "{bad}"
            );
            assert!(
                matches!(
                    Period::parse(&args(None, Some(bad))),
                    Err(PeriodError::Bound { flag: "until", .. })
                ),
                "{bad}"
            );
        }
        assert_eq!(
            Period::parse(&args(Some("2026-12-08"), Some("2026-12-07"))),
            Err(PeriodError::Empty)
        );
        assert_eq!(
            Period::parse(&PeriodArgs {
                month: Some("2026-11".into()),
                since: Some("2026-11-01".into()),
                ..PeriodArgs::default()
            }),
            Err(PeriodError::Combined("month"))
        );
        assert_eq!(Period::default().label(), "all entries");
    }
}
