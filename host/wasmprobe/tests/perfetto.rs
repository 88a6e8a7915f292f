//! Perfetto traces, read back with Perfetto's own protobuf definitions: the Python bindings
//! of the `perfetto` package (`perfetto.protos.perfetto.trace.perfetto_trace_pb2`, installed
//! by .ci/setup), through tests/perfetto/dump.py. What `convert` writes is compared event by
//! event with what `trace-cmd report -R -t` prints for the same trace.dat.
//!
//! Tests that record need root and tracefs with uprobes; every test needs python3 with the
//! `perfetto` package, and the comparisons trace-cmd. On a machine without them a test prints
//! `SKIP <test>: <why>` and passes; with `WASMPROBE_REQUIRE_ALL=1` (tests/run-all.sh, so CI)
//! a missing prerequisite fails it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use traceevent::{EventFormat, TraceDat};

// ---- prerequisites and running things ----------------------------------------------------

/// What a test needs besides python3 with the `perfetto` package.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// Nothing else.
    Python,
    /// Root and tracefs with uprobes (it records), and trace-cmd.
    Live,
}

/// Whether `test` can run here; prints SKIP (or fails under WASMPROBE_REQUIRE_ALL=1) if not.
fn require(test: &str, needs: Needs) -> bool {
    use testkit::need::{root, trace_cmd, tracefs, uprobes};
    if needs == Needs::Live && testkit::require(test, &[root, tracefs, uprobes, trace_cmd]).is_none() {
        return false;
    }
    let py = Command::new("python3")
        .args(["-c", "import perfetto.protos.perfetto.trace.perfetto_trace_pb2"])
        .stderr(Stdio::null())
        .status();
    if !py.is_ok_and(|s| s.success()) {
        let why = "needs python3 with the perfetto package (pip install perfetto; see .ci/setup)";
        testkit::missing_prerequisite(test, why);
        return false;
    }
    true
}

fn wasmprobe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasmprobe"))
        .args(args)
        .env("WASMPROBE_CACHE", std::env::temp_dir().join("wasmprobe-test-cache"))
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .output()
        .expect("run wasmprobe")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(o: &Output) {
    assert!(o.status.success(), "exit {:?}\nstdout:\n{}\nstderr:\n{}", o.status, text(&o.stdout), text(&o.stderr));
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The trace as Perfetto's Python bindings read it (see tests/perfetto/dump.py).
fn dump(pftrace: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/perfetto/dump.py");
    let o = Command::new("python3").arg(script).arg(pftrace).output().expect("run python3");
    ok(&o);
    serde_json::from_slice(&o.stdout).expect("dump.py prints JSON")
}

/// Records `-e` events (and exec-open's uprobes on this kernel) while `sh -c script` runs.
fn record(dat: &Path, script: &str, extra: &[&str]) -> Output {
    let mut args = vec!["record", "-o", s(dat), "-e", "sched", "-e", "task", "-e", "syscalls", "-e", "kmem"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "sh", "-c", script]);
    let o = wasmprobe(&args);
    ok(&o);
    o
}

// ---- trace-cmd report -R -t ----------------------------------------------------------------

/// One line of `trace-cmd report -R -t`.
#[derive(Debug, Clone)]
struct TcEvent {
    comm: String,
    pid: i64,
    cpu: u64,
    ts: u64,
    event: String,
    /// The text after `event:`, `name=value` pairs.
    raw: String,
}

fn trace_cmd_report(dat: &Path) -> Vec<TcEvent> {
    let o = Command::new("trace-cmd").args(["report", "-R", "-t", "-i", s(dat)]).output().expect("run trace-cmd");
    ok(&o);
    text(&o.stdout).lines().filter_map(parse_tc_line).collect()
}

/// `COMM-PID [CPU] SECS.NSECS: EVENT: FIELDS` (COMM may hold spaces and dashes).
fn parse_tc_line(line: &str) -> Option<TcEvent> {
    let line = line.trim_start();
    let mut from = 0;
    let (open, close) = loop {
        let open = from + line[from..].find(" [")?;
        let close = open + line[open..].find(']')?;
        if line[open + 2..close].bytes().all(|b| b.is_ascii_digit()) && close > open + 2 {
            break (open, close);
        }
        from = open + 2;
    };
    let (comm, pid) = line[..open].trim_end().rsplit_once('-')?;
    let rest = line[close + 1..].trim_start();
    let (ts, rest) = rest.split_once(": ")?;
    let (secs, nsecs) = ts.split_once('.')?;
    let (event, raw) = rest.split_once(':')?;
    Some(TcEvent {
        comm: comm.to_string(),
        pid: pid.parse().ok()?,
        cpu: line[open + 2..close].parse().ok()?,
        ts: secs.parse::<u64>().ok()? * 1_000_000_000 + nsecs.parse::<u64>().ok()?,
        event: event.to_string(),
        raw: raw.trim().to_string(),
    })
}

/// `name=value` pairs of a `-R` line, split by the format's field names in order (values
/// may hold spaces, such as a comm).
fn split_fields(raw: &str, names: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = raw;
    for (i, name) in names.iter().enumerate() {
        let Some(r) = rest.strip_prefix(&format!("{name}=")) else {
            panic!("field {name} not next in {raw:?}");
        };
        let end = names.get(i + 1).and_then(|next| r.find(&format!(" {next}="))).unwrap_or(r.len());
        out.insert(name.clone(), r[..end].to_string());
        rest = r[end..].trim_start();
    }
    out
}

// ---- comparing values ------------------------------------------------------------------------

/// A value our trace holds for a kernel field: a string, an integer, or an array's elements.
#[derive(Debug, Clone, PartialEq)]
enum Ours {
    Str(String),
    Int(u64),
    Array(Vec<u64>),
}

/// Kernel symbol addresses by name (from the trace.dat's kallsyms).
struct Syms(HashMap<String, Vec<u64>>);

impl Syms {
    fn new(kallsyms: &str) -> Syms {
        let mut m: HashMap<String, Vec<u64>> = HashMap::new();
        for l in kallsyms.lines() {
            let mut w = l.split_whitespace();
            let (Some(a), Some(_), Some(n)) = (w.next(), w.next(), w.next()) else { continue };
            if let Ok(a) = u64::from_str_radix(a, 16) {
                m.entry(n.to_string()).or_default().push(a);
            }
        }
        Syms(m)
    }
}

/// Whether trace-cmd's `token` for `field` shows `ours`. Numbers may be printed in decimal,
/// in hex (with `0x`, or without in fields that print hex: `hex_field`), as `(nil)`, or as
/// `symbol+0xoff`; they are compared in the field's width.
fn same(token: &str, ours: &Ours, field: &traceevent::Field, hex_field: bool, syms: &Syms) -> bool {
    match ours {
        Ours::Str(s) => token == s,
        Ours::Array(elems) => {
            let Some(inner) = token.strip_prefix("ARRAY[").and_then(|t| t.strip_suffix(']')) else { return false };
            let bytes: Vec<u8> =
                inner.split(", ").filter(|b| !b.is_empty()).filter_map(|b| u8::from_str_radix(b, 16).ok()).collect();
            let elem = if elems.is_empty() { 1 } else { bytes.len() / elems.len() };
            let ours: Vec<u8> = elems.iter().flat_map(|v| v.to_le_bytes()[..elem].to_vec()).collect();
            bytes == ours
        }
        Ours::Int(v) => {
            let bits = (field.size * 8).min(64);
            let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
            let parsed: Vec<u64> = if token == "(nil)" {
                vec![0]
            } else if let Some(h) = token.strip_prefix("0x") {
                u64::from_str_radix(h, 16).into_iter().collect()
            } else if let Some(d) = token.strip_prefix('-') {
                d.parse::<u64>().map(|d| d.wrapping_neg()).into_iter().collect()
            } else if token.bytes().all(|b| b.is_ascii_digit()) && !token.is_empty() {
                if hex_field { u64::from_str_radix(token, 16).ok() } else { token.parse().ok() }.into_iter().collect()
            } else if token.bytes().all(|b| b.is_ascii_hexdigit()) && !token.is_empty() {
                u64::from_str_radix(token, 16).into_iter().collect()
            } else {
                // symbol or symbol+0xoff
                let (sym, off) = match token.rsplit_once("+0x") {
                    Some((s, o)) => (s, u64::from_str_radix(o, 16).unwrap_or(u64::MAX)),
                    None => (token, 0),
                };
                syms.0.get(sym).map(|a| a.iter().map(|a| a + off).collect()).unwrap_or_default()
            };
            parsed.iter().any(|p| p & mask == v & mask)
        }
    }
}

/// Our event's fields by kernel field name (array elements gathered under the array's name).
fn our_fields(ev: &Value) -> BTreeMap<String, Ours> {
    let mut out = BTreeMap::new();
    for f in ev["fields"].as_array().unwrap() {
        let name = f[0].as_str().unwrap();
        let value = match f[1].as_str().unwrap() {
            "str" => Ours::Str(f[2].as_str().unwrap().to_string()),
            "int" => Ours::Int(f[2].as_i64().unwrap() as u64),
            _ => Ours::Int(f[2].as_u64().unwrap()),
        };
        match name.split_once('[') {
            Some((base, _)) => match out.entry(base.to_string()).or_insert(Ours::Array(Vec::new())) {
                Ours::Array(v) => v.push(match value {
                    Ours::Int(x) => x,
                    other => panic!("array element {other:?}"),
                }),
                other => panic!("{base} is {other:?} and an array"),
            },
            None => {
                out.insert(name.to_string(), value);
            }
        }
    }
    out
}

/// The kernel events Perfetto has typed messages for.
const TYPED: [&str; 11] = [
    "sched_switch",
    "sched_wakeup",
    "sched_waking",
    "sched_wakeup_new",
    "sched_process_fork",
    "sched_process_exec",
    "sched_process_exit",
    "task_newtask",
    "task_rename",
    "cpu_idle",
    "cpu_frequency",
];

/// Kernel fields of typed events that Perfetto's messages have no place for.
const DROPPED: [(&str, &str); 1] = [("sched_process_exit", "group_dead")];

/// What a comparison saw, for the tests' own assertions.
#[derive(Debug, Default)]
struct Compared {
    events: usize,
    by_event: BTreeMap<String, usize>,
    typed: BTreeSet<String>,
}

/// Compares our Perfetto trace of `dat` with `trace-cmd report` of it: per CPU the same
/// events in the same order, with the same timestamp, pid, name and every field's value;
/// typed events typed; timestamps monotonic per CPU; every thread named as trace-cmd names it.
fn compare(dat: &Path, pf: &Value) -> Compared {
    let tc = trace_cmd_report(dat);
    let file = TraceDat::open(std::fs::File::open(dat).unwrap()).unwrap();
    let formats: HashMap<String, EventFormat> = file
        .meta
        .event_formats
        .iter()
        .filter_map(|(sys, t)| EventFormat::parse(sys, t, file.meta.endian).ok())
        .map(|f| (f.name.clone(), f))
        .collect();
    let syms = Syms::new(&file.meta.kallsyms);

    // Fields printed in hex without 0x: by their print fmt (`clone_flags=%llx`), or by a value
    // with hex letters somewhere in the report (uprobes' `__probe_ip`, printed as `(%lx)`).
    let mut hex_fields = BTreeSet::new();
    for f in formats.values() {
        let Some(pf) = &f.print_fmt else { continue };
        for field in &f.fields {
            let Some(at) = pf.format.find(&format!("{}=%", field.name)) else { continue };
            let spec = &pf.format[at + field.name.len() + 2..];
            if spec
                .bytes()
                .find(|b| b.is_ascii_alphabetic() && !matches!(b, b'l' | b'h' | b'z'))
                .is_some_and(|c| c == b'x' || c == b'X')
            {
                hex_fields.insert((f.name.clone(), field.name.clone()));
            }
        }
    }
    for e in &tc {
        let f = &formats[&e.event];
        let names: Vec<String> = f.fields.iter().map(|f| f.name.clone()).collect();
        for (n, v) in split_fields(&e.raw, &names) {
            if v.bytes().all(|b| b.is_ascii_hexdigit()) && v.bytes().any(|b| b.is_ascii_alphabetic()) {
                hex_fields.insert((e.event.clone(), n));
            }
        }
    }

    let ours = pf["events"].as_array().unwrap();
    assert_eq!(ours.len(), tc.len(), "events in the Perfetto trace vs lines of trace-cmd report");
    let mut per_cpu_tc: BTreeMap<u64, Vec<&TcEvent>> = BTreeMap::new();
    for e in &tc {
        per_cpu_tc.entry(e.cpu).or_default().push(e);
    }
    let mut per_cpu_ours: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
    for e in ours {
        per_cpu_ours.entry(e["cpu"].as_u64().unwrap()).or_default().push(e);
    }
    assert_eq!(per_cpu_ours.keys().collect::<Vec<_>>(), per_cpu_tc.keys().collect::<Vec<_>>(), "CPUs");
    let mut seen = Compared::default();
    for (cpu, theirs) in &per_cpu_tc {
        let mine = &per_cpu_ours[cpu];
        assert_eq!(mine.len(), theirs.len(), "CPU {cpu}: events");
        let mut last = 0;
        for (i, (t, o)) in theirs.iter().zip(mine.iter()).enumerate() {
            let at = format!("CPU {cpu} event {i} ({} at {})", t.event, t.ts);
            let ts = o["ts"].as_u64().unwrap();
            assert!(ts >= last, "{at}: timestamps go back on CPU {cpu}: {ts} after {last}");
            last = ts;
            assert_eq!(ts, t.ts, "{at}: timestamp");
            assert_eq!(o["pid"].as_i64().unwrap(), t.pid, "{at}: pid");
            assert_eq!(o["event"].as_str().unwrap(), t.event, "{at}: event");
            let typed = o["typed"].as_bool().unwrap();
            assert_eq!(typed, TYPED.contains(&t.event.as_str()), "{at}: typed");
            if typed {
                seen.typed.insert(t.event.clone());
            }
            let f = &formats[&t.event];
            let names: Vec<String> = f.fields.iter().map(|f| f.name.clone()).collect();
            let theirs_fields = split_fields(&t.raw, &names);
            let mine_fields = our_fields(o);
            for field in &f.fields {
                let Some(mine) = mine_fields.get(&field.name) else {
                    assert!(
                        typed && DROPPED.contains(&(t.event.as_str(), field.name.as_str())),
                        "{at}: no field {}",
                        field.name
                    );
                    continue;
                };
                let token = &theirs_fields[&field.name];
                let hex = hex_fields.contains(&(t.event.clone(), field.name.clone()));
                assert!(
                    same(token, mine, field, hex, &syms),
                    "{at}: {}: trace-cmd shows {token:?}, we have {mine:?}",
                    field.name
                );
            }
            // Nothing beyond the kernel's fields.
            for name in mine_fields.keys() {
                assert!(f.fields.iter().any(|k| &k.name == name), "{at}: field {name} is not the kernel's");
            }
            *seen.by_event.entry(t.event.clone()).or_default() += 1;
            seen.events += 1;
        }
    }

    // Every thread with a name in trace-cmd's output has that name (tid 0 is the idle task).
    let threads: HashMap<i64, &Value> =
        pf["threads"].as_array().unwrap().iter().map(|t| (t["tid"].as_i64().unwrap(), t)).collect();
    let mut names: BTreeMap<i64, BTreeSet<&str>> = BTreeMap::new();
    for e in &tc {
        if e.pid != 0 && e.comm != "<...>" {
            names.entry(e.pid).or_default().insert(&e.comm);
        }
    }
    assert!(!names.is_empty());
    for t in threads.values() {
        assert!(t["tgid"].as_i64().is_some_and(|p| p > 0), "thread without a process: {t}");
    }
    for (pid, comms) in &names {
        let t = threads.get(pid).unwrap_or_else(|| panic!("thread {pid} ({comms:?}) is not named in the process tree"));
        assert!(
            comms.contains(t["name"].as_str().unwrap()),
            "thread {pid} named {} but trace-cmd shows {comms:?}",
            t["name"]
        );
    }
    // Processes: every exec'd pid leads its own process.
    let processes: BTreeSet<i64> =
        pf["processes"].as_array().unwrap().iter().map(|p| p["pid"].as_i64().unwrap()).collect();
    for e in tc.iter().filter(|e| e.event == "sched_process_exec") {
        let pid: i64 =
            split_fields(&e.raw, &["filename".into(), "pid".into(), "old_pid".into()])["pid"].parse().unwrap();
        assert!(processes.contains(&pid), "exec'd pid {pid} is not a process of the tree");
        assert_eq!(threads[&pid]["tgid"].as_i64(), Some(pid));
    }
    seen
}

// ---- the tests ---------------------------------------------------------------------------

/// A recording here with sched, task, syscalls, kmem and uprobes (exec-open's, on this
/// kernel without kprobes), converted; then the same recording written by trace-cmd as a
/// zstd-compressed version 7: both equal `trace-cmd report` field by field.
#[test]
fn convert_equals_trace_cmd_report_field_by_field() {
    if !require("convert_equals_trace_cmd_report_field_by_field", Needs::Live) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dat = dir.path().join("t.dat");
    record(&dat, "cat /etc/hostname; ls / > /dev/null", &["--plugin", "exec-open"]);
    let v7 = dir.path().join("t7.dat");
    let o = Command::new("trace-cmd")
        .args(["convert", "--file-version", "7", "--compression", "zstd", "-i", s(&dat), "-o", s(&v7)])
        .output()
        .unwrap();
    ok(&o);
    for input in [&dat, &v7] {
        let pftrace = dir.path().join("t.pftrace");
        let o = wasmprobe(&["convert", s(input), "-o", s(&pftrace)]);
        ok(&o);
        let pf = dump(&pftrace);
        let seen = compare(input, &pf);
        assert!(
            text(&o.stderr).starts_with(&format!("wasmprobe: wrote {} events and ", seen.events)),
            "{}",
            text(&o.stderr)
        );
        // What the recording must have held for the comparison to mean something.
        for kind in [
            "sched_switch",
            "sched_process_exec",
            "sched_process_fork",
            "task_newtask",
            "sys_enter_openat",
            "kmem_cache_alloc",
            "open",
            "openret",
        ] {
            assert!(
                seen.by_event.get(kind).is_some_and(|&n| n > 0),
                "{}: no {kind} events: {:?}",
                input.display(),
                seen.by_event
            );
        }
        assert!(seen.typed.contains("sched_switch"));
        let sys = &pf["system"];
        assert_eq!(sys["sysname"], "Linux");
        assert_eq!(sys["release"].as_str().unwrap(), nix::sys::utsname::uname().unwrap().release().to_str().unwrap());
        let meta = TraceDat::open(std::fs::File::open(input).unwrap()).unwrap().meta;
        assert_eq!(sys["cpus"].as_u64(), Some(u64::from(meta.cpu_count)));
        assert!(pf["bundles"].as_array().unwrap().iter().all(|b| b[2].as_u64().unwrap() > 0));
    }
}

/// A damaged trace.dat: one line naming the offset and what was wrong, exit status 1, and no
/// output file (nor a temporary one) left behind; an existing output stays as it was.
#[test]
fn a_damaged_trace_dat_is_refused_with_its_offset_and_leaves_no_output() {
    if !require("a_damaged_trace_dat_is_refused_with_its_offset_and_leaves_no_output", Needs::Live) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dat = dir.path().join("t.dat");
    record(&dat, "cat /etc/hostname", &[]);
    let good = std::fs::read(&dat).unwrap();
    let meta = TraceDat::open(good.clone()).unwrap().meta;
    let cpu = meta.buffers[0].cpus.iter().find(|c| c.size > 0).unwrap();
    let pftrace = dir.path().join("out.pftrace");
    let listing = || {
        let mut v: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };

    // A page whose header claims more data than a page holds.
    let mut bad = good.clone();
    let page = cpu.offset as usize;
    bad[page + 8..page + 16].copy_from_slice(&0x7f_ffffu64.to_le_bytes());
    let bad_page = dir.path().join("bad-page.dat");
    std::fs::write(&bad_page, &bad).unwrap();
    // Cut in the middle of the metadata.
    let cut = dir.path().join("cut.dat");
    std::fs::write(&cut, &good[..(cpu.offset as usize) / 2]).unwrap();
    for (input, want) in [
        (
            &bad_page,
            format!("CPU {}: page at offset {}: sub-buffer commit of 8388607 bytes exceeds", cpu.cpu, cpu.offset),
        ),
        (&cut, "truncated at offset ".to_string()),
    ] {
        let before = listing();
        let o = wasmprobe(&["convert", s(input), "-o", s(&pftrace)]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
        let err = text(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("wasmprobe: error: ") && err.contains(&want), "{err:?} lacks {want:?}");
        assert!(err.contains(input.file_name().unwrap().to_str().unwrap()), "{err}");
        assert_eq!(listing(), before, "nothing left behind");
    }
    // An existing output file is not touched by a failed conversion.
    std::fs::write(&pftrace, b"old").unwrap();
    let o = wasmprobe(&["convert", s(&bad_page), "-o", s(&pftrace)]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(std::fs::read(&pftrace).unwrap(), b"old");
    // Not a trace.dat at all.
    let o = wasmprobe(&["convert", "/etc/hostname", "-o", s(&pftrace)]);
    assert_eq!(
        text(&o.stderr),
        "wasmprobe: error: /etc/hostname is not a trace.dat we can read: trace.dat: not a trace.dat file (bad magic)\n"
    );
}

// ---- plugins on the timeline -------------------------------------------------------------

mod plugin_support;

use std::sync::{Arc, Mutex};

use plugin_support::{exec_open_uprobe_layouts, load_builtin, sys_enter_layout, Payload};
use wasmprobe::perfetto::{Machine, ThreadInfo, TraceWriter};
use wasmprobe::plugin::{BatchWriter, FixedKernel, Mark, Scope, Timeline, Track, Value as V};

/// A timeline that keeps every mark.
#[derive(Clone, Default)]
struct Marks(Arc<Mutex<Vec<Mark>>>);

impl Timeline for Marks {
    fn mark(&mut self, _plugin: &str, mark: Mark) {
        self.0.lock().unwrap().push(mark);
    }
}

fn no_kprobes() -> Arc<FixedKernel> {
    Arc::new(FixedKernel::with_features(&["uprobe", "tracepoint"]))
}

/// The histogram openlat prints for latencies 0, 3, 3, 5 and 1500 us (plugin_examples.rs).
fn openlat_hist() -> Vec<String> {
    let bar = |n: usize| format!("{:<52}", "@".repeat(n));
    let mut want = vec![
        "@usecs:".to_string(),
        format!("[0]                    1 |{}|", bar(26)),
        format!("[1]                    0 |{}|", bar(0)),
        format!("[2, 4)                 2 |{}|", bar(52)),
        format!("[4, 8)                 1 |{}|", bar(26)),
    ];
    for (lo, hi) in
        [("8", "16"), ("16", "32"), ("32", "64"), ("64", "128"), ("128", "256"), ("256", "512"), ("512", "1K")]
    {
        want.push(format!("{:<16}{:>8} |{}|", format!("[{lo}, {hi})"), 0, bar(0)));
    }
    want.push(format!("[1K, 2K)               1 |{}|", bar(26)));
    want
}

/// openlat with a timeline: each open a slice "open" on its thread's own track, from entry to
/// return, with the file and the result; the histogram as without one. Without a timeline it
/// reads no field of the events (its plan projects them all away).
#[test]
fn openlat_draws_each_open_as_a_slice_on_its_thread() {
    let marks = Marks::default();
    let (mut p, out) = load_builtin("openlat");
    p.set_timeline(Box::new(marks.clone()));
    let plan = p.init(&[], no_kprobes()).unwrap();
    let fields: Vec<_> = plan.probes.iter().map(|d| d.fields.clone().unwrap()).collect();
    assert_eq!(fields, [vec!["file"], vec!["file"], vec!["ret"], vec!["ret"]]);
    p.set_layouts(exec_open_uprobe_layouts()).unwrap();
    let mut b = BatchWriter::new();
    let mut ts = 1_000_000;
    let mut want = Vec::new();
    for (pid, us) in [(1, 0u64), (2, 3), (3, 3), (4, 5), (5, 1500)] {
        let file = format!("/etc/f{pid}");
        p.pack(&mut b, 1, 0, pid, ts, &Payload::new(2002, pid, 12).data_loc_str(16, &file).bytes);
        let ret = if pid == 3 { -2 } else { pid + 2 };
        let dur = us * 1000 + 10;
        p.pack(&mut b, 3, 0, pid, ts + dur, &Payload::new(2004, pid, 20).u32_at(24, ret as u32).bytes);
        want.push(Mark::Slice {
            track: Track { scope: Scope::Thread(pid), name: String::new() },
            name: "open".into(),
            ts,
            dur,
            args: vec![("file".into(), V::Str(file)), ("ret".into(), V::I64(ret.into()))],
        });
        ts += 10_000_000;
    }
    p.on_batch(b.as_bytes(), 0).unwrap();
    p.finish().unwrap();
    assert_eq!(*marks.0.lock().unwrap(), want);
    assert_eq!(out.lines(), openlat_hist());

    let (mut p, _) = load_builtin("openlat");
    let plan = p.init(&[], no_kprobes()).unwrap();
    assert!(plan.probes.iter().all(|d| d.fields.as_deref() == Some(&[] as &[String])), "{plan:?}");
}

/// syscount with a timeline: a counter "syscalls per second" with each second's calls at the
/// second's start, a 0 after a second with none, and the last second at the end; its tables as
/// without one.
#[test]
fn syscount_draws_a_counter_of_syscalls_per_second() {
    let marks = Marks::default();
    let (mut p, out) = load_builtin("syscount");
    p.set_timeline(Box::new(marks.clone()));
    p.init(&[], no_kprobes()).unwrap();
    p.set_layouts(vec![sys_enter_layout(9)]).unwrap();
    let mut b = BatchWriter::new();
    let s = 1_000_000_000u64;
    for ts in [s + 200, s + 300, 2 * s - 1, 4 * s + 5, 4 * s + 6] {
        p.pack(&mut b, 0, 0, 1234, ts, &Payload::new(9, 1234, 56).u64_at(8, 0).bytes);
    }
    p.on_batch(b.as_bytes(), 0).unwrap();
    b.clear();
    p.pack(&mut b, 0, 1, 1234, 6 * s, &Payload::new(9, 1234, 56).u64_at(8, 0).bytes);
    p.on_batch(b.as_bytes(), 0).unwrap();
    p.finish().unwrap();
    let track = Track { scope: Scope::Global, name: "syscalls per second".into() };
    let counter = |ts: u64, value: f64| Mark::Counter { track: track.clone(), ts, value };
    assert_eq!(
        *marks.0.lock().unwrap(),
        [counter(s, 3.0), counter(2 * s, 0.0), counter(4 * s, 2.0), counter(5 * s, 0.0), counter(6 * s, 1.0)]
    );
    let lines = out.lines();
    assert!(lines.iter().any(|l| l == "       0          6"), "{lines:?}");
}

/// Marks as Perfetto's Python bindings read them: a thread's own track under its process,
/// named tracks as its children, a process track, global and counter tracks, slices as
/// begin/end pairs with typed arguments.
#[test]
fn marks_are_track_events_perfetto_reads() {
    if !require("marks_are_track_events_perfetto_reads", Needs::Python) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("marks.pftrace");
    let file = std::fs::File::create(&path).unwrap();
    let mut w = TraceWriter::new(file, traceevent::Endian::Little, &Machine::default()).unwrap();
    w.set_thread_lookup(Box::new(|tid| match tid {
        100 => ThreadInfo { name: Some("worker".into()), tgid: Some(99) },
        99 => ThreadInfo { name: Some("server".into()), tgid: Some(99) },
        _ => ThreadInfo::default(),
    }));
    let t = |scope: Scope, name: &str| Track { scope, name: name.into() };
    let args = vec![
        ("s".to_string(), V::Str("x".into())),
        ("i".to_string(), V::I64(-3)),
        ("u".to_string(), V::U64(u64::MAX)),
        ("f".to_string(), V::F64(0.5)),
        ("b".to_string(), V::Bool(true)),
    ];
    for m in [
        Mark::Slice { track: t(Scope::Thread(100), ""), name: "open".into(), ts: 1000, dur: 500, args: args.clone() },
        Mark::Begin { track: t(Scope::Thread(100), "io"), name: "read".into(), ts: 1100, args: vec![] },
        Mark::End { track: t(Scope::Thread(100), "io"), ts: 1200 },
        Mark::Instant { track: t(Scope::Process(99), "events"), name: "ping".into(), ts: 1300, args: vec![] },
        Mark::Counter { track: t(Scope::Global, "rate"), ts: 1000, value: 2.5 },
        Mark::Counter { track: t(Scope::Thread(100), ""), ts: 1400, value: 7.0 },
    ] {
        w.mark(&m).unwrap();
    }
    let (_, written) = w.finish().unwrap();
    assert_eq!((written.marks, written.dropped_marks), (6, 0));
    let pf = dump(&path);
    let tracks: Vec<&Value> = pf["tracks"].as_array().unwrap().iter().collect();
    let by_uuid: HashMap<u64, &Value> = tracks.iter().map(|t| (t["uuid"].as_u64().unwrap(), *t)).collect();
    let thread = tracks.iter().find(|t| t.get("thread").is_some()).unwrap();
    assert_eq!(thread["thread"], serde_json::json!({"pid": 99, "tid": 100, "name": "worker"}));
    let named = |name: &str| {
        *tracks.iter().find(|t| t["name"] == name).unwrap_or_else(|| panic!("no track {name}: {tracks:?}"))
    };
    assert_eq!(named("io")["parent"], thread["uuid"]);
    let process = tracks.iter().find(|t| t.get("process").is_some()).unwrap();
    assert_eq!(process["process"], serde_json::json!({"pid": 99, "name": "server"}));
    assert_eq!(named("events")["parent"], process["uuid"]);
    assert_eq!((named("rate")["parent"].clone(), named("rate")["counter"].clone()), (Value::Null, Value::Bool(true)));
    assert_eq!(
        (named("value")["parent"].clone(), named("value")["counter"].clone()),
        (thread["uuid"].clone(), Value::Bool(true))
    );
    let marks: Vec<(u64, &str, &str, Option<&str>)> = pf["marks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let track = by_uuid[&m["track"].as_u64().unwrap()];
            let tname = track["name"].as_str().unwrap_or("(own)");
            (m["ts"].as_u64().unwrap(), m["type"].as_str().unwrap(), tname, m["name"].as_str())
        })
        .collect();
    assert_eq!(
        marks,
        [
            (1000, "TYPE_SLICE_BEGIN", "(own)", Some("open")),
            (1500, "TYPE_SLICE_END", "(own)", None),
            (1100, "TYPE_SLICE_BEGIN", "io", Some("read")),
            (1200, "TYPE_SLICE_END", "io", None),
            (1300, "TYPE_INSTANT", "events", Some("ping")),
            (1000, "TYPE_COUNTER", "rate", None),
            (1400, "TYPE_COUNTER", "value", None),
        ]
    );
    let m = &pf["marks"][0];
    assert_eq!(
        m["args"],
        serde_json::json!([
            ["s", "string_value", "x"],
            ["i", "int_value", -3],
            ["u", "uint_value", u64::MAX],
            ["f", "double_value", 0.5],
            ["b", "bool_value", true]
        ])
    );
    assert_eq!(pf["marks"][5]["value"], 2.5);
    assert!(pf["marks"].as_array().unwrap().iter().all(|m| m["seq"] == 2));
}

// The rest of this test crate, kept in its own file to keep each under 800 lines.
include!("perfetto_parts/live.rs");
