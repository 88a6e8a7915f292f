//! The built-in example plugins end to end: `wasmprobe run PLUGIN -- COMMAND` against this
//! machine's kernel (uprobes and tracepoints; no kprobes here, so exec-open takes its uprobe
//! fallback), each checked against what its real child command did. The kprobe path of
//! exec-open runs in the VM tier (tests/run_vm.rs).

use std::process::{Command, Output, Stdio};

use testkit::require;

fn wasmprobe(args: &[&str]) -> Output {
    run_wasmprobe(args).0
}

/// Runs the binary; returns its output and its pid (what its probes and instance are named after).
fn run_wasmprobe(args: &[&str]) -> (Output, u32) {
    let child = Command::new(env!("CARGO_BIN_EXE_wasmprobe"))
        .args(args)
        .env("WASMPROBE_CACHE", std::env::temp_dir().join("wasmprobe-test-cache"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run wasmprobe");
    let pid = child.id();
    (child.wait_with_output().expect("wait for wasmprobe"), pid)
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Nothing named after the finished wasmprobe process `pid` may be left in the kernel (other
/// tests of this binary run at the same time, with probes of their own).
fn assert_kernel_clean(pid: u32) {
    let t = "/sys/kernel/tracing";
    for f in ["uprobe_events", "dynamic_events"] {
        let s = std::fs::read_to_string(format!("{t}/{f}")).unwrap_or_default();
        assert!(!s.lines().any(|l| l.contains(&format!(":wasmprobe_{pid}_"))), "{f} still has probes of {pid}:\n{s}");
    }
    let left: Vec<String> = std::fs::read_dir(format!("{t}/instances"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&format!("wasmprobe-{pid}-")))
        .collect();
    assert!(left.is_empty(), "instances of {pid} left: {left:?}");
}

#[test]
fn exec_open_prints_the_files_a_command_opens() {
    require!(root, tracefs, uprobes);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("opened-by-cat.txt");
    std::fs::write(&file, "x\n").unwrap();
    let f = file.to_str().unwrap();
    let (o, wp) = run_wasmprobe(&["run", "exec-open", "--", "cat", f]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout:\n{out}\nstderr:\n{err}");
    // The man page's output: PID-COMM: open file='...' then PID-COMM: open ret=N.
    let open = out.lines().find(|l| l.ends_with(&format!(": open file='{f}'"))).expect(&out);
    let (pid, rest) = open.split_once('-').unwrap();
    assert!(pid.parse::<u32>().is_ok() && rest.starts_with("cat: "), "{open}");
    assert!(out.lines().any(|l| l.starts_with(&format!("{pid}-cat: open ret=")) && !l.ends_with("ret=-2")), "{out}");
    // Only the command's own opens (cat's own output, the file's text, is on stdout too).
    assert!(out.lines().filter(|l| l.contains(": open ")).all(|l| l.starts_with(&format!("{pid}-"))), "{out}");
    assert!(err.contains("no kprobes") || std::path::Path::new("/sys/kernel/tracing/kprobe_events").exists(), "{err}");
    assert_kernel_clean(wp);
}

#[test]
fn exec_open_reports_a_failed_open() {
    require!(root, tracefs, uprobes);
    let o = wasmprobe(&["run", "exec-open", "--", "cat", "/nonexistent/wasmprobe-file"]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1), "the command's exit code is passed on");
    assert!(out.contains("open file='/nonexistent/wasmprobe-file'"), "{out}");
    // libc's open returns -1 (errno ENOENT) to the uprobe; the kernel's do_sys_openat2 -2.
    let expect = if std::path::Path::new("/sys/kernel/tracing/kprobe_events").exists() { "ret=-2" } else { "ret=-1" };
    assert!(out.contains(&format!("open {expect}")), "a failed open shows {expect}:\n{out}");
}

#[test]
fn syscount_counts_a_commands_syscalls() {
    require!(root, tracefs, uprobes);
    let (o, pid) = run_wasmprobe(&["run", "syscount", "--", "ls", "/"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    let procs = out.split("Top 10 processes").nth(1).expect(&out);
    let ls = procs.lines().find(|l| l.split_whitespace().nth(1) == Some("ls")).expect(procs);
    let count: u64 = ls.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(count > 20, "ls makes dozens of syscalls, got {count}");
    assert_kernel_clean(pid);
}

#[test]
fn openlat_prints_a_histogram() {
    require!(root, tracefs, uprobes);
    let o = wasmprobe(&[
        "run",
        "openlat",
        "--",
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6 7 8; do cat /etc/hostname; done >/dev/null",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("@usecs:"), "{out}");
    let total: u64 = out
        .lines()
        .filter(|l| l.starts_with('['))
        .map(|l| l.split(')').nth(1).unwrap().split_whitespace().next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(total >= 8, "at least the 8 opens of /etc/hostname, got {total}:\n{out}");
}

#[test]
fn readline_shows_lines_typed_into_bash() {
    require!(root, tracefs, uprobes, program("script"));
    // An interactive bash on a pseudo-terminal (script(1)), so that bash reads with readline.
    let mut input = "echo wasmprobe-readline-test\nexit\n".as_bytes().to_vec();
    let script = "printf '%s' \"$WP_INPUT\" | script -qc 'bash --norc --noprofile -i' /dev/null";
    let o = Command::new(env!("CARGO_BIN_EXE_wasmprobe"))
        .args(["run", "readline", "--", "sh", "-c", script])
        .env("WP_INPUT", String::from_utf8(std::mem::take(&mut input)).unwrap())
        .env("WASMPROBE_CACHE", std::env::temp_dir().join("wasmprobe-test-cache"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(out.lines().any(|l| l.contains("bash") && l.ends_with("echo wasmprobe-readline-test")), "{out}\n{err}");
}

#[test]
fn a_bad_plugin_name_is_a_clear_error() {
    let o = wasmprobe(&["run", "no-such-plugin"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("no-such-plugin") && err.lines().count() == 1, "{err}");
}

/// A process that exec'd and exited before a plugin asked its name is named by what it ran
/// (`ls`), not by the name the kernel's saved_cmdlines kept from before the exec (`sh`): the
/// run's own instance of exit names answers, and goes when the run does.
#[test]
fn a_process_gone_before_it_is_named_gets_the_name_it_exited_with() {
    require!(root, tracefs);
    let tracefs = tracefs::Tracefs::open().unwrap();
    let exits = wasmprobe::kernel_info::ExitNames::start(&tracefs).expect("sched_process_exit is on this kernel");
    let instance = format!("wasmprobe-{}-comm", std::process::id());
    assert!(testkit::leftovers(std::process::id()).contains(&format!("instance {instance}")));
    // The shell's pid becomes ls.
    let mut sh = Command::new("sh").args(["-c", "exec ls /"]).stdout(Stdio::null()).spawn().unwrap();
    let pid = sh.id() as i32;
    assert!(sh.wait().unwrap().success());
    let mut named = wasmprobe::kernel_info::LiveComm::new(&tracefs, Default::default()).with_exits(Some(exits.clone()));
    assert_eq!(wasmprobe::plugin::CommLookup::comm(&mut named, pid).as_deref(), Some("ls"));
    assert_eq!(exits.name(pid).as_deref(), Some("ls"), "asked again");
    drop(named);
    drop(exits);
    assert_eq!(testkit::leftovers(std::process::id()), Vec::<String>::new());
}
