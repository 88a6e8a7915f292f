//! kprobes and kretprobes against a kernel that has them: Debian's 6.12 under QEMU, booted by
//! `tests/vm/run-in-vm.sh` from `tests/run-all.sh`. This machine's kernel has no kprobe
//! events, so here the tests are ignored; the VM tier runs them with `--include-ignored`.
//!
//! The man page's two probes, maxactive, destroy with and without force, an unknown symbol, a
//! bad fetcharg (error_log text checked), a duplicate name, names derived from `func+offset`.

use std::process::Command;

use testkit::{poll_text, require, ProbeGuard};
use tracefs::{
    dynevent_get, dynevent_get_all, eprobe_alloc, kprobe_alloc, kprobe_destroy, kprobe_raw, kretprobe_alloc,
    kretprobe_raw, DynEventType, Errno, Instance,
};
use wasmprobe::owned::{group_name, instance_name};

const OPEN_ARGS: &str = "file=+0($arg2):ustring flags=+0($arg3):x64 mode=+8($arg3):x64";

#[test]
#[ignore = "needs kprobe_events; run by the VM tier (tests/run-all.sh)"]
fn man_page_probes_trace_a_child_command() {
    let t = require!(root, tracefs, kprobes).tracefs();
    let group = group_name("my_kprobes");
    let mut probes = ProbeGuard::new(&t);
    probes.adopt(kprobe_alloc(Some(&group), Some("open"), Some("do_sys_openat2"), None).unwrap());
    probes.adopt(kprobe_alloc(Some(&group), Some("openret"), Some("do_sys_openat2"), None).unwrap());
    kprobe_raw(&t, Some(&group), Some("open"), Some("do_sys_openat2"), Some(OPEN_ARGS)).unwrap();
    kretprobe_raw(&t, Some(&group), Some("openret"), Some("do_sys_openat2"), Some("ret=%ax")).unwrap();

    let open = dynevent_get(&t, DynEventType::Kprobe, Some(&group), "open").unwrap().expect("open listed");
    assert_eq!(open.address, "do_sys_openat2");
    assert_eq!(open.format, OPEN_ARGS);
    let ret = dynevent_get(&t, DynEventType::Kretprobe, Some(&group), "openret").unwrap().expect("openret listed");
    // The kernel fills in its default maxactive and lists it (`r10:` with 2 CPUs).
    assert!(ret.maxactive.is_some(), "{ret:?}");
    assert_eq!(ret.format, "ret=%ax");

    let inst = Instance::create(&t, &instance_name("exec_open")).unwrap();
    inst.event_enable(Some(&group), None).unwrap();
    let out = Command::new("cat").arg("/etc/hostname").output().expect("cat");
    assert!(out.status.success());
    let text = poll_text(
        || inst.read_file("trace").unwrap(),
        |t| t.contains("file=\"/etc/hostname\"") && t.contains("openret:"),
        100,
    );
    assert!(
        text.lines().any(|l| l.contains("cat-")
            && l.contains(" open: (do_sys_openat2")
            && l.contains("file=\"/etc/hostname\"")),
        "{text}"
    );
    assert!(text.lines().any(|l| l.contains("cat-") && l.contains(" openret: (") && l.contains("ret=0x")), "{text}");
    drop(inst);
    kprobe_destroy(&t, Some(&group), Some("openret"), Some("do_sys_openat2"), None, false).unwrap();
    kprobe_destroy(&t, Some(&group), Some("open"), Some("do_sys_openat2"), Some(OPEN_ARGS), false).unwrap();
    assert!(dynevent_get_all(&t, &[], Some(&group)).unwrap().is_empty());
}

#[test]
#[ignore = "needs kprobe_events; run by the VM tier (tests/run-all.sh)"]
fn kretprobe_maxactive_is_accepted_and_listed() {
    let t = require!(root, tracefs, kprobes).tracefs();
    let group = group_name("maxact");
    let mut probes = ProbeGuard::new(&t);
    let ev = kretprobe_alloc(Some(&group), Some("rmax5"), Some("do_sys_openat2"), Some("ret=$retval"), 5).unwrap();
    assert_eq!(ev.create_line(), format!("r5:{group}/rmax5 do_sys_openat2 ret=$retval\n"));
    probes.create(ev).unwrap();
    let listed = dynevent_get(&t, DynEventType::Kretprobe, Some(&group), "rmax5").unwrap().unwrap();
    assert_eq!(listed.maxactive, Some(5));
    let big = kretprobe_alloc(Some(&group), Some("rmaxbig"), Some("do_sys_openat2"), None, 5000).unwrap();
    probes.adopt(big.clone());
    let e = big.create(&t).unwrap_err();
    assert_eq!(e.errno(), Errno::EINVAL);
    assert_eq!(e.kernel_log().expect("error_log").message, "Maxactive is too big");
}

#[test]
#[ignore = "needs kprobe_events; run by the VM tier (tests/run-all.sh)"]
fn destroy_without_force_is_ebusy_while_enabled_and_force_works() {
    let t = require!(root, tracefs, kprobes).tracefs();
    let group = group_name("force");
    let mut probes = ProbeGuard::new(&t);
    let ev = probes
        .create(kprobe_alloc(Some(&group), Some("alloc1"), Some("do_sys_openat2"), Some("dfd=%di")).unwrap())
        .unwrap();
    let inst = Instance::create(&t, &instance_name("force")).unwrap();
    inst.event_enable(Some(&group), Some("alloc1")).unwrap();
    let e = kprobe_destroy(&t, Some(&group), Some("alloc1"), Some("do_sys_openat2"), None, false).unwrap_err();
    assert_eq!(e.errno(), Errno::EBUSY);
    assert!(e.to_string().contains(&format!("{group}/alloc1")) && e.to_string().contains("kprobe_events"), "{e}");
    kprobe_destroy(&t, Some(&group), Some("alloc1"), Some("do_sys_openat2"), None, true).unwrap();
    assert!(dynevent_get(&t, DynEventType::Kprobe, Some(&group), "alloc1").unwrap().is_none());
    assert_eq!(ev.destroy(&t, false).unwrap_err().errno(), Errno::ENOENT);
}

#[test]
#[ignore = "needs kprobe_events; run by the VM tier (tests/run-all.sh)"]
fn an_unknown_symbol_is_refused_with_the_kernels_reason() {
    let t = require!(root, tracefs, kprobes).tracefs();
    let group = group_name("nosym");
    let mut probes = ProbeGuard::new(&t);
    probes.adopt(kprobe_alloc(Some(&group), Some("nosym"), Some("no_such_function_xyz"), None).unwrap());
    let e = kprobe_raw(&t, Some(&group), Some("nosym"), Some("no_such_function_xyz"), None).unwrap_err();
    // 6.12 answers EINVAL ("Invalid probed address or symbol"); older kernels ENOENT.
    assert!(matches!(e.errno(), Errno::EINVAL | Errno::ENOENT), "{e}");
    let log = e.kernel_log().expect("error_log entry");
    assert_eq!(log.message, "Invalid probed address or symbol");
    assert!(e.to_string().contains("no_such_function_xyz"), "{e}");
}

#[test]
#[ignore = "needs kprobe_events; run by the VM tier (tests/run-all.sh)"]
fn a_bad_fetcharg_carries_the_error_log_text() {
    let t = require!(root, tracefs, kprobes).tracefs();
    let group = group_name("badarg");
    let mut probes = ProbeGuard::new(&t);
    probes.adopt(kprobe_alloc(Some(&group), Some("bad1"), Some("do_sys_openat2"), None).unwrap());
    probes.adopt(kprobe_alloc(Some(&group), Some("bad2"), Some("do_sys_openat2"), None).unwrap());
    let e = kprobe_raw(&t, Some(&group), Some("bad1"), Some("do_sys_openat2"), Some("x=%zz")).unwrap_err();
    assert_eq!(e.errno(), Errno::EINVAL);
    let log = e.kernel_log().expect("error_log entry");
    assert_eq!((log.subsystem.as_str(), log.message.as_str()), ("trace_kprobe", "Invalid register name"));
    assert_eq!(&log.command[log.position..], "%zz");
    assert!(e.to_string().contains("Invalid register name"), "{e}");
    let e = kprobe_raw(&t, Some(&group), Some("bad2"), Some("do_sys_openat2"), Some("x=+0($arg2")).unwrap_err();
    assert_eq!(e.errno(), Errno::EINVAL);
    assert_eq!(e.kernel_log().expect("error_log entry").message, "Dereference brace is not closed");
}

#[test]
#[ignore = "needs kprobe_events; run by the VM tier (tests/run-all.sh)"]
fn a_duplicate_name_is_eexist() {
    let t = require!(root, tracefs, kprobes).tracefs();
    let group = group_name("dup");
    let mut probes = ProbeGuard::new(&t);
    probes.create(kprobe_alloc(Some(&group), Some("open"), Some("do_sys_openat2"), Some(OPEN_ARGS)).unwrap()).unwrap();
    let e = kprobe_raw(&t, Some(&group), Some("open"), Some("do_sys_openat2"), Some(OPEN_ARGS)).unwrap_err();
    assert_eq!(e.errno(), Errno::EEXIST);
    assert_eq!(e.kernel_log().expect("error_log").message, "There is already the exact same probe event");
    let e = kretprobe_raw(&t, Some(&group), Some("open"), Some("do_sys_openat2"), None).unwrap_err();
    assert_eq!(e.errno(), Errno::EEXIST);
    // Same name and arguments at a second location: the kernel makes it a multi-probe event.
    kprobe_raw(&t, Some(&group), Some("open"), Some("do_sys_open"), Some(OPEN_ARGS)).unwrap();
    let listed = dynevent_get(&t, DynEventType::Kprobe, Some(&group), "open").unwrap().unwrap();
    assert_eq!(listed.also_at, vec!["do_sys_open".to_string()]);
}

#[test]
#[ignore = "needs kprobe_events; run by the VM tier (tests/run-all.sh)"]
fn names_derived_from_function_plus_offset_are_accepted() {
    let t = require!(root, tracefs, kprobes).tracefs();
    let group = group_name("offs");
    let mut probes = ProbeGuard::new(&t);
    // +5 is an instruction boundary of do_sys_openat2 in Debian's 6.12 (shared/qemu-kprobe).
    let ev = kprobe_alloc(Some(&group), None, Some("do_sys_openat2+5"), None).unwrap();
    assert_eq!(ev.event, "do_sys_openat2_5");
    probes.create(ev).unwrap();
    assert!(dynevent_get(&t, DynEventType::Kprobe, Some(&group), "do_sys_openat2_5").unwrap().is_some());
    kprobe_destroy(&t, Some(&group), None, Some("do_sys_openat2+5"), None, false).unwrap();
    // A mid-instruction offset is the kernel's EILSEQ, passed through with its reason.
    probes.adopt(kprobe_alloc(Some(&group), None, Some("do_sys_openat2+1"), None).unwrap());
    let e = kprobe_raw(&t, Some(&group), None, Some("do_sys_openat2+1"), None).unwrap_err();
    assert_eq!(e.errno(), Errno::EILSEQ);
    assert_eq!(e.kernel_log().expect("error_log").message, "Probe point is not an instruction boundary");
}

#[test]
#[ignore = "needs kprobe_events; run by the VM tier (tests/run-all.sh)"]
fn eprobes_are_created_listed_and_removed() {
    let t = require!(root, tracefs, kprobes).tracefs();
    let group = group_name("eprobe");
    let mut probes = ProbeGuard::new(&t);
    let ev = eprobe_alloc(Some(&group), "sopen_in", "syscalls", "sys_enter_openat", Some("file=+0($filename):ustring"))
        .unwrap();
    probes.create(ev.clone()).unwrap();
    let listed = dynevent_get(&t, DynEventType::Eprobe, Some(&group), "sopen_in").unwrap().expect("listed");
    assert_eq!(listed.address, "syscalls.sys_enter_openat");
    ev.destroy(&t, false).unwrap();
    assert!(dynevent_get_all(&t, &[DynEventType::Eprobe], Some(&group)).unwrap().is_empty());
}
