//! `--json` and `-o`: with `--json` every line of our output is one JSON object (records the
//! plugin emits, `{"plugin":..,"line":..}` for the lines it prints, `{"plugin":..,"stream":
//! "stdout","line":..}` for its WASI stdout), and the traced command's output never shares it
//! (its stdout goes to our stderr, or stays on the terminal when `-o FILE` takes ours).
//!
//! The first tests load the built-ins in process with the run's own sink writing JSON to a file
//! (no root needed); the live ones run the binary against this kernel (root and tracefs).

mod plugin_support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use plugin_support::*;
use testkit::require;
use wasmprobe::plugin::{BatchWriter, FixedKernel, Plugin, PluginSource, Sandbox, StdOutput, Value};

// ---- the run's sink, in process ----

/// A plugin loaded with the run's own sink, in JSON mode (`json`) or not, writing to a file.
fn load_to_file(source: PluginSource, json: bool) -> (Plugin, tempfile::NamedTempFile) {
    let file = tempfile::NamedTempFile::new().unwrap();
    let sink = StdOutput::to_file(json, file.reopen().unwrap());
    // What is tested is the output, not speed: a debug-built host on a loaded machine can
    // take longer than the default 100 ms for a batch of 4000 writes.
    let sandbox = Sandbox { callback_budget: std::time::Duration::from_secs(20), ..sandbox() };
    let mut p = Plugin::load(&source, &sandbox, Box::new(sink)).unwrap();
    p.set_comm_lookup(Box::new(comm));
    (p, file)
}

fn builtin_json(name: &str) -> (Plugin, tempfile::NamedTempFile) {
    load_to_file(PluginSource::Builtin(name.into()), true)
}

/// The lines of `path`, each checked to be one JSON object.
fn json_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "the last line is not complete: {text:?}");
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {} is not JSON ({e}): {line:?}", i + 1));
        assert!(v.is_object(), "line {} is not a JSON object: {line:?}", i + 1);
    }
    text.lines().map(str::to_string).collect()
}

fn all_features() -> Arc<FixedKernel> {
    Arc::new(FixedKernel::with_features(&["kprobe", "uprobe", "eprobe", "tracepoint"]))
}

fn no_kprobes() -> Arc<FixedKernel> {
    Arc::new(FixedKernel::with_features(&["uprobe", "tracepoint"]))
}

#[test]
fn the_sinks_json_shapes() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let mut out = StdOutput::to_file(true, file.reopen().unwrap());
    use wasmprobe::plugin::{Level, Output, Stdio};
    assert!(out.wants_records());
    out.line("p", "a \"quoted\"\tline");
    let fields = |f: &[(&str, Value)]| f.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<Vec<_>>();
    out.record(
        "p",
        &fields(&[
            ("z", Value::U64(u64::MAX)),
            ("a", Value::I64(-1)),
            ("z", Value::Str("last wins".into())),
            ("nan", Value::F64(f64::NAN)),
            ("f", Value::F64(0.5)),
            ("ok", Value::Bool(true)),
        ]),
    );
    out.record("p", &[]);
    out.stdio("p", Stdio::Stdout, "from WASI");
    out.stdio("p", Stdio::Stderr, "to our stderr, not the output");
    out.log("p", Level::Warn, "to our stderr too");
    drop(out);
    assert_eq!(
        json_lines(file.path()),
        [
            r#"{"plugin":"p","line":"a \"quoted\"\tline"}"#,
            r#"{"z":"last wins","a":-1,"nan":null,"f":0.5,"ok":true}"#,
            r#"{}"#,
            r#"{"plugin":"p","stream":"stdout","line":"from WASI"}"#,
        ]
    );

    // Without --json: the text as before, to the file.
    let file = tempfile::NamedTempFile::new().unwrap();
    let mut out = StdOutput::to_file(false, file.reopen().unwrap());
    assert!(!out.wants_records());
    out.line("p", "plain");
    out.record("p", &fields(&[("k", Value::I64(3)), ("s", Value::Str("x y".into()))]));
    out.stdio("p", Stdio::Stdout, "from WASI");
    drop(out);
    assert_eq!(std::fs::read_to_string(file.path()).unwrap(), "plain\nk=3 s=x y\n[p] from WASI\n");
}

#[test]
fn exec_open_emits_pid_comm_file_and_ret_with_json() {
    // kprobes (the man page's probes).
    let (mut p, file) = builtin_json("exec-open");
    p.init(&[], all_features()).unwrap();
    p.set_layouts(vec![kprobe_open_layout(1500), kretprobe_ret_layout(1501)]).unwrap();
    let mut b = BatchWriter::new();
    let open = Payload::new(1500, 1234, 28).data_loc_str(16, "/etc/ld.so.cache");
    p.pack(&mut b, 0, 1, 1234, 1_000, &open.bytes);
    p.pack(&mut b, 1, 1, 1234, 2_000, &Payload::new(1501, 1234, 24).u64_at(24, 3).bytes);
    p.pack(&mut b, 1, 0, 1234, 3_000, &Payload::new(1501, 1234, 24).u64_at(24, (-2i64) as u64).bytes);
    p.on_batch(b.as_bytes(), 0).unwrap();
    p.finish().unwrap();
    drop(p);
    assert_eq!(
        json_lines(file.path()),
        [
            r#"{"pid":1234,"comm":"cat","file":"/etc/ld.so.cache"}"#,
            r#"{"pid":1234,"comm":"cat","ret":3}"#,
            r#"{"pid":1234,"comm":"cat","ret":-2}"#,
        ]
    );

    // The uprobe fallback: its note is a log (stderr), not output.
    let (mut p, file) = builtin_json("exec-open");
    p.init(&[], no_kprobes()).unwrap();
    p.set_layouts(exec_open_uprobe_layouts()).unwrap();
    let mut b = BatchWriter::new();
    p.pack(&mut b, 1, 0, 1234, 10, &Payload::new(2002, 1234, 12).data_loc_str(16, "/etc/\"quoted\"").bytes);
    p.pack(&mut b, 3, 0, 1234, 20, &Payload::new(2004, 1234, 20).u32_at(24, u32::MAX).bytes);
    p.pack(&mut b, 0, 1, 99, 30, &Payload::new(2001, 99, 12).data_loc_str(16, "").bytes);
    p.on_batch(b.as_bytes(), 0).unwrap();
    drop(p);
    assert_eq!(
        json_lines(file.path()),
        [
            r#"{"pid":1234,"comm":"cat","file":"/etc/\"quoted\""}"#,
            r#"{"pid":1234,"comm":"cat","ret":-1}"#,
            r#"{"pid":99,"comm":"<...>","file":""}"#,
        ]
    );
}

fn syscount_batch(p: &mut Plugin) -> BatchWriter {
    p.set_layouts(vec![sys_enter_layout(21)]).unwrap();
    let mut b = BatchWriter::new();
    for (pid, id) in [(1234, 0), (1234, 0), (77, 1), (1234, 257), (77, 0), (4321, 1)] {
        p.pack(&mut b, 0, 0, pid, 0, &Payload::new(21, pid, 56).u64_at(8, id).bytes);
    }
    b
}

#[test]
fn syscount_emits_records_by_default_with_json() {
    let (mut p, file) = builtin_json("syscount");
    p.init(&[("top".into(), "2".into())], all_features()).unwrap();
    let b = syscount_batch(&mut p);
    p.on_batch(b.as_bytes(), 0).unwrap();
    p.on_batch(&[], 5).unwrap();
    p.finish().unwrap();
    drop(p);
    assert_eq!(
        json_lines(file.path()),
        [
            r#"{"syscall":0,"count":3}"#,
            r#"{"syscall":1,"count":2}"#,
            r#"{"pid":1234,"comm":"cat","count":3}"#,
            r#"{"pid":77,"comm":"sshd","count":2}"#,
            r#"{"lost":5}"#,
        ]
    );

    // records=0 keeps the tables: each line of them one JSON object.
    let (mut p, file) = builtin_json("syscount");
    p.init(&[("top".into(), "1".into()), ("records".into(), "0".into())], all_features()).unwrap();
    let b = syscount_batch(&mut p);
    p.on_batch(b.as_bytes(), 0).unwrap();
    p.finish().unwrap();
    drop(p);
    let lines: Vec<serde_json::Value> =
        json_lines(file.path()).iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let expect = [
        "Top 1 syscalls by count:",
        " SYSCALL      COUNT",
        "       0          3",
        "",
        "Top 1 processes by syscall count:",
        "     PID COMM                  COUNT",
        "    1234 cat                       3",
    ];
    let want: Vec<serde_json::Value> =
        expect.iter().map(|l| serde_json::json!({"plugin": "syscount", "line": l})).collect();
    assert_eq!(lines, want);
}

#[test]
fn openlat_emits_one_record_per_histogram_row_with_json() {
    let (mut p, file) = builtin_json("openlat");
    p.init(&[], no_kprobes()).unwrap();
    p.set_layouts(vec![
        bare_layout("open", 1),
        bare_layout("openat", 2),
        uretprobe_ret_layout("openret", 3),
        uretprobe_ret_layout("openatret", 4),
    ])
    .unwrap();
    let mut b = BatchWriter::new();
    let mut ts = 1_000_000;
    // Latencies in us: 0, 3, 3, 5, 1500 (the text test's: [0] 1, [2, 4) 2, [4, 8) 1, [1K, 2K) 1).
    for (pid, us) in [(1, 0u64), (2, 3), (3, 3), (4, 5), (5, 1500)] {
        p.pack(&mut b, 1, 0, pid, ts, &Payload::new(2, pid, 8).bytes);
        p.pack(&mut b, 3, 0, pid, ts + us * 1000 + 10, &Payload::new(4, pid, 24).bytes);
        ts += 10_000_000;
    }
    p.on_batch(b.as_bytes(), 0).unwrap();
    p.finish().unwrap();
    drop(p);
    let mut want = vec![(0u64, 1u64, 1u64), (1, 2, 0), (2, 4, 2), (4, 8, 1)];
    want.extend((3..10).map(|k| (1 << k, 1 << (k + 1), 0)));
    want.push((1024, 2048, 1));
    let want: Vec<String> = want
        .iter()
        .map(|(low, high, n)| format!(r#"{{"hist":"@usecs","low":{low},"high":{high},"count":{n}}}"#))
        .collect();
    assert_eq!(json_lines(file.path()), want);
}

#[test]
fn readline_emits_a_record_per_line_and_no_header_with_json() {
    let (mut p, file) = builtin_json("readline");
    p.init(&[], no_kprobes()).unwrap();
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
    drop(p);
    assert_eq!(json_lines(file.path()), [r#"{"pid":4321,"comm":"bash","command":"ls -l /tmp"}"#]);
}

#[test]
fn prints_and_wasi_stdout_of_a_flooding_plugin_are_json_lines() {
    let (mut p, file) = load_to_file(guest_path("hostile_flood"), true);
    p.init(&[], all_features()).unwrap();
    p.set_layouts(vec![sys_enter_layout(21)]).unwrap();
    let mut b = BatchWriter::new();
    p.pack(&mut b, 0, 0, 1234, 0, &Payload::new(21, 1234, 56).bytes);
    p.on_batch(b.as_bytes(), 0).unwrap();
    drop(p);
    let lines = json_lines(file.path());
    let (mut printed, mut wasi) = (0, 0);
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let o = v.as_object().unwrap();
        assert_eq!(o["plugin"], "hostile_flood", "{l}");
        match o.get("stream") {
            None => {
                assert_eq!(o.len(), 2, "{l}");
                printed += 1;
            }
            Some(s) => {
                assert_eq!((s.as_str(), o.len()), (Some("stdout"), 3), "{l}");
                assert!(o["line"].as_str().unwrap().starts_with("stdout "), "{l}");
                wasi += 1;
            }
        }
    }
    // The per-call cap keeps part of each stream; what is kept is JSON, line by line.
    assert!(printed > 100 && wasi > 100, "{printed} printed, {wasi} WASI lines");
}

// ---- the binary, live ----

/// Runs the binary; returns its output and its pid (what its probes and instance are named after).
fn run_wasmprobe(args: &[&str]) -> (Output, u32) {
    let child = Command::new(env!("CARGO_BIN_EXE_wasmprobe"))
        .args(args)
        .env("WASMPROBE_CACHE", std::env::temp_dir().join("wasmprobe-test-cache"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run wasmprobe");
    let pid = child.id();
    (child.wait_with_output().expect("wait for wasmprobe"), pid)
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Every line of `s` parsed as a JSON object (panics naming the first that is not).
fn objects(s: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    s.lines()
        .map(|l| match serde_json::from_str::<serde_json::Value>(l) {
            Ok(serde_json::Value::Object(o)) => o,
            _ => panic!("not a JSON object: {l:?}\nall of it:\n{s}"),
        })
        .collect()
}

/// The names of a parsed object, sorted (a parsed object does not keep their order; the
/// in-process tests above check the order on the text).
fn keys(o: &serde_json::Map<String, serde_json::Value>) -> Vec<&str> {
    let mut k: Vec<&str> = o.keys().map(String::as_str).collect();
    k.sort();
    k
}

/// Nothing named after the finished wasmprobe process `pid` may be left in the kernel.
fn assert_kernel_clean(pid: u32) {
    let t = "/sys/kernel/tracing";
    for f in ["uprobe_events", "dynamic_events"] {
        let s = std::fs::read_to_string(format!("{t}/{f}")).unwrap_or_default();
        assert!(!s.lines().any(|l| l.contains(&format!(":wasmprobe_{pid}_"))), "{f} still has probes of {pid}:\n{s}");
    }
    let left: Vec<String> = std::fs::read_dir(format!("{t}/instances"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&format!("wasmprobe-{pid}-")))
        .collect();
    assert!(left.is_empty(), "instances of {pid} left: {left:?}");
}

/// A file for `cat` to open, with a line of text that must not reach our JSON.
fn file_to_cat(dir: &Path, marker: &str) -> String {
    let file = dir.join("cat-me.txt");
    std::fs::write(&file, format!("{marker}\n")).unwrap();
    file.to_str().unwrap().to_string()
}

/// exec-open's records of `cat` opening `file` (and its return, a descriptor) among `records`.
fn assert_cat_opened(records: &[serde_json::Map<String, serde_json::Value>], file: &str, all: &str) {
    let open = records.iter().find(|r| r.get("file").and_then(|f| f.as_str()) == Some(file)).expect(all);
    assert_eq!(keys(open), ["comm", "file", "pid"], "{all}");
    assert_eq!(open["comm"], "cat", "{all}");
    let pid = open["pid"].as_i64().expect(all);
    assert!(
        records.iter().any(|r| r.get("pid").and_then(|p| p.as_i64()) == Some(pid)
            && r.get("ret").and_then(|v| v.as_i64()).is_some_and(|fd| fd >= 0)),
        "no successful return for {pid}: {all}"
    );
}

#[test]
fn exec_open_json_is_json_lines_and_the_commands_stdout_goes_to_stderr() {
    require!(root, tracefs, uprobes);
    let dir = tempfile::tempdir().unwrap();
    let f = file_to_cat(dir.path(), "FILE-TEXT-jx1");
    let script = format!("echo MARKER-jx1; cat {f}");
    let (o, wp) = run_wasmprobe(&["run", "exec-open", "--json", "--", "sh", "-c", &script]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert_cat_opened(&objects(&out), &f, &out);
    for m in ["MARKER-jx1", "FILE-TEXT-jx1"] {
        assert!(!out.contains(m), "the command's output is on stdout:\n{out}");
        assert!(err.lines().any(|l| l == m), "the command's output is not on stderr:\n{err}");
    }
    assert_kernel_clean(wp);
}

#[test]
fn dash_o_takes_our_output_and_leaves_the_command_on_stdout() {
    require!(root, tracefs, uprobes);
    let dir = tempfile::tempdir().unwrap();
    let f = file_to_cat(dir.path(), "FILE-TEXT-o1");
    let script = format!("echo MARKER-o1; cat {f}");

    // --json -o FILE: JSON lines in FILE, the command's output on stdout as usual.
    let json = dir.path().join("out.json");
    let (o, wp) =
        run_wasmprobe(&["run", "exec-open", "--json", "-o", json.to_str().unwrap(), "--", "sh", "-c", &script]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(out, "MARKER-o1\nFILE-TEXT-o1\n");
    assert!(!err.contains("MARKER-o1"), "{err}");
    let written = std::fs::read_to_string(&json).unwrap();
    assert_cat_opened(&objects(&written), &f, &written);
    assert_kernel_clean(wp);

    // --output FILE without --json: the plugin's text in FILE, exactly as it prints it.
    let plain = dir.path().join("out.txt");
    let (o, wp) = run_wasmprobe(&["run", "exec-open", "--output", plain.to_str().unwrap(), "--", "cat", &f]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(out, "FILE-TEXT-o1\n");
    let written = std::fs::read_to_string(&plain).unwrap();
    let open = written.lines().find(|l| l.ends_with(&format!(": open file='{f}'"))).expect(&written);
    let pid = open.split_once('-').unwrap().0;
    assert!(written.lines().all(|l| l.starts_with(&format!("{pid}-cat: open "))), "{written}");
    assert_kernel_clean(wp);

    // A file that cannot be created: one line, nothing armed.
    let (o, wp) = run_wasmprobe(&["run", "exec-open", "-o", "/nonexistent-dir/out.json", "--", "true"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(out, "");
    assert_eq!(
        err.lines().last(),
        Some("wasmprobe: error: cannot create /nonexistent-dir/out.json: No such file or directory (os error 2)")
    );
    assert_eq!(err.lines().filter(|l| l.contains("error")).count(), 1, "{err}");
    assert_kernel_clean(wp);
}

#[test]
fn syscount_json_is_records_only() {
    require!(root, tracefs, uprobes);
    let (o, wp) = run_wasmprobe(&["run", "syscount", "--json", "--", "sh", "-c", "echo MARKER-sc1; ls / >/dev/null"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(!out.contains("MARKER-sc1") && err.lines().any(|l| l == "MARKER-sc1"), "{out}\n{err}");
    let records = objects(&out);
    let shapes = [vec!["count", "syscall"], vec!["comm", "count", "pid"], vec!["lost"]];
    assert!(records.iter().all(|r| shapes.contains(&keys(r))), "{out}");
    // `ls` is forked by `sh`, then exec'd; syscount names the pid when its first batch
    // arrives, which may be before the exec.
    let ls = records
        .iter()
        .find(|r| r.get("comm").and_then(|c| c.as_str()).is_some_and(|c| c == "ls" || c == "sh"))
        .expect(&out);
    assert!(ls["count"].as_u64().unwrap() > 20, "ls makes dozens of syscalls: {out}");
    assert!(records.iter().filter(|r| r.contains_key("syscall")).count() == 10, "the top 10 syscalls: {out}");
    assert_kernel_clean(wp);
}

#[test]
fn openlat_json_is_histogram_records() {
    require!(root, tracefs, uprobes);
    let script = "echo MARKER-ol1; for i in 1 2 3 4 5 6 7 8; do cat /etc/hostname; done >/dev/null";
    let (o, wp) = run_wasmprobe(&["run", "openlat", "--json", "--", "sh", "-c", script]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(!out.contains("MARKER-ol1") && err.lines().any(|l| l == "MARKER-ol1"), "{out}\n{err}");
    let rows = objects(&out);
    let mut total = 0;
    let mut next_low = None;
    for r in &rows {
        assert_eq!(keys(r), ["count", "high", "hist", "low"], "{out}");
        assert_eq!(r["hist"], "@usecs");
        let (low, high) = (r["low"].as_u64().unwrap(), r["high"].as_u64().unwrap());
        assert!(high == 1 && low == 0 || high == 2 * low, "{out}");
        assert!(next_low.is_none_or(|n| n == low), "rows are contiguous: {out}");
        next_low = Some(high);
        total += r["count"].as_u64().unwrap();
    }
    assert!(total >= 8, "at least the 8 opens of /etc/hostname, got {total}:\n{out}");
    assert_kernel_clean(wp);
}

#[test]
fn readline_json_is_a_record_per_line_typed() {
    require!(root, tracefs, uprobes, program("script"));
    // An interactive bash on a pseudo-terminal (script(1)), so that bash reads with readline.
    let script = "printf '%s' \"$WP_INPUT\" | script -qc 'bash --norc --noprofile -i' /dev/null";
    let child = Command::new(env!("CARGO_BIN_EXE_wasmprobe"))
        .args(["run", "readline", "--json", "--", "sh", "-c", script])
        .env("WP_INPUT", "echo wasmprobe-readline-json\nexit\n")
        .env("WASMPROBE_CACHE", std::env::temp_dir().join("wasmprobe-test-cache"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let wp = child.id();
    let o = child.wait_with_output().unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    let records = objects(&out);
    let typed = records
        .iter()
        .find(|r| r.get("command").and_then(|c| c.as_str()) == Some("echo wasmprobe-readline-json"))
        .expect(&out);
    assert_eq!(keys(typed), ["comm", "command", "pid"], "{out}");
    assert_eq!(typed["comm"], "bash", "{out}");
    assert!(records.iter().all(|r| r.contains_key("command")), "only records, no header: {out}");
    // What bash echoed (the pseudo-terminal's output, through script) went to our stderr.
    assert!(err.contains("wasmprobe-readline-json"), "{err}");
    assert_kernel_clean(wp);
}

#[test]
fn a_recording_replays_to_the_same_json_lines() {
    require!(root, tracefs, uprobes);
    let dir = tempfile::tempdir().unwrap();
    let f = file_to_cat(dir.path(), "FILE-TEXT-r1");
    let dat = dir.path().join("exec-open.dat");
    let live = dir.path().join("live.json");
    let d = dat.to_str().unwrap();
    let script = format!("echo MARKER-r1; cat {f}");
    let (o, wp) = run_wasmprobe(&[
        "record",
        "-o",
        d,
        "--plugin",
        "exec-open",
        "--json",
        "--plugin-output",
        live.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        &script,
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(out, "MARKER-r1\nFILE-TEXT-r1\n", "with --plugin-output the command keeps stdout");
    let live = std::fs::read_to_string(&live).unwrap();
    assert_cat_opened(&objects(&live), &f, &live);
    assert_kernel_clean(wp);

    let (o, _) = run_wasmprobe(&["run", "exec-open", "--json", "--replay", d]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "stdout:\n{out}\nstderr:\n{err}");
    objects(&out);
    assert_eq!(out, live);

    let again = dir.path().join("replayed.json");
    let (o, _) = run_wasmprobe(&["run", "exec-open", "--json", "--replay", d, "-o", again.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    assert_eq!(text(&o).0, "");
    assert_eq!(std::fs::read_to_string(&again).unwrap(), live);
}
