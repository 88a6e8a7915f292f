//! Plans that try to read what the user's `--allow` policy forbids, or reach kernel objects
//! that belong to somebody else. `--arg case=NAME` picks one (see `init`); `--arg victim=G`
//! names another run's probe group or another event for the cases that attack one.

use wasmprobe_guest::{Args, Event, Plan, Plugin};

#[derive(Default)]
struct Sneak;

impl Plugin for Sneak {
    fn init(&mut self, args: &Args) -> Result<Plan, String> {
        let mut plan = Plan::new();
        let victim = args.get("victim").unwrap_or("kprobes.victim");
        match args.get("case").unwrap_or("") {
            // uprobes: the kernel reads user memory only; a kernel symbol is refused.
            "uprobe-ksym" => {
                plan.uprobe("u", "libc:getppid", "x=+0(@jiffies):u64");
            }
            "uprobe-kaddr" => {
                plan.uprobe("u", "libc:getppid", "a=@0xffffffff81000000:u64 b=+0(@0xffffffff81000000):string");
            }
            "uprobe-user" => {
                plan.uprobe("u", "libc:getppid", "s=$stack0 c=$comm sp=+0(%sp):x64");
            }
            // eprobes: the kernel dereferences kernel memory for them.
            "eprobe-kaddr" => {
                plan.eprobe("e", "raw_syscalls.sys_enter", "x=+0(@0xffffffff81000000):x64");
            }
            "eprobe-ksym" => {
                plan.eprobe("e", "raw_syscalls.sys_enter", "x=@_text:x64");
            }
            "eprobe-kderef" => {
                plan.eprobe("e", "syscalls.sys_enter_openat", "x=+0($filename):u64");
            }
            "eprobe-kstring" => {
                plan.eprobe("e", "syscalls.sys_enter_openat", "x=+0($filename):string");
            }
            "eprobe-symbol" => {
                plan.eprobe("e", "raw_syscalls.sys_enter", "x=$id:symbol");
            }
            "eprobe-nested" => {
                plan.eprobe("e", "syscalls.sys_enter_openat", "x=+u0(+0($filename)):ustring");
            }
            "eprobe-ustring" => {
                plan.eprobe("e", "syscalls.sys_enter_openat", "file=+0($filename):ustring");
            }
            "eprobe-field" => {
                plan.eprobe("e", "raw_syscalls.sys_enter", "id=$id a=$args:x64");
            }
            // Someone else's events: a dynamic event group (kprobes.victim, or another run's
            // wasmprobe_<pid>_x.event) as an eprobe's or a tracepoint's source.
            "eprobe-victim" => {
                plan.eprobe("e", victim, "");
            }
            "tracepoint-victim" => {
                plan.tracepoint("t", &victim.replacen('.', ":", 1));
            }
            "tracepoint-ftrace" => {
                plan.tracepoint("t", "ftrace:function");
            }
            "tracepoint-missing" => {
                plan.tracepoint("t", "nosuchsystem:nosuchevent");
            }
            // Names and targets outside what tracefs can hold.
            "unicode-name" => {
                plan.tracepoint("\u{f6}pen", "raw_syscalls:sys_enter");
            }
            "unicode-target" => {
                plan.tracepoint("t", "raw_syscalls:sys_\u{e9}nter");
            }
            "space-target" => {
                plan.uprobe("u", "/bin/tr ue:main", "");
            }
            "traversal" => {
                plan.tracepoint("t", "..:..");
            }
            "long-target" => {
                plan.uprobe("u", &format!("/{}:main", "a".repeat(5000)), "");
            }
            // More probes than any plan may have: `--arg n=N` of them, each `--arg len=L`
            // bytes of fetchargs (default 100000 probes, 100 bytes).
            "huge-plan" => {
                let n: usize = args.parse("n")?.unwrap_or(100_000);
                let len: usize = args.parse("len")?.unwrap_or(100);
                let fetch = "x".repeat(len);
                for i in 0..n {
                    plan.tracepoint(&format!("p{i}"), "raw_syscalls:sys_enter");
                    plan.add(wasmprobe_guest::ProbeKind::Uprobe, &format!("q{i}"), "libc:getppid", &fetch);
                }
            }
            // Many uprobes on one big library (`--arg path=P --arg sym=S --arg n=N`, default 64):
            // the host reads the ELF file to resolve each.
            "big-elf" => {
                let path = args.get("path").unwrap_or("/usr/lib/x86_64-linux-gnu/libc.so.6");
                let sym = args.get("sym").unwrap_or("getppid");
                let n: usize = args.parse("n")?.unwrap_or(64);
                for i in 0..n {
                    plan.uprobe(&format!("u{i}"), &format!("{path}:{sym}"), "");
                }
            }
            // The same field 136 times (the most a probe may ask for), projected.
            "dup-fields" => {
                let p = plan.tracepoint("t", "raw_syscalls:sys_enter");
                plan.fields(p, &["id"; 136]);
            }
            // A filter that would be a shell command, and one that names a file.
            "filter-shell" => {
                let p = plan.tracepoint("t", "raw_syscalls:sys_enter");
                plan.filter(p, "id == 1 ; touch /tmp/wasmprobe-sneak-pwned");
            }
            // Control characters that a terminal would obey, in what `inspect` prints.
            "escape" => {
                plan.tracepoint("t", "raw_syscalls:sys_enter\u{1b}[8m");
            }
            "escape-filter" => {
                let p = plan.tracepoint("t", "raw_syscalls:sys_enter");
                plan.filter(p, "id == 1\u{1b}[2K\u{1b}[8m");
            }
            // A plan that is not the same twice: the one `inspect` showed is not the one run.
            "flip" => {
                let mut b = [0u8; 1];
                getrandom(&mut b);
                if b[0] & 1 == 0 {
                    plan.tracepoint("t", "raw_syscalls:sys_enter");
                } else {
                    plan.tracepoint("t", "raw_syscalls:sys_exit");
                }
            }
            other => return Err(format!("unknown case {other:?}")),
        }
        Ok(plan)
    }

    fn on_event(&mut self, _ev: &Event) {}
}

/// Random bytes the way std gets them on wasip2 (wasi:random), through a HashMap's keys.
fn getrandom(out: &mut [u8]) {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    let v = h.finish().to_le_bytes();
    for (o, b) in out.iter_mut().zip(v) {
        *o = b;
    }
}

wasmprobe_guest::export!(Sneak);
