//! `wasmprobe stream -e SYSTEM[:EVENT] ... [-- COMMAND]`: live events of this kernel, printed
//! the way `trace-cmd report` prints them, until Ctrl-C or until COMMAND ends; then how many
//! events were lost.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use traceevent::{Dialect, EventFormat, EventFormats, PageHeader};
use tracefs::{event_format, system_events, Tracefs};

use crate::child::{install_stop_handlers, stop_requested, HeldChild};
use crate::plugin::{ProbeDecl, ProbeKind};
use crate::pump::{Pump, RecordSink};
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
    named: rustc_hash::FxHashSet<i32>,
    /// Pids known to be in `named`, by the pid's low bits: records mostly come from a few
    /// busy tasks (interleaved across CPUs), checked here without hashing.
    recent: [i32; 16],
    lines: LineFormatter,
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> LineSink<W> {
    fn new(tracefs: Tracefs, formats: EventFormats, time: TimeFormat, out: W) -> Self {
        let buf = Vec::with_capacity(OUT_CHUNK + 4096);
        let lines = LineFormatter::new(time);
        LineSink { tracefs, formats, named: Default::default(), recent: [0; 16], lines, out, buf }
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
                if let Some(c) = crate::run::live_comm(&self.tracefs, pid) {
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
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(self.out.flush()?)
    }
}

/// What a stream saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamStats {
    /// Records printed.
    pub records: u64,
    /// Events the kernel dropped because we did not read fast enough.
    pub lost: u64,
    /// COMMAND's exit code, if one was run.
    pub exit_code: Option<i32>,
}

/// Streams `specs` to `out` until Ctrl-C/SIGTERM, `duration`, or `command` ending.
pub fn stream(
    specs: &[String],
    command: &[String],
    duration: Option<Duration>,
    out: impl Write,
) -> Result<StreamStats> {
    let tracefs = crate::owned::open_for_run()?;
    let requests = tracepoint_requests(&tracefs, specs)?;
    install_stop_handlers()?;
    let session = Session::arm(&tracefs, "stream", &requests)?;
    session.prefer_subbuf_kb(crate::pump::LIVE_SUBBUF_KB);
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
    if formats.iter().any(|f| f.lte_wants_symbols(long)) {
        if let Ok(k) = std::fs::read_to_string("/proc/kallsyms") {
            formats.parse_kallsyms(&k);
        }
    }
    if let Ok(p) = tracefs::read_text(&inst.tracefs().file("printk_formats")) {
        formats.parse_printk_formats(&p);
    }
    let time = TimeFormat::for_clock(inst.read_file("trace_clock").ok().as_deref().map_or("local", selected_clock));
    let mut pump = Pump::open(inst)?;
    let mut child = match command.is_empty() {
        true => None,
        false => Some(HeldChild::spawn(command)?),
    };
    if let Some(c) = &child {
        session.follow_pid(c.pid())?;
    }
    session.enable()?;
    if let Some(c) = &mut child {
        c.release()?;
    }
    let mut sink = LineSink::new(tracefs.clone(), formats, time, out);
    let start = Instant::now();
    loop {
        if stop_requested() || duration.is_some_and(|d| start.elapsed() >= d) {
            break;
        }
        if child.as_mut().is_some_and(|c| c.exited()) {
            break;
        }
        pump.step(&session, &mut sink, Duration::from_millis(100))?;
    }
    session.stop()?;
    pump.finish(&session, &mut sink)?;
    Ok(StreamStats {
        records: pump.records(),
        lost: pump.total_lost(),
        exit_code: child.and_then(|mut c| c.exit_code()),
    })
}

/// The clock in brackets of a `trace_clock` text (`[local] global ...` gives `local`).
fn selected_clock(text: &str) -> &str {
    text.split_whitespace().find_map(|w| w.strip_prefix('[').and_then(|w| w.strip_suffix(']'))).unwrap_or("local")
}
