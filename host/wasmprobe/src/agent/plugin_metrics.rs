//! Metrics plugins declare (WIT `metrics` interface): counters, gauges and histograms with
//! labels, kept per plugin and encoded at each scrape as families of their own name with a
//! `plugin` label. Each metric has a cap on its label sets: an update for a new label set
//! past the cap goes to the metric's overflow series (every label `__overflow__`), and is
//! counted in `wasmprobe_plugin_metric_overflows_total`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

/// What kind of metric.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricKind {
    /// Only goes up (`add`).
    Counter,
    /// Goes anywhere (`set`, `add`).
    Gauge,
    /// Observations in buckets with these upper bounds (`observe`).
    Histogram(Vec<f64>),
}

/// A metric as a plugin declared it.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricDef {
    /// A Prometheus metric name.
    pub name: String,
    /// Its help text.
    pub help: String,
    /// Its kind.
    pub kind: MetricKind,
    /// Its label names, in the order updates give values.
    pub labels: Vec<String>,
    /// Label sets kept at most (then the overflow series).
    pub max_series: usize,
}

/// What an update does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Counter or gauge: add the value (a counter refuses a negative one).
    Add,
    /// Gauge: set the value.
    Set,
    /// Histogram: observe the value.
    Observe,
}

#[derive(Debug, Clone, Default)]
struct Series {
    value: f64,
    /// Histogram: count per bucket (not cumulative), the last one +Inf.
    buckets: Vec<u64>,
    count: u64,
}

#[derive(Debug, Default)]
struct Table {
    defs: Vec<MetricDef>,
    series: Vec<HashMap<Vec<String>, Series>>,
    overflows: Vec<u64>,
}

/// The most label sets a metric may ask for.
pub const MAX_SERIES_CAP: usize = 10_000;
/// The label value of the overflow series.
pub const OVERFLOW: &str = "__overflow__";

/// Every running plugin's metrics, by key: the plugin's name, or `NAME\0GENERATION` for one
/// start of an agent's plugin (so that a replaced start's last updates cannot reach the
/// next start's series); the `plugin` label is the name.
#[derive(Debug, Default)]
pub struct PluginMetrics {
    tables: Mutex<BTreeMap<String, Table>>,
}

impl PluginMetrics {
    /// Declares a metric of `plugin`; returns its handle. Refused: a bad name or label name,
    /// a name declared twice, or one another plugin declared with another kind or labels.
    pub fn declare(&self, plugin: &str, def: MetricDef) -> Result<u32, String> {
        if !valid_metric_name(&def.name) || def.name.starts_with("wasmprobe_") {
            return Err(format!(
                "metric name {:?} is not a metric name of its own ([a-zA-Z_:][a-zA-Z0-9_:]*, not wasmprobe_*)",
                def.name
            ));
        }
        if def.name.ends_with("_total") && def.kind == MetricKind::Counter {
            return Err(format!(
                "metric {}: a counter's name does not end in _total (the exposition adds it)",
                def.name
            ));
        }
        for l in &def.labels {
            if !super::config::is_label_name(l) || l == "plugin" || l == "node" || l == "le" {
                return Err(format!("metric {}: {l:?} is not a label name of its own", def.name));
            }
        }
        if let MetricKind::Histogram(b) = &def.kind {
            if b.is_empty() || b.len() > 64 || b.windows(2).any(|w| w[0] >= w[1]) || b.iter().any(|x| !x.is_finite()) {
                return Err(format!("metric {}: buckets must be 1-64 finite bounds in increasing order", def.name));
            }
        }
        let mut tables = self.tables.lock().unwrap();
        for (p, t) in tables.iter() {
            if let Some(other) = t.defs.iter().find(|d| d.name == def.name) {
                let p = p.split('\0').next().unwrap_or(p);
                if p == plugin.split('\0').next().unwrap_or(plugin) {
                    return Err(format!("metric {}: declared twice", def.name));
                }
                if std::mem::discriminant(&other.kind) != std::mem::discriminant(&def.kind)
                    || other.labels != def.labels
                {
                    return Err(format!("metric {}: plugin {p} declared it with another kind or labels", def.name));
                }
            }
        }
        let t = tables.entry(plugin.to_string()).or_default();
        let max_series = def.max_series.clamp(1, MAX_SERIES_CAP);
        t.defs.push(MetricDef { max_series, ..def });
        t.series.push(HashMap::new());
        t.overflows.push(0);
        Ok(t.defs.len() as u32 - 1)
    }

    /// Applies updates of `plugin`'s metrics in order (one lock for all; a label set seen
    /// before costs one hash lookup, its values are moved, not copied); returns the first
    /// misuse (the rest is applied).
    pub fn update(&self, plugin: &str, updates: Vec<(u32, Vec<String>, Op, f64)>) -> Result<(), String> {
        use std::collections::hash_map::Entry;
        let mut tables = self.tables.lock().unwrap();
        let Some(t) = tables.get_mut(plugin) else {
            // Declared nothing, or forgotten: a start that was stopped or replaced.
            return Ok(());
        };
        let mut first_err = None;
        for (m, labels, op, v) in updates {
            let Some(def) = t.defs.get(m as usize) else {
                first_err.get_or_insert(format!("no metric {m}"));
                continue;
            };
            if labels.len() != def.labels.len() {
                first_err.get_or_insert(format!(
                    "metric {}: {} label values for {} labels",
                    def.name,
                    labels.len(),
                    def.labels.len()
                ));
                continue;
            }
            let ok = match (&def.kind, op) {
                (MetricKind::Counter, Op::Add) => v >= 0.0 && v.is_finite(),
                (MetricKind::Gauge, Op::Add | Op::Set) => v.is_finite(),
                (MetricKind::Histogram(_), Op::Observe) => !v.is_nan(),
                _ => false,
            };
            if !ok {
                first_err.get_or_insert(format!("metric {}: {op:?} {v} does not apply", def.name));
                continue;
            }
            let series = &mut t.series[m as usize];
            let fresh = || Series {
                buckets: match &def.kind {
                    MetricKind::Histogram(b) => vec![0; b.len() + 1],
                    _ => Vec::new(),
                },
                ..Series::default()
            };
            let len = series.len();
            match series.entry(labels) {
                Entry::Occupied(o) => apply(&def.kind, op, v, o.into_mut()),
                Entry::Vacant(e) if len < def.max_series => apply(&def.kind, op, v, e.insert(fresh())),
                Entry::Vacant(_) => {
                    t.overflows[m as usize] += 1;
                    let key = vec![OVERFLOW.to_string(); def.labels.len()];
                    apply(&def.kind, op, v, series.entry(key).or_insert_with(fresh));
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Forgets the metrics of plugin `name`, of every start (it stopped, or starts again).
    pub fn remove(&self, name: &str) {
        self.tables.lock().unwrap().retain(|k, _| k.split('\0').next() != Some(name));
    }

    /// The value of one series (a histogram's: its count), for tests and `--check`.
    pub fn value(&self, plugin: &str, name: &str, labels: &[&str]) -> Option<f64> {
        let tables = self.tables.lock().unwrap();
        let t = tables.get(plugin)?;
        let i = t.defs.iter().position(|d| d.name == name)?;
        let key: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
        let s = t.series[i].get(&key)?;
        Some(if s.buckets.is_empty() { s.value } else { s.count as f64 })
    }
}

/// One update of one series (already checked against the metric's kind).
fn apply(kind: &MetricKind, op: Op, v: f64, s: &mut Series) {
    match (kind, op) {
        (MetricKind::Histogram(b), _) => {
            let i = b.iter().position(|up| v <= *up).unwrap_or(b.len());
            s.buckets[i] += 1;
            s.count += 1;
            s.value += v;
        }
        (_, Op::Set) => s.value = v,
        _ => s.value += v,
    }
}

fn valid_metric_name(s: &str) -> bool {
    let mut c = s.chars();
    !s.is_empty()
        && s.len() <= 200
        && c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
}

impl Collector for PluginMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let tables = self.tables.lock().unwrap();
        // One family per name, whichever plugins declared it.
        type Member<'a> = (&'a str, &'a MetricDef, &'a HashMap<Vec<String>, Series>);
        let mut by_name: BTreeMap<&str, Vec<Member>> = BTreeMap::new();
        let mut overflows: Vec<(Vec<(String, String)>, u64)> = Vec::new();
        for (key, t) in tables.iter() {
            let plugin = key.split('\0').next().unwrap_or(key);
            for (i, d) in t.defs.iter().enumerate() {
                by_name.entry(d.name.as_str()).or_default().push((plugin, d, &t.series[i]));
                overflows.push((
                    vec![("plugin".into(), plugin.to_string()), ("metric".into(), d.name.clone())],
                    t.overflows[i],
                ));
            }
        }
        for (name, members) in by_name {
            let first = members[0].1;
            let mtype = match first.kind {
                MetricKind::Counter => MetricType::Counter,
                MetricKind::Gauge => MetricType::Gauge,
                MetricKind::Histogram(_) => MetricType::Histogram,
            };
            let mut family = encoder.encode_descriptor(name, &first.help, None, mtype)?;
            for (plugin, def, series) in members {
                let mut keys: Vec<&Vec<String>> = series.keys().collect();
                keys.sort();
                for key in keys {
                    let s = &series[key];
                    let mut labels: Vec<(String, String)> = vec![("plugin".into(), plugin.to_string())];
                    labels.extend(def.labels.iter().cloned().zip(key.iter().cloned()));
                    let enc = family.encode_family(&labels)?;
                    match &def.kind {
                        // Whole counts print as integers.
                        MetricKind::Counter if s.value.fract() == 0.0 && s.value < 9e15 => {
                            ConstCounter::new(s.value as u64).encode(enc)?
                        }
                        MetricKind::Counter => ConstCounter::new(s.value).encode(enc)?,
                        MetricKind::Gauge => ConstGauge::new(s.value).encode(enc)?,
                        MetricKind::Histogram(bounds) => {
                            let mut enc = enc;
                            let buckets: Vec<(f64, u64)> =
                                bounds.iter().copied().chain([f64::MAX]).zip(s.buckets.iter().copied()).collect();
                            enc.encode_histogram::<NoLabelSet>(s.value, s.count, &buckets, None)?
                        }
                    }
                }
            }
        }
        if !overflows.is_empty() {
            let mut family = encoder.encode_descriptor(
                "wasmprobe_plugin_metric_overflows",
                "Updates of a plugin metric that went to its overflow series (label sets over its cap)",
                None,
                MetricType::Counter,
            )?;
            for (labels, n) in &overflows {
                ConstCounter::new(*n).encode(family.encode_family(labels)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(name: &str, kind: MetricKind, max: usize) -> MetricDef {
        MetricDef { name: name.into(), help: "h".into(), kind, labels: vec!["k".into()], max_series: max }
    }

    #[test]
    fn cardinality_is_capped_into_an_overflow_series() {
        let pm = PluginMetrics::default();
        let c = pm.declare("p", def("calls", MetricKind::Counter, 2)).unwrap();
        let ups: Vec<_> = ["a", "b", "c", "d", "a"].iter().map(|k| (c, vec![k.to_string()], Op::Add, 1.0)).collect();
        pm.update("p", ups).unwrap();
        assert_eq!(pm.value("p", "calls", &["a"]), Some(2.0));
        assert_eq!(pm.value("p", "calls", &[OVERFLOW]), Some(2.0));
        assert_eq!(pm.value("p", "calls", &["c"]), None);
        assert_eq!(pm.declare("p", def("calls", MetricKind::Counter, 2)), Err("metric calls: declared twice".into()));
        let h = pm.declare("p", def("lat", MetricKind::Histogram(vec![1.0, 10.0]), 10)).unwrap();
        pm.update("p", vec![(h, vec!["x".into()], Op::Observe, 5.0)]).unwrap();
        let m = super::super::metrics::AgentMetrics::new("n", &[], std::sync::Arc::new(pm));
        let text = m.prometheus_text();
        assert!(text.contains("calls_total{node=\"n\",plugin=\"p\",k=\"__overflow__\"} 2\n"), "{text}");
        assert!(text.contains("lat_bucket{node=\"n\",le=\"10.0\",plugin=\"p\",k=\"x\"} 1\n"), "{text}");
        assert!(
            text.contains("wasmprobe_plugin_metric_overflows_total{node=\"n\",plugin=\"p\",metric=\"calls\"} 2\n"),
            "{text}"
        );
    }
}
