//! How fast each reader drains a CPU's ring buffer on this kernel: read, splice and the
//! mapped buffer, on the same pre-filled buffer (tracing stopped, so only the reader works).
//! The pump uses plain reads because they won here; run this on a new kernel to choose again
//! (the VM tier's Debian 6.12 can run it too: `tests/vm/run-in-vm.sh -- target/release/deps/drain-*`).
//!
//!   cargo bench -p wasmprobe-tests --bench drain        (root; prints MB/s and M events/s)

use std::time::Instant;

use traceevent::{Endian, EventHeader, PageHeader, SubBuffer};
use tracefs::{event_format, mapping_supported, CpuReader, Instance, ReadMode, Tracefs};
use wasmprobe::owned::instance_name;
use wasmprobe::session::parse_id;

const CALLS: usize = 120_000;
const RUNS: usize = 5;

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("drain benchmark: needs root");
        return;
    }
    let t = Tracefs::open().expect("tracefs");
    let top = Instance::top(&t);
    let hdr = PageHeader::parse(&top.read_file("events/header_page").unwrap(), Endian::native()).unwrap();
    let ev = EventHeader::parse(&top.read_file("events/header_event").unwrap()).unwrap();
    let id = parse_id(&event_format(&t, "syscalls", "sys_enter_getppid").unwrap()).unwrap();
    let mut set = nix::sched::CpuSet::new();
    set.set(0).unwrap();
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).expect("pin to CPU 0");
    let probe = Instance::create(&t, &instance_name("drain")).unwrap();
    let mut modes = vec![ReadMode::Read, ReadMode::Splice];
    if mapping_supported(&probe) {
        modes.push(ReadMode::Mmap);
    }
    drop(probe);
    println!("kernel {}", nix::sys::utsname::uname().unwrap().release().to_string_lossy());
    println!("{:<7} {:>10} {:>12} {:>10}", "reader", "events", "MB/s", "M ev/s");
    for mode in modes {
        let mut rates = Vec::new();
        let mut evs = 0;
        for _ in 0..RUNS {
            let inst = Instance::create(&t, &instance_name("drain")).unwrap();
            inst.set_buffer_size_kb(8192, None).unwrap();
            inst.event_enable(Some("syscalls"), Some("sys_enter_getppid")).unwrap();
            for _ in 0..CALLS {
                // SAFETY: a syscall without arguments.
                unsafe { libc::syscall(libc::SYS_getppid) };
            }
            inst.set_tracing_on(false).unwrap();
            let mut reader = CpuReader::open_with(&inst, 0, true, mode).unwrap();
            let mut buf = vec![0u8; reader.subbuf_size()];
            let (mut bytes, mut n) = (0usize, 0usize);
            let start = Instant::now();
            while let Some(chunk) = reader.read_chunk(&mut buf).unwrap() {
                bytes += chunk.len;
                let page = SubBuffer::with_event_header(&buf[..chunk.len], &hdr, &ev).unwrap();
                for rec in page.records() {
                    let rec = rec.unwrap();
                    if rec.payload_offset >= hdr.data_offset + chunk.skip
                        && u16::from_ne_bytes([rec.data[0], rec.data[1]]) == id
                    {
                        n += 1;
                    }
                }
            }
            let s = start.elapsed().as_secs_f64();
            rates.push((bytes as f64 / s / 1e6, n as f64 / s / 1e6));
            evs = n;
        }
        rates.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (mb, me) = rates[RUNS / 2];
        println!("{:<7} {:>10} {:>12.0} {:>10.1}", format!("{mode:?}").to_lowercase(), evs, mb, me);
    }
}
