//! Delivery into a Wasm plugin through the packed batch path, against the same work done by a
//! native Rust callback over the same packed buffers; and plugin start-up, cold (compile)
//! against warm (compiled code from the cache).
//!
//! The work per event, on both sides: count it per pid in a `HashMap` and add its `id` field
//! (a u64 read through a field offset resolved once). The plugin is guest-examples/bench-count.
//!
//! Run: `cargo bench -p wasmprobe --bench plugin_delivery [-- EVENTS]` (default 1,000,000
//! events of 64-byte raw_syscalls:sys_enter payloads, 100 pids). Medians of 5 runs.

use std::collections::HashMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmprobe::plugin::{
    BatchReader, BatchWriter, Field, FixedKernel, Layout, Level, Output, Plugin, PluginSource, Sandbox, Stdio, Value,
};

#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl Output for Lines {
    fn line(&mut self, _: &str, line: &str) {
        self.0.lock().unwrap().push(line.to_string());
    }
    fn record(&mut self, _: &str, _: &[(String, Value)]) {}
    fn log(&mut self, plugin: &str, level: Level, message: &str) {
        eprintln!("{plugin}: {level}: {message}");
    }
    fn stdio(&mut self, plugin: &str, _: Stdio, line: &str) {
        eprintln!("[{plugin}] {line}");
    }
}

fn layout() -> Layout {
    let mut fields = Layout::common_fields();
    fields.push(Field::from_format("long", "id", 8, 8, true));
    fields.push(Field::from_format("unsigned long", "args[6]", 16, 48, false));
    Layout { system: "raw_syscalls".into(), event: "sys_enter".into(), id: 21, fields }
}

/// `events` sys_enter records in batches of `batch` events.
fn batches(events: usize, batch: usize) -> Vec<BatchWriter> {
    let mut out = Vec::new();
    let mut payload = [0u8; 64];
    payload[0..2].copy_from_slice(&21u16.to_le_bytes());
    for start in (0..events).step_by(batch) {
        let mut b = BatchWriter::with_capacity(batch * 88);
        for i in start..(start + batch).min(events) {
            let pid = 1000 + (i % 100) as i32;
            payload[4..8].copy_from_slice(&pid.to_le_bytes());
            payload[8..16].copy_from_slice(&((i % 335) as u64).to_le_bytes());
            b.push(0, (i % 2) as u32, pid, i as u64 * 100, &payload);
        }
        out.push(b);
    }
    out
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid clock id and a valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The native callback: the same work over the same packed buffers.
fn native(batches: &[BatchWriter], layout: &Layout) -> (usize, u64) {
    let id = layout.fields.iter().find(|f| f.name == "id").unwrap();
    let (off, size) = (id.offset as usize, id.size as usize);
    let mut per_pid: HashMap<i32, u64> = HashMap::new();
    let mut sum = 0u64;
    for b in batches {
        for rec in BatchReader::new(b.as_bytes()) {
            *per_pid.entry(rec.pid).or_default() += 1;
            let v = rec.payload.get(off..off + size).map_or(0, |s| u64::from_le_bytes(s.try_into().unwrap()));
            sum = sum.wrapping_add(v);
        }
    }
    (per_pid.len(), sum)
}

fn guest_source() -> PluginSource {
    PluginSource::Path(PathBuf::from(env!("OUT_DIR")).join("guests").join("bench_count.wasm"))
}

fn load(sandbox: &Sandbox, out: &Lines) -> Plugin {
    let mut p = Plugin::load(&guest_source(), sandbox, Box::new(out.clone())).unwrap();
    p.init(&[], Arc::new(FixedKernel::default())).unwrap();
    p.set_layouts(vec![layout()]).unwrap();
    p
}

fn main() {
    let events: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let cache = tempfile::tempdir().unwrap();
    let sandbox = Sandbox { cache_dir: Some(cache.path().to_path_buf()), ..Sandbox::default() };
    let layout = layout();
    println!("{events} events of 64-byte payloads, 100 pids; CPU time of this thread, median of 5 runs");
    println!("{:>6} {:>12} {:>12} {:>12} {:>8}", "batch", "native ns/ev", "wasm ns/ev", "wasm Mev/s", "ratio");
    for batch in [256, 1024, 4096] {
        let bs = batches(events, batch);
        let mut nat = Vec::new();
        let mut wasm = Vec::new();
        for _ in 0..5 {
            let t = cpu_time();
            black_box(native(black_box(&bs), &layout));
            nat.push(cpu_time() - t);

            let out = Lines::default();
            let mut p = load(&sandbox, &out);
            let t = cpu_time();
            for b in &bs {
                p.on_batch(b.as_bytes(), 0).unwrap();
            }
            wasm.push(cpu_time() - t);
            p.finish().unwrap();
            let (pids, sum) = native(&bs, &layout);
            assert_eq!(out.0.lock().unwrap().clone(), [format!("pids={pids} events={events} sum={sum}")]);
        }
        let (n, w) = (median(nat), median(wasm));
        let per = |d: Duration| d.as_nanos() as f64 / events as f64;
        println!(
            "{batch:>6} {:>12.1} {:>12.1} {:>12.1} {:>7.2}x",
            per(n),
            per(w),
            events as f64 / w.as_secs_f64() / 1e6,
            per(w) / per(n)
        );
    }

    // Start-up: load (compile or map) + instantiate + init.
    let out = Lines::default();
    let cold: Vec<Duration> = (0..3)
        .map(|_| {
            let off = Sandbox { cache_dir: None, ..Sandbox::default() };
            let t = Instant::now();
            black_box(load(&off, &out));
            t.elapsed()
        })
        .collect();
    let warm: Vec<Duration> = (0..10)
        .map(|_| {
            let t = Instant::now();
            let p = load(&sandbox, &out);
            assert!(p.load_info().cache.is_hit());
            t.elapsed()
        })
        .collect();
    let size = std::fs::metadata(match guest_source() {
        PluginSource::Path(p) => p,
        PluginSource::Builtin(_) => unreachable!(),
    })
    .unwrap()
    .len();
    println!("start-up of a {} KB component (load + instantiate + init), wall time, median:", size / 1024);
    println!("  cold (compile):       {:>9.2} ms", median(cold).as_secs_f64() * 1e3);
    println!("  warm (cached .cwasm): {:>9.2} ms", median(warm).as_secs_f64() * 1e3);
}
