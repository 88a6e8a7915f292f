//! Moving events from the kernel to a consumer. One reader thread per CPU drains that CPU's
//! `trace_pipe_raw` of our instance in rounds (full pages, then at most one partial page) and
//! hands each round's pages over a channel; the caller's thread splits them into records,
//! merges the records of every round it has received by timestamp across CPUs and gives them
//! to a [`RecordSink`]. Lost events are counted per CPU from the sub-buffers' missed-events
//! flags.
//!
//! Reading and consuming overlap, so a slow consumer (text formatting, a plugin) does not
//! leave the kernel's buffers unread: that is where events get lost. A reader per CPU, on that
//! CPU, keeps one stalled CPU (or a virtual CPU its host has paused) from holding up the
//! draining of the others. The readers keep themselves out of the trace
//! (`set_event_notrace_pid`) and run at a raised priority when they may. Rounds wait in a
//! bounded queue; when the consumer falls that far behind, the readers wait and the kernel
//! counts what it drops.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use crossbeam::channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use traceevent::{Endian, EventHeader, MissedEvents, PageHeader, SubBuffer};
use tracefs::{CpuReader, Instance};

use crate::session::Session;

/// Where decoded records go.
pub trait RecordSink {
    /// One record of the armed probe `probe` (index in the plan). `payload` is the raw event
    /// data (common fields first), valid only during the call.
    fn record(&mut self, probe: usize, cpu: u32, pid: i32, ts: u64, payload: &[u8]) -> Result<()>;
    /// The end of a round: deliver what was collected. `lost` is the events lost so far, per CPU.
    fn flush(&mut self, lost: &[u64]) -> Result<()>;
}

/// Sees every raw sub-buffer as read, with its CPU (a recorder writes them to a file).
pub type PageTap = Box<dyn FnMut(usize, &[u8]) -> std::io::Result<()>>;

/// The pages of one round of one CPU's reader.
struct Round {
    /// The pages, back to back in `arena[..used]`. A reused arena keeps its length, so that
    /// its bytes are not zeroed again before each read (the kernel overwrites them).
    arena: Vec<u8>,
    used: usize,
    /// (cpu, start, len) of each page in `arena`, in the order read.
    pages: Vec<(u32, usize, usize)>,
}

/// Sub-buffer size (KiB) live runs ask for in their own instance (kernels 6.8+): a quarter of
/// the reads of 4 KiB pages for the same data. Under a syscall storm on the 6.18 host this
/// halved the reader's kernel time (34 -> 16-26 ns/event, tests/bench/stream-storm.sh);
/// 32 KiB measured the same, 64 KiB lost events in some runs.
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
    rounds: Receiver<Result<Round>>,
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
    /// Rounds whose records are not all delivered yet, the oldest first; the first is round
    /// number `first_round`.
    held: std::collections::VecDeque<(Round, usize)>,
    first_round: u32,
    /// Records decoded but not delivered, per CPU, each in timestamp order.
    pending: Vec<std::collections::VecDeque<Pending>>,
    /// The newest timestamp seen.
    newest: u64,
}

/// A decoded record waiting in [`Pump::pending`]: where its payload is.
#[derive(Debug, Clone, Copy)]
struct Pending {
    ts: u64,
    /// Index of its round in `held`, counted from `first_round`.
    round: u32,
    start: u32,
    len: u32,
}

/// How long (trace-clock ns) a record is held back behind the newest one seen, so that a
/// CPU's round that arrives a little later can still put its older records before it: the
/// readers read every CPU at least every [`POLL_MS`].
const HOLD_BACK_NS: u64 = 2 * POLL_MS as u64 * 1_000_000;

impl Pump {
    /// Opens every CPU's `trace_pipe_raw` of `instance` and starts a reader thread for each.
    pub fn open(instance: &Instance) -> Result<Pump> {
        let t = instance.tracefs();
        let page_text = tracefs::read_text(&t.file("events/header_page")).context("reading header_page")?;
        let event_text = tracefs::read_text(&t.file("events/header_event")).context("reading header_event")?;
        let subbuf = instance.subbuf_size()?;
        let page_header = PageHeader::parse(&page_text, Endian::native())?.with_subbuf_size(subbuf)?;
        let event_header = EventHeader::parse(&event_text)?;
        let cpus = instance.cpu_count()?;
        let readers = (0..cpus).map(|c| CpuReader::open(instance, c, true)).collect::<tracefs::Result<Vec<_>>>()?;
        let (round_tx, rounds) = unbounded();
        let (spare, spare_rx) = bounded(SPARES * cpus.max(1));
        let (tid_tx, tid_rx) = bounded(cpus.max(1));
        let queued = Arc::new(AtomicUsize::new(0));
        let finish = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::with_capacity(cpus);
        for (cpu, reader) in readers.into_iter().enumerate() {
            let shared = Shared {
                page_header,
                rounds: round_tx.clone(),
                queued: queued.clone(),
                spare: spare_rx.clone(),
                finish: finish.clone(),
            };
            let tid_tx = tid_tx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("wasmprobe-cpu{cpu}"))
                .spawn(move || reader_thread(cpu, reader, shared, tid_tx))
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
            held: Default::default(),
            first_round: 0,
            pending: vec![Default::default(); cpus],
            newest: 0,
        })
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

    /// Waits up to `timeout` for the readers, then delivers, in timestamp order, the records
    /// that are older than the newest one by more than the hold-back (all of them when no
    /// reader had anything within `timeout`: every CPU is then idle).
    pub fn step(&mut self, session: &Session, sink: &mut dyn RecordSink, timeout: Duration) -> Result<()> {
        match self.rounds.recv_timeout(timeout) {
            Ok(r) => self.take(r?)?,
            Err(RecvTimeoutError::Timeout) => return self.deliver(session, sink, u64::MAX),
            Err(RecvTimeoutError::Disconnected) => return Err(self.reader_gone()),
        }
        while let Ok(r) = self.rounds.try_recv() {
            self.take(r?)?;
        }
        self.deliver(session, sink, self.newest.saturating_sub(HOLD_BACK_NS))
    }

    /// After the events are disabled: has every reader drain its CPU one last time, delivers
    /// everything, and stops the threads.
    pub fn finish(&mut self, session: &Session, sink: &mut dyn RecordSink) -> Result<()> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        self.finish.store(true, Ordering::Relaxed);
        // The channel closes when the last reader has sent its last round.
        while let Ok(r) = self.rounds.recv() {
            self.take(r?)?;
        }
        self.deliver(session, sink, u64::MAX)?;
        for t in self.threads.drain(..) {
            t.join().map_err(|_| anyhow!("a reader thread panicked"))?;
        }
        Ok(())
    }

    fn reader_gone(&mut self) -> anyhow::Error {
        match self.threads.drain(..).map(|t| t.join()).find(Result::is_err) {
            Some(_) => anyhow!("a reader thread panicked"),
            None => anyhow!("the reader threads stopped"),
        }
    }

    /// Decodes a round into `pending` (its pages to the tap first) and holds it.
    fn take(&mut self, round: Round) -> Result<()> {
        self.queued.fetch_sub(round.used, Ordering::Relaxed);
        if let Some(tap) = &mut self.tap {
            for &(cpu, start, len) in &round.pages {
                tap(cpu as usize, &round.arena[start..start + len])
                    .with_context(|| format!("saving CPU {cpu}'s pages"))?;
            }
        }
        let id = self.first_round.wrapping_add(self.held.len() as u32);
        let mut count = 0;
        for &(cpu, start, len) in &round.pages {
            let page =
                SubBuffer::with_event_header(&round.arena[start..start + len], &self.page_header, &self.event_header)
                    .with_context(|| format!("CPU {cpu}: malformed sub-buffer"))?;
            match page.missed_events() {
                MissedEvents::None => {}
                MissedEvents::Unknown => self.lost[cpu as usize] += 1,
                MissedEvents::Count(n) => self.lost[cpu as usize] += n,
            }
            for rec in page.records() {
                let rec = rec.with_context(|| format!("CPU {cpu}: malformed record"))?;
                self.newest = self.newest.max(rec.ts);
                let start = (start + rec.payload_offset) as u32;
                let pending = Pending { ts: rec.ts, round: id, start, len: rec.data.len() as u32 };
                self.pending.get_mut(cpu as usize).context("a page of a CPU we do not read")?.push_back(pending);
                count += 1;
            }
        }
        self.held.push_back((round, count));
        Ok(())
    }

    /// Delivers the pending records with timestamps up to `upto`, in timestamp order: a merge
    /// of the CPUs' queues (ties to the lower CPU, as trace-cmd merges its per-CPU streams),
    /// each CPU's records in the order they were written. Releases the rounds they came from.
    fn deliver(&mut self, session: &Session, sink: &mut dyn RecordSink, upto: u64) -> Result<()> {
        loop {
            let mut best: Option<(usize, u64)> = None;
            for (cpu, q) in self.pending.iter().enumerate() {
                if let Some(p) = q.front() {
                    if p.ts <= upto && best.is_none_or(|(_, ts)| p.ts < ts) {
                        best = Some((cpu, p.ts));
                    }
                }
            }
            let Some((cpu, _)) = best else { break };
            let p = self.pending[cpu].pop_front().expect("chosen for its front");
            let (round, left) = &mut self.held[p.round.wrapping_sub(self.first_round) as usize];
            *left -= 1;
            let payload = &round.arena[p.start as usize..(p.start + p.len) as usize];
            let Some(id) = payload.get(0..2).map(|b| u16::from_ne_bytes([b[0], b[1]])) else { continue };
            let Some(probe) = session.probe_by_id(id) else { continue };
            let pid = payload.get(4..8).map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
            sink.record(probe.index, cpu as u32, pid, p.ts, payload)?;
            self.records += 1;
        }
        // Rounds all of whose records are delivered go back to the readers for reuse.
        while self.held.front().is_some_and(|(_, left)| *left == 0) {
            let (round, _) = self.held.pop_front().expect("checked");
            self.first_round = self.first_round.wrapping_add(1);
            let _ = self.spare.try_send(round.arena);
        }
        sink.flush(&self.lost)
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
    rounds: Sender<Result<Round>>,
    queued: Arc<AtomicUsize>,
    spare: Receiver<Vec<u8>>,
    finish: Arc<AtomicBool>,
}

fn reader_thread(cpu: usize, mut reader: CpuReader, sh: Shared, tid_tx: Sender<i32>) {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
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
    let ph = sh.page_header;
    let subbuf = ph.subbuf_size();
    loop {
        let finishing = sh.finish.load(Ordering::Relaxed);
        // Too far ahead of the consumer: let it catch up (the kernel buffers meanwhile).
        if !finishing && sh.queued.load(Ordering::Relaxed) > MAX_QUEUED_BYTES {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        if !finishing {
            // Woken when the buffer is `buffer_percent` full; the timeout is the fallback,
            // shorter than a syscall storm takes to fill a default-sized buffer here (18 ms).
            let mut fds = [PollFd::new(reader.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(POLL_MS)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    let _ = sh.rounds.send(Err(anyhow!("waiting for CPU {cpu}'s trace data: {e}")));
                    return;
                }
            }
        }
        let mut round = Round { arena: sh.spare.try_recv().unwrap_or_default(), used: 0, pages: Vec::new() };
        for nth in 0.. {
            let start = round.used;
            if round.arena.len() < start + subbuf {
                round.arena.resize(start + subbuf, 0);
            }
            match reader.read_subbuf(&mut round.arena[start..start + subbuf]) {
                Ok(0) => break,
                Ok(n) => {
                    round.used += n;
                    round.pages.push((cpu as u32, start, n));
                    // A page with room left is the page the writer is on (copied as far as it
                    // got), or the rest of a page an earlier round read in part. Reading on
                    // after the first would chase the writer: a syscall and a page copy for a
                    // few events each time. The rest waits for the next round (poll wakes us
                    // when the buffer is `buffer_percent` full). At the end, everything is read.
                    let data = ph.commit_len(&round.arena[start..start + n]).unwrap_or(0);
                    if !finishing && nth > 0 && data + FULL_SLACK < ph.data_size {
                        break;
                    }
                }
                Err(e) => {
                    let _ = sh.rounds.send(Err(anyhow!(e)));
                    return;
                }
            }
        }
        if !round.pages.is_empty() {
            sh.queued.fetch_add(round.used, Ordering::Relaxed);
            if sh.rounds.send(Ok(round)).is_err() {
                return;
            }
        }
        if finishing {
            return;
        }
    }
}
