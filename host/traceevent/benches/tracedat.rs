//! Throughput over a real trace.dat (record it with `benches/record-big.sh`):
//!
//! `cargo bench -p traceevent --bench tracedat -- FILE [iter|fields|text]...`
//!
//! - `iter`: the records of all CPUs merged by timestamp, nothing decoded.
//! - `fields`: + the event format of each record and every numeric field read (typed decode,
//!   no text; what libtraceevent's `tep_read_number_field` loop does in the peer baseline).
//! - `text`: + libtraceevent-dialect text of each record (what `trace-cmd report` prints after
//!   the event name), into a buffer that is thrown away.
//!
//! Prints records, process CPU seconds (user + system, from /proc/self/stat) and records per
//! CPU-second for each mode. Without a FILE it says so and exits 0 (so `cargo bench` passes).

use std::hint::black_box;
use std::time::Instant;

use traceevent::{Dialect, EventFormats, FieldFlags, TraceDat};

/// User + system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at its closing ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<i64> = rest.split_whitespace().skip(1).map(|x| x.parse().unwrap_or(0)).collect();
    // utime and stime are fields 14 and 15 of the line: 10 and 11 after the state (field 3).
    let ticks = f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0);
    ticks as f64 / 100.0
}

fn formats_of(dat: &TraceDat<std::fs::File>) -> EventFormats {
    dat.event_formats(Dialect::LibTraceEvent).expect("the file's formats")
}

fn run(path: &str, mode: &str) {
    let file = std::fs::File::open(path).expect("open trace.dat");
    let dat = TraceDat::open(file).expect("a trace.dat");
    let formats = formats_of(&dat);
    let (c0, t0) = (cpu_seconds(), Instant::now());
    let mut recs = dat.records(0).expect("records");
    let (mut n, mut sink) = (0u64, 0u64);
    let mut text = String::with_capacity(4096);
    while let Some(r) = recs.next_record() {
        let r = r.expect("record");
        n += 1;
        match mode {
            "iter" => sink = sink.wrapping_add(r.ts ^ r.data.len() as u64),
            "fields" => {
                let Some(ev) = formats.for_record(r.data) else { continue };
                for f in ev.all_fields() {
                    if f.flags.contains(FieldFlags::ARRAY) || f.is_dynamic() {
                        sink = sink.wrapping_add(f.size as u64);
                    } else if let Some(v) = f.layout().read_u64(r.data) {
                        sink = sink.wrapping_add(v);
                    }
                }
            }
            _ => {
                text.clear();
                formats.print_info(r.data, &mut text);
                sink = sink.wrapping_add(text.len() as u64);
            }
        }
    }
    black_box(sink);
    let (cpu, wall) = (cpu_seconds() - c0, t0.elapsed().as_secs_f64());
    println!(
        "{mode:>6}: {n} records, {cpu:.2} CPU-s ({wall:.2} s wall): {:.2} M records/CPU-s",
        n as f64 / cpu.max(0.01) / 1e6
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let Some(path) = args.first() else {
        println!("tracedat bench: no trace.dat given (cargo bench -p traceevent --bench tracedat -- FILE); skipped");
        return;
    };
    let modes: Vec<&str> =
        if args.len() > 1 { args[1..].iter().map(String::as_str).collect() } else { vec!["iter", "fields", "text"] };
    for m in modes {
        run(path, m);
    }
}
