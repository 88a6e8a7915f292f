//! openlat: how long open() takes, from entry to return per thread, as a power-of-2
//! histogram in microseconds printed at the end like bpftrace's `hist()`. kprobes on
//! do_sys_openat2 where the kernel has them, else uprobes on libc's open and openat.
//!
//! With `--json`, one record per row of the histogram instead, `low` inclusive and `high`
//! exclusive: `{"hist":"@usecs","low":4,"high":8,"count":12}`.
//!
//! On the timeline (`--perfetto FILE`): every open as a slice "open" on its thread's track,
//! from entry to return, with the file and the result as arguments.
//!
//! The histogram is an `agg::Hist` (bpftrace's `@usecs = hist(...)`), which prints itself.

use wasmprobe_guest::agg::{Hist, Print};
use wasmprobe_guest::metrics::{self, Histogram};
use wasmprobe_guest::timeline::{self, Track};
use wasmprobe_guest::{
    emit_record, kernel_supports, println, wants_records, Args, Event, FxHashMap, Plan, Plugin, ProbeId, Value,
};

#[derive(Default)]
struct OpenLat {
    entries: Vec<ProbeId>,
    /// As a metric: `openlat_open_seconds{comm}`.
    latency: Option<Histogram>,
    /// Entry timestamp (and, for the timeline, the file) per thread still inside open.
    started: FxHashMap<i32, (u64, String)>,
    /// `@usecs`.
    hist: Hist,
}

impl Plugin for OpenLat {
    fn init(&mut self, _args: &Args) -> Result<Plan, String> {
        self.hist = Hist::new("@usecs");
        let mut plan = Plan::new();
        // The file and the result are fetched for the timeline's slices (a replay of this
        // recording may ask for them even if the live run did not draw).
        if kernel_supports("kprobe") {
            self.entries = vec![plan.kprobe("open", "do_sys_openat2", "file=+0($arg2):ustring")];
            plan.kretprobe("openret", "do_sys_openat2", "ret=%ax");
        } else {
            self.entries = vec![
                plan.uprobe("open", "libc:open", "file=+0(%di):ustring"),
                plan.uprobe("openat", "libc:openat", "file=+0(%si):ustring"),
            ];
            plan.uretprobe("openret", "libc:open", "ret=$retval:s32");
            plan.uretprobe("openatret", "libc:openat", "ret=$retval:s32");
        }
        // 1 µs .. ~1 s, by powers of 2, like the printed histogram.
        let buckets: Vec<f64> = (0..21).map(|k| (1u64 << k) as f64 * 1e-6).collect();
        let help = "Time from entering open() to its return, by command name";
        self.latency = Some(Histogram::declare("openlat_open_seconds", help, &["comm"], &buckets)?);
        // Pairs are matched by pid and timed by timestamp, both in every record's header: the
        // histogram needs no field of the events, the timeline the file and the result.
        let drawing = timeline::enabled();
        for i in 0..plan.probes().len() {
            let id = ProbeId(i as u32);
            let fields: &[&str] = match (drawing, self.entries.contains(&id)) {
                (false, _) => &[],
                (true, true) => &["file"],
                (true, false) => &["ret"],
            };
            plan.fields(id, fields);
        }
        Ok(plan)
    }

    fn on_event(&mut self, ev: &Event) {
        if self.entries.contains(&ev.probe()) {
            let file = if timeline::enabled() { ev.str("file").into_owned() } else { String::new() };
            self.started.insert(ev.pid(), (ev.ts(), file));
        } else if let Some((start, file)) = self.started.remove(&ev.pid()) {
            let dur = ev.ts().saturating_sub(start);
            if timeline::enabled() {
                let args = [("file", Value::Str(file)), ("ret", Value::S64(ev.i64("ret")))];
                timeline::slice(&Track::thread(ev.pid()), "open", start, dur, &args);
            }
            if let Some(h) = self.latency.filter(|_| metrics::enabled()) {
                h.observe(&[&ev.comm()], dur as f64 / 1e9);
            }
            self.hist.record((), dur / 1000);
        }
    }

    fn finish(&mut self) {
        if wants_records() {
            // One record per printed row, `[low, high)` (no negative durations: low is set).
            for row in self.hist.rows(()) {
                emit_record(&[
                    ("hist", Value::Str(self.hist.name().to_string())),
                    ("low", Value::U64(row.low.unwrap_or(0) as u64)),
                    ("high", Value::U64(row.high.unwrap_or(0) as u64)),
                    ("count", Value::U64(row.count)),
                ]);
            }
            return;
        }
        if self.hist.is_empty() {
            println!("@usecs:");
        }
        self.hist.print();
    }
}

wasmprobe_guest::export!(OpenLat);
