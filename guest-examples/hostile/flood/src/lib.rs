//! Prints 400 KB of output per event, through the host and through WASI stdout.

use wasmprobe_guest::{println, Args, Event, Plan, Plugin};

#[derive(Default)]
struct Flood;

impl Plugin for Flood {
    fn init(&mut self, _args: &Args) -> Result<Plan, String> {
        let mut plan = Plan::new();
        plan.tracepoint("enter", "raw_syscalls:sys_enter");
        Ok(plan)
    }

    fn on_event(&mut self, _ev: &Event) {
        let line = "x".repeat(99);
        for i in 0..2_000 {
            println!("{i:05} {line}");
            std::println!("stdout {i:05} {line}");
        }
    }
}

wasmprobe_guest::export!(Flood);
