//! A print fmt's format string split the way the kernel's `vsnprintf` reads it: literal text
//! (`%%` as `%`) and conversions (`d i u x X o c s`, and `p` with the letters of its
//! extension), each taking its `*` arguments and then its value.

use super::print_error;
use crate::error::Result;
use crate::text::printf::Conversion;

/// One conversion: how printf reads it and, for `%p`, its extension letters (`S`, `I6c`).
#[derive(Debug, Clone)]
pub(super) struct Spec {
    pub(super) conversion: Conversion,
    pub(super) ext: String,
}

/// A piece of the format string.
#[derive(Debug, Clone)]
pub(super) enum Seg {
    /// Literal text.
    Lit(String),
    /// A conversion.
    Conv(Spec),
}

/// The pieces of `fmt` and the number of arguments they take; an error for a conversion the
/// kernel's `vsnprintf` does not have or a format that ends inside one.
pub(super) fn parse_format(fmt: &str) -> Result<(Vec<Seg>, usize)> {
    let b = fmt.as_bytes();
    let mut segs = Vec::new();
    let mut lit = String::new();
    let mut nargs = 0;
    let mut i = 0;
    let mut lit_start = 0;
    while i < b.len() {
        if b[i] != b'%' {
            i += 1;
            continue;
        }
        lit.push_str(&fmt[lit_start..i]);
        if i + 1 >= b.len() {
            lit.push('%');
            i += 1;
            lit_start = i;
            break;
        }
        if b[i + 1] == b'%' {
            lit.push('%');
            i += 2;
            lit_start = i;
            continue;
        }
        let Some((conversion, end)) = Conversion::parse(b, i) else {
            return print_error("format string ends inside a conversion");
        };
        i = end;
        let mut ext = String::new();
        match conversion.letter {
            b'd' | b'i' | b'u' | b'x' | b'X' | b'o' | b'c' | b's' => {}
            b'p' => {
                let s = i;
                while i < b.len() && b[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                ext.push_str(&fmt[s..i]);
            }
            c => return print_error(format!("unsupported conversion %{}", c as char)),
        }
        nargs += conversion.stars() + 1;
        if !lit.is_empty() {
            segs.push(Seg::Lit(core::mem::take(&mut lit)));
        }
        segs.push(Seg::Conv(Spec { conversion, ext }));
        lit_start = i;
    }
    lit.push_str(&fmt[lit_start.min(fmt.len())..]);
    if !lit.is_empty() {
        segs.push(Seg::Lit(lit));
    }
    Ok((segs, nargs))
}
