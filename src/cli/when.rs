//! Times given on the command line (`--since`, `--until`): an RFC 3339
//! time, a date or a date and time without an offset (UTC, as stored times
//! are), `today` or `yesterday` (their midnight, UTC), `now`, or an age
//! such as `15m`, `2h` or `7d` (that long before now).

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};

/// What a time argument may look like, for the error message.
const FORMS: &str = "an RFC 3339 time (2026-12-03T09:30:00Z, or with an offset), \
    a date (2026-12-03: midnight UTC), a UTC date and time (\"2026-12-03 09:30\"), \
    today or yesterday (midnight UTC), now, or an age (90s, 15m, 2h, 7d: that long ago)";

/// A time argument, for clap's `value_parser`.
pub fn parse(text: &str) -> Result<DateTime<Utc>, String> {
    parse_at(text, Utc::now()).ok_or_else(|| format!("{text:?} is not {FORMS}"))
}

/// As [`parse`], ages counted back from `now`.
fn parse_at(text: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let text = text.trim();
    let midnight = |days_ago| (now.date_naive() - TimeDelta::days(days_ago)).and_hms_opt(0, 0, 0);
    match text {
        "now" => return Some(now),
        "today" => return Some(midnight(0)?.and_utc()),
        "yesterday" => return Some(midnight(1)?.and_utc()),
        _ => {}
    }
    if let Some(t) = crate::event::parse_time(text) {
        return Some(t);
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some(date.and_hms_opt(0, 0, 0)?.and_utc());
    }
    for format in [
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc());
        }
    }
    let age = humantime::parse_duration(text).ok()?;
    now.checked_sub_signed(TimeDelta::from_std(age).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_dates_and_ages() {
        let now = crate::event::parse_time("2026-12-03T12:00:00Z").expect("now");
        let at = |text: &str| parse_at(text, now).map(crate::event::format_time);
        let cases = [
            ("2026-12-03T09:30:00Z", "2026-12-03T09:30:00.000Z"),
            ("2026-12-03T10:30:00.250+01:00", "2026-12-03T09:30:00.250Z"),
            ("2026-12-02", "2026-12-02T00:00:00.000Z"),
            ("2026-12-02 23:15", "2026-12-02T23:15:00.000Z"),
            ("2026-12-02T23:15:07", "2026-12-02T23:15:07.000Z"),
            ("90s", "2026-12-03T11:58:30.000Z"),
            ("15m", "2026-12-03T11:45:00.000Z"),
            ("2h 30m", "2026-12-03T09:30:00.000Z"),
            ("7d", "2026-11-26T12:00:00.000Z"),
            ("now", "2026-12-03T12:00:00.000Z"),
            ("today", "2026-12-03T00:00:00.000Z"),
            ("yesterday", "2026-12-02T00:00:00.000Z"),
        ];
        for (text, expected) in cases {
            assert_eq!(at(text).as_deref(), Some(expected), "{text}");
        }
        for wrong in ["", "tomorrow", "2026-13-01", "12:00", "-5m"] {
            assert_eq!(at(wrong), None, "{wrong}");
        }
        let error = parse("soon").expect_err("not a time");
        assert!(error.contains("an age (90s, 15m"), "{error}");
    }
}
