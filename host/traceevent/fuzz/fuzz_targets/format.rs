//! Format-file parsing and print-fmt compilation in both dialects: arbitrary text as a format
//! file, then a few payloads printed with it. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use traceevent::{Dialect, Endian, EventFormat, PrintContext};

fuzz_target!(|data: &[u8]| {
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
});
