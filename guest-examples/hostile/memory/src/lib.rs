//! Keeps every megabyte it allocates: the memory limit must stop it.

use wasmprobe_guest::{Args, Event, Plan, Plugin};

#[derive(Default)]
struct Hog {
    kept: Vec<Vec<u8>>,
}

impl Plugin for Hog {
    fn init(&mut self, _args: &Args) -> Result<Plan, String> {
        let mut plan = Plan::new();
        plan.tracepoint("enter", "raw_syscalls:sys_enter");
        Ok(plan)
    }

    fn on_event(&mut self, _ev: &Event) {
        loop {
            self.kept.push(std::hint::black_box(vec![1u8; 1 << 20]));
        }
    }
}

wasmprobe_guest::export!(Hog);
