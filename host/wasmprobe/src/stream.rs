//! `wasmprobe stream -e SYSTEM[:EVENT] ... [-- COMMAND]`: live events of this kernel, printed
//! the way `trace-cmd report` prints them, until Ctrl-C or until COMMAND ends; then how many
//! events were lost. The live [`Pipeline`] with a text sink.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use traceevent::{Dialect, EventFormat, EventFormats, PageHeader};
use tracefs::{event_format, system_events, Tracefs};

use crate::child::CommandStdout;
use crate::pipeline::{Outcome, Pages, Pipeline, TraceOptions};
use crate::plugin::{ProbeDecl, ProbeKind};
use crate::pump::RecordSink;
use crate::report::{LineFormatter, TimeFormat, OUT_CHUNK};
use crate::session::Session;

/// Expands `SYSTEM` or `SYSTEM:EVENT` specs into tracepoint requests (checked against the
/// kernel's event list, so a typo is an error naming it).
pub fn tracepoint_requests(tracefs: &Tracefs, specs: &[String]) -> Result<Vec<ProbeDecl>> {
    let mut out: Vec<ProbeDecl> = Vec::new();
    for spec in specs {
        let (sys, ev) = match spec.split_once(':') {
            Some((s, e)) => (s, Some(e)),
            None => (spec.as_str(), None),
        };
        let events = match ev {
            Some(e) => {
                event_format(tracefs, sys, e).with_context(|| format!("event {spec}"))?;
                vec![e.to_string()]
            }
            None => system_events(tracefs, sys).with_context(|| format!("event system {sys}"))?,
        };
        if events.is_empty() {
            bail!("event system {sys} has no events");
        }
        for e in events {
            let target = format!("{sys}:{e}");
            if out.iter().all(|r| r.target != target) {
                out.push(ProbeDecl {
                    name: e.clone(),
                    kind: ProbeKind::Tracepoint,
                    target,
                    fetchargs: String::new(),
                    filter: None,
                    maxactive: None,
                    fields: None,
                    stacks: Default::default(),
                });
            }
        }
    }
    Ok(out)
}

/// Formats records as report lines, a round at a time, into a writer.
struct LineSink<W: Write> {
    tracefs: Tracefs,
    formats: EventFormats,
    /// Pids whose name was looked up in /proc (saved_cmdlines may name a reused pid's
    /// previous owner).
    named: wasmprobe_abi::fxhash::FxHashSet<i32>,
    /// Pids known to be in `named`, by the pid's low bits: records mostly come from a few
    /// busy tasks (interleaved across CPUs), checked here without hashing.
    recent: [i32; 16],
    /// `saved_cmdlines` as last read (when), for pids gone from /proc: read at most once a
    /// round, and a copy less than [`SAVED_FRESH`] old answers for the pids it has. On a busy
    /// machine processes exit all the time, and the kernel formats thousands of lines for
    /// each read (reading it for each was a tenth of a syscall storm's cost, under a build).
    saved: Option<(Instant, HashMap<i32, String>)>,
    /// Whether `saved` was read in this round.
    saved_this_round: bool,
    lines: LineFormatter,
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> LineSink<W> {
    fn new(tracefs: Tracefs, formats: EventFormats, time: TimeFormat, out: W) -> Self {
        let buf = Vec::with_capacity(OUT_CHUNK + 4096);
        let lines = LineFormatter::new(time);
        let (named, recent, saved, saved_this_round) = (Default::default(), [0; 16], None, false);
        LineSink { tracefs, formats, named, recent, saved, saved_this_round, lines, out, buf }
    }
}

/// How long a copy of `saved_cmdlines` names the pids it has (as the agent's plugins use it).
const SAVED_FRESH: Duration = Duration::from_secs(1);

impl<W: Write> LineSink<W> {
    /// The name `saved_cmdlines` gives a pid that is gone (see [`LineSink::saved`]).
    fn saved_comm(&mut self, pid: i32) -> Option<String> {
        let usable = |(at, m): &(Instant, HashMap<i32, String>)| at.elapsed() < SAVED_FRESH && m.contains_key(&pid);
        if !self.saved_this_round && !self.saved.as_ref().is_some_and(usable) {
            self.saved = tracefs::saved_cmdlines(&self.tracefs).ok().map(|m| (Instant::now(), m));
            self.saved_this_round = true;
        }
        self.saved.as_ref()?.1.get(&pid).cloned()
    }
}

impl<W: Write> RecordSink for LineSink<W> {
    fn record(&mut self, _probe: usize, cpu: u32, pid: i32, ts: u64, payload: &[u8]) -> Result<()> {
        // A pid seen lately (in `recent`) is not looked up in the set again.
        let slot = &mut self.recent[pid as usize % 16];
        if pid > 0 && *slot != pid {
            *slot = pid;
            if self.named.insert(pid) {
                // A short-lived child may be gone before its events are printed.
                if let Some(c) = crate::kernel_info::proc_comm(pid).or_else(|| self.saved_comm(pid)) {
                    self.formats.add_cmdline(pid, &c);
                }
            }
        }
        let ev = self.formats.for_record(payload);
        self.lines.line(&self.formats, ev, cpu, ts, payload, &mut self.buf);
        self.buf.push(b'\n');
        // As trace-cmd report does: what the sched plugins learn of comms names later lines.
        if ev.is_some_and(EventFormat::registers_comms) {
            self.formats.note_record(payload);
        }
        if self.buf.len() >= OUT_CHUNK {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn flush(&mut self, _lost: &[u64]) -> Result<()> {
        self.saved_this_round = false;
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(self.out.flush()?)
    }
}

/// Streams `specs` to `out` until Ctrl-C/SIGTERM, `trace.duration`, the followed pid or
/// `trace.command` ending. The command's stdout stays on the terminal (ours is the events').
pub fn stream(specs: &[String], trace: &TraceOptions, out: impl Write) -> Result<Outcome> {
    let tracefs = crate::owned::open_for_run()?;
    let requests = tracepoint_requests(&tracefs, specs)?;
    let perfetto = crate::perfetto::LiveTrace::for_live_run(trace.perfetto.as_deref())?;
    let mut pipeline = Pipeline::arm(&tracefs, "stream", &requests, Pages::Live)?;
    let formats = live_formats(pipeline.session())?;
    let inst = pipeline.session().instance();
    let time = TimeFormat::for_clock(inst.read_file("trace_clock").ok().as_deref().map_or("local", selected_clock));
    let mut sink = LineSink::new(tracefs.clone(), formats, time, out);
    let outcome = match &perfetto {
        Some(t) => {
            t.attach(pipeline.session(), &tracefs)?;
            let mut p = t.sink();
            pipeline.follow(trace, CommandStdout::Inherit, &mut crate::sink::Tee(vec![&mut sink, &mut p]))?
        }
        None => pipeline.follow(trace, CommandStdout::Inherit, &mut sink)?,
    };
    if let Some(t) = perfetto {
        t.finish_and_report()?;
    }
    Ok(outcome)
}

/// The formats of the session's events, with what their text needs from the live kernel:
/// saved command lines, printk formats, and kallsyms when an event can print a symbol.
fn live_formats(session: &Session) -> Result<EventFormats> {
    let inst = session.instance();
    let mut formats =
        EventFormats::new(PageHeader::parse(&inst.read_file("events/header_page")?, traceevent::Endian::native())?);
    formats.set_dialect(Dialect::LibTraceEvent);
    for p in session.probes() {
        formats.add_format(&p.system, &p.format).with_context(|| format!("format of {}/{}", p.system, p.event))?;
    }
    if let Ok(c) = tracefs::read_text(&inst.tracefs().file("saved_cmdlines")) {
        formats.parse_cmdlines(&c);
    }
    // Symbols for %ps-style fields and the hrtimer/timer function names, as trace-cmd shows
    // them; read only if an event can print them (reading kallsyms costs tens of ms).
    let long = formats.long_size() as u8;
    if formats.iter().any(|f| f.libtraceevent_wants_symbols(long)) {
        if let Ok(k) = std::fs::read_to_string("/proc/kallsyms") {
            formats.parse_kallsyms(&k);
        }
    }
    if let Ok(p) = tracefs::read_text(&inst.tracefs().file("printk_formats")) {
        formats.parse_printk_formats(&p);
    }
    Ok(formats)
}

/// The clock in brackets of a `trace_clock` text (`[local] global ...` gives `local`).
fn selected_clock(text: &str) -> &str {
    text.split_whitespace().find_map(|w| w.strip_prefix('[').and_then(|w| w.strip_suffix(']'))).unwrap_or("local")
}
