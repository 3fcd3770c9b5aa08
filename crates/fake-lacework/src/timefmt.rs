//! Parses the query timestamps the API accepts and renders `createdTime`/`expiresAt` values.

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};

/// Milliseconds in one day; the default AuditLogs window when `startTime` is missing.
pub(crate) const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// The wall clock in epoch milliseconds; tokens and visibility use real time, not a test clock.
pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Parses one of the four documented query formats (`yyyy-MM-dd`, `yyyy-MM-ddTHH`,
/// `yyyy-MM-ddTHH:mm:ssZ`, `yyyy-MM-ddTHH:mm:ss.SSSZ`, always UTC) into epoch milliseconds.
///
/// Anything else is rejected, because the real API answers 400 "Invalid Date" and a
/// client that sends e.g. `+00:00` offsets must find out here rather than in production.
pub fn parse_query_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(num(0, 4)? as i32, num(5, 7)?, num(8, 10)?)?;
    let clock_ok = |len: usize| b.len() == len && b[10] == b'T';
    let (h, m, sec, ms) = match b.len() {
        10 => (0, 0, 0, 0),
        13 if clock_ok(13) => (num(11, 13)?, 0, 0, 0),
        20 if clock_ok(20) && b[13] == b':' && b[16] == b':' && b[19] == b'Z' => {
            (num(11, 13)?, num(14, 16)?, num(17, 19)?, 0)
        }
        24 if clock_ok(24) && b[13] == b':' && b[16] == b':' && b[19] == b'.' && b[23] == b'Z' => {
            (num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 23)?)
        }
        _ => return None,
    };
    // `and_hms_milli_opt` accepts ms 1000..1999 as a leap second; the API has no such thing.
    if ms > 999 {
        return None;
    }
    Some(
        date.and_hms_milli_opt(h, m, sec, ms)?
            .and_utc()
            .timestamp_millis(),
    )
}

fn utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Renders `yyyy-MM-ddTHH:mm:ss.SSSZ`, the format of `expiresAt` and most v2 timestamps.
pub fn format_millis(ms: i64) -> String {
    let t = utc(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.timestamp_subsec_millis()
    )
}

/// Renders `yyyy-MM-ddTHH:mm:ssZ`; sub-second digits are dropped, not rounded.
pub fn format_seconds(ms: i64) -> String {
    let t = utc(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_four_documented_formats() {
        let base = 1_608_278_400_000; // 2020-12-18T08:00:00Z
        assert_eq!(parse_query_time("2020-12-18"), Some(base - 8 * 3_600_000));
        assert_eq!(parse_query_time("2020-12-18T08"), Some(base));
        assert_eq!(parse_query_time("2020-12-18T08:00:00Z"), Some(base));
        assert_eq!(
            parse_query_time("2020-12-18T08:00:00.042Z"),
            Some(base + 42)
        );
    }

    #[test]
    fn rejects_undocumented_or_invalid_forms() {
        for bad in [
            "",
            "2020-12-18T08:00:00",
            "2020-12-18T08:00:00+00:00",
            "2020-12-18T08:00:00.1Z",
            "2020-13-01",
            "2020-12-18 08",
            "2020-12-18T08:00",
            "1608278400000",
            "2020-12-18t08:00:00z",
        ] {
            assert_eq!(parse_query_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_round_trip() {
        let ms = 1_793_524_502_123;
        assert_eq!(format_millis(ms), "2026-11-01T09:15:02.123Z");
        assert_eq!(format_seconds(ms), "2026-11-01T09:15:02Z");
        assert_eq!(parse_query_time(&format_millis(ms)), Some(ms));
        assert_eq!(parse_query_time(&format_seconds(ms)), Some(ms - 123));
    }
}
