//! Evaluating the kernel dialect's expressions over a record, as C would: values typed by
//! size and signedness, the usual arithmetic conversions, shifts and comparisons.

use super::parse::{BinOp, Expr, UnOp};
use super::print_error;
use crate::endian::{sign_extend, truncate};
use crate::error::{Error, Result};
use crate::format::ctype::{CType, IntTy};
use crate::format::FieldFlags;
use crate::text::PrintContext;

/// The C type of a value during evaluation: its size and signedness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ty {
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

/// A value during evaluation.
#[derive(Debug, Clone, Copy)]
pub(super) enum Val<'a> {
    /// An integer, normalized to its type (sign- or zero-extended to 64 bits).
    Int(u64, Ty),
    /// Bytes: a string or array from the record or a literal.
    Bytes(&'a [u8]),
    /// Text a helper produces when printed (`__print_flags` etc.).
    Text(&'a Expr),
}

pub(super) fn as_int(v: Val<'_>) -> Result<u64> {
    match v {
        Val::Int(v, _) => Ok(v),
        _ => print_error("expected an integer"),
    }
}

fn int_ty(v: Val<'_>) -> Result<(u64, Ty)> {
    match v {
        Val::Int(v, t) => Ok((v, t)),
        _ => print_error("expected an integer"),
    }
}

fn truthy(v: Val<'_>) -> bool {
    match v {
        Val::Int(v, _) => v != 0,
        // Arrays and strings decay to non-null pointers.
        _ => true,
    }
}

/// Evaluates `e` over the record payload `data`.
pub(super) fn eval<'a>(e: &'a Expr, data: &'a [u8], ctx: &PrintContext) -> Result<Val<'a>> {
    let long = ctx.long_size;
    Ok(match e {
        Expr::Num(v, t) => {
            let t = Ty::of(*t, long);
            Val::Int(t.norm(*v), t)
        }
        Expr::Const(v, t) => Val::Int(*v, *t),
        Expr::Str(s) => Val::Bytes(s),
        Expr::Rec => return print_error("REC used as a value"),
        Expr::Ident(n) => return print_error(format!("unknown symbol {n}")),
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
                _ => return print_error("cast of a non-integer"),
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
                return print_error("division by zero");
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
