//! The token reader both dialects parse print fmts with: libtraceevent's (`read_token`),
//! reproduced byte for byte, since trace-cmd's text depends on how it splits `a--1` or where
//! a string with a byte of 0x80 or more ends. The kernel dialect reads the same tokens into
//! C tokens of its own (numbers with suffixes, strings with escapes resolved).

use super::sink::is_print;

/// What a token is (libtraceevent's `enum tep_event_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// Not a token: what a parser starts from before it has read one.
    Error,
    /// The end of the text, or a byte no token can hold (a control character, a byte of
    /// 0x80 or more outside a string): reading stops there.
    End,
    /// Blanks other than a newline.
    Space,
    /// `\n`.
    Newline,
    /// An operator: `->`, `<<=`, `&&`, `==`, or any other single punctuation character.
    Op,
    /// `(`, `)` or `,`.
    Delim,
    /// A run of letters, digits and `_`: a name or a number.
    Item,
    /// A `"..."` string, escapes kept, adjacent strings joined.
    DQuote,
    /// A `'...'` character literal, escapes kept.
    SQuote,
}

/// C's `isspace`.
pub(crate) fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// The kind of token a byte starts.
fn class(c: Option<u8>) -> TokenKind {
    let Some(c) = c else {
        return TokenKind::End;
    };
    if c == b'\n' {
        TokenKind::Newline
    } else if is_space(c) {
        TokenKind::Space
    } else if c.is_ascii_alphanumeric() || c == b'_' {
        TokenKind::Item
    } else if c == b'\'' {
        TokenKind::SQuote
    } else if c == b'"' {
        TokenKind::DQuote
    } else if !is_print(c) {
        TokenKind::End
    } else if matches!(c, b'(' | b')' | b',') {
        TokenKind::Delim
    } else {
        TokenKind::Op
    }
}

/// The token reader over the text that follows `print fmt:`.
pub(crate) struct Tokens<'a> {
    s: &'a [u8],
    pos: usize,
    /// Set when reading stopped at a byte no token can hold, before the end of the text.
    stopped: bool,
}

impl<'a> Tokens<'a> {
    /// A reader at the start of `s`.
    pub(crate) fn new(s: &'a str) -> Self {
        Tokens { s: s.as_bytes(), pos: 0, stopped: false }
    }

    fn getc(&mut self) -> Option<u8> {
        let c = self.s.get(self.pos).copied();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn raw(&mut self) -> (TokenKind, String) {
        let Some(c) = self.getc() else {
            return (TokenKind::End, String::new());
        };
        let ty = class(Some(c));
        if ty == TokenKind::End {
            self.stopped = true;
            return (TokenKind::End, String::new());
        }
        let mut buf = vec![c];
        match ty {
            TokenKind::Newline | TokenKind::Delim => return (ty, (c as char).to_string()),
            TokenKind::Op => {
                let mut test_equal = false;
                match c {
                    b'-' if self.peek() == Some(b'>') => {
                        buf.push(b'>');
                        self.pos += 1;
                    }
                    b'-' | b'+' | b'|' | b'&' | b'>' | b'<' => {
                        if self.peek() != Some(c) {
                            test_equal = true;
                        } else {
                            buf.push(c);
                            self.pos += 1;
                            test_equal = matches!(c, b'>' | b'<');
                        }
                    }
                    b'!' | b'=' => test_equal = true,
                    _ => {}
                }
                if test_equal && self.peek() == Some(b'=') {
                    buf.push(b'=');
                    self.pos += 1;
                }
                return (TokenKind::Op, String::from_utf8_lossy(&buf).into_owned());
            }
            TokenKind::DQuote | TokenKind::SQuote => {
                buf.clear();
                let quote = c;
                let mut ch: Option<u8> = Some(c);
                let mut ty = ty;
                loop {
                    let mut last;
                    loop {
                        last = ch;
                        ch = self.getc();
                        if let Some(x) = ch {
                            buf.push(x);
                        }
                        if ch == Some(b'\\') && last == Some(b'\\') {
                            last = Some(0);
                        }
                        // A NUL, the end, or a byte >= 0x80 (a negative `char`) ends the string.
                        let Some(x) = ch.filter(|&x| x != 0 && x < 0x80) else {
                            break;
                        };
                        if !((x != quote && is_print(x)) || last == Some(b'\\') || x == b'\n') {
                            break;
                        }
                    }
                    // Drop the character that ended the string (normally the quote).
                    if ch.is_some() {
                        buf.pop();
                    }
                    if ch.is_none_or(|x| x == 0 || x >= 0x80) {
                        ty = TokenKind::End;
                        self.stopped = true;
                    }
                    if ty == TokenKind::DQuote {
                        let save = self.pos;
                        let mut n = self.getc();
                        while n.is_some_and(is_space) {
                            n = self.getc();
                        }
                        if n == Some(b'"') {
                            ch = n;
                            continue;
                        }
                        self.pos = save;
                    }
                    break;
                }
                return (ty, String::from_utf8_lossy(&buf).into_owned());
            }
            _ => {}
        }
        while class(self.peek()) == ty {
            buf.push(self.s[self.pos]);
            self.pos += 1;
        }
        (ty, String::from_utf8_lossy(&buf).into_owned())
    }

    /// Next token that is not a space.
    pub(crate) fn read(&mut self) -> (TokenKind, String) {
        loop {
            let t = self.raw();
            if t.0 != TokenKind::Space {
                return t;
            }
        }
    }

    /// Next token that is neither a space nor a newline.
    pub(crate) fn read_item(&mut self) -> (TokenKind, String) {
        loop {
            let t = self.raw();
            if t.0 != TokenKind::Space && t.0 != TokenKind::Newline {
                return t;
            }
        }
    }

    /// Whether reading stopped at a byte no token can hold (or a string it cannot end)
    /// rather than at the end of the text.
    pub(crate) fn stopped_early(&self) -> bool {
        self.stopped
    }
}
