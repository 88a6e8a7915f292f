//! Blocks inside a host call: `std::thread::sleep` (WASI's `subscribe-duration` + `poll`) in
//! the call `--arg at=init|event|finish` names (default: event), for `--arg secs=N` (default
//! 3600). The host must refuse the timer.

use std::time::Duration;

use wasmprobe_guest::{Args, Event, Plan, Plugin};

#[derive(Default)]
struct Sleeper {
    at: String,
    secs: u64,
}

impl Sleeper {
    fn block(&self) {
        std::thread::sleep(Duration::from_secs(self.secs));
    }
}

impl Plugin for Sleeper {
    fn init(&mut self, args: &Args) -> Result<Plan, String> {
        self.at = args.get("at").unwrap_or("event").to_string();
        self.secs = args.parse("secs")?.unwrap_or(3600);
        // A zero-length sleep is how a non-blocking poll is written: it must still work.
        std::thread::sleep(Duration::ZERO);
        if self.at == "init" {
            self.block();
        }
        let mut plan = Plan::new();
        plan.tracepoint("enter", "raw_syscalls:sys_enter");
        Ok(plan)
    }

    fn on_event(&mut self, _ev: &Event) {
        if self.at == "event" {
            self.block();
        }
    }

    fn finish(&mut self) {
        if self.at == "finish" {
            self.block();
        }
    }
}

wasmprobe_guest::export!(Sleeper);
