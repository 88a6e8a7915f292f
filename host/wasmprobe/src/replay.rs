//! `run PLUGIN --replay FILE.dat`: a plugin over a recorded trace.dat (ours, or trace-cmd's),
//! without root or tracefs: the recording is the source, the plugin sink the same as live.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use traceevent::{EventFormat, TraceDat};

use crate::datwrite::OPTION_WASMPROBE;
use crate::kernel_info::ReplayKernel;
use crate::plugin;
use crate::pump::RecordSink;
use crate::record::RecordedRun;
use crate::run::{layout_of, Outcome, PluginOptions};
use crate::session::ProbeIds;
use crate::sink::PluginSink;

/// Runs a plugin over a recorded trace.dat (ours, or trace-cmd's): no root, no tracefs. The
/// plugin hears the recorded kernel answers, so it makes the plan it made live; each probe is
/// found among the file's events, and its records are delivered in timestamp order.
pub fn replay(opts: &PluginOptions, file: &Path) -> Result<Outcome> {
    replay_to(opts, file, None)
}

/// [`replay`], also writing the replayed events and the plugin's timeline marks to the
/// Perfetto trace `perfetto` (`run --replay FILE --perfetto OUT`).
pub fn replay_to(opts: &PluginOptions, file: &Path, perfetto: Option<&Path>) -> Result<Outcome> {
    let f = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let dat = TraceDat::open(f).with_context(|| format!("{} is not a trace.dat we can read", file.display()))?;
    let perfetto = crate::perfetto::LiveTrace::for_replay(perfetto, &dat)?;
    let with_timeline = PluginOptions { timeline: perfetto.clone(), ..opts.clone() };
    let opts = &with_timeline;
    let recorded: Option<RecordedRun> = dat
        .meta
        .options
        .iter()
        .find(|(id, _)| *id == OPTION_WASMPROBE)
        .and_then(|(_, d)| serde_json::from_slice(d).ok());
    let answers = recorded.as_ref().map(|r| r.answers.clone()).unwrap_or_default();
    let (mut plugin, plan) = crate::run::plan(opts, Arc::new(ReplayKernel(answers)))?;
    // Stacks are named from the recording: its kallsyms, and the mappings it kept.
    let procs = dat
        .meta
        .options
        .iter()
        .find(|(id, _)| *id == crate::symbolize::OPTION_PROCESS_MAPS)
        .and_then(|(_, d)| crate::symbolize::Processes::from_bytes(d).ok())
        .unwrap_or_else(|| crate::symbolize::Processes::recorded(Vec::new()));
    plugin.set_symbolizer(Box::new(crate::symbolize::StackSymbolizer::replay(&dat.meta.kallsyms, procs)));
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
    if let Some(t) = &perfetto {
        for (f, _) in &formats {
            t.add_format(f, usize::from(dat.meta.long_size));
        }
        let names = names.clone();
        t.set_thread_lookup(Box::new(move |tid| crate::perfetto::ThreadInfo {
            name: names.get(&tid).cloned(),
            tgid: None,
        }));
    }
    plugin.set_comm_lookup(Box::new(move |pid: i32| names.get(&pid).cloned()));
    let mut stacks = stack_routing(&dat, &plan.probes, &found_formats);
    let mut sink = PluginSink::new(&mut plugin, plan.probes.len());
    let mut perfetto_sink = perfetto.as_ref().map(|t| t.sink());
    let (events, lost) = match &mut perfetto_sink {
        Some(p) => replay_records_with(&dat, &by_id, stacks.as_mut(), &mut crate::sink::Tee(vec![&mut sink, p])),
        None => replay_records_with(&dat, &by_id, stacks.as_mut(), &mut sink),
    }
    .with_context(|| format!("reading {}", file.display()))?;
    sink.deliver(lost)?;
    drop(sink);
    plugin.finish()?;
    if let Some(t) = perfetto {
        t.finish_and_report()?;
    }
    let stacks = stacks.map(|s| s.matcher.stats()).unwrap_or_default();
    stacks.report();
    Ok(Outcome { events, lost, exit_code: None, stacks })
}

/// The stack matcher of a replay, when a probe of the plan asks for stacks: the ids of the
/// stack records from the file's ftrace formats (the recording has them as trace-cmd writes
/// them), and each probe's event found in the file.
fn stack_routing<R: traceevent::ReadAt>(
    dat: &TraceDat<R>,
    probes: &[plugin::ProbeDecl],
    found: &[&EventFormat],
) -> Option<crate::pump::StackRouting> {
    if !probes.iter().any(|d| d.stacks.any()) {
        return None;
    }
    let ids = crate::stacks::StackIds::from_formats(dat.meta.ftrace_formats.iter().map(String::as_str));
    let by_probe: Vec<plugin::StackKinds> = probes.iter().map(|d| d.stacks).collect();
    let mut want = Vec::new();
    for (f, kinds) in found.iter().zip(&by_probe) {
        let id = f.id as usize;
        if want.len() <= id {
            want.resize(id + 1, plugin::StackKinds::NONE);
        }
        want[id] = want[id].union(*kinds);
    }
    let matcher = crate::stacks::StackMatcher::new(ids, want, dat.meta.endian).recorded();
    Some(crate::pump::StackRouting { matcher, by_probe })
}

/// The replay loop: every record of `dat` in timestamp order whose event id `probes` maps to
/// a probe index goes to `sink` (no flush at the end). Returns the records delivered and the
/// events the file says were lost.
pub fn replay_records<R: traceevent::ReadAt>(
    dat: &TraceDat<R>,
    probes: &ProbeIds,
    sink: &mut dyn RecordSink,
) -> Result<(u64, u64)> {
    replay_records_with(dat, probes, None, sink)
}

/// [`replay_records`], with the call stacks of the file attached to their events by `stacks`
/// (as live: see [`crate::stacks`]).
pub fn replay_records_with<R: traceevent::ReadAt>(
    dat: &TraceDat<R>,
    probes: &ProbeIds,
    mut stacks: Option<&mut crate::pump::StackRouting>,
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
        if let Some(st) = stacks.as_deref_mut() {
            events += st.push(probes, sink, rec.cpu, rec.ts, rec.data)?;
            continue;
        }
        let id = rec.common_type().unwrap_or(0);
        let pid = rec.common_pid().unwrap_or(0);
        events += probes.route(id, rec.data, rec.cpu, |probe| sink.record(probe, rec.cpu, pid, rec.ts, rec.data))?;
    }
    if let Some(st) = stacks {
        events += st.flush(probes, sink)?;
    }
    Ok((events, lost))
}
