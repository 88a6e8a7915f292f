//! One loaded plugin: its own `Store`, instance and limits, and the calls the run makes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::batch::BatchWriter;
use super::bindings::{self, types as wit};
use super::cache::{self, CacheOutcome};
use super::error::{Call, Error};
use super::kernel::{CommLookup, FixedKernel, KernelInfo, ProcComm};
use super::layout::Layout;
use super::output::{CapturedStream, Level, Output, OutputCap, Stdio};
use super::plan::{Plan, ProbeDecl, ProbeKind};
use super::project::Projection;
use super::sandbox::{budget_ticks, engine, Limits, Sandbox};

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
    /// its output going to `output`. Compiling costs 50-700 ms the first time; a cached load
    /// well under a millisecond plus instantiation.
    pub fn load(source: &PluginSource, sandbox: &Sandbox, output: Box<dyn Output>) -> Result<Plugin, Error> {
        let name = source.name();
        let load_err = |e: wasmtime::Error| Error::Load { plugin: name.clone(), message: format!("{e:#}") };
        let bytes: std::borrow::Cow<'static, [u8]> = match source {
            PluginSource::Builtin(b) => super::builtin(b)
                .ok_or_else(|| {
                    load_err(wasmtime::format_err!(
                        "no built-in plugin {b:?} (built-ins: {})",
                        super::builtin_names().join(", ")
                    ))
                })?
                .into(),
            PluginSource::Path(p) => std::fs::read(p)
                .map_err(|e| load_err(wasmtime::format_err!("cannot read {}: {e}", p.display())))?
                .into(),
        };
        Plugin::from_bytes(&name, &bytes, sandbox, output)
    }

    /// Like [`Plugin::load`] for component bytes in memory, named `name`.
    pub fn from_bytes(name: &str, wasm: &[u8], sandbox: &Sandbox, output: Box<dyn Output>) -> Result<Plugin, Error> {
        let load_err = |e: wasmtime::Error| Error::Load { plugin: name.to_string(), message: format!("{e:#}") };
        let engine = engine();
        let t0 = Instant::now();
        let (component, cache) = cache::load(engine, wasm, sandbox.cache_dir.as_deref()).map_err(load_err)?;
        let compile = t0.elapsed();

        let t1 = Instant::now();
        let mut linker = Linker::<State>::new(engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(load_err)?;
        bindings::Plugin::add_to_linker::<State, wasmtime::component::HasSelf<State>>(&mut linker, |s| s)
            .map_err(load_err)?;
        let pre = linker.instantiate_pre(&component).map_err(load_err)?;
        let pre = bindings::PluginPre::new(pre).map_err(load_err)?;

        let stdout = CapturedStream::new(sandbox.max_output_bytes_per_call);
        let stderr = CapturedStream::new(sandbox.max_output_bytes_per_call);
        // No preopened directories, environment, arguments or sockets: WASI only so that a
        // Rust std guest links; its stdout and stderr come to us.
        let wasi = WasiCtxBuilder::new()
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
            limits: Limits { memory_limit: sandbox.memory_limit_bytes, memory_exceeded: None },
            sink: output,
            cap: OutputCap { limit: sandbox.max_output_bytes_per_call, ..OutputCap::default() },
            kernel: Arc::new(FixedKernel::default()),
            comm: Box::new(ProcComm),
            layouts: Vec::new(),
            lost_total: 0,
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(budget_ticks(sandbox.setup_budget));
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
        let load_info = LoadInfo { cache, compile, instantiate: t1.elapsed(), wasm_bytes: wasm.len() };
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

    /// Calls the plugin's `init` with its `--arg` pairs; `kernel` answers its feature and
    /// symbol questions (now and later). Returns the plan, not yet validated: see
    /// [`Plan::validate`]. Runs under the setup budget.
    pub fn init(&mut self, args: &[(String, String)], kernel: Arc<dyn KernelInfo>) -> Result<Plan, Error> {
        self.check_usable()?;
        if self.plan.is_some() {
            return Err(self.usage("init called twice"));
        }
        self.store.data_mut().kernel = kernel;
        let args = args.to_vec();
        let budget = self.sandbox.setup_budget;
        let instance = &self.instance;
        let result = call(&mut self.store, budget, |store| instance.call_init(store, &args));
        let plan = self.finish_call(Call::Init, budget, result)?;
        let plan = Plan {
            probes: plan
                .probes
                .into_iter()
                .map(|p| ProbeDecl {
                    kind: match p.kind {
                        wit::ProbeKind::Kprobe => ProbeKind::Kprobe,
                        wit::ProbeKind::Kretprobe => ProbeKind::Kretprobe,
                        wit::ProbeKind::Uprobe => ProbeKind::Uprobe,
                        wit::ProbeKind::Uretprobe => ProbeKind::Uretprobe,
                        wit::ProbeKind::Tracepoint => ProbeKind::Tracepoint,
                        wit::ProbeKind::Eprobe => ProbeKind::Eprobe,
                    },
                    name: p.name,
                    target: p.target,
                    fetchargs: p.fetchargs,
                    filter: p.filter,
                    maxactive: p.maxactive,
                    fields: p.fields,
                })
                .collect(),
        };
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
        let result = call(&mut self.store, budget, |store| instance.call_on_batch(store, batch, lost));
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
        let result = call(&mut self.store, budget, |store| instance.call_finish(store));
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

/// Runs one export call with a fresh epoch deadline of `budget`.
fn call<R>(
    store: &mut Store<State>,
    budget: Duration,
    f: impl FnOnce(&mut Store<State>) -> wasmtime::Result<R>,
) -> wasmtime::Result<R> {
    store.set_epoch_deadline(budget_ticks(budget));
    f(store)
}

/// Says why a call that ran under `budget` failed, in the plugin's name.
fn classify(
    name: &str,
    call: Call,
    budget: Duration,
    sandbox: &Sandbox,
    store: &Store<State>,
    err: wasmtime::Error,
) -> Error {
    let plugin = name.to_string();
    if store.data().limits.memory_exceeded.is_some() {
        return Error::MemoryLimit { plugin, call, limit: sandbox.memory_limit_bytes };
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
        None => Error::Trap { plugin, call, message: format!("{err:#}") },
    }
}

/// Frames of the guest's panic and abort machinery, skipped when naming where a trap happened.
fn is_runtime_frame(func: &str) -> bool {
    let func = func.trim_start_matches('<');
    ["abort", "std::", "core::", "alloc::", "__rust", "rust_panic", "panic_", "__wasm", "wit_bindgen::"]
        .iter()
        .any(|p| func.starts_with(p))
}
