//! `wasmprobe run PLUGIN`: the whole data flow of DESIGN.md. Load the plugin into its sandbox,
//! ask it for its plan, check the plan, arm the probes in an instance of our own, optionally
//! fork the command to follow, pump the kernel's events to the plugin in batches, and on any
//! ending (the command exits, Ctrl-C, SIGTERM, the duration, or the plugin failing) drain,
//! call `finish`, and take everything out of the kernel again.

use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use traceevent::{Compression, DatMeta, Endian, EventFormat, TraceDat};

use crate::datwrite::{write_dat, CpuPages, OPTION_WASMPROBE};
use crate::plugin::CommLookup;
use tracefs::{kprobes_supported, uprobes_supported, Tracefs};

use crate::child::{install_stop_handlers, stop_requested, CommandStdout, HeldChild};
use crate::plugin::{self, BatchWriter, KernelInfo, Layout, Plan, Plugin, Policy, Sandbox, StdOutput};
use crate::pump::{Pump, RecordSink};
pub use crate::session::ProbeIds;
use crate::session::Session;

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
    /// Structured records as JSON lines: every line of our output is one JSON object, and the
    /// command's stdout goes to our stderr unless `output` is set.
    pub json: bool,
    /// Write the plugin's output to this file (`-o`) instead of stdout.
    pub output: Option<PathBuf>,
    /// Which probe kinds the plugin may use.
    pub policy: Policy,
    /// Memory and CPU limits.
    pub sandbox: Sandbox,
    /// Run this command and follow it (and its children).
    pub command: Vec<String>,
    /// Which pack signers to trust (`--trust`, `--trust-dir`); none set: any pack runs.
    pub trust: crate::pack::TrustPolicy,
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
        // KSYM_NAME_LEN: no longer name is a kernel symbol (nor worth reading kallsyms for).
        if name.is_empty() || name.len() > 512 || name.contains(char::is_whitespace) {
            return false;
        }
        let Ok(text) = std::fs::read_to_string("/proc/kallsyms") else { return false };
        text.lines().any(|l| l.split_whitespace().nth(2) == Some(name))
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

/// Batches records and hands each full batch (and each round's end) to the plugin, each record
/// packed as the plugin's plan asks (whole, or projected onto the fields it declared).
pub struct PluginSink<'p> {
    plugin: &'p mut Plugin,
    /// Probes of the plan; events of other armed probes (recorded only) are not delivered.
    planned: usize,
    batch: BatchWriter,
    pending: usize,
    lost_reported: u64,
}

/// Records per `on-batch` call at most: big enough to amortise the call, small enough to keep
/// the per-call CPU budget meaningful.
const MAX_BATCH: usize = 4096;

impl<'p> PluginSink<'p> {
    /// A sink delivering the records of the first `planned` probes to `plugin` (layouts set).
    pub fn new(plugin: &'p mut Plugin, planned: usize) -> Self {
        PluginSink { plugin, planned, batch: BatchWriter::new(), pending: 0, lost_reported: 0 }
    }

    /// Delivers the records collected so far, and the events lost since the last delivery
    /// (`lost_total` counts them from the start of the run).
    pub fn deliver(&mut self, lost_total: u64) -> Result<()> {
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
        if probe >= self.planned {
            return Ok(());
        }
        self.plugin.pack(&mut self.batch, probe as u32, cpu, pid, ts, payload);
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

/// Answers a plugin's `init` questions from the live kernel and remembers them, so that a
/// replay of the recording can give the plugin the same answers (and it makes the same plan).
pub struct RecordingKernel {
    inner: LiveKernel,
    answers: Mutex<Answers>,
}

/// What a plugin asked the kernel and what it heard, and the command names it was given.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Answers {
    /// `supports(feature)` answers.
    pub supports: BTreeMap<String, bool>,
    /// `has_symbol(name)` answers.
    pub symbols: BTreeMap<String, bool>,
}

/// The features `kernel.supports` knows; any other name is answered no.
const FEATURES: [&str; 6] = ["kprobe", "kretprobe", "uprobe", "uretprobe", "tracepoint", "eprobe"];

/// Only what a replay could not answer alone is kept: the known features, and the symbols
/// that exist (a replay says no to any other question, as the live kernel did). A plugin
/// asking about a million made-up names in `init` therefore costs the host nothing to keep.
impl KernelInfo for RecordingKernel {
    fn supports(&self, feature: &str) -> bool {
        let v = self.inner.supports(feature);
        if let Some(known) = FEATURES.iter().find(|f| **f == feature) {
            self.answers.lock().unwrap().supports.insert(known.to_string(), v);
        }
        v
    }

    fn has_symbol(&self, name: &str) -> bool {
        let v = self.inner.has_symbol(name);
        if v {
            self.answers.lock().unwrap().symbols.insert(name.to_string(), v);
        }
        v
    }
}

/// Gives recorded answers back (unknown questions: no).
pub struct ReplayKernel(pub Answers);

impl KernelInfo for ReplayKernel {
    fn supports(&self, feature: &str) -> bool {
        self.0.supports.get(feature).copied().unwrap_or(feature == "tracepoint")
    }

    fn has_symbol(&self, name: &str) -> bool {
        self.0.symbols.get(name).copied().unwrap_or(false)
    }
}

/// Command names for a live run: `/proc/<pid>/comm`, else the kernel's `saved_cmdlines`
/// (the process may be gone by the time its events are delivered). Every answer is kept for
/// the recording, so a replay names processes the same way.
struct LiveComm {
    tracefs: Tracefs,
    given: Arc<Mutex<BTreeMap<i32, String>>>,
}

impl CommLookup for LiveComm {
    fn comm(&mut self, pid: i32) -> Option<String> {
        if let Some(c) = self.given.lock().unwrap().get(&pid) {
            return Some(c.clone());
        }
        let c = live_comm(&self.tracefs, pid)?;
        self.given.lock().unwrap().insert(pid, c.clone());
        Some(c)
    }
}

/// The command name of a live process: `/proc/<pid>/comm`, else (it is gone) the kernel's
/// `saved_cmdlines`.
pub(crate) fn live_comm(tracefs: &Tracefs, pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|c| c.trim_end().to_string())
        .or_else(|| tracefs::saved_cmdlines(tracefs).ok().and_then(|m| m.get(&pid).cloned()))
}

/// What a recording stores about the plugin run that made it (option [`OPTION_WASMPROBE`]).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct RecordedRun {
    /// The plugin, as given on the command line.
    pub plugin: Option<String>,
    /// Its init arguments.
    pub args: Vec<(String, String)>,
    /// What it asked the kernel.
    pub answers: Answers,
    /// Each plan probe's event: `(probe name, system, event)`, in plan order.
    pub probes: Vec<(String, String, String)>,
    /// Command names the plugin was given.
    pub comms: BTreeMap<i32, String>,
}

/// Where and how a run records what it traced.
#[derive(Debug, Clone)]
pub struct RecordTo {
    /// The trace.dat to write.
    pub path: PathBuf,
    /// File version, 6 or 7.
    pub version: u32,
    /// Tracepoints to record besides the plugin's probes (`SYSTEM[:EVENT]`).
    pub events: Vec<String>,
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
pub fn plan(opts: &RunOptions, kernel: Arc<dyn KernelInfo>) -> Result<(Plugin, Plan)> {
    let source = crate::pack::RunSource::resolve(&opts.plugin, &opts.trust)?;
    let sink = match &opts.output {
        Some(path) => {
            let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            StdOutput::to_file(opts.json, file)
        }
        None => StdOutput::new(opts.json),
    };
    let mut plugin = source.load(&opts.sandbox, Box::new(sink))?;
    let plan = plugin.init(&opts.args, kernel)?;
    plan.validate(&opts.policy).with_context(|| format!("plugin {}: its probe plan was refused", plugin.name()))?;
    source.check_plan(&plan)?;
    Ok((plugin, plan))
}

/// Runs a plugin against the live kernel (see the module docs).
pub fn run(opts: &RunOptions) -> Result<RunOutcome> {
    live(Some(opts), opts, None)
}

/// Records to a trace.dat: the events `to.events` names, and when `plugin` is given, its probes
/// too, with the plugin running live on them as `run` would.
pub fn record(plugin: Option<&RunOptions>, common: &RunOptions, to: &RecordTo) -> Result<RunOutcome> {
    live(plugin, common, Some(to))
}

fn live(plugin_opts: Option<&RunOptions>, opts: &RunOptions, record: Option<&RecordTo>) -> Result<RunOutcome> {
    // A damaged or untrusted pack is refused before anything touches the kernel.
    if let Some(p) = plugin_opts {
        crate::pack::RunSource::resolve(&p.plugin, &p.trust)?;
    }
    let tracefs = crate::owned::open_for_run()?;
    install_stop_handlers()?;
    let mut recorded = RecordedRun::default();
    let mut loaded = match plugin_opts {
        Some(p) => {
            let kernel = Arc::new(RecordingKernel { inner: LiveKernel::new(&tracefs), answers: Mutex::default() });
            let (plugin, plan) = self::plan(p, kernel.clone())?;
            check_sources(&tracefs, &plan, &plugin)?;
            recorded.plugin = Some(p.plugin.clone());
            recorded.args = p.args.clone();
            recorded.answers = kernel.answers.lock().unwrap().clone();
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
    let session = Session::arm(&tracefs, &tag, &requests).with_context(|| format!("{tag}: cannot arm the probes"))?;
    recorded.probes = session.probes()[..planned]
        .iter()
        .map(|p| (requests[p.index].name.clone(), p.system.clone(), p.event.clone()))
        .collect();
    let given = Arc::new(Mutex::new(BTreeMap::new()));
    if let Some((plugin, _)) = &mut loaded {
        let layouts = session.probes()[..planned]
            .iter()
            .map(|p| layout_of(&p.system, &p.event, p.id, &p.format))
            .collect::<Result<Vec<_>>>()?;
        plugin.set_layouts(layouts)?;
        plugin.set_comm_lookup(Box::new(LiveComm { tracefs: tracefs.clone(), given: given.clone() }));
    }
    if record.is_none() {
        // A recording keeps the kernel's page-sized sub-buffers, as trace.dat readers expect.
        session.prefer_subbuf_kb(crate::pump::LIVE_SUBBUF_KB);
    }
    let inst = session.instance();
    let mut pump = Pump::open(inst)?;
    let pages = match record {
        Some(to) => Some(Recorder::new(&to.path, inst.cpu_count()?)?),
        None => None,
    };
    if let Some(r) = &pages {
        let files = r.files.clone();
        pump.set_tap(Box::new(move |cpu, page| files[cpu].lock().unwrap().write_all(page)));
    }
    // With --json our stdout holds JSON alone: the command's stdout goes to our stderr.
    let command_stdout = match plugin_opts {
        Some(p) if p.json && p.output.is_none() => CommandStdout::ToStderr,
        _ => CommandStdout::Inherit,
    };
    let mut child = match opts.command.is_empty() {
        true => None,
        false => Some(HeldChild::spawn_with(&opts.command, command_stdout)?),
    };
    if let Some(pid) = child.as_ref().map(HeldChild::pid).or(opts.pid) {
        session.follow_pid(pid)?;
    }
    session.enable()?;
    if let Some(c) = &mut child {
        c.release()?;
    }
    let start = Instant::now();
    let mut null = NullSink;
    let mut plugin_sink = loaded.as_mut().map(|(plugin, _)| PluginSink::new(plugin, planned));
    let sink: &mut dyn RecordSink = match &mut plugin_sink {
        Some(s) => s,
        None => &mut null,
    };
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
            pump.step(&session, sink, Duration::from_millis(100))?;
        }
        session.stop()?;
        pump.finish(&session, sink)?;
        Ok(())
    })();
    drop(plugin_sink);
    // A plugin that failed mid-run gets no `finish`; the session still comes down on drop.
    result?;
    if let Some((plugin, _)) = &mut loaded {
        plugin.finish()?;
    }
    if let (Some(to), Some(pages)) = (record, &pages) {
        recorded.comms = given.lock().unwrap().clone();
        pages.finish(&session, to, &recorded)?;
    }
    Ok(RunOutcome { events: pump.records(), lost: pump.total_lost(), exit_code: child.and_then(|mut c| c.exit_code()) })
}

/// Counts nothing, delivers nothing: recording without a plugin.
struct NullSink;

impl RecordSink for NullSink {
    fn record(&mut self, _: usize, _: u32, _: i32, _: u64, _: &[u8]) -> Result<()> {
        Ok(())
    }

    fn flush(&mut self, _: &[u64]) -> Result<()> {
        Ok(())
    }
}

/// Per-CPU scratch files the raw pages go to while tracing, turned into a trace.dat at the end.
struct Recorder {
    paths: Vec<PathBuf>,
    files: Arc<Vec<Mutex<std::fs::File>>>,
}

impl Recorder {
    fn new(out: &Path, cpus: usize) -> Result<Recorder> {
        let mut paths = Vec::new();
        let mut files = Vec::new();
        for cpu in 0..cpus {
            let p = PathBuf::from(format!("{}.cpu{cpu}.tmp", out.display()));
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&p)
                .with_context(|| format!("cannot create {}", p.display()))?;
            paths.push(p);
            files.push(Mutex::new(f));
        }
        Ok(Recorder { paths, files: Arc::new(files) })
    }

    fn finish(&self, session: &Session, to: &RecordTo, run: &RecordedRun) -> Result<()> {
        let inst = session.instance();
        let t = inst.tracefs();
        let read = |p: &Path| tracefs::read_text(p).with_context(|| format!("reading {}", p.display()));
        let mut ftrace_formats = Vec::new();
        for ev in tracefs::system_events(t, "ftrace").unwrap_or_default() {
            if let Ok(f) = tracefs::event_format(t, "ftrace", &ev) {
                ftrace_formats.push(f);
            }
        }
        let uname = nix::sys::utsname::uname().map(|u| {
            format!(
                "{} {} {} {}",
                u.sysname().to_string_lossy(),
                u.nodename().to_string_lossy(),
                u.release().to_string_lossy(),
                u.machine().to_string_lossy()
            )
        });
        let mut options = vec![(traceevent::dat::option::TRACECLOCK, {
            let mut c = read(&inst.file("trace_clock"))?.into_bytes();
            c.push(0);
            c
        })];
        if let Ok(u) = uname {
            options.push((traceevent::dat::option::UNAME, format!("{u}\0").into_bytes()));
        }
        options.push((
            traceevent::dat::option::VERSION,
            format!("wasmprobe {}\0", env!("CARGO_PKG_VERSION")).into_bytes(),
        ));
        options.push((OPTION_WASMPROBE, serde_json::to_vec(run)?));
        let meta = DatMeta {
            version: to.version,
            endian: traceevent::Endian::native(),
            long_size: std::mem::size_of::<usize>() as u8,
            page_size: system_page_size(),
            compression: Compression::None,
            header_page: read(&t.file("events/header_page"))?,
            header_event: read(&t.file("events/header_event"))?,
            ftrace_formats,
            event_formats: session.probes().iter().map(|p| (p.system.clone(), p.format.clone())).collect(),
            kallsyms: std::fs::read_to_string("/proc/kallsyms").unwrap_or_default(),
            printk_formats: read(&t.file("printk_formats")).unwrap_or_default(),
            cmdlines: read(&t.file("saved_cmdlines")).unwrap_or_default(),
            cpu_count: self.paths.len() as u32,
            options,
            buffers: Vec::new(),
        };
        let mut cpus = Vec::new();
        for (cpu, f) in self.files.iter().enumerate() {
            let mut f = f.lock().unwrap().try_clone()?;
            let size = f.seek(SeekFrom::End(0))?;
            f.seek(SeekFrom::Start(0))?;
            cpus.push(CpuPages { cpu: cpu as u32, data: f, size });
        }
        let tmp = PathBuf::from(format!("{}.tmp", to.path.display()));
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?,
        );
        write_dat(&mut out, &meta, to.version, &mut cpus).with_context(|| format!("writing {}", tmp.display()))?;
        out.flush()?;
        drop(out);
        std::fs::rename(&tmp, &to.path).with_context(|| format!("cannot create {}", to.path.display()))?;
        Ok(())
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        for p in &self.paths {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Runs a plugin over a recorded trace.dat (ours, or trace-cmd's): no root, no tracefs. The
/// plugin hears the recorded kernel answers, so it makes the plan it made live; each probe is
/// found among the file's events, and its records are delivered in timestamp order.
pub fn replay(opts: &RunOptions, file: &Path) -> Result<RunOutcome> {
    let f = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let dat = TraceDat::open(f).with_context(|| format!("{} is not a trace.dat we can read", file.display()))?;
    let recorded: Option<RecordedRun> = dat
        .meta
        .options
        .iter()
        .find(|(id, _)| *id == OPTION_WASMPROBE)
        .and_then(|(_, d)| serde_json::from_slice(d).ok());
    let answers = recorded.as_ref().map(|r| r.answers.clone()).unwrap_or_default();
    let (mut plugin, plan) = self::plan(opts, Arc::new(ReplayKernel(answers)))?;
    // Each plan probe's event in the file (parsed formats, with their text for the layout).
    let formats: Vec<(EventFormat, &str)> = dat
        .meta
        .event_formats
        .iter()
        .filter_map(|(sys, text)| Some((EventFormat::parse(sys, text, dat.meta.endian).ok()?, text.as_str())))
        .collect();
    let mut layouts = Vec::new();
    let mut by_id = ProbeIds::default();
    let mut found_formats: Vec<&EventFormat> = Vec::new();
    for d in &plan.probes {
        let recorded_event = recorded.as_ref().and_then(|r| r.probes.iter().find(|(n, _, _)| *n == d.name));
        let found = formats.iter().find(|(f, _)| match recorded_event {
            Some((_, sys, ev)) => f.system == *sys && f.name == *ev,
            None => match d.kind {
                plugin::ProbeKind::Tracepoint => d.target.split_once(':') == Some((f.system.as_str(), f.name.as_str())),
                _ => f.name == d.name && f.system.starts_with(crate::owned::GROUP_PREFIX),
            },
        });
        let Some((f, text)) = found else {
            anyhow::bail!(
                "plugin {}: probe {} ({} {}) has no events in {}",
                plugin.name(),
                d.name,
                d.kind.name(),
                d.target,
                file.display()
            );
        };
        layouts.push(layout_of(&f.system, &f.name, f.id as u16, text)?);
        found_formats.push(f);
    }
    // An event declared once is delivered whole (a recording of ours was filtered by the
    // kernel); one declared several times is routed by each declaration's own filter, as live.
    for (i, f) in found_formats.iter().enumerate() {
        let shared = found_formats.iter().filter(|g| g.id == f.id).count() > 1;
        let filter = if shared { crate::session::routing_filter(&plan.probes[i], f)? } else { None };
        by_id.insert_filtered(f.id as u16, i, filter);
    }
    plugin.set_layouts(layouts)?;
    let mut names: BTreeMap<i32, String> = tracefs::parse_cmdlines(&dat.meta.cmdlines).into_iter().collect();
    if let Some(r) = &recorded {
        names.extend(r.comms.iter().map(|(p, c)| (*p, c.clone())));
    }
    plugin.set_comm_lookup(Box::new(move |pid: i32| names.get(&pid).cloned()));
    let mut sink = PluginSink::new(&mut plugin, plan.probes.len());
    let (events, lost) =
        replay_records(&dat, &by_id, &mut sink).with_context(|| format!("reading {}", file.display()))?;
    sink.deliver(lost)?;
    drop(sink);
    plugin.finish()?;
    Ok(RunOutcome { events, lost, exit_code: None })
}

/// The replay loop: every record of `dat` in timestamp order whose event id `probes` maps to
/// a probe index goes to `sink` (no flush at the end). Returns the records delivered and the
/// events the file says were lost.
pub fn replay_records<R: traceevent::ReadAt>(
    dat: &TraceDat<R>,
    probes: &ProbeIds,
    sink: &mut dyn RecordSink,
) -> Result<(u64, u64)> {
    let mut records = dat.records(0)?;
    let (mut events, mut lost) = (0u64, 0u64);
    while let Some(rec) = records.next_record() {
        let rec = rec?;
        match rec.missed_events {
            traceevent::MissedEvents::Count(n) => lost += n,
            traceevent::MissedEvents::Unknown => lost += 1,
            traceevent::MissedEvents::None => {}
        }
        let id = dat.meta.endian.read_u16(rec.data, 0).unwrap_or(0);
        let pid = dat.meta.endian.read_int(rec.data, 4, 4).unwrap_or(0) as i32;
        events += probes.route(id, rec.data, rec.cpu, |probe| sink.record(probe, rec.cpu, pid, rec.ts, rec.data))?;
    }
    Ok((events, lost))
}

fn system_page_size() -> u32 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok().flatten().map_or(4096, |v| v as u32)
}
