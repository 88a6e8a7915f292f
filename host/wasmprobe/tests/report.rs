//! `wasmprobe report FILE` against `trace-cmd report -i FILE`, line for line, on traces that
//! trace-cmd records here of a small workload: sched, syscalls, raw_syscalls, irq, timer,
//! workqueue and kmem events, as file version 6 (raw pages) and version 7 (zstd chunks).
//!
//! Needs root, tracefs, trace-cmd and unshare (testkit: a skip on a laptop, a failure in CI).
//! trace-cmd runs in a private
//! mount namespace where the function-tracer control files this kernel refuses are replaced
//! by scratch files (tests/bench/trace-cmd-ns.sh); event-only tracing never needs them. Whatever the
//! recording changes in the top tracing instance is put back, and the test checks that it
//! left no events enabled and no instance behind.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// trace-cmd records in the top instance: one recording at a time.
static TOP_INSTANCE: Mutex<()> = Mutex::new(());

const EVENTS: [&str; 7] = ["sched", "syscalls", "raw_syscalls", "irq", "timer", "workqueue", "kmem"];

/// Tracing state of the top instance that trace-cmd may change.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TopState {
    tracing_on: String,
    buffer_size_kb: u64,
    set_event: String,
    instances: Vec<String>,
}

fn read(t: &tracefs::Tracefs, name: &str) -> String {
    tracefs::read_text(&t.file(name)).unwrap_or_default()
}

fn top_state(t: &tracefs::Tracefs) -> TopState {
    // "1408", or "7 (expanded: 1408)" while the kernel has not allocated the buffer yet.
    let kb = read(t, "buffer_size_kb");
    let kb = kb.split("expanded: ").nth(1).unwrap_or(&kb);
    let kb = kb.trim().trim_end_matches(')').parse().unwrap_or(0);
    let mut instances: Vec<String> = std::fs::read_dir(t.file("instances"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    instances.sort();
    TopState {
        tracing_on: read(t, "tracing_on").trim().into(),
        buffer_size_kb: kb,
        set_event: read(t, "set_event"),
        instances,
    }
}

/// Puts back tracing_on and buffer_size_kb, which `trace-cmd record` leaves as it set them.
struct Restore<'a> {
    tracefs: &'a tracefs::Tracefs,
    before: TopState,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let now = top_state(self.tracefs);
        if now.buffer_size_kb != self.before.buffer_size_kb && self.before.buffer_size_kb > 0 {
            let _ = std::fs::write(self.tracefs.file("buffer_size_kb"), self.before.buffer_size_kb.to_string());
        }
        if now.tracing_on != self.before.tracing_on {
            let _ = std::fs::write(self.tracefs.file("tracing_on"), &self.before.tracing_on);
        }
    }
}

/// Runs `trace-cmd ARGS...` in a mount namespace with scratch files over the function-tracer
/// control files (and /proc/sys/kernel/ftrace_enabled) that this kernel refuses to open.
fn trace_cmd_ns(tracing: &Path, scratch: &Path, args: &[&str]) -> std::process::Output {
    const SCRIPT: &str = r#"
        set -e
        D=$1; T=$2; shift 2
        if [ -e /proc/sys/kernel/ftrace_enabled ]; then
            echo 1 > "$D/ftrace_enabled"
            mount --bind "$D/ftrace_enabled" /proc/sys/kernel/ftrace_enabled
        fi
        for f in set_ftrace_filter set_ftrace_notrace set_ftrace_pid set_ftrace_notrace_pid; do
            if [ -e "$T/$f" ]; then : > "$D/$f"; mount --bind "$D/$f" "$T/$f"; fi
        done
        exec trace-cmd "$@"
    "#;
    Command::new("unshare")
        .args(["-m", "sh", "-c", SCRIPT, "trace-cmd-ns"])
        .arg(scratch)
        .arg(tracing)
        .args(args)
        .output()
        .expect("run unshare")
}

/// Records the workload with trace-cmd into `dir/name`; `version` None = trace-cmd's default
/// (7, zstd).
fn record(t: &tracefs::Tracefs, dir: &Path, name: &str, version: Option<&str>) -> PathBuf {
    let out = dir.join(name);
    let scratch = dir.join(format!("{name}.ns"));
    std::fs::create_dir_all(&scratch).unwrap();
    let workload = format!(
        "ls -lR /usr/share/doc >/dev/null 2>&1; cat /proc/interrupts >/dev/null; sleep 0.05; \
         head -c 300000 /dev/urandom | gzip > {d}/w.gz; sync; rm -f {d}/w.gz",
        d = dir.display()
    );
    let mut args: Vec<&str> = vec!["record"];
    if let Some(v) = version {
        args.extend(["--file-version", v]);
    }
    for e in EVENTS {
        args.extend(["-e", e]);
    }
    let o = out.to_str().unwrap().to_string();
    args.extend(["-o", &o, "--", "sh", "-c", &workload]);
    let r = trace_cmd_ns(t.path(), &scratch, &args);
    assert!(
        r.status.success() && out.exists(),
        "trace-cmd record failed ({}):\n{}",
        r.status,
        String::from_utf8_lossy(&r.stderr)
    );
    out
}

fn trace_cmd_report(dat: &Path) -> String {
    let r = Command::new("trace-cmd").args(["report", "-i"]).arg(dat).output().expect("run trace-cmd report");
    assert!(r.status.success(), "trace-cmd report failed: {}", String::from_utf8_lossy(&r.stderr));
    String::from_utf8_lossy(&r.stdout).into_owned()
}

fn wasmprobe_report(dat: &Path) -> String {
    let r = Command::new(env!("CARGO_BIN_EXE_wasmprobe")).arg("report").arg(dat).output().expect("run wasmprobe");
    assert!(r.status.success(), "wasmprobe report failed: {}", String::from_utf8_lossy(&r.stderr));
    String::from_utf8_lossy(&r.stdout).into_owned()
}

/// Asserts equal line for line; on failure prints the first differing lines.
fn assert_same_lines(ours: &str, theirs: &str, what: &str) {
    let (a, b): (Vec<&str>, Vec<&str>) = (ours.lines().collect(), theirs.lines().collect());
    let diffs: Vec<usize> = (0..a.len().max(b.len())).filter(|&i| a.get(i) != b.get(i)).collect();
    if diffs.is_empty() {
        eprintln!("{what}: {} lines, all equal", b.len());
        return;
    }
    let mut msg = format!(
        "{what}: {} of {} lines differ (wasmprobe {} lines, trace-cmd {})\n",
        diffs.len(),
        b.len(),
        a.len(),
        b.len()
    );
    for &i in diffs.iter().take(12) {
        msg.push_str(&format!(
            "line {}:\n  wasmprobe: {}\n  trace-cmd: {}\n",
            i + 1,
            a.get(i).unwrap_or(&"<none>"),
            b.get(i).unwrap_or(&"<none>")
        ));
    }
    panic!("{msg}");
}

fn record_and_compare(test: &str, version: Option<&str>) {
    use testkit::need::*;
    let Some(ready) = testkit::require(test, &[root, tracefs, trace_cmd, unshare]) else { return };
    let t = ready.tracefs();
    let _one = TOP_INSTANCE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let before = top_state(&t);
    let dat = {
        let _restore = Restore { tracefs: &t, before: before.clone() };
        record(&t, dir.path(), "trace.dat", version)
    };
    // trace-cmd disabled what it enabled and created no instance.
    let after = top_state(&t);
    assert_eq!(after.set_event, before.set_event, "trace-cmd left events enabled");
    let new: Vec<&String> =
        after.instances.iter().filter(|i| !before.instances.contains(i) && !i.starts_with("wasmprobe-")).collect();
    assert!(new.is_empty(), "trace-cmd left instances behind: {new:?}");
    assert_eq!((after.tracing_on.as_str(), after.buffer_size_kb), (before.tracing_on.as_str(), before.buffer_size_kb));

    let theirs = trace_cmd_report(&dat);
    let ours = wasmprobe_report(&dat);
    assert!(theirs.lines().count() > 1000, "the workload recorded too little:\n{theirs}");
    for sys in ["sched_switch", "sys_enter_", "irq_handler_entry", "hrtimer_start", "workqueue_"] {
        if !theirs.contains(sys) {
            eprintln!("{test}: note: no {sys} events in this recording");
        }
    }
    assert_same_lines(&ours, &theirs, test);
}

#[test]
fn report_matches_trace_cmd_v6() {
    record_and_compare("report_matches_trace_cmd_v6", Some("6"));
}

#[test]
fn report_matches_trace_cmd_v7_zstd() {
    record_and_compare("report_matches_trace_cmd_v7_zstd", None);
}
