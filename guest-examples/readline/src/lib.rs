//! readline: the lines interactive bash shells read, from a uretprobe on bash's `readline`
//! (`--arg bash=PATH` for another binary), like bpftrace's bashreadline.bt. With `--json`,
//! one record per line read: `{"pid":1234,"comm":"bash","command":"ls -l"}`.

use wasmprobe_guest::{emit_record, println, wants_records, Args, Event, Plan, Plugin, Value};

#[derive(Default)]
struct Readline {
    /// Emit records (`--json`) rather than print a table.
    records: bool,
}

impl Plugin for Readline {
    fn init(&mut self, args: &Args) -> Result<Plan, String> {
        let bash = args.get("bash").unwrap_or("/bin/bash");
        let mut plan = Plan::new();
        let rl = plan.uretprobe("readline", &format!("{bash}:readline"), "line=+0($retval):string");
        plan.fields(rl, &["line"]);
        self.records = wants_records();
        if !self.records {
            println!("{:<7} {:<16} {}", "PID", "COMM", "COMMAND");
        }
        Ok(plan)
    }

    fn on_event(&mut self, ev: &Event) {
        if self.records {
            emit_record(&[
                ("pid", Value::S64(ev.pid().into())),
                ("comm", Value::Str(ev.comm().to_string())),
                ("command", Value::Str(ev.str("line").into_owned())),
            ]);
        } else {
            println!("{:<7} {:<16} {}", ev.pid(), ev.comm(), ev.str("line"));
        }
    }
}

wasmprobe_guest::export!(Readline);
