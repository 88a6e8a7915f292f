//! `wasmprobe agent`: its config check, its HTTP endpoints, a real Prometheus scraping it while
//! plugins run (one of them trapping and restarted), reloads while a workload runs, the
//! Kubernetes manifests of deploy/kubernetes/ checked against the binary, and (agent/more.rs)
//! metrics from Python and JavaScript plugins.
//!
//! Prerequisites: root with tracefs and raw_syscalls for the live tests, Debian's `prometheus`
//! (installed by .ci/setup) for the scrape test, `gcc` for the workload. Without one a test
//! prints SKIP and passes; with `WASMPROBE_REQUIRE_ALL=1` (tests/run-all.sh, so CI) it fails.
//! Every process a test starts is stopped at the end even when the test fails (Drop guards).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod langs_support;

const BIN: &str = env!("CARGO_BIN_EXE_wasmprobe");

fn guest(stem: &str) -> String {
    PathBuf::from(env!("OUT_DIR")).join("guests").join(format!("{stem}.wasm")).display().to_string()
}

/// One HTTP GET: (status line, headers, body).
fn http_get(addr: &str, path: &str, accept: Option<&str>) -> std::io::Result<(String, String, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let accept = accept.map(|a| format!("Accept: {a}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    Ok((status.to_string(), headers.to_string(), body.to_string()))
}

/// A running `wasmprobe agent`, stopped with SIGINT when dropped (killed if it does not end,
/// and `wasmprobe cleanup` then takes out what it left).
struct AgentProc {
    child: Option<Child>,
    /// Where its /metrics is.
    addr: String,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
}

impl AgentProc {
    fn start(config: &Path) -> AgentProc {
        let mut child = Command::new(BIN)
            .args(["agent", "--config"])
            .arg(config)
            .args(["--metrics-listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wasmprobe agent");
        let stderr = Arc::new(Mutex::new(String::new()));
        let stdout = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let err = child.stderr.take().unwrap();
        let keep = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("wasmprobe: agent: metrics on http://") {
                    let _ = tx.send(a.trim_end_matches("/metrics").to_string());
                }
                keep.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let out = child.stdout.take().unwrap();
        let keep = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                keep.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let mut me = AgentProc { child: Some(child), addr: String::new(), stderr: stderr.clone(), stdout };
        me.addr = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| {
            panic!("the agent did not say where its metrics are; stderr:\n{}", stderr.lock().unwrap())
        });
        me
    }

    /// Waits until /readyz says ready.
    fn wait_ready(&self) {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            if http_get(&self.addr, "/readyz", None).is_ok_and(|(s, _, _)| s.contains("200")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the agent never became ready; stderr:\n{}", self.stderr.lock().unwrap());
    }

    fn metrics(&self) -> String {
        http_get(&self.addr, "/metrics", None).expect("GET /metrics").2
    }

    /// The value of the first sample whose line starts with `prefix`.
    fn sample(&self, prefix: &str) -> Option<f64> {
        self.metrics().lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.as_ref().unwrap().id() as i32);
        nix::sys::signal::kill(pid, sig).unwrap();
    }

    /// SIGINT, and the exit status (within 10 s).
    fn stop(&mut self) -> std::process::ExitStatus {
        let Some(mut child) = self.child.take() else { panic!("stopped twice") };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let t0 = Instant::now();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            if t0.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                let _ = Command::new(BIN).args(["cleanup"]).status();
                panic!("the agent did not end within 10 s of SIGINT; stderr:\n{}", self.stderr.lock().unwrap());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        if self.child.is_some() && !std::thread::panicking() {
            self.stop();
        } else if let Some(mut c) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
            std::thread::sleep(Duration::from_secs(2));
            let _ = c.kill();
            let _ = c.wait();
            let _ = Command::new(BIN).args(["cleanup"]).status();
        }
    }
}

/// Nothing of process `pid` is left in tracefs.
fn assert_nothing_left(pid: u32) {
    let t = tracefs::Tracefs::open().unwrap();
    let inst = t.path().join("instances");
    for e in std::fs::read_dir(&inst).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        assert!(!n.contains(&format!("-{pid}")), "instance {n} of the agent is left");
    }
    let dynamic = std::fs::read_to_string(t.path().join("dynamic_events")).unwrap_or_default();
    assert!(!dynamic.contains(&format!("wasmprobe_{pid}_")), "probes of the agent are left:\n{dynamic}");
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

// ---- --check ---------------------------------------------------------------------------------

#[test]
fn check_validates_a_config_without_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "good.toml",
        &format!(
            "node = \"n1\"\n[[plugin]]\nname = \"syscount\"\nsource = \"syscount\"\n[[plugin]]\nname = \"trapper\"\n\
             source = \"{}\"\nrestart = \"on-failure\"\nbackoff = \"100ms\"\nbackoff_max = \"1s\"\n",
            guest("hostile_trap_at")
        ),
    );
    let out = Command::new(BIN).args(["agent", "--check", "--config"]).arg(&good).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("config {}: valid, 2 plugin(s)\n", good.display()));

    let cases: &[(&str, String)] = &[
        ("[[plugin]]\nname = \"a\"\nsource = \"syscount\"\nmemory = 3\n", "unknown field `memory`".into()),
        (
            "[[plugin]]\nname = \"a\"\nsource = \"syscount\"\n[[plugin]]\nname = \"a\"\nsource = \"openlat\"\n",
            "plugin a: the name is used twice".into(),
        ),
        (
            "[[plugin]]\nname = \"a\"\nsource = \"syscount\"\nallow = \"kprobe\"\n",
            "plugin a: its probe plan was refused".into(),
        ),
        ("[[plugin]]\nname = \"a\"\nsource = \"/nonexistent/x.wasm\"\n", "plugin a".into()),
        ("[[plugin]]\nname = \"a\"\nsource = \"syscount\"\nrestart = \"always\"\n", "unknown variant `always`".into()),
    ];
    for (text, want) in cases {
        let bad = write(dir.path(), "bad.toml", text);
        let out = Command::new(BIN).args(["agent", "--check", "--config"]).arg(&bad).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text}: {err}");
        assert!(out.stdout.is_empty());
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.starts_with("wasmprobe: error: ") && err.contains(want.as_str()), "{text}: want {want:?} in {err}");
    }
}

// ---- endpoints --------------------------------------------------------------------------------

#[test]
fn serves_metrics_health_and_readiness() {
    testkit::require!(root, tracefs, raw_syscalls);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "a.toml",
        "node = \"n1\"\n[labels]\nzone = \"z\"\n[[plugin]]\nname = \"sc\"\nsource = \"syscount\"\n",
    );
    let mut agent = AgentProc::start(&cfg);
    assert_eq!(http_get(&agent.addr, "/healthz", None).unwrap().2, "ok\n");
    agent.wait_ready();
    std::thread::sleep(Duration::from_millis(500));
    let (status, headers, body) = http_get(&agent.addr, "/metrics", None).unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(headers.contains("Content-Type: text/plain; version=0.0.4"), "{headers}");
    assert!(body.contains("# TYPE wasmprobe_plugin_events_delivered_total counter\n"), "{body}");
    assert!(body.contains("wasmprobe_plugin_up{node=\"n1\",zone=\"z\",plugin=\"sc\"} 1\n"), "{body}");
    assert!(!body.contains("# EOF"));
    let read = agent.sample("wasmprobe_events_read_total{").unwrap_or(0.0);
    assert!(read > 0.0, "{body}");
    let (_, headers, body) =
        http_get(&agent.addr, "/metrics", Some("application/openmetrics-text;version=1.0.0")).unwrap();
    assert!(headers.contains("Content-Type: application/openmetrics-text; version=1.0.0"), "{headers}");
    assert!(body.ends_with("# EOF\n"));
    assert_eq!(http_get(&agent.addr, "/nope", None).unwrap().0, "HTTP/1.1 404 Not Found");
    let pid = agent.child.as_ref().unwrap().id();
    let st = agent.stop();
    assert!(st.success(), "{st:?}: {}", agent.stderr.lock().unwrap());
    assert_nothing_left(pid);
    // syscount's tables at the end are events too: JSON objects tagged with node and plugin.
    let out = agent.stdout.lock().unwrap().clone();
    assert!(!out.is_empty());
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(v["node"], "n1", "{line}");
        assert_eq!(v["plugin"], "sc", "{line}");
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"), "{line}");
    }
}

#[test]
fn run_serves_metrics_too() {
    testkit::require!(root, tracefs, raw_syscalls);
    let mut child = Command::new(BIN)
        .args(["run", "syscount", "--metrics-listen", "127.0.0.1:0", "--", "sh", "-c", "sleep 1.5"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let addr = line
        .strip_prefix("wasmprobe: metrics on http://")
        .and_then(|a| a.trim().strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();
    std::thread::sleep(Duration::from_millis(800));
    assert!(http_get(&addr, "/readyz", None).unwrap().0.contains("200"));
    let body = http_get(&addr, "/metrics", None).unwrap().2;
    assert!(body.contains("wasmprobe_plugin_up{node="), "{body}");
    let delivered = body
        .lines()
        .find(|l| l.starts_with("wasmprobe_plugin_events_delivered_total{"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(delivered > 0.0, "{body}");
    let st = child.wait().unwrap();
    assert!(st.success());
}

// ---- a real Prometheus ----------------------------------------------------------------------

/// The workload, built for each test from tests/agent/load.c, named `name` (its command name,
/// one per test: syscount counts every process, and tests run in parallel).
fn workload(dir: &Path, name: &str) -> PathBuf {
    let exe = dir.join(name);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/agent/load.c");
    let st = Command::new("gcc").args(["-O1", "-o"]).arg(&exe).arg(&src).status().expect("gcc");
    assert!(st.success(), "gcc {}", src.display());
    exe
}

fn run_workload(exe: &Path, getppid: u64, opens: u64) {
    let st = Command::new(exe).arg(getppid.to_string()).arg(opens.to_string()).status().unwrap();
    assert!(st.success());
}

/// A Prometheus server on a free loopback port, scraping `target` every 250 ms; killed on drop.
struct Prometheus {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let cfg = write(
            dir.path(),
            "prometheus.yml",
            &format!(
                "global:\n  scrape_interval: 250ms\n  scrape_timeout: 200ms\nscrape_configs:\n  - job_name: wasmprobe\n    \
                 static_configs:\n      - targets: ['{target}']\n"
            ),
        );
        let addr = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let p = Prometheus { child, addr, _dir: dir };
        let t0 = Instant::now();
        while !http_get(&p.addr, "/-/ready", None).is_ok_and(|(s, _, _)| s.contains("200")) {
            assert!(t0.elapsed() < Duration::from_secs(30), "prometheus did not become ready: {}", p.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The value of an instant query's first sample, if it has one.
    fn query(&self, q: &str) -> Option<f64> {
        let enc: String = q
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let body = http_get(&self.addr, &format!("/api/v1/query?query={enc}"), None).ok()?.2;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        assert_eq!(v["status"], "success", "{q}: {body}");
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }

    /// Polls `q` until it gives `want` (10 s at most); returns what it last gave.
    fn wait_for(&self, q: &str, want: impl Fn(f64) -> bool) -> Option<f64> {
        let t0 = Instant::now();
        loop {
            let v = self.query(q);
            if v.is_some_and(&want) || t0.elapsed() > Duration::from_secs(30) {
                return v;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let t0 = Instant::now();
        while self.child.try_wait().ok().flatten().is_none() && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn prometheus_scrapes_the_plugins_counts_and_a_restarted_plugin() {
    testkit::require!(root, tracefs, raw_syscalls, uprobes, program("prometheus"), program("gcc"));
    let dir = tempfile::tempdir().unwrap();
    let exe = workload(dir.path(), "loadprom");
    let cfg = write(
        dir.path(),
        "agent.toml",
        &format!(
            "node = \"n1\"\n[labels]\ncluster = \"test\"\n\
             [[plugin]]\nname = \"syscount\"\nsource = \"syscount\"\n\
             [[plugin]]\nname = \"openlat\"\nsource = \"openlat\"\n\
             [[plugin]]\nname = \"trapper\"\nsource = \"{}\"\nargs = {{ at = \"100\" }}\n\
             restart = \"on-failure\"\nbackoff = \"200ms\"\nbackoff_max = \"1s\"\n",
            guest("hostile_trap_at")
        ),
    );
    let agent = AgentProc::start(&cfg);
    agent.wait_ready();
    let prom = Prometheus::start(&agent.addr);
    let (getppid, opens) = (5000, 37);
    run_workload(&exe, getppid, opens);

    // The plugins' own series, as Prometheus stored them, equal the workload's counts.
    let q =
        "syscount_syscalls_total{comm=\"loadprom\",syscall=\"110\",plugin=\"syscount\",node=\"n1\",cluster=\"test\"}";
    let got = prom.wait_for(q, |v| v == getppid as f64);
    assert_eq!(got, Some(getppid as f64), "{q}\nagent stderr:\n{}", agent.stderr.lock().unwrap());
    let q = "openlat_open_seconds_count{comm=\"loadprom\",plugin=\"openlat\"}";
    let got = prom.wait_for(q, |v| v == opens as f64);
    assert_eq!(got, Some(opens as f64), "{q}\nagent stderr:\n{}", agent.stderr.lock().unwrap());
    // The trapping plugin was restarted, visibly, and the others went on without losing any.
    let restarts = prom.wait_for("wasmprobe_plugin_restarts_total{plugin=\"trapper\"}", |v| v >= 1.0);
    assert!(restarts.is_some_and(|r| r >= 1.0), "restarts {restarts:?}");
    let failures = prom.query("wasmprobe_plugin_failures_total{plugin=\"trapper\"}");
    assert!(failures.is_some_and(|f| f >= 1.0), "failures {failures:?}");
    for p in ["syscount", "openlat"] {
        let q = format!("wasmprobe_plugin_events_dropped_total{{plugin=\"{p}\"}}");
        assert_eq!(prom.query(&q), Some(0.0), "{q}");
        assert_eq!(prom.query(&format!("wasmprobe_plugin_failures_total{{plugin=\"{p}\"}} or vector(0)")), Some(0.0));
        assert_eq!(prom.query(&format!("wasmprobe_plugin_up{{plugin=\"{p}\"}}")), Some(1.0));
    }
    assert_eq!(prom.query("sum(wasmprobe_events_lost_total) or vector(0)"), Some(0.0));
    assert_eq!(prom.query("up{job=\"wasmprobe\"}"), Some(1.0));
    let err = agent.stderr.lock().unwrap().clone();
    assert!(err.contains("wasmprobe: error: plugin trapper: "), "{err}");
    drop(prom);
    drop(agent);
}

// ---- reload ---------------------------------------------------------------------------------

/// The agent's uprobes (its group's lines in uprobe_events).
fn agent_uprobes(pid: u32) -> usize {
    let t = tracefs::Tracefs::open().unwrap();
    let text = std::fs::read_to_string(t.path().join("uprobe_events")).unwrap_or_default();
    text.lines().filter(|l| l.contains(&format!("wasmprobe_{pid}_agent/"))).count()
}

#[test]
fn reload_adds_changes_and_removes_plugins_while_the_others_lose_nothing() {
    testkit::require!(root, tracefs, raw_syscalls, uprobes, program("gcc"));
    let dir = tempfile::tempdir().unwrap();
    let exe = workload(dir.path(), "loadreload");
    let plugin = |name: &str, source: &str, args: &str| {
        format!("[[plugin]]\nname = \"{name}\"\nsource = \"{source}\"\nargs = {{ {args} }}\n")
    };
    let v1 = format!(
        "node = \"n1\"\n{}{}{}",
        plugin("steady", "syscount", ""),
        plugin("gone", "openlat", ""),
        plugin("changed", "syscount", "top = \"5\"")
    );
    let cfg = write(dir.path(), "agent.toml", &v1);
    let mut agent = AgentProc::start(&cfg);
    agent.wait_ready();
    let pid = agent.child.as_ref().unwrap().id();
    assert_eq!(agent_uprobes(pid), 4, "openlat's four uprobes (libc open/openat, entry and return)");

    // 20000 getppid calls over about two seconds, while the config changes twice.
    let n = 20_000;
    let load = Command::new(&exe).args([n.to_string(), "0".into(), "10".into()]).spawn().unwrap();
    let mut load = scopeguard(load);
    std::thread::sleep(Duration::from_millis(600));
    // Added, changed (its args), removed; `steady` untouched.
    let v2 = format!(
        "node = \"n1\"\n{}{}{}",
        plugin("steady", "syscount", ""),
        plugin("changed", "syscount", "top = \"7\""),
        plugin("added", "openlat", "")
    );
    write(dir.path(), "agent.toml", &v2);
    agent.signal(nix::sys::signal::Signal::SIGHUP);
    let t0 = Instant::now();
    while !agent.sample("wasmprobe_reloads_total{node=\"n1\",result=\"ok\"}").is_some_and(|v| v >= 1.0) {
        assert!(t0.elapsed() < Duration::from_secs(10), "no reload: {}", agent.stderr.lock().unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    // A config that does not validate changes nothing.
    let bad = format!("{v2}{}", plugin("steady", "openlat", ""));
    write(dir.path(), "agent.toml", &bad);
    agent.signal(nix::sys::signal::Signal::SIGHUP);
    let t0 = Instant::now();
    while !agent.sample("wasmprobe_reloads_total{node=\"n1\",result=\"refused\"}").is_some_and(|v| v >= 1.0) {
        assert!(t0.elapsed() < Duration::from_secs(10), "no refusal: {}", agent.stderr.lock().unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    let st = load.0.wait().unwrap();
    assert!(st.success());

    let text = agent.metrics();
    let val = |prefix: &str| {
        text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    let want = "syscount_syscalls_total{node=\"n1\",plugin=\"steady\",comm=\"loadreload\",syscall=\"110\"}";
    let t0 = Instant::now();
    while agent.sample(want) != Some(n as f64) && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(agent.sample(want), Some(n as f64), "{want}\n{}", agent.metrics());
    assert_eq!(val("wasmprobe_plugin_events_dropped_total{node=\"n1\",plugin=\"steady\"}"), Some(0.0), "{text}");
    assert_eq!(val("wasmprobe_plugin_restarts_total{node=\"n1\",plugin=\"steady\"}"), None, "{text}");
    assert_eq!(val("wasmprobe_plugin_up{node=\"n1\",plugin=\"gone\"}"), Some(0.0), "{text}");
    assert_eq!(val("wasmprobe_plugin_up{node=\"n1\",plugin=\"added\"}"), Some(1.0), "{text}");
    assert_eq!(val("wasmprobe_plugin_up{node=\"n1\",plugin=\"changed\"}"), Some(1.0), "{text}");
    // The replaced plugin saw part of the workload, the removed plugin's series are gone.
    let changed = val("syscount_syscalls_total{node=\"n1\",plugin=\"changed\",comm=\"loadreload\",syscall=\"110\"}");
    assert!(changed.is_some_and(|c| c > 0.0 && c < n as f64), "changed: {changed:?}");
    assert!(!text.contains("plugin=\"gone\",comm="), "{text}");
    // openlat's probes went with `gone` and came with `added`: four, not eight.
    assert_eq!(agent_uprobes(pid), 4);
    let err = agent.stderr.lock().unwrap().clone();
    assert!(
        err.contains("wasmprobe: error: reload refused, the running plugins stay as they were: plugin steady: the name is used twice"),
        "{err}"
    );
    let st = agent.stop();
    assert!(st.success());
    assert_nothing_left(pid);
}

/// Kills the child on drop if it is still running.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn scopeguard(c: Child) -> ChildGuard {
    ChildGuard(c)
}

// ---- deploy/kubernetes ----------------------------------------------------------------------

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every document of a YAML file.
fn yaml_docs(path: &Path) -> Vec<serde_yaml::Value> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

fn get<'v>(v: &'v serde_yaml::Value, path: &str) -> &'v serde_yaml::Value {
    path.split('.').fold(v, |v, k| match k.parse::<usize>() {
        Ok(i) => &v[i],
        Err(_) => &v[k],
    })
}

fn text(v: &serde_yaml::Value, path: &str) -> String {
    match get(v, path) {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        other => panic!("{path}: not a scalar: {other:?}"),
    }
}

/// Every source file of the binary, for the names it reads from its environment.
fn source_text() -> String {
    fn walk(dir: &Path, out: &mut String) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push_str(&std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    let mut s = String::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut s);
    s
}

#[test]
fn kubernetes_manifests_name_only_what_the_binary_has() {
    let k8s = repo().join("deploy/kubernetes");
    let docs: Vec<serde_yaml::Value> =
        ["daemonset.yaml", "configmap.yaml"].iter().flat_map(|f| yaml_docs(&k8s.join(f))).collect();
    let find = |kind: &str| docs.iter().find(|d| text(d, "kind") == kind).unwrap_or_else(|| panic!("no {kind}"));
    let ds = find("DaemonSet");
    let cm = find("ConfigMap");
    let ns = text(find("Namespace"), "metadata.name");
    assert_eq!(text(ds, "metadata.namespace"), ns);
    assert_eq!(text(cm, "metadata.namespace"), ns);
    let pod = get(ds, "spec.template.spec");
    assert_eq!(get(pod, "hostPID"), &serde_yaml::Value::Bool(true));
    let c = get(pod, "containers.0");

    // The command is the binary where the Containerfile puts it, its args are flags
    // `wasmprobe agent` has, and the config it names is the ConfigMap's, mounted.
    let containerfile = std::fs::read_to_string(k8s.join("Containerfile")).unwrap();
    let command = text(c, "command.0");
    assert!(containerfile.contains(&format!("COPY target/release/wasmprobe-full {command}\n")), "{containerfile}");
    assert!(containerfile.contains(&format!("ENTRYPOINT [\"{command}\"]")), "{containerfile}");
    assert!(env!("CARGO_BIN_EXE_wasmprobe-full").ends_with("/wasmprobe-full"));
    let args: Vec<String> =
        get(c, "args").as_sequence().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
    assert_eq!(args[0], "agent");
    let help = Command::new(BIN).args(["agent", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for a in args.iter().filter(|a| a.starts_with("--")) {
        assert!(help.contains(&format!("{a} ")), "{a} is not a flag of `wasmprobe agent`:\n{help}");
    }
    let config_at = &args[args.iter().position(|a| a == "--config").unwrap() + 1];
    let (dir, key) = config_at.rsplit_once('/').unwrap();
    let mounts = get(c, "volumeMounts").as_sequence().unwrap();
    let volumes = get(pod, "volumes").as_sequence().unwrap();
    let volume_of = |mount_path: &str| {
        let m = mounts
            .iter()
            .find(|m| text(m, "mountPath") == mount_path)
            .unwrap_or_else(|| panic!("no mount {mount_path}"));
        volumes.iter().find(|v| text(v, "name") == text(m, "name")).unwrap().clone()
    };
    assert_eq!(text(&volume_of(dir), "configMap.name"), text(cm, "metadata.name"));
    assert!(containerfile.contains(&format!("CMD [\"agent\", \"--config\", \"{config_at}\"]")), "{containerfile}");

    // The ConfigMap's config passes `wasmprobe agent --check`, run as the DaemonSet would.
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join(key);
    std::fs::write(&config, get(cm, "data")[key].as_str().expect("the ConfigMap holds the config")).unwrap();
    let mut check: Vec<String> = args.clone();
    let at = check.iter().position(|a| a == config_at).unwrap();
    check[at] = config.display().to_string();
    check.push("--check".into());
    let out = Command::new(BIN).args(&check).output().unwrap();
    assert!(out.status.success(), "{check:?}: {}", String::from_utf8_lossy(&out.stderr));
    // The example config in deploy/ passes too.
    let example = repo().join("deploy/agent.example.toml");
    let out = Command::new(BIN).args(["agent", "--check", "--config"]).arg(&example).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Ports: the config's metrics address, the container port, the scrape annotations and the
    // probes agree, on the paths the agent serves.
    let cfg = wasmprobe::agent::Config::parse(&std::fs::read_to_string(&config).unwrap()).unwrap();
    let port = cfg.metrics_listen.as_deref().unwrap().rsplit_once(':').unwrap().1.to_string();
    let cport = get(c, "ports").as_sequence().unwrap().iter().find(|p| text(p, "name") == "metrics").unwrap();
    assert_eq!(text(cport, "containerPort"), port);
    let ann = get(ds, "spec.template.metadata.annotations");
    assert_eq!(ann["prometheus.io/scrape"].as_str(), Some("true"));
    assert_eq!(ann["prometheus.io/port"].as_str(), Some(port.as_str()));
    assert_eq!(ann["prometheus.io/path"].as_str(), Some("/metrics"));
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(text(c, &format!("{probe}.httpGet.path")), path);
        assert_eq!(text(c, &format!("{probe}.httpGet.port")), "metrics");
    }

    // The host's tracefs at the path the binary looks in; not privileged; the environment it
    // sets is read by the binary.
    let t = volume_of("/sys/kernel/tracing");
    assert_eq!(text(&t, "hostPath.path"), "/sys/kernel/tracing");
    assert_eq!(text(c, "securityContext.privileged"), "false");
    let drop: Vec<&str> =
        get(c, "securityContext.capabilities.drop").as_sequence().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert_eq!(drop, ["ALL"]);
    let src = source_text();
    for e in get(c, "env").as_sequence().unwrap() {
        let name = text(e, "name");
        assert!(src.contains(&format!("\"{name}\"")), "the binary does not read ${name}");
    }
    let cache = get(c, "env").as_sequence().unwrap().iter().find(|e| text(e, "name") == "WASMPROBE_CACHE").unwrap();
    volume_of(&text(cache, "value"));
}

#[test]
fn a_changed_config_file_is_reloaded_without_a_signal() {
    testkit::require!(root, tracefs, raw_syscalls);
    let dir = tempfile::tempdir().unwrap();
    let one = "node = \"n1\"\n[[plugin]]\nname = \"a\"\nsource = \"syscount\"\n";
    let cfg = write(dir.path(), "agent.toml", one);
    let agent = AgentProc::start(&cfg);
    agent.wait_ready();
    std::thread::sleep(Duration::from_millis(100));
    write(dir.path(), "agent.toml", &format!("{one}[[plugin]]\nname = \"b\"\nsource = \"syscount\"\n"));
    let t0 = Instant::now();
    while agent.sample("wasmprobe_plugin_up{node=\"n1\",plugin=\"b\"}") != Some(1.0) {
        assert!(t0.elapsed() < Duration::from_secs(5), "not reloaded: {}", agent.stderr.lock().unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(agent.sample("wasmprobe_reloads_total{node=\"n1\",result=\"ok\"}"), Some(1.0));
    assert_eq!(agent.sample("wasmprobe_plugin_up{node=\"n1\",plugin=\"a\"}"), Some(1.0));
}

include!("agent/more.rs");
