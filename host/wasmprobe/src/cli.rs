//! The command line: every subcommand and flag is defined and documented here, once.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use tracefs::{
    dynevent_get_all, kprobe_alloc, kretprobe_alloc, resolve_target, uprobe_alloc, uretprobe_alloc, DynEvent,
    DynEventType, Tracefs,
};

use crate::owned;

/// Run trace logic against the Linux kernel: probes, events, and sandboxed Wasm plugins.
#[derive(Debug, Parser)]
#[command(name = "wasmprobe", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a Wasm plugin (a .wasm component or a built-in: exec-open, syscount, openlat,
    /// readline) against the live kernel.
    Run(RunArgs),
    /// Record live events to a trace.dat that trace-cmd and KernelShark read (and `run
    /// --replay` replays).
    Record(RecordArgs),
    /// Show what a plugin asks for (its probes, and whether the policy allows them) without
    /// touching the kernel.
    Inspect {
        /// A .wasm component or the name of a built-in plugin.
        plugin: String,
        /// `K=V` arguments for the plugin's init.
        #[arg(long = "arg", value_parser = parse_kv)]
        args: Vec<(String, String)>,
        /// Probe kinds the plugin may use, e.g. `uprobe,tracepoint` (default: all).
        #[arg(long)]
        allow: Option<String>,
    },
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
        file: std::path::PathBuf,
    },
    /// Print live events of this kernel like `trace-cmd report`, until Ctrl-C or COMMAND ends.
    Stream {
        /// Events to trace: SYSTEM or SYSTEM:EVENT (repeatable).
        #[arg(short = 'e', long = "event", required = true)]
        events: Vec<String>,
        /// Stop after this long (e.g. 10s, 500ms, 2m).
        #[arg(long, value_parser = parse_duration)]
        duration: Option<std::time::Duration>,
        /// Run COMMAND and trace only it and its children.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Remove what a killed wasmprobe run left in the kernel: our instances and probe groups
    /// whose process is gone, and nothing else.
    Cleanup {
        /// Also remove those of wasmprobe processes that are still running.
        #[arg(long)]
        all: bool,
    },
}

/// Arguments of `wasmprobe run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A probe pack (.wpk), a .wasm component or the name of a built-in plugin.
    pub plugin: String,
    #[command(flatten)]
    pub trust: crate::pack::cli::TrustArgs,
    /// `K=V` arguments for the plugin's init (repeatable).
    #[arg(long = "arg", value_parser = parse_kv)]
    pub args: Vec<(String, String)>,
    /// Trace only this process and the children it forks.
    #[arg(long)]
    pub pid: Option<i32>,
    /// Stop after this long (e.g. 10s, 500ms, 2m).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Print JSON lines: every line of our output is one JSON object (a record the plugin
    /// emits; a line it prints as {"plugin":NAME,"line":LINE}). Without -o, COMMAND's stdout
    /// goes to stderr, so that stdout holds JSON alone. Logs and warnings stay on stderr.
    #[arg(long)]
    pub json: bool,
    /// Write the plugin's output to FILE instead of stdout (COMMAND keeps the terminal).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// Probe kinds the plugin may use, e.g. `uprobe,tracepoint` (default: all).
    #[arg(long)]
    pub allow: Option<String>,
    /// Largest memory the plugin may use, in MiB.
    #[arg(long, default_value_t = 64)]
    pub memory_mib: u64,
    /// Wall-clock time one event batch (`on-batch`) may take in the plugin, host calls
    /// included (e.g. 100ms).
    #[arg(long, value_parser = parse_duration, default_value = "100ms")]
    pub cpu_budget: std::time::Duration,
    /// Wall-clock time the plugin's start (instantiation and `init`) and its `finish` may each
    /// take (e.g. 1s). After Ctrl-C/SIGTERM a call gets at most 300 ms, `finish` 400 ms.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub setup_budget: std::time::Duration,
    /// Largest plugin component file that is read, in MiB (a pack is at most 128 MiB).
    #[arg(long, default_value_t = 256)]
    pub max_plugin_mib: u64,
    /// Run the plugin over a recorded trace.dat instead of the live kernel (no root needed).
    #[arg(long, value_name = "FILE")]
    pub replay: Option<std::path::PathBuf>,
    /// Run COMMAND and trace only it and its children.
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// Arguments of `wasmprobe record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The trace.dat to write.
    #[arg(short, long)]
    pub output: std::path::PathBuf,
    /// Events to record: SYSTEM or SYSTEM:EVENT (repeatable).
    #[arg(short = 'e', long = "event")]
    pub events: Vec<String>,
    /// Also record a plugin's probes and run it live on them.
    #[arg(long)]
    pub plugin: Option<String>,
    /// `K=V` arguments for the plugin's init (repeatable).
    #[arg(long = "arg", value_parser = parse_kv)]
    pub args: Vec<(String, String)>,
    /// Print the plugin's output as JSON lines (as `run --json` does; without
    /// --plugin-output, COMMAND's stdout goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Write the plugin's output to FILE instead of stdout.
    #[arg(long, value_name = "FILE", requires = "plugin")]
    pub plugin_output: Option<std::path::PathBuf>,
    /// trace.dat version to write: 6 (read by every trace-cmd) or 7.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(6..=7))]
    pub file_version: u32,
    /// Trace only this process and the children it forks.
    #[arg(long)]
    pub pid: Option<i32>,
    /// Stop after this long (e.g. 10s, 500ms, 2m).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Run COMMAND and record only it and its children.
    #[arg(last = true)]
    pub command: Vec<String>,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| format!("{s:?} is not K=V"))
}

fn policy(allow: Option<&str>) -> Result<crate::plugin::Policy> {
    match allow {
        Some(a) => crate::plugin::Policy::from_allow_list(a).map_err(|e| anyhow::anyhow!("--allow: {e}")),
        None => Ok(crate::plugin::Policy::default()),
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

fn joined(args: &[String]) -> Option<String> {
    (!args.is_empty()).then(|| args.join(" "))
}

/// Runs a parsed command line; the error, if any, is for the user.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run(a) => {
            let sandbox = crate::plugin::Sandbox {
                memory_limit_bytes: a.memory_mib << 20,
                callback_budget: a.cpu_budget,
                setup_budget: a.setup_budget,
                max_plugin_bytes: a.max_plugin_mib << 20,
                ..Default::default()
            };
            let opts = crate::run::RunOptions {
                trust: a.trust.policy()?,
                policy: policy(a.allow.as_deref())?,
                plugin: a.plugin,
                args: a.args,
                pid: a.pid,
                duration: a.duration,
                json: a.json,
                output: a.output,
                sandbox,
                command: a.command,
            };
            let out = match &a.replay {
                Some(file) => crate::run::replay(&opts, file)?,
                None => crate::run::run(&opts)?,
            };
            if out.lost > 0 {
                eprintln!("wasmprobe: {} events delivered, {} lost", out.events, out.lost);
            }
            if let Some(code) = out.exit_code.filter(|&c| c != 0) {
                std::process::exit(code);
            }
            Ok(())
        }
        Command::Record(r) => {
            let opts = crate::run::RunOptions {
                trust: crate::pack::TrustPolicy::none(),
                policy: crate::plugin::Policy::default(),
                plugin: r.plugin.clone().unwrap_or_default(),
                args: r.args,
                pid: r.pid,
                duration: r.duration,
                json: r.json,
                output: r.plugin_output,
                sandbox: crate::plugin::Sandbox::default(),
                command: r.command,
            };
            let to = crate::run::RecordTo { path: r.output.clone(), version: r.file_version, events: r.events };
            let out = crate::run::record(r.plugin.as_ref().map(|_| &opts), &opts, &to)?;
            eprintln!("wasmprobe: recorded {} events to {} ({} lost)", out.events, r.output.display(), out.lost);
            Ok(())
        }
        Command::Inspect { plugin, args, allow } => inspect(&plugin, args, allow.as_deref()),
        Command::Pack(cmd) => crate::pack::cli::run(cmd),
        Command::Kprobe(cmd) => kprobe(cmd),
        Command::Uprobe(cmd) => uprobe(cmd),
        Command::Probes { json } => probes(json),
        Command::Cleanup { all } => cleanup(all),
        Command::Stream { events, duration, command } => {
            let stdout = std::io::stdout();
            let out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
            let stats = crate::stream::stream(&events, &command, duration, out)?;
            eprintln!("wasmprobe: {} events, {} lost", stats.records, stats.lost);
            if let Some(code) = stats.exit_code.filter(|&c| c != 0) {
                std::process::exit(code);
            }
            Ok(())
        }
        Command::Report { file } => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
            match crate::report::report(&file, &mut out) {
                // A closed pipe (`| head`) is not an error of ours.
                Err(e) if is_broken_pipe(&e) => Ok(()),
                r => r.map(drop).and_then(|()| Ok(std::io::Write::flush(&mut out)?)),
            }
        }
    }
}

fn kprobe(cmd: KprobeCmd) -> Result<()> {
    let t = Tracefs::open()?;
    match cmd {
        KprobeCmd::Add(a) => {
            let fmt = joined(&a.fetchargs);
            let ev = if a.ret {
                kretprobe_alloc(
                    a.system.as_deref(),
                    a.event.as_deref(),
                    Some(&a.addr),
                    fmt.as_deref(),
                    a.maxactive.unwrap_or(0),
                )?
            } else {
                kprobe_alloc(a.system.as_deref(), a.event.as_deref(), Some(&a.addr), fmt.as_deref())?
            };
            ev.create(&t)?;
            println!("created {} {}", ev.kind.name(), ev.full_name());
        }
        KprobeCmd::Remove(r) => {
            let ev = kprobe_alloc(r.system.as_deref(), r.event.as_deref(), Some(&r.addr), None)?;
            ev.destroy(&t, r.force)?;
            println!("removed {}", ev.full_name());
        }
    }
    Ok(())
}

fn uprobe(cmd: UprobeCmd) -> Result<()> {
    let t = Tracefs::open()?;
    match cmd {
        UprobeCmd::Add(a) => {
            let system = a.system.as_deref().unwrap_or(tracefs::uprobe::UPROBE_DEFAULT_SYSTEM);
            let target = resolve_target(&a.target).with_context(|| format!("probe {system}/{}", a.event))?;
            let path = target.path.to_str().context("uprobe path is not UTF-8")?;
            let fmt = joined(&a.fetchargs);
            let alloc = if a.ret { uretprobe_alloc } else { uprobe_alloc };
            let ev = alloc(a.system.as_deref(), &a.event, path, target.offset, fmt.as_deref())?;
            ev.create(&t)?;
            println!("created {} {} at {}", ev.kind.name(), ev.full_name(), ev.address);
        }
        UprobeCmd::Remove(r) => {
            let system = r.system.as_deref().unwrap_or(tracefs::uprobe::UPROBE_DEFAULT_SYSTEM);
            DynEvent::new(DynEventType::Uprobe, system, &r.event, "", "").destroy(&t, r.force)?;
            println!("removed {system}/{}", r.event);
        }
    }
    Ok(())
}

fn probes(json: bool) -> Result<()> {
    let t = Tracefs::open()?;
    let all = dynevent_get_all(&t, &[], None)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        for line in all.iter().flat_map(DynEvent::listing_lines) {
            println!("{line}");
        }
    }
    Ok(())
}

fn cleanup(all: bool) -> Result<()> {
    let t = Tracefs::open()?;
    let done = owned::cleanup(&t, all)?;
    for i in &done.instances {
        println!("removed instance {i}");
    }
    for p in &done.probes {
        println!("removed {p}");
    }
    if done.instances.is_empty() && done.probes.is_empty() && done.failures.is_empty() {
        println!("nothing of ours left in {}", t.path().display());
    }
    if let Some(first) = done.failures.first() {
        anyhow::bail!("{} item(s) could not be removed; first: {first}", done.failures.len());
    }
    Ok(())
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
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

fn inspect(plugin: &str, args: Vec<(String, String)>, allow: Option<&str>) -> Result<()> {
    let tracefs = Tracefs::open()?;
    let policy = policy(allow)?;
    let source = crate::plugin::PluginSource::parse(plugin);
    let mut p = crate::plugin::Plugin::load(
        &source,
        &crate::plugin::Sandbox::default(),
        Box::new(crate::plugin::StdOutput::default()),
    )?;
    let plan = p.init(&args, std::sync::Arc::new(crate::run::LiveKernel::new(&tracefs)))?;
    println!("plugin {plugin}: {} probe(s)", plan.probes.len());
    // A uprobe target that is not a program or library is refused when the run arms it.
    let mut target_refusal = None;
    for d in &plan.probes {
        let uprobe = matches!(d.kind, crate::plugin::ProbeKind::Uprobe | crate::plugin::ProbeKind::Uretprobe);
        let verdict = match uprobe.then(|| resolve_target(&d.target)) {
            _ if !policy.allows(d.kind) => "REFUSED by --allow".to_string(),
            Some(Err(e)) => {
                target_refusal.get_or_insert(format!("probe {}: {e}", d.name));
                format!("REFUSED: {e}")
            }
            _ => "allowed".to_string(),
        };
        // Everything the plugin chose is shown escaped and cut (see `plan::shown`).
        let shown = crate::plugin::plan::shown;
        let filter = d.filter.as_deref().map(|f| format!(" if {}", shown(f))).unwrap_or_default();
        let fields = d.fields.as_ref().map(|f| format!(" reads {}", shown(&f.join(",")))).unwrap_or_default();
        let (name, target, fetchargs) = (shown(&d.name), shown(&d.target), shown(&d.fetchargs));
        println!("  {:<10} {name:<16} {target} {fetchargs}{filter}{fields}  [{verdict}]", d.kind.name());
    }
    let groups = crate::run::dynamic_groups(&tracefs)?;
    let validated = plan.validate(&policy).and_then(|()| crate::plugin::plan::check_sources(&plan.probes, &groups));
    match (validated, target_refusal) {
        (Err(e), _) => println!("plan: refused: {e}"),
        (Ok(()), Some(e)) => println!("plan: refused: {e}"),
        (Ok(()), None) => println!("plan: valid under this policy"),
    }
    Ok(())
}
