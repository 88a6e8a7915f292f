//! Attaching call stacks to their events. ftrace writes a stack as a record of its own right
//! after its event, on the same CPU: `ftrace:kernel_stack` (the `stacktrace` trigger) and
//! `ftrace:user_stack` (the `userstacktrace` option, which follows every event of the
//! instance). [`StackMatcher`] takes the records of a trace as they are merged across CPUs
//! (live from the pump, or from a trace.dat in a replay), holds each event that wants stacks
//! until the next record of its CPU shows whether its stacks came, and hands events on in the
//! order they came with their stacks attached. A stack record that does not follow an event
//! of its CPU and task is counted ([`StackStats::unmatched`]), never guessed.
//!
//! Events that want no stack pass straight through when nothing is held, so a run without
//! stacks (or a stack-free event in a run with some) costs one table lookup.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;

use anyhow::Result;
use traceevent::Endian;

use crate::plugin::StackKinds;

/// The event ids of the kernel's stack records (from `events/ftrace/*/format`, or a
/// trace.dat's ftrace formats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StackIds {
    /// `ftrace:kernel_stack`.
    pub kernel: Option<u16>,
    /// `ftrace:user_stack`.
    pub user: Option<u16>,
}

impl StackIds {
    /// The ids from the ftrace format texts (each `name: ...\nID: n`), as tracefs or a
    /// trace.dat gives them.
    pub fn from_formats<'a>(formats: impl IntoIterator<Item = &'a str>) -> StackIds {
        let mut ids = StackIds::default();
        for f in formats {
            let name = f.lines().find_map(|l| l.strip_prefix("name:")).map(str::trim);
            let id = crate::session::parse_id(f);
            match name {
                Some("kernel_stack") => ids.kernel = id,
                Some("user_stack") => ids.user = id,
                _ => {}
            }
        }
        ids
    }
}

/// The stacks attached to one event, as a sink receives them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventStacks<'a> {
    /// The kernel stack, innermost frame first.
    pub kernel: Option<&'a [u64]>,
    /// The user stack, innermost frame first (at most 8 frames: the kernel's limit).
    pub user: Option<&'a [u64]>,
    /// The user stack stops early (see [`StackStats::truncated`]).
    pub user_truncated: bool,
    /// The process (tgid) the user stack belongs to.
    pub tgid: i32,
}

impl EventStacks<'_> {
    /// No stack at all.
    pub const NONE: EventStacks<'static> = EventStacks { kernel: None, user: None, user_truncated: false, tgid: 0 };

    /// Only the kinds in `want`.
    pub fn only(&self, want: StackKinds) -> EventStacks<'_> {
        EventStacks {
            kernel: self.kernel.filter(|_| want.kernel),
            user: self.user.filter(|_| want.user),
            user_truncated: want.user && self.user_truncated,
            tgid: self.tgid,
        }
    }

    /// Whether any stack is attached.
    pub fn any(&self) -> bool {
        self.kernel.is_some() || self.user.is_some()
    }
}

/// What the matcher saw, for the end-of-run report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StackStats {
    /// Kernel stacks attached to their events.
    pub kernel: u64,
    /// User stacks attached to their events.
    pub user: u64,
    /// Of those, user stacks that stop early: under the kernel's 8 frames, and none of them in
    /// the program's own executable (the walk stopped in a library), or, for a dynamically
    /// linked program, the outermost in it (a complete walk leaves the program through the C
    /// library's start code). Known only while the process exists (its `/proc` maps, read the
    /// first time one of its stacks is seen).
    pub truncated: u64,
    /// Stack records that followed no event of their CPU and task (not delivered).
    pub unmatched: u64,
    /// Stack records after events that did not ask for them (`userstacktrace` is
    /// instance-wide), dropped.
    pub not_asked: u64,
    /// Events that asked for a stack that did not come.
    pub missing: u64,
}

impl StackStats {
    /// Prints what the user should know on stderr: stacks that could not be matched, and
    /// user stacks that stop early. Nothing when all is well.
    pub fn report(&self) {
        if self.unmatched > 0 {
            eprintln!(
                "wasmprobe: warning: {} stack record{} could not be matched to {} event (not delivered)",
                self.unmatched,
                if self.unmatched == 1 { "" } else { "s" },
                if self.unmatched == 1 { "its" } else { "their" }
            );
        }
        if self.truncated > 0 {
            eprintln!(
                "wasmprobe: warning: {} of {} user stacks stop early (user stacks follow frame pointers: build \
                 with -fno-omit-frame-pointer)",
                self.truncated, self.user
            );
        }
    }
}

/// Where a [`StackMatcher`] hands each complete event: `(cpu, ts, pid, id, payload, stacks)`.
pub type Emit<'e> = dyn FnMut(u32, u64, i32, u16, &[u8], &EventStacks<'_>) -> Result<()> + 'e;

/// An event held until its stacks have come (or are known not to come).
#[derive(Debug)]
struct Held {
    cpu: u32,
    ts: u64,
    pid: i32,
    id: u16,
    want: StackKinds,
    payload: Range<usize>,
    kernel: Option<Range<usize>>,
    user: Option<Range<usize>>,
    truncated: bool,
    tgid: i32,
    ready: bool,
}

/// The last event seen on a CPU: what a stack record that follows it belongs to.
#[derive(Debug, Clone, Copy, Default)]
struct Last {
    pid: i32,
    /// An event of this CPU has been seen since the last round end.
    seen: bool,
}

/// See the module docs.
pub struct StackMatcher {
    ids: StackIds,
    /// The stacks each event id wants (the union over the declarations routed to it).
    want: Vec<StackKinds>,
    endian: Endian,
    held: VecDeque<Held>,
    /// Absolute index of `held[0]` (indexes only grow).
    base: usize,
    /// Per CPU: the held event its next stack record belongs to (absolute index).
    pending: Vec<Option<usize>>,
    last: Vec<Last>,
    bytes: Vec<u8>,
    frames: Vec<u64>,
    exes: ExeRanges,
    stats: StackStats,
}

impl StackMatcher {
    /// A matcher for stack records with `ids`, holding the events whose id `want` says wants
    /// stacks (indexed by event id), in a trace of byte order `endian`.
    pub fn new(ids: StackIds, want: Vec<StackKinds>, endian: Endian) -> StackMatcher {
        StackMatcher {
            ids,
            want,
            endian,
            held: VecDeque::new(),
            base: 0,
            pending: Vec::new(),
            last: Vec::new(),
            bytes: Vec::new(),
            frames: Vec::new(),
            exes: ExeRanges::default(),
            stats: StackStats::default(),
        }
    }

    /// A matcher for a recorded trace: the processes of its stacks are not this machine's, so
    /// their `/proc` maps are never read (and no user stack is flagged as stopping early).
    pub fn recorded(mut self) -> StackMatcher {
        self.exes.offline = true;
        self
    }

    /// What was matched so far.
    pub fn stats(&self) -> StackStats {
        self.stats
    }

    /// Whether `id` is a stack record's.
    #[inline]
    pub fn is_stack(&self, id: u16) -> bool {
        Some(id) == self.ids.kernel || Some(id) == self.ids.user
    }

    /// Takes the next record of the merged trace (`cpu`, `ts`, its payload `data`), and hands
    /// every event that is complete to `emit`, in the order they came: `(cpu, ts, pid, id,
    /// payload, stacks)`.
    #[inline]
    pub fn push(&mut self, cpu: u32, ts: u64, data: &[u8], emit: &mut Emit<'_>) -> Result<()> {
        let Some(id) = traceevent::subbuf::common_type(data, self.endian) else { return Ok(()) };
        let pid = traceevent::subbuf::common_pid(data, self.endian).unwrap_or(0);
        let c = cpu as usize;
        if self.last.len() <= c {
            self.last.resize(c + 1, Last::default());
            self.pending.resize(c + 1, None);
        }
        if self.is_stack(id) {
            self.stack_record(c, pid, id, data);
            return Ok(());
        }
        // The next event on this CPU: its held event has all the stacks it will get.
        if let Some(at) = self.pending[c].take() {
            self.held[at - self.base].ready = true;
        }
        self.last[c] = Last { pid, seen: true };
        let want = self.want.get(id as usize).copied().unwrap_or_default();
        if !want.any() && self.held.is_empty() {
            return emit(cpu, ts, pid, id, data, &EventStacks::NONE);
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(data);
        self.held.push_back(Held {
            cpu,
            ts,
            pid,
            id,
            want,
            payload: start..self.bytes.len(),
            kernel: None,
            user: None,
            truncated: false,
            tgid: 0,
            ready: !want.any(),
        });
        if want.any() {
            self.pending[c] = Some(self.base + self.held.len() - 1);
        }
        self.emit_ready(emit)
    }

    /// A stack record on CPU `c`: attached to the event it follows, or counted.
    fn stack_record(&mut self, c: usize, pid: i32, id: u16, data: &[u8]) {
        let kernel = Some(id) == self.ids.kernel;
        if let Some(at) = self.pending[c] {
            let h = &self.held[at - self.base];
            let (wanted, free) = match kernel {
                true => (h.want.kernel, h.kernel.is_none()),
                false => (h.want.user, h.user.is_none()),
            };
            if h.pid == pid && wanted && free {
                let start = self.frames.len();
                let tgid = match kernel {
                    true => {
                        frames_of_kernel_stack(data, self.endian, &mut self.frames);
                        0
                    }
                    false => frames_of_user_stack(data, self.endian, &mut self.frames),
                };
                let range = start..self.frames.len();
                let truncated = !kernel && self.exes.truncated(tgid, &self.frames[range.clone()]);
                let h = &mut self.held[at - self.base];
                if kernel {
                    h.kernel = Some(range);
                    self.stats.kernel += 1;
                } else {
                    h.user = Some(range);
                    h.truncated = truncated;
                    h.tgid = tgid;
                    self.stats.user += 1;
                    self.stats.truncated += truncated as u64;
                }
                return;
            }
        }
        match self.last[c] {
            Last { pid: p, seen: true } if p == pid => self.stats.not_asked += 1,
            _ => self.stats.unmatched += 1,
        }
    }

    /// Hands the complete events at the front on.
    fn emit_ready(&mut self, emit: &mut Emit<'_>) -> Result<()> {
        while self.held.front().is_some_and(|h| h.ready) {
            let h = self.held.pop_front().expect("checked");
            self.base += 1;
            self.stats.missing +=
                ((h.want.kernel && h.kernel.is_none()) as u64) + ((h.want.user && h.user.is_none()) as u64);
            let stacks = EventStacks {
                kernel: h.kernel.map(|r| &self.frames[r]),
                user: h.user.map(|r| &self.frames[r]),
                user_truncated: h.truncated,
                tgid: h.tgid,
            };
            emit(h.cpu, h.ts, h.pid, h.id, &self.bytes[h.payload], &stacks)?;
        }
        if self.held.is_empty() {
            self.bytes.clear();
            self.frames.clear();
        }
        Ok(())
    }

    /// The end of a round (or of the trace): every held event is complete. A stack record
    /// that comes after this for an event handed on is counted as unmatched.
    pub fn flush(&mut self, emit: &mut Emit<'_>) -> Result<()> {
        for h in &mut self.held {
            h.ready = true;
        }
        self.pending.iter_mut().for_each(|p| *p = None);
        self.last.iter_mut().for_each(|l| l.seen = false);
        self.emit_ready(emit)
    }
}

/// The frames of a `kernel_stack` record: `int size` (frames) at 8, `unsigned long caller[]`
/// at 16 (64-bit kernels), as many as the record holds.
fn frames_of_kernel_stack(data: &[u8], endian: Endian, out: &mut Vec<u64>) {
    let n = endian.read_u32(data, 8).unwrap_or(0) as usize;
    let fit = data.len().saturating_sub(16) / 8;
    for i in 0..n.min(fit) {
        out.extend(endian.read_u64(data, 16 + i * 8));
    }
}

/// The frames of a `user_stack` record (`tgid` at 8, `caller[8]` at 16, zero-terminated);
/// returns the tgid.
fn frames_of_user_stack(data: &[u8], endian: Endian, out: &mut Vec<u64>) -> i32 {
    let tgid = endian.read_u32(data, 8).unwrap_or(0) as i32;
    let fit = data.len().saturating_sub(16) / 8;
    for i in 0..fit.min(crate::plugin::stacks::USER_STACK_MAX) {
        match endian.read_u64(data, 16 + i * 8) {
            Some(0) | None => break,
            Some(a) => out.push(a),
        }
    }
    tgid
}

/// The executable mappings of each process's main program, read from `/proc` the first time a
/// stack of the process is seen (see [`StackStats::truncated`]).
#[derive(Debug, Default)]
struct ExeRanges {
    by_tgid: HashMap<i32, Option<Program>>,
    /// A recorded trace: nothing is read from `/proc`.
    offline: bool,
}

/// Where a process's program is mapped, and whether it is dynamically linked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Program {
    ranges: Vec<(u64, u64)>,
    dynamic: bool,
}

impl Program {
    fn contains(&self, a: u64) -> bool {
        self.ranges.iter().any(|&(lo, hi)| a >= lo && a < hi)
    }

    /// Whether a user stack of this program stops early (see [`StackStats::truncated`]).
    fn truncated(&self, frames: &[u64]) -> bool {
        if self.ranges.is_empty() || frames.is_empty() || frames.len() >= crate::plugin::stacks::USER_STACK_MAX {
            return false;
        }
        let outermost = frames[frames.len() - 1];
        !frames.iter().any(|&a| self.contains(a)) || (self.dynamic && self.contains(outermost))
    }
}

impl ExeRanges {
    /// Whether the stack of `tgid` stops early; `false` when the program's mappings cannot be
    /// known (the process is gone, or not on this machine).
    fn truncated(&mut self, tgid: i32, frames: &[u64]) -> bool {
        if tgid <= 0 || self.offline {
            return false;
        }
        let program = self.by_tgid.entry(tgid).or_insert_with(|| program_of(tgid));
        program.as_ref().is_some_and(|p| p.truncated(frames))
    }
}

/// The executable mappings of `/proc/<tgid>/exe` in `/proc/<tgid>/maps`; dynamically linked
/// when the dynamic linker or the C library is mapped too.
fn program_of(tgid: i32) -> Option<Program> {
    let exe = std::fs::read_link(format!("/proc/{tgid}/exe")).ok()?;
    let maps = std::fs::read_to_string(format!("/proc/{tgid}/maps")).ok()?;
    Some(parse_maps(&maps, exe.to_str()?))
}

fn parse_maps(maps: &str, exe: &str) -> Program {
    let mut p = Program::default();
    for line in maps.lines() {
        let mut parts = line.split_whitespace();
        let (Some(range), Some(perms)) = (parts.next(), parts.next()) else { continue };
        let path = parts.nth(3).unwrap_or("");
        let file = path.rsplit('/').next().unwrap_or("");
        if file.starts_with("ld-linux") || file.starts_with("ld-musl") || file.starts_with("libc.so") {
            p.dynamic = true;
        }
        if path != exe || !perms.contains('x') {
            continue;
        }
        if let Some((lo, hi)) = range.split_once('-') {
            if let (Ok(lo), Ok(hi)) = (u64::from_str_radix(lo, 16), u64::from_str_radix(hi, 16)) {
                p.ranges.push((lo, hi));
            }
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    const EV: u16 = 300;
    const OTHER: u16 = 301;
    const KS: u16 = 4;
    const US: u16 = 13;

    fn event(id: u16, pid: i32) -> Vec<u8> {
        let mut d = vec![0u8; 16];
        d[..2].copy_from_slice(&id.to_le_bytes());
        d[4..8].copy_from_slice(&pid.to_le_bytes());
        d
    }

    fn kstack(pid: i32, frames: &[u64]) -> Vec<u8> {
        let mut d = event(KS, pid);
        d[8..12].copy_from_slice(&(frames.len() as u32).to_le_bytes());
        for f in frames {
            d.extend_from_slice(&f.to_le_bytes());
        }
        d
    }

    fn ustack(pid: i32, frames: &[u64]) -> Vec<u8> {
        let mut d = event(US, pid);
        d[8..12].copy_from_slice(&(pid as u32).to_le_bytes());
        for i in 0..8 {
            d.extend_from_slice(&frames.get(i).copied().unwrap_or(0).to_le_bytes());
        }
        d
    }

    type Out = Vec<(u32, u16, i32, Option<Vec<u64>>, Option<Vec<u64>>)>;

    fn run(m: &mut StackMatcher, recs: &[(u32, Vec<u8>)]) -> Out {
        let mut out = Vec::new();
        let mut emit = |cpu: u32, _ts: u64, pid: i32, id: u16, _d: &[u8], s: &EventStacks<'_>| {
            out.push((cpu, id, pid, s.kernel.map(<[u64]>::to_vec), s.user.map(<[u64]>::to_vec)));
            Ok(())
        };
        for (i, (cpu, d)) in recs.iter().enumerate() {
            m.push(*cpu, i as u64, d, &mut emit).unwrap();
        }
        m.flush(&mut emit).unwrap();
        out
    }

    fn matcher() -> StackMatcher {
        let mut want = vec![StackKinds::NONE; 302];
        want[EV as usize] = StackKinds { kernel: true, user: true };
        StackMatcher::new(StackIds { kernel: Some(KS), user: Some(US) }, want, Endian::Little)
    }

    #[test]
    fn stacks_attach_to_the_event_before_them_on_their_cpu_and_order_is_kept() {
        let mut m = matcher();
        let out = run(
            &mut m,
            &[
                (0, event(EV, 10)),
                (1, event(OTHER, 20)), // another CPU between the event and its stacks
                (1, ustack(20, &[7])), // follows an event that did not ask: dropped
                (0, ustack(10, &[0x401000, 0x401100])),
                (0, kstack(10, &[0xffff_ffff_8100_0000])),
                (0, event(OTHER, 10)),
            ],
        );
        assert_eq!(
            out,
            vec![
                (0, EV, 10, Some(vec![0xffff_ffff_8100_0000]), Some(vec![0x401000, 0x401100])),
                (1, OTHER, 20, None, None),
                (0, OTHER, 10, None, None),
            ]
        );
        let s = m.stats();
        assert_eq!((s.kernel, s.user, s.unmatched, s.not_asked, s.missing), (1, 1, 0, 1, 0));
    }

    #[test]
    fn a_stack_of_another_task_or_without_its_event_is_counted_not_guessed() {
        let mut m = matcher();
        let out = run(
            &mut m,
            &[
                (0, kstack(10, &[1])), // nothing before it on CPU 0
                (0, event(EV, 10)),
                (0, kstack(11, &[2])), // another task's
                (1, kstack(10, &[3])), // another CPU's
            ],
        );
        assert_eq!(out, vec![(0, EV, 10, None, None)]);
        let s = m.stats();
        assert_eq!((s.kernel, s.unmatched, s.missing), (0, 3, 2));
    }

    #[test]
    fn events_without_stacks_pass_straight_through() {
        let mut m = matcher();
        let mut n = 0;
        let d = event(OTHER, 1);
        m.push(0, 1, &d, &mut |_, _, _, _, _, s| {
            assert!(!s.any());
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 1);
        assert!(m.held.is_empty() && m.bytes.is_empty());
    }

    #[test]
    fn a_user_stack_that_does_not_leave_the_program_or_never_reaches_it_stops_early() {
        let maps = "5600-5700 r--p 00000000 08:01 1 /bin/prog\n\
                    5700-5800 r-xp 00001000 08:01 1 /bin/prog\n\
                    7f00-7f80 r-xp 00028000 08:01 2 /usr/lib/x86_64-linux-gnu/libc.so.6\n";
        let p = parse_maps(maps, "/bin/prog");
        assert_eq!(p, Program { ranges: vec![(0x5700, 0x5800)], dynamic: true });
        // target, c, b, a, main, then libc's start code: complete.
        assert!(!p.truncated(&[0x5710, 0x5720, 0x5730, 0x5740, 0x5750, 0x7f10]));
        // The walk ended inside the program (no frame pointers): stops early.
        assert!(p.truncated(&[0x5710]));
        // A library function whose callers could not be walked: stops early.
        assert!(p.truncated(&[0x7f20, 0x7f30]));
        // Eight frames: the kernel's limit, not a broken walk.
        assert!(!p.truncated(&[0x5710; 8]));
        // A static program's walk ends in its own start code.
        assert!(!Program { dynamic: false, ..p }.truncated(&[0x5710, 0x5720]));
    }

    #[test]
    fn stack_ids_come_from_the_ftrace_formats() {
        let ids = StackIds::from_formats([
            "name: function\nID: 1\nformat:\n",
            "name: kernel_stack\nID: 4\nformat:\n",
            "name: user_stack\nID: 13\nformat:\n",
        ]);
        assert_eq!(ids, StackIds { kernel: Some(4), user: Some(13) });
    }
}
