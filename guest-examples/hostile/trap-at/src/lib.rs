//! Counts syscall entries and traps on its Nth event (`--arg at=N`, default 100): the plugin
//! the agent's tests restart under `restart = "on-failure"`.

use wasmprobe_guest::{Args, Event, Plan, Plugin};

#[derive(Default)]
struct TrapAt {
    at: u64,
    seen: u64,
}

impl Plugin for TrapAt {
    fn init(&mut self, args: &Args) -> Result<Plan, String> {
        self.at = args.parse("at")?.unwrap_or(100);
        let mut plan = Plan::new();
        plan.tracepoint("enter", "raw_syscalls:sys_enter");
        Ok(plan)
    }

    fn on_event(&mut self, _ev: &Event) {
        self.seen += 1;
        if self.seen == self.at {
            panic!("trap at event {}", self.seen);
        }
    }
}

wasmprobe_guest::export!(TrapAt);
