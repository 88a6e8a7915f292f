//! Recording and replay: `wasmprobe record` writes a trace.dat that trace-cmd reads the same
//! way we do, and a plugin replayed over a recording prints what it printed live, without
//! root and without tracefs.

use std::process::{Command, Output};

use testkit::require;

fn wasmprobe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasmprobe"))
        .args(args)
        .env("WASMPROBE_CACHE", std::env::temp_dir().join("wasmprobe-test-cache"))
        .output()
        .expect("run wasmprobe")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(o: &Output) {
    assert!(o.status.success(), "stdout:\n{}\nstderr:\n{}", stdout(o), String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_replay_prints_what_the_live_run_printed() {
    require!(root, tracefs, uprobes);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hello.txt");
    std::fs::write(&file, "hi\n").unwrap();
    let f = file.to_str().unwrap();
    let dat = dir.path().join("exec-open.dat");
    let d = dat.to_str().unwrap();
    let rec =
        wasmprobe(&["record", "-o", d, "--plugin", "exec-open", "--", "sh", "-c", &format!("cat {f} /nonexistent")]);
    let live_out = stdout(&rec);
    assert!(live_out.contains(&format!("open file='{f}'")), "{live_out}");
    // The command's own output (the file's text) is interleaved: keep the plugin's lines only.
    let plugin_lines = |s: &str| s.lines().filter(|l| l.contains(": open ")).map(str::to_string).collect::<Vec<_>>();
    let replayed = wasmprobe(&["run", "exec-open", "--replay", d]);
    ok(&replayed);
    assert_eq!(plugin_lines(&stdout(&replayed)), plugin_lines(&live_out));
    assert!(plugin_lines(&live_out).len() >= 4, "two opens and their returns: {live_out}");

    // The same replay as an unprivileged user: no root, no tracefs needed.
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&dat, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let nobody = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", env!("CARGO_BIN_EXE_wasmprobe")])
        .args(["run", "exec-open", "--replay", d])
        .env("WASMPROBE_CACHE", &cache)
        .env("TRACEFS", "/nonexistent")
        .output()
        .unwrap();
    ok(&nobody);
    assert_eq!(plugin_lines(&stdout(&nobody)), plugin_lines(&live_out));
}

#[test]
fn json_output_of_a_replay_equals_the_live_run() {
    require!(root, tracefs, uprobes);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("syscount.dat");
    let d = d.to_str().unwrap();
    let rec = wasmprobe(&[
        "record",
        "-o",
        d,
        "--plugin",
        "syscount",
        "--arg",
        "records=1",
        "--json",
        "--",
        "sh",
        "-c",
        "ls / >/dev/null",
    ]);
    ok(&rec);
    let replayed = wasmprobe(&["run", "syscount", "--arg", "records=1", "--json", "--replay", d]);
    ok(&replayed);
    let records = |s: &str| s.lines().filter(|l| l.starts_with('{')).map(str::to_string).collect::<Vec<_>>();
    assert!(!records(&stdout(&rec)).is_empty(), "syscount emits records with --json:\n{}", stdout(&rec));
    assert_eq!(records(&stdout(&replayed)), records(&stdout(&rec)));
}

#[test]
fn trace_cmd_reads_our_recordings_like_we_do() {
    require!(root, tracefs, uprobes, trace_cmd);
    let dir = tempfile::tempdir().unwrap();
    for version in ["6", "7"] {
        let dat = dir.path().join(format!("v{version}.dat"));
        let d = dat.to_str().unwrap();
        let rec = wasmprobe(&[
            "record",
            "-o",
            d,
            "--file-version",
            version,
            "-e",
            "sched:sched_process_exec",
            "-e",
            "syscalls:sys_enter_openat",
            "-e",
            "syscalls:sys_exit_openat",
            "--",
            "sh",
            "-c",
            "cat /etc/hostname /etc/passwd >/dev/null",
        ]);
        ok(&rec);
        let ours = wasmprobe(&["report", d]);
        ok(&ours);
        let theirs = Command::new("trace-cmd").args(["report", "-i", d]).output().unwrap();
        assert!(theirs.status.success(), "trace-cmd report failed on our v{version} file");
        let (a, b) = (stdout(&ours), stdout(&theirs));
        assert!(a.lines().count() > 5, "{a}");
        for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
            assert_eq!(x, y, "v{version}, line {}", i + 1);
        }
        assert_eq!(a.lines().count(), b.lines().count(), "v{version}");
        // The count it gives (the kernel's, the pages are not decoded) is what the file holds.
        let said = String::from_utf8_lossy(&rec.stderr).into_owned();
        let events = a.lines().filter(|l| !l.starts_with("cpus=")).count();
        assert_eq!(said, format!("wasmprobe: recorded {events} events to {d} (0 lost)\n"), "v{version}");
        assert!(a.contains("sched_process_exec:") && a.contains("filename=/usr/bin/cat"), "{a}");
    }
}

/// `record` without a plugin counts what the kernel overwrote before the readers got to it
/// (its per-CPU stats, exact even where a full sub-buffer had no room to store the count and
/// trace-cmd says only `[EVENTS DROPPED]`), and the events it says it recorded are the file's.
#[test]
fn record_reports_the_events_the_file_says_were_dropped() {
    require!(root, tracefs, trace_cmd);
    let dir = tempfile::tempdir().unwrap();
    let dat = dir.path().join("dropped.dat");
    let d = dat.to_str().unwrap();
    let mut rec = Command::new(env!("CARGO_BIN_EXE_wasmprobe"))
        .args(["record", "-o", d, "-e", "syscalls:sys_enter_getppid"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = rec.id() as i32;
    let enable =
        format!("/sys/kernel/tracing/instances/wasmprobe-{pid}-record/events/syscalls/sys_enter_getppid/enable");
    let signal = |s| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), s).unwrap();
    let t0 = std::time::Instant::now();
    while std::fs::read_to_string(&enable).map_or(true, |s| s.trim() != "1") {
        if t0.elapsed() > std::time::Duration::from_secs(10) {
            // Ended as Ctrl-C ends it, so that it removes what it made.
            signal(nix::sys::signal::Signal::SIGINT);
            let _ = rec.wait();
            panic!("record did not start tracing in 10 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The readers stopped, the buffer (the kernel's default size) overflows: far more events
    // than it holds.
    signal(nix::sys::signal::Signal::SIGSTOP);
    for _ in 0..400_000 {
        // SAFETY: a syscall without arguments or side effects.
        unsafe { libc::syscall(libc::SYS_getppid) };
    }
    signal(nix::sys::signal::Signal::SIGCONT);
    std::thread::sleep(std::time::Duration::from_millis(100));
    signal(nix::sys::signal::Signal::SIGINT);
    let out = rec.wait_with_output().unwrap();
    ok(&out);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    let theirs = Command::new("trace-cmd").args(["report", "-i", d]).output().unwrap();
    assert!(theirs.status.success(), "trace-cmd report failed on our file");
    let text = stdout(&theirs);
    let events = text.lines().filter(|l| l.contains(" sys_enter_getppid:")).count() as u64;
    assert!(text.lines().any(|l| l.starts_with("CPU:") && l.ends_with("EVENTS DROPPED]")), "no drop in the file");
    let lost = said
        .strip_prefix(&format!("wasmprobe: recorded {events} events to {d} ("))
        .and_then(|r| r.strip_suffix(" lost)\n"))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("the file holds {events} events; record said: {said}"));
    // Every call is an event recorded or lost (give or take another process's few getppid).
    assert!((400_000..401_000).contains(&(events + lost)), "{events} recorded + {lost} lost");
}
