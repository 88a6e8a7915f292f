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

// The rest of this test crate, kept in its own file to keep each under 800 lines.
include!("plugin_attacks_parts/live.rs");
