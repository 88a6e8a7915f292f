//! A field's value printed without its print fmt (`name=value`): what the kernel dialect
//! falls back to when a print fmt cannot be evaluated, and what libtraceevent prints after
//! `[FAILED TO PARSE]`. Strings as text when printable, other arrays as
//! `ARRAY[01, 02, ...]`, numbers in decimal or, for pointers and longs, hex.
//!
//! The two dialects locate a field's bytes and classify it their own way (see
//! [`RawValue`]); they also differ in a few rules, named by [`RawStyle`].

use std::io::Write as _;

use super::sink::{c_str, is_print, push_text, PushStr as _};
use crate::endian::{sign_extend, truncate};
use crate::format::FieldFlags;

/// Whose raw-field rules to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawStyle {
    /// A string is printable when all of it is graphic or space and only NULs follow it;
    /// signed longs print in hex; pointers are cut to the kernel's long.
    Kernel,
    /// libtraceevent's `print_field_raw`: printable means `isprint` or `isspace` up to the
    /// first NUL, and the string runs from the field to the first NUL of the record; signed
    /// 8-byte values print in decimal, 2- and 1-byte ones padded to 2 and 1 columns.
    LibTraceEvent,
}

/// A field's value as a front end found it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RawValue<'d> {
    /// An array or string field: its bytes, where a string starts (libtraceevent reads a
    /// string past the field's own bytes), and whether the field is a string.
    Array { bytes: &'d [u8], string_from: &'d [u8], string: bool },
    /// A number, zero-extended, with the field's size and flags (`POINTER`, `SIGNED`,
    /// `LONG` are read).
    Number { value: u64, size: usize, flags: FieldFlags },
    /// Nothing to print (the field lies outside the record).
    Missing,
}

/// Appends `value` as raw-field text; returns whether an array was printed as
/// `ARRAY[..]` (libtraceevent then stops treating the field as a string).
pub(crate) fn write_value(out: &mut Vec<u8>, value: RawValue<'_>, long_size: u8, style: RawStyle) -> bool {
    match value {
        RawValue::Missing => false,
        RawValue::Array { bytes, string_from, string } => {
            if string && printable(bytes, style) {
                push_text(out, c_str(string_from));
                return false;
            }
            out.push_str("ARRAY[");
            super::address::hex_bytes(out, bytes, ", ");
            out.push(b']');
            true
        }
        RawValue::Number { value: v, size, flags } => {
            let long = flags.contains(FieldFlags::LONG);
            let kernel = style == RawStyle::Kernel;
            let _ = if flags.contains(FieldFlags::POINTER) {
                let v = if kernel { truncate(v, long_size.into()) } else { v };
                write!(out, "0x{v:x}")
            } else if flags.contains(FieldFlags::SIGNED) {
                match (size, long, style) {
                    (8, true, RawStyle::Kernel) => write!(out, "0x{v:x}"),
                    (4, true, _) => write!(out, "0x{:x}", v as u32),
                    (2, _, RawStyle::LibTraceEvent) => write!(out, "{:2}", v as i16),
                    (1, _, RawStyle::LibTraceEvent) => write!(out, "{:1}", v as i8),
                    _ => write!(out, "{}", sign_extend(v, size)),
                }
            } else if long {
                write!(out, "0x{v:x}")
            } else {
                write!(out, "{v}")
            };
            false
        }
    }
}

/// Whether a string field's bytes print as text.
fn printable(bytes: &[u8], style: RawStyle) -> bool {
    match style {
        RawStyle::Kernel => {
            let s = c_str(bytes);
            s.iter().all(|&c| c.is_ascii_graphic() || c == b' ') && bytes[s.len()..].iter().all(|&c| c == 0)
        }
        RawStyle::LibTraceEvent => {
            bytes.iter().take_while(|&&c| c != 0).all(|&c| is_print(c) || matches!(c, b' ' | b'\t'..=b'\r'))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: RawValue<'_>, style: RawStyle) -> String {
        let mut out = Vec::new();
        write_value(&mut out, v, 8, style);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_dialects_differ_where_documented() {
        let num = |value, size, flags| RawValue::Number { value, size, flags };
        let signed_long = FieldFlags::SIGNED | FieldFlags::LONG;
        assert_eq!(text(num(u64::MAX, 8, signed_long), RawStyle::Kernel), "0xffffffffffffffff");
        assert_eq!(text(num(u64::MAX, 8, signed_long), RawStyle::LibTraceEvent), "-1");
        assert_eq!(text(num(0xffff_fffe, 4, signed_long), RawStyle::LibTraceEvent), "0xfffffffe");
        assert_eq!(text(num(5, 2, FieldFlags::SIGNED), RawStyle::LibTraceEvent), " 5");
        assert_eq!(text(num(5, 2, FieldFlags::SIGNED), RawStyle::Kernel), "5");
        assert_eq!(text(num(16, 8, FieldFlags::LONG), RawStyle::Kernel), "0x10");
        let array = |bytes, string| RawValue::Array { bytes, string_from: bytes, string };
        assert_eq!(text(array(b"cat\0\0", true), RawStyle::Kernel), "cat");
        assert_eq!(text(array(b"cat\0x", true), RawStyle::Kernel), "ARRAY[63, 61, 74, 00, 78]");
        assert_eq!(text(array(b"cat\0x", true), RawStyle::LibTraceEvent), "cat");
        assert_eq!(text(array(&[1, 2], false), RawStyle::LibTraceEvent), "ARRAY[01, 02]");
        assert_eq!(text(RawValue::Missing, RawStyle::Kernel), "");
    }
}
