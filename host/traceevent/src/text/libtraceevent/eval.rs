//! Evaluating a compiled print fmt over one record, libtraceevent's way: every expression
//! as an unsigned 64-bit number, each argument printed through its conversion
//! (`print_str_arg`), `%p` extensions, and the raw fields of a `[FAILED TO PARSE]` line.

use std::io::Write as _;
use std::sync::atomic::Ordering;

use super::expr::{arg_type, ArraySource, Expr, IndexBase};
use super::segments::PrintfSpec;
use super::{FormatField, RecordContext};
use crate::endian::Endian;
use crate::format::FieldFlags;
use crate::text::address;
use crate::text::bitmap::Bitmap;
use crate::text::number;
use crate::text::raw::{self, RawStyle, RawValue};
use crate::text::sink::{c_str, PushStr as _};

/// Zeros read in place of a field that lies outside the record.
const ZERO_BYTES: [u8; 16] = [0; 16];

impl RecordContext<'_> {
    fn num(&self, off: usize, size: usize) -> u64 {
        match size {
            1 | 2 | 4 | 8 => self.endian.read_uint(self.data, off, size).unwrap_or(0),
            _ => 0,
        }
    }

    fn field(&self, i: Option<usize>) -> Option<&FormatField> {
        i.and_then(|i| self.event.fields.get(i))
    }

    /// `dynamic_offset_field`: (offset, length) of a dynamic field's data.
    fn dyn_loc(&self, f: &FormatField) -> (usize, usize) {
        let size = self.data.len();
        if f.offset + f.size > size {
            return (0, 0);
        }
        let val = self.num(f.offset, f.size);
        let o = (val & 0xffff) as usize;
        let l = if f.size == 2 { size.saturating_sub(o) } else { ((val >> 16) & 0xffff) as usize };
        let mut offset = if o > size { 0 } else { o };
        let len = if o + l > size { 0 } else { l };
        if f.has(FieldFlags::REL_LOC) {
            offset += f.offset + f.size;
        }
        (offset, len)
    }

    fn bytes_from(&self, off: usize) -> &[u8] {
        self.data.get(off..).unwrap_or(&[])
    }

    pub(super) fn eval(&self, e: &Expr) -> u64 {
        match e {
            Expr::Null => 0,
            Expr::Atom { text, num } => {
                *num.get_or_init(|| self.symbols.and_then(|s| s.libtraceevent_symbol_address(text)).unwrap_or(0))
            }
            Expr::Field(i) => match self.field(*i) {
                Some(f) if f.offset + f.size <= self.data.len() => self.num(f.offset, f.size),
                _ => 0,
            },
            Expr::Flags { .. } | Expr::Symbol { .. } | Expr::Hex { .. } | Expr::IntArray { .. } => 0,
            Expr::Cast { mask, item } => mask.apply(self.eval(item)),
            Expr::Str(_) | Expr::Bitmask(_) | Expr::Cpumask(_) => 0,
            Expr::Func { name, args } => self.func(name, args, &mut Vec::new()),
            Expr::Index { cast, base, idx } => {
                let right = self.eval(idx);
                let (offset, size) = match base {
                    IndexBase::Dynamic(i) => {
                        let f = &self.event.fields[*i];
                        let (o, _) = self.dyn_loc(f);
                        let size = if f.elem > 0 { f.elem } else { usize::from(self.long) };
                        (o.wrapping_add(right as usize), size)
                    }
                    IndexBase::Field(Some(i)) => {
                        let f = &self.event.fields[*i];
                        (f.offset.wrapping_add((right as usize).wrapping_mul(f.elem)), f.elem)
                    }
                    IndexBase::Field(None) | IndexBase::Other => return 0,
                };
                if offset.checked_add(size).is_none_or(|end| end > self.data.len()) {
                    return 0;
                }
                let v = self.num(offset, size);
                cast.map_or(v, |m| m.apply(v))
            }
            Expr::Cond(c, a, b) => {
                if self.eval(c) != 0 {
                    self.eval(a)
                } else {
                    self.eval(b)
                }
            }
            Expr::Bin { op, l, r } => bin_op(*op, self.eval(l), self.eval(r)),
            Expr::DynArrayLen(i) => self.dyn_loc(&self.event.fields[*i]).1 as u64,
            // libtraceevent returns a host pointer to the data here; the offset stands in.
            Expr::DynArray(i) => self.dyn_loc(&self.event.fields[*i]).0 as u64,
        }
    }

    /// A registered print function: prints into `out`, returns its value.
    fn func(&self, name: &str, args: &[Expr], out: &mut Vec<u8>) -> u64 {
        let a = args.first().map_or(0, |a| self.eval(a));
        match name {
            "jiffies_to_msecs" => {
                number::dec_i64(out, a as i64);
                a
            }
            "jbd2_dev_to_name" => {
                let dev = a as u32;
                let _ = write!(out, "{}:{}", (dev >> 20) as i32, (dev & ((1 << 20) - 1)) as i32);
                0
            }
            _ => 0,
        }
    }

    /// `print_str_arg`: an argument printed through a `%s` conversion.
    pub(super) fn print_str(&self, spec: &PrintfSpec, star: Option<i64>, e: &Expr, out: &mut Vec<u8>) {
        match e {
            Expr::Null => {}
            Expr::Atom { text, .. } => spec.write_utf8(out, text, star),
            Expr::Field(i) => {
                let Some(f) = self.field(*i) else {
                    return;
                };
                if !f.has(FieldFlags::ARRAY) && f.size == usize::from(self.long) {
                    let addr = self.num(f.offset, f.size);
                    match self.symbols.and_then(|s| s.libtraceevent_printk(addr)) {
                        Some(s) => out.push_str(s),
                        None => {
                            number::hex(out, addr);
                        }
                    }
                    return;
                }
                let len = if f.size != 0 { f.size } else { self.data.len().saturating_sub(f.offset) };
                let end = (f.offset + len).min(self.data.len());
                let b = self.data.get(f.offset..end).unwrap_or(&[]);
                spec.write_str(out, c_str(b), star);
            }
            Expr::Flags { val, delim, list } => {
                let mut v = self.eval(val);
                let mut printed = false;
                for (fval, s) in list {
                    if v == 0 && *fval < 0 {
                        spec.write_utf8(out, s, star);
                        break;
                    }
                    let fv = *fval as u64;
                    if *fval > 0 && v & fv == fv {
                        if printed {
                            if let Some(d) = delim {
                                out.push_str(d);
                            }
                        }
                        spec.write_utf8(out, s, star);
                        printed = true;
                        v &= !fv;
                    }
                }
                if v != 0 {
                    if printed {
                        if let Some(d) = delim {
                            out.push_str(d);
                        }
                    }
                    number::hex_0x(out, v);
                }
            }
            Expr::Symbol { val, list } => {
                let v = self.eval(val) as i64;
                match list.iter().find(|(f, _)| *f == v) {
                    Some((_, s)) => spec.write_str(out, s.as_bytes(), star),
                    None => {
                        number::hex_0x(out, v as u64);
                    }
                }
            }
            Expr::Hex { src, size, concat } => {
                let Some(start) = self.src_offset(src) else {
                    return;
                };
                let n = self.eval(size) as u32 as usize;
                let b = self.bytes_from(start);
                for (i, x) in b.iter().take(n).enumerate() {
                    if i > 0 && !concat {
                        out.push(b' ');
                    }
                    number::hex_zero(out, u64::from(*x), 2);
                }
            }
            Expr::IntArray { src, count, el } => {
                let Some(mut at) = self.src_offset(src) else {
                    return;
                };
                let n = self.eval(count) as u32;
                let el = self.eval(el) as i32;
                for i in 0..n {
                    if i > 0 {
                        out.push(b' ');
                    }
                    let step = match el {
                        1 | 2 | 4 | 8 => {
                            number::dec_u64(out, self.num(at, el as usize));
                            el as usize
                        }
                        _ => {
                            let _ = write!(out, "BAD SIZE:{el} 0x{:x}", self.data.get(at).copied().unwrap_or(0));
                            1
                        }
                    };
                    at += step;
                    if at > self.data.len() + 8 {
                        break;
                    }
                }
            }
            Expr::Str(i) => {
                let Some(f) = self.field(*i) else {
                    return;
                };
                let (off, len) = self.dyn_loc(f);
                if len == 0 {
                    return;
                }
                spec.write_str(out, c_str(self.bytes_from(off)), star);
            }
            Expr::Bitmask(i) | Expr::Cpumask(i) => {
                let Some(f) = self.field(*i) else {
                    return;
                };
                let (off, len) = self.dyn_loc(f);
                let end = (off + len).min(self.data.len());
                let b = self.data.get(off..end).unwrap_or(&[]);
                let mut s = Vec::new();
                // libtraceevent reads the bitmap as one number (see [`Bitmap`]).
                let bitmap = Bitmap::new(b, self.endian, 0);
                if matches!(e, Expr::Cpumask(_)) {
                    bitmap.write_list(&mut s, bitmap.len());
                } else {
                    bitmap.write_hex(&mut s, bitmap.len());
                }
                spec.write_str(out, &s, star);
            }
            Expr::Cond(c, a, b) => {
                let branch = if self.eval(c) != 0 { a } else { b };
                self.print_str(spec, star, branch, out);
            }
            Expr::Func { name, args } => {
                self.func(name, args, out);
            }
            Expr::Cast { .. } | Expr::Bin { .. } | Expr::Index { .. } | Expr::DynArray(_) | Expr::DynArrayLen(_) => {}
        }
    }

    fn src_offset(&self, src: &ArraySource) -> Option<usize> {
        match src {
            ArraySource::Dynamic(i) => Some(self.dyn_loc(&self.event.fields[*i]).0),
            ArraySource::Field(Some(i)) => Some(self.event.fields[*i].offset),
            ArraySource::Field(None) | ArraySource::Other => None,
        }
    }

    /// The bytes of field argument `e` when it is `size` bytes long; otherwise libtraceevent's
    /// complaint (`ARG TYPE NOT FIELD BUT ...`, or `invalid`) is printed and `None` returned.
    fn sized_field_arg(&self, e: &Expr, size: usize, invalid: &str, out: &mut Vec<u8>) -> Option<&[u8]> {
        let f = match self.field_arg(e) {
            Ok(Some(f)) => f,
            Ok(None) => return None,
            Err(other) => {
                let _ = write!(out, "ARG TYPE NOT FIELD BUT {}", arg_type(other));
                return None;
            }
        };
        if f.size != size {
            out.extend_from_slice(invalid.as_bytes());
            return None;
        }
        Some(self.data.get(f.offset..f.offset + size).unwrap_or(&ZERO_BYTES[..size]))
    }

    /// The field an argument names, looking through casts (`%pM` and friends), or the
    /// argument that is not a field.
    fn field_arg<'e>(&self, mut e: &'e Expr) -> Result<Option<&FormatField>, &'e Expr> {
        while let Expr::Cast { item, .. } = e {
            e = item;
        }
        match e {
            Expr::Field(i) => Ok(self.field(*i)),
            other => Err(other),
        }
    }

    pub(super) fn print_pointer(&self, ext: &str, plen: i64, e: &Expr, out: &mut Vec<u8>) {
        let x = ext.as_bytes();
        let at = |i: usize| x.get(i).copied().unwrap_or(0);
        if let Expr::Func { name, args } = e {
            if matches!(at(0), b'M' | b'm' | b'I' | b'i' | b'U' | b'h') {
                self.func(name, args, out);
                return;
            }
        }
        match at(0) {
            b'F' | b'f' | b'S' | b's' => {
                let val = self.eval(e);
                match self.symbols.and_then(|s| s.libtraceevent_function(val)) {
                    Some((name, start)) => {
                        out.push_str(name);
                        if matches!(at(0), b'F' | b'S') {
                            out.push(b'+');
                            number::hex_0x(out, val.wrapping_sub(start));
                        }
                    }
                    None => {
                        number::hex_0x(out, val);
                    }
                }
            }
            b'M' | b'm' => {
                let Some(b) = self.sized_field_arg(e, 6, "INVALIDMAC", out) else { return };
                let sep = if at(0) == b'm' {
                    ""
                } else if at(1) == b'F' {
                    "-"
                } else {
                    ":"
                };
                address::mac(out, b.try_into().unwrap_or(&[0; 6]), sep, at(1) == b'R');
            }
            b'I' | b'i' => self.print_ip(x, e, out),
            b'U' => {
                let Some(b) = self.sized_field_arg(e, 16, "INVALIDUUID", out) else { return };
                let (upper, guid) = (matches!(at(1), b'L' | b'B'), matches!(at(1), b'L' | b'l'));
                address::uuid(out, b.try_into().unwrap_or(&[0; 16]), upper, guid);
            }
            b'h' => {
                let delim = match at(1) {
                    b'C' => ":",
                    b'D' => "-",
                    b'N' => "",
                    _ => " ",
                };
                let Expr::DynArray(i) = e else {
                    let _ = write!(out, "ARG TYPE NOT FIELD BUT {}", arg_type(e));
                    return;
                };
                let (off, len) = self.dyn_loc(&self.event.fields[*i]);
                let n = (len as i64).min(plen).max(0) as usize;
                let b = self.bytes_from(off);
                match b.get(..n) {
                    Some(shown) => address::hex_bytes(out, shown, delim),
                    // Past the record: libtraceevent's reads there give zeros here.
                    None => address::hex_bytes(out, &[b, &vec![0; n - b.len()]].concat(), delim),
                }
            }
            _ => {
                let v = self.eval(e);
                if v == 0 {
                    out.push_str("(nil)");
                } else {
                    number::hex_0x(out, v);
                }
            }
        }
    }

    fn print_ip(&self, x: &[u8], e: &Expr, out: &mut Vec<u8>) {
        let at = |i: usize| x.get(i).copied().unwrap_or(0);
        let i = at(0);
        match at(1) {
            b'4' => {
                let reverse = match at(2) {
                    b'h' => self.endian == Endian::Little,
                    b'l' => true,
                    _ => false,
                };
                if let Some(b) = self.sized_field_arg(e, 4, "INVALIDIPv4", out) {
                    ipv4(out, b, i, reverse);
                }
            }
            b'6' => {
                if let Some(b) = self.sized_field_arg(e, 16, "INVALIDIPv6", out) {
                    ipv6(out, b, i, i == b'I' && at(2) == b'c');
                }
            }
            b'S' => {
                let mut k = 2;
                let (mut have_p, mut have_c) = (false, false);
                if i == b'I' {
                    if at(k) == b'p' {
                        have_p = true;
                        k += 1;
                    }
                    if at(k) == b'c' {
                        have_c = true;
                        k += 1;
                    }
                }
                let reverse = match at(k) {
                    b'h' => self.endian == Endian::Little,
                    b'l' => true,
                    _ => false,
                };
                let (off, len) = match self.field_arg(e) {
                    Ok(Some(f)) => (f.offset, f.size),
                    Err(Expr::DynArray(d)) => self.dyn_loc(&self.event.fields[*d]),
                    Err(o) => {
                        let _ = write!(out, "ARG NOT FIELD NOR DYNAMIC ARRAY BUT TYPE {}", arg_type(o));
                        return;
                    }
                    Ok(None) => return,
                };
                let sa = self.bytes_from(off);
                let family = self.endian.read_u16(sa, 0).unwrap_or(0);
                let port = sa.get(2..4).map_or(0, |p| u16::from_be_bytes([p[0], p[1]]));
                if family == 2 {
                    if len < 16 {
                        out.push_str("INVALIDIPv4");
                        return;
                    }
                    ipv4(out, sa.get(4..8).unwrap_or(&[0; 4]), i, reverse);
                    if have_p {
                        let _ = write!(out, ":{port}");
                    }
                } else if family == 10 {
                    if len < 28 {
                        out.push_str("INVALIDIPv6");
                        return;
                    }
                    if have_p {
                        out.push(b'[');
                    }
                    ipv6(out, sa.get(8..24).unwrap_or(&[0; 16]), i, have_c);
                    if have_p {
                        let _ = write!(out, "]:{port}");
                    }
                }
            }
            _ => {}
        }
    }

    /// `print_field_raw`: one field of a `[FAILED TO PARSE]` line.
    pub(super) fn print_field_raw(&self, f: &FormatField, out: &mut Vec<u8>) {
        let value = if f.has(FieldFlags::ARRAY) {
            let (off, len) = if f.has(FieldFlags::DYNAMIC) { self.dyn_loc(f) } else { (f.offset, f.size) };
            let bytes = self.data.get(off..(off + len).min(self.data.len())).unwrap_or(&[]);
            let string = f.has(FieldFlags::STRING) && !f.not_string.load(Ordering::Relaxed);
            RawValue::Array { bytes, string_from: self.bytes_from(off), string }
        } else {
            RawValue::Number { value: self.num(f.offset, f.size), size: f.size, flags: f.flags }
        };
        if raw::write_value(out, value, self.long, RawStyle::LibTraceEvent) {
            f.not_string.store(true, Ordering::Relaxed);
        }
    }
}

/// A binary operator of a lowered expression (its one or two bytes) on two values,
/// libtraceevent's way: unsigned 64-bit, division by zero 0, unknown operators 0.
pub(super) fn bin_op(op: [u8; 2], x: u64, y: u64) -> u64 {
    match (op[0], op[1]) {
        (b'!', 0) => u64::from(y == 0),
        (b'!', b'=') => u64::from(x != y),
        (b'~', _) => !y,
        (b'|', 0) => x | y,
        (b'|', _) => u64::from(x != 0 || y != 0),
        (b'&', 0) => x & y,
        (b'&', _) => u64::from(x != 0 && y != 0),
        (b'<', 0) => u64::from(x < y),
        (b'<', b'<') => x.wrapping_shl(y as u32),
        (b'<', b'=') => u64::from(x <= y),
        (b'>', 0) => u64::from(x > y),
        (b'>', b'>') => x.wrapping_shr(y as u32),
        (b'>', b'=') => u64::from(x >= y),
        (b'=', b'=') => u64::from(x == y),
        (b'-', _) => x.wrapping_sub(y),
        (b'+', _) => x.wrapping_add(y),
        (b'/', _) => x.checked_div(y).unwrap_or(0),
        (b'%', _) => x.checked_rem(y).unwrap_or(0),
        (b'*', _) => x.wrapping_mul(y),
        _ => 0,
    }
}

/// `%pI4`-style bytes: reversed for `h` on little-endian data or `l`, three digits a part
/// for `%pi4`.
fn ipv4(out: &mut Vec<u8>, b: &[u8], letter: u8, reverse: bool) {
    let a = [b[0], b[1], b[2], b[3]];
    let a = if reverse { [a[3], a[2], a[1], a[0]] } else { a };
    address::ipv4(out, a, letter == b'i');
}

/// `%pI6` (colons), `%pi6` (none) or, `compressed`, `%pI6c`.
fn ipv6(out: &mut Vec<u8>, b: &[u8], letter: u8, compressed: bool) {
    let a: &[u8; 16] = b.try_into().unwrap_or(&[0; 16]);
    if compressed {
        address::ipv6_compressed(out, a);
    } else {
        address::ipv6(out, a, letter == b'I');
    }
}
