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
    /// Processes whose user stacks were delivered (the symbolizer hears of each once).
    seen: wasmprobe_abi::fxhash::FxHashSet<i32>,
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
        }
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
        if stacks.user.is_some() && stacks.tgid > 0 && self.seen.insert(stacks.tgid) {
            self.plugin.process_seen(stacks.tgid);
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
