// Part of tests/plugin_attacks.rs (included there, so one test crate and one scope): the
// attacks on a live run, and the helpers that run the binary and measure it.

// ------------------------------------------------------------------------------------------
// Live (root and tracefs)
// ------------------------------------------------------------------------------------------

const TRACEFS: &str = "/sys/kernel/tracing";

/// Runs the wasmprobe binary (no backtraces); returns its exit code, stdout, stderr, its pid
/// and its peak RSS in KiB.
fn wasmprobe(args: &[&str]) -> (i32, String, String, u32, u64) {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let peak_file = dir.path().join("peak");
    #[allow(clippy::zombie_processes)] // reaped by wait4 in wait_rusage
    let child = measured(&peak_file, Path::new(env!("CARGO_BIN_EXE_wasmprobe")))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env("WASMPROBE_CACHE", std::env::temp_dir().join("wasmprobe-test-cache"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let pid = measured_pid(child.id());
    let (code, _) = wait_rusage(child.id() as i32);
    let peak = measured_peak(&peak_file);
    (code, std::fs::read_to_string(out).unwrap(), std::fs::read_to_string(err).unwrap(), pid, peak)
}

/// The line of ours on stderr, the lines that name what start-up cleanup removed aside.
fn error_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| !l.starts_with("wasmprobe: removed ")).collect()
}

/// Nothing named after the finished wasmprobe process `pid` is left in the kernel.
fn assert_kernel_clean(pid: u32) {
    for f in ["uprobe_events", "dynamic_events"] {
        let s = std::fs::read_to_string(Path::new(TRACEFS).join(f)).unwrap_or_default();
        assert!(!s.lines().any(|l| l.contains(&format!(":wasmprobe_{pid}_"))), "{f} still has probes of {pid}:\n{s}");
    }
    let left: Vec<String> = std::fs::read_dir(Path::new(TRACEFS).join("instances"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&format!("wasmprobe-{pid}-")))
        .collect();
    assert!(left.is_empty(), "instances of {pid} left: {left:?}");
}

/// A uprobe of somebody else's (another tool's) in a group of its own, removed on drop.
struct Victim {
    group: String,
}

impl Victim {
    fn new() -> Victim {
        let group = format!("redteam_{}", std::process::id());
        let libc = std::fs::read_to_string("/proc/self/maps")
            .unwrap()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .find(|p| p.contains("/libc.so"))
            .unwrap()
            .to_string();
        let (code, _, err, _, _) =
            wasmprobe(&["uprobe", "add", "--system", &group, "--event", "victim", &format!("{libc}:getppid")]);
        assert_eq!(code, 0, "{err}");
        Victim { group }
    }

    fn remove(&self) -> Result<(), String> {
        let (code, _, err, _, _) = wasmprobe(&["uprobe", "remove", "--system", &self.group, "--event", "victim"]);
        if code == 0 {
            Ok(())
        } else {
            Err(err)
        }
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

/// Under `--allow tracepoint`, a plan naming somebody's dynamic event (here a uprobe another
/// tool made; on a kprobe machine, a kprobe's data) as a tracepoint: before this was refused,
/// the run read the victim's events and kept its owner from removing it (EBUSY) until the
/// run ended. Now refused before anything is written, in one line; the victim stays
/// removable.
#[test]
fn a_tracepoint_on_somebodys_dynamic_event_is_refused_before_anything_is_written() {
    require!(root, tracefs, uprobes);
    let victim = Victim::new();
    let target = format!("{}.victim", victim.group);
    let (code, _, err, pid, _) = wasmprobe(&[
        "run",
        guest_file("hostile_sneak").to_str().unwrap(),
        "--arg",
        "case=tracepoint-victim",
        "--arg",
        &format!("victim={target}"),
        "--allow",
        "tracepoint",
        "--",
        "true",
    ]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        error_lines(&err),
        [format!(
            "wasmprobe: error: plugin hostile_sneak: its probe plan was refused: probe \"t\": target {g}:victim: {g} \
             is a group of dynamic events (kprobes, uprobes, eprobes or synthetic events somebody made), not a \
             tracepoint",
            g = victim.group
        )]
    );
    assert_kernel_clean(pid);
    victim.remove().unwrap();
}

/// `inspect` shows what the plugin declared escaped: a target or filter with terminal escape
/// sequences (SGR 8 hides everything after it, the verdict included) reaches the terminal
/// as text, not as control bytes.
#[test]
fn inspect_prints_no_control_characters_of_the_plugin() {
    require!(root, tracefs, uprobes);
    for (case, shown) in [
        ("escape", "  tracepoint t                raw_syscalls:sys_enter\\u{1b}[8m   [allowed]"),
        (
            "escape-filter",
            "  tracepoint t                raw_syscalls:sys_enter  if id == 1\\u{1b}[2K\\u{1b}[8m  [allowed]",
        ),
    ] {
        let (code, out, err, _, _) =
            wasmprobe(&["inspect", guest_file("hostile_sneak").to_str().unwrap(), "--arg", &format!("case={case}")]);
        assert_eq!(code, 0, "{err}");
        assert!(!out.contains('\u{1b}'), "{case}: raw ESC in {out:?}");
        assert!(out.lines().any(|l| l == shown), "{case}: {out}");
        assert!(out.lines().last().unwrap().starts_with("plan: refused: probe \"t\": "), "{case}: {out}");
    }
}

/// A uprobe fetcharg naming a kernel symbol is refused by the kernel ("Symbol is not
/// available with uprobe"), in one line that quotes the kernel's error_log, and nothing is
/// left behind.
#[test]
fn a_kernel_symbol_in_uprobe_fetchargs_is_refused_by_the_kernel() {
    require!(root, tracefs, uprobes);
    let (code, _, err, pid, _) = wasmprobe(&[
        "run",
        guest_file("hostile_sneak").to_str().unwrap(),
        "--arg",
        "case=uprobe-ksym",
        "--allow",
        "uprobe,tracepoint",
        "--",
        "true",
    ]);
    assert_eq!(code, 1, "{err}");
    let lines = error_lines(&err);
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].starts_with("wasmprobe: error: hostile_sneak: cannot arm the probes: probe u: "), "{err}");
    assert!(lines[0].contains("trace_uprobe: Symbol is not available with uprobe"), "{err}");
    assert_kernel_clean(pid);
}

/// A plan of 64 uprobes on a 200 MB library (libLLVM of the Rust toolchain): the host read
/// and parsed the whole file once per probe while arming, outside any budget (40 s in a debug
/// build), and a SIGTERM meanwhile was only seen once every probe was armed (31 s later). Now
/// each file is resolved once and arming hears the stop between probes.
#[test]
fn sigterm_while_arming_many_uprobes_on_a_huge_library_ends_the_run_within_a_second() {
    require!(root, tracefs, uprobes);
    let sysroot = Command::new("rustc").args(["--print", "sysroot"]).output().unwrap();
    let lib = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim()).join("lib");
    let Some(llvm) = std::fs::read_dir(&lib)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("libLLVM"))
    else {
        testkit::missing_prerequisite("arming_sigterm", &format!("needs libLLVM in {}", lib.display()));
        return;
    };
    #[allow(clippy::zombie_processes)] // reaped by wait4 in wait_rusage
    let child = Command::new(env!("CARGO_BIN_EXE_wasmprobe"))
        .args([
            "run",
            guest_file("hostile_sneak").to_str().unwrap(),
            "--arg",
            "case=big-elf",
            "--arg",
            &format!("path={}", llvm.display()),
            "--arg",
            "sym=FSE_NCountWriteBound",
            "--allow",
            "uprobe",
            "--",
            "sleep",
            "30",
        ])
        .env_remove("RUST_BACKTRACE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let pid = child.id();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let t = Instant::now();
    let (code, _) = wait_rusage(pid as i32);
    assert!(t.elapsed() < Duration::from_secs(1), "ended {:?} after SIGTERM (status {code})", t.elapsed());
    assert_kernel_clean(pid);
}

/// `kernel.supports` and `kernel.has-symbol` asked about ever new names of MiBs in `init`:
/// a live run remembers answers for its recording, and kept every name (1 GB in the one
/// second of init). Now it keeps the known features and the symbols that exist only.
#[test]
fn made_up_feature_and_symbol_names_cost_the_host_nothing_to_keep() {
    require!(root, tracefs, uprobes);
    for case in ["supports-many", "symbol-huge"] {
        let t = Instant::now();
        let (code, _, err, pid, peak_kib) = wasmprobe(&[
            "run",
            guest_file("hostile_hostcalls").to_str().unwrap(),
            "--arg",
            &format!("case={case}"),
            "--",
            "true",
        ]);
        assert_eq!(code, 1, "{err}");
        assert_eq!(
            error_lines(&err),
            ["wasmprobe: error: plugin hostile_hostcalls: exceeded its CPU budget of 1s in init"],
            "{case}"
        );
        assert!(t.elapsed() < Duration::from_secs(10), "{case}: {:?}", t.elapsed());
        assert!(peak_kib < 120 << 10, "{case}: peak RSS {peak_kib} KiB");
        assert_kernel_clean(pid);
    }
}

/// A plugin's print, log, WASI stdio, returned error and panic with newlines and terminal
/// escapes: before, `log("fine\nwasmprobe: error: forged")` printed a second stderr line
/// indistinguishable from ours, an error returned from init printed two lines, and escape
/// sequences reached the terminal (SGR 8 hides what follows, OSC 0 sets the title). Now
/// every control character is shown escaped, each print stays one line, and a plugin's
/// error is one line of at most 1 KiB of its text.
#[test]
fn a_plugin_cannot_forge_our_lines_or_drive_the_terminal() {
    require!(root, tracefs, uprobes);
    let plugin = guest_file("hostile_hostcalls");
    let plugin = plugin.to_str().unwrap();
    let (code, out, err, pid, _) =
        wasmprobe(&["run", plugin, "--arg", "case=forge", "--duration", "500ms", "--", "true"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "line\\nwasmprobe: error: forged on stdout",
            "\\u{1b}[2K\\r\\u{1b}]0;title set by the plugin\\u{7}\\u{1b}[8mhidden"
        ]
    );
    assert_eq!(
        error_lines(&err),
        [
            "wasmprobe: hostile_hostcalls: info: fine\\nwasmprobe: error: forged by the plugin",
            "[hostile_hostcalls] wasi stderr\\u{1b}[8m"
        ]
    );
    assert_kernel_clean(pid);

    let (code, out, err, _, _) = wasmprobe(&["run", plugin, "--arg", "case=err-forge", "--", "true"]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert_eq!(
        error_lines(&err),
        ["wasmprobe: error: plugin hostile_hostcalls: init failed: bad args\\nwasmprobe: error: forged by the \
          plugin\\u{1b}[8m"]
    );

    let (code, _, err, _, _) = wasmprobe(&["run", plugin, "--arg", "case=panic-forge", "--", "true"]);
    assert_eq!(code, 1, "{err}");
    assert!(!err.contains('\u{1b}'), "{err:?}");
    assert!(err.lines().all(|l| l.starts_with("[hostile_hostcalls] ") || l.starts_with("wasmprobe: ")), "{err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("wasmprobe: error: ")).count(), 1, "{err}");

    let (code, _, err, _, _) =
        wasmprobe(&["run", plugin, "--arg", "case=err-huge", "--memory-mib", "256", "--", "true"]);
    assert_eq!(code, 1, "{err}");
    let lines = error_lines(&err);
    assert_eq!(lines.len(), 1, "{} bytes of stderr", err.len());
    assert_eq!(
        lines[0],
        format!(
            "wasmprobe: error: plugin hostile_hostcalls: init failed: {}... (33554432 bytes in all)",
            "e".repeat(1024)
        )
    );
}

// ------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------

/// The built guest component `stem.wasm`.
fn guest_file(stem: &str) -> PathBuf {
    match guest_path(stem) {
        PluginSource::Path(p) => p,
        other => panic!("{other:?}"),
    }
}

/// Runs the ignored test `name` of this binary alone in a child process; returns whether it
/// passed, its output, and its peak resident memory in KiB (from wait4's rusage).
#[allow(clippy::zombie_processes)] // reaped by wait4 in wait_rusage, which std cannot do
fn in_child(name: &str) -> (bool, String, u64) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("out");
    let file = std::fs::File::create(&log).unwrap();
    let peak_file = dir.path().join("peak");
    let child = measured(&peak_file, &std::env::current_exe().unwrap())
        .args(["--exact", name, "--ignored", "--nocapture", "--test-threads=1"])
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    let (status, _) = wait_rusage(child.id() as i32);
    let peak_kib = measured_peak(&peak_file);
    let out = std::fs::read_to_string(&log).unwrap();
    (status == 0, out, peak_kib)
}

/// `program` run under GNU time, which writes the program's peak RSS (KiB) to `peak_file`.
/// Measuring from this process would not do: a child it spawns starts with this process's
/// (large, test-harness) RSS as its high-water mark, since the kernel carries the spawning
/// process's peak across the exec into the child's rusage; `time` is small and forks.
fn measured(peak_file: &Path, program: &Path) -> Command {
    let mut c = Command::new("/usr/bin/time");
    c.args(["-f", "%M", "-o"]).arg(peak_file).arg(program);
    c
}

/// The pid of the program `time` (pid `time_pid`) runs, as soon as it has forked it.
fn measured_pid(time_pid: u32) -> u32 {
    let children = format!("/proc/{time_pid}/task/{time_pid}/children");
    let start = Instant::now();
    loop {
        if let Some(pid) =
            std::fs::read_to_string(&children).ok().and_then(|c| c.split_whitespace().next()?.parse().ok())
        {
            return pid;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "time never started its program");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The peak RSS (KiB) `time` wrote.
fn measured_peak(peak_file: &Path) -> u64 {
    let text = std::fs::read_to_string(peak_file).unwrap();
    text.lines().filter_map(|l| l.trim().parse().ok()).next_back().unwrap_or_else(|| panic!("time wrote {text:?}"))
}

/// Waits for `pid`; its exit status and peak RSS in KiB.
fn wait_rusage(pid: i32) -> (i32, u64) {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: nix::libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 writes only into the two out-parameters, which live across the call.
    let r = unsafe { nix::libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
    let code = if nix::libc::WIFEXITED(status) { nix::libc::WEXITSTATUS(status) } else { -1 };
    (code, usage.ru_maxrss as u64)
}
