//! [`crate::Dialect::LibTraceEvent`]: the text `trace-cmd report` prints, as libtraceevent 1.7.1
//! (Debian bookworm's, with its default plugins) produces it.
//!
//! libtraceevent does not evaluate print fmts as C. It parses them with its own operator
//! handling ([`parse`]), evaluates every expression as an unsigned 64-bit number (fields are
//! read zero-extended, casts only mask, `^` evaluates to 0, names that are not numbers are
//! looked up in kallsyms), and hands each conversion to glibc's `printf` after casting the
//! value by its length modifier. Several conversions it does not know (`%c`, `%+d`, `% d`)
//! print as `>c<`, `>+<`, `> <`. Some events are printed by plugins instead of their print
//! fmt (`sched_switch`, `sched_wakeup`, `hrtimer_*`, `sys_enter_futex`, `kmem`, `tlb_flush`).
//! This module reproduces all of that, so that `wasmprobe report` and `trace-cmd report`
//! agree line for line.

mod parse;
mod plugins;

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::endian::{sign_extend, truncate, Endian};
use crate::format::{EventFormat, Field, FieldFlags};
use crate::print::PrintContext;
use crate::symbols::Symbols;
use parse::{FieldNames, Node, Parser, Tokens, T};

/// A field as libtraceevent classifies it. Its rules are its own and differ from
/// [`Field::flags`]: `u8`/`s8` arrays count as strings, any type naming `long` (`long long`,
/// `unsigned long *`) as long, `__data_loc char[]` as an array, any `*` as a pointer; the
/// raw-field text and `%s` of a field follow them, so trace-cmd's text needs them.
#[derive(Debug)]
pub(crate) struct LField {
    name: String,
    offset: usize,
    size: usize,
    flags: FieldFlags,
    elem: usize,
    /// libtraceevent clears a field's string flag the first time it prints it as an array.
    not_string: AtomicBool,
}

/// The flags libtraceevent gives a field (its `field_is_*` tests on the declared type).
fn libtraceevent_flags(f: &Field) -> FieldFlags {
    let ty = f.c_type();
    let array = ty.ends_with(']');
    let dynamic = ty.starts_with("__data_loc") || ty.starts_with("__rel_loc");
    // Old kernels' 2-byte `__data_loc` words: strings.
    let old_string = dynamic && f.size == 2;
    let string = array && (ty.contains("char") || ty.contains("u8") || ty.contains("s8"));
    [
        (FieldFlags::ARRAY, array || old_string),
        (FieldFlags::POINTER, ty.contains('*')),
        (FieldFlags::STRING, string || old_string),
        (FieldFlags::DYNAMIC, dynamic),
        (FieldFlags::REL_LOC, ty.starts_with("__rel_loc")),
        (FieldFlags::LONG, ty.contains("long")),
        (FieldFlags::SIGNED, f.signed),
    ]
    .into_iter()
    .filter(|&(_, on)| on)
    .fold(FieldFlags::default(), |all, (flag, _)| all | flag)
}

impl LField {
    fn from_field(f: &Field, long_size: u8) -> Self {
        let flags = libtraceevent_flags(f);
        let elem = if flags.contains(FieldFlags::ARRAY) || flags.contains(FieldFlags::DYNAMIC) {
            let arraylen = f.array_len.unwrap_or(0);
            if let Some(e) = f.size.checked_div(arraylen) {
                e
            } else if flags.contains(FieldFlags::DYNAMIC) {
                // `__data_loc char[] name`: the size of the word before `[]`.
                let base = f.type_name.trim_end_matches("[]");
                let word = base.rsplit(|c: char| c.is_whitespace()).next().unwrap_or("");
                match word {
                    "u8" | "s8" | "char" => 1,
                    "u16" | "s16" => 2,
                    "u32" | "s32" => 4,
                    "u64" | "s64" => 8,
                    _ => 0,
                }
            } else if flags.contains(FieldFlags::STRING) {
                1
            } else if flags.contains(FieldFlags::LONG) {
                usize::from(long_size)
            } else {
                0
            }
        } else {
            f.size
        };
        LField { name: f.name.clone(), offset: f.offset, size: f.size, flags, elem, not_string: AtomicBool::new(false) }
    }

    fn has(&self, flag: FieldFlags) -> bool {
        self.flags.contains(flag)
    }
}

/// `strtoull(s, NULL, 0)` on the digits at the start of `s`: the value and whether it overflowed.
fn parse_c_uint(s: &str) -> (u64, bool) {
    let b = s.as_bytes();
    let (radix, start) =
        if b.len() >= 2 && b[0] == b'0' && (b[1] | 0x20) == b'x' && b.get(2).is_some_and(|c| c.is_ascii_hexdigit()) {
            (16, 2)
        } else if b.first() == Some(&b'0') {
            (8, 1)
        } else {
            (10, 0)
        };
    let mut v: u64 = 0;
    let mut overflow = false;
    for &c in &b[start..] {
        let d = match c {
            b'0'..=b'9' => u64::from(c - b'0'),
            b'a'..=b'f' => u64::from(c - b'a' + 10),
            b'A'..=b'F' => u64::from(c - b'A' + 10),
            _ => break,
        };
        if d >= radix {
            break;
        }
        match v.checked_mul(radix).and_then(|x| x.checked_add(d)) {
            Some(x) => v = x,
            None => overflow = true,
        }
    }
    (v, overflow)
}

/// `strtoull(s, NULL, 0)`.
fn strtoull(s: &str) -> u64 {
    let t = s.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let (neg, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (v, overflow) = parse_c_uint(body);
    if overflow {
        u64::MAX
    } else if neg {
        v.wrapping_neg()
    } else {
        v
    }
}

/// What a cast does to a value in libtraceevent (`eval_type_str`): mask it or leave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mask(u64);

impl Mask {
    fn apply(self, v: u64) -> u64 {
        v & self.0
    }
}

fn cast_mask(ty: &str, pointer: bool) -> Mask {
    let all = Mask(u64::MAX);
    if ty.len() < 2 {
        return all;
    }
    if pointer {
        if !ty.ends_with('*') {
            return all;
        }
        return cast_mask(&ty[..ty.len() - 2], false);
    }
    if ty.ends_with('*') || ty.starts_with("struct") {
        return all;
    }
    match ty {
        "u8" | "s8" => return Mask(0xff),
        "u16" | "s16" => return Mask(0xffff),
        "u32" | "s32" => return Mask(0xffff_ffff),
        "u64" | "s64" => return all,
        _ => {}
    }
    let t = ty.strip_prefix("unsigned ").unwrap_or(ty);
    match t {
        "char" => Mask(0xff),
        "short" => Mask(0xffff),
        "int" => Mask(0xffff_ffff),
        _ => all,
    }
}

/// Where `__print_hex` / `__print_array` read their bytes.
#[derive(Debug)]
enum Src {
    Dyn(usize),
    Field(Option<usize>),
    Other,
}

/// A print arg ready for evaluation.
#[derive(Debug)]
enum Expr {
    /// An empty operand (the left side of a unary operator).
    Null,
    Atom {
        text: String,
        num: u64,
    },
    Field(Option<usize>),
    Flags {
        val: Box<Expr>,
        delim: Option<String>,
        list: Vec<(i64, String)>,
    },
    Symbol {
        val: Box<Expr>,
        list: Vec<(i64, String)>,
    },
    Hex {
        src: Src,
        size: Box<Expr>,
        concat: bool,
    },
    IntArray {
        src: Src,
        count: Box<Expr>,
        el: Box<Expr>,
    },
    Cast {
        mask: Mask,
        item: Box<Expr>,
    },
    Str(Option<usize>),
    Bitmask(Option<usize>),
    Cpumask(Option<usize>),
    DynArray(usize),
    DynArrayLen(usize),
    /// `base[idx]`, with the first cast found on the base (applied as a pointer cast).
    Index {
        cast: Option<Mask>,
        base: IndexBase,
        idx: Box<Expr>,
    },
    /// `c ? a : b`.
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    Bin {
        op: [u8; 2],
        l: Box<Expr>,
        r: Box<Expr>,
    },
    Func {
        name: String,
        args: Vec<Expr>,
    },
}

#[derive(Debug)]
enum IndexBase {
    Dyn(usize),
    Field(Option<usize>),
    Other,
}

/// A parsed printf conversion, as glibc reads it.
#[derive(Debug, Clone, Copy, Default)]
struct CSpec {
    left: bool,
    zero: bool,
    hash: bool,
    plus: bool,
    space: bool,
    width: Option<usize>,
    prec: Option<usize>,
    star_width: bool,
    star_prec: bool,
    /// Bytes the integer conversion reads (1, 2, 4, 8).
    size: u8,
    conv: u8,
    /// No flags but `0`, no precision, no `*`, a width of at most [`PLAIN_WIDTH`]: what
    /// [`CSpec::write_int`] does quickly.
    plain: bool,
}

const PLAIN_WIDTH: usize = 32;

impl CSpec {
    fn parse(chunk: &str) -> CSpec {
        let b = chunk.as_bytes();
        let mut s = CSpec { size: 4, ..CSpec::default() };
        let mut i = 1;
        while i < b.len() {
            match b[i] {
                b'-' => s.left = true,
                b'0' => s.zero = true,
                b'#' => s.hash = true,
                b'+' => s.plus = true,
                b' ' => s.space = true,
                _ => break,
            }
            i += 1;
        }
        if b.get(i) == Some(&b'*') {
            s.star_width = true;
            i += 1;
        } else {
            let st = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i > st {
                s.width = chunk[st..i].parse().ok();
            }
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            if b.get(i) == Some(&b'*') {
                s.star_prec = true;
                i += 1;
            } else {
                let st = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                s.prec = Some(chunk[st..i].parse().unwrap_or(0));
            }
        }
        let rest = &chunk[i..];
        let (size, n) = if rest.starts_with("hh") {
            (1, 2)
        } else if rest.starts_with("ll") {
            (8, 2)
        } else if rest.starts_with('h') {
            (2, 1)
        } else if rest.starts_with(['l', 'L', 'q', 'j', 'z', 'Z', 't']) {
            (8, 1)
        } else {
            (4, 0)
        };
        s.size = size;
        s.conv = b.get(i + n).copied().unwrap_or(b'd');
        s.plain = !(s.left || s.hash || s.plus || s.space || s.star_width || s.star_prec)
            && s.prec.is_none()
            && s.width.unwrap_or(0) <= PLAIN_WIDTH;
        s
    }

    /// Width and precision with a `*` argument applied (cut to a trace_seq page).
    fn resolve(&self, star: Option<i64>) -> (bool, usize, Option<usize>) {
        let (left, width, prec) = self.resolve_raw(star);
        (left, width.min(crate::print::MAX_PAD), prec.map(|p| p.min(crate::print::MAX_PAD)))
    }

    fn resolve_raw(&self, star: Option<i64>) -> (bool, usize, Option<usize>) {
        let mut left = self.left;
        let mut width = self.width.unwrap_or(0);
        let mut prec = self.prec;
        if let Some(v) = star {
            let v = v as i32;
            if self.star_width {
                if v < 0 {
                    left = true;
                }
                width = v.unsigned_abs() as usize;
            } else if self.star_prec {
                prec = usize::try_from(v).ok();
            }
        }
        (left, width, prec)
    }

    /// glibc's output for an integer conversion of `v` (already cast by the length modifier).
    fn write_int(&self, out: &mut Vec<u8>, v: u64, star: Option<i64>) {
        if self.plain {
            self.write_plain_int(out, v);
            return;
        }
        let (left, width, prec) = self.resolve(star);
        let size = usize::from(self.size);
        let x = truncate(v, size);
        let signed = matches!(self.conv, b'd' | b'i');
        let (neg, mag) = if signed {
            let s = sign_extend(x, size);
            (s < 0, s.unsigned_abs())
        } else {
            (false, x)
        };
        let (base, upper) = match self.conv {
            b'x' => (16, false),
            b'X' => (16, true),
            b'o' => (8, false),
            _ => (10, false),
        };
        // Digits from the right end of a stack buffer.
        let mut buf = [0u8; 24];
        let mut at = buf.len();
        if !(prec == Some(0) && mag == 0) {
            at = digits(&mut buf, mag, base, upper);
        }
        if self.hash && base == 8 && (at == buf.len() || buf[at] != b'0') {
            at -= 1;
            buf[at] = b'0';
        }
        let digits = &buf[at..];
        let n = digits.len();
        let zeros = prec.unwrap_or(0).saturating_sub(n);
        let prefix = match (self.hash && base == 16 && mag != 0, upper) {
            (true, true) => "0X",
            (true, false) => "0x",
            _ => "",
        };
        let sign = if neg {
            "-"
        } else if signed && self.plus {
            "+"
        } else if signed && self.space {
            " "
        } else {
            ""
        };
        let len = sign.len() + prefix.len() + zeros + n;
        let pad = width.saturating_sub(len);
        let zero_pad = self.zero && !left && prec.is_none();
        if !left && !zero_pad {
            spaces(out, pad);
        }
        out.push_str(sign);
        out.push_str(prefix);
        if zero_pad {
            fill(out, ZEROS, pad);
        }
        fill(out, ZEROS, zeros);
        out.extend_from_slice(digits);
        if left {
            spaces(out, pad);
        }
    }

    /// [`CSpec::write_int`] for a plain spec: the text is put together right to left in one
    /// buffer (sign, padding, digits) and appended at once.
    fn write_plain_int(&self, out: &mut Vec<u8>, v: u64) {
        let size = usize::from(self.size);
        let x = truncate(v, size);
        let (neg, mag) = match self.conv {
            b'd' | b'i' => {
                let s = sign_extend(x, size);
                (s < 0, s.unsigned_abs())
            }
            _ => (false, x),
        };
        let (base, upper) = match self.conv {
            b'x' => (16, false),
            b'X' => (16, true),
            b'o' => (8, false),
            _ => (10, false),
        };
        let len = digit_count(mag, base) + usize::from(neg);
        let total = len.max(self.width.unwrap_or(0));
        // Laid out in `out` itself: a fixed-size run of spaces (copied from read-only memory,
        // no `memcpy` call), the digits written at the right end of the first `total` bytes,
        // the rest cut off. (Building it in a stack buffer and copying that made the copy's wide
        // loads wait for the digits' byte stores: a store-forwarding stall per number.)
        let start = out.len();
        out.extend_from_slice(&PAD);
        let buf = &mut out[start..];
        let at = digits(&mut buf[..total], mag, base, upper);
        if self.zero {
            buf[..at].fill(b'0');
            if neg {
                buf[0] = b'-';
            }
        } else if neg {
            buf[at - 1] = b'-';
        }
        out.truncate(start + total);
    }

    /// glibc's output for `%s` of a C string.
    fn write_str(&self, out: &mut Vec<u8>, s: &[u8], star: Option<i64>) {
        let (left, width, prec) = self.resolve(star);
        let s = match prec {
            Some(p) if p < s.len() => &s[..p],
            _ => s,
        };
        let pad = width.saturating_sub(s.len());
        if !left {
            spaces(out, pad);
        }
        push_bytes(out, s);
        if left {
            spaces(out, pad);
        }
    }
}

/// Writes `m` in `base` (10, 16 or 8) at the right end of `buf`; returns where the digits
/// start.
fn digits(buf: &mut [u8], mut m: u64, base: u32, upper: bool) -> usize {
    let mut at = buf.len();
    match base {
        16 => {
            let table = if upper { b"0123456789ABCDEF" } else { b"0123456789abcdef" };
            let n = (64 - (m | 1).leading_zeros()).div_ceil(4) as usize;
            for d in buf[at - n..].iter_mut().rev() {
                *d = table[(m & 15) as usize];
                m >>= 4;
            }
            at -= n;
        }
        8 => loop {
            at -= 1;
            buf[at] = b'0' + (m & 7) as u8;
            m >>= 3;
            if m == 0 {
                break;
            }
        },
        _ => {
            // Two digits at a time.
            while m >= 100 {
                let pair = (m % 100) as usize * 2;
                m /= 100;
                at -= 2;
                buf[at..at + 2].copy_from_slice(&DEC_PAIRS[pair..pair + 2]);
            }
            if m >= 10 {
                let pair = m as usize * 2;
                at -= 2;
                buf[at..at + 2].copy_from_slice(&DEC_PAIRS[pair..pair + 2]);
            } else {
                at -= 1;
                buf[at] = b'0' + m as u8;
            }
        }
    }
    at
}

/// How many digits [`digits`] writes for `m`.
fn digit_count(m: u64, base: u32) -> usize {
    let bits = 64 - (m | 1).leading_zeros();
    (match base {
        16 => bits.div_ceil(4),
        8 => bits.div_ceil(3),
        _ => m.checked_ilog10().unwrap_or(0) + 1,
    }) as usize
}

/// What [`CSpec::write_plain_int`] pads with: as long as the longest plain number it writes
/// (a width of at most [`PLAIN_WIDTH`], or 22 octal digits and a sign).
const PAD: [u8; PLAIN_WIDTH] = [b' '; PLAIN_WIDTH];

/// Zeros read in place of a field that lies outside the record.
const ZERO_BYTES: [u8; 16] = [0; 16];

/// "00" to "99": two decimal digits per lookup (also used by wasmprobe's report lines).
pub const DEC_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

const SPACES: &str = "                                ";
const ZEROS: &str = "00000000000000000000000000000000";

fn spaces(out: &mut Vec<u8>, n: usize) {
    fill(out, SPACES, n);
}

/// Appends `n` copies of the one character `run` is made of.
fn fill(out: &mut Vec<u8>, run: &str, mut n: usize) {
    while n > 0 {
        let k = n.min(run.len());
        out.push_str(&run[..k]);
        n -= k;
    }
}

/// Text is printed into bytes (all of it UTF-8): appending to a `Vec<u8>` needs no
/// validation, where a `String` would check every piece.
pub(crate) trait Text {
    fn push_str(&mut self, s: &str);
}

impl Text for Vec<u8> {
    #[inline]
    fn push_str(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }
}

/// Appends record bytes as text (invalid UTF-8 replaced, as a `String` would have it).
fn push_bytes(out: &mut Vec<u8>, b: &[u8]) {
    match core::str::from_utf8(b) {
        Ok(_) => out.extend_from_slice(b),
        Err(_) => out.push_str(&String::from_utf8_lossy(b)),
    }
}

fn c_str(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(n) => &b[..n],
        None => b,
    }
}

/// A numeric argument that is a plain read of the record (`REC->field`, `REC->array[N]`,
/// constants, and casts of those), resolved when the event is compiled: what
/// [`Cx::eval`] gives for it, without walking the expression for every record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    Const(u64),
    /// `size` bytes at `off` (0 if they are not all in the record or `size` is not 1, 2, 4
    /// or 8), then masked.
    Read {
        off: usize,
        size: usize,
        mask: u64,
    },
}

impl Load {
    /// The load `e` evaluates to, if it is one.
    fn of(e: &Expr, fields: &[LField]) -> Option<Load> {
        Some(match e {
            Expr::Null => Load::Const(0),
            Expr::Atom { num, .. } => Load::Const(*num),
            Expr::Field(None) => Load::Const(0),
            Expr::Field(Some(i)) => {
                let f = fields.get(*i)?;
                Load::Read { off: f.offset, size: f.size, mask: u64::MAX }
            }
            Expr::Cast { mask, item } => match Load::of(item, fields)? {
                Load::Const(v) => Load::Const(mask.apply(v)),
                Load::Read { off, size, mask: m } => Load::Read { off, size, mask: m & mask.0 },
            },
            Expr::Index { cast, base: IndexBase::Field(Some(i)), idx } => {
                let Load::Const(right) = Load::of(idx, fields)? else {
                    return None;
                };
                let f = fields.get(*i)?;
                let off = f.offset.wrapping_add((right as usize).wrapping_mul(f.elem));
                Load::Read { off, size: f.elem, mask: cast.map_or(u64::MAX, |m| m.0) }
            }
            Expr::Index { base: IndexBase::Field(None) | IndexBase::Other, .. } => Load::Const(0),
            _ => return None,
        })
    }

    #[inline]
    fn get(self, data: &[u8], endian: Endian) -> u64 {
        match self {
            Load::Const(v) => v,
            Load::Read { off, size, mask } => match off.checked_add(size) {
                Some(end) if end <= data.len() => endian.read_uint(data, off, size).unwrap_or(0) & mask,
                _ => 0,
            },
        }
    }
}

/// Literal text of a print fmt. Most are short (`", "`, `") "`): appended as one fixed-size
/// copy.
type Lit = crate::text::ShortText<16>;

/// Moves each short literal into the number after it (`"NR %ld (%lx, %lx"` becomes three
/// numbers with `"NR "`, `" ("` and `", "` before them): fewer pieces to dispatch on per
/// record, and the dispatch is mostly the same one.
fn fuse_literals(segs: Vec<Seg>) -> Vec<Seg> {
    let mut out = Vec::with_capacity(segs.len());
    let mut pending: Option<Lit> = None;
    for seg in segs {
        match seg {
            Seg::Lit(lit) if lit.fits() => {
                if let Some(p) = pending.replace(lit) {
                    out.push(Seg::Lit(p));
                }
            }
            Seg::Num { pre: _, spec, ls, arg, len, load } => {
                let pre = pending.take().unwrap_or(Lit::EMPTY);
                out.push(Seg::Num { pre, spec, ls, arg, len, load });
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

/// One piece of the print fmt (libtraceevent's `print_parse`).
#[derive(Debug)]
enum Seg {
    Lit(Lit),
    /// `load` is `args[arg]` when that is a plain read. `pre` is the short literal before the
    /// number (see [`fuse_literals`]).
    Num {
        pre: Lit,
        spec: CSpec,
        ls: i8,
        arg: usize,
        len: Option<usize>,
        load: Option<Load>,
    },
    Ptr {
        ext: String,
        arg: usize,
        len: Option<usize>,
    },
    Str {
        spec: CSpec,
        arg: usize,
        len: Option<usize>,
    },
}

/// An event compiled for libtraceevent's text.
#[derive(Debug)]
pub(crate) struct LteEvent {
    fields: Vec<LField>,
    ncommon: usize,
    failed: bool,
    args: Vec<Expr>,
    segs: Vec<Seg>,
    plugin: Option<plugins::Plugin>,
    /// Whether printing may look anything up in kallsyms (see [`LteEvent::wants_symbols`]).
    wants_symbols: bool,
}

/// Everything evaluation needs.
struct Cx<'a> {
    ev: &'a LteEvent,
    data: &'a [u8],
    long: u8,
    endian: Endian,
    syms: Option<&'a Symbols>,
}

impl LteEvent {
    /// Parses `ev`'s print fmt the way libtraceevent does.
    pub(crate) fn compile(ev: &EventFormat, long_size: u8, syms: Option<&Symbols>) -> LteEvent {
        let fields: Vec<LField> = ev.all_fields().map(|f| LField::from_field(f, long_size)).collect();
        let ncommon = ev.common_fields.len();
        let plugin = plugins::Plugin::for_event(&ev.system, &ev.name);
        // Plugins print function names.
        let wants_symbols = plugin.is_some();
        let mut out =
            LteEvent { fields, ncommon, failed: true, args: Vec::new(), segs: Vec::new(), plugin, wants_symbols };
        let Some(raw) = ev.print_fmt_raw() else {
            return out;
        };
        if ev.system == "ftrace" && ev.name == "bprint" {
            // Binary printk needs the printk formats per record; printed as raw fields.
            return out;
        }
        let own: Vec<&str> = ev.fields.iter().map(|f| f.name.as_str()).collect();
        let any: Vec<(&str, usize, bool)> = ev
            .all_fields()
            .zip(&out.fields)
            .map(|(f, l)| (f.name.as_str(), f.size, l.has(FieldFlags::ARRAY)))
            .collect();
        let mut p = Parser {
            tok: Tokens::new(raw),
            nodes: Vec::new(),
            failed: false,
            long_size,
            fields: FieldNames { own, any },
        };
        let Ok((format, mut ids)) = read_print(&mut p) else {
            return out;
        };
        if p.failed {
            return out;
        }
        if ids.is_empty() && ev.system == "ftrace" {
            for f in &ev.fields {
                p.nodes.push(Node::Field(f.name.clone()));
                ids.push(p.nodes.len() - 1);
            }
        }
        let mut lower = Lower { nodes: &p.nodes, ev: &out, syms, looked_up: false };
        let args: Vec<Expr> = ids.iter().map(|&i| lower.lower(i)).collect();
        let looked_up = lower.looked_up;
        let (mut segs, failed) = parse_args(&format, args.len());
        out.wants_symbols |= looked_up
            || segs.iter().any(|s| matches!(s, Seg::Ptr { ext, .. } if ext.starts_with(['F', 'f', 'S', 's', 'B'])));
        for seg in &mut segs {
            if let Seg::Num { arg, load, .. } = seg {
                *load = args.get(*arg).and_then(|a| Load::of(a, &out.fields));
            }
        }
        out.args = args;
        out.segs = fuse_literals(segs);
        out.failed = failed;
        out
    }

    fn any_field(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    fn own_field(&self, name: &str) -> Option<usize> {
        self.fields[self.ncommon..].iter().position(|f| f.name == name).map(|i| i + self.ncommon)
    }

    /// Whether the text depends on kernel symbols: names in the fmt resolved through
    /// kallsyms, `%pS`-style pointers, or a plugin that prints function names.
    pub(crate) fn wants_symbols(&self) -> bool {
        self.wants_symbols
    }

    /// Appends the record's info text to `out`.
    pub(crate) fn print(&self, data: &[u8], ctx: &PrintContext, out: &mut Vec<u8>) {
        let cx = Cx { ev: self, data, long: ctx.long_size, endian: ctx.endian, syms: ctx.symbols };
        if let Some(p) = &self.plugin {
            if !p.print(&cx, out) {
                return;
            }
        }
        if self.failed {
            out.push_str("[FAILED TO PARSE]");
            for f in &self.fields[self.ncommon..] {
                out.push(b' ');
                out.push_str(&f.name);
                out.push(b'=');
                cx.print_field_raw(f, out);
            }
            return;
        }
        for seg in &self.segs {
            match seg {
                Seg::Lit(lit) => lit.append_to(out),
                Seg::Num { pre, spec, ls, arg, len, load } => {
                    pre.append_to(out);
                    let star = len.map(|l| cx.eval(&self.args[l]) as i32 as i64);
                    let v = match load {
                        Some(load) => load.get(data, cx.endian),
                        None => cx.eval(&self.args[*arg]),
                    };
                    let v = match ls {
                        -2 => v as i8 as i64 as u64,
                        -1 => v as i16 as i64 as u64,
                        0 => v as i32 as i64 as u64,
                        _ => v,
                    };
                    spec.write_int(out, v, star);
                }
                Seg::Ptr { ext, arg, len } => {
                    let plen = len.map_or(1, |l| cx.eval(&self.args[l]) as i32 as i64);
                    cx.print_pointer(ext, plen, &self.args[*arg], out);
                }
                Seg::Str { spec, arg, len } => {
                    let star = len.map(|l| cx.eval(&self.args[l]) as i32 as i64);
                    cx.print_str(spec, star, &self.args[*arg], out);
                }
            }
        }
    }

    /// The `(pid, comm)` pairs a plugin registers when it prints this record
    /// (`tep_register_comm`, which never replaces a known pid).
    pub(crate) fn registered_comms<'d>(&self, data: &'d [u8], endian: Endian) -> [Option<(i32, &'d [u8])>; 2] {
        match &self.plugin {
            Some(p) => p.comms(self, data, endian),
            None => [None, None],
        }
    }
}

/// `event_read_print`: the format literal (raw, escapes kept) and the argument nodes.
fn read_print(p: &mut Parser<'_>) -> Result<(String, Vec<usize>), ()> {
    let (t, mut format) = p.tok.read();
    if t != T::DQuote {
        return Err(());
    }
    loop {
        let (t, tok) = p.tok.read_item();
        match t {
            T::None => return Ok((format, Vec::new())),
            T::DQuote => format.push_str(&tok),
            T::Delim if tok == "," => break,
            _ => return Err(()),
        }
    }
    let args = p.args()?;
    Ok((format, args))
}

/// `parse_args`: splits the format into literal text and conversions bound to arguments.
/// Returns the pieces and whether libtraceevent marks the event as failed.
fn parse_args(format: &str, nargs: usize) -> (Vec<Seg>, bool) {
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
    let mut ls: i32 = 0;
    let mut len_arg = None;
    let mut j = start + 1;
    let chunk = |end: usize| String::from_utf8_lossy(&b[start..=end]).into_owned();
    while j < b.len() {
        match b[j] {
            b'#' | b'.' | b'0'..=b'9' | b'-' => {}
            b'h' => ls -= 1,
            b'l' => ls += 1,
            b'L' => ls = 2,
            b'z' | b'Z' => ls = 1,
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
                if !(-2..=2).contains(&ls) {
                    *failed = true;
                }
                segs.push(Seg::Num {
                    pre: Lit::EMPTY,
                    spec: CSpec::parse(&chunk(j)),
                    ls: ls.clamp(-2, 2) as i8,
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
                segs.push(Seg::Str { spec: CSpec::parse(&chunk(j)), arg: *next_arg, len: len_arg });
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

/// Turns parse nodes into evaluation nodes, resolving field names and atoms once.
struct Lower<'a> {
    nodes: &'a [Node],
    ev: &'a LteEvent,
    syms: Option<&'a Symbols>,
    /// Set when a name had to be looked up in the symbols.
    looked_up: bool,
}

impl Lower<'_> {
    fn flag_table(list: &[(String, String)]) -> Vec<(i64, String)> {
        list.iter().map(|(v, s)| (eval_flag(v), s.clone())).collect()
    }

    fn src(&mut self, id: usize) -> Src {
        match &self.nodes[id] {
            Node::DynArray(n) => Src::Dyn(self.ev.own_field(n).unwrap_or(0)),
            Node::Field(n) => Src::Field(self.ev.any_field(n)),
            _ => Src::Other,
        }
    }

    fn lower_opt(&mut self, id: Option<usize>) -> Expr {
        id.map_or(Expr::Null, |i| self.lower(i))
    }

    fn lower(&mut self, id: usize) -> Expr {
        match &self.nodes[id] {
            Node::Null => Expr::Null,
            Node::Atom(a) => {
                let mut num = strtoull(a);
                if num == 0 && !a.as_bytes().first().is_some_and(u8::is_ascii_digit) {
                    self.looked_up = true;
                    num = self.syms.and_then(|s| s.lte_symbol_addr(a)).unwrap_or(0);
                }
                Expr::Atom { text: a.clone(), num }
            }
            Node::Field(n) => Expr::Field(self.ev.any_field(n)),
            Node::Flags { field, delim, list } => {
                Expr::Flags { val: Box::new(self.lower(*field)), delim: delim.clone(), list: Self::flag_table(list) }
            }
            Node::Symbol { field, list } => {
                Expr::Symbol { val: Box::new(self.lower(*field)), list: Self::flag_table(list) }
            }
            Node::Hex { field, size, concat } => {
                Expr::Hex { src: self.src(*field), size: Box::new(self.lower(*size)), concat: *concat }
            }
            Node::IntArray { field, count, el_size } => Expr::IntArray {
                src: self.src(*field),
                count: Box::new(self.lower(*count)),
                el: Box::new(self.lower(*el_size)),
            },
            Node::Type { ty, item } => Expr::Cast { mask: cast_mask(ty, false), item: Box::new(self.lower(*item)) },
            Node::Str(n) => Expr::Str(self.ev.any_field(n)),
            Node::Bitmask(n) => Expr::Bitmask(self.ev.any_field(n)),
            Node::Cpumask(n) => Expr::Cpumask(self.ev.any_field(n)),
            Node::DynArray(n) => Expr::DynArray(self.ev.own_field(n).unwrap_or(0)),
            Node::DynArrayLen(n) => Expr::DynArrayLen(self.ev.own_field(n).unwrap_or(0)),
            Node::Func { name, args } => {
                let args = args.iter().map(|&a| self.lower(a)).collect();
                Expr::Func { name: name.clone(), args }
            }
            Node::Op { op, left, right, .. } => {
                if op == "[" {
                    let mut base = left.unwrap_or(0);
                    let mut cast = None;
                    while let Node::Type { ty, item } = &self.nodes[base] {
                        if cast.is_none() {
                            cast = Some(cast_mask(ty, true));
                        }
                        base = *item;
                    }
                    let base = match (left, &self.nodes[base]) {
                        (None, _) => IndexBase::Other,
                        (_, Node::DynArray(n)) => IndexBase::Dyn(self.ev.own_field(n).unwrap_or(0)),
                        (_, Node::Field(n)) => IndexBase::Field(self.ev.any_field(n)),
                        _ => IndexBase::Other,
                    };
                    return Expr::Index { cast, base, idx: Box::new(self.lower_opt(*right)) };
                }
                if op == "?" {
                    let c = self.lower_opt(*left);
                    if let Some(r) = right {
                        if let Node::Op { left: a, right: b, .. } = &self.nodes[*r] {
                            let (a, b) = (*a, *b);
                            return Expr::Cond(Box::new(c), Box::new(self.lower_opt(a)), Box::new(self.lower_opt(b)));
                        }
                    }
                    return Expr::Cond(Box::new(c), Box::new(Expr::Null), Box::new(Expr::Null));
                }
                let ob = op.as_bytes();
                let code = [ob.first().copied().unwrap_or(0), ob.get(1).copied().unwrap_or(0)];
                Expr::Bin { op: code, l: Box::new(self.lower_opt(*left)), r: Box::new(self.lower_opt(*right)) }
            }
        }
    }
}

/// `eval_flag`: a table key as libtraceevent reads it; -1 for a name it does not know.
fn eval_flag(s: &str) -> i64 {
    if s.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        return strtoull(s) as i64;
    }
    match s {
        "HI_SOFTIRQ" | "HRTIMER_NORESTART" => 0,
        "TIMER_SOFTIRQ" | "HRTIMER_RESTART" => 1,
        "NET_TX_SOFTIRQ" => 2,
        "NET_RX_SOFTIRQ" => 3,
        "BLOCK_SOFTIRQ" => 4,
        "IRQ_POLL_SOFTIRQ" => 5,
        "TASKLET_SOFTIRQ" => 6,
        "SCHED_SOFTIRQ" => 7,
        "HRTIMER_SOFTIRQ" => 8,
        "RCU_SOFTIRQ" => 9,
        _ => -1,
    }
}

impl Cx<'_> {
    fn num(&self, off: usize, size: usize) -> u64 {
        match size {
            1 | 2 | 4 | 8 => self.endian.read_uint(self.data, off, size).unwrap_or(0),
            _ => 0,
        }
    }

    fn field(&self, i: Option<usize>) -> Option<&LField> {
        i.and_then(|i| self.ev.fields.get(i))
    }

    /// `dynamic_offset_field`: (offset, length) of a dynamic field's data.
    fn dyn_loc(&self, f: &LField) -> (usize, usize) {
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

    fn eval(&self, e: &Expr) -> u64 {
        match e {
            Expr::Null => 0,
            Expr::Atom { num, .. } => *num,
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
                    IndexBase::Dyn(i) => {
                        let f = &self.ev.fields[*i];
                        let (o, _) = self.dyn_loc(f);
                        let size = if f.elem > 0 { f.elem } else { usize::from(self.long) };
                        (o.wrapping_add(right as usize), size)
                    }
                    IndexBase::Field(Some(i)) => {
                        let f = &self.ev.fields[*i];
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
            Expr::Bin { op, l, r } => {
                let (x, y) = (self.eval(l), self.eval(r));
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
            Expr::DynArrayLen(i) => self.dyn_loc(&self.ev.fields[*i]).1 as u64,
            // libtraceevent returns a host pointer to the data here; the offset stands in.
            Expr::DynArray(i) => self.dyn_loc(&self.ev.fields[*i]).0 as u64,
        }
    }

    /// A registered print function: prints into `out`, returns its value.
    fn func(&self, name: &str, args: &[Expr], out: &mut Vec<u8>) -> u64 {
        let a = args.first().map_or(0, |a| self.eval(a));
        match name {
            "jiffies_to_msecs" => {
                let _ = write!(out, "{}", a as i64);
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
    fn print_str(&self, spec: &CSpec, star: Option<i64>, e: &Expr, out: &mut Vec<u8>) {
        match e {
            Expr::Null => {}
            Expr::Atom { text, .. } => spec.write_str(out, text.as_bytes(), star),
            Expr::Field(i) => {
                let Some(f) = self.field(*i) else {
                    return;
                };
                if !f.has(FieldFlags::ARRAY) && f.size == usize::from(self.long) {
                    let addr = self.num(f.offset, f.size);
                    match self.syms.and_then(|s| s.lte_printk(addr)) {
                        Some(s) => out.push_str(s),
                        None => {
                            let _ = write!(out, "{addr:x}");
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
                        spec.write_str(out, s.as_bytes(), star);
                        break;
                    }
                    let fv = *fval as u64;
                    if *fval > 0 && v & fv == fv {
                        if printed {
                            if let Some(d) = delim {
                                out.push_str(d);
                            }
                        }
                        spec.write_str(out, s.as_bytes(), star);
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
                    let _ = write!(out, "0x{v:x}");
                }
            }
            Expr::Symbol { val, list } => {
                let v = self.eval(val) as i64;
                match list.iter().find(|(f, _)| *f == v) {
                    Some((_, s)) => spec.write_str(out, s.as_bytes(), star),
                    None => {
                        let _ = write!(out, "0x{:x}", v as u64);
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
                    let _ = write!(out, "{x:02x}");
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
                            let _ = write!(out, "{}", self.num(at, el as usize));
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
                if matches!(e, Expr::Cpumask(_)) {
                    cpumask_list(&mut s, b, self.endian);
                } else {
                    bitmask_hex(&mut s, b, self.endian);
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

    fn src_offset(&self, src: &Src) -> Option<usize> {
        match src {
            Src::Dyn(i) => Some(self.dyn_loc(&self.ev.fields[*i]).0),
            Src::Field(Some(i)) => Some(self.ev.fields[*i].offset),
            Src::Field(None) | Src::Other => None,
        }
    }

    /// The field an argument names, looking through casts (`%pM` and friends).
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

    fn field_arg<'e>(&self, mut e: &'e Expr) -> Result<Option<&LField>, &'e Expr> {
        while let Expr::Cast { item, .. } = e {
            e = item;
        }
        match e {
            Expr::Field(i) => Ok(self.field(*i)),
            other => Err(other),
        }
    }

    fn print_pointer(&self, ext: &str, plen: i64, e: &Expr, out: &mut Vec<u8>) {
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
                match self.syms.and_then(|s| s.lte_find_func(val)) {
                    Some((name, start)) => {
                        out.push_str(name);
                        if matches!(at(0), b'F' | b'S') {
                            let _ = write!(out, "+0x{:x}", val.wrapping_sub(start));
                        }
                    }
                    None => {
                        let _ = write!(out, "0x{val:x}");
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
                let rev = at(1) == b'R';
                for i in 0..6 {
                    if i > 0 {
                        out.push_str(sep);
                    }
                    let _ = write!(out, "{:02x}", b[if rev { 5 - i } else { i }]);
                }
            }
            b'I' | b'i' => self.print_ip(x, e, out),
            b'U' => {
                let Some(b) = self.sized_field_arg(e, 16, "INVALIDUUID", out) else { return };
                let upper = matches!(at(1), b'L' | b'B');
                let guid = matches!(at(1), b'L' | b'l');
                const GUID: [usize; 16] = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
                for i in 0..16 {
                    let v = b[if guid { GUID[i] } else { i }];
                    let _ = if upper { write!(out, "{v:02X}") } else { write!(out, "{v:02x}") };
                    if matches!(i, 3 | 5 | 7 | 9) {
                        out.push(b'-');
                    }
                }
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
                let (off, len) = self.dyn_loc(&self.ev.fields[*i]);
                let n = (len as i64).min(plen);
                let b = self.bytes_from(off);
                for k in 0..n.max(0) as usize {
                    if k > 0 {
                        out.push_str(delim);
                    }
                    let _ = write!(out, "{:02x}", b.get(k).copied().unwrap_or(0));
                }
            }
            _ => {
                let v = self.eval(e);
                if v == 0 {
                    out.push_str("(nil)");
                } else {
                    let _ = write!(out, "0x{v:x}");
                }
            }
        }
    }

    fn print_ip(&self, x: &[u8], e: &Expr, out: &mut Vec<u8>) {
        let at = |i: usize| x.get(i).copied().unwrap_or(0);
        let i = at(0);
        let (field, other) = match self.field_arg(e) {
            Ok(f) => (f, None),
            Err(o) => (None, Some(o)),
        };
        match at(1) {
            b'4' => {
                let reverse = match at(2) {
                    b'h' => self.endian == Endian::Little,
                    b'l' => true,
                    _ => false,
                };
                let Some(f) = field else {
                    if let Some(o) = other {
                        let _ = write!(out, "ARG TYPE NOT FIELD BUT {}", arg_type(o));
                    }
                    return;
                };
                if f.size != 4 {
                    out.push_str("INVALIDIPv4");
                    return;
                }
                let b = self.data.get(f.offset..f.offset + 4).unwrap_or(&[0; 4]);
                ip4(out, i, reverse, b);
            }
            b'6' => {
                let Some(f) = field else {
                    if let Some(o) = other {
                        let _ = write!(out, "ARG TYPE NOT FIELD BUT {}", arg_type(o));
                    }
                    return;
                };
                if f.size != 16 {
                    out.push_str("INVALIDIPv6");
                    return;
                }
                let b = self.data.get(f.offset..f.offset + 16).unwrap_or(&[0; 16]);
                if i == b'I' && at(2) == b'c' {
                    ip6c(out, b);
                } else {
                    ip6(out, i, b);
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
                let (off, len) = match (field, other) {
                    (Some(f), _) => (f.offset, f.size),
                    (None, Some(Expr::DynArray(d))) => self.dyn_loc(&self.ev.fields[*d]),
                    (None, Some(o)) => {
                        let _ = write!(out, "ARG NOT FIELD NOR DYNAMIC ARRAY BUT TYPE {}", arg_type(o));
                        return;
                    }
                    (None, None) => return,
                };
                let sa = self.bytes_from(off);
                let family = self.endian.read_u16(sa, 0).unwrap_or(0);
                let port = sa.get(2..4).map_or(0, |p| u16::from_be_bytes([p[0], p[1]]));
                if family == 2 {
                    if len < 16 {
                        out.push_str("INVALIDIPv4");
                        return;
                    }
                    ip4(out, i, reverse, sa.get(4..8).unwrap_or(&[0; 4]));
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
                    let a = sa.get(8..24).unwrap_or(&[0; 16]);
                    if have_c {
                        ip6c(out, a);
                    } else {
                        ip6(out, i, a);
                    }
                    if have_p {
                        let _ = write!(out, "]:{port}");
                    }
                }
            }
            _ => {}
        }
    }

    /// `print_field_raw`: one field of a `[FAILED TO PARSE]` line.
    fn print_field_raw(&self, f: &LField, out: &mut Vec<u8>) {
        if f.has(FieldFlags::ARRAY) {
            let (off, len) = if f.has(FieldFlags::DYNAMIC) { self.dyn_loc(f) } else { (f.offset, f.size) };
            let b = self.data.get(off..(off + len).min(self.data.len())).unwrap_or(&[]);
            let printable =
                b.iter().take_while(|&&c| c != 0).all(|&c| is_print(c) || matches!(c, b' ' | b'\t'..=b'\r'));
            if f.has(FieldFlags::STRING) && !f.not_string.load(Ordering::Relaxed) && printable {
                push_bytes(out, c_str(self.bytes_from(off)));
            } else {
                out.push_str("ARRAY[");
                for (i, x) in b.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    let _ = write!(out, "{x:02x}");
                }
                out.push(b']');
                f.not_string.store(true, Ordering::Relaxed);
            }
            return;
        }
        let v = self.num(f.offset, f.size);
        let _ = if f.has(FieldFlags::POINTER) {
            write!(out, "0x{v:x}")
        } else if f.has(FieldFlags::SIGNED) {
            match f.size {
                4 if f.has(FieldFlags::LONG) => write!(out, "0x{:x}", v as u32),
                4 => write!(out, "{}", v as i32),
                2 => write!(out, "{:2}", v as i16),
                1 => write!(out, "{:1}", v as i8),
                _ => write!(out, "{}", v as i64),
            }
        } else if f.has(FieldFlags::LONG) {
            write!(out, "0x{v:x}")
        } else {
            write!(out, "{v}")
        };
    }
}

fn is_print(c: u8) -> bool {
    (0x20..0x7f).contains(&c)
}

/// libtraceevent's `enum tep_print_arg_type` number of an argument.
fn arg_type(e: &Expr) -> u32 {
    match e {
        Expr::Null => 0,
        Expr::Atom { .. } => 1,
        Expr::Field(_) => 2,
        Expr::Flags { .. } => 3,
        Expr::Symbol { .. } => 4,
        Expr::Hex { concat: false, .. } => 5,
        Expr::IntArray { .. } => 6,
        Expr::Cast { .. } => 7,
        Expr::Str(_) => 8,
        Expr::DynArray(_) => 10,
        Expr::Cond(..) | Expr::Bin { .. } | Expr::Index { .. } => 11,
        Expr::Func { .. } => 12,
        Expr::Bitmask(_) => 13,
        Expr::DynArrayLen(_) => 14,
        Expr::Hex { concat: true, .. } => 15,
        Expr::Cpumask(_) => 16,
    }
}

fn ip4(out: &mut Vec<u8>, i: u8, reverse: bool, b: &[u8]) {
    let o: [u8; 4] = if reverse { [b[3], b[2], b[1], b[0]] } else { [b[0], b[1], b[2], b[3]] };
    let _ = if i == b'i' {
        write!(out, "{:03}.{:03}.{:03}.{:03}", o[0], o[1], o[2], o[3])
    } else {
        write!(out, "{}.{}.{}.{}", o[0], o[1], o[2], o[3])
    };
}

fn ip6(out: &mut Vec<u8>, i: u8, b: &[u8]) {
    for j in (0..16).step_by(2) {
        let _ = write!(out, "{:02x}{:02x}", b[j], b[j + 1]);
        if i == b'I' && j < 14 {
            out.push(b':');
        }
    }
}

fn ip6c(out: &mut Vec<u8>, a: &[u8]) {
    let w = |k: usize| u16::from_be_bytes([a[2 * k], a[2 * k + 1]]);
    let w32 = |k: usize| u32::from_be_bytes([a[4 * k], a[4 * k + 1], a[4 * k + 2], a[4 * k + 3]]);
    let mapped = w32(0) | w32(1) == 0 && w32(2) == 0x0000_ffff;
    let isatap = w32(2) | 0x0200_0000 == 0x0200_5efe;
    let use4 = mapped || isatap;
    let range = if use4 { 6 } else { 8 };
    let mut zl = [0u8; 8];
    for (i, z) in zl.iter_mut().enumerate().take(range) {
        *z = (i..range).take_while(|&j| w(j) == 0).count() as u8;
    }
    let mut longest = 1;
    let mut colonpos: isize = -1;
    for (i, &z) in zl.iter().enumerate().take(range) {
        if z > longest {
            longest = z;
            colonpos = i as isize;
        }
    }
    if longest == 1 {
        colonpos = -1;
    }
    let mut needcolon = false;
    let mut i = 0;
    while i < range {
        if i as isize == colonpos {
            if needcolon || i == 0 {
                out.push(b':');
            }
            out.push(b':');
            needcolon = false;
            i += usize::from(longest);
            continue;
        }
        if needcolon {
            out.push(b':');
        }
        let word = w(i);
        let (hi, lo) = (word >> 8, word & 0xff);
        let _ = if hi != 0 { write!(out, "{hi:x}{lo:02x}") } else { write!(out, "{lo:x}") };
        needcolon = true;
        i += 1;
    }
    if use4 {
        if needcolon {
            out.push(b':');
        }
        ip4(out, b'I', false, &a[12..16]);
    }
}

/// `print_bitmask_to_seq`: hex bytes, most significant first, a comma every 32 bits.
fn bitmask_hex(out: &mut Vec<u8>, b: &[u8], endian: Endian) {
    let n = b.len();
    let mut groups: Vec<String> = Vec::new();
    let mut cur = String::new();
    for k in 0..n {
        let idx = if endian == Endian::Big { n - (k + 1) } else { k };
        cur.insert_str(0, &format!("{:02x}", b[idx]));
        if (k + 1) % 4 == 0 && k + 1 < n {
            groups.push(core::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        groups.push(cur);
    }
    for (i, g) in groups.iter().rev().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push_str(g);
    }
}

/// `print_cpumask_to_seq`: the set bits as a CPU list (`0-3,8`).
fn cpumask_list(out: &mut Vec<u8>, b: &[u8], endian: Endian) {
    let n = b.len();
    let bit = |i: usize| {
        let byte = i / 8;
        let idx = if endian == Endian::Big { n - (byte + 1) } else { byte };
        b[idx] >> (i % 8) & 1 == 1
    };
    let nbits = n * 8;
    let mut first = true;
    let mut i = 0;
    while i < nbits {
        if !bit(i) {
            i += 1;
            continue;
        }
        let start = i;
        while i + 1 < nbits && bit(i + 1) {
            i += 1;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        let _ = write!(out, "{start}");
        if i > start {
            let _ = write!(out, "-{i}");
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn plain_hex_numbers_match_printf() {
        for &v in &[0u64, 1, 9, 10, 15, 16, 0xabc, 0x7ffd_1234_5678, u64::MAX, 1 << 63, 0x0123_4567_89ab_cdef] {
            for (spec, want) in [
                ("%lx", format!("{v:x}")),
                ("%16lx", format!("{v:16x}")),
                ("%016llx", format!("{v:016x}")),
                ("%llX", format!("{v:X}")),
                ("%32lx", format!("{v:32x}")),
                ("%x", format!("{:x}", v as u32)),
            ] {
                let mut out = b"<".to_vec();
                super::CSpec::parse(spec).write_int(&mut out, v, None);
                assert_eq!(String::from_utf8(out).unwrap(), format!("<{want}"), "{spec} of {v:#x}");
            }
        }
    }

    use crate::format::{EventFormat, EventFormats};
    use crate::header::PageHeader;
    use crate::print::{Dialect, PrintContext};
    use crate::symbols::Symbols;
    use crate::Endian;

    use crate::format::tests::COMMON;

    fn event(system: &str, name: &str, fields: &str, fmt: &str) -> EventFormat {
        let text = format!("name: {name}\nID: 99\nformat:\n{COMMON}\n{fields}\nprint fmt: {fmt}\n");
        EventFormat::parse(system, &text, Endian::Little).unwrap()
    }

    fn payload(len: usize, parts: &[(usize, &[u8])]) -> Vec<u8> {
        let mut d = vec![0u8; len];
        d[0..2].copy_from_slice(&99u16.to_le_bytes());
        for (off, b) in parts {
            d[*off..*off + b.len()].copy_from_slice(b);
        }
        d
    }

    fn lte(syms: Option<&Symbols>) -> PrintContext<'_> {
        PrintContext { long_size: 8, endian: Endian::Little, dialect: Dialect::LibTraceEvent, symbols: syms }
    }

    fn info(ev: &EventFormat, d: &[u8], ctx: &PrintContext) -> String {
        let mut s = String::new();
        ev.print_info(d, ctx, &mut s);
        s
    }

    #[test]
    fn only_events_that_can_print_symbols_want_kallsyms() {
        let args = "\tfield:long id;\toffset:8;\tsize:8;\tsigned:1;\n\tfield:unsigned long args[6];\toffset:16;\tsize:48;\tsigned:0;\n";
        let sys_enter =
            event("raw_syscalls", "sys_enter", args, "\"NR %ld (%lx, %lx)\", REC->id, REC->args[0], REC->args[1]");
        assert!(!sys_enter.lte_wants_symbols(8));
        let f = "\tfield:void * function;\toffset:8;\tsize:8;\tsigned:0;\n";
        assert!(event("workqueue", "workqueue_execute_start", f, "\"func=%ps\", REC->function").lte_wants_symbols(8));
        assert!(event("t", "e", f, "\"mode=%d\", HRTIMER_MODE_ABS").lte_wants_symbols(8));
        assert!(event("timer", "hrtimer_start", f, "\"%p\", REC->function").lte_wants_symbols(8));
        assert!(!event("t", "e", f, "\"%p\", REC->function").lte_wants_symbols(8));
    }

    #[test]
    fn parenthesised_right_operand_rotates_like_libtraceevent() {
        // trace-cmd prints `flags=D|P|I` for timer_start with no flag set: its parser turns
        // `flags & (M | D | P | I)` into `(flags & M) | D | P | I`.
        let ev = event(
            "timer",
            "timer_start",
            "\tfield:unsigned int flags;\toffset:8;\tsize:4;\tsigned:0;\n",
            "\"idx=%u flags=%s\", REC->flags >> 22, __print_flags(REC->flags & (0x00040000 | 0x00080000 | 0x00100000 | 0x00200000), \"|\", { 0x00040000, \"M\" }, { 0x00080000, \"D\" }, { 0x00100000, \"P\" }, { 0x00200000, \"I\" })",
        );
        let d = payload(12, &[(8, &(16u32 << 22).to_le_bytes())]);
        assert_eq!(info(&ev, &d, &lte(None)), "idx=16 flags=D|P|I");
        let d = payload(12, &[(8, &(16u32 << 22 | 0x40000).to_le_bytes())]);
        assert_eq!(info(&ev, &d, &lte(None)), "idx=16 flags=M|D|P|I");
        // `a * -b` rotates the unary minus above the product: (a * 0) - b.
        let ev = event("t", "e", "\tfield:int a;\toffset:8;\tsize:4;\tsigned:1;\n", "\"%d\", 3 * -REC->a");
        let d = payload(12, &[(8, &2i32.to_le_bytes())]);
        assert_eq!(info(&ev, &d, &lte(None)), "-2");
    }

    #[test]
    fn unsigned_evaluation_casts_and_unknown_conversions() {
        let ev = event(
            "t",
            "e",
            "\tfield:int a;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:unsigned long b;\toffset:16;\tsize:8;\tsigned:0;\n",
            "\"%d %ld %d %x %s %lu %#x %#o %5.3d|%-4d| %c %+d\", REC->a, (long)REC->a, (int)REC->a < 0, REC->b ^ 3, REC->a < 0 ? \"neg\" : \"pos\", (unsigned char)REC->b, 0, 0, 7, 1, 65, REC->a",
        );
        let d = payload(24, &[(8, &(-5i32).to_le_bytes()), (16, &0x1234u64.to_le_bytes())]);
        // Fields are read zero-extended and compared unsigned; `%c` and `%+d` are not
        // conversions to libtraceevent 1.7.1 and print as `>c<` / `>+<`; `^` of a field evaluates
        // to 0 (only constants fold).
        assert_eq!(info(&ev, &d, &lte(None)), "-5 4294967291 0 0 pos 52 0 0   007|1   | >c< >+<d");
    }

    #[test]
    fn plain_integer_conversions_pad_like_glibc() {
        let ev = event(
            "t",
            "e",
            "\tfield:int a;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:unsigned long args[2];\toffset:16;\tsize:16;\tsigned:0;\n",
            "\"%05d|%5d|%d|%2d|%x|0x%08lx|%X|%o|%3u|%ld|%lx|%hhd|%020lu\", REC->a, REC->a, REC->a, REC->a, 255, ((unsigned long)(REC->args[0])), 255, 8, 7, REC->args[1], REC->args[1], REC->a, REC->args[1]",
        );
        let d =
            payload(32, &[(8, &(-5i32).to_le_bytes()), (16, &0x1234u64.to_le_bytes()), (24, &u64::MAX.to_le_bytes())]);
        assert_eq!(
            info(&ev, &d, &lte(None)),
            "-0005|   -5|-5|-5|ff|0x00001234|FF|10|  7|-1|ffffffffffffffff|-5|18446744073709551615"
        );
        let d = payload(32, &[(8, &123_456i32.to_le_bytes())]);
        assert_eq!(
            info(&ev, &d, &lte(None)),
            "123456|123456|123456|123456|ff|0x00000000|FF|10|  7|0|0|64|00000000000000000000"
        );
    }

    #[test]
    fn symbolic_tables_and_failed_events() {
        let ev = event(
            "t",
            "e",
            "\tfield:int mode;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:char comm[8];\toffset:12;\tsize:8;\tsigned:0;\n",
            "\"mode=%s x=%s\", __print_symbolic(REC->mode, { HRTIMER_MODE_ABS, \"ABS\" }, { 1, \"REL\" }), __print_symbolic(REC->mode, { TIMER_SOFTIRQ, \"TIMER\" })",
        );
        let d = payload(20, &[(8, &1i32.to_le_bytes())]);
        assert_eq!(info(&ev, &d, &lte(None)), "mode=REL x=TIMER");
        let d = payload(20, &[(8, &0i32.to_le_bytes())]);
        assert_eq!(info(&ev, &d, &lte(None)), "mode=0x0 x=0x0");
        // An unknown helper fails the whole event: raw fields after [FAILED TO PARSE].
        let ev = event(
            "t",
            "e",
            "\tfield:int mode;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:char comm[8];\toffset:12;\tsize:8;\tsigned:0;\n",
            "\"%d\", mystery(REC->mode)",
        );
        let d = payload(20, &[(8, &(-1i32).to_le_bytes()), (12, b"cat\0")]);
        assert_eq!(info(&ev, &d, &lte(None)), "[FAILED TO PARSE] mode=-1 comm=cat");
    }

    #[test]
    fn plugins_and_comm_registration() {
        let sched = include_str!("../../tests/data/sched_switch.format");
        let mut r = EventFormats::new(PageHeader::standard(8, Endian::Little, 4096).unwrap());
        r.set_dialect(Dialect::LibTraceEvent);
        let id = r.add_format("sched", sched).unwrap();
        let f = r.by_id(id).unwrap();
        let off = |n: &str| f.field(n).unwrap().offset;
        let mut d = vec![0u8; 64];
        d[0..2].copy_from_slice(&(id as u16).to_le_bytes());
        d[off("prev_comm")..off("prev_comm") + 5].copy_from_slice(b"bash\0");
        d[off("prev_pid")..off("prev_pid") + 4].copy_from_slice(&4242i32.to_le_bytes());
        d[off("prev_prio")..off("prev_prio") + 4].copy_from_slice(&120i32.to_le_bytes());
        d[off("prev_state")..off("prev_state") + 8].copy_from_slice(&0x101u64.to_le_bytes());
        d[off("next_comm")..off("next_comm") + 12].copy_from_slice(b"migration/1\0");
        d[off("next_pid")..off("next_pid") + 4].copy_from_slice(&21i32.to_le_bytes());
        let mut s = String::new();
        r.print_info(&d, &mut s);
        assert_eq!(s, "bash:4242 [120] S ==> migration/1:21 [0]");
        assert_eq!(r.comm(4242), "<...>");
        r.note_record(&d);
        assert_eq!((r.comm(4242), r.comm(21)), ("bash", "migration/1"));

        let mut syms = Symbols::new();
        syms.parse_kallsyms("ffffffff814330e0 T tick_nohz_handler\nffffffff81433200 T other\n");
        let ev = event(
            "timer",
            "hrtimer_start",
            "\tfield:void * hrtimer;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:void * function;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:s64 expires;\toffset:24;\tsize:8;\tsigned:1;\n\tfield:s64 softexpires;\toffset:32;\tsize:8;\tsigned:1;\n",
            "\"hrtimer=%p\", REC->hrtimer",
        );
        let d = payload(
            40,
            &[
                (8, &0xffff_8886_27c1_c6f8u64.to_le_bytes()),
                (16, &0xffff_ffff_8143_30e0u64.to_le_bytes()),
                (24, &5u64.to_le_bytes()),
                (32, &6u64.to_le_bytes()),
            ],
        );
        assert_eq!(
            info(&ev, &d, &lte(Some(&syms))),
            "hrtimer=0xffff888627c1c6f8 function=tick_nohz_handler/0x0 expires=5 softexpires=6"
        );

        let ev = event(
            "syscalls",
            "sys_enter_futex",
            "\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:u32 * uaddr;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:int op;\toffset:24;\tsize:8;\tsigned:0;\n\tfield:u32 val;\toffset:32;\tsize:8;\tsigned:0;\n\tfield:const struct __kernel_timespec * utime;\toffset:40;\tsize:8;\tsigned:0;\n\tfield:u32 * uaddr2;\toffset:48;\tsize:8;\tsigned:0;\n\tfield:u32 val3;\toffset:56;\tsize:8;\tsigned:0;\n",
            "\"uaddr: 0x%08lx\", ((unsigned long)(REC->uaddr))",
        );
        let d = payload(
            64,
            &[
                (16, &0x7fc3_10c5_2a4cu64.to_le_bytes()),
                (24, &0x81u64.to_le_bytes()),
                (32, &0x7fff_ffffu64.to_le_bytes()),
            ],
        );
        assert_eq!(info(&ev, &d, &lte(None)), "op=FUTEX_WAKE|FUTEX_PRIVATE_FLAG uaddr=0x7fc310c52a4c val=2147483647");
    }

    #[test]
    fn kallsyms_lookup_follows_libtraceevent() {
        let mut s = Symbols::new();
        // Aliases at one address: inside the range the first listed in the file wins;
        // absolute symbols are ignored.
        s.parse_kallsyms(
            "ffffffff81000000 T first\nffffffff81000000 T second\nffffffff81000080 A abs\nffffffff81000100 T next\n",
        );
        assert_eq!(s.lte_find_func(0xffff_ffff_8100_0010), Some(("first", 0xffff_ffff_8100_0000)));
        assert_eq!(s.lte_find_func(0xffff_ffff_8100_0100).map(|f| f.0), Some("next"));
        assert_eq!(s.lte_find_func(0xffff_ffff_8100_0200), None, "past the last symbol");
        assert_eq!(s.lte_symbol_addr("next"), Some(0xffff_ffff_8100_0100));
        s.parse_printk_formats("0xffffffff8281a5be : \"Start scheduler-tick\\n\"\n");
        assert_eq!(s.lte_printk(0xffff_ffff_8281_a5be), Some("Start scheduler-tick"));
    }
}
