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
//! argument expressions, kept here as raw text and compiled by [`crate::text`].
//!
//! [`field`] holds one field's model (its layout, kinds and readers), [`registry`] all
//! formats of a trace ([`EventFormats`]).

pub(crate) mod ctype;
pub mod field;
pub mod registry;

use crate::endian::Endian;
use crate::error::{Error, Result};
use crate::text::kernel::KernelText;
use crate::text::libtraceevent::EventText;
#[cfg(doc)]
use crate::text::Dialect;
use crate::text::{PrintContext, Printer};

pub(crate) use field::parse_field_line;
pub use field::{Field, FieldFlags, FieldKind, FieldLayout, FieldShape};
pub use registry::EventFormats;

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

/// A parsed event format: identity, fields and print fmt, as the file says them. Printing
/// compiles the print fmt for a dialect ([`Printer`]); [`EventFormats`] keeps one compiled
/// printer per format.
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
    /// The text after `print fmt:` as written (libtraceevent re-reads it its own way).
    print_raw: Option<String>,
    /// libtraceevent's sched plugin registers the comms this event's records carry.
    registers_comms: bool,
}

impl EventFormat {
    /// Parses a format file's text; allocates the strings and field tables. The print fmt is
    /// split into its format string and arguments, not compiled (see [`Printer`]).
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
        let registers_comms =
            system == "sched" && matches!(name.as_str(), "sched_switch" | "sched_wakeup" | "sched_wakeup_new");
        Ok(EventFormat {
            system: system.to_string(),
            name,
            id,
            common_fields,
            fields,
            print_fmt,
            print_raw,
            registers_comms,
        })
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
    /// Compiles the print fmt for [`Dialect::Kernel`] to find them.
    pub fn unresolved_symbols(&self) -> Vec<String> {
        KernelText::compile(self).program().as_ref().map_or_else(|_| Vec::new(), |p| p.unresolved_symbols().to_vec())
    }

    /// Why the print fmt does not compile for [`Dialect::Kernel`], if it does not (its
    /// records then print as raw fields). Compiles it to find out.
    pub fn print_error(&self) -> Option<Error> {
        KernelText::compile(self).program().as_ref().err().cloned()
    }

    /// The text after `print fmt:`, as written in the format file.
    pub fn print_fmt_raw(&self) -> Option<&str> {
        self.print_raw.as_deref()
    }

    /// Whether this event's [`Dialect::LibTraceEvent`] text can depend on kernel symbols (so
    /// that a caller can skip reading kallsyms when no event needs them): a name in the print
    /// fmt that only kallsyms resolves, a `%pS`-style pointer, or a plugin that prints
    /// function names. Compiles the print fmt to find out.
    pub fn libtraceevent_wants_symbols(&self, long_size: u8) -> bool {
        EventText::compile(self, long_size, None).wants_symbols()
    }

    /// Appends the event's info text (what the `trace` file prints after `name: `) to `out`.
    /// Never fails: if the print fmt cannot be evaluated, prints each non-common field as
    /// `name=value`. In [`Dialect::LibTraceEvent`] the text is libtraceevent's (what
    /// `trace-cmd report` shows, plugins included), `[FAILED TO PARSE]` lines and all.
    ///
    /// Compiles the print fmt on every call: to print many records, compile a [`Printer`]
    /// once, or print through [`EventFormats`], which keeps one per format.
    pub fn print_info(&self, data: &[u8], ctx: &PrintContext, out: &mut String) {
        crate::text::append_to_string(out, |bytes| self.print_info_bytes(data, ctx, bytes));
    }

    /// [`EventFormat::print_info`] into bytes (the text is UTF-8).
    pub fn print_info_bytes(&self, data: &[u8], ctx: &PrintContext, out: &mut Vec<u8>) {
        Printer::compile(self, ctx).print(self, data, ctx, out);
    }

    /// Whether printing this event's records teaches the registry comms (see
    /// [`EventFormats::note_record`]); for the others that call does nothing.
    pub fn registers_comms(&self) -> bool {
        self.registers_comms
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
    fn rejects_malformed_formats() {
        assert!(EventFormat::parse("s", "", Endian::Little).is_err());
        assert!(EventFormat::parse("s", "name: x\nID: y\n", Endian::Little).is_err());
        assert!(EventFormat::parse("s", "name: x\nID: 1\nformat:\n\tfield:int;\n", Endian::Little).is_err());
        assert!(EventFormat::parse("s", "name: x\nID: 1\nbogus\n", Endian::Little).is_err());
    }

    /// Every format file of the running kernel parses, has fields and a print fmt.

    #[test]
    fn every_live_format_parses() {
        let t = testkit::require!(root, tracefs).tracefs();
        let systems = std::fs::read_dir(t.path().join("events")).unwrap();
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
        assert!(n > 1000, "only {n} format files under {}", t.path().display());
    }
}
