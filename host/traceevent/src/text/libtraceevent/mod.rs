//! [`crate::Dialect::LibTraceEvent`]: the text `trace-cmd report` prints, as libtraceevent 1.7.1
//! (Debian bookworm's, with its default plugins) produces it.
//!
//! libtraceevent does not evaluate print fmts as C. It parses them with its own operator
//! handling ([`parse`], over the shared [`crate::text::tokens`] reader), evaluates every expression as an unsigned 64-bit number (fields are
//! read zero-extended, casts only mask, `^` evaluates to 0, names that are not numbers are
//! looked up in kallsyms), and hands each conversion to glibc's `printf` after casting the
//! value by its length modifier. Several conversions it does not know (`%c`, `%+d`, `% d`)
//! print as `>c<`, `>+<`, `> <`. Some events are printed by plugins instead of their print
//! fmt (`sched_switch`, `sched_wakeup`, `hrtimer_*`, `sys_enter_futex`, `kmem`, `tlb_flush`).
//! This module reproduces all of that, so that `wasmprobe report` and `trace-cmd report`
//! agree line for line.

//!
//! Layout: [`parse`] builds libtraceevent's parse tree, [`expr`] lowers it for evaluation,
//! [`segments`] splits the format string, [`eval`] prints one record, [`plugins`] holds the
//! event handlers of its default plugins. Numbers, addresses, bitmaps and raw fields are the
//! shared back end's ([`crate::text`]).

mod eval;
mod expr;
mod parse;
mod plugins;
mod segments;
#[cfg(test)]
mod tests;

use std::sync::atomic::AtomicBool;

use crate::endian::Endian;
use crate::format::{EventFormat, Field, FieldFlags};
use crate::symbols::Symbols;
use crate::text::sink::PushStr as _;
use crate::text::tokens::Tokens;
use crate::text::PrintContext;
use expr::{Expr, Load, Lower};
use parse::{FieldNames, Node, Parser};
use segments::{fuse_literals, parse_args, read_print, Seg};

/// A field as libtraceevent holds it (its `struct tep_format_field`) and classifies it. Its rules are its own and differ from
/// [`Field::flags`]: `u8`/`s8` arrays count as strings, any type naming `long` (`long long`,
/// `unsigned long *`) as long, `__data_loc char[]` as an array, any `*` as a pointer; the
/// raw-field text and `%s` of a field follow them, so trace-cmd's text needs them.
#[derive(Debug)]
pub(crate) struct FormatField {
    name: String,
    offset: usize,
    size: usize,
    flags: FieldFlags,
    /// Size of one element of an array (libtraceevent's `elementsize`), else the size.
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

impl FormatField {
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
        FormatField {
            name: f.name.clone(),
            offset: f.offset,
            size: f.size,
            flags,
            elem,
            not_string: AtomicBool::new(false),
        }
    }

    fn has(&self, flag: FieldFlags) -> bool {
        self.flags.contains(flag)
    }
}
/// An event compiled for libtraceevent's text: its fields as libtraceevent classifies them,
/// its print args and format-string pieces (or that it failed to parse), and its plugin.
#[derive(Debug)]
pub(crate) struct EventText {
    fields: Vec<FormatField>,
    ncommon: usize,
    failed: bool,
    args: Vec<Expr>,
    segs: Vec<Seg>,
    plugin: Option<plugins::Plugin>,
    /// The plugin's [`plugins::Plugin::field_names`], resolved: (own field, any field).
    plugin_fields: Vec<(Option<usize>, Option<usize>)>,
    /// Whether printing may look anything up in kallsyms (see [`EventText::wants_symbols`]).
    wants_symbols: bool,
}

/// The record bytes an event's text depends on: those from `start` on, provided that each
/// `__data_loc` word at (offset, size) in `locs` points at or past `start` and inside the
/// record (a crafted record may point one into the common fields, or out of the record,
/// which reads as offset 0). A record whose words do not is printed, not looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InfoKey {
    /// Where the bytes start.
    pub(crate) start: usize,
    /// The `__data_loc` words to check: (offset, size).
    pub(crate) locs: Vec<(usize, usize)>,
}

impl InfoKey {
    /// The key bytes of `data` (in `endian`), or `None` if a `__data_loc` word of it points
    /// below the key or out of the record.
    #[inline]
    pub(crate) fn of<'d>(&self, data: &'d [u8], endian: Endian) -> Option<&'d [u8]> {
        for &(off, size) in &self.locs {
            let target = (endian.read_uint(data, off, size)? & 0xffff) as usize;
            if target < self.start || target > data.len() {
                return None;
            }
        }
        Some(data.get(self.start..).unwrap_or(&[]))
    }
}

/// One record being printed: the compiled event, the payload, and what the kernel's long
/// size, byte order and symbols say about it.
struct RecordContext<'a> {
    event: &'a EventText,
    data: &'a [u8],
    long: u8,
    endian: Endian,
    symbols: Option<&'a Symbols>,
}

impl EventText {
    /// Parses `ev`'s print fmt the way libtraceevent does.
    pub(crate) fn compile(ev: &EventFormat, long_size: u8, symbols: Option<&Symbols>) -> EventText {
        let fields: Vec<FormatField> = ev.all_fields().map(|f| FormatField::from_field(f, long_size)).collect();
        let ncommon = ev.common_fields.len();
        let plugin = plugins::Plugin::for_event(&ev.system, &ev.name);
        // Plugins print function names.
        let wants_symbols = plugin.is_some();
        let mut out = EventText {
            fields,
            ncommon,
            failed: true,
            args: Vec::new(),
            segs: Vec::new(),
            plugin,
            plugin_fields: Vec::new(),
            wants_symbols,
        };
        if let Some(p) = plugin {
            out.plugin_fields = p.field_names().iter().map(|n| (out.own_field(n), out.any_field(n))).collect();
        }
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
        let mut lower = Lower { nodes: &p.nodes, event: &out, symbols, looked_up: false };
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

    pub(super) fn any_field(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    pub(super) fn own_field(&self, name: &str) -> Option<usize> {
        self.fields[self.ncommon..].iter().position(|f| f.name == name).map(|i| i + self.ncommon)
    }

    /// Which record bytes this event's text depends on, if only on the record's bytes (see
    /// [`InfoKey`]); `None` for a `[FAILED TO PARSE]` line, whose text also depends on what
    /// was printed before (libtraceevent turns a field's string flag off the first time it
    /// prints it as an array).
    pub(crate) fn info_key(&self, format: &EventFormat) -> Option<InfoKey> {
        if self.failed {
            return None;
        }
        let whole = InfoKey { start: 0, locs: Vec::new() };
        // Past the common fields, and no later than any field the text may read: the own
        // fields (a crafted format may put one among the common ones), the fields the print
        // fmt names (`REC->common_pid`, or a common field of another name) and the plugin's.
        let common_end = format.common_fields.iter().map(|f| f.offset + f.size).max().unwrap_or(0);
        let mut read: Vec<usize> = (self.ncommon..self.fields.len()).collect();
        self.args.iter().for_each(|e| expr::fields_read(e, &mut read));
        read.extend(self.plugin_fields.iter().flat_map(|&(own, any)| [own, any]).flatten());
        let start = read.iter().filter_map(|&i| self.fields.get(i)).map(|f| f.offset).fold(common_end, usize::min);
        // An index computed from the record, or reaching below `start`, may read anything.
        if !self.args.iter().all(|e| expr::reads_from(e, &self.fields, start)) {
            return Some(whole);
        }
        let locs = self.fields[self.ncommon..]
            .iter()
            .filter(|f| f.has(FieldFlags::DYNAMIC) && !f.has(FieldFlags::REL_LOC))
            .map(|f| (f.offset, f.size))
            .collect();
        Some(InfoKey { start, locs })
    }

    /// Whether the text depends on kernel symbols: names in the fmt resolved through
    /// kallsyms, `%pS`-style pointers, or a plugin that prints function names.
    pub(crate) fn wants_symbols(&self) -> bool {
        self.wants_symbols
    }

    /// Appends the record's info text to `out`.
    pub(crate) fn print(&self, data: &[u8], ctx: &PrintContext, out: &mut Vec<u8>) {
        let cx = RecordContext { event: self, data, long: ctx.long_size, endian: ctx.endian, symbols: ctx.symbols };
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
                Seg::Num { pre, spec, cast, arg, len, load } => {
                    pre.append_to(out);
                    let star = len.map(|l| cx.eval(&self.args[l]) as i32 as i64);
                    let v = match load {
                        Some(load) => load.get(data, cx.endian),
                        None => cx.eval(&self.args[*arg]),
                    };
                    spec.write_int(out, cast.apply(v), star);
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

    /// The pid fields, (offset, size), whose values decide whether a record registers comms
    /// (see [`EventText::registered_comms`]): none are known to need it when every pid read
    /// from them is 0 or known.
    pub(crate) fn comm_pid_fields(&self) -> [Option<(usize, usize)>; 2] {
        self.plugin.map_or([None, None], |p| p.comm_pid_fields(self))
    }

    /// The `(pid, comm)` pairs a plugin registers when it prints this record
    /// (`tep_register_comm`, which never replaces a known pid), leaving out the pids `skip`
    /// says are known (their comms are not read).
    pub(crate) fn registered_comms<'d>(
        &self,
        data: &'d [u8],
        endian: Endian,
        skip: impl Fn(i32) -> bool,
    ) -> [Option<(i32, &'d [u8])>; 2] {
        match &self.plugin {
            Some(p) => p.comms(self, data, endian, skip),
            None => [None, None],
        }
    }
}
