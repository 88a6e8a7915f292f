//! Call-stack records: `ftrace:kernel_stack` (the `stacktrace` option or trigger) and
//! `ftrace:user_stack` (the `userstacktrace` option), which follow the event they belong to.
//!
//! Their format files declare `unsigned long caller[8]`, but a kernel stack record holds as
//! many frames as the kernel saved: the record's real length, not the declared array, says
//! how many. Neither the kernel nor trace-cmd prints them with their print fmt:
//!
//! - the kernel's `trace` file ([`crate::Dialect::Kernel`]): `<stack trace>` then one
//!   ` => name` line per frame (` => 0x<hex>` if no symbol, ` => 0` for a zero frame), up to
//!   the end of the record or an all-ones word; `<user stack trace>` then ` =>  <%016x>` per
//!   frame up to the first zero (the `sym-userobj` option off, as by default);
//! - `trace-cmd report` ([`crate::Dialect::LibTraceEvent`], libtraceevent's function plugin):
//!   `<stack trace >` then one `=> name (hex)` line per frame (`=> hex` if kallsyms has no
//!   function there), every word from `caller` to the end of the record until one is -1 (as
//!   a `long`, or in its low 32 bits). Its user stacks print with their print fmt.
//!
//! [`StackFrames`] gives the frames of either record to code that is not printing.

use std::io::Write as _;

use crate::endian::Endian;
use crate::format::EventFormat;
use crate::symbols::Symbols;
use crate::text::sink::PushStr as _;
use crate::text::PrintContext;

/// Which call-stack record an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackKind {
    /// `ftrace:kernel_stack`: kernel return addresses, as many as the record holds.
    Kernel,
    /// `ftrace:user_stack`: user return addresses, a fixed array ended by a zero.
    User,
}

impl StackKind {
    /// The kind of stack records of `system:name`, if it is one.
    pub fn of(system: &str, name: &str) -> Option<StackKind> {
        match (system, name) {
            ("ftrace", "kernel_stack") => Some(StackKind::Kernel),
            ("ftrace", "user_stack") => Some(StackKind::User),
            _ => None,
        }
    }
}

/// The frames of one stack record, outermost last, as the kernel's `trace` file reads them:
/// a kernel stack's words from `caller` to the end of the record until an all-ones word, a
/// user stack's until the first zero.
#[derive(Debug, Clone)]
pub struct StackFrames<'a> {
    kind: StackKind,
    /// The words not read yet.
    rest: &'a [u8],
    /// The long size, 4 or 8.
    long: usize,
    endian: Endian,
}

impl<'a> StackFrames<'a> {
    /// The frames of record payload `data` of `format` (a stack record's format, see
    /// [`StackKind::of`]), with the traced kernel's long size (4 or 8) and byte order.
    /// `None` if `format` is not a stack record's or has no `caller` field.
    pub fn of(format: &EventFormat, data: &'a [u8], long_size: u8, endian: Endian) -> Option<StackFrames<'a>> {
        let kind = StackKind::of(&format.system, &format.name)?;
        let caller = format.field("caller")?;
        Some(StackFrames::at(kind, data, caller.offset, long_size, endian))
    }

    /// The frames of `data` whose first word is at `offset`.
    fn at(kind: StackKind, data: &'a [u8], offset: usize, long_size: u8, endian: Endian) -> StackFrames<'a> {
        let long = if long_size == 4 { 4 } else { 8 };
        StackFrames { kind, rest: data.get(offset..).unwrap_or(&[]), long, endian }
    }

    /// The next whole word of the record, whatever its value.
    fn word(&mut self) -> Option<u64> {
        let (w, rest) = self.rest.split_at_checked(self.long)?;
        self.rest = rest;
        self.endian.read_uint(w, 0, self.long)
    }
}

impl Iterator for StackFrames<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        let w = self.word()?;
        let end = match self.kind {
            StackKind::Kernel => w == u64::MAX >> (64 - 8 * self.long),
            StackKind::User => w == 0,
        };
        if end {
            // Nothing after the end marker is a frame.
            self.rest = &[];
            return None;
        }
        Some(w)
    }
}

/// Appends the kernel's `trace` text of a stack record whose `caller` array starts at
/// `offset` (without the final newline).
pub(crate) fn write_kernel(kind: StackKind, data: &[u8], offset: usize, ctx: &PrintContext, out: &mut Vec<u8>) {
    let frames = StackFrames::at(kind, data, offset, ctx.long_size, ctx.endian);
    match kind {
        StackKind::Kernel => {
            out.push_str("<stack trace>");
            for ip in frames {
                out.push_str("\n => ");
                if ip == 0 {
                    out.push(b'0');
                } else if let Some(s) = ctx.symbols.and_then(|s| s.lookup(ip)) {
                    out.push_str(s.name);
                } else {
                    let _ = write!(out, "0x{ip:08x}");
                }
            }
        }
        StackKind::User => {
            out.push_str("<user stack trace>");
            let width = 2 * usize::from(if ctx.long_size == 4 { 4u8 } else { 8 });
            // The kernel reads at most its FTRACE_STACK_ENTRIES (8) frames.
            for ip in frames.take(8) {
                let _ = write!(out, "\n =>  <{ip:0width$x}>");
            }
        }
    }
}

/// Appends what libtraceevent's handler for `ftrace:kernel_stack` (trace-cmd report) prints
/// for a record whose `caller` array starts at `offset`: `<stack trace >` and one line per
/// word to the end of the record (each line ends with a newline, the last one too).
pub(crate) fn write_trace_cmd_kernel(
    data: &[u8],
    offset: usize,
    long_size: u8,
    endian: Endian,
    symbols: Option<&Symbols>,
    out: &mut Vec<u8>,
) {
    out.push_str("<stack trace >\n");
    let mut words = StackFrames::at(StackKind::Kernel, data, offset, long_size, endian);
    while let Some(addr) = words.word() {
        // -1 as a long, or in the low 32 bits whatever the long size.
        if (long_size == 8 && addr == u64::MAX) || addr as u32 == u32::MAX {
            break;
        }
        match symbols.and_then(|s| s.libtraceevent_function(addr)) {
            Some((name, _)) => {
                let _ = writeln!(out, "=> {name} ({addr:x})");
            }
            None => {
                let _ = writeln!(out, "=> {addr:x}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kernel stack record's payload: header, `size`, then the words.
    fn record(words: &[u64], endian: Endian) -> Vec<u8> {
        let mut d = vec![0u8; 16];
        d[8..12].copy_from_slice(&endian.u32_bytes(words.len() as u32));
        for w in words {
            d.extend_from_slice(&endian.u64_bytes(*w));
        }
        d
    }

    fn symbols() -> Symbols {
        let mut s = Symbols::new();
        s.parse_kallsyms(
            "ffffffff81000100 T do_syscall_64\nffffffff81000200 T entry_SYSCALL_64\nffffffff81000300 T end\n",
        );
        s
    }

    #[test]
    fn trace_cmd_prints_every_word_to_the_end_of_the_record() {
        let syms = symbols();
        // Ten frames, more than the format's caller[8]; one without a symbol; a zero.
        let mut words = vec![0xffff_ffff_8100_0110u64; 8];
        words.extend([0x1234, 0]);
        let d = record(&words, Endian::Little);
        let mut out = Vec::new();
        write_trace_cmd_kernel(&d, 16, 8, Endian::Little, Some(&syms), &mut out);
        let text = String::from_utf8(out).unwrap();
        let want = format!("<stack trace >\n{}=> 1234\n=> 0\n", "=> do_syscall_64 (ffffffff81000110)\n".repeat(8));
        assert_eq!(text, want);
    }

    #[test]
    fn trace_cmd_stops_at_minus_one_as_a_long_or_an_int() {
        for stop in [u64::MAX, 0x1_ffff_ffff] {
            let d = record(&[0xabc, stop, 0xdef], Endian::Little);
            let mut out = Vec::new();
            write_trace_cmd_kernel(&d, 16, 8, Endian::Little, None, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), "<stack trace >\n=> abc\n");
        }
        // A record cut inside a word: the whole words only.
        let mut d = record(&[0xabc, 0xdef], Endian::Big);
        d.truncate(d.len() - 3);
        let mut out = Vec::new();
        write_trace_cmd_kernel(&d, 16, 8, Endian::Big, None, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "<stack trace >\n=> abc\n");
    }

    #[test]
    fn four_byte_longs() {
        // A 32-bit kernel's record: `int size` at 8, `unsigned long caller[]` at 12.
        let mut d = vec![0u8; 12];
        for w in [0xc100_0010u32, 0x20, u32::MAX, 0x30] {
            d.extend_from_slice(&w.to_le_bytes());
        }
        let mut out = Vec::new();
        write_trace_cmd_kernel(&d, 12, 4, Endian::Little, None, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "<stack trace >\n=> c1000010\n=> 20\n");
        let ctx = PrintContext { long_size: 4, ..Default::default() };
        let mut out = Vec::new();
        write_kernel(StackKind::Kernel, &d, 12, &ctx, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "<stack trace>\n => 0xc1000010\n => 0x00000020");
        let mut out = Vec::new();
        write_kernel(StackKind::User, &d, 12, &ctx, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<user stack trace>\n =>  <c1000010>\n =>  <00000020>\n =>  <ffffffff>\n =>  <00000030>"
        );
    }

    #[test]
    fn the_kernel_prints_names_and_user_addresses() {
        let syms = symbols();
        let ctx = PrintContext { symbols: Some(&syms), ..Default::default() };
        let d = record(&[0xffff_ffff_8100_0110, 0xffff_ffff_8100_0200, 0x10, 0, u64::MAX, 0x20], Endian::Little);
        let mut out = Vec::new();
        write_kernel(StackKind::Kernel, &d, 16, &ctx, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<stack trace>\n => do_syscall_64\n => entry_SYSCALL_64\n => 0x00000010\n => 0"
        );
        let d = record(&[0x7f00_0000_1234, 0x55aa, 0, 0x99], Endian::Little);
        let mut out = Vec::new();
        write_kernel(StackKind::User, &d, 16, &ctx, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<user stack trace>\n =>  <00007f0000001234>\n =>  <00000000000055aa>"
        );
    }

    #[test]
    fn frames_of_a_record() {
        let fmt = "name: kernel_stack\nID: 4\nformat:\n\
             \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
             \tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
             \tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
             \tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
             \tfield:int size;\toffset:8;\tsize:4;\tsigned:1;\n\
             \tfield:unsigned long caller[8];\toffset:16;\tsize:64;\tsigned:0;\n\n\
             print fmt: \"\\t=> %ps\\n\", (void *)REC->caller[0]\n";
        let ev = EventFormat::parse("ftrace", fmt, Endian::Little).unwrap();
        let words: Vec<u64> = (1..=12).collect();
        let d = record(&words, Endian::Little);
        let frames: Vec<u64> = StackFrames::of(&ev, &d, 8, Endian::Little).unwrap().collect();
        assert_eq!(frames, words, "all twelve, not the declared eight");
        let other = EventFormat::parse("test", fmt, Endian::Little).unwrap();
        assert!(StackFrames::of(&other, &d, 8, Endian::Little).is_none());
    }

    /// Removes the test's instance (its event disabled first), even when the test fails.
    struct Instance(std::path::PathBuf);

    impl Drop for Instance {
        fn drop(&mut self) {
            for ev in ["syscalls/sys_enter_openat", "sched/sched_switch"] {
                let _ = std::fs::write(self.0.join(format!("events/{ev}/enable")), "0");
            }
            let _ = std::fs::remove_dir(&self.0);
        }
    }

    /// The stack blocks of a per-CPU `trace` text: each `<stack trace>` / `<user stack trace>`
    /// (what follows the timestamp) with the ` => ` lines after it, in order.
    fn kernel_blocks(trace: &str) -> Vec<String> {
        let mut blocks: Vec<String> = Vec::new();
        let mut open = false;
        for line in trace.lines().filter(|l| !l.starts_with('#')) {
            if let Some(b) = line.strip_prefix(" => ").filter(|_| open) {
                let last = blocks.last_mut().unwrap();
                last.push_str("\n => ");
                last.push_str(b);
                continue;
            }
            let info = line.split_once(": ").map_or("", |(_, info)| info);
            open = info.starts_with("<stack trace>") || info.starts_with("<user stack trace>");
            if open {
                blocks.push(info.to_string());
            }
        }
        blocks
    }

    /// Kernel and user stack records captured live print in the kernel dialect exactly as the
    /// kernel's own `trace` file shows them, CPU by CPU.
    #[test]
    fn live_stack_records_print_as_the_kernels_trace_file() {
        use crate::format::EventFormats;
        use crate::header::PageHeader;
        use crate::subbuf::SubBuffer;
        use std::io::Read as _;
        use std::os::unix::fs::OpenOptionsExt as _;

        let t = testkit::require!(root, tracefs).tracefs();
        let dir = t.path().join(format!("instances/wasmprobe-{}-stacktext", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        let inst = Instance(dir.clone());
        let write = |f: &str, v: &str| std::fs::write(dir.join(f), v).unwrap_or_else(|e| panic!("{f}: {e}"));
        write("options/stacktrace", "1");
        write("options/userstacktrace", "1");
        // Context switches have deep kernel stacks (more than the format's caller[8]).
        let events = ["syscalls/sys_enter_openat", "sched/sched_switch"];
        for ev in events {
            write(&format!("events/{ev}/enable"), "1");
        }
        for _ in 0..20 {
            let _ = std::fs::read("/etc/hostname");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        for ev in events {
            write(&format!("events/{ev}/enable"), "0");
        }

        // Large reads: tracefs's header_page ends after a short first read.
        let read = |f: &str| {
            let mut h = std::fs::File::open(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
            let (mut text, mut buf) = (Vec::new(), vec![0u8; 1 << 20]);
            loop {
                match h.read(&mut buf).unwrap_or_else(|e| panic!("{f}: {e}")) {
                    0 => break String::from_utf8(text).unwrap(),
                    n => text.extend_from_slice(&buf[..n]),
                }
            }
        };
        let header = PageHeader::parse(&read("events/header_page"), Endian::native()).unwrap();
        let mut formats = EventFormats::new(header);
        for ev in ["ftrace/kernel_stack", "ftrace/user_stack"].iter().chain(&events) {
            let sys = ev.split('/').next().unwrap();
            formats.add_format(sys, &read(&format!("events/{ev}/format"))).unwrap();
        }
        formats.parse_kallsyms(&std::fs::read_to_string("/proc/kallsyms").unwrap());
        let page_size = read("buffer_subbuf_size_kb").trim().parse::<usize>().unwrap_or(4) * 1024;
        let cpus = std::fs::read_dir(dir.join("per_cpu")).unwrap().count();
        let (mut kernel_stacks, mut user_stacks, mut deepest) = (0, 0, 0);
        for cpu in 0..cpus {
            let want = kernel_blocks(&read(&format!("per_cpu/cpu{cpu}/trace")));
            // Then the same records, consumed as pages (O_NONBLOCK: an empty buffer ends it).
            let mut raw = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(0o4000)
                .open(dir.join(format!("per_cpu/cpu{cpu}/trace_pipe_raw")))
                .unwrap();
            let mut got = Vec::new();
            let mut page = vec![0u8; page_size];
            while let Ok(n) = raw.read(&mut page) {
                if n == 0 {
                    break;
                }
                let sb = SubBuffer::new(&page[..n], formats.page_header()).unwrap();
                for r in sb.records() {
                    let r = r.unwrap();
                    let ev = formats.for_record(r.data).unwrap();
                    if StackKind::of(&ev.system, &ev.name).is_some() {
                        let mut text = String::new();
                        formats.print_info(r.data, &mut text);
                        got.push(text);
                    }
                }
            }
            deepest = got.iter().map(|b| b.matches(" => ").count()).max().unwrap_or(0).max(deepest);
            kernel_stacks += got.iter().filter(|b| b.starts_with("<stack trace>")).count();
            user_stacks += got.iter().filter(|b| b.starts_with("<user stack trace>")).count();
            assert_eq!(got, want, "CPU {cpu}");
        }
        drop(inst);
        assert!(kernel_stacks >= 20 && user_stacks >= 20, "{kernel_stacks} kernel, {user_stacks} user stacks");
        assert!(deepest > 8, "no stack deeper than 8 frames ({deepest})");
    }
}
