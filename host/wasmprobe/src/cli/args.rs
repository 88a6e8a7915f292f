//! Every flag of every subcommand, defined and documented once. Flags that several commands
//! share are groups flattened into each ([`PluginArgs`], [`TraceArgs`]).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Run trace logic against the Linux kernel: probes, events, and sandboxed Wasm plugins.
#[derive(Debug, Parser)]
#[command(name = "wasmprobe", bin_name = "wasmprobe", version, about, propagate_version = true)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a Wasm plugin (a .wasm component or a built-in: exec-open, syscount, openlat,
    /// readline, stackcount) against the live kernel.
    Run(RunArgs),
    /// Record live events to a trace.dat that trace-cmd and KernelShark read (and `run
    /// --replay` replays).
    Record(RecordArgs),
    /// Show what a plugin asks for (its probes, and whether the policy allows them) without
    /// touching the kernel.
    Inspect(InspectArgs),
    /// Start a plugin project in DIR: the man page's exec-open, its Makefile and README.
    New(NewArgs),
    /// Build, sign, inspect and verify probe packs (.wpk: a plugin with its manifest).
    #[command(subcommand)]
    Pack(crate::pack::cli::PackCmd),
    /// Add or remove kernel probes (kprobes and kretprobes).
    #[command(subcommand)]
    Kprobe(KprobeCmd),
    /// Add or remove user-space probes (uprobes and uretprobes).
    #[command(subcommand)]
    Uprobe(UprobeCmd),
    /// List every dynamic event the kernel has (kprobe_events, uprobe_events, dynamic_events).
    Probes {
        /// Print JSON instead of the kernel's own lines.
        #[arg(long)]
        json: bool,
    },
    /// Print a trace.dat (trace-cmd's format, version 6 or 7) the way `trace-cmd report` does.
    Report {
        /// The trace.dat file.
        file: PathBuf,
    },
    /// Convert a trace.dat (version 6 or 7, ours or trace-cmd's) to a Perfetto trace that
    /// ui.perfetto.dev and Perfetto's trace processor open.
    Convert {
        /// The trace.dat file.
        file: PathBuf,
        /// The Perfetto trace to write (e.g. FILE.pftrace); written whole or not at all.
        #[arg(short, long, value_name = "FILE.pftrace")]
        output: PathBuf,
    },
    /// Print live events of this kernel like `trace-cmd report`, until Ctrl-C or COMMAND ends.
    Stream(StreamArgs),
    /// Draw a flame graph (SVG) of folded stacks (`stackcount --arg folded=FILE`, or any
    /// `frame;frame;... COUNT` lines).
    Flamegraph(FlamegraphArgs),
    /// Run every plugin of a config over one live pipeline, for a node: metrics for
    /// Prometheus, events as JSON lines, reload on SIGHUP (see docs/agent.md).
    Agent(AgentArgs),
    /// Remove what a killed wasmprobe run left in the kernel: our instances and probe groups
    /// whose process is gone, and nothing else.
    Cleanup {
        /// Also remove those of wasmprobe processes that are still running.
        #[arg(long)]
        all: bool,
    },
}

/// What to trace and for how long: `run`, `record` and `stream`.
#[derive(Debug, Clone, Args)]
pub struct TraceArgs {
    /// Trace only this process and the children it forks.
    #[arg(long)]
    pub pid: Option<i32>,
    /// Stop after this long (e.g. 10s, 500ms, 2m).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Also write a Perfetto trace (ui.perfetto.dev) of what is traced, and of the plugin's
    /// timeline marks; with `run --replay`, of the replayed events and the marks.
    #[arg(long, value_name = "FILE.pftrace")]
    pub perfetto: Option<PathBuf>,
    /// Run COMMAND and trace only it and its children.
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// How a plugin runs: `run` and `record --plugin`.
#[derive(Debug, Clone, Args)]
pub struct PluginArgs {
    /// Which pack signers to trust.
    #[command(flatten)]
    pub trust: crate::pack::cli::TrustArgs,
    /// How to reach the registry when PLUGIN is a reference (see docs/oci.md).
    #[command(flatten)]
    pub registry: crate::pack::oci::cli::RegistryArgs,
    /// `K=V` arguments for the plugin's init (repeatable).
    #[arg(long = "arg", value_parser = parse_kv)]
    pub args: Vec<(String, String)>,
    /// Print JSON lines: every line of our output is one JSON object (a record the plugin
    /// emits; a line it prints as {"plugin":NAME,"line":LINE}). Without -o, COMMAND's stdout
    /// goes to stderr, so that stdout holds JSON alone. Logs and warnings stay on stderr.
    #[arg(long)]
    pub json: bool,
    /// Probe kinds the plugin may use, e.g. `uprobe,tracepoint` (default: all).
    #[arg(long)]
    pub allow: Option<String>,
    /// Largest memory the plugin may use, in MiB.
    #[arg(long, default_value_t = 64)]
    pub memory_mib: u64,
    /// Wall-clock time one event batch (`on-batch`) may take in the plugin, host calls
    /// included (e.g. 100ms).
    #[arg(long, value_parser = parse_duration, default_value = "100ms")]
    pub cpu_budget: Duration,
    /// Wall-clock time the plugin's start (instantiation and `init`) and its `finish` may each
    /// take (e.g. 1s). After Ctrl-C/SIGTERM a call gets at most 300 ms, `finish` 400 ms.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub setup_budget: Duration,
    /// Largest plugin component file that is read, in MiB (a pack is at most 128 MiB).
    #[arg(long, default_value_t = 256)]
    pub max_plugin_mib: u64,
}

/// Arguments of `wasmprobe run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A probe pack (.wpk), a .wasm component or the name of a built-in plugin.
    pub plugin: String,
    /// The plugin's arguments, sandbox and trust.
    #[command(flatten)]
    pub plugin_args: PluginArgs,
    /// Write the plugin's output to FILE instead of stdout (COMMAND keeps the terminal).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Run the plugin over a recorded trace.dat instead of the live kernel (no root needed).
    #[arg(long, value_name = "FILE")]
    pub replay: Option<PathBuf>,
    /// Serve the run's metrics (and the plugin's) for Prometheus at ADDR (HOST:PORT):
    /// /metrics, /healthz, /readyz, as `wasmprobe agent` does.
    #[arg(long, value_name = "ADDR", conflicts_with = "replay")]
    pub metrics_listen: Option<String>,
    /// What to follow and for how long.
    #[command(flatten)]
    pub trace: TraceArgs,
}

/// Arguments of `wasmprobe record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The trace.dat to write.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Events to record: SYSTEM or SYSTEM:EVENT (repeatable).
    #[arg(short = 'e', long = "event")]
    pub events: Vec<String>,
    /// trace.dat version to write: 6 (read by every trace-cmd) or 7.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(6..=7))]
    pub file_version: u32,
    /// Also record a plugin's probes and run it live on them.
    #[arg(long)]
    pub plugin: Option<String>,
    /// The plugin's arguments, sandbox and trust.
    #[command(flatten)]
    pub plugin_args: PluginArgs,
    /// Write the plugin's output to FILE instead of stdout.
    #[arg(long, value_name = "FILE", requires = "plugin")]
    pub plugin_output: Option<PathBuf>,
    /// What to follow and for how long.
    #[command(flatten)]
    pub trace: TraceArgs,
}

/// Arguments of `wasmprobe agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The agent's config (TOML; see deploy/agent.example.toml).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Only validate the config and the plugins' plans, without touching the kernel.
    #[arg(long)]
    pub check: bool,
    /// Serve /metrics, /healthz and /readyz here (HOST:PORT), instead of the config's
    /// `metrics_listen`.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
}

/// Arguments of `wasmprobe stream`.
#[derive(Debug, Args)]
pub struct StreamArgs {
    /// Events to trace: SYSTEM or SYSTEM:EVENT (repeatable).
    #[arg(short = 'e', long = "event", required = true)]
    pub events: Vec<String>,
    /// What to follow and for how long.
    #[command(flatten)]
    pub trace: TraceArgs,
}

/// Arguments of `wasmprobe flamegraph`.
#[derive(Debug, Args)]
pub struct FlamegraphArgs {
    /// The folded stacks: lines of `outermost;...;innermost COUNT`.
    pub folded: PathBuf,
    /// The SVG to write (written whole or not at all).
    #[arg(short, long, value_name = "FILE.svg")]
    pub output: PathBuf,
    /// The graph's title.
    #[arg(long)]
    pub title: Option<String>,
}

/// Arguments of `wasmprobe inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A .wasm component or the name of a built-in plugin.
    pub plugin: String,
    /// `K=V` arguments for the plugin's init.
    #[arg(long = "arg", value_parser = parse_kv)]
    pub args: Vec<(String, String)>,
    /// Probe kinds the plugin may use, e.g. `uprobe,tracepoint` (default: all).
    #[arg(long)]
    pub allow: Option<String>,
    /// Largest memory the plugin may use, in MiB (as for `run`).
    #[arg(long, default_value_t = 64)]
    pub memory_mib: u64,
    /// Wall-clock time instantiation and `init` may take (as for `run`, e.g. 1s).
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub setup_budget: Duration,
}

/// `wasmprobe new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The plugin's language.
    #[arg(long, value_enum)]
    pub lang: Lang,
    /// The project's directory (created; must be empty if it exists). Its name is the plugin's.
    pub dir: PathBuf,
    /// Rust only: the SDK's directory (default: the guest-sdk of the tree wasmprobe was built from).
    #[arg(long)]
    pub sdk: Option<PathBuf>,
}

/// A language plugins are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust, with guest-sdk (cargo, wasm32-wasip2).
    Rust,
    /// Python, with guest-sdk-python (componentize-py).
    Python,
    /// JavaScript, with guest-sdk-js (componentize-js).
    Js,
}

impl Lang {
    /// The name `--lang` takes.
    pub fn name(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }
}

/// `wasmprobe kprobe ...`
#[derive(Debug, Subcommand)]
pub enum KprobeCmd {
    /// Create a kprobe (or with --ret a kretprobe) at ADDR: a function, function+offset, or address.
    Add(KprobeAdd),
    /// Remove the kprobe or kretprobe that `add` with the same system, event and ADDR created.
    Remove(KprobeRemove),
}

/// Arguments of `wasmprobe kprobe add`.
#[derive(Debug, Args)]
pub struct KprobeAdd {
    /// Event system (group); default `kprobes`.
    #[arg(long, short)]
    pub system: Option<String>,
    /// Event name; default derived from ADDR.
    #[arg(long, short)]
    pub event: Option<String>,
    /// Probe the function's return (a kretprobe).
    #[arg(long)]
    pub ret: bool,
    /// With --ret: how many instances of the function can be probed at once (maxactive).
    #[arg(long, requires = "ret")]
    pub maxactive: Option<u32>,
    /// Where to probe: SYMBOL, SYMBOL+OFFSET, MODULE:SYMBOL or 0xADDRESS.
    pub addr: String,
    /// Fetch arguments, e.g. `file=+0($arg2):ustring` (see the kernel's kprobetrace.rst).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub fetchargs: Vec<String>,
}

/// Arguments of `wasmprobe kprobe remove`.
#[derive(Debug, Args)]
pub struct KprobeRemove {
    /// Event system (group); default `kprobes`.
    #[arg(long, short)]
    pub system: Option<String>,
    /// Event name; default derived from ADDR.
    #[arg(long, short)]
    pub event: Option<String>,
    /// Disable the event in every instance first (removing an enabled probe fails with EBUSY).
    #[arg(long, short)]
    pub force: bool,
    /// The address the probe was added with.
    pub addr: String,
}

/// `wasmprobe uprobe ...`
#[derive(Debug, Subcommand)]
pub enum UprobeCmd {
    /// Create a uprobe (or with --ret a uretprobe) on PATH:SYMBOL or PATH:0xOFFSET.
    Add(UprobeAdd),
    /// Remove a uprobe or uretprobe by name.
    Remove(UprobeRemove),
}

/// Arguments of `wasmprobe uprobe add`.
#[derive(Debug, Args)]
pub struct UprobeAdd {
    /// Event system (group); default `uprobes`.
    #[arg(long, short)]
    pub system: Option<String>,
    /// Event name.
    #[arg(long, short)]
    pub event: String,
    /// Probe the function's return (a uretprobe).
    #[arg(long)]
    pub ret: bool,
    /// PATH:SYMBOL, PATH:SYMBOL+OFFSET or PATH:0xOFFSET (a file offset).
    pub target: String,
    /// Fetch arguments, e.g. `file=+0(%di):ustring` (see the kernel's uprobetracer.rst).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub fetchargs: Vec<String>,
}

/// Arguments of `wasmprobe uprobe remove`.
#[derive(Debug, Args)]
pub struct UprobeRemove {
    /// Event system (group); default `uprobes`.
    #[arg(long, short)]
    pub system: Option<String>,
    /// Event name.
    #[arg(long, short)]
    pub event: String,
    /// Disable the event in every instance first.
    #[arg(long, short)]
    pub force: bool,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| format!("{s:?} is not K=V"))
}

/// Parses `10s`, `500ms`, `2m`, `1h` or plain seconds (`1.5`).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let (num, unit) = s.find(|c: char| c.is_ascii_alphabetic()).map_or((s, "s"), |i| s.split_at(i));
    let v: f64 = num.parse().map_err(|_| format!("{s:?} is not a duration (try 10s, 500ms, 2m)"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("unknown unit {unit:?} in {s:?} (ms, s, m, h)")),
    };
    if !(secs.is_finite() && secs >= 0.0) {
        return Err(format!("{s:?} is not a duration"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}
