//! Parsing a print fmt's arguments as C expressions: `REC->field`, literals, arithmetic,
//! casts, `sizeof`, and the kernel's helper macros (`__get_str`, `__print_flags`,
//! `__print_symbolic`, `__print_hex`, `__print_array`, `__get_bitmask`/`__get_cpumask`,
//! `__get_dynamic_array[_len]`, their `rel` variants), resolved against the event's fields.

use super::eval::{eval, Ty, Val};
use super::lexer::Tok;
use super::print_error;
use crate::error::Result;
use crate::format::ctype::{ctype_of, is_type_word, CType, IntSize, IntTy};
use crate::format::{EventFormat, Field, FieldFlags, FieldLayout};
use crate::text::PrintContext;

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BinOp {
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

/// A unary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UnOp {
    Neg,
    Plus,
    Not,
    BitNot,
}

/// A compiled argument expression.
#[derive(Debug, Clone)]
pub(super) enum Expr {
    Num(u64, IntTy),
    /// What an expression that reads nothing of the record folded to (see [`fold`]).
    Const(u64, Ty),
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
    /// `__get_bitmask` / `__get_cpumask`: hex chunks (the kernel prints cpumasks so too).
    Bitmask(Box<Expr>),
}

/// A helper's argument: an expression or a `{ key, "name" }` table entry.
enum Arg {
    E(Expr),
    Pair(Expr, Expr),
}

/// A recursive-descent parser of C expressions over the tokens of the arguments.
pub(super) struct Parser<'f> {
    pub(super) toks: Vec<Tok>,
    pub(super) pos: usize,
    pub(super) event: &'f EventFormat,
    /// Names the print fmt uses that are not numbers (enum constants the kernel left in).
    pub(super) unresolved: Vec<String>,
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
            print_error(format!("expected {p:?} at {:?}", self.peek()))
        }
    }

    fn field(&self, name: &str) -> Result<&Field> {
        self.event.field(name).ok_or_else(|| crate::Error::Print(format!("unknown field {name}")))
    }

    /// The comma-separated argument expressions, to the end of the tokens.
    pub(super) fn args(&mut self) -> Result<Vec<Expr>> {
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
            return print_error(format!("unexpected {t:?} after arguments"));
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
                return print_error("address-of and dereference are not supported")
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
                    return print_error(format!("sizeof unknown type {}", words.join(" ")));
                }
                return Ok(Expr::SizeOf(t));
            }
            let e = self.unary()?;
            return match e {
                Expr::Field(l) => Ok(Expr::Num(l.size as u64, IntTy { size: IntSize::Long, signed: false })),
                Expr::Elem(l, _) => Ok(Expr::Num(l.elem_size as u64, IntTy { size: IntSize::Long, signed: false })),
                _ => print_error("sizeof of an expression that is not a field"),
            };
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr> {
        let mut e = self.primary()?;
        loop {
            if self.eat("->") || self.eat(".") {
                let Some(Tok::Ident(name)) = self.peek().cloned() else {
                    return print_error("expected a field name after ->");
                };
                self.pos += 1;
                if !matches!(e, Expr::Rec) {
                    return print_error(format!("member access ->{name} on something other than REC"));
                }
                let f = self.field(&name)?;
                e = Expr::Field(f.layout());
            } else if self.eat("[") {
                let idx = self.cond()?;
                self.expect("]")?;
                let Expr::Field(l) = e else {
                    return print_error("indexing something other than an array field");
                };
                if !l.flags.contains(FieldFlags::ARRAY) {
                    return print_error("indexing a field that is not an array");
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
            return print_error("unexpected end of arguments");
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
            t => print_error(format!("unexpected {t:?}")),
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
                _ => print_error(format!("{name}: expected {what}")),
            }
        };
        let field_arg = |e: Expr| -> Result<FieldLayout> {
            match e {
                Expr::Ident(n) => Ok(self.field(&n)?.layout()),
                Expr::Field(l) => Ok(l),
                _ => print_error(format!("{name}: expected a field name")),
            }
        };
        let dynamic = |e: Expr| -> Result<FieldLayout> {
            let l = field_arg(e)?;
            if !l.flags.contains(FieldFlags::DYNAMIC) {
                return print_error(format!("{name}: field is not __data_loc/__rel_loc"));
            }
            Ok(l)
        };
        let e = match name {
            "__get_str" | "__get_rel_str" => Expr::DynStr(dynamic(next("field")?)?),
            "__get_dynamic_array" | "__get_rel_dynamic_array" | "__get_sockaddr" | "__get_rel_sockaddr" => {
                Expr::DynArray(dynamic(next("field")?)?)
            }
            "__get_dynamic_array_len" | "__get_rel_dynamic_array_len" => Expr::DynLen(dynamic(next("field")?)?),
            "__get_bitmask" | "__get_rel_bitmask" => Expr::Bitmask(Box::new(Expr::DynArray(dynamic(next("field")?)?))),
            "__get_cpumask" | "__get_rel_cpumask" => Expr::Bitmask(Box::new(Expr::DynArray(dynamic(next("field")?)?))),
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
                        _ => return print_error(format!("{name}: delimiter is not a string")),
                    }
                } else {
                    Vec::new()
                };
                let mut table = Vec::new();
                for a in it.by_ref() {
                    let Arg::Pair(k, s) = a else {
                        return print_error(format!("{name}: expected {{ value, \"name\" }}"));
                    };
                    let s = match s {
                        Expr::Str(s) => s,
                        // A NULL name ends the kernel's table, like its sentinel entry.
                        s if const_eval(&s) == Some(0) => break,
                        _ => return print_error(format!("{name}: table name is not a string")),
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
            _ => return print_error(format!("unsupported helper {name}()")),
        };
        if it.next().is_some() {
            return print_error(format!("{name}: too many arguments"));
        }
        Ok(e)
    }
}

/// Every name in `e` (enum constants a table key left unresolved).
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

/// The value of an expression that reads nothing of a record.
fn const_eval(e: &Expr) -> Option<u64> {
    let ctx = PrintContext::default();
    match eval(e, &[], &ctx).ok()? {
        Val::Int(v, _) => Some(v),
        _ => None,
    }
}

/// Folds the sub-expressions that read nothing of the record into constants, so that
/// sched_switch's `((((0x0 | 0x1 | ... | 0x40) + 1) << 1) - 1)` is worked out once, not for
/// every record. Only what evaluates without error (an error stays an error when printing)
/// to the same value and type on 4- and 8-byte-long kernels folds.
pub(super) fn fold(e: Expr) -> Expr {
    let fold_box = |e: Box<Expr>| Box::new(fold(*e));
    let e = match e {
        Expr::Unary(op, a) => Expr::Unary(op, fold_box(a)),
        Expr::Binary(op, a, b) => Expr::Binary(op, fold_box(a), fold_box(b)),
        Expr::Cond(c, a, b) => Expr::Cond(fold_box(c), fold_box(a), fold_box(b)),
        Expr::Cast(t, a) => Expr::Cast(t, fold_box(a)),
        Expr::Elem(l, i) => Expr::Elem(l, fold_box(i)),
        Expr::Flags(v, delim, table) => Expr::Flags(fold_box(v), delim, table),
        Expr::Symbolic(v, table) => Expr::Symbolic(fold_box(v), table),
        Expr::Hex(b, n, concat) => Expr::Hex(fold_box(b), fold_box(n), concat),
        Expr::Array(b, n, size) => Expr::Array(fold_box(b), fold_box(n), fold_box(size)),
        Expr::Bitmask(b) => Expr::Bitmask(fold_box(b)),
        other => return other,
    };
    if !matches!(e, Expr::Unary(..) | Expr::Binary(..) | Expr::Cond(..) | Expr::Cast(..)) {
        return e;
    }
    let value_with_long = |long_size| {
        let ctx = PrintContext { long_size, ..PrintContext::default() };
        match eval(&e, &[], &ctx) {
            Ok(Val::Int(v, t)) => Some((v, t)),
            _ => None,
        }
    };
    match (value_with_long(4), value_with_long(8)) {
        (Some((v, t)), Some(same)) if (v, t) == same => Expr::Const(v, t),
        _ => e,
    }
}
