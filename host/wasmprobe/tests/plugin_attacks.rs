//! Attacks of the red team (issue 9's "write more attacks of your own"): plugins that try to
//! read what their `--allow` forbids, reach other runs' or other tools' kernel objects, use
//! every WASI interface, call the host with hostile sizes, overflow their stacks, or smuggle
//! extra memories and tables past the memory cap. Each test asserts the exact outcome: the
//! refusal or stop and its one-line message, bounded time, bounded host memory where it
//! matters (measured in a child process), and nothing of ours left in tracefs.
//!
//! The guests are in guest-examples/hostile/{sneak,wasi,alien,hostcalls,stack}. Tests that need
//! root and tracefs say so with `require!` (a skip fails under WASMPROBE_REQUIRE_ALL=1).

mod plugin_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plugin_support::*;
use testkit::require;
use wasmprobe::plugin::{BatchWriter, Error, FixedKernel, Plan, Plugin, PluginSource, Policy, Sandbox};

fn kernel() -> Arc<FixedKernel> {
    Arc::new(FixedKernel::with_features(&["uprobe", "tracepoint", "eprobe"]))
}

fn args(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Loads guest `stem` and calls its `init` with `pairs`.
fn init(stem: &str, pairs: &[(&str, &str)], sandbox: &Sandbox) -> (Plugin, Capture, Result<Plan, Error>) {
    let out = Capture::default();
    let mut p = Plugin::load(&guest_path(stem), sandbox, Box::new(out.clone())).unwrap();
    p.set_comm_lookup(Box::new(comm));
    let plan = p.init(&args(pairs), kernel());
    (p, out, plan)
}

/// One raw_syscalls:sys_enter record, as the run would deliver it.
fn one_event() -> BatchWriter {
    let mut b = BatchWriter::new();
    b.push(0, 0, 1234, 1, &Payload::new(21, 1234, 56).u64_at(8, 0).bytes);
    b
}

fn sneak_plan(case: &str, extra: &[(&str, &str)]) -> Plan {
    let mut pairs = vec![("case", case)];
    pairs.extend_from_slice(extra);
    init("hostile_sneak", &pairs, &sandbox()).2.unwrap()
}

// ------------------------------------------------------------------------------------------
// Reading what the policy forbids
// ------------------------------------------------------------------------------------------

/// `--allow eprobe,tracepoint` forbids kprobes, and an eprobe's fetchargs are dereferenced in
/// kernel space (the 6.12 VM shows `x=@_text:x64` reading kernel text and `@jiffies` the
/// counter): every kernel read is refused, naming the fetcharg; user reads stay allowed.
#[test]
fn eprobes_cannot_read_kernel_memory_when_kprobes_are_forbidden() {
    let policy: Policy = "eprobe,tracepoint".parse().unwrap();
    for (case, why) in [
        ("eprobe-kaddr", "fetcharg x=+0(@0xffffffff81000000):x64 reads kernel memory at an address or symbol (@)"),
        ("eprobe-ksym", "fetcharg x=@_text:x64 reads kernel memory at an address or symbol (@)"),
        ("eprobe-kderef", "fetcharg x=+0($filename):u64 dereferences kernel memory (+N(...))"),
        ("eprobe-kstring", "fetcharg x=+0($filename):string reads a string from a kernel pointer (:string, :symstr)"),
        ("eprobe-nested", "fetcharg x=+u0(+0($filename)):ustring dereferences kernel memory (+N(...))"),
    ] {
        let err = sneak_plan(case, &[]).validate(&policy).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("probe \"e\": {why}: kernel memory needs kprobe in --allow (user memory: +uN(...) or :ustring)"),
            "{case}"
        );
        // With kprobes allowed, an eprobe may read what a kprobe could.
        sneak_plan(case, &[]).validate(&"kprobe,eprobe".parse().unwrap()).unwrap();
    }
    for case in ["eprobe-ustring", "eprobe-field", "eprobe-symbol"] {
        sneak_plan(case, &[]).validate(&policy).unwrap_or_else(|e| panic!("{case}: {e}"));
    }
    // Without eprobes in the policy, none of them.
    let err = sneak_plan("eprobe-ustring", &[]).validate(&"uprobe,tracepoint".parse().unwrap()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "probe \"e\": eprobe probes are not allowed by the policy (allowed: uprobe, tracepoint; see --allow)"
    );
}

/// A uprobe's fetchargs read the traced process's memory only: the kernel copies from user
/// space for `@ADDR` and `+N(...)` (a kernel address reads 0 / "(fault)", as this machine
/// shows) and refuses `@SYMBOL` itself ("Symbol is not available with uprobe", see the live
/// test). So under `--allow uprobe,tracepoint` they are valid plans.
#[test]
fn uprobe_fetchargs_are_user_memory_and_valid() {
    let policy: Policy = "uprobe,tracepoint".parse().unwrap();
    for case in ["uprobe-kaddr", "uprobe-user", "uprobe-ksym"] {
        sneak_plan(case, &[]).validate(&policy).unwrap_or_else(|e| panic!("{case}: {e}"));
    }
}

/// Another run's probe group (`wasmprobe_<pid>_<tag>`) is no tracepoint and no eprobe source:
/// enabling it in our instance would read that run's events and pin its probes (EBUSY).
/// ftrace's own events (`ftrace:function`, ...) cannot be enabled at all: refused up front.
#[test]
fn other_runs_groups_and_ftrace_internals_are_no_sources() {
    let all = Policy::default();
    let cases = [
        (
            "tracepoint-victim",
            "wasmprobe_4242_exec_open.open",
            "probe \"t\": target wasmprobe_4242_exec_open:open: \
          wasmprobe_4242_exec_open is the probe group of a wasmprobe run, not a tracepoint (a plugin traces its own \
          probes only)",
        ),
        (
            "eprobe-victim",
            "wasmprobe_4242_exec_open.open",
            "probe \"e\": target wasmprobe_4242_exec_open.open: \
          wasmprobe_4242_exec_open is the probe group of a wasmprobe run, not a tracepoint (a plugin traces its own \
          probes only)",
        ),
        (
            "tracepoint-ftrace",
            "",
            "probe \"t\": target ftrace:function: ftrace's own events (function, print, \
          ...) are not tracepoints and cannot be enabled",
        ),
    ];
    for (case, victim, expected) in cases {
        let err = sneak_plan(case, &[("victim", victim)]).validate(&all).unwrap_err();
        assert_eq!(err.to_string(), expected, "{case}");
    }
}

/// A plan is data the host checks every time: a plugin whose plan differs from one load to
/// the next (random numbers) gets each plan checked on its own, and in a pack the manifest
/// refuses the variant it does not declare. Nothing `inspect` saw is trusted by `run`.
#[test]
fn a_plan_that_changes_between_loads_is_checked_each_time() {
    let dir = tempfile::tempdir().unwrap();
    let component = std::fs::read(guest_file("hostile_sneak")).unwrap();
    std::fs::write(dir.path().join("plugin.wasm"), &component).unwrap();
    std::fs::write(
        dir.path().join("manifest.toml"),
        format!(
            "name = \"flip\"\nversion = \"0.1.0\"\nwit = \"wasmprobe:plugin@{}\"\n\n\
             [[probes]]\nkind = \"tracepoint\"\nname = \"t\"\ntarget = \"raw_syscalls:sys_enter\"\n",
            wasmprobe::pack::host_wit_version()
        ),
    )
    .unwrap();
    let pack = dir.path().join("flip.wpk");
    std::fs::write(&pack, wasmprobe::pack::build_dir(dir.path(), None).unwrap()).unwrap();
    let source = wasmprobe::pack::RunSource::resolve(pack.to_str().unwrap(), &Default::default()).unwrap();
    let (mut enter, mut exit) = (0, 0);
    for _ in 0..40 {
        let mut p = source.load(&sandbox(), Box::new(Capture::default())).unwrap();
        let plan = p.init(&args(&[("case", "flip")]), kernel()).unwrap();
        plan.validate(&Policy::default()).unwrap();
        match plan.probes[0].target.as_str() {
            "raw_syscalls:sys_enter" => {
                source.check_plan(&plan).unwrap();
                enter += 1;
            }
            "raw_syscalls:sys_exit" => {
                assert_eq!(
                    source.check_plan(&plan).unwrap_err().to_string(),
                    "pack flip asked at run time for tracepoint t at raw_syscalls:sys_exit, which its manifest \
                     does not declare (closest declared: tracepoint t at raw_syscalls:sys_enter); refusing to run it"
                );
                exit += 1;
            }
            other => panic!("unexpected target {other}"),
        }
    }
    assert!(enter > 0 && exit > 0, "40 loads gave {enter} sys_enter and {exit} sys_exit plans");
}

/// A plan of 200,000 probes (and fetchargs of 100 bytes each) is refused by its size, and
/// lifting it from the guest costs the host a bounded amount of memory (measured in a child).
#[test]
fn a_huge_plan_is_refused_and_costs_bounded_memory() {
    let (ok, out, peak_kib) = in_child("child_huge_plan");
    assert!(ok, "{out}");
    assert!(out.contains("the plan declares 200000 probes; at most 64 are allowed"), "{out}");
    assert!(peak_kib < 400 << 10, "peak RSS {peak_kib} KiB");
}

#[test]
#[ignore = "run in a child process by a_huge_plan_is_refused_and_costs_bounded_memory"]
fn child_huge_plan() {
    // What is measured is memory: time enough for a loaded machine.
    let sandbox = Sandbox { memory_limit_bytes: 128 << 20, setup_budget: Duration::from_secs(60), ..sandbox() };
    let plan = init("hostile_sneak", &[("case", "huge-plan"), ("n", "100000")], &sandbox).2.unwrap();
    println!("{}", plan.validate(&Policy::default()).unwrap_err());
}

/// A pack directory whose shipped README.md is a symbolic link to /etc/shadow (someone's
/// pack source, built and signed by a user who trusts it): refused, instead of shipping the
/// secret inside the pack. A link that stays inside the directory is fine.
#[test]
fn a_pack_source_cannot_ship_files_from_outside_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("manifest.toml"),
        format!(
            "name = \"leak\"\nversion = \"0.1.0\"\nwit = \"wasmprobe:plugin@{}\"\nfiles = [\"README.md\"]\n\
             component = \"builtin:syscount\"\n\n[[probes]]\nkind = \"tracepoint\"\nname = \"enter\"\n\
             target = \"raw_syscalls:sys_enter\"\n",
            wasmprobe::pack::host_wit_version()
        ),
    )
    .unwrap();
    std::os::unix::fs::symlink("/etc/shadow", dir.path().join("README.md")).unwrap();
    let err = wasmprobe::pack::build_dir(dir.path(), None).unwrap_err().to_string();
    let readme = dir.path().join("README.md");
    assert_eq!(
        err,
        format!(
            "bad manifest: {} leads outside the pack directory (to /etc/shadow): a pack ships files of its own \
             directory only",
            readme.display()
        )
    );
    std::fs::remove_file(&readme).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "hello\n").unwrap();
    std::os::unix::fs::symlink("notes.txt", &readme).unwrap();
    wasmprobe::pack::build_dir(dir.path(), None).unwrap();
}

// ------------------------------------------------------------------------------------------
// Everything WASI has
// ------------------------------------------------------------------------------------------

/// A component importing every WASI 0.2 interface: no files, no environment, no arguments,
/// no sockets, no name lookups; stdin is empty and closed (never blocks); randomness and the
/// clocks' `now` work. Each line is what the plugin got.
#[test]
fn every_wasi_interface_is_refused_or_empty() {
    let t = Instant::now();
    let sandbox = Sandbox { setup_budget: Duration::from_secs(10), ..sandbox() };
    let (_, out, plan) = init("hostile_wasi", &[("case", "all")], &sandbox);
    plan.unwrap();
    assert!(t.elapsed() < Duration::from_secs(10), "took {:?}", t.elapsed());
    let access_denied = "ErrorCode { code: 1, name: \"access-denied\", message: \"Access denied.\\n\\n            \
                         POSIX equivalent: EACCES, EPERM\" }";
    assert_eq!(
        out.lines(),
        [
            "preopens: 0".to_string(),
            "read /etc/shadow: Err(NotFound)".into(),
            "read_dir /: Err(NotFound)".into(),
            "write /tmp/x: Err(NotFound)".into(),
            "environment: 0 variables".into(),
            "arguments: []".into(),
            "cwd: None".into(),
            format!("tcp socket: {access_denied}"),
            "std tcp connect: Err(PermissionDenied)".into(),
            format!("udp socket: {access_denied}"),
            "resolve: ErrorCode { code: 20, name: \"permanent-resolver-failure\", message: \"A permanent failure in \
             name resolution occurred.\" }"
                .into(),
            "stdin read: Err(StreamError::Closed)".into(),
            "stdin blocking-read: Err(StreamError::Closed)".into(),
            "std stdin: Ok(0)".into(),
            "terminal stdin: false".into(),
            "terminal stdout: false".into(),
            "random: 1048576 bytes".into(),
            "insecure seed: true".into(),
            "wall clock: true".into(),
        ]
    );
    assert!(!Path::new("/tmp/wasmprobe-hostile-wasi").exists());
}

/// `wasi:cli/exit` does not end the host: the call stops with a one-line message naming the
/// plugin, and the plugin is poisoned.
#[test]
fn exit_stops_the_plugin_not_the_host() {
    let (_, _, plan) = init("hostile_wasi", &[("case", "exit-init")], &sandbox());
    let err = plan.unwrap_err();
    assert_eq!(err.to_string(), "plugin hostile_wasi: trapped in init: Exited with i32 exit status 0");
    assert!(err.poisons());
    let (mut p, _, plan) = init("hostile_wasi", &[("case", "exit-event")], &sandbox());
    plan.unwrap();
    p.set_layouts(vec![sys_enter_layout(21)]).unwrap();
    let err = p.on_batch(one_event().as_bytes(), 0).unwrap_err();
    assert_eq!(err.to_string(), "plugin hostile_wasi: trapped in on-batch: Exited with i32 exit status 1");
    assert_eq!(p.finish().unwrap_err(), err);
}

/// Host resources by the million (stdout handles, pollables of stdin): the store's handle
/// limit stops the plugin quickly, and the host's memory stays small (measured in a child).
#[test]
fn host_resources_by_the_million_are_capped() {
    let (ok, out, peak_kib) = in_child("child_resource_floods");
    assert!(ok, "{out}");
    assert!(out.contains("streams: plugin hostile_wasi: trapped in init: cannot allocate another handle: store handle limit exceeded"), "{out}");
    assert!(
        out.contains(
            "subscribe: plugin hostile_wasi: trapped in init: cannot lend resource: store handle limit exceeded"
        ),
        "{out}"
    );
    assert!(peak_kib < 200 << 10, "peak RSS {peak_kib} KiB");
}

#[test]
#[ignore = "run in a child process by host_resources_by_the_million_are_capped"]
fn child_resource_floods() {
    // The handle limit must be what stops it, not the budget (however loaded the machine).
    let sandbox = Sandbox { memory_limit_bytes: 512 << 20, setup_budget: Duration::from_secs(60), ..sandbox() };
    for case in ["streams", "subscribe"] {
        let t = Instant::now();
        let err = init("hostile_wasi", &[("case", case)], &sandbox).2.unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(20), "{case} took {:?}", t.elapsed());
        println!("{case}: {err}");
    }
}

/// `wasi:random` handed out up to 64 MiB per call (wasmtime's default), made byte by byte in
/// the host where no budget check runs: one call of the plugin's `init` took ~10 s in a debug
/// build against a 1 s budget. Now a call may ask for 1 MiB at most; more traps at once.
#[test]
fn a_random_number_call_cannot_outlive_the_budget() {
    let mut p = Plugin::load(&guest_path("hostile_wasi"), &sandbox(), Box::new(Capture::default())).unwrap();
    let t = Instant::now();
    let err = p.init(&args(&[("case", "random"), ("mib", "64")]), kernel()).unwrap_err();
    assert!(t.elapsed() < Duration::from_millis(1500), "took {:?}: {err}", t.elapsed());
    assert_eq!(err.to_string(), "plugin hostile_wasi: trapped in init: requested len 67108864 exceeds limit 1048576");
}

/// A component that imports an interface the host does not have (`wasi:http`) does not load,
/// and the one-line message names the interface.
#[test]
fn an_interface_the_host_lacks_is_a_one_line_load_error() {
    let err = Plugin::load(&guest_path("hostile_alien"), &sandbox(), Box::new(Capture::default())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "plugin hostile_alien: cannot load: component imports instance `wasi:http/outgoing-handler@0.3.0`, but a \
         matching implementation was not found in the linker: instance export `handle` has the wrong type: \
         function implementation is missing"
    );
}

// ------------------------------------------------------------------------------------------
// Stacks, memories, tables
// ------------------------------------------------------------------------------------------

/// Unbounded recursion, on the stack Rust keeps in linear memory and on the engine's own call
/// stack, in each call: a trap naming the function, never a crash of the host.
#[test]
fn stack_overflows_are_traps() {
    for (stack, trap) in [
        ("shadow", "wasm trap: out of bounds memory access at hostile_stack::down"),
        ("native", "wasm trap: call stack exhausted at hostile_stack::native"),
    ] {
        let (_, _, plan) = init("hostile_stack", &[("at", "init"), ("stack", stack)], &sandbox());
        assert_eq!(plan.unwrap_err().to_string(), format!("plugin hostile_stack: trapped in init: {trap}"));
        let (mut p, _, plan) = init("hostile_stack", &[("at", "event"), ("stack", stack)], &sandbox());
        plan.unwrap();
        p.set_layouts(vec![sys_enter_layout(21)]).unwrap();
        let err = p.on_batch(one_event().as_bytes(), 0).unwrap_err();
        assert_eq!(err.to_string(), format!("plugin hostile_stack: trapped in on-batch: {trap}"));
        let (mut p, _, plan) = init("hostile_stack", &[("at", "finish"), ("stack", stack)], &sandbox());
        plan.unwrap();
        p.set_layouts(vec![sys_enter_layout(21)]).unwrap();
        assert_eq!(p.finish().unwrap_err().to_string(), format!("plugin hostile_stack: trapped in finish: {trap}"));
    }
}

/// The memory cap is the plugin's, not each memory's: a component may hold up to ten core
/// memories and a hundred tables (the limiter's counts). A plugin with nine extra memories of
/// 60 MiB each, under the default 64 MiB cap, loaded (580 MB of RSS) when each memory was
/// capped alone; now it is stopped at instantiation.
#[test]
fn extra_memories_count_against_the_one_cap() {
    let (ok, out, peak_kib) = in_child("child_memory_bomb");
    assert!(ok, "{out}");
    assert!(
        out.contains("memories: plugin memory_bomb: exceeded its memory limit of 64 MiB in instantiation"),
        "peak RSS {peak_kib} KiB: {out}"
    );
    assert!(peak_kib < 300 << 10, "peak RSS {peak_kib} KiB");
}

#[test]
#[ignore = "run in a child process by extra_memories_count_against_the_one_cap"]
fn child_memory_bomb() {
    let base = std::fs::read(guest_file("hostile_trap")).unwrap();
    let hogs: Vec<wasm_encoder::Module> = (0..9).map(|_| memory_hog(960)).collect();
    let bomb = with_core_instances(&base, &hogs);
    match Plugin::from_bytes("memory_bomb", &bomb, &sandbox(), Box::new(Capture::default())) {
        Ok(_) => println!("memories: loaded"),
        Err(e) => println!("memories: {e}"),
    }
}

/// Tables are host memory too: ninety tables of a million entries each (8 MB each) loaded
/// (730 MB of RSS) under a 64 MiB cap; now they count against it.
#[test]
fn tables_count_against_the_cap() {
    let (ok, out, peak_kib) = in_child("child_table_bomb");
    assert!(ok, "{out}");
    assert!(
        out.contains("tables: plugin table_bomb: exceeded its memory limit of 64 MiB in instantiation"),
        "peak RSS {peak_kib} KiB: {out}"
    );
    assert!(peak_kib < 300 << 10, "peak RSS {peak_kib} KiB");
}

#[test]
#[ignore = "run in a child process by tables_count_against_the_cap"]
fn child_table_bomb() {
    let base = std::fs::read(guest_file("hostile_trap")).unwrap();
    let hogs: Vec<wasm_encoder::Module> = (0..9).map(|_| table_hog(10, 1_000_000)).collect();
    let bomb = with_core_instances(&base, &hogs);
    match Plugin::from_bytes("table_bomb", &bomb, &sandbox(), Box::new(Capture::default())) {
        Ok(_) => println!("tables: loaded"),
        Err(e) => println!("tables: {e}"),
    }
}

/// A component whose extra core module loops forever in its start function: the loop runs at
/// instantiation, before `init`, and the setup budget stops it there.
#[test]
fn a_start_function_that_never_returns_is_stopped_at_instantiation() {
    use wasm_encoder::*;
    let mut m = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([], []);
    m.section(&types);
    let mut funcs = FunctionSection::new();
    funcs.function(0);
    m.section(&funcs);
    m.section(&StartSection { function_index: 0 });
    let mut code = CodeSection::new();
    let mut f = Function::new([]);
    f.instruction(&Instruction::Loop(BlockType::Empty))
        .instruction(&Instruction::Br(0))
        .instruction(&Instruction::End)
        .instruction(&Instruction::End);
    code.function(&f);
    m.section(&code);
    let base = std::fs::read(guest_file("hostile_trap")).unwrap();
    let spinner = with_core_instances(&base, &[m]);
    let sandbox = Sandbox { setup_budget: Duration::from_millis(300), ..sandbox() };
    let t = Instant::now();
    let err = Plugin::from_bytes("spin_start", &spinner, &sandbox, Box::new(Capture::default())).unwrap_err();
    assert_eq!(err.to_string(), "plugin spin_start: exceeded its CPU budget of 300ms in instantiation");
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
}

/// A core module with one memory of `pages` 64 KiB pages, all written by its start function
/// (so they are resident).
fn memory_hog(pages: u64) -> wasm_encoder::Module {
    use wasm_encoder::*;
    let mut m = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([], []);
    m.section(&types);
    let mut funcs = FunctionSection::new();
    funcs.function(0);
    m.section(&funcs);
    let mut mems = MemorySection::new();
    mems.memory(MemoryType { minimum: pages, maximum: None, memory64: false, shared: false, page_size_log2: None });
    m.section(&mems);
    m.section(&StartSection { function_index: 0 });
    let mut code = CodeSection::new();
    let mut f = Function::new([]);
    f.instruction(&Instruction::I32Const(0))
        .instruction(&Instruction::I32Const(0x5a))
        .instruction(&Instruction::I32Const((pages * 65536) as i32))
        .instruction(&Instruction::MemoryFill(0))
        .instruction(&Instruction::End);
    code.function(&f);
    m.section(&code);
    m
}

/// A core module with `tables` funcref tables of `elems` entries, each filled by its start
/// function.
fn table_hog(tables: u32, elems: u64) -> wasm_encoder::Module {
    use wasm_encoder::*;
    let mut m = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([], []);
    m.section(&types);
    let mut funcs = FunctionSection::new();
    funcs.function(0);
    m.section(&funcs);
    let mut tabs = TableSection::new();
    for _ in 0..tables {
        tabs.table(TableType {
            element_type: RefType::FUNCREF,
            table64: false,
            minimum: elems,
            maximum: None,
            shared: false,
        });
    }
    m.section(&tabs);
    m.section(&StartSection { function_index: 0 });
    let mut code = CodeSection::new();
    let mut f = Function::new([]);
    for t in 0..tables {
        f.instruction(&Instruction::I32Const(0))
            .instruction(&Instruction::RefNull(HeapType::FUNC))
            .instruction(&Instruction::I32Const(elems as i32))
            .instruction(&Instruction::TableFill(t));
    }
    f.instruction(&Instruction::End);
    code.function(&f);
    m.section(&code);
    m
}

/// `component` with `modules` appended as core modules, each instantiated (no imports) when
/// the component is: their start functions run inside the plugin's store at instantiation.
fn with_core_instances(component: &[u8], modules: &[wasm_encoder::Module]) -> Vec<u8> {
    use wasm_encoder::{ComponentSection, InstanceSection, ModuleArg, ModuleSection};
    // Core modules already in the component's index space: its top-level module sections.
    let mut existing = 0u32;
    let mut pos = 8;
    while pos < component.len() {
        let id = component[pos];
        pos += 1;
        let (mut size, mut shift) = (0usize, 0);
        loop {
            let b = component[pos];
            pos += 1;
            size |= ((b & 0x7f) as usize) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        if id == 1 {
            existing += 1;
        }
        pos += size;
    }
    let mut out = component.to_vec();
    for m in modules {
        ModuleSection(m).append_to_component(&mut out);
    }
    let mut instances = InstanceSection::new();
    for i in 0..modules.len() as u32 {
        instances.instantiate(existing + i, Vec::<(&str, ModuleArg)>::new());
    }
    instances.append_to_component(&mut out);
    out
}

/// The compile cache holds native code that wasmtime maps without checking it: a cache
/// directory others may write (a shared /tmp path, say), or a cache file of another user
/// planted in ours, is never mapped; the component is compiled instead and says why.
#[test]
fn a_cache_others_can_write_is_never_mapped() {
    use std::os::unix::fs::PermissionsExt;
    use wasmprobe::plugin::CacheOutcome;
    let wasm = std::fs::read(guest_file("hostile_trap")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let key = wasmprobe::plugin::cache::cache_key(wasmprobe::plugin::sandbox::engine(), &wasm);
    std::fs::write(shared.join(&key), b"planted native code").unwrap();
    let sandbox = Sandbox { cache_dir: Some(shared.clone()), ..Sandbox::default() };
    let p = Plugin::from_bytes("trap", &wasm, &sandbox, Box::new(Capture::default())).unwrap();
    assert_eq!(p.load_info().cache, CacheOutcome::Compiled(format!("{} is writable by others", shared.display())));

    require!("a file of another user's, planted": root);
    let ours = dir.path().join("ours");
    let planted = ours.join(&key);
    std::fs::create_dir(&ours).unwrap();
    std::fs::set_permissions(&ours, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(&planted, b"planted native code").unwrap();
    nix::unistd::chown(&planted, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let sandbox = Sandbox { cache_dir: Some(ours.clone()), ..Sandbox::default() };
    let p = Plugin::from_bytes("trap", &wasm, &sandbox, Box::new(Capture::default())).unwrap();
    assert_eq!(p.load_info().cache, CacheOutcome::Stored(planted.clone()));
    let p = Plugin::from_bytes("trap", &wasm, &sandbox, Box::new(Capture::default())).unwrap();
    assert_eq!(p.load_info().cache, CacheOutcome::Hit(planted));
}

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
