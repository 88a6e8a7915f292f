//! Moving events from the kernel to a consumer. A reader thread drains every CPU's
//! `trace_pipe_raw` of our instance in rounds (each CPU read to empty, partial pages too) and
//! hands each round's pages over a channel; the caller's thread splits them into records,
//! orders a round's records by timestamp across CPUs and gives them to a [`RecordSink`]. Lost
//! events are counted per CPU from the sub-buffers' missed-events flags.
//!
//! Reading and consuming overlap, so a slow consumer (text formatting, a plugin) does not
//! leave the kernel's buffers unread: that is where events get lost. The reader thread keeps
//! itself out of the trace (`set_event_notrace_pid`) and runs at a raised priority when it
//! may. Rounds wait in a bounded queue; when the consumer falls that far behind, the reader
//! waits and the kernel counts what it drops.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use crossbeam::channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use traceevent::{Endian, EventHeader, MissedEvents, PageHeader, Record, Records, SubBuffer};
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

/// The pages of one round: every CPU read to empty once.
struct Round {
    /// The pages, back to back in `arena[..used]`. A reused arena keeps its length, so that
    /// its bytes are not zeroed again before each read (the kernel overwrites them).
    arena: Vec<u8>,
    used: usize,
    /// (cpu, start, len) of each page in `arena`.
    pages: Vec<(u32, usize, usize)>,
}

/// What the consumer tells the reader.
enum Command {
    /// Read one last round, send it, and stop.
    Finish,
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

/// The reader thread of an instance and what decodes its rounds.
pub struct Pump {
    rounds: Receiver<Result<Round>>,
    queued: Arc<AtomicUsize>,
    spare: Sender<Vec<u8>>,
    commands: Sender<Command>,
    thread: Option<std::thread::JoinHandle<()>>,
    tap: Option<PageTap>,
    page_header: PageHeader,
    event_header: EventHeader,
    lost: Vec<u64>,
    records: u64,
    done: bool,
}

impl Pump {
    /// Opens every CPU's `trace_pipe_raw` of `instance` and starts the reader thread.
    pub fn open(instance: &Instance) -> Result<Pump> {
        let t = instance.tracefs();
        let page_text = tracefs::read_text(&t.file("events/header_page")).context("reading header_page")?;
        let event_text = tracefs::read_text(&t.file("events/header_event")).context("reading header_event")?;
        let subbuf = instance.subbuf_size()?;
        let page_header = PageHeader::parse(&page_text, Endian::native())?.with_subbuf_size(subbuf)?;
        let event_header = EventHeader::parse(&event_text)?;
        let cpus = instance.cpu_count()?;
        let readers = (0..cpus).map(|c| CpuReader::open(instance, c, true)).collect::<tracefs::Result<Vec<_>>>()?;
        let notrace = instance.file("set_event_notrace_pid");
        let (round_tx, rounds) = unbounded();
        let (spare, spare_rx) = bounded(SPARES);
        let (commands, command_rx) = bounded(1);
        let queued = Arc::new(AtomicUsize::new(0));
        let q = queued.clone();
        let thread = std::thread::Builder::new()
            .name("wasmprobe-reader".into())
            .spawn(move || reader_thread(readers, page_header, notrace, round_tx, q, spare_rx, command_rx))
            .context("starting the reader thread")?;
        Ok(Pump {
            rounds,
            queued,
            spare,
            commands,
            thread: Some(thread),
            tap: None,
            page_header,
            event_header,
            lost: vec![0; cpus],
            records: 0,
            done: false,
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

    /// Waits up to `timeout` for the reader, then consumes every round it has sent.
    pub fn step(&mut self, session: &Session, sink: &mut dyn RecordSink, timeout: Duration) -> Result<()> {
        match self.rounds.recv_timeout(timeout) {
            Ok(r) => self.consume(r?, session, sink)?,
            Err(RecvTimeoutError::Timeout) => return Ok(()),
            Err(RecvTimeoutError::Disconnected) => return Err(self.reader_gone()),
        }
        while let Ok(r) = self.rounds.try_recv() {
            self.consume(r?, session, sink)?;
        }
        Ok(())
    }

    /// After the events are disabled: has the reader drain every CPU one last time, consumes
    /// everything, and stops the thread.
    pub fn finish(&mut self, session: &Session, sink: &mut dyn RecordSink) -> Result<()> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        let _ = self.commands.send(Command::Finish);
        while let Ok(r) = self.rounds.recv() {
            self.consume(r?, session, sink)?;
        }
        if let Some(t) = self.thread.take() {
            t.join().map_err(|_| anyhow!("the reader thread panicked"))?;
        }
        Ok(())
    }

    fn reader_gone(&mut self) -> anyhow::Error {
        match self.thread.take().map(|t| t.join()) {
            Some(Err(_)) => anyhow!("the reader thread panicked"),
            _ => anyhow!("the reader thread stopped"),
        }
    }

    fn consume(&mut self, round: Round, session: &Session, sink: &mut dyn RecordSink) -> Result<()> {
        self.queued.fetch_sub(round.used, Ordering::Relaxed);
        if let Some(tap) = &mut self.tap {
            for &(cpu, start, len) in &round.pages {
                tap(cpu as usize, &round.arena[start..start + len])
                    .with_context(|| format!("saving CPU {cpu}'s pages"))?;
            }
        }
        // The reader reads one CPU after another: each CPU's pages are one run of `pages`,
        // its records already in time order. Merge the runs by timestamp (ties to the lower
        // CPU), as trace-cmd merges its per-CPU streams.
        let mut cursors: Vec<CpuCursor<'_>> = round
            .pages
            .chunk_by(|a, b| a.0 == b.0)
            .map(|pages| CpuCursor { pages, records: None, head: None })
            .collect();
        for c in &mut cursors {
            c.advance(&round.arena, &self.page_header, &self.event_header, &mut self.lost)?;
        }
        loop {
            let mut best: Option<usize> = None;
            for (i, c) in cursors.iter().enumerate() {
                if let Some(h) = &c.head {
                    if best.is_none_or(|b| h.ts < cursors[b].head.as_ref().map_or(u64::MAX, |b| b.ts)) {
                        best = Some(i);
                    }
                }
            }
            let Some(i) = best else { break };
            let c = &mut cursors[i];
            let (cpu, rec) = (c.pages[0].0, c.head.take().expect("chosen for its head"));
            let payload = rec.data;
            if let Some(id) = payload.get(0..2).map(|b| u16::from_ne_bytes([b[0], b[1]])) {
                if let Some(probe) = session.probe_by_id(id) {
                    let pid = payload.get(4..8).map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                    sink.record(probe.index, cpu, pid, rec.ts, payload)?;
                    self.records += 1;
                }
            }
            c.advance(&round.arena, &self.page_header, &self.event_header, &mut self.lost)?;
        }
        sink.flush(&self.lost)?;
        // Give the arena back for reuse (dropped if the reader has enough).
        let _ = self.spare.try_send(round.arena);
        Ok(())
    }
}

/// One CPU's records in a round: its pages, the page being read and its next record.
struct CpuCursor<'p> {
    /// (cpu, start, len) of this CPU's pages not yet opened.
    pages: &'p [(u32, usize, usize)],
    records: Option<Records<'p>>,
    head: Option<Record<'p>>,
}

impl<'p> CpuCursor<'p> {
    /// Moves `head` to the next record, opening the next page when one runs out (and counting
    /// the events the kernel lost before it).
    fn advance(&mut self, arena: &'p [u8], ph: &PageHeader, eh: &EventHeader, lost: &mut [u64]) -> Result<()> {
        loop {
            if let Some(records) = &mut self.records {
                if let Some(rec) = records.next() {
                    let cpu = self.pages.first().map_or(0, |p| p.0);
                    self.head = Some(rec.with_context(|| format!("CPU {cpu}: malformed record"))?);
                    return Ok(());
                }
                self.records = None;
                self.pages = &self.pages[1..];
            }
            let Some(&(cpu, start, len)) = self.pages.first() else {
                self.head = None;
                return Ok(());
            };
            let page = SubBuffer::with_event_header(&arena[start..start + len], ph, eh)
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
            let _ = self.commands.send(Command::Finish);
            // Unblock a reader waiting on a full queue, then let it end.
            while self.rounds.recv_timeout(Duration::from_millis(200)).is_ok() {}
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A sub-buffer with less data than its capacity less this is taken for a partial page (a
/// full page leaves less unused than one event; a larger one only ends a round early).
const FULL_SLACK: usize = 512;

fn reader_thread(
    mut readers: Vec<CpuReader>,
    page_header: PageHeader,
    notrace: std::path::PathBuf,
    rounds: Sender<Result<Round>>,
    queued: Arc<AtomicUsize>,
    spare: Receiver<Vec<u8>>,
    commands: Receiver<Command>,
) {
    // Out of the trace: our own reads would otherwise feed the buffers we drain.
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    let _ = tracefs::read_text(&notrace).map(|cur| {
        let mut pids: Vec<String> = cur.split_whitespace().map(str::to_string).collect();
        pids.push(tid.to_string());
        pids.push(std::process::id().to_string());
        std::fs::write(&notrace, pids.join(" "))
    });
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
    loop {
        let finishing = commands.try_recv().is_ok();
        // Too far ahead of the consumer: let it catch up (the kernel buffers meanwhile).
        if !finishing && queued.load(Ordering::Relaxed) > MAX_QUEUED_BYTES {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        if !finishing {
            let mut fds: Vec<PollFd> = readers.iter().map(|r| PollFd::new(r.as_fd(), PollFlags::POLLIN)).collect();
            // Woken when a buffer is `buffer_percent` full; the timeout is the fallback, shorter
            // than a syscall storm takes to fill a default-sized buffer here (about 18 ms).
            match poll(&mut fds, PollTimeout::from(POLL_MS)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    let _ = rounds.send(Err(anyhow!("waiting for trace data: {e}")));
                    return;
                }
            }
        }
        let mut round = Round { arena: spare.try_recv().unwrap_or_default(), used: 0, pages: Vec::new() };
        let subbuf = page_header.subbuf_size();
        for (cpu, reader) in readers.iter_mut().enumerate() {
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
                        // A page with room left is the page the writer is on (copied as far
                        // as it got), or the rest of a page an earlier round read in part.
                        // Reading on after the first would chase the writer: a syscall and a
                        // page copy for a few events each time. The rest waits for the next
                        // round (poll wakes us when the buffer is `buffer_percent` full). At
                        // the end, everything is read.
                        let data = page_header.commit_len(&round.arena[start..start + n]).unwrap_or(0);
                        if !finishing && nth > 0 && data + FULL_SLACK < page_header.data_size {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = rounds.send(Err(anyhow!(e)));
                        return;
                    }
                }
            }
        }
        if !round.pages.is_empty() {
            queued.fetch_add(round.used, Ordering::Relaxed);
            if rounds.send(Ok(round)).is_err() {
                return;
            }
        }
        if finishing {
            return;
        }
    }
}
