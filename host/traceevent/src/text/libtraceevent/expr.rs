//! Print args ready for evaluation: libtraceevent's parse tree lowered to [`Expr`], with
//! field names resolved once; [`Load`], the plain record reads most arguments are; and the
//! C number readers libtraceevent uses (`strtoull`, `strtoll`, its cast masks).

use super::parse::Node;
use super::{EventText, FormatField};
use crate::endian::Endian;
use crate::symbols::Symbols;
use crate::text::tokens::is_space;

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
pub(super) fn strtoull(s: &str) -> u64 {
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

/// `strtoll(s, NULL, 0)`: saturating, stops at the first character that is not a digit.
pub(super) fn strtoll(s: &str) -> i64 {
    let t = s.trim_start_matches(is_space_char);
    let (neg, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (mag, overflow) = parse_c_uint(body);
    if neg {
        if overflow || mag > i64::MAX as u64 + 1 {
            i64::MIN
        } else {
            (mag as i64).wrapping_neg()
        }
    } else if overflow || mag > i64::MAX as u64 {
        i64::MAX
    } else {
        mag as i64
    }
}

/// C's `isspace` of an ASCII character.
fn is_space_char(c: char) -> bool {
    c.is_ascii() && is_space(c as u8)
}

/// What a cast does to a value in libtraceevent (`eval_type_str`): mask it or leave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Mask(pub(super) u64);

impl Mask {
    pub(super) fn apply(self, v: u64) -> u64 {
        v & self.0
    }
}

/// The mask a cast to `ty` applies (`pointer`: the cast's type as the base of an index).
pub(super) fn cast_mask(ty: &str, pointer: bool) -> Mask {
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
pub(super) enum ArraySource {
    /// A dynamic array field (by index among the event's fields).
    Dynamic(usize),
    /// A field, if the event has it.
    Field(Option<usize>),
    /// Anything else: nothing is printed.
    Other,
}

/// A print arg ready for evaluation (libtraceevent's `struct tep_print_arg`, with field
/// names resolved to indexes among the event's fields).
#[derive(Debug)]
pub(super) enum Expr {
    /// An empty operand (the left side of a unary operator).
    Null,
    /// A number, or a name libtraceevent looks up in kallsyms (`"R"` too: a string
    /// literal is an atom). The lookup is made the first time the value is needed: most
    /// such atoms are only ever printed as text, and a trace that needs no symbol never
    /// parses kallsyms.
    Atom {
        text: String,
        num: std::sync::OnceLock<u64>,
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
        src: ArraySource,
        size: Box<Expr>,
        concat: bool,
    },
    IntArray {
        src: ArraySource,
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

/// What `base[index]` indexes.
#[derive(Debug)]
pub(super) enum IndexBase {
    /// A dynamic array field.
    Dynamic(usize),
    /// A field, if the event has it.
    Field(Option<usize>),
    /// Anything else: the value is 0.
    Other,
}

/// libtraceevent's `enum tep_print_arg_type` number of an argument.
pub(super) fn arg_type(e: &Expr) -> u32 {
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

/// Whether every byte of the record that evaluating or printing `e` may read is at or past
/// `start`, or at a `__data_loc` target (checked per record, see `InfoKey`): false for an
/// index computed from the record, or one that reaches below `start`.
pub(super) fn reads_from(e: &Expr, fields: &[FormatField], start: usize) -> bool {
    let index_ok = match e {
        Expr::Index { base, idx, .. } => {
            let constant = match Load::of(idx, fields) {
                Some(Load::Const(n)) => Some(n),
                _ => None,
            };
            match (base, constant) {
                (IndexBase::Field(Some(i)), Some(n)) => fields
                    .get(*i)
                    .and_then(|f| usize::try_from(n).ok()?.checked_mul(f.elem)?.checked_add(f.offset))
                    .is_some_and(|at| at >= start),
                // Past a checked target, by less than a record.
                (IndexBase::Dynamic(_), Some(n)) => n < 1 << 16,
                // Evaluates to 0 without reading.
                (IndexBase::Field(None) | IndexBase::Other, _) => true,
                _ => false,
            }
        }
        _ => true,
    };
    let mut ok = index_ok;
    e.for_each_child(&mut |x| ok = ok && reads_from(x, fields, start));
    ok
}

/// Adds the indexes (among the event's fields) of every field `e` reads to `out`.
pub(super) fn fields_read(e: &Expr, out: &mut Vec<usize>) {
    match e {
        Expr::Field(Some(i)) | Expr::Str(Some(i)) | Expr::Bitmask(Some(i)) | Expr::Cpumask(Some(i)) => out.push(*i),
        Expr::DynArray(i) | Expr::DynArrayLen(i) => out.push(*i),
        Expr::Index { base: IndexBase::Dynamic(i) | IndexBase::Field(Some(i)), .. } => out.push(*i),
        Expr::Hex { src: ArraySource::Dynamic(i) | ArraySource::Field(Some(i)), .. }
        | Expr::IntArray { src: ArraySource::Dynamic(i) | ArraySource::Field(Some(i)), .. } => out.push(*i),
        _ => {}
    }
    e.for_each_child(&mut |x| fields_read(x, out));
}

impl Expr {
    /// Calls `f` on each expression directly inside this one.
    fn for_each_child(&self, f: &mut dyn FnMut(&Expr)) {
        match self {
            Expr::Flags { val, .. } | Expr::Symbol { val, .. } => f(val),
            Expr::Hex { size, .. } => f(size),
            Expr::IntArray { count, el, .. } => {
                f(count);
                f(el);
            }
            Expr::Cast { item, .. } => f(item),
            Expr::Index { idx, .. } => f(idx),
            Expr::Cond(c, a, b) => {
                f(c);
                f(a);
                f(b);
            }
            Expr::Bin { l, r, .. } => {
                f(l);
                f(r);
            }
            Expr::Func { args, .. } => args.iter().for_each(f),
            Expr::Null
            | Expr::Atom { .. }
            | Expr::Field(_)
            | Expr::Str(_)
            | Expr::Bitmask(_)
            | Expr::Cpumask(_)
            | Expr::DynArray(_)
            | Expr::DynArrayLen(_) => {}
        }
    }
}

/// A numeric argument that is a plain read of the record (`REC->field`, `REC->array[N]`,
/// constants, and casts of those), resolved when the event is compiled: what
/// [`RecordContext::eval`] gives for it, without walking the expression for every record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Load {
    Const(u64),
    /// `size` bytes at `off` (0 if they are not all in the record or `size` is not 1, 2, 4
    /// or 8), shifted right by `shift` (less than 64), then masked: `MAJOR(dev)` and
    /// `MINOR(dev)`, `(REC->ioprio >> 3) & 0x3ff` and casts of them.
    Read {
        off: usize,
        size: usize,
        shift: u32,
        mask: u64,
    },
}

impl Load {
    /// The load `e` evaluates to, if it is one.
    pub(super) fn of(e: &Expr, fields: &[FormatField]) -> Option<Load> {
        Some(match e {
            Expr::Null => Load::Const(0),
            Expr::Atom { num, .. } => Load::Const(*num.get()?),
            Expr::Field(None) => Load::Const(0),
            Expr::Field(Some(i)) => {
                let f = fields.get(*i)?;
                Load::Read { off: f.offset, size: f.size, shift: 0, mask: u64::MAX }
            }
            Expr::Cast { mask, item } => match Load::of(item, fields)? {
                Load::Const(v) => Load::Const(mask.apply(v)),
                Load::Read { off, size, shift, mask: m } => Load::Read { off, size, shift, mask: m & mask.0 },
            },
            // What `eval` computes, folded: constants with anything, and a read shifted right
            // or masked by a constant (`wrapping_shr` takes the count mod 64, as eval does).
            Expr::Bin { op, l, r } => match (Load::of(l, fields)?, Load::of(r, fields)?) {
                (Load::Const(x), Load::Const(y)) => Load::Const(super::eval::bin_op(*op, x, y)),
                (Load::Read { off, size, shift, mask }, Load::Const(c)) if *op == [b'>', b'>'] => {
                    let c = (c as u32) & 63;
                    if shift + c >= 64 {
                        Load::Const(0)
                    } else {
                        Load::Read { off, size, shift: shift + c, mask: mask >> c }
                    }
                }
                (Load::Read { off, size, shift, mask }, Load::Const(c))
                | (Load::Const(c), Load::Read { off, size, shift, mask })
                    if *op == [b'&', 0] =>
                {
                    Load::Read { off, size, shift, mask: mask & c }
                }
                _ => return None,
            },
            Expr::Index { cast, base: IndexBase::Field(Some(i)), idx } => {
                let Load::Const(right) = Load::of(idx, fields)? else {
                    return None;
                };
                let f = fields.get(*i)?;
                let off = f.offset.wrapping_add((right as usize).wrapping_mul(f.elem));
                Load::Read { off, size: f.elem, shift: 0, mask: cast.map_or(u64::MAX, |m| m.0) }
            }
            Expr::Index { base: IndexBase::Field(None) | IndexBase::Other, .. } => Load::Const(0),
            _ => return None,
        })
    }

    #[inline]
    pub(super) fn get(self, data: &[u8], endian: Endian) -> u64 {
        match self {
            Load::Const(v) => v,
            Load::Read { off, size, shift, mask } => {
                // Nearly always: a little-endian record with eight bytes from `off` on. One
                // load, cut to the size by a mask (0 for a size that reads as 0 below).
                const SIZE_MASK: [u64; 9] = [0, 0xff, 0xffff, 0, 0xffff_ffff, 0, 0, 0, u64::MAX];
                if let (Endian::Little, Some(w)) = (endian, data.get(off..).and_then(|d| d.first_chunk::<8>())) {
                    return (u64::from_le_bytes(*w) & SIZE_MASK.get(size).copied().unwrap_or(0)) >> shift & mask;
                }
                match off.checked_add(size) {
                    Some(end) if end <= data.len() => endian.read_uint(data, off, size).unwrap_or(0) >> shift & mask,
                    _ => 0,
                }
            }
        }
    }
}

/// Turns parse nodes into evaluation nodes, resolving field names and atoms once.
pub(super) struct Lower<'a> {
    pub(super) nodes: &'a [Node],
    pub(super) event: &'a EventText,
    pub(super) symbols: Option<&'a Symbols>,
    /// Set when a name had to be looked up in the symbols.
    pub(super) looked_up: bool,
}

impl Lower<'_> {
    fn flag_table(list: &[(String, String)]) -> Vec<(i64, String)> {
        list.iter().map(|(v, s)| (eval_flag(v), s.clone())).collect()
    }

    fn source(&mut self, id: usize) -> ArraySource {
        match &self.nodes[id] {
            Node::DynArray(n) => ArraySource::Dynamic(self.event.own_field(n).unwrap_or(0)),
            Node::Field(n) => ArraySource::Field(self.event.any_field(n)),
            _ => ArraySource::Other,
        }
    }

    fn lower_opt(&mut self, id: Option<usize>) -> Expr {
        id.map_or(Expr::Null, |i| self.lower(i))
    }

    pub(super) fn lower(&mut self, id: usize) -> Expr {
        match &self.nodes[id] {
            Node::Null => Expr::Null,
            Node::Atom(a) => {
                let num = std::sync::OnceLock::new();
                let n = strtoull(a);
                if n == 0 && !a.as_bytes().first().is_some_and(u8::is_ascii_digit) {
                    // Looked up when first evaluated (`RecordContext::eval`); without
                    // symbols it is 0.
                    self.looked_up = true;
                    if self.symbols.is_none() {
                        let _ = num.set(0);
                    }
                } else {
                    let _ = num.set(n);
                }
                Expr::Atom { text: a.clone(), num }
            }
            Node::Field(n) => Expr::Field(self.event.any_field(n)),
            Node::Flags { field, delim, list } => {
                Expr::Flags { val: Box::new(self.lower(*field)), delim: delim.clone(), list: Self::flag_table(list) }
            }
            Node::Symbol { field, list } => {
                Expr::Symbol { val: Box::new(self.lower(*field)), list: Self::flag_table(list) }
            }
            Node::Hex { field, size, concat } => {
                Expr::Hex { src: self.source(*field), size: Box::new(self.lower(*size)), concat: *concat }
            }
            Node::IntArray { field, count, el_size } => Expr::IntArray {
                src: self.source(*field),
                count: Box::new(self.lower(*count)),
                el: Box::new(self.lower(*el_size)),
            },
            Node::Type { ty, item } => Expr::Cast { mask: cast_mask(ty, false), item: Box::new(self.lower(*item)) },
            Node::Str(n) => Expr::Str(self.event.any_field(n)),
            Node::Bitmask(n) => Expr::Bitmask(self.event.any_field(n)),
            Node::Cpumask(n) => Expr::Cpumask(self.event.any_field(n)),
            Node::DynArray(n) => Expr::DynArray(self.event.own_field(n).unwrap_or(0)),
            Node::DynArrayLen(n) => Expr::DynArrayLen(self.event.own_field(n).unwrap_or(0)),
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
                        (_, Node::DynArray(n)) => IndexBase::Dynamic(self.event.own_field(n).unwrap_or(0)),
                        (_, Node::Field(n)) => IndexBase::Field(self.event.any_field(n)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_reads_what_the_field_holds_at_any_offset_size_and_byte_order() {
        let data: Vec<u8> = (1..=24u8).map(|b| b.wrapping_mul(37)).collect();
        for endian in [Endian::Little, Endian::Big] {
            for size in 0..=16 {
                for off in 0..data.len() + 2 {
                    for (shift, mask) in [(0, u64::MAX), (3, 0x3ff), (20, u64::MAX)] {
                        let want = match off.checked_add(size) {
                            Some(end) if end <= data.len() => {
                                endian.read_uint(&data, off, size).unwrap_or(0) >> shift & mask
                            }
                            _ => 0,
                        };
                        let got = Load::Read { off, size, shift, mask }.get(&data, endian);
                        assert_eq!(got, want, "{endian:?} size {size} at {off}, >> {shift} & {mask:#x}");
                    }
                }
            }
        }
    }
}
