//! Delivery into a Wasm plugin through the packed batch path, against the same work done by a
//! native Rust callback over the same records; and plugin start-up, cold (compile) against
//! warm (compiled code from the cache).
//!
//! Both sides start from the same records (raw kernel payloads, walked with `BatchReader`). The
//! native callback works on each record in place. The Wasm side packs each record into the
//! plugin's batch (projected onto the one field the plugin declares, `id`), hands the batch to
//! `on-batch`, and the guest SDK calls the plugin's `on_event` per record: building the batch,
//! copying it into the plugin and walking it are all counted against Wasm.
//!
//! The work per event, on both sides: count it per pid in `wasmprobe_abi`'s `FxHashMap` (std's
//! `HashMap` with the Fx hash, which the guest SDK re-exports: the same code on both sides) and
//! add its `id` field (a u64 read through a field offset resolved once). The plugin is
//! guest-examples/bench-count.
//!
//! Run: `cargo bench -p wasmprobe --bench plugin_delivery [-- EVENTS] [TRACE.dat]` (default
//! 1,000,000 events of 64-byte raw_syscalls:sys_enter payloads, 100 pids). Medians of 5 runs.
//!
//! With a TRACE.dat holding raw_syscalls:sys_enter events, the same comparison is also made end
//! to end, the way `wasmprobe run --replay` works: the recorded kernel pages are read, decoded
//! and merged by timestamp, and each sys_enter record goes to a native callback (a
//! `RecordSink` doing the work) or through the plugin's batches into the plugin. Make one with
//! `host/wasmprobe/benches/record-syscalls.sh` (needs root).

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use traceevent::{EventFormat, TraceDat};
use wasmprobe::plugin::{
    BatchReader, BatchWriter, FixedKernel, Layout, LayoutField, Level, Output, Plugin, PluginSource, Sandbox, Stdio,
    Value,
};
use wasmprobe::pump::RecordSink;
use wasmprobe::run::{self, ProbeIds};
use wasmprobe_abi::fxhash::FxHashMap;

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
    fields.push(LayoutField::from_format("long", "id", 8, 8, true));
    fields.push(LayoutField::from_format("unsigned long", "args[6]", 16, 48, false));
    Layout { system: "raw_syscalls".into(), event: "sys_enter".into(), id: 21, fields }
}

/// The source records: `events` sys_enter records, in chunks of `batch` events. Only
/// [`DISTINCT`] different chunks are built and they are used in turn, so that the records are
/// in the CPU's cache, as they are in the run loop, which delivers records it has just read
/// (88 MB of never-reused records would measure DRAM bandwidth instead).
fn batches(events: usize, batch: usize) -> Vec<&'static BatchWriter> {
    let mut distinct = Vec::new();
    let mut payload = [0u8; 64];
    payload[0..2].copy_from_slice(&21u16.to_le_bytes());
    for k in 0..DISTINCT {
        let mut b = BatchWriter::with_capacity(batch * 88);
        for i in k * batch..(k + 1) * batch {
            let pid = 1000 + (i % 100) as i32;
            payload[4..8].copy_from_slice(&pid.to_le_bytes());
            payload[8..16].copy_from_slice(&((i % 335) as u64).to_le_bytes());
            b.push(0, (i % 2) as u32, pid, i as u64 * 100, &payload);
        }
        distinct.push(&*Box::leak(Box::new(b)));
    }
    (0..events / batch).map(|i| distinct[i % DISTINCT]).collect()
}

/// How many different batches [`batches`] builds.
const DISTINCT: usize = 8;

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

/// Delivery alone: walk the records and count them (the guest with `--arg work=none`).
fn native_walk(batches: &[&BatchWriter]) -> u64 {
    let mut n = 0u64;
    for b in batches {
        for rec in BatchReader::new(b.as_bytes()) {
            n += black_box(rec.payload.len() as u64).min(1);
        }
    }
    n
}

/// The native callback: the same work over the same packed buffers.
fn native(batches: &[&BatchWriter], layout: &Layout) -> (usize, u64) {
    let id = layout.fields.iter().find(|f| f.name == "id").unwrap();
    let (off, size) = (id.offset as usize, id.size as usize);
    let mut per_pid: FxHashMap<i32, u64> = FxHashMap::default();
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
    load_with(sandbox, out, &[])
}

/// What the run loop does per batch: pack each record as the plugin's plan asks (projected
/// onto the fields it declared) and deliver the batch.
fn deliver(p: &mut Plugin, source: &[&BatchWriter], batch: &mut BatchWriter) {
    for b in source {
        for rec in BatchReader::new(b.as_bytes()) {
            p.pack(batch, rec.probe_index, rec.cpu, rec.pid, rec.ts, rec.payload);
        }
        p.on_batch(batch.as_bytes(), 0).unwrap();
        batch.clear();
    }
}

fn load_with(sandbox: &Sandbox, out: &Lines, args: &[(String, String)]) -> Plugin {
    let mut p = Plugin::load(&guest_source(), sandbox, Box::new(out.clone())).unwrap();
    p.init(args, Arc::new(FixedKernel::default())).unwrap();
    p.set_layouts(vec![layout()]).unwrap();
    p
}

/// The native callback of the end-to-end comparison: the same work as [`native`], per record
/// handed over by the replay loop.
struct NativeSink {
    id_offset: usize,
    per_pid: FxHashMap<i32, u64>,
    sum: u64,
}

impl RecordSink for NativeSink {
    fn record(&mut self, _: usize, _: u32, pid: i32, _: u64, payload: &[u8]) -> anyhow::Result<()> {
        *self.per_pid.entry(pid).or_default() += 1;
        let v =
            payload.get(self.id_offset..self.id_offset + 8).map_or(0, |s| u64::from_le_bytes(s.try_into().unwrap()));
        self.sum = self.sum.wrapping_add(v);
        Ok(())
    }

    fn flush(&mut self, _: &[u64]) -> anyhow::Result<()> {
        Ok(())
    }
}

/// End to end from a recorded trace: native callback vs Wasm plugin, same replay loop.
fn end_to_end(path: &std::path::Path, sandbox: &Sandbox) {
    let dat = TraceDat::open(std::fs::File::open(path).unwrap()).unwrap();
    let (layout, text) = dat
        .meta
        .event_formats
        .iter()
        .find_map(|(sys, text)| {
            let f = EventFormat::parse(sys, text, dat.meta.endian).ok()?;
            (f.system == "raw_syscalls" && f.name == "sys_enter").then(|| (f, text.clone()))
        })
        .expect("the trace has raw_syscalls:sys_enter events");
    let layout = run::layout_of("raw_syscalls", "sys_enter", layout.id as u16, &text).unwrap();
    let mut ids = ProbeIds::default();
    ids.insert(layout.id as u16, 0);
    let id_offset = layout.fields.iter().find(|f| f.name == "id").unwrap().offset as usize;
    let (mut nat, mut wasm) = (Vec::new(), Vec::new());
    let mut events = 0;
    for _ in 0..5 {
        let mut sink = NativeSink { id_offset, per_pid: FxHashMap::default(), sum: 0 };
        let t = cpu_time();
        let (n, _) = wasmprobe::replay::replay_records(&dat, &ids, &mut sink).unwrap();
        nat.push(cpu_time() - t);
        events = n;

        let out = Lines::default();
        let mut p = Plugin::load(&guest_source(), sandbox, Box::new(out.clone())).unwrap();
        p.init(&[], Arc::new(FixedKernel::default())).unwrap();
        p.set_layouts(vec![layout.clone()]).unwrap();
        let t = cpu_time();
        let mut psink = wasmprobe::sink::PluginSink::new(&mut p, 1);
        let (n, lost) = wasmprobe::replay::replay_records(&dat, &ids, &mut psink).unwrap();
        psink.deliver(lost).unwrap();
        drop(psink);
        wasm.push(cpu_time() - t);
        p.finish().unwrap();
        let want = format!("pids={} events={n} sum={}", sink.per_pid.len(), sink.sum);
        assert_eq!(out.0.lock().unwrap().clone(), [want]);
    }
    let per = |d: Duration| d.as_nanos() as f64 / events as f64;
    let (n, w) = (median(nat), median(wasm));
    println!(
        "end to end from {} ({events} sys_enter records; read, decode, merge, deliver):",
        path.file_name().unwrap().to_string_lossy()
    );
    println!("  native callback {:.1} ns/ev, wasm plugin {:.1} ns/ev: {:.2}x", per(n), per(w), per(w) / per(n));
}

fn main() {
    let events: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let trace = std::env::args().skip(1).find(|a| a.ends_with(".dat")).map(PathBuf::from);
    // BENCH_CACHE=DIR keeps the compiled plugin (e.g. to disassemble it); default a temp dir.
    let cache = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("BENCH_CACHE").map(PathBuf::from).unwrap_or_else(|| cache.path().to_path_buf());
    let sandbox = Sandbox { cache_dir: Some(dir), ..Sandbox::default() };
    let layout = layout();
    println!("{events} events of 64-byte payloads, 100 pids; CPU time of this thread, median of 5 runs");
    println!("{:>6} {:>12} {:>12} {:>12} {:>8}", "batch", "native ns/ev", "wasm ns/ev", "wasm Mev/s", "ratio");
    for batch in [256, 1024, 4096] {
        let bs = batches(events, batch);
        let events = bs.len() * batch;
        let mut nat = Vec::new();
        let mut wasm = Vec::new();
        for _ in 0..5 {
            let t = cpu_time();
            black_box(native(black_box(&bs), &layout));
            nat.push(cpu_time() - t);

            let out = Lines::default();
            let mut p = load(&sandbox, &out);
            // The run loop reuses one writer: its allocation is made once, before timing.
            let mut batch = BatchWriter::with_capacity(batch * 88);
            let t = cpu_time();
            deliver(&mut p, &bs, &mut batch);
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

    // Delivery alone: the batch crosses into the guest and the SDK walks it, no work per event.
    let bs = batches(events, 1024);
    let events = bs.len() * 1024;
    let mut nat = Vec::new();
    let mut wasm = Vec::new();
    for _ in 0..5 {
        let t = cpu_time();
        black_box(native_walk(black_box(&bs)));
        nat.push(cpu_time() - t);
        let out = Lines::default();
        let mut p = load_with(&sandbox, &out, &[("work".into(), "none".into())]);
        let mut batch = BatchWriter::with_capacity(1024 * 88);
        let t = cpu_time();
        deliver(&mut p, &bs, &mut batch);
        wasm.push(cpu_time() - t);
        p.finish().unwrap();
        assert_eq!(out.0.lock().unwrap().clone(), [format!("pids=0 events={events} sum={events}")]);
    }
    let per = |d: Duration| d.as_nanos() as f64 / events as f64;
    let (n, w) = (median(nat), median(wasm));
    println!(
        "delivery alone (walk the batch, no work), batch 1024: native {:.1} ns/ev, wasm {:.1} ns/ev",
        per(n),
        per(w)
    );

    if let Some(path) = &trace {
        end_to_end(path, &sandbox);
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
