//! [`crate::Dialect::Kernel`]: the text the kernel's `trace` file shows after `name: `.
//!
//! A print fmt is a printf format string plus C argument expressions over the record.
//! [`Program::compile`] parses both once per event format (`segments`, `lexer`,
//! `parse`); [`Program::eval`] runs them over a record payload (`eval`, `conversion`)
//! and appends the text to the sink, allocating nothing else.
//!
//! Numbers follow the kernel's `vsnprintf`, not glibc's (`%#x` of 0 is `0x0`, a zero flag
//! survives a precision). Plain `%p` prints like the kernel with the `hash-ptr` trace option
//! off (`%px`: zero-padded hex, no `0x`); symbol extensions (`%pS`, `%ps`, ...) resolve
//! through kallsyms when it is loaded, else print `0x<hex>`. Events the kernel prints with
//! its own code rather than their print fmt are printed its way (`events`): syscall events
//! (`sys_openat(dfd: 0xffffff9c, ...)`, `sys_openat -> 0x3`) and the `(ip)` / `(ret <- func)`
//! head of kprobe and uprobe events. What the kernel knows that a format file does not (enum
//! constants it left as names, `vmemmap_base`, statement expressions) cannot be reproduced.
//!
//! Anything that cannot be compiled or evaluated falls back to printing each non-common
//! field as `name=value` (`crate::text::raw`): events are never dropped and never shown as
//! `[FAILED TO PARSE]`.

mod conversion;
mod eval;
mod events;
mod lexer;
mod parse;
mod segments;
#[cfg(test)]
mod tests;

use crate::error::{Error, Result};
use crate::format::{EventFormat, Field, FieldFlags, PrintFmt};
use crate::text::raw::{self, RawStyle, RawValue};
use crate::text::sink::PushStr as _;
use crate::text::stack::StackKind;
use crate::text::PrintContext;
use eval::{as_int, eval};
use parse::{Expr, Parser};
use segments::{parse_format, Seg};

/// An error of the kernel dialect's compiler or evaluator, with what went wrong.
fn print_error<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::Print(msg.into()))
}

/// A print fmt compiled against its event's fields; evaluate with [`Program::eval`].
#[derive(Debug, Clone)]
pub struct Program {
    segs: Vec<Seg>,
    args: Vec<Expr>,
    unresolved: Vec<String>,
}

impl Program {
    /// Parses the format string and argument expressions of `pf` and resolves `REC->field`
    /// against `event`. Errors on anything it cannot evaluate faithfully.
    pub fn compile(pf: &PrintFmt, event: &EventFormat) -> Result<Self> {
        let (segs, nargs) = parse_format(&pf.format)?;
        let mut p = Parser { toks: lexer::lex(&pf.args)?, pos: 0, event, unresolved: Vec::new() };
        let args: Vec<Expr> = p.args()?.into_iter().map(parse::fold).collect();
        if args.len() < nargs {
            return print_error(format!("format needs {nargs} arguments, print fmt has {}", args.len()));
        }
        // Field names given to helpers (`__get_str(comm)`) are not unresolved constants.
        let mut unresolved = Vec::new();
        for n in p.unresolved {
            if event.field(&n).is_none() && !unresolved.contains(&n) {
                unresolved.push(n);
            }
        }
        Ok(Program { segs, args, unresolved })
    }

    /// Names in the print fmt that are not numbers: enum constants the kernel did not
    /// replace (its own output resolves them; ours cannot, e.g. `HRTIMER_MODE_ABS`).
    pub fn unresolved_symbols(&self) -> &[String] {
        &self.unresolved
    }

    /// Appends the text for record payload `data` to `out`. On error `out` may hold partial
    /// text; `KernelText::print` cuts it and falls back to raw fields.
    pub fn eval(&self, data: &[u8], ctx: &PrintContext, out: &mut Vec<u8>) -> Result<()> {
        let mut args = self.args.iter();
        let mut next = || args.next().ok_or_else(|| Error::Print("too few arguments".into()));
        for seg in &self.segs {
            match seg {
                Seg::Lit(s) => out.push_str(s),
                Seg::Conv(spec) => {
                    let c = &spec.conversion;
                    let mut star = || -> Result<Option<i64>> { Ok(Some(as_int(eval(next()?, data, ctx)?)? as i64)) };
                    let width_arg = if c.width == crate::text::printf::Count::Star { star()? } else { None };
                    let precision_arg = if c.precision == crate::text::printf::Count::Star { star()? } else { None };
                    let (left, width, precision) = c.resolve(width_arg, precision_arg);
                    let flags = crate::text::printf::Flags { left, ..c.flags };
                    let v = eval(next()?, data, ctx)?;
                    conversion::write_conversion(spec, flags, width, precision, v, data, ctx, out)?;
                }
            }
        }
        Ok(())
    }
}

/// An event compiled for the kernel dialect: its program, or why its print fmt does not
/// compile.
#[derive(Debug, Clone)]
pub(crate) struct KernelText {
    program: Result<Program>,
    /// For a call-stack record: its kind and where its `caller` array starts (the kernel
    /// prints these with its own code, every frame the record holds).
    stack: Option<(StackKind, usize)>,
}

impl KernelText {
    /// Compiles `format`'s print fmt (an error if it has none).
    pub(crate) fn compile(format: &EventFormat) -> KernelText {
        let program = match &format.print_fmt {
            Some(pf) => Program::compile(pf, format),
            None => Err(Error::Print("no print fmt".into())),
        };
        let stack = StackKind::of(&format.system, &format.name).zip(format.field("caller").map(|f| f.offset));
        KernelText { program, stack }
    }

    /// The compiled program, or why there is none.
    pub(crate) fn program(&self) -> &Result<Program> {
        &self.program
    }

    /// Appends the info text of a record of `format` to `out`: the kernel's own text for
    /// stack records (see [`crate::text::stack`]), syscall and probe events, else the print
    /// fmt's, else the raw fields. Never fails.
    pub(crate) fn print(&self, format: &EventFormat, data: &[u8], ctx: &PrintContext, out: &mut Vec<u8>) {
        if let Some((kind, offset)) = self.stack {
            crate::text::stack::write_kernel(kind, data, offset, ctx, out);
            return;
        }
        if events::write_syscall(format, data, ctx, out) || events::write_probe(format, &self.program, data, ctx, out) {
            return;
        }
        let start = out.len();
        if let Ok(p) = &self.program {
            if p.eval(data, ctx, out).is_ok() {
                return;
            }
            out.truncate(start);
        }
        write_raw_fields(format, data, ctx, out);
    }
}

/// Appends every non-common field as `name=value`, separated by spaces (the fallback for
/// print fmts that cannot be evaluated). Never fails.
fn write_raw_fields(format: &EventFormat, data: &[u8], ctx: &PrintContext, out: &mut Vec<u8>) {
    for (i, f) in format.fields.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.push_str(&f.name);
        out.push(b'=');
        write_raw_field(f, data, ctx, out);
    }
}

/// Appends one field's value as the kernel dialect's raw fields show it.
pub(crate) fn write_raw_field(f: &Field, data: &[u8], ctx: &PrintContext, out: &mut Vec<u8>) {
    let l = f.layout();
    let value = if f.flags.contains(FieldFlags::ARRAY) || f.is_dynamic() || !matches!(f.size, 1 | 2 | 4 | 8) {
        match l.bytes(data) {
            Some(bytes) => RawValue::Array { bytes, string_from: bytes, string: f.is_string() },
            None => RawValue::Missing,
        }
    } else {
        match l.read_u64(data) {
            Some(value) => RawValue::Number { value, size: f.size, flags: f.flags },
            None => RawValue::Missing,
        }
    };
    raw::write_value(out, value, ctx.long_size, RawStyle::Kernel);
}
