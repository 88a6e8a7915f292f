//! However a run ends, nothing of it stays in the kernel: a plugin stopped by its CPU budget, its
//! memory cap or a trap; SIGTERM or SIGINT in the middle of a system-wide run.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::require;

fn guest(stem: &str) -> PathBuf {
    PathBuf::from(env!("OUT_DIR")).join("guests").join(format!("{stem}.wasm"))
}

#[test]
fn a_plugin_stopped_mid_run_is_named_and_the_kernel_is_left_clean() {
    require!(root, tracefs, uprobes);
    for (stem, why) in [("hostile_loop", "CPU budget"), ("hostile_memory", "memory"), ("hostile_trap", "trap")] {
        let child = Command::new(env!("CARGO_BIN_EXE_wasmprobe"))
            .args(["run", guest(stem).to_str().unwrap(), "--cpu-budget", "50ms", "--memory-mib", "16", "--"])
            .args(["sh", "-c", "for i in 1 2 3 4 5; do cat /etc/hostname; done >/dev/null"])
            .env("WASMPROBE_CACHE", std::env::temp_dir().join("wasmprobe-test-cache"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{stem}: {err}");
        assert!(err.contains(stem), "{stem}: the message names the plugin: {err}");
        assert!(err.to_lowercase().contains(&why.to_lowercase()), "{stem}: the message says why ({why}): {err}");
        assert_eq!(testkit::leftovers(pid), Vec::<String>::new(), "{stem}");
    }
}

fn signal_mid_run(sig: nix::sys::signal::Signal) {
    let child = Command::new(env!("CARGO_BIN_EXE_wasmprobe"))
        .args(["run", "exec-open"])
        .env("WASMPROBE_CACHE", std::env::temp_dir().join("wasmprobe-test-cache"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait until its probes are armed: then it is tracing.
    let start = Instant::now();
    while testkit::leftovers(pid).iter().filter(|l| !l.starts_with("instance")).count() < 4 {
        assert!(start.elapsed() < Duration::from_secs(60), "run never armed its probes");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{sig}: a signalled run ends cleanly: {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(testkit::leftovers(pid), Vec::<String>::new(), "{sig}");
}

#[test]
fn sigterm_ends_a_run_cleanly() {
    require!(root, tracefs, uprobes);
    signal_mid_run(nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn sigint_ends_a_run_cleanly() {
    require!(root, tracefs, uprobes);
    signal_mid_run(nix::sys::signal::Signal::SIGINT);
}
