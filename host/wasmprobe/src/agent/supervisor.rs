//! The agent's loop: one [`Pipeline`] (one instance, one set of per-CPU readers) for every
//! plugin of the config. Each plugin runs on a thread of its own behind a bounded queue of
//! batches: the pump thread packs each record for every plugin that declared it and hands
//! full batches over without waiting; a plugin whose queue is full loses those events (counted
//! as its own), so a slow plugin never makes the others lose any. A plugin that fails is
//! stopped and started again by its restart policy; a reload (SIGHUP, or the file changed)
//! starts, stops and replaces plugins and arms or removes their probes between two pump
//! steps, while unchanged plugins go on untouched.
//!
//! Plugins that read the same armed probes at the same plan indices with the same fields get
//! the same bytes: they form a `Feed`, whose records are packed once and whose batches are
//! shared (one allocation, reference-counted) by their queues.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use crossbeam::channel::{unbounded, Receiver, Sender};
use tracefs::Tracefs;

use super::config::{Config, PluginSpec, Restart};
use super::events::{AgentOutput, EventWriter};
use super::metrics::{plugin_labels, AgentMetrics, Labels, PluginMetrics};
use super::queue::{queue, QueueRx, QueueTx};
use crate::kernel_info::ExitNames;
use crate::pipeline::{Pages, Pipeline};
use crate::plugin::{BatchWriter, Layout, Plan, ProbeDecl, Projection};
use crate::pump::RecordSink;

/// Records per batch at most (as `run`'s plugin sink).
const MAX_BATCH: usize = 4096;
/// A round's end hands a feed's batch over when it holds this many records, or when it has
/// waited [`HOLD`]: a few records a round (a quiet node) are not worth waking every plugin's
/// thread for at each round (100 a second).
const SEAL_AT: usize = MAX_BATCH / 4;
/// How long a round's end keeps a small batch for more records.
const HOLD: Duration = Duration::from_millis(50);
/// Emptied batches kept for reuse (a full one is 4096 records: 128 KiB for one 8-byte field).
const SPARE_BATCHES: usize = 64;
/// The probe group and instance tag of the agent.
const TAG: &str = "agent";

/// What the pump thread sends a plugin's thread.
enum ToWorker {
    Layouts(Vec<Layout>),
    /// A packed batch (shared with the other plugins of its feed), the events lost before it,
    /// when it was handed over.
    Batch(Arc<BatchWriter>, u64, Instant),
}

/// What a plugin's thread reports.
enum Report {
    Planned(Plan),
    Failed(String),
    Finished,
}

/// A report of generation `gen` of the plugin in slot `slot`.
struct Status {
    slot: usize,
    gen: u64,
    report: Report,
}

/// One plugin of the config and its running instance, if any.
struct Slot {
    spec: PluginSpec,
    labels: Labels,
    gen: u64,
    /// Set once the plugin's probes are armed and its layouts given: records go to it (see
    /// [`super::queue`] for when its thread is woken).
    tx: Option<QueueTx<ToWorker>>,
    /// Until then (and between `Planned` and arming): the queue's sending end.
    pending: Option<QueueTx<ToWorker>>,
    thread: Option<std::thread::JoinHandle<()>>,
    plan: Option<Plan>,
    /// The armed probe (index in the session) of each plan probe.
    armed: Vec<usize>,
    /// The feed it reads (set while wired).
    feed: Option<usize>,
    /// Events the plugin lost that it has not been told of (the kernel's and its own drops).
    pending_lost: u64,
    /// Events it did not get since the last flush (queue full, or down).
    dropped: u64,
    failures_in_row: u32,
    restart_at: Option<Instant>,
    started: Instant,
    /// Stopping for good (removed by a reload): its probes go when its thread has finished.
    retiring: bool,
}

impl Slot {
    fn new(spec: PluginSpec) -> Slot {
        Slot {
            labels: plugin_labels(&spec.config.name),
            spec,
            gen: 0,
            tx: None,
            pending: None,
            thread: None,
            plan: None,
            armed: Vec::new(),
            feed: None,
            pending_lost: 0,
            dropped: 0,
            failures_in_row: 0,
            restart_at: None,
            started: Instant::now(),
            retiring: false,
        }
    }

    fn name(&self) -> &str {
        &self.spec.config.name
    }

    /// Hands `batch` (`n` records; and the losses not told yet) to the plugin's queue without
    /// waiting, or drops it (counted as its own loss) when the queue is full or the plugin down.
    /// A parked plugin thread is woken when `wake` is set (the round ended), or when enough
    /// batches wait.
    fn send(&mut self, batch: Arc<BatchWriter>, n: u64, now: Instant, wake: bool) {
        let Some(tx) = &self.tx else {
            self.dropped += n;
            return;
        };
        match tx.try_push(ToWorker::Batch(batch, self.pending_lost, now), wake) {
            Ok(()) => self.pending_lost = 0,
            Err(_) => {
                self.dropped += n;
                self.pending_lost += n;
            }
        }
    }
}

/// Plugins that get the same packed bytes: the same armed probe, with the same projection, at
/// each plan index. Each record is packed once for all of them.
struct Feed {
    /// By plan index: the armed probe (session index) and how its records are packed.
    sig: Vec<(usize, Option<Projection>)>,
    batch: BatchWriter,
    /// The first round's end that found `batch` holding records (see [`SEAL_AT`]).
    since: Option<Instant>,
    /// The slots reading it.
    members: Vec<usize>,
}

impl Feed {
    /// Hands the batch collected so far to every member's queue (shared, not copied); `wake`:
    /// see [`Slot::send`].
    fn seal(&mut self, slots: &mut [Option<Slot>], spare: &Spares, wake: bool) {
        if self.batch.is_empty() {
            return;
        }
        self.since = None;
        // Copied out, in one go, into a spare: packing record by record into the spares
        // (memory the plugins' threads had just read, on the other CPUs) missed the cache on
        // nearly every record; the feed's own batch stays in this thread's cache.
        let mut shared = spare.take();
        shared.copy_from(&self.batch);
        self.batch.clear();
        let batch = Arc::new(shared);
        let (n, now) = (batch.len() as u64, Instant::now());
        for &s in &self.members {
            if let Some(slot) = slots[s].as_mut() {
                slot.send(batch.clone(), n, now, wake);
            }
        }
        // Nobody took it (every queue full): its allocation is used again.
        if let Ok(b) = Arc::try_unwrap(batch) {
            spare.give(b);
        }
    }
}

/// Emptied batches for reuse, the last one given back taken first: its memory is the likeliest
/// to be in a cache still (taken in the order given back, the pump would cycle through every
/// spare, up to 64 of 128 KiB). Under a syscall storm on this machine's two busy CPUs the
/// difference was within the noise.
#[derive(Clone, Default)]
struct Spares(Arc<Mutex<Vec<BatchWriter>>>);

impl Spares {
    /// An empty batch: the spare given back last, or a new one.
    fn take(&self) -> BatchWriter {
        self.0.lock().unwrap().pop().unwrap_or_default()
    }

    /// Keeps `batch` (emptied) for reuse, unless [`SPARE_BATCHES`] are kept already.
    fn give(&self, mut batch: BatchWriter) {
        batch.clear();
        let mut spares = self.0.lock().unwrap();
        if spares.len() < SPARE_BATCHES {
            spares.push(batch);
        }
    }
}

/// The agent's state: the pipeline, the plugins and the routes between them.
pub struct Agent {
    tracefs: Tracefs,
    node: String,
    config_path: PathBuf,
    config: Config,
    metrics: AgentMetrics,
    plugin_metrics: Arc<PluginMetrics>,
    writer: Arc<Mutex<EventWriter>>,
    ready: Arc<AtomicBool>,
    status_tx: Sender<Status>,
    status_rx: Receiver<Status>,
    router: Router,
    /// The declarations armed so far, by session index (shared by identical ones).
    armed_decls: Vec<ProbeDecl>,
    /// How many plugins use each armed probe.
    users: Vec<usize>,
    pipeline: Option<Pipeline>,
    config_mtime: Option<SystemTime>,
    /// How the plugins name processes that are gone (see [`BatchComm`]).
    names: Arc<SharedNames>,
}

/// The pump's sink: each record to every plugin that declared its probe, packed once per feed.
struct Router {
    slots: Vec<Option<Slot>>,
    /// The feeds, by index (`None`: one nobody reads any more).
    feeds: Vec<Option<Feed>>,
    /// By session index: (feed, plan index) of every feed reading that probe.
    consumers: Vec<Vec<(usize, u32)>>,
    /// Emptied batches: the plugins' threads give them back, the feeds take them.
    spare: Spares,
    metrics: AgentMetrics,
    read: Vec<u64>,
    read_reported: Vec<u64>,
    lost_reported: Vec<u64>,
    /// [`HOLD`] (zero: every round's end hands every batch over).
    hold: Duration,
}

impl Router {
    /// Hands every feed's batch over now (the agent stops).
    fn seal_all(&mut self) {
        for feed in self.feeds.iter_mut().flatten() {
            feed.seal(&mut self.slots, &self.spare, true);
        }
    }
}

impl RecordSink for Router {
    fn record(&mut self, probe: usize, cpu: u32, pid: i32, ts: u64, payload: &[u8]) -> Result<()> {
        if let Some(r) = self.read.get_mut(cpu as usize) {
            *r += 1;
        }
        let Some(users) = self.consumers.get(probe) else { return Ok(()) };
        for &(f, pi) in users {
            let Some(feed) = self.feeds[f].as_mut() else { continue };
            match &feed.sig[pi as usize].1 {
                Some(p) => feed.batch.push_projected(pi, cpu, pid, ts, payload, p),
                None => feed.batch.push(pi, cpu, pid, ts, payload),
            }
            if feed.batch.len() >= MAX_BATCH {
                feed.seal(&mut self.slots, &self.spare, false);
            }
        }
        Ok(())
    }

    fn flush(&mut self, lost: &[u64]) -> Result<()> {
        if self.read.len() < lost.len() {
            self.read.resize(lost.len(), 0);
            self.read_reported.resize(lost.len(), 0);
        }
        if self.lost_reported.len() < lost.len() {
            self.lost_reported.resize(lost.len(), 0);
        }
        let mut new_lost = 0;
        for (cpu, &l) in lost.iter().enumerate() {
            let cpu_labels = vec![("cpu".to_string(), cpu.to_string())];
            let d = l - self.lost_reported[cpu];
            if d > 0 {
                self.metrics.events_lost.get_or_create(&cpu_labels).inc_by(d);
                self.lost_reported[cpu] = l;
                new_lost += d;
            }
            let r = self.read[cpu] - self.read_reported[cpu];
            if r > 0 {
                self.metrics.events_read.get_or_create(&cpu_labels).inc_by(r);
                self.read_reported[cpu] = self.read[cpu];
            }
        }
        for slot in self.slots.iter_mut().flatten() {
            if slot.tx.is_some() {
                slot.pending_lost += new_lost;
            }
        }
        let now = Instant::now();
        for feed in self.feeds.iter_mut().flatten() {
            if feed.batch.is_empty() {
                continue;
            }
            let since = *feed.since.get_or_insert(now);
            // Losses are told at once, with the records before them.
            if new_lost > 0 || feed.batch.len() >= SEAL_AT || now.duration_since(since) >= self.hold {
                feed.seal(&mut self.slots, &self.spare, true);
            }
        }
        for slot in self.slots.iter_mut().flatten() {
            // Losses a plugin got no batch to hear of: an empty one tells it.
            if slot.pending_lost > 0 && slot.tx.is_some() {
                slot.send(Arc::new(BatchWriter::new()), 0, now, true);
            }
            // The round ended: full batches sealed during it are taken now.
            if let Some(tx) = &slot.tx {
                tx.wake();
            }
            if slot.dropped > 0 {
                self.metrics.dropped.get_or_create(&slot.labels).inc_by(slot.dropped);
                slot.dropped = 0;
            }
        }
        Ok(())
    }
}

/// Installs the SIGHUP handler; [`take_hangup`] tells whether one came.
fn install_hup() -> Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    extern "C" fn on_hup(_: i32) {
        HUP.store(true, Ordering::SeqCst);
    }
    let act = SigAction::new(SigHandler::Handler(on_hup), SaFlags::SA_RESTART, SigSet::empty());
    // SAFETY: the handler only stores to an atomic.
    unsafe { sigaction(Signal::SIGHUP, &act) }.context("installing a SIGHUP handler")?;
    Ok(())
}

static HUP: AtomicBool = AtomicBool::new(false);

fn take_hangup() -> bool {
    HUP.swap(false, Ordering::SeqCst)
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Keeps every thread of ours out of the trace (the readers and this one are already): a
/// plugin's thread makes system calls for each batch, which would otherwise come back to the
/// plugins as events of their own making. The new threads are appended (a write without
/// `O_TRUNC`): opening `set_event_notrace_pid` with `O_TRUNC` first clears the kernel's pid
/// filter, and rewriting it so while events flowed lost bursts of the traced programs' events
/// (10 to 30 of 20000 getppid calls in the agent's reload test, 2 runs of 3).
fn untrace_own_threads(pipeline: &Pipeline) {
    use std::io::Write;
    let file = pipeline.session().instance().file("set_event_notrace_pid");
    let Ok(current) = tracefs::read_text(&file) else { return };
    let known: std::collections::BTreeSet<&str> = current.split_whitespace().collect();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return };
    let new: Vec<String> = tasks
        .flatten()
        .map(|t| t.file_name().to_string_lossy().into_owned())
        .filter(|t| !known.contains(t.as_str()))
        .collect();
    if !new.is_empty() {
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&file) {
            let _ = f.write_all(new.join(" ").as_bytes());
        }
    }
}

/// What the agent's plugins share to name processes that are gone: the names they exited
/// with (as `run` keeps them, see [`ExitNames`]), and `saved_cmdlines` as last read by any
/// plugin's thread, and when.
#[derive(Default)]
struct SharedNames {
    /// Taken (and its instance removed) when the agent shuts down.
    exits: Mutex<Option<ExitNames>>,
    saved: Mutex<Option<SavedCopy>>,
}

/// A copy of `saved_cmdlines` and when it was read.
type SavedCopy = (Instant, Arc<HashMap<i32, String>>);

/// Command names for an agent's plugin, as `run` gives them: `/proc/PID/comm`, else (the
/// process is gone) the name it exited with, else the kernel's `saved_cmdlines`. That file
/// (thousands of lines, which the kernel's seq_file walks again from the start for each page
/// read: about 10 ms) is shared by all the agent's plugins: a copy read since the batch began
/// answers, and so does one read less than [`SAVED_FRESH`] ago for the pids it has. On a
/// node where processes come and go all the time (a build), reading it for each one that
/// exited, in every plugin, was most of a plugin thread's own cost; with the exit names it is
/// read only for a process that exited before the agent started following exits.
struct BatchComm {
    tracefs: Tracefs,
    /// When the batch being delivered was handed to the plugin (the worker sets it).
    batch_start: Arc<Mutex<Instant>>,
    names: Arc<SharedNames>,
}

/// How long a copy of `saved_cmdlines` names the pids it has.
const SAVED_FRESH: Duration = Duration::from_secs(1);

impl crate::plugin::CommLookup for BatchComm {
    fn comm(&mut self, pid: i32) -> Option<String> {
        if let Ok(c) = std::fs::read_to_string(format!("/proc/{pid}/comm")) {
            return Some(c.trim_end().to_string());
        }
        if let Some(c) = self.names.exits.lock().unwrap().as_ref().and_then(|e| e.name(pid)) {
            return Some(c);
        }
        let since = *self.batch_start.lock().unwrap();
        let usable = |(at, m): &(Instant, Arc<HashMap<i32, String>>)| {
            *at >= since || (at.elapsed() < SAVED_FRESH && m.contains_key(&pid))
        };
        let copy = self.names.saved.lock().unwrap().clone().filter(usable);
        let copy = match copy {
            Some((_, m)) => m,
            None => {
                // Read without the lock: a plugin never waits on another's read (its time
                // counts against its budget).
                let m = Arc::new(tracefs::saved_cmdlines(&self.tracefs).ok()?);
                *self.names.saved.lock().unwrap() = Some((Instant::now(), m.clone()));
                m
            }
        };
        copy.get(&pid).cloned()
    }
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// A plugin's thread: load, `init`, wait for the layouts, then one `on-batch` per batch until
/// the queue closes (then `finish`) or the plugin fails.
#[allow(clippy::too_many_arguments)]
fn worker(
    spec: PluginSpec,
    tracefs: Tracefs,
    output: AgentOutput,
    rx: QueueRx<ToWorker>,
    spare: Spares,
    status: Sender<Status>,
    (slot, gen): (usize, u64),
    metrics: AgentMetrics,
    plugin_metrics: Arc<PluginMetrics>,
    names: Arc<SharedNames>,
) {
    let report = |r: Report| {
        let _ = status.send(Status { slot, gen, report: r });
    };
    let labels = plugin_labels(&spec.config.name);
    let cpu0 = thread_cpu();
    let batch_start = Arc::new(Mutex::new(Instant::now()));
    let started = (|| -> Result<crate::plugin::Plugin> {
        let source = crate::pack::RunSource::resolve(&spec.config.source, &spec.trust)?;
        let mut plugin = source.load(&spec.sandbox, Box::new(output))?;
        plugin.set_metrics(plugin_metrics, &format!("{}\0{gen}", spec.config.name));
        // A process that exits before its events are delivered is still named (from the
        // kernel's saved_cmdlines), as in `run`.
        let comm = BatchComm { tracefs: tracefs.clone(), batch_start: batch_start.clone(), names };
        plugin.set_comm_lookup(Box::new(comm));
        // Stack addresses a plugin asks about are named on the host, as in `run`.
        plugin.set_symbolizer(Box::new(crate::symbolize::StackSymbolizer::live()));
        let plan = plugin.init(&spec.args, Arc::new(crate::kernel_info::LiveKernel::new(&tracefs)))?;
        plan.validate(&spec.policy).with_context(|| format!("plugin {}: its probe plan was refused", plugin.name()))?;
        source.check_plan(&plan)?;
        crate::run::check_sources(&tracefs, &plan, &plugin)?;
        report(Report::Planned(plan));
        Ok(plugin)
    })();
    let mut plugin = match started {
        Ok(p) => p,
        Err(e) => return report(Report::Failed(format!("{e:#}"))),
    };
    let cpu = metrics.cpu_seconds.get_or_create_owned(&labels);
    let delivered = metrics.delivered.get_or_create_owned(&labels);
    let latency = metrics.batch_latency.get_or_create_owned(&labels);
    let mut last_cpu = cpu0;
    let mut last_wall = Instant::now();
    let account = |last: &mut Duration, wall: &mut Instant| {
        let now = thread_cpu();
        cpu.inc_by((now - *last).as_secs_f64());
        *last = now;
        *wall = Instant::now();
    };
    account(&mut last_cpu, &mut last_wall);
    while let Some(msg) = rx.recv() {
        let result = match msg {
            ToWorker::Layouts(l) => plugin.set_layouts(l),
            ToWorker::Batch(b, lost, sent) => {
                *batch_start.lock().unwrap() = Instant::now();
                let r = plugin.on_batch(b.as_bytes(), lost);
                if r.is_ok() {
                    delivered.inc_by(b.len() as u64);
                    latency.observe(sent.elapsed().as_secs_f64());
                }
                // The last of its feed to be done with it gives it back for reuse.
                if let Ok(b) = Arc::try_unwrap(b) {
                    spare.give(b);
                }
                r
            }
        };
        // The thread's CPU time is a system call (not the vDSO's): read when the queue is
        // empty (the thread is about to park) or every ACCOUNT_EVERY, not after each batch.
        if result.is_err() || rx.is_empty() || last_wall.elapsed() >= ACCOUNT_EVERY {
            account(&mut last_cpu, &mut last_wall);
        }
        if let Err(e) = result {
            return report(Report::Failed(e.to_string()));
        }
    }
    if let Err(e) = plugin.finish() {
        eprintln!("wasmprobe: warning: {e}");
    }
    account(&mut last_cpu, &mut last_wall);
    report(Report::Finished);
}

/// How often a busy plugin's thread adds its CPU time to its metric at least.
const ACCOUNT_EVERY: Duration = Duration::from_millis(100);

/// Identical declarations (kind, target, fetch arguments, filter, maxactive) are armed once.
fn same_probe(a: &ProbeDecl, b: &ProbeDecl) -> bool {
    a.kind == b.kind
        && a.target == b.target
        && a.fetchargs == b.fetchargs
        && a.filter == b.filter
        && a.maxactive == b.maxactive
}

impl Agent {
    /// Reads and validates the config; nothing is started yet.
    pub fn new(config_path: &Path) -> Result<Agent> {
        let config = Config::read(config_path)?;
        config.validate()?;
        let node = config.node_name();
        let plugin_metrics = Arc::new(PluginMetrics::default());
        let labels: Vec<(String, String)> = config.labels.clone().into_iter().collect();
        let metrics = AgentMetrics::new(&node, &labels, plugin_metrics.clone());
        let writer = Arc::new(Mutex::new(EventWriter::open(&config.events)?));
        let (status_tx, status_rx) = unbounded();
        let tracefs = crate::owned::open_for_run()?;
        Ok(Agent {
            tracefs,
            node,
            config_mtime: mtime(config_path),
            config_path: config_path.to_path_buf(),
            config,
            router: Router {
                slots: Vec::new(),
                feeds: Vec::new(),
                consumers: Vec::new(),
                spare: Spares::default(),
                metrics: metrics.clone(),
                read: Vec::new(),
                read_reported: Vec::new(),
                lost_reported: Vec::new(),
                hold: HOLD,
            },
            metrics,
            plugin_metrics,
            writer,
            ready: Arc::new(AtomicBool::new(false)),
            status_tx,
            status_rx,
            armed_decls: Vec::new(),
            users: Vec::new(),
            pipeline: None,
            names: Arc::default(),
        })
    }

    /// The config in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The metrics the agent keeps (served by [`super::metrics::serve`]).
    pub fn metrics(&self) -> AgentMetrics {
        self.metrics.clone()
    }

    /// Set once the probes are armed and the plugins run (`/readyz`).
    pub fn ready_flag(&self) -> Arc<AtomicBool> {
        self.ready.clone()
    }

    /// Starts generation `gen + 1` of the plugin in `slot`.
    fn spawn(&mut self, s: usize) -> Result<()> {
        let queue_len = self.config.queue_batches;
        let (tracefs, node, writer, status, metrics) = (
            self.tracefs.clone(),
            self.node.clone(),
            self.writer.clone(),
            self.status_tx.clone(),
            self.metrics.clone(),
        );
        let slot = self.router.slots[s].as_mut().expect("live slot");
        slot.gen += 1;
        let (tx, rx) = queue(queue_len);
        let spare_tx = self.router.spare.clone();
        let version = slot_version(&slot.spec);
        let output = AgentOutput::new(writer, &node, slot.name(), &version);
        let (spec, gen) = (slot.spec.clone(), slot.gen);
        // A new start declares its metrics anew: the old series go (a counter reset).
        self.plugin_metrics.remove(slot.name());
        let plugin_metrics = self.plugin_metrics.clone();
        let names = self.names.clone();
        slot.pending = Some(tx);
        slot.restart_at = None;
        slot.started = Instant::now();
        slot.thread = Some(
            std::thread::Builder::new()
                .name(format!("wasmprobe-{}", slot.name()))
                .spawn(move || {
                    worker(spec, tracefs, output, rx, spare_tx, status, (s, gen), metrics, plugin_metrics, names)
                })
                .context("starting a plugin thread")?,
        );
        Ok(())
    }

    /// Arms (or shares) the probes of `plan` for the plugin in `slot` and gives it its layouts.
    fn attach(&mut self, s: usize, plan: Plan) -> Result<()> {
        let name = self.router.slots[s].as_ref().expect("live slot").name().to_string();
        // Plan probes identical to one armed already share it; the others are armed now
        // (once each, even when the plan repeats one).
        let mut armed = vec![0usize; plan.probes.len()];
        let mut new_of: Vec<Option<usize>> = vec![None; plan.probes.len()];
        let mut new: Vec<ProbeDecl> = Vec::new();
        let mut reused: Vec<usize> = Vec::new();
        for (i, d) in plan.probes.iter().enumerate() {
            let active = |k: usize| self.users.get(k).is_some_and(|&u| u > 0);
            let parked = |k: usize| self.users.get(k).is_some_and(|&u| u == 0) && !reused.contains(&k);
            if let Some(k) = (0..self.armed_decls.len()).find(|&k| active(k) && same_probe(&self.armed_decls[k], d)) {
                armed[i] = k;
            } else if let Some(k) =
                (0..self.armed_decls.len()).find(|&k| parked(k) && same_probe(&self.armed_decls[k], d))
            {
                // A probe a stopped plugin left parked (see Session::remove): taken back.
                reused.push(k);
                armed[i] = k;
            } else if let Some(j) = new.iter().position(|n| same_probe(n, d)) {
                new_of[i] = Some(j);
            } else {
                let mut renamed = d.clone();
                // Unique in our group whatever the plugins called their probes.
                renamed.name = format!("p{}_{}", self.armed_decls.len() + new.len(), d.name);
                renamed.name.truncate(63);
                new_of[i] = Some(new.len());
                new.push(renamed);
            }
        }
        for &k in &reused {
            let pipeline = self.pipeline.as_mut().expect("attach after the pipeline exists");
            pipeline.session_mut().restore(k).with_context(|| format!("plugin {name}: cannot arm its probes"))?;
        }
        if !new.is_empty() {
            let pipeline = self.pipeline.as_mut().expect("attach after the pipeline exists");
            let range = pipeline
                .session_mut()
                .add(TAG, &new)
                .with_context(|| format!("plugin {name}: cannot arm its probes"))?;
            for (a, j) in armed.iter_mut().zip(&new_of) {
                if let Some(j) = j {
                    *a = range.start + j;
                }
            }
            self.armed_decls.extend(new);
            self.users.resize(self.armed_decls.len(), 0);
        }
        self.wire(s, plan, armed)
    }

    /// Routes the armed probes `armed` to the plugin in `slot` and sends it its layouts. It
    /// joins the feed of the plugins that read the same (or starts one).
    fn wire(&mut self, s: usize, plan: Plan, armed: Vec<usize>) -> Result<()> {
        let session = self.pipeline.as_ref().expect("pipeline").session();
        let mut layouts = Vec::with_capacity(armed.len());
        let mut sig = Vec::with_capacity(armed.len());
        for (&k, d) in armed.iter().zip(&plan.probes) {
            let p = &session.probes()[k];
            let l = crate::run::layout_of(&p.system, &p.event, p.id, &p.format)?;
            let projection = match &d.fields {
                Some(f) => Some(Projection::new(&l, f).map_err(|m| anyhow::anyhow!("probe {}: {m}", d.name))?),
                None => None,
            };
            sig.push((k, projection));
            layouts.push(l);
        }
        if self.router.consumers.len() < self.armed_decls.len() {
            self.router.consumers.resize(self.armed_decls.len(), Vec::new());
        }
        for &k in &armed {
            self.users[k] += 1;
        }
        let router = &mut self.router;
        let f = match router.feeds.iter().position(|f| f.as_ref().is_some_and(|f| f.sig == sig)) {
            Some(f) => {
                // What the feed collected before this plugin came is not for it.
                let feed = router.feeds[f].as_mut().expect("found");
                feed.seal(&mut router.slots, &router.spare, true);
                feed.members.push(s);
                f
            }
            None => {
                let f = router.feeds.iter().position(Option::is_none).unwrap_or(router.feeds.len());
                for (pi, (k, _)) in sig.iter().enumerate() {
                    router.consumers[*k].push((f, pi as u32));
                }
                let feed = Feed { sig, batch: BatchWriter::new(), since: None, members: vec![s] };
                match router.feeds.get_mut(f) {
                    Some(slot) => *slot = Some(feed),
                    None => router.feeds.push(Some(feed)),
                }
                f
            }
        };
        if let Some(p) = &self.pipeline {
            untrace_own_threads(p);
        }
        let slot = router.slots[s].as_mut().expect("live slot");
        let tx = slot.pending.take().expect("planned slot has its channel");
        tx.push(ToWorker::Layouts(layouts));
        slot.tx = Some(tx);
        slot.feed = Some(f);
        slot.plan = Some(plan);
        slot.armed = armed;
        slot.pending_lost = 0;
        self.metrics.up.get_or_create(&slot.labels).set(1);
        // Present from the start, so that "nothing dropped" reads 0 rather than no series.
        self.metrics.dropped.get_or_create(&slot.labels).inc_by(0);
        self.metrics.failures.get_or_create(&slot.labels).inc_by(0);
        Ok(())
    }

    /// Stops routing to the plugin in `slot` (what its feed collected so far is handed over
    /// first) and releases its probes (disabled and parked when no other plugin reads them:
    /// see `Session::remove`).
    fn unwire(&mut self, s: usize) -> Result<()> {
        let router = &mut self.router;
        let Some(f) = router.slots[s].as_mut().and_then(|slot| slot.feed.take()) else { return Ok(()) };
        if let Some(feed) = router.feeds[f].as_mut() {
            feed.seal(&mut router.slots, &router.spare, true);
            feed.members.retain(|&m| m != s);
            if feed.members.is_empty() {
                for (k, _) in &feed.sig {
                    router.consumers[*k].retain(|&(o, _)| o != f);
                }
                router.feeds[f] = None;
            }
        }
        let slot = router.slots[s].as_mut().expect("live slot");
        slot.tx = None;
        let armed = std::mem::take(&mut slot.armed);
        slot.plan = None;
        let mut gone = Vec::new();
        for &k in &armed {
            self.users[k] -= 1;
            if self.users[k] == 0 {
                gone.push(k);
            }
        }
        gone.sort_unstable();
        gone.dedup();
        if !gone.is_empty() {
            if let Some(p) = &mut self.pipeline {
                p.session_mut().remove(&gone)?;
            }
        }
        Ok(())
    }

    /// Runs until SIGINT/SIGTERM: starts the plugins, arms their probes in one pipeline,
    /// pumps, supervises, reloads.
    pub fn run(&mut self) -> Result<()> {
        crate::child::install_stop_handlers()?;
        install_hup()?;
        let specs = self.config.validate()?;
        // Before any plugin starts: the names of processes that exit from now on are kept.
        *self.names.exits.lock().unwrap() = ExitNames::start(&self.tracefs).and_then(Arc::into_inner);
        for spec in specs {
            self.router.slots.push(Some(Slot::new(spec)));
        }
        // The first plans are armed together, in one instance.
        for s in 0..self.router.slots.len() {
            self.spawn(s)?;
        }
        let mut planned: HashMap<usize, Plan> = HashMap::new();
        let mut waiting: Vec<usize> = (0..self.router.slots.len()).collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !waiting.is_empty() && Instant::now() < deadline && !crate::child::stop_requested() {
            let Ok(st) = self.status_rx.recv_timeout(Duration::from_millis(100)) else { continue };
            waiting.retain(|&w| w != st.slot);
            match st.report {
                Report::Planned(plan) => {
                    planned.insert(st.slot, plan);
                }
                other => self.handle(Status { report: other, ..st })?,
            }
        }
        self.pipeline = Some(Pipeline::arm(&self.tracefs, TAG, &[], Pages::Live)?);
        let mut order: Vec<usize> = planned.keys().copied().collect();
        order.sort_unstable();
        for s in order {
            let plan = planned.remove(&s).expect("listed");
            if let Err(e) = self.attach(s, plan) {
                self.fail(s, &format!("{e:#}"))?;
            }
        }
        self.pipeline.as_mut().expect("armed").start()?;
        self.ready.store(true, Ordering::SeqCst);
        let mut last_check = Instant::now();
        while !crate::child::stop_requested() {
            let pipeline = self.pipeline.as_mut().expect("armed");
            pipeline.step(&mut self.router, Duration::from_millis(100))?;
            while let Ok(st) = self.status_rx.try_recv() {
                self.handle(st)?;
            }
            let now = Instant::now();
            let due: Vec<usize> = (0..self.router.slots.len())
                .filter(|&s| self.router.slots[s].as_ref().is_some_and(|sl| sl.restart_at.is_some_and(|t| t <= now)))
                .collect();
            for s in due {
                self.metrics.restarts.get_or_create(&self.router.slots[s].as_ref().expect("live").labels).inc();
                self.spawn(s)?;
            }
            let changed = now.duration_since(last_check) >= Duration::from_secs(1) && {
                last_check = now;
                let m = mtime(&self.config_path);
                m != self.config_mtime
            };
            if take_hangup() || changed {
                self.config_mtime = mtime(&self.config_path);
                self.reload();
            }
        }
        self.shutdown()
    }

    /// Acts on a plugin thread's report.
    fn handle(&mut self, st: Status) -> Result<()> {
        let Some(slot) = self.router.slots[st.slot].as_mut() else { return Ok(()) };
        if slot.gen != st.gen {
            return Ok(());
        }
        match st.report {
            Report::Planned(_) if slot.retiring => {}
            Report::Planned(plan) => {
                if let Err(e) = self.attach(st.slot, plan) {
                    self.fail(st.slot, &format!("{e:#}"))?;
                }
            }
            Report::Failed(why) => self.fail(st.slot, &why)?,
            Report::Finished => {
                if let Some(t) = slot.thread.take() {
                    let _ = t.join();
                }
                if slot.retiring {
                    self.router.slots[st.slot] = None;
                }
            }
        }
        Ok(())
    }

    /// The plugin in `slot` failed: stop routing to it, and restart it later by its policy.
    fn fail(&mut self, s: usize, why: &str) -> Result<()> {
        // One line: the reason, without the trap's backtrace.
        let first = why.lines().next().unwrap_or(why).trim_end_matches(" at wasm backtrace:");
        let name = self.router.slots[s].as_ref().map_or("?", |x| x.name());
        eprintln!("wasmprobe: error: plugin {name}: {first}");
        self.unwire(s)?;
        let slot = self.router.slots[s].as_mut().expect("live slot");
        slot.pending = None;
        if let Some(t) = slot.thread.take() {
            let _ = t.join();
        }
        self.metrics.failures.get_or_create(&slot.labels).inc();
        self.metrics.up.get_or_create(&slot.labels).set(0);
        // A plugin that ran well for a while starts its backoff again from the first delay.
        if slot.started.elapsed() >= slot.spec.backoff_max * 2 {
            slot.failures_in_row = 0;
        }
        if slot.spec.config.restart == Restart::OnFailure && !slot.retiring {
            let factor = 1u32.checked_shl(slot.failures_in_row.min(20)).unwrap_or(u32::MAX);
            let delay = slot.spec.backoff.saturating_mul(factor).min(slot.spec.backoff_max);
            slot.restart_at = Some(Instant::now() + delay);
            slot.failures_in_row += 1;
        }
        Ok(())
    }

    /// Re-reads the config: added plugins start, removed ones stop, changed ones are replaced;
    /// the others are not touched. A config that does not validate changes nothing.
    fn reload(&mut self) {
        let result = (|| -> Result<()> {
            let config = Config::read(&self.config_path)?;
            let specs = config.validate()?;
            if config.events != self.config.events || config.metrics_listen != self.config.metrics_listen {
                eprintln!("wasmprobe: warning: reload: events and metrics_listen take effect at the next start");
            }
            let keep: Vec<bool> = self
                .router
                .slots
                .iter()
                .map(|s| s.as_ref().is_some_and(|s| !s.retiring && specs.iter().any(|n| n.config == s.spec.config)))
                .collect();
            for (s, keep) in keep.into_iter().enumerate() {
                if self.router.slots[s].as_ref().is_some_and(|x| !x.retiring) && !keep {
                    self.retire(s)?;
                }
            }
            for spec in specs {
                let running = self.router.slots.iter().flatten().any(|s| !s.retiring && s.spec.config == spec.config);
                if !running {
                    self.router.slots.push(Some(Slot::new(spec)));
                    let s = self.router.slots.len() - 1;
                    self.spawn(s)?;
                }
            }
            self.config = config;
            Ok(())
        })();
        let outcome = match result {
            Ok(()) => "ok",
            Err(e) => {
                eprintln!("wasmprobe: error: reload refused, the running plugins stay as they were: {e:#}");
                "refused"
            }
        };
        self.metrics.reloads.get_or_create(&vec![("result".to_string(), outcome.to_string())]).inc();
    }

    /// Stops the plugin in `slot` for good: its queue closes, it finishes, its probes go.
    fn retire(&mut self, s: usize) -> Result<()> {
        // What its feed collected for it so far is delivered (by `unwire`) before its queue
        // closes.
        if let Some(slot) = self.router.slots[s].as_mut() {
            slot.retiring = true;
            slot.restart_at = None;
            slot.pending = None;
            self.plugin_metrics.remove(slot.name());
            self.metrics.up.get_or_create(&slot.labels).set(0);
        }
        self.unwire(s)?;
        if let Some(slot) = self.router.slots[s].as_mut() {
            if slot.thread.is_none() {
                self.router.slots[s] = None;
            }
        }
        Ok(())
    }

    /// Drains the buffers into the plugins, closes their queues, lets each finish.
    fn shutdown(&mut self) -> Result<()> {
        let drained = match &mut self.pipeline {
            Some(p) => p.drain(&mut self.router),
            None => Ok(()),
        };
        self.router.seal_all();
        for slot in self.router.slots.iter_mut().flatten() {
            slot.tx = None;
            slot.pending = None;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.router.slots.iter().flatten().any(|s| s.thread.is_some()) && Instant::now() < deadline {
            match self.status_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(st) => {
                    if let Some(slot) = self.router.slots[st.slot].as_mut() {
                        if matches!(st.report, Report::Finished | Report::Failed(_)) {
                            if let Report::Failed(why) = &st.report {
                                eprintln!("wasmprobe: error: plugin {}: {why}", slot.name());
                            }
                            if let Some(t) = slot.thread.take() {
                                let _ = t.join();
                            }
                        }
                    }
                }
                Err(_) => continue,
            }
        }
        self.pipeline = None;
        // Its instance goes now, even if a plugin's thread never finished.
        self.names.exits.lock().unwrap().take();
        drained
    }
}

/// The version the plugin's events carry: its pack's, or the binary's for a built-in or a
/// plain component.
fn slot_version(spec: &PluginSpec) -> String {
    match crate::pack::RunSource::resolve(&spec.config.source, &spec.trust) {
        Ok(crate::pack::RunSource::Pack { pack, .. }) => pack.manifest().version.clone(),
        _ => env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// `wasmprobe agent --check`: validates the config and asks every plugin for its plan
/// (under a kernel that says it can do everything) without touching the kernel.
pub fn check(config_path: &Path) -> Result<String> {
    let config = Config::read(config_path)?;
    let specs = config.validate().with_context(|| format!("config {}", config_path.display()))?;
    for spec in &specs {
        let name = &spec.config.name;
        let source = crate::pack::RunSource::resolve(&spec.config.source, &spec.trust)
            .with_context(|| format!("plugin {name}"))?;
        let mut plugin = source
            .load(&spec.sandbox, Box::new(crate::plugin::StdOutput::default()))
            .with_context(|| format!("plugin {name}"))?;
        let kernel = Arc::new(crate::plugin::FixedKernel::with_features(&["kprobe", "uprobe", "eprobe", "tracepoint"]));
        let plan = plugin.init(&spec.args, kernel).with_context(|| format!("plugin {name}"))?;
        plan.validate(&spec.policy).with_context(|| format!("plugin {name}: its probe plan was refused"))?;
        source.check_plan(&plan).with_context(|| format!("plugin {name}"))?;
    }
    Ok(format!("config {}: valid, {} plugin(s)", config_path.display(), specs.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wired slot for plugin `name` whose queue holds `queue` batches.
    fn slot(name: &str, len: usize) -> (Slot, QueueRx<ToWorker>) {
        let config = Config::parse(&format!("[[plugin]]\nname = \"{name}\"\nsource = \"syscount\"\n")).unwrap();
        let mut s = Slot::new(config.validate().unwrap().remove(0));
        let (tx, rx) = queue(len);
        s.tx = Some(tx);
        s.feed = Some(0);
        (s, rx)
    }

    fn batch(m: ToWorker) -> (Arc<BatchWriter>, u64) {
        match m {
            ToWorker::Batch(b, lost, _) => (b, lost),
            ToWorker::Layouts(_) => panic!("a batch was expected"),
        }
    }

    /// A router with one feed of probe 0 read by `slots`, holding small batches for `hold`.
    fn one_feed(slots: Vec<Slot>, hold: Duration, metrics: &AgentMetrics) -> Router {
        let feed =
            Feed { sig: vec![(0, None)], batch: BatchWriter::new(), since: None, members: (0..slots.len()).collect() };
        Router {
            slots: slots.into_iter().map(Some).collect(),
            feeds: vec![Some(feed)],
            consumers: vec![vec![(0, 0)]],
            spare: Spares::default(),
            metrics: metrics.clone(),
            read: Vec::new(),
            read_reported: Vec::new(),
            lost_reported: Vec::new(),
            hold,
        }
    }

    #[test]
    fn a_small_batch_waits_for_more_records_unless_events_were_lost_or_the_agent_stops() {
        let metrics = AgentMetrics::new("n", &[], Arc::new(PluginMetrics::default()));
        let (a, ra) = slot("a", 8);
        let mut router = one_feed(vec![a], Duration::from_secs(3600), &metrics);
        router.record(0, 0, 7, 1, &[1, 2, 3, 4]).unwrap();
        router.flush(&[0]).unwrap();
        router.flush(&[0]).unwrap();
        assert!(ra.try_recv().is_none(), "a batch of one record was handed over at once");
        // Enough records: handed over at the round's end.
        for ts in 2..=SEAL_AT as u64 {
            router.record(0, 0, 7, ts, &[1, 2, 3, 4]).unwrap();
        }
        router.flush(&[0]).unwrap();
        assert_eq!(batch(ra.try_recv().unwrap()).0.len(), SEAL_AT);
        // A loss is told at once (with the next batch).
        router.record(0, 0, 7, 9000, &[1, 2, 3, 4]).unwrap();
        router.flush(&[3]).unwrap();
        let (b, lost) = batch(ra.try_recv().unwrap());
        assert_eq!((b.len(), lost), (1, 3));
        // The agent stops: what is held goes.
        router.record(0, 0, 7, 9001, &[1, 2, 3, 4]).unwrap();
        router.flush(&[3]).unwrap();
        assert!(ra.try_recv().is_none());
        router.seal_all();
        assert_eq!(batch(ra.try_recv().unwrap()).0.len(), 1);
        // Held no longer than the hold: the next round's end after it hands it over.
        let (a, ra) = slot("a", 8);
        let mut router = one_feed(vec![a], Duration::from_millis(20), &metrics);
        router.record(0, 0, 7, 1, &[1, 2, 3, 4]).unwrap();
        router.flush(&[0]).unwrap();
        assert!(ra.try_recv().is_none());
        std::thread::sleep(Duration::from_millis(30));
        router.flush(&[0]).unwrap();
        assert_eq!(batch(ra.try_recv().unwrap()).0.len(), 1);
    }

    #[test]
    fn a_feed_packs_once_for_its_plugins_and_a_full_queue_drops_for_its_plugin_alone() {
        let metrics = AgentMetrics::new("n", &[], Arc::new(PluginMetrics::default()));
        let ((a, ra), (b, rb)) = (slot("a", 4), slot("b", 1));
        let mut router = one_feed(vec![a, b], Duration::ZERO, &metrics);
        router.record(0, 0, 7, 1, &[1, 2, 3, 4]).unwrap();
        router.record(0, 1, 8, 2, &[5, 6, 7, 8]).unwrap();
        router.flush(&[0, 0]).unwrap();
        router.record(0, 0, 7, 3, &[9, 9, 9, 9]).unwrap();
        router.flush(&[0, 0]).unwrap();
        // One packed batch, the same allocation in both queues.
        let (a1, b1) = (batch(ra.try_recv().unwrap()), batch(rb.try_recv().unwrap()));
        assert!(Arc::ptr_eq(&a1.0, &b1.0));
        assert_eq!((a1.0.len(), a1.1), (2, 0));
        let mut expected = BatchWriter::new();
        expected.push(0, 0, 7, 1, &[1, 2, 3, 4]);
        expected.push(0, 1, 8, 2, &[5, 6, 7, 8]);
        assert_eq!(a1.0.as_bytes(), expected.as_bytes());
        // b's queue (one batch) was full for the second: a got it, b lost it, counted as b's.
        assert_eq!(batch(ra.try_recv().unwrap()).0.len(), 1);
        assert!(rb.try_recv().is_none());
        let text = metrics.prometheus_text();
        assert!(text.contains("wasmprobe_plugin_events_dropped_total{node=\"n\",plugin=\"b\"} 1\n"), "{text}");
        assert!(!text.contains("wasmprobe_plugin_events_dropped_total{node=\"n\",plugin=\"a\"}"), "{text}");
        // b hears of it as lost with its next batch.
        drop(b1);
        router.record(0, 0, 7, 4, &[0, 0, 0, 0]).unwrap();
        router.flush(&[0, 0]).unwrap();
        let b2 = batch(rb.try_recv().unwrap());
        assert_eq!((b2.0.len(), b2.1), (1, 1));
        assert_eq!(batch(ra.try_recv().unwrap()).1, 0);
    }
}
