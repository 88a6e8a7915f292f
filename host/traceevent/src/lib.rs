//! Pure decoding of Linux trace events: bytes in, records and text out, no syscalls.
//!
//! - [`PageHeader`] / [`EventHeader`]: `events/header_page` and `events/header_event`.
//! - [`SubBuffer`]: one ring-buffer sub-buffer (from `trace_pipe_raw`, the mmapped buffer or a
//!   trace.dat), iterated as [`Record`]s that borrow the page, with lost-event counts.
//! - [`EventFormat`] / [`Field`]: `events/<system>/<event>/format` and zero-copy field access;
//!   [`EventFormats`]: all formats of a trace by id, plus cmdlines and the long size.
//! - [`text`]: an event's text in two dialects, [`Dialect::Kernel`] (the kernel's `trace`
//!   file) and [`Dialect::LibTraceEvent`] (`trace-cmd report`), compiled once per format as a
//!   [`Printer`]; [`Report`], the lines of `trace-cmd report`; [`Symbols`]: kallsyms and
//!   printk_formats for `%pS` and kernel string pointers.
//! - [`TraceDat`]: trace-cmd's trace.dat (v6, v7 with zstd/zlib), streamed per CPU;
//!   [`dat::write_dat`] writes one.
//!
//! Everything works over `&[u8]` with explicit byte order and `long` size; malformed input
//! is an [`Error`], never a panic or an out-of-bounds read.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod dat;
pub mod endian;
pub mod error;
pub mod filter;
pub mod format;
pub mod header;
pub mod subbuf;
mod swar;
pub mod symbols;
pub mod text;

pub use dat::{Buffer, Compression, CpuData, DatMeta, DatRecord, DatRecords, ReadAt, TraceDat};
pub use endian::Endian;
pub use error::{Error, Result};
pub use format::{EventFormat, EventFormats, Field, FieldFlags, FieldKind, FieldLayout, FieldShape, PrintFmt};
pub use header::{EventHeader, PageHeader};
pub use subbuf::{MissedEvents, Record, Records, SubBuffer};
pub use symbols::{SymbolRef, Symbols};
pub use text::kernel::Program;
pub use text::report::{LineFormatter, Report, TimeFormat};
pub use text::stack::{StackFrames, StackKind};
pub use text::{Dialect, PrintContext, Printer, ShortText};

#[cfg(test)]
pub(crate) mod tests {
    /// Every text of `n` consecutive lines of `lines` (taken cyclically from each start, `n`
    /// up to the number of lines), with and without its last newline: what the line readers'
    /// fast paths (kallsyms, `saved_cmdlines`) are checked against their general rules on.
    pub(crate) fn line_mixes(lines: &[&str]) -> Vec<String> {
        let mut texts = Vec::new();
        for n in 0..lines.len() {
            for skip in 0..lines.len() {
                let text: String = lines.iter().cycle().skip(skip).take(n).map(|l| format!("{l}\n")).collect();
                texts.push(text.trim_end_matches('\n').to_string());
                texts.push(text);
            }
        }
        texts
    }
}
