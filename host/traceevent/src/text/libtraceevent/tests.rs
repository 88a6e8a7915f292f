//! Tests of the libtraceevent dialect: its parser's quirks, glibc's printf, plugins.

#[test]
fn plain_hex_numbers_match_printf() {
    for &v in &[0u64, 1, 9, 10, 15, 16, 0xabc, 0x7ffd_1234_5678, u64::MAX, 1 << 63, 0x0123_4567_89ab_cdef] {
        for (spec, want) in [
            ("%lx", format!("{v:x}")),
            ("%16lx", format!("{v:16x}")),
            ("%016llx", format!("{v:016x}")),
            ("%llX", format!("{v:X}")),
            ("%32lx", format!("{v:32x}")),
            ("%x", format!("{:x}", v as u32)),
        ] {
            let mut out = b"<".to_vec();
            super::segments::PrintfSpec::parse(spec.as_bytes()).write_int(&mut out, v, None);
            assert_eq!(String::from_utf8(out).unwrap(), format!("<{want}"), "{spec} of {v:#x}");
        }
    }
}

use crate::format::{EventFormat, EventFormats};
use crate::header::PageHeader;
use crate::symbols::Symbols;
use crate::text::{Dialect, PrintContext};
use crate::Endian;

use crate::format::tests::COMMON;

fn event(system: &str, name: &str, fields: &str, fmt: &str) -> EventFormat {
    let text = format!("name: {name}\nID: 99\nformat:\n{COMMON}\n{fields}\nprint fmt: {fmt}\n");
    EventFormat::parse(system, &text, Endian::Little).unwrap()
}

fn payload(len: usize, parts: &[(usize, &[u8])]) -> Vec<u8> {
    let mut d = vec![0u8; len];
    d[0..2].copy_from_slice(&99u16.to_le_bytes());
    for (off, b) in parts {
        d[*off..*off + b.len()].copy_from_slice(b);
    }
    d
}

fn lte(syms: Option<&Symbols>) -> PrintContext<'_> {
    PrintContext { long_size: 8, endian: Endian::Little, dialect: Dialect::LibTraceEvent, symbols: syms }
}

fn info(ev: &EventFormat, d: &[u8], ctx: &PrintContext) -> String {
    let mut s = String::new();
    ev.print_info(d, ctx, &mut s);
    s
}

#[test]
fn only_events_that_can_print_symbols_want_kallsyms() {
    let args = "\tfield:long id;\toffset:8;\tsize:8;\tsigned:1;\n\tfield:unsigned long args[6];\toffset:16;\tsize:48;\tsigned:0;\n";
    let sys_enter =
        event("raw_syscalls", "sys_enter", args, "\"NR %ld (%lx, %lx)\", REC->id, REC->args[0], REC->args[1]");
    assert!(!sys_enter.libtraceevent_wants_symbols(8));
    let f = "\tfield:void * function;\toffset:8;\tsize:8;\tsigned:0;\n";
    assert!(
        event("workqueue", "workqueue_execute_start", f, "\"func=%ps\", REC->function").libtraceevent_wants_symbols(8)
    );
    assert!(event("t", "e", f, "\"mode=%d\", HRTIMER_MODE_ABS").libtraceevent_wants_symbols(8));
    assert!(event("timer", "hrtimer_start", f, "\"%p\", REC->function").libtraceevent_wants_symbols(8));
    assert!(!event("t", "e", f, "\"%p\", REC->function").libtraceevent_wants_symbols(8));
}

#[test]
fn parenthesised_right_operand_rotates_like_libtraceevent() {
    // trace-cmd prints `flags=D|P|I` for timer_start with no flag set: its parser turns
    // `flags & (M | D | P | I)` into `(flags & M) | D | P | I`.
    let ev = event(
        "timer",
        "timer_start",
        "\tfield:unsigned int flags;\toffset:8;\tsize:4;\tsigned:0;\n",
        "\"idx=%u flags=%s\", REC->flags >> 22, __print_flags(REC->flags & (0x00040000 | 0x00080000 | 0x00100000 | 0x00200000), \"|\", { 0x00040000, \"M\" }, { 0x00080000, \"D\" }, { 0x00100000, \"P\" }, { 0x00200000, \"I\" })",
    );
    let d = payload(12, &[(8, &(16u32 << 22).to_le_bytes())]);
    assert_eq!(info(&ev, &d, &lte(None)), "idx=16 flags=D|P|I");
    let d = payload(12, &[(8, &(16u32 << 22 | 0x40000).to_le_bytes())]);
    assert_eq!(info(&ev, &d, &lte(None)), "idx=16 flags=M|D|P|I");
    // `a * -b` rotates the unary minus above the product: (a * 0) - b.
    let ev = event("t", "e", "\tfield:int a;\toffset:8;\tsize:4;\tsigned:1;\n", "\"%d\", 3 * -REC->a");
    let d = payload(12, &[(8, &2i32.to_le_bytes())]);
    assert_eq!(info(&ev, &d, &lte(None)), "-2");
}

#[test]
fn unsigned_evaluation_casts_and_unknown_conversions() {
    let ev = event(
        "t",
        "e",
        "\tfield:int a;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:unsigned long b;\toffset:16;\tsize:8;\tsigned:0;\n",
        "\"%d %ld %d %x %s %lu %#x %#o %5.3d|%-4d| %c %+d\", REC->a, (long)REC->a, (int)REC->a < 0, REC->b ^ 3, REC->a < 0 ? \"neg\" : \"pos\", (unsigned char)REC->b, 0, 0, 7, 1, 65, REC->a",
    );
    let d = payload(24, &[(8, &(-5i32).to_le_bytes()), (16, &0x1234u64.to_le_bytes())]);
    // Fields are read zero-extended and compared unsigned; `%c` and `%+d` are not
    // conversions to libtraceevent 1.7.1 and print as `>c<` / `>+<`; `^` of a field evaluates
    // to 0 (only constants fold).
    assert_eq!(info(&ev, &d, &lte(None)), "-5 4294967291 0 0 pos 52 0 0   007|1   | >c< >+<d");
}

#[test]
fn plain_integer_conversions_pad_like_glibc() {
    let ev = event(
        "t",
        "e",
        "\tfield:int a;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:unsigned long args[2];\toffset:16;\tsize:16;\tsigned:0;\n",
        "\"%05d|%5d|%d|%2d|%x|0x%08lx|%X|%o|%3u|%ld|%lx|%hhd|%020lu\", REC->a, REC->a, REC->a, REC->a, 255, ((unsigned long)(REC->args[0])), 255, 8, 7, REC->args[1], REC->args[1], REC->a, REC->args[1]",
    );
    let d = payload(32, &[(8, &(-5i32).to_le_bytes()), (16, &0x1234u64.to_le_bytes()), (24, &u64::MAX.to_le_bytes())]);
    assert_eq!(
        info(&ev, &d, &lte(None)),
        "-0005|   -5|-5|-5|ff|0x00001234|FF|10|  7|-1|ffffffffffffffff|-5|18446744073709551615"
    );
    let d = payload(32, &[(8, &123_456i32.to_le_bytes())]);
    assert_eq!(
        info(&ev, &d, &lte(None)),
        "123456|123456|123456|123456|ff|0x00000000|FF|10|  7|0|0|64|00000000000000000000"
    );
}

#[test]
fn symbolic_tables_and_failed_events() {
    let ev = event(
        "t",
        "e",
        "\tfield:int mode;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:char comm[8];\toffset:12;\tsize:8;\tsigned:0;\n",
        "\"mode=%s x=%s\", __print_symbolic(REC->mode, { HRTIMER_MODE_ABS, \"ABS\" }, { 1, \"REL\" }), __print_symbolic(REC->mode, { TIMER_SOFTIRQ, \"TIMER\" })",
    );
    let d = payload(20, &[(8, &1i32.to_le_bytes())]);
    assert_eq!(info(&ev, &d, &lte(None)), "mode=REL x=TIMER");
    let d = payload(20, &[(8, &0i32.to_le_bytes())]);
    assert_eq!(info(&ev, &d, &lte(None)), "mode=0x0 x=0x0");
    // An unknown helper fails the whole event: raw fields after [FAILED TO PARSE].
    let ev = event(
        "t",
        "e",
        "\tfield:int mode;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:char comm[8];\toffset:12;\tsize:8;\tsigned:0;\n",
        "\"%d\", mystery(REC->mode)",
    );
    let d = payload(20, &[(8, &(-1i32).to_le_bytes()), (12, b"cat\0")]);
    assert_eq!(info(&ev, &d, &lte(None)), "[FAILED TO PARSE] mode=-1 comm=cat");
}

#[test]
fn plugins_and_comm_registration() {
    let sched = include_str!("../../../tests/data/sched_switch.format");
    let mut r = EventFormats::new(PageHeader::standard(8, Endian::Little, 4096).unwrap());
    r.set_dialect(Dialect::LibTraceEvent);
    let id = r.add_format("sched", sched).unwrap();
    let f = r.by_id(id).unwrap();
    let off = |n: &str| f.field(n).unwrap().offset;
    let mut d = vec![0u8; 64];
    d[0..2].copy_from_slice(&(id as u16).to_le_bytes());
    d[off("prev_comm")..off("prev_comm") + 5].copy_from_slice(b"bash\0");
    d[off("prev_pid")..off("prev_pid") + 4].copy_from_slice(&4242i32.to_le_bytes());
    d[off("prev_prio")..off("prev_prio") + 4].copy_from_slice(&120i32.to_le_bytes());
    d[off("prev_state")..off("prev_state") + 8].copy_from_slice(&0x101u64.to_le_bytes());
    d[off("next_comm")..off("next_comm") + 12].copy_from_slice(b"migration/1\0");
    d[off("next_pid")..off("next_pid") + 4].copy_from_slice(&21i32.to_le_bytes());
    let mut s = String::new();
    r.print_info(&d, &mut s);
    assert_eq!(s, "bash:4242 [120] S ==> migration/1:21 [0]");
    assert_eq!(r.comm(4242), "<...>");
    r.note_record(&d);
    assert_eq!((r.comm(4242), r.comm(21)), ("bash", "migration/1"));

    let mut syms = Symbols::new();
    syms.parse_kallsyms("ffffffff814330e0 T tick_nohz_handler\nffffffff81433200 T other\n");
    let ev = event(
        "timer",
        "hrtimer_start",
        "\tfield:void * hrtimer;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:void * function;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:s64 expires;\toffset:24;\tsize:8;\tsigned:1;\n\tfield:s64 softexpires;\toffset:32;\tsize:8;\tsigned:1;\n",
        "\"hrtimer=%p\", REC->hrtimer",
    );
    let d = payload(
        40,
        &[
            (8, &0xffff_8886_27c1_c6f8u64.to_le_bytes()),
            (16, &0xffff_ffff_8143_30e0u64.to_le_bytes()),
            (24, &5u64.to_le_bytes()),
            (32, &6u64.to_le_bytes()),
        ],
    );
    assert_eq!(
        info(&ev, &d, &lte(Some(&syms))),
        "hrtimer=0xffff888627c1c6f8 function=tick_nohz_handler/0x0 expires=5 softexpires=6"
    );

    let ev = event(
        "syscalls",
        "sys_enter_futex",
        "\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:u32 * uaddr;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:int op;\toffset:24;\tsize:8;\tsigned:0;\n\tfield:u32 val;\toffset:32;\tsize:8;\tsigned:0;\n\tfield:const struct __kernel_timespec * utime;\toffset:40;\tsize:8;\tsigned:0;\n\tfield:u32 * uaddr2;\toffset:48;\tsize:8;\tsigned:0;\n\tfield:u32 val3;\toffset:56;\tsize:8;\tsigned:0;\n",
        "\"uaddr: 0x%08lx\", ((unsigned long)(REC->uaddr))",
    );
    let d = payload(
        64,
        &[(16, &0x7fc3_10c5_2a4cu64.to_le_bytes()), (24, &0x81u64.to_le_bytes()), (32, &0x7fff_ffffu64.to_le_bytes())],
    );
    assert_eq!(info(&ev, &d, &lte(None)), "op=FUTEX_WAKE|FUTEX_PRIVATE_FLAG uaddr=0x7fc310c52a4c val=2147483647");
}

/// A `sched_switch` record of `r`'s format `id` from (prev comm, pid) to (next comm, pid).
fn switch(r: &EventFormats, id: u32, prev: (&[u8], i32), next: (&[u8], i32)) -> Vec<u8> {
    let f = r.by_id(id).unwrap();
    let off = |n: &str| f.field(n).unwrap().offset;
    let mut d = vec![0u8; 64];
    d[0..2].copy_from_slice(&(id as u16).to_le_bytes());
    d[off("prev_comm")..off("prev_comm") + prev.0.len()].copy_from_slice(prev.0);
    d[off("prev_pid")..off("prev_pid") + 4].copy_from_slice(&prev.1.to_le_bytes());
    d[off("next_comm")..off("next_comm") + next.0.len()].copy_from_slice(next.0);
    d[off("next_pid")..off("next_pid") + 4].copy_from_slice(&next.1.to_le_bytes());
    d
}

#[test]
fn comms_registered_before_the_first_lookup_are_kept_as_libtraceevent_keeps_them() {
    // A task that exec'd: the file's cmdlines name pid 9209 `sh`, the first sched_switch
    // (from the idle task, before libtraceevent has looked a pid up) `wasmprobe-full`. Both
    // go into its list; its first lookup sorts them into an array in which the binary search
    // lands on one of them. With these cmdlines it lands on the later registration, as
    // trace-cmd report showed on such a recording.
    let sched = include_str!("../../../tests/data/sched_switch.format");
    let setup = |cmdlines: &str| {
        let mut r = EventFormats::new(PageHeader::standard(8, Endian::Little, 4096).unwrap());
        r.set_dialect(Dialect::LibTraceEvent);
        let id = r.add_format("sched", sched).unwrap();
        r.parse_cmdlines(cmdlines);
        r.begin_comm_list();
        (r, id)
    };
    let (mut r, id) = setup("9209 sh\n");
    r.note_record(&switch(&r, id, (b"swapper/0\0", 0), (b"wasmprobe-full\0", 9209)));
    assert!(r.keeps_comm_list());
    r.end_comm_list();
    // Array [0, 9209 wasmprobe-full, 9209 sh]: the search meets index 1 first.
    assert_eq!(r.comm(9209), "wasmprobe-full");
    // Later registrations are refused for a known pid, added for a new one (which moves
    // the search: array [0, 5, 9209 wasmprobe-full, 9209 sh], first met at index 2).
    r.note_record(&switch(&r, id, (b"sh\0", 9209), (b"cat\0", 5)));
    assert_eq!((r.comm(9209), r.comm(5)), ("wasmprobe-full", "cat"));
    // One pid more below: in [0, 3, 5, 9209 w, 9209 sh] the search goes from index 2 (5) to
    // index 4, the file's `sh`: a pid added elsewhere changes which comm 9209 shows.
    r.note_record(&switch(&r, id, (b"cat\0", 5), (b"ls\0", 3)));
    assert_eq!((r.comm(9209), r.comm(3)), ("sh", "ls"));
    // Without a registration before the first lookup the file's comm stands.
    let (mut r, id) = setup("9209 sh\n");
    r.end_comm_list();
    r.note_record(&switch(&r, id, (b"swapper/0\0", 0), (b"wasmprobe-full\0", 9209)));
    assert_eq!(r.comm(9209), "sh");
    // Where the search lands on the file's entry, that one: array [0, 1, 2, 9209 w, 9209 sh]
    // (five entries: the middle is 2, then [3, 5) meets index 4, the file's `sh`).
    let (mut r, id) = setup("1 init\n2 kthreadd\n9209 sh\n");
    r.note_record(&switch(&r, id, (b"swapper/0\0", 0), (b"wasmprobe-full\0", 9209)));
    r.end_comm_list();
    assert_eq!(r.comm(9209), "sh");
}

#[test]
fn kallsyms_lookup_follows_libtraceevent() {
    let mut s = Symbols::new();
    // Aliases at one address: inside the range the first listed in the file wins;
    // absolute symbols are ignored.
    s.parse_kallsyms(
        "ffffffff81000000 T first\nffffffff81000000 T second\nffffffff81000080 A abs\nffffffff81000100 T next\n",
    );
    assert_eq!(s.libtraceevent_function(0xffff_ffff_8100_0010), Some(("first", 0xffff_ffff_8100_0000)));
    assert_eq!(s.libtraceevent_function(0xffff_ffff_8100_0100).map(|f| f.0), Some("next"));
    assert_eq!(s.libtraceevent_function(0xffff_ffff_8100_0200), None, "past the last symbol");
    assert_eq!(s.libtraceevent_symbol_address("next"), Some(0xffff_ffff_8100_0100));
    s.parse_printk_formats("0xffffffff8281a5be : \"Start scheduler-tick\\n\"\n");
    assert_eq!(s.libtraceevent_printk(0xffff_ffff_8281_a5be), Some("Start scheduler-tick"));
}

#[test]
fn shifted_and_masked_fields_print_as_eval_computes_them_without_walking_the_expression() {
    let fields = "\tfield:unsigned int dev;\toffset:8;\tsize:4;\tsigned:0;\n\
                  \tfield:unsigned short ioprio;\toffset:12;\tsize:2;\tsigned:0;\n";
    // The last three are libtraceevent's to read as it reads them (`a >> 4 >> 8` is not
    // `a >> 12` to it): the folded load must agree with its evaluation, whatever that is.
    let fmt = "\"%d,%d %u %u %u %u %u %u\", ((unsigned int) ((REC->dev) >> 20)), \
               ((unsigned int) ((REC->dev) & ((1U << 20) - 1))), (((REC->ioprio) >> 3) & ((1 << 10) - 1)), \
               ((REC->ioprio) & ((1 << 3) - 1)), ((REC->dev) >> 12), ((REC->dev) >> 70), \
               ((REC->dev) >> 4 >> 8), (0xff & ((REC->dev) >> 60))";
    let ev = event("block", "shifts", fields, fmt);
    let text = super::EventText::compile(&ev, 8, None);
    let loads: Vec<_> = text
        .segs
        .iter()
        .filter_map(|s| match s {
            super::segments::Seg::Num { load, arg, .. } => Some((*load, *arg)),
            _ => None,
        })
        .collect();
    assert_eq!(loads.len(), 8);
    let records = [(0u32, 0u16), (0x0fe0_0001, 0x6003), (u32::MAX, u16::MAX), (254 << 20 | 7, 2 << 13 | 5 << 3 | 4)];
    for (dev, ioprio) in records {
        let d = payload(16, &[(8, &dev.to_le_bytes()), (12, &ioprio.to_le_bytes())]);
        let cx = super::RecordContext { event: &text, data: &d, long: 8, endian: Endian::Little, symbols: None };
        for (i, (load, arg)) in loads.iter().enumerate() {
            // Every argument is a folded load: no expression is walked per record.
            let load = load.unwrap_or_else(|| panic!("argument {i} is not a load"));
            assert_eq!(load.get(&d, Endian::Little), cx.eval(&text.args[*arg]), "argument {i} of dev {dev:#x}");
        }
        let want = format!("{},{} {} {} {} ", dev >> 20, dev & 0xfffff, (ioprio >> 3) & 0x3ff, ioprio & 7, dev >> 12);
        let got = info(&ev, &d, &lte(None));
        assert!(got.starts_with(&want), "{got:?} for dev {dev:#x} ioprio {ioprio:#x}");
    }
    // A record too short for the field reads it as 0, as eval does.
    assert_eq!(info(&ev, &payload(10, &[]), &lte(None)), "0,0 0 0 0 0 0 0");
}
