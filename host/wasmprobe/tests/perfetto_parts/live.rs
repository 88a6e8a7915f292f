// Part of tests/perfetto.rs (included there, so one test crate and one scope): --perfetto on
// live runs, recordings, streams and replays.

// ---- --perfetto on live runs, recordings, streams and replays ------------------------------

/// openlat's slices in a dumped trace, in the order they begin: (tid, duration, file, result),
/// from the begin/end pairs on each thread's own track.
fn open_slices(pf: &Value) -> Vec<(i64, u64, String, i64)> {
    let tracks: HashMap<u64, &Value> =
        pf["tracks"].as_array().unwrap().iter().map(|t| (t["uuid"].as_u64().unwrap(), t)).collect();
    let mut open: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut out: Vec<(i64, u64, String, i64)> = Vec::new();
    let mut begins = Vec::new();
    for m in pf["marks"].as_array().unwrap() {
        let uuid = m["track"].as_u64().unwrap();
        let ts = m["ts"].as_u64().unwrap();
        match m["type"].as_str().unwrap() {
            "TYPE_SLICE_BEGIN" => {
                assert_eq!(m["name"], "open");
                let tid = tracks[&uuid]["thread"]["tid"].as_i64().expect("a slice on a thread's own track");
                let arg = |name: &str| m["args"].as_array().unwrap().iter().find(|a| a[0] == name).unwrap()[2].clone();
                out.push((tid, 0, arg("file").as_str().unwrap().to_string(), arg("ret").as_i64().unwrap()));
                begins.push(ts);
                open.entry(uuid).or_default().push(out.len() - 1);
            }
            "TYPE_SLICE_END" => {
                let i = open.get_mut(&uuid).and_then(Vec::pop).expect("an end after its begin");
                out[i].1 = ts - begins[i];
            }
            other => panic!("openlat made a {other} mark"),
        }
    }
    assert!(open.values().all(Vec::is_empty), "every slice ends");
    out
}

/// openlat's histogram rows from its `--json` records: (low, high, count).
fn hist_rows(json: &Path) -> Vec<(u64, u64, u64)> {
    std::fs::read_to_string(json)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["low"].as_u64().unwrap(), v["high"].as_u64().unwrap(), v["count"].as_u64().unwrap())
        })
        .collect()
}

/// The rows openlat prints for these durations (ns): power-of-2 buckets of microseconds,
/// from the first to the last non-empty one.
fn hist_of(slices: &[(i64, u64, String, i64)]) -> Vec<(u64, u64, u64)> {
    let mut hist = vec![0u64; 65];
    for (_, dur, _, _) in slices {
        let us = dur / 1000;
        hist[if us == 0 { 0 } else { 64 - us.leading_zeros() as usize }] += 1;
    }
    let (Some(first), Some(last)) = (hist.iter().position(|&n| n > 0), hist.iter().rposition(|&n| n > 0)) else {
        return Vec::new();
    };
    (first..=last).map(|k| if k == 0 { (0, 1, hist[0]) } else { (1 << (k - 1), 1 << k, hist[k]) }).collect()
}

const OPENS: &str =
    "for i in 1 2 3 4 5 6; do cat /etc/hostname /etc/passwd > /dev/null; done; cat /nonexistent 2>/dev/null; true";

/// openlat with --perfetto: its slices, read back with Perfetto's bindings, make exactly the
/// histogram it printed; live (`run`, `record --plugin`) and in replay, where they are the
/// recording's slices one for one.
#[test]
fn openlat_slices_equal_its_histogram_live_and_in_replay() {
    if !require("openlat_slices_equal_its_histogram_live_and_in_replay", Needs::Live) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let check = |slices: &[(i64, u64, String, i64)], json: &Path| {
        assert!(slices.len() >= 12, "{slices:?}");
        assert_eq!(hist_of(slices), hist_rows(json));
        assert!(slices.iter().any(|s| s.2 == "/etc/hostname" && s.3 >= 0), "{slices:?}");
        // libc's openat returns -1 (uprobes, this kernel); do_sys_openat2 -ENOENT (kprobes).
        assert!(slices.iter().any(|s| s.2 == "/nonexistent" && (s.3 == -1 || s.3 == -2)), "{slices:?}");
    };

    let o = wasmprobe(&[
        "run",
        "openlat",
        "--json",
        "-o",
        s(&p("run.json")),
        "--perfetto",
        s(&p("run.pftrace")),
        "--",
        "sh",
        "-c",
        OPENS,
    ]);
    ok(&o);
    let run = open_slices(&dump(&p("run.pftrace")));
    check(&run, &p("run.json"));
    let err = text(&o.stderr);
    assert!(err.contains(&format!(", {} plugin marks and ", run.len())), "{err}");
    // The threads are named, in their processes.
    let pf = dump(&p("run.pftrace"));
    let cat = pf["tracks"].as_array().unwrap().iter().find(|t| t["thread"]["name"] == "cat").expect("cat's track");
    assert_eq!(cat["thread"]["pid"], cat["thread"]["tid"]);

    let o = wasmprobe(&[
        "record",
        "-o",
        s(&p("o.dat")),
        "--plugin",
        "openlat",
        "--json",
        "--plugin-output",
        s(&p("rec.json")),
        "--perfetto",
        s(&p("rec.pftrace")),
        "--",
        "sh",
        "-c",
        OPENS,
    ]);
    ok(&o);
    let rec = open_slices(&dump(&p("rec.pftrace")));
    check(&rec, &p("rec.json"));

    let o = wasmprobe(&[
        "run",
        "openlat",
        "--json",
        "-o",
        s(&p("replay.json")),
        "--replay",
        s(&p("o.dat")),
        "--perfetto",
        s(&p("replay.pftrace")),
    ]);
    ok(&o);
    let replay = open_slices(&dump(&p("replay.pftrace")));
    check(&replay, &p("replay.json"));
    assert_eq!(replay, rec);
    assert_eq!(hist_rows(&p("replay.json")), hist_rows(&p("rec.json")));
}

/// syscount with --perfetto: its counter of syscalls per second adds up to the calls it counted.
#[test]
fn syscount_counter_adds_up_to_its_counts() {
    if !require("syscount_counter_adds_up_to_its_counts", Needs::Live) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (json, pftrace) = (dir.path().join("sc.json"), dir.path().join("sc.pftrace"));
    let o = wasmprobe(&[
        "run",
        "syscount",
        "--json",
        "--arg",
        "top=100000",
        "-o",
        s(&json),
        "--perfetto",
        s(&pftrace),
        "--",
        "sh",
        "-c",
        "ls / > /dev/null; cat /etc/hostname > /dev/null",
    ]);
    ok(&o);
    let counted: u64 = std::fs::read_to_string(&json)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get("syscall").is_some())
        .map(|v| v["count"].as_u64().unwrap())
        .sum();
    let pf = dump(&pftrace);
    let track = pf["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "syscalls per second")
        .expect("the counter track");
    assert_eq!((track["counter"].clone(), track["parent"].clone()), (Value::Bool(true), Value::Null));
    let values: Vec<f64> = pf["marks"].as_array().unwrap().iter().map(|m| m["value"].as_f64().unwrap()).collect();
    assert!(counted > 50 && !values.is_empty(), "{counted} {values:?}");
    assert_eq!(values.iter().sum::<f64>() as u64, counted);
}

/// `record --perfetto` writes what `convert` makes of the same recording, and `stream
/// --perfetto` the events it prints; a path that cannot be created stops the run before
/// anything is armed.
#[test]
fn record_and_stream_write_what_they_trace() {
    if !require("record_and_stream_write_what_they_trace", Needs::Live) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    record(&p("r.dat"), "cat /etc/hostname > /dev/null", &["--perfetto", s(&p("r.pftrace"))]);
    ok(&wasmprobe(&["convert", s(&p("r.dat")), "-o", s(&p("c.pftrace"))]));
    let (live, converted) = (dump(&p("r.pftrace")), dump(&p("c.pftrace")));
    let per_cpu = |pf: &Value| {
        let mut m: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
        for e in pf["events"].as_array().unwrap() {
            m.entry(e["cpu"].as_u64().unwrap()).or_default().push(e.clone());
        }
        m
    };
    assert!(live["events"].as_array().unwrap().len() > 100);
    assert_eq!(per_cpu(&live), per_cpu(&converted));
    assert_eq!(
        (&live["system"]["sysname"], &live["system"]["release"]),
        (&converted["system"]["sysname"], &converted["system"]["release"])
    );

    let o = wasmprobe(&[
        "stream",
        "-e",
        "sched:sched_switch",
        "-e",
        "syscalls:sys_enter_openat",
        "--perfetto",
        s(&p("s.pftrace")),
        "--",
        "cat",
        "/etc/hostname",
    ]);
    ok(&o);
    let lines: Vec<String> = text(&o.stdout)
        .lines()
        .filter(|l| l.contains(": sched_switch:") || l.contains(": sys_enter_openat:"))
        .map(String::from)
        .collect();
    let events = dump(&p("s.pftrace"))["events"].as_array().unwrap().clone();
    // The same events: the trace keeps them in per-CPU bundles, the text in time order, so
    // both are compared as sorted (event, microsecond) pairs (the text rounds to the
    // nearest microsecond, as trace-cmd does).
    let mut from_trace: Vec<(String, u64)> = events
        .iter()
        .map(|e| (e["event"].as_str().unwrap().to_string(), (e["ts"].as_u64().unwrap() + 500) / 1000))
        .collect();
    let mut from_text: Vec<(String, u64)> = lines
        .iter()
        .map(|l| {
            let (head, rest) = l.split_once(": ").unwrap();
            let ts = head.rsplit(' ').next().unwrap();
            let (sec, usec) = ts.split_once('.').unwrap();
            let event = rest.split(':').next().unwrap().to_string();
            (event, sec.parse::<u64>().unwrap() * 1_000_000 + usec.parse::<u64>().unwrap())
        })
        .collect();
    from_trace.sort();
    from_text.sort();
    assert_eq!(from_trace, from_text);
    assert!(events.iter().any(|e| e["event"] == "sched_switch" && e["typed"] == true));

    let o = wasmprobe(&["run", "openlat", "--perfetto", "/nonexistent/x.pftrace", "--", "true"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        "wasmprobe: error: cannot create /nonexistent/x.pftrace: No such file or directory (os error 2)\n"
    );
}
