//! Call stacks on probes (WIT 0.1.2 `stacks`): a uprobe with a user stack, a tracepoint with a
//! kernel stack, the stacks in a recording (as trace-cmd reads them) and in its replay, and a
//! plugin built against 0.1.1 that still runs. The test program is built here with frame
//! pointers and calls a → b → c → target.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testkit::require;

/// The subcommand, then budgets far above the defaults: these tests check what stacks hold,
/// and `finish` names them on the host (kallsyms, ELF files) inside the plugin's wall-clock
/// budget, which a loaded 2-core CI machine can stretch past the default 1 s.
fn with_budgets<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    if matches!(args.first(), Some(&"run") | Some(&"record")) {
        all.splice(1..1, ["--setup-budget", "20s", "--cpu-budget", "5s"]);
    }
    all
}

fn wasmprobe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasmprobe"))
        .args(with_budgets(args))
        .env("WASMPROBE_CACHE", std::env::temp_dir().join("wasmprobe-test-cache"))
        .output()
        .expect("run wasmprobe")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "stdout:\n{}\nstderr:\n{}", text(&o.stdout), text(&o.stderr));
    text(&o.stdout)
}

/// The test plugin (guest-examples/stackdump), built by build.rs.
fn stackdump() -> String {
    PathBuf::from(env!("OUT_DIR")).join("guests").join("stackdump.wasm").to_str().unwrap().to_string()
}

const PROG: &str = r#"
#include <fcntl.h>
#include <unistd.h>
__attribute__((noinline)) int target(int x) { return x * 2 + 1; }
__attribute__((noinline)) int c(int x) { return target(x) + 1; }
__attribute__((noinline)) int b(int x) { return c(x) + 1; }
__attribute__((noinline)) int a(int x) { return b(x) + 1; }
int main(int argc, char **argv) {
    (void)argv;
    int s = 0;
    for (int i = 0; i < 3; i++) s += a(i);
    int fd = open("/dev/null", O_RDONLY);
    close(fd);
    if (argc > 1) usleep(500000); /* still there when its stacks are read */
    return s == 0;
}
"#;

/// The test program, built with frame pointers and without optimisation (and without CET's
/// `endbr64`, so every function starts `push %rbp; mov %rsp,%rbp`: 4 bytes).
fn build_prog(dir: &Path) -> PathBuf {
    build_with(dir, "prog", &["-fno-omit-frame-pointer", "-O0"])
}

fn build_with(dir: &Path, name: &str, flags: &[&str]) -> PathBuf {
    let src = dir.join("prog.c");
    std::fs::write(&src, PROG).unwrap();
    let exe = dir.join(name);
    let o = Command::new("cc")
        .args(flags)
        .args(["-fcf-protection=none", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .expect("a C compiler (cc)");
    assert!(o.status.success(), "cc: {}", text(&o.stderr));
    exe
}

/// `name -> (start, end)` of the program's functions (file offsets = link addresses of a PIE).
fn functions(exe: &Path) -> BTreeMap<String, (u64, u64)> {
    let o = Command::new("nm").args(["-S", "--defined-only"]).arg(exe).output().expect("nm");
    let mut out = BTreeMap::new();
    for l in text(&o.stdout).lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() == 4 && (f[2] == "T" || f[2] == "t") {
            let start = u64::from_str_radix(f[0], 16).unwrap();
            let size = u64::from_str_radix(f[1], 16).unwrap();
            out.insert(f[3].to_string(), (start, start + size));
        }
    }
    out
}

/// The function of `funcs` holding `addr`.
fn function_of(funcs: &BTreeMap<String, (u64, u64)>, addr: u64) -> Option<&str> {
    funcs.iter().find(|(_, &(lo, hi))| addr >= lo && addr < hi).map(|(n, _)| n.as_str())
}

/// One event as stackdump prints it: the header line, kernel and user frames.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ev {
    head: String,
    k: Vec<(u64, String)>,
    u: Vec<(u64, String)>,
}

fn events(out: &str) -> Vec<Ev> {
    let mut evs: Vec<Ev> = Vec::new();
    for l in out.lines() {
        if l.starts_with("event ") {
            evs.push(Ev { head: l.to_string(), k: vec![], u: vec![] });
        } else if let Some(rest) = l.strip_prefix("  k ").or_else(|| l.strip_prefix("  u ")) {
            let (addr, sym) = rest.split_once(' ').unwrap();
            let addr = u64::from_str_radix(addr.trim_start_matches("0x"), 16).unwrap();
            let ev = evs.last_mut().expect("frames follow their event");
            match l.as_bytes()[2] {
                b'k' => ev.k.push((addr, sym.to_string())),
                _ => ev.u.push((addr, sym.to_string())),
            }
        }
    }
    evs
}

/// The user frames of a uprobe at `target+4` are target, c, b, a, main: checked on the raw
/// addresses against the program's symbol table (the load base is the first frame's distance
/// from `target+4`), and on the names the host gives them.
fn assert_target_c_b_a_main(ev: &Ev, funcs: &BTreeMap<String, (u64, u64)>) {
    assert!(ev.head.contains("truncated=0"), "{ev:?}");
    assert!(ev.u.len() >= 5, "{ev:?}");
    let base = ev.u[0].0 - (funcs["target"].0 + 4);
    let names: Vec<&str> = ev.u[..5].iter().map(|(a, _)| function_of(funcs, a - base).unwrap_or("?")).collect();
    assert_eq!(names, ["target", "c", "b", "a", "main"], "{ev:?}");
    let symbolized: Vec<&str> = ev.u[..5].iter().map(|(_, s)| s.split('+').next().unwrap()).collect();
    assert_eq!(symbolized, ["target", "c", "b", "a", "main"], "{ev:?}");
}

/// Records the program's three `target` calls with stackdump (a uprobe at `target+4`, user
/// stacks) and replays the recording: returns the live run's stdout and stderr and the
/// recording, once the replay has delivered the same events and nothing of ours is left.
fn record_and_replay(dir: &Path, exe: &Path, prog_args: &[&str]) -> (String, String, PathBuf) {
    let target_arg = format!("target={}:target+4", exe.display());
    let dat = dir.join("stacks.dat");
    let d = dat.to_str().unwrap();
    let plugin = stackdump();
    let args = ["--arg", "kind=uprobe", "--arg", &target_arg, "--arg", "stacks=user"];
    let mut live_args = vec!["record", "-o", d, "--plugin", &plugin];
    live_args.extend(args);
    live_args.extend(["--", exe.to_str().unwrap()]);
    live_args.extend(prog_args);
    let live = wasmprobe(&live_args);
    let (out, err) = (text(&live.stdout), text(&live.stderr));
    assert_eq!(live.status.code(), Some(0), "{out}\n{err}");
    assert_eq!(testkit::leftovers(std::process::id()), Vec::<String>::new());
    let mut replay_args = vec!["run", &plugin];
    replay_args.extend(args);
    replay_args.extend(["--replay", d]);
    let replay_out = ok(&wasmprobe(&replay_args));
    assert_eq!(events(&replay_out), events(&out), "{replay_out}");
    (out, err, dat)
}

#[test]
fn a_uprobe_with_a_user_stack_sees_target_c_b_a_main_live_and_in_replay() {
    require!(root, tracefs, uprobes);
    let dir = tempfile::tempdir().unwrap();
    let exe = build_prog(dir.path());
    let funcs = functions(&exe);
    // The program waits a little before it exits, so that its mappings are read while it
    // lives (when its first stack is delivered); the stacks are named at the end, after it
    // exited, and in the replay from the mappings the recording keeps.
    let (live_out, live_err, dat) = record_and_replay(dir.path(), &exe, &["wait"]);
    assert!(!live_err.contains("warning"), "{live_err}");
    let evs = events(&live_out);
    assert_eq!(evs.len(), 3, "{live_out}");
    assert!(live_out.contains("events=3 with_kstack=0 with_ustack=3"), "{live_out}");
    for ev in &evs {
        assert!(ev.k.is_empty(), "{ev:?}");
        assert_target_c_b_a_main(ev, &funcs);
    }

    // trace-cmd reads the stack records we recorded: one user stack after each event, whose
    // frames are those the plugin got.
    if let Ok(tc) = Command::new("trace-cmd").arg("report").arg("-i").arg(&dat).output() {
        let report = ok(&tc);
        assert_eq!(report.matches(" user_stack: ").count(), 3, "{report}");
        for (addr, _) in evs.iter().flat_map(|e| &e.u) {
            assert!(report.contains(&format!("=> {addr:#x}\n")), "{addr:#x} not in:\n{report}");
        }
    }
}

/// A program that exits at once is gone before its first stack is delivered, so its maps
/// cannot be read (bpftrace#246): the uprobe's own address (the first user frame) places the
/// probed file, and its frames still get names, live and in the replay.
#[test]
fn a_process_gone_before_its_stack_is_delivered_is_placed_by_its_uprobe() {
    require!(root, tracefs, uprobes);
    let dir = tempfile::tempdir().unwrap();
    let exe = build_prog(dir.path());
    let funcs = functions(&exe);
    let (live_out, _, _) = record_and_replay(dir.path(), &exe, &[]);
    let evs = events(&live_out);
    assert_eq!(evs.len(), 3, "{live_out}");
    for ev in &evs {
        assert_target_c_b_a_main(ev, &funcs);
    }
}

#[test]
fn a_user_stack_without_frame_pointers_is_flagged_as_stopping_early() {
    require!(root, tracefs, uprobes);
    let dir = tempfile::tempdir().unwrap();
    let exe = build_with(dir.path(), "prog-nofp", &["-fomit-frame-pointer", "-O1"]);
    let target = format!("target={}:target", exe.display());
    let out = wasmprobe(&[
        "run",
        &stackdump(),
        "--arg",
        "kind=uprobe",
        "--arg",
        &target,
        "--arg",
        "stacks=user",
        "--",
        exe.to_str().unwrap(),
        "wait",
    ]);
    let o = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{o}\n{}", text(&out.stderr));
    let evs = events(&o);
    assert_eq!(evs.len(), 3, "{o}");
    for ev in &evs {
        assert!(ev.head.contains("truncated=1"), "{ev:?}");
    }
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "wasmprobe: warning: 3 of 3 user stacks stop early (user stacks follow frame pointers: build with \
             -fno-omit-frame-pointer)"
        ),
        "{err}"
    );
}

/// Symbols of /proc/kallsyms (text only), sorted by address.
fn kallsyms() -> Vec<(u64, String)> {
    let mut syms: Vec<(u64, String)> = std::fs::read_to_string("/proc/kallsyms")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let addr = u64::from_str_radix(f.next()?, 16).ok()?;
            let kind = f.next()?;
            let name = f.next()?;
            matches!(kind, "t" | "T").then(|| (addr, name.to_string()))
        })
        .collect();
    syms.sort();
    syms
}

fn kernel_symbol(syms: &[(u64, String)], addr: u64) -> Option<&str> {
    let i = syms.partition_point(|(a, _)| *a <= addr);
    (i > 0).then(|| syms[i - 1].1.as_str())
}

#[test]
fn a_kernel_stack_on_sys_enter_openat_holds_the_syscall_entry_path() {
    require!(root, tracefs);
    let dir = tempfile::tempdir().unwrap();
    let exe = build_prog(dir.path());
    let plugin = stackdump();
    let out = wasmprobe(&[
        "run",
        &plugin,
        "--arg",
        "kind=tracepoint",
        "--arg",
        "target=syscalls:sys_enter_openat",
        "--arg",
        "stacks=kernel",
        "--arg",
        "filter=flags == 0",
        "--",
        exe.to_str().unwrap(),
    ]);
    let out_text = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out_text}\n{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("could not be matched"), "{}", text(&out.stderr));
    let evs = events(&out_text);
    assert!(!evs.is_empty(), "{out_text}");
    let syms = kallsyms();
    assert!(syms.len() > 1000 && syms[0].0 != 0, "kallsyms without addresses");
    for ev in &evs {
        assert!(!ev.k.is_empty() && ev.u.is_empty(), "{ev:?}");
        let names: Vec<&str> = ev.k.iter().map(|(a, _)| kernel_symbol(&syms, *a).unwrap_or("?")).collect();
        assert!(names.contains(&"do_syscall_64"), "{names:?}");
        assert!(names.iter().any(|n| n.starts_with("entry_SYSCALL_64")), "{names:?}");
        // When the host symbolizes, it names the same functions.
        for ((_, sym), want) in ev.k.iter().zip(&names) {
            if sym != "?" {
                assert_eq!(sym.split('+').next().unwrap(), *want, "{ev:?}");
            }
        }
    }
    assert!(out_text.contains(&format!("with_kstack={}", evs.len())), "{out_text}");
    assert_eq!(testkit::leftovers(std::process::id()), Vec::<String>::new());
}

#[test]
fn the_stacktrace_trigger_is_in_our_instance_only_while_tracing() {
    require!(root, tracefs);
    // A run that is stopped by its duration, with the trigger's file read while it runs.
    let plugin = stackdump();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wasmprobe"))
        .args(["run", &plugin, "--arg", "kind=tracepoint", "--arg", "target=raw_syscalls:sys_enter"])
        .args(["--arg", "stacks=kernel", "--arg", "filter=common_pid == 1", "--duration", "3s"])
        .env("WASMPROBE_CACHE", std::env::temp_dir().join("wasmprobe-test-cache"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let prefix = format!("wasmprobe-{}-", child.id());
    let trigger = testkit::poll_text(
        || {
            std::fs::read_dir("/sys/kernel/tracing/instances")
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| {
                    std::fs::read_to_string(e.path().join("events/raw_syscalls/sys_enter/trigger")).unwrap_or_default()
                })
                .collect()
        },
        |t| t.contains("stacktrace:"),
        60,
    );
    assert!(trigger.contains("stacktrace:unlimited if common_pid == 1"), "{trigger}");
    let top = std::fs::read_to_string("/sys/kernel/tracing/events/raw_syscalls/sys_enter/trigger").unwrap();
    assert!(!top.contains("stacktrace:"), "{top}");
    assert!(child.wait().unwrap().success());
    assert_eq!(testkit::leftovers(child.id()), Vec::<String>::new());
}

#[test]
fn a_plugin_built_against_wit_0_1_1_still_runs() {
    require!(root, tracefs);
    let old = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/syscount-wit-0.1.1.wasm");
    let wasm = std::fs::read(old).unwrap();
    let imports = String::from_utf8_lossy(&wasm);
    assert!(imports.contains("wasmprobe:plugin/output@0.1.1") && !imports.contains("@0.1.2"), "not a 0.1.1 build");
    let out = wasmprobe(&["run", old, "--", "sh", "-c", "cat /dev/null"]);
    let o = ok(&out);
    assert!(o.starts_with("Top 10 syscalls by count:\n SYSCALL      COUNT\n"), "{o}");
    assert!(o.lines().any(|l| l.split_whitespace().nth(1) == Some("cat")), "{o}");
}

/// The agent adds plugins to a running session, which does not arm stacks: a probe asking for
/// them is refused by name rather than run without its stacks, and nothing is left behind.
#[test]
fn a_probe_with_stacks_added_to_a_running_session_is_refused() {
    require!(root, tracefs);
    let tracefs = wasmprobe::owned::open_for_run().unwrap();
    let tp = |name: &str, stacks: wasmprobe::plugin::StackKinds| wasmprobe::plugin::ProbeDecl {
        kind: wasmprobe::plugin::ProbeKind::Tracepoint,
        name: name.into(),
        target: "raw_syscalls:sys_enter".into(),
        fetchargs: String::new(),
        filter: Some("common_pid == 1".into()),
        maxactive: None,
        fields: None,
        stacks,
    };
    let mut s = wasmprobe::session::Session::arm(&tracefs, "stacks-add", &[tp("base", Default::default())]).unwrap();
    let kstack = wasmprobe::plugin::StackKinds { kernel: true, user: false };
    let e = s.add("stacks-add", &[tp("more", kstack)]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "probe more: call stacks are not available to probes added to a running session (the agent) yet"
    );
    assert_eq!(s.probes().len(), 1);
    drop(s);
    assert_eq!(testkit::leftovers(std::process::id()), Vec::<String>::new());
}
