//! The sandbox holes of issue 9, each shown closed on the live kernel through the binary, as a
//! user meets them: a plugin that sleeps in a host call, SIGTERM while a plugin is stuck,
//! several declarations of one tracepoint, a filter the kernel rejects, a plugin file that is
//! not a file, bytes that are not Wasm, the host-copy limit, explicit budgets, and one name
//! for the plugin in every message. Each asserts the one-line message, the exit status, the
//! time taken and that nothing of the run is left in tracefs.
//!
//! They need root and tracefs (testkit's `require!`: on a developer's machine without them they
//! say so and pass; in CI a missing prerequisite fails the test).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use testkit::require;

/// The tests of this file time what they run: one at a time, so they do not slow each other.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn guest(stem: &str) -> String {
    PathBuf::from(env!("OUT_DIR")).join("guests").join(format!("{stem}.wasm")).to_str().unwrap().to_string()
}

fn wasmprobe(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wasmprobe"));
    c.args(args)
        .env("WASMPROBE_CACHE", std::env::temp_dir().join("wasmprobe-test-cache"))
        // With RUST_BACKTRACE the host prints wasmtime's backtrace first: not what users see.
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Runs to the end; returns the output, the time taken and the run's pid.
fn run(args: &[&str]) -> (Output, Duration, u32) {
    let t = Instant::now();
    let child = wasmprobe(args).spawn().unwrap();
    let pid = child.id();
    let o = child.wait_with_output().unwrap();
    (o, t.elapsed(), pid)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a failed run: exit 1, exactly one line on stderr, equal to `want`, nothing left.
fn assert_one_line(o: &Output, pid: u32, want: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "one line on stderr, got: {err}");
    assert_eq!(err.trim_end(), want);
    assert_eq!(testkit::leftovers(pid), Vec::<String>::new());
}

#[test]
fn a_plugin_that_sleeps_is_stopped_at_once_in_every_call() {
    require!(root, tracefs, raw_syscalls);
    let _serial = serial();
    let sleeper = guest("hostile_sleep");
    for at in ["init", "event", "finish"] {
        let (o, took, pid) = run(&["run", &sleeper, "--arg", &format!("at={at}"), "--", "cat", "/etc/hostname"]);
        let call = if at == "event" { "on-batch" } else { at };
        assert_one_line(
            &o,
            pid,
            &format!(
                "wasmprobe: error: plugin hostile_sleep: trapped in {call}: tried to wait 3600s on a timer \
                 (wasi:clocks/monotonic-clock subscribe-duration): plugins may not sleep"
            ),
        );
        assert!(took < Duration::from_secs(10), "{at}: took {took:?}");
    }
    // A zero-length sleep (how a non-blocking poll is written) is not refused: the plugin's
    // init makes one before its plan, and with secs=0 every sleep is one.
    let (o, _, pid) = run(&["run", &sleeper, "--arg", "secs=0", "--", "cat", "/etc/hostname"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(testkit::leftovers(pid), Vec::<String>::new());
}

/// Starts `args`, waits until the run has its instance and `settle` more, sends SIGTERM, and
/// returns the output and the time from the signal to the exit.
fn sigterm_after(args: &[&str], settle: Duration) -> (Output, Duration, u32) {
    let child = wasmprobe(args).spawn().unwrap();
    let pid = child.id();
    let start = Instant::now();
    while testkit::leftovers(pid).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(60), "the run never made its instance");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(settle);
    let t = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    // Time the exit itself: the traced command may hold the output pipes open for longer.
    let mut child = child;
    while child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = t.elapsed();
    (child.wait_with_output().unwrap(), took, pid)
}

#[test]
fn sigterm_ends_a_run_within_a_second_whatever_its_plugin_does() {
    require!(root, tracefs, raw_syscalls);
    let _serial = serial();
    let looper = guest("hostile_loop");
    let cmd = ["--", "sh", "-c", "cat /etc/hostname; sleep 2"];
    // In a long batch (spinning), and calling the host in an endless loop: budgets of a minute.
    for (how, call, grace) in [("spin", "on-batch", "300ms"), ("host", "on-batch", "300ms")] {
        let how_arg = format!("how={how}");
        let args: Vec<&str> =
            ["run", &looper, "--arg", &how_arg, "--cpu-budget", "60s"].into_iter().chain(cmd).collect();
        let (o, took, pid) = sigterm_after(&args, Duration::from_millis(500));
        assert_one_line(
            &o,
            pid,
            &format!(
                "wasmprobe: error: plugin hostile_loop: interrupted in {call}: the run was asked to stop and it did \
                 not return within {grace}"
            ),
        );
        assert!(took < Duration::from_secs(1), "{how}: SIGTERM to exit took {took:?}");
    }
    // In finish, which a stop gives 400 ms.
    let args: Vec<&str> =
        ["run", &looper, "--arg", "at=finish", "--setup-budget", "60s", "--", "sleep", "5"].into_iter().collect();
    let (o, took, pid) = sigterm_after(&args, Duration::from_millis(300));
    assert_one_line(
        &o,
        pid,
        "wasmprobe: error: plugin hostile_loop: interrupted in finish: the run was asked to stop and it did not \
         return within 400ms",
    );
    assert!(took < Duration::from_secs(1), "finish: SIGTERM to exit took {took:?}");
}

/// A C program making exactly 100 getppid and 50 getpid system calls, built once.
fn syscall_program() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let src = dir.join("known_syscalls.c");
    let bin = dir.join("known_syscalls");
    std::fs::write(
        &src,
        "#include <unistd.h>\n#include <sys/syscall.h>\nint main(void) {\n\
         for (int i = 0; i < 100; i++) syscall(SYS_getppid);\n\
         for (int i = 0; i < 50; i++) syscall(SYS_getpid);\nreturn 0;\n}\n",
    )
    .unwrap();
    let st = Command::new("cc").arg("-O2").arg("-o").arg(&bin).arg(&src).status().expect("a C compiler (cc)");
    assert!(st.success());
    bin
}

fn counts(o: &Output) -> Vec<u64> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("probe"))
        .map(|l| l.split_once(' ').unwrap().1.parse().unwrap())
        .collect()
}

#[test]
fn each_declaration_of_one_tracepoint_gets_what_passes_its_own_filter() {
    require!(root, tracefs, raw_syscalls);
    let _serial = serial();
    let prog = syscall_program();
    let prog = prog.to_str().unwrap();
    let (getppid, getpid) = (libc::SYS_getppid, libc::SYS_getpid);
    // Four declarations of raw_syscalls:sys_enter: two filters, none, and the first filter
    // again with projected fields.
    let filters = format!("filters=id == {getppid};id == {getpid};;+id == {getppid}");
    let (o, _, pid) = run(&["run", &guest("hostile_dupes"), "--arg", &filters, "--", prog]);
    assert!(o.status.success(), "{}", stderr(&o));
    let c = counts(&o);
    assert_eq!(c.len(), 4, "{c:?}");
    assert_eq!((c[0], c[1], c[3]), (100, 50, 100), "{c:?}");
    assert!(c[2] >= 150, "the unfiltered declaration sees every system call: {c:?}");
    assert_eq!(testkit::leftovers(pid), Vec::<String>::new());

    // 64 unfiltered declarations of one event: each gets every event (no loss by sharing).
    let (o, _, _) = run(&["run", &guest("hostile_dupes"), "--arg", "n=64", "--", prog]);
    let c = counts(&o);
    assert_eq!(c.len(), 64);
    assert!(c[0] >= 150 && c.iter().all(|&n| n == c[0]), "{c:?}");

    // A filter the host cannot evaluate per declaration refuses the plan, before any event.
    let (o, _, pid) = run(&["run", &guest("hostile_dupes"), "--arg", "filters=id == 1;COMM == \"x\"", "--", "true"]);
    assert_one_line(
        &o,
        pid,
        "wasmprobe: error: hostile_dupes: cannot arm the probes: probe probe1: tracepoint \
         raw_syscalls:sys_enter is declared more than once, so each declaration's filter is applied by \
         wasmprobe, which cannot apply \"COMM == \\\"x\\\"\": COMM (the current task's name) is not in the record",
    );
}

#[test]
fn a_filter_the_kernel_rejects_is_reported_with_the_kernels_reason() {
    require!(root, tracefs, raw_syscalls);
    let _serial = serial();
    let (o, took, pid) = run(&["run", &guest("hostile_dupes"), "--arg", "filters=id >> /etc/passwd", "--", "true"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "wasmprobe: error: hostile_dupes: cannot arm the probes: probe probe0: event filter \"id >> /etc/passwd\" \
             for raw_syscalls:sys_enter"
        ),
        "{err}"
    );
    assert!(err.contains("(EINVAL"), "{err}");
    assert!(!err.contains("permission denied") && !err.contains("EPERM"), "not a privilege problem: {err}");
    assert!(err.contains("kernel error_log: event filter parse error: "), "the kernel's reason: {err}");
    assert!(took < Duration::from_secs(10));
    assert_eq!(testkit::leftovers(pid), Vec::<String>::new());

    let (o, _, _) = run(&["run", &guest("hostile_dupes"), "--arg", "filters=nosuch == 1", "--", "true"]);
    assert!(stderr(&o).contains("Field not found"), "{}", stderr(&o));
}

#[test]
fn plugin_files_are_read_with_a_limit_and_must_be_regular() {
    require!(root, tracefs, raw_syscalls);
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let zero = dir.path().join("zero.wasm");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let fifo = dir.path().join("fifo.wasm");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let zpack = dir.path().join("zero.wpk");
    std::os::unix::fs::symlink("/dev/zero", &zpack).unwrap();
    let big = dir.path().join("big.wasm");
    std::fs::write(&big, vec![0u8; 3 << 20]).unwrap();

    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec![zero.display().to_string()],
            format!(
                "plugin zero: cannot load: cannot read {}: not a regular file (a character device)",
                zero.display()
            ),
        ),
        (
            vec![fifo.display().to_string()],
            format!("plugin fifo: cannot load: cannot read {}: not a regular file (a FIFO)", fifo.display()),
        ),
        (vec![zpack.display().to_string()], format!("{}: not a regular file (a character device)", zpack.display())),
        (
            vec![big.display().to_string(), "--max-plugin-mib".into(), "1".into()],
            format!(
                "plugin big: cannot load: cannot read {}: 3145728 bytes is over the limit of 1 MiB (--max-plugin-mib)",
                big.display()
            ),
        ),
    ];
    for (args, want) in cases {
        let mut full = vec!["run".to_string()];
        full.extend(args);
        full.extend(["--".to_string(), "true".to_string()]);
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        let (o, took, pid) = run(&full);
        assert_one_line(&o, pid, &format!("wasmprobe: error: {want}"));
        assert!(took < Duration::from_secs(5), "{want}: took {took:?}");
    }
}

#[test]
fn load_errors_and_host_copy_limits_are_one_readable_line() {
    require!(root, tracefs, raw_syscalls);
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // Bytes that are not Wasm: wasmparser's report lists them one per line.
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm\x0d\0\x01\0this is not a component at all").unwrap();
    let (o, _, pid) = run(&["run", junk.to_str().unwrap(), "--", "true"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("wasmprobe: error: plugin junk: cannot load: "), "{err}");
    assert_eq!(testkit::leftovers(pid), Vec::<String>::new());

    // One print of 130 MiB: past wasmtime's per-call copy limit.
    let (o, _, pid) = run(&[
        "run",
        &guest("hostile_stdout"),
        "--memory-mib",
        "512",
        "--cpu-budget",
        "20s",
        "--arg",
        "print_mb=130",
        "--",
        "cat",
        "/etc/hostname",
    ]);
    assert_one_line(
        &o,
        pid,
        "wasmprobe: error: plugin hostile_stdout: trapped in on-batch: copied more than 128 MiB between host and \
         plugin in one call",
    );
}

#[test]
fn budgets_are_flags_and_messages_name_the_plugin_one_way() {
    require!(root, tracefs, raw_syscalls);
    let _serial = serial();
    let looper = guest("hostile_loop");
    let (o, took, pid) = run(&["run", &looper, "--arg", "at=init", "--setup-budget", "200ms", "--", "true"]);
    assert_one_line(&o, pid, "wasmprobe: error: plugin hostile_loop: exceeded its CPU budget of 200ms in init");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let (o, _, pid) = run(&["run", &looper, "--arg", "at=finish", "--setup-budget", "150ms", "--", "true"]);
    assert_one_line(&o, pid, "wasmprobe: error: plugin hostile_loop: exceeded its CPU budget of 150ms in finish");

    // A refused plan names the plugin as runtime errors do: by its name, not its path.
    let (o, _, pid) =
        run(&["run", &guest("hostile_plan"), "--arg", "case=kprobe", "--allow", "tracepoint", "--", "true"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.starts_with("wasmprobe: error: plugin hostile_plan: "), "{err}");
    assert!(!err.contains(env!("OUT_DIR")), "no path in the message: {err}");
    assert_eq!(testkit::leftovers(pid), Vec::<String>::new());
}
