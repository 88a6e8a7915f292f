//! Tests of the kernel dialect against the kernel's own text.

use super::write_raw_field;
use crate::endian::Endian;
use crate::format::tests::SCHED_SWITCH;
use crate::format::EventFormat;
use crate::symbols::Symbols;
use crate::text::sink::MAX_PAD;
use crate::text::{Dialect, PrintContext};

use crate::format::tests::COMMON;

fn event(text: &str) -> EventFormat {
    let ev = EventFormat::parse("test", text, Endian::Little).unwrap();
    if let Some(e) = ev.print_error() {
        panic!("{} did not compile: {e}", ev.name);
    }
    ev
}

fn info(ev: &EventFormat, data: &[u8], ctx: &PrintContext) -> String {
    let mut s = String::new();
    ev.print_info(data, ctx, &mut s);
    s
}

fn le() -> PrintContext<'static> {
    PrintContext { long_size: 8, endian: Endian::Little, dialect: Dialect::Kernel, symbols: None }
}

fn lte() -> PrintContext<'static> {
    PrintContext { dialect: Dialect::LibTraceEvent, ..le() }
}

/// Builds a payload: common header then bytes placed at offsets.
fn payload(id: u16, len: usize, parts: &[(usize, &[u8])]) -> Vec<u8> {
    let mut d = vec![0u8; len];
    d[0..2].copy_from_slice(&id.to_le_bytes());
    for (off, b) in parts {
        d[*off..*off + b.len()].copy_from_slice(b);
    }
    d
}

fn fmt_event(fields: &str, print: &str) -> String {
    format!("name: t\nID: 99\nformat:\n{COMMON}\n{fields}\nprint fmt: {print}\n")
}

#[test]
fn irq_handler_entry_dynamic_string() {
    // §2.3 "dynamic string" (libtraceevent utest), re-derived.
    let ev = event(&format!(
        "name: irq_handler_entry\nID: 1\nformat:\n{COMMON}\n\
\tfield:int irq;\toffset:8;\tsize:4;\tsigned:1;\n\
\tfield:__data_loc char[] name;\toffset:12;\tsize:4;\tsigned:1;\n\n\
print fmt: \"irq=%d handler=%s\", REC->irq, __get_str(name)\n"
    ));
    let d = payload(1, 24, &[(12, &(16u32 | 6 << 16).to_le_bytes()), (16, b"hello\0")]);
    assert_eq!(info(&ev, &d, &le()), "irq=0 handler=hello");
    let name = ev.field("name").unwrap();
    assert_eq!(name.str(&d).unwrap(), "hello");
}

#[test]
fn old_size2_data_loc() {
    // §2.3 "old dynamic string": no signed keys, 2-byte __data_loc, 25-byte record.
    let ev = event(
        "name: irq_handler_entry\nID: 2\nformat:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\n\
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\n\
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\n\
\tfield:int common_pid;\toffset:4;\tsize:4;\n\n\
\tfield:int irq;\toffset:8;\tsize:4;\n\
\tfield:__data_loc name;\toffset:12;\tsize:2;\n\n\
print fmt: \"irq=%d handler=%s\", REC->irq, __get_str(name)\n",
    );
    let d = payload(2, 25, &[(12, &16u16.to_le_bytes()), (16, b"hello\0")]);
    assert_eq!(info(&ev, &d, &le()), "irq=0 handler=hello");
    assert_eq!(ev.field("name").unwrap().str(&d).unwrap(), "hello");
}

fn cpumask_event() -> EventFormat {
    event(&format!(
        "name: ipi_send_cpumask\nID: 3\nformat:\n{COMMON}\n\
\tfield:__data_loc cpumask_t *[] cpumask;\toffset:8;\tsize:4;\tsigned:0;\n\n\
print fmt: \"cpumask=%s\", __get_cpumask(cpumask)\n"
    ))
}

#[test]
fn cpumask_cases_libtraceevent() {
    let ev = cpumask_event();
    let cases: [([u8; 8], &str, &str); 6] = [
        ([0xff; 8], "0-63", "ffffffff,ffffffff"),
        ([0; 8], "", "00000000,00000000"),
        (
            [0x55; 8],
            "0,2,4,6,8,10,12,14,16,18,20,22,24,26,28,30,32,34,36,38,40,42,44,46,48,50,52,54,56,58,60,62",
            "55555555,55555555",
        ),
        ([1, 0x80, 0, 0, 0, 0, 0, 0], "0,15", "00000000,00008001"),
        ([1, 0, 0x80, 0, 0, 0, 0, 0], "0,23", "00000000,00800001"),
        ([1, 0, 0, 0, 0, 0, 0, 0x80], "0,63", "80000000,00000001"),
    ];
    for (mask, list, hex) in cases {
        let d = payload(3, 24, &[(8, &(16u32 | 8 << 16).to_le_bytes()), (16, &mask)]);
        assert_eq!(info(&ev, &d, &lte()), format!("cpumask={list}"));
        assert_eq!(info(&ev, &d, &le()), format!("cpumask={hex}"));
        // Big-endian data: same masks as one big-endian unsigned long.
        let word = u64::from_le_bytes(mask);
        let mut d = d.clone();
        d[8..12].copy_from_slice(&(16u32 | 8 << 16).to_be_bytes());
        d[16..24].copy_from_slice(&word.to_be_bytes());
        let evb = EventFormat::parse("ipi", &cpumask_event_text(), Endian::Big).unwrap();
        let ctx = PrintContext { endian: Endian::Big, ..lte() };
        assert_eq!(info(&evb, &d, &ctx), format!("cpumask={list}"));
    }
    // Raw field printing of the mask (libtraceevent: ARRAY[ff, ...]).
    let d = payload(3, 24, &[(8, &(16u32 | 8 << 16).to_le_bytes()), (16, &[0xff; 8])]);
    let mut s = Vec::new();
    write_raw_field(ev.field("cpumask").unwrap(), &d, &le(), &mut s);
    assert_eq!(s, b"ARRAY[ff, ff, ff, ff, ff, ff, ff, ff]");
}

fn cpumask_event_text() -> String {
    format!(
        "name: ipi_send_cpumask\nID: 3\nformat:\n{COMMON}\n\
\tfield:__data_loc cpumask_t *[] cpumask;\toffset:8;\tsize:4;\tsigned:0;\n\n\
print fmt: \"cpumask=%s\", __get_cpumask(cpumask)\n"
    )
}

const SIZEOF_EVENT: &str = "name: sizeof_event\nID: 23\nformat:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int s4;\toffset:8;\tsize:4;\tsigned:1;
\tfield:unsigned int u4;\toffset:12;\tsize:4;\tsigned:0;
\tfield:long long s8;\toffset:16;\tsize:8;\tsigned:1;
\tfield:unsigned long long u8;\toffset:24;\tsize:8;\tsigned:0;

print fmt: \"int=%d unsigned=%d unsigned int=%d long=%d unsigned long=%d long long=%d unsigned long long=%d s4=%d u4=%d s8=%d u8=%d\", sizeof(int), sizeof(unsigned), sizeof(unsigned int), sizeof(long), sizeof(unsigned long), sizeof(long long), sizeof(unsigned long long), sizeof(REC->s4), sizeof(REC->u4), sizeof(REC->s8), sizeof(REC->u8)
";

#[test]
fn sizeof_long_8_and_4() {
    let ev = event(SIZEOF_EVENT);
    let d = payload(23, 32, &[]);
    assert_eq!(
        info(&ev, &d, &le()),
        "int=4 unsigned=4 unsigned int=4 long=8 unsigned long=8 long long=8 unsigned long long=8 s4=4 u4=4 s8=8 u8=8"
    );
    let ctx4 = PrintContext { long_size: 4, ..le() };
    assert_eq!(
        info(&ev, &d, &ctx4),
        "int=4 unsigned=4 unsigned int=4 long=4 unsigned long=4 long long=8 unsigned long long=8 s4=4 u4=4 s8=8 u8=8"
    );
}

fn sched_switch_payload(prev: &[u8], prev_state: u64, next: &[u8]) -> Vec<u8> {
    payload(
        372,
        64,
        &[
            (4, &2667i32.to_le_bytes()),
            (8, prev),
            (24, &2667i32.to_le_bytes()),
            (28, &120i32.to_le_bytes()),
            (32, &prev_state.to_le_bytes()),
            (40, next),
            (56, &0i32.to_le_bytes()),
            (60, &120i32.to_le_bytes()),
        ],
    )
}

#[test]
fn sched_switch_kernel_text() {
    let ev = event(SCHED_SWITCH);
    // Seen in this machine's trace: prev_state=D.
    let d = sched_switch_payload(b"sleep\0", 2, b"swapper/1\0");
    assert_eq!(
        info(&ev, &d, &le()),
        "prev_comm=sleep prev_pid=2667 prev_prio=120 prev_state=D ==> next_comm=swapper/1 next_pid=0 next_prio=120"
    );
    let d = sched_switch_payload(b"bash\0", 0, b"swapper/1\0");
    assert!(info(&ev, &d, &le()).contains("prev_state=R ==>"));
    // TASK_REPORT_MAX bit (0x100): preempted, "R+".
    let d = sched_switch_payload(b"bash\0", 0x100, b"x\0");
    assert!(info(&ev, &d, &le()).contains("prev_state=R+ ==>"));
    let d = sched_switch_payload(b"bash\0", 0x1 | 0x2, b"x\0");
    assert!(info(&ev, &d, &le()).contains("prev_state=S|D ==>"));
    let d = sched_switch_payload(b"bash\0", 0x80, b"x\0");
    assert!(info(&ev, &d, &le()).contains("prev_state=I ==>"));
    // A full 16-byte comm without NUL.
    let d = sched_switch_payload(b"0123456789abcdef", 1, b"x\0");
    assert!(info(&ev, &d, &le()).starts_with("prev_comm=0123456789abcdef prev_pid"));
}

const TIMER_START: &str = "name: timer_start
ID: 466
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:void * timer;\toffset:8;\tsize:8;\tsigned:0;
\tfield:void * function;\toffset:16;\tsize:8;\tsigned:0;
\tfield:unsigned long expires;\toffset:24;\tsize:8;\tsigned:0;
\tfield:unsigned long bucket_expiry;\toffset:32;\tsize:8;\tsigned:0;
\tfield:unsigned long now;\toffset:40;\tsize:8;\tsigned:0;
\tfield:unsigned int flags;\toffset:48;\tsize:4;\tsigned:0;

print fmt: \"timer=%p function=%ps expires=%lu [timeout=%ld] bucket_expiry=%lu cpu=%u idx=%u flags=%s\", REC->timer, REC->function, REC->expires, (long)REC->expires - REC->now, REC->bucket_expiry, REC->flags & 0x0003FFFF, REC->flags >> 22, __print_flags(REC->flags & (0x00040000 | 0x00080000 | 0x00100000 | 0x00200000), \"|\", { 0x00040000, \"M\" }, { 0x00080000, \"D\" }, { 0x00100000, \"P\" }, { 0x00200000, \"I\" })
";

#[test]
fn timer_start_kernel_text() {
    let ev = event(TIMER_START);
    // From this machine's trace (nohash-ptr): timer=ffffc9000007fdf8 function=process_timeout
    // expires=4294924637 [timeout=1] bucket_expiry=4294924638 cpu=0 idx=30 flags=
    let flags: u32 = 30 << 22;
    let d = payload(
        466,
        56,
        &[
            (8, &0xffff_c900_0007_fdf8u64.to_le_bytes()),
            (16, &0xffff_ffff_8123_4560u64.to_le_bytes()),
            (24, &4294924637u64.to_le_bytes()),
            (32, &4294924638u64.to_le_bytes()),
            (40, &4294924636u64.to_le_bytes()),
            (48, &flags.to_le_bytes()),
        ],
    );
    assert_eq!(
        info(&ev, &d, &le()),
        "timer=ffffc9000007fdf8 function=0xffffffff81234560 expires=4294924637 [timeout=1] bucket_expiry=4294924638 cpu=0 idx=30 flags="
    );
    // Negative timeout, cpu bits and flag letters.
    let flags: u32 = 1 | 0x0004_0000 | 0x0020_0000 | 3 << 22;
    let d = payload(466, 56, &[(24, &100u64.to_le_bytes()), (40, &105u64.to_le_bytes()), (48, &flags.to_le_bytes())]);
    assert_eq!(
        info(&ev, &d, &le()),
        "timer=0000000000000000 function=0x0 expires=100 [timeout=-5] bucket_expiry=0 cpu=1 idx=3 flags=M|I"
    );
    assert!(info(&ev, &d, &lte()).starts_with("timer=(nil) function=0x0"));
}

const SYS_ENTER_OPENAT: &str = "name: sys_enter_openat
ID: 782
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;
\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;
\tfield:int flags;\toffset:32;\tsize:8;\tsigned:0;
\tfield:umode_t mode;\toffset:40;\tsize:8;\tsigned:0;

print fmt: \"dfd: 0x%08lx, filename: 0x%08lx, flags: 0x%08lx, mode: 0x%08lx\", ((unsigned long)(REC->dfd)), ((unsigned long)(REC->filename)), ((unsigned long)(REC->flags)), ((unsigned long)(REC->mode))
";

#[test]
fn sys_enter_openat_print_fmt() {
    // The kernel's own `trace` file renders syscall events with its own code
    // (`sys_openat(dfd: 0xffffff9c, ...)`); this is the print fmt's text, as trace-cmd shows.
    let ev = event(SYS_ENTER_OPENAT);
    let d = payload(
        782,
        48,
        &[
            (8, &257i32.to_le_bytes()),
            (16, &0xffff_ff9cu64.to_le_bytes()),
            (24, &0x7f52_19d1_b0b1u64.to_le_bytes()),
            (32, &0x80000u64.to_le_bytes()),
        ],
    );
    assert_eq!(info(&ev, &d, &le()), "dfd: 0xffffff9c, filename: 0x7f5219d1b0b1, flags: 0x00080000, mode: 0x00000000");
    assert_eq!(info(&ev, &d, &lte()), "dfd: 0xffffff9c, filename: 0x7f5219d1b0b1, flags: 0x00080000, mode: 0x00000000");
    // In the syscalls system, the kernel dialect prints what the kernel's `trace` file
    // shows: values below 10 in decimal, others in hex, and `name -> ret` on exit.
    let ev = EventFormat::parse("syscalls", SYS_ENTER_OPENAT, Endian::Little).unwrap();
    assert_eq!(info(&ev, &d, &le()), "sys_openat(dfd: 0xffffff9c, filename: 0x7f5219d1b0b1, flags: 0x80000, mode: 0)");
    let exit = EventFormat::parse(
        "syscalls",
        &format!(
            "name: sys_exit_openat\nID: 781\nformat:\n{COMMON}\n\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:long ret;\toffset:16;\tsize:8;\tsigned:1;\n\nprint fmt: \"0x%lx\", REC->ret\n"
        ),
        Endian::Little,
    )
    .unwrap();
    let d = payload(781, 24, &[(16, &(-2i64).to_le_bytes())]);
    assert_eq!(info(&exit, &d, &le()), "sys_openat -> 0xfffffffffffffffe");
}

#[test]
fn probe_events_in_the_kernel_dialect() {
    // The kernel prints a return probe as (return address <- function), its print fmt
    // the other way round.
    let ev = EventFormat::parse(
        "uprobes",
        &format!(
            "name: r\nID: 9\nformat:\n{COMMON}\n\tfield:unsigned long __probe_func;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:unsigned long __probe_ret_ip;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:s32 ret;\toffset:24;\tsize:4;\tsigned:1;\n\nprint fmt: \"(%lx <- %lx) ret=%d\", REC->__probe_func, REC->__probe_ret_ip, REC->ret\n"
        ),
        Endian::Little,
    )
    .unwrap();
    let d = payload(
        9,
        28,
        &[(8, &0x7f28_41b7_e150u64.to_le_bytes()), (16, &0x558a_c77f_a166u64.to_le_bytes()), (24, &3i32.to_le_bytes())],
    );
    assert_eq!(info(&ev, &d, &le()), "(0x558ac77fa166 <- 0x7f2841b7e150) ret=3");
    assert_eq!(info(&ev, &d, &lte()), "(7f2841b7e150 <- 558ac77fa166) ret=3");
}

#[test]
fn fuzz_regressions() {
    // A field name after a multi-byte character.
    let text = format!("name: x\nID: 1\nformat:\n{COMMON}\n\tfield:int \u{5cd}a;\toffset:8;\tsize:4;\tsigned:1;\n\nprint fmt: \"%d\", REC->a\n");
    let _ = EventFormat::parse("t", &text, Endian::Little);
    // Widths far beyond a page are cut, not allocated.
    let ev = event(&fmt_event(
        "\tfield:int a;\toffset:8;\tsize:4;\tsigned:1;\n",
        "\"%0003923135675398296992lx|%*d\", REC->a, 2147483647, REC->a",
    ));
    let d = payload(99, 12, &[]);
    for ctx in [le(), lte()] {
        let s = info(&ev, &d, &ctx);
        assert!(s.len() <= 2 * MAX_PAD + 2, "{}", s.len());
    }
}

#[test]
fn irq_handler_entry_live_format() {
    let ev = event(&format!(
        "name: irq_handler_entry\nID: 225\nformat:\n{COMMON}\n\
\tfield:int irq;\toffset:8;\tsize:4;\tsigned:1;\n\
\tfield:__data_loc char[] name;\toffset:12;\tsize:4;\tsigned:0;\n\n\
print fmt: \"irq=%d name=%s\", REC->irq, __get_str(name)\n"
    ));
    let d = payload(
        225,
        32,
        &[(8, &36i32.to_le_bytes()), (12, &(16u32 | 14 << 16).to_le_bytes()), (16, b"virtio1-req.0\0")],
    );
    assert_eq!(info(&ev, &d, &le()), "irq=36 name=virtio1-req.0");
    // A data_loc pointing outside the record falls back to raw fields, never panics.
    let d = payload(225, 32, &[(8, &36i32.to_le_bytes()), (12, &(40u32 | 14 << 16).to_le_bytes())]);
    assert_eq!(info(&ev, &d, &le()), "irq=36 name=");
}

#[test]
fn printf_conversions_kernel_style() {
    let ev = event(&fmt_event(
        "\tfield:int a;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:unsigned long b;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:char s[8];\toffset:24;\tsize:8;\tsigned:0;\n",
        "\"[%5d|%-5d|%05d|%+d|% d|%x|%X|%#x|%#o|%o|%lu|%lx|%#lx|%016llx|%hhu|%hu|%hd|%c|%.3s|%-6s|%6s|%.*s|%*d|%%|%zu|%Lx|%i|%.3d|%08.3d]\", REC->a, REC->a, REC->a, REC->a, REC->a, REC->a, REC->a, 0, 8, 0, REC->b, REC->b, 0, REC->b, 300, 70000, -2, 'F', REC->s, REC->s, REC->s, 2, REC->s, 4, 7, REC->b, REC->b, REC->a, 5, 5",
    ));
    let d = payload(99, 32, &[(8, &(-42i32).to_le_bytes()), (16, &255u64.to_le_bytes()), (24, b"abcdef\0\0")]);
    assert_eq!(
        info(&ev, &d, &le()),
        "[  -42|-42  |-0042|-42|-42|ffffffd6|FFFFFFD6|0x0|010|0|255|ff|0x0|00000000000000ff|44|4464|-2|F|abc|abcdef|abcdef|ab|   7|%|255|ff|-42|005|00000005]"
    );
}

#[test]
fn expressions_casts_ternary_symbolic() {
    let ev = event(&fmt_event(
        "\tfield:unsigned int v;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:unsigned long caller[2];\toffset:16;\tsize:16;\tsigned:0;\n\tfield:u8 mac[6];\toffset:32;\tsize:6;\tsigned:0;\n",
        "\"%d %d %u %d %d %s %s %s %lx %d %d %d %s %pM %s\", (int)(REC->v - 10), -9ULL >= 1ULL, (u8)REC->v, REC->v % 7 == 0 && !(REC->v & 1) ? 1 : 2, ~0 << 4, __print_symbolic(REC->v, { 1, \"ONE\" }, { 14, \"FOURTEEN\" }), __print_symbolic(3, { UNRESOLVED_ENUM, \"X\" }), (REC)->v > 10 ? \"big\" : \"small\", REC->caller[1], sizeof(u16), sizeof(REC->caller), 1 ? 2 : 3, __print_flags(0x81, \",\", { 1, \"A\" }, { 2, \"B\" }), REC->mac, __print_hex(REC->mac, 3)",
    ));
    let d = payload(
        99,
        40,
        &[(8, &14u32.to_le_bytes()), (24, &0xdeadu64.to_le_bytes()), (32, &[0, 0x1b, 0x21, 0xab, 0xcd, 0xef])],
    );
    assert_eq!(info(&ev, &d, &le()), "4 1 14 1 -16 FOURTEEN 0x3 big dead 2 16 2 A,0x80 00:1b:21:ab:cd:ef 00 1b 21");
}

#[test]
fn dynamic_arrays_and_print_array() {
    let ev = event(&fmt_event(
        "\tfield:__data_loc u64[] addrs;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:__rel_loc u8[] buf;\toffset:12;\tsize:4;\tsigned:0;\n",
        "\"n=%u %s %s %s\", __get_dynamic_array_len(addrs) / 8, __print_array(__get_dynamic_array(addrs), __get_dynamic_array_len(addrs) / 8, 8), __print_hex_str(__get_rel_dynamic_array(buf), __get_rel_dynamic_array_len(buf)), __print_array(__get_rel_dynamic_array(buf), 2, 1)",
    ));
    let d = payload(
        99,
        40,
        &[
            (8, &(16u32 | 16 << 16).to_le_bytes()),
            (12, &(16u32 | 3 << 16).to_le_bytes()), // rel: 16 + 16 = 32
            (16, &1u64.to_le_bytes()),
            (24, &0xabcu64.to_le_bytes()),
            (32, &[0xde, 0xad, 0x01]),
        ],
    );
    assert_eq!(info(&ev, &d, &le()), "n=2 {0x1,0xabc} dead01 {0xde,0xad}");
}

#[test]
fn pointer_extensions_on_buffers() {
    let ev = event(&fmt_event(
        "\tfield:__u8 src[16];\toffset:8;\tsize:16;\tsigned:0;\n\tfield:__u8 v4[4];\toffset:24;\tsize:4;\tsigned:0;\n\tfield:__u8 sa[28];\toffset:28;\tsize:28;\tsigned:0;\n\tfield:u8 uuid[16];\toffset:56;\tsize:16;\tsigned:0;\n\tfield:unsigned long mask[1];\toffset:72;\tsize:8;\tsigned:0;\n",
        "\"%pI6c %pI6 %pI4 %pi4 %pISpc %pU %*pbl %*pb %*phN\", REC->src, REC->src, REC->v4, REC->v4, REC->sa, REC->uuid, 64, REC->mask, 16, REC->mask, 3, REC->v4",
    ));
    let mut sa = [0u8; 28];
    sa[0..2].copy_from_slice(&10u16.to_le_bytes());
    sa[2..4].copy_from_slice(&8080u16.to_be_bytes());
    sa[8] = 0xfe;
    sa[9] = 0x80;
    sa[23] = 1;
    let mut v6 = [0u8; 16];
    v6[0] = 0x20;
    v6[1] = 0x01;
    v6[2] = 0x0d;
    v6[3] = 0xb8;
    v6[15] = 1;
    let uuid: Vec<u8> = (0..16).collect();
    let d = payload(
        99,
        80,
        &[(8, &v6), (24, &[192, 168, 1, 2]), (28, &sa), (56, &uuid), (72, &0x8000_0000_0000_0007u64.to_le_bytes())],
    );
    assert_eq!(
        info(&ev, &d, &le()),
        "2001:db8::1 2001:0db8:0000:0000:0000:0000:0000:0001 192.168.1.2 192.168.001.002 [fe80::1]:8080 00010203-0405-0607-0809-0a0b0c0d0e0f 0-2,63 0007 c0a801"
    );
}

#[test]
fn fallback_prints_raw_fields() {
    // An unknown helper: the print fmt does not compile, raw fields are printed.
    let text = fmt_event(
        "\tfield:int s4;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:unsigned long u8;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:char comm[8];\toffset:24;\tsize:8;\tsigned:0;\n\tfield:void * ptr;\toffset:32;\tsize:8;\tsigned:0;\n",
        "\"%s\", mystery_helper(REC->s4)",
    );
    let ev = EventFormat::parse("t", &text, Endian::Little).unwrap();
    assert!(ev.print_error().is_some());
    let d = payload(
        99,
        40,
        &[(8, &(-3i32).to_le_bytes()), (16, &16u64.to_le_bytes()), (24, b"cat\0"), (32, &0xffffu64.to_le_bytes())],
    );
    assert_eq!(info(&ev, &d, &le()), "s4=-3 u8=0x10 comm=cat ptr=0xffff");
    // Evaluation errors (division by zero) also fall back, never drop the event.
    let text = fmt_event("\tfield:int s4;\toffset:8;\tsize:4;\tsigned:1;\n", "\"%d\", 10 / REC->s4");
    let ev = event(&text);
    let d = payload(99, 12, &[]);
    assert_eq!(info(&ev, &d, &le()), "s4=0");
    // Truncated record.
    assert_eq!(info(&ev, &d[..9], &le()), "s4=");
}

#[test]
fn ftrace_style_escapes_and_arrays() {
    let text = "name: kernel_stack\nID: 4\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\n\tfield:int size;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:unsigned long caller[2];\toffset:16;\tsize:16;\tsigned:0;\n\nprint fmt: \"\\t=> %ps\\n\" \"\\t=> %ps\\n\", (void *)REC->caller[0], (void *)REC->caller[1]\n";
    let ev = event(text);
    let d = payload(4, 32, &[(16, &0x10u64.to_le_bytes()), (24, &0x20u64.to_le_bytes())]);
    assert_eq!(info(&ev, &d, &le()), "\t=> 0x10\n\t=> 0x20\n");
}

#[test]
fn symbols_and_printk_strings() {
    let mut syms = Symbols::new();
    syms.parse_kallsyms(
        "ffffffff814201c0 T process_timeout\nffffffff81420200 T next_fn\n\
         ffffffffc0001000 t modfn\t[kvm]\nffffffffc0001100 t modfn2\t[kvm]\n",
    );
    syms.parse_printk_formats("0xffffffff8281a5be : \"Start scheduler-tick\"\n");
    let ev = event(&fmt_event(
        "\tfield:void * f;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:const char * s;\toffset:16;\tsize:8;\tsigned:0;\n",
        "\"%ps %pS %pB %pS %s\", REC->f, REC->f, REC->f, 0xffffffffc0001010UL, REC->s",
    ));
    let d =
        payload(99, 24, &[(8, &0xffff_ffff_8142_01c0u64.to_le_bytes()), (16, &0xffff_ffff_8281_a5beu64.to_le_bytes())]);
    let ctx = PrintContext { symbols: Some(&syms), ..le() };
    assert_eq!(
        info(&ev, &d, &ctx),
        // %pB looks up addr - 1 (a return address), here before the first symbol.
        "process_timeout process_timeout+0x0/0x40 0xffffffff814201c0 modfn+0x10/0x100 [kvm] Start scheduler-tick"
    );
    // Without tables: hex addresses, and the string pointer falls back to raw fields.
    assert_eq!(info(&ev, &d, &le()), "f=0xffffffff814201c0 s=0xffffffff8281a5be");
}

#[test]
fn print_event_never_panics_on_garbage() {
    let ev = event(SCHED_SWITCH);
    let tev = event(TIMER_START);
    let mut x: u64 = 42;
    for len in 0..80 {
        let mut d = vec![0u8; len];
        for b in d.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let mut s = String::new();
        ev.print_info(&d, &le(), &mut s);
        tev.print_info(&d, &lte(), &mut s);
    }
}
