//! One loaded plugin: its own `Store`, instance and limits, and the calls the run makes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker, Resource, ResourceTable};
use wasmtime::{Store, StoreContextMut, Trap, UpdateDeadline};
use wasmtime_wasi::p2::{DynPollable, Pollable};
use wasmtime_wasi::{HostMonotonicClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::batch::BatchWriter;
use super::bindings::{self, types as wit};
use super::cache::{self, CacheOutcome};
use super::error::{Call, Error};
use super::kernel::{CommLookup, FixedKernel, KernelInfo, ProcComm};
use super::layout::Layout;
use super::output::{CapturedStream, Level, Output, OutputCap, Stdio};
use super::plan::{Plan, ProbeDecl};
use super::project::Projection;
use super::sandbox::{engine, Limits, Sandbox, STOP_FINISH, STOP_GRACE};
use super::stacks::{StackKinds, Symbolizer};

/// Where a plugin comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// A `.wasm` component file; the plugin's name is the file stem.
    Path(PathBuf),
    /// A built-in example by name (see [`super::builtin_names`]).
    Builtin(String),
}

impl PluginSource {
    /// A built-in name if `arg` is one (and no such file exists), else a path.
    pub fn parse(arg: &str) -> PluginSource {
        if super::builtin(arg).is_some() && !std::path::Path::new(arg).exists() {
            PluginSource::Builtin(arg.to_string())
        } else {
            PluginSource::Path(arg.into())
        }
    }

    /// The name messages use for the plugin.
    pub fn name(&self) -> String {
        match self {
            PluginSource::Builtin(n) => n.clone(),
            PluginSource::Path(p) => {
                p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| p.display().to_string())
            }
        }
    }
}

/// How a load went, for `--verbose` and tests.
#[derive(Debug, Clone)]
pub struct LoadInfo {
    /// Whether the compiled code came from the cache.
    pub cache: CacheOutcome,
    /// Time to get the compiled component (compile or map).
    pub compile: Duration,
    /// Time to link and instantiate it.
    pub instantiate: Duration,
    /// Size of the component in bytes.
    pub wasm_bytes: usize,
}

/// The store's data: everything the host functions of one plugin need.
pub(crate) struct State {
    pub(crate) name: String,
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: Limits,
    pub(crate) sink: Box<dyn Output>,
    pub(crate) cap: OutputCap,
    pub(crate) kernel: Arc<dyn KernelInfo>,
    pub(crate) comm: Box<dyn CommLookup>,
    pub(crate) layouts: Vec<wit::Layout>,
    pub(crate) lost_total: u64,
    /// Where the plugin's timeline marks go; `None`: nowhere (`timeline.enabled` is false).
    pub(crate) timeline: Option<Box<dyn super::Timeline>>,
    /// Where the plugin's metrics go, under which name; `None`: nowhere (`metrics.enabled`
    /// is false).
    pub(crate) metrics: Option<(Arc<crate::agent::plugin_metrics::PluginMetrics>, String)>,
    /// Metrics declared while none are kept (their handles).
    pub(crate) metrics_declared: u32,
    /// `stacks.request` calls made during `init`, in order.
    pub(crate) stack_requests: Vec<(String, super::stacks::StackKinds)>,
    /// Whether `init` has returned (stack requests are refused from then on).
    pub(crate) initialized: bool,
    /// What names the addresses of `stacks.symbolize`.
    pub(crate) symbolizer: Box<dyn super::stacks::Symbolizer>,
    /// Where `stacks.write-folded` writes: the user's `--arg folded=FILE`, set at `init`.
    pub(crate) folded: crate::symbolize::folded::FoldedFile,
    clock: CallClock,
    /// The plugin's monotonic clock (WASI's `now`), to tell whether a timer is due.
    clock_base: PluginClock,
}

/// The monotonic clock a plugin reads through WASI: nanoseconds since it was loaded.
#[derive(Clone, Copy)]
struct PluginClock(Instant);

impl HostMonotonicClock for PluginClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

/// The wall-clock accounting of the call in progress, checked by [`watchdog`] at every epoch
/// tick while the plugin runs.
struct CallClock {
    started: Instant,
    budget: Duration,
    call: Call,
    /// When a call of this plugin first saw the run's stop request.
    stop_seen: Option<Instant>,
}

/// The most random bytes one WASI call may ask for (more traps the plugin): enough for any
/// key or seed, small enough that the call is quick.
const MAX_RANDOM_BYTES: u64 = 1 << 20;

/// The error a call is interrupted with when the run was asked to stop and it did not return.
#[derive(Debug, thiserror::Error)]
#[error("interrupted: the run was asked to stop")]
struct StopInterrupt;

/// The error a plugin's attempt to wait on a timer traps with (see [`link_clocks`]).
#[derive(Debug, thiserror::Error)]
#[error("tried to wait {0} on a timer (wasi:clocks/monotonic-clock {1}): plugins may not sleep")]
struct SleepRefused(String, &'static str);

/// Runs at every epoch tick while a plugin executes: interrupts a call that is over its
/// budget, or that goes on too long after the run was asked to stop.
fn watchdog(mut cx: StoreContextMut<'_, State>) -> wasmtime::Result<UpdateDeadline> {
    let c = &mut cx.data_mut().clock;
    let now = Instant::now();
    if now.duration_since(c.started) >= c.budget {
        return Err(Trap::Interrupt.into());
    }
    if crate::child::stop_requested() {
        let seen = *c.stop_seen.get_or_insert(now);
        let grace = if c.call == Call::Finish { STOP_FINISH } else { STOP_GRACE };
        if now.duration_since(seen) >= grace {
            return Err(StopInterrupt.into());
        }
    }
    Ok(UpdateDeadline::Continue(1))
}

/// A pollable that is ready at once: what a zero-length timer gives.
struct Ready;

#[wasmtime_wasi::async_trait]
impl Pollable for Ready {
    async fn ready(&mut self) {}
}

/// Replaces WASI's timers: a plugin has no reason to sleep, and a sleep would block inside a
/// host call where no budget check runs. A timer that is already due (zero duration, or an
/// instant not in the future: how a non-blocking poll is written) is ready at once; any other
/// traps the plugin with [`SleepRefused`]. The clock's `now` and `resolution` stay WASI's.
fn link_clocks(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    fn ready(table: &mut ResourceTable) -> wasmtime::Result<Resource<DynPollable>> {
        let r = table.push(Ready)?;
        wasmtime_wasi::p2::subscribe(table, r)
    }
    linker.allow_shadowing(true);
    let mut clocks = linker.instance("wasi:clocks/monotonic-clock@0.2.12")?;
    clocks.func_wrap("subscribe-duration", |mut cx: StoreContextMut<'_, State>, (ns,): (u64,)| {
        if ns > 0 {
            return Err(SleepRefused(fmt_ns(ns), "subscribe-duration").into());
        }
        Ok((ready(&mut cx.data_mut().table)?,))
    })?;
    clocks.func_wrap("subscribe-instant", |mut cx: StoreContextMut<'_, State>, (when,): (u64,)| {
        let now = cx.data().clock_base.now();
        if when > now {
            return Err(SleepRefused(fmt_ns(when - now), "subscribe-instant").into());
        }
        Ok((ready(&mut cx.data_mut().table)?,))
    })?;
    linker.allow_shadowing(false);
    Ok(())
}

/// `3600s`, `15ms`, `250ns`: a duration as a person would write it.
fn fmt_ns(ns: u64) -> String {
    match ns {
        n if n.is_multiple_of(1_000_000_000) => format!("{}s", n / 1_000_000_000),
        n if n.is_multiple_of(1_000_000) => format!("{}ms", n / 1_000_000),
        n if n.is_multiple_of(1_000) => format!("{}us", n / 1_000),
        n => format!("{n}ns"),
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// A loaded, sandboxed plugin. Not `Sync`: drive it from one thread at a time.
pub struct Plugin {
    name: String,
    store: Store<State>,
    instance: bindings::Plugin,
    stdout: CapturedStream,
    stderr: CapturedStream,
    sandbox: Sandbox,
    plan: Option<Plan>,
    projections: Vec<Option<Projection>>,
    poisoned: Option<Error>,
    load_info: LoadInfo,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin").field("name", &self.name).field("poisoned", &self.poisoned).finish_non_exhaustive()
    }
}

impl Plugin {
    /// Loads, compiles (or maps from the cache) and instantiates a plugin in its own store,
    /// its output going to `output`. Compiling costs tens to hundreds of milliseconds the first
    /// time, a cached load a small fraction of that (docs/ARCHITECTURE.md, "Measured").
    pub fn load(source: &PluginSource, sandbox: &Sandbox, output: Box<dyn Output>) -> Result<Plugin, Error> {
        let name = source.name();
        let load_err = |e: wasmtime::Error| Error::Load { plugin: name.clone(), message: host_error_text(&e) };
        let bytes: std::borrow::Cow<'static, [u8]> = match source {
            PluginSource::Builtin(b) => super::builtin(b)
                .ok_or_else(|| {
                    load_err(wasmtime::format_err!(
                        "no built-in plugin {b:?} (built-ins: {})",
                        super::builtin_names().join(", ")
                    ))
                })?
                .into(),
            PluginSource::Path(p) => {
                // A file loaded before is mapped by its identity, without reading it.
                let dir = sandbox.cache_dir.as_deref();
                let before = std::fs::metadata(p).ok().filter(|m| m.is_file() && m.len() <= sandbox.max_plugin_bytes);
                let t0 = Instant::now();
                if let Some((c, hit)) = before.as_ref().and_then(|m| cache::load_by_identity(engine(), m, dir)) {
                    let size = before.as_ref().map_or(0, |m| m.len() as usize);
                    return Plugin::instantiate(&name, c, hit, t0.elapsed(), size, sandbox, output);
                }
                let bytes = super::read_plugin_file(p, sandbox.max_plugin_bytes)
                    .map_err(|e| load_err(wasmtime::format_err!("cannot read {}: {e}", p.display())))?;
                let plugin = Plugin::from_bytes(&name, &bytes, sandbox, output)?;
                // Remembered only if the file did not change while it was read.
                let after = std::fs::metadata(p).ok();
                if let (Some(b), Some(a)) = (&before, &after) {
                    let same = |m: &std::fs::Metadata| {
                        use std::os::unix::fs::MetadataExt;
                        (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec())
                    };
                    if same(b) == same(a) {
                        cache::remember_identity(engine(), a, dir, &plugin.load_info.cache);
                    }
                }
                return Ok(plugin);
            }
        };
        Plugin::from_bytes(&name, &bytes, sandbox, output)
    }

    /// Like [`Plugin::load`] for component bytes in memory, named `name`.
    pub fn from_bytes(name: &str, wasm: &[u8], sandbox: &Sandbox, output: Box<dyn Output>) -> Result<Plugin, Error> {
        let load_err = |e: wasmtime::Error| Error::Load { plugin: name.to_string(), message: host_error_text(&e) };
        let engine = engine();
        let t0 = Instant::now();
        let (component, cache) = cache::load(engine, wasm, sandbox.cache_dir.as_deref()).map_err(load_err)?;
        Plugin::instantiate(name, component, cache, t0.elapsed(), wasm.len(), sandbox, output)
    }

    /// Links and instantiates a compiled component of `wasm_bytes` bytes.
    fn instantiate(
        name: &str,
        component: Component,
        cache: CacheOutcome,
        compile: Duration,
        wasm_bytes: usize,
        sandbox: &Sandbox,
        output: Box<dyn Output>,
    ) -> Result<Plugin, Error> {
        let load_err = |e: wasmtime::Error| Error::Load { plugin: name.to_string(), message: host_error_text(&e) };
        let engine = engine();
        let t1 = Instant::now();
        let mut linker = Linker::<State>::new(engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(load_err)?;
        link_clocks(&mut linker).map_err(load_err)?;
        bindings::Plugin::add_to_linker::<State, wasmtime::component::HasSelf<State>>(&mut linker, |s| s)
            .map_err(load_err)?;
        let pre = linker.instantiate_pre(&component).map_err(load_err)?;
        let pre = bindings::PluginPre::new(pre).map_err(load_err)?;

        let stdout = CapturedStream::new(sandbox.max_output_bytes_per_call);
        let stderr = CapturedStream::new(sandbox.max_output_bytes_per_call);
        // No preopened directories, environment, arguments or sockets: WASI only so that a
        // Rust std guest links; its stdout and stderr come to us.
        let clock_base = PluginClock(Instant::now());
        let wasi = WasiCtxBuilder::new()
            .monotonic_clock(clock_base)
            // wasmtime's default (64 MiB of random bytes in one call) outlives any budget.
            .max_random_size(MAX_RANDOM_BYTES)
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = State {
            name: name.to_string(),
            wasi,
            table: ResourceTable::new(),
            limits: Limits::new(sandbox.memory_limit_bytes),
            sink: output,
            cap: OutputCap { limit: sandbox.max_output_bytes_per_call, ..OutputCap::default() },
            kernel: Arc::new(FixedKernel::default()),
            comm: Box::new(ProcComm),
            layouts: Vec::new(),
            lost_total: 0,
            timeline: None,
            metrics: None,
            metrics_declared: 0,
            stack_requests: Vec::new(),
            initialized: false,
            symbolizer: Box::new(super::stacks::NoSymbols),
            folded: Default::default(),
            clock: CallClock {
                started: Instant::now(),
                budget: sandbox.setup_budget,
                call: Call::Instantiate,
                stop_seen: None,
            },
            clock_base,
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_callback(watchdog);
        store.set_epoch_deadline(1);
        let instance = match pre.instantiate(&mut store) {
            Ok(i) => i,
            Err(e) => {
                let err = classify(name, Call::Instantiate, sandbox.setup_budget, sandbox, &store, e);
                return Err(match err {
                    Error::Trap { .. } | Error::CpuBudget { .. } | Error::MemoryLimit { .. } => err,
                    other => Error::Load { plugin: name.to_string(), message: other.to_string() },
                });
            }
        };
        let load_info = LoadInfo { cache, compile, instantiate: t1.elapsed(), wasm_bytes };
        Ok(Plugin {
            name: name.to_string(),
            store,
            instance,
            stdout,
            stderr,
            sandbox: sandbox.clone(),
            plan: None,
            projections: Vec::new(),
            poisoned: None,
            load_info,
        })
    }

    /// The plugin's name, as messages use it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How the load went (cache hit or not, times).
    pub fn load_info(&self) -> &LoadInfo {
        &self.load_info
    }

    /// The plan `init` returned, once it has.
    pub fn plan(&self) -> Option<&Plan> {
        self.plan.as_ref()
    }

    /// The error that stopped the plugin, if one did.
    pub fn poisoned(&self) -> Option<&Error> {
        self.poisoned.as_ref()
    }

    /// Replaces how `kernel.comm` finds command names (default: `/proc/<pid>/comm`).
    pub fn set_comm_lookup(&mut self, comm: Box<dyn CommLookup>) {
        self.store.data_mut().comm = comm;
    }

    /// Keeps the plugin's metrics in `store` under `name` (default: none kept, and the plugin's
    /// `metrics.enabled` says false). Set it before `init`, where plugins declare them.
    pub fn set_metrics(&mut self, store: Arc<crate::agent::plugin_metrics::PluginMetrics>, name: &str) {
        self.store.data_mut().metrics = Some((store, name.to_string()));
    }

    /// Names the addresses the plugin asks `stacks.symbolize` about (default:
    /// [`super::stacks::NoSymbols`], addresses only).
    pub fn set_symbolizer(&mut self, symbolizer: Box<dyn Symbolizer>) {
        self.store.data_mut().symbolizer = symbolizer;
    }

    /// Tells the symbolizer that process `pid` was seen (see [`Symbolizer::process_seen`]);
    /// whether its mappings are known.
    pub fn process_seen(&mut self, pid: i32, anchor: Option<&crate::symbolize::Anchor>) -> bool {
        self.store.data_mut().symbolizer.process_seen(pid, anchor)
    }

    /// Keeps the plugin's timeline marks in `timeline` (default: none kept, and the plugin's
    /// `timeline.enabled` says false). Set it before `init`, so the plugin knows from the start.
    pub fn set_timeline(&mut self, timeline: Box<dyn super::Timeline>) {
        self.store.data_mut().timeline = Some(timeline);
    }

    /// Calls the plugin's `init` with its `--arg` pairs; `kernel` answers its feature and
    /// symbol questions (now and later). Returns the plan, not yet validated: see
    /// [`Plan::validate`]. Runs under the setup budget.
    pub fn init(&mut self, args: &[(String, String)], kernel: Arc<dyn KernelInfo>) -> Result<Plan, Error> {
        self.check_usable()?;
        if self.plan.is_some() {
            return Err(self.usage("init called twice"));
        }
        self.store.data_mut().kernel = kernel;
        self.store.data_mut().folded = crate::symbolize::folded::FoldedFile::from_args(args);
        let args = args.to_vec();
        let budget = self.sandbox.setup_budget;
        let instance = &self.instance;
        let result = call(&mut self.store, Call::Init, budget, |store| instance.call_init(store, &args));
        let plan = self.finish_call(Call::Init, budget, result)?;
        self.store.data_mut().initialized = true;
        let mut plan = Plan {
            probes: plan
                .probes
                .into_iter()
                .map(|p| ProbeDecl {
                    kind: p.kind.into(),
                    name: p.name,
                    target: p.target,
                    fetchargs: p.fetchargs,
                    filter: p.filter,
                    maxactive: p.maxactive,
                    fields: p.fields,
                    stacks: StackKinds::NONE,
                })
                .collect(),
        };
        for (probe, kinds) in std::mem::take(&mut self.store.data_mut().stack_requests) {
            match plan.probes.iter_mut().find(|p| p.name == probe) {
                Some(p) => p.stacks = p.stacks.union(kinds),
                None => {
                    return Err(Error::Probe {
                        plugin: self.name.clone(),
                        probe: probe.chars().take(64).collect(),
                        message: "stacks requested for a probe the plan does not declare".into(),
                    })
                }
            }
        }
        self.plan = Some(plan.clone());
        Ok(plan)
    }

    /// Gives the plugin its probes' layouts, one per plan probe in plan order. Call it after
    /// `init` and before the first `on_batch` (the guest SDK reads them once).
    pub fn set_layouts(&mut self, layouts: Vec<Layout>) -> Result<(), Error> {
        let plan = self.plan.as_ref().ok_or_else(|| self.usage("set_layouts called before init"))?;
        if layouts.len() != plan.probes.len() {
            let msg = format!("{} layouts for {} probes", layouts.len(), plan.probes.len());
            return Err(self.usage(&msg));
        }
        let mut projections = Vec::with_capacity(layouts.len());
        for (l, p) in layouts.iter().zip(&plan.probes) {
            projections.push(match &p.fields {
                Some(fields) => Some(Projection::new(l, fields).map_err(|message| Error::Probe {
                    plugin: self.name.clone(),
                    probe: p.name.clone(),
                    message,
                })?),
                None => None,
            });
        }
        let wit: Vec<wit::Layout> = layouts
            .iter()
            .zip(&projections)
            .zip(&plan.probes)
            .enumerate()
            .map(|(i, ((l, proj), p))| proj.as_ref().map_or(l, |pr| pr.layout()).to_wit(i as u32, &p.name))
            .collect();
        self.store.data_mut().layouts = wit;
        self.projections = projections;
        Ok(())
    }

    /// Appends one record of plan probe `probe` to `batch` the way this plugin asked for it:
    /// whole, or projected onto the fields it declared.
    #[inline]
    pub fn pack(&self, batch: &mut BatchWriter, probe: u32, cpu: u32, pid: i32, ts: u64, payload: &[u8]) {
        match self.projection(probe as usize) {
            Some(p) => batch.push_projected(probe, cpu, pid, ts, payload, p),
            None => batch.push(probe, cpu, pid, ts, payload),
        }
    }

    /// How records of plan probe `probe` are to be packed: `Some` if it declared `fields`
    /// (use [`super::BatchWriter::push_projected`]), `None` for whole records. Known once
    /// [`Plugin::set_layouts`] has returned.
    pub fn projection(&self, probe: usize) -> Option<&Projection> {
        self.projections.get(probe).and_then(Option::as_ref)
    }

    /// Delivers one packed batch (see [`super::BatchWriter`]); `lost` events were lost since
    /// the previous batch. Runs under the callback budget. Allocates nothing on the host side
    /// beyond wasmtime's copy of the bytes into the guest.
    pub fn on_batch(&mut self, batch: &[u8], lost: u64) -> Result<(), Error> {
        self.check_usable()?;
        if self.plan.is_none() {
            return Err(self.usage("on_batch called before init"));
        }
        self.store.data_mut().lost_total += lost;
        let budget = self.sandbox.callback_budget;
        let instance = &self.instance;
        let result = call(&mut self.store, Call::OnBatch, budget, |store| instance.call_on_batch(store, batch, lost));
        self.finish_call(Call::OnBatch, budget, result)
    }

    /// Calls the plugin's `finish` (its tables and histograms). Runs under the setup budget.
    pub fn finish(&mut self) -> Result<(), Error> {
        self.check_usable()?;
        if self.plan.is_none() {
            return Err(self.usage("finish called before init"));
        }
        let budget = self.sandbox.setup_budget;
        let instance = &self.instance;
        let result = call(&mut self.store, Call::Finish, budget, |store| instance.call_finish(store));
        self.finish_call(Call::Finish, budget, result)
    }

    fn check_usable(&self) -> Result<(), Error> {
        match &self.poisoned {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn usage(&self, message: &str) -> Error {
        Error::Usage { plugin: self.name.clone(), message: message.to_string() }
    }

    /// Routes the call's captured stdio, reports dropped output, turns a wasmtime error into
    /// ours (poisoning the plugin when the instance cannot be trusted any more).
    fn finish_call<T>(
        &mut self,
        what: Call,
        budget: Duration,
        result: wasmtime::Result<Result<T, String>>,
    ) -> Result<T, Error> {
        let failed = result.is_err();
        let (lines_out, dropped_out) = self.stdout.drain(failed);
        let (lines_err, dropped_err) = self.stderr.drain(failed);
        let state = self.store.data_mut();
        for line in &lines_out {
            state.sink.stdio(&state.name, Stdio::Stdout, line);
        }
        for line in &lines_err {
            state.sink.stdio(&state.name, Stdio::Stderr, line);
        }
        let dropped = std::mem::take(&mut state.cap.dropped) + dropped_out + dropped_err;
        state.cap.used = 0;
        if dropped > 0 {
            let msg =
                format!("output capped: {dropped} bytes dropped in {what} (limit {} bytes per call)", state.cap.limit);
            state.sink.log(&state.name, Level::Warn, &msg);
        }
        match result {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(message)) => Err(Error::Failed { plugin: self.name.clone(), call: what, message }),
            Err(e) => {
                let err = classify(&self.name, what, budget, &self.sandbox, &self.store, e);
                let err = match err {
                    // The panic message went to stderr, which we just routed; repeat its gist.
                    // Rust's panic report is "thread '..' panicked at FILE:LINE:COL:" then the message.
                    Error::Trap { plugin, call, message } => {
                        let message = match lines_err.iter().rposition(|l| l.contains("panicked at")) {
                            Some(i) => {
                                let at = lines_err[i].split("panicked at ").nth(1).unwrap_or("").trim_end_matches(':');
                                let what = lines_err.get(i + 1).map(|s| s.trim()).unwrap_or("");
                                format!("{message}: panicked at {at}: {what}")
                            }
                            None => message,
                        };
                        Error::Trap { plugin, call, message }
                    }
                    other => other,
                };
                if err.poisons() {
                    self.poisoned = Some(err.clone());
                }
                Err(err)
            }
        }
    }
}

/// Runs one export call under a fresh wall-clock `budget` (checked by [`watchdog`]).
fn call<R>(
    store: &mut Store<State>,
    what: Call,
    budget: Duration,
    f: impl FnOnce(&mut Store<State>) -> wasmtime::Result<R>,
) -> wasmtime::Result<R> {
    let clock = &mut store.data_mut().clock;
    clock.started = Instant::now();
    clock.budget = budget;
    clock.call = what;
    if what == Call::Finish {
        // finish gets a window of its own after a stop, not what is left of the batches'.
        clock.stop_seen = None;
    }
    store.set_epoch_deadline(1);
    f(store)
}

/// Says why a call that ran under `budget` failed, in the plugin's name, in one line.
/// wasmtime's backtrace is left out (`RUST_BACKTRACE=1` prints it to stderr first).
fn classify(
    name: &str,
    call: Call,
    budget: Duration,
    sandbox: &Sandbox,
    store: &Store<State>,
    err: wasmtime::Error,
) -> Error {
    let plugin = name.to_string();
    if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
        eprintln!("wasmprobe: {plugin}: {call} failed: {err:?}");
    }
    if store.data().limits.memory_exceeded.is_some() {
        return Error::MemoryLimit { plugin, call, limit: sandbox.memory_limit_bytes };
    }
    if err.downcast_ref::<StopInterrupt>().is_some() {
        let grace = if call == Call::Finish { STOP_FINISH } else { STOP_GRACE };
        return Error::Stopped { plugin, call, grace: grace.min(budget) };
    }
    if let Some(sleep) = err.downcast_ref::<SleepRefused>() {
        return Error::Trap { plugin, call, message: sleep.to_string() };
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Error::CpuBudget { plugin, call, budget },
        Some(trap) => {
            let at = err.downcast_ref::<wasmtime::WasmBacktrace>().and_then(|bt| {
                bt.frames()
                    .iter()
                    .filter_map(|f| f.func_name())
                    .map(|f| format!("{:#}", rustc_demangle::demangle(f)))
                    .find(|f| !is_runtime_frame(f))
            });
            let message = match at {
                Some(func) => format!("{trap} at {func}"),
                None => trap.to_string(),
            };
            Error::Trap { plugin, call, message }
        }
        None => Error::Trap { plugin, call, message: host_error_text(&err) },
    }
}

/// A wasmtime error other than a trap, as one readable line: its causes without the
/// backtrace, and wasmtime's words for the host-copy limit replaced by what they mean.
fn host_error_text(err: &wasmtime::Error) -> String {
    let text = super::error::one_line(
        &err.chain()
            .map(|c| c.to_string())
            .filter(|c| !c.starts_with("error while executing at wasm backtrace"))
            .collect::<Vec<_>>(),
    );
    if text.contains("fuel allocated for hostcalls has been exhausted") {
        let limit = super::error::fmt_bytes(store_hostcall_limit() as u64);
        return format!("copied more than {limit} between host and plugin in one call");
    }
    text
}

/// wasmtime's per-call limit on bytes copied between host and guest (its default).
fn store_hostcall_limit() -> usize {
    Store::new(engine(), ()).hostcall_fuel()
}

/// Frames of the guest's panic and abort machinery, skipped when naming where a trap happened.
fn is_runtime_frame(func: &str) -> bool {
    let func = func.trim_start_matches('<');
    ["abort", "std::", "core::", "alloc::", "__rust", "rust_panic", "panic_", "__wasm", "wit_bindgen::"]
        .iter()
        .any(|p| func.starts_with(p))
}
