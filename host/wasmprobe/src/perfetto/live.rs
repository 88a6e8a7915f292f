//! `--perfetto FILE` on `run` (live and `--replay`), `record` and `stream`: a Perfetto trace
//! written while the run goes, from the records the run's pipeline hands its sinks and from
//! the plugin's timeline marks.
//!
//! One [`LiveTrace`] per run. Its [`PerfettoSink`] is a [`RecordSink`] beside the run's other
//! sinks; its [`LiveTrace::timeline`] is the plugin's [`Timeline`]. Both write through one
//! [`TraceWriter`] behind a mutex (the plugin runs on the thread that feeds the sinks, so the
//! lock is never contended). The file appears under its name when [`LiveTrace::finish`] has
//! written it whole; a run that fails leaves nothing.

use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, Result};
use traceevent::{Endian, EventFormat};

use crate::plugin::{Mark, Timeline};
use crate::pump::RecordSink;

use super::file::PendingFile;
use super::writer::{Machine, ThreadInfo, ThreadLookup, TraceWriter, Written};

type Writer = TraceWriter<BufWriter<PendingFile>>;

struct Shared {
    writer: Option<Writer>,
    /// The first write error (a timeline cannot report one to the plugin): the run's, at
    /// the end.
    error: Option<std::io::Error>,
}

/// A Perfetto trace being written by a run (see the module docs).
#[derive(Clone)]
pub struct LiveTrace {
    shared: Arc<Mutex<Shared>>,
    path: PathBuf,
}

impl std::fmt::Debug for LiveTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveTrace").field("path", &self.path).finish_non_exhaustive()
    }
}

impl LiveTrace {
    /// Starts writing `path` (under a temporary name until [`LiveTrace::finish`]) for records
    /// in byte order `endian` from `machine`: fails at once if `path` cannot be created.
    pub fn create(path: &Path, endian: Endian, machine: &Machine) -> Result<LiveTrace> {
        let out = PendingFile::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let writer = TraceWriter::new(BufWriter::with_capacity(1 << 20, out), endian, machine)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(LiveTrace {
            shared: Arc::new(Mutex::new(Shared { writer: Some(writer), error: None })),
            path: path.to_path_buf(),
        })
    }

    /// For a live run on this machine: a trace at `path` if one is asked for.
    pub fn for_live_run(path: Option<&Path>) -> Result<Option<LiveTrace>> {
        path.map(|p| LiveTrace::create(p, Endian::native(), &LiveTrace::this_machine())).transpose()
    }

    /// For a replay of `dat`: a trace at `path` if one is asked for, its machine the recording's.
    pub fn for_replay<R: traceevent::ReadAt>(
        path: Option<&Path>,
        dat: &traceevent::TraceDat<R>,
    ) -> Result<Option<LiveTrace>> {
        let machine = Machine {
            uname: dat
                .meta
                .options
                .iter()
                .find(|(id, _)| *id == traceevent::dat::option::UNAME)
                .map(|(_, d)| String::from_utf8_lossy(d).trim_end_matches('\0').to_string()),
            cpus: dat.meta.cpu_count,
            page_size: dat.meta.page_size,
        };
        path.map(|p| LiveTrace::create(p, dat.meta.endian, &machine)).transpose()
    }

    /// Makes the records of `session`'s armed probes writable and names threads as this
    /// machine does ([`live_threads`]).
    pub fn attach(&self, session: &crate::session::Session, tracefs: &tracefs::Tracefs) -> Result<()> {
        for p in session.probes() {
            let f = EventFormat::parse(&p.system, &p.format, Endian::native())
                .with_context(|| format!("format of {}/{}", p.system, p.event))?;
            self.add_format(&f, std::mem::size_of::<usize>());
        }
        self.set_thread_lookup(live_threads(tracefs));
        Ok(())
    }

    /// Finishes the trace ([`LiveTrace::finish`]) and says on stderr what it holds.
    pub fn finish_and_report(self) -> Result<Written> {
        let path = self.path.clone();
        let w = self.finish()?;
        let marks = match (w.marks, w.dropped_marks) {
            (0, 0) => String::new(),
            (n, 0) => format!(", {n} plugin marks"),
            (n, d) => format!(", {n} plugin marks ({d} dropped: more than {} tracks)", super::tracks::MAX_TRACKS),
        };
        eprintln!("wasmprobe: wrote {} events{marks} and {} thread names to {}", w.events, w.threads, path.display());
        Ok(w)
    }

    /// This machine, as `SystemInfo` describes it.
    pub fn this_machine() -> Machine {
        let uname = nix::sys::utsname::uname().ok().map(|u| {
            format!(
                "{} {} {} {} {}",
                u.sysname().to_string_lossy(),
                u.nodename().to_string_lossy(),
                u.release().to_string_lossy(),
                u.version().to_string_lossy(),
                u.machine().to_string_lossy()
            )
        });
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get() as u32);
        let page_size = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok().flatten().unwrap_or(4096) as u32;
        Machine { uname, cpus: cpus.max(online_cpus()), page_size }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes records of `format` writable (`long_size`: the kernel's).
    pub fn add_format(&self, format: &EventFormat, long_size: usize) {
        if let Some(w) = &mut self.lock().writer {
            w.add_format(format, long_size);
        }
    }

    /// How threads are named and put in their processes when first seen.
    pub fn set_thread_lookup(&self, lookup: ThreadLookup) {
        if let Some(w) = &mut self.lock().writer {
            w.set_thread_lookup(lookup);
        }
    }

    /// A sink writing every record it is given (each once, however many probes it matched).
    pub fn sink(&self) -> PerfettoSink {
        PerfettoSink { trace: self.clone(), last: None, lost: Vec::new() }
    }

    /// The plugin's timeline: its marks go to this trace.
    pub fn timeline(&self) -> Box<dyn Timeline> {
        Box::new(self.clone())
    }

    /// Writes what is still collected, and puts the file under its name. Fails with the
    /// first write error of the run (then nothing is left at the path).
    pub fn finish(self) -> Result<Written> {
        let mut s = self.lock();
        if let Some(e) = s.error.take() {
            s.writer = None;
            return Err(anyhow::Error::new(e).context(format!("writing {}", self.path.display())));
        }
        let w = s.writer.take().context("the Perfetto trace was already finished")?;
        drop(s);
        let err = |e: std::io::Error| anyhow::Error::new(e).context(format!("writing {}", self.path.display()));
        let (out, written) = w.finish().map_err(err)?;
        let out = out.into_inner().map_err(|e| err(e.into_error()))?;
        out.commit().with_context(|| format!("cannot create {}", self.path.display()))?;
        Ok(written)
    }

    /// Runs `f` on the writer unless an earlier write failed; keeps `f`'s error.
    fn write(&self, f: impl FnOnce(&mut Writer) -> std::io::Result<()>) {
        let mut s = self.lock();
        if s.error.is_some() {
            return;
        }
        if let Some(w) = &mut s.writer {
            if let Err(e) = f(w) {
                s.error = Some(e);
            }
        }
    }
}

impl Timeline for LiveTrace {
    fn mark(&mut self, _plugin: &str, mark: Mark) {
        self.write(|w| w.mark(&mark));
    }
}

/// The [`RecordSink`] of a [`LiveTrace`].
pub struct PerfettoSink {
    trace: LiveTrace,
    /// The record written last (its bytes' address, timestamp and CPU): a record that several
    /// declarations of one event matched is handed over once per declaration, written once.
    last: Option<(usize, u64, u32)>,
    /// Events lost per CPU as of the last round.
    lost: Vec<u64>,
}

impl RecordSink for PerfettoSink {
    fn record(&mut self, _probe: usize, cpu: u32, _pid: i32, ts: u64, payload: &[u8]) -> Result<()> {
        let me = (payload.as_ptr() as usize, ts, cpu);
        if self.last == Some(me) {
            return Ok(());
        }
        self.last = Some(me);
        self.trace.write(|w| w.record(cpu, ts, payload));
        Ok(())
    }

    fn flush(&mut self, lost: &[u64]) -> Result<()> {
        self.last = None;
        if self.lost.len() < lost.len() {
            self.lost.resize(lost.len(), 0);
        }
        for (cpu, (&now, before)) in lost.iter().zip(self.lost.iter_mut()).enumerate() {
            if now > *before {
                *before = now;
                self.trace.write(|w| w.lost(cpu as u32));
            }
        }
        Ok(())
    }
}

/// Threads of this machine: the name from `/proc/<tid>/comm` (else the kernel's saved
/// command lines), the process from `/proc/<tid>/status`.
pub fn live_threads(tracefs: &tracefs::Tracefs) -> ThreadLookup {
    let tracefs = tracefs.clone();
    Box::new(move |tid| ThreadInfo { name: crate::kernel_info::live_comm(&tracefs, tid), tgid: tgid_of(tid) })
}

/// The thread group of `tid`, from `/proc/<tid>/status`.
fn tgid_of(tid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("Tgid:")).and_then(|v| v.trim().parse().ok())
}

/// CPUs the kernel has online or could bring up (`/sys/devices/system/cpu/possible`), at least 1.
fn online_cpus() -> u32 {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/possible").unwrap_or_default();
    text.trim().split(',').filter_map(|r| r.rsplit('-').next()?.parse::<u32>().ok()).max().map_or(1, |m| m + 1)
}
