//! exec-open with real kprobes: the man page's `open`/`openret` probes on do_sys_openat2.
//! Ignored on this machine (no kprobe events); the VM tier runs it inside Debian's 6.12.

use std::process::Command;

use testkit::require;

#[test]
#[ignore = "needs kprobe_events; run by the VM tier (tests/run-all.sh)"]
fn exec_open_uses_kprobes_where_the_kernel_has_them() {
    require!(root, tracefs, kprobes);
    // The host root is read-only in the VM: compile cache in the guest's /tmp. The guest CPU is
    // emulated (TCG), tens of times slower than this machine's: the default 100 ms budget per
    // batch is for real CPUs.
    let run = |cmd: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_wasmprobe"))
            .args(["run", "exec-open", "--cpu-budget", "10s", "--"])
            .args(cmd)
            .env("WASMPROBE_CACHE", "/tmp/wasmprobe-cache")
            .output()
            .unwrap()
    };
    let o = run(&["cat", "/etc/hostname"]);
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(!err.contains("no kprobes"), "took the fallback although kprobes exist: {err}");
    let open = out.lines().find(|l| l.ends_with(": open file='/etc/hostname'")).expect(&out);
    let pid = open.split('-').next().unwrap();
    assert!(open.starts_with(&format!("{pid}-cat: ")), "{open}");
    assert!(out.lines().any(|l| l.starts_with(&format!("{pid}-cat: open ret=")) && !l.contains("ret=-")), "{out}");
    let failed = run(&["cat", "/nonexistent"]);
    let out = String::from_utf8_lossy(&failed.stdout);
    let err = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "cat's exit code is passed on:\n{out}\n{err}");
    assert!(out.contains("open file='/nonexistent'") && out.contains("open ret=-2"), "{out}\n{err}");
    let k = std::fs::read_to_string("/sys/kernel/tracing/kprobe_events").unwrap();
    assert!(!k.contains("wasmprobe_"), "probes left behind:\n{k}");
}
