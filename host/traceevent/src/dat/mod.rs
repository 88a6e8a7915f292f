//! trace-cmd's `trace.dat`, versions 6 and 7 (Documentation/trace-cmd/trace-cmd.dat.v{6,7}.5.txt).
//!
//! Both start with `17 08 44 "tracing" VERSION\0`, an endianness byte, the user-space long
//! size and the page size. Version 6 then holds, in order: `header_page\0` and `header_event\0`
//! blocks, ftrace formats, event formats by system, kallsyms, printk formats, saved cmdlines,
//! the CPU count, `options  \0` with options up to id 0, and `flyrecord\0` with a per-CPU
//! (offset, size) table of raw ring-buffer pages. Version 7 names a compression (`none`,
//! `zstd`, `zlib`) and then an offset chain of OPTIONS sections; the metadata lives in sections
//! the options point at (ids 16–21, same inner encoding as version 6), and a BUFFER option
//! (id 3) gives each CPU's data, compressed in chunks when the section is.
//!
//! Metadata is read whole (a few MB with kallsyms). Trace data is never read whole: each CPU
//! is streamed a window (or a compressed chunk) at a time, so memory stays bounded by
//! CPUs × window whatever the file size.
//!
//! `read` holds the reader ([`TraceDat`]); `write` the writer ([`write_dat`]), for what
//! wasmprobe records.

mod read;
mod write;

use crate::endian::Endian;
use crate::error::Error;

pub use read::{DatRecord, DatRecords, TraceDat};
pub use write::{write_dat, CpuPages};

/// Positioned reads from a trace file (a `File`, or bytes in memory for tests).
pub trait ReadAt {
    /// Reads up to `buf.len()` bytes at `offset`; fewer only at the end of the input.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize>;
}

impl ReadAt for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let start = (offset as usize).min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

impl ReadAt for Vec<u8> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        self.as_slice().read_at(buf, offset)
    }
}

impl ReadAt for std::fs::File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match std::os::unix::fs::FileExt::read_at(self, &mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }
}

/// Small reads of a [`ReadAt`] served from a block read ahead: the metadata of a trace.dat is
/// read field by field (a u16, a u32, a name), and a v7 file's compressed chunks (a few KiB
/// each, behind two u32s) one after another: a system call each without it.
struct ReadAhead<'a, R: ReadAt + ?Sized> {
    src: &'a R,
    /// What is held: see [`Held`].
    block: std::cell::RefCell<Held>,
    /// Bytes read ahead at once; reads of more than a quarter of it go straight to the source.
    size: usize,
}

/// A [`ReadAhead`]'s block, kept between uses: (file offset of the block, how many of its
/// bytes are valid, the block).
type Held = (u64, usize, Vec<u8>);

/// [`ReadAhead`]'s block for metadata.
const READ_AHEAD: usize = 4096;

impl<'a, R: ReadAt + ?Sized> ReadAhead<'a, R> {
    fn new(src: &'a R) -> Self {
        Self::resume(src, READ_AHEAD, Held::default())
    }

    /// A read-ahead of `size`-byte blocks over `src` that starts with `held` (what
    /// [`ReadAhead::into_held`] gave back, or nothing).
    fn resume(src: &'a R, size: usize, held: Held) -> Self {
        ReadAhead { src, block: std::cell::RefCell::new(held), size }
    }

    /// The block, to resume with.
    fn into_held(self) -> Held {
        self.block.into_inner()
    }
}

impl<R: ReadAt + ?Sized> ReadAt for ReadAhead<'_, R> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        if buf.len() > self.size / 4 {
            return self.src.read_at(buf, offset);
        }
        let mut block = self.block.borrow_mut();
        let (at, valid, data) = &mut *block;
        // Checked: a crafted file can name offsets near u64::MAX.
        let held = offset
            .checked_sub(*at)
            .and_then(|d| d.checked_add(buf.len() as u64))
            .is_some_and(|end| end <= *valid as u64);
        if !held {
            data.resize(self.size, 0);
            // On an error nothing is held.
            *valid = 0;
            *valid = self.src.read_at(data, offset)?;
            *at = offset;
        }
        // Fewer bytes than asked for only at the end of the input, as from the source.
        let start = (offset - *at) as usize;
        let n = buf.len().min(*valid - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::TraceDat(msg.into())
}

/// Option ids (`enum tracecmd_option`).
pub mod option {
    /// End of an options list (v7: with the offset of the next OPTIONS section).
    pub const DONE: u16 = 0;
    /// Per-CPU `stats` text.
    pub const CPUSTAT: u16 = 2;
    /// An instance's trace data.
    pub const BUFFER: u16 = 3;
    /// The `trace_clock` file.
    pub const TRACECLOCK: u16 = 4;
    /// uname of the traced machine.
    pub const UNAME: u16 = 5;
    /// Number of CPUs.
    pub const CPUCOUNT: u16 = 8;
    /// Version of the recording tool.
    pub const VERSION: u16 = 9;
    /// v7: offset of the HEADER INFO section.
    pub const HEADER_INFO: u16 = 16;
    /// v7: offset of the FTRACE EVENT FORMATS section.
    pub const FTRACE_EVENTS: u16 = 17;
    /// v7: offset of the EVENT FORMATS section.
    pub const EVENT_FORMATS: u16 = 18;
    /// v7: offset of the KALLSYMS section.
    pub const KALLSYMS: u16 = 19;
    /// v7: offset of the TRACE_PRINTK section.
    pub const PRINTK: u16 = 20;
    /// v7: offset of the SAVED COMMAND LINES section.
    pub const CMDLINES: u16 = 21;
}

/// Where one CPU's trace data is in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuData {
    /// The CPU.
    pub cpu: u32,
    /// File offset of its data.
    pub offset: u64,
    /// Bytes in the file (compressed size when compressed).
    pub size: u64,
}

/// The trace data of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buffer {
    /// Instance name (`""` for the top instance).
    pub name: String,
    /// Trace clock of its timestamps.
    pub clock: String,
    /// Sub-buffer size of its pages.
    pub page_size: u32,
    /// Its CPUs' data.
    pub cpus: Vec<CpuData>,
    /// Whether the data is compressed in chunks.
    pub compressed: bool,
}

/// Compression of a v7 file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Uncompressed.
    #[default]
    None,
    /// zstd frames.
    Zstd,
    /// zlib streams.
    Zlib,
}

/// Everything a trace.dat says about the traced machine and its events.
#[derive(Debug, Clone)]
pub struct DatMeta {
    /// File version, 6 or 7.
    pub version: u32,
    /// Byte order of the traced machine.
    pub endian: Endian,
    /// User-space long size of the traced machine.
    pub long_size: u8,
    /// Page size of the traced machine.
    pub page_size: u32,
    /// Compression (v7); `None` for v6.
    pub compression: Compression,
    /// `events/header_page` text.
    pub header_page: String,
    /// `events/header_event` text.
    pub header_event: String,
    /// `events/ftrace/*/format` texts.
    pub ftrace_formats: Vec<String>,
    /// `(system, events/<system>/<event>/format text)`.
    pub event_formats: Vec<(String, String)>,
    /// `/proc/kallsyms` text.
    pub kallsyms: String,
    /// `printk_formats` text.
    pub printk_formats: String,
    /// `saved_cmdlines` text.
    pub cmdlines: String,
    /// CPU count of the traced machine.
    pub cpu_count: u32,
    /// Every option as `(id, data)`, in file order.
    pub options: Vec<(u16, Vec<u8>)>,
    /// The trace data, in file order (the top instance's is named `""`).
    pub buffers: Vec<Buffer>,
}

/// The clock in brackets of a `trace_clock` text (`[local] global ...` → `local`).
fn selected_clock(data: &[u8]) -> String {
    let t = String::from_utf8_lossy(data);
    t.split_whitespace()
        .find_map(|w| w.strip_prefix('[').and_then(|w| w.strip_suffix(']')))
        .unwrap_or_else(|| t.trim_matches(char::from(0)).trim())
        .to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn read_ahead_reads_what_the_source_reads() {
        let src: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let ahead = ReadAhead::new(&src);
        let reads = [(0, 4), (4, 8), (2, 1), (4000, 200), (4090, 10), (4096, 1024), (4096, 1025), (9990, 20)];
        for (offset, len) in reads.into_iter().chain([(10_000, 1), (20_000, 4), (0, 0), (5000, 3)]) {
            let (mut want, mut got) = (vec![0; len], vec![0; len]);
            let n = src.read_at(&mut want, offset).unwrap();
            assert_eq!(ahead.read_at(&mut got, offset).unwrap(), n, "at {offset}, {len} bytes");
            assert_eq!(got[..n], want[..n], "at {offset}, {len} bytes");
        }
        // Offsets near u64::MAX (a crafted file names them), first thing and after a block
        // is held: nothing read, not an overflow.
        for first in [None, Some(100)] {
            let ahead = ReadAhead::new(&src);
            if let Some(at) = first {
                ahead.read_at(&mut [0; 4], at).unwrap();
            }
            for offset in [u64::MAX - 2, u64::MAX, u64::MAX - 4096] {
                assert_eq!(ahead.read_at(&mut [0; 8], offset).unwrap(), 0, "at {offset}");
            }
        }
    }

    #[test]
    fn a_resumed_read_ahead_serves_chunks_in_a_row_as_the_source_does() {
        let src: Vec<u8> = (0..100_000u32).map(|i| (i * 13 % 253) as u8).collect();
        // Chunks as a v7 file lays them out: two u32s, then the data (some larger than a
        // quarter block, some straddling a block's end); the block is kept between chunks.
        let mut held = Held::default();
        let mut at = 0u64;
        for (i, len) in [100usize, 3000, 4000, 5000, 17_000, 10, 4096, 9000, 60_000].into_iter().enumerate() {
            for (offset, n) in [(at, 4), (at + 4, 4), (at + 8, len)] {
                let ahead = ReadAhead::resume(&src, 16 * 1024, std::mem::take(&mut held));
                let (mut want, mut got) = (vec![0; n], vec![0; n]);
                let k = src.read_at(&mut want, offset).unwrap();
                assert_eq!(ahead.read_at(&mut got, offset).unwrap(), k, "chunk {i} at {offset}");
                assert_eq!(got[..k], want[..k], "chunk {i} at {offset}, {n} bytes");
                held = ahead.into_held();
            }
            at += 8 + len as u64;
        }
    }

    /// The `header_page` of a 64-bit kernel with 4 KiB sub-buffers.
    pub(crate) const HEADER_PAGE: &str = "\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n\
        \tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;\n\
        \tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n\
        \tfield: char data;\toffset:16;\tsize:4080;\tsigned:0;\n";

    /// The metadata of a small trace from a 64-bit machine of byte order `endian` with
    /// 4 KiB pages: `event_formats`, `cmdlines`, the `local` clock, nothing else.
    pub(crate) fn meta(endian: Endian, event_formats: Vec<(String, String)>, cmdlines: &str) -> DatMeta {
        DatMeta {
            version: 6,
            endian,
            long_size: 8,
            page_size: 4096,
            compression: Compression::None,
            header_page: HEADER_PAGE.into(),
            header_event: String::new(),
            ftrace_formats: Vec::new(),
            event_formats,
            kallsyms: String::new(),
            printk_formats: String::new(),
            cmdlines: cmdlines.into(),
            cpu_count: 1,
            options: vec![(option::TRACECLOCK, b"[local] global\n\0".to_vec())],
            buffers: Vec::new(),
        }
    }
}
