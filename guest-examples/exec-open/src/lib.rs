//! exec-open: the example of the libtracefs kprobe man page. A kprobe on `do_sys_openat2`
//! fetches the file name, flags and mode; a kretprobe fetches what it returned:
//!
//! ```text
//! 1234-cat: open file='/etc/passwd'
//! 1234-cat: open ret=3
//! ```
//!
//! Kernels without kprobes (kernel_supports("kprobe") is false) get the same output from
//! uprobes on libc's `open` and `openat` and uretprobes on their returns.
//!
//! With `--json` each event is a record instead: `{"pid":1234,"comm":"cat","file":"/etc/passwd"}`
//! and `{"pid":1234,"comm":"cat","ret":3}`.

use wasmprobe_guest::{
    emit_record, kernel_supports, log, println, wants_records, Args, Event, Level, Plan, Plugin, ProbeId, Value,
};

#[derive(Default)]
struct ExecOpen {
    /// Probes whose events carry `file`.
    opens: Vec<ProbeId>,
    /// Emit records (`--json`) rather than print lines.
    records: bool,
}

impl Plugin for ExecOpen {
    fn init(&mut self, _args: &Args) -> Result<Plan, String> {
        self.records = wants_records();
        let mut plan = Plan::new();
        if kernel_supports("kprobe") {
            let open =
                plan.kprobe("open", "do_sys_openat2", "file=+0($arg2):ustring flags=+0($arg3):x64 mode=+8($arg3):x64");
            let ret = plan.kretprobe("openret", "do_sys_openat2", "ret=%ax");
            plan.fields(open, &["file"]).fields(ret, &["ret"]);
            self.opens = vec![open];
        } else {
            log(Level::Info, "the kernel has no kprobes: tracing libc open/openat with uprobes instead");
            let open = plan.uprobe("open", "libc:open", "file=+0(%di):ustring");
            let openat = plan.uprobe("openat", "libc:openat", "file=+0(%si):ustring");
            // libc returns an int (-1 and errno on failure): fetch it as one.
            let ret = plan.uretprobe("openret", "libc:open", "ret=$retval:s32");
            let atret = plan.uretprobe("openatret", "libc:openat", "ret=$retval:s32");
            // Only these fields are delivered: less to copy per event.
            plan.fields(open, &["file"]).fields(openat, &["file"]).fields(ret, &["ret"]).fields(atret, &["ret"]);
            self.opens = vec![open, openat];
        }
        Ok(plan)
    }

    fn on_event(&mut self, ev: &Event) {
        let open = self.opens.contains(&ev.probe());
        if self.records {
            let last = match open {
                true => ("file", Value::Str(ev.str("file").into_owned())),
                false => ("ret", Value::S64(ev.i64("ret"))),
            };
            emit_record(&[("pid", Value::S64(ev.pid().into())), ("comm", Value::Str(ev.comm().to_string())), last]);
        } else if open {
            println!("{}-{}: open file='{}'", ev.pid(), ev.comm(), ev.str("file"));
        } else {
            println!("{}-{}: open ret={}", ev.pid(), ev.comm(), ev.i64("ret"));
        }
    }
}

wasmprobe_guest::export!(ExecOpen);
