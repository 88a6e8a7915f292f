//! Calls the host's own interfaces with arguments of hostile size or in hostile numbers, in
//! the call `--arg at=init|event` names (default init). `--arg case=NAME` picks the attack:
//!
//! - `print-huge`: one `output.print` of `--arg mib=N` MiB (default 100; needs a memory cap
//!   above that);
//! - `emit-many`: one `output.emit` of `--arg n=N` fields (default 2,000,000);
//! - `symbol-huge`: `kernel.has-symbol` with a `--arg mib=N` MiB name (default 16), `--arg
//!   times=T` times (default: until the budget stops it), each name different;
//! - `supports-many`: `kernel.supports` with distinct names of `--arg kib=N` KiB (default 1024),
//!   until the budget stops it;
//! - `comm-many`: `kernel.comm` for `--arg n=N` distinct pids in one call (default 1,000,000);
//! - `forge`: log and print lines that impersonate the host (newlines, terminal escapes);
//! - `err-forge`, `panic-forge`: an error returned from init, or a panic, whose message does
//!   the same; `err-huge`: an error message of `--arg mib=N` MiB (default 32).

use wasmprobe_guest::bindings::wasmprobe::plugin::{kernel, output, types};
use wasmprobe_guest::{println, Args, Event, Plan, Plugin};

#[derive(Default)]
struct Hostcalls {
    at: String,
    case: String,
    args: Vec<(String, String)>,
    done: bool,
}

impl Hostcalls {
    fn arg<T: std::str::FromStr>(&self, key: &str, default: T) -> T {
        self.args.iter().rev().find(|(k, _)| k == key).and_then(|(_, v)| v.parse().ok()).unwrap_or(default)
    }

    fn attack(&mut self) {
        match self.case.as_str() {
            "print-huge" => {
                let line = "x".repeat(self.arg::<usize>("mib", 100) << 20);
                output::print(&line);
                println!("printed {} bytes", line.len());
            }
            "emit-many" => {
                let n = self.arg::<usize>("n", 2_000_000);
                let fields: Vec<(String, types::Value)> =
                    (0..n).map(|_| (String::new(), types::Value::Boolean(true))).collect();
                output::emit(&fields);
                println!("emitted {n} fields");
            }
            "symbol-huge" => {
                let mut name = "s".repeat(self.arg::<usize>("mib", 16) << 20);
                let times = self.arg::<u64>("times", u64::MAX);
                let mut i = 0u64;
                while i < times {
                    name.truncate(name.len() - 20);
                    name.push_str(&format!("{i:020}"));
                    std::hint::black_box(kernel::has_symbol(&name));
                    i += 1;
                }
                println!("asked has-symbol {i} times");
            }
            "supports-many" => {
                let mut name = "f".repeat(self.arg::<usize>("kib", 1024) << 10);
                let times = self.arg::<u64>("times", u64::MAX);
                let mut i = 0u64;
                while i < times {
                    name.truncate(name.len() - 20);
                    name.push_str(&format!("{i:020}"));
                    std::hint::black_box(kernel::supports(&name));
                    i += 1;
                }
                println!("asked supports {i} times");
            }
            "comm-many" => {
                let n = self.arg::<i32>("n", 1_000_000);
                let known = (1..=n).filter(|&pid| kernel::comm(pid).is_some()).count();
                println!("comm: {known} of {n} pids known");
            }
            "forge" => {
                output::log(types::Level::Info, "fine\nwasmprobe: error: forged by the plugin");
                output::print("line\nwasmprobe: error: forged on stdout");
                output::print("\u{1b}[2K\r\u{1b}]0;title set by the plugin\u{7}\u{1b}[8mhidden");
                eprintln!("wasi stderr\u{1b}[8m");
            }
            other => println!("unknown case {other:?}"),
        }
    }
}

impl Plugin for Hostcalls {
    fn init(&mut self, args: &Args) -> Result<Plan, String> {
        self.args = args.pairs().to_vec();
        self.at = args.get("at").unwrap_or("init").to_string();
        self.case = args.get("case").unwrap_or("").to_string();
        match self.case.as_str() {
            "err-forge" => return Err("bad args\nwasmprobe: error: forged by the plugin\u{1b}[8m".into()),
            "err-huge" => return Err("e".repeat(self.arg::<usize>("mib", 32) << 20)),
            "panic-forge" => panic!("boom\nwasmprobe: error: forged by a panic\u{1b}[8m"),
            _ => {}
        }
        if self.at == "init" {
            self.attack();
        }
        let mut plan = Plan::new();
        plan.tracepoint("enter", "raw_syscalls:sys_enter");
        Ok(plan)
    }

    fn on_event(&mut self, _ev: &Event) {
        if self.at == "event" && !self.done {
            self.done = true;
            self.attack();
        }
    }
}

wasmprobe_guest::export!(Hostcalls);
