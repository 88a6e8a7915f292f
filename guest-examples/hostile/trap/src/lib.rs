//! Prints the first event and panics on the second (a trap in the middle of a batch).

use wasmprobe_guest::{println, Args, Event, Plan, Plugin};

#[derive(Default)]
struct Boom {
    seen: u32,
}

impl Plugin for Boom {
    fn init(&mut self, _args: &Args) -> Result<Plan, String> {
        let mut plan = Plan::new();
        plan.tracepoint("enter", "raw_syscalls:sys_enter");
        Ok(plan)
    }

    fn on_event(&mut self, ev: &Event) {
        self.seen += 1;
        if self.seen == 2 {
            panic!("boom at event {} of pid {}", self.seen, ev.pid());
        }
        println!("event {} of pid {}", self.seen, ev.pid());
    }
}

wasmprobe_guest::export!(Boom);
