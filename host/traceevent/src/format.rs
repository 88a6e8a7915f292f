//! `events/<system>/<event>/format` files: an event's name, ID, field layout and print fmt.
//!
//! ```text
//! name: sched_switch
//! ID: 372
//! format:
//!     field:unsigned short common_type;    offset:0;    size:2;    signed:0;
//!     ...                                     (common fields, then a blank line)
//!     field:char prev_comm[16];    offset:8;    size:16;    signed:0;
//!     field:__data_loc char[] name;    offset:12;    size:4;    signed:0;
//!
//! print fmt: "prev_comm=%s ...", REC->prev_comm, ...
//! ```
//!
//! Field values are in the traced kernel's byte order. `__data_loc` fields hold a u32 whose
//! low 16 bits are the offset of the dynamic data from the start of the record and whose high
//! 16 bits its length (very old kernels: a u16 offset, the data running to the record's end);
//! `__rel_loc` is the same with the offset counted from the end of the field itself.
//! The print fmt is one C string literal (ftrace's own events use escapes and several
//! literals; other events carry the compiled text raw, newlines included) followed by the
//! argument expressions, kept here as raw text and compiled by [`crate::print`].

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use crate::endian::{sign_extend, Endian};
use crate::error::{Error, Result};
use crate::header::{EventHeader, PageHeader};
use crate::lte::LteEvent;
use crate::print::{self, Dialect, PrintContext, Program};
use crate::symbols::Symbols;

/// One `field:` line, borrowed from the text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawField<'a> {
    pub decl: &'a str,
    pub name: &'a str,
    pub offset: usize,
    pub size: usize,
    pub signed: Option<bool>,
}

/// Parses `field:<decl>; offset:N; size:N; [signed:N;]` (leading whitespace already trimmed).
pub(crate) fn parse_field_line(line: &str) -> Option<RawField<'_>> {
    let rest = line.strip_prefix("field:")?;
    let mut parts = rest.split(';');
    let decl = parts.next()?.trim();
    let (mut offset, mut size, mut signed) = (None, None, None);
    for p in parts {
        let Some((k, v)) = p.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim() {
            "offset" => offset = v.parse().ok(),
            "size" => size = v.parse().ok(),
            "signed" => signed = Some(v != "0"),
            _ => {}
        }
    }
    let base = match decl.rfind('[') {
        Some(i) if decl.ends_with(']') => decl[..i].trim_end(),
        _ => decl,
    };
    let start = base
        .char_indices()
        .rfind(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let name = &base[start..];
    if name.is_empty() {
        return None;
    }
    Some(RawField { decl, name, offset: offset?, size: size?, signed })
}

/// Properties of a field derived from its declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct FieldFlags(u16);

impl FieldFlags {
    /// A fixed-size array `name[N]` (or a flexible `name[]`).
    pub const ARRAY: Self = Self(1);
    /// A `__data_loc` reference to dynamic data.
    pub const DATA_LOC: Self = Self(2);
    /// A `__rel_loc` reference to dynamic data.
    pub const REL_LOC: Self = Self(4);
    /// Dynamic data (`__data_loc` or `__rel_loc`).
    pub const DYNAMIC: Self = Self(8);
    /// Characters: a `char` array or dynamic `char[]`.
    pub const STRING: Self = Self(16);
    /// A pointer type.
    pub const POINTER: Self = Self(32);
    /// A `long` type (size follows the kernel's long size).
    pub const LONG: Self = Self(64);
    /// A signed value (`signed:1`).
    pub const SIGNED: Self = Self(128);
    /// A flexible array `name[]` that runs to the end of the record.
    pub const FLEXIBLE: Self = Self(256);

    /// True if every flag of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of two flag sets.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

impl core::ops::BitOr for FieldFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

/// Where a field lives in a record and how to read it; `Copy`, for the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldLayout {
    /// Offset in the record payload.
    pub offset: usize,
    /// Size in the record payload (of the `__data_loc` word for dynamic fields).
    pub size: usize,
    /// Element size of an array (the size itself for scalars).
    pub elem_size: usize,
    /// Type-derived properties.
    pub flags: FieldFlags,
    /// Byte order of the data.
    pub endian: Endian,
}

impl FieldLayout {
    /// Reads the value zero-extended (sizes 1, 2, 4, 8); `None` if out of bounds or another size.
    #[inline]
    pub fn read_u64(&self, data: &[u8]) -> Option<u64> {
        self.endian.read_uint(data, self.offset, self.size)
    }

    /// Reads the value sign-extended; `None` if out of bounds or another size.
    #[inline]
    pub fn read_i64(&self, data: &[u8]) -> Option<i64> {
        self.endian.read_int(data, self.offset, self.size)
    }

    /// Reads the value extended by the field's signedness, as 64 bits.
    #[inline]
    pub fn read_value(&self, data: &[u8]) -> Option<u64> {
        let v = self.read_u64(data)?;
        Some(if self.flags.contains(FieldFlags::SIGNED) { sign_extend(v, self.size) as u64 } else { v })
    }

    /// Reads element `i` of a fixed array, extended by signedness.
    #[inline]
    pub fn read_element(&self, data: &[u8], i: usize) -> Option<u64> {
        let off = self.offset.checked_add(i.checked_mul(self.elem_size)?)?;
        if self.elem_size == 0 || off + self.elem_size > self.offset + self.size {
            return None;
        }
        let v = self.endian.read_uint(data, off, self.elem_size)?;
        Some(if self.flags.contains(FieldFlags::SIGNED) { sign_extend(v, self.elem_size) as u64 } else { v })
    }

    /// The field's bytes: the payload of a dynamic field, the rest of the record for a
    /// flexible array, else the field itself. `None` if out of bounds.
    #[inline]
    pub fn bytes<'d>(&self, data: &'d [u8]) -> Option<&'d [u8]> {
        if self.flags.contains(FieldFlags::DYNAMIC) {
            let (off, len) = if self.size == 2 {
                let off = usize::from(self.endian.read_u16(data, self.offset)?);
                (off, data.len().checked_sub(off)?)
            } else {
                let v = self.endian.read_u32(data, self.offset)?;
                let mut off = (v & 0xffff) as usize;
                if self.flags.contains(FieldFlags::REL_LOC) {
                    off += self.offset + self.size;
                }
                (off, (v >> 16) as usize)
            };
            data.get(off..off.checked_add(len)?)
        } else if self.flags.contains(FieldFlags::FLEXIBLE) {
            data.get(self.offset..)
        } else {
            data.get(self.offset..self.offset.checked_add(self.size)?)
        }
    }

    /// The field's bytes up to the first NUL (C string semantics).
    #[inline]
    pub fn str_bytes<'d>(&self, data: &'d [u8]) -> Option<&'d [u8]> {
        let b = self.bytes(data)?;
        Some(match b.iter().position(|&c| c == 0) {
            Some(n) => &b[..n],
            None => b,
        })
    }
}

/// One field of an event format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Field name, e.g. `prev_comm`.
    pub name: String,
    /// Declared type without the name and fixed-array suffix, e.g. `char`,
    /// `__data_loc char[]`, `const char *`.
    pub type_name: String,
    /// `Some(n)` for `name[n]`, `Some(0)` for a flexible `name[]`, `None` otherwise.
    pub array_len: Option<usize>,
    /// Offset in the record payload.
    pub offset: usize,
    /// Size in the record payload.
    pub size: usize,
    /// From `signed:` (guessed from the type when the kernel did not say).
    pub signed: bool,
    /// Type-derived properties.
    pub flags: FieldFlags,
    /// Byte order of the data.
    pub endian: Endian,
}

impl Field {
    fn from_raw(raw: &RawField<'_>, endian: Endian) -> Self {
        let decl = raw.decl;
        let (base, array_len) = match decl.rfind('[') {
            Some(i) if decl.ends_with(']') => {
                let dims = decl[i + 1..decl.len() - 1].trim();
                let name_end = decl[..i].trim_end();
                let base = name_end[..name_end.len() - raw.name.len()].trim_end();
                (base, Some(dims.parse().unwrap_or(0)))
            }
            _ => (decl[..decl.len() - raw.name.len()].trim_end(), None),
        };
        let type_name = base.to_string();
        let words: Vec<&str> = type_name
            .split(|c: char| c.is_whitespace() || c == '*' || c == '[' || c == ']')
            .filter(|w| !w.is_empty())
            .collect();
        let mut flags = FieldFlags::default();
        if array_len.is_some() {
            flags = flags | FieldFlags::ARRAY;
            if array_len == Some(0) {
                flags = flags | FieldFlags::FLEXIBLE;
            }
        }
        let data_loc = words.first() == Some(&"__data_loc");
        let rel_loc = words.first() == Some(&"__rel_loc");
        if data_loc {
            flags = flags | FieldFlags::DATA_LOC | FieldFlags::DYNAMIC;
        }
        if rel_loc {
            flags = flags | FieldFlags::REL_LOC | FieldFlags::DYNAMIC;
        }
        let elem: Vec<&str> = words
            .iter()
            .copied()
            .filter(|w| !matches!(*w, "__data_loc" | "__rel_loc" | "const" | "volatile"))
            .collect();
        let is_char = elem == ["char"] || elem == ["signed", "char"] || elem == ["unsigned", "char"];
        let dynamic = data_loc || rel_loc;
        let pointer = type_name.contains('*') && !dynamic;
        if is_char && (array_len.is_some() || dynamic) || (dynamic && elem.is_empty()) {
            flags = flags | FieldFlags::STRING;
        }
        if pointer {
            flags = flags | FieldFlags::POINTER;
        }
        let longs = elem.iter().filter(|w| **w == "long").count();
        if longs == 1 && !pointer {
            flags = flags | FieldFlags::LONG;
        }
        let signed = raw.signed.unwrap_or_else(|| {
            !pointer
                && !dynamic
                && !elem.iter().any(|w| *w == "unsigned" || *w == "bool" || w.starts_with('u') || w.starts_with("__u"))
        });
        if signed {
            flags = flags | FieldFlags::SIGNED;
        }
        Field {
            name: raw.name.to_string(),
            type_name,
            array_len,
            offset: raw.offset,
            size: raw.size,
            signed,
            flags,
            endian,
        }
    }

    /// The copyable layout used for reading; no allocation.
    pub fn layout(&self) -> FieldLayout {
        let elem_size = match self.array_len {
            Some(n) if n > 0 => self.size / n,
            _ => self.size,
        };
        FieldLayout { offset: self.offset, size: self.size, elem_size, flags: self.flags, endian: self.endian }
    }

    fn err(&self, msg: &'static str) -> Error {
        Error::Field { field: self.name.clone(), msg }
    }

    /// True for `__data_loc` / `__rel_loc` fields.
    pub fn is_dynamic(&self) -> bool {
        self.flags.contains(FieldFlags::DYNAMIC)
    }

    /// True for character arrays and dynamic strings.
    pub fn is_string(&self) -> bool {
        self.flags.contains(FieldFlags::STRING)
    }

    /// Reads the value zero-extended (field sizes 1, 2, 4, 8).
    pub fn read_u64(&self, data: &[u8]) -> Result<u64> {
        self.layout().read_u64(data).ok_or_else(|| self.err("out of bounds or not a 1/2/4/8-byte integer"))
    }

    /// Reads the value sign-extended (field sizes 1, 2, 4, 8).
    pub fn read_i64(&self, data: &[u8]) -> Result<i64> {
        self.layout().read_i64(data).ok_or_else(|| self.err("out of bounds or not a 1/2/4/8-byte integer"))
    }

    /// Reads element `i` of a fixed-size array, extended by the field's signedness.
    pub fn read_element(&self, data: &[u8], i: usize) -> Result<u64> {
        self.layout().read_element(data, i).ok_or_else(|| self.err("array index out of bounds"))
    }

    /// The raw bytes: dynamic payload, flexible tail, or the field itself.
    pub fn bytes<'d>(&self, data: &'d [u8]) -> Result<&'d [u8]> {
        self.layout().bytes(data).ok_or_else(|| self.err("data out of bounds"))
    }

    /// A string field's bytes up to the first NUL; no allocation.
    pub fn str_bytes<'d>(&self, data: &'d [u8]) -> Result<&'d [u8]> {
        self.layout().str_bytes(data).ok_or_else(|| self.err("data out of bounds"))
    }

    /// A string field as UTF-8 up to the first NUL; errors if it is not UTF-8.
    pub fn str<'d>(&self, data: &'d [u8]) -> Result<&'d str> {
        core::str::from_utf8(self.str_bytes(data)?).map_err(|_| self.err("not UTF-8"))
    }

    /// The payload of a dynamic array (`__data_loc`/`__rel_loc`), e.g. `__data_loc u64[]`.
    pub fn dynamic_array<'d>(&self, data: &'d [u8]) -> Result<&'d [u8]> {
        if !self.is_dynamic() {
            return Err(self.err("not a __data_loc/__rel_loc field"));
        }
        self.bytes(data)
    }
}

/// The print fmt of an event: the format string and its raw argument text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrintFmt {
    /// The format string with C escapes resolved and adjacent literals joined.
    pub format: String,
    /// The argument expressions after the format string, as written (may be empty).
    pub args: String,
}

impl PrintFmt {
    /// Splits the text after `print fmt: ` into the format string and the raw arguments.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |msg: &str| Error::Print(msg.to_string());
        let mut rest = text.trim_start();
        if !rest.starts_with('"') {
            return Err(bad("print fmt does not start with a string literal"));
        }
        let mut format = String::new();
        while let Some(body) = rest.strip_prefix('"') {
            let (lit, after) = unescape_literal(body).ok_or_else(|| bad("unterminated string"))?;
            format.push_str(&lit);
            rest = after.trim_start();
        }
        let args = match rest.strip_prefix(',') {
            Some(a) => a.trim(),
            None if rest.trim().is_empty() => "",
            None => return Err(bad("expected ',' after the format string")),
        };
        Ok(PrintFmt { format, args: args.to_string() })
    }
}

/// Reads a C string literal body up to its closing quote, resolving escapes; returns the
/// content and the text after the quote.
pub(crate) fn unescape_literal(body: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &body[i + 1..])),
            '\\' => {
                let (_, e) = chars.next()?;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '0'..='7' => {
                        let mut v = e as u32 - '0' as u32;
                        for _ in 0..2 {
                            let s = chars.as_str();
                            match s.chars().next() {
                                Some(d @ '0'..='7') => {
                                    v = v * 8 + (d as u32 - '0' as u32);
                                    chars.next();
                                }
                                _ => break,
                            }
                        }
                        out.push(char::from_u32(v).unwrap_or('?'));
                    }
                    'x' => {
                        let s = chars.as_str();
                        let n = s.chars().take_while(|c| c.is_ascii_hexdigit()).count();
                        let v = u32::from_str_radix(&s[..n.min(2)], 16).ok()?;
                        for _ in 0..n.min(2) {
                            chars.next();
                        }
                        out.push(char::from_u32(v).unwrap_or('?'));
                    }
                    'a' => out.push('\x07'),
                    'b' => out.push('\x08'),
                    'f' => out.push('\x0c'),
                    'v' => out.push('\x0b'),
                    other => out.push(other),
                }
            }
            c => out.push(c),
        }
    }
    None
}

/// A parsed event format: identity, fields and print fmt (compiled once, here).
#[derive(Debug, Clone)]
pub struct EventFormat {
    /// Event system (the directory under `events/`), as given to [`EventFormat::parse`].
    pub system: String,
    /// Event name.
    pub name: String,
    /// Event id (`common_type` of its records).
    pub id: u32,
    /// The `common_*` fields every record starts with.
    pub common_fields: Vec<Field>,
    /// The event's own fields.
    pub fields: Vec<Field>,
    /// The print fmt, if the file had one.
    pub print_fmt: Option<PrintFmt>,
    program: Result<Program, Error>,
    /// The text after `print fmt:` as written (libtraceevent re-reads it its own way).
    print_raw: Option<String>,
    /// The print fmt as libtraceevent parses it, built on first use in that dialect.
    lte: LteCell,
    /// libtraceevent's sched plugin registers the comms this event's records carry.
    registers_comms: bool,
}

/// The lazily compiled libtraceevent form; a clone starts empty and compiles again.
#[derive(Debug, Default)]
struct LteCell(OnceLock<Box<LteEvent>>);

impl Clone for LteCell {
    fn clone(&self) -> Self {
        LteCell::default()
    }
}

impl EventFormat {
    /// Parses a format file's text and compiles its print fmt; allocates the strings and
    /// field tables. A print fmt that does not compile is kept as an error for
    /// [`EventFormat::print_error`] and printing falls back to raw fields.
    pub fn parse(system: &str, text: &str, endian: Endian) -> Result<Self> {
        let mut name = None;
        let mut id = None;
        let mut common_fields = Vec::new();
        let mut fields = Vec::new();
        let mut print_fmt = None;
        let mut print_raw = None;
        let mut in_common = true;
        let mut offset = 0;
        for (i, line) in text.split_inclusive('\n').enumerate() {
            let lineno = i + 1;
            let start = offset;
            offset += line.len();
            let l = line.trim();
            let err = |msg: String| Error::Format { line: lineno, msg };
            if let Some(v) = l.strip_prefix("name:") {
                name = Some(v.trim().to_string());
            } else if let Some(v) = l.strip_prefix("ID:") {
                id = Some(v.trim().parse::<u32>().map_err(|_| err(format!("bad ID {:?}", v.trim())))?);
            } else if l == "format:" {
            } else if l.is_empty() {
                if !common_fields.is_empty() {
                    in_common = false;
                }
            } else if l.starts_with("field:") || l.starts_with("field ") {
                let raw = parse_field_line(l).ok_or_else(|| err(format!("cannot parse field {l:?}")))?;
                let f = Field::from_raw(&raw, endian);
                if in_common && f.name.starts_with("common_") {
                    common_fields.push(f);
                } else {
                    in_common = false;
                    fields.push(f);
                }
            } else if line.trim_start().starts_with("print fmt:") {
                let at = start + line.find("print fmt:").unwrap_or(0) + "print fmt:".len();
                let pf = PrintFmt::parse(text[at..].trim_end_matches(['\n', '\r'])).map_err(|e| err(e.to_string()))?;
                print_fmt = Some(pf);
                print_raw = Some(text[at..].to_string());
                break;
            } else {
                return Err(err(format!("unexpected line {l:?}")));
            }
        }
        let name = name.ok_or_else(|| Error::Format { line: 1, msg: "no name:".into() })?;
        let id = id.ok_or_else(|| Error::Format { line: 2, msg: "no ID:".into() })?;
        let mut ev = EventFormat {
            system: system.to_string(),
            name,
            id,
            common_fields,
            fields,
            print_fmt,
            program: Err(Error::Print("no print fmt".into())),
            print_raw,
            lte: LteCell::default(),
            registers_comms: false,
        };
        ev.registers_comms =
            ev.system == "sched" && matches!(ev.name.as_str(), "sched_switch" | "sched_wakeup" | "sched_wakeup_new");
        if let Some(pf) = &ev.print_fmt {
            ev.program = Program::compile(pf, &ev);
        }
        Ok(ev)
    }

    /// A field by name, the event's own fields first, then the common ones.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().chain(&self.common_fields).find(|f| f.name == name)
    }

    /// Every field, common ones first.
    pub fn all_fields(&self) -> impl Iterator<Item = &Field> {
        self.common_fields.iter().chain(&self.fields)
    }

    /// Names in the print fmt that are not numbers (enum constants the kernel left in, such as
    /// `HRTIMER_MODE_ABS`): the kernel's own text resolves them, ours prints their values.
    pub fn unresolved_symbols(&self) -> &[String] {
        self.program.as_ref().map_or(&[], |p| p.unresolved_symbols())
    }

    /// Why the print fmt did not compile, if it did not.
    pub fn print_error(&self) -> Option<&Error> {
        self.program.as_ref().err()
    }

    /// The compiled print fmt, if it compiled.
    pub fn program(&self) -> Option<&Program> {
        self.program.as_ref().ok()
    }

    /// The text after `print fmt:`, as written in the format file.
    pub fn print_fmt_raw(&self) -> Option<&str> {
        self.print_raw.as_deref()
    }

    /// Whether this event's [`Dialect::LibTraceEvent`] text can depend on kernel symbols (so
    /// that a caller can skip reading kallsyms when no event needs them): a name in the print
    /// fmt that only kallsyms resolves, a `%pS`-style pointer, or a plugin that prints
    /// function names.
    pub fn lte_wants_symbols(&self, long_size: u8) -> bool {
        LteEvent::compile(self, long_size, None).wants_symbols()
    }

    /// The event compiled for [`Dialect::LibTraceEvent`] (on first use, with the context's
    /// long size and symbols: names in the print fmt that are not numbers resolve through
    /// kallsyms, as libtraceevent does).
    pub(crate) fn lte(&self, ctx: &PrintContext) -> &LteEvent {
        self.lte.0.get_or_init(|| Box::new(LteEvent::compile(self, ctx.long_size, ctx.symbols)))
    }

    /// Appends the event's info text (what the `trace` file prints after `name: `) to `out`.
    /// Never fails: if the print fmt cannot be evaluated, prints each non-common field as
    /// `name=value`. Allocates only by growing `out`.
    ///
    /// In [`Dialect::LibTraceEvent`] the text is libtraceevent's (what `trace-cmd report`
    /// shows, plugins included), `[FAILED TO PARSE]` lines and all.
    pub fn print_info(&self, data: &[u8], ctx: &PrintContext, out: &mut String) {
        if ctx.dialect == Dialect::LibTraceEvent {
            let mut text = Vec::new();
            self.lte(ctx).print(data, ctx, &mut text);
            out.push_str(&String::from_utf8_lossy(&text));
            return;
        }
        if print::write_syscall(self, data, ctx, out) || print::write_probe(self, data, ctx, out) {
            return;
        }
        let start = out.len();
        if let Ok(p) = &self.program {
            if p.eval(data, ctx, out).is_ok() {
                return;
            }
            out.truncate(start);
        }
        print::print_raw_fields(self, data, ctx, out);
    }

    /// [`EventFormat::print_info`] into bytes (the text is UTF-8). In
    /// [`Dialect::LibTraceEvent`] this is the fast path: it appends to `out` without
    /// allocating or validating.
    pub fn print_info_bytes(&self, data: &[u8], ctx: &PrintContext, out: &mut Vec<u8>) {
        if ctx.dialect == Dialect::LibTraceEvent {
            self.lte(ctx).print(data, ctx, out);
            return;
        }
        let mut text = String::new();
        self.print_info(data, ctx, &mut text);
        out.extend_from_slice(text.as_bytes());
    }

    /// Whether printing this event's records teaches the registry comms (see
    /// [`EventFormats::note_record`]); for the others that call does nothing.
    pub fn registers_comms(&self) -> bool {
        self.registers_comms
    }
}

/// A cheap hasher for pids (the per-record comm lookup); not DoS-resistant, keys are pids.
#[derive(Debug, Default, Clone, Copy)]
pub struct PidHasher(u64);

impl Hasher for PidHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_i32(&mut self, i: i32) {
        self.0 = u64::from(i as u32).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Every event format of a trace, by id, with what decoding them needs: the page header,
/// the kernel's long size and byte order, and the pid → comm map.
#[derive(Debug, Clone)]
pub struct EventFormats {
    page_header: PageHeader,
    event_header: EventHeader,
    formats: Vec<EventFormat>,
    by_id: HashMap<u32, usize>,
    /// `common_type` (a u16) → index + 1 into `formats`, 0 for none: the per-record lookup.
    by_type: Vec<u32>,
    cmdlines: HashMap<i32, String, BuildHasherDefault<PidHasher>>,
    /// Counts changes of `cmdlines`, for callers that cache what [`EventFormats::comm`] said.
    comm_generation: u64,
    symbols: Symbols,
    dialect: Dialect,
}

impl EventFormats {
    /// An empty registry for a kernel with this page header.
    pub fn new(page_header: PageHeader) -> Self {
        EventFormats {
            page_header,
            event_header: EventHeader::default(),
            formats: Vec::new(),
            by_id: HashMap::new(),
            by_type: Vec::new(),
            cmdlines: HashMap::default(),
            comm_generation: 0,
            symbols: Symbols::new(),
            dialect: Dialect::Kernel,
        }
    }

    /// Sets the parsed `header_event` (defaults to the standard one).
    pub fn set_event_header(&mut self, h: EventHeader) {
        self.event_header = h;
    }

    /// The `header_event` in use.
    pub fn event_header(&self) -> &EventHeader {
        &self.event_header
    }

    /// The sub-buffer header layout.
    pub fn page_header(&self) -> &PageHeader {
        &self.page_header
    }

    /// The kernel's `long` size in bytes.
    pub fn long_size(&self) -> usize {
        self.page_header.long_size()
    }

    /// Byte order of the data.
    pub fn endian(&self) -> Endian {
        self.page_header.endian
    }

    /// Chooses whose text `print` reproduces (default: the kernel's `trace` file).
    pub fn set_dialect(&mut self, d: Dialect) {
        self.dialect = d;
    }

    /// The context for printing with this registry's long size, byte order and dialect.
    pub fn print_context(&self) -> PrintContext<'_> {
        PrintContext {
            long_size: self.long_size() as u8,
            endian: self.endian(),
            dialect: self.dialect,
            symbols: Some(&self.symbols),
        }
    }

    /// Parses a format file of `system` and adds it; returns its id. A format with an id
    /// already present replaces it.
    pub fn add_format(&mut self, system: &str, text: &str) -> Result<u32> {
        let f = EventFormat::parse(system, text, self.endian())?;
        let id = f.id;
        self.insert(f);
        Ok(id)
    }

    /// Adds a parsed format.
    pub fn insert(&mut self, f: EventFormat) {
        let id = f.id;
        let i = match self.by_id.get(&id) {
            Some(&i) => {
                self.formats[i] = f;
                i
            }
            None => {
                self.by_id.insert(id, self.formats.len());
                self.formats.push(f);
                self.formats.len() - 1
            }
        };
        if let Ok(t) = u16::try_from(id) {
            if self.by_type.len() <= usize::from(t) {
                self.by_type.resize(usize::from(t) + 1, 0);
            }
            self.by_type[usize::from(t)] = i as u32 + 1;
        }
    }

    /// The format with this id.
    pub fn by_id(&self, id: u32) -> Option<&EventFormat> {
        self.by_id.get(&id).map(|&i| &self.formats[i])
    }

    /// The format of `system`/`name`.
    pub fn find(&self, system: &str, name: &str) -> Option<&EventFormat> {
        self.formats.iter().find(|f| f.name == name && (system.is_empty() || f.system == system))
    }

    /// The format of a record payload, from its `common_type`.
    #[inline]
    pub fn for_record(&self, data: &[u8]) -> Option<&EventFormat> {
        let id = crate::subbuf::common_type(data, self.endian())?;
        let i = *self.by_type.get(usize::from(id))?;
        self.formats.get((i as usize).checked_sub(1)?)
    }

    /// Every format, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &EventFormat> {
        self.formats.iter()
    }

    /// Number of formats.
    pub fn len(&self) -> usize {
        self.formats.len()
    }

    /// True if no format was added.
    pub fn is_empty(&self) -> bool {
        self.formats.is_empty()
    }

    /// Adds the `<pid> <comm>` lines of a `saved_cmdlines` text; unparsable lines are skipped.
    pub fn parse_cmdlines(&mut self, text: &str) {
        for line in text.lines() {
            let line = line.trim_start();
            let Some((pid, comm)) = line.split_once(' ') else {
                continue;
            };
            if let Ok(pid) = pid.parse::<i32>() {
                self.cmdlines.insert(pid, comm.trim_end().to_string());
            }
        }
        self.comm_generation += 1;
    }

    /// Adds the symbols of a `/proc/kallsyms` text (for `%pS` and friends).
    pub fn parse_kallsyms(&mut self, text: &str) {
        self.symbols.parse_kallsyms(text);
    }

    /// Adds the strings of a `printk_formats` text (for `%s` of kernel string pointers).
    pub fn parse_printk_formats(&mut self, text: &str) {
        self.symbols.parse_printk_formats(text);
    }

    /// The symbol and string tables.
    pub fn symbols(&self) -> &Symbols {
        &self.symbols
    }

    /// Records `comm` as the command of `pid`.
    pub fn add_cmdline(&mut self, pid: i32, comm: &str) {
        self.cmdlines.insert(pid, comm.to_string());
        self.comm_generation += 1;
    }

    /// Records `comm` as the command of `pid` unless `pid` already has one (or is 0), as
    /// libtraceevent's `tep_register_comm` does.
    pub fn register_comm(&mut self, pid: i32, comm: &str) {
        if pid != 0 {
            if let std::collections::hash_map::Entry::Vacant(e) = self.cmdlines.entry(pid) {
                e.insert(comm.to_string());
                self.comm_generation += 1;
            }
        }
    }

    /// Applies what printing this record does to the registry besides the text: in
    /// [`Dialect::LibTraceEvent`], the sched plugin of libtraceevent registers the comms of
    /// `sched_switch` and `sched_wakeup` records, which later lines then show. Call it after
    /// printing each record to reproduce `trace-cmd report` exactly.
    pub fn note_record(&mut self, data: &[u8]) {
        if self.dialect != Dialect::LibTraceEvent {
            return;
        }
        let Some(f) = self.for_record(data) else {
            return;
        };
        if !f.registers_comms {
            return;
        }
        let ctx = self.print_context();
        let pairs = f.lte(&ctx).registered_comms(data, self.endian());
        for (pid, comm) in pairs.into_iter().flatten() {
            if pid != 0 && !self.cmdlines.contains_key(&pid) {
                self.cmdlines.insert(pid, String::from_utf8_lossy(comm).into_owned());
                self.comm_generation += 1;
            }
        }
    }

    /// A number that changes whenever [`EventFormats::comm`] may answer differently: text
    /// built from comms can be kept while it stays the same.
    pub fn comm_generation(&self) -> u64 {
        self.comm_generation
    }

    /// The command of `pid` as trace output shows it: `<idle>` for 0, `<...>` if unknown.
    pub fn comm(&self, pid: i32) -> &str {
        if pid == 0 {
            return "<idle>";
        }
        self.cmdlines.get(&pid).map_or("<...>", String::as_str)
    }

    /// Appends the info text of a record payload; `[UNKNOWN EVENT]`-free: an unknown id prints
    /// as `unknown event id N`. Never fails.
    pub fn print_info(&self, data: &[u8], out: &mut String) {
        match self.for_record(data) {
            Some(f) => f.print_info(data, &self.print_context(), out),
            None => {
                use core::fmt::Write;
                let id = crate::subbuf::common_type(data, self.endian());
                let _ = match id {
                    Some(id) => write!(out, "unknown event id {id}"),
                    None => write!(out, "truncated record of {} bytes", data.len()),
                };
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The common fields every event format starts with, as the kernel lists them.
    pub(crate) const COMMON: &str = "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;
";

    pub(crate) const SCHED_SWITCH: &str = "name: sched_switch
ID: 372
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;
\tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;
\tfield:int prev_prio;\toffset:28;\tsize:4;\tsigned:1;
\tfield:long prev_state;\toffset:32;\tsize:8;\tsigned:1;
\tfield:char next_comm[16];\toffset:40;\tsize:16;\tsigned:0;
\tfield:pid_t next_pid;\toffset:56;\tsize:4;\tsigned:1;
\tfield:int next_prio;\toffset:60;\tsize:4;\tsigned:1;

print fmt: \"prev_comm=%s prev_pid=%d prev_prio=%d prev_state=%s%s ==> next_comm=%s next_pid=%d next_prio=%d\", REC->prev_comm, REC->prev_pid, REC->prev_prio, (REC->prev_state & ((((0x00000000 | 0x00000001 | 0x00000002 | 0x00000004 | 0x00000008 | 0x00000010 | 0x00000020 | 0x00000040) + 1) << 1) - 1)) ? __print_flags(REC->prev_state & ((((0x00000000 | 0x00000001 | 0x00000002 | 0x00000004 | 0x00000008 | 0x00000010 | 0x00000020 | 0x00000040) + 1) << 1) - 1), \"|\", { 0x00000001, \"S\" }, { 0x00000002, \"D\" }, { 0x00000004, \"T\" }, { 0x00000008, \"t\" }, { 0x00000010, \"X\" }, { 0x00000020, \"Z\" }, { 0x00000040, \"P\" }, { 0x00000080, \"I\" }) : \"R\", REC->prev_state & (((0x00000000 | 0x00000001 | 0x00000002 | 0x00000004 | 0x00000008 | 0x00000010 | 0x00000020 | 0x00000040) + 1) << 1) ? \"+\" : \"\", REC->next_comm, REC->next_pid, REC->next_prio
";

    #[test]
    fn parses_sched_switch() {
        let f = EventFormat::parse("sched", SCHED_SWITCH, Endian::Little).unwrap();
        assert_eq!((f.name.as_str(), f.id), ("sched_switch", 372));
        assert_eq!(f.common_fields.len(), 4);
        assert_eq!(f.fields.len(), 7);
        let comm = f.field("prev_comm").unwrap();
        assert_eq!(comm.type_name, "char");
        assert_eq!(comm.array_len, Some(16));
        assert!(comm.is_string() && comm.flags.contains(FieldFlags::ARRAY));
        let st = f.field("prev_state").unwrap();
        assert!(st.flags.contains(FieldFlags::LONG) && st.signed);
        assert_eq!((st.offset, st.size), (32, 8));
        let pf = f.print_fmt.as_ref().unwrap();
        assert!(pf.format.starts_with("prev_comm=%s prev_pid=%d"));
        assert!(pf.args.starts_with("REC->prev_comm, REC->prev_pid"));
        assert!(pf.args.ends_with("REC->next_prio"));
        assert!(f.print_error().is_none(), "{:?}", f.print_error());
    }

    #[test]
    fn field_declarations() {
        let p = |l: &str| Field::from_raw(&parse_field_line(l).unwrap(), Endian::Little);
        let f = p("field:__data_loc char[] name;\toffset:12;\tsize:4;\tsigned:0;");
        assert_eq!((f.name.as_str(), f.type_name.as_str()), ("name", "__data_loc char[]"));
        assert!(f.is_dynamic() && f.is_string() && f.flags.contains(FieldFlags::DATA_LOC));
        assert_eq!(f.array_len, None);
        let f = p("field:__rel_loc u64[] addrs;\toffset:8;\tsize:4;\tsigned:0;");
        assert!(f.flags.contains(FieldFlags::REL_LOC) && !f.is_string());
        let f = p("field:const char * filename;\toffset:24;\tsize:8;\tsigned:0;");
        assert_eq!(f.type_name, "const char *");
        assert!(f.flags.contains(FieldFlags::POINTER) && !f.is_string());
        let f = p("field:char buf[];\toffset:16;\tsize:0;\tsigned:0;");
        assert_eq!(f.array_len, Some(0));
        assert!(f.flags.contains(FieldFlags::FLEXIBLE) && f.is_string());
        let f = p("field:unsigned long caller[8];\toffset:8;\tsize:64;\tsigned:0;");
        assert_eq!((f.array_len, f.layout().elem_size), (Some(8), 8));
        // Old kernels: no signed key, 2-byte data_loc.
        let f = p("field:__data_loc name;\toffset:12;\tsize:2;");
        assert!(f.is_dynamic() && f.is_string() && !f.signed);
        let f = p("field:int irq;\toffset:8;\tsize:4;");
        assert!(f.signed);
        let f = p("field:unsigned int x;\toffset:8;\tsize:4;");
        assert!(!f.signed);
    }

    #[test]
    fn field_access() {
        let f = EventFormat::parse("sched", SCHED_SWITCH, Endian::Little).unwrap();
        let mut d = vec![0u8; 64];
        d[8..13].copy_from_slice(b"bash\0");
        d[24..28].copy_from_slice(&(-5i32).to_le_bytes());
        d[32..40].copy_from_slice(&2u64.to_le_bytes());
        assert_eq!(f.field("prev_comm").unwrap().str(&d).unwrap(), "bash");
        assert_eq!(f.field("prev_pid").unwrap().read_i64(&d).unwrap(), -5);
        assert_eq!(f.field("prev_pid").unwrap().read_u64(&d).unwrap(), 0xffff_fffb);
        assert_eq!(f.field("prev_state").unwrap().read_u64(&d).unwrap(), 2);
        assert!(f.field("prev_state").unwrap().read_u64(&d[..35]).is_err());
        assert!(f.field("prev_comm").unwrap().read_u64(&d).is_err());
        // data_loc: offset 16, len 6; rel_loc: offset relative to the field end.
        let dl = Field::from_raw(
            &parse_field_line("field:__data_loc char[] name;\toffset:12;\tsize:4;\tsigned:0;").unwrap(),
            Endian::Little,
        );
        let mut d = vec![0u8; 24];
        d[12..16].copy_from_slice(&(16u32 | 6 << 16).to_le_bytes());
        d[16..22].copy_from_slice(b"hello\0");
        assert_eq!(dl.str(&d).unwrap(), "hello");
        assert_eq!(dl.dynamic_array(&d).unwrap(), b"hello\0");
        d[12..16].copy_from_slice(&(20u32 | 6 << 16).to_le_bytes());
        assert!(dl.str(&d).is_err());
        let rl = Field::from_raw(
            &parse_field_line("field:__rel_loc char[] name;\toffset:12;\tsize:4;\tsigned:0;").unwrap(),
            Endian::Little,
        );
        d[12..16].copy_from_slice(&(6u32 << 16).to_le_bytes());
        assert_eq!(rl.str(&d).unwrap(), "hello");
        // Big-endian data_loc.
        let be = Field { endian: Endian::Big, ..dl.clone() };
        d[12..16].copy_from_slice(&(16u32 | 6 << 16).to_be_bytes());
        assert_eq!(be.str(&d).unwrap(), "hello");
    }

    #[test]
    fn print_fmt_literals() {
        let p = PrintFmt::parse("\"a\\tb\" \"c\\n\", REC->x").unwrap();
        assert_eq!(p.format, "a\tbc\n");
        assert_eq!(p.args, "REC->x");
        let p = PrintFmt::parse("\"raw\nnewline %d\", REC->x\n").unwrap();
        assert_eq!(p.format, "raw\nnewline %d");
        let p = PrintFmt::parse("\"no args\"").unwrap();
        assert_eq!(p.args, "");
        assert!(PrintFmt::parse("\"open").is_err());
        assert!(PrintFmt::parse("x").is_err());
    }

    #[test]
    fn registry_and_cmdlines() {
        let mut r = EventFormats::new(PageHeader::standard(8, Endian::Little, 4096).unwrap());
        assert_eq!(r.add_format("sched", SCHED_SWITCH).unwrap(), 372);
        assert_eq!(r.by_id(372).unwrap().name, "sched_switch");
        assert!(r.find("sched", "sched_switch").is_some());
        r.parse_cmdlines("1 systemd\n  42 kworker/0:1\nbad\n");
        assert_eq!(r.comm(0), "<idle>");
        assert_eq!(r.comm(1), "systemd");
        assert_eq!(r.comm(42), "kworker/0:1");
        assert_eq!(r.comm(7), "<...>");
        let mut d = vec![0u8; 64];
        d[0..2].copy_from_slice(&372u16.to_le_bytes());
        assert_eq!(r.for_record(&d).unwrap().id, 372);
    }

    #[test]
    fn rejects_malformed_formats() {
        assert!(EventFormat::parse("s", "", Endian::Little).is_err());
        assert!(EventFormat::parse("s", "name: x\nID: y\n", Endian::Little).is_err());
        assert!(EventFormat::parse("s", "name: x\nID: 1\nformat:\n\tfield:int;\n", Endian::Little).is_err());
        assert!(EventFormat::parse("s", "name: x\nID: 1\nbogus\n", Endian::Little).is_err());
    }

    /// Every format file of the running kernel parses, has fields and a print fmt.
    #[test]
    fn every_live_format_parses() {
        let root = std::path::Path::new("/sys/kernel/tracing/events");
        let Ok(systems) = std::fs::read_dir(root) else {
            eprintln!("skipping: {} is not readable (tracefs not mounted?)", root.display());
            return;
        };
        let (mut n, mut compiled) = (0, 0);
        let mut failures = Vec::new();
        for sys in systems.flatten() {
            let Ok(events) = std::fs::read_dir(sys.path()) else {
                continue;
            };
            for ev in events.flatten() {
                let path = ev.path().join("format");
                let Ok(text) = std::fs::read_to_string(&path) else {
                    continue;
                };
                let sysname = sys.file_name().to_string_lossy().into_owned();
                let f = EventFormat::parse(&sysname, &text, Endian::native())
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(f.all_fields().count() > 0, "{}: no fields", path.display());
                assert!(f.print_fmt.is_some(), "{}: no print fmt", path.display());
                n += 1;
                match f.print_error() {
                    None => compiled += 1,
                    Some(e) => failures.push(format!("{}/{}: {e}", f.system, f.name)),
                }
                // Printing a zeroed record of plausible size never panics.
                let mut out = String::new();
                let ctx = PrintContext::default();
                let size = f.all_fields().map(|f| f.offset + f.size).max().unwrap_or(0);
                f.print_info(&vec![0u8; size + 64], &ctx, &mut out);
                f.print_info(&[], &ctx, &mut out);
            }
        }
        eprintln!("{n} live formats parsed, {compiled} print fmts compiled");
        for f in failures.iter().take(40) {
            eprintln!("  not compiled: {f}");
        }
        assert!(n > 0 || !root.exists());
    }
}
