//! The limits a plugin runs under, and the one wasmtime [`Engine`] all plugins share.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use wasmtime::{Config, Engine, ResourceLimiter};

/// How often the shared ticker advances the engine's epoch: the resolution of CPU budgets.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Limits for one plugin. Defaults suit a trace plugin: 64 MiB of memory, 100 ms per
/// `on-batch`, 1 s for `init` and `finish`, 1 MiB of output per call.
///
/// Budgets are wall-clock time, host calls included, checked at every [`EPOCH_TICK`] while
/// the plugin runs. No host call can block (a plugin may not wait on a timer: see
/// [`super::runtime`]), so no call outlives its budget by more than one host call's work.
/// Once the run has been asked to stop (SIGINT/SIGTERM), a call that does not return within
/// [`STOP_GRACE`] is interrupted, and `finish` gets at most [`STOP_FINISH`]: a stopped run ends
/// well within a second whatever its plugin does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// Largest linear memory the plugin may grow to, in bytes.
    pub memory_limit_bytes: u64,
    /// Wall-clock time one `on-batch` call may take (host calls included), enforced by
    /// epoch interruption with [`EPOCH_TICK`] resolution.
    pub callback_budget: Duration,
    /// The same for instantiation, `init` and `finish`.
    pub setup_budget: Duration,
    /// Bytes of output one call may produce through each of: the output interface (print,
    /// emit, log), WASI stdout, WASI stderr. The rest is dropped and the host says how much.
    pub max_output_bytes_per_call: usize,
    /// Largest plugin component file `Plugin::load` reads, in bytes (and the largest pack).
    pub max_plugin_bytes: u64,
    /// Where compiled components are cached; `None` compiles every time.
    /// Default: [`super::cache::default_dir`].
    pub cache_dir: Option<PathBuf>,
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox {
            memory_limit_bytes: 64 << 20,
            callback_budget: Duration::from_millis(100),
            setup_budget: Duration::from_secs(1),
            max_output_bytes_per_call: 1 << 20,
            max_plugin_bytes: super::DEFAULT_MAX_PLUGIN_BYTES,
            cache_dir: super::cache::default_dir(),
        }
    }
}

/// How long an `init` or `on-batch` call may go on after the run was asked to stop.
pub const STOP_GRACE: Duration = Duration::from_millis(300);

/// The most `finish` may take once the run was asked to stop (less if its budget is less).
pub const STOP_FINISH: Duration = Duration::from_millis(400);

/// The engine every plugin is compiled for and runs in (one code cache, one epoch ticker).
/// Epoch interruption on; component-model concurrency off (it makes synchronous calls several
/// times slower: docs/ARCHITECTURE.md, "Measured").
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.concurrency_support(false);
        config.wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Disable);
        // `WASMPROBE_PERFMAP=1` (best with WASMPROBE_CACHE=off, so the code is compiled here):
        // write /tmp/perf-<pid>.map so that `perf report` names the plugin's functions.
        if std::env::var_os("WASMPROBE_PERFMAP").is_some_and(|v| v == "1") {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config).expect("the wasmtime configuration is valid");
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("wasmprobe-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .expect("spawning the epoch ticker thread");
        engine
    })
}

/// Refuses growth past the limit, remembering that it did so for the error message. The limit
/// is for the plugin as a whole: every linear memory and every table (at 8 bytes an element)
/// of every core instance in the component count against it together, so a component cannot
/// multiply the cap by bringing more memories or tables.
#[derive(Debug)]
pub(crate) struct Limits {
    pub(crate) memory_limit: u64,
    /// Set when a growth was refused (the size that was asked for).
    pub(crate) memory_exceeded: Option<u64>,
    /// Bytes of all memories and tables so far.
    pub(crate) in_use: u64,
}

/// Bytes a table element is counted as (a function reference).
const TABLE_ELEMENT_BYTES: u64 = 8;

/// Marker error returned from the limiter: turns the refused `memory.grow` into a trap.
#[derive(Debug, thiserror::Error)]
#[error("memory limit exceeded")]
pub(crate) struct MemoryLimitHit;

impl Limits {
    /// A cap of `memory_limit` bytes, nothing in use yet.
    pub(crate) fn new(memory_limit: u64) -> Self {
        Limits { memory_limit, memory_exceeded: None, in_use: 0 }
    }

    /// Accounts growing something from `current` to `desired` bytes, if the total stays
    /// within the cap.
    fn grow(&mut self, current: u64, desired: u64) -> wasmtime::Result<bool> {
        let total = self.in_use.saturating_sub(current).saturating_add(desired);
        if total > self.memory_limit {
            self.memory_exceeded = Some(total);
            return Err(MemoryLimitHit.into());
        }
        self.in_use = total;
        Ok(true)
    }
}

impl ResourceLimiter for Limits {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.grow(current as u64, desired as u64)
    }

    fn table_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > 1_000_000 {
            return Ok(false);
        }
        self.grow(current as u64 * TABLE_ELEMENT_BYTES, desired as u64 * TABLE_ELEMENT_BYTES)
    }

    fn instances(&self) -> usize {
        100
    }

    fn tables(&self) -> usize {
        100
    }

    fn memories(&self) -> usize {
        10
    }
}
