//! `wasmprobe:plugin/metrics`: a plugin's metrics, kept in the run's
//! [`PluginMetrics`](crate::agent::plugin_metrics::PluginMetrics) under the plugin's name when
//! the run serves metrics; otherwise declared and updated into nothing.

use crate::agent::plugin_metrics::{MetricDef, MetricKind, Op};
use crate::plugin::bindings::wasmprobe::plugin::metrics;
use crate::plugin::runtime::State;

/// A metric's label sets when its declaration says 0.
const DEFAULT_MAX_SERIES: usize = 1000;

impl metrics::Host for State {
    fn enabled(&mut self) -> bool {
        self.metrics.is_some()
    }

    fn declare(&mut self, m: metrics::Metric) -> Result<u32, String> {
        let Some((store, name)) = &self.metrics else {
            self.metrics_declared += 1;
            return Ok(self.metrics_declared - 1);
        };
        let kind = match m.kind {
            metrics::MetricKind::Counter => MetricKind::Counter,
            metrics::MetricKind::Gauge => MetricKind::Gauge,
            metrics::MetricKind::Histogram => MetricKind::Histogram(m.buckets),
        };
        let max_series = if m.max_series == 0 { DEFAULT_MAX_SERIES } else { m.max_series as usize };
        store.declare(name, MetricDef { name: m.name, help: m.help, kind, labels: m.labels, max_series })
    }

    fn update(&mut self, updates: Vec<metrics::MetricUpdate>) -> Result<(), String> {
        let Some((store, name)) = &self.metrics else { return Ok(()) };
        let ups: Vec<(u32, Vec<String>, Op, f64)> = updates
            .into_iter()
            .map(|u| {
                let op = match u.op {
                    metrics::Op::Add => Op::Add,
                    metrics::Op::Set => Op::Set,
                    metrics::Op::Observe => Op::Observe,
                };
                (u.metric, u.labels, op, u.value)
            })
            .collect();
        store.update(name, ups)
    }
}
