//! syscount: every system call entry (tracepoint raw_syscalls:sys_enter), counted per process
//! and per syscall id; the top of both tables is printed at the end.
//!
//! `--arg top=N` (default 10); `--arg records=1` emits structured records instead of tables
//! (`{"syscall":0,"count":3}`, `{"pid":1234,"comm":"cat","count":3}` with `--json`, and
//! `{"lost":N}` when the kernel lost events). Records are the default with `--json`
//! (`--arg records=0` keeps the tables, each line then a `{"plugin":..,"line":..}` object).

use std::collections::HashMap;

use wasmprobe_guest::{emit_record, lost_events, println, wants_records, Args, Event, Plan, Plugin, Value};

#[derive(Default)]
struct Syscount {
    top: usize,
    records: bool,
    by_id: HashMap<i64, u64>,
    /// Per pid: its comm (as first seen) and count.
    by_pid: HashMap<i32, (String, u64)>,
}

impl Plugin for Syscount {
    fn init(&mut self, args: &Args) -> Result<Plan, String> {
        self.top = args.parse("top")?.unwrap_or(10);
        self.records = args.parse::<u8>("records")?.map_or_else(wants_records, |r| r != 0);
        let mut plan = Plan::new();
        let enter = plan.tracepoint("sys_enter", "raw_syscalls:sys_enter");
        plan.fields(enter, &["id"]);
        Ok(plan)
    }

    fn on_event(&mut self, ev: &Event) {
        *self.by_id.entry(ev.i64("id")).or_default() += 1;
        self.by_pid.entry(ev.pid()).or_insert_with(|| (ev.comm().to_string(), 0)).1 += 1;
    }

    fn finish(&mut self) {
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
