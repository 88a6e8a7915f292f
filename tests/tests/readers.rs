//! The per-CPU readers against this kernel: plain read, splice and the mapped ring buffer (where
//! the kernel can map it) each hand over exactly the events written, none twice, none lost, also
//! when a page is read while the kernel is still filling it; a blocking reader is stopped at
//! once on every kernel. The VM tier runs these in Debian's 6.12 and 6.1 kernels too.

use std::time::{Duration, Instant};

use testkit::require;
use traceevent::{Endian, EventHeader, PageHeader, SubBuffer};
use tracefs::{event_format, CpuReader, Errno, Instance, ReadMode};
use wasmprobe::owned::instance_name;
use wasmprobe::session::parse_id;

/// The running kernel's release (`uname -r`) and whether it is at least `major.minor`.
fn kernel_at_least(major: u32, minor: u32) -> (String, bool) {
    let release = nix::sys::utsname::uname().expect("uname").release().to_string_lossy().into_owned();
    let mut nums = release.split(|c: char| !c.is_ascii_digit()).map(|n| n.parse::<u32>().unwrap_or(0));
    let version = (nums.next().unwrap_or(0), nums.next().unwrap_or(0));
    (release, version >= (major, minor))
}

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
    let t = require!(root, tracefs).tracefs();
    let top = Instance::top(&t);
    let hdr = PageHeader::parse(&top.read_file("events/header_page").unwrap(), Endian::native()).unwrap();
    let ev = EventHeader::parse(&top.read_file("events/header_event").unwrap()).unwrap();
    let id = parse_id(&event_format(&t, "syscalls", "sys_enter_getppid").unwrap()).unwrap();
    let mut modes = vec![ReadMode::Read, ReadMode::Splice];
    // Mapping trace_pipe_raw came in 6.10: an older kernel refuses it (ENODEV), a newer one
    // must map it (any other outcome fails the test).
    let (release, maps) = kernel_at_least(6, 10);
    let inst = Instance::create(&t, &instance_name("readers")).unwrap();
    match CpuReader::open_with(&inst, 0, true, ReadMode::Mmap) {
        Ok(_) => modes.push(ReadMode::Mmap),
        Err(e) if e.errno() == Errno::ENODEV && !maps => {
            eprintln!("note: kernel {release} cannot map the ring buffer (6.10+): Read and Splice tested, Mmap not")
        }
        Err(e) => panic!("kernel {release} (6.10+ maps the ring buffer): {e}"),
    }
    drop(inst);
    // A thread of its own, pinned to CPU 0, so the test harness's other threads stay where they are.
    std::thread::scope(|s| {
        s.spawn(|| {
            pin_to_cpu0();
            let tid = nix::unistd::gettid().as_raw();
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

/// Counts records of event `id` from thread `tid` in `bytes`, whole sub-buffers back to back.
fn count_in(bytes: &[u8], subbuf: usize, hdr: &PageHeader, ev: &EventHeader, id: u16, tid: i32) -> usize {
    assert!(bytes.len().is_multiple_of(subbuf), "whole sub-buffers only");
    let mut n = 0;
    for page in bytes.chunks(subbuf) {
        for rec in SubBuffer::with_event_header(page, hdr, ev).unwrap().records() {
            let d = rec.unwrap().data;
            if u16::from_ne_bytes([d[0], d[1]]) == id && i32::from_ne_bytes([d[4], d[5], d[6], d[7]]) == tid {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn splice_to_moves_the_full_pages_to_a_file_and_read_the_rest() {
    let t = require!(root, tracefs).tracefs();
    let top = Instance::top(&t);
    let hdr = PageHeader::parse(&top.read_file("events/header_page").unwrap(), Endian::native()).unwrap();
    let ev = EventHeader::parse(&top.read_file("events/header_event").unwrap()).unwrap();
    let id = parse_id(&event_format(&t, "syscalls", "sys_enter_getppid").unwrap()).unwrap();
    let path = std::env::temp_dir().join(format!("wasmprobe-splice-to-{}", std::process::id()));
    std::thread::scope(|s| {
        s.spawn(|| {
            pin_to_cpu0();
            let tid = nix::unistd::gettid().as_raw();
            let inst = Instance::create(&t, &instance_name("splice-to")).unwrap();
            inst.set_buffer_size_kb(512, None).unwrap();
            let mut reader = CpuReader::open_with(&inst, 0, true, ReadMode::Splice).unwrap();
            let subbuf = reader.subbuf_size();
            let mut out = std::fs::File::create(&path).unwrap();
            // A plain reader cannot splice.
            let mut plain = CpuReader::open(&inst, 0, true).unwrap();
            assert_eq!(plain.splice_to(std::os::fd::AsFd::as_fd(&out), usize::MAX).unwrap_err().errno(), Errno::EINVAL);
            inst.event_enable(Some("syscalls"), Some("sys_enter_getppid")).unwrap();
            getppid_n(3000);
            let moved = reader.splice_to(std::os::fd::AsFd::as_fd(&out), usize::MAX).unwrap();
            assert!(moved >= 2 * subbuf && moved.is_multiple_of(subbuf), "moved {moved} bytes");
            // Only full pages: nothing more to move until a page fills.
            assert_eq!(reader.splice_to(std::os::fd::AsFd::as_fd(&out), usize::MAX).unwrap(), 0);
            getppid_n(5);
            inst.event_disable(None, None).unwrap();
            let mut buf = vec![0u8; subbuf];
            loop {
                let n = reader.read_subbuf(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                std::io::Write::write_all(&mut out, &buf[..n]).unwrap();
            }
            drop(out);
            let bytes = std::fs::read(&path).unwrap();
            std::fs::remove_file(&path).unwrap();
            assert_eq!(count_in(&bytes, subbuf, &hdr, &ev, id, tid), 3005, "every getppid exactly once");
        });
    });
}

/// Makes events on CPU 0 (getppid from a thread pinned there) in `inst`, so that a read
/// waiting on CPU 0's buffer finds data.
fn feed_cpu0(inst: &Instance, calls: usize) {
    inst.event_enable(Some("syscalls"), Some("sys_enter_getppid")).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            pin_to_cpu0();
            getppid_n(calls);
        });
    });
    inst.event_disable(None, None).unwrap();
}

#[test]
fn a_blocked_reader_is_woken_by_stop() {
    let t = require!(root, tracefs).tracefs();
    let inst = Instance::create(&t, &instance_name("stop")).unwrap();
    // Nothing is enabled in this instance: a blocking read waits until it is stopped.
    let mut reader = CpuReader::open(&inst, 0, false).unwrap();
    let stopper = reader.stopper().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let mut buf = vec![0u8; reader.subbuf_size()];
        let first = reader.read_subbuf(&mut buf);
        tx.send(Instant::now()).unwrap();
        // Once stopped, a read no longer waits.
        let t0 = Instant::now();
        let second = reader.read_subbuf(&mut buf);
        (first.unwrap(), second.unwrap(), t0.elapsed())
    });
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err(), "the read must block while idle");
    let stopped = Instant::now();
    stopper.stop().unwrap();
    let Ok(woken) = rx.recv_timeout(Duration::from_secs(5)) else {
        // Still waiting (in the kernel, on 6.1, before readers polled): give it data so that it
        // returns and the instance can be removed, then fail.
        feed_cpu0(&inst, 10);
        let _ = h.join();
        panic!("stop did not wake the blocked read within 5 s (it returned only once there was data)");
    };
    let (first, second, second_took) = h.join().unwrap();
    let wake = woken - stopped;
    assert_eq!((first, second), (0, 0), "a stopped read returns nothing");
    assert!(wake < Duration::from_secs(1), "stop took {wake:?} to wake the read");
    assert!(second_took < Duration::from_secs(1), "a read after stop waited {second_took:?}");
}

#[test]
fn a_blocking_read_returns_a_few_events_without_a_full_buffer() {
    // poll(2) on trace_pipe_raw reports data only once the buffer is `buffer_percent` full (50
    // by default); a blocking read must return a few events anyway, as read(2) did.
    let t = require!(root, tracefs).tracefs();
    let inst = Instance::create(&t, &instance_name("blockread")).unwrap();
    let mut reader = CpuReader::open(&inst, 0, false).unwrap();
    let stopper = reader.stopper().unwrap();
    let h = std::thread::spawn(move || {
        let mut buf = vec![0u8; reader.subbuf_size()];
        let n = reader.read_subbuf(&mut buf).unwrap();
        (n, Instant::now())
    });
    std::thread::sleep(Duration::from_millis(100));
    let fed = Instant::now();
    feed_cpu0(&inst, 3);
    let deadline = fed + Duration::from_secs(5);
    while !h.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    if !h.is_finished() {
        stopper.stop().unwrap();
        let _ = h.join();
        panic!("a blocking read did not return 3 events within 5 s");
    }
    let (n, returned) = h.join().unwrap();
    assert!(n > 0, "the read returned no data");
    assert!(returned - fed < Duration::from_secs(1), "the events took {:?} to arrive", returned - fed);
}
