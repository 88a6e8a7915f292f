//! The `wasmprobe` binary end to end: exit codes, one-line errors, and the probe commands on
//! this machine's kernel (uprobes; kprobes are ENODEV here).

use std::process::{Command, Output};

use testkit::require;
use tracefs::{dynevent_get_all, instances, resolve_target, uprobe_alloc, Instance, Tracefs};

fn wasmprobe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasmprobe")).args(args).output().expect("run wasmprobe")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn libc_path() -> String {
    testkit::libc_path().to_str().unwrap().to_string()
}

#[test]
fn every_subcommand_has_help() {
    for args in [
        &["--help"][..],
        &["kprobe", "add", "--help"],
        &["kprobe", "remove", "--help"],
        &["uprobe", "add", "--help"],
        &["uprobe", "remove", "--help"],
        &["probes", "--help"],
        &["cleanup", "--help"],
    ] {
        let o = wasmprobe(args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("Usage:"), "{args:?}");
    }
    let o = wasmprobe(&["kprobe", "add", "--maxactive", "3", "vfs_read"]);
    assert!(!o.status.success(), "--maxactive without --ret is refused");
}

#[test]
fn uprobe_add_list_remove_and_errors() {
    let t = require!(root, tracefs, uprobes).tracefs();
    let group = format!("wasmprobe_{}_cli", std::process::id());
    let target = format!("{}:open", libc_path());
    // Registered for removal before anything is created, so a failing assertion leaves nothing.
    struct Guard(Tracefs, String);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = tracefs::dynevent_destroy_all(&self.0, &[], Some(&self.1), true);
        }
    }
    let _guard = Guard(t.clone(), group.clone());

    let o = wasmprobe(&["uprobe", "add", "-s", &group, "-e", "open", &target, "file=+0(%di):ustring"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = wasmprobe(&["uprobe", "add", "-s", &group, "-e", "open_ret", "--ret", &target, "ret=$retval"]);
    assert!(o.status.success(), "{}", stderr(&o));

    let o = wasmprobe(&["probes"]);
    let listing = String::from_utf8_lossy(&o.stdout);
    let off = resolve_target(&target).unwrap().offset;
    let real = std::fs::canonicalize(libc_path()).unwrap();
    assert!(
        listing.contains(&format!("p:{group}/open {}:0x{off:016x} file=+0(%di):ustring", real.display())),
        "{listing}"
    );
    assert!(listing.contains(&format!("r:{group}/open_ret ")), "{listing}");
    let o = wasmprobe(&["probes", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("valid JSON");
    let ours: Vec<_> = json.as_array().unwrap().iter().filter(|e| e["system"] == group.as_str()).collect();
    assert_eq!(ours.len(), 2);
    assert!(ours.iter().any(|e| e["kind"] == "uretprobe" && e["format"] == "ret=$retval"));

    // A bad fetcharg: non-zero exit, one line naming the probe, with the kernel's reason.
    let o = wasmprobe(&["uprobe", "add", "-s", &group, "-e", "bad", &target, "x=%zz"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&format!("{group}/bad")) && err.contains("Invalid register name"), "{err}");

    // Enabled somewhere: remove without --force is EBUSY, with --force works.
    let inst = Instance::create(&t, &format!("wasmprobe-{}-cli", std::process::id())).unwrap();
    inst.event_enable(Some(&group), Some("open")).unwrap();
    let o = wasmprobe(&["uprobe", "remove", "-s", &group, "-e", "open"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("EBUSY"), "{}", stderr(&o));
    let o = wasmprobe(&["uprobe", "remove", "-s", &group, "-e", "open", "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    drop(inst);
    let o = wasmprobe(&["uprobe", "remove", "-s", &group, "-e", "open_ret"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(dynevent_get_all(&t, &[], Some(&group)).unwrap().is_empty());
    let o = wasmprobe(&["uprobe", "remove", "-s", &group, "-e", "open_ret"]);
    assert!(stderr(&o).contains("ENOENT"), "{}", stderr(&o));
}

#[test]
fn kprobe_add_on_a_kernel_without_kprobes_is_a_clear_error() {
    require!(root, tracefs, no_kprobes);
    let o =
        wasmprobe(&["kprobe", "add", "-s", "wasmprobe_cli", "-e", "open", "do_sys_openat2", "file=+0($arg2):ustring"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.starts_with("wasmprobe: error: ") && err.contains("ENODEV") && err.contains("wasmprobe_cli/open"),
        "{err}"
    );
}

/// Held by tests that make leftovers of a dead run and by tests that start a `run`, `record`
/// or `stream` (which sweeps such leftovers away on start), so the two never overlap.
static SWEEPS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A pid no process has (so what is named after it is a leftover of a dead run).
fn dead_pid() -> u32 {
    (4_000_000..u32::MAX).find(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()).unwrap()
}

#[test]
fn cleanup_removes_only_what_dead_runs_of_ours_left() {
    let t = require!(root, tracefs, uprobes).tracefs();
    let _sweeps = SWEEPS.lock().unwrap_or_else(|e| e.into_inner());
    let dead = dead_pid();
    let me = std::process::id();
    let libc = libc_path();
    let off = resolve_target(&format!("{libc}:open")).unwrap().offset;
    let stale_group = format!("wasmprobe_{dead}");
    let live_group = format!("wasmprobe_{me}_live");
    let foreign_group = format!("notwasmprobe_{me}");
    let groups = [stale_group.clone(), live_group.clone(), foreign_group.clone()];
    struct Guard(Tracefs, Vec<String>, Vec<String>);
    impl Drop for Guard {
        fn drop(&mut self) {
            for i in &self.2 {
                if let Ok(i) = Instance::open(&self.0, i) {
                    let _ = i.destroy();
                }
            }
            for g in &self.1 {
                let _ = tracefs::dynevent_destroy_all(&self.0, &[], Some(g), true);
            }
        }
    }
    let stale_inst = format!("wasmprobe-{dead}-run");
    let live_inst = format!("wasmprobe-{me}-live");
    let _guard = Guard(t.clone(), groups.to_vec(), vec![stale_inst.clone(), live_inst.clone()]);
    for g in &groups {
        uprobe_alloc(Some(g), "open", &libc, off, None).unwrap().create(&t).unwrap();
    }
    // The stale instance has the stale probe enabled, as a killed run would leave it.
    std::fs::create_dir(t.file("instances").join(&stale_inst)).unwrap();
    std::fs::create_dir(t.file("instances").join(&live_inst)).unwrap();
    Instance::open(&t, &stale_inst).unwrap().event_enable(Some(&stale_group), None).unwrap();

    let o = wasmprobe(&["cleanup"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(&stale_inst) && out.contains(&format!("{stale_group}/open")), "{out}");
    let left = instances(&t).unwrap();
    assert!(!left.contains(&stale_inst) && left.contains(&live_inst), "{left:?}");
    assert!(dynevent_get_all(&t, &[], Some(&stale_group)).unwrap().is_empty());
    assert_eq!(dynevent_get_all(&t, &[], Some(&live_group)).unwrap().len(), 1, "a live run's probe stays");
    assert_eq!(dynevent_get_all(&t, &[], Some(&foreign_group)).unwrap().len(), 1, "not ours: untouched");
}

#[test]
fn tracefs_is_mounted_when_missing() {
    require!(root, tracefs, unshare);
    // In a private mount namespace (the host keeps its mounts), with tracefs unmounted,
    // wasmprobe finds no tracing directory, mounts one, and works.
    let script = format!(
        "umount /sys/kernel/tracing 2>/dev/null; umount /sys/kernel/debug/tracing 2>/dev/null; \
         grep -q ' tracefs ' /proc/mounts && exit 3; {} probes --json >/dev/null || exit 4; \
         grep -q '^nodev /sys/kernel/tracing tracefs' /proc/mounts || exit 5",
        env!("CARGO_BIN_EXE_wasmprobe")
    );
    let o = Command::new("unshare").args(["-m", "--propagation", "private", "sh", "-c", &script]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn stream_follows_a_command_and_prints_every_event_in_time_order() {
    require!(root, tracefs, raw_syscalls);
    let _sweeps = SWEEPS.lock().unwrap_or_else(|e| e.into_inner());
    // Two processes making syscalls at once, on both CPUs when there are two: the readers
    // of the CPUs hand over their pages separately, and the lines must still be in order.
    let script = "dd if=/dev/zero of=/dev/null bs=1 count=20000 2>/dev/null & \
                  dd if=/dev/zero of=/dev/null bs=1 count=20000 2>/dev/null; wait";
    let o = wasmprobe(&["stream", "-e", "raw_syscalls", "--", "sh", "-c", script]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    let summary = stderr(&o);
    let (events, lost) = summary
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix("wasmprobe: ")?;
            let (e, rest) = rest.split_once(" events, ")?;
            Some((e.parse::<usize>().ok()?, rest.strip_suffix(" lost")?.parse::<u64>().ok()?))
        })
        .unwrap_or_else(|| panic!("no summary line in {summary:?}"));
    assert_eq!(text.lines().count(), events, "one line per event");
    // Each dd: 20000 reads and 20000 writes, each a sys_enter and a sys_exit.
    let dd = text.lines().filter(|l| l.trim_start().starts_with("dd-")).count();
    assert!(dd as u64 + lost >= 160_000, "{dd} dd lines, {lost} lost");
    let mut last = 0.0f64;
    for line in text.lines() {
        let ts: f64 = line
            .split_whitespace()
            .find_map(|w| w.strip_suffix(':').and_then(|t| t.parse().ok()))
            .unwrap_or_else(|| panic!("no timestamp in {line:?}"));
        assert!(ts >= last, "{line:?} comes after a line at {last}");
        last = ts;
    }
}

/// `wasmprobe` is a small front (src/front.rs): `report FILE` is printed by it, everything
/// else by `wasmprobe-full` through exec. Users must not see the seam: the same output, errors
/// and exit status from either binary, and one line when the full one is missing.
#[test]
fn the_front_and_the_full_binary_answer_alike() {
    let full = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_wasmprobe-full")).args(args).output().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("corrupt.dat");
    std::fs::write(&corrupt, b"\x17\x08\x44tracing6\0garbage").unwrap();
    let corrupt = corrupt.to_str().unwrap();
    // Handed on (help, version, options, other commands, bad usage) or printed by the front
    // (report of a missing or corrupt file): stdout, stderr and status the same.
    for args in [
        &["--version"][..],
        &["--help"],
        &["report", "--help"],
        &["report"],
        &["report", "/nonexistent.dat"],
        &["report", corrupt],
        &["report", corrupt, "extra"],
        &["no-such-command"],
    ] {
        let (a, b) = (wasmprobe(args), full(args));
        assert_eq!(a.status.code(), b.status.code(), "{args:?}: {}\n{}", stderr(&a), stderr(&b));
        assert_eq!(String::from_utf8_lossy(&a.stdout), String::from_utf8_lossy(&b.stdout), "{args:?}");
        assert_eq!(stderr(&a), stderr(&b), "{args:?}");
    }
    let o = wasmprobe(&["report", corrupt]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with(&format!("wasmprobe: error: {corrupt} is not a trace.dat")), "{err}");

    // Alone in a directory: `report` still works, anything else says what is missing.
    let alone = dir.path().join("wasmprobe");
    std::fs::copy(env!("CARGO_BIN_EXE_wasmprobe"), &alone).unwrap();
    let o = Command::new(&alone).args(["report", corrupt]).output().unwrap();
    assert_eq!(stderr(&o), err);
    let o = Command::new(&alone).arg("--version").output().unwrap();
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.starts_with(&format!("wasmprobe: error: cannot run {}-full", alone.display())), "{e}");
    assert!(e.contains("No such file or directory"), "{e}");
}
