//! Times on the command line: RFC 3339, plain UTC dates, "now", and durations meaning "ago".

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};

/// A time as given on the command line, resolved against one "now" later so that `--from 36h
/// --to 2h` measures both from the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeArg {
    /// An absolute instant, epoch ms.
    At(i64),
    /// That long before now.
    Ago(Duration),
}

impl TimeArg {
    /// Epoch milliseconds relative to `now_ms`.
    pub fn resolve(self, now_ms: i64) -> i64 {
        match self {
            TimeArg::At(ms) => ms,
            TimeArg::Ago(ago) => now_ms - ago.as_millis() as i64,
        }
    }
}

/// Epoch milliseconds for people: RFC 3339 with milliseconds, or the raw number when out of range.
pub fn show_time(ms: i64) -> String {
    crate::time::format_time_ms(ms).unwrap_or_else(|| ms.to_string())
}

/// Parses a time argument (used as a clap value parser, so errors become exit code 2).
pub fn parse_time_arg(text: &str) -> Result<TimeArg, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("now") {
        return Ok(TimeArg::Ago(Duration::ZERO));
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(TimeArg::At(time.with_timezone(&Utc).timestamp_millis()));
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists");
        return Ok(TimeArg::At(midnight.and_utc().timestamp_millis()));
    }
    if let Ok(ago) = humantime::parse_duration(text) {
        return Ok(TimeArg::Ago(ago));
    }
    let hint = if text.contains('T') && !text.ends_with('Z') && !text.contains('+') {
        " (an RFC 3339 time needs a zone, e.g. 2026-11-01T08:00:00Z)"
    } else {
        ""
    };
    Err(format!(
        "{text:?} is not a time: use RFC 3339 (2026-11-01T08:00:00Z), a UTC date (2026-11-01), \"now\", or a duration ago (36h, 7d, 90m){hint}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_form_parses() {
        let now = 1_793_700_000_000;
        let check = |text: &str, expected: i64| {
            assert_eq!(
                parse_time_arg(text).unwrap().resolve(now),
                expected,
                "{text}"
            );
        };
        check("2026-11-01T08:00:00Z", 1_793_520_000_000);
        check("2026-11-01T08:00:00.250Z", 1_793_520_000_250);
        check("2026-11-01T09:00:00+01:00", 1_793_520_000_000);
        check("2026-11-01", 1_793_491_200_000);
        check("36h", now - 36 * 3_600_000);
        check("7d", now - 7 * 86_400_000);
        check("90m", now - 90 * 60_000);
        check("now", now);
    }

    #[test]
    fn bad_times_are_explained() {
        assert!(
            parse_time_arg("yesterday")
                .unwrap_err()
                .contains("not a time")
        );
        assert!(
            parse_time_arg("2026-11-01T08:00:00")
                .unwrap_err()
                .contains("needs a zone")
        );
        assert!(parse_time_arg("2026-13-01").is_err());
        assert!(parse_time_arg("").is_err());
    }
}
