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

use std::collections::HashMap;

use wasmprobe_guest::metrics::{self, Counter};
use wasmprobe_guest::timeline::{self, Track};
use wasmprobe_guest::{emit_record, lost_events, println, wants_records, Args, Event, Plan, Plugin, Value};

const SECOND: u64 = 1_000_000_000;

#[derive(Default)]
struct Syscount {
    top: usize,
    records: bool,
    by_id: HashMap<i64, u64>,
    /// Per pid: its comm (as first seen) and count.
    by_pid: HashMap<i32, (String, u64)>,
    /// For the timeline: the second being counted (trace clock) and its calls so far.
    second: Option<(u64, u64)>,
    /// The metric, and this batch's counts per (pid, syscall) not yet added to it.
    calls: Option<Counter>,
    pending: HashMap<(i32, i64), u64>,
}

impl Syscount {
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
        let max_series = args.parse("max_series")?.unwrap_or(0);
        let help = "System calls entered, by command name and syscall id";
        self.calls = Some(Counter::declare_capped("syscount_syscalls", help, &["comm", "syscall"], max_series)?);
        Ok(plan)
    }

    fn on_batch_end(&mut self) {
        let Some(calls) = self.calls else { return };
        for ((pid, id), n) in self.pending.drain() {
            let comm = self.by_pid.get(&pid).map_or("", |(c, _)| c.as_str());
            calls.add(&[comm, &id.to_string()], n as f64);
        }
    }

    fn on_event(&mut self, ev: &Event) {
        if timeline::enabled() {
            let s = ev.ts() / SECOND;
            match &mut self.second {
                Some((cur, n)) if *cur == s => *n += 1,
                _ => {
                    self.close_second(Some(s));
                    self.second = Some((s, 1));
                }
            }
        }
        let id = ev.i64("id");
        *self.by_id.entry(id).or_default() += 1;
        self.by_pid.entry(ev.pid()).or_insert_with(|| (ev.comm().to_string(), 0)).1 += 1;
        if metrics::enabled() {
            *self.pending.entry((ev.pid(), id)).or_default() += 1;
        }
    }

    fn finish(&mut self) {
        self.close_second(None);
        let mut ids: Vec<_> = self.by_id.iter().collect();
        ids.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let mut pids: Vec<_> = self.by_pid.iter().collect();
        pids.sort_by(|a, b| b.1 .1.cmp(&a.1 .1).then(a.0.cmp(b.0)));
        if self.records {
            for (id, n) in ids.iter().take(self.top) {
                emit_record(&[("syscall", Value::S64(**id)), ("count", Value::U64(**n))]);
            }
            for (pid, (comm, n)) in pids.iter().take(self.top) {
                let comm = Value::Str(comm.clone());
                emit_record(&[("pid", Value::S64(**pid as i64)), ("comm", comm), ("count", Value::U64(*n))]);
            }
            let lost = lost_events();
            if lost > 0 {
                emit_record(&[("lost", Value::U64(lost))]);
            }
            return;
        }
        println!("Top {} syscalls by count:", self.top);
        println!("{:>8} {:>10}", "SYSCALL", "COUNT");
        for (id, n) in ids.iter().take(self.top) {
            println!("{id:>8} {n:>10}");
        }
        println!();
        println!("Top {} processes by syscall count:", self.top);
        println!("{:>8} {:<16} {:>10}", "PID", "COMM", "COUNT");
        for (pid, (comm, n)) in pids.iter().take(self.top) {
            println!("{pid:>8} {comm:<16} {n:>10}");
        }
        let lost = lost_events();
        if lost > 0 {
            println!();
            println!("The kernel lost {lost} events: the counts are low.");
        }
    }
}

wasmprobe_guest::export!(Syscount);
