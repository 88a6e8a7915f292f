//! Writes `--arg mb=N` MB (default 60) to WASI stdout without a newline in its first
//! `on-batch`, then one ordinary line per later event, through WASI stdout and `print`. The
//! host caps the first write; the later lines must still come through. With `--arg
//! print_mb=N` the first event instead prints one line of N MB through `output.print`.

use std::io::Write;

use wasmprobe_guest::{println, Args, Event, Plan, Plugin};

#[derive(Default)]
struct Stdout {
    mb: usize,
    print_mb: Option<usize>,
    events: u64,
}

impl Plugin for Stdout {
    fn init(&mut self, args: &Args) -> Result<Plan, String> {
        self.mb = args.parse("mb")?.unwrap_or(60);
        self.print_mb = args.parse("print_mb")?;
        let mut plan = Plan::new();
        plan.tracepoint("enter", "raw_syscalls:sys_enter");
        Ok(plan)
    }

    fn on_event(&mut self, _ev: &Event) {
        self.events += 1;
        if let (1, Some(mb)) = (self.events, self.print_mb) {
            wasmprobe_guest::print(&"p".repeat(mb << 20));
        } else if self.events == 1 {
            let chunk = vec![b'z'; 1 << 20];
            let mut out = std::io::stdout().lock();
            for _ in 0..self.mb {
                let _ = out.write_all(&chunk);
            }
            let _ = out.flush();
        } else {
            std::println!("wasi line {}", self.events);
            println!("print line {}", self.events);
        }
    }
}

wasmprobe_guest::export!(Stdout);
