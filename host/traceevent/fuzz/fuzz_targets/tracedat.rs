//! trace.dat reading (v6 and v7, compressed sections and chunks): arbitrary bytes as a file,
//! every record of the first buffer printed. Must never panic or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use traceevent::{Dialect, EventFormats, TraceDat};

fuzz_target!(|data: &[u8]| {
    let Ok(dat) = TraceDat::open(data.to_vec()) else { return };
    let Ok(header) = dat.page_header() else { return };
    let mut formats = EventFormats::new(header);
    formats.set_dialect(Dialect::LibTraceEvent);
    for (sys, f) in &dat.meta.event_formats {
        let _ = formats.add_format(sys, f);
    }
    formats.parse_kallsyms(&dat.meta.kallsyms);
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
});
