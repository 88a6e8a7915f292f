//! `wasmprobe report` byte for byte against `trace-cmd report`, on one short recording of
//! every event class of the report benchmark (tests/bench/corpus.sh): sched, irq and softirq,
//! timer and hrtimer, kmem, workqueue, raw_syscalls, syscalls with their arguments, block,
//! net, signal, task, writeback, power and a uprobe with strings. The recording is made four
//! ways: by trace-cmd as file version 6 and as its default 7 with zstd, and by
//! `wasmprobe record` as version 6 and 7; each file is printed by both reports.
//!
//! Needs root, tracefs, uprobes, trace-cmd and unshare (testkit: a skip on a laptop, a failure
//! in CI). trace-cmd records in the top instance, in the private mount namespace of
//! tests/bench/trace-cmd-ns.sh; the test puts back what it changes there (tracing_on,
//! buffer_size_kb) and removes its uprobe group, even when it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Every class, with the events recorded for it and a piece of text its lines contain.
const CLASSES: [(&str, &[&str], &str); 14] = [
    (
        "sched",
        &["sched:sched_switch", "sched:sched_wakeup", "sched:sched_waking", "sched:sched_migrate_task"],
        " sched_switch: ",
    ),
    ("irq", &["irq"], " softirq_"),
    ("timer", &["timer"], " hrtimer_start: "),
    (
        "kmem",
        &[
            "kmem:kmalloc",
            "kmem:kfree",
            "kmem:kmem_cache_alloc",
            "kmem:kmem_cache_free",
            "kmem:mm_page_alloc",
            "kmem:mm_page_free",
        ],
        " kmalloc: ",
    ),
    ("workqueue", &["workqueue"], " workqueue_"),
    ("raw_syscalls", &["raw_syscalls"], " sys_enter: "),
    ("syscalls", &["syscalls"], " sys_enter_"),
    ("block", &["block"], " block_"),
    ("net", &["net"], " net_dev_xmit: "),
    ("signal", &["signal"], " signal_generate: "),
    (
        "task",
        &["task", "sched:sched_process_fork", "sched:sched_process_exec", "sched:sched_process_exit"],
        " task_newtask: ",
    ),
    ("writeback", &["writeback"], " writeback_"),
    ("power", &["power:cpu_idle"], " cpu_idle: "),
    ("uprobes", &[], " statx: "),
];

/// Classes whose events the workload makes every time; the others (kernel threads' work,
/// idle states) are noted when absent.
const ALWAYS: [&str; 9] = ["sched", "timer", "kmem", "raw_syscalls", "syscalls", "net", "signal", "task", "uprobes"];

fn tracefs_write(t: &tracefs::Tracefs, file: &str, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::OpenOptions::new().append(true).open(t.file(file))?.write_all(text.as_bytes())
}

fn read_trim(t: &tracefs::Tracefs, name: &str) -> String {
    tracefs::read_text(&t.file(name)).unwrap_or_default().trim().to_string()
}

/// Puts back the top instance's tracing_on and buffer_size_kb and removes the uprobe group.
struct Restore<'a> {
    t: &'a tracefs::Tracefs,
    tracing_on: String,
    buffer_size_kb: String,
    group: String,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let _ = tracefs_write(self.t, &format!("events/{}/enable", self.group), "0");
        let _ = tracefs_write(self.t, "uprobe_events", &format!("-:{}/statx\n", self.group));
        let kb = read_trim(self.t, "buffer_size_kb");
        if !self.buffer_size_kb.contains("expanded") && kb != self.buffer_size_kb {
            let _ = std::fs::write(self.t.file("buffer_size_kb"), &self.buffer_size_kb);
        }
        let _ = std::fs::write(self.t.file("tracing_on"), &self.tracing_on);
    }
}

/// The shell workload: each class's events fire at least once.
fn workload(dir: &Path) -> String {
    format!(
        "for i in 1 2 3 4 5 6; do /bin/true; done; ls -l /usr/bin /usr/share/doc >/dev/null 2>&1; \
         dd if=/dev/zero of={d}/b bs=64k count=64 oflag=direct status=none; \
         dd if=/dev/urandom of={d}/w bs=64k count=32 status=none; sync; \
         curl -s -m 1 http://127.0.0.1:9/ >/dev/null 2>&1; \
         bash -c 'trap : USR1; for i in 1 2 3 4 5 6 7 8; do kill -USR1 $$; done'; \
         for i in 1 2 3 4 5; do sleep 0.01; done; rm -f {d}/b {d}/w; sync",
        d = dir.display()
    )
}

fn event_args(group: &str) -> Vec<String> {
    let mut args = Vec::new();
    for (class, events, _) in CLASSES {
        let group_events = [group];
        let events: &[&str] = if class == "uprobes" { &group_events } else { events };
        for e in events {
            args.push("-e".to_string());
            args.push(e.to_string());
        }
    }
    args
}

/// `trace-cmd ARGS` in the mount namespace of tests/bench/trace-cmd-ns.sh.
fn trace_cmd_ns(args: &[String]) -> Output {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/bench/trace-cmd-ns.sh");
    Command::new("sh").arg(script).args(args).output().expect("run trace-cmd-ns.sh")
}

/// trace-cmd records the workload (system-wide while it runs) into `out`.
fn record_trace_cmd(dir: &Path, out: &Path, version: Option<&str>, group: &str) {
    let mut args = vec!["record".to_string()];
    if let Some(v) = version {
        args.extend(["--file-version".to_string(), v.to_string()]);
    }
    args.extend(event_args(group));
    args.extend(["-o".into(), out.display().to_string(), "--".into(), "sh".into(), "-c".into(), workload(dir)]);
    let r = trace_cmd_ns(&args);
    assert!(r.status.success() && out.exists(), "trace-cmd record: {}", String::from_utf8_lossy(&r.stderr));
}

/// `wasmprobe record` (system-wide) while the workload runs, then SIGINT.
fn record_wasmprobe(dir: &Path, out: &Path, version: &str, group: &str) {
    let child = Command::new(env!("CARGO_BIN_EXE_wasmprobe"))
        .args(["record", "--file-version", version, "-o"])
        .arg(out)
        .args(event_args(group))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run wasmprobe record");
    std::thread::sleep(Duration::from_millis(700));
    let w = Command::new("sh").arg("-c").arg(workload(dir)).status().expect("run the workload");
    assert!(w.success(), "the workload failed: {w}");
    std::thread::sleep(Duration::from_millis(200));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let started = Instant::now();
    let r = child.wait_with_output().expect("wait for wasmprobe record");
    assert!(started.elapsed() < Duration::from_secs(10), "wasmprobe record took {:?} to stop", started.elapsed());
    assert!(r.status.success() && out.exists(), "wasmprobe record: {}", String::from_utf8_lossy(&r.stderr));
}

fn report(cmd: &mut Command, what: &str) -> Vec<u8> {
    let r = cmd.output().unwrap_or_else(|e| panic!("run {what}: {e}"));
    assert!(r.status.success(), "{what} failed: {}", String::from_utf8_lossy(&r.stderr));
    r.stdout
}

/// Asserts the two outputs equal byte for byte; on failure shows the first differing lines.
fn assert_same(ours: &[u8], theirs: &[u8], what: &str) {
    if ours == theirs {
        return;
    }
    let (a, b): (Vec<&[u8]>, Vec<&[u8]>) =
        (ours.split(|&c| c == b'\n').collect(), theirs.split(|&c| c == b'\n').collect());
    let diffs: Vec<usize> = (0..a.len().max(b.len())).filter(|&i| a.get(i) != b.get(i)).collect();
    let mut msg = format!("{what}: {} of {} lines differ\n", diffs.len(), b.len());
    for &i in diffs.iter().take(8) {
        let show = |l: Option<&&[u8]>| l.map_or("<none>".to_string(), |l| String::from_utf8_lossy(l).into_owned());
        msg.push_str(&format!("line {}:\n  wasmprobe: {}\n  trace-cmd: {}\n", i + 1, show(a.get(i)), show(b.get(i))));
    }
    panic!("{msg}");
}

/// Compares the reports of `dat`; returns trace-cmd's text.
fn compare(dat: &Path, what: &str) -> String {
    let theirs = report(Command::new("trace-cmd").args(["report", "-i"]).arg(dat), "trace-cmd report");
    let ours = report(Command::new(env!("CARGO_BIN_EXE_wasmprobe")).arg("report").arg(dat), "wasmprobe report");
    assert_same(&ours, &theirs, what);
    String::from_utf8_lossy(&theirs).into_owned()
}

/// The libc the uprobe goes on: the one this test runs with.
fn libc_path() -> PathBuf {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let p = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.contains("/libc.so.6"))
        .expect("libc in maps");
    PathBuf::from(p)
}

#[test]
fn report_matches_trace_cmd_on_every_class() {
    use testkit::need::*;
    let test = "report_matches_trace_cmd_on_every_class";
    let Some(ready) = testkit::require(test, &[root, tracefs, uprobes, trace_cmd, unshare, program("curl")]) else {
        return;
    };
    let t = ready.tracefs();
    let dir = tempfile::tempdir().unwrap();
    let group = format!("wpclasses_{}", std::process::id());
    let _restore = Restore {
        t: &t,
        tracing_on: read_trim(&t, "tracing_on"),
        buffer_size_kb: read_trim(&t, "buffer_size_kb"),
        group: group.clone(),
    };
    let add = Command::new(env!("CARGO_BIN_EXE_wasmprobe"))
        .args(["uprobe", "add", "-s", &group, "-e", "statx"])
        .arg(format!("{}:statx", libc_path().display()))
        .args(["path=+0(%si):ustring", "flags=%cx:x32"])
        .output()
        .unwrap();
    assert!(add.status.success(), "uprobe add: {}", String::from_utf8_lossy(&add.stderr));

    let mut seen: Vec<(&str, usize)> = CLASSES.iter().map(|c| (c.0, 0)).collect();
    for (name, version, by_trace_cmd) in
        [("tc-v6.dat", "6", true), ("tc-v7.dat", "7", true), ("wp-v6.dat", "6", false), ("wp-v7.dat", "7", false)]
    {
        let dat = dir.path().join(name);
        if by_trace_cmd {
            // trace-cmd's default is version 7 with zstd.
            record_trace_cmd(dir.path(), &dat, (version == "6").then_some("6"), &group);
        } else {
            record_wasmprobe(dir.path(), &dat, version, &group);
        }
        let text = compare(&dat, name);
        let lines = text.lines().count();
        let mut counts = Vec::new();
        for (i, (class, _, marker)) in CLASSES.iter().enumerate() {
            let n = text.matches(marker).count();
            seen[i].1 += n;
            counts.push(format!("{class} {n}"));
        }
        eprintln!("{name}: {lines} lines, identical; {}", counts.join(", "));
    }
    for (class, n) in &seen {
        if *n == 0 {
            assert!(!ALWAYS.contains(class), "no {class} events were recorded");
            eprintln!("{test}: note: no {class} events in these recordings");
        }
    }
}
