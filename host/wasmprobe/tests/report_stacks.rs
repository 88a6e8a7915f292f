//! `wasmprobe report FILE` against `trace-cmd report -i FILE`, line for line, on traces with
//! call stacks that trace-cmd records here: kernel stacks after each event (`record -T`, a
//! `kernel_stack` record of as many frames as the kernel saved, printed as `<stack trace >`
//! and `=> name (address)` lines) and user stacks (`-O userstacktrace`, `user_stack`
//! records), and stacks that `wasmprobe record` captured for a plugin that asked for them.
//!
//! Needs root, tracefs, trace-cmd and unshare (testkit: a skip on a laptop, a failure in CI).
//! trace-cmd runs in a private mount namespace where the function-tracer control files this
//! kernel refuses are replaced by scratch files, as in tests/report.rs. What the recording
//! changes in the top tracing instance (tracing_on, the buffer size, the stack options) is
//! put back, and the test checks that it left no events enabled and no instance behind.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// trace-cmd records in the top instance: one recording at a time.
static TOP_INSTANCE: Mutex<()> = Mutex::new(());

/// The top instance's options that trace-cmd's stack flags set.
const STACK_OPTIONS: [&str; 2] = ["stacktrace", "userstacktrace"];

/// Tracing state of the top instance that trace-cmd may change.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TopState {
    tracing_on: String,
    buffer_size_kb: String,
    set_event: String,
    options: Vec<String>,
    instances: Vec<String>,
}

fn read(t: &tracefs::Tracefs, name: &str) -> String {
    tracefs::read_text(&t.file(name)).unwrap_or_default().trim().to_string()
}

fn top_state(t: &tracefs::Tracefs) -> TopState {
    // "1408", or "7 (expanded: 1408)" while the kernel has not allocated the buffer yet.
    let kb = read(t, "buffer_size_kb");
    let kb = kb.split("expanded: ").nth(1).unwrap_or(&kb).trim_end_matches(')').to_string();
    let mut instances: Vec<String> = std::fs::read_dir(t.file("instances"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    instances.sort();
    TopState {
        tracing_on: read(t, "tracing_on"),
        buffer_size_kb: kb,
        set_event: read(t, "set_event"),
        options: STACK_OPTIONS.iter().map(|o| read(t, &format!("options/{o}"))).collect(),
        instances,
    }
}

/// Puts back what `trace-cmd record` may leave as it set it: tracing_on, buffer_size_kb and
/// the stack options.
struct Restore<'a> {
    tracefs: &'a tracefs::Tracefs,
    before: TopState,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let (t, before) = (self.tracefs, &self.before);
        let now = top_state(t);
        for (o, (was, is)) in STACK_OPTIONS.iter().zip(before.options.iter().zip(&now.options)) {
            if was != is && !was.is_empty() {
                let _ = std::fs::write(t.file(&format!("options/{o}")), was);
            }
        }
        if now.buffer_size_kb != before.buffer_size_kb && before.buffer_size_kb.parse::<u64>().is_ok_and(|k| k > 0) {
            let _ = std::fs::write(t.file("buffer_size_kb"), &before.buffer_size_kb);
        }
        if now.tracing_on != before.tracing_on {
            let _ = std::fs::write(t.file("tracing_on"), &before.tracing_on);
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

/// Records a small workload with `trace-cmd record FLAGS -e EVENT...` into `dir/trace.dat`,
/// checking that the top instance is left as it was.
fn record(t: &tracefs::Tracefs, dir: &Path, flags: &[&str], events: &[&str]) -> PathBuf {
    let out = dir.join("trace.dat");
    let scratch = dir.join("ns");
    std::fs::create_dir_all(&scratch).unwrap();
    let workload = format!(
        "ls -lR /usr/share/doc/ >/dev/null 2>&1; cat /proc/interrupts >/dev/null; sleep 0.05; \
         head -c 100000 /dev/urandom | gzip > {d}/w.gz; sync; rm -f {d}/w.gz",
        d = dir.display()
    );
    let mut args: Vec<&str> = vec!["record"];
    args.extend(flags);
    for e in events {
        args.extend(["-e", e]);
    }
    let o = out.to_str().unwrap().to_string();
    args.extend(["-o", &o, "--", "sh", "-c", &workload]);
    let before = top_state(t);
    let r = {
        let _restore = Restore { tracefs: t, before: before.clone() };
        trace_cmd_ns(t.path(), &scratch, &args)
    };
    assert!(
        r.status.success() && out.exists(),
        "trace-cmd record failed ({}):\n{}",
        r.status,
        String::from_utf8_lossy(&r.stderr)
    );
    let after = top_state(t);
    assert_eq!(after.set_event, before.set_event, "trace-cmd left events enabled");
    let new: Vec<&String> =
        after.instances.iter().filter(|i| !before.instances.contains(i) && !i.starts_with("wasmprobe-")).collect();
    assert!(new.is_empty(), "trace-cmd left instances behind: {new:?}");
    assert_eq!(
        (&after.tracing_on, &after.buffer_size_kb, &after.options),
        (&before.tracing_on, &before.buffer_size_kb, &before.options),
        "the top instance is not as it was"
    );
    out
}

fn trace_cmd_report(dat: &Path) -> String {
    let r = Command::new("trace-cmd").args(["report", "-i"]).arg(dat).output().expect("run trace-cmd report");
    assert!(r.status.success(), "trace-cmd report failed: {}", String::from_utf8_lossy(&r.stderr));
    String::from_utf8(r.stdout).expect("trace-cmd report prints UTF-8")
}

fn wasmprobe_report(dat: &Path) -> String {
    let r = Command::new(env!("CARGO_BIN_EXE_wasmprobe")).arg("report").arg(dat).output().expect("run wasmprobe");
    assert!(r.status.success(), "wasmprobe report failed: {}", String::from_utf8_lossy(&r.stderr));
    String::from_utf8(r.stdout).expect("wasmprobe report prints UTF-8")
}

/// Asserts equal byte for byte; on failure prints the first differing lines.
fn assert_same(ours: &str, theirs: &str, what: &str) {
    if ours == theirs {
        eprintln!("{what}: {} lines, all equal", theirs.lines().count());
        return;
    }
    let (a, b): (Vec<&str>, Vec<&str>) = (ours.lines().collect(), theirs.lines().collect());
    let diffs: Vec<usize> = (0..a.len().max(b.len())).filter(|&i| a.get(i) != b.get(i)).collect();
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

/// The frame counts of the `<stack trace >` records of a report: the `=> ` lines after each.
fn kernel_stack_depths(report: &str) -> Vec<usize> {
    let mut depths = Vec::new();
    let mut lines = report.lines().peekable();
    while let Some(l) = lines.next() {
        if l.ends_with(" kernel_stack:         <stack trace >") {
            let mut n = 0;
            while lines.next_if(|l| l.starts_with("=> ")).is_some() {
                n += 1;
            }
            depths.push(n);
        }
    }
    depths
}

#[test]
fn kernel_stacks_of_trace_cmd_record_dash_t_print_as_trace_cmd_prints_them() {
    let ready = testkit::require!(root, tracefs, trace_cmd, unshare);
    let t = ready.tracefs();
    let _one = TOP_INSTANCE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let dat = record(&t, dir.path(), &["-T"], &["sched:sched_switch", "syscalls:sys_enter_openat", "irq"]);
    let theirs = trace_cmd_report(&dat);
    let ours = wasmprobe_report(&dat);
    let depths = kernel_stack_depths(&theirs);
    // Every event is followed by its stack; some stacks are deeper than the format file's
    // caller[8] (a switch from a sleeping syscall is a dozen frames).
    assert!(depths.len() > 50, "too few stacks recorded ({}):\n{theirs}", depths.len());
    assert!(depths.iter().any(|&d| d > 8), "no stack deeper than 8 frames: {depths:?}");
    assert!(
        theirs.contains("=> entry_SYSCALL_64_after_hwframe (ffffffff"),
        "no symbolized syscall entry frame:\n{theirs}"
    );
    assert_same(&ours, &theirs, "kernel stacks (record -T)");
}

#[test]
fn user_and_kernel_stacks_of_the_userstacktrace_option_print_as_trace_cmd_prints_them() {
    let ready = testkit::require!(root, tracefs, trace_cmd, unshare);
    let t = ready.tracefs();
    let _one = TOP_INSTANCE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let dat = record(
        &t,
        dir.path(),
        &["--file-version", "6", "-T", "-O", "userstacktrace"],
        &["syscalls:sys_enter_openat", "syscalls:sys_exit_openat"],
    );
    let theirs = trace_cmd_report(&dat);
    let ours = wasmprobe_report(&dat);
    let users = theirs.lines().filter(|l| l.contains(" user_stack: ")).count();
    assert!(users > 20, "too few user stacks recorded ({users}):\n{theirs}");
    assert!(!kernel_stack_depths(&theirs).is_empty(), "no kernel stacks recorded:\n{theirs}");
    assert_same(&ours, &theirs, "user and kernel stacks (record -T -O userstacktrace, v6)");
}

/// The test plugin of tests/stacks.rs (guest-examples/stackdump), built by build.rs: one
/// probe with the stacks `--arg stacks=` asks for.
fn stackdump() -> PathBuf {
    PathBuf::from(env!("OUT_DIR")).join("guests").join("stackdump.wasm")
}

#[test]
fn stacks_recorded_by_wasmprobe_record_print_as_trace_cmd_prints_them() {
    let ready = testkit::require!(root, tracefs, trace_cmd);
    let t = ready.tracefs();
    let _one = TOP_INSTANCE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let dat = dir.path().join("ours.dat");
    // A new instance inherits the top instance's options: with `stacktrace` on there (as a
    // user or a concurrent `trace-cmd record -T` leaves it), every event of ours would get a
    // second kernel stack unless wasmprobe sets its instance's options itself.
    let _restore = Restore { tracefs: &t, before: top_state(&t) };
    std::fs::write(t.file("options/stacktrace"), "1").expect("turn on the top instance's stacktrace option");
    // Kernel stacks through our instance's stacktrace trigger, user stacks through its
    // userstacktrace option, on every context switch of the command.
    let child = Command::new(env!("CARGO_BIN_EXE_wasmprobe"))
        .args(["record", "--setup-budget", "20s", "--cpu-budget", "5s", "-o"])
        .arg(&dat)
        .arg("--plugin")
        .arg(stackdump())
        .args(["--arg", "kind=tracepoint", "--arg", "target=sched:sched_switch", "--arg", "stacks=both"])
        .args(["--", "sh", "-c", "sleep 0.05; ls -R /usr/share/doc >/dev/null; sleep 0.02"])
        .env("WASMPROBE_CACHE", std::env::temp_dir().join("wasmprobe-test-cache"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run wasmprobe record");
    let pid = child.id();
    let r = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(0), "wasmprobe record failed:\n{stderr}");
    assert!(stderr.contains(" events to ") && stderr.contains("(0 lost)"), "{stderr}");
    assert_eq!(testkit::leftovers(pid), Vec::<String>::new(), "wasmprobe record left tracing state behind");

    let theirs = trace_cmd_report(&dat);
    let ours = wasmprobe_report(&dat);
    let depths = kernel_stack_depths(&theirs);
    let switches = theirs.lines().filter(|l| l.contains(" sched_switch: ")).count();
    let users = theirs.lines().filter(|l| l.contains(" user_stack: ")).count();
    assert!(switches >= 3, "too few switches recorded:\n{theirs}");
    // Each switch has its kernel stack (the trigger is on sched_switch alone) and its user
    // stack (the option covers every event of the instance).
    assert_eq!(depths.len(), switches, "{theirs}");
    assert!(users >= switches, "{users} user stacks for {switches} switches:\n{theirs}");
    assert!(depths.iter().any(|&d| d > 8), "no stack deeper than 8 frames: {depths:?}");
    assert_same(&ours, &theirs, "stacks recorded by wasmprobe record");
}

#[test]
fn kernel_stacks_of_the_stacktrace_trigger_print_as_trace_cmd_prints_them() {
    let ready = testkit::require!(root, tracefs, trace_cmd, unshare);
    let t = ready.tracefs();
    let _one = TOP_INSTANCE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let trigger = || read(&t, "events/sched/sched_switch/trigger");
    let before = trigger();
    // The trigger on sched_switch only: openat events come without stacks.
    let dat = record(
        &t,
        dir.path(),
        &["--file-version", "6", "-e", "sched:sched_switch", "-R", "stacktrace"],
        &["syscalls:sys_enter_openat"],
    );
    assert_eq!(trigger(), before, "trace-cmd left the stacktrace trigger on sched_switch");
    let theirs = trace_cmd_report(&dat);
    let ours = wasmprobe_report(&dat);
    let depths = kernel_stack_depths(&theirs);
    let switches = theirs.lines().filter(|l| l.contains(" sched_switch: ")).count();
    assert!(switches > 10 && depths.len() == switches, "{} stacks for {switches} switches", depths.len());
    assert!(depths.iter().any(|&d| d > 8), "no stack deeper than 8 frames: {depths:?}");
    assert_same(&ours, &theirs, "kernel stacks (the stacktrace trigger, v6)");
}
