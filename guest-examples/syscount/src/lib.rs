//! syscount: every system call entry (tracepoint raw_syscalls:sys_enter), counted per process
//! and per syscall id; the top of both tables is printed at the end.
//!
//! `--arg top=N` (default 10); `--arg records=1` emits structured records instead of tables
//! (`{"syscall":0,"count":3}`, `{"pid":1234,"comm":"cat","count":3}` with `--json`, and
//! `{"lost":N}` when the kernel lost events). Records are the default with `--json`
//! (`--arg records=0` keeps the tables, each line then a `{"plugin":..,"line":..}` object).
//!
//! On the timeline (`--perfetto FILE`): a counter track "syscalls per second", one value per
//! second of the trace clock (at the second's start: the calls made in it; a second without
//! calls is a 0, the last second counts what it saw).
//!
//! As metrics (`wasmprobe agent`, `run --metrics-listen`): the counter
//! `syscount_syscalls_total{comm, syscall}`, updated once per batch, at most `--arg
//! max_series=N` label sets (default 1000; the rest in the overflow series).
//!
//! Processes are counted one by one up to `--arg max_pids=N` (default 10000): an agent runs
//! for weeks and sees every process of its node. Past that, at the end of a batch, the half
//! with the fewest calls is forgotten (the per-syscall table and the metric keep every call);
//! the gauge `syscount_tracked_pids` and the counter `syscount_evicted_pids_total` show it,
//! and the process table at the end says how many were forgotten.
//!
//! The counts are `agg::Count` maps (bpftrace's `@[args.id] = count()`, `@[pid] = count()`):
//! an update costs a multiply, a probe and an add inside Wasm. They are fed a batch's columns
//! (`Plugin::on_batch`), one loop per column, not one call per event.

use wasmprobe_guest::agg::Count;
use wasmprobe_guest::metrics::{self, Counter, Gauge};
use wasmprobe_guest::timeline::{self, Track};
use wasmprobe_guest::{
    emit_record, lost_events, println, wants_records, Args, Batch, FxHashMap, Plan, Plugin, ProbeId, Value,
};

const SECOND: u64 = 1_000_000_000;

#[derive(Default)]
struct Syscount {
    /// The probe (raw_syscalls:sys_enter).
    enter: ProbeId,
    top: usize,
    records: bool,
    by_id: Count<i64>,
    by_pid: Count<i32>,
    /// Per pid: its comm, as first seen.
    comms: FxHashMap<i32, String>,
    /// The pids first seen in the batch being read.
    new_pids: Vec<i32>,
    /// For the timeline: the second being counted (trace clock) and its calls so far.
    second: Option<(u64, u64)>,
    /// The metric, and this batch's counts per (pid, syscall) not yet added to it.
    calls: Option<Counter>,
    pending: Count<(i32, i64)>,
    /// Pids kept at most before the half with the fewest calls is forgotten.
    max_pids: usize,
    /// Pids forgotten so far.
    evicted: u64,
    /// The metrics of that: pids kept now, pids forgotten.
    tracked: Option<Gauge>,
    evictions: Option<Counter>,
}

impl Syscount {
    /// Keeps the `max_pids / 2` pids with the most calls (ties: the lower pid), forgets the rest.
    fn evict(&mut self) {
        let mut all = self.by_pid.drain();
        all.sort_unstable_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(&b.0)));
        let gone = all.split_off((self.max_pids / 2).min(all.len()));
        for (pid, _) in &gone {
            self.comms.remove(pid);
        }
        for (pid, n) in all {
            self.by_pid.add(pid, n.0);
        }
        self.evicted += gone.len() as u64;
        if let Some(c) = self.evictions {
            c.add(&[], gone.len() as f64);
        }
    }

    /// Counts a call made in second `s` of the trace clock (calls come in time order).
    fn tick(&mut self, s: u64) {
        match &mut self.second {
            Some((cur, n)) if *cur == s => *n += 1,
            _ => {
                self.close_second(Some(s));
                self.second = Some((s, 1));
            }
        }
    }

    /// Puts the finished second's count on the counter track, and a 0 for the next second if
    /// no call came in it.
    fn close_second(&mut self, next: Option<u64>) {
        let Some((s, n)) = self.second else { return };
        let track = Track::global("syscalls per second");
        timeline::counter(&track, s * SECOND, n as f64);
        if next.is_some_and(|next| next > s + 1) {
            timeline::counter(&track, (s + 1) * SECOND, 0.0);
        }
    }
}

impl Plugin for Syscount {
    fn init(&mut self, args: &Args) -> Result<Plan, String> {
        self.top = args.parse("top")?.unwrap_or(10);
        self.records = args.parse::<u8>("records")?.map_or_else(wants_records, |r| r != 0);
        let mut plan = Plan::new();
        let enter = plan.tracepoint("sys_enter", "raw_syscalls:sys_enter");
        plan.fields(enter, &["id"]);
        self.enter = enter;
        let max_series = args.parse("max_series")?.unwrap_or(0);
        let help = "System calls entered, by command name and syscall id";
        self.calls = Some(Counter::declare_capped("syscount_syscalls", help, &["comm", "syscall"], max_series)?);
        self.max_pids = args.parse("max_pids")?.unwrap_or(10_000);
        if self.max_pids < 2 {
            return Err("max_pids: at least 2".to_string());
        }
        self.tracked = Some(Gauge::declare("syscount_tracked_pids", "Processes counted one by one now", &[], 0)?);
        let help = "Processes forgotten (the fewest calls) to keep at most max_pids";
        self.evictions = Some(Counter::declare("syscount_evicted_pids", help, &[])?);
        Ok(plan)
    }

    fn on_batch_end(&mut self) {
        if let Some(calls) = self.calls {
            for ((pid, id), n) in self.pending.drain() {
                let comm = self.comms.get(&pid).map_or("", |c| c.as_str());
                calls.add(&[comm, &id.to_string()], n.0 as f64);
            }
        }
        // After the metric's update, which names the batch's pids.
        if self.by_pid.len() > self.max_pids {
            self.evict();
        }
        if let Some(g) = self.tracked.filter(|_| metrics::enabled()) {
            g.set(&[], self.by_pid.len() as f64);
        }
    }

    /// Whole columns of the batch, one loop each (the SDK's path for counters): the calls per
    /// second from the timestamps, the calls per syscall from the ids, per process from the
    /// pids, and per (pid, syscall) for the metric from the records.
    fn on_batch(&mut self, batch: &Batch) {
        let enter = self.enter;
        if timeline::enabled() {
            batch.ts(enter).for_each(|ts| self.tick(ts / SECOND));
        }
        let by_id = &mut self.by_id;
        batch.i64s(enter, "id").for_each(|id| by_id.inc(id));
        // The loop stays small (LLVM inlines its closure): new pids are named after it.
        let (by_pid, new_pids) = (&mut self.by_pid, &mut self.new_pids);
        batch.pids(enter).for_each(|pid| {
            if by_pid.inc_new(pid) {
                new_pids.push(pid);
            }
        });
        for pid in self.new_pids.drain(..) {
            self.comms.insert(pid, batch.comm(pid).to_string());
        }
        if metrics::enabled() {
            if let Some(id) = batch.int(enter, "id") {
                let pending = &mut self.pending;
                batch.records(enter).for_each(|r| pending.inc((r.pid, id.read(r.payload))));
            } else {
                batch.pids(enter).for_each(|pid| self.pending.inc((pid, 0)));
            }
        }
    }

    fn finish(&mut self) {
        self.close_second(None);
        // Largest counts first, ties by id or pid.
        let ids = self.by_id.top(self.top);
        let comm = |pid: &i32| self.comms.get(pid).cloned().unwrap_or_default();
        let pids: Vec<(i32, String, u64)> =
            self.by_pid.top(self.top).into_iter().map(|(pid, n)| (pid, comm(&pid), n.0)).collect();
        if self.records {
            for (id, n) in &ids {
                emit_record(&[("syscall", Value::S64(*id)), ("count", Value::U64(n.0))]);
            }
            for (pid, comm, n) in pids {
                let comm = Value::Str(comm);
                emit_record(&[("pid", Value::S64(pid as i64)), ("comm", comm), ("count", Value::U64(n))]);
            }
            let lost = lost_events();
            if lost > 0 {
                emit_record(&[("lost", Value::U64(lost))]);
            }
            if self.evicted > 0 {
                emit_record(&[("evicted_pids", Value::U64(self.evicted))]);
            }
            return;
        }
        println!("Top {} syscalls by count:", self.top);
        println!("{:>8} {:>10}", "SYSCALL", "COUNT");
        for (id, n) in &ids {
            println!("{id:>8} {:>10}", n.0);
        }
        println!();
        println!("Top {} processes by syscall count:", self.top);
        println!("{:>8} {:<16} {:>10}", "PID", "COMM", "COUNT");
        for (pid, comm, n) in &pids {
            println!("{pid:>8} {comm:<16} {n:>10}");
        }
        if self.evicted > 0 {
            println!("({} processes with the fewest calls were forgotten: max_pids={})", self.evicted, self.max_pids);
        }
        let lost = lost_events();
        if lost > 0 {
            println!();
            println!("The kernel lost {lost} events: the counts are low.");
        }
    }
}

wasmprobe_guest::export!(Syscount);
