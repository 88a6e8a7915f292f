//! Hostile plugins (guest-examples/hostile/, real components): each is stopped with an error
//! that names it and says why, is poisoned afterwards, and the host and a well-behaved plugin
//! in the same process carry on.

mod plugin_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use plugin_support::*;
use wasmprobe::plugin::{BatchWriter, Error, FixedKernel, Layout, LayoutField, Plugin, Policy, Sandbox};

fn kernel() -> Arc<FixedKernel> {
    Arc::new(FixedKernel::with_features(&["uprobe", "tracepoint"]))
}

/// A plugin that reads one sys_enter event per batch, ready for on_batch.
fn hostile(stem: &str, sandbox: &Sandbox) -> (Plugin, Capture) {
    let out = Capture::default();
    let mut p = Plugin::load(&guest_path(stem), sandbox, Box::new(out.clone())).unwrap();
    p.set_comm_lookup(Box::new(comm));
    p.init(&[], kernel()).unwrap();
    p.set_layouts(vec![sys_enter_layout(21)]).unwrap();
    (p, out)
}

fn events(n: usize) -> BatchWriter {
    let mut b = BatchWriter::new();
    for i in 0..n {
        b.push(0, 0, 1234, i as u64, &Payload::new(21, 1234, 56).u64_at(8, 0).bytes);
    }
    b
}

/// exec-open, loaded before the hostile plugin misbehaved, still answers correctly.
fn assert_well_behaved(p: &mut Plugin, out: &Capture) {
    let mut b = BatchWriter::new();
    p.pack(&mut b, 1, 0, 1234, 10, &Payload::new(2002, 1234, 12).data_loc_str(16, "/etc/hosts").bytes);
    p.on_batch(b.as_bytes(), 0).unwrap();
    assert_eq!(out.lines(), ["1234-cat: open file='/etc/hosts'"]);
}

fn well_behaved() -> (Plugin, Capture) {
    let (mut p, out) = load_builtin("exec-open");
    p.init(&[], kernel()).unwrap();
    p.set_layouts(exec_open_uprobe_layouts()).unwrap();
    out.take();
    (p, out)
}

#[test]
fn an_endless_loop_is_stopped_by_the_cpu_budget() {
    let (mut good, good_out) = well_behaved();
    let sandbox = Sandbox { callback_budget: Duration::from_millis(50), ..sandbox() };
    let (mut p, _) = hostile("hostile_loop", &sandbox);
    let t = Instant::now();
    let err = p.on_batch(events(1).as_bytes(), 0).unwrap_err();
    let took = t.elapsed();
    assert_eq!(err.to_string(), "plugin hostile_loop: exceeded its CPU budget of 50ms in on-batch");
    assert!(matches!(err, Error::CpuBudget { .. }));
    assert!(took >= Duration::from_millis(50) && took < Duration::from_secs(5), "stopped after {took:?}");
    // Poisoned: the same error again, without running the guest.
    assert_eq!(p.on_batch(events(1).as_bytes(), 0).unwrap_err(), err);
    assert_eq!(p.finish().unwrap_err(), err);
    assert_well_behaved(&mut good, &good_out);
}

#[test]
fn a_loop_on_another_thread_does_not_stall_this_one() {
    let sandbox = Sandbox { callback_budget: Duration::from_millis(300), ..sandbox() };
    let spinner = std::thread::spawn(move || {
        let (mut p, _) = hostile("hostile_loop", &sandbox);
        p.on_batch(events(1).as_bytes(), 0).unwrap_err()
    });
    let (mut good, good_out) = well_behaved();
    for _ in 0..20 {
        assert_well_behaved(&mut good, &good_out);
    }
    assert!(matches!(spinner.join().unwrap(), Error::CpuBudget { .. }));
}

#[test]
fn growing_past_the_memory_limit_is_stopped() {
    let (mut good, good_out) = well_behaved();
    let sandbox = Sandbox { memory_limit_bytes: 16 << 20, ..sandbox() };
    let (mut p, _) = hostile("hostile_memory", &sandbox);
    let err = p.on_batch(events(1).as_bytes(), 0).unwrap_err();
    assert_eq!(err.to_string(), "plugin hostile_memory: exceeded its memory limit of 16 MiB in on-batch");
    assert_eq!(p.on_batch(events(1).as_bytes(), 0).unwrap_err(), err);
    assert_well_behaved(&mut good, &good_out);
}

#[test]
fn a_trap_mid_batch_names_the_plugin_and_the_panic() {
    let (mut good, good_out) = well_behaved();
    let (mut p, out) = hostile("hostile_trap", &sandbox());
    let err = p.on_batch(events(3).as_bytes(), 0).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("plugin hostile_trap: trapped in on-batch: "), "{msg}");
    eprintln!("{msg}");
    assert!(msg.contains("unreachable"), "{msg}");
    assert!(msg.contains("boom at event 2 of pid 1234"), "{msg}");
    let seen = out.take();
    assert_eq!(seen[0], "event 1 of pid 1234", "{seen:?}");
    assert!(seen.iter().any(|l| l.starts_with("stdio hostile_trap Stderr: ") && l.contains("boom")), "{seen:?}");
    assert_eq!(p.on_batch(events(1).as_bytes(), 0).unwrap_err(), err);
    assert!(p.poisoned().is_some());
    assert_well_behaved(&mut good, &good_out);
}

#[test]
fn a_flood_of_output_is_capped_per_call_and_said_once() {
    let (mut good, good_out) = well_behaved();
    // A debug-built host is slow at 4000 host and WASI writes: give it time, test only the cap.
    let sandbox =
        Sandbox { max_output_bytes_per_call: 64 << 10, callback_budget: Duration::from_secs(10), ..sandbox() };
    let (mut p, out) = hostile("hostile_flood", &sandbox);
    for _ in 0..2 {
        p.on_batch(events(1).as_bytes(), 0).unwrap();
        let all = out.take();
        let printed: usize =
            all.iter().filter(|l| !l.starts_with("log ") && !l.starts_with("stdio ")).map(|l| l.len() + 1).sum();
        let stdio: usize = all.iter().filter(|l| l.starts_with("stdio ")).count();
        assert!(printed <= 64 << 10 && printed > 60 << 10, "printed {printed} bytes");
        assert!(stdio > 500 && stdio <= (64 << 10) / 100, "{stdio} stdio lines");
        let caps: Vec<_> = all.iter().filter(|l| l.contains("output capped")).collect();
        assert_eq!(caps.len(), 1, "{caps:?}");
        assert!(caps[0].starts_with("log hostile_flood warning: output capped: "), "{}", caps[0]);
        assert!(caps[0].ends_with("bytes dropped in on-batch (limit 65536 bytes per call)"), "{}", caps[0]);
    }
    assert!(p.poisoned().is_none());
    assert_well_behaved(&mut good, &good_out);
}

#[test]
fn wasi_stdout_recovers_after_one_oversized_write() {
    // 60 MB to WASI stdout without a newline in the first batch, then ordinary lines: the cap
    // cuts the first write (one notice), and every later line still comes through.
    let sandbox = Sandbox { callback_budget: Duration::from_secs(20), ..sandbox() };
    let (mut p, out) = hostile("hostile_stdout", &sandbox);
    let t = Instant::now();
    p.on_batch(events(1).as_bytes(), 0).unwrap();
    let first = out.take();
    let caps: Vec<_> = first.iter().filter(|l| l.contains("output capped")).collect();
    assert_eq!(caps.len(), 1, "{caps:?}");
    assert!(caps[0].ends_with("bytes dropped in on-batch (limit 1048576 bytes per call)"), "{}", caps[0]);
    let kept: usize = first.iter().filter(|l| l.starts_with("stdio ")).map(|l| l.matches('z').count()).sum();
    assert_eq!(kept, 1 << 20, "what fits the cap is delivered, cut into a line");
    for round in 0..3u64 {
        p.on_batch(events(2).as_bytes(), 0).unwrap();
        let lines = out.take();
        let n = 2 + 2 * round;
        // `print` reaches the sink during the call, WASI stdout when the call returns.
        let want = [
            format!("print line {n}"),
            format!("print line {}", n + 1),
            format!("stdio hostile_stdout Stdout: wasi line {n}"),
            format!("stdio hostile_stdout Stdout: wasi line {}", n + 1),
        ];
        assert_eq!(lines, want, "round {round}");
    }
    assert!(t.elapsed() < Duration::from_secs(20));
    assert!(p.poisoned().is_none());
}

#[test]
fn injected_probe_declarations_are_refused_by_validate() {
    let (mut good, good_out) = well_behaved();
    let cases = [
        ("newline", "probe \"open\": fetchargs contains the control character '\\n' (one line, no NUL)"),
        ("command", "probe \"open\": fetcharg -:kprobes/victim looks like a dynamic-event command"),
        ("group", "probe \"kprobes/victim\": name must be a C identifier (letters, digits, '_'; no group or '/')"),
        (
            "group-target",
            "probe \"open\": target p:kprobes/victim: a kprobe target is SYMBOL[+OFFSET] (no ':' or '/': the host \
             chooses the group)",
        ),
        ("long", "name is 200 bytes long; at most 63 are allowed"),
        (
            "field-name",
            "probe \"enter\": field id\\n-:kprobes/victim is not a field name (a C identifier of at most 63 bytes)",
        ),
    ];
    for (case, expected) in cases {
        let mut p = Plugin::load(&guest_path("hostile_plan"), &sandbox(), Box::new(Capture::default())).unwrap();
        let plan = p.init(&[("case".into(), case.into())], kernel()).unwrap();
        let err = plan.validate(&Policy::default()).unwrap_err().to_string();
        assert!(err.ends_with(expected), "{case}: {err}");
    }
    let mut p = Plugin::load(&guest_path("hostile_plan"), &sandbox(), Box::new(Capture::default())).unwrap();
    let plan = p.init(&[("case".into(), "kprobe".into())], kernel()).unwrap();
    assert_eq!(
        plan.validate(&"uprobe,tracepoint".parse().unwrap()).unwrap_err().to_string(),
        "probe \"open\": kprobe probes are not allowed by the policy (allowed: uprobe, tracepoint; see --allow)"
    );
    assert_well_behaved(&mut good, &good_out);
}

#[test]
fn a_field_the_event_lacks_stops_the_run_before_any_batch_and_names_what_it_has() {
    let mut p = Plugin::load(&guest_path("hostile_plan"), &sandbox(), Box::new(Capture::default())).unwrap();
    let plan = p.init(&[("case".into(), "no-such-field".into())], kernel()).unwrap();
    plan.validate(&Policy::default()).unwrap();
    assert_eq!(plan.probes[0].fields.as_deref(), Some(&["id".to_string(), "fd".to_string()][..]));
    let mut fields = Layout::common_fields();
    fields.push(LayoutField::from_format("long", "id", 8, 8, true));
    let layout = Layout { system: "raw_syscalls".into(), event: "sys_enter".into(), id: 21, fields };
    let err = p.set_layouts(vec![layout]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin hostile_plan: probe \"enter\": raw_syscalls:sys_enter has no field \"fd\" (its fields: \
         common_type, common_flags, common_preempt_count, common_pid, id)"
    );
    assert!(!err.poisons());
}

#[test]
fn a_plugin_without_the_plugin_world_is_a_load_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.wasm");
    std::fs::write(&path, b"\0asm\x01\0\0\0").unwrap();
    let err = Plugin::load(&wasmprobe::plugin::PluginSource::Path(path), &sandbox(), Box::new(Capture::default()))
        .unwrap_err();
    assert!(err.to_string().starts_with("plugin junk: cannot load: "), "{err}");
    let missing = wasmprobe::plugin::PluginSource::Path("/nonexistent/x.wasm".into());
    let err = Plugin::load(&missing, &sandbox(), Box::new(Capture::default())).unwrap_err();
    assert!(err.to_string().starts_with("plugin x: cannot load: cannot read /nonexistent/x.wasm"), "{err}");
}
