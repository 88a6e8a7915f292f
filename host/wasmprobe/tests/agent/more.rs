// The last part of tests/agent.rs (included there: one crate, one scope).

// ---- the metrics interface in the Python and JavaScript SDKs --------------------------------

/// A Python plugin: the workload's calls per (comm, id) into a counter, once per batch; the
/// batch's size into a histogram; a gauge set to 1. The kernel filters the workload's events
/// (the node's others would keep an interpreter busy, and a plugin that falls behind drops).
const PY_METRICS: &str = r#"
from wasmprobe import Plan, Plugin, export, metrics


class Calls(Plugin):
    def init(self, args):
        plan = Plan()
        self.enter = plan.tracepoint("sys_enter", "raw_syscalls:sys_enter")
        plan.fields(self.enter, ["id"])
        plan.filter(self.enter, 'comm == "loadlangs"')
        self.calls = metrics.Counter("pycalls", "System calls by command and id", ["comm", "syscall"])
        self.sizes = metrics.Histogram("pybatch_events", "Events per batch", [], [1, 10, 100, 1000, 10000])
        self.on = metrics.Gauge("pyon", "1 once a batch came", [])
        self.n = {}
        return plan

    def on_event(self, ev):
        k = (ev.comm, str(ev.int("id")))
        self.n[k] = self.n.get(k, 0) + 1

    def on_batch(self, batch):
        super().on_batch(batch)
        for k, v in self.n.items():
            self.calls.add(k, v)
        self.sizes.observe((), len(batch))
        self.on.set((), 1)
        self.n.clear()


WitWorld = export(Calls)
"#;

/// The same in JavaScript, updating per event (the SDK buffers the updates and sends them once
/// per batch).
const JS_METRICS: &str = r#"
import { Plugin, Plan, exportPlugin, metrics } from "wasmprobe";

class Calls extends Plugin {
  init(_args) {
    const plan = new Plan();
    this.enter = plan.tracepoint("sys_enter", "raw_syscalls:sys_enter");
    plan.fields(this.enter, ["id"]);
    plan.filter(this.enter, 'comm == "loadlangs"');
    this.calls = metrics.counter("jscalls", "System calls by command and id", ["comm", "syscall"]);
    this.ids = metrics.histogram("jsids", "Syscall ids", [], [1, 10, 100, 1000]);
    this.on = metrics.gauge("json", "1 once an event came");
    return plan;
  }
  onEvent(ev) {
    this.calls.add([ev.comm, String(ev.int("id"))], 1);
    this.ids.observe([], ev.int("id"));
    this.on.set([], 1);
  }
}

export const { init, onBatch, finish } = exportPlugin(Calls);
"#;

#[test]
fn python_and_javascript_plugins_export_metrics() {
    testkit::require!(root, tracefs, raw_syscalls, program("gcc"));
    let dir = tempfile::tempdir().unwrap();
    let exe = workload(dir.path(), "loadlangs");
    let mut cfg = String::from("node = \"n1\"\n");
    for (lang, name, file, text) in [
        (langs_support::Lang::Python, "pym", "app.py", PY_METRICS),
        (langs_support::Lang::Js, "jsm", "app.js", JS_METRICS),
    ] {
        let src = dir.path().join(name);
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join(file), text).unwrap();
        let wasm = match langs_support::build(lang, &src) {
            Ok(w) => w,
            Err(why) => return testkit::missing_prerequisite(testkit::test_name!(), &why),
        };
        // An interpreter takes longer per batch than the 100 ms a Rust plugin is given.
        cfg += &format!("[[plugin]]\nname = \"{name}\"\nsource = \"{}\"\ncpu_budget = \"5s\"\n", wasm.display());
    }
    let mut agent = AgentProc::start(&write(dir.path(), "a.toml", &cfg));
    // The first start compiles two components of megabytes (cached afterwards).
    let t0 = Instant::now();
    while !http_get(&agent.addr, "/readyz", None).is_ok_and(|(s, _, _)| s.contains("200")) {
        assert!(t0.elapsed() < Duration::from_secs(150), "not ready; stderr:\n{}", agent.stderr.lock().unwrap());
        std::thread::sleep(Duration::from_millis(100));
    }
    run_workload(&exe, 2000, 5);
    for (plugin, prefix, hist) in [("pym", "py", "pybatch_events"), ("jsm", "js", "jsids")] {
        let series =
            format!("{prefix}calls_total{{node=\"n1\",plugin=\"{plugin}\",comm=\"loadlangs\",syscall=\"110\"}}");
        let t0 = Instant::now();
        let mut got = None;
        while t0.elapsed() < Duration::from_secs(30) && got != Some(2000.0) {
            got = agent.sample(&series);
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(got, Some(2000.0), "{series}\n{}", agent.stderr.lock().unwrap());
        let on = format!("{prefix}on{{node=\"n1\",plugin=\"{plugin}\"}}");
        assert_eq!(agent.sample(&on), Some(1.0), "{on}");
        let observed = format!("{hist}_count{{node=\"n1\",plugin=\"{plugin}\"}}");
        assert!(agent.sample(&observed).is_some_and(|n| n >= 1.0), "{observed}");
    }
    let st = agent.stop();
    assert!(st.success(), "{st:?}: {}", agent.stderr.lock().unwrap());
}

#[test]
fn syscount_forgets_the_processes_with_the_fewest_calls_past_max_pids() {
    testkit::require!(root, tracefs, raw_syscalls);
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        write(dir.path(), "a.toml", "[[plugin]]\nname = \"sc\"\nsource = \"syscount\"\nargs = { max_pids = \"8\" }\n");
    let mut agent = AgentProc::start(&cfg);
    agent.wait_ready();
    // 40 processes that make their calls and exit: at least 32 of them are forgotten.
    for _ in 0..40 {
        assert!(Command::new("true").status().unwrap().success());
    }
    let t0 = Instant::now();
    let evicted = loop {
        let e = agent.sample("syscount_evicted_pids_total{").unwrap_or(0.0);
        if e >= 32.0 || t0.elapsed() > Duration::from_secs(15) {
            break e;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(evicted >= 32.0, "evicted {evicted}; {}", agent.metrics());
    let tracked = agent.sample("syscount_tracked_pids{").expect("the gauge");
    assert!((1.0..=8.0).contains(&tracked), "tracked {tracked}");
    let st = agent.stop();
    assert!(st.success(), "{st:?}: {}", agent.stderr.lock().unwrap());
    // The table at the end says how many it forgot.
    let out = agent.stdout.lock().unwrap().clone();
    let line = out.lines().find(|l| l.contains("\"evicted_pids\"")).unwrap_or_else(|| panic!("{out}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert!(v["evicted_pids"].as_u64().is_some_and(|n| n as f64 >= evicted), "{line}");
}
