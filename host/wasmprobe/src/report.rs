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
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

/// The `len` bytes of `file` at `offset` (a v6 trace.dat's kallsyms) as text, through a
/// read-only mapping: reading them copies some 5 MB into as many freshly faulted pages,
/// about 2.5 ms of a report that prints symbols (workqueue, timer, kmem events), where a
/// mapping's faults each map 16 pages of the page cache. `None` (then they are read) if
/// the file does not hold them, cannot be mapped, or is not UTF-8.
fn mapped_text(file: &std::fs::File, offset: u64, len: u32) -> Option<traceevent::symbols::KallsymsText> {
    let size = file.metadata().ok()?.len();
    if len == 0 || offset.checked_add(u64::from(len))? > size {
        return None;
    }
    // SAFETY: read-only and private. Its bytes change only if another process rewrites the
    // file meanwhile (see MappedText); a file truncated under it would fault (SIGBUS), as
    // under trace-cmd, which maps trace files too.
    let map = unsafe { memmap2::MmapOptions::new().offset(offset).len(len as usize).map(file) }.ok()?;
    std::str::from_utf8(&map).ok()?;
    Some(traceevent::symbols::KallsymsText::Shared(Box::new(MappedText(map))))
}

/// A mapping whose bytes were checked to be UTF-8 when it was made.
struct MappedText(memmap2::Mmap);

impl AsRef<str> for MappedText {
    fn as_ref(&self) -> &str {
        // SAFETY: checked by `mapped_text`. The mapping is private and read-only to us; only
        // a concurrent rewrite of the file by someone else could change its bytes, and then a
        // name would hold garbage, as a read of a file being rewritten would.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }
}

/// Prints every record of the file's first buffer to `w`. Returns the number of records.
pub fn report(path: &std::path::Path, w: &mut dyn Write) -> Result<u64> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let dat = TraceDat::open_deferred_with(file, mapped_text)
        .with_context(|| format!("{} is not a trace.dat we can read", path.display()))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kallsyms_text_is_mapped_only_where_the_file_holds_it_as_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let text = "ffffffff81000000 T _stext\nffffffff81000100 t foo\t[m]\n";
        let mut bytes = b"header".to_vec();
        bytes.extend_from_slice(text.as_bytes());
        bytes.extend_from_slice(b"\xff\xfe tail");
        std::fs::write(&path, &bytes).unwrap();
        let f = std::fs::File::open(&path).unwrap();
        let len = text.len() as u32;
        let got = mapped_text(&f, 6, len).expect("mapped");
        assert_eq!(got.as_str(), text);
        // Not UTF-8, past the end, empty: read instead (lossily), not mapped.
        assert!(mapped_text(&f, 6, len + 2).is_none());
        assert!(mapped_text(&f, 6, bytes.len() as u32).is_none());
        assert!(mapped_text(&f, u64::MAX - 1, 4).is_none());
        assert!(mapped_text(&f, 0, 0).is_none());
    }
}
