//! `wasmprobe run PLUGIN` and `wasmprobe record`: load the plugin into its sandbox, ask it for
//! its plan, check the plan, then run the live [`Pipeline`] with the plugin as its sink (and,
//! recording, a page tap), and on any ending call `finish` and take everything out of the
//! kernel again. A replay ([`crate::replay`]) runs the same plugin sink from a trace.dat.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use traceevent::{Endian, EventFormat};
use tracefs::Tracefs;

use crate::child::CommandStdout;
use crate::kernel_info::{LiveComm, RecordingKernel};
pub use crate::pipeline::{Outcome, TraceOptions};
use crate::pipeline::{Pages, Pipeline};
use crate::plugin::{self, KernelInfo, Layout, Plan, Plugin, Policy, Sandbox, StdOutput};
use crate::pump::RecordSink;
use crate::record::{RecordTo, RecordedRun, Recorder};
pub use crate::session::ProbeIds;
use crate::sink::{NullSink, PluginSink};

/// Which plugin to run and how: what `run` and `record --plugin` share.
#[derive(Debug, Clone)]
pub struct PluginOptions {
    /// A probe pack (`.wpk`), a `.wasm` component path or the name of a built-in plugin.
    pub plugin: String,
    /// `--arg K=V` pairs for the plugin's `init`.
    pub args: Vec<(String, String)>,
    /// Structured records as JSON lines: every line of our output is one JSON object, and the
    /// command's stdout goes to our stderr unless `output` is set.
    pub json: bool,
    /// Write the plugin's output to this file (`-o`) instead of stdout.
    pub output: Option<PathBuf>,
    /// Which probe kinds the plugin may use.
    pub policy: Policy,
    /// Memory and CPU limits.
    pub sandbox: Sandbox,
    /// Which pack signers to trust (`--trust`, `--trust-dir`); none set: any pack runs.
    pub trust: crate::pack::TrustPolicy,
    /// Serve the run's metrics for Prometheus here (`run --metrics-listen`).
    pub metrics_listen: Option<String>,
    /// The run's Perfetto trace (`--perfetto`): the plugin's timeline marks go there.
    pub timeline: Option<crate::perfetto::LiveTrace>,
}

impl PluginOptions {
    /// Where the traced command's stdout goes: with `--json` and no `-o` our stdout holds
    /// JSON alone, so the command's goes to our stderr.
    pub fn command_stdout(&self) -> CommandStdout {
        if self.json && self.output.is_none() {
            CommandStdout::ToStderr
        } else {
            CommandStdout::Inherit
        }
    }
}

/// The layout a plugin gets for an armed probe, from the kernel's format file.
pub fn layout_of(system: &str, event: &str, id: u16, format_text: &str) -> Result<Layout> {
    let f = EventFormat::parse(system, format_text, Endian::native())
        .with_context(|| format!("format of {system}/{event}"))?;
    let long = std::mem::size_of::<std::ffi::c_long>() as u8;
    let fields = f.common_fields.iter().chain(&f.fields).map(|fl| plugin::LayoutField::from_field(fl, long)).collect();
    Ok(Layout { system: system.to_string(), event: event.to_string(), id: id as u32, fields })
}

/// A probe group and instance tag made from the plugin's name (a C identifier, short).
fn tag_of(plugin: &str) -> String {
    let base = std::path::Path::new(plugin).file_stem().and_then(|s| s.to_str()).unwrap_or("plugin");
    let mut t: String = base.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    t.truncate(24);
    t
}

/// Refuses a plan whose tracepoints or eprobes read somebody's dynamic events (see
/// [`plugin::plan::check_sources`]): the groups are read from tracefs' listings, before
/// anything is written.
pub fn check_sources(tracefs: &Tracefs, plan: &Plan, plugin: &Plugin) -> Result<()> {
    let groups = dynamic_groups(tracefs)?;
    plugin::plan::check_sources(&plan.probes, &groups)
        .with_context(|| format!("plugin {}: its probe plan was refused", plugin.name()))
}

/// The systems of every dynamic event on the machine (kprobes, uprobes, eprobes, synthetic).
pub fn dynamic_groups(tracefs: &Tracefs) -> Result<std::collections::HashSet<String>> {
    Ok(tracefs::dynevent_get_all(tracefs, &[], None)?.into_iter().map(|e| e.system).collect())
}

/// Loads the plugin and returns it with its validated plan (nothing touches the kernel).
pub fn plan(opts: &PluginOptions, kernel: Arc<dyn KernelInfo>) -> Result<(Plugin, Plan)> {
    plan_with_metrics(opts, kernel, None)
}

/// [`plan`], the plugin's metrics kept in `metrics` (`run --metrics-listen`).
fn plan_with_metrics(
    opts: &PluginOptions,
    kernel: Arc<dyn KernelInfo>,
    metrics: Option<&crate::agent::metrics::RunMetrics>,
) -> Result<(Plugin, Plan)> {
    let source = crate::pack::RunSource::resolve(&opts.plugin, &opts.trust)?;
    let sink = match &opts.output {
        Some(path) => {
            let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            StdOutput::to_file(opts.json, file)
        }
        None => StdOutput::new(opts.json),
    };
    let mut plugin = source.load(&opts.sandbox, Box::new(sink))?;
    if let Some(t) = &opts.timeline {
        plugin.set_timeline(t.timeline());
    }
    if let Some(m) = metrics {
        plugin.set_metrics(m.plugins.clone(), &tag_of(&opts.plugin));
    }
    let plan = plugin.init(&opts.args, kernel)?;
    plan.validate(&opts.policy).with_context(|| format!("plugin {}: its probe plan was refused", plugin.name()))?;
    source.check_plan(&plan)?;
    Ok((plugin, plan))
}

/// Runs a plugin against the live kernel (see the module docs).
pub fn run(plugin: &PluginOptions, trace: &TraceOptions) -> Result<Outcome> {
    live(Some(plugin), trace, None)
}

/// Records to a trace.dat: the events `to.events` names, and when `plugin` is given, its probes
/// too, with the plugin running live on them as `run` would.
pub fn record(plugin: Option<&PluginOptions>, trace: &TraceOptions, to: &RecordTo) -> Result<Outcome> {
    live(plugin, trace, Some(to))
}

fn live(plugin_opts: Option<&PluginOptions>, trace: &TraceOptions, record: Option<&RecordTo>) -> Result<Outcome> {
    // A damaged or untrusted pack is refused before anything touches the kernel.
    if let Some(p) = plugin_opts {
        crate::pack::RunSource::resolve(&p.plugin, &p.trust)?;
    }
    // --perfetto: the file is created first (an unwritable path stops the run at once), and
    // the plugin draws its marks there.
    let perfetto = crate::perfetto::LiveTrace::for_live_run(trace.perfetto.as_deref())?;
    let with_timeline = plugin_opts.map(|p| PluginOptions { timeline: perfetto.clone(), ..p.clone() });
    let plugin_opts = with_timeline.as_ref();
    let tracefs = crate::owned::open_for_run()?;
    crate::child::install_stop_handlers()?;
    let mut recorded = RecordedRun::default();
    let metrics = match plugin_opts.and_then(|p| p.metrics_listen.as_deref().map(|a| (a, p))) {
        Some((addr, p)) => Some(crate::agent::metrics::RunMetrics::serve(addr, &tag_of(&p.plugin))?),
        None => None,
    };
    let mut loaded = match plugin_opts {
        Some(p) => {
            let kernel = Arc::new(RecordingKernel::new(&tracefs));
            let (plugin, plan) = plan_with_metrics(p, kernel.clone(), metrics.as_ref())?;
            check_sources(&tracefs, &plan, &plugin)?;
            recorded.plugin = Some(p.plugin.clone());
            recorded.args = p.args.clone();
            recorded.answers = kernel.answers();
            Some((plugin, plan))
        }
        None => None,
    };
    let mut requests: Vec<plugin::ProbeDecl> = loaded.as_ref().map_or(Vec::new(), |(_, plan)| plan.probes.clone());
    let planned = requests.len();
    if let Some(to) = record {
        requests.extend(crate::stream::tracepoint_requests(&tracefs, &to.events)?);
    }
    if requests.is_empty() {
        anyhow::bail!("nothing to trace: give a plugin or events (-e)");
    }
    let tag = tag_of(plugin_opts.map_or("record", |p| p.plugin.as_str()));
    let pages = if record.is_some() { Pages::Kernel } else { Pages::Live };
    let mut pipeline = Pipeline::arm(&tracefs, &tag, &requests, pages)?;
    let session = pipeline.session();
    if let Some(t) = &perfetto {
        t.attach(session, &tracefs)?;
    }
    recorded.probes = session.probes()[..planned]
        .iter()
        .map(|p| (requests[p.index].name.clone(), p.system.clone(), p.event.clone()))
        .collect();
    let anchors = session.uprobe_anchors();
    let given = Arc::new(Mutex::new(BTreeMap::new()));
    let exits = loaded.as_ref().and_then(|_| crate::kernel_info::ExitNames::start(&tracefs));
    if let Some((plugin, _)) = &mut loaded {
        let layouts = session.probes()[..planned]
            .iter()
            .map(|p| layout_of(&p.system, &p.event, p.id, &p.format))
            .collect::<Result<Vec<_>>>()?;
        plugin.set_layouts(layouts)?;
        plugin.set_comm_lookup(Box::new(LiveComm::new(&tracefs, given.clone()).with_exits(exits.clone())));
        // Stacks are named on the host; a recording keeps the mappings of the processes seen.
        let symbolizer = crate::symbolize::StackSymbolizer::live();
        recorded.processes = Some(symbolizer.processes());
        plugin.set_symbolizer(Box::new(symbolizer));
    }
    let recorder = match record {
        Some(to) => Some(Recorder::new(&to.path, session.instance().cpu_count()?)?),
        None => None,
    };
    if let Some(r) = &recorder {
        match loaded.is_none() && perfetto.is_none() {
            // Nothing reads the records live: the readers splice the pages to the files.
            true => pipeline.record_raw(r.files()?)?,
            false => pipeline.set_tap(r.tap()),
        }
    }
    let command_stdout = plugin_opts.map_or(CommandStdout::Inherit, PluginOptions::command_stdout);
    let mut null = NullSink;
    let mut plugin_sink = loaded.as_mut().map(|(plugin, _)| PluginSink::new(plugin, planned).with_anchors(anchors));
    let sink: &mut dyn RecordSink = match &mut plugin_sink {
        Some(s) => s,
        None => &mut null,
    };
    let mut perfetto_sink = perfetto.as_ref().map(|t| t.sink());
    let mut both;
    let sink: &mut dyn RecordSink = match &mut perfetto_sink {
        Some(p) => {
            both = crate::sink::Tee(vec![sink, p]);
            &mut both
        }
        None => sink,
    };
    let outcome = match &metrics {
        Some(m) => {
            m.set_ready();
            pipeline.follow(trace, command_stdout, &mut m.wrap(sink))
        }
        None => pipeline.follow(trace, command_stdout, sink),
    };
    drop(plugin_sink);
    // A plugin that failed mid-run gets no `finish`; the pipeline still comes down on drop.
    let outcome = outcome?;
    if let Some((plugin, _)) = &mut loaded {
        plugin.finish()?;
    }
    if let (Some(to), Some(recorder)) = (record, &recorder) {
        recorded.comms = given.lock().unwrap().clone();
        recorder.finish(pipeline.session(), to, &recorded)?;
    }
    if let Some(t) = perfetto {
        t.finish_and_report()?;
    }
    outcome.stacks.report();
    Ok(outcome)
}
