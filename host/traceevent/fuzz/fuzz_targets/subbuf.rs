//! Sub-buffer parsing and record printing: arbitrary bytes as a ring-buffer page of a
//! 64-bit little-endian kernel, each record decoded against a few real formats, in both
//! dialects. Must never panic, loop or read out of bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use traceevent::{Dialect, Endian, EventFormats, PageHeader, SubBuffer};

const FORMATS: [(&str, &str); 3] = [
    ("sched", include_str!("../../tests/data/sched_switch.format")),
    ("timer", include_str!("../corpus_formats/timer_start.format")),
    ("syscalls", include_str!("../corpus_formats/sys_enter_openat.format")),
];

fuzz_target!(|data: &[u8]| {
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
});
