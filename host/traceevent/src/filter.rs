//! Event filters in the kernel's syntax (`Documentation/trace/events.rst`, "Event filtering"),
//! evaluated on records in user space.
//!
//! The kernel evaluates one filter per event and instance. When several consumers want the
//! same event with different filters (two declarations of `raw_syscalls:sys_enter` in one
//! plan), the kernel is given their disjunction and each record is routed here, by each
//! consumer's own filter. Nothing else does this in Rust: libtraceevent's filter code is C
//! (and LGPL), so this is our own small parser and evaluator for the grammar the kernel takes.
//!
//! ```text
//! expr   := and ( "||" and )*
//! and    := unary ( "&&" unary )*
//! unary  := "!" unary | "(" expr ")" | pred
//! pred   := FIELD OP VALUE
//! OP     := "==" | "!=" | "<" | "<=" | ">" | ">=" | "&" | "~"
//! VALUE  := integer (decimal, 0x hex, 0 octal, optional "-") | "string" | 'string' | word
//! ```
//!
//! Integer fields take every operator but `~`; string fields (`char[N]`, `__data_loc char[]`)
//! take `==`, `!=` and `~` (a glob with `*`, `?` and `[...]`; `==` globs too, as the kernel's
//! does when the value has a wildcard). `CPU`/`cpu` is the record's CPU. What the kernel takes
//! but this does not (`COMM`, the current task's name, which is not in the record; `.function`
//! and other field modifiers) is an error, so a caller can refuse rather than guess.

use crate::format::{EventFormat, FieldLayout};

/// A filter compiled against one event's format.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    root: Node,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Or(Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Int { field: Operand, op: Op, value: i128 },
    Str { field: FieldLayout, negate: bool, pattern: Vec<u8> },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Operand {
    Field { layout: FieldLayout, signed: bool },
    Cpu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    BitAnd,
    Glob,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok<'a> {
    Word(&'a str),
    Str(String),
    Op(Op),
    And,
    Or,
    Not,
    Open,
    Close,
}

impl Filter {
    /// Compiles `text` for records of `format`. The error says what is wrong, in one line.
    pub fn compile(text: &str, format: &EventFormat) -> Result<Filter, String> {
        let toks = lex(text)?;
        let mut p = Parser { toks: &toks, pos: 0, format };
        let root = p.or()?;
        if p.pos != toks.len() {
            return Err(format!("unexpected {} after a complete expression", p.describe()));
        }
        Ok(Filter { root })
    }

    /// Whether the record `payload` (common fields first, as the ring buffer holds it), read
    /// on CPU `cpu`, passes. A field that cannot be read (a corrupt locator) fails its test.
    pub fn matches(&self, payload: &[u8], cpu: u32) -> bool {
        eval(&self.root, payload, cpu)
    }
}

fn eval(n: &Node, data: &[u8], cpu: u32) -> bool {
    match n {
        Node::Or(a, b) => eval(a, data, cpu) || eval(b, data, cpu),
        Node::And(a, b) => eval(a, data, cpu) && eval(b, data, cpu),
        Node::Not(a) => !eval(a, data, cpu),
        Node::Int { field, op, value } => {
            let v: i128 = match field {
                Operand::Cpu => cpu as i128,
                Operand::Field { layout, signed: true } => match layout.read_i64(data) {
                    Some(v) => v as i128,
                    None => return false,
                },
                Operand::Field { layout, signed: false } => match layout.read_u64(data) {
                    Some(v) => v as i128,
                    None => return false,
                },
            };
            match op {
                Op::Eq => v == *value,
                Op::Ne => v != *value,
                Op::Lt => v < *value,
                Op::Le => v <= *value,
                Op::Gt => v > *value,
                Op::Ge => v >= *value,
                Op::BitAnd => (v & *value) != 0,
                Op::Glob => false,
            }
        }
        Node::Str { field, negate, pattern } => match field.str_bytes(data) {
            Some(s) => glob(pattern, s) != *negate,
            None => false,
        },
    }
}

/// Shell-style match of all of `s` against `pat`: `*` any run, `?` one byte, `[abc]`/`[a-z]`
/// one of a set (`[!...]` or `[^...]` none of it). Iterative, with one backtrack point, so a
/// hostile pattern costs O(len(pat) * len(s)) at worst.
fn glob(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() {
            match pat[p] {
                b'*' => {
                    star = Some((p, i));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    i += 1;
                    continue;
                }
                b'[' => {
                    if let Some((hit, next)) = class(&pat[p..], s[i]) {
                        if hit {
                            p += next;
                            i += 1;
                            continue;
                        }
                    } else if s[i] == b'[' {
                        p += 1;
                        i += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pat.len() && pat[p + 1] == s[i] => {
                    p += 2;
                    i += 1;
                    continue;
                }
                c if c == s[i] => {
                    p += 1;
                    i += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, si)) => {
                p = sp + 1;
                i = si + 1;
                star = Some((sp, si + 1));
            }
            None => return false,
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// A `[...]` class at the start of `pat`: whether `c` is in it, and the class's length.
/// `None` when the bracket is not closed (then it is a literal `[`).
fn class(pat: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut j = 1;
    let negate = matches!(pat.get(j), Some(b'!' | b'^'));
    if negate {
        j += 1;
    }
    let mut hit = false;
    let mut first = true;
    while j < pat.len() {
        let a = pat[j];
        if a == b']' && !first {
            return Some((hit != negate, j + 1));
        }
        first = false;
        if pat.get(j + 1) == Some(&b'-') && pat.get(j + 2).is_some_and(|&b| b != b']') {
            let b = pat[j + 2];
            hit |= a <= c && c <= b;
            j += 3;
        } else {
            hit |= a == c;
            j += 1;
        }
    }
    None
}

fn lex(text: &str) -> Result<Vec<Tok<'_>>, String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let two = b.get(i..i + 2).unwrap_or(&[]);
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                out.push(Tok::Open);
                i += 1
            }
            b')' => {
                out.push(Tok::Close);
                i += 1
            }
            b'"' | b'\'' => {
                let end = b[i + 1..]
                    .iter()
                    .position(|&x| x == c)
                    .ok_or_else(|| format!("unterminated string starting at byte {i}"))?;
                out.push(Tok::Str(text[i + 1..i + 1 + end].to_string()));
                i += end + 2;
            }
            _ if two == b"&&" => {
                out.push(Tok::And);
                i += 2
            }
            _ if two == b"||" => {
                out.push(Tok::Or);
                i += 2
            }
            _ if two == b"==" => {
                out.push(Tok::Op(Op::Eq));
                i += 2
            }
            _ if two == b"!=" => {
                out.push(Tok::Op(Op::Ne));
                i += 2
            }
            _ if two == b"<=" => {
                out.push(Tok::Op(Op::Le));
                i += 2
            }
            _ if two == b">=" => {
                out.push(Tok::Op(Op::Ge));
                i += 2
            }
            b'<' => {
                out.push(Tok::Op(Op::Lt));
                i += 1
            }
            b'>' => {
                out.push(Tok::Op(Op::Gt));
                i += 1
            }
            b'&' => {
                out.push(Tok::Op(Op::BitAnd));
                i += 1
            }
            b'~' => {
                out.push(Tok::Op(Op::Glob));
                i += 1
            }
            b'!' => {
                out.push(Tok::Not);
                i += 1
            }
            _ => {
                let start = i;
                while i < b.len() && !b" \t\n\r()\"'&|=!<>~".contains(&b[i]) {
                    i += 1;
                }
                if i == start {
                    return Err(format!("unexpected character {:?}", c as char));
                }
                out.push(Tok::Word(&text[start..i]));
            }
        }
    }
    Ok(out)
}

struct Parser<'t, 'a> {
    toks: &'t [Tok<'a>],
    pos: usize,
    format: &'t EventFormat,
}

impl<'t, 'a> Parser<'t, 'a> {
    fn peek(&self) -> Option<&'t Tok<'a>> {
        self.toks.get(self.pos)
    }

    fn describe(&self) -> String {
        match self.peek() {
            None => "end of filter".into(),
            Some(Tok::Word(w)) => format!("{w:?}"),
            Some(Tok::Str(s)) => format!("string {s:?}"),
            Some(t) => format!("{t:?}").to_lowercase(),
        }
    }

    fn or(&mut self) -> Result<Node, String> {
        let mut n = self.and()?;
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            n = Node::Or(Box::new(n), Box::new(self.and()?));
        }
        Ok(n)
    }

    fn and(&mut self) -> Result<Node, String> {
        let mut n = self.unary()?;
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            n = Node::And(Box::new(n), Box::new(self.unary()?));
        }
        Ok(n)
    }

    fn unary(&mut self) -> Result<Node, String> {
        match self.peek() {
            Some(Tok::Not) => {
                self.pos += 1;
                Ok(Node::Not(Box::new(self.unary()?)))
            }
            Some(Tok::Open) => {
                self.pos += 1;
                let n = self.or()?;
                if self.peek() != Some(&Tok::Close) {
                    return Err(format!("expected ')', found {}", self.describe()));
                }
                self.pos += 1;
                Ok(n)
            }
            _ => self.pred(),
        }
    }

    fn pred(&mut self) -> Result<Node, String> {
        let Some(Tok::Word(name)) = self.peek().cloned() else {
            return Err(format!("expected a field name, found {}", self.describe()));
        };
        self.pos += 1;
        let Some(Tok::Op(op)) = self.peek().cloned() else {
            return Err(format!("expected an operator after {name:?}, found {}", self.describe()));
        };
        self.pos += 1;
        let value = match self.peek().cloned() {
            Some(Tok::Word(w)) => w.to_string(),
            Some(Tok::Str(s)) => s,
            _ => return Err(format!("expected a value after {name} {op:?}, found {}", self.describe())),
        };
        self.pos += 1;
        if matches!(name, "CPU" | "cpu") && self.format.field(name).is_none() {
            return int_pred(Operand::Cpu, op, &value, name);
        }
        if matches!(name, "COMM" | "comm") && self.format.field(name).is_none() {
            return Err(format!("{name} (the current task's name) is not in the record"));
        }
        let Some(field) = self.format.field(name) else {
            return Err(if name.contains('.') {
                format!("field modifiers such as {name:?} are not supported")
            } else {
                format!("{} has no field {name:?}", self.format.name)
            });
        };
        if field.is_string() {
            let negate = match op {
                Op::Eq | Op::Glob => false,
                Op::Ne => true,
                _ => return Err(format!("{name} is a string: only ==, != and ~ apply")),
            };
            return Ok(Node::Str { field: field.layout(), negate, pattern: value.into_bytes() });
        }
        if field.array_len.is_some() || field.is_dynamic() || !matches!(field.size, 1 | 2 | 4 | 8) {
            return Err(format!("{name} is an array: it cannot be compared"));
        }
        int_pred(Operand::Field { layout: field.layout(), signed: field.signed }, op, &value, name)
    }
}

fn int_pred(field: Operand, op: Op, value: &str, name: &str) -> Result<Node, String> {
    if op == Op::Glob {
        return Err(format!("{name} is a number: ~ applies to strings"));
    }
    let (neg, digits) = match value.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, value),
    };
    let parsed = if let Some(h) = digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        u64::from_str_radix(h, 16)
    } else if digits.len() > 1 && digits.starts_with('0') {
        u64::from_str_radix(&digits[1..], 8)
    } else {
        digits.parse::<u64>()
    };
    let v = parsed.map_err(|_| format!("{value:?} is not a number (for {name})"))? as i128;
    Ok(Node::Int { field, op, value: if neg { -v } else { v } })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Endian;

    const SYS_ENTER: &str = "name: sys_enter\nID: 21\nformat:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
\tfield:long id;\toffset:8;\tsize:8;\tsigned:1;\n\
\tfield:unsigned long args[6];\toffset:16;\tsize:48;\tsigned:0;\n\
\tfield:char comm[16];\toffset:64;\tsize:16;\tsigned:0;\n\
\tfield:__data_loc char[] file;\toffset:80;\tsize:4;\tsigned:0;\n\n\
print fmt: \"NR %ld\", REC->id\n";

    fn record(pid: i32, id: i64, comm: &str, file: &str) -> Vec<u8> {
        let mut r = vec![0u8; 84];
        r[0..2].copy_from_slice(&21u16.to_ne_bytes());
        r[4..8].copy_from_slice(&pid.to_ne_bytes());
        r[8..16].copy_from_slice(&id.to_ne_bytes());
        r[64..64 + comm.len()].copy_from_slice(comm.as_bytes());
        let loc = ((file.len() as u32 + 1) << 16) | 84;
        r[80..84].copy_from_slice(&loc.to_ne_bytes());
        r.extend_from_slice(file.as_bytes());
        r.push(0);
        r
    }

    fn f(text: &str) -> Result<Filter, String> {
        let fmt = EventFormat::parse("raw_syscalls", SYS_ENTER, Endian::native()).unwrap();
        Filter::compile(text, &fmt)
    }

    #[test]
    fn integers_strings_and_logic() {
        let r = record(1234, 39, "cat", "/etc/hosts");
        let yes = |t: &str| assert!(f(t).unwrap().matches(&r, 1), "{t} should match");
        let no = |t: &str| assert!(!f(t).unwrap().matches(&r, 1), "{t} should not match");
        yes("id == 39");
        yes("id == 0x27");
        no("id != 39");
        yes("id > -1 && id < 40");
        no("id >= 40 || common_pid <= 1000");
        yes("!(id == 1)");
        yes("id & 0x20");
        no("id & 0x40");
        yes("comm == \"cat\"");
        yes("comm ~ \"c*\"");
        yes("comm == 'c?t'");
        no("comm != cat");
        yes("file ~ \"/etc/*\"");
        yes("file ~ \"*[h]osts\"");
        no("file ~ \"*.conf\"");
        yes("CPU == 1");
        yes("common_pid == 1234 && (id == 1 || id == 39)");
    }

    #[test]
    fn what_cannot_be_evaluated_is_an_error() {
        assert_eq!(f("nosuch == 1").unwrap_err(), "sys_enter has no field \"nosuch\"");
        assert_eq!(f("COMM == bash").unwrap_err(), "COMM (the current task's name) is not in the record");
        assert_eq!(f("id ~ 3").unwrap_err(), "id is a number: ~ applies to strings");
        assert_eq!(f("comm > 3").unwrap_err(), "comm is a string: only ==, != and ~ apply");
        assert_eq!(f("args == 3").unwrap_err(), "args is an array: it cannot be compared");
        assert_eq!(f("id == abc").unwrap_err(), "\"abc\" is not a number (for id)");
        assert!(f("id == 1 &&").is_err());
        assert!(f("(id == 1").is_err());
        assert!(f("id == 1 id").is_err());
        assert!(f("id >> /etc/passwd").is_err());
    }

    #[test]
    fn glob_is_linear_and_exact() {
        assert!(glob(b"*", b""));
        assert!(glob(b"a*b*c", b"axxbyyc"));
        assert!(!glob(b"a*b*c", b"axxbyy"));
        assert!(glob(b"[a-c]x", b"bx"));
        assert!(!glob(b"[!a-c]x", b"bx"));
        let s = vec![b'a'; 4000];
        assert!(!glob(b"*a*a*a*a*a*b", &s));
    }
}
