//! The lines of `trace-cmd report`: `cpus=N`, then per record
//! `COMM-PID [CPU] SECS.USECS: EVENT: INFO`, merged across CPUs by timestamp, with
//! libtraceevent's text for each event (its plugins included, see
//! [`Dialect::LibTraceEvent`]), `CPU:N [K EVENTS DROPPED]` before a record that follows lost
//! events, and the comms the sched plugin learns from `sched_switch` records.

use std::io::Write as _;

use crate::dat::{DatRecords, ReadAt, TraceDat};
use crate::error::Result;
use crate::format::{EventFormat, EventFormats};
use crate::subbuf::{common_pid, MissedEvents};
use crate::text::libtraceevent::InfoKey;
use crate::text::memo::{InfoMemo, Probe};
use crate::text::number::DEC_PAIRS;
use crate::text::{Dialect, ShortText};

/// How `trace-cmd report` prints timestamps: microseconds for the clocks it knows to count
/// nanoseconds, the raw count otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeFormat {
    /// ` SECS.USECS:` (rounded to the microsecond).
    Usecs,
    /// `SSSSS.NNNNNNNNNNNN:`: trace-cmd's `%12d` on a raw counter.
    Raw,
}

impl TimeFormat {
    /// The format `trace-cmd report` uses for a trace clock.
    pub fn for_clock(clock: &str) -> Self {
        let usecs = matches!(clock, "local" | "global" | "uptime" | "perf" | "tai" | "x86-tsc-nsec" | "tsc2nsec")
            || clock.starts_with("mono");
        if usecs {
            TimeFormat::Usecs
        } else {
            TimeFormat::Raw
        }
    }
}

/// Formats report lines into bytes, keeping the pieces that repeat from record to record:
/// each CPU's `COMM-PID [CPU]` (until the pid or the known comms change), the seconds of the
/// timestamp and each event's padded name.
#[derive(Debug)]
pub struct LineFormatter {
    time: TimeFormat,
    /// Recent `COMM-PID [CPU]` prefixes, [`PREFIX_SLOTS`] of them by (CPU, pid): each with
    /// the CPU, pid and [`EventFormats::comm_generation`] it was made for. A CPU switching
    /// between a few tasks finds each task's prefix made before.
    prefixes: Vec<(u32, i32, u64, Snippet)>,
    /// The whole seconds of the last timestamp and their text, ` %5lu.`.
    secs: (u64, Snippet),
    /// By event id: ` NAME: ` padded to 20 columns (empty until first needed).
    labels: Vec<Snippet>,
    scratch: Vec<u8>,
    /// Info texts printed before, by record bytes.
    memo: InfoMemo,
    /// By format index: which record bytes its info text depends on.
    keys: Vec<KeyOf>,
    /// Whether [`InfoMemo`] is used.
    memo_on: bool,
    /// The [`EventFormats::text_generation`] that `memo` and `keys` hold texts of.
    text_generation: u64,
}

/// [`EventFormats::info_key`] of a format, asked once.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyOf {
    Unknown,
    /// Not memoized.
    None,
    Some(InfoKey),
}

/// How many prefixes [`LineFormatter`] keeps (a power of two).
const PREFIX_SLOTS: usize = 256;

/// A piece of text appended to nearly every line (see [`ShortText`]).
type Snippet = ShortText<48>;

impl LineFormatter {
    /// A formatter printing timestamps as `time` says.
    pub fn new(time: TimeFormat) -> Self {
        LineFormatter {
            time,
            prefixes: Vec::new(),
            secs: (u64::MAX, Snippet::default()),
            labels: Vec::new(),
            scratch: Vec::new(),
            memo: InfoMemo::default(),
            keys: Vec::new(),
            memo_on: true,
            text_generation: 0,
        }
    }

    /// Appends one report line (without newline) for a record whose format is `ev` (what
    /// `formats.for_record(data)` gives) to `out`. Allocates only the first time a CPU, a
    /// pid or an event is seen, and by growing `out`.
    pub fn line(
        &mut self,
        formats: &EventFormats,
        ev: Option<&EventFormat>,
        cpu: u32,
        ts: u64,
        data: &[u8],
        out: &mut Vec<u8>,
    ) {
        let at = ev.and_then(|ev| formats.index_of(ev.id));
        self.line_at(formats, at, cpu, ts, data, out);
    }

    /// [`LineFormatter::line`] for the format at `at` in `formats` (what
    /// `EventFormats::index_of_record` gave).
    fn line_at(
        &mut self,
        formats: &EventFormats,
        at: Option<usize>,
        cpu: u32,
        ts: u64,
        data: &[u8],
        out: &mut Vec<u8>,
    ) {
        let Some(at) = at else {
            // libtraceevent prints this for each of the three parts of the line.
            let _ = write!(out, "[UNKNOWN EVENT][UNKNOWN EVENT] (NULL): {:14}[UNKNOWN EVENT]", "");
            return;
        };
        let ev = formats.format_at(at);
        let (probe, key) = self.probe_info(formats, at, data);
        // In the trace's byte order, which need not be ours.
        let pid = common_pid(data, formats.endian()).unwrap_or(0);
        self.append_prefix(formats, cpu, pid, out);
        match self.time {
            TimeFormat::Usecs => {
                let usecs = (ts + 500) / 1000;
                let secs = usecs / 1_000_000;
                if self.secs.0 != secs {
                    self.scratch.clear();
                    let _ = write!(self.scratch, " {secs:5}.");
                    self.secs.1.set(&self.scratch);
                    self.secs.0 = secs;
                }
                self.secs.1.append_to(out);
                let frac = (usecs % 1_000_000) as usize;
                let (hi, mid, lo) = (frac / 10_000, frac / 100 % 100, frac % 100);
                out.extend_from_slice(&[
                    DEC_PAIRS[2 * hi],
                    DEC_PAIRS[2 * hi + 1],
                    DEC_PAIRS[2 * mid],
                    DEC_PAIRS[2 * mid + 1],
                    DEC_PAIRS[2 * lo],
                    DEC_PAIRS[2 * lo + 1],
                    b':',
                ]);
            }
            TimeFormat::Raw => {
                let p10 = 1_000_000_000_000u64;
                let _ = write!(out, "{:5}.{:012}:", ts / p10, ts % p10);
            }
        }
        self.print_info(formats, ev, at, data, (probe, key), out);
    }

    /// Starts memo lookup of a record of the format at `at` (see [`InfoMemo`]): the probe,
    /// and the record bytes it was keyed on.
    #[inline]
    fn probe_info<'d>(&mut self, formats: &EventFormats, at: usize, data: &'d [u8]) -> (Probe, &'d [u8]) {
        if !self.memo_on {
            return (Probe::Skip, &[]);
        }
        if formats.text_generation() != self.text_generation {
            // New symbols, dialect or formats (a live stream may add them): start over.
            self.memo = InfoMemo::default();
            self.keys.clear();
            self.text_generation = formats.text_generation();
        }
        if self.keys.len() <= at {
            self.keys.resize(at + 1, KeyOf::Unknown);
        }
        if self.keys[at] == KeyOf::Unknown {
            self.keys[at] = formats.info_key(at).map_or(KeyOf::None, KeyOf::Some);
        }
        match &self.keys[at] {
            KeyOf::Some(k) => match k.of(data, formats.endian()) {
                Some(key) => (self.memo.probe(at, key), key),
                None => (Probe::Skip, &[]),
            },
            _ => (Probe::Skip, &[]),
        }
    }

    /// Appends the label and info text of a record of the format at `at` (`ev`), less one trailing newline
    /// (trace-cmd drops it): a copy of the text printed before for the same bytes where that
    /// is known to be the same text.
    #[inline]
    fn print_info(
        &mut self,
        formats: &EventFormats,
        ev: &EventFormat,
        at: usize,
        data: &[u8],
        (probe, key): (Probe, &[u8]),
        out: &mut Vec<u8>,
    ) {
        let Probe::Look { hash, slot } = probe else {
            self.append_label(ev, out);
            formats.print_at(at, data, out);
            if out.ends_with(b"\n") {
                out.pop();
            }
            return;
        };
        // Kept with the event's label (the format is part of the key) and without the
        // newline: one copy.
        if self.memo.take(at, hash, &slot, key, out) {
            return;
        }
        let start = out.len();
        self.append_label(ev, out);
        formats.print_at(at, data, out);
        if out.ends_with(b"\n") {
            out.pop();
        }
        self.memo.insert(at, hash, key, &out[start.min(out.len())..]);
    }

    /// Appends `%16s-%-5d [%03d]` for this CPU's record of `pid`.
    fn append_prefix(&mut self, formats: &EventFormats, cpu: u32, pid: i32, out: &mut Vec<u8>) {
        if self.prefixes.is_empty() {
            self.prefixes.resize(PREFIX_SLOTS, (0, 0, u64::MAX, Snippet::default()));
        }
        let generation = formats.comm_generation();
        // The top bits of a multiplicative hash of the pid, mixed with the CPU.
        let slot = ((pid as u32).wrapping_mul(0x9e37_79b1) >> 24 ^ cpu) as usize & (PREFIX_SLOTS - 1);
        let (cached_cpu, cached_pid, cached_generation, text) = &mut self.prefixes[slot];
        if (*cached_cpu, *cached_pid, *cached_generation) != (cpu, pid, generation) {
            let comm = formats.comm(pid);
            let t = &mut self.scratch;
            t.clear();
            t.resize(16usize.saturating_sub(comm.len()), b' ');
            t.extend_from_slice(comm.as_bytes());
            // `-%-5d [%03d]`, without core::fmt: on a CPU switching tasks the prefix changes
            // with nearly every sched_switch.
            t.push(b'-');
            let at = t.len();
            crate::text::number::dec_i64(t, i64::from(pid));
            let pad = 5usize.saturating_sub(t.len() - at);
            t.extend_from_slice(&b"     "[..pad]);
            t.extend_from_slice(b" [");
            crate::text::number::write_plain_int(t, u64::from(cpu), 8, b'u', true, 3);
            t.push(b']');
            text.set(t);
            (*cached_cpu, *cached_pid, *cached_generation) = (cpu, pid, generation);
        }
        text.append_to(out);
    }

    /// Appends ` NAME: ` padded to 20 columns.
    fn append_label(&mut self, ev: &EventFormat, out: &mut Vec<u8>) {
        let id = ev.id as usize;
        if self.labels.len() <= id {
            self.labels.resize(id + 1, Snippet::default());
        }
        let label = &mut self.labels[id];
        if label.is_empty() {
            self.scratch.clear();
            let _ = write!(self.scratch, " {}: {:2$}", ev.name, "", 20usize.saturating_sub(ev.name.len()));
            label.set(&self.scratch);
        }
        label.append_to(out);
    }
}

/// `trace-cmd report` of a trace.dat's first buffer, produced a chunk at a time: the caller
/// writes each chunk wherever it wants (this crate does no output I/O).
pub struct Report<'f, R: ReadAt> {
    formats: EventFormats,
    records: DatRecords<'f, R>,
    lines: LineFormatter,
    /// `cpus=N`, until the first chunk carries it.
    header: Option<u32>,
    /// By format index, once asked: [`EventFormats::comm_pid_fields_at`].
    comm_pids: Vec<Option<CommPidFields>>,
}

impl<'f, R: ReadAt> Report<'f, R> {
    /// Prepares the report of `dat`: parses its formats (printing like libtraceevent) and
    /// opens its first buffer.
    pub fn new(dat: &'f TraceDat<R>) -> Result<Self> {
        let mut formats = dat.event_formats(Dialect::LibTraceEvent)?;
        formats.begin_comm_list();
        let time = TimeFormat::for_clock(dat.meta.buffers.first().map_or("local", |b| b.clock.as_str()));
        Ok(Report {
            formats,
            records: dat.records(0)?,
            lines: LineFormatter::new(time),
            header: Some(dat.meta.cpu_count),
            comm_pids: Vec::new(),
        })
    }

    /// Whether an info text printed before is reused for a record whose bytes it depends on
    /// are the same (on by default; the text is the same either way, which turning it off
    /// lets a test or fuzzer check).
    pub fn set_memo(&mut self, on: bool) {
        self.lines.memo_on = on;
    }

    /// Appends the next lines to `out`, at least `min` bytes of them unless the trace ends
    /// first; returns the number of records they print (0, with nothing appended, at the
    /// end). Reads the file as the records need it.
    pub fn fill(&mut self, out: &mut Vec<u8>, min: usize) -> Result<u64> {
        if let Some(cpus) = self.header.take() {
            let _ = writeln!(out, "cpus={cpus}");
        }
        let start = out.len();
        let mut n = 0;
        while out.len() - start < min {
            let Some(rec) = self.records.next_record() else {
                break;
            };
            let rec = rec?;
            // libtraceevent sees lost events only when the page's first record opens the page.
            if rec.page_offset == 0 {
                match rec.missed_events {
                    MissedEvents::None => {}
                    MissedEvents::Unknown => {
                        let _ = writeln!(out, "CPU:{} [EVENTS DROPPED]", rec.cpu);
                    }
                    MissedEvents::Count(k) => {
                        let _ = writeln!(out, "CPU:{} [{k} EVENTS DROPPED]", rec.cpu);
                    }
                }
            }
            let at = self.formats.index_of_record(rec.data);
            let listing = self.formats.keeps_comm_list();
            if listing && at.is_some() && common_pid(rec.data, self.formats.endian()).unwrap_or(0) != 0 {
                // The line's comm is libtraceevent's first lookup of a pid.
                self.formats.end_comm_list();
            }
            self.lines.line_at(&self.formats, at, rec.cpu, rec.ts, rec.data, out);
            out.push(b'\n');
            if let Some(i) = at {
                if listing || may_register_comms(&mut self.comm_pids, &self.formats, i, rec.data) {
                    self.formats.note_record_at(i, rec.data);
                }
            }
            n += 1;
        }
        Ok(n)
    }
}

/// [`EventFormats::comm_pid_fields_at`]: up to two pid fields, (offset, size).
type CommPidFields = [Option<(usize, usize)>; 2];

/// Whether a record of the format at `i` may teach the sched plugin a comm: it holds a pid
/// that is not 0 and not known yet. Checked from two field reads and a bit (`comm_pids` keeps
/// each format's [`EventFormats::comm_pid_fields_at`]), since nearly every `sched_switch`
/// names only known tasks.
#[inline]
fn may_register_comms(
    comm_pids: &mut Vec<Option<CommPidFields>>,
    formats: &EventFormats,
    i: usize,
    data: &[u8],
) -> bool {
    if comm_pids.len() <= i {
        comm_pids.resize(i + 1, None);
    }
    let fields = *comm_pids[i].get_or_insert_with(|| formats.comm_pid_fields_at(i));
    let endian = formats.endian();
    fields.into_iter().flatten().any(|(off, size)| {
        endian.read_uint(data, off, size).is_some_and(|pid| pid as i32 != 0 && !formats.has_comm(pid as i32))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dat::{write_dat, CpuPages};
    use crate::endian::Endian;
    use crate::format::tests::COMMON;

    /// A trace.dat of version `version` from a machine of byte order `endian`: one CPU, one
    /// page of `tick` events written by pids 4242 (`bee`) and 7 (no comm known).
    fn trace_dat(endian: Endian, version: u32) -> Vec<u8> {
        let tick = format!(
            "name: tick\nID: 7\nformat:\n{COMMON}\n\tfield:int value;\toffset:8;\tsize:4;\tsigned:1;\n\n\
             print fmt: \"value=%d\", REC->value\n"
        );
        let mut meta = crate::dat::tests::meta(endian, vec![("test".into(), tick)], "4242 bee\n");
        meta.version = version;
        let mut page = endian.u64_bytes(1_000_000_000).to_vec();
        page.extend_from_slice(&endian.u64_bytes(3 * 16));
        for (pid, value, delta) in [(4242i32, 5i32, 1000u32), (7, -1, 2_500_000), (4242, 70000, 1)] {
            // type_len 3 (12 bytes of payload) and the time delta, in the page's byte order.
            let word = match endian {
                Endian::Little => 3 | delta << 5,
                Endian::Big => 3 << 27 | delta,
            };
            page.extend_from_slice(&endian.u32_bytes(word));
            page.extend_from_slice(&endian.u16_bytes(7));
            page.extend_from_slice(&[0, 0]);
            page.extend_from_slice(&endian.u32_bytes(pid as u32));
            page.extend_from_slice(&endian.u32_bytes(value as u32));
        }
        page.resize(4096, 0);
        let mut out = std::io::Cursor::new(Vec::new());
        let mut cpus = [CpuPages { cpu: 0, data: &page[..], size: 4096 }];
        write_dat(&mut out, &meta, version, &mut cpus).unwrap();
        out.into_inner()
    }

    fn report(file: Vec<u8>) -> String {
        let dat = TraceDat::open(file).unwrap();
        let mut report = Report::new(&dat).unwrap();
        let mut out = Vec::new();
        while report.fill(&mut out, 1).unwrap() > 0 {}
        String::from_utf8(out).unwrap()
    }

    /// What `trace-cmd report` (3.1.6) prints for [`trace_dat`] of either byte order, v6 or
    /// v7: the files this test writes were checked with it.
    const TRACE_CMD_REPORT: &str = "cpus=1
             bee-4242  [000]     1.000001: tick:                 value=5
           <...>-7     [000]     1.002501: tick:                 value=-1
             bee-4242  [000]     1.002501: tick:                 value=70000
";

    /// A little-endian v6 trace.dat with one event format (id 7, `tick`, own fields `fields`,
    /// print fmt `fmt`) and one CPU's records: (pid, bytes after the 8 common bytes, padded
    /// to a multiple of 4), 1 µs apart.
    fn crafted(fields: &str, fmt: &str, records: &[(i32, &[u8])]) -> Vec<u8> {
        let tick = format!("name: tick\nID: 7\nformat:\n{COMMON}\n{fields}\nprint fmt: {fmt}\n");
        let endian = Endian::Little;
        let meta = crate::dat::tests::meta(endian, vec![("test".into(), tick)], "");
        let mut body = Vec::new();
        for (pid, rest) in records {
            let mut data = vec![7, 0, 0, 0];
            data.extend_from_slice(&pid.to_le_bytes());
            data.extend_from_slice(rest);
            data.resize(data.len().div_ceil(4) * 4, 0);
            let words = (data.len() / 4) as u32;
            body.extend_from_slice(&(words | 1000 << 5).to_le_bytes());
            body.extend_from_slice(&data);
        }
        let mut page = endian.u64_bytes(1_000_000_000).to_vec();
        page.extend_from_slice(&endian.u64_bytes(body.len() as u64));
        page.extend_from_slice(&body);
        page.resize(4096, 0);
        let mut out = std::io::Cursor::new(Vec::new());
        let mut cpus = [CpuPages { cpu: 0, data: &page[..], size: 4096 }];
        write_dat(&mut out, &meta, 6, &mut cpus).unwrap();
        out.into_inner()
    }

    /// The info texts of a report (what follows each `tick: ` label).
    fn infos(file: Vec<u8>) -> Vec<String> {
        report(file).lines().filter_map(|l| l.split_once("tick: ").map(|(_, i)| i.trim_start().to_string())).collect()
    }

    #[test]
    fn records_that_share_their_bytes_past_the_common_fields_but_print_differently_are_not_confused() {
        // A `__data_loc` string pointing into the common fields (the pid's bytes): the same
        // bytes from offset 8 on, different text.
        let loc = (4u32 | 4 << 16).to_le_bytes();
        let (aaa, bbb) = (i32::from_le_bytes(*b"AAA\0"), i32::from_le_bytes(*b"BBB\0"));
        let records: Vec<(i32, &[u8])> = (0..20).map(|i| (if i % 2 == 0 { aaa } else { bbb }, &loc[..])).collect();
        let file = crafted(
            "\tfield:__data_loc char[] s;\toffset:8;\tsize:4;\tsigned:0;\n",
            "\"s=%s\", __get_str(s)",
            &records,
        );
        let got = infos(file);
        assert_eq!(got.len(), 20);
        for (i, t) in got.iter().enumerate() {
            assert_eq!(t, if i % 2 == 0 { "s=AAA" } else { "s=BBB" }, "record {i}");
        }
        // An own field declared over the common pid.
        let records: Vec<(i32, &[u8])> = (0..20).map(|i| (i, &[][..])).collect();
        let file = crafted("\tfield:int v;\toffset:4;\tsize:4;\tsigned:1;\n", "\"v=%d\", REC->v", &records);
        let got = infos(file);
        assert_eq!(got.len(), 20);
        assert!(got.iter().enumerate().all(|(i, t)| *t == format!("v={i}")), "{:?}", &got[..4]);
        // A print fmt that names a common field.
        let records: Vec<(i32, &[u8])> = (0..20).map(|i| (i, &[1u8, 0, 0, 0][..])).collect();
        let file = crafted(
            "\tfield:int v;\toffset:8;\tsize:4;\tsigned:1;\n",
            "\"v=%d pid=%d\", REC->v, REC->common_pid",
            &records,
        );
        assert!(infos(file).iter().enumerate().all(|(i, t)| *t == format!("v=1 pid={i}")));
        // An index taken from the record: `a[i]` with i = -1 reads the word before `a`.
        let records: Vec<(i32, Vec<u8>)> = (0..20)
            .map(|i| {
                let mut rest = u32::MAX.to_le_bytes().to_vec();
                rest.extend_from_slice(&7u32.to_le_bytes());
                (i, rest)
            })
            .collect();
        let records: Vec<(i32, &[u8])> = records.iter().map(|(p, r)| (*p, &r[..])).collect();
        let fields = "\tfield:unsigned int i;\toffset:8;\tsize:4;\tsigned:0;\n\
                      \tfield:unsigned int a[1];\toffset:12;\tsize:4;\tsigned:0;\n";
        let file = crafted(fields, "\"%u\", REC->a[REC->i - 1]", &records);
        let direct = {
            // What the printer gives without any memo: the same format, each record alone.
            let one = |pid: i32, rest: &[u8]| infos(crafted(fields, "\"%u\", REC->a[REC->i - 1]", &[(pid, rest)]));
            records.iter().map(|(p, r)| one(*p, r).remove(0)).collect::<Vec<_>>()
        };
        assert_eq!(infos(file), direct);
    }

    #[test]
    fn a_format_replaced_mid_stream_prints_its_new_text_for_the_same_bytes() {
        let fmt = |text: &str| {
            format!(
                "name: tick\nID: 7\nformat:\n{COMMON}\n\tfield:int v;\toffset:8;\tsize:4;\tsigned:1;\n\n\
                 print fmt: \"{text}=%d\", REC->v\n"
            )
        };
        let mut formats = EventFormats::new(crate::header::PageHeader::standard(8, Endian::Little, 4096).unwrap());
        formats.set_dialect(Dialect::LibTraceEvent);
        formats.add_format("test", &fmt("old")).unwrap();
        let mut record = vec![7, 0, 0, 0, 1, 0, 0, 0];
        record.extend_from_slice(&5i32.to_le_bytes());
        let mut lines = LineFormatter::new(TimeFormat::Usecs);
        let mut line = |formats: &EventFormats| {
            let mut out = Vec::new();
            lines.line(formats, formats.for_record(&record), 0, 1000, &record, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert!(line(&formats).ends_with("old=5"));
        assert!(line(&formats).ends_with("old=5"), "the same text, reused");
        formats.add_format("test", &fmt("new")).unwrap();
        assert!(line(&formats).ends_with("new=5"), "the replaced format's text");
    }

    #[test]
    fn pids_and_values_of_a_big_endian_trace_read_in_its_byte_order() {
        for version in [6, 7] {
            assert_eq!(report(trace_dat(Endian::Big, version)), TRACE_CMD_REPORT, "big-endian v{version}");
            assert_eq!(report(trace_dat(Endian::Little, version)), TRACE_CMD_REPORT, "little-endian v{version}");
        }
    }
}
