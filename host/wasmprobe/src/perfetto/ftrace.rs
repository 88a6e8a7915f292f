//! Kernel events as Perfetto `FtraceEvent`s, encoded straight from the raw record.
//!
//! The scheduler events Perfetto draws (CPU tracks, thread states, process trees) get the
//! typed messages Perfetto has for them ([`typed_events`]); every other event becomes a
//! `GenericFtraceEvent`: its name and every field of its format file, with its type (a
//! string, a signed or an unsigned integer; an array as one field per element, `args[0]`,
//! `args[1]`, ...). The encoding of each event is planned once from its format file (the
//! field numbers, the pre-encoded field names), so that encoding a record is copying bytes
//! and writing varints: converting a trace costs about as much as reading it. That is why
//! this path does not build `proto::FtraceEvent` values with prost: the unit tests below
//! decode what it writes with those same declarations.

use traceevent::{Endian, EventFormat, Field, FieldLayout};

use super::wire::{key, put_varint, varint_len, LEN, VARINT};

/// How a value goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// int32/int64: the value sign-extended to 64 bits.
    Int,
    /// uint32/uint64.
    Uint,
    /// A string (lossily UTF-8).
    Str,
}

/// A kernel event with a Perfetto message of its own: `(system, event, FtraceEvent field
/// number, [(kernel field, message field number, kind)])`. Kernel fields not listed have no
/// place in the message and are left out (today: `sched_process_exit.group_dead`); message
/// fields the kernel lacks stay unset (`success` of the wakeups, `tgid` of the exit).
#[allow(clippy::type_complexity)]
const TYPED: &[(&str, &str, u32, &[(&str, u32, Kind)])] = &[
    (
        "sched",
        "sched_switch",
        4,
        &[
            ("prev_comm", 1, Kind::Str),
            ("prev_pid", 2, Kind::Int),
            ("prev_prio", 3, Kind::Int),
            ("prev_state", 4, Kind::Int),
            ("next_comm", 5, Kind::Str),
            ("next_pid", 6, Kind::Int),
            ("next_prio", 7, Kind::Int),
        ],
    ),
    ("sched", "sched_wakeup", 17, WAKEUP),
    ("sched", "sched_waking", 20, WAKEUP),
    ("sched", "sched_wakeup_new", 114, WAKEUP),
    (
        "sched",
        "sched_process_fork",
        239,
        &[
            ("parent_comm", 1, Kind::Str),
            ("parent_pid", 2, Kind::Int),
            ("child_comm", 3, Kind::Str),
            ("child_pid", 4, Kind::Int),
        ],
    ),
    (
        "sched",
        "sched_process_exec",
        237,
        &[("filename", 1, Kind::Str), ("pid", 2, Kind::Int), ("old_pid", 3, Kind::Int)],
    ),
    (
        "sched",
        "sched_process_exit",
        238,
        &[("comm", 1, Kind::Str), ("pid", 2, Kind::Int), ("tgid", 3, Kind::Int), ("prio", 4, Kind::Int)],
    ),
    (
        "task",
        "task_newtask",
        235,
        &[
            ("pid", 1, Kind::Int),
            ("comm", 2, Kind::Str),
            ("clone_flags", 3, Kind::Uint),
            ("oom_score_adj", 4, Kind::Int),
        ],
    ),
    (
        "task",
        "task_rename",
        236,
        &[("pid", 1, Kind::Int), ("oldcomm", 2, Kind::Str), ("newcomm", 3, Kind::Str), ("oom_score_adj", 4, Kind::Int)],
    ),
    ("power", "cpu_idle", 13, &[("state", 1, Kind::Uint), ("cpu_id", 2, Kind::Uint)]),
    ("power", "cpu_frequency", 11, &[("state", 1, Kind::Uint), ("cpu_id", 2, Kind::Uint)]),
];

/// `SchedWakeupFtraceEvent` and its two siblings.
const WAKEUP: &[(&str, u32, Kind)] = &[
    ("comm", 1, Kind::Str),
    ("pid", 2, Kind::Int),
    ("prio", 3, Kind::Int),
    ("success", 4, Kind::Int),
    ("target_cpu", 5, Kind::Int),
];

/// The kernel events written as Perfetto's typed messages, `system:event`.
pub fn typed_events() -> impl Iterator<Item = String> {
    TYPED.iter().map(|(s, e, _, _)| format!("{s}:{e}"))
}

/// `FtraceEvent.generic`.
const GENERIC: u32 = 327;
/// `FtraceEventBundle.event`.
const BUNDLE_EVENT: u8 = 2 << 3 | LEN as u8;
/// `FtraceEvent.timestamp`, `.pid`, `.common_flags` (varints).
const TIMESTAMP: u8 = 1 << 3;
const PID: u8 = 2 << 3;
const COMMON_FLAGS: u8 = 5 << 3;
/// `GenericFtraceEvent.field`.
const GENERIC_FIELD: u8 = 2 << 3 | LEN as u8;
/// `GenericFtraceEvent.Field` values: `str_value`, `int_value`, `uint_value`.
const STR_VALUE: u8 = 3 << 3 | LEN as u8;
const INT_VALUE: u8 = 4 << 3;
const UINT_VALUE: u8 = 5 << 3;
/// `CLONE_THREAD` in `task_newtask.clone_flags`: the new task is a thread of its creator's
/// process.
const CLONE_THREAD: u64 = 0x0001_0000;

/// How one field of a record is written.
#[derive(Debug)]
enum Enc {
    /// A field of a typed message: its key, then the value.
    Typed { key: Vec<u8>, kind: Kind },
    /// A `GenericFtraceEvent.Field`: `head` is its name field and the value's key.
    Scalar { head: Vec<u8>, kind: Kind },
    /// One `GenericFtraceEvent.Field` per element, `name[i]`; heads made as they are needed.
    Array { name: String, kind: Kind, elem: usize, heads: Vec<Vec<u8>> },
}

#[derive(Debug)]
struct FieldPlan {
    layout: FieldLayout,
    enc: Enc,
}

/// What an event tells about which process a thread belongs to.
#[derive(Debug, Clone, Copy)]
enum TgidRule {
    None,
    /// `task_newtask`: `pid` is new; a thread of the creator's process if `clone_flags` has
    /// `CLONE_THREAD`, else a process of its own.
    NewTask {
        pid: FieldLayout,
        flags: FieldLayout,
    },
    /// `sched_process_exec`: `pid` leads its process from now on.
    Exec {
        pid: FieldLayout,
    },
}

/// A fact about thread ids an event gave (see [`Encoder::encode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TgidHint {
    /// Thread `child` was created by `parent`, as a thread of the same process or not.
    NewTask {
        /// The creating thread (the record's common_pid).
        parent: i32,
        /// The new thread.
        child: i32,
        /// Whether it was created with `CLONE_THREAD`.
        thread: bool,
    },
    /// `pid` leads its own process.
    Leader {
        /// The thread (and now process) id.
        pid: i32,
    },
}

/// The encoding of one event id, planned from its format.
#[derive(Debug)]
struct EventPlan {
    /// The key of the event's field in `FtraceEvent`.
    outer_key: Vec<u8>,
    /// Generic: the encoded `event_name` field; typed: empty.
    name_field: Vec<u8>,
    fields: Vec<FieldPlan>,
    tgid: TgidRule,
    typed: bool,
}

/// Encodes raw kernel records as `FtraceEventBundle.event` fields, by their format files.
#[derive(Debug)]
pub struct Encoder {
    /// By event id.
    plans: Vec<Option<EventPlan>>,
    endian: Endian,
    scratch: Vec<u8>,
}

impl Encoder {
    /// An encoder for records of byte order `endian`, with no event planned yet.
    pub fn new(endian: Endian) -> Self {
        Encoder { plans: Vec::new(), endian, scratch: Vec::with_capacity(1024) }
    }

    /// Plans the encoding of `format`'s events (allocates its field names once).
    pub fn add(&mut self, format: &EventFormat, long_size: usize) {
        let id = format.id as usize;
        if id >= 1 << 16 {
            return;
        }
        if self.plans.len() <= id {
            self.plans.resize_with(id + 1, || None);
        }
        self.plans[id] = Some(plan(format, long_size));
    }

    /// Whether records of event `id` are written as a typed message (not generic).
    pub fn is_typed(&self, id: u16) -> Option<bool> {
        self.plans.get(id as usize)?.as_ref().map(|p| p.typed)
    }

    /// Appends `payload` (a raw record: common fields first), recorded at `ts`, to `out` as one
    /// `FtraceEventBundle.event` field. Returns `None` when its event id has no format (nothing
    /// is written), else its common_pid and what it tells about thread ids. No allocation
    /// once warm.
    pub fn encode(&mut self, ts: u64, payload: &[u8], out: &mut Vec<u8>) -> Option<(i32, Option<TgidHint>)> {
        let id = self.endian.read_u16(payload, 0)?;
        let plan = self.plans.get_mut(id as usize)?.as_mut()?;
        let flags = payload.get(2).copied().unwrap_or(0);
        let pid = self.endian.read_int(payload, 4, 4).unwrap_or(0) as i32;
        let body = &mut self.scratch;
        body.clear();
        body.extend_from_slice(&plan.name_field);
        for f in &mut plan.fields {
            write_field(f, payload, self.endian, body);
        }
        let header = 1 + varint_len(ts) + 1 + varint_len(pid as u32 as u64) + 1 + varint_len(u64::from(flags));
        let len = header + plan.outer_key.len() + varint_len(body.len() as u64) + body.len();
        out.push(BUNDLE_EVENT);
        put_varint(out, len as u64);
        out.push(TIMESTAMP);
        put_varint(out, ts);
        out.push(PID);
        put_varint(out, pid as u32 as u64);
        out.push(COMMON_FLAGS);
        put_varint(out, u64::from(flags));
        out.extend_from_slice(&plan.outer_key);
        put_varint(out, body.len() as u64);
        out.extend_from_slice(body);
        let read = |l: &FieldLayout| l.read_value(payload).unwrap_or(0);
        let hint = match plan.tgid {
            TgidRule::None => None,
            TgidRule::NewTask { pid: child, flags } => Some(TgidHint::NewTask {
                parent: pid,
                child: read(&child) as i32,
                thread: read(&flags) & CLONE_THREAD != 0,
            }),
            TgidRule::Exec { pid } => Some(TgidHint::Leader { pid: read(&pid) as i32 }),
        };
        Some((pid, hint))
    }
}

/// Appends one field of `payload` as its plan says.
#[inline]
fn write_field(f: &mut FieldPlan, payload: &[u8], endian: Endian, out: &mut Vec<u8>) {
    match &mut f.enc {
        Enc::Typed { key, kind: Kind::Str } => {
            let s = f.layout.str_bytes(payload).unwrap_or(&[]);
            put_str(out, key, s);
        }
        Enc::Typed { key, .. } => {
            out.extend_from_slice(key);
            put_varint(out, f.layout.read_value(payload).unwrap_or(0));
        }
        Enc::Scalar { head, kind: Kind::Str } => {
            let s = utf8(f.layout.str_bytes(payload).unwrap_or(&[]));
            out.push(GENERIC_FIELD);
            put_varint(out, (head.len() + varint_len(s.len() as u64) + s.len()) as u64);
            out.extend_from_slice(head);
            put_varint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        Enc::Scalar { head, .. } => {
            let v = f.layout.read_value(payload).unwrap_or(0);
            out.push(GENERIC_FIELD);
            put_varint(out, (head.len() + varint_len(v)) as u64);
            out.extend_from_slice(head);
            put_varint(out, v);
        }
        Enc::Array { name, kind, elem, heads } => {
            let bytes = f.layout.bytes(payload).unwrap_or(&[]);
            let elem = (*elem).max(1);
            for (i, chunk) in bytes.chunks_exact(elem).enumerate() {
                if heads.len() <= i {
                    heads.push(scalar_head(&format!("{name}[{i}]"), *kind));
                }
                let head = &heads[i];
                let raw = endian.read_uint(chunk, 0, elem).unwrap_or(0);
                let v = if *kind == Kind::Int { sign_extend(raw, elem) } else { raw };
                out.push(GENERIC_FIELD);
                put_varint(out, (head.len() + varint_len(v)) as u64);
                out.extend_from_slice(head);
                put_varint(out, v);
            }
        }
    }
}

/// Appends a string field: key, length, the bytes up to the first NUL as UTF-8.
#[inline]
fn put_str(out: &mut Vec<u8>, key: &[u8], s: &[u8]) {
    let s = utf8(s);
    out.extend_from_slice(key);
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// The bytes as UTF-8 (protobuf strings must be), invalid sequences replaced.
#[inline]
fn utf8(s: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(s)
}

fn sign_extend(v: u64, size: usize) -> u64 {
    match size {
        1 => v as u8 as i8 as i64 as u64,
        2 => v as u16 as i16 as i64 as u64,
        4 => v as u32 as i32 as i64 as u64,
        _ => v,
    }
}

/// The `name` field of a `GenericFtraceEvent.Field` followed by the key of its value.
fn scalar_head(name: &str, kind: Kind) -> Vec<u8> {
    let mut h = Vec::with_capacity(name.len() + 3);
    h.push(1 << 3 | LEN as u8);
    put_varint(&mut h, name.len() as u64);
    h.extend_from_slice(name.as_bytes());
    h.push(match kind {
        Kind::Str => STR_VALUE,
        Kind::Int => INT_VALUE,
        Kind::Uint => UINT_VALUE,
    });
    h
}

fn kind_of(f: &Field) -> Kind {
    if f.signed {
        Kind::Int
    } else {
        Kind::Uint
    }
}

/// Whether `f` holds one integer.
fn is_scalar(f: &Field) -> bool {
    !f.is_string() && f.array_len.is_none() && !f.is_dynamic() && matches!(f.size, 1 | 2 | 4 | 8)
}

/// The size of one element of an array field: from the declared size of a fixed array, from
/// the element type of a dynamic one (`__data_loc u32[]`).
fn elem_size(f: &Field, long_size: usize) -> usize {
    if let Some(n) = f.array_len.filter(|&n| n > 0) {
        return (f.size / n).max(1);
    }
    if !f.is_dynamic() && f.array_len.is_none() {
        return 1; // a scalar of an odd size: its bytes
    }
    let t = f.type_name.replace(['[', ']'], " ");
    let words: Vec<&str> = t
        .split_whitespace()
        .filter(|w| !matches!(*w, "__data_loc" | "__rel_loc" | "const" | "volatile" | "unsigned" | "signed"))
        .collect();
    if f.type_name.contains('*') {
        return long_size;
    }
    match words.last().copied().unwrap_or("") {
        "char" | "u8" | "s8" | "__u8" | "__s8" | "bool" => 1,
        "short" | "u16" | "s16" | "__u16" | "__s16" => 2,
        "int" | "u32" | "s32" | "__u32" | "__s32" | "pid_t" => 4,
        "u64" | "s64" | "__u64" | "__s64" => 8,
        "long" => long_size,
        _ => 1,
    }
}

/// The plan of `format`: typed when Perfetto has a message for it and the kernel's fields fit
/// it, generic otherwise.
fn plan(format: &EventFormat, long_size: usize) -> EventPlan {
    if let Some(p) = typed_plan(format) {
        return p;
    }
    let mut name_field = Vec::with_capacity(format.name.len() + 2);
    name_field.push(1 << 3 | LEN as u8);
    put_varint(&mut name_field, format.name.len() as u64);
    name_field.extend_from_slice(format.name.as_bytes());
    let fields = format
        .fields
        .iter()
        .map(|f| {
            let layout = f.layout();
            let enc = if f.is_string() {
                Enc::Scalar { head: scalar_head(&f.name, Kind::Str), kind: Kind::Str }
            } else if is_scalar(f) {
                Enc::Scalar { head: scalar_head(&f.name, kind_of(f)), kind: kind_of(f) }
            } else {
                let elem = elem_size(f, long_size);
                let kind = if f.signed && matches!(elem, 1 | 2 | 4 | 8) { Kind::Int } else { Kind::Uint };
                Enc::Array { name: f.name.clone(), kind, elem, heads: Vec::new() }
            };
            FieldPlan { layout, enc }
        })
        .collect();
    EventPlan { outer_key: key(GENERIC, LEN), name_field, fields, tgid: TgidRule::None, typed: false }
}

fn typed_plan(format: &EventFormat) -> Option<EventPlan> {
    let (_, _, tag, map) = TYPED.iter().find(|(s, e, _, _)| *s == format.system && *e == format.name)?;
    let mut fields = Vec::new();
    for (name, field_tag, kind) in map.iter() {
        let Some(f) = format.fields.iter().find(|f| f.name == *name) else { continue };
        let fits = match kind {
            Kind::Str => f.is_string(),
            Kind::Int | Kind::Uint => is_scalar(f),
        };
        if !fits {
            return None;
        }
        let wire = if *kind == Kind::Str { LEN } else { VARINT };
        fields.push(FieldPlan { layout: f.layout(), enc: Enc::Typed { key: key(*field_tag, wire), kind: *kind } });
    }
    let layout = |n: &str| format.fields.iter().find(|f| f.name == n && is_scalar(f)).map(Field::layout);
    let tgid = match format.name.as_str() {
        "task_newtask" => match (layout("pid"), layout("clone_flags")) {
            (Some(pid), Some(flags)) => TgidRule::NewTask { pid, flags },
            _ => TgidRule::None,
        },
        "sched_process_exec" => layout("pid").map_or(TgidRule::None, |pid| TgidRule::Exec { pid }),
        _ => TgidRule::None,
    };
    Some(EventPlan { outer_key: key(*tag, LEN), name_field: Vec::new(), fields, tgid, typed: true })
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::super::proto::{self, ftrace_event::Event, generic_field::Value};
    use super::*;

    const SWITCH: &str = "name: sched_switch
ID: 316
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

print fmt: \"prev_comm=%s\", REC->prev_comm
";

    const SYS_ENTER: &str = "name: sys_enter
ID: 443
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:long id;\toffset:8;\tsize:8;\tsigned:1;
\tfield:unsigned long args[6];\toffset:16;\tsize:48;\tsigned:0;
\tfield:__data_loc char[] file;\toffset:64;\tsize:4;\tsigned:0;
\tfield:__data_loc s16[] vals;\toffset:68;\tsize:4;\tsigned:1;

print fmt: \"NR %ld\", REC->id
";

    fn decode(bytes: &[u8]) -> proto::FtraceEventBundle {
        proto::FtraceEventBundle::decode(bytes).expect("a valid FtraceEventBundle")
    }

    #[test]
    fn sched_switch_is_the_typed_message() {
        let f = EventFormat::parse("sched", SWITCH, Endian::Little).unwrap();
        let mut e = Encoder::new(Endian::Little);
        e.add(&f, 8);
        assert_eq!(e.is_typed(316), Some(true));
        let mut rec = vec![0u8; 64];
        rec[0..2].copy_from_slice(&316u16.to_le_bytes());
        rec[2] = 0x81;
        rec[4..8].copy_from_slice(&77i32.to_le_bytes());
        rec[8..11].copy_from_slice(b"cat");
        rec[24..28].copy_from_slice(&77i32.to_le_bytes());
        rec[28..32].copy_from_slice(&120i32.to_le_bytes());
        rec[32..40].copy_from_slice(&(-1i64).to_le_bytes());
        rec[40..55].copy_from_slice(b"a-very-long-nam");
        rec[56..60].copy_from_slice(&0i32.to_le_bytes());
        rec[60..64].copy_from_slice(&(-2i32).to_le_bytes());
        let mut out = Vec::new();
        assert_eq!(e.encode(123_456_789_012, &rec, &mut out), Some((77, None)));
        let b = decode(&out);
        assert_eq!(b.event.len(), 1);
        let ev = &b.event[0];
        assert_eq!((ev.timestamp, ev.pid, ev.common_flags), (Some(123_456_789_012), Some(77), Some(0x81)));
        assert_eq!(
            ev.event,
            Some(Event::SchedSwitch(proto::SchedSwitch {
                prev_comm: Some("cat".into()),
                prev_pid: Some(77),
                prev_prio: Some(120),
                prev_state: Some(-1),
                next_comm: Some("a-very-long-nam".into()),
                next_pid: Some(0),
                next_prio: Some(-2),
            }))
        );
    }

    #[test]
    fn other_events_are_generic_with_every_field_and_its_type() {
        let f = EventFormat::parse("raw_syscalls", SYS_ENTER, Endian::Little).unwrap();
        let mut e = Encoder::new(Endian::Little);
        e.add(&f, 8);
        assert_eq!(e.is_typed(443), Some(false));
        let mut rec = vec![0u8; 72];
        rec[0..2].copy_from_slice(&443u16.to_le_bytes());
        rec[4..8].copy_from_slice(&(-5i32).to_le_bytes());
        rec[8..16].copy_from_slice(&(-100i64).to_le_bytes());
        for i in 0..6 {
            rec[16 + i * 8..24 + i * 8].copy_from_slice(&(u64::MAX - i as u64).to_le_bytes());
        }
        // file: "/etc/h\xffx" at 72 (9 bytes with NUL); vals: [-1, 7] after it.
        let file = b"/etc/h\xffx\0";
        rec[64..68].copy_from_slice(&((file.len() as u32) << 16 | 72).to_le_bytes());
        rec[68..72].copy_from_slice(&(4u32 << 16 | 81).to_le_bytes());
        rec.extend_from_slice(file);
        rec.extend_from_slice(&(-1i16).to_le_bytes());
        rec.extend_from_slice(&7i16.to_le_bytes());
        let mut out = Vec::new();
        for ts in [5, 6] {
            e.encode(ts, &rec, &mut out).unwrap();
        }
        let b = decode(&out);
        assert_eq!(b.event.len(), 2);
        assert_eq!(b.event[1].pid, Some(-5i32 as u32));
        let Some(Event::Generic(g)) = &b.event[1].event else { panic!("{:?}", b.event[1]) };
        assert_eq!(g.event_name.as_deref(), Some("sys_enter"));
        let got: Vec<(String, Value)> =
            g.field.iter().map(|f| (f.name.clone().unwrap(), f.value.clone().unwrap())).collect();
        let mut want = vec![("id".to_string(), Value::IntValue(-100))];
        want.extend((0..6).map(|i| (format!("args[{i}]"), Value::UintValue(u64::MAX - i as u64))));
        want.push(("file".into(), Value::StrValue("/etc/h\u{fffd}x".into())));
        want.push(("vals[0]".into(), Value::IntValue(-1)));
        want.push(("vals[1]".into(), Value::IntValue(7)));
        assert_eq!(got, want);
    }

    #[test]
    fn unknown_ids_write_nothing() {
        let mut e = Encoder::new(Endian::Little);
        let mut out = Vec::new();
        assert_eq!(e.encode(1, &[9, 0, 0, 0, 1, 0, 0, 0], &mut out), None);
        assert_eq!(e.encode(1, &[9], &mut out), None);
        assert!(out.is_empty());
    }
}
