//! `wasmprobe report FILE`: a trace.dat printed the way `trace-cmd report` prints it, line
//! for line: `cpus=N`, then per record `COMM-PID [CPU] SECS.USECS: EVENT: INFO`, merged across
//! CPUs by timestamp, with libtraceevent's text for each event (its plugins included, see
//! [`traceevent::Dialect::LibTraceEvent`]), `CPU:N [K EVENTS DROPPED]` before a record that
//! follows lost events, and the comms the sched plugin learns from `sched_switch` records.

use std::io::Write;

use anyhow::{Context, Result};
use traceevent::{Dialect, EventFormat, EventFormats, MissedEvents, ShortText, TraceDat, DEC_PAIRS};

/// The registry of a trace.dat, printing like libtraceevent (as `trace-cmd report` does).
pub fn formats_of<R: traceevent::ReadAt>(dat: &TraceDat<R>) -> Result<EventFormats> {
    Ok(dat.event_formats(Dialect::LibTraceEvent)?)
}

/// How `trace-cmd report` prints timestamps: microseconds for the clocks it knows to count
/// nanoseconds, the raw count otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeFormat {
    /// ` SECS.USECS:` (rounded to the microsecond).
    Usecs,
    /// `SSSSS.NNNNNNNNNNNN:`: trace-cmd's `%12d` on a raw counter.
    Raw,
}

impl TimeFormat {
    /// The format `trace-cmd report` uses for a trace clock.
    pub fn for_clock(clock: &str) -> Self {
        let usecs = matches!(clock, "local" | "global" | "uptime" | "perf" | "tai" | "x86-tsc-nsec" | "tsc2nsec")
            || clock.starts_with("mono");
        if usecs {
            TimeFormat::Usecs
        } else {
            TimeFormat::Raw
        }
    }
}

/// Appends one report line (without newline) for a record to `out`, timestamps in
/// microseconds.
pub fn format_line(formats: &EventFormats, cpu: u32, ts: u64, data: &[u8], out: &mut String) {
    format_line_with(formats, TimeFormat::Usecs, cpu, ts, data, out)
}

/// Appends one report line (without newline) for a record to `out`. For many lines,
/// [`LineFormatter`] is faster.
pub fn format_line_with(formats: &EventFormats, time: TimeFormat, cpu: u32, ts: u64, data: &[u8], out: &mut String) {
    let mut line = Vec::new();
    LineFormatter::new(time).line(formats, formats.for_record(data), cpu, ts, data, &mut line);
    out.push_str(&String::from_utf8_lossy(&line));
}

/// Formats report lines into bytes, keeping the pieces that repeat from record to record:
/// each CPU's `COMM-PID [CPU]` (until the pid or the known comms change), the seconds of the
/// timestamp and each event's padded name.
#[derive(Debug)]
pub struct LineFormatter {
    time: TimeFormat,
    /// By CPU: the pid and [`EventFormats::comm_generation`] its prefix was made for.
    prefixes: Vec<(i32, u64, Snippet)>,
    /// The whole seconds of the last timestamp and their text, ` %5lu.`.
    secs: (u64, Snippet),
    /// By event id: ` NAME: ` padded to 20 columns (empty until first needed).
    labels: Vec<Snippet>,
    scratch: Vec<u8>,
}

/// A piece of text appended to nearly every line (see [`ShortText`]).
type Snippet = ShortText<48>;

impl LineFormatter {
    /// A formatter printing timestamps as `time` says.
    pub fn new(time: TimeFormat) -> Self {
        LineFormatter {
            time,
            prefixes: Vec::new(),
            secs: (u64::MAX, Snippet::default()),
            labels: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Appends one report line (without newline) for a record whose format is `ev` (what
    /// `formats.for_record(data)` gives) to `out`.
    pub fn line(
        &mut self,
        formats: &EventFormats,
        ev: Option<&EventFormat>,
        cpu: u32,
        ts: u64,
        data: &[u8],
        out: &mut Vec<u8>,
    ) {
        let start = out.len();
        let Some(ev) = ev else {
            // libtraceevent prints this for each of the three parts of the line.
            let _ = write!(out, "[UNKNOWN EVENT][UNKNOWN EVENT] (NULL): {:14}[UNKNOWN EVENT]", "");
            return;
        };
        let pid = data.get(4..8).map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
        self.append_prefix(formats, cpu, pid, out);
        match self.time {
            TimeFormat::Usecs => {
                let usecs = (ts + 500) / 1000;
                let secs = usecs / 1_000_000;
                if self.secs.0 != secs {
                    self.scratch.clear();
                    let _ = write!(self.scratch, " {secs:5}.");
                    self.secs.1.set(&self.scratch);
                    self.secs.0 = secs;
                }
                self.secs.1.append_to(out);
                let frac = (usecs % 1_000_000) as usize;
                let (hi, mid, lo) = (frac / 10_000, frac / 100 % 100, frac % 100);
                out.extend_from_slice(&[
                    DEC_PAIRS[2 * hi],
                    DEC_PAIRS[2 * hi + 1],
                    DEC_PAIRS[2 * mid],
                    DEC_PAIRS[2 * mid + 1],
                    DEC_PAIRS[2 * lo],
                    DEC_PAIRS[2 * lo + 1],
                    b':',
                ]);
            }
            TimeFormat::Raw => {
                let p10 = 1_000_000_000_000u64;
                let _ = write!(out, "{:5}.{:012}:", ts / p10, ts % p10);
            }
        }
        self.append_label(ev, out);
        ev.print_info_bytes(data, &formats.print_context(), out);
        // trace-cmd drops one trailing newline of the line.
        if out.len() > start && out.ends_with(b"\n") {
            out.pop();
        }
    }

    /// Appends `%16s-%-5d [%03d]` for this CPU's record of `pid`.
    fn append_prefix(&mut self, formats: &EventFormats, cpu: u32, pid: i32, out: &mut Vec<u8>) {
        let cpu_index = cpu as usize;
        if self.prefixes.len() <= cpu_index {
            self.prefixes.resize(cpu_index + 1, (0, u64::MAX, Snippet::default()));
        }
        let generation = formats.comm_generation();
        let (cached_pid, cached_generation, text) = &mut self.prefixes[cpu_index];
        if (*cached_pid, *cached_generation) != (pid, generation) {
            let comm = formats.comm(pid);
            let t = &mut self.scratch;
            t.clear();
            t.resize(16usize.saturating_sub(comm.len()), b' ');
            t.extend_from_slice(comm.as_bytes());
            let _ = write!(t, "-{pid:<5} [{cpu:03}]");
            text.set(t);
            (*cached_pid, *cached_generation) = (pid, generation);
        }
        text.append_to(out);
    }

    /// Appends ` NAME: ` padded to 20 columns.
    fn append_label(&mut self, ev: &EventFormat, out: &mut Vec<u8>) {
        let id = ev.id as usize;
        if self.labels.len() <= id {
            self.labels.resize(id + 1, Snippet::default());
        }
        let label = &mut self.labels[id];
        if label.is_empty() {
            self.scratch.clear();
            let _ = write!(self.scratch, " {}: {:2$}", ev.name, "", 20usize.saturating_sub(ev.name.len()));
            label.set(&self.scratch);
        }
        label.append_to(out);
    }
}

/// How much text [`report`] gathers before writing it.
pub const OUT_CHUNK: usize = 1 << 16;

/// Prints every record of the file's first buffer to `w`. Returns the number of records.
pub fn report(path: &std::path::Path, w: &mut dyn Write) -> Result<u64> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let dat = TraceDat::open(file).with_context(|| format!("{} is not a trace.dat we can read", path.display()))?;
    let mut formats = formats_of(&dat)?;
    let time = TimeFormat::for_clock(dat.meta.buffers.first().map_or("local", |b| b.clock.as_str()));
    writeln!(w, "cpus={}", dat.meta.cpu_count)?;
    let mut records = dat.records(0)?;
    let mut lines = LineFormatter::new(time);
    // Handed to `w` in pieces of at least 64 KiB: a `BufWriter` of that size passes them
    // through instead of copying them.
    let mut buf = Vec::with_capacity(OUT_CHUNK + 4096);
    let mut n = 0;
    while let Some(rec) = records.next_record() {
        let rec = rec.with_context(|| format!("reading {}", path.display()))?;
        // libtraceevent sees lost events only when the page's first record opens the page.
        if rec.page_offset == 0 {
            match rec.missed_events {
                MissedEvents::None => {}
                MissedEvents::Unknown => {
                    let _ = writeln!(buf, "CPU:{} [EVENTS DROPPED]", rec.cpu);
                }
                MissedEvents::Count(k) => {
                    let _ = writeln!(buf, "CPU:{} [{k} EVENTS DROPPED]", rec.cpu);
                }
            }
        }
        let ev = formats.for_record(rec.data);
        lines.line(&formats, ev, rec.cpu, rec.ts, rec.data, &mut buf);
        buf.push(b'\n');
        if ev.is_some_and(EventFormat::registers_comms) {
            formats.note_record(rec.data);
        }
        n += 1;
        if buf.len() >= OUT_CHUNK {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    w.write_all(&buf)?;
    Ok(n)
}
