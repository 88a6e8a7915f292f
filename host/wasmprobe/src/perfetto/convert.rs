//! `wasmprobe convert FILE.dat -o FILE.pftrace`: a trace.dat (v6 or v7, ours or trace-cmd's)
//! as a Perfetto trace, streamed: one pass over the records, memory bounded by the CPUs'
//! bundles and the threads named.

use std::io::BufWriter;
use std::path::Path;

use anyhow::{Context, Result};
use traceevent::{Dialect, MissedEvents, TraceDat};

use super::file::PendingFile;
use super::writer::{Machine, TraceWriter, Written};

/// What a conversion did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Converted {
    /// What the trace holds.
    pub written: Written,
    /// Buffers (instances) of the file left out: only the first is converted.
    pub buffers_left_out: usize,
}

/// Converts the trace.dat `input` to the Perfetto trace `output`. The output appears only
/// when complete: on any error nothing is left at `output` (an existing file stays as it was).
pub fn convert(input: &Path, output: &Path) -> Result<Converted> {
    let f = std::fs::File::open(input).with_context(|| format!("cannot open {}", input.display()))?;
    let dat = TraceDat::open(f).with_context(|| format!("{} is not a trace.dat we can read", input.display()))?;
    // The registry `trace-cmd report` would use: saved command lines, plus the comms its sched
    // plugin learns from sched_switch and sched_wakeup records (`note_record` below).
    let mut formats =
        dat.event_formats(Dialect::LibTraceEvent).with_context(|| format!("reading {}", input.display()))?;
    let machine = Machine {
        uname: dat
            .meta
            .options
            .iter()
            .find(|(id, _)| *id == traceevent::dat::option::UNAME)
            .map(|(_, d)| String::from_utf8_lossy(d).trim_end_matches('\0').to_string()),
        cpus: dat.meta.cpu_count,
        page_size: dat.meta.page_size,
    };
    let out = PendingFile::create(output).with_context(|| format!("cannot create {}", output.display()))?;
    let mut w = TraceWriter::new(BufWriter::with_capacity(1 << 20, out), dat.meta.endian, &machine)
        .with_context(|| format!("writing {}", output.display()))?;
    let long_size = formats.long_size();
    for f in formats.iter() {
        w.add_format(f, long_size);
    }
    let write_err = |e: std::io::Error| anyhow::Error::new(e).context(format!("writing {}", output.display()));
    if !dat.meta.buffers.is_empty() {
        let mut records = dat.records(0).with_context(|| format!("reading {}", input.display()))?;
        while let Some(rec) = records.next_record() {
            let rec = rec.with_context(|| format!("reading {}", input.display()))?;
            if rec.missed_events != MissedEvents::None {
                w.lost(rec.cpu).map_err(write_err)?;
            }
            w.record(rec.cpu, rec.ts, rec.data).map_err(write_err)?;
            formats.note_record(rec.data);
        }
    }
    w.name_threads(|pid| match formats.comm(pid) {
        "<...>" | "<idle>" => None,
        c => Some(c.to_string()),
    });
    let (out, written) = w.finish().map_err(write_err)?;
    let out = out.into_inner().map_err(|e| write_err(e.into_error()))?;
    out.commit().with_context(|| format!("cannot create {}", output.display()))?;
    Ok(Converted { written, buffers_left_out: dat.meta.buffers.len().saturating_sub(1) })
}
