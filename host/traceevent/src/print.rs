//! Print fmt evaluation: the text the kernel's `trace` file shows after `name: `.
//!
//! A print fmt is a printf format string plus C argument expressions over the record
//! (`REC->field`), literals, arithmetic, casts, `sizeof` and the kernel's helper macros
//! (`__get_str`, `__print_flags`, `__print_symbolic`, `__print_hex`, `__print_array`,
//! `__get_bitmask`/`__get_cpumask`, `__get_dynamic_array[_len]`, their `rel` variants, ...).
//! [`Program::compile`] parses both once per event format; [`Program::eval`] runs them over a
//! record payload and appends the text to a `String`, allocating nothing else.
//!
//! Numbers follow the kernel's `vsnprintf`, not glibc's (`%#x` of 0 is `0x0`, a zero flag
//! survives a precision). Plain `%p` prints like the kernel with the `hash-ptr` trace option
//! off (`%px`: zero-padded hex, no `0x`); symbol extensions (`%pS`, `%ps`, ...) resolve
//! through kallsyms when it is loaded, else print `0x<hex>`. Events the kernel prints with
//! its own code rather than their print fmt are printed its way: syscall events
//! (`sys_openat(dfd: 0xffffff9c, ...)`, `sys_openat -> 0x3`) and the `(ip)` / `(ret <- func)`
//! head of kprobe and uprobe events. What the kernel knows that a format file does not (enum
//! constants it left as names, `vmemmap_base`, statement expressions) cannot be reproduced.
//!
//! Anything that cannot be compiled or evaluated makes [`crate::EventFormat::print_info`]
//! fall back to printing each non-common field as `name=value`: events are never dropped and
//! never shown as `[FAILED TO PARSE]`.
//!
//! [`Dialect::LibTraceEvent`] does not use this evaluator: it reproduces libtraceevent's
//! own parser, evaluator and plugins (see the `lte` module), `[FAILED TO PARSE]` included.

use core::fmt::Write as _;

use crate::endian::{sign_extend, truncate, Endian};
use crate::error::{Error, Result};
use crate::format::ctype::{ctype_of, is_type_word, CType, IntSize, IntTy};
use crate::format::{EventFormat, Field, FieldFlags, FieldLayout, PrintFmt};
use crate::symbols::Symbols;

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

fn perr<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::Print(msg.into()))
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Num(u64, IntTy),
    Str(Vec<u8>),
    Punct(&'static str),
}

const PUNCTS: [&str; 31] = [
    "->", "<<", ">>", "<=", ">=", "==", "!=", "&&", "||", "(", ")", "{", "}", "[", "]", ",", "?", ":", "+", "-", "*",
    "/", "%", "&", "|", "^", "!", "~", "<", ">", ".",
];

fn lex(src: &str) -> Result<Vec<Tok>> {
    let b = src.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Tok::Ident(src[s..i].to_string()));
        } else if c.is_ascii_digit() {
            let s = i;
            while i < b.len() && b[i].is_ascii_alphanumeric() {
                i += 1;
            }
            out.push(lex_number(&src[s..i])?);
        } else if c == b'"' {
            let (lit, rest) = crate::format::unescape_literal(&src[i + 1..])
                .ok_or_else(|| Error::Print("unterminated string".into()))?;
            i = src.len() - rest.len();
            out.push(Tok::Str(lit.into_bytes()));
        } else if c == b'\'' {
            let close = src[i + 1..].find('\'').ok_or_else(|| Error::Print("unterminated char".into()))?;
            let inner = &src[i + 1..i + 1 + close];
            let (lit, _) = crate::format::unescape_literal(&format!("{inner}\""))
                .ok_or_else(|| Error::Print("bad char literal".into()))?;
            let v = lit.chars().next().map_or(0, |c| c as u64);
            out.push(Tok::Num(v, IntTy::INT));
            i += close + 2;
        } else {
            let rest = &src[i..];
            let p = PUNCTS
                .iter()
                .find(|p| rest.starts_with(**p))
                .ok_or_else(|| Error::Print(format!("unexpected character {:?}", c as char)))?;
            out.push(Tok::Punct(p));
            i += p.len();
        }
    }
    Ok(out)
}

fn lex_number(s: &str) -> Result<Tok> {
    let lower = s.to_ascii_lowercase();
    let digits_end = lower.trim_end_matches(['u', 'l']).len();
    let (body, suffix) = lower.split_at(digits_end);
    let (radix, digits) = if let Some(h) = body.strip_prefix("0x") {
        (16, h)
    } else if body.len() > 1 && body.starts_with('0') {
        (8, &body[1..])
    } else {
        (10, body)
    };
    let v = u64::from_str_radix(digits, radix).map_err(|_| Error::Print(format!("bad number {s:?}")))?;
    let unsigned = suffix.contains('u');
    let longs = suffix.matches('l').count();
    let size = match longs {
        0 => {
            let fits_int = v <= i32::MAX as u64 || (radix != 10 || unsigned) && v <= u32::MAX as u64;
            if fits_int {
                IntSize::B4
            } else {
                IntSize::B8
            }
        }
        1 => IntSize::Long,
        _ => IntSize::B8,
    };
    let signed = !(unsigned || radix != 10 && size == IntSize::B4 && v > i32::MAX as u64);
    let signed = signed && !(size == IntSize::B8 && v > i64::MAX as u64);
    Ok(Tok::Num(v, IntTy { size, signed }))
}

// ---------------------------------------------------------------------------------------------
// Types and values

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ty {
    size: u8,
    signed: bool,
}

impl Ty {
    const INT: Ty = Ty { size: 4, signed: true };
    fn of(t: IntTy, long: u8) -> Ty {
        Ty { size: t.bytes(long), signed: t.signed }
    }
    fn norm(self, v: u64) -> u64 {
        let t = truncate(v, usize::from(self.size));
        if self.signed {
            sign_extend(t, usize::from(self.size)) as u64
        } else {
            t
        }
    }
    fn promote(self) -> Ty {
        if self.size < 4 {
            Ty::INT
        } else {
            self
        }
    }
    fn common(a: Ty, b: Ty) -> Ty {
        let (a, b) = (a.promote(), b.promote());
        if a.signed == b.signed {
            Ty { size: a.size.max(b.size), signed: a.signed }
        } else {
            let (u, s) = if a.signed { (b, a) } else { (a, b) };
            if u.size >= s.size {
                u
            } else {
                s
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Val<'a> {
    /// An integer, normalized to its type (sign- or zero-extended to 64 bits).
    Int(u64, Ty),
    /// Bytes: a string or array from the record or a literal.
    Bytes(&'a [u8]),
    /// Text a helper produces when printed (`__print_flags` etc.).
    Text(&'a Expr),
}

// ---------------------------------------------------------------------------------------------
// Expressions

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Shl,
    Shr,
    And,
    Or,
    Xor,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    LAnd,
    LOr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnOp {
    Neg,
    Plus,
    Not,
    BitNot,
}

/// A compiled argument expression.
#[derive(Debug, Clone)]
enum Expr {
    Num(u64, IntTy),
    Str(Vec<u8>),
    Rec,
    Ident(String),
    Field(FieldLayout),
    Elem(FieldLayout, Box<Expr>),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    Cast(CType, Box<Expr>),
    SizeOf(CType),
    DynStr(FieldLayout),
    DynArray(FieldLayout),
    DynLen(FieldLayout),
    Flags(Box<Expr>, Vec<u8>, Vec<(u64, Vec<u8>)>),
    Symbolic(Box<Expr>, Vec<(u64, Vec<u8>)>),
    Hex(Box<Expr>, Box<Expr>, bool),
    Array(Box<Expr>, Box<Expr>, Box<Expr>),
    Bitmask(Box<Expr>, bool),
}

enum Arg {
    E(Expr),
    Pair(Expr, Expr),
}

struct Parser<'f> {
    toks: Vec<Tok>,
    pos: usize,
    event: &'f EventFormat,
    /// Names the print fmt uses that are not numbers (enum constants the kernel left in).
    unresolved: Vec<String>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn peek_at(&self, n: usize) -> Option<&Tok> {
        self.toks.get(self.pos + n)
    }
    fn is_punct(&self, p: &str) -> bool {
        matches!(self.peek(), Some(Tok::Punct(q)) if *q == p)
    }
    fn eat(&mut self, p: &str) -> bool {
        if self.is_punct(p) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, p: &str) -> Result<()> {
        if self.eat(p) {
            Ok(())
        } else {
            perr(format!("expected {p:?} at {:?}", self.peek()))
        }
    }

    fn field(&self, name: &str) -> Result<&Field> {
        self.event.field(name).ok_or_else(|| Error::Print(format!("unknown field {name}")))
    }

    fn args(&mut self) -> Result<Vec<Expr>> {
        let mut v = Vec::new();
        if self.peek().is_none() {
            return Ok(v);
        }
        loop {
            v.push(self.cond()?);
            if !self.eat(",") {
                break;
            }
        }
        if let Some(t) = self.peek() {
            return perr(format!("unexpected {t:?} after arguments"));
        }
        Ok(v)
    }

    fn cond(&mut self) -> Result<Expr> {
        let c = self.binary(0)?;
        if self.eat("?") {
            let a = self.cond()?;
            self.expect(":")?;
            let b = self.cond()?;
            return Ok(Expr::Cond(Box::new(c), Box::new(a), Box::new(b)));
        }
        Ok(c)
    }

    fn binop(&self) -> Option<(BinOp, u8)> {
        let Some(Tok::Punct(p)) = self.peek() else {
            return None;
        };
        Some(match *p {
            "||" => (BinOp::LOr, 1),
            "&&" => (BinOp::LAnd, 2),
            "|" => (BinOp::Or, 3),
            "^" => (BinOp::Xor, 4),
            "&" => (BinOp::And, 5),
            "==" => (BinOp::Eq, 6),
            "!=" => (BinOp::Ne, 6),
            "<" => (BinOp::Lt, 7),
            "<=" => (BinOp::Le, 7),
            ">" => (BinOp::Gt, 7),
            ">=" => (BinOp::Ge, 7),
            "<<" => (BinOp::Shl, 8),
            ">>" => (BinOp::Shr, 8),
            "+" => (BinOp::Add, 9),
            "-" => (BinOp::Sub, 9),
            "*" => (BinOp::Mul, 10),
            "/" => (BinOp::Div, 10),
            "%" => (BinOp::Rem, 10),
            _ => return None,
        })
    }

    fn binary(&mut self, min: u8) -> Result<Expr> {
        let mut lhs = self.unary()?;
        while let Some((op, prec)) = self.binop() {
            if prec <= min {
                break;
            }
            self.pos += 1;
            let rhs = self.binary(prec)?;
            lhs = Expr::Binary(op, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    /// If a `(` at the cursor opens a type name, returns its words, pointer flag and length.
    fn type_in_parens(&self) -> Option<(Vec<String>, bool, usize)> {
        if !self.is_punct("(") {
            return None;
        }
        let mut words = Vec::new();
        let mut pointer = false;
        let mut n = 1;
        loop {
            match self.peek_at(n)? {
                Tok::Ident(w) => {
                    if pointer {
                        return None;
                    }
                    words.push(w.clone());
                }
                Tok::Punct("*") => pointer = true,
                Tok::Punct(")") => break,
                _ => return None,
            }
            n += 1;
        }
        let first = words.first()?;
        if !is_type_word(first) {
            return None;
        }
        Some((words, pointer, n + 1))
    }

    fn unary(&mut self) -> Result<Expr> {
        let op = match self.peek() {
            Some(Tok::Punct("-")) => Some(UnOp::Neg),
            Some(Tok::Punct("+")) => Some(UnOp::Plus),
            Some(Tok::Punct("!")) => Some(UnOp::Not),
            Some(Tok::Punct("~")) => Some(UnOp::BitNot),
            Some(Tok::Punct("&")) | Some(Tok::Punct("*")) => {
                return perr("address-of and dereference are not supported")
            }
            _ => None,
        };
        if let Some(op) = op {
            self.pos += 1;
            let e = self.unary()?;
            return Ok(Expr::Unary(op, Box::new(e)));
        }
        if let Some((words, pointer, len)) = self.type_in_parens() {
            self.pos += len;
            let e = self.unary()?;
            return Ok(Expr::Cast(ctype_of(&words, pointer), Box::new(e)));
        }
        if matches!(self.peek(), Some(Tok::Ident(w)) if w == "sizeof") {
            self.pos += 1;
            if let Some((words, pointer, len)) = self.type_in_parens() {
                self.pos += len;
                let t = ctype_of(&words, pointer);
                if t == CType::Opaque {
                    return perr(format!("sizeof unknown type {}", words.join(" ")));
                }
                return Ok(Expr::SizeOf(t));
            }
            let e = self.unary()?;
            return match e {
                Expr::Field(l) => Ok(Expr::Num(l.size as u64, IntTy { size: IntSize::Long, signed: false })),
                Expr::Elem(l, _) => Ok(Expr::Num(l.elem_size as u64, IntTy { size: IntSize::Long, signed: false })),
                _ => perr("sizeof of an expression that is not a field"),
            };
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr> {
        let mut e = self.primary()?;
        loop {
            if self.eat("->") || self.eat(".") {
                let Some(Tok::Ident(name)) = self.peek().cloned() else {
                    return perr("expected a field name after ->");
                };
                self.pos += 1;
                if !matches!(e, Expr::Rec) {
                    return perr(format!("member access ->{name} on something other than REC"));
                }
                let f = self.field(&name)?;
                e = Expr::Field(f.layout());
            } else if self.eat("[") {
                let idx = self.cond()?;
                self.expect("]")?;
                let Expr::Field(l) = e else {
                    return perr("indexing something other than an array field");
                };
                if !l.flags.contains(FieldFlags::ARRAY) {
                    return perr("indexing a field that is not an array");
                }
                e = Expr::Elem(l, Box::new(idx));
            } else {
                return Ok(e);
            }
        }
    }

    fn call_args(&mut self) -> Result<Vec<Arg>> {
        self.expect("(")?;
        let mut v = Vec::new();
        if self.eat(")") {
            return Ok(v);
        }
        loop {
            if self.eat("{") {
                if self.eat("}") {
                    // An empty table `{ }`: nothing to match.
                    if self.eat(")") {
                        return Ok(v);
                    }
                    self.expect(",")?;
                    continue;
                }
                let a = self.cond()?;
                self.expect(",")?;
                let b = self.cond()?;
                self.expect("}")?;
                v.push(Arg::Pair(a, b));
            } else {
                v.push(Arg::E(self.cond()?));
            }
            if self.eat(")") {
                return Ok(v);
            }
            self.expect(",")?;
        }
    }

    fn primary(&mut self) -> Result<Expr> {
        let Some(t) = self.peek().cloned() else {
            return perr("unexpected end of arguments");
        };
        self.pos += 1;
        match t {
            Tok::Num(v, ty) => Ok(Expr::Num(v, ty)),
            Tok::Str(mut s) => {
                while let Some(Tok::Str(more)) = self.peek() {
                    s.extend_from_slice(more);
                    self.pos += 1;
                }
                Ok(Expr::Str(s))
            }
            Tok::Punct("(") => {
                let e = self.cond()?;
                self.expect(")")?;
                Ok(e)
            }
            Tok::Ident(name) => {
                if name == "REC" {
                    return Ok(Expr::Rec);
                }
                if self.is_punct("(") {
                    let args = self.call_args()?;
                    return self.helper(&name, args);
                }
                if !self.unresolved.contains(&name) {
                    self.unresolved.push(name.clone());
                }
                Ok(Expr::Ident(name))
            }
            t => perr(format!("unexpected {t:?}")),
        }
    }

    fn helper(&mut self, name: &str, args: Vec<Arg>) -> Result<Expr> {
        let mut unresolved = Vec::new();
        let e = self.helper_inner(name, args, &mut unresolved);
        for n in unresolved {
            if !self.unresolved.contains(&n) {
                self.unresolved.push(n);
            }
        }
        e
    }

    fn helper_inner(&self, name: &str, args: Vec<Arg>, unresolved: &mut Vec<String>) -> Result<Expr> {
        let mut it = args.into_iter();
        let mut next = |what: &str| -> Result<Expr> {
            match it.next() {
                Some(Arg::E(e)) => Ok(e),
                _ => perr(format!("{name}: expected {what}")),
            }
        };
        let field_arg = |e: Expr| -> Result<FieldLayout> {
            match e {
                Expr::Ident(n) => Ok(self.field(&n)?.layout()),
                Expr::Field(l) => Ok(l),
                _ => perr(format!("{name}: expected a field name")),
            }
        };
        let dynamic = |e: Expr| -> Result<FieldLayout> {
            let l = field_arg(e)?;
            if !l.flags.contains(FieldFlags::DYNAMIC) {
                return perr(format!("{name}: field is not __data_loc/__rel_loc"));
            }
            Ok(l)
        };
        let e = match name {
            "__get_str" | "__get_rel_str" => Expr::DynStr(dynamic(next("field")?)?),
            "__get_dynamic_array" | "__get_rel_dynamic_array" | "__get_sockaddr" | "__get_rel_sockaddr" => {
                Expr::DynArray(dynamic(next("field")?)?)
            }
            "__get_dynamic_array_len" | "__get_rel_dynamic_array_len" => Expr::DynLen(dynamic(next("field")?)?),
            "__get_bitmask" | "__get_rel_bitmask" => {
                Expr::Bitmask(Box::new(Expr::DynArray(dynamic(next("field")?)?)), false)
            }
            "__get_cpumask" | "__get_rel_cpumask" => {
                Expr::Bitmask(Box::new(Expr::DynArray(dynamic(next("field")?)?)), true)
            }
            "__builtin_expect" => {
                let a = next("value")?;
                let _ = next("expected value")?;
                a
            }
            "__print_flags" | "__print_flags_u64" | "__print_symbolic" | "__print_symbolic_u64" => {
                let val = next("value")?;
                let delim = if name.starts_with("__print_flags") {
                    match next("delimiter")? {
                        Expr::Str(s) => s,
                        _ => return perr(format!("{name}: delimiter is not a string")),
                    }
                } else {
                    Vec::new()
                };
                let mut table = Vec::new();
                for a in it.by_ref() {
                    let Arg::Pair(k, s) = a else {
                        return perr(format!("{name}: expected {{ value, \"name\" }}"));
                    };
                    let s = match s {
                        Expr::Str(s) => s,
                        // A NULL name ends the kernel's table, like its sentinel entry.
                        s if const_eval(&s) == Some(0) => break,
                        _ => return perr(format!("{name}: table name is not a string")),
                    };
                    // Keys the kernel left as enum names cannot match; skip them.
                    match const_eval(&k) {
                        Some(k) => table.push((k, s)),
                        None => collect_idents(&k, unresolved),
                    }
                }
                if name.starts_with("__print_flags") {
                    Expr::Flags(Box::new(val), delim, table)
                } else {
                    Expr::Symbolic(Box::new(val), table)
                }
            }
            "__print_hex" | "__print_hex_str" => {
                let buf = next("buffer")?;
                let len = next("length")?;
                Expr::Hex(Box::new(buf), Box::new(len), name == "__print_hex_str")
            }
            "__print_array" => {
                let buf = next("array")?;
                let count = next("count")?;
                let size = next("element size")?;
                Expr::Array(Box::new(buf), Box::new(count), Box::new(size))
            }
            _ => return perr(format!("unsupported helper {name}()")),
        };
        if it.next().is_some() {
            return perr(format!("{name}: too many arguments"));
        }
        Ok(e)
    }
}

fn collect_idents(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::Ident(n) if !out.contains(n) => out.push(n.clone()),
        Expr::Unary(_, a) | Expr::Cast(_, a) => collect_idents(a, out),
        Expr::Binary(_, a, b) => {
            collect_idents(a, out);
            collect_idents(b, out);
        }
        Expr::Cond(c, a, b) => {
            collect_idents(c, out);
            collect_idents(a, out);
            collect_idents(b, out);
        }
        _ => {}
    }
}

fn const_eval(e: &Expr) -> Option<u64> {
    let ctx = PrintContext::default();
    match eval(e, &[], &ctx).ok()? {
        Val::Int(v, _) => Some(v),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Format string

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Count {
    None,
    Fixed(usize),
    Star,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Len {
    Hh,
    H,
    Int,
    Long,
    LongLong,
}

#[derive(Debug, Clone, Default, Copy)]
struct Flags {
    left: bool,
    plus: bool,
    space: bool,
    hash: bool,
    zero: bool,
}

#[derive(Debug, Clone)]
struct Spec {
    flags: Flags,
    width: Count,
    prec: Count,
    len: Len,
    conv: u8,
    /// Pointer extension letters after `%p` (e.g. `S`, `I6c`).
    ext: String,
}

#[derive(Debug, Clone)]
enum Seg {
    Lit(String),
    Conv(Spec),
}

fn parse_format(fmt: &str) -> Result<(Vec<Seg>, usize)> {
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
        i += 1;
        if i >= b.len() {
            lit.push('%');
            lit_start = i;
            break;
        }
        if b[i] == b'%' {
            lit.push('%');
            i += 1;
            lit_start = i;
            continue;
        }
        let mut flags = Flags::default();
        while i < b.len() {
            match b[i] {
                b'-' => flags.left = true,
                b'+' => flags.plus = true,
                b' ' => flags.space = true,
                b'#' => flags.hash = true,
                b'0' => flags.zero = true,
                _ => break,
            }
            i += 1;
        }
        let mut count = |i: &mut usize| -> Count {
            if *i < b.len() && b[*i] == b'*' {
                *i += 1;
                nargs += 1;
                return Count::Star;
            }
            let s = *i;
            while *i < b.len() && b[*i].is_ascii_digit() {
                *i += 1;
            }
            if *i == s {
                Count::None
            } else {
                Count::Fixed(fmt[s..*i].parse().unwrap_or(0))
            }
        };
        let width = count(&mut i);
        let prec = if i < b.len() && b[i] == b'.' {
            i += 1;
            match count(&mut i) {
                Count::None => Count::Fixed(0),
                c => c,
            }
        } else {
            Count::None
        };
        let rest = &fmt[i..];
        let (len, n) = if rest.starts_with("hh") {
            (Len::Hh, 2)
        } else if rest.starts_with("ll") {
            (Len::LongLong, 2)
        } else if rest.starts_with('h') {
            (Len::H, 1)
        } else if rest.starts_with(['L', 'q', 'j']) {
            (Len::LongLong, 1)
        } else if rest.starts_with(['l', 'z', 'Z', 't']) {
            (Len::Long, 1)
        } else {
            (Len::Int, 0)
        };
        i += n;
        let Some(&conv) = b.get(i) else {
            return perr("format string ends inside a conversion");
        };
        i += 1;
        let mut ext = String::new();
        match conv {
            b'd' | b'i' | b'u' | b'x' | b'X' | b'o' | b'c' | b's' => {}
            b'p' => {
                let s = i;
                while i < b.len() && b[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                ext.push_str(&fmt[s..i]);
            }
            c => return perr(format!("unsupported conversion %{}", c as char)),
        }
        nargs += 1;
        if !lit.is_empty() {
            segs.push(Seg::Lit(core::mem::take(&mut lit)));
        }
        segs.push(Seg::Conv(Spec { flags, width, prec, len, conv, ext }));
        lit_start = i;
    }
    lit.push_str(&fmt[lit_start.min(fmt.len())..]);
    if !lit.is_empty() {
        segs.push(Seg::Lit(lit));
    }
    Ok((segs, nargs))
}

// ---------------------------------------------------------------------------------------------
// Program

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
        let mut p = Parser { toks: lex(&pf.args)?, pos: 0, event, unresolved: Vec::new() };
        let args = p.args()?;
        if args.len() < nargs {
            return perr(format!("format needs {nargs} arguments, print fmt has {}", args.len()));
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
    /// text; [`crate::EventFormat::print_info`] truncates it and falls back.
    pub fn eval(&self, data: &[u8], ctx: &PrintContext, out: &mut String) -> Result<()> {
        let mut args = self.args.iter();
        let mut next = || args.next().ok_or_else(|| Error::Print("too few arguments".into()));
        for seg in &self.segs {
            match seg {
                Seg::Lit(s) => out.push_str(s),
                Seg::Conv(spec) => {
                    let mut flags = spec.flags;
                    let width = match spec.width {
                        Count::None => 0,
                        Count::Fixed(n) => n,
                        Count::Star => {
                            let w = as_int(eval(next()?, data, ctx)?)? as i64 as i32;
                            if w < 0 {
                                flags.left = true;
                            }
                            w.unsigned_abs() as usize
                        }
                    };
                    let prec = match spec.prec {
                        Count::None => None,
                        Count::Fixed(n) => Some(n),
                        Count::Star => {
                            let p = as_int(eval(next()?, data, ctx)?)? as i64 as i32;
                            usize::try_from(p).ok()
                        }
                    };
                    let v = eval(next()?, data, ctx)?;
                    // The kernel formats into a page-sized trace_seq: no field is wider.
                    let (width, prec) = (width.min(MAX_PAD), prec.map(|p| p.min(MAX_PAD)));
                    format_one(spec, flags, width, prec, v, data, ctx, out)?;
                }
            }
        }
        Ok(())
    }
}

fn as_int(v: Val<'_>) -> Result<u64> {
    match v {
        Val::Int(v, _) => Ok(v),
        _ => perr("expected an integer"),
    }
}

fn int_ty(v: Val<'_>) -> Result<(u64, Ty)> {
    match v {
        Val::Int(v, t) => Ok((v, t)),
        _ => perr("expected an integer"),
    }
}

fn truthy(v: Val<'_>) -> bool {
    match v {
        Val::Int(v, _) => v != 0,
        // Arrays and strings decay to non-null pointers.
        _ => true,
    }
}

fn eval<'a>(e: &'a Expr, data: &'a [u8], ctx: &PrintContext) -> Result<Val<'a>> {
    let long = ctx.long_size;
    Ok(match e {
        Expr::Num(v, t) => {
            let t = Ty::of(*t, long);
            Val::Int(t.norm(*v), t)
        }
        Expr::Str(s) => Val::Bytes(s),
        Expr::Rec => return perr("REC used as a value"),
        Expr::Ident(n) => return perr(format!("unknown symbol {n}")),
        Expr::Field(l) => {
            if l.flags.contains(FieldFlags::ARRAY) || !matches!(l.size, 1 | 2 | 4 | 8) {
                Val::Bytes(l.bytes(data).ok_or_else(|| Error::Print("field out of bounds".into()))?)
            } else {
                let t = Ty { size: l.size as u8, signed: l.flags.contains(FieldFlags::SIGNED) };
                let v = l.read_value(data).ok_or_else(|| Error::Print("field out of bounds".into()))?;
                Val::Int(v, t)
            }
        }
        Expr::Elem(l, idx) => {
            let i = as_int(eval(idx, data, ctx)?)?;
            let v = l.read_element(data, i as usize).ok_or_else(|| Error::Print("array index out of bounds".into()))?;
            let t = Ty { size: l.elem_size as u8, signed: l.flags.contains(FieldFlags::SIGNED) };
            Val::Int(v, t)
        }
        Expr::Unary(op, a) => {
            let v = eval(a, data, ctx)?;
            if *op == UnOp::Not {
                return Ok(Val::Int(u64::from(!truthy(v)), Ty::INT));
            }
            let (v, t) = int_ty(v)?;
            let t = t.promote();
            let r = match op {
                UnOp::Neg => v.wrapping_neg(),
                UnOp::BitNot => !v,
                _ => v,
            };
            Val::Int(t.norm(r), t)
        }
        Expr::Binary(op, a, b) => {
            let a = eval(a, data, ctx)?;
            match op {
                BinOp::LAnd => {
                    let r = truthy(a) && truthy(eval(b, data, ctx)?);
                    return Ok(Val::Int(u64::from(r), Ty::INT));
                }
                BinOp::LOr => {
                    let r = truthy(a) || truthy(eval(b, data, ctx)?);
                    return Ok(Val::Int(u64::from(r), Ty::INT));
                }
                _ => {}
            }
            let (x, tx) = int_ty(a)?;
            let (y, ty) = int_ty(eval(b, data, ctx)?)?;
            binary(*op, x, tx, y, ty)?
        }
        Expr::Cond(c, a, b) => {
            if truthy(eval(c, data, ctx)?) {
                eval(a, data, ctx)?
            } else {
                eval(b, data, ctx)?
            }
        }
        Expr::Cast(t, a) => {
            let v = eval(a, data, ctx)?;
            match (t, v) {
                (CType::Opaque, v) | (CType::Ptr, v @ Val::Bytes(_)) => v,
                (CType::Bool, v) => Val::Int(u64::from(truthy(v)), Ty { size: 1, signed: false }),
                (CType::Ptr, Val::Int(v, _)) => {
                    let t = Ty { size: long, signed: false };
                    Val::Int(t.norm(v), t)
                }
                (CType::Int(it), Val::Int(v, _)) => {
                    let t = Ty::of(*it, long);
                    Val::Int(t.norm(v), t)
                }
                _ => return perr("cast of a non-integer"),
            }
        }
        Expr::SizeOf(t) => {
            let s = t.size(long).ok_or_else(|| Error::Print("sizeof unknown type".into()))?;
            Val::Int(s, Ty { size: long, signed: false })
        }
        Expr::DynStr(l) | Expr::DynArray(l) => {
            Val::Bytes(l.bytes(data).ok_or_else(|| Error::Print("dynamic data out of bounds".into()))?)
        }
        Expr::DynLen(l) => {
            let b = l.bytes(data).ok_or_else(|| Error::Print("dynamic data out of bounds".into()))?;
            Val::Int(b.len() as u64, Ty { size: 4, signed: false })
        }
        Expr::Flags(..) | Expr::Symbolic(..) | Expr::Hex(..) | Expr::Array(..) | Expr::Bitmask(..) => Val::Text(e),
    })
}

fn binary(op: BinOp, x: u64, tx: Ty, y: u64, ty: Ty) -> Result<Val<'static>> {
    let cmp = |r: bool| Val::Int(u64::from(r), Ty::INT);
    if matches!(op, BinOp::Shl | BinOp::Shr) {
        let t = tx.promote();
        let x = t.norm(x);
        let n = (y & 63) as u32;
        let r = match op {
            BinOp::Shl => x << n,
            _ if t.signed => ((x as i64) >> n) as u64,
            _ => x >> n,
        };
        return Ok(Val::Int(t.norm(r), t));
    }
    let t = Ty::common(tx, ty);
    let (x, y) = (t.norm(x), t.norm(y));
    let r = match op {
        BinOp::Add => x.wrapping_add(y),
        BinOp::Sub => x.wrapping_sub(y),
        BinOp::Mul => x.wrapping_mul(y),
        BinOp::Div | BinOp::Rem => {
            if y == 0 {
                return perr("division by zero");
            }
            match (op, t.signed) {
                (BinOp::Div, true) => (x as i64).wrapping_div(y as i64) as u64,
                (BinOp::Div, false) => x / y,
                (_, true) => (x as i64).wrapping_rem(y as i64) as u64,
                _ => x % y,
            }
        }
        BinOp::And => x & y,
        BinOp::Or => x | y,
        BinOp::Xor => x ^ y,
        BinOp::Eq => return Ok(cmp(x == y)),
        BinOp::Ne => return Ok(cmp(x != y)),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let o = if t.signed { (x as i64).cmp(&(y as i64)) } else { x.cmp(&y) };
            let r = match op {
                BinOp::Lt => o.is_lt(),
                BinOp::Le => o.is_le(),
                BinOp::Gt => o.is_gt(),
                _ => o.is_ge(),
            };
            return Ok(cmp(r));
        }
        BinOp::Shl | BinOp::Shr | BinOp::LAnd | BinOp::LOr => unreachable!("handled above"),
    };
    Ok(Val::Int(t.norm(r), t))
}

// ---------------------------------------------------------------------------------------------
// Output

/// Widths and precisions beyond this are cut to it (a trace_seq holds one page).
pub(crate) const MAX_PAD: usize = 4096;

const SPACES: &str = "                                                                ";

fn pad(out: &mut String, c: char, mut n: usize) {
    if c == ' ' {
        while n > 0 {
            let k = n.min(SPACES.len());
            out.push_str(&SPACES[..k]);
            n -= k;
        }
    } else {
        out.extend(core::iter::repeat_n(c, n));
    }
}

fn push_bytes(out: &mut String, b: &[u8]) {
    match core::str::from_utf8(b) {
        Ok(s) => out.push_str(s),
        Err(_) => out.push_str(&String::from_utf8_lossy(b)),
    }
}

/// Writes an integer the way the kernel's `number()` does.
#[allow(clippy::too_many_arguments)]
fn write_number(
    out: &mut String,
    mag: u64,
    neg: bool,
    signed_conv: bool,
    base: u32,
    upper: bool,
    flags: Flags,
    width: usize,
    prec: Option<usize>,
) {
    let mut digits = [0u8; 24];
    let mut n = 0;
    let mut v = mag;
    let table = if upper { b"0123456789ABCDEF" } else { b"0123456789abcdef" };
    loop {
        digits[n] = table[(v % u64::from(base)) as usize];
        n += 1;
        v /= u64::from(base);
        if v == 0 {
            break;
        }
    }
    let sign = if neg {
        Some('-')
    } else if signed_conv && flags.plus {
        Some('+')
    } else if signed_conv && flags.space {
        Some(' ')
    } else {
        None
    };
    let prefix: &str = match (flags.hash, base) {
        (true, 16) if upper => "0X",
        (true, 16) => "0x",
        (true, 8) if mag != 0 => "0",
        _ => "",
    };
    let zero = flags.zero && !flags.left;
    let prec = prec.unwrap_or(0).max(n);
    let used = prec + usize::from(sign.is_some()) + prefix.len();
    let fill = width.saturating_sub(used);
    if !flags.left && !zero {
        pad(out, ' ', fill);
    }
    if let Some(s) = sign {
        out.push(s);
    }
    out.push_str(prefix);
    if zero {
        pad(out, '0', fill);
    }
    pad(out, '0', prec - n);
    for &d in digits[..n].iter().rev() {
        out.push(d as char);
    }
    if flags.left {
        pad(out, ' ', fill);
    }
}

/// Pads text already written at `start..` to `width`, and cuts it to `prec` characters.
fn finish_text(out: &mut String, start: usize, flags: Flags, width: usize, prec: Option<usize>) {
    if let Some(p) = prec {
        if let Some((i, _)) = out[start..].char_indices().nth(p) {
            out.truncate(start + i);
        }
    }
    let len = out[start..].chars().count();
    if len < width {
        if flags.left {
            pad(out, ' ', width - len);
        } else {
            let mut n = width - len;
            while n > 0 {
                let k = n.min(SPACES.len());
                out.insert_str(start, &SPACES[..k]);
                n -= k;
            }
        }
    }
}

fn c_str(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(n) => &b[..n],
        None => b,
    }
}

#[allow(clippy::too_many_arguments)]
fn format_one(
    spec: &Spec,
    flags: Flags,
    width: usize,
    prec: Option<usize>,
    v: Val<'_>,
    data: &[u8],
    ctx: &PrintContext,
    out: &mut String,
) -> Result<()> {
    let long = ctx.long_size;
    let size = match spec.len {
        Len::Hh => 1,
        Len::H => 2,
        Len::Int => 4,
        Len::Long => long,
        Len::LongLong => 8,
    };
    match spec.conv {
        b'd' | b'i' => {
            let x = sign_extend(truncate(as_int(v)?, size.into()), size.into());
            write_number(out, x.unsigned_abs(), x < 0, true, 10, false, flags, width, prec);
        }
        b'u' | b'x' | b'X' | b'o' => {
            let x = truncate(as_int(v)?, size.into());
            let base = match spec.conv {
                b'u' => 10,
                b'o' => 8,
                _ => 16,
            };
            write_number(out, x, false, false, base, spec.conv == b'X', flags, width, prec);
        }
        b'c' => {
            let start = out.len();
            out.push(char::from(as_int(v)? as u8));
            finish_text(out, start, flags, width, None);
        }
        b's' => {
            let start = out.len();
            match v {
                Val::Bytes(b) => push_bytes(out, c_str(b)),
                Val::Text(e) => write_text(e, data, ctx, out)?,
                Val::Int(0, _) => out.push_str("(null)"),
                Val::Int(p, _) => match ctx.symbols.and_then(|s| s.string(p)) {
                    Some(s) => out.push_str(s),
                    None => return perr("%s of a pointer into kernel memory"),
                },
            }
            finish_text(out, start, flags, width, prec);
        }
        b'p' => {
            let start = out.len();
            write_pointer(spec, width, v, data, ctx, out)?;
            // For %*pb and %*ph the width is a count, not padding.
            if !spec.ext.starts_with(['b', 'h']) {
                finish_text(out, start, flags, width, None);
            }
        }
        _ => return perr("unsupported conversion"),
    }
    Ok(())
}

fn write_pointer(
    spec: &Spec,
    width: usize,
    v: Val<'_>,
    data: &[u8],
    ctx: &PrintContext,
    out: &mut String,
) -> Result<()> {
    let ext = spec.ext.as_str();
    let b = match v {
        Val::Int(p, _) => {
            let p = truncate(p, ctx.long_size.into());
            match (ext, ctx.dialect) {
                ("", Dialect::Kernel) => {
                    let _ = write!(out, "{:0w$x}", p, w = usize::from(ctx.long_size) * 2);
                }
                ("", Dialect::LibTraceEvent) if p == 0 => out.push_str("(nil)"),
                (e, _) if e.starts_with(['S', 's', 'F', 'f', 'B']) => write_symbol(out, p, e, ctx),
                _ => {
                    let _ = write!(out, "0x{p:x}");
                }
            }
            return Ok(());
        }
        Val::Bytes(b) => b,
        Val::Text(e) => {
            return write_text(e, data, ctx, out);
        }
    };
    let mut chars = ext.chars();
    match chars.next() {
        Some('M') | Some('m') => {
            let b = b.get(..6).ok_or_else(|| Error::Print("short MAC".into()))?;
            let sep = if ext.starts_with('m') {
                ""
            } else if ext.contains('F') {
                "-"
            } else {
                ":"
            };
            let rev = ext.contains('R');
            for i in 0..6 {
                if i > 0 {
                    out.push_str(sep);
                }
                let _ = write!(out, "{:02x}", b[if rev { 5 - i } else { i }]);
            }
        }
        Some('I') | Some('i') => {
            let lead0 = ext.starts_with('i');
            let rest = &ext[1..];
            if rest.starts_with('4') {
                write_ipv4(out, b.get(..4).ok_or_else(|| Error::Print("short IPv4".into()))?, lead0);
            } else if rest.starts_with('6') {
                let a = b.get(..16).ok_or_else(|| Error::Print("short IPv6".into()))?;
                write_ipv6(out, a, lead0, rest.contains('c'));
            } else if rest.starts_with('S') {
                write_sockaddr(out, b, rest, ctx.endian)?;
            } else {
                return perr(format!("unsupported %p{ext}"));
            }
        }
        Some('U') => {
            let b = b.get(..16).ok_or_else(|| Error::Print("short UUID".into()))?;
            let upper = ext.contains('B') || ext.contains('L');
            let little = ext.contains('l') || ext.contains('L');
            let order: [usize; 16] = if little {
                [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15]
            } else {
                core::array::from_fn(|i| i)
            };
            for (i, &j) in order.iter().enumerate() {
                if matches!(i, 4 | 6 | 8 | 10) {
                    out.push('-');
                }
                if upper {
                    let _ = write!(out, "{:02X}", b[j]);
                } else {
                    let _ = write!(out, "{:02x}", b[j]);
                }
            }
        }
        Some('h') => {
            let n = if width > 0 { width.min(64) } else { 1 };
            let b = b.get(..n).unwrap_or(b);
            let sep = match chars.next() {
                Some('N') => "",
                Some('C') => ":",
                Some('D') => "-",
                _ => " ",
            };
            for (i, x) in b.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                let _ = write!(out, "{x:02x}");
            }
        }
        Some('b') => {
            let nbits = if width > 0 { width } else { b.len() * 8 };
            if ext.starts_with("bl") {
                write_bitmap_list(out, b, nbits, ctx);
            } else {
                write_bitmap_hex(out, b, nbits, ctx);
            }
        }
        Some('S') | Some('s') | Some('F') | Some('f') | Some('B') | None => {
            // A symbol or plain pointer whose value is an array: its address is unknown.
            return perr("pointer value of an array");
        }
        _ => return perr(format!("unsupported %p{ext}")),
    }
    Ok(())
}

/// `%pS`-family output: `name+0xoff/0xsize [module]` (`%ps`: name only), `0x<hex>` if unknown.
fn write_symbol(out: &mut String, p: u64, ext: &str, ctx: &PrintContext) {
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

fn write_ipv4(out: &mut String, a: &[u8], lead0: bool) {
    for (i, x) in a.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if lead0 {
            let _ = write!(out, "{x:03}");
        } else {
            let _ = write!(out, "{x}");
        }
    }
}

fn write_ipv6(out: &mut String, a: &[u8], no_colons: bool, compress: bool) {
    let words: [u16; 8] = core::array::from_fn(|i| u16::from_be_bytes([a[2 * i], a[2 * i + 1]]));
    if no_colons {
        for x in a {
            let _ = write!(out, "{x:02x}");
        }
        return;
    }
    if !compress {
        for (i, w) in words.iter().enumerate() {
            if i > 0 {
                out.push(':');
            }
            let _ = write!(out, "{w:04x}");
        }
        return;
    }
    // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible-looking ISATAP forms print the tail
    // as dotted quad, as the kernel does for mapped addresses.
    let mapped = words[..5].iter().all(|&w| w == 0) && words[5] == 0xffff;
    let n = if mapped { 6 } else { 8 };
    // Longest run of zero words (length > 1) becomes "::".
    let (mut best, mut best_len, mut cur, mut cur_len) = (0, 0, 0, 0);
    for (i, &w) in words[..n].iter().enumerate() {
        if w == 0 {
            if cur_len == 0 {
                cur = i;
            }
            cur_len += 1;
            if cur_len > best_len {
                best = cur;
                best_len = cur_len;
            }
        } else {
            cur_len = 0;
        }
    }
    if best_len < 2 {
        best_len = 0;
    }
    let mut i = 0;
    let mut need_colon = false;
    while i < n {
        if best_len > 0 && i == best {
            out.push_str("::");
            i += best_len;
            need_colon = false;
            continue;
        }
        if need_colon {
            out.push(':');
        }
        let _ = write!(out, "{:x}", words[i]);
        need_colon = true;
        i += 1;
    }
    if mapped {
        if need_colon {
            out.push(':');
        }
        write_ipv4(out, &a[12..16], false);
    }
}

fn write_sockaddr(out: &mut String, b: &[u8], spec: &str, endian: Endian) -> Result<()> {
    let family = endian.read_u16(b, 0).unwrap_or(0);
    let port = b.get(2..4).map(|p| u16::from_be_bytes([p[0], p[1]]));
    let with_port = spec.contains('p');
    match (family, port) {
        (2, Some(port)) => {
            let a = b.get(4..8).ok_or_else(|| Error::Print("short sockaddr_in".into()))?;
            write_ipv4(out, a, false);
            if with_port {
                let _ = write!(out, ":{port}");
            }
        }
        (10, Some(port)) => {
            let a = b.get(8..24).ok_or_else(|| Error::Print("short sockaddr_in6".into()))?;
            if with_port {
                out.push('[');
            }
            write_ipv6(out, a, false, spec.contains('c'));
            if with_port {
                let _ = write!(out, "]:{port}");
            }
        }
        _ => out.push_str("(einval)"),
    }
    Ok(())
}

/// Bit `i` of a kernel bitmap of `unsigned long` words in the data's byte order.
fn bit(b: &[u8], i: usize, ctx: &PrintContext) -> bool {
    let l = usize::from(ctx.long_size);
    let l = if l > 0 && b.len().is_multiple_of(l) { l } else { 1 };
    let word = i / (8 * l);
    let in_word = i % (8 * l);
    let byte = match ctx.endian {
        Endian::Little => in_word / 8,
        Endian::Big => l - 1 - in_word / 8,
    };
    b.get(word * l + byte).is_some_and(|x| x >> (in_word % 8) & 1 == 1)
}

fn write_bitmap_list(out: &mut String, b: &[u8], nbits: usize, ctx: &PrintContext) {
    let nbits = nbits.min(b.len() * 8);
    let mut first = true;
    let mut i = 0;
    while i < nbits {
        if !bit(b, i, ctx) {
            i += 1;
            continue;
        }
        let start = i;
        while i + 1 < nbits && bit(b, i + 1, ctx) {
            i += 1;
        }
        if !first {
            out.push(',');
        }
        first = false;
        if i > start {
            let _ = write!(out, "{start}-{i}");
        } else {
            let _ = write!(out, "{start}");
        }
        i += 1;
    }
}

fn write_bitmap_hex(out: &mut String, b: &[u8], nbits: usize, ctx: &PrintContext) {
    let nbits = nbits.min(b.len() * 8);
    if nbits == 0 {
        return;
    }
    let mut chunk = nbits % 32;
    if chunk == 0 {
        chunk = 32;
    }
    let mut lo = nbits.div_ceil(32) * 32 - 32;
    let mut first = true;
    loop {
        let mut v: u32 = 0;
        for k in (0..chunk).rev() {
            v = v << 1 | u32::from(bit(b, lo + k, ctx));
        }
        if !first {
            out.push(',');
        }
        first = false;
        let _ = write!(out, "{:0w$x}", v, w = chunk.div_ceil(4));
        if lo == 0 {
            break;
        }
        lo -= 32;
        chunk = 32;
    }
}

fn write_text(e: &Expr, data: &[u8], ctx: &PrintContext, out: &mut String) -> Result<()> {
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
                    push_bytes(out, delim);
                }
                first = false;
                push_bytes(out, name);
            }
            if flags != 0 {
                if !first {
                    push_bytes(out, delim);
                }
                let _ = write!(out, "0x{flags:x}");
            }
        }
        Expr::Symbolic(val, table) => {
            let v = truncate(as_int(eval(val, data, ctx)?)?, long);
            match table.iter().find(|(k, _)| truncate(*k, long) == v) {
                Some((_, name)) if !name.is_empty() => push_bytes(out, name),
                _ => {
                    let _ = write!(out, "0x{v:x}");
                }
            }
        }
        Expr::Hex(buf, len, concat) => {
            let b = bytes_of(eval(buf, data, ctx)?)?;
            let n = (as_int(eval(len, data, ctx)?)? as usize).min(b.len());
            for (i, x) in b[..n].iter().enumerate() {
                if i > 0 && !concat {
                    out.push(' ');
                }
                let _ = write!(out, "{x:02x}");
            }
        }
        Expr::Array(buf, count, size) => {
            let b = bytes_of(eval(buf, data, ctx)?)?;
            let count = as_int(eval(count, data, ctx)?)? as usize;
            let size = as_int(eval(size, data, ctx)?)? as usize;
            out.push('{');
            for i in 0..count {
                if i > 0 {
                    out.push(',');
                }
                let off = i.saturating_mul(size);
                match ctx.endian.read_uint(b, off, size) {
                    Some(x) => {
                        let _ = write!(out, "0x{x:x}");
                    }
                    None if !matches!(size, 1 | 2 | 4 | 8) => {
                        let _ = write!(out, "BAD SIZE:{size} 0x{:x}", b.get(off).copied().unwrap_or(0));
                    }
                    None => return perr("__print_array past the end of its buffer"),
                }
            }
            out.push('}');
        }
        Expr::Bitmask(buf, cpumask) => {
            let b = bytes_of(eval(buf, data, ctx)?)?;
            if *cpumask && ctx.dialect == Dialect::LibTraceEvent {
                write_bitmap_list(out, b, b.len() * 8, ctx);
            } else {
                write_bitmap_hex(out, b, b.len() * 8, ctx);
            }
        }
        _ => return perr("not a text helper"),
    }
    Ok(())
}

fn bytes_of(v: Val<'_>) -> Result<&[u8]> {
    match v {
        Val::Bytes(b) => Ok(b),
        _ => perr("expected an array"),
    }
}

// ---------------------------------------------------------------------------------------------
// Syscall events

/// The kernel's own text for `syscalls:sys_enter_*` / `sys_exit_*` events, which its `trace`
/// file prints with dedicated code instead of the print fmt:
/// `sys_openat(dfd: 0xffffff9c, filename: 0x7f.., flags: 0x80000, mode: 0)` (values below 10
/// in decimal, others in hex) and `sys_openat -> 0x3`. A string the kernel copied from user
/// space (a `__<arg>_val` field, newer kernels) follows its argument in quotes. Returns false
/// (writing nothing) if the event does not have the syscall layout.
pub(crate) fn write_syscall(ev: &EventFormat, data: &[u8], ctx: &PrintContext, out: &mut String) -> bool {
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
                push_bytes(out, c_str(b));
                out.push('"');
            }
        }
        out.push(')');
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
pub(crate) fn write_probe(ev: &EventFormat, data: &[u8], ctx: &PrintContext, out: &mut String) -> bool {
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
    let Some(program) = ev.program() else {
        return false;
    };
    let mut text = String::new();
    if program.eval(data, ctx, &mut text).is_err() {
        return false;
    }
    let Some(close) = text.find(')') else {
        return false;
    };
    let kernel_space = |a: u64| ctx.long_size == 8 && a >= 0xffff_8000_0000_0000;
    let addr = |out: &mut String, a: u64, offset: bool| {
        if !kernel_space(a) {
            let _ = write!(out, "0x{a:x}");
        } else if a == 0 {
            out.push('0');
        } else if ctx.symbols.and_then(|s| s.lookup(a)).is_some() {
            write_symbol(out, a, if offset { "S" } else { "s" }, ctx);
        } else {
            let _ = write!(out, "0x{a:08x}");
        }
    };
    out.push('(');
    addr(out, ip, true);
    if let Some(func) = ret_from {
        out.push_str(" <- ");
        addr(out, func, false);
    }
    out.push_str(&text[close..]);
    true
}

// ---------------------------------------------------------------------------------------------
// Raw field fallback

/// Appends every non-common field as `name=value`, separated by spaces (the fallback for
/// print fmts that cannot be evaluated). Never fails.
pub fn print_raw_fields(ev: &EventFormat, data: &[u8], ctx: &PrintContext, out: &mut String) {
    for (i, f) in ev.fields.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&f.name);
        out.push('=');
        write_raw_field(f, data, ctx, out);
    }
}

/// Appends one field's value the way libtraceevent prints raw fields.
pub fn write_raw_field(f: &Field, data: &[u8], ctx: &PrintContext, out: &mut String) {
    let l = f.layout();
    let long = f.flags.contains(FieldFlags::LONG);
    if f.flags.contains(FieldFlags::ARRAY) || f.is_dynamic() || !matches!(f.size, 1 | 2 | 4 | 8) {
        let Some(b) = l.bytes(data) else {
            return;
        };
        if f.is_string() {
            let s = c_str(b);
            let printable =
                s.iter().all(|&c| c.is_ascii_graphic() || c == b' ') && b[s.len()..].iter().all(|&c| c == 0);
            if printable {
                push_bytes(out, s);
                return;
            }
        }
        out.push_str("ARRAY[");
        for (i, x) in b.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{x:02x}");
        }
        out.push(']');
        return;
    }
    let Some(v) = l.read_u64(data) else {
        return;
    };
    let _ = if f.flags.contains(FieldFlags::POINTER) {
        let v = truncate(v, ctx.long_size.into());
        write!(out, "0x{v:x}")
    } else if f.signed {
        match (f.size, long) {
            (8, true) => write!(out, "0x{v:x}"),
            (4, true) => write!(out, "0x{:x}", v as u32),
            _ => write!(out, "{}", sign_extend(v, f.size)),
        }
    } else if long {
        write!(out, "0x{v:x}")
    } else {
        write!(out, "{v}")
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tests::SCHED_SWITCH;

    use crate::format::tests::COMMON;

    fn event(text: &str) -> EventFormat {
        let ev = EventFormat::parse("test", text, Endian::Little).unwrap();
        if let Some(e) = ev.print_error() {
            panic!("{} did not compile: {e}", ev.name);
        }
        ev
    }

    fn info(ev: &EventFormat, data: &[u8], ctx: &PrintContext) -> String {
        let mut s = String::new();
        ev.print_info(data, ctx, &mut s);
        s
    }

    fn le() -> PrintContext<'static> {
        PrintContext { long_size: 8, endian: Endian::Little, dialect: Dialect::Kernel, symbols: None }
    }

    fn lte() -> PrintContext<'static> {
        PrintContext { dialect: Dialect::LibTraceEvent, ..le() }
    }

    /// Builds a payload: common header then bytes placed at offsets.
    fn payload(id: u16, len: usize, parts: &[(usize, &[u8])]) -> Vec<u8> {
        let mut d = vec![0u8; len];
        d[0..2].copy_from_slice(&id.to_le_bytes());
        for (off, b) in parts {
            d[*off..*off + b.len()].copy_from_slice(b);
        }
        d
    }

    fn fmt_event(fields: &str, print: &str) -> String {
        format!("name: t\nID: 99\nformat:\n{COMMON}\n{fields}\nprint fmt: {print}\n")
    }

    #[test]
    fn irq_handler_entry_dynamic_string() {
        // §2.3 "dynamic string" (libtraceevent utest), re-derived.
        let ev = event(&format!(
            "name: irq_handler_entry\nID: 1\nformat:\n{COMMON}\n\
\tfield:int irq;\toffset:8;\tsize:4;\tsigned:1;\n\
\tfield:__data_loc char[] name;\toffset:12;\tsize:4;\tsigned:1;\n\n\
print fmt: \"irq=%d handler=%s\", REC->irq, __get_str(name)\n"
        ));
        let d = payload(1, 24, &[(12, &(16u32 | 6 << 16).to_le_bytes()), (16, b"hello\0")]);
        assert_eq!(info(&ev, &d, &le()), "irq=0 handler=hello");
        let name = ev.field("name").unwrap();
        assert_eq!(name.str(&d).unwrap(), "hello");
    }

    #[test]
    fn old_size2_data_loc() {
        // §2.3 "old dynamic string": no signed keys, 2-byte __data_loc, 25-byte record.
        let ev = event(
            "name: irq_handler_entry\nID: 2\nformat:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\n\
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\n\
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\n\
\tfield:int common_pid;\toffset:4;\tsize:4;\n\n\
\tfield:int irq;\toffset:8;\tsize:4;\n\
\tfield:__data_loc name;\toffset:12;\tsize:2;\n\n\
print fmt: \"irq=%d handler=%s\", REC->irq, __get_str(name)\n",
        );
        let d = payload(2, 25, &[(12, &16u16.to_le_bytes()), (16, b"hello\0")]);
        assert_eq!(info(&ev, &d, &le()), "irq=0 handler=hello");
        assert_eq!(ev.field("name").unwrap().str(&d).unwrap(), "hello");
    }

    fn cpumask_event() -> EventFormat {
        event(&format!(
            "name: ipi_send_cpumask\nID: 3\nformat:\n{COMMON}\n\
\tfield:__data_loc cpumask_t *[] cpumask;\toffset:8;\tsize:4;\tsigned:0;\n\n\
print fmt: \"cpumask=%s\", __get_cpumask(cpumask)\n"
        ))
    }

    #[test]
    fn cpumask_cases_libtraceevent() {
        let ev = cpumask_event();
        let cases: [([u8; 8], &str, &str); 6] = [
            ([0xff; 8], "0-63", "ffffffff,ffffffff"),
            ([0; 8], "", "00000000,00000000"),
            (
                [0x55; 8],
                "0,2,4,6,8,10,12,14,16,18,20,22,24,26,28,30,32,34,36,38,40,42,44,46,48,50,52,54,56,58,60,62",
                "55555555,55555555",
            ),
            ([1, 0x80, 0, 0, 0, 0, 0, 0], "0,15", "00000000,00008001"),
            ([1, 0, 0x80, 0, 0, 0, 0, 0], "0,23", "00000000,00800001"),
            ([1, 0, 0, 0, 0, 0, 0, 0x80], "0,63", "80000000,00000001"),
        ];
        for (mask, list, hex) in cases {
            let d = payload(3, 24, &[(8, &(16u32 | 8 << 16).to_le_bytes()), (16, &mask)]);
            assert_eq!(info(&ev, &d, &lte()), format!("cpumask={list}"));
            assert_eq!(info(&ev, &d, &le()), format!("cpumask={hex}"));
            // Big-endian data: same masks as one big-endian unsigned long.
            let word = u64::from_le_bytes(mask);
            let mut d = d.clone();
            d[8..12].copy_from_slice(&(16u32 | 8 << 16).to_be_bytes());
            d[16..24].copy_from_slice(&word.to_be_bytes());
            let evb = EventFormat::parse("ipi", &cpumask_event_text(), Endian::Big).unwrap();
            let ctx = PrintContext { endian: Endian::Big, ..lte() };
            assert_eq!(info(&evb, &d, &ctx), format!("cpumask={list}"));
        }
        // Raw field printing of the mask (libtraceevent: ARRAY[ff, ...]).
        let d = payload(3, 24, &[(8, &(16u32 | 8 << 16).to_le_bytes()), (16, &[0xff; 8])]);
        let mut s = String::new();
        write_raw_field(ev.field("cpumask").unwrap(), &d, &le(), &mut s);
        assert_eq!(s, "ARRAY[ff, ff, ff, ff, ff, ff, ff, ff]");
    }

    fn cpumask_event_text() -> String {
        format!(
            "name: ipi_send_cpumask\nID: 3\nformat:\n{COMMON}\n\
\tfield:__data_loc cpumask_t *[] cpumask;\toffset:8;\tsize:4;\tsigned:0;\n\n\
print fmt: \"cpumask=%s\", __get_cpumask(cpumask)\n"
        )
    }

    const SIZEOF_EVENT: &str = "name: sizeof_event\nID: 23\nformat:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int s4;\toffset:8;\tsize:4;\tsigned:1;
\tfield:unsigned int u4;\toffset:12;\tsize:4;\tsigned:0;
\tfield:long long s8;\toffset:16;\tsize:8;\tsigned:1;
\tfield:unsigned long long u8;\toffset:24;\tsize:8;\tsigned:0;

print fmt: \"int=%d unsigned=%d unsigned int=%d long=%d unsigned long=%d long long=%d unsigned long long=%d s4=%d u4=%d s8=%d u8=%d\", sizeof(int), sizeof(unsigned), sizeof(unsigned int), sizeof(long), sizeof(unsigned long), sizeof(long long), sizeof(unsigned long long), sizeof(REC->s4), sizeof(REC->u4), sizeof(REC->s8), sizeof(REC->u8)
";

    #[test]
    fn sizeof_long_8_and_4() {
        let ev = event(SIZEOF_EVENT);
        let d = payload(23, 32, &[]);
        assert_eq!(
            info(&ev, &d, &le()),
            "int=4 unsigned=4 unsigned int=4 long=8 unsigned long=8 long long=8 unsigned long long=8 s4=4 u4=4 s8=8 u8=8"
        );
        let ctx4 = PrintContext { long_size: 4, ..le() };
        assert_eq!(
            info(&ev, &d, &ctx4),
            "int=4 unsigned=4 unsigned int=4 long=4 unsigned long=4 long long=8 unsigned long long=8 s4=4 u4=4 s8=8 u8=8"
        );
    }

    fn sched_switch_payload(prev: &[u8], prev_state: u64, next: &[u8]) -> Vec<u8> {
        payload(
            372,
            64,
            &[
                (4, &2667i32.to_le_bytes()),
                (8, prev),
                (24, &2667i32.to_le_bytes()),
                (28, &120i32.to_le_bytes()),
                (32, &prev_state.to_le_bytes()),
                (40, next),
                (56, &0i32.to_le_bytes()),
                (60, &120i32.to_le_bytes()),
            ],
        )
    }

    #[test]
    fn sched_switch_kernel_text() {
        let ev = event(SCHED_SWITCH);
        // Seen in this machine's trace: prev_state=D.
        let d = sched_switch_payload(b"sleep\0", 2, b"swapper/1\0");
        assert_eq!(
            info(&ev, &d, &le()),
            "prev_comm=sleep prev_pid=2667 prev_prio=120 prev_state=D ==> next_comm=swapper/1 next_pid=0 next_prio=120"
        );
        let d = sched_switch_payload(b"bash\0", 0, b"swapper/1\0");
        assert!(info(&ev, &d, &le()).contains("prev_state=R ==>"));
        // TASK_REPORT_MAX bit (0x100): preempted, "R+".
        let d = sched_switch_payload(b"bash\0", 0x100, b"x\0");
        assert!(info(&ev, &d, &le()).contains("prev_state=R+ ==>"));
        let d = sched_switch_payload(b"bash\0", 0x1 | 0x2, b"x\0");
        assert!(info(&ev, &d, &le()).contains("prev_state=S|D ==>"));
        let d = sched_switch_payload(b"bash\0", 0x80, b"x\0");
        assert!(info(&ev, &d, &le()).contains("prev_state=I ==>"));
        // A full 16-byte comm without NUL.
        let d = sched_switch_payload(b"0123456789abcdef", 1, b"x\0");
        assert!(info(&ev, &d, &le()).starts_with("prev_comm=0123456789abcdef prev_pid"));
    }

    const TIMER_START: &str = "name: timer_start
ID: 466
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:void * timer;\toffset:8;\tsize:8;\tsigned:0;
\tfield:void * function;\toffset:16;\tsize:8;\tsigned:0;
\tfield:unsigned long expires;\toffset:24;\tsize:8;\tsigned:0;
\tfield:unsigned long bucket_expiry;\toffset:32;\tsize:8;\tsigned:0;
\tfield:unsigned long now;\toffset:40;\tsize:8;\tsigned:0;
\tfield:unsigned int flags;\toffset:48;\tsize:4;\tsigned:0;

print fmt: \"timer=%p function=%ps expires=%lu [timeout=%ld] bucket_expiry=%lu cpu=%u idx=%u flags=%s\", REC->timer, REC->function, REC->expires, (long)REC->expires - REC->now, REC->bucket_expiry, REC->flags & 0x0003FFFF, REC->flags >> 22, __print_flags(REC->flags & (0x00040000 | 0x00080000 | 0x00100000 | 0x00200000), \"|\", { 0x00040000, \"M\" }, { 0x00080000, \"D\" }, { 0x00100000, \"P\" }, { 0x00200000, \"I\" })
";

    #[test]
    fn timer_start_kernel_text() {
        let ev = event(TIMER_START);
        // From this machine's trace (nohash-ptr): timer=ffffc9000007fdf8 function=process_timeout
        // expires=4294924637 [timeout=1] bucket_expiry=4294924638 cpu=0 idx=30 flags=
        let flags: u32 = 30 << 22;
        let d = payload(
            466,
            56,
            &[
                (8, &0xffff_c900_0007_fdf8u64.to_le_bytes()),
                (16, &0xffff_ffff_8123_4560u64.to_le_bytes()),
                (24, &4294924637u64.to_le_bytes()),
                (32, &4294924638u64.to_le_bytes()),
                (40, &4294924636u64.to_le_bytes()),
                (48, &flags.to_le_bytes()),
            ],
        );
        assert_eq!(
            info(&ev, &d, &le()),
            "timer=ffffc9000007fdf8 function=0xffffffff81234560 expires=4294924637 [timeout=1] bucket_expiry=4294924638 cpu=0 idx=30 flags="
        );
        // Negative timeout, cpu bits and flag letters.
        let flags: u32 = 1 | 0x0004_0000 | 0x0020_0000 | 3 << 22;
        let d =
            payload(466, 56, &[(24, &100u64.to_le_bytes()), (40, &105u64.to_le_bytes()), (48, &flags.to_le_bytes())]);
        assert_eq!(
            info(&ev, &d, &le()),
            "timer=0000000000000000 function=0x0 expires=100 [timeout=-5] bucket_expiry=0 cpu=1 idx=3 flags=M|I"
        );
        assert!(info(&ev, &d, &lte()).starts_with("timer=(nil) function=0x0"));
    }

    const SYS_ENTER_OPENAT: &str = "name: sys_enter_openat
ID: 782
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;
\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;
\tfield:int flags;\toffset:32;\tsize:8;\tsigned:0;
\tfield:umode_t mode;\toffset:40;\tsize:8;\tsigned:0;

print fmt: \"dfd: 0x%08lx, filename: 0x%08lx, flags: 0x%08lx, mode: 0x%08lx\", ((unsigned long)(REC->dfd)), ((unsigned long)(REC->filename)), ((unsigned long)(REC->flags)), ((unsigned long)(REC->mode))
";

    #[test]
    fn sys_enter_openat_print_fmt() {
        // The kernel's own `trace` file renders syscall events with its own code
        // (`sys_openat(dfd: 0xffffff9c, ...)`); this is the print fmt's text, as trace-cmd shows.
        let ev = event(SYS_ENTER_OPENAT);
        let d = payload(
            782,
            48,
            &[
                (8, &257i32.to_le_bytes()),
                (16, &0xffff_ff9cu64.to_le_bytes()),
                (24, &0x7f52_19d1_b0b1u64.to_le_bytes()),
                (32, &0x80000u64.to_le_bytes()),
            ],
        );
        assert_eq!(
            info(&ev, &d, &le()),
            "dfd: 0xffffff9c, filename: 0x7f5219d1b0b1, flags: 0x00080000, mode: 0x00000000"
        );
        assert_eq!(
            info(&ev, &d, &lte()),
            "dfd: 0xffffff9c, filename: 0x7f5219d1b0b1, flags: 0x00080000, mode: 0x00000000"
        );
        // In the syscalls system, the kernel dialect prints what the kernel's `trace` file
        // shows: values below 10 in decimal, others in hex, and `name -> ret` on exit.
        let ev = EventFormat::parse("syscalls", SYS_ENTER_OPENAT, Endian::Little).unwrap();
        assert_eq!(
            info(&ev, &d, &le()),
            "sys_openat(dfd: 0xffffff9c, filename: 0x7f5219d1b0b1, flags: 0x80000, mode: 0)"
        );
        let exit = EventFormat::parse(
            "syscalls",
            &format!(
                "name: sys_exit_openat\nID: 781\nformat:\n{COMMON}\n\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:long ret;\toffset:16;\tsize:8;\tsigned:1;\n\nprint fmt: \"0x%lx\", REC->ret\n"
            ),
            Endian::Little,
        )
        .unwrap();
        let d = payload(781, 24, &[(16, &(-2i64).to_le_bytes())]);
        assert_eq!(info(&exit, &d, &le()), "sys_openat -> 0xfffffffffffffffe");
    }

    #[test]
    fn probe_events_in_the_kernel_dialect() {
        // The kernel prints a return probe as (return address <- function), its print fmt
        // the other way round.
        let ev = EventFormat::parse(
            "uprobes",
            &format!(
                "name: r\nID: 9\nformat:\n{COMMON}\n\tfield:unsigned long __probe_func;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:unsigned long __probe_ret_ip;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:s32 ret;\toffset:24;\tsize:4;\tsigned:1;\n\nprint fmt: \"(%lx <- %lx) ret=%d\", REC->__probe_func, REC->__probe_ret_ip, REC->ret\n"
            ),
            Endian::Little,
        )
        .unwrap();
        let d = payload(
            9,
            28,
            &[
                (8, &0x7f28_41b7_e150u64.to_le_bytes()),
                (16, &0x558a_c77f_a166u64.to_le_bytes()),
                (24, &3i32.to_le_bytes()),
            ],
        );
        assert_eq!(info(&ev, &d, &le()), "(0x558ac77fa166 <- 0x7f2841b7e150) ret=3");
        assert_eq!(info(&ev, &d, &lte()), "(7f2841b7e150 <- 558ac77fa166) ret=3");
    }

    #[test]
    fn fuzz_regressions() {
        // A field name after a multi-byte character.
        let text = format!("name: x\nID: 1\nformat:\n{COMMON}\n\tfield:int \u{5cd}a;\toffset:8;\tsize:4;\tsigned:1;\n\nprint fmt: \"%d\", REC->a\n");
        let _ = EventFormat::parse("t", &text, Endian::Little);
        // Widths far beyond a page are cut, not allocated.
        let ev = event(&fmt_event(
            "\tfield:int a;\toffset:8;\tsize:4;\tsigned:1;\n",
            "\"%0003923135675398296992lx|%*d\", REC->a, 2147483647, REC->a",
        ));
        let d = payload(99, 12, &[]);
        for ctx in [le(), lte()] {
            let s = info(&ev, &d, &ctx);
            assert!(s.len() <= 2 * MAX_PAD + 2, "{}", s.len());
        }
    }

    #[test]
    fn irq_handler_entry_live_format() {
        let ev = event(&format!(
            "name: irq_handler_entry\nID: 225\nformat:\n{COMMON}\n\
\tfield:int irq;\toffset:8;\tsize:4;\tsigned:1;\n\
\tfield:__data_loc char[] name;\toffset:12;\tsize:4;\tsigned:0;\n\n\
print fmt: \"irq=%d name=%s\", REC->irq, __get_str(name)\n"
        ));
        let d = payload(
            225,
            32,
            &[(8, &36i32.to_le_bytes()), (12, &(16u32 | 14 << 16).to_le_bytes()), (16, b"virtio1-req.0\0")],
        );
        assert_eq!(info(&ev, &d, &le()), "irq=36 name=virtio1-req.0");
        // A data_loc pointing outside the record falls back to raw fields, never panics.
        let d = payload(225, 32, &[(8, &36i32.to_le_bytes()), (12, &(40u32 | 14 << 16).to_le_bytes())]);
        assert_eq!(info(&ev, &d, &le()), "irq=36 name=");
    }

    #[test]
    fn printf_conversions_kernel_style() {
        let ev = event(&fmt_event(
            "\tfield:int a;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:unsigned long b;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:char s[8];\toffset:24;\tsize:8;\tsigned:0;\n",
            "\"[%5d|%-5d|%05d|%+d|% d|%x|%X|%#x|%#o|%o|%lu|%lx|%#lx|%016llx|%hhu|%hu|%hd|%c|%.3s|%-6s|%6s|%.*s|%*d|%%|%zu|%Lx|%i|%.3d|%08.3d]\", REC->a, REC->a, REC->a, REC->a, REC->a, REC->a, REC->a, 0, 8, 0, REC->b, REC->b, 0, REC->b, 300, 70000, -2, 'F', REC->s, REC->s, REC->s, 2, REC->s, 4, 7, REC->b, REC->b, REC->a, 5, 5",
        ));
        let d = payload(99, 32, &[(8, &(-42i32).to_le_bytes()), (16, &255u64.to_le_bytes()), (24, b"abcdef\0\0")]);
        assert_eq!(
            info(&ev, &d, &le()),
            "[  -42|-42  |-0042|-42|-42|ffffffd6|FFFFFFD6|0x0|010|0|255|ff|0x0|00000000000000ff|44|4464|-2|F|abc|abcdef|abcdef|ab|   7|%|255|ff|-42|005|00000005]"
        );
    }

    #[test]
    fn expressions_casts_ternary_symbolic() {
        let ev = event(&fmt_event(
            "\tfield:unsigned int v;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:unsigned long caller[2];\toffset:16;\tsize:16;\tsigned:0;\n\tfield:u8 mac[6];\toffset:32;\tsize:6;\tsigned:0;\n",
            "\"%d %d %u %d %d %s %s %s %lx %d %d %d %s %pM %s\", (int)(REC->v - 10), -9ULL >= 1ULL, (u8)REC->v, REC->v % 7 == 0 && !(REC->v & 1) ? 1 : 2, ~0 << 4, __print_symbolic(REC->v, { 1, \"ONE\" }, { 14, \"FOURTEEN\" }), __print_symbolic(3, { UNRESOLVED_ENUM, \"X\" }), (REC)->v > 10 ? \"big\" : \"small\", REC->caller[1], sizeof(u16), sizeof(REC->caller), 1 ? 2 : 3, __print_flags(0x81, \",\", { 1, \"A\" }, { 2, \"B\" }), REC->mac, __print_hex(REC->mac, 3)",
        ));
        let d = payload(
            99,
            40,
            &[(8, &14u32.to_le_bytes()), (24, &0xdeadu64.to_le_bytes()), (32, &[0, 0x1b, 0x21, 0xab, 0xcd, 0xef])],
        );
        assert_eq!(info(&ev, &d, &le()), "4 1 14 1 -16 FOURTEEN 0x3 big dead 2 16 2 A,0x80 00:1b:21:ab:cd:ef 00 1b 21");
    }

    #[test]
    fn dynamic_arrays_and_print_array() {
        let ev = event(&fmt_event(
            "\tfield:__data_loc u64[] addrs;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:__rel_loc u8[] buf;\toffset:12;\tsize:4;\tsigned:0;\n",
            "\"n=%u %s %s %s\", __get_dynamic_array_len(addrs) / 8, __print_array(__get_dynamic_array(addrs), __get_dynamic_array_len(addrs) / 8, 8), __print_hex_str(__get_rel_dynamic_array(buf), __get_rel_dynamic_array_len(buf)), __print_array(__get_rel_dynamic_array(buf), 2, 1)",
        ));
        let d = payload(
            99,
            40,
            &[
                (8, &(16u32 | 16 << 16).to_le_bytes()),
                (12, &(16u32 | 3 << 16).to_le_bytes()), // rel: 16 + 16 = 32
                (16, &1u64.to_le_bytes()),
                (24, &0xabcu64.to_le_bytes()),
                (32, &[0xde, 0xad, 0x01]),
            ],
        );
        assert_eq!(info(&ev, &d, &le()), "n=2 {0x1,0xabc} dead01 {0xde,0xad}");
    }

    #[test]
    fn pointer_extensions_on_buffers() {
        let ev = event(&fmt_event(
            "\tfield:__u8 src[16];\toffset:8;\tsize:16;\tsigned:0;\n\tfield:__u8 v4[4];\toffset:24;\tsize:4;\tsigned:0;\n\tfield:__u8 sa[28];\toffset:28;\tsize:28;\tsigned:0;\n\tfield:u8 uuid[16];\toffset:56;\tsize:16;\tsigned:0;\n\tfield:unsigned long mask[1];\toffset:72;\tsize:8;\tsigned:0;\n",
            "\"%pI6c %pI6 %pI4 %pi4 %pISpc %pU %*pbl %*pb %*phN\", REC->src, REC->src, REC->v4, REC->v4, REC->sa, REC->uuid, 64, REC->mask, 16, REC->mask, 3, REC->v4",
        ));
        let mut sa = [0u8; 28];
        sa[0..2].copy_from_slice(&10u16.to_le_bytes());
        sa[2..4].copy_from_slice(&8080u16.to_be_bytes());
        sa[8] = 0xfe;
        sa[9] = 0x80;
        sa[23] = 1;
        let mut v6 = [0u8; 16];
        v6[0] = 0x20;
        v6[1] = 0x01;
        v6[2] = 0x0d;
        v6[3] = 0xb8;
        v6[15] = 1;
        let uuid: Vec<u8> = (0..16).collect();
        let d = payload(
            99,
            80,
            &[(8, &v6), (24, &[192, 168, 1, 2]), (28, &sa), (56, &uuid), (72, &0x8000_0000_0000_0007u64.to_le_bytes())],
        );
        assert_eq!(
            info(&ev, &d, &le()),
            "2001:db8::1 2001:0db8:0000:0000:0000:0000:0000:0001 192.168.1.2 192.168.001.002 [fe80::1]:8080 00010203-0405-0607-0809-0a0b0c0d0e0f 0-2,63 0007 c0a801"
        );
    }

    #[test]
    fn fallback_prints_raw_fields() {
        // An unknown helper: the print fmt does not compile, raw fields are printed.
        let text = fmt_event(
            "\tfield:int s4;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:unsigned long u8;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:char comm[8];\toffset:24;\tsize:8;\tsigned:0;\n\tfield:void * ptr;\toffset:32;\tsize:8;\tsigned:0;\n",
            "\"%s\", mystery_helper(REC->s4)",
        );
        let ev = EventFormat::parse("t", &text, Endian::Little).unwrap();
        assert!(ev.print_error().is_some());
        let d = payload(
            99,
            40,
            &[(8, &(-3i32).to_le_bytes()), (16, &16u64.to_le_bytes()), (24, b"cat\0"), (32, &0xffffu64.to_le_bytes())],
        );
        assert_eq!(info(&ev, &d, &le()), "s4=-3 u8=0x10 comm=cat ptr=0xffff");
        // Evaluation errors (division by zero) also fall back, never drop the event.
        let text = fmt_event("\tfield:int s4;\toffset:8;\tsize:4;\tsigned:1;\n", "\"%d\", 10 / REC->s4");
        let ev = event(&text);
        let d = payload(99, 12, &[]);
        assert_eq!(info(&ev, &d, &le()), "s4=0");
        // Truncated record.
        assert_eq!(info(&ev, &d[..9], &le()), "s4=");
    }

    #[test]
    fn ftrace_style_escapes_and_arrays() {
        let text = "name: kernel_stack\nID: 4\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\n\tfield:int size;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:unsigned long caller[2];\toffset:16;\tsize:16;\tsigned:0;\n\nprint fmt: \"\\t=> %ps\\n\" \"\\t=> %ps\\n\", (void *)REC->caller[0], (void *)REC->caller[1]\n";
        let ev = event(text);
        let d = payload(4, 32, &[(16, &0x10u64.to_le_bytes()), (24, &0x20u64.to_le_bytes())]);
        assert_eq!(info(&ev, &d, &le()), "\t=> 0x10\n\t=> 0x20\n");
    }

    #[test]
    fn symbols_and_printk_strings() {
        let mut syms = Symbols::new();
        syms.parse_kallsyms(
            "ffffffff814201c0 T process_timeout\nffffffff81420200 T next_fn\n\
             ffffffffc0001000 t modfn\t[kvm]\nffffffffc0001100 t modfn2\t[kvm]\n",
        );
        syms.parse_printk_formats("0xffffffff8281a5be : \"Start scheduler-tick\"\n");
        let ev = event(&fmt_event(
            "\tfield:void * f;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:const char * s;\toffset:16;\tsize:8;\tsigned:0;\n",
            "\"%ps %pS %pB %pS %s\", REC->f, REC->f, REC->f, 0xffffffffc0001010UL, REC->s",
        ));
        let d = payload(
            99,
            24,
            &[(8, &0xffff_ffff_8142_01c0u64.to_le_bytes()), (16, &0xffff_ffff_8281_a5beu64.to_le_bytes())],
        );
        let ctx = PrintContext { symbols: Some(&syms), ..le() };
        assert_eq!(
            info(&ev, &d, &ctx),
            // %pB looks up addr - 1 (a return address), here before the first symbol.
            "process_timeout process_timeout+0x0/0x40 0xffffffff814201c0 modfn+0x10/0x100 [kvm] Start scheduler-tick"
        );
        // Without tables: hex addresses, and the string pointer falls back to raw fields.
        assert_eq!(info(&ev, &d, &le()), "f=0xffffffff814201c0 s=0xffffffff8281a5be");
    }

    #[test]
    fn print_event_never_panics_on_garbage() {
        let ev = event(SCHED_SWITCH);
        let tev = event(TIMER_START);
        let mut x: u64 = 42;
        for len in 0..80 {
            let mut d = vec![0u8; len];
            for b in d.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            let mut s = String::new();
            ev.print_info(&d, &le(), &mut s);
            tev.print_info(&d, &lte(), &mut s);
        }
    }
}
