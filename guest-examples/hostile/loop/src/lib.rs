//! Never returns from its first event: the CPU budget must stop it.

use wasmprobe_guest::{Args, Event, Plan, Plugin};

#[derive(Default)]
struct Spin;

impl Plugin for Spin {
    fn init(&mut self, _args: &Args) -> Result<Plan, String> {
        let mut plan = Plan::new();
        plan.tracepoint("enter", "raw_syscalls:sys_enter");
        Ok(plan)
    }

    fn on_event(&mut self, _ev: &Event) {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

wasmprobe_guest::export!(Spin);
