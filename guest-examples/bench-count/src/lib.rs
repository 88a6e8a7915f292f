//! The work of the delivery benchmark (host/wasmprobe/benches/plugin_delivery.rs): count the
//! events per pid and sum the `id` field. `finish` prints the result so the host can check it
//! against its native run of the same work.

use wasmprobe_guest::{println, Args, Event, FxHashMap, Plan, Plugin};

#[derive(Default)]
struct Count {
    /// `--arg work=none` measures delivery alone (the SDK's walk of the batch, no work).
    no_work: bool,
    per_pid: FxHashMap<i32, u64>,
    sum: u64,
}

impl Plugin for Count {
    fn init(&mut self, args: &Args) -> Result<Plan, String> {
        self.no_work = args.get("work") == Some("none");
        let mut plan = Plan::new();
        let enter = plan.tracepoint("sys_enter", "raw_syscalls:sys_enter");
        plan.fields(enter, &["id"]);
        Ok(plan)
    }

    fn on_event(&mut self, ev: &Event) {
        if self.no_work {
            self.sum += 1;
            return;
        }
        *self.per_pid.entry(ev.pid()).or_default() += 1;
        self.sum = self.sum.wrapping_add(ev.u64("id"));
    }

    fn finish(&mut self) {
        let events: u64 = if self.no_work { self.sum } else { self.per_pid.values().sum() };
        println!("pids={} events={} sum={}", self.per_pid.len(), events, self.sum);
    }
}

wasmprobe_guest::export!(Count);
