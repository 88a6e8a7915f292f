//! Where a pipeline's records go: a plugin (batched, packed as its plan asks), nowhere, or
//! several sinks at once. The text sink of `stream` is in [`crate::stream`].

use anyhow::Result;

use crate::plugin::{BatchWriter, Plugin};
use crate::pump::RecordSink;
use crate::stacks::EventStacks;

/// Batches records and hands each full batch (and each round's end) to the plugin, each record
/// packed as the plugin's plan asks (whole, or projected onto the fields it declared).
pub struct PluginSink<'p> {
    plugin: &'p mut Plugin,
    /// Probes of the plan; events of other armed probes (recorded only) are not delivered.
    planned: usize,
    batch: BatchWriter,
    pending: usize,
    lost_reported: u64,
    /// Processes whose user stacks were delivered, and whether the symbolizer knows their
    /// mappings: it hears of each once, and of a process it could not place again only with
    /// an anchor, once.
    seen: wasmprobe_abi::fxhash::FxHashMap<i32, Seen>,
    /// `(file, offset)` of each uprobe (not uretprobe), by probe index: its events' first user
    /// frame places that file in a process that exited before its maps were read.
    anchors: Vec<Option<(String, u64)>>,
}

/// What the symbolizer was told of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// Its mappings are known.
    Known,
    /// Gone before its maps were read; no anchor tried yet.
    Unplaced,
    /// Gone, and an anchor did not place it either.
    Given,
}

/// Records per `on-batch` call at most: big enough to amortise the call, small enough to keep
/// the per-call CPU budget meaningful.
const MAX_BATCH: usize = 4096;

impl<'p> PluginSink<'p> {
    /// A sink delivering the records of the first `planned` probes to `plugin` (layouts set).
    pub fn new(plugin: &'p mut Plugin, planned: usize) -> Self {
        PluginSink {
            plugin,
            planned,
            batch: BatchWriter::new(),
            pending: 0,
            lost_reported: 0,
            seen: Default::default(),
            anchors: Vec::new(),
        }
    }

    /// The uprobes' `(file, offset)` by probe index (see [`crate::session::Session::uprobe_anchors`]).
    pub fn with_anchors(mut self, anchors: Vec<Option<(String, u64)>>) -> Self {
        self.anchors = anchors;
        self
    }

    /// Tells the symbolizer of the process of a user stack the first time it is seen, and
    /// again once with an anchor if it could not be placed without one.
    fn note_process(&mut self, probe: usize, tgid: i32, user: &[u64]) {
        let anchor = || {
            let (path, file_offset) = self.anchors.get(probe)?.as_ref()?;
            let addr = *user.first()?;
            Some(crate::symbolize::Anchor { path: path.clone(), file_offset: *file_offset, addr })
        };
        let next = match self.seen.get(&tgid) {
            Some(Seen::Known | Seen::Given) => return,
            Some(Seen::Unplaced) => match anchor() {
                Some(a) if self.plugin.process_seen(tgid, Some(&a)) => Seen::Known,
                Some(_) => Seen::Given,
                None => return,
            },
            None => {
                let a = anchor();
                match self.plugin.process_seen(tgid, a.as_ref()) {
                    true => Seen::Known,
                    false if a.is_some() => Seen::Given,
                    false => Seen::Unplaced,
                }
            }
        };
        self.seen.insert(tgid, next);
    }

    /// Delivers the records collected so far, and the events lost since the last delivery
    /// (`lost_total` counts them from the start of the run).
    pub fn deliver(&mut self, lost_total: u64) -> Result<()> {
        let lost = lost_total - self.lost_reported;
        if self.pending == 0 && lost == 0 {
            return Ok(());
        }
        self.plugin.on_batch(self.batch.as_bytes(), lost)?;
        self.lost_reported = lost_total;
        self.batch.clear();
        self.pending = 0;
        Ok(())
    }
}

impl RecordSink for PluginSink<'_> {
    fn record(&mut self, probe: usize, cpu: u32, pid: i32, ts: u64, payload: &[u8]) -> Result<()> {
        if probe >= self.planned {
            return Ok(());
        }
        self.plugin.pack(&mut self.batch, probe as u32, cpu, pid, ts, payload);
        self.pending += 1;
        if self.pending >= MAX_BATCH {
            self.deliver(self.lost_reported)?;
        }
        Ok(())
    }

    fn flush(&mut self, lost: &[u64]) -> Result<()> {
        self.deliver(lost.iter().sum())
    }

    fn record_stacks(
        &mut self,
        probe: usize,
        cpu: u32,
        pid: i32,
        ts: u64,
        payload: &[u8],
        stacks: &EventStacks<'_>,
    ) -> Result<()> {
        if probe >= self.planned {
            return Ok(());
        }
        if let Some(user) = stacks.user.filter(|_| stacks.tgid > 0) {
            self.note_process(probe, stacks.tgid, user);
        }
        let start = self.batch.byte_len();
        self.plugin.pack(&mut self.batch, probe as u32, cpu, pid, ts, payload);
        self.batch.add_stacks(start, stacks);
        self.pending += 1;
        if self.pending >= MAX_BATCH {
            self.deliver(self.lost_reported)?;
        }
        Ok(())
    }
}

/// Counts nothing, delivers nothing: recording without a plugin.
pub struct NullSink;

impl RecordSink for NullSink {
    fn record(&mut self, _: usize, _: u32, _: i32, _: u64, _: &[u8]) -> Result<()> {
        Ok(())
    }

    fn flush(&mut self, _: &[u64]) -> Result<()> {
        Ok(())
    }
}

/// Hands every record and every round's end to each of its sinks in turn (a recording taken
/// while a plugin runs; a plugin and a trace file at once).
pub struct Tee<'s>(pub Vec<&'s mut dyn RecordSink>);

impl RecordSink for Tee<'_> {
    fn record(&mut self, probe: usize, cpu: u32, pid: i32, ts: u64, payload: &[u8]) -> Result<()> {
        for s in &mut self.0 {
            s.record(probe, cpu, pid, ts, payload)?;
        }
        Ok(())
    }

    fn flush(&mut self, lost: &[u64]) -> Result<()> {
        for s in &mut self.0 {
            s.flush(lost)?;
        }
        Ok(())
    }

    fn record_stacks(
        &mut self,
        probe: usize,
        cpu: u32,
        pid: i32,
        ts: u64,
        payload: &[u8],
        stacks: &EventStacks<'_>,
    ) -> Result<()> {
        for s in &mut self.0 {
            s.record_stacks(probe, cpu, pid, ts, payload, stacks)?;
        }
        Ok(())
    }
}
