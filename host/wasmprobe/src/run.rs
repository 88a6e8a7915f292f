//! `wasmprobe run PLUGIN`: the whole data flow of DESIGN.md. Load the plugin into its sandbox,
//! ask it for its plan, check the plan, arm the probes in an instance of our own, optionally
//! fork the command to follow, pump the kernel's events to the plugin in batches, and on any
//! ending (the command exits, Ctrl-C, SIGTERM, the duration, or the plugin failing) drain,
//! call `finish`, and take everything out of the kernel again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use traceevent::{Endian, EventFormat};
use tracefs::{kprobes_supported, uprobes_supported, Tracefs};

use crate::child::{install_stop_handlers, stop_requested, HeldChild};
use crate::plugin::{self, BatchWriter, KernelInfo, Layout, Plan, Plugin, PluginSource, Policy, Sandbox, StdOutput};
use crate::pump::{Pump, RecordSink};
use crate::session::{ProbeKind, ProbeRequest, Session};

/// What `run` needs to know.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// A `.wasm` component path or the name of a built-in plugin.
    pub plugin: String,
    /// `--arg K=V` pairs for the plugin's `init`.
    pub args: Vec<(String, String)>,
    /// Follow this process (and its children) only.
    pub pid: Option<i32>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Structured records as JSON lines.
    pub json: bool,
    /// Which probe kinds the plugin may use.
    pub policy: Policy,
    /// Memory and CPU limits.
    pub sandbox: Sandbox,
    /// Run this command and follow it (and its children).
    pub command: Vec<String>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// Events delivered to the plugin.
    pub events: u64,
    /// Events the kernel lost.
    pub lost: u64,
    /// The command's exit code, if a command was run.
    pub exit_code: Option<i32>,
}

/// What this kernel can do, asked by a plugin's `init` to choose its probes.
pub struct LiveKernel {
    tracefs: Tracefs,
}

impl LiveKernel {
    /// Answers from this tracing directory and `/proc/kallsyms`.
    pub fn new(tracefs: &Tracefs) -> Self {
        LiveKernel { tracefs: tracefs.clone() }
    }
}

impl KernelInfo for LiveKernel {
    fn supports(&self, feature: &str) -> bool {
        match feature {
            "kprobe" | "kretprobe" => kprobes_supported(&self.tracefs),
            "uprobe" | "uretprobe" => uprobes_supported(&self.tracefs),
            "tracepoint" => self.tracefs.has("events"),
            // eprobes are listed in the README's dynamic_events syntax where the kernel has them.
            "eprobe" => {
                self.tracefs.has("dynamic_events")
                    && tracefs::read_text(&self.tracefs.file("README")).is_ok_and(|r| r.contains("e[:[<group>/]"))
            }
            _ => false,
        }
    }

    fn has_symbol(&self, name: &str) -> bool {
        let Ok(text) = std::fs::read_to_string("/proc/kallsyms") else { return false };
        text.lines().any(|l| l.split_whitespace().nth(2) == Some(name))
    }
}

fn to_request(d: &plugin::ProbeDecl) -> ProbeRequest {
    let kind = match d.kind {
        plugin::ProbeKind::Kprobe => ProbeKind::Kprobe,
        plugin::ProbeKind::Kretprobe => ProbeKind::Kretprobe,
        plugin::ProbeKind::Uprobe => ProbeKind::Uprobe,
        plugin::ProbeKind::Uretprobe => ProbeKind::Uretprobe,
        plugin::ProbeKind::Tracepoint => ProbeKind::Tracepoint,
        plugin::ProbeKind::Eprobe => ProbeKind::Eprobe,
    };
    ProbeRequest {
        name: d.name.clone(),
        kind,
        target: d.target.clone(),
        fetchargs: d.fetchargs.clone(),
        filter: d.filter.clone(),
        maxactive: d.maxactive,
    }
}

/// The layout a plugin gets for an armed probe, from the kernel's format file.
pub fn layout_of(system: &str, event: &str, id: u16, format_text: &str) -> Result<Layout> {
    let f = EventFormat::parse(system, format_text, Endian::native())
        .with_context(|| format!("format of {system}/{event}"))?;
    let fields = f
        .common_fields
        .iter()
        .chain(&f.fields)
        .map(|fl| {
            let name = match fl.array_len {
                Some(0) => format!("{}[]", fl.name),
                Some(n) => format!("{}[{n}]", fl.name),
                None => fl.name.clone(),
            };
            plugin::Field::from_format(&fl.type_name, &name, fl.offset as u32, fl.size as u32, fl.signed)
        })
        .collect();
    Ok(Layout { system: system.to_string(), event: event.to_string(), id: id as u32, fields })
}

/// A probe group and instance tag made from the plugin's name (a C identifier, short).
fn tag_of(plugin: &str) -> String {
    let base = std::path::Path::new(plugin).file_stem().and_then(|s| s.to_str()).unwrap_or("plugin");
    let mut t: String = base.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    t.truncate(24);
    t
}

/// Batches records and hands each full batch (and each round's end) to the plugin.
struct PluginSink<'p> {
    plugin: &'p mut Plugin,
    batch: BatchWriter,
    pending: usize,
    lost_reported: u64,
}

/// Records per `on-batch` call at most: big enough to amortise the call, small enough to keep
/// the per-call CPU budget meaningful.
const MAX_BATCH: usize = 4096;

impl PluginSink<'_> {
    fn deliver(&mut self, lost_total: u64) -> Result<()> {
        let lost = lost_total - self.lost_reported;
        if self.pending == 0 && lost == 0 {
            return Ok(());
        }
        self.plugin.on_batch(self.batch.as_bytes(), lost)?;
        self.lost_reported = lost_total;
        self.batch.clear();
        self.pending = 0;
        Ok(())
    }
}

impl RecordSink for PluginSink<'_> {
    fn record(&mut self, probe: usize, cpu: u32, pid: i32, ts: u64, payload: &[u8]) -> Result<()> {
        self.batch.push(probe as u32, cpu, pid, ts, payload);
        self.pending += 1;
        if self.pending >= MAX_BATCH {
            self.deliver(self.lost_reported)?;
        }
        Ok(())
    }

    fn flush(&mut self, lost: &[u64]) -> Result<()> {
        self.deliver(lost.iter().sum())
    }
}

/// Loads the plugin and returns it with its validated plan (nothing touches the kernel).
pub fn plan(opts: &RunOptions, tracefs: &Tracefs) -> Result<(Plugin, Plan)> {
    let source = PluginSource::parse(&opts.plugin);
    let mut plugin = Plugin::load(&source, &opts.sandbox, Box::new(StdOutput { json: opts.json }))?;
    let plan = plugin.init(&opts.args, Arc::new(LiveKernel::new(tracefs)))?;
    plan.validate(&opts.policy).with_context(|| format!("plugin {}: its probe plan was refused", opts.plugin))?;
    Ok((plugin, plan))
}

/// Runs a plugin against the live kernel (see the module docs).
pub fn run(opts: &RunOptions) -> Result<RunOutcome> {
    let tracefs = Tracefs::open()?;
    install_stop_handlers()?;
    let (mut plugin, plan) = plan(opts, &tracefs)?;
    let requests: Vec<ProbeRequest> = plan.probes.iter().map(to_request).collect();
    let session = Session::arm(&tracefs, &tag_of(&opts.plugin), &requests)
        .with_context(|| format!("plugin {}: cannot arm its probes", opts.plugin))?;
    let layouts =
        session.probes().iter().map(|p| layout_of(&p.system, &p.event, p.id, &p.format)).collect::<Result<Vec<_>>>()?;
    plugin.set_layouts(layouts)?;
    let inst = session.instance();
    let mut pump = Pump::open(inst)?;
    let _ = inst.write_file("set_event_notrace_pid", &std::process::id().to_string());
    let mut child = if opts.command.is_empty() { None } else { Some(HeldChild::spawn(&opts.command)?) };
    if let Some(pid) = child.as_ref().map(HeldChild::pid).or(opts.pid) {
        session.follow_pid(pid)?;
    }
    session.enable()?;
    if let Some(c) = &mut child {
        c.release()?;
    }
    let start = Instant::now();
    let mut sink = PluginSink { plugin: &mut plugin, batch: BatchWriter::new(), pending: 0, lost_reported: 0 };
    let result = (|| -> Result<()> {
        loop {
            if stop_requested() || opts.duration.is_some_and(|d| start.elapsed() >= d) {
                break;
            }
            if child.as_mut().is_some_and(|c| c.exited()) {
                break;
            }
            if opts.pid.is_some_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()) {
                break;
            }
            pump.wait(Duration::from_millis(100))?;
            pump.drain(&session, &mut sink)?;
        }
        session.stop()?;
        pump.drain(&session, &mut sink)?;
        Ok(())
    })();
    // A plugin that failed mid-run gets no `finish`; the session still comes down on drop.
    result?;
    plugin.finish()?;
    Ok(RunOutcome { events: pump.records(), lost: pump.total_lost(), exit_code: child.and_then(|c| c.exit_code()) })
}
