//! Moving events from the kernel to a consumer. One reader thread per CPU drains that CPU's
//! `trace_pipe_raw` of our instance in rounds (full pages, then at most one partial page) and
//! hands each round's pages over a channel; the caller's thread splits them into records,
//! merges a round's records by timestamp across CPUs and gives them to a [`RecordSink`]. The
//! readers keep in step: when one of them starts a round (its buffer is `buffer_percent` full,
//! or the poll timeout passed), it wakes the others to read for the same round, and the
//! consumer takes a round once every CPU has sent its part. Lost events are counted per CPU from the sub-buffers' missed-events
//! flags.
//!
//! Reading and consuming overlap, so a slow consumer (text formatting, a plugin) does not
//! leave the kernel's buffers unread: that is where events get lost. A reader per CPU, on that
//! CPU, keeps one stalled CPU (or a virtual CPU its host has paused) from holding up the
//! draining of the others. The readers keep themselves out of the trace
//! (`set_event_notrace_pid`) and run at a raised priority when they may. Rounds wait in a
//! bounded queue; when the consumer falls that far behind, the readers wait and the kernel
//! counts what it drops.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use std::sync::mpsc::{self, RecvTimeoutError};

use crossbeam::channel::{bounded, Receiver, Sender};
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use traceevent::{Endian, EventHeader, MissedEvents, PageHeader, Record, Records, SubBuffer};
use tracefs::{CpuReader, Instance};

use crate::plugin::StackKinds;
use crate::session::{ProbeIds, Session};

mod raw;
use crate::stacks::{EventStacks, StackMatcher, StackStats};

/// Where decoded records go.
pub trait RecordSink {
    /// One record of the armed probe `probe` (index in the plan). `payload` is the raw event
    /// data (common fields first), valid only during the call.
    fn record(&mut self, probe: usize, cpu: u32, pid: i32, ts: u64, payload: &[u8]) -> Result<()>;
    /// The end of a round: deliver what was collected. `lost` is the events lost so far, per CPU.
    fn flush(&mut self, lost: &[u64]) -> Result<()>;
    /// A record of a probe that asked for call stacks, with those that came attached (see
    /// [`crate::stacks`]). A sink that does not deliver stacks takes it as [`Self::record`].
    fn record_stacks(
        &mut self,
        probe: usize,
        cpu: u32,
        pid: i32,
        ts: u64,
        payload: &[u8],
        stacks: &EventStacks<'_>,
    ) -> Result<()> {
        let _ = stacks;
        self.record(probe, cpu, pid, ts, payload)
    }
}

/// Call stacks in a pump (or a replay): the matcher, and which stacks each probe asked for.
pub struct StackRouting {
    /// Attaches stack records to their events.
    pub matcher: StackMatcher,
    /// The stacks each probe (by index) asked for.
    pub by_probe: Vec<StackKinds>,
}

impl StackRouting {
    /// Feeds one record of the merged trace through the matcher; each complete event goes
    /// through `routes` to `sink` (with the stacks its probe asked for). Returns the records
    /// delivered.
    pub fn push(
        &mut self,
        routes: &ProbeIds,
        sink: &mut dyn RecordSink,
        cpu: u32,
        ts: u64,
        data: &[u8],
    ) -> Result<u64> {
        let by_probe = &self.by_probe;
        let mut n = 0;
        self.matcher.push(cpu, ts, data, &mut |cpu, ts, pid, id, payload, stacks| {
            n += route_stacked(routes, by_probe, sink, cpu, ts, pid, id, payload, stacks)?;
            Ok(())
        })?;
        Ok(n)
    }

    /// Hands on every held event (the end of a round, or of the trace).
    pub fn flush(&mut self, routes: &ProbeIds, sink: &mut dyn RecordSink) -> Result<u64> {
        let by_probe = &self.by_probe;
        let mut n = 0;
        self.matcher.flush(&mut |cpu, ts, pid, id, payload, stacks| {
            n += route_stacked(routes, by_probe, sink, cpu, ts, pid, id, payload, stacks)?;
            Ok(())
        })?;
        Ok(n)
    }
}

#[allow(clippy::too_many_arguments)]
fn route_stacked(
    routes: &ProbeIds,
    by_probe: &[StackKinds],
    sink: &mut dyn RecordSink,
    cpu: u32,
    ts: u64,
    pid: i32,
    id: u16,
    payload: &[u8],
    stacks: &EventStacks<'_>,
) -> Result<u64> {
    routes.route(id, payload, cpu, |probe| {
        let want = by_probe.get(probe).copied().unwrap_or_default();
        match want.any() {
            true => sink.record_stacks(probe, cpu, pid, ts, payload, &stacks.only(want)),
            false => sink.record(probe, cpu, pid, ts, payload),
        }
    })
}

/// Sees every raw sub-buffer as read, with its CPU (a recorder writes them to a file): one or
/// more whole sub-buffers, back to back, in the order read.
pub type PageTap = Box<dyn FnMut(usize, &[u8]) -> std::io::Result<()>>;

/// The pages of one CPU's part of round `gen`.
struct Round {
    gen: u64,
    cpu: u32,
    /// The pages, back to back in `arena[..used]`. A reused arena keeps its length, so that
    /// its bytes are not zeroed again before each read (the kernel overwrites them).
    arena: Vec<u8>,
    used: usize,
    /// (start, len) of each page in `arena`, in the order read.
    pages: Vec<(usize, usize)>,
}

/// Sub-buffer size (KiB) live runs ask for in their own instance (kernels 6.8+): a quarter of
/// the reads of 4 KiB pages for the same data. Chosen under a syscall storm
/// (tests/bench/stream-storm.sh; figures in docs/ARCHITECTURE.md, "Measured"): 32 KiB was no
/// faster, 64 KiB lost events.
pub const LIVE_SUBBUF_KB: u64 = 16;

/// Bytes of pages the reader may be ahead of the consumer. A burst the consumer cannot follow
/// at once (a syscall storm printed as text) is held here rather than lost in the kernel.
const MAX_QUEUED_BYTES: usize = 512 << 20;
/// Longest wait for trace data, in milliseconds.
const POLL_MS: u8 = 10;
/// Spare arenas kept for reuse.
const SPARES: usize = 16;

/// The reader threads of an instance and what decodes their rounds.
pub struct Pump {
    /// A std channel: its receiver parks after a short spin, where crossbeam's yields the CPU
    /// up to four times first (a few percent of a run's CPU under a syscall storm on two
    /// CPUs, spent waiting for the readers).
    rounds: mpsc::Receiver<Result<Round>>,
    queued: Arc<AtomicUsize>,
    spare: Sender<Vec<u8>>,
    /// Tells the readers to read everything one last time and stop.
    finish: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    tap: Option<PageTap>,
    page_header: PageHeader,
    event_header: EventHeader,
    lost: Vec<u64>,
    records: u64,
    done: bool,
    /// Rounds whose every CPU's part has not arrived yet, by round number.
    partial: BTreeMap<u64, Vec<Round>>,
    /// The next round to consume.
    next_gen: u64,
    cpus: usize,
    /// Call stacks to attach to their events, when a probe asked for them.
    stacks: Option<StackRouting>,
    /// For a raw recording ([`Pump::open_raw`]): where the kernel counts the events.
    raw: Option<raw::RawCounts>,
}

impl Pump {
    /// Opens every CPU's `trace_pipe_raw` of `instance` and starts a reader thread for each.
    pub fn open(instance: &Instance) -> Result<Pump> {
        Self::start(instance, None)
    }

    /// A pump whose readers splice every page of CPU `n` to `files[n]` instead of handing it
    /// to a sink (see `pump/raw.rs`): a recording that nothing reads live. Its sink sees no record;
    /// [`Pump::records`] and [`Pump::lost`] are the kernel's counts, after [`Pump::finish`].
    pub fn open_raw(instance: &Instance, files: Vec<std::fs::File>) -> Result<Pump> {
        Self::start(instance, Some(files))
    }

    fn start(instance: &Instance, raw_to: Option<Vec<std::fs::File>>) -> Result<Pump> {
        let t = instance.tracefs();
        let page_text = tracefs::read_text(&t.file("events/header_page")).context("reading header_page")?;
        let event_text = tracefs::read_text(&t.file("events/header_event")).context("reading header_event")?;
        let subbuf = instance.subbuf_size()?;
        let page_header = PageHeader::parse(&page_text, Endian::native())?.with_subbuf_size(subbuf)?;
        let event_header = EventHeader::parse(&event_text)?;
        let cpus = instance.cpu_count()?;
        let mode = if raw_to.is_some() { tracefs::ReadMode::Splice } else { tracefs::ReadMode::Read };
        let readers =
            (0..cpus).map(|c| CpuReader::open_with(instance, c, true, mode)).collect::<tracefs::Result<Vec<_>>>()?;
        let raw = raw_to.as_ref().map(|_| raw::RawCounts::new(instance, cpus));
        let mut outs = raw_to.map(Vec::into_iter);
        let (round_tx, rounds) = mpsc::channel();
        let (spare, spare_rx) = bounded(SPARES * cpus.max(1));
        let (tid_tx, tid_rx) = bounded(cpus.max(1));
        let queued = Arc::new(AtomicUsize::new(0));
        let finish = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicU64::new(0));
        // A pipe per reader: a byte in it asks the reader to read for the current round.
        let mut wake_rx = Vec::with_capacity(cpus);
        let mut wake_tx = Vec::with_capacity(cpus);
        for _ in 0..cpus {
            let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).context("making a wake-up pipe")?;
            wake_rx.push(r);
            wake_tx.push(w);
        }
        let wake_tx = Arc::new(wake_tx);
        let mut threads = Vec::with_capacity(cpus);
        for ((cpu, reader), wake) in readers.into_iter().enumerate().zip(wake_rx) {
            let shared = Shared {
                page_header,
                rounds: round_tx.clone(),
                queued: queued.clone(),
                spare: spare_rx.clone(),
                finish: finish.clone(),
                generation: generation.clone(),
                wake_all: wake_tx.clone(),
                wake,
            };
            let tid_tx = tid_tx.clone();
            let out = match &mut outs {
                Some(files) => Some(files.next().with_context(|| format!("no file to record CPU {cpu} to"))?),
                None => None,
            };
            let thread = std::thread::Builder::new()
                .name(format!("wasmprobe-cpu{cpu}"))
                .spawn(move || reader_thread(cpu, reader, shared, tid_tx, out))
                .context("starting a reader thread")?;
            threads.push(thread);
        }
        drop(round_tx);
        drop(tid_tx);
        // Out of the trace: our own reads would otherwise feed the buffers we drain.
        let tids: Vec<i32> = (0..cpus).filter_map(|_| tid_rx.recv_timeout(Duration::from_secs(5)).ok()).collect();
        let notrace = instance.file("set_event_notrace_pid");
        let _ = tracefs::read_text(&notrace).map(|cur| {
            let mut pids: Vec<String> = cur.split_whitespace().map(str::to_string).collect();
            pids.extend(tids.iter().map(|t| t.to_string()));
            pids.push(std::process::id().to_string());
            std::fs::write(&notrace, pids.join(" "))
        });
        Ok(Pump {
            rounds,
            queued,
            spare,
            finish,
            threads,
            tap: None,
            page_header,
            event_header,
            lost: vec![0; cpus],
            records: 0,
            done: false,
            partial: BTreeMap::new(),
            next_gen: 1,
            cpus,
            stacks: None,
            raw,
        })
    }

    /// Attaches call stacks to their events before delivery (see [`crate::stacks`]).
    pub fn set_stacks(&mut self, stacks: StackRouting) {
        self.stacks = Some(stacks);
    }

    /// What the stack matcher saw so far (all zero without stacks).
    pub fn stack_stats(&self) -> StackStats {
        self.stacks.as_ref().map(|s| s.matcher.stats()).unwrap_or_default()
    }

    /// Hands every raw sub-buffer to `tap` before it is decoded.
    pub fn set_tap(&mut self, tap: PageTap) {
        self.tap = Some(tap);
    }

    /// Events lost so far, per CPU.
    pub fn lost(&self) -> &[u64] {
        &self.lost
    }

    /// Total events lost so far (losses flagged without a count count as one each).
    pub fn total_lost(&self) -> u64 {
        self.lost.iter().sum::<u64>()
    }

    /// Records delivered so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Waits up to `timeout` for the readers, then consumes every round all CPUs have sent.
    pub fn step(&mut self, session: &Session, sink: &mut dyn RecordSink, timeout: Duration) -> Result<()> {
        match self.rounds.recv_timeout(timeout) {
            Ok(r) => self.file(r?),
            Err(RecvTimeoutError::Timeout) => return Ok(()),
            Err(RecvTimeoutError::Disconnected) => return Err(self.reader_gone()),
        }
        while let Ok(r) = self.rounds.try_recv() {
            self.file(r?);
        }
        while self.partial.get(&self.next_gen).is_some_and(|parts| parts.len() == self.cpus) {
            let parts = self.partial.remove(&self.next_gen).expect("checked");
            self.next_gen += 1;
            self.consume(parts, session, sink)?;
        }
        Ok(())
    }

    /// Files a CPU's part of a round under its round number.
    fn file(&mut self, round: Round) {
        self.partial.entry(round.gen).or_default().push(round);
    }

    /// After the events are disabled: has every reader drain its CPU one last time, consumes
    /// everything, and stops the threads.
    pub fn finish(&mut self, session: &Session, sink: &mut dyn RecordSink) -> Result<()> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        self.finish.store(true, Ordering::Relaxed);
        // The channel closes when the last reader has sent its last round.
        while let Ok(r) = self.rounds.recv() {
            self.file(r?);
        }
        // The last rounds may be incomplete (each reader ends on its own): merge them all.
        let rest: Vec<Round> = std::mem::take(&mut self.partial).into_values().flatten().collect();
        self.consume(rest, session, sink)?;
        for t in self.threads.drain(..) {
            t.join().map_err(|_| anyhow!("a reader thread panicked"))?;
        }
        if let Some(raw) = &self.raw {
            (self.records, self.lost) = raw.read()?;
        }
        Ok(())
    }

    fn reader_gone(&mut self) -> anyhow::Error {
        match self.threads.drain(..).map(|t| t.join()).find(Result::is_err) {
            Some(_) => anyhow!("a reader thread panicked"),
            None => anyhow!("the reader threads stopped"),
        }
    }

    fn consume(&mut self, mut rounds: Vec<Round>, session: &Session, sink: &mut dyn RecordSink) -> Result<()> {
        // A CPU's earlier round first, so that ties keep its records in order.
        rounds.sort_by_key(|r| (r.gen, r.cpu));
        for r in &rounds {
            self.queued.fetch_sub(r.used, Ordering::Relaxed);
        }
        if let Some(tap) = &mut self.tap {
            // A part's pages are back to back in its arena: one write for all of them.
            for r in rounds.iter().filter(|r| r.used > 0) {
                tap(r.cpu as usize, &r.arena[..r.used]).with_context(|| format!("saving CPU {}'s pages", r.cpu))?;
            }
        }
        // Each part is one CPU's pages, its records in time order. Merge them by timestamp,
        // ties to the earlier part, as trace-cmd merges its per-CPU streams.
        let mut cursors: Vec<CpuCursor<'_>> = rounds
            .iter()
            .map(|r| CpuCursor { cpu: r.cpu, arena: &r.arena, pages: &r.pages, records: None, head: None })
            .collect();
        for c in &mut cursors {
            c.advance(&self.page_header, &self.event_header, &mut self.lost)?;
        }
        let routes = session.routes();
        loop {
            let mut best: Option<(usize, u64)> = None;
            for (i, c) in cursors.iter().enumerate() {
                if let Some(h) = &c.head {
                    if best.is_none_or(|(_, ts)| h.ts < ts) {
                        best = Some((i, h.ts));
                    }
                }
            }
            let Some((i, _)) = best else { break };
            let c = &mut cursors[i];
            let (cpu, rec) = (c.cpu, c.head.take().expect("chosen for its head"));
            let payload = rec.data;
            if let Some(st) = &mut self.stacks {
                self.records += st.push(routes, sink, cpu, rec.ts, payload)?;
            } else if let Some(id) = rec.common_type() {
                let pid = rec.common_pid().unwrap_or(0);
                self.records +=
                    routes.route(id, payload, cpu, |probe| sink.record(probe, cpu, pid, rec.ts, payload))?;
            }
            c.advance(&self.page_header, &self.event_header, &mut self.lost)?;
        }
        drop(cursors);
        if let Some(st) = &mut self.stacks {
            self.records += st.flush(routes, sink)?;
        }
        sink.flush(&self.lost)?;
        // Give the arenas back for reuse (dropped if the readers have enough).
        for r in rounds.into_iter().filter(|r| r.arena.capacity() > 0) {
            let _ = self.spare.try_send(r.arena);
        }
        Ok(())
    }
}

/// One CPU's records in a round: its pages, the page being read and its next record.
struct CpuCursor<'p> {
    arena: &'p [u8],
    cpu: u32,
    /// (start, len) of this CPU's pages not yet opened.
    pages: &'p [(usize, usize)],
    records: Option<Records<'p>>,
    head: Option<Record<'p>>,
}

impl<'p> CpuCursor<'p> {
    /// Moves `head` to the next record, opening the next page when one runs out (and counting
    /// the events the kernel lost before it).
    fn advance(&mut self, ph: &PageHeader, eh: &EventHeader, lost: &mut [u64]) -> Result<()> {
        let cpu = self.cpu;
        loop {
            if let Some(records) = &mut self.records {
                if let Some(rec) = records.next() {
                    self.head = Some(rec.with_context(|| format!("CPU {cpu}: malformed record"))?);
                    return Ok(());
                }
                self.records = None;
                self.pages = &self.pages[1..];
            }
            let Some(&(start, len)) = self.pages.first() else {
                self.head = None;
                return Ok(());
            };
            let page = SubBuffer::with_event_header(&self.arena[start..start + len], ph, eh)
                .with_context(|| format!("CPU {cpu}: malformed sub-buffer"))?;
            match page.missed_events() {
                MissedEvents::None => {}
                MissedEvents::Unknown => lost[cpu as usize] += 1,
                MissedEvents::Count(n) => lost[cpu as usize] += n,
            }
            self.records = Some(page.records());
        }
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        if !self.done {
            self.finish.store(true, Ordering::Relaxed);
            // Let readers waiting on a full queue see it empty, then end.
            while self.rounds.recv_timeout(Duration::from_millis(200)).is_ok() {}
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A sub-buffer with less data than its capacity less this is taken for a partial page (a
/// full page leaves less unused than one event; a larger one only ends a round early).
const FULL_SLACK: usize = 512;

/// What every reader thread shares with the others and the consumer.
struct Shared {
    page_header: PageHeader,
    rounds: mpsc::Sender<Result<Round>>,
    queued: Arc<AtomicUsize>,
    spare: Receiver<Vec<u8>>,
    finish: Arc<AtomicBool>,
    /// The newest round any reader has started.
    generation: Arc<AtomicU64>,
    /// The wake-up pipes of all readers, and this reader's own.
    wake_all: Arc<Vec<OwnedFd>>,
    wake: OwnedFd,
}

fn reader_thread(cpu: usize, mut reader: CpuReader, sh: Shared, tid_tx: Sender<i32>, raw_to: Option<std::fs::File>) {
    let tid = nix::unistd::gettid().as_raw();
    let _ = tid_tx.send(tid);
    drop(tid_tx);
    // On the CPU it drains, when allowed: it then competes with that CPU's writers only, and
    // a CPU that stalls holds up no other CPU's reader.
    let mut on_cpu = nix::sched::CpuSet::new();
    if on_cpu.set(cpu).is_ok() {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(tid), &on_cpu);
    }
    // Ahead of the busy tasks we trace, when allowed (root): losing events is worse. The
    // reader only copies pages and sleeps in poll, so a real-time priority costs others little;
    // without the privilege, a raised nice level, or nothing.
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: scheduling calls on our own thread id with a valid parameter.
    unsafe {
        if libc::sched_setscheduler(tid, libc::SCHED_FIFO, &param) != 0 {
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, -10);
        }
    }
    if let Some(out) = raw_to {
        return raw::reader_loop(cpu, reader, &sh, out);
    }
    let ph = sh.page_header;
    // The last round this reader has sent its part of.
    let mut last = 0u64;
    loop {
        let finishing = sh.finish.load(Ordering::Relaxed);
        // Too far ahead of the consumer: let it catch up (the kernel buffers meanwhile).
        if !finishing && sh.queued.load(Ordering::Relaxed) > MAX_QUEUED_BYTES {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let mut asked = false;
        if !finishing {
            // Woken when the buffer is `buffer_percent` full, or by another reader starting a
            // round; the timeout is the fallback, shorter than a syscall storm takes to fill a
            // default-sized buffer (docs/ARCHITECTURE.md, "Measured").
            let mut fds =
                [PollFd::new(reader.as_fd(), PollFlags::POLLIN), PollFd::new(sh.wake.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(POLL_MS)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    let _ = sh.rounds.send(Err(anyhow!("waiting for CPU {cpu}'s trace data: {e}")));
                    return;
                }
            }
            asked = fds[1].revents().is_some_and(|r| r.contains(PollFlags::POLLIN));
            let mut drain = [0u8; 64];
            while nix::unistd::read(&sh.wake, &mut drain).is_ok_and(|n| n > 0) {}
        }
        let Some(gen) = round_to_read(&sh, cpu, last, asked && !finishing) else { continue };
        // Rounds this reader slept through get an empty part, so that none waits for it.
        for skipped in last + 1..gen {
            let empty = Round { gen: skipped, cpu: cpu as u32, arena: Vec::new(), used: 0, pages: Vec::new() };
            if sh.rounds.send(Ok(empty)).is_err() {
                return;
            }
        }
        last = gen;
        let arena = sh.spare.try_recv().unwrap_or_default();
        let mut round = Round { gen, cpu: cpu as u32, arena, used: 0, pages: Vec::new() };
        if let Err(e) = read_round(&mut reader, &mut round, &ph, finishing) {
            let _ = sh.rounds.send(Err(anyhow!(e)));
            return;
        }
        // Sent even when empty: the consumer waits for every CPU's part of a round.
        sh.queued.fetch_add(round.used, Ordering::Relaxed);
        if sh.rounds.send(Ok(round)).is_err() {
            return;
        }
        if finishing {
            return;
        }
    }
}

/// The round a reader reads for: the newest one started, if it has not read for it yet; else
/// (its own buffer is ready, or the poll timed out) a new one, and the other readers are woken
/// to read for it too. `None` when it was only woken for a round it has already read.
fn round_to_read(sh: &Shared, cpu: usize, last: u64, only_asked: bool) -> Option<u64> {
    let started = sh.generation.load(Ordering::Acquire);
    if started > last {
        return Some(started);
    }
    if only_asked {
        return None;
    }
    let gen = last + 1;
    if sh.generation.fetch_max(gen, Ordering::AcqRel) < gen {
        for (other, w) in sh.wake_all.iter().enumerate() {
            if other != cpu {
                let _ = nix::unistd::write(w, &[1]);
            }
        }
    }
    Some(gen)
}

/// Reads one CPU's pages into `round`: the full ones, then at most one partial page after the
/// first read (everything when `finishing`).
fn read_round(reader: &mut CpuReader, round: &mut Round, ph: &PageHeader, finishing: bool) -> tracefs::Result<()> {
    let subbuf = ph.subbuf_size();
    for nth in 0.. {
        let start = round.used;
        if round.arena.len() < start + subbuf {
            round.arena.resize(start + subbuf, 0);
        }
        let n = reader.read_subbuf(&mut round.arena[start..start + subbuf])?;
        if n == 0 {
            break;
        }
        round.used += n;
        round.pages.push((start, n));
        // A page with room left is the page the writer is on (copied as far as it got), or the
        // rest of a page an earlier round read in part. Reading on after the first would chase
        // the writer: a syscall and a page copy for a few events each time. The rest waits for
        // the next round (poll wakes us when the buffer is `buffer_percent` full).
        let data = ph.commit_len(&round.arena[start..start + n]).unwrap_or(0);
        if !finishing && nth > 0 && data + FULL_SLACK < ph.data_size {
            break;
        }
    }
    Ok(())
}
