//! Metrics for Prometheus: counters, gauges and histograms with labels, declared in
//! [`Plugin::init`](crate::Plugin::init) and updated in bulk. Updates are buffered here and
//! sent to the host in one call at the end of each batch (after
//! [`Plugin::on_batch_end`](crate::Plugin::on_batch_end)) and after `finish`. Where the run
//! serves metrics (`wasmprobe agent`, `wasmprobe run --metrics-listen`) they appear as
//! families of their own name with a `plugin` label; elsewhere [`enabled`] is false and the
//! updates go nowhere (declaring still works, so a plugin need not care).
//!
//! ```ignore
//! use wasmprobe_guest::metrics::{Counter, Histogram};
//!
//! // In init:
//! let calls = Counter::declare("syscount_syscalls", "System calls", &["comm", "syscall"])?;
//! let lat = Histogram::declare("openlat_open_seconds", "open() latency", &["comm"], &[1e-6, 1e-5, 1e-4])?;
//! // Anywhere (a batch's worth of aggregated deltas at a time is best):
//! calls.add(&["cat", "0"], 3.0);
//! lat.observe(&["cat"], 0.000_012);
//! ```
//!
//! Each metric keeps at most `max_series` label sets (default 1000, see
//! [`Counter::declare_capped`]); the host puts the excess in an overflow series whose label
//! values are all `__overflow__`, and counts it.

use std::cell::{Cell, RefCell};

use crate::bindings::wasmprobe::plugin::metrics as wit;

thread_local! {
    static PENDING: RefCell<Vec<wit::MetricUpdate>> = const { RefCell::new(Vec::new()) };
    static ENABLED: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Updates buffered before they are sent anyway (a plugin that updates per event).
const MAX_PENDING: usize = 4096;

/// Whether the run keeps metrics (asked once, then remembered: it does not change).
pub fn enabled() -> bool {
    ENABLED.with(|e| match e.get() {
        Some(v) => v,
        None => {
            let v = wit::enabled();
            e.set(Some(v));
            v
        }
    })
}

fn declare(
    name: &str,
    help: &str,
    kind: wit::MetricKind,
    labels: &[&str],
    buckets: &[f64],
    max: u32,
) -> Result<u32, String> {
    wit::declare(&wit::Metric {
        name: name.to_string(),
        help: help.to_string(),
        kind,
        labels: labels.iter().map(|l| l.to_string()).collect(),
        buckets: buckets.to_vec(),
        max_series: max,
    })
}

fn push(metric: u32, labels: &[&str], op: wit::Op, value: f64) {
    if !enabled() {
        return;
    }
    let full = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        p.push(wit::MetricUpdate { metric, labels: labels.iter().map(|l| l.to_string()).collect(), op, value });
        p.len() >= MAX_PENDING
    });
    if full {
        flush();
    }
}

/// Sends the buffered updates now (the SDK does it at the end of every batch and after
/// `finish`). An update the host refused is logged once per call.
pub fn flush() {
    let pending = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
    if pending.is_empty() {
        return;
    }
    if let Err(e) = wit::update(&pending) {
        crate::log(crate::Level::Warn, &format!("metrics: {e}"));
    }
}

/// A counter: only goes up. Exposed as `NAME_total`.
#[derive(Debug, Clone, Copy)]
pub struct Counter(u32);

impl Counter {
    /// Declares a counter with these label names (at most 1000 label sets).
    pub fn declare(name: &str, help: &str, labels: &[&str]) -> Result<Counter, String> {
        Counter::declare_capped(name, help, labels, 0)
    }

    /// Declares a counter keeping at most `max_series` label sets (0: 1000).
    pub fn declare_capped(name: &str, help: &str, labels: &[&str], max_series: u32) -> Result<Counter, String> {
        declare(name, help, wit::MetricKind::Counter, labels, &[], max_series).map(Counter)
    }

    /// Adds `v` (>= 0) to the series of these label values.
    pub fn add(&self, labels: &[&str], v: f64) {
        push(self.0, labels, wit::Op::Add, v);
    }
}

/// A gauge: any value.
#[derive(Debug, Clone, Copy)]
pub struct Gauge(u32);

impl Gauge {
    /// Declares a gauge with these label names (at most `max_series` label sets; 0: 1000).
    pub fn declare(name: &str, help: &str, labels: &[&str], max_series: u32) -> Result<Gauge, String> {
        declare(name, help, wit::MetricKind::Gauge, labels, &[], max_series).map(Gauge)
    }

    /// Sets the series of these label values to `v`.
    pub fn set(&self, labels: &[&str], v: f64) {
        push(self.0, labels, wit::Op::Set, v);
    }

    /// Adds `v` (any sign) to the series of these label values.
    pub fn add(&self, labels: &[&str], v: f64) {
        push(self.0, labels, wit::Op::Add, v);
    }
}

/// A histogram: observations counted in buckets. Exposed as `NAME_bucket`, `_sum`, `_count`.
#[derive(Debug, Clone, Copy)]
pub struct Histogram(u32);

impl Histogram {
    /// Declares a histogram with these label names and bucket upper bounds (increasing;
    /// +Inf is implied), at most 1000 label sets.
    pub fn declare(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> Result<Histogram, String> {
        declare(name, help, wit::MetricKind::Histogram, labels, buckets, 0).map(Histogram)
    }

    /// Observes `v` in the series of these label values.
    pub fn observe(&self, labels: &[&str], v: f64) {
        push(self.0, labels, wit::Op::Observe, v);
    }
}
