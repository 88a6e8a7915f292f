//! The tracefs layer against this machine's kernel (6.18: tracepoints and uprobes, no kprobes).
//! Every probe and instance is named `wasmprobe_<pid>…`/`wasmprobe-<pid>…` and removed by
//! guards, also when an assertion fails.

use std::ffi::CString;
use std::process::Command;

use testkit::{libc_path, poll_text, require, ProbeGuard};
use tracefs::{
    dynevent_get, dynevent_get_all, event_format, kprobe_raw, resolve_target, saved_cmdlines, uprobe_alloc,
    uretprobe_alloc, CpuReader, DynEventType, EnableState, Errno, Instance,
};
use wasmprobe::owned::{group_name, instance_name};

fn libc_target(sym: &str) -> (String, u64) {
    let t = resolve_target(&format!("{}:{sym}", libc_path().display())).expect("resolve libc symbol");
    (t.path.to_str().unwrap().to_string(), t.offset)
}

/// A child process that calls libc's `openat(AT_FDCWD, path)` itself (nothing else does so
/// reliably: `cat` goes through `open`).
fn child_openat(path: &str) -> i32 {
    let c = CString::new(path).unwrap();
    // SAFETY: the child only calls async-signal-safe functions (openat, _exit) before exiting.
    match unsafe { nix::unistd::fork() }.expect("fork") {
        nix::unistd::ForkResult::Child => unsafe {
            libc::openat(libc::AT_FDCWD, c.as_ptr(), libc::O_RDONLY);
            libc::_exit(0)
        },
        nix::unistd::ForkResult::Parent { child } => {
            nix::sys::wait::waitpid(child, None).expect("wait");
            child.as_raw()
        }
    }
}

#[test]
fn uprobe_and_uretprobe_on_libc_open_are_traced_in_our_instance() {
    let t = require!(root, tracefs, uprobes).tracefs();
    let group = group_name("open");
    let mut probes = ProbeGuard::new(&t);
    let (libc, open_off) = libc_target("open");
    let (_, openat_off) = libc_target("openat");
    let open = probes
        .create(uprobe_alloc(Some(&group), "open", &libc, open_off, Some("file=+0(%di):ustring")).unwrap())
        .unwrap();
    probes.create(uretprobe_alloc(Some(&group), "open_ret", &libc, open_off, Some("ret=$retval")).unwrap()).unwrap();
    probes
        .create(uprobe_alloc(Some(&group), "openat", &libc, openat_off, Some("file=+0(%si):ustring")).unwrap())
        .unwrap();

    // Listed back exactly as created.
    let listed = dynevent_get(&t, DynEventType::Uprobe, Some(&group), "open").unwrap().expect("listed");
    assert_eq!(listed.address, open.address);
    assert_eq!(listed.address, format!("{libc}:0x{open_off:016x}"));
    assert_eq!(listed.format, "file=+0(%di):ustring");
    let ours = dynevent_get_all(&t, &[], Some(&group)).unwrap();
    assert_eq!(ours.len(), 3, "{ours:?}");
    assert_eq!(ours.iter().filter(|e| e.kind == DynEventType::Uretprobe).count(), 1);

    let inst = Instance::create(&t, &instance_name("open")).unwrap();
    inst.event_enable(Some(&group), None).unwrap();
    assert_eq!(inst.event_is_enabled(Some(&group), Some("open")).unwrap(), EnableState::All);
    // Enabled in our instance only, not in the top one.
    assert_eq!(Instance::top(&t).event_is_enabled(Some(&group), Some("open")).unwrap(), EnableState::None);

    let dir = std::env::temp_dir().join(format!("wasmprobe-live-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("hello.txt");
    std::fs::write(&file, "hi\n").unwrap();
    let file = file.to_str().unwrap().to_string();
    let cat = Command::new("cat").arg(&file).output().expect("run cat");
    assert!(cat.status.success());
    let at_pid = child_openat(&file);

    let text =
        poll_text(|| inst.read_file("trace").unwrap(), |t| t.contains("openat: (") && t.contains("open_ret: ("), 40);
    std::fs::remove_dir_all(&dir).ok();
    let quoted = format!("file=\"{file}\"");
    assert!(
        text.lines().any(|l| l.contains(" open: (") && l.contains(&quoted) && l.contains("cat-")),
        "no open of {file} by cat in:\n{text}"
    );
    assert!(
        text.lines().any(|l| l.contains(" openat: (") && l.contains(&quoted) && l.contains(&format!("-{at_pid} "))),
        "no openat of {file} by pid {at_pid} in:\n{text}"
    );
    assert!(text.lines().any(|l| l.contains("cat-") && l.contains(" open_ret: (") && l.contains("ret=")), "{text}");

    // The top instance saw none of it.
    assert!(!Instance::top(&t).read_file("trace").unwrap().contains(&quoted));
    drop(inst);
    // With the instance gone nothing is enabled, so a plain (non-forced) destroy works.
    for ev in dynevent_get_all(&t, &[], Some(&group)).unwrap() {
        ev.destroy(&t, false).unwrap();
    }
    assert!(dynevent_get_all(&t, &[], Some(&group)).unwrap().is_empty());
}

#[test]
fn kprobe_creation_is_enodev_without_kprobe_events() {
    let t = require!(root, tracefs, no_kprobes).tracefs();
    let group = group_name("nokprobe");
    let e =
        kprobe_raw(&t, Some(&group), Some("open"), Some("do_sys_openat2"), Some("file=+0($arg2):ustring")).unwrap_err();
    assert_eq!(e.errno(), Errno::ENODEV);
    let msg = e.to_string();
    assert!(msg.contains(&format!("{group}/open")) && msg.contains("kprobe_events"), "{msg}");
    assert!(msg.contains("no kprobe events"), "{msg}");
}

#[test]
fn removing_an_enabled_probe_is_ebusy_unless_forced() {
    let t = require!(root, tracefs, uprobes).tracefs();
    let group = group_name("busy");
    let mut probes = ProbeGuard::new(&t);
    let (libc, off) = libc_target("open");
    let ev = probes.create(uprobe_alloc(Some(&group), "busy", &libc, off, None).unwrap()).unwrap();
    let inst = Instance::create(&t, &instance_name("busy")).unwrap();
    inst.event_enable(Some(&group), Some("busy")).unwrap();

    let e = ev.destroy(&t, false).unwrap_err();
    assert_eq!(e.errno(), Errno::EBUSY);
    assert!(e.to_string().contains(&format!("{group}/busy")), "{e}");
    assert!(e.to_string().contains("uprobe_events"), "{e}");
    assert!(dynevent_get(&t, DynEventType::Uprobe, Some(&group), "busy").unwrap().is_some());

    ev.destroy(&t, true).unwrap();
    assert!(dynevent_get(&t, DynEventType::Uprobe, Some(&group), "busy").unwrap().is_none());
    // Removing it again: ENOENT, passed through.
    assert_eq!(ev.destroy(&t, false).unwrap_err().errno(), Errno::ENOENT);
}

#[test]
fn a_bad_fetcharg_is_einval_with_the_kernels_error_log() {
    let t = require!(root, tracefs, uprobes).tracefs();
    let group = group_name("bad");
    let mut probes = ProbeGuard::new(&t);
    let (libc, off) = libc_target("open");
    let ev = uprobe_alloc(Some(&group), "bad", &libc, off, Some("x=%zz")).unwrap();
    probes.adopt(ev.clone());
    let e = ev.create(&t).unwrap_err();
    assert_eq!(e.errno(), Errno::EINVAL);
    let log = e.kernel_log().expect("error_log entry attached");
    assert_eq!(log.subsystem, "trace_uprobe");
    assert_eq!(log.message, "Invalid register name");
    assert_eq!(&log.command[log.position..], "%zz");
    let msg = e.to_string();
    assert!(msg.contains("Invalid register name") && msg.contains(&format!("{group}/bad")), "{msg}");
    // And the instance-level accessors see the same entry.
    assert_eq!(Instance::top(&t).error_last().unwrap().unwrap().message, "Invalid register name");
}

#[test]
fn the_same_probe_twice_is_eexist() {
    let t = require!(root, tracefs, uprobes).tracefs();
    let group = group_name("dup");
    let mut probes = ProbeGuard::new(&t);
    let (libc, off) = libc_target("open");
    let ev = probes.create(uprobe_alloc(Some(&group), "dup", &libc, off, Some("f=%di")).unwrap()).unwrap();
    let e = ev.create(&t).unwrap_err();
    assert_eq!(e.errno(), Errno::EEXIST);
    assert!(e.to_string().contains(&format!("{group}/dup")), "{e}");
}

#[test]
fn an_instance_someone_briefly_holds_open_is_still_removed() {
    let t = require!(root, tracefs).tracefs();
    let name = instance_name("held");
    let inst = Instance::create(&t, &name).unwrap();
    // While this file is open the kernel refuses to remove the instance (EBUSY), as it does
    // when another thread disables a probe in every instance during a force-destroy.
    let held = std::fs::File::open(inst.file("trace_clock")).unwrap();
    let closer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        drop(held);
    });
    drop(inst);
    closer.join().unwrap();
    assert!(!tracefs::instances(&t).unwrap().contains(&name), "the instance is gone once the file closed");
}

#[test]
fn instances_sizes_clear_and_raii() {
    let t = require!(root, tracefs).tracefs();
    let name = instance_name("raii");
    {
        let inst = Instance::create(&t, &name).unwrap();
        assert_eq!(Instance::create(&t, &name).unwrap_err().errno(), Errno::EEXIST);
        assert!(tracefs::instances(&t).unwrap().contains(&name));
        inst.set_buffer_size_kb(256, None).unwrap();
        // The kernel rounds the size up to whole sub-buffers.
        let kb = inst.buffer_size_kb(None).unwrap();
        assert!((256..256 + 16).contains(&kb), "{kb}");
        assert_eq!(inst.buffer_size_kb(Some(0)).unwrap(), kb);
        inst.set_buffer_percent(0).unwrap();
        assert_eq!(inst.buffer_percent().unwrap(), 0);
        assert!(inst.subbuf_size().unwrap() >= 4096);
        inst.append_file("trace_marker", "wasmprobe marker").unwrap();
        assert!(inst.read_file("trace").unwrap().contains("wasmprobe marker"));
        inst.clear().unwrap();
        assert!(!inst.read_file("trace").unwrap().contains("wasmprobe marker"));
        assert!(inst.cpu_count().unwrap() >= 1);
    }
    assert!(!tracefs::instances(&t).unwrap().contains(&name), "dropping the handle removes the instance");
}

#[test]
fn events_enable_formats_cmdlines_and_raw_pages() {
    let t = require!(root, tracefs).tracefs();
    let inst = Instance::create(&t, &instance_name("events")).unwrap();
    inst.event_enable(Some("sched"), Some("sched_process_exec")).unwrap();
    inst.event_enable(Some("syscalls"), Some("sys_enter_getppid")).unwrap();
    assert!(inst.enabled_events().unwrap().contains(&"syscalls:sys_enter_getppid".to_string()));
    for _ in 0..100 {
        // SAFETY: getppid has no preconditions.
        unsafe { libc::getppid() };
    }
    Command::new("true").status().unwrap();
    let fmt = event_format(&t, "sched", "sched_process_exec").unwrap();
    assert!(fmt.starts_with("name: sched_process_exec\n") && fmt.contains("print fmt:"), "{fmt}");

    let mut bytes = 0;
    let mut buf = vec![0u8; inst.subbuf_size().unwrap()];
    for cpu in 0..inst.cpu_count().unwrap() {
        let mut r = CpuReader::open(&inst, cpu, true).unwrap();
        loop {
            let n = r.read_subbuf(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            bytes += n;
        }
    }
    assert!(bytes >= buf.len(), "expected at least one sub-buffer of events, read {bytes} bytes");
    inst.event_disable(None, None).unwrap();
    assert_eq!(inst.event_is_enabled(Some("syscalls"), Some("sys_enter_getppid")).unwrap(), EnableState::None);
    let cmdlines = saved_cmdlines(&t).unwrap();
    assert!(!cmdlines.is_empty());
    let e = inst.event_enable(Some("sched"), Some("no_such_event")).unwrap_err();
    assert_eq!(e.errno(), Errno::ENOENT);
}
