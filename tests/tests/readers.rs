//! The per-CPU readers against this kernel: plain read, splice and the mapped ring buffer each
//! hand over exactly the events written, none twice, none lost, also when a page is read while
//! the kernel is still filling it.

use traceevent::{Endian, EventHeader, PageHeader, SubBuffer};
use tracefs::{event_format, mapping_supported, CpuReader, Instance, ReadMode};
use wasmprobe::owned::instance_name;
use wasmprobe::session::parse_id;
use wasmprobe_tests::live_tracefs;

fn pin_to_cpu0() {
    let mut set = nix::sched::CpuSet::new();
    set.set(0).unwrap();
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).expect("pin to CPU 0");
}

fn getppid_n(n: usize) {
    for _ in 0..n {
        // SAFETY: a syscall without arguments or side effects.
        unsafe { libc::syscall(libc::SYS_getppid) };
    }
}

/// Reads CPU 0 until it is empty; counts records of event `id` from thread `tid`.
fn drain(reader: &mut CpuReader, hdr: &PageHeader, ev: &EventHeader, id: u16, tid: i32) -> usize {
    let mut buf = vec![0u8; reader.subbuf_size()];
    let mut n = 0;
    while let Some(chunk) = reader.read_chunk(&mut buf).unwrap() {
        let page = SubBuffer::with_event_header(&buf[..chunk.len], hdr, ev).unwrap();
        for rec in page.records() {
            let rec = rec.unwrap();
            if rec.payload_offset < hdr.data_offset + chunk.skip {
                continue;
            }
            let d = rec.data;
            if u16::from_ne_bytes([d[0], d[1]]) == id && i32::from_ne_bytes([d[4], d[5], d[6], d[7]]) == tid {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn every_read_mode_hands_over_each_event_once() {
    let Some(t) = live_tracefs("every_read_mode") else { return };
    let top = Instance::top(&t);
    let hdr = PageHeader::parse(&top.read_file("events/header_page").unwrap(), Endian::native()).unwrap();
    let ev = EventHeader::parse(&top.read_file("events/header_event").unwrap()).unwrap();
    let id = parse_id(&event_format(&t, "syscalls", "sys_enter_getppid").unwrap()).unwrap();
    let mut modes = vec![ReadMode::Read, ReadMode::Splice];
    let inst = Instance::create(&t, &instance_name("readers")).unwrap();
    if mapping_supported(&inst) {
        modes.push(ReadMode::Mmap);
    } else if std::env::var_os("KP_IN_VM").is_some() {
        panic!("Debian's 6.12 kernel in the VM can map the ring buffer, but mapping failed");
    } else {
        eprintln!("note: this kernel cannot map the ring buffer; the VM tier covers Mmap");
    }
    drop(inst);
    // A thread of its own, pinned to CPU 0, so the test harness's other threads stay where they are.
    std::thread::scope(|s| {
        s.spawn(|| {
            pin_to_cpu0();
            // SAFETY: as above.
            let tid = unsafe { libc::gettid() };
            for mode in modes {
                let inst = Instance::create(&t, &instance_name(&format!("readers-{mode:?}"))).unwrap();
                inst.set_buffer_size_kb(512, None).unwrap();
                let mut reader = CpuReader::open_with(&inst, 0, true, mode).unwrap();
                assert_eq!(reader.mode(), mode);
                inst.event_enable(Some("syscalls"), Some("sys_enter_getppid")).unwrap();
                // A partly filled page first, read while the kernel may still write to it...
                getppid_n(37);
                let mut got = drain(&mut reader, &hdr, &ev, id, tid);
                // ...then many pages.
                getppid_n(3000);
                got += drain(&mut reader, &hdr, &ev, id, tid);
                getppid_n(5);
                inst.event_disable(None, None).unwrap();
                got += drain(&mut reader, &hdr, &ev, id, tid);
                assert_eq!(got, 3042, "{mode:?}: every getppid exactly once");
            }
        });
    });
}

#[test]
fn a_blocked_reader_is_woken_by_stop() {
    let Some(t) = live_tracefs("blocked_reader_stop") else { return };
    let inst = Instance::create(&t, &instance_name("stop")).unwrap();
    // Nothing is enabled in this instance: a blocking read waits until it is woken.
    let mut reader = CpuReader::open(&inst, 0, false).unwrap();
    let stopper = reader.stopper().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let mut buf = vec![0u8; reader.subbuf_size()];
        let r = reader.read_subbuf(&mut buf);
        tx.send(()).unwrap();
        r.map(|n| n == 0)
    });
    assert!(rx.recv_timeout(std::time::Duration::from_millis(300)).is_err(), "the read must block while idle");
    stopper.stop().unwrap();
    rx.recv_timeout(std::time::Duration::from_secs(5)).expect("stop wakes the blocked read");
    assert!(h.join().unwrap().unwrap(), "a woken read returns nothing");
}
