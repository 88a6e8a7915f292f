//! openlat: how long open() takes, from entry to return per thread, as a power-of-2
//! histogram in microseconds printed at the end like bpftrace's `hist()`. kprobes on
//! do_sys_openat2 where the kernel has them, else uprobes on libc's open and openat.

use std::collections::HashMap;

use wasmprobe_guest::{kernel_supports, println, Args, Event, Plan, Plugin, ProbeId};

#[derive(Default)]
struct OpenLat {
    entries: Vec<ProbeId>,
    /// Entry timestamp per thread still inside open.
    started: HashMap<i32, u64>,
    /// hist[0] counts 0, hist[k] counts [2^(k-1), 2^k).
    hist: Vec<u64>,
}

impl Plugin for OpenLat {
    fn init(&mut self, _args: &Args) -> Result<Plan, String> {
        let mut plan = Plan::new();
        if kernel_supports("kprobe") {
            self.entries = vec![plan.kprobe("open", "do_sys_openat2", "")];
            plan.kretprobe("openret", "do_sys_openat2", "");
        } else {
            self.entries = vec![plan.uprobe("open", "libc:open", ""), plan.uprobe("openat", "libc:openat", "")];
            plan.uretprobe("openret", "libc:open", "");
            plan.uretprobe("openatret", "libc:openat", "");
        }
        // Pairs are matched by pid and timed by timestamp, both in every record's header:
        // no field of the events is needed.
        for i in 0..plan.probes().len() {
            plan.fields(ProbeId(i as u32), &[]);
        }
        Ok(plan)
    }

    fn on_event(&mut self, ev: &Event) {
        if self.entries.contains(&ev.probe()) {
            self.started.insert(ev.pid(), ev.ts());
        } else if let Some(start) = self.started.remove(&ev.pid()) {
            let usecs = ev.ts().saturating_sub(start) / 1000;
            let bucket = if usecs == 0 { 0 } else { 64 - usecs.leading_zeros() as usize };
            if self.hist.len() <= bucket {
                self.hist.resize(bucket + 1, 0);
            }
            self.hist[bucket] += 1;
        }
    }

    fn finish(&mut self) {
        println!("@usecs:");
        print_hist(&self.hist);
    }
}

/// Prints a log2 histogram the way bpftrace does: `[lo, hi)` ranges, counts, 52-wide bars.
fn print_hist(hist: &[u64]) {
    let max = hist.iter().copied().max().unwrap_or(0);
    let Some(first) = hist.iter().position(|&n| n > 0) else { return };
    let last = hist.iter().rposition(|&n| n > 0).unwrap_or(first);
    for (k, &n) in hist.iter().enumerate().take(last + 1).skip(first) {
        let range = match k {
            0 => "[0]".to_string(),
            1 => "[1]".to_string(),
            _ => format!("[{}, {})", short(1 << (k - 1)), short(1 << k)),
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
