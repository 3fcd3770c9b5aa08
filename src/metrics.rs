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

/// The process's metrics.
#[derive(Default)]
pub struct Registry {
    families: Mutex<BTreeMap<&'static str, Family>>,
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
    fn update(&self, name: &'static str, kind: Kind, help: &'static str, pairs: &[(&'static str, &str)], apply: impl FnOnce(&mut f64)) {
        let mut families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        let family = families.entry(name).or_default();
        family.kind = Some(kind);
        family.help = help;
        apply(family.series.entry(labels(pairs)).or_insert(0.0));
    }

    /// Adds to a counter.
    pub fn counter_add(&self, name: &'static str, help: &'static str, pairs: &[(&'static str, &str)], value: u64) {
        self.update(name, Kind::Counter, help, pairs, |v| *v += value as f64);
    }

    /// Sets a gauge.
    pub fn gauge_set(&self, name: &'static str, help: &'static str, pairs: &[(&'static str, &str)], value: f64) {
        self.update(name, Kind::Gauge, help, pairs, |v| *v = value);
    }

    /// The current value of one series, if it exists (for tests and health checks).
    pub fn value(&self, name: &str, pairs: &[(&'static str, &str)]) -> Option<f64> {
        let families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        families.get(name)?.series.get(&labels(pairs)).copied()
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
                        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
                        let _ = write!(out, "{key}=\"{escaped}\"");
                    }
                    out.push('}');
                }
                let _ = writeln!(out, " {value}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let registry = Registry::default();
        registry.counter_add("lae_events_total", "Events delivered.", &[("sink", "siem"), ("type", "USER_CREATED")], 2);
        registry.counter_add("lae_events_total", "Events delivered.", &[("sink", "siem"), ("type", "USER_CREATED")], 3);
        registry.gauge_set("lae_sink_up", "Whether the sink accepts deliveries.", &[("sink", "a\"b")], 1.0);
        let text = registry.render();
        assert!(text.contains("# TYPE lae_events_total counter\n"), "{text}");
        assert!(text.contains("lae_events_total{sink=\"siem\",type=\"USER_CREATED\"} 5\n"), "{text}");
        assert!(text.contains("lae_sink_up{sink=\"a\\\"b\"} 1\n"), "{text}");
        assert_eq!(registry.value("lae_events_total", &[("sink", "siem"), ("type", "USER_CREATED")]), Some(5.0));
    }
}
