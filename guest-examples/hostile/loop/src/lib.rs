//! Never returns from the call `--arg at=init|event|finish` names (default: its first event):
//! it spins (`--arg how=spin`, the default) or calls the host in an endless loop
//! (`--arg how=host`: `kernel.has-symbol`, which reads the kernel's symbol table each time).
//! The budget, or a stop request, must end it.

use wasmprobe_guest::{has_symbol, Args, Event, Plan, Plugin};

#[derive(Default)]
struct Spin {
    at: String,
    host: bool,
}

impl Spin {
    fn forever(&self) -> ! {
        let mut n: u64 = 0;
        loop {
            if self.host {
                n += u64::from(has_symbol("do_sys_openat2"));
            }
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

impl Plugin for Spin {
    fn init(&mut self, args: &Args) -> Result<Plan, String> {
        self.at = args.get("at").unwrap_or("event").to_string();
        self.host = args.get("how") == Some("host");
        if self.at == "init" {
            self.forever();
        }
        let mut plan = Plan::new();
        plan.tracepoint("enter", "raw_syscalls:sys_enter");
        Ok(plan)
    }

    fn on_event(&mut self, _ev: &Event) {
        if self.at == "event" {
            self.forever();
        }
    }

    fn finish(&mut self) {
        if self.at == "finish" {
            self.forever();
        }
    }
}

wasmprobe_guest::export!(Spin);
