//! Delivery into a Wasm plugin through the packed batch path, against the same work done by a
//! native Rust callback over the same records; and plugin start-up, cold (compile) against
//! warm (compiled code from the cache).
//!
//! Both sides start from the same records (raw kernel payloads, walked with `BatchReader`). The
//! native callback works on each record in place. The Wasm side packs each record into the
//! plugin's batch (projected onto the one field the plugin declares, `id`), hands the batch to
//! `on-batch`, and the plugin reads the batch's columns (the guest SDK's `Batch`, as its
//! `on_batch`): building the batch, copying it into the plugin and reading it are all counted
//! against Wasm.
//!
//! The work per event, on both sides the same code (`wasmprobe_abi`, which the guest SDK
//! re-exports), the plugin being guest-examples/bench-count:
//! - `count`: count the event per pid in an `agg::Count` (bpftrace's `@[pid] = count()`) and
//!   add its `id` field (a u64 read through a field offset resolved once);
//! - `hist`: the `id` field into a log2 `agg::Hist` (`@id = hist(args.id)`);
//! - `fxhash`: `count` with an `FxHashMap` (std's hashbrown) instead, as plugins did before;
//! - `none`: delivery alone (count the records: the batch's shape, checked once).
//!
//! `count`, `hist` and `none` read columns (`wasmprobe_abi::columns`, strided over a uniform
//! batch), `fxhash` walks the records one by one as the SDK's `on_event` path does.
//!
//! The work table gives, per kind of work, the CPU time per event of the whole (delivery and
//! work) and of the work alone (the whole less `none` of the same side and run), native and
//! Wasm, paired: each of the runs times every case, native then Wasm, in turn; medians.
//!
//! Run: `cargo bench -p wasmprobe --bench plugin_delivery [-- EVENTS] [TRACE.dat]` (default
//! 1,000,000 events of 64-byte raw_syscalls:sys_enter payloads, 100 pids). Medians of 5 runs
//! (`BENCH_RUNS=N` for more).
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
use wasmprobe_abi::agg::{Count, Hist};
use wasmprobe_abi::batch::record_at;
use wasmprobe_abi::columns::{Column, Int, Rows, Uniform, Width};
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

/// The kinds of work of the benchmark (bench-count's `--arg work=`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Work {
    None,
    Count,
    FxHash,
    Hist,
}

impl Work {
    fn arg(self) -> &'static str {
        match self {
            Work::None => "none",
            Work::Count => "count",
            Work::FxHash => "fxhash",
            Work::Hist => "hist",
        }
    }
}

/// The native callback: the same work over the same packed buffers, with the same code as the
/// plugin's; returns the lines the plugin prints at `finish`.
fn native(batches: &[&BatchWriter], layout: &Layout, work: Work) -> Vec<String> {
    let id = layout.fields.iter().find(|f| f.name == "id").unwrap();
    let (off, size) = (id.offset as usize, id.size as usize);
    let read_id = |p: &[u8]| p.get(off..off + size).map_or(0, |s| u64::from_le_bytes(s.try_into().unwrap()));
    let mut sum = 0u64;
    match work {
        Work::None => {
            let n = native_walk(batches);
            vec![format!("pids=0 events={n} sum={n}")]
        }
        Work::Count => {
            let mut per_pid: Count<i32> = Count::new("@");
            for b in batches {
                for rec in BatchReader::new(b.as_bytes()) {
                    per_pid.inc(rec.pid);
                    sum = sum.wrapping_add(read_id(rec.payload));
                }
            }
            let events: u64 = per_pid.map().iter().map(|(_, n)| n.0).sum();
            vec![format!("pids={} events={events} sum={sum}", per_pid.len())]
        }
        Work::FxHash => {
            let mut per_pid: FxHashMap<i32, u64> = FxHashMap::default();
            for b in batches {
                for rec in BatchReader::new(b.as_bytes()) {
                    *per_pid.entry(rec.pid).or_default() += 1;
                    sum = sum.wrapping_add(read_id(rec.payload));
                }
            }
            vec![format!("pids={} events={} sum={sum}", per_pid.len(), per_pid.values().sum::<u64>())]
        }
        Work::Hist => {
            let mut hist: Hist = Hist::new("@id");
            for b in batches {
                for rec in BatchReader::new(b.as_bytes()) {
                    hist.record((), read_id(rec.payload));
                }
            }
            hist.text().lines().map(str::to_string).collect()
        }
    }
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
    per_pid: Count<i32>,
    sum: u64,
}

impl RecordSink for NativeSink {
    fn record(&mut self, _: usize, _: u32, pid: i32, _: u64, payload: &[u8]) -> anyhow::Result<()> {
        self.per_pid.inc(pid);
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
        let mut sink = NativeSink { id_offset, per_pid: Count::new("@"), sum: 0 };
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

/// One paired measurement: `work` done natively, then by the plugin, over the same records;
/// checks that both give the same result. Returns the CPU times (native, Wasm).
fn paired(bs: &[&BatchWriter], batch: usize, layout: &Layout, sandbox: &Sandbox, work: Work) -> (Duration, Duration) {
    let t = cpu_time();
    let want = black_box(native(black_box(bs), layout, work));
    let nat = cpu_time() - t;

    let out = Lines::default();
    let mut p = load_with(sandbox, &out, &[("work".into(), work.arg().into())]);
    // The run loop reuses one writer: its allocation is made once, before timing.
    let mut writer = BatchWriter::with_capacity(batch * 88);
    let t = cpu_time();
    deliver(&mut p, bs, &mut writer);
    let wasm = cpu_time() - t;
    p.finish().unwrap();
    assert_eq!(out.0.lock().unwrap().clone(), want, "work {work:?}");
    (nat, wasm)
}

/// What bench-count's `on_batch` does, natively, with the same code (`wasmprobe_abi`'s
/// columns, which the guest SDK's `Batch` wraps): `count`, `hist` and `none` read the
/// batch's columns, `fxhash` walks its records one by one (`record_at`, as the SDK's per-event
/// loop does) and does the work per record.
fn native_sdk(packed: &[Vec<u8>], id_off: usize, work: Work) -> Vec<String> {
    let read_id = |p: &[u8]| p.get(id_off..id_off + 8).map_or(0, |s| u64::from_le_bytes(s.try_into().unwrap()));
    let id = Some(Int { offset: id_off, width: Width::U64 });
    let mut per_pid: Count<i32> = Count::new("@");
    let mut fx: FxHashMap<i32, u64> = FxHashMap::default();
    let mut hist: Hist = Hist::new("@id");
    let mut sum = 0u64;
    for b in packed {
        let b = black_box(b.as_slice());
        // As the SDK's `Batch` does: the shape once, a uniform batch's probe one of the plan's.
        let uniform = Uniform::of(b).filter(|u| u.probe_index == 0);
        let rows = || Rows::with(b, uniform, Some(0));
        match work {
            Work::None => sum += uniform.map_or_else(|| rows().count(), |u| u.count) as u64,
            Work::Count => {
                Column::<i32>::pids(rows()).for_each(|pid| per_pid.inc(pid));
                sum = Column::<u64>::field(rows(), id).fold(sum, u64::wrapping_add);
            }
            Work::FxHash => {
                let mut off = 0;
                while let Some((rec, next)) = record_at(b, off) {
                    *fx.entry(rec.pid).or_default() += 1;
                    sum = sum.wrapping_add(read_id(rec.payload));
                    off = next;
                }
            }
            Work::Hist => Column::<u64>::field(rows(), id).for_each(|v| hist.record((), v)),
        }
    }
    match work {
        Work::None => vec![format!("pids=0 events={sum} sum={sum}")],
        Work::Count => {
            let events: u64 = per_pid.map().iter().map(|(_, n)| n.0).sum();
            vec![format!("pids={} events={events} sum={sum}", per_pid.len())]
        }
        Work::FxHash => vec![format!("pids={} events={} sum={sum}", fx.len(), fx.values().sum::<u64>())],
        Work::Hist => hist.text().lines().map(str::to_string).collect(),
    }
}

/// One paired measurement of plugin work on records in memory: the plugin's batches are packed
/// first (untimed); then the native SDK loop and the plugin's `on-batch` go over them.
fn paired_in_memory(bs: &[&BatchWriter], batch: usize, sandbox: &Sandbox, work: Work) -> (Duration, Duration) {
    let out = Lines::default();
    let mut p = load_with(sandbox, &out, &[("work".into(), work.arg().into())]);
    let mut packed = Vec::new();
    let mut w = BatchWriter::with_capacity(batch * 88);
    for b in bs {
        for rec in BatchReader::new(b.as_bytes()) {
            p.pack(&mut w, rec.probe_index, rec.cpu, rec.pid, rec.ts, rec.payload);
        }
        packed.push(w.as_bytes().to_vec());
        w.clear();
    }
    let proj = p.projection(0).expect("bench-count declares its fields").layout();
    let id_off = proj.fields.iter().find(|f| f.name == "id").unwrap().offset as usize;

    let t = cpu_time();
    let want = native_sdk(&packed, id_off, work);
    let nat = cpu_time() - t;

    let t = cpu_time();
    for b in &packed {
        p.on_batch(b, 0).unwrap();
    }
    let wasm = cpu_time() - t;
    p.finish().unwrap();
    assert_eq!(out.0.lock().unwrap().clone(), want, "work {work:?}");
    (nat, wasm)
}

fn runs() -> usize {
    std::env::var("BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(5).max(1)
}

fn main() {
    let events: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let trace = std::env::args().skip(1).find(|a| a.ends_with(".dat")).map(PathBuf::from);
    // BENCH_CACHE=DIR keeps the compiled plugin (e.g. to disassemble it); default a temp dir.
    let cache = tempfile::tempdir().unwrap();
    // BENCH_CACHE=off compiles in the process (for `WASMPROBE_PERFMAP=1 perf record`).
    let dir = match std::env::var_os("BENCH_CACHE") {
        Some(v) if v == "off" => None,
        Some(v) => Some(PathBuf::from(v)),
        None => Some(cache.path().to_path_buf()),
    };
    let sandbox = Sandbox { cache_dir: dir, ..Sandbox::default() };
    let layout = layout();
    let runs = runs();
    // BENCH_ONLY=memory: only the table of plugin work on records in memory.
    let only_memory = std::env::var("BENCH_ONLY").is_ok_and(|v| v == "memory");
    println!("{events} events of 64-byte payloads, 100 pids; CPU time of this thread, median of {runs} runs");
    if !only_memory {
        by_batch_size(events, runs, &layout, &sandbox);
    }
    in_memory(events, runs, &sandbox);
    if only_memory {
        return;
    }
    if let Some(path) = &trace {
        end_to_end(path, &sandbox);
    }
    startup(&sandbox);
}

/// Work `count` end to end from the source records (pack, copy, walk, work), by batch size.
fn by_batch_size(events: usize, runs: usize, layout: &Layout, sandbox: &Sandbox) {
    println!("work `count` (per pid, agg::Count, and a sum of id) by batch size:");
    println!("{:>6} {:>12} {:>12} {:>12} {:>8}", "batch", "native ns/ev", "wasm ns/ev", "wasm Mev/s", "ratio");
    for batch in [256, 1024, 4096] {
        let bs = batches(events, batch);
        let events = bs.len() * batch;
        let mut nat = Vec::new();
        let mut wasm = Vec::new();
        for _ in 0..runs {
            let (n, w) = paired(&bs, batch, layout, sandbox, Work::Count);
            nat.push(n);
            wasm.push(w);
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
}

/// The table of plugin work on records in memory, by kind of work.
fn in_memory(events: usize, runs: usize, sandbox: &Sandbox) {
    // Plugin work on records in memory: both sides start from the batches the plugin is
    // handed (packed and projected once, before timing) and run the same code: the SDK's
    // columns (`wasmprobe_abi::columns`, or the per-record step `record_at` for `fxhash`) and
    // the work, natively here and compiled to Wasm in the plugin (which also pays for the
    // batch's copy into its memory).
    let batch = 1024;
    let bs = batches(events, batch);
    let events = bs.len() * batch;
    let kinds = [Work::None, Work::FxHash, Work::Count, Work::Hist];
    let mut times: Vec<[Vec<f64>; 4]> = kinds.iter().map(|_| Default::default()).collect();
    let per = |d: Duration| d.as_nanos() as f64 / events as f64;
    for _ in 0..runs {
        let mut run = Vec::new();
        for &k in &kinds {
            run.push(paired_in_memory(&bs, batch, sandbox, k));
        }
        let (n0, w0) = (per(run[0].0), per(run[0].1));
        for (t, (n, w)) in times.iter_mut().zip(&run) {
            let (n, w) = (per(*n), per(*w));
            t[0].push(n);
            t[1].push(w);
            t[2].push(n - n0);
            t[3].push(w - w0);
        }
    }
    let med = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("plugin work on records in memory (the plugin's batches, batch {batch}), ns/event, medians;");
    println!("work = all less `none` (the walk alone) of the same side and run:");
    println!(
        "{:>7} {:>12} {:>12} {:>8} {:>12} {:>12} {:>8}",
        "work", "native all", "wasm all", "ratio", "native work", "wasm work", "ratio"
    );
    for (k, t) in kinds.iter().zip(&times) {
        let (n, w, nw, ww) = (med(&t[0]), med(&t[1]), med(&t[2]), med(&t[3]));
        if *k == Work::None {
            println!("{:>7} {n:>12.1} {w:>12.1} {:>7.2}x {:>12} {:>12} {:>8}", k.arg(), w / n, "-", "-", "-");
        } else {
            println!("{:>7} {n:>12.1} {w:>12.1} {:>7.2}x {nw:>12.1} {ww:>12.1} {:>7.2}x", k.arg(), w / n, ww / nw);
        }
    }
}

/// Start-up: load (compile, or map from the cache) + link and instantiate + `init` and the
/// layouts; wall time, with its parts from the plugin's `LoadInfo`.
fn startup(sandbox: &Sandbox) {
    let out = Lines::default();
    let timed = |sandbox: &Sandbox| {
        let t = Instant::now();
        let p = load(sandbox, &out);
        let all = t.elapsed();
        let info = p.load_info().clone();
        (all, info.compile, info.instantiate, all - info.compile - info.instantiate, info.cache.is_hit())
    };
    let off = Sandbox { cache_dir: None, ..Sandbox::default() };
    let cold: Vec<_> = (0..3).map(|_| timed(&off)).collect();
    // The first load with the cache compiles and stores; the rest are warm starts.
    let _ = timed(sandbox);
    // Warm, the first load of the plugin in a process (`wasmprobe run`): maps the cached file.
    let warm: Vec<_> = (0..20)
        .map(|_| {
            wasmprobe::plugin::cache::forget_mapped();
            timed(sandbox)
        })
        .collect();
    // Warm again in the same process (an agent's restart or reload): the mapped code reused.
    let again: Vec<_> = (0..20).map(|_| timed(sandbox)).collect();
    assert!(warm.iter().chain(&again).all(|w| w.4), "warm starts hit the cache");
    let size = std::fs::metadata(match guest_source() {
        PluginSource::Path(p) => p,
        PluginSource::Builtin(_) => unreachable!(),
    })
    .unwrap()
    .len();
    let ms = |v: Vec<Duration>| median(v).as_secs_f64() * 1e3;
    startup_others(sandbox, &ms);
    println!("start-up of a {} KB component, wall time in ms, median:", size / 1024);
    println!("{:>22} {:>9} {:>12} {:>12} {:>12}", "", "total", "compile/map", "instantiate", "init+layouts");
    for (name, v) in [("cold (compile)", cold), ("warm (cached .cwasm)", warm), ("warm, same process", again)] {
        println!(
            "{name:>22} {:>9.3} {:>12.3} {:>12.3} {:>12.3}",
            ms(v.iter().map(|x| x.0).collect()),
            ms(v.iter().map(|x| x.1).collect()),
            ms(v.iter().map(|x| x.2).collect()),
            ms(v.iter().map(|x| x.3).collect())
        );
    }
}

/// Warm starts of the components named in `$BENCH_STARTUP` (comma-separated `.wasm` paths,
/// e.g. the Python and JS plugins of target/tmp/lang-guests): load (map the cached code, then
/// link and instantiate), and `init` with no arguments, wall time, median of 20 after one load
/// that fills the cache.
fn startup_others(sandbox: &Sandbox, ms: &dyn Fn(Vec<Duration>) -> f64) {
    let Ok(list) = std::env::var("BENCH_STARTUP") else { return };
    for path in list.split(',').filter(|p| !p.is_empty()) {
        let source = PluginSource::Path(PathBuf::from(path));
        let size = std::fs::metadata(path).map_or(0, |m| m.len());
        let out = Lines::default();
        let _ = Plugin::load(&source, sandbox, Box::new(out.clone())).unwrap();
        let (mut load, mut map, mut inst, mut init) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..20 {
            // As the first load in a process (the same process reuses the mapped code).
            wasmprobe::plugin::cache::forget_mapped();
            let t = Instant::now();
            let mut p = Plugin::load(&source, sandbox, Box::new(out.clone())).unwrap();
            load.push(t.elapsed());
            assert!(p.load_info().cache.is_hit());
            map.push(p.load_info().compile);
            inst.push(p.load_info().instantiate);
            let t = Instant::now();
            p.init(&[], Arc::new(FixedKernel::default())).unwrap();
            init.push(t.elapsed());
        }
        let again: Vec<Duration> = (0..20)
            .map(|_| {
                let t = Instant::now();
                let _ = Plugin::load(&source, sandbox, Box::new(out.clone())).unwrap();
                t.elapsed()
            })
            .collect();
        println!(
            "  warm {path} ({} KB): {:.3} ms (map {:.3}, instantiate {:.3}), init {:.3} ms; same process {:.3} ms",
            size / 1024,
            ms(load),
            ms(map),
            ms(inst),
            ms(init),
            ms(again)
        );
    }
}
