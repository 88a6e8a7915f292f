//! Events the kernel prints with its own code instead of their print fmt: syscall events
//! and the head of kprobe/uprobe events.

use std::io::Write as _;

use super::conversion::write_symbol;
use super::Program;
use crate::error::Result;
use crate::format::{EventFormat, Field};
use crate::text::sink::{c_str, push_text, PushStr as _};
use crate::text::PrintContext;

/// The kernel's own text for `syscalls:sys_enter_*` / `sys_exit_*` events, which its `trace`
/// file prints with dedicated code instead of the print fmt:
/// `sys_openat(dfd: 0xffffff9c, filename: 0x7f.., flags: 0x80000, mode: 0)` (values below 10
/// in decimal, others in hex) and `sys_openat -> 0x3`. A string the kernel copied from user
/// space (a `__<arg>_val` field, newer kernels) follows its argument in quotes. Returns false
/// (writing nothing) if the event does not have the syscall layout.
pub(super) fn write_syscall(ev: &EventFormat, data: &[u8], ctx: &PrintContext, out: &mut Vec<u8>) -> bool {
    if ev.system != "syscalls" || ev.fields.first().is_none_or(|f| f.name != "__syscall_nr") {
        return false;
    }
    let long = usize::from(ctx.long_size);
    let arg = |f: &Field| ctx.endian.read_uint(data, f.offset, long);
    if let Some(rest) = ev.name.strip_prefix("sys_enter_") {
        let args: Vec<&Field> =
            ev.fields[1..].iter().filter(|f| !f.is_dynamic() && !f.name.starts_with("__")).collect();
        if args.iter().any(|f| f.size != long || arg(f).is_none()) {
            return false;
        }
        let user_str = ev.print_fmt.as_ref().is_some_and(|p| p.args.contains("__get_str(__"));
        let _ = write!(out, "sys_{rest}(");
        for (i, f) in args.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let v = arg(f).unwrap_or(0);
            let _ = if v < 10 { write!(out, "{}: {v}", f.name) } else { write!(out, "{}: 0x{v:x}", f.name) };
            if !user_str {
                continue;
            }
            let val = format!("__{}_val", f.name);
            if let Some(s) = ev.fields.iter().find(|u| u.name == val && u.is_dynamic()) {
                let b = s.bytes(data).unwrap_or(&[]);
                out.push_str(" \"");
                push_text(out, c_str(b));
                out.push(b'"');
            }
        }
        out.push(b')');
        return true;
    }
    if let Some(rest) = ev.name.strip_prefix("sys_exit_") {
        let Some(ret) = ev.field("ret").and_then(|f| ctx.endian.read_uint(data, f.offset, f.size)) else {
            return false;
        };
        let _ = write!(out, "sys_{rest} -> 0x{ret:x}");
        return true;
    }
    false
}

/// The kernel's own header for kprobe/uprobe events (`(0x7f..)`, `(0x.. <- 0x..)` for return
/// probes, kernel addresses as symbols), replacing the print fmt's `(%lx)` /
/// `(%lx <- %lx)`: the kernel prints probes with dedicated code, and for return probes in the
/// opposite order to its print fmt (return address first). The arguments keep the print fmt's
/// text. Returns false (writing nothing) for other events.
pub(super) fn write_probe(
    ev: &EventFormat,
    program: &Result<Program>,
    data: &[u8],
    ctx: &PrintContext,
    out: &mut Vec<u8>,
) -> bool {
    let Some(first) = ev.fields.first() else {
        return false;
    };
    let read = |f: &Field| ctx.endian.read_uint(data, f.offset, f.size);
    let (ip, ret_from) = match first.name.as_str() {
        "__probe_ip" => (read(first), None),
        "__probe_func" => match ev.fields.get(1).filter(|f| f.name == "__probe_ret_ip") {
            Some(r) => (read(r), read(first)),
            None => return false,
        },
        _ => return false,
    };
    let Some(ip) = ip else {
        return false;
    };
    let Ok(program) = program else {
        return false;
    };
    let mut text = Vec::new();
    if program.eval(data, ctx, &mut text).is_err() {
        return false;
    }
    let Some(close) = text.iter().position(|&c| c == b')') else {
        return false;
    };
    let kernel_space = |a: u64| ctx.long_size == 8 && a >= 0xffff_8000_0000_0000;
    let addr = |out: &mut Vec<u8>, a: u64, offset: bool| {
        if !kernel_space(a) {
            let _ = write!(out, "0x{a:x}");
        } else if a == 0 {
            out.push(b'0');
        } else if ctx.symbols.and_then(|s| s.lookup(a)).is_some() {
            write_symbol(out, a, if offset { "S" } else { "s" }, ctx);
        } else {
            let _ = write!(out, "0x{a:08x}");
        }
    };
    out.push(b'(');
    addr(out, ip, true);
    if let Some(func) = ret_from {
        out.push_str(" <- ");
        addr(out, func, false);
    }
    out.extend_from_slice(&text[close..]);
    true
}
