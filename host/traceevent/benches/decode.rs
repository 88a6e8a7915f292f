//! Throughput of the hot path: sub-buffer → records (and → field reads, → print text).
//! Run: `cargo bench -p traceevent` (prints records/s; no external harness).

use std::hint::black_box;
use std::time::Instant;

use traceevent::{Endian, EventFormat, PageHeader, PrintContext, Printer, SubBuffer};

/// A 4 KiB page of 64-byte sched_switch records (type_len 16) with small deltas; the n-th
/// record's `prev_pid` (at `pid_offset` in the payload) is n.
fn page(pid_offset: usize) -> (Vec<u8>, usize) {
    let mut p = vec![0u8; 4096];
    p[0..8].copy_from_slice(&1_000_000u64.to_le_bytes());
    let mut at = 16;
    let mut n = 0;
    while at + 4 + 64 <= 4096 {
        let w: u32 = 16 | (3 << 5); // type_len 16 (64-byte payload), delta 3
        p[at..at + 4].copy_from_slice(&w.to_le_bytes());
        p[at + 4..at + 6].copy_from_slice(&372u16.to_le_bytes());
        p[at + 4 + 8..at + 4 + 13].copy_from_slice(b"bash\0");
        p[at + 4 + pid_offset..at + 4 + pid_offset + 4].copy_from_slice(&(n as i32).to_le_bytes());
        at += 4 + 64;
        n += 1;
    }
    p[8..16].copy_from_slice(&((at - 16) as u64).to_le_bytes());
    (p, n)
}

fn main() {
    let hdr = PageHeader::standard(8, Endian::Little, 4096).unwrap();
    let fmt = include_str!("../tests/data/sched_switch.format");
    let ev = EventFormat::parse("sched", fmt, Endian::Little).unwrap();
    let pid = ev.field("prev_pid").unwrap().layout();
    let (p, per_page) = page(pid.offset);
    let pages = 200_000;
    let t = Instant::now();
    let mut sum = 0u64;
    for _ in 0..pages {
        let sb = SubBuffer::new(black_box(&p), &hdr).unwrap();
        for r in sb.records() {
            let r = r.unwrap();
            sum = sum.wrapping_add(r.ts ^ r.data.len() as u64);
        }
    }
    let dt = t.elapsed().as_secs_f64();
    let n = (pages * per_page) as f64;
    println!("decode: {:.1} M records/s ({sum})", n / dt / 1e6);

    let t = Instant::now();
    let mut sum = 0u64;
    for _ in 0..pages {
        let sb = SubBuffer::new(black_box(&p), &hdr).unwrap();
        for r in sb.records() {
            sum = sum.wrapping_add(pid.read_u64(r.unwrap().data).unwrap_or(0));
        }
    }
    let dt = t.elapsed().as_secs_f64();
    // Each page's prev_pids are 0..per_page: the sum says every record was read.
    assert_eq!(sum, (pages * per_page * (per_page - 1) / 2) as u64);
    println!("decode + field read: {:.1} M records/s ({sum})", n / dt / 1e6);

    let ctx = PrintContext::default();
    let printer = Printer::compile(&ev, &ctx);
    let mut out = Vec::with_capacity(256);
    let t = Instant::now();
    let print_pages = pages / 20;
    for _ in 0..print_pages {
        let sb = SubBuffer::new(black_box(&p), &hdr).unwrap();
        for r in sb.records() {
            out.clear();
            printer.print(&ev, r.unwrap().data, &ctx, &mut out);
        }
    }
    let dt = t.elapsed().as_secs_f64();
    let n = (print_pages * per_page) as f64;
    println!("decode + print sched_switch: {:.2} M records/s ({})", n / dt / 1e6, String::from_utf8_lossy(&out));
}
