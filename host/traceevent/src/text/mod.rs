//! Text out of trace data, in two dialects over one back end.
//!
//! - Front ends: [`Dialect::Kernel`] reproduces the kernel's `trace` file ([`kernel`]),
//!   [`Dialect::LibTraceEvent`] what `trace-cmd report` prints (`libtraceevent`). Their
//!   parsers and evaluators really differ. [`Printer`] is an event compiled by one of them.
//! - Back end, shared: the output sink (`sink`: a `Vec<u8>` of UTF-8), printf conversions
//!   (`printf`) and integers (`number`), addresses and byte strings (`address`), bitmaps
//!   (`bitmap`), raw-field values (`raw`), the token reader (`tokens`), and
//!   [`ShortText`] for pieces appended over and over.
//! - [`report`]: the lines of `trace-cmd report`.
//! - [`stack`]: call-stack records (`kernel_stack`, `user_stack`) in both dialects, and their
//!   frames.

pub(crate) mod address;
pub(crate) mod bitmap;
pub mod kernel;
pub(crate) mod libtraceevent;
pub(crate) mod memo;
pub(crate) mod number;
pub(crate) mod printf;
pub(crate) mod raw;
pub mod report;
mod short;
pub(crate) mod sink;
pub mod stack;
pub(crate) mod tokens;

pub use short::ShortText;

use crate::endian::Endian;
use crate::error::Error;
use crate::format::EventFormat;
use crate::symbols::Symbols;
use kernel::KernelText;
use libtraceevent::EventText;

/// Whose text to reproduce where the kernel and libtraceevent/trace-cmd differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// The kernel's own `trace` file (with the `hash-ptr` option off): `%p` as zero-padded
    /// hex, cpumasks as hex bitmaps, syscall and probe events as the kernel's code prints them.
    #[default]
    Kernel,
    /// libtraceevent 1.7.1 with its default plugins, i.e. `trace-cmd report`: its print-fmt
    /// parser (operator quirks included), unsigned 64-bit evaluation, glibc `printf`, kallsyms
    /// and printk_formats lookups, and the sched_switch, hrtimer, futex, kmem and tlb plugins.
    LibTraceEvent,
}

/// What evaluation needs besides the record: the traced kernel's long size and byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrintContext<'a> {
    /// The kernel's `long` (and pointer) size in bytes.
    pub long_size: u8,
    /// Byte order of the data.
    pub endian: Endian,
    /// Whose text to reproduce.
    pub dialect: Dialect,
    /// kallsyms / printk_formats tables for `%pS` and string pointers, if loaded.
    pub symbols: Option<&'a Symbols>,
}

impl Default for PrintContext<'_> {
    fn default() -> Self {
        PrintContext { long_size: 8, endian: Endian::native(), dialect: Dialect::Kernel, symbols: None }
    }
}

/// An event's print fmt compiled for one dialect. Build it once per event format (compiling
/// allocates); printing a record with it allocates nothing but the sink's growth.
#[derive(Debug)]
pub struct Printer(Compiled);

#[derive(Debug)]
enum Compiled {
    Kernel(KernelText),
    LibTraceEvent(Box<EventText>),
}

impl Printer {
    /// Compiles `format`'s print fmt for `ctx.dialect`, with `ctx`'s long size and, for
    /// [`Dialect::LibTraceEvent`], its symbols (names in the print fmt that are not numbers
    /// resolve through kallsyms when the event is compiled, as libtraceevent does).
    pub fn compile(format: &EventFormat, ctx: &PrintContext) -> Printer {
        Printer(match ctx.dialect {
            Dialect::Kernel => Compiled::Kernel(KernelText::compile(format)),
            Dialect::LibTraceEvent => {
                Compiled::LibTraceEvent(Box::new(EventText::compile(format, ctx.long_size, ctx.symbols)))
            }
        })
    }

    /// The dialect it prints.
    pub fn dialect(&self) -> Dialect {
        match self.0 {
            Compiled::Kernel(_) => Dialect::Kernel,
            Compiled::LibTraceEvent(_) => Dialect::LibTraceEvent,
        }
    }

    /// Why the print fmt did not compile ([`Dialect::Kernel`]: its records print as raw
    /// fields); `None` if it did, and always in [`Dialect::LibTraceEvent`], which prints
    /// `[FAILED TO PARSE]` lines instead.
    pub fn error(&self) -> Option<&Error> {
        match &self.0 {
            Compiled::Kernel(k) => k.program().as_ref().err(),
            Compiled::LibTraceEvent(_) => None,
        }
    }

    /// Appends the info text of a record of `format` (the format it was compiled from) to
    /// `out`. Never fails.
    #[inline]
    pub fn print(&self, format: &EventFormat, data: &[u8], ctx: &PrintContext, out: &mut Vec<u8>) {
        match &self.0 {
            Compiled::Kernel(k) => k.print(format, data, ctx, out),
            Compiled::LibTraceEvent(l) => l.print(data, ctx, out),
        }
    }

    /// The libtraceevent form, if that is the dialect.
    pub(crate) fn libtraceevent(&self) -> Option<&EventText> {
        match &self.0 {
            Compiled::LibTraceEvent(l) => Some(l),
            Compiled::Kernel(_) => None,
        }
    }
}

/// Runs `print` on `out`'s bytes, so that text printed into the byte sink lands in a
/// `String` without a copy. The sink holds UTF-8 by construction; were it ever not to, the
/// text is kept with the bad bytes replaced rather than lost.
pub(crate) fn append_to_string(out: &mut String, print: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::mem::take(out).into_bytes();
    print(&mut bytes);
    *out = String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
}
