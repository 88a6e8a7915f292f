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

/// A kprobe on do_sys_openat2 with the kernel stack (the `stacktrace` trigger on a kprobe
/// event of our instance): the stack goes through `__x64_sys_openat`, by the host's symbols when
/// it names them and by the guest's /proc/kallsyms in any case.
#[test]
#[ignore = "needs kprobe_events; run by the VM tier (tests/run-all.sh)"]
fn a_kprobe_with_a_kernel_stack_symbolizes_through_the_syscall() {
    require!(root, tracefs, kprobes);
    let plugin = std::path::PathBuf::from(env!("OUT_DIR")).join("guests").join("stackdump.wasm");
    let o = Command::new(env!("CARGO_BIN_EXE_wasmprobe"))
        .arg("run")
        .arg(&plugin)
        .args(["--arg", "kind=kprobe", "--arg", "target=do_sys_openat2", "--arg", "stacks=kernel"])
        .args(["--cpu-budget", "10s", "--setup-budget", "60s", "--", "cat", "/etc/hostname"])
        .env("WASMPROBE_CACHE", "/tmp/wasmprobe-cache")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(!err.contains("could not be matched"), "{err}");
    let mut syms: Vec<(u64, String)> = std::fs::read_to_string("/proc/kallsyms")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && matches!(f[1], "t" | "T")).then(|| (u64::from_str_radix(f[0], 16).ok(), f[2].to_string()))
        })
        .filter_map(|(a, n)| Some((a?, n)))
        .collect();
    syms.sort();
    let name_of = |a: u64| {
        let i = syms.partition_point(|(s, _)| *s <= a);
        if i > 0 {
            syms[i - 1].1.clone()
        } else {
            String::new()
        }
    };
    let mut events = 0;
    let mut through = 0;
    let mut current: Vec<String> = Vec::new();
    for l in out.lines().chain(std::iter::once("event end")) {
        if l.starts_with("event ") {
            if current.iter().any(|n| n == "__x64_sys_openat") {
                through += 1;
            }
            events += 1;
            current.clear();
        } else if let Some(rest) = l.strip_prefix("  k ") {
            let (addr, sym) = rest.split_once(' ').unwrap();
            let addr = u64::from_str_radix(addr.trim_start_matches("0x"), 16).unwrap();
            let by_kallsyms = name_of(addr);
            if sym != "?" {
                assert_eq!(sym.split('+').next().unwrap(), by_kallsyms, "{out}");
            }
            current.push(by_kallsyms);
        }
    }
    assert!(events > 1 && through > 0, "no stack through __x64_sys_openat:\n{out}");
    let k = std::fs::read_to_string("/sys/kernel/tracing/kprobe_events").unwrap();
    assert!(!k.contains("wasmprobe_"), "probes left behind:\n{k}");
}
