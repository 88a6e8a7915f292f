//! The built-in example plugins, loaded as real components: their plans, and their output for
//! hand-built batches laid out like the kernel's records.

mod plugin_support;

use std::sync::Arc;

use plugin_support::*;
use wasmprobe::plugin::{
    builtin, builtin_names, BatchWriter, FixedKernel, Plan, Plugin, PluginSource, Policy, ProbeKind, Sandbox,
};

fn no_kprobes() -> Arc<FixedKernel> {
    Arc::new(FixedKernel::with_features(&["uprobe", "tracepoint"]))
}

fn all_features() -> Arc<FixedKernel> {
    Arc::new(FixedKernel::with_features(&["kprobe", "uprobe", "eprobe", "tracepoint"]))
}

fn summary(plan: &Plan) -> Vec<String> {
    plan.probes.iter().map(|p| format!("{} {} {} [{}]", p.kind, p.name, p.target, p.fetchargs)).collect()
}

#[test]
fn every_builtin_is_embedded_and_loads() {
    assert_eq!(builtin_names(), ["exec-open", "syscount", "openlat", "readline", "stackcount"]);
    for name in builtin_names() {
        assert!(builtin(name).unwrap().starts_with(b"\0asm"), "{name} is not wasm");
        let (mut p, _out) = load_builtin(name);
        // stackcount's one required argument: the probe whose stacks it counts.
        let args = match name {
            "stackcount" => vec![("probe".to_string(), "raw_syscalls:sys_enter".to_string())],
            _ => vec![],
        };
        let plan = p.init(&args, all_features()).unwrap();
        plan.validate(&Policy::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert_eq!(PluginSource::parse("exec-open"), PluginSource::Builtin("exec-open".into()));
    assert_eq!(PluginSource::parse("./x.wasm"), PluginSource::Path("./x.wasm".into()));
}

#[test]
fn exec_open_uses_the_man_page_kprobes_when_the_kernel_has_them() {
    let (mut p, out) = load_builtin("exec-open");
    let plan = p.init(&[], all_features()).unwrap();
    assert_eq!(
        summary(&plan),
        [
            "kprobe open do_sys_openat2 [file=+0($arg2):ustring flags=+0($arg3):x64 mode=+8($arg3):x64]",
            "kretprobe openret do_sys_openat2 [ret=%ax]",
        ]
    );
    p.set_layouts(vec![kprobe_open_layout(1500), kretprobe_ret_layout(1501)]).unwrap();
    let mut b = BatchWriter::new();
    let open = Payload::new(1500, 1234, 28)
        .u64_at(8, 0xffff_ffff_8123_4560)
        .data_loc_str(16, "/etc/ld.so.cache")
        .u64_at(20, 0x80000)
        .u64_at(28, 0);
    p.pack(&mut b, 0, 1, 1234, 1_000, &open.bytes);
    p.pack(&mut b, 1, 1, 1234, 2_000, &Payload::new(1501, 1234, 24).u64_at(24, 3).bytes);
    p.pack(&mut b, 1, 0, 1234, 3_000, &Payload::new(1501, 1234, 24).u64_at(24, (-2i64) as u64).bytes);
    p.on_batch(b.as_bytes(), 0).unwrap();
    assert_eq!(
        out.lines(),
        ["1234-cat: open file='/etc/ld.so.cache'", "1234-cat: open ret=3", "1234-cat: open ret=-2"]
    );
    p.finish().unwrap();
}

#[test]
fn exec_open_falls_back_to_libc_uprobes_without_kprobes_and_says_so() {
    let (mut p, out) = load_builtin("exec-open");
    let plan = p.init(&[], no_kprobes()).unwrap();
    assert_eq!(
        summary(&plan),
        [
            "uprobe open libc:open [file=+0(%di):ustring]",
            "uprobe openat libc:openat [file=+0(%si):ustring]",
            "uretprobe openret libc:open [ret=$retval:s32]",
            "uretprobe openatret libc:openat [ret=$retval:s32]",
        ]
    );
    assert!(plan.probes.iter().all(|p| matches!(p.kind, ProbeKind::Uprobe | ProbeKind::Uretprobe)));
    assert_eq!(
        out.take(),
        ["log exec-open info: the kernel has no kprobes: tracing libc open/openat with uprobes instead"]
    );
    plan.validate(&"uprobe,uretprobe".parse().unwrap()).unwrap();

    p.set_layouts(exec_open_uprobe_layouts()).unwrap();
    let mut b = BatchWriter::new();
    p.pack(&mut b, 1, 0, 1234, 10, &Payload::new(2002, 1234, 12).data_loc_str(16, "/etc/passwd").bytes);
    p.pack(&mut b, 3, 0, 1234, 20, &Payload::new(2004, 1234, 20).u32_at(24, 3).bytes);
    p.pack(&mut b, 0, 1, 99, 30, &Payload::new(2001, 99, 12).data_loc_str(16, "").bytes);
    p.pack(&mut b, 2, 1, 99, 40, &Payload::new(2003, 99, 20).u32_at(24, u32::MAX).bytes);
    p.on_batch(b.as_bytes(), 0).unwrap();
    assert_eq!(
        out.lines(),
        [
            "1234-cat: open file='/etc/passwd'",
            "1234-cat: open ret=3",
            "99-<...>: open file=''",
            "99-<...>: open ret=-1",
        ]
    );
}

#[test]
fn syscount_counts_per_syscall_and_per_process() {
    let (mut p, out) = load_builtin("syscount");
    let plan = p.init(&[("top".into(), "2".into())], all_features()).unwrap();
    assert_eq!(summary(&plan), ["tracepoint sys_enter raw_syscalls:sys_enter []"]);
    p.set_layouts(vec![sys_enter_layout(21)]).unwrap();
    let mut b = BatchWriter::new();
    for (pid, id) in [(1234, 0), (1234, 0), (77, 1), (1234, 257), (77, 0), (4321, 1)] {
        p.pack(&mut b, 0, 0, pid, 0, &Payload::new(21, pid, 56).u64_at(8, id).bytes);
    }
    p.on_batch(b.as_bytes(), 0).unwrap();
    p.on_batch(&[], 5).unwrap();
    p.finish().unwrap();
    assert_eq!(
        out.lines(),
        [
            "Top 2 syscalls by count:",
            " SYSCALL      COUNT",
            "       0          3",
            "       1          2",
            "",
            "Top 2 processes by syscall count:",
            "     PID COMM                  COUNT",
            "    1234 cat                       3",
            "      77 sshd                      2",
            "",
            "The kernel lost 5 events: the counts are low.",
        ]
    );

    let (mut p, out) = load_builtin("syscount");
    p.init(&[("records".into(), "1".into()), ("top".into(), "1".into())], all_features()).unwrap();
    p.set_layouts(vec![sys_enter_layout(21)]).unwrap();
    p.on_batch(b.as_bytes(), 0).unwrap();
    p.finish().unwrap();
    assert_eq!(out.take(), ["record syscall=0 count=3", "record pid=1234 comm=cat count=3"]);
    let (mut bad, _) = load_builtin("syscount");
    let err = bad.init(&[("top".into(), "x".into())], all_features()).unwrap_err();
    assert_eq!(err.to_string(), "plugin syscount: init failed: --arg top=x: invalid digit found in string");
}

#[test]
fn openlat_prints_a_log2_histogram_like_bpftrace() {
    let (mut p, out) = load_builtin("openlat");
    let plan = p.init(&[], no_kprobes()).unwrap();
    assert_eq!(plan.probes.len(), 4);
    p.set_layouts(vec![
        bare_layout("open", 1),
        bare_layout("openat", 2),
        uretprobe_ret_layout("openret", 3),
        uretprobe_ret_layout("openatret", 4),
    ])
    .unwrap();
    let mut b = BatchWriter::new();
    let mut ts = 1_000_000;
    // Latencies in us: 0, 3, 3, 5, 1500; and a return without an entry (ignored).
    for (pid, us) in [(1, 0u64), (2, 3), (3, 3), (4, 5), (5, 1500)] {
        p.pack(&mut b, 1, 0, pid, ts, &Payload::new(2, pid, 8).bytes);
        p.pack(&mut b, 3, 0, pid, ts + us * 1000 + 10, &Payload::new(4, pid, 24).bytes);
        ts += 10_000_000;
    }
    p.pack(&mut b, 2, 0, 9, ts, &Payload::new(3, 9, 24).bytes);
    p.on_batch(b.as_bytes(), 0).unwrap();
    p.finish().unwrap();
    let bar = |n: usize| format!("{:<52}", "@".repeat(n));
    assert_eq!(
        out.lines(),
        [
            "@usecs:".to_string(),
            format!("[0]                    1 |{}|", bar(26)),
            format!("[1]                    0 |{}|", bar(0)),
            format!("[2, 4)                 2 |{}|", bar(52)),
            format!("[4, 8)                 1 |{}|", bar(26)),
            format!("[8, 16)                0 |{}|", bar(0)),
            format!("[16, 32)               0 |{}|", bar(0)),
            format!("[32, 64)               0 |{}|", bar(0)),
            format!("[64, 128)              0 |{}|", bar(0)),
            format!("[128, 256)             0 |{}|", bar(0)),
            format!("[256, 512)             0 |{}|", bar(0)),
            format!("[512, 1K)              0 |{}|", bar(0)),
            format!("[1K, 2K)               1 |{}|", bar(26)),
        ]
    );
}

#[test]
fn readline_prints_pid_comm_and_the_line() {
    let (mut p, out) = load_builtin("readline");
    let plan = p.init(&[], no_kprobes()).unwrap();
    assert_eq!(summary(&plan), ["uretprobe readline /bin/bash:readline [line=+0($retval):string]"]);
    let layout = wasmprobe::plugin::Layout {
        system: "wasmprobe_1".into(),
        event: "readline".into(),
        id: 7,
        fields: {
            let mut f = wasmprobe::plugin::Layout::common_fields();
            f.push(wasmprobe::plugin::LayoutField::from_format("unsigned long", "__probe_func", 8, 8, false));
            f.push(wasmprobe::plugin::LayoutField::from_format("unsigned long", "__probe_ret_ip", 16, 8, false));
            f.push(wasmprobe::plugin::LayoutField::from_format("__data_loc char[]", "line", 24, 4, true));
            f
        },
    };
    p.set_layouts(vec![layout]).unwrap();
    let mut b = BatchWriter::new();
    p.pack(&mut b, 0, 0, 4321, 5, &Payload::new(7, 4321, 20).data_loc_str(24, "ls -l /tmp").bytes);
    p.on_batch(b.as_bytes(), 0).unwrap();
    assert_eq!(out.lines(), ["PID     COMM             COMMAND", "4321    bash             ls -l /tmp"]);
}

#[test]
fn a_second_load_is_served_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox { cache_dir: Some(dir.path().join("cache")), ..Sandbox::default() };
    let src = PluginSource::Builtin("exec-open".into());
    let first = Plugin::load(&src, &sandbox, Box::new(Capture::default())).unwrap();
    let wasmprobe::plugin::CacheOutcome::Stored(file) = first.load_info().cache.clone() else {
        panic!("first load: {:?}", first.load_info().cache)
    };
    assert!(file.is_file(), "{} missing", file.display());
    assert!(file.file_name().unwrap().to_str().unwrap().ends_with(".cwasm"));
    let second = Plugin::load(&src, &sandbox, Box::new(Capture::default())).unwrap();
    assert_eq!(second.load_info().cache, wasmprobe::plugin::CacheOutcome::Hit(file));
    assert!(second.load_info().cache.is_hit());

    let off = Sandbox { cache_dir: None, ..Sandbox::default() };
    assert!(!Plugin::load(&src, &off, Box::new(Capture::default())).unwrap().load_info().cache.is_hit());
}

#[test]
fn out_of_order_calls_are_refused_without_poisoning() {
    let (mut p, _) = load_builtin("readline");
    let err = p.on_batch(&[], 0).unwrap_err();
    assert_eq!(err.to_string(), "plugin readline: on_batch called before init");
    p.init(&[], no_kprobes()).unwrap();
    assert!(p.set_layouts(vec![]).unwrap_err().to_string().contains("0 layouts for 1 probes"));
    assert!(p.poisoned().is_none());
    p.on_batch(&[], 0).unwrap();
}

#[test]
fn a_malformed_batch_is_the_plugins_error_not_a_trap() {
    let (mut p, _) = load_builtin("syscount");
    p.init(&[], all_features()).unwrap();
    p.set_layouts(vec![sys_enter_layout(21)]).unwrap();
    let mut b = BatchWriter::new();
    b.push(0, 0, 1, 1, &Payload::new(21, 1, 56).bytes);
    let err = p.on_batch(&b.as_bytes()[..40], 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin syscount: on-batch failed: batch truncated: record at offset 0 claims 64 payload bytes"
    );
    b.clear();
    b.push(3, 0, 1, 1, &[0; 8]);
    let err = p.on_batch(b.as_bytes(), 0).unwrap_err();
    assert_eq!(err.to_string(), "plugin syscount: on-batch failed: batch names probe 3 but the plan has 1");
    assert!(p.poisoned().is_none());
    p.finish().unwrap();
}

#[test]
fn a_plugin_can_move_to_another_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<Plugin>();
}
