//! The event handlers of libtraceevent's default plugins (`/usr/lib/*/traceevent/plugins`)
//! whose events exist on current kernels: their text replaces (or precedes) the print fmt's.

use std::io::Write as _;

use super::{EventText, FormatField, RecordContext};
use crate::endian::Endian;
use crate::text::number;
use crate::text::sink::{c_str, push_text, PushStr as _};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Plugin {
    /// plugin_sched_switch: `prev:pid [prio] S ==> next:pid [prio]`.
    SchedSwitch,
    /// plugin_sched_switch: `comm:pid [prio] CPU:nnn`.
    SchedWakeup,
    /// plugin_hrtimer: `hrtimer=0x.. function=name/0xoff expires=.. softexpires=..`.
    HrtimerStart,
    /// plugin_hrtimer: `hrtimer=0x.. now=.. function=name/0xoff`.
    HrtimerExpire,
    /// plugin_futex: `op=FUTEX_WAKE|FUTEX_PRIVATE_FLAG uaddr=0x.. val=..`.
    Futex,
    /// plugin_kmem: `(caller+0xoff) ` before the print fmt's text.
    KmemCallSite,
    /// plugin_tlb: `pages=N reason=... (R)`.
    TlbFlush,
    /// plugin_function: `<stack trace >` and a `=> name (addr)` line per frame.
    KernelStack,
}

impl Plugin {
    /// The fields the handler reads by slot ([`slot`]), resolved once per event into
    /// [`EventText`]'s `plugin_fields` instead of by name for every record.
    pub(super) fn field_names(self) -> &'static [&'static str] {
        match self {
            Plugin::SchedSwitch => &SCHED_SWITCH_FIELDS,
            Plugin::SchedWakeup => &SCHED_WAKEUP_FIELDS,
            Plugin::HrtimerStart | Plugin::HrtimerExpire => &HRTIMER_FIELDS,
            Plugin::KmemCallSite => &["call_site"],
            Plugin::TlbFlush => &["pages"],
            _ => &[],
        }
    }

    pub(super) fn for_event(system: &str, name: &str) -> Option<Plugin> {
        Some(match (system, name) {
            ("sched", "sched_switch") => Plugin::SchedSwitch,
            ("sched", "sched_wakeup" | "sched_wakeup_new") => Plugin::SchedWakeup,
            ("timer", "hrtimer_start") => Plugin::HrtimerStart,
            ("timer", "hrtimer_expire_entry") => Plugin::HrtimerExpire,
            ("syscalls", "sys_enter_futex") => Plugin::Futex,
            ("kmem", "kfree" | "kmalloc" | "kmalloc_node" | "kmem_cache_alloc" | "kmem_cache_alloc_node")
            | ("kmem", "kmem_cache_free") => Plugin::KmemCallSite,
            ("tlb", "tlb_flush") => Plugin::TlbFlush,
            ("ftrace", "kernel_stack") => Plugin::KernelStack,
            _ => return None,
        })
    }

    /// Prints the handler's text; returns whether the print fmt's text follows (the
    /// handler returned non-zero).
    pub(super) fn print(self, cx: &RecordContext<'_>, out: &mut Vec<u8>) -> bool {
        match self {
            Plugin::SchedSwitch => sched_switch(cx, out),
            Plugin::SchedWakeup => sched_wakeup(cx, out),
            Plugin::HrtimerStart => {
                out.push_str("hrtimer=");
                if num_field(cx, out, slot(cx, H_TIMER), Hex).is_none() {
                    num_or_err(cx, out, H_HRTIMER, Hex);
                }
                func_field(cx, out, " function=", H_FUNCTION);
                out.push_str(" expires=");
                num_or_err(cx, out, H_EXPIRES, Dec);
                out.push_str(" softexpires=");
                num_or_err(cx, out, H_SOFTEXPIRES, Dec);
                false
            }
            Plugin::HrtimerExpire => {
                out.push_str("hrtimer=");
                if num_field(cx, out, slot(cx, H_TIMER), Hex).is_none() {
                    num_or_err(cx, out, H_HRTIMER, Hex);
                }
                out.push_str(" now=");
                num_or_err(cx, out, H_NOW, Dec);
                func_field(cx, out, " function=", H_FUNCTION);
                false
            }
            Plugin::Futex => futex(cx, out),
            Plugin::KmemCallSite => {
                if let Some(val) = slot(cx, 0).and_then(|f| read(cx, f)) {
                    if let Some((name, start)) = cx.symbols.and_then(|s| s.libtraceevent_function(val)) {
                        out.push(b'(');
                        out.push_str(name);
                        out.push_str("+0x");
                        number::hex(out, u64::from(val.wrapping_sub(start) as u32));
                        out.push_str(") ");
                    }
                }
                true
            }
            Plugin::TlbFlush => {
                out.push_str("pages=");
                num_or_err(cx, out, 0, SignedLong);
                let Some(val) = get_val(cx, out, "reason", true) else {
                    return true;
                };
                out.push_str(" reason=");
                out.push_str(match val {
                    0 => "flush on task switch",
                    1 => "remote shootdown",
                    2 => "local shootdown",
                    3 => "local mm shootdown",
                    _ => "",
                });
                let _ = write!(out, " ({})", val as i64);
                false
            }
            Plugin::KernelStack => {
                match cx.event.any_field("caller").map(|i| &cx.event.fields[i]) {
                    Some(f) => crate::text::stack::write_trace_cmd_kernel(
                        cx.data, f.offset, cx.long, cx.endian, cx.symbols, out,
                    ),
                    None => out.push_str("<CANT FIND FIELD caller>"),
                }
                false
            }
        }
    }

    /// `(pid, comm)` pairs the sched plugin registers while printing, but those of pids
    /// `skip` says are known.
    /// The pid fields (offset, size) of the pairs [`Plugin::comms`] reads, in its order: a
    /// record registers nothing when each of them is 0, known, or not in the record.
    pub(super) fn comm_pid_fields(self, ev: &EventText) -> [Option<(usize, usize)>; 2] {
        let pid = |slot: usize| {
            let f = &ev.fields[ev.plugin_fields.get(slot)?.0?];
            Some((f.offset, f.size))
        };
        match self {
            Plugin::SchedSwitch => [pid(0), pid(4)],
            Plugin::SchedWakeup => [pid(0), None],
            _ => [None, None],
        }
    }

    pub(super) fn comms<'d>(
        self,
        ev: &EventText,
        data: &'d [u8],
        endian: Endian,
        skip: impl Fn(i32) -> bool,
    ) -> [Option<(i32, &'d [u8])>; 2] {
        // Slots of the plugin's field_names: the comm (any field), the pid (own field).
        let pair = |comm: usize, pid: usize| -> Option<(i32, &'d [u8])> {
            let p = &ev.fields[ev.plugin_fields.get(pid)?.0?];
            let pid = endian.read_uint(data, p.offset, p.size)?;
            if skip(pid as i32) {
                return None;
            }
            let c = &ev.fields[ev.plugin_fields.get(comm)?.1?];
            let b = data.get(c.offset..(c.offset + c.size).min(data.len()))?;
            Some((pid as i32, c_str(b)))
        };
        match self {
            Plugin::SchedSwitch => [pair(1, 0), pair(5, 4)],
            Plugin::SchedWakeup => [pair(1, 0), None],
            _ => [None, None],
        }
    }
}

#[derive(Clone, Copy)]
enum NumFmt {
    Hex,
    Dec,
    SignedLong,
}
use NumFmt::{Dec, Hex, SignedLong};

fn own<'a>(cx: &'a RecordContext<'_>, name: &str) -> Option<&'a FormatField> {
    cx.event.own_field(name).map(|i| &cx.event.fields[i])
}

/// The field in slot `i` of the plugin's [`Plugin::field_names`] (an own field).
#[inline]
fn slot<'a>(cx: &'a RecordContext<'_>, i: usize) -> Option<&'a FormatField> {
    cx.event.plugin_fields.get(i)?.0.map(|i| &cx.event.fields[i])
}

/// The name of slot `i`, for error texts.
fn slot_name(cx: &RecordContext<'_>, i: usize) -> &'static str {
    cx.event.plugin.map_or(&[][..], |p| p.field_names()).get(i).copied().unwrap_or("")
}

const SCHED_SWITCH_FIELDS: [&str; 7] =
    ["prev_pid", "prev_comm", "prev_prio", "prev_state", "next_pid", "next_comm", "next_prio"];
const SCHED_WAKEUP_FIELDS: [&str; 5] = ["pid", "comm", "prio", "success", "target_cpu"];
const HRTIMER_FIELDS: [&str; 6] = ["timer", "hrtimer", "function", "expires", "softexpires", "now"];
// Slots of HRTIMER_FIELDS.
const H_TIMER: usize = 0;
const H_HRTIMER: usize = 1;
const H_FUNCTION: usize = 2;
const H_EXPIRES: usize = 3;
const H_SOFTEXPIRES: usize = 4;
const H_NOW: usize = 5;

/// `tep_read_number_field`: sizes 1, 2, 4, 8 only, zero-extended.
fn read(cx: &RecordContext<'_>, f: &FormatField) -> Option<u64> {
    match f.size {
        1 | 2 | 4 | 8 => cx.endian.read_uint(cx.data, f.offset, f.size),
        _ => None,
    }
}

/// [`get_val`] of slot `i`.
#[inline]
fn val_at(cx: &RecordContext<'_>, out: &mut Vec<u8>, i: usize, err: bool) -> Option<u64> {
    let Some(f) = slot(cx, i) else {
        if err {
            let _ = write!(out, "<CANT FIND FIELD {}>", slot_name(cx, i));
        }
        return None;
    };
    let v = read(cx, f);
    if v.is_none() && err {
        let _ = write!(out, " {}=INVALID", slot_name(cx, i));
    }
    v
}

/// `tep_get_field_val`: the value, or an error note in `out` when `err`.
fn get_val(cx: &RecordContext<'_>, out: &mut Vec<u8>, name: &str, err: bool) -> Option<u64> {
    let Some(f) = own(cx, name) else {
        if err {
            let _ = write!(out, "<CANT FIND FIELD {name}>");
        }
        return None;
    };
    let v = read(cx, f);
    if v.is_none() && err {
        let _ = write!(out, " {name}=INVALID");
    }
    v
}

/// `tep_print_num_field` of field `f` without the error text.
fn num_field(cx: &RecordContext<'_>, out: &mut Vec<u8>, f: Option<&FormatField>, fmt: NumFmt) -> Option<()> {
    let v = read(cx, f?)?;
    match fmt {
        Hex => number::hex_0x(out, v),
        Dec => number::dec_u64(out, v),
        SignedLong => number::dec_i64(out, v as i64),
    }
    Some(())
}

/// [`num_field`] of slot `i`, or the error text naming it.
fn num_or_err(cx: &RecordContext<'_>, out: &mut Vec<u8>, i: usize, fmt: NumFmt) {
    if num_field(cx, out, slot(cx, i), fmt).is_none() {
        let _ = write!(out, "CAN'T FIND FIELD \"{}\"", slot_name(cx, i));
    }
}

/// `tep_print_func_field` of slot `i`: `name/0x<start - addr>` or `0x%08llx`.
fn func_field(cx: &RecordContext<'_>, out: &mut Vec<u8>, prefix: &str, i: usize) {
    let Some(v) = slot(cx, i).and_then(|f| read(cx, f)) else {
        return;
    };
    out.push_str(prefix);
    match cx.symbols.and_then(|s| s.libtraceevent_function(v)) {
        Some((name, start)) => {
            out.push_str(name);
            out.push_str("/0x");
            number::hex(out, start.wrapping_sub(v));
        }
        None => {
            out.push_str("0x");
            number::hex_zero(out, v, 8);
        }
    }
}

/// `write_and_save_comm`: the comm field (slot `i`, any field), at most its size, up to a
/// NUL.
fn comm(cx: &RecordContext<'_>, out: &mut Vec<u8>, i: usize) -> bool {
    let Some(f) = cx.event.plugin_fields.get(i).and_then(|s| s.1).map(|i| &cx.event.fields[i]) else {
        return false;
    };
    let b = cx.data.get(f.offset..(f.offset + f.size).min(cx.data.len())).unwrap_or(&[]);
    push_text(out, c_str(b));
    true
}

/// A task as the sched plugins print it, `comm:pid` (the comm and its `:` only when the event
/// has the field), from the pid and comm slots. `None`, after a `!`, when the pid is missing.
fn task(cx: &RecordContext<'_>, out: &mut Vec<u8>, pid_slot: usize, comm_slot: usize) -> Option<()> {
    let Some(pid) = val_at(cx, out, pid_slot, true) else {
        out.push(b'!');
        return None;
    };
    if comm(cx, out, comm_slot) {
        out.push(b':');
    }
    number::dec_i64(out, pid as i64);
    Some(())
}

fn sched_switch(cx: &RecordContext<'_>, out: &mut Vec<u8>) -> bool {
    // Slots of SCHED_SWITCH_FIELDS.
    if task(cx, out, 0, 1).is_none() {
        return true;
    }
    out.push(b' ');
    if let Some(prio) = val_at(cx, out, 2, true) {
        out.push(b'[');
        number::dec_i64(out, i64::from(prio as i32));
        out.push_str("] ");
    }
    if let Some(state) = val_at(cx, out, 3, true) {
        let state = state as i32;
        let mut found = false;
        for (i, c) in b"SDTtZXxW".iter().copied().enumerate() {
            if state & (1 << i) == 0 {
                continue;
            }
            if found {
                out.push(b'|');
            }
            found = true;
            out.push(c);
        }
        if !found {
            out.push(b'R');
        }
    }
    out.push_str(" ==> ");
    if task(cx, out, 4, 5).is_none() {
        return true;
    }
    if let Some(prio) = val_at(cx, out, 6, true) {
        out.push_str(" [");
        number::dec_i64(out, i64::from(prio as i32));
        out.push(b']');
    }
    false
}

fn sched_wakeup(cx: &RecordContext<'_>, out: &mut Vec<u8>) -> bool {
    // Slots of SCHED_WAKEUP_FIELDS.
    if task(cx, out, 0, 1).is_none() {
        return true;
    }
    if let Some(prio) = val_at(cx, out, 2, true) {
        out.push_str(" [");
        number::dec_i64(out, prio as i64);
        out.push(b']');
    }
    if let Some(s) = val_at(cx, out, 3, false) {
        out.push_str(" success=");
        number::dec_i64(out, s as i64);
    }
    if let Some(cpu) = val_at(cx, out, 4, false) {
        out.push_str(" CPU:");
        number::write_plain_int(out, cpu, 8, b'u', true, 3);
    }
    false
}

/// A futex command: name, how `val` prints (`x` hex, `u` decimal), whether `utime` prints
/// as `utime` or `val2`, and whether `uaddr2` / `val3` print.
type FutexOp = (&'static str, Option<&'static str>, Option<&'static str>, bool, bool);

const FUTEX_OPS: [FutexOp; 13] = [
    ("FUTEX_WAIT", Some("x"), Some("utime"), false, false),
    ("FUTEX_WAKE", Some("u"), None, false, false),
    ("FUTEX_FD", Some("u"), None, false, false),
    ("FUTEX_REQUEUE", Some("u"), Some("val2"), true, false),
    ("FUTEX_CMP_REQUEUE", Some("u"), Some("val2"), true, true),
    ("FUTEX_WAKE_OP", Some("u"), Some("val2"), true, true),
    ("FUTEX_LOCK_PI", None, Some("utime"), false, false),
    ("FUTEX_UNLOCK_PI", None, None, false, false),
    ("FUTEX_TRYLOCK_PI", None, None, false, false),
    ("FUTEX_WAIT_BITSET", Some("x"), Some("utime"), false, true),
    ("FUTEX_WAKE_BITSET", Some("u"), None, false, true),
    ("FUTEX_WAIT_REQUEUE_PI", Some("x"), Some("utime"), true, true),
    ("FUTEX_CMP_REQUEUE_PI", Some("u"), Some("val2"), true, true),
];

fn futex(cx: &RecordContext<'_>, out: &mut Vec<u8>) -> bool {
    let mut v = [0u64; 6];
    for (slot, name) in v.iter_mut().zip(["uaddr", "op", "val", "utime", "uaddr2", "val3"]) {
        match get_val(cx, out, name, true) {
            Some(x) => *slot = x,
            None => return true,
        }
    }
    let [uaddr, op, val, utime, uaddr2, val3] = v;
    // FUTEX_CMD_MASK clears FUTEX_PRIVATE_FLAG and FUTEX_CLOCK_REALTIME only.
    let cmd = (op & !(128 | 256)) as usize;
    let Some(&(name, fmt_val, fmt_utime, has_uaddr2, has_val3)) = FUTEX_OPS.get(cmd) else {
        return true;
    };
    let _ = write!(out, "op={name}");
    if op & 128 != 0 {
        out.push_str("|FUTEX_PRIVATE_FLAG");
    }
    if op & 256 != 0 {
        out.push_str("|FUTEX_CLOCK_REALTIME");
    }
    let _ = write!(out, " uaddr=0x{uaddr:08x}");
    match fmt_val {
        Some("x") => {
            let _ = write!(out, " val=0x{val:08x}");
        }
        Some(_) => {
            let _ = write!(out, " val={val}");
        }
        None => {}
    }
    match fmt_utime {
        Some("utime") => {
            let _ = write!(out, " utime=0x{utime:08x}");
        }
        Some(_) => {
            let _ = write!(out, " val2={utime}");
        }
        None => {}
    }
    if has_uaddr2 {
        let _ = write!(out, " uaddr2=0x{uaddr2:08x}");
    }
    if has_val3 {
        let _ = write!(out, " val3=0x{val3:08x}");
    }
    false
}
