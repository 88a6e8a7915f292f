//! `wasmprobe report FILE`: a trace.dat printed the way `trace-cmd report` prints it, line
//! for line: `cpus=N`, then per record `COMM-PID [CPU] SECS.USECS: EVENT: INFO`, merged across
//! CPUs by timestamp, with libtraceevent's text for each event.

use std::io::Write;

use anyhow::{Context, Result};
use traceevent::{Dialect, EventFormats, TraceDat};

/// Loads the formats and cmdlines of a trace.dat into a registry that prints like
/// libtraceevent. Formats that do not parse are skipped (their events print as unknown).
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
    Ok(formats)
}

/// Appends one report line (without newline) for a record to `out`.
pub fn format_line(formats: &EventFormats, cpu: u32, ts: u64, data: &[u8], out: &mut String) {
    use std::fmt::Write as _;
    let pid = data.get(4..8).map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    let comm = formats.comm(pid);
    // libtraceevent rounds the nanosecond timestamp to microseconds.
    let usecs = (ts + 500) / 1000;
    let name = formats.for_record(data).map(|f| f.name.as_str()).unwrap_or("");
    let _ = write!(out, "{comm:>16}-{pid:<5} [{cpu:03}] {:5}.{:06}: {name}:", usecs / 1_000_000, usecs % 1_000_000);
    // The event name and its colon take at least 21 columns, then one space.
    let pad = 20usize.saturating_sub(name.len()) + 1;
    out.extend(std::iter::repeat_n(' ', pad));
    formats.print_info(data, out);
}

/// Prints every record of the file's first buffer to `w`. Returns the number of records.
pub fn report(path: &std::path::Path, w: &mut dyn Write) -> Result<u64> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let dat = TraceDat::open(file).with_context(|| format!("{} is not a trace.dat we can read", path.display()))?;
    let formats = formats_of(&dat)?;
    writeln!(w, "cpus={}", dat.meta.cpu_count)?;
    let mut records = dat.records(0)?;
    let mut line = String::with_capacity(256);
    let mut n = 0;
    while let Some(rec) = records.next_record() {
        let rec = rec.with_context(|| format!("reading {}", path.display()))?;
        line.clear();
        format_line(&formats, rec.cpu, rec.ts, rec.data, &mut line);
        line.push('\n');
        w.write_all(line.as_bytes())?;
        n += 1;
    }
    Ok(n)
}
