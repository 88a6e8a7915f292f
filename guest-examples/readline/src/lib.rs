//! readline: the lines interactive bash shells read, from a uretprobe on bash's `readline`
//! (`--arg bash=PATH` for another binary), like bpftrace's bashreadline.bt.

use wasmprobe_guest::{println, Args, Event, Plan, Plugin};

#[derive(Default)]
struct Readline;

impl Plugin for Readline {
    fn init(&mut self, args: &Args) -> Result<Plan, String> {
        let bash = args.get("bash").unwrap_or("/bin/bash");
        let mut plan = Plan::new();
        let rl = plan.uretprobe("readline", &format!("{bash}:readline"), "line=+0($retval):string");
        plan.fields(rl, &["line"]);
        println!("{:<7} {:<16} {}", "PID", "COMM", "COMMAND");
        Ok(plan)
    }

    fn on_event(&mut self, ev: &Event) {
        println!("{:<7} {:<16} {}", ev.pid(), ev.comm(), ev.str("line"));
    }
}

wasmprobe_guest::export!(Readline);
