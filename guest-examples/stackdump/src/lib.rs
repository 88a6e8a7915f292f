//! The plugin of `host/wasmprobe/tests/stacks.rs`: one probe (`--arg kind=uprobe|tracepoint|
//! kprobe`, `--arg target=...`, optional `--arg filter=...`) with the stacks `--arg
//! stacks=kernel|user|both` asks for. It keeps the frames of the first `--arg max=N` events
//! (default 50) and at `finish` symbolizes them in two host calls per address space, then
//! prints, per event:
//!
//! ```text
//! event 0 pid=123 kstack=12 ustack=5 truncated=0
//!   k 0xffffffff81000000 do_syscall_64+0x5a
//!   u 0x401136 target
//! ```
//!
//! and at the end `events=N with_kstack=K with_ustack=U`.

use wasmprobe_guest::stacks::{symbolize_kernel, symbolize_user, Frame};
use wasmprobe_guest::{println, Args, Event, Plan, Plugin, ProbeKind};

struct Seen {
    pid: i32,
    kstack: Option<Vec<u64>>,
    ustack: Option<Vec<u64>>,
    truncated: bool,
}

#[derive(Default)]
struct StackDump {
    max: usize,
    events: u64,
    with_k: u64,
    with_u: u64,
    kept: Vec<Seen>,
}

fn name(f: &Frame) -> String {
    match &f.symbol {
        Some(s) if f.offset > 0 => format!("{s}+{:#x}", f.offset),
        Some(s) => s.clone(),
        None => "?".into(),
    }
}

impl Plugin for StackDump {
    fn init(&mut self, args: &Args) -> Result<Plan, String> {
        let kind = match args.get("kind").unwrap_or("tracepoint") {
            "uprobe" => ProbeKind::Uprobe,
            "tracepoint" => ProbeKind::Tracepoint,
            "kprobe" => ProbeKind::Kprobe,
            other => return Err(format!("--arg kind={other}: uprobe, tracepoint or kprobe")),
        };
        let target = args.get("target").ok_or("--arg target= is required")?;
        self.max = args.parse("max")?.unwrap_or(50);
        let mut plan = Plan::new();
        let p = plan.add(kind, "hit", target, "");
        if let Some(f) = args.get("filter") {
            plan.filter(p, f);
        }
        match args.get("stacks").unwrap_or("both") {
            "kernel" => plan.kstack(p),
            "user" => plan.ustack(p),
            "both" => plan.kstack(p).ustack(p),
            "none" => &mut plan,
            other => return Err(format!("--arg stacks={other}: kernel, user, both or none")),
        };
        Ok(plan)
    }

    fn on_event(&mut self, ev: &Event) {
        self.events += 1;
        let k = ev.kstack();
        let u = ev.ustack();
        self.with_k += k.is_some() as u64;
        self.with_u += u.is_some() as u64;
        if self.kept.len() < self.max {
            self.kept.push(Seen {
                pid: ev.pid(),
                kstack: k.map(|s| s.to_vec()),
                ustack: u.map(|s| s.to_vec()),
                truncated: u.is_some_and(|s| s.truncated()),
            });
        }
    }

    fn finish(&mut self) {
        // One call for every kernel frame; one per process for the user frames.
        let kall: Vec<u64> = self.kept.iter().flat_map(|s| s.kstack.iter().flatten().copied()).collect();
        let mut ksyms = symbolize_kernel(&kall).into_iter();
        let mut pids: Vec<i32> = self.kept.iter().filter(|s| s.ustack.is_some()).map(|s| s.pid).collect();
        pids.sort_unstable();
        pids.dedup();
        let mut usyms: Vec<(i32, std::vec::IntoIter<Frame>)> = pids
            .iter()
            .map(|&pid| {
                let all: Vec<u64> = self
                    .kept
                    .iter()
                    .filter(|s| s.pid == pid)
                    .flat_map(|s| s.ustack.iter().flatten().copied())
                    .collect();
                (pid, symbolize_user(pid, &all).into_iter())
            })
            .collect();
        for (i, s) in self.kept.iter().enumerate() {
            println!(
                "event {i} pid={} kstack={} ustack={} truncated={}",
                s.pid,
                s.kstack.as_ref().map_or(0, Vec::len),
                s.ustack.as_ref().map_or(0, Vec::len),
                s.truncated as u8
            );
            for &a in s.kstack.iter().flatten() {
                let f = ksyms.next();
                println!("  k {a:#x} {}", f.as_ref().map_or("?".into(), name));
            }
            let syms = usyms.iter_mut().find(|(p, _)| *p == s.pid).map(|(_, it)| it);
            let mut syms = syms;
            for &a in s.ustack.iter().flatten() {
                let f = syms.as_mut().and_then(|it| it.next());
                println!("  u {a:#x} {}", f.as_ref().map_or("?".into(), name));
            }
        }
        println!("events={} with_kstack={} with_ustack={}", self.events, self.with_k, self.with_u);
    }
}

wasmprobe_guest::export!(StackDump);
