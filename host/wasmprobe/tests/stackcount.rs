//! Stacks end to end: the built-in `stackcount` on this kernel (kernel stacks at a syscall
//! tracepoint; the user stack of a uprobe in a program built with frame pointers, symbolized
//! after the program exited and again in a replay of the recording), and `wasmprobe
//! flamegraph` drawing folded stacks as an SVG with one frame per symbol.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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

fn wasmprobe(args: &[&str]) -> (Output, u32) {
    let child = Command::new(env!("CARGO_BIN_EXE_wasmprobe"))
        .args(with_budgets(args))
        .env("WASMPROBE_CACHE", std::env::temp_dir().join("wasmprobe-test-cache"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run wasmprobe");
    let pid = child.id();
    (child.wait_with_output().expect("wait for wasmprobe"), pid)
}

fn ok(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "stdout:\n{out}\nstderr:\n{}", String::from_utf8_lossy(&o.stderr));
    out
}

/// Folded lines `outer;...;inner COUNT` → stack → count.
fn folded(path: &Path) -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|l| {
            let (s, n) = l.rsplit_once(' ').unwrap_or_else(|| panic!("not folded: {l:?}"));
            (s.to_string(), n.parse().unwrap_or_else(|_| panic!("not folded: {l:?}")))
        })
        .collect()
}

/// The function names of the SVG's frames (each frame is a `<g>` whose `<title>` is
/// `NAME (N samples, P%)`), the root `all` left out.
fn svg_frames(svg: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(svg).unwrap();
    // inferno's SVG starts with the SVG 1.1 DOCTYPE.
    let opts = roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() };
    let doc = roxmltree::Document::parse_with_options(&text, opts)
        .unwrap_or_else(|e| panic!("{} is not XML: {e}", svg.display()));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.has_tag_name("g"))
        .filter_map(|g| g.children().find(|c| c.has_tag_name("title"))?.text().map(str::to_string))
        .filter_map(|t| Some(t.rsplit_once(" (")?.0.to_string()))
        .filter(|name| name != "all")
        .collect()
}

#[test]
fn flamegraph_draws_one_frame_per_symbol() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.folded");
    // Unsorted, and one stack twice: inferno merges what is equal.
    std::fs::write(&input, "main;a;b;c;target 3\nmain;a;x 2\n\nmain;a;b;c;target 1\n").unwrap();
    let svg = dir.path().join("out.svg");
    let (o, _) = wasmprobe(&["flamegraph", input.to_str().unwrap(), "-o", svg.to_str().unwrap()]);
    ok(&o);
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).trim(),
        format!("wasmprobe: drew 3 stacks of {} to {}", input.display(), svg.display())
    );
    let mut frames = svg_frames(&svg);
    frames.sort();
    assert_eq!(frames, ["a", "b", "c", "main", "target", "x"]);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("<title>main (6 samples, 100.00%)</title>"), "{text}");
}

#[test]
fn flamegraph_refuses_input_without_stacks() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("empty.folded");
    std::fs::write(&input, "# nothing\n").unwrap();
    let svg = dir.path().join("out.svg");
    let (o, _) = wasmprobe(&["flamegraph", input.to_str().unwrap(), "-o", svg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        format!("wasmprobe: error: {}: no folded stacks in it (lines of `frame;frame;... COUNT`)\n", input.display())
    );
    assert!(!svg.exists(), "nothing written");
}

/// Function names in /proc/kallsyms.
fn kallsyms_names() -> BTreeSet<String> {
    std::fs::read_to_string("/proc/kallsyms")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect()
}

#[test]
fn kernel_stacks_at_a_syscall_tracepoint() {
    require!(root, tracefs);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("k.folded");
    let (o, wp) = wasmprobe(&[
        "run",
        "stackcount",
        "--arg",
        "probe=syscalls:sys_enter_openat",
        "--arg",
        &format!("folded={}", out.display()),
        "--",
        "cat",
        "/etc/hostname",
    ]);
    let text = ok(&o);
    assert!(text.contains("distinct stacks at syscalls:sys_enter_openat ("), "{text}");
    let stacks = folded(&out);
    assert!(!stacks.is_empty(), "{text}");
    let names = kallsyms_names();
    for stack in stacks.keys() {
        for f in stack.split(';') {
            let name = f.strip_suffix("_[k]").unwrap_or_else(|| panic!("a kernel frame is marked _[k]: {stack}"));
            assert!(names.contains(name), "{name} (of {stack}) is not in kallsyms");
        }
    }
    // The syscall entry path, outermost first.
    assert!(
        stacks.keys().any(|s| s.starts_with("entry_SYSCALL_64_after_hwframe_[k];do_syscall_64_[k];")),
        "{stacks:?}"
    );
    // The flame graph of it has a frame for each of those symbols.
    let svg = dir.path().join("k.svg");
    ok(&wasmprobe(&["flamegraph", out.to_str().unwrap(), "-o", svg.to_str().unwrap()]).0);
    let frames: BTreeSet<String> = svg_frames(&svg).into_iter().collect();
    // (inferno draws a `_[k]` frame in the kernel's colour, named without the suffix.)
    let symbols: BTreeSet<String> =
        stacks.keys().flat_map(|s| s.split(';').map(|f| f.trim_end_matches("_[k]").to_string())).collect();
    assert_eq!(frames, symbols);
    assert!(testkit::leftovers(wp).is_empty(), "{:?}", testkit::leftovers(wp));
}

/// Builds a program whose `main` calls a → b → c → target (frame pointers, no inlining), then
/// sleeps as long as its argument says (ms) and exits.
fn build_prog(dir: &Path) -> PathBuf {
    let src = dir.join("prog.c");
    std::fs::write(
        &src,
        "#include <stdlib.h>\n#include <unistd.h>\n\
         __attribute__((noinline)) void target(void) { asm volatile(\"\"); }\n\
         __attribute__((noinline)) void c(void) { target(); asm volatile(\"\"); }\n\
         __attribute__((noinline)) void b(void) { c(); asm volatile(\"\"); }\n\
         __attribute__((noinline)) void a(void) { b(); asm volatile(\"\"); }\n\
         int main(int argc, char **argv) { a(); if (argc > 1) usleep(atoi(argv[1]) * 1000); return 0; }\n",
    )
    .unwrap();
    let bin = dir.join("prog");
    let o =
        Command::new("cc").args(["-O0", "-fno-omit-frame-pointer", "-g", "-o"]).arg(&bin).arg(&src).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    bin
}

#[test]
fn user_stack_of_a_uprobe_live_after_exit_and_in_replay() {
    require!(root, tracefs, uprobes);
    let dir = tempfile::tempdir().unwrap();
    let prog = build_prog(dir.path());
    let p = prog.to_str().unwrap();
    let dat = dir.path().join("u.dat");
    let live = dir.path().join("live.folded");
    let probe = format!("probe=u:{p}:target");
    // Recorded and counted live; the program sleeps 300 ms after the call, then exits, and the
    // stacks are symbolized at the end of the run, after its exit.
    let (o, wp) = wasmprobe(&[
        "record",
        "-o",
        dat.to_str().unwrap(),
        "--plugin",
        "stackcount",
        "--arg",
        &probe,
        "--arg",
        &format!("folded={}", live.display()),
        "--",
        p,
        "300",
    ]);
    let text = ok(&o);
    assert!(testkit::leftovers(wp).is_empty(), "{:?}", testkit::leftovers(wp));
    let stacks = folded(&live);
    assert_eq!(stacks.len(), 1, "{stacks:?}\n{text}");
    let (stack, n) = stacks.iter().next().unwrap();
    assert_eq!(*n, 1);
    // Outermost first: whatever of libc called main, then exactly main, a, b, c, target.
    let frames: Vec<&str> = stack.split(';').collect();
    let from_main = &frames[frames.iter().position(|f| *f == "main").unwrap_or_else(|| panic!("{stack}"))..];
    assert_eq!(from_main, ["main", "a", "b", "c", "target"], "{stack}");
    // The table names them innermost first with their offsets and file.
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| l.ends_with("(prog)")).collect();
    let names: Vec<&str> = lines.iter().map(|l| l.split(['+', ' ']).next().unwrap()).collect();
    assert_eq!(names, ["target", "c", "b", "a", "main"], "{text}");

    // The replay symbolizes from what the recording kept: the same stack.
    let replayed = dir.path().join("replay.folded");
    let (o, _) = wasmprobe(&[
        "run",
        "stackcount",
        "--arg",
        &probe,
        "--arg",
        &format!("folded={}", replayed.display()),
        "--replay",
        dat.to_str().unwrap(),
    ]);
    let replay_text = ok(&o);
    assert_eq!(folded(&replayed), stacks, "{replay_text}");
    assert_eq!(replay_text, text);

    // The recording keeps the program's mapping and build id, in an option trace-cmd skips.
    let f = std::fs::File::open(&dat).unwrap();
    let meta = traceevent::TraceDat::open(f).unwrap().meta;
    let maps = meta.options.iter().find(|(id, _)| *id == wasmprobe::symbolize::OPTION_PROCESS_MAPS).expect("option");
    let procs = wasmprobe::symbolize::Processes::from_bytes(&maps.1).unwrap().snapshot();
    let mapped = procs.iter().flat_map(|p| &p.mappings).find(|m| m.path == p).expect("the program's mapping");
    assert!(mapped.build_id.as_ref().is_some_and(|b| b.len() == 40), "{mapped:?}");

    // And with --json: one record per folded stack, then the totals.
    let (o, _) = wasmprobe(&["run", "stackcount", "--json", "--arg", &probe, "--replay", dat.to_str().unwrap()]);
    let json = ok(&o);
    let records: Vec<serde_json::Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records[0], serde_json::json!({"folded": stack, "count": 1}), "{json}");
    assert_eq!(
        records[1],
        serde_json::json!({"events": 1, "stacks": 1, "without_stack": 0, "stopped_early": records[1]["stopped_early"]})
    );

    // trace-cmd reads the recording, our option skipped, the user stack printed.
    require!("trace-cmd reads the recording": trace_cmd);
    let o = Command::new("trace-cmd").args(["report", "-i", dat.to_str().unwrap()]).output().unwrap();
    let report = ok(&o);
    assert!(report.contains("user_stack:"), "{report}");
}
