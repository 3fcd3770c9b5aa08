//! Clocks and time formats: wall-clock epoch milliseconds for what is stored, sent and shown,
//! and the monotonic clock for what measures elapsed time, so that an NTP step can neither
//! fake a stall nor hide one.
//!
//! Ground floor: imports nothing of ours.

use std::time::Duration;

/// Wall-clock now in epoch milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Formats epoch milliseconds as `2026-11-01T09:15:02.123Z`; `None` out of chrono's range.
pub fn format_time_ms(ms: i64) -> Option<String> {
    // `to_rfc3339_opts` writes directly; `format()` would parse a strftime pattern each time.
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// `CLOCK_MONOTONIC` as a duration since an unspecified start (boot, on Linux). This is the
/// clock systemd's `MONOTONIC_USEC=` speaks and the one `std::time::Instant` reads, but
/// `Instant` does not expose its value.
pub fn monotonic() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_milliseconds_in_utc() {
        assert_eq!(
            format_time_ms(1_793_524_502_123).as_deref(),
            Some("2026-11-01T09:15:02.123Z")
        );
        assert_eq!(
            format_time_ms(0).as_deref(),
            Some("1970-01-01T00:00:00.000Z")
        );
        assert_eq!(format_time_ms(i64::MAX), None);
    }

    #[test]
    fn monotonic_reads_the_clock_instant_reads() {
        // `Instant` is CLOCK_MONOTONIC on Linux: a reading taken between two instants lies
        // between them. /proc/uptime (CLOCK_BOOTTIME, 10 ms steps) would drift off this
        // bracket after any suspend and round it besides.
        let before = std::time::Instant::now();
        let first = monotonic();
        std::thread::sleep(Duration::from_millis(5));
        let second = monotonic();
        let elapsed = before.elapsed();
        assert!(second > first);
        let measured = second - first;
        assert!(measured >= Duration::from_millis(5), "{measured:?}");
        assert!(measured <= elapsed, "{measured:?} > {elapsed:?}");
    }
}
