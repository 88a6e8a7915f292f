//! A print fmt's format string split as libtraceevent's `parse_args` splits it: literal text
//! (escapes resolved its way) and conversions bound to arguments, with its rules for what a
//! conversion is (`%c`, `%+d`, `%q` are not: they print as `>c<`, `>+<`, `>q<`) and how many
//! letters a `%p` extension takes.

use super::expr::Load;
use super::parse::Parser;
use crate::text::number::{write_int, write_plain_int, Style, PLAIN_WIDTH};
use crate::text::printf::{Conversion, Count, Flags, Length};
use crate::text::sink::{push_text, spaces};
use crate::text::tokens::TokenKind;

/// Literal text of a print fmt. Most are short (`", "`, `") "`): appended as one fixed-size
/// copy.
pub(super) type Lit = crate::text::ShortText<16>;

/// Moves each short literal into the number after it (`"NR %ld (%lx, %lx"` becomes three
/// numbers with `"NR "`, `" ("` and `", "` before them): fewer pieces to dispatch on per
/// record, and the dispatch is mostly the same one.
pub(super) fn fuse_literals(segs: Vec<Seg>) -> Vec<Seg> {
    let mut out = Vec::with_capacity(segs.len());
    let mut pending: Option<Lit> = None;
    for seg in segs {
        match seg {
            Seg::Lit(lit) if lit.fits() => {
                if let Some(p) = pending.replace(lit) {
                    out.push(Seg::Lit(p));
                }
            }
            Seg::Num { pre: _, spec, cast, arg, len, load } => {
                let pre = pending.take().unwrap_or(Lit::EMPTY);
                out.push(Seg::Num { pre, spec, cast, arg, len, load });
            }
            other => {
                if let Some(p) = pending.take() {
                    out.push(Seg::Lit(p));
                }
                out.push(other);
            }
        }
    }
    out.extend(pending.map(Seg::Lit));
    out
}

/// One piece of the print fmt (libtraceevent's `print_parse`). `arg` is the index of the
/// argument printed; `len`, that of the `*` argument before it, if any.
#[derive(Debug)]
pub(super) enum Seg {
    /// Literal text.
    Lit(Lit),
    /// An integer conversion. `load` is `args[arg]` when that is a plain read. `pre` is the
    /// short literal before the number (see [`fuse_literals`]).
    Num { pre: Lit, spec: PrintfSpec, cast: ArgCast, arg: usize, len: Option<usize>, load: Option<Load> },
    /// `%p` with its extension letters (`S`, `I4`, `M`, ...).
    Ptr { ext: String, arg: usize, len: Option<usize> },
    /// `%s`.
    Str { spec: PrintfSpec, arg: usize, len: Option<usize> },
}

/// The cast libtraceevent applies to an integer argument before glibc's `printf`, from the
/// `h` and `l` letters of its conversion (`%hhd`: to `char`, `%hd`: to `short`, `%d`: to
/// `int`, `%ld`/`%lld`: none), sign-extending the result to 64 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ArgCast {
    /// `hh`: `(char)`.
    Char,
    /// `h`: `(short)`.
    Short,
    /// No length letter: `(int)`.
    Int,
    /// `l`, `ll`, `L`, `z`: the 64-bit value as it is.
    None,
}

impl ArgCast {
    /// From libtraceevent's count of length letters (each `h` counts -1, each `l` +1, `L`
    /// sets it to 2, `z` to 1), taken within -2..=2.
    fn from_count(count: i32) -> ArgCast {
        match count.clamp(-2, 2) {
            -2 => ArgCast::Char,
            -1 => ArgCast::Short,
            0 => ArgCast::Int,
            _ => ArgCast::None,
        }
    }

    /// The value cast, as 64 bits.
    #[inline]
    pub(super) fn apply(self, v: u64) -> u64 {
        match self {
            ArgCast::Char => v as i8 as i64 as u64,
            ArgCast::Short => v as i16 as i64 as u64,
            ArgCast::Int => v as i32 as i64 as u64,
            ArgCast::None => v,
        }
    }
}

/// A `%d`-style or `%s` conversion as libtraceevent hands it to glibc's `printf`.
#[derive(Debug, Clone, Copy)]
pub(super) struct PrintfSpec {
    conversion: Conversion,
    /// Bytes the integer conversion reads (1, 2, 4, 8: glibc on a 64-bit machine).
    size: u8,
    /// No flags but `0`, no precision, no `*`, a width of at most [`PLAIN_WIDTH`]: what
    /// [`write_plain_int`] does quickly.
    plain: bool,
}

impl PrintfSpec {
    /// Reads the conversion `chunk` (from its `%` to its letter).
    pub(super) fn parse(chunk: &[u8]) -> PrintfSpec {
        let (conversion, _) = Conversion::parse(chunk, 0).unwrap_or((
            Conversion {
                flags: Default::default(),
                width: Count::Absent,
                precision: Count::Absent,
                length: Length::Int,
                letter: b'd',
            },
            chunk.len(),
        ));
        let size = match conversion.length {
            Length::Char => 1,
            Length::Short => 2,
            Length::Int => 4,
            Length::Long | Length::LongLong => 8,
        };
        let f = conversion.flags;
        let plain = !(f.left || f.alternate || f.plus || f.space)
            && conversion.stars() == 0
            && conversion.precision == Count::Absent
            && conversion.width.fixed().unwrap_or(0) <= PLAIN_WIDTH;
        PrintfSpec { conversion, size, plain }
    }

    /// Whether to pad on the right, the width and the precision, with the `*` argument (if
    /// any) applied to the width, else to the precision.
    fn resolve(&self, star: Option<i64>) -> (bool, usize, Option<usize>) {
        let c = &self.conversion;
        if c.width == Count::Star {
            c.resolve(star, None)
        } else {
            c.resolve(None, star)
        }
    }

    /// glibc's output for an integer conversion of `v` (already cast by the length letters).
    #[inline]
    pub(super) fn write_int(&self, out: &mut Vec<u8>, v: u64, star: Option<i64>) {
        let c = &self.conversion;
        if self.plain {
            let width = c.width.fixed().unwrap_or(0);
            write_plain_int(out, v, usize::from(self.size), c.letter, c.flags.zero, width);
            return;
        }
        let (left, width, precision) = self.resolve(star);
        let flags = Flags { left, ..c.flags };
        write_int(out, v, usize::from(self.size), c.letter, flags, width, precision, Style::Glibc);
    }

    /// glibc's output for `%s` of a C string: cut to the precision in bytes, padded to the
    /// width.
    pub(super) fn write_str(&self, out: &mut Vec<u8>, s: &[u8], star: Option<i64>) {
        let (left, width, precision) = self.resolve(star);
        let s = match precision {
            Some(p) if p < s.len() => &s[..p],
            _ => s,
        };
        let pad = width.saturating_sub(s.len());
        if !left {
            spaces(out, pad);
        }
        push_text(out, s);
        if left {
            spaces(out, pad);
        }
    }
}

impl PrintfSpec {
    /// [`PrintfSpec::write_str`] of text known to be UTF-8 (a name from the print fmt):
    /// not checked again unless the precision cuts it.
    #[inline]
    pub(super) fn write_utf8(&self, out: &mut Vec<u8>, s: &str, star: Option<i64>) {
        let c = &self.conversion;
        if c.width == Count::Absent && c.precision == Count::Absent {
            out.extend_from_slice(s.as_bytes());
            return;
        }
        let (left, width, precision) = self.resolve(star);
        if precision.is_some_and(|p| p < s.len()) {
            return self.write_str(out, s.as_bytes(), star);
        }
        let pad = width.saturating_sub(s.len());
        if !left {
            spaces(out, pad);
        }
        out.extend_from_slice(s.as_bytes());
        if left {
            spaces(out, pad);
        }
    }
}

/// `event_read_print`: the format literal (raw, escapes kept) and the argument nodes.
pub(super) fn read_print(p: &mut Parser<'_>) -> Result<(String, Vec<usize>), ()> {
    let (t, mut format) = p.tok.read();
    if t != TokenKind::DQuote {
        return Err(());
    }
    loop {
        let (t, tok) = p.tok.read_item();
        match t {
            TokenKind::End => return Ok((format, Vec::new())),
            TokenKind::DQuote => format.push_str(&tok),
            TokenKind::Delim if tok == "," => break,
            _ => return Err(()),
        }
    }
    let args = p.args()?;
    Ok((format, args))
}

/// `parse_args`: splits the format into literal text and conversions bound to arguments.
/// Returns the pieces and whether libtraceevent marks the event as failed.
pub(super) fn parse_args(format: &str, nargs: usize) -> (Vec<Seg>, bool) {
    let b = format.as_bytes();
    let mut segs = Vec::new();
    let mut failed = false;
    let mut next_arg = 0;
    let mut i = 0;
    let mut remaining = b.len() as isize;
    while i < b.len() {
        let ret = if b[i] == b'%' && b.get(i + 1) != Some(&b'%') {
            parse_arg_format(b, i, &mut segs, &mut next_arg, nargs, &mut failed)
        } else {
            parse_arg_string(b, i, &mut segs)
        };
        remaining -= ret as isize;
        if remaining > 0 {
            i += ret;
        } else {
            break;
        }
    }
    (segs, failed)
}

fn parse_arg_string(b: &[u8], start: usize, segs: &mut Vec<Seg>) -> usize {
    let mut s = Vec::new();
    let mut i = start;
    let mut ret = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                i += 1;
                ret += 1;
                match b.get(i) {
                    Some(b'n') => s.push(b'\n'),
                    Some(b't') => s.push(b'\t'),
                    Some(b'r') => s.push(b'\r'),
                    Some(&c) => s.push(c),
                    None => break,
                }
            }
            b'%' => {
                if b.get(i + 1) == Some(&b'%') {
                    s.push(b'%');
                    i += 1;
                    ret += 1;
                } else {
                    break;
                }
            }
            c => s.push(c),
        }
        ret += 1;
        i += 1;
    }
    segs.push(Seg::Lit(Lit::new(String::from_utf8_lossy(&s).as_bytes())));
    ret
}

/// How many letters after `%p` libtraceevent takes as the pointer extension.
fn pointer_ext_len(s: &[u8]) -> usize {
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let mut ret = 0;
    match at(0) {
        b'F' | b'S' | b'f' | b's' => ret += 1,
        b'M' | b'm' => {
            if matches!(at(1), b'R' | b'F') {
                ret += 1;
            }
            ret += 1;
        }
        b'I' | b'i' => {
            let mut index = 2;
            let c1 = at(1);
            if matches!(c1, b'S' | b'4' | b'6') {
                if c1 == b'S' {
                    while matches!(at(index), b'p' | b'f' | b's') {
                        ret += 1;
                        index += 1;
                    }
                }
                let mut six = c1 == b'6';
                if c1 != b'6' {
                    if matches!(at(index), b'h' | b'n' | b'l' | b'b') {
                        ret += 1;
                        index += 1;
                    }
                    if c1 == b'4' {
                        ret += 1;
                    } else {
                        six = true;
                    }
                }
                if six {
                    if at(index) == b'c' {
                        ret += 1;
                    }
                    ret += 1;
                }
            }
            ret += 1;
        }
        b'U' => {
            if matches!(at(1), b'L' | b'l' | b'B' | b'b') {
                ret += 1;
            }
            ret += 1;
        }
        b'h' => {
            if matches!(at(1), b'C' | b'D' | b'N') {
                ret += 1;
            }
            ret += 1;
        }
        _ => {}
    }
    ret
}

fn parse_arg_format(
    b: &[u8],
    start: usize,
    segs: &mut Vec<Seg>,
    next_arg: &mut usize,
    nargs: usize,
    failed: &mut bool,
) -> usize {
    let mut ret = 1;
    // libtraceevent's `ls`: the length letters counted.
    let mut length_count: i32 = 0;
    let mut len_arg = None;
    let mut j = start + 1;
    let chunk = |end: usize| String::from_utf8_lossy(&b[start..=end]).into_owned();
    while j < b.len() {
        match b[j] {
            b'#' | b'.' | b'0'..=b'9' | b'-' => {}
            b'h' => length_count -= 1,
            b'l' => length_count += 1,
            b'L' => length_count = 2,
            b'z' | b'Z' => length_count = 1,
            b'*' => {
                if *next_arg >= nargs || len_arg.is_some() {
                    *failed = true;
                    return ret;
                }
                len_arg = Some(*next_arg);
                *next_arg += 1;
            }
            b'p' => {
                if *next_arg >= nargs {
                    *failed = true;
                    return ret;
                }
                let n = pointer_ext_len(&b[j + 1..]);
                j += n;
                ret += n;
                let c = chunk(j);
                let ext = c[c.find('p').map_or(c.len(), |p| p + 1)..].to_string();
                segs.push(Seg::Ptr { ext, arg: *next_arg, len: len_arg });
                *next_arg += 1;
                return ret + 1;
            }
            b'd' | b'u' | b'i' | b'x' | b'X' | b'o' => {
                if *next_arg >= nargs {
                    *failed = true;
                    return ret;
                }
                if !(-2..=2).contains(&length_count) {
                    *failed = true;
                }
                segs.push(Seg::Num {
                    pre: Lit::EMPTY,
                    spec: PrintfSpec::parse(&b[start..=j]),
                    cast: ArgCast::from_count(length_count),
                    arg: *next_arg,
                    len: len_arg,
                    load: None,
                });
                *next_arg += 1;
                return ret + 1;
            }
            b's' => {
                if *next_arg >= nargs {
                    *failed = true;
                    return ret;
                }
                segs.push(Seg::Str { spec: PrintfSpec::parse(&b[start..=j]), arg: *next_arg, len: len_arg });
                *next_arg += 1;
                return ret + 1;
            }
            c => {
                segs.push(Seg::Lit(Lit::new(format!(">{}<", c as char).as_bytes())));
                return ret + 1;
            }
        }
        ret += 1;
        j += 1;
    }
    ret
}
