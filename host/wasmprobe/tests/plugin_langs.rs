//! Plugins in Python and JavaScript: the examples of `guest-examples/python` and
//! `guest-examples/js`, built with the SDKs (`guest-sdk-python`, `guest-sdk-js`), run live
//! against a real command, and their output compared with the Rust example's over the same
//! recording (the Rust one replayed), and with their own replay.

mod langs_support;

use std::process::{Command, Output};

use langs_support::{example, Lang};
use testkit::{require, test_name};

fn wasmprobe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasmprobe"))
        .args(args)
        .env("WASMPROBE_CACHE", std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("lang-cache"))
        .output()
        .expect("run wasmprobe")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(o: &Output) {
    assert!(o.status.success(), "stdout:\n{}\nstderr:\n{}", stdout(o), String::from_utf8_lossy(&o.stderr));
}

/// JSON records only (the traced command's output and our notes are not).
fn records(o: &Output) -> Vec<String> {
    stdout(o).lines().filter(|l| l.starts_with('{')).map(str::to_string).collect()
}

/// Records `sh -c script` with `plugin` live (its `--json` records on stdout), then replays
/// the recording with the plugin itself and with the Rust `builtin`: all three must print the
/// same records. Returns them.
fn live_and_replays_agree(plugin: &str, builtin: &str, args: &[&str], script: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let dat = dir.path().join("rec.dat");
    let d = dat.to_str().unwrap();
    let mut rec = vec!["record", "-o", d, "--plugin", plugin, "--json"];
    rec.extend_from_slice(args);
    rec.extend_from_slice(&["--", "sh", "-c", script]);
    let live = wasmprobe(&rec);
    ok(&live);
    let live = records(&live);
    assert!(!live.is_empty(), "{plugin} emitted no record live");
    for p in [plugin, builtin] {
        let mut run = vec!["run", p, "--json", "--replay", d];
        run.extend_from_slice(args);
        let replayed = wasmprobe(&run);
        ok(&replayed);
        assert_eq!(records(&replayed), live, "{p} replayed over the recording of {plugin}'s live run");
    }
    live
}

/// A per-process row names the workload's `ls` (forked by `sh`, then exec'd). syscount names a
/// pid when its first batch is delivered: by then the process has usually exec'd `ls` (or
/// exited, and is named by its exit name), but a batch delivered between the fork and the exec
/// names it `sh`. Either name is one the process had.
fn names_the_workload(recs: &[String]) -> bool {
    recs.iter().any(|r| r.starts_with("{\"pid\":") && (r.contains("\"comm\":\"ls\"") || r.contains("\"comm\":\"sh\"")))
}

#[test]
fn python_syscount_counts_what_the_rust_one_counts() {
    require!(root, tracefs, raw_syscalls);
    let Some(py) = example(test_name!(), Lang::Python, "syscount") else { return };
    let recs = live_and_replays_agree(py.to_str().unwrap(), "syscount", &["--arg", "records=1"], "ls / >/dev/null");
    assert!(recs.iter().any(|r| r.starts_with("{\"syscall\":")), "{recs:?}");
    assert!(names_the_workload(&recs), "{recs:?}");
}

#[test]
fn python_syscount_tables_equal_the_rust_ones() {
    require!(root, tracefs, raw_syscalls);
    let Some(py) = example(test_name!(), Lang::Python, "syscount") else { return };
    let dir = tempfile::tempdir().unwrap();
    let dat = dir.path().join("rec.dat");
    let d = dat.to_str().unwrap();
    let live = wasmprobe(&["record", "-o", d, "--plugin", py.to_str().unwrap(), "--", "sh", "-c", "ls / >/dev/null"]);
    ok(&live);
    assert!(stdout(&live).contains("Top 10 syscalls by count:\n SYSCALL      COUNT\n"), "{}", stdout(&live));
    let rust = wasmprobe(&["run", "syscount", "--replay", d]);
    let python = wasmprobe(&["run", py.to_str().unwrap(), "--replay", d]);
    ok(&rust);
    ok(&python);
    assert_eq!(stdout(&python), stdout(&rust));
    assert!(stdout(&live).ends_with(&stdout(&rust)), "live:\n{}\nreplayed:\n{}", stdout(&live), stdout(&rust));
}

#[test]
fn python_exec_open_prints_what_the_rust_one_prints() {
    require!(root, tracefs, uprobes);
    let Some(py) = example(test_name!(), Lang::Python, "exec-open") else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hello.txt");
    std::fs::write(&file, "hi\n").unwrap();
    let f = file.to_str().unwrap();
    let script = format!("cat {f} /nonexistent 2>/dev/null; true");
    let recs = live_and_replays_agree(py.to_str().unwrap(), "exec-open", &[], &script);
    assert!(recs.iter().any(|r| r.contains(&format!("\"comm\":\"cat\",\"file\":\"{f}\""))), "{recs:?}");
    assert!(recs.iter().any(|r| r.contains("\"ret\":-1")), "libc's failed open returns -1: {recs:?}");

    // Text, as the man page prints it: the same lines as the Rust one's over one recording.
    let dat = dir.path().join("text.dat");
    let d = dat.to_str().unwrap();
    let live = wasmprobe(&["record", "-o", d, "--plugin", py.to_str().unwrap(), "--", "sh", "-c", &script]);
    ok(&live);
    let lines = |s: &str| s.lines().filter(|l| l.contains(": open ")).map(str::to_string).collect::<Vec<_>>();
    let rust = wasmprobe(&["run", "exec-open", "--replay", d]);
    ok(&rust);
    assert_eq!(lines(&stdout(&live)), lines(&stdout(&rust)));
    assert!(lines(&stdout(&live)).contains(&format!("{}-cat: open file='{f}'", pid_of_cat(&stdout(&live)))));
}

/// The pid in `PID-cat: open ...` lines.
fn pid_of_cat(out: &str) -> String {
    out.lines().find_map(|l| l.split_once("-cat: open ").map(|(p, _)| p.to_string())).unwrap_or_default()
}

#[test]
fn js_openlat_histogram_equals_the_rust_one() {
    require!(root, tracefs, uprobes);
    let Some(js) = example(test_name!(), Lang::Js, "openlat") else { return };
    let recs = live_and_replays_agree(js.to_str().unwrap(), "openlat", &[], "cat /etc/hostname /etc/passwd >/dev/null");
    assert!(recs.iter().all(|r| r.starts_with("{\"hist\":\"@usecs\",\"low\":")), "{recs:?}");

    // The text histogram too.
    let dir = tempfile::tempdir().unwrap();
    let dat = dir.path().join("text.dat");
    let d = dat.to_str().unwrap();
    let live = wasmprobe(&["record", "-o", d, "--plugin", js.to_str().unwrap(), "--", "sh", "-c", "cat /etc/hostname"]);
    ok(&live);
    let rust = wasmprobe(&["run", "openlat", "--replay", d]);
    ok(&rust);
    let hist = |s: &str| s.lines().skip_while(|l| *l != "@usecs:").map(str::to_string).collect::<Vec<_>>();
    assert!(hist(&stdout(&live)).len() >= 2, "{}", stdout(&live));
    assert_eq!(hist(&stdout(&live)), hist(&stdout(&rust)));
}

/// The last line of stderr after `plugin NAME: ` (the name is the component's file stem).
fn reason(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr);
    let last = err.lines().last().unwrap_or_default().to_string();
    let rest = last.strip_prefix("wasmprobe: error: plugin ").unwrap_or_else(|| panic!("not our error line: {err}"));
    rest.split_once(": ").map(|(_, r)| r.to_string()).unwrap_or_default()
}

/// `wasmprobe inspect` of a hostile plugin with `--arg attack=NAME`: fails, in bounded time,
/// with one line giving the reason.
fn attack(plugin: &std::path::Path, name: &str) -> String {
    let t = std::time::Instant::now();
    let o = wasmprobe(&["inspect", plugin.to_str().unwrap(), "--arg", &format!("attack={name}")]);
    assert!(!o.status.success(), "attack {name} succeeded: {}", stdout(&o));
    // Budgets are 1 s; the rest is loading (the compile is cached by then, but not the first).
    assert!(t.elapsed() < std::time::Duration::from_secs(60), "attack {name} took {:?}", t.elapsed());
    reason(&o)
}

#[test]
fn hostile_python_plugins_are_contained() {
    let Some(py) = example(test_name!(), Lang::Python, "hostile") else { return };
    let cases = [
        ("shadow", "init failed: refused: FileNotFoundError: [Errno 44] No such file or directory: '/etc/shadow'"),
        ("environ", "init failed: refused: OSError: the environment is empty"),
        ("network", "init failed: refused: ModuleNotFoundError: No module named 'socket'"),
        ("loop", "exceeded its CPU budget of 1s in init"),
        ("memory", "exceeded its memory limit of 64 MiB in init"),
    ];
    for (name, why) in cases {
        assert_eq!(attack(&py, name), why, "attack {name}");
    }
    // inspect takes run's limits too.
    let o = wasmprobe(&["inspect", py.to_str().unwrap(), "--arg", "attack=memory", "--memory-mib", "48"]);
    assert_eq!(reason(&o), "exceeded its memory limit of 48 MiB in init");
    let o = wasmprobe(&["inspect", py.to_str().unwrap(), "--arg", "attack=loop", "--setup-budget", "300ms"]);
    assert_eq!(reason(&o), "exceeded its CPU budget of 300ms in init");
}

#[test]
fn hostile_js_plugins_are_contained() {
    let Some(js) = example(test_name!(), Lang::Js, "hostile") else { return };
    let cases = [
        ("loop", "exceeded its CPU budget of 1s in init"),
        ("memory", "exceeded its memory limit of 64 MiB in init"),
        // componentize-js links fetch to wasi:http, which is left out: it traps.
        ("fetch", "trapped in init: wasm trap: wasm `unreachable` instruction executed at [constructor]fields"),
        // An Error comes back as the plugin's message (not "expected a string").
        ("throw", "init failed: TypeError: thrown on purpose (at init@app.js:19:35)"),
    ];
    for (name, why) in cases {
        assert_eq!(attack(&js, name), why, "attack {name}");
    }
}

#[test]
fn a_plugin_file_loaded_before_is_mapped_by_its_identity_and_a_changed_one_is_not() {
    use std::os::unix::fs::PermissionsExt;
    use wasmprobe::plugin::{FixedKernel, Plugin, PluginSource, Sandbox, StdOutput};
    let Some(py) = example(test_name!(), Lang::Python, "syscount") else { return };
    let dir = tempfile::tempdir().unwrap();
    // The compiled files of the other tests, copied: a fresh cache would compile 18 MB again.
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();
    let shared = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("lang-cache");
    for e in std::fs::read_dir(&shared).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().ends_with(".cwasm") {
            std::fs::copy(e.path(), cache.join(e.file_name())).unwrap();
        }
    }
    let file = dir.path().join("plugin.wasm");
    std::fs::copy(&py, &file).unwrap();
    let sandbox = Sandbox { cache_dir: Some(cache.clone()), ..Sandbox::default() };
    let load = |source: PluginSource| Plugin::load(&source, &sandbox, Box::new(StdOutput::default())).unwrap();
    let plan_of = |mut p: Plugin| p.init(&[], std::sync::Arc::new(FixedKernel::default())).unwrap();
    let first = load(PluginSource::Path(file.clone()));
    let ids: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("id-"))
        .collect();
    assert_eq!(ids.len(), 1, "one identity recorded ({:?})", first.load_info().cache);
    assert_eq!(plan_of(first).probes[0].name, "sys_enter");

    // The identity file decides what the unchanged file maps to, without reading the file:
    // pointed at exec-open's compiled code, the "syscount" file runs exec-open.
    let exec_open = load(PluginSource::Builtin("exec-open".into()));
    let (wasmprobe::plugin::CacheOutcome::Hit(compiled) | wasmprobe::plugin::CacheOutcome::Stored(compiled)) =
        exec_open.load_info().cache.clone()
    else {
        panic!("exec-open not cached: {:?}", exec_open.load_info().cache)
    };
    std::fs::write(&ids[0], compiled.file_name().unwrap().to_str().unwrap()).unwrap();
    let mapped = load(PluginSource::Path(file.clone()));
    assert!(mapped.load_info().cache.is_hit());
    assert_eq!(mapped.load_info().wasm_bytes as u64, std::fs::metadata(&file).unwrap().len());
    assert_eq!(plan_of(mapped).probes[0].name, "open", "mapped by identity, not by content");

    // The file rewritten in place (same inode, new ctime) with the Rust syscount: that one runs.
    std::fs::write(&file, wasmprobe::plugin::builtin("syscount").unwrap()).unwrap();
    let changed = load(PluginSource::Path(file.clone()));
    assert_eq!(changed.load_info().wasm_bytes, wasmprobe::plugin::builtin("syscount").unwrap().len());
    assert_eq!(plan_of(changed).probes[0].name, "sys_enter");
}

#[test]
fn the_cache_evicts_least_recently_used_files_down_to_its_cap() {
    use std::time::{Duration, SystemTime};
    let dir = tempfile::tempdir().unwrap();
    let t0 = SystemTime::now() - Duration::from_secs(1000);
    let mk = |name: &str, len: usize, age: u64| {
        let p = dir.path().join(format!("{name:0>64}.cwasm"));
        std::fs::write(&p, vec![0u8; len]).unwrap();
        std::fs::File::options().append(true).open(&p).unwrap().set_modified(t0 + Duration::from_secs(age)).unwrap();
        p
    };
    let oldest = mk("a", 1000, 1);
    let middle = mk("b", 1000, 2);
    let newest = mk("c", 1000, 3);
    let kept = mk("d", 1000, 0); // the one just stored: never evicted, however old its mtime
    let id = dir.path().join("id-x");
    std::fs::write(&id, oldest.file_name().unwrap().to_str().unwrap()).unwrap();
    let removed = wasmprobe::plugin::cache::evict(dir.path(), 2500, &kept);
    assert_eq!(removed, vec![oldest.clone(), middle.clone()]);
    assert!(newest.exists() && kept.exists());
    assert!(!id.exists(), "the identity of an evicted file goes with it");
    assert!(wasmprobe::plugin::cache::evict(dir.path(), 2500, &kept).is_empty(), "under the cap: nothing to do");
}

/// `wasmprobe new --lang LANG DIR`, `make -C DIR` (with `vars`), and a live run of the
/// result on `cat FILE`: the project's plugin prints the man page's lines.
fn new_project_builds_and_runs(lang: &str, vars: &[String], prepare: impl FnOnce(&std::path::Path)) {
    let dir = tempfile::tempdir().unwrap();
    let proj = dir.path().join(format!("my-{lang}-plugin"));
    let o = wasmprobe(&["new", "--lang", lang, proj.to_str().unwrap()]);
    ok(&o);
    assert!(std::fs::read_to_string(proj.join("README.md")).unwrap().contains("make"), "the README says how to build");
    prepare(&proj);
    let t = std::time::Instant::now();
    let make = Command::new("make").arg("-C").arg(&proj).args(vars).output().unwrap();
    ok(&make);
    eprintln!("{lang}: project built in {:?}", t.elapsed());
    let file = dir.path().join("hello.txt");
    std::fs::write(&file, "hi\n").unwrap();
    let wasm = proj.join("plugin.wasm");
    let run = wasmprobe(&["run", wasm.to_str().unwrap(), "--", "cat", file.to_str().unwrap()]);
    ok(&run);
    assert!(stdout(&run).contains(&format!("-cat: open file='{}'", file.display())), "{}", stdout(&run));
    assert!(stdout(&run).contains("-cat: open ret=3"), "{}", stdout(&run));
    // A second `new` into the same (now full) directory is refused.
    let again = wasmprobe(&["new", "--lang", lang, proj.to_str().unwrap()]);
    assert!(!again.status.success());
    assert_eq!(
        String::from_utf8_lossy(&again.stderr).trim(),
        format!("wasmprobe: error: {}: exists and is not empty", proj.display())
    );
}

#[test]
fn new_python_project_builds_and_runs() {
    require!(root, tracefs, uprobes);
    let Some(tool) = langs_support::componentize_py() else {
        return testkit::missing_prerequisite(test_name!(), "needs componentize-py (.ci/setup installs it)");
    };
    new_project_builds_and_runs("python", &[format!("COMPONENTIZE_PY={}", tool.display())], |_| {});
}

#[test]
fn new_js_project_builds_and_runs() {
    require!(root, tracefs, uprobes);
    if !langs_support::js_toolchain() {
        return testkit::missing_prerequisite(test_name!(), "needs node and componentize-js (.ci/setup installs it)");
    }
    // The pinned packages guest-sdk-js has installed (what `npm ci` in the project installs).
    let modules = langs_support::repo().join("guest-sdk-js/node_modules");
    new_project_builds_and_runs("js", &[], |proj| {
        std::os::unix::fs::symlink(&modules, proj.join("node_modules")).unwrap();
    });
}

#[test]
fn new_rust_project_builds_and_runs() {
    require!(root, tracefs, uprobes, program("cargo"));
    // One target directory for every run of this test: the SDK's dependencies build once.
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("new-rust-target");
    new_project_builds_and_runs("rust", &[format!("CARGO_TARGET_DIR={}", target.display())], |_| {});
}

#[test]
fn js_syscount_counts_what_the_rust_one_counts() {
    require!(root, tracefs, raw_syscalls);
    let Some(js) = example(test_name!(), Lang::Js, "syscount") else { return };
    let recs = live_and_replays_agree(js.to_str().unwrap(), "syscount", &["--arg", "records=1"], "ls / >/dev/null");
    assert!(names_the_workload(&recs), "{recs:?}");
}

/// The JS SDK's `batch.count` counts a batch whose records carry the field alone by sorting
/// the batch's words (its sorted path): over random batches made to catch it out (field values
/// equal to header words, timestamps among the values, words that are NaN or -0 as doubles,
/// many pids), what it counts equals the walk of the records (`count-check.mjs`, under node).
#[test]
fn js_count_sorted_path_equals_the_walk() {
    if Command::new("node").arg("--version").output().is_err() {
        return testkit::missing_prerequisite(test_name!(), "needs node (.ci/setup installs it)");
    }
    let check = langs_support::repo().join("guest-sdk-js/count-check.mjs");
    let o = Command::new("node").arg(&check).arg("5000").output().unwrap();
    ok(&o);
    let out = stdout(&o);
    assert!(out.starts_with("count-check: 5000 batches, ") && out.trim_end().ends_with(", all equal"), "{out}");
    let sorted: u32 = out.split(", ").nth(1).and_then(|s| s.split(' ').next()).unwrap().parse().unwrap();
    assert!(sorted >= 1000, "the sorted path took only {sorted} of 5000 batches: {out}");
}
