//! A syscall load for recording benchmark traces (`benches/record-big.sh`):
//! `syscall_load ITERATIONS [WORKERS]`. Each iteration of each worker process makes the same
//! five syscalls as the trace-cmd baseline's load generator: getpid, openat("/dev/zero"),
//! read 64 bytes, write 64 bytes to /dev/null, close; plus sched_yield every 1024 iterations.

use std::io::{Read, Write};

fn work(iterations: u64) {
    let mut buf = [b'x'; 64];
    let mut null = std::fs::OpenOptions::new().write(true).open("/dev/null").expect("open /dev/null");
    for i in 0..iterations {
        // std::process::id() is a getpid() syscall each time.
        std::hint::black_box(std::process::id());
        let mut zero = std::fs::File::open("/dev/zero").expect("open /dev/zero");
        zero.read_exact(&mut buf).expect("read /dev/zero");
        null.write_all(&buf).expect("write /dev/null");
        drop(zero);
        if i % 1024 == 0 {
            std::thread::yield_now();
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let iterations: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let workers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    if workers <= 1 {
        work(iterations);
        return;
    }
    // Worker processes (not threads), as the baseline's load forks them.
    let exe = std::env::current_exe().expect("own path");
    let children: Vec<_> = (0..workers)
        .map(|_| std::process::Command::new(&exe).arg(iterations.to_string()).spawn().expect("spawn worker"))
        .collect();
    for mut c in children {
        c.wait().expect("wait worker");
    }
}
