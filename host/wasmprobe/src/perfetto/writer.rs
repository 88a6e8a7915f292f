//! [`TraceWriter`]: a Perfetto trace written as it goes, in constant memory.
//!
//! A Perfetto trace file is a `Trace` message, which is nothing but a run of `packet` fields:
//! each packet is appended as soon as it is complete, and nothing of the file is kept. Kernel
//! records are collected per CPU into an `FtraceEventBundle` of at most [`BUNDLE_BYTES`] and
//! written when full (Perfetto's trace processor sorts packets by time, so the interleaving
//! of CPUs in the file does not matter; within a CPU, records stay in the order given, which
//! is timestamp order). Thread names and processes go in one `ProcessTree` at the end.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;

use prost::Message;
use traceevent::{Endian, EventFormat};

use crate::plugin::Mark;

use super::ftrace::{Encoder, TgidHint};
use super::proto::{self, trace_packet::Data};
use super::tracks::Tracks;
use super::wire::{put_varint, varint_len};

/// A CPU's bundle is written once its events take this many bytes.
pub const BUNDLE_BYTES: usize = 64 << 10;

/// The `trusted_packet_sequence_id` of the kernel's events, names and machine description.
const KERNEL_SEQUENCE: u32 = 1;
/// `Trace.packet` (length-delimited field 1).
const PACKET: u8 = 1 << 3 | 2;

/// What a trace says about the machine it was taken on (Perfetto's `SystemInfo`).
#[derive(Debug, Clone, Default)]
pub struct Machine {
    /// `uname` as trace-cmd stores it: sysname, nodename, release, version words, machine.
    pub uname: Option<String>,
    /// Number of CPUs.
    pub cpus: u32,
    /// Page size in bytes.
    pub page_size: u32,
}

/// What is known of one thread id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadInfo {
    /// Its command name.
    pub name: Option<String>,
    /// The process (thread group) it belongs to.
    pub tgid: Option<i32>,
}

/// Finds out about a thread the first time a record of it is written (live runs: `/proc` and
/// the kernel's saved command lines, looked up before the thread may be gone).
pub type ThreadLookup = Box<dyn FnMut(i32) -> ThreadInfo + Send>;

#[derive(Debug, Default)]
struct CpuBundle {
    /// Encoded `FtraceEventBundle.event` fields.
    events: Vec<u8>,
    /// The kernel lost events before the records in `events`.
    lost: bool,
}

#[derive(Debug, Default)]
struct Thread {
    info: ThreadInfo,
    /// Some record of it was written (common_pid).
    seen: bool,
    /// A thread of the same process, when the trace said so but not which process that is
    /// (`task_newtask` with `CLONE_THREAD` from a thread of unknown process).
    same_process_as: Option<i32>,
}

/// Counts of what a [`TraceWriter`] wrote, for the closing message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Kernel records written.
    pub events: u64,
    /// Records left out because their event id has no format.
    pub unknown: u64,
    /// Threads named in the process tree.
    pub threads: u64,
    /// Plugin marks written.
    pub marks: u64,
    /// Plugin marks dropped: they would have made more than [`super::tracks::MAX_TRACKS`] tracks.
    pub dropped_marks: u64,
}

/// Writes a Perfetto trace to `W` as records arrive (see the module docs).
pub struct TraceWriter<W: Write> {
    out: W,
    encoder: Encoder,
    cpus: Vec<CpuBundle>,
    /// The last common_pid seen per CPU (most records repeat it: no map lookup for them).
    last_pid: Vec<i32>,
    threads: HashMap<i32, Thread>,
    lookup: Option<ThreadLookup>,
    tracks: Tracks,
    first_ts: Option<u64>,
    scratch: Vec<u8>,
    written: Written,
}

impl<W: Write> std::fmt::Debug for TraceWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceWriter").field("written", &self.written).finish_non_exhaustive()
    }
}

impl<W: Write> TraceWriter<W> {
    /// Starts a trace on `out` (writes the machine description) for records in byte order
    /// `endian`. Events are known by the formats [`TraceWriter::add_format`] is given.
    pub fn new(out: W, endian: Endian, machine: &Machine) -> std::io::Result<Self> {
        let mut w = TraceWriter {
            out,
            encoder: Encoder::new(endian),
            cpus: Vec::new(),
            last_pid: Vec::new(),
            threads: HashMap::new(),
            lookup: None,
            tracks: Tracks::default(),
            first_ts: None,
            scratch: Vec::with_capacity(BUNDLE_BYTES + 64),
            written: Written::default(),
        };
        w.packet(&system_info(machine))?;
        Ok(w)
    }

    /// Makes records of `format`'s event id writable; `long_size` is the traced kernel's.
    pub fn add_format(&mut self, format: &EventFormat, long_size: usize) {
        self.encoder.add(format, long_size);
    }

    /// Whether records of event `id` become a typed Perfetto message (`None`: unknown id).
    pub fn is_typed(&self, id: u16) -> Option<bool> {
        self.encoder.is_typed(id)
    }

    /// Asks `lookup` about each thread the first time a record of it is written.
    pub fn set_thread_lookup(&mut self, lookup: ThreadLookup) {
        self.lookup = Some(lookup);
    }

    /// Appends one raw record (`payload`: common fields first) of `cpu` at `ts`. Records of
    /// one CPU must come in timestamp order. No allocation once warm, except the first time a
    /// thread or a CPU is seen.
    pub fn record(&mut self, cpu: u32, ts: u64, payload: &[u8]) -> std::io::Result<()> {
        let c = cpu as usize;
        if c >= self.cpus.len() {
            self.cpus.resize_with(c + 1, CpuBundle::default);
            self.last_pid.resize(c + 1, i32::MIN);
        }
        let bundle = &mut self.cpus[c];
        let Some((pid, hint)) = self.encoder.encode(ts, payload, &mut bundle.events) else {
            self.written.unknown += 1;
            return Ok(());
        };
        self.written.events += 1;
        self.first_ts.get_or_insert(ts);
        if self.last_pid[c] != pid {
            self.last_pid[c] = pid;
            self.thread(pid).seen = true;
        }
        if let Some(h) = hint {
            self.hint(h);
        }
        if self.cpus[c].events.len() >= BUNDLE_BYTES {
            self.flush_cpu(c)?;
        }
        Ok(())
    }

    /// The kernel lost events on `cpu` before the next record: the records so far go out in a
    /// bundle of their own and the next bundle says so (`lost_events`).
    pub fn lost(&mut self, cpu: u32) -> std::io::Result<()> {
        let c = cpu as usize;
        if c >= self.cpus.len() {
            self.cpus.resize_with(c + 1, CpuBundle::default);
            self.last_pid.resize(c + 1, i32::MIN);
        }
        self.flush_cpu(c)?;
        self.cpus[c].lost = true;
        Ok(())
    }

    /// Names thread `tid` (overrides what was known).
    pub fn set_thread_name(&mut self, tid: i32, name: &str) {
        self.thread(tid).info.name = Some(name.to_string());
    }

    /// Fills in the name of every thread seen that has none, from `name_of`.
    pub fn name_threads(&mut self, mut name_of: impl FnMut(i32) -> Option<String>) {
        for (tid, t) in &mut self.threads {
            if t.info.name.is_none() {
                t.info.name = name_of(*tid);
            }
        }
    }

    /// What is known of thread `tid` so far (asking the lookup the first time).
    pub fn thread_info(&mut self, tid: i32) -> ThreadInfo {
        self.thread(tid).info.clone()
    }

    fn thread(&mut self, tid: i32) -> &mut Thread {
        thread_in(&mut self.threads, &mut self.lookup, tid)
    }

    /// Writes a plugin's mark (see [`super::tracks`]): descriptors of the tracks it is the
    /// first to use, then its track events.
    pub fn mark(&mut self, mark: &Mark) -> std::io::Result<()> {
        let (threads, lookup) = (&mut self.threads, &mut self.lookup);
        let dropped = self.tracks.dropped;
        let packets = self.tracks.packets(mark, &mut |tid| thread_in(threads, lookup, tid).info.clone());
        if self.tracks.dropped > dropped {
            self.written.dropped_marks += 1;
            return Ok(());
        }
        for p in &packets {
            self.packet(p)?;
        }
        self.written.marks += 1;
        Ok(())
    }

    fn hint(&mut self, h: TgidHint) {
        match h {
            TgidHint::NewTask { parent, child, thread } => {
                let tgid = if thread { self.thread(parent).info.tgid } else { Some(child) };
                let t = self.thread(child);
                match tgid {
                    Some(_) => t.info.tgid = tgid,
                    None => t.same_process_as = Some(parent),
                }
            }
            TgidHint::Leader { pid } => self.thread(pid).info.tgid = Some(pid),
        }
    }

    /// Writes one packet (framed as a `Trace.packet` field).
    pub(crate) fn packet(&mut self, p: &proto::TracePacket) -> std::io::Result<()> {
        self.scratch.clear();
        self.scratch.push(PACKET);
        put_varint(&mut self.scratch, p.encoded_len() as u64);
        p.encode(&mut self.scratch).map_err(std::io::Error::other)?;
        self.out.write_all(&self.scratch)
    }

    fn flush_cpu(&mut self, c: usize) -> std::io::Result<()> {
        let b = &mut self.cpus[c];
        if b.events.is_empty() {
            return Ok(());
        }
        // TracePacket { ftrace_events: FtraceEventBundle { cpu, lost_events?, event... },
        //               trusted_packet_sequence_id }
        let cpu = c as u64;
        let bundle_len = 1 + varint_len(cpu) + if b.lost { 2 } else { 0 } + b.events.len();
        let packet_len = 1 + varint_len(bundle_len as u64) + bundle_len + 1 + varint_len(u64::from(KERNEL_SEQUENCE));
        let head = &mut self.scratch;
        head.clear();
        head.push(PACKET);
        put_varint(head, packet_len as u64);
        head.push(1 << 3 | 2); // TracePacket.ftrace_events
        put_varint(head, bundle_len as u64);
        head.push(1 << 3); // FtraceEventBundle.cpu
        put_varint(head, cpu);
        if b.lost {
            head.extend_from_slice(&[3 << 3, 1]); // FtraceEventBundle.lost_events = true
        }
        self.out.write_all(head)?;
        self.out.write_all(&b.events)?;
        head.clear();
        head.push(10 << 3); // TracePacket.trusted_packet_sequence_id
        put_varint(head, u64::from(KERNEL_SEQUENCE));
        self.out.write_all(head)?;
        b.events.clear();
        b.lost = false;
        Ok(())
    }

    /// Writes what is still collected (every CPU's last bundle, the process tree) and returns
    /// the output, flushed.
    pub fn finish(mut self) -> std::io::Result<(W, Written)> {
        for c in 0..self.cpus.len() {
            self.flush_cpu(c)?;
        }
        let tree = self.process_tree();
        self.written.threads = tree.threads.len() as u64;
        if !tree.threads.is_empty() {
            let p = proto::TracePacket {
                timestamp: self.first_ts,
                trusted_packet_sequence_id: Some(KERNEL_SEQUENCE),
                sequence_flags: None,
                data: Some(Data::ProcessTree(tree)),
            };
            self.packet(&p)?;
        }
        self.out.flush()?;
        Ok((self.out, self.written))
    }

    /// The process of `tid`: known, or that of the thread it was created beside, or else (the
    /// trace does not say) its own: Perfetto puts a thread given without one in process 0.
    fn tgid_of(&self, mut tid: i32) -> i32 {
        for _ in 0..64 {
            let Some(t) = self.threads.get(&tid) else { break };
            match (t.info.tgid, t.same_process_as) {
                (Some(tgid), _) => return tgid,
                (None, Some(other)) if other != tid => tid = other,
                _ => break,
            }
        }
        tid
    }

    /// Every thread a record was written for that has a name (tid 0, the idle task, is
    /// Perfetto's own "swapper"), and the processes they belong to (see [`Self::tgid_of`]).
    fn process_tree(&self) -> proto::ProcessTree {
        let mut tids: Vec<i32> = self.threads.iter().filter(|(t, th)| **t > 0 && th.seen).map(|(t, _)| *t).collect();
        tids.sort_unstable();
        let mut tgids = BTreeSet::new();
        let threads = tids
            .iter()
            .filter_map(|tid| {
                let name = self.threads[tid].info.name.clone()?;
                let tgid = self.tgid_of(*tid);
                tgids.insert(tgid);
                Some(proto::Thread { tid: Some(*tid), name: Some(name), tgid: Some(tgid) })
            })
            .collect();
        let processes = tgids
            .into_iter()
            .map(|pid| proto::Process {
                pid: Some(pid),
                ppid: None,
                cmdline: self.threads.get(&pid).and_then(|t| t.info.name.clone()).into_iter().collect(),
                cmdline_is_comm: Some(true),
            })
            .collect();
        proto::ProcessTree { processes, threads }
    }
}

/// Thread `tid` of `threads`, asking `lookup` about it the first time.
fn thread_in<'t>(threads: &'t mut HashMap<i32, Thread>, lookup: &mut Option<ThreadLookup>, tid: i32) -> &'t mut Thread {
    threads.entry(tid).or_insert_with(|| Thread {
        info: match lookup {
            Some(l) if tid > 0 => l(tid),
            _ => ThreadInfo::default(),
        },
        seen: false,
        same_process_as: None,
    })
}

/// The `SystemInfo` packet of `machine`. trace-cmd stores `uname` as "sysname nodename
/// release version machine" (the version has spaces); wasmprobe's recordings leave the
/// version out.
fn system_info(machine: &Machine) -> proto::TracePacket {
    let utsname = machine.uname.as_deref().map(|u| {
        let words: Vec<&str> = u.trim_end_matches('\0').split(' ').collect();
        let word = |i: usize| words.get(i).map(|s| s.to_string());
        proto::Utsname {
            sysname: word(0),
            release: word(2),
            version: (words.len() > 4).then(|| words[3..words.len() - 1].join(" ")),
            machine: if words.len() > 3 { words.last().map(|s| s.to_string()) } else { None },
        }
    });
    proto::TracePacket {
        timestamp: None,
        trusted_packet_sequence_id: Some(KERNEL_SEQUENCE),
        sequence_flags: None,
        data: Some(Data::SystemInfo(proto::SystemInfo {
            utsname,
            page_size: (machine.page_size > 0).then_some(machine.page_size),
            num_cpus: (machine.cpus > 0).then_some(machine.cpus),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Processes: known ones kept, a thread made with CLONE_THREAD joins its creator's, one
    /// the trace says nothing about leads its own; never process 0.
    #[test]
    fn every_named_thread_gets_a_process() {
        let mut w = TraceWriter::new(Vec::new(), Endian::Little, &Machine::default()).unwrap();
        for (tid, name) in [(10, "server"), (11, "worker"), (12, "helper"), (20, "lone"), (30, "sh"), (31, "cat")] {
            w.set_thread_name(tid, name);
            w.thread(tid).seen = true;
        }
        w.hint(TgidHint::NewTask { parent: 10, child: 11, thread: true });
        w.hint(TgidHint::NewTask { parent: 11, child: 12, thread: true });
        w.hint(TgidHint::NewTask { parent: 30, child: 31, thread: false });
        w.hint(TgidHint::Leader { pid: 30 });
        let tree = w.process_tree();
        let threads: Vec<(i32, i32)> = tree.threads.iter().map(|t| (t.tid.unwrap(), t.tgid.unwrap())).collect();
        assert_eq!(threads, [(10, 10), (11, 10), (12, 10), (20, 20), (30, 30), (31, 31)]);
        let processes: Vec<(i32, Vec<String>)> =
            tree.processes.iter().map(|p| (p.pid.unwrap(), p.cmdline.clone())).collect();
        assert_eq!(
            processes,
            [(10, vec!["server".into()]), (20, vec!["lone".into()]), (30, vec!["sh".into()]), (31, vec!["cat".into()])]
        );
    }
}
