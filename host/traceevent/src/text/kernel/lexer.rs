//! C tokens of a print fmt's arguments, for the kernel dialect's parser: the shared token
//! reader's tokens ([`crate::text::tokens`]) with numbers typed by their suffixes, strings and
//! character literals with their escapes resolved, and operators checked against C's.

use super::print_error;
use crate::error::Result;
use crate::format::ctype::{IntSize, IntTy};
use crate::format::unescape_literal;
use crate::text::tokens::{TokenKind, Tokens};

/// A C token.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Ident(String),
    Num(u64, IntTy),
    Str(Vec<u8>),
    Punct(&'static str),
}

/// The operators and punctuation of C that print fmts use.
const PUNCTS: [&str; 31] = [
    "->", "<<", ">>", "<=", ">=", "==", "!=", "&&", "||", "(", ")", "{", "}", "[", "]", ",", "?", ":", "+", "-", "*",
    "/", "%", "&", "|", "^", "!", "~", "<", ">", ".",
];

/// The C tokens of `src`; an error for a character C would not accept there.
pub(super) fn lex(src: &str) -> Result<Vec<Tok>> {
    let mut tokens = Tokens::new(src);
    let mut out = Vec::new();
    loop {
        let (kind, text) = tokens.read_item();
        match kind {
            TokenKind::End if tokens.stopped_early() => {
                return print_error("unexpected character or unterminated string")
            }
            TokenKind::End => return Ok(out),
            TokenKind::Item if text.starts_with(|c: char| c.is_ascii_digit()) => out.push(number(&text)?),
            TokenKind::Item => out.push(Tok::Ident(text)),
            TokenKind::DQuote => {
                let (lit, _) =
                    unescape_literal(&format!("{text}\"")).ok_or_else(|| crate::Error::Print("bad string".into()))?;
                out.push(Tok::Str(lit.into_bytes()));
            }
            TokenKind::SQuote => {
                let (lit, _) = unescape_literal(&format!("{text}\""))
                    .ok_or_else(|| crate::Error::Print("bad char literal".into()))?;
                out.push(Tok::Num(lit.chars().next().map_or(0, |c| c as u64), IntTy::INT));
            }
            TokenKind::Op | TokenKind::Delim => {
                // The reader keeps runs such as `--` or `+=` whole; C reads them as the
                // operators they start with (`-`, `-`), and has no `=`.
                let mut rest = text.as_str();
                while let Some(c) = rest.chars().next() {
                    let Some(p) = PUNCTS.iter().find(|p| rest.starts_with(**p)) else {
                        return print_error(format!("unexpected character {c:?}"));
                    };
                    out.push(Tok::Punct(p));
                    rest = &rest[p.len()..];
                }
            }
            TokenKind::Error | TokenKind::Space | TokenKind::Newline => {}
        }
    }
}

/// A C integer literal with its suffix (`0x1fUL`), typed as C types it.
fn number(s: &str) -> Result<Tok> {
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
    let v = u64::from_str_radix(digits, radix).map_err(|_| crate::Error::Print(format!("bad number {s:?}")))?;
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
