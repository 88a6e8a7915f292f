//! `wasmprobe report FILE`: a trace.dat printed the way `trace-cmd report` prints it, line
//! for line: `cpus=N`, then per record `COMM-PID [CPU] SECS.USECS: EVENT: INFO`, merged across
//! CPUs by timestamp, with libtraceevent's text for each event (its plugins included, see
//! [`traceevent::Dialect::LibTraceEvent`]), `CPU:N [K EVENTS DROPPED]` before a record that
//! follows lost events, and the comms the sched plugin learns from `sched_switch` records.

use std::fmt::Write as _;
use std::io::Write;

use anyhow::{Context, Result};
use traceevent::{Dialect, EventFormats, MissedEvents, TraceDat};

/// Loads the formats, cmdlines, kallsyms and printk formats of a trace.dat into a registry
/// that prints like libtraceevent. Formats that do not parse are skipped (their events print
/// as unknown).
pub fn formats_of<R: traceevent::ReadAt>(dat: &TraceDat<R>) -> Result<EventFormats> {
    let mut formats = EventFormats::new(dat.page_header()?);
    formats.set_event_header(dat.event_header()?);
    formats.set_dialect(Dialect::LibTraceEvent);
    for f in &dat.meta.ftrace_formats {
        let _ = formats.add_format("ftrace", f);
    }
    for (sys, f) in &dat.meta.event_formats {
        let _ = formats.add_format(sys, f);
    }
    formats.parse_cmdlines(&dat.meta.cmdlines);
    formats.parse_kallsyms(&dat.meta.kallsyms);
    formats.parse_printk_formats(&dat.meta.printk_formats);
    Ok(formats)
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

/// Appends one report line (without newline) for a record to `out`.
pub fn format_line_with(formats: &EventFormats, time: TimeFormat, cpu: u32, ts: u64, data: &[u8], out: &mut String) {
    let start = out.len();
    let Some(ev) = formats.for_record(data) else {
        // libtraceevent prints this for each of the three parts of the line.
        let _ = write!(out, "[UNKNOWN EVENT][UNKNOWN EVENT] (NULL): {:14}[UNKNOWN EVENT]", "");
        return;
    };
    let pid = data.get(4..8).map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    // `%16s-%-5d [%03d]`, by hand: this runs once per record.
    let comm = formats.comm(pid);
    pad(out, 16usize.saturating_sub(comm.len()));
    out.push_str(comm);
    out.push('-');
    let used = push_int(out, i64::from(pid), 0, b' ');
    pad(out, 5usize.saturating_sub(used));
    out.push_str(" [");
    push_int(out, i64::from(cpu), 3, b'0');
    out.push(']');
    match time {
        TimeFormat::Usecs => {
            let usecs = (ts + 500) / 1000;
            out.push(' ');
            push_int(out, (usecs / 1_000_000) as i64, 5, b' ');
            out.push('.');
            push_int(out, (usecs % 1_000_000) as i64, 6, b'0');
            out.push(':');
        }
        TimeFormat::Raw => {
            let p10 = 1_000_000_000_000u64;
            let _ = write!(out, "{:5}.{:012}:", ts / p10, ts % p10);
        }
    }
    let name = ev.name.as_str();
    out.push(' ');
    out.push_str(name);
    out.push_str(": ");
    // Event names are padded to 20 columns.
    pad(out, 20usize.saturating_sub(name.len()));
    ev.print_info(data, &formats.print_context(), out);
    // trace-cmd drops one trailing newline of the line.
    if out.len() > start && out.ends_with('\n') {
        out.pop();
    }
}

const SPACES: &str = "                                ";
const ZEROS: &str = "00000000000000000000";

fn pad(out: &mut String, mut n: usize) {
    while n > 0 {
        let k = n.min(SPACES.len());
        out.push_str(&SPACES[..k]);
        n -= k;
    }
}

/// `v` in decimal, right-aligned to `width` with `fill` (zeros go after a minus sign).
/// Returns the number of characters written.
fn push_int(out: &mut String, v: i64, width: usize, fill: u8) -> usize {
    let mut buf = itoa::Buffer::new();
    let text = buf.format(v);
    let padding = width.saturating_sub(text.len());
    match (fill, text.strip_prefix('-')) {
        (b'0', Some(digits)) => {
            out.push('-');
            out.push_str(&ZEROS[..padding.min(ZEROS.len())]);
            out.push_str(digits);
        }
        (b'0', None) => {
            out.push_str(&ZEROS[..padding.min(ZEROS.len())]);
            out.push_str(text);
        }
        _ => {
            pad(out, padding);
            out.push_str(text);
        }
    }
    text.len().max(width)
}

/// Prints every record of the file's first buffer to `w`. Returns the number of records.
pub fn report(path: &std::path::Path, w: &mut dyn Write) -> Result<u64> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let dat = TraceDat::open(file).with_context(|| format!("{} is not a trace.dat we can read", path.display()))?;
    let mut formats = formats_of(&dat)?;
    let time = TimeFormat::for_clock(dat.meta.buffers.first().map_or("local", |b| b.clock.as_str()));
    writeln!(w, "cpus={}", dat.meta.cpu_count)?;
    let mut records = dat.records(0)?;
    let mut buf = String::with_capacity(1 << 16);
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
        format_line_with(&formats, time, rec.cpu, rec.ts, rec.data, &mut buf);
        buf.push('\n');
        formats.note_record(rec.data);
        n += 1;
        if buf.len() >= (1 << 16) - 4096 {
            w.write_all(buf.as_bytes())?;
            buf.clear();
        }
    }
    w.write_all(buf.as_bytes())?;
    Ok(n)
}
