//! openlat: how long open() takes, from entry to return per thread, as a power-of-2
//! histogram in microseconds printed at the end like bpftrace's `hist()`. kprobes on
//! do_sys_openat2 where the kernel has them, else uprobes on libc's open and openat.
//!
//! With `--json`, one record per row of the histogram instead, `low` inclusive and `high`
//! exclusive: `{"hist":"@usecs","low":4,"high":8,"count":12}`.
//!
//! On the timeline (`--perfetto FILE`): every open as a slice "open" on its thread's track,
//! from entry to return, with the file and the result as arguments.

use std::collections::HashMap;

use wasmprobe_guest::metrics::{self, Histogram};
use wasmprobe_guest::timeline::{self, Track};
use wasmprobe_guest::{
    emit_record, kernel_supports, println, wants_records, Args, Event, Plan, Plugin, ProbeId, Value,
};

#[derive(Default)]
struct OpenLat {
    entries: Vec<ProbeId>,
    /// As a metric: `openlat_open_seconds{comm}`.
    latency: Option<Histogram>,
    /// Entry timestamp (and, for the timeline, the file) per thread still inside open.
    started: HashMap<i32, (u64, String)>,
    /// hist[0] counts 0, hist[k] counts [2^(k-1), 2^k).
    hist: Vec<u64>,
}

impl Plugin for OpenLat {
    fn init(&mut self, _args: &Args) -> Result<Plan, String> {
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
            let usecs = dur / 1000;
            let bucket = if usecs == 0 { 0 } else { 64 - usecs.leading_zeros() as usize };
            if self.hist.len() <= bucket {
                self.hist.resize(bucket + 1, 0);
            }
            self.hist[bucket] += 1;
        }
    }

    fn finish(&mut self) {
        if wants_records() {
            emit_hist("@usecs", &self.hist);
            return;
        }
        println!("@usecs:");
        print_hist(&self.hist);
    }
}

/// The rows [`print_hist`] prints, first to last non-empty bucket: `(k, low, high, count)`,
/// bucket `k` holding the values in `[low, high)`.
fn rows(hist: &[u64]) -> impl Iterator<Item = (usize, u64, u64, u64)> + '_ {
    let first = hist.iter().position(|&n| n > 0).unwrap_or(hist.len());
    let last = hist.iter().rposition(|&n| n > 0).unwrap_or(0);
    hist.iter().enumerate().take(last + 1).skip(first).map(|(k, &n)| match k {
        0 => (k, 0, 1, n),
        _ => (k, 1 << (k - 1), 1 << k, n),
    })
}

/// The histogram as records, one per row of [`print_hist`].
fn emit_hist(name: &str, hist: &[u64]) {
    for (_, low, high, n) in rows(hist) {
        emit_record(&[
            ("hist", Value::Str(name.to_string())),
            ("low", Value::U64(low)),
            ("high", Value::U64(high)),
            ("count", Value::U64(n)),
        ]);
    }
}

/// Prints a log2 histogram the way bpftrace does: `[lo, hi)` ranges, counts, 52-wide bars.
fn print_hist(hist: &[u64]) {
    let max = hist.iter().copied().max().unwrap_or(0);
    for (k, low, high, n) in rows(hist) {
        let range = match k {
            0 | 1 => format!("[{low}]"),
            _ => format!("[{}, {})", short(low), short(high)),
        };
        let bar = "@".repeat((n * 52 / max) as usize);
        println!("{range:<16}{n:>8} |{bar:<52}|");
    }
}

/// 1024 -> "1K", 1048576 -> "1M", as bpftrace labels buckets.
fn short(v: u64) -> String {
    match v {
        v if v >= 1 << 30 && v % (1 << 30) == 0 => format!("{}G", v >> 30),
        v if v >= 1 << 20 && v % (1 << 20) == 0 => format!("{}M", v >> 20),
        v if v >= 1 << 10 && v % (1 << 10) == 0 => format!("{}K", v >> 10),
        v => v.to_string(),
    }
}

wasmprobe_guest::export!(OpenLat);
