//! `wasmprobe report FILE`: a trace.dat printed the way `trace-cmd report` prints it, line
//! for line. The lines are `traceevent`'s ([`traceevent::Report`]); this is the file and the
//! output around them.

use std::io::Write;

use anyhow::{Context, Result};
use traceevent::{Report, TraceDat};

pub use traceevent::{LineFormatter, TimeFormat};

/// How much text [`report`] gathers before writing it: a `BufWriter` of this size passes
/// chunks this large through instead of copying them.
pub const OUT_CHUNK: usize = 1 << 16;

/// `wasmprobe report FILE`: the report on stdout. A closed pipe (`| head`) is not an error.
pub fn to_stdout(path: &std::path::Path) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    match report(path, &mut out).map(drop).and_then(|()| Ok(out.flush()?)) {
        Err(e) if is_broken_pipe(&e) => Ok(()),
        r => r,
    }
}

/// Whether `e` comes from writing to a pipe whose reader has gone.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

/// Prints every record of the file's first buffer to `w`. Returns the number of records.
pub fn report(path: &std::path::Path, w: &mut dyn Write) -> Result<u64> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let dat =
        TraceDat::open_deferred(file).with_context(|| format!("{} is not a trace.dat we can read", path.display()))?;
    let mut report = Report::new(&dat)?;
    let mut buf = Vec::with_capacity(OUT_CHUNK + 4096);
    let mut n = 0;
    loop {
        buf.clear();
        n += report.fill(&mut buf, OUT_CHUNK).with_context(|| format!("reading {}", path.display()))?;
        if buf.is_empty() {
            return Ok(n);
        }
        w.write_all(&buf)?;
    }
}
