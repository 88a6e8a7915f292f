//! `trace-cmd report` of a trace.dat through traceevent alone (what `wasmprobe report`
//! does, without the rest of wasmprobe): for profiling the text layer.
//!   cargo run --release -p traceevent --example report -- FILE > /dev/null

use std::io::Write;

fn main() {
    let path = std::env::args().nth(1).expect("usage: report FILE");
    let dat = traceevent::TraceDat::open(std::fs::File::open(path).expect("open")).expect("trace.dat");
    let mut report = traceevent::Report::new(&dat).expect("report");
    let mut out = std::io::stdout().lock();
    let mut buf = Vec::with_capacity(1 << 17);
    loop {
        buf.clear();
        report.fill(&mut buf, 1 << 16).expect("read");
        if buf.is_empty() {
            break;
        }
        out.write_all(&buf).expect("write");
    }
}
