//! The agent's own metrics (and, through [`PluginMetrics`], its plugins'), kept with
//! `prometheus-client` and served over HTTP: `/metrics` in the Prometheus text format, or
//! OpenMetrics when the scraper asks for it (`Accept: application/openmetrics-text`),
//! `/healthz` (the process answers) and `/readyz` (the probes are armed and the plugins run).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Label pairs of one series.
pub type Labels = Vec<(String, String)>;

fn latency_histogram() -> Histogram {
    // 10 µs .. ~5 s.
    Histogram::new(exponential_buckets(1e-5, 2.0, 20))
}

/// Every metric of the agent, by family. Cheap to clone (the families are shared).
#[derive(Clone)]
pub struct AgentMetrics {
    /// Events read from the kernel's buffers, per CPU.
    pub events_read: Family<Labels, Counter>,
    /// Events the kernel lost (buffer overruns), per CPU.
    pub events_lost: Family<Labels, Counter>,
    /// Events handed to a plugin, per plugin.
    pub delivered: Family<Labels, Counter>,
    /// Events a plugin did not get because its queue was full (or it was down), per plugin.
    pub dropped: Family<Labels, Counter>,
    /// CPU time spent in a plugin's calls, per plugin.
    pub cpu_seconds: Family<Labels, Counter<f64>>,
    /// Plugin failures (traps, budgets, errors), per plugin.
    pub failures: Family<Labels, Counter>,
    /// Plugin restarts, per plugin.
    pub restarts: Family<Labels, Counter>,
    /// Whether a plugin runs (1) or not (0).
    pub up: Family<Labels, Gauge>,
    /// Reloads, by result (`ok`, `refused`).
    pub reloads: Family<Labels, Counter>,
    /// Time from a batch's hand-over to the end of the plugin's call, per plugin.
    pub batch_latency: Family<Labels, Histogram, fn() -> Histogram>,
    registry: Arc<Mutex<Registry>>,
}

impl AgentMetrics {
    /// The agent's metrics, every series carrying `node` and the config's `labels`; plugin
    /// metrics are read from `plugins` at each scrape.
    pub fn new(node: &str, labels: &[(String, String)], plugins: Arc<PluginMetrics>) -> AgentMetrics {
        let mut constant: Vec<(std::borrow::Cow<'static, str>, std::borrow::Cow<'static, str>)> =
            vec![("node".into(), node.to_string().into())];
        constant.extend(labels.iter().map(|(k, v)| (k.clone().into(), v.clone().into())));
        let mut r = Registry::with_labels(constant.into_iter());
        let m = AgentMetrics {
            events_read: Family::default(),
            events_lost: Family::default(),
            delivered: Family::default(),
            dropped: Family::default(),
            cpu_seconds: Family::default(),
            failures: Family::default(),
            restarts: Family::default(),
            up: Family::default(),
            reloads: Family::default(),
            batch_latency: Family::new_with_constructor(latency_histogram),
            registry: Arc::new(Mutex::new(Registry::default())),
        };
        r.register("wasmprobe_events_read", "Events read from the kernel's ring buffers", m.events_read.clone());
        r.register("wasmprobe_events_lost", "Events the kernel lost (ring buffer overruns)", m.events_lost.clone());
        r.register("wasmprobe_plugin_events_delivered", "Events handed to the plugin", m.delivered.clone());
        r.register(
            "wasmprobe_plugin_events_dropped",
            "Events the plugin did not get: its queue was full, or it was down",
            m.dropped.clone(),
        );
        r.register("wasmprobe_plugin_cpu_seconds", "CPU time of the plugin's calls", m.cpu_seconds.clone());
        r.register("wasmprobe_plugin_failures", "Plugin traps, budget overruns and errors", m.failures.clone());
        r.register("wasmprobe_plugin_restarts", "Times the plugin was started again", m.restarts.clone());
        r.register("wasmprobe_plugin_up", "Whether the plugin runs", m.up.clone());
        r.register("wasmprobe_reloads", "Configuration reloads, by result", m.reloads.clone());
        r.register(
            "wasmprobe_plugin_batch_latency_seconds",
            "From a batch's hand-over to the end of the plugin's call",
            m.batch_latency.clone(),
        );
        r.register_collector(Box::new(plugins));
        AgentMetrics { registry: Arc::new(Mutex::new(r)), ..m }
    }

    /// The exposition in OpenMetrics text.
    pub fn openmetrics(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry.lock().unwrap()).expect("writing to a String");
        out
    }

    /// The exposition in the Prometheus text format (0.0.4).
    pub fn prometheus_text(&self) -> String {
        to_prometheus_text(&self.openmetrics())
    }
}

/// `{plugin="NAME"}`.
pub fn plugin_labels(name: &str) -> Labels {
    vec![("plugin".into(), name.into())]
}

/// OpenMetrics text as the Prometheus text format: no `# EOF` or `# UNIT`, and a counter's
/// `# HELP`/`# TYPE` name its `_total` samples.
pub fn to_prometheus_text(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    let mut help: Option<&str> = None;
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some(h) = help.take() {
                out.push_str(h);
                out.push('\n');
            }
            help = Some(rest);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let name = match kind {
                "counter" => format!("{name}_total"),
                _ => name.to_string(),
            };
            if let Some(h) = help.take() {
                let text = h.split_once(' ').map_or("", |(_, t)| t);
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

pub use super::plugin_metrics::PluginMetrics;

/// Serves `/metrics`, `/healthz` and `/readyz` on `addr` from a thread of its own until the
/// process ends. Returns the address bound (port 0 picks a free one).
pub fn serve(addr: &str, metrics: AgentMetrics, ready: Arc<AtomicBool>) -> Result<SocketAddr> {
    let listener = TcpListener::bind(addr).with_context(|| format!("metrics: cannot listen on {addr}"))?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new().name("wasmprobe-metrics".into()).spawn(move || {
        for conn in listener.incoming().flatten() {
            let _ = answer(conn, &metrics, &ready);
        }
    })?;
    Ok(bound)
}

fn answer(conn: TcpStream, metrics: &AgentMetrics, ready: &AtomicBool) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    conn.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut openmetrics = false;
    let mut line = String::new();
    for _ in 0..100 {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("accept:") && lower.contains("application/openmetrics-text") {
            openmetrics = true;
        }
    }
    let mut parts = request.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, ctype, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") if openmetrics => {
            ("200 OK", "application/openmetrics-text; version=1.0.0; charset=utf-8", metrics.openmetrics())
        }
        ("GET" | "HEAD", "/metrics") => {
            ("200 OK", "text/plain; version=0.0.4; charset=utf-8", metrics.prometheus_text())
        }
        ("GET" | "HEAD", "/healthz") => ("200 OK", "text/plain", "ok\n".to_string()),
        ("GET" | "HEAD", "/readyz") if ready.load(Ordering::SeqCst) => ("200 OK", "text/plain", "ready\n".to_string()),
        ("GET" | "HEAD", "/readyz") => ("503 Service Unavailable", "text/plain", "not ready\n".to_string()),
        ("GET" | "HEAD", _) => ("404 Not Found", "text/plain", "not found\n".to_string()),
        _ => ("405 Method Not Allowed", "text/plain", "method not allowed\n".to_string()),
    };
    let mut w = conn;
    write!(
        w,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if method != "HEAD" {
        w.write_all(body.as_bytes())?;
    }
    w.flush()
}

/// `wasmprobe run --metrics-listen ADDR`: the agent's metrics for one plugin's run, served
/// while it runs.
pub struct RunMetrics {
    metrics: AgentMetrics,
    labels: Labels,
    ready: Arc<AtomicBool>,
    /// The plugin's metrics (the WIT `metrics` interface).
    pub plugins: Arc<PluginMetrics>,
}

impl RunMetrics {
    /// Serves the metrics of plugin `plugin` on `addr` (nothing ready yet).
    pub fn serve(addr: &str, plugin: &str) -> Result<RunMetrics> {
        let node = super::Config::parse("").map(|c| c.node_name()).unwrap_or_else(|_| "unknown".into());
        let plugins = Arc::new(PluginMetrics::default());
        let metrics = AgentMetrics::new(&node, &[], plugins.clone());
        let ready = Arc::new(AtomicBool::new(false));
        let bound = serve(addr, metrics.clone(), ready.clone())?;
        eprintln!("wasmprobe: metrics on http://{bound}/metrics");
        metrics.up.get_or_create(&plugin_labels(plugin)).set(1);
        Ok(RunMetrics { metrics, labels: plugin_labels(plugin), ready, plugins })
    }

    /// `/readyz` says ready from now on.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    /// A sink that counts what passes to `inner` (read and lost per CPU, delivered).
    pub fn wrap<'s>(&'s self, inner: &'s mut dyn crate::pump::RecordSink) -> MeteredSink<'s> {
        MeteredSink { m: self, inner, read: Vec::new(), lost: Vec::new(), delivered: 0 }
    }
}

/// See [`RunMetrics::wrap`].
pub struct MeteredSink<'s> {
    m: &'s RunMetrics,
    inner: &'s mut dyn crate::pump::RecordSink,
    read: Vec<u64>,
    lost: Vec<u64>,
    delivered: u64,
}

impl crate::pump::RecordSink for MeteredSink<'_> {
    fn record(&mut self, probe: usize, cpu: u32, pid: i32, ts: u64, payload: &[u8]) -> Result<()> {
        let c = cpu as usize;
        if self.read.len() <= c {
            self.read.resize(c + 1, 0);
        }
        self.read[c] += 1;
        self.delivered += 1;
        self.inner.record(probe, cpu, pid, ts, payload)
    }

    fn record_stacks(
        &mut self,
        probe: usize,
        cpu: u32,
        pid: i32,
        ts: u64,
        payload: &[u8],
        stacks: &crate::stacks::EventStacks<'_>,
    ) -> Result<()> {
        let c = cpu as usize;
        if self.read.len() <= c {
            self.read.resize(c + 1, 0);
        }
        self.read[c] += 1;
        self.delivered += 1;
        self.inner.record_stacks(probe, cpu, pid, ts, payload, stacks)
    }

    fn flush(&mut self, lost: &[u64]) -> Result<()> {
        let t0 = std::time::Instant::now();
        let r = self.inner.flush(lost);
        let m = &self.m.metrics;
        m.batch_latency.get_or_create(&self.m.labels).observe(t0.elapsed().as_secs_f64());
        self.lost.resize(lost.len().max(self.lost.len()), 0);
        for (cpu, &l) in lost.iter().enumerate() {
            let labels = vec![("cpu".to_string(), cpu.to_string())];
            if l > self.lost[cpu] {
                m.events_lost.get_or_create(&labels).inc_by(l - self.lost[cpu]);
                self.lost[cpu] = l;
            }
        }
        for (cpu, n) in self.read.iter_mut().enumerate() {
            if *n > 0 {
                m.events_read.get_or_create(&vec![("cpu".to_string(), cpu.to_string())]).inc_by(*n);
                *n = 0;
            }
        }
        m.delivered.get_or_create(&self.m.labels).inc_by(std::mem::take(&mut self.delivered));
        if r.is_err() {
            m.failures.get_or_create(&self.m.labels).inc();
            m.up.get_or_create(&self.m.labels).set(0);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_names_counters_by_their_samples() {
        let m = AgentMetrics::new("n1", &[("zone".into(), "a".into())], Arc::new(PluginMetrics::default()));
        m.restarts.get_or_create(&plugin_labels("p")).inc();
        let om = m.openmetrics();
        assert!(om.ends_with("# EOF\n"), "{om}");
        let text = m.prometheus_text();
        assert!(text.contains("# TYPE wasmprobe_plugin_restarts_total counter\n"), "{text}");
        assert!(text.contains("wasmprobe_plugin_restarts_total{node=\"n1\",zone=\"a\",plugin=\"p\"} 1\n"), "{text}");
        assert!(!text.contains("# EOF"));
    }
}
