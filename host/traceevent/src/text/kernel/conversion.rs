//! One conversion of a kernel print fmt turned into text, as the kernel's `vsnprintf` does:
//! integers ([`Style::Kernel`]), `%c`, `%s` of record bytes, kernel strings or helper text,
//! and `%p` with its extensions (symbols, MAC, IPv4/IPv6, sockaddr, UUID, hex, bitmaps).

use std::io::Write as _;

use super::eval::{as_int, eval, Val};
use super::parse::Expr;
use super::print_error;
use super::segments::Spec;
use crate::endian::truncate;
use crate::error::{Error, Result};
use crate::text::bitmap::Bitmap;
use crate::text::number::{write_int, write_plain_int, Style, PLAIN_WIDTH};
use crate::text::printf::{Count, Flags, Length};
use crate::text::sink::{c_str, pad_since, push_text, PushStr as _};
use crate::text::{address, PrintContext};

/// Appends conversion `spec` of value `v`, with its flags, width and precision resolved.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_conversion(
    spec: &Spec,
    flags: Flags,
    width: usize,
    precision: Option<usize>,
    v: Val<'_>,
    data: &[u8],
    ctx: &PrintContext,
    out: &mut Vec<u8>,
) -> Result<()> {
    let c = &spec.conversion;
    let size = match c.length {
        Length::Char => 1,
        Length::Short => 2,
        Length::Int => 4,
        Length::Long => usize::from(ctx.long_size),
        Length::LongLong => 8,
    };
    match c.letter {
        b'd' | b'i' | b'u' | b'x' | b'X' | b'o' => {
            let v = as_int(v)?;
            let plain = !(flags.left || flags.alternate || flags.plus || flags.space)
                && precision.is_none()
                && width <= PLAIN_WIDTH
                && c.precision == Count::Absent;
            if plain {
                write_plain_int(out, v, size, c.letter, flags.zero, width);
            } else {
                write_int(out, v, size, c.letter, flags, width, precision, Style::Kernel);
            }
        }
        b'c' => {
            let start = out.len();
            let mut buf = [0; 4];
            out.push_str(char::from(as_int(v)? as u8).encode_utf8(&mut buf));
            pad_since(out, start, flags.left, width, None);
        }
        b's' => {
            let start = out.len();
            match v {
                Val::Bytes(b) => push_text(out, c_str(b)),
                Val::Text(e) => write_helper(e, data, ctx, out)?,
                Val::Int(0, _) => out.push_str("(null)"),
                Val::Int(p, _) => match ctx.symbols.and_then(|s| s.string(p)) {
                    Some(s) => out.push_str(s),
                    None => return print_error("%s of a pointer into kernel memory"),
                },
            }
            pad_since(out, start, flags.left, width, precision);
        }
        b'p' => {
            let start = out.len();
            write_pointer(&spec.ext, width, v, data, ctx, out)?;
            // For %*pb and %*ph the width is a count, not padding.
            if !spec.ext.starts_with(['b', 'h']) {
                pad_since(out, start, flags.left, width, None);
            }
        }
        _ => return print_error("unsupported conversion"),
    }
    Ok(())
}

/// `%p` and its extensions; `width` is the byte or bit count of `%*ph` and `%*pb`.
fn write_pointer(
    ext: &str,
    width: usize,
    v: Val<'_>,
    data: &[u8],
    ctx: &PrintContext,
    out: &mut Vec<u8>,
) -> Result<()> {
    let b = match v {
        Val::Int(p, _) => {
            let p = truncate(p, ctx.long_size.into());
            if ext.is_empty() {
                // `%p` with the `hash-ptr` option off prints as `%px` does.
                let _ = write!(out, "{:0w$x}", p, w = usize::from(ctx.long_size) * 2);
            } else if ext.starts_with(['S', 's', 'F', 'f', 'B']) {
                write_symbol(out, p, ext, ctx);
            } else {
                let _ = write!(out, "0x{p:x}");
            }
            return Ok(());
        }
        Val::Bytes(b) => b,
        Val::Text(e) => return write_helper(e, data, ctx, out),
    };
    let short = |what: &str| Error::Print(format!("short {what}"));
    let letters = ext.as_bytes();
    match letters.first() {
        Some(b'M' | b'm') => {
            let b = b.get(..6).ok_or_else(|| short("MAC"))?;
            let separator = if letters[0] == b'm' {
                ""
            } else if ext.contains('F') {
                "-"
            } else {
                ":"
            };
            address::mac(out, b.try_into().expect("6 bytes"), separator, ext.contains('R'));
        }
        Some(b'I' | b'i') => {
            let leading_zeros = letters[0] == b'i';
            let rest = &ext[1..];
            if rest.starts_with('4') {
                let a = b.get(..4).ok_or_else(|| short("IPv4"))?;
                address::ipv4(out, [a[0], a[1], a[2], a[3]], leading_zeros);
            } else if rest.starts_with('6') {
                let a = b.get(..16).ok_or_else(|| short("IPv6"))?.try_into().expect("16 bytes");
                write_ipv6(out, a, !leading_zeros, rest.contains('c'));
            } else if rest.starts_with('S') {
                write_sockaddr(out, b, rest, ctx)?;
            } else {
                return print_error(format!("unsupported %p{ext}"));
            }
        }
        Some(b'U') => {
            let b = b.get(..16).ok_or_else(|| short("UUID"))?;
            let upper = ext.contains('B') || ext.contains('L');
            let guid = ext.contains('l') || ext.contains('L');
            address::uuid(out, b.try_into().expect("16 bytes"), upper, guid);
        }
        Some(b'h') => {
            let n = if width > 0 { width.min(64) } else { 1 };
            let separator = match letters.get(1) {
                Some(b'N') => "",
                Some(b'C') => ":",
                Some(b'D') => "-",
                _ => " ",
            };
            address::hex_bytes(out, b.get(..n).unwrap_or(b), separator);
        }
        Some(b'b') => {
            let nbits = if width > 0 { width } else { b.len() * 8 };
            let bitmap = kernel_bitmap(b, ctx);
            if ext.starts_with("bl") {
                bitmap.write_list(out, nbits);
            } else {
                bitmap.write_hex(out, nbits);
            }
        }
        Some(b'S' | b's' | b'F' | b'f' | b'B') | None => {
            // A symbol or plain pointer whose value is an array: its address is unknown.
            return print_error("pointer value of an array");
        }
        _ => return print_error(format!("unsupported %p{ext}")),
    }
    Ok(())
}

/// A kernel bitmap: `unsigned long` words in the data's byte order.
fn kernel_bitmap<'b>(b: &'b [u8], ctx: &PrintContext) -> Bitmap<'b> {
    Bitmap::new(b, ctx.endian, usize::from(ctx.long_size).max(1))
}

/// `%pI6` (`colons`), `%pi6` (none) or `%pI6c` (`compressed`).
fn write_ipv6(out: &mut Vec<u8>, a: &[u8; 16], colons: bool, compressed: bool) {
    if colons && compressed {
        address::ipv6_compressed(out, a);
    } else {
        address::ipv6(out, a, colons);
    }
}

/// `%pS`-family output: `name+0xoff/0xsize [module]` (`%ps`: name only), `0x<hex>` if unknown.
pub(super) fn write_symbol(out: &mut Vec<u8>, p: u64, ext: &str, ctx: &PrintContext) {
    let backtrace = ext.starts_with('B');
    let lookup_at = if backtrace { p.wrapping_sub(1) } else { p };
    let Some(sym) = ctx.symbols.and_then(|s| s.lookup(lookup_at)) else {
        let _ = write!(out, "0x{p:x}");
        return;
    };
    out.push_str(sym.name);
    if !ext.starts_with(['s', 'f']) {
        let off = sym.offset + u64::from(backtrace);
        let _ = write!(out, "+0x{off:x}/0x{:x}", sym.size);
    }
    if let Some(m) = sym.module {
        let _ = write!(out, " [{m}]");
    }
}

/// `%pIS`: a `struct sockaddr_in` or `sockaddr_in6` (`p`: with the port, `c`: compressed).
fn write_sockaddr(out: &mut Vec<u8>, b: &[u8], spec: &str, ctx: &PrintContext) -> Result<()> {
    let family = ctx.endian.read_u16(b, 0).unwrap_or(0);
    let port = b.get(2..4).map(|p| u16::from_be_bytes([p[0], p[1]]));
    let with_port = spec.contains('p');
    match (family, port) {
        (2, Some(port)) => {
            let a = b.get(4..8).ok_or_else(|| Error::Print("short sockaddr_in".into()))?;
            address::ipv4(out, [a[0], a[1], a[2], a[3]], false);
            if with_port {
                let _ = write!(out, ":{port}");
            }
        }
        (10, Some(port)) => {
            let a = b.get(8..24).ok_or_else(|| Error::Print("short sockaddr_in6".into()))?;
            if with_port {
                out.push(b'[');
            }
            write_ipv6(out, a.try_into().expect("16 bytes"), true, spec.contains('c'));
            if with_port {
                let _ = write!(out, "]:{port}");
            }
        }
        _ => out.push_str("(einval)"),
    }
    Ok(())
}

/// The text of a helper that prints (`__print_flags`, `__print_symbolic`, `__print_hex`,
/// `__print_array`, `__get_bitmask`/`__get_cpumask`).
pub(super) fn write_helper(e: &Expr, data: &[u8], ctx: &PrintContext, out: &mut Vec<u8>) -> Result<()> {
    let long = usize::from(ctx.long_size);
    match e {
        Expr::Flags(val, delim, table) => {
            let mut flags = truncate(as_int(eval(val, data, ctx)?)?, long);
            let mut first = true;
            for (mask, name) in table {
                if flags == 0 {
                    break;
                }
                if flags & mask != *mask {
                    continue;
                }
                flags &= !mask;
                if !first {
                    push_text(out, delim);
                }
                first = false;
                push_text(out, name);
            }
            if flags != 0 {
                if !first {
                    push_text(out, delim);
                }
                let _ = write!(out, "0x{flags:x}");
            }
        }
        Expr::Symbolic(val, table) => {
            let v = truncate(as_int(eval(val, data, ctx)?)?, long);
            match table.iter().find(|(k, _)| truncate(*k, long) == v) {
                Some((_, name)) if !name.is_empty() => push_text(out, name),
                _ => {
                    let _ = write!(out, "0x{v:x}");
                }
            }
        }
        Expr::Hex(buf, len, concat) => {
            let b = bytes_of(eval(buf, data, ctx)?)?;
            let n = (as_int(eval(len, data, ctx)?)? as usize).min(b.len());
            address::hex_bytes(out, &b[..n], if *concat { "" } else { " " });
        }
        Expr::Array(buf, count, size) => {
            let b = bytes_of(eval(buf, data, ctx)?)?;
            let count = as_int(eval(count, data, ctx)?)? as usize;
            let size = as_int(eval(size, data, ctx)?)? as usize;
            out.push(b'{');
            for i in 0..count {
                if i > 0 {
                    out.push(b',');
                }
                let off = i.saturating_mul(size);
                match ctx.endian.read_uint(b, off, size) {
                    Some(x) => {
                        let _ = write!(out, "0x{x:x}");
                    }
                    None if !matches!(size, 1 | 2 | 4 | 8) => {
                        let _ = write!(out, "BAD SIZE:{size} 0x{:x}", b.get(off).copied().unwrap_or(0));
                    }
                    None => return print_error("__print_array past the end of its buffer"),
                }
            }
            out.push(b'}');
        }
        Expr::Bitmask(buf) => {
            let b = bytes_of(eval(buf, data, ctx)?)?;
            kernel_bitmap(b, ctx).write_hex(out, b.len() * 8);
        }
        _ => return print_error("not a text helper"),
    }
    Ok(())
}

/// The bytes of an array value.
fn bytes_of(v: Val<'_>) -> Result<&[u8]> {
    match v {
        Val::Bytes(b) => Ok(b),
        _ => print_error("expected an array"),
    }
}
