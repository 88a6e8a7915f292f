//! Moving events from the kernel to a consumer: drain every CPU's `trace_pipe_raw` of our
//! instance, split the sub-buffers into records, order a round's records by timestamp across
//! CPUs, and hand them to a [`RecordSink`]. Lost events are counted per CPU from the
//! sub-buffers' missed-events flags.
//!
//! Each round drains every CPU to empty (reads of a partly filled page copy out what is there),
//! so a round holds everything recorded up to its start, and sorting one round orders the
//! stream up to events racing with the read itself.

use std::os::fd::AsFd;
use std::time::Duration;

use anyhow::{Context, Result};
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

/// One entry of a round: where a record's payload sits in the round's page arena.
#[derive(Debug, Clone, Copy)]
struct Pending {
    ts: u64,
    cpu: u32,
    start: u32,
    len: u32,
}

/// Sees every raw sub-buffer as read, with its CPU (a recorder writes them to a file).
pub type PageTap = Box<dyn FnMut(usize, &[u8]) -> std::io::Result<()>>;

/// The per-CPU readers of an instance and the buffers they fill (reused between rounds).
pub struct Pump {
    tap: Option<PageTap>,
    readers: Vec<CpuReader>,
    page_header: PageHeader,
    event_header: EventHeader,
    arena: Vec<u8>,
    pending: Vec<Pending>,
    lost: Vec<u64>,
    /// CPUs whose loss the kernel flagged without a count (reported as at least 1 each).
    unknown_losses: u64,
    records: u64,
}

impl Pump {
    /// Opens every CPU's `trace_pipe_raw` of `instance` non-blocking, and reads the page and event
    /// header descriptions of the tracing directory.
    pub fn open(instance: &Instance) -> Result<Pump> {
        let t = instance.tracefs();
        let page_text = tracefs::read_text(&t.file("events/header_page")).context("reading header_page")?;
        let event_text = tracefs::read_text(&t.file("events/header_event")).context("reading header_event")?;
        let subbuf = instance.subbuf_size()?;
        let page_header = PageHeader::parse(&page_text, Endian::native())?.with_subbuf_size(subbuf)?;
        let event_header = EventHeader::parse(&event_text)?;
        let cpus = instance.cpu_count()?;
        let readers = (0..cpus).map(|c| CpuReader::open(instance, c, true)).collect::<tracefs::Result<Vec<_>>>()?;
        Ok(Pump {
            tap: None,
            readers,
            page_header,
            event_header,
            arena: Vec::new(),
            pending: Vec::new(),
            lost: vec![0; cpus],
            unknown_losses: 0,
            records: 0,
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

    /// Total events lost so far (flag-only losses count as one each).
    pub fn total_lost(&self) -> u64 {
        self.lost.iter().sum::<u64>()
    }

    /// Records delivered so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Waits until some CPU has data to read (as `buffer_percent` decides) or `timeout` passes.
    /// An interrupted wait (a signal) returns early.
    pub fn wait(&self, timeout: Duration) -> Result<()> {
        let mut fds: Vec<PollFd> = self.readers.iter().map(|r| PollFd::new(r.as_fd(), PollFlags::POLLIN)).collect();
        let ms = PollTimeout::try_from(timeout.as_millis().min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, ms) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
            Err(e) => Err(e).context("waiting for trace data"),
        }
    }

    /// Drains every CPU, orders the records by timestamp and gives them to `sink` for the probes
    /// `session` armed, then flushes the sink. Returns how many records went out.
    pub fn drain(&mut self, session: &Session, sink: &mut dyn RecordSink) -> Result<usize> {
        self.arena.clear();
        self.pending.clear();
        let size = self.page_header.subbuf_size();
        for (cpu, reader) in self.readers.iter_mut().enumerate() {
            loop {
                let start = self.arena.len();
                self.arena.resize(start + size, 0);
                let n = reader.read_subbuf(&mut self.arena[start..])?;
                if n == 0 {
                    self.arena.truncate(start);
                    break;
                }
                self.arena.truncate(start + n);
                if let Some(tap) = &mut self.tap {
                    tap(cpu, &self.arena[start..]).with_context(|| format!("saving CPU {cpu}'s pages"))?;
                }
                let page = SubBuffer::with_event_header(&self.arena[start..], &self.page_header, &self.event_header)
                    .with_context(|| format!("CPU {cpu}: malformed sub-buffer"))?;
                match page.missed_events() {
                    MissedEvents::None => {}
                    MissedEvents::Unknown => {
                        self.lost[cpu] += 1;
                        self.unknown_losses += 1;
                    }
                    MissedEvents::Count(n) => self.lost[cpu] += n,
                }
                for rec in page.records() {
                    let rec = rec.with_context(|| format!("CPU {cpu}: malformed record"))?;
                    self.pending.push(Pending {
                        ts: rec.ts,
                        cpu: cpu as u32,
                        start: (start + rec.payload_offset) as u32,
                        len: rec.data.len() as u32,
                    });
                }
            }
        }
        self.pending.sort_by_key(|p| p.ts);
        let mut delivered = 0;
        for p in &self.pending {
            let payload = &self.arena[p.start as usize..(p.start + p.len) as usize];
            let Some(id) = payload.get(0..2).map(|b| u16::from_ne_bytes([b[0], b[1]])) else { continue };
            let Some(probe) = session.probe_by_id(id) else { continue };
            let pid = payload.get(4..8).map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
            sink.record(probe.index, p.cpu, pid, p.ts, payload)?;
            delivered += 1;
        }
        self.records += delivered as u64;
        sink.flush(&self.lost)?;
        Ok(delivered)
    }
}
