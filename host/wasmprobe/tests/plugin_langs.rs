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

#[test]
fn python_syscount_counts_what_the_rust_one_counts() {
    require!(root, tracefs, raw_syscalls);
    let Some(py) = example(test_name!(), Lang::Python, "syscount") else { return };
    let recs = live_and_replays_agree(py.to_str().unwrap(), "syscount", &["--arg", "records=1"], "ls / >/dev/null");
    assert!(recs.iter().any(|r| r.starts_with("{\"syscall\":")), "{recs:?}");
    assert!(recs.iter().any(|r| r.contains("\"comm\":\"ls\"")), "{recs:?}");
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
