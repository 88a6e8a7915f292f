//! The entry points of the fuzz targets, one function per target: `cargo fuzz run T` feeds
//! libFuzzer's inputs to them (`fuzz_targets/T.rs`), and `tests/replay.rs` feeds them every
//! saved input on stable Rust, so an input that once broke a parser stays a test. Each must
//! never panic, loop or allocate without bound, whatever the bytes.

use traceevent::{Dialect, Endian, EventFormat, EventFormats, PageHeader, PrintContext, SubBuffer, TraceDat};

/// Format-file parsing and print-fmt compilation in both dialects: the input as a format
/// file, then a few payloads printed with it (zeros, all-ones, the input's own bytes, and
/// each cut in half).
pub fn format(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(ev) = EventFormat::parse("fuzz", text, Endian::Little) else { return };
    let size = ev.all_fields().map(|f| f.offset.saturating_add(f.size)).max().unwrap_or(0).min(4096);
    let payloads = [vec![0u8; size], vec![0xffu8; size], data.iter().copied().cycle().take(size).collect()];
    let mut out = String::new();
    for dialect in [Dialect::Kernel, Dialect::LibTraceEvent] {
        let ctx = PrintContext { dialect, ..PrintContext::default() };
        for p in &payloads {
            out.clear();
            ev.print_info(p, &ctx, &mut out);
            ev.print_info(&p[..p.len() / 2], &ctx, &mut out);
        }
    }
}

/// The real formats `subbuf` decodes records against.
const FORMATS: [(&str, &str); 3] = [
    ("sched", include_str!("../../tests/data/sched_switch.format")),
    ("timer", include_str!("../corpus_formats/timer_start.format")),
    ("syscalls", include_str!("../corpus_formats/sys_enter_openat.format")),
];

/// Sub-buffer parsing and record printing: a selector byte (bit 0: page size from the input
/// instead of 4096; bit 1: libtraceevent's dialect) and a ring-buffer page of a 64-bit
/// little-endian kernel, each record decoded against a few real formats.
pub fn subbuf(data: &[u8]) {
    let Some((&sel, page)) = data.split_first() else { return };
    let size = if sel & 1 == 0 { 4096 } else { page.len().max(16) };
    let Ok(header) = PageHeader::standard(8, Endian::Little, size) else { return };
    let mut formats = EventFormats::new(header.clone());
    for (sys, text) in FORMATS {
        let _ = formats.add_format(sys, text);
    }
    formats.set_dialect(if sel & 2 == 0 { Dialect::Kernel } else { Dialect::LibTraceEvent });
    let Ok(sb) = SubBuffer::new(page, &header) else { return };
    let mut out = String::new();
    for rec in sb.records() {
        let Ok(rec) = rec else { break };
        out.clear();
        formats.print_info(rec.data, &mut out);
        formats.note_record(rec.data);
    }
}

/// trace.dat reading (v6 and v7, compressed sections and chunks): the input as a file, and
/// the first 100,000 records of its first buffer printed.
pub fn tracedat(data: &[u8]) {
    let Ok(dat) = TraceDat::open(data.to_vec()) else { return };
    let Ok(header) = dat.page_header() else { return };
    let mut formats = EventFormats::new(header);
    formats.set_dialect(Dialect::LibTraceEvent);
    for (sys, f) in &dat.meta.event_formats {
        let _ = formats.add_format(sys, f);
    }
    formats.parse_kallsyms(&dat.meta.kallsyms);
    // `trace-cmd report`'s lines, with texts reused for records of the same bytes and
    // without: the same text, whatever the records.
    let lines = |memo: bool| -> Option<Vec<u8>> {
        let mut report = traceevent::Report::new(&dat).ok()?;
        report.set_memo(memo);
        let mut out = Vec::new();
        // A damaged page ends the lines where it is, the same place with either.
        while out.len() < 8 << 20 && report.fill(&mut out, 1 << 16).is_ok_and(|n| n > 0) {}
        Some(out)
    };
    assert_eq!(lines(true), lines(false), "a reused text differs from the record's own");
    let Ok(mut recs) = dat.records(0) else { return };
    let mut out = String::new();
    let mut n = 0;
    while let Some(r) = recs.next_record() {
        let Ok(r) = r else { break };
        out.clear();
        formats.print_info(r.data, &mut out);
        n += 1;
        if n > 100_000 {
            break;
        }
    }
}

/// The targets by name, as `cargo fuzz` and the corpus directories name them.
pub const TARGETS: [(&str, fn(&[u8])); 3] = [("format", format), ("subbuf", subbuf), ("tracedat", tracedat)];
