//! In-process metrics with fixed names, rendered as Prometheus text.
//!
//! Names follow `lae_<noun>_<unit>[_total]`. Updates happen per batch or per request, never
//! per event, so one mutex over small maps is cheap enough. Label sets are low-cardinality by
//! construction (sink names, event types, endpoints, statuses).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, OnceLock};

/// Kind of a metric, for the `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
}

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Family {
    kind: Option<Kind>,
    help: &'static str,
    series: BTreeMap<Labels, f64>,
}

/// A histogram's cumulative bucket counts, sum and count, for one label set.
#[derive(Default, Clone)]
struct Histogram {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct HistogramFamily {
    help: &'static str,
    bounds: &'static [f64],
    series: BTreeMap<Labels, Histogram>,
}

/// The process's metrics.
#[derive(Default)]
pub struct Registry {
    families: Mutex<BTreeMap<&'static str, Family>>,
    histograms: Mutex<BTreeMap<&'static str, HistogramFamily>>,
}

/// The process-wide registry.
pub fn global() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_string())).collect()
}

impl Registry {
    fn update(
        &self,
        name: &'static str,
        kind: Kind,
        help: &'static str,
        pairs: &[(&'static str, &str)],
        apply: impl FnOnce(&mut f64),
    ) {
        let mut families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        let family = families.entry(name).or_default();
        family.kind = Some(kind);
        family.help = help;
        apply(family.series.entry(labels(pairs)).or_insert(0.0));
    }

    /// Adds to a counter.
    pub fn counter_add(
        &self,
        name: &'static str,
        help: &'static str,
        pairs: &[(&'static str, &str)],
        value: u64,
    ) {
        self.update(name, Kind::Counter, help, pairs, |v| *v += value as f64);
    }

    /// Adds a fractional amount to a counter (seconds spent).
    pub fn update_sum(
        &self,
        name: &'static str,
        help: &'static str,
        pairs: &[(&'static str, &str)],
        value: f64,
    ) {
        self.update(name, Kind::Counter, help, pairs, |v| *v += value);
    }

    /// Sets a gauge.
    pub fn gauge_set(
        &self,
        name: &'static str,
        help: &'static str,
        pairs: &[(&'static str, &str)],
        value: f64,
    ) {
        self.update(name, Kind::Gauge, help, pairs, |v| *v = value);
    }

    /// Counts observations in a histogram with these upper bucket bounds.
    pub fn histogram_observe(
        &self,
        name: &'static str,
        help: &'static str,
        bounds: &'static [f64],
        pairs: &[(&'static str, &str)],
        values: &[f64],
    ) {
        let mut histograms = self.histograms.lock().unwrap_or_else(|p| p.into_inner());
        let family = histograms.entry(name).or_default();
        family.help = help;
        family.bounds = bounds;
        let histogram = family.series.entry(labels(pairs)).or_default();
        histogram.buckets.resize(bounds.len(), 0);
        for value in values {
            for (bucket, bound) in histogram.buckets.iter_mut().zip(bounds) {
                if value <= bound {
                    *bucket += 1;
                }
            }
            histogram.sum += value;
            histogram.count += 1;
        }
    }

    /// The current value of one series, if it exists (for tests and health checks).
    #[cfg(test)]
    pub fn value(&self, name: &str, pairs: &[(&'static str, &str)]) -> Option<f64> {
        let families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        families.get(name)?.series.get(&labels(pairs)).copied()
    }

    /// The values of label `label` of every series of `name` whose value is `value`, e.g. the
    /// sinks whose `lae_sink_up` is 0 (for `/readyz`).
    pub fn series_at(&self, name: &str, value: f64, label: &str) -> Vec<String> {
        let families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        let Some(family) = families.get(name) else {
            return Vec::new();
        };
        family
            .series
            .iter()
            .filter(|(_, v)| **v == value)
            .filter_map(|(labels, _)| {
                labels
                    .iter()
                    .find(|(key, _)| *key == label)
                    .map(|(_, v)| v.clone())
            })
            .collect()
    }

    /// Every metric in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        for (name, family) in families.iter() {
            let kind = match family.kind {
                Some(Kind::Counter) => "counter",
                Some(Kind::Gauge) | None => "gauge",
            };
            let _ = writeln!(out, "# HELP {name} {}", family.help);
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in &family.series {
                out.push_str(name);
                if !labels.is_empty() {
                    out.push('{');
                    for (idx, (key, value)) in labels.iter().enumerate() {
                        if idx > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{key}=\"{}\"", escape(value));
                    }
                    out.push('}');
                }
                let _ = writeln!(out, " {value}");
            }
        }
        drop(families);
        let histograms = self.histograms.lock().unwrap_or_else(|p| p.into_inner());
        for (name, family) in histograms.iter() {
            let _ = writeln!(out, "# HELP {name} {}", family.help);
            let _ = writeln!(out, "# TYPE {name} histogram");
            for (labels, histogram) in &family.series {
                let rendered: Vec<String> = labels
                    .iter()
                    .map(|(key, value)| format!("{key}=\"{}\"", escape(value)))
                    .collect();
                let prefix = |extra: Option<String>| {
                    let mut all = rendered.clone();
                    all.extend(extra);
                    if all.is_empty() {
                        String::new()
                    } else {
                        format!("{{{}}}", all.join(","))
                    }
                };
                for (bound, count) in family.bounds.iter().zip(&histogram.buckets) {
                    let le = prefix(Some(format!("le=\"{bound}\"")));
                    let _ = writeln!(out, "{name}_bucket{le} {count}");
                }
                let le = prefix(Some("le=\"+Inf\"".to_string()));
                let _ = writeln!(out, "{name}_bucket{le} {}", histogram.count);
                let plain = prefix(None);
                let _ = writeln!(out, "{name}_sum{plain} {}", histogram.sum);
                let _ = writeln!(out, "{name}_count{plain} {}", histogram.count);
            }
        }
        out
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Emit helpers, one per thing that happens, so names and help texts live in one place.
pub mod emit {
    use crate::metrics::global;

    /// An HTTP answer from the Lacework API.
    pub fn api_request(endpoint: &str, status: &str) {
        global().counter_add(
            "lae_api_requests_total",
            "Lacework API requests by endpoint and status (or error).",
            &[("endpoint", endpoint), ("status", status)],
            1,
        );
    }

    /// An audit record said the exporter's own API key was disabled or deleted.
    pub fn own_api_key_revoked(key_id: &str) {
        global().gauge_set(
            "lae_own_api_key_revoked",
            "1 once an audit record said this exporter's own API key was disabled or deleted: it stops working when its token expires.",
            &[("key_id", key_id)],
            1.0,
        );
    }

    /// `RateLimit-Remaining` as last seen.
    pub fn api_ratelimit_remaining(endpoint: &str, remaining: f64) {
        global().gauge_set(
            "lae_api_ratelimit_remaining",
            "RateLimit-Remaining of the last Lacework answer.",
            &[("endpoint", endpoint)],
            remaining,
        );
    }

    /// The request budget left with the API key, as this process sees it.
    pub fn api_budget_remaining(remaining: f64) {
        global().gauge_set(
            "lae_api_budget_remaining",
            "Requests left in the API key's budget (the lower of this process's own budget and the server's RateLimit-Remaining estimate).",
            &[],
            remaining,
        );
    }

    /// Time a request waited for the budget.
    pub fn api_throttled(priority: &str, seconds: f64) {
        global().update_sum(
            "lae_api_throttle_wait_seconds_total",
            "Time requests waited for the request budget or a 429 to pass, by priority (live, resweep, replay).",
            &[("priority", priority)],
            seconds,
        );
    }

    /// How far this host's clock is ahead of the API server's (negative: behind).
    pub fn clock_skew(seconds: f64) {
        global().gauge_set(
            "lae_clock_skew_seconds",
            "This host's clock minus the Lacework API server's (Date header), in seconds.",
            &[],
            seconds,
        );
    }

    /// A Lacework request retried.
    pub fn api_retry(endpoint: &str) {
        global().counter_add(
            "lae_api_retries_total",
            "Lacework requests retried after a transient failure.",
            &[("endpoint", endpoint)],
            1,
        );
    }

    /// Events a sink acknowledged, by type.
    pub fn events_delivered(sink: &str, event_type: &str, n_events: u64) {
        global().counter_add(
            "lae_events_delivered_total",
            "Events acknowledged by a sink, by sink and type.",
            &[("sink", sink), ("type", event_type)],
            n_events,
        );
    }

    /// One batch acknowledged by a sink, and how long it took.
    pub fn sink_delivery(sink: &str, seconds: f64) {
        global().counter_add(
            "lae_sink_deliveries_total",
            "Batches acknowledged by a sink.",
            &[("sink", sink)],
            1,
        );
        global().update_sum("lae_sink_delivery_seconds_total", "Time spent delivering acknowledged batches (divide by lae_sink_deliveries_total for the mean).", &[("sink", sink)], seconds);
        global().gauge_set(
            "lae_sink_last_delivery_seconds",
            "Duration of the last acknowledged batch.",
            &[("sink", sink)],
            seconds,
        );
    }

    /// A sink failed to deliver a batch (it will be retried unless the error is fatal).
    pub fn sink_failure(sink: &str) {
        global().counter_add(
            "lae_sink_failures_total",
            "Failed delivery attempts by sink.",
            &[("sink", sink)],
            1,
        );
    }

    /// Whether a sink currently accepts deliveries.
    pub fn sink_up(sink: &str, up: bool) {
        global().gauge_set(
            "lae_sink_up",
            "1 while the sink accepts deliveries, 0 while it is failing.",
            &[("sink", sink)],
            if up { 1.0 } else { 0.0 },
        );
    }

    /// A window committed.
    pub fn window_committed(
        stream: &str,
        account: &str,
        cursor_ms: i64,
        now_ms: i64,
        duration_seconds: f64,
        n_records: u64,
        n_duplicates: u64,
    ) {
        let registry = global();
        registry.gauge_set(
            "lae_cursor_timestamp_seconds",
            "Checkpoint position (Unix seconds): everything before it was delivered.",
            &[("stream", stream), ("account", account)],
            cursor_ms as f64 / 1000.0,
        );
        registry.gauge_set(
            "lae_cursor_lag_seconds",
            "How far the checkpoint is behind now.",
            &[("stream", stream), ("account", account)],
            (now_ms - cursor_ms) as f64 / 1000.0,
        );
        registry.gauge_set(
            "lae_window_duration_seconds",
            "How long the last window took to read and deliver.",
            &[("stream", stream), ("account", account)],
            duration_seconds,
        );
        registry.gauge_set(
            "lae_last_poll_success_timestamp_seconds",
            "When a window was last delivered and committed (Unix seconds).",
            &[("stream", stream), ("account", account)],
            now_ms as f64 / 1000.0,
        );
        registry.counter_add(
            "lae_windows_total",
            "Windows delivered and committed.",
            &[("stream", stream), ("account", account)],
            1,
        );
        registry.counter_add(
            "lae_records_read_total",
            "Audit records read from the API.",
            &[("stream", stream), ("account", account)],
            n_records,
        );
        registry.counter_add(
            "lae_duplicates_dropped_total",
            "Records dropped because their id was already delivered.",
            &[("stream", stream), ("account", account)],
            n_duplicates,
        );
    }

    /// The Kafka brokers acknowledged messages.
    pub fn kafka_messages_acknowledged(sink: &str, n_messages: u64) {
        global().counter_add(
            "lae_kafka_messages_acknowledged_total",
            "Messages the Kafka brokers acknowledged.",
            &[("sink", sink)],
            n_messages,
        );
    }

    /// A Kafka producer was thrown away and created anew.
    pub fn kafka_producer_recreated(sink: &str) {
        global().counter_add(
            "lae_kafka_producers_recreated_total",
            "Kafka producers thrown away and created anew after a fatal error or repeated timeouts.",
            &[("sink", sink)],
            1,
        );
    }

    /// What this build is; set at scrape time.
    pub fn build_info(version: &str, revision: &str, rustc: &str) {
        global().gauge_set(
            "lae_build_info",
            "Always 1; the labels tell the build (version, git revision, compiler).",
            &[
                ("version", version),
                ("revision", revision),
                ("rustc", rustc),
            ],
            1.0,
        );
    }

    /// How far the live checkpoint is behind now; set at scrape time.
    pub fn live_cursor_lag(lag_seconds: f64) {
        global().gauge_set(
            "lae_live_cursor_lag_seconds",
            "How far the live checkpoint is behind now, at scrape time.",
            &[],
            lag_seconds,
        );
    }

    /// Records delivered late: first seen after the cursor had passed their time, caught by
    /// the overlap of a live query or by a re-sweep; `delays` are seconds from `createdTime`
    /// to first seen.
    pub fn late_records(stream: &str, found_by: &str, delays: &[f64]) {
        global().counter_add(
            "lae_late_records_total",
            "Records first seen after the cursor had passed their createdTime, by how they were found (overlap, resweep).",
            &[("stream", stream), ("found_by", found_by)],
            delays.len() as u64,
        );
        global().histogram_observe(
            "lae_late_record_delay_seconds",
            "How late records were: createdTime to first seen by the exporter. Lacework's ingestion delay; tune poll.settle, poll.overlap and poll.resweep from it.",
            &[
                60.0, 120.0, 300.0, 600.0, 1_800.0, 3_600.0, 7_200.0, 21_600.0, 43_200.0,
                86_400.0,
            ],
            &[("stream", stream)],
            delays,
        );
    }

    /// A re-sweep read all its windows.
    pub fn resweep_finished(stream: &str) {
        global().counter_add(
            "lae_resweeps_total",
            "Re-sweeps of recent time finished.",
            &[("stream", stream)],
            1,
        );
        global().gauge_set(
            "lae_last_resweep_timestamp_seconds",
            "When a re-sweep last finished (Unix seconds).",
            &[("stream", stream)],
            crate::time::now_ms() as f64 / 1000.0,
        );
    }

    /// A window failed and will be read again.
    pub fn window_failed(stream: &str) {
        global().counter_add(
            "lae_window_failures_total",
            "Windows that failed and will be read again.",
            &[("stream", stream)],
            1,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let registry = Registry::default();
        registry.counter_add(
            "lae_events_total",
            "Events delivered.",
            &[("sink", "siem"), ("type", "USER_CREATED")],
            2,
        );
        registry.counter_add(
            "lae_events_total",
            "Events delivered.",
            &[("sink", "siem"), ("type", "USER_CREATED")],
            3,
        );
        registry.gauge_set(
            "lae_sink_up",
            "Whether the sink accepts deliveries.",
            &[("sink", "a\"b")],
            1.0,
        );
        let text = registry.render();
        assert!(text.contains("# TYPE lae_events_total counter\n"), "{text}");
        assert!(
            text.contains("lae_events_total{sink=\"siem\",type=\"USER_CREATED\"} 5\n"),
            "{text}"
        );
        assert!(text.contains("lae_sink_up{sink=\"a\\\"b\"} 1\n"), "{text}");
        registry.histogram_observe(
            "lae_delay_seconds",
            "Delays.",
            &[1.0, 10.0],
            &[("stream", "s")],
            &[0.5, 5.0, 50.0],
        );
        let text = registry.render();
        assert!(
            text.contains("# TYPE lae_delay_seconds histogram\n"),
            "{text}"
        );
        assert!(
            text.contains("lae_delay_seconds_bucket{stream=\"s\",le=\"1\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("lae_delay_seconds_bucket{stream=\"s\",le=\"10\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("lae_delay_seconds_bucket{stream=\"s\",le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("lae_delay_seconds_sum{stream=\"s\"} 55.5\n"),
            "{text}"
        );
        assert!(
            text.contains("lae_delay_seconds_count{stream=\"s\"} 3\n"),
            "{text}"
        );
        assert_eq!(
            registry.value(
                "lae_events_total",
                &[("sink", "siem"), ("type", "USER_CREATED")]
            ),
            Some(5.0)
        );
    }
}
