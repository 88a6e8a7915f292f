//! Declares what `--arg case=...` asks for: probe declarations the host must refuse.

use wasmprobe_guest::{Args, Event, Plan, Plugin};

#[derive(Default)]
struct BadPlan;

impl Plugin for BadPlan {
    fn init(&mut self, args: &Args) -> Result<Plan, String> {
        let mut plan = Plan::new();
        match args.get("case").unwrap_or("") {
            "newline" => plan.kprobe("open", "do_sys_openat2", "file=+0($arg2):ustring\n-:kprobes/victim"),
            "command" => plan.kprobe("open", "do_sys_openat2", "-:kprobes/victim"),
            "group" => plan.kprobe("kprobes/victim", "do_sys_openat2", ""),
            "group-target" => plan.kprobe("open", "p:kprobes/victim", ""),
            "long" => plan.kprobe(&"n".repeat(200), "do_sys_openat2", ""),
            "kprobe" => plan.kprobe("open", "do_sys_openat2", ""),
            // A uprobe on whatever `--arg target=PATH:WHAT` names, after a tracepoint (so a
            // late refusal would have written the instance and the tracepoint's filter first).
            "uprobe" => {
                let enter = plan.tracepoint("enter", "raw_syscalls:sys_enter");
                plan.filter(enter, "id == 0");
                plan.uprobe("target", args.get("target").unwrap_or(""), "")
            }
            "field-name" => {
                let p = plan.tracepoint("enter", "raw_syscalls:sys_enter");
                plan.fields(p, &["id\n-:kprobes/victim"]);
                p
            }
            "no-such-field" => {
                let p = plan.tracepoint("enter", "raw_syscalls:sys_enter");
                plan.fields(p, &["id", "fd"]);
                p
            }
            other => return Err(format!("unknown case {other:?}")),
        };
        Ok(plan)
    }

    fn on_event(&mut self, _ev: &Event) {}
}

wasmprobe_guest::export!(BadPlan);
