//! stackcount: the call stacks seen at one probe, counted (like BCC's stackcount and
//! bpftrace's `@[kstack, ustack] = count()`). At the end: the top N stacks, symbolized by the
//! host in one batch per address space, and the folded stacks flame-graph tools read.
//!
//! ```text
//! wasmprobe run stackcount --arg probe=raw_syscalls:sys_enter -- ls
//! wasmprobe run stackcount --arg probe=u:/tmp/prog:target --arg folded=out.folded -- /tmp/prog
//! wasmprobe flamegraph out.folded -o out.svg
//! ```
//!
//! Arguments:
//! - `probe=SPEC` (required): `SYSTEM:EVENT` or `t:SYSTEM:EVENT` (a tracepoint),
//!   `u:PATH:SYMBOL` or `/PATH:SYMBOL` (a uprobe), `k:FUNCTION` (a kprobe).
//! - `stack=kernel|user|both`: which stacks (default: `user` for a uprobe, else `kernel`).
//! - `top=N`: stacks printed (default 10).
//! - `folded=FILE`: the host writes every distinct stack there as `outer;...;inner COUNT`
//!   (user frames first, then kernel frames suffixed `_[k]`, as perf and BCC fold them).
//! - `records=0|1`: records instead of the table (default: with `--json`). A record per
//!   folded stack, `{"folded":"main;a;b","count":3}`, then `{"events":N,"stacks":M,
//!   "without_stack":K,"stopped_early":T}`.
//!
//! User stacks come from the kernel walking frame pointers: code built without them gives
//! stacks that stop early (counted, and marked in the table).

use std::collections::{BTreeMap, HashMap};

use wasmprobe_guest::stacks::{self, Frame};
use wasmprobe_guest::{emit_record, lost_events, println, wants_records, Args, Event, Plan, Plugin, Value};

/// One distinct stack: the process (for user stacks, whose addresses are its own), the
/// kernel and user addresses innermost first, and whether the user stack stopped early.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
struct Key {
    pid: i32,
    kernel: Vec<u64>,
    user: Vec<u64>,
    stopped_early: bool,
}

#[derive(Default)]
struct StackCount {
    /// How the probe was given, for the table's title.
    spec: String,
    top: usize,
    records: bool,
    folded: bool,
    kernel: bool,
    user: bool,
    counts: HashMap<Key, u64>,
    /// Reused for each event: a known stack costs no allocation.
    scratch: Key,
    comms: HashMap<i32, String>,
    events: u64,
    /// Events whose requested stack did not come (the host could not match it).
    without_stack: u64,
    /// Distinct stacks past `max_stacks`, counted here instead.
    dropped: u64,
    max_stacks: usize,
    /// The probe is a uprobe at a function's entry: its caller comes from the fetched `caller`.
    entry_caller: bool,
}

/// The probe kinds `probe=` takes.
enum Kind {
    Tracepoint,
    Uprobe,
    Kprobe,
}

fn parse_probe(spec: &str) -> Result<(Kind, &str), String> {
    let (kind, target) = if let Some(t) = spec.strip_prefix("t:").or_else(|| spec.strip_prefix("tracepoint:")) {
        (Kind::Tracepoint, t)
    } else if let Some(t) = spec.strip_prefix("u:").or_else(|| spec.strip_prefix("uprobe:")) {
        (Kind::Uprobe, t)
    } else if let Some(t) = spec.strip_prefix("k:").or_else(|| spec.strip_prefix("kprobe:")) {
        (Kind::Kprobe, t)
    } else if spec.starts_with('/') {
        (Kind::Uprobe, spec)
    } else if spec.contains(':') {
        (Kind::Tracepoint, spec)
    } else {
        (Kind::Kprobe, spec)
    };
    if target.is_empty() {
        return Err(format!("probe={spec:?}: nothing to probe after the prefix"));
    }
    Ok((kind, target))
}

impl Plugin for StackCount {
    fn init(&mut self, args: &Args) -> Result<Plan, String> {
        let spec = args
            .get("probe")
            .ok_or("stackcount needs --arg probe=SPEC (SYSTEM:EVENT, u:PATH:SYMBOL or k:FUNCTION)".to_string())?;
        let (kind, target) = parse_probe(spec)?;
        self.spec = spec.to_string();
        self.top = args.parse("top")?.unwrap_or(10);
        self.max_stacks = args.parse("max_stacks")?.unwrap_or(100_000);
        self.records = args.parse::<u8>("records")?.map_or_else(wants_records, |r| r != 0);
        self.folded = args.get("folded").is_some_and(|f| !f.is_empty());
        (self.kernel, self.user) = match args.get("stack") {
            None => (!matches!(kind, Kind::Uprobe), matches!(kind, Kind::Uprobe)),
            Some("kernel") => (true, false),
            Some("user") => (false, true),
            Some("both") => (true, true),
            Some(other) => return Err(format!("stack={other:?}: expected kernel, user or both")),
        };
        let mut plan = Plan::new();
        // A uprobe on a function's first instruction fires before the function pushed its
        // frame pointer: the kernel's walk then skips the caller. The return address is on top
        // of the stack there ($stack0, x86-64), so it is fetched and put back in.
        let symbol = target.rsplit(':').next().unwrap_or("");
        self.entry_caller =
            matches!(kind, Kind::Uprobe) && self.user && !symbol.contains('+') && !symbol.starts_with("0x");
        let p = match kind {
            Kind::Tracepoint => plan.tracepoint("hit", target),
            Kind::Uprobe if self.entry_caller => plan.uprobe("hit", target, "caller=$stack0:x64"),
            Kind::Uprobe => plan.uprobe("hit", target, ""),
            Kind::Kprobe => plan.kprobe("hit", target, ""),
        };
        // The stacks are all we read: no field of the event is copied into the plugin.
        plan.fields(p, if self.entry_caller { &["common_pid", "caller"] } else { &["common_pid"] });
        if self.kernel {
            plan.kstack(p);
        }
        if self.user {
            plan.ustack(p);
        }
        Ok(plan)
    }

    fn on_event(&mut self, ev: &Event) {
        self.events += 1;
        let k = &mut self.scratch;
        k.kernel.clear();
        k.user.clear();
        k.pid = 0;
        k.stopped_early = false;
        let mut missing = false;
        if self.kernel {
            match ev.kstack() {
                Some(s) => k.kernel.extend(s.iter()),
                None => missing = true,
            }
        }
        if self.user {
            match ev.ustack() {
                Some(s) => {
                    k.user.extend(s.iter());
                    if self.entry_caller && !k.user.is_empty() {
                        let caller = ev.u64("caller");
                        if caller != 0 && k.user.get(1) != Some(&caller) {
                            k.user.insert(1, caller);
                        }
                    }
                    k.stopped_early = s.truncated();
                    k.pid = ev.pid();
                }
                None => missing = true,
            }
        }
        if missing {
            self.without_stack += 1;
            if k.kernel.is_empty() && k.user.is_empty() {
                return;
            }
        }
        if let Some(n) = self.counts.get_mut(k) {
            *n += 1;
        } else if self.counts.len() < self.max_stacks {
            self.counts.insert(k.clone(), 1);
            if k.pid != 0 {
                self.comms.entry(k.pid).or_insert_with(|| ev.comm().to_string());
            }
        } else {
            self.dropped += 1;
        }
    }

    fn finish(&mut self) {
        let names = Names::resolve(&self.counts);
        let mut stacks: Vec<(&Key, u64)> = self.counts.iter().map(|(k, n)| (k, *n)).collect();
        stacks.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.pid.cmp(&b.0.pid)).then_with(|| a.0.user.cmp(&b.0.user)));
        // Folded: equal symbol paths merge (two return addresses in one function are one frame).
        let mut folded: BTreeMap<String, u64> = BTreeMap::new();
        for (k, n) in &stacks {
            *folded.entry(names.folded(k)).or_default() += n;
        }
        let stopped_early: u64 = stacks.iter().filter(|(k, _)| k.stopped_early).map(|(_, n)| n).sum();
        if self.folded {
            let lines: Vec<String> = folded.iter().map(|(s, n)| format!("{s} {n}")).collect();
            if let Err(e) = stacks::write_folded(&lines) {
                wasmprobe_guest::log(wasmprobe_guest::Level::Error, &format!("folded stacks not written: {e}"));
            }
        }
        if self.records {
            for (s, n) in &folded {
                emit_record(&[("folded", Value::Str(s.clone())), ("count", Value::U64(*n))]);
            }
            emit_record(&[
                ("events", Value::U64(self.events)),
                ("stacks", Value::U64(self.counts.len() as u64)),
                ("without_stack", Value::U64(self.without_stack)),
                ("stopped_early", Value::U64(stopped_early)),
            ]);
            return;
        }
        let shown = stacks.len().min(self.top);
        println!("Top {shown} of {} distinct stacks at {} ({} events):", stacks.len(), self.spec, self.events);
        for (i, (k, n)) in stacks.iter().take(self.top).enumerate() {
            println!();
            let who = if k.pid != 0 {
                format!(", {} (pid {})", self.comms.get(&k.pid).map_or("?", String::as_str), k.pid)
            } else {
                String::new()
            };
            println!("[{}] {n} events{who}", i + 1);
            for &a in &k.kernel {
                println!("    {}", names.kernel_line(a));
            }
            if !k.kernel.is_empty() && !k.user.is_empty() {
                println!("    --");
            }
            for &a in &k.user {
                println!("    {}", names.user_line(k.pid, a));
            }
            if k.stopped_early {
                println!("    (the user stack stops early: code without frame pointers)");
            }
        }
        if self.without_stack > 0 {
            println!();
            println!("{} events came without the stack asked for (not matched by the host).", self.without_stack);
        }
        if self.dropped > 0 {
            println!(
                "{} events had a new stack past max_stacks={} and were not counted.",
                self.dropped, self.max_stacks
            );
        }
        let lost = lost_events();
        if lost > 0 {
            println!("The kernel lost {lost} events: the counts are low.");
        }
    }
}

/// The symbols of every address of every stack, asked for in one call per address space
/// (the kernel's, and each process's).
struct Names {
    kernel: HashMap<u64, Frame>,
    user: HashMap<(i32, u64), Frame>,
}

impl Names {
    fn resolve(counts: &HashMap<Key, u64>) -> Names {
        let mut kaddrs: Vec<u64> = counts.keys().flat_map(|k| k.kernel.iter().copied()).collect();
        kaddrs.sort_unstable();
        kaddrs.dedup();
        let kernel = if kaddrs.is_empty() {
            HashMap::new()
        } else {
            kaddrs.iter().copied().zip(stacks::symbolize_kernel(&kaddrs)).collect()
        };
        let mut per_pid: BTreeMap<i32, Vec<u64>> = BTreeMap::new();
        for k in counts.keys().filter(|k| !k.user.is_empty()) {
            per_pid.entry(k.pid).or_default().extend(&k.user);
        }
        let mut user = HashMap::new();
        for (pid, mut addrs) in per_pid {
            addrs.sort_unstable();
            addrs.dedup();
            let frames = stacks::symbolize_user(pid, &addrs);
            user.extend(addrs.into_iter().map(|a| (pid, a)).zip(frames));
        }
        Names { kernel, user }
    }

    fn folded(&self, k: &Key) -> String {
        let mut parts: Vec<String> = Vec::with_capacity(k.user.len() + k.kernel.len());
        for &a in k.user.iter().rev() {
            parts.push(folded_name(self.user.get(&(k.pid, a))));
        }
        for &a in k.kernel.iter().rev() {
            parts.push(format!("{}_[k]", folded_name(self.kernel.get(&a))));
        }
        parts.join(";")
    }

    fn kernel_line(&self, addr: u64) -> String {
        match self.kernel.get(&addr) {
            Some(f) => match &f.module {
                Some(m) => format!("{} [{m}]", label(f)),
                None => label(f),
            },
            None => format!("0x{addr:x}"),
        }
    }

    fn user_line(&self, pid: i32, addr: u64) -> String {
        match self.user.get(&(pid, addr)) {
            Some(f) => match &f.module {
                Some(m) => format!("{} ({})", label(f), m.rsplit('/').next().unwrap_or(m)),
                None => label(f),
            },
            None => format!("0x{addr:x}"),
        }
    }
}

/// A frame in a folded line: its function, or `[unknown]` as perf writes it. `;` and spaces
/// would break the line's syntax, so they become `_`.
fn folded_name(f: Option<&Frame>) -> String {
    match f.and_then(|f| f.symbol.as_deref()) {
        Some(s) => s.replace([';', ' '], "_"),
        None => "[unknown]".to_string(),
    }
}

/// `symbol+0xoff` (the kernel's `%pS`), or the address.
fn label(f: &Frame) -> String {
    match &f.symbol {
        Some(s) if f.offset == 0 => s.clone(),
        Some(s) => format!("{s}+0x{:x}", f.offset),
        None => format!("0x{:x}", f.addr),
    }
}

wasmprobe_guest::export!(StackCount);
