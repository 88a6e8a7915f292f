//! The one live pipeline: arm → spawn → follow → enable → release → pump → drain. `run`,
//! `record` and `stream` are this pipeline with their own requests and sink (and, for a
//! recording, a page tap); a replay feeds the same sinks from a trace.dat instead.
//!
//! Every way it ends (the command exits, the followed pid goes, the duration passes, Ctrl-C or
//! SIGTERM, a sink fails) disables the events, and dropping the pipeline removes the instance
//! and the probes (see [`Session`]), whatever happened.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tracefs::Tracefs;

use crate::child::{install_stop_handlers, stop_requested, CommandStdout, HeldChild};
use crate::plugin::ProbeDecl;
use crate::pump::{PageTap, Pump, RecordSink};
use crate::session::Session;

/// What to follow and for how long.
#[derive(Debug, Clone, Default)]
pub struct TraceOptions {
    /// Follow this process (and the children it forks) only.
    pub pid: Option<i32>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Run this command, held until it is followed, and stop when it exits.
    pub command: Vec<String>,
    /// Also write what is traced (and a plugin's timeline) to this Perfetto trace.
    pub perfetto: Option<std::path::PathBuf>,
}

/// How a pipeline (or a replay) ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Records delivered to the sink.
    pub events: u64,
    /// Events the kernel lost (or, in a replay, the recording says it lost).
    pub lost: u64,
    /// The command's exit code, if a command was run.
    pub exit_code: Option<i32>,
    /// Call stacks attached to events, and those that could not be (all zero without stacks).
    pub stacks: crate::stacks::StackStats,
}

/// Sub-buffers of the pipeline's instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pages {
    /// Larger sub-buffers, fewer reads ([`crate::pump::LIVE_SUBBUF_KB`]; kernel 6.8+).
    Live,
    /// The kernel's page-sized ones, as trace.dat readers expect of a recording.
    Kernel,
}

/// Armed probes in an instance of our own, and the readers of its buffers.
pub struct Pipeline {
    pump: Pump,
    // Dropped after the pump (declaration order): readers close before the instance goes.
    session: Session,
}

impl Pipeline {
    /// Arms `requests` (validated) in an instance and probe group tagged `tag`, and opens the
    /// readers. Nothing is enabled yet. Installs the SIGINT/SIGTERM handlers that end it.
    pub fn arm(tracefs: &Tracefs, tag: &str, requests: &[ProbeDecl], pages: Pages) -> Result<Pipeline> {
        install_stop_handlers()?;
        let session = Session::arm(tracefs, tag, requests).with_context(|| format!("{tag}: cannot arm the probes"))?;
        if pages == Pages::Live {
            session.prefer_subbuf_kb(crate::pump::LIVE_SUBBUF_KB);
        }
        let mut pump = Pump::open(session.instance())?;
        if let Some(stacks) = session.stack_routing()? {
            pump.set_stacks(stacks);
        }
        Ok(Pipeline { pump, session })
    }

    /// The armed probes and their instance.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The armed probes and their instance, to arm or remove probes between steps (the
    /// agent's reload).
    pub fn session_mut(&mut self) -> &mut Session {
        &mut self.session
    }

    /// What the stack matcher saw so far (see [`crate::stacks::StackStats`]).
    pub fn stack_stats(&self) -> crate::stacks::StackStats {
        self.pump.stack_stats()
    }

    /// Events lost so far, per CPU.
    pub fn lost(&self) -> &[u64] {
        self.pump.lost()
    }

    /// Enables the armed events, for a caller that pumps with [`Pipeline::step`] itself (the
    /// agent: no command, no pid to follow, no end but a signal).
    pub fn start(&mut self) -> Result<()> {
        self.session.enable()
    }

    /// Waits up to `timeout` for the readers and hands every complete round to `sink`.
    pub fn step(&mut self, sink: &mut dyn RecordSink, timeout: Duration) -> Result<()> {
        self.pump.step(&self.session, sink, timeout)
    }

    /// Disables the events and drains what the buffers still hold into `sink`.
    pub fn drain(&mut self, sink: &mut dyn RecordSink) -> Result<()> {
        self.session.stop()?;
        self.pump.finish(&self.session, sink)
    }

    /// Has every raw page read also go to `tap` (a recording).
    pub fn set_tap(&mut self, tap: PageTap) {
        self.pump.set_tap(tap);
    }

    /// Has the readers splice every page of CPU `n` straight to `files[n]`, decoding nothing
    /// (a recording nothing reads live: [`Pump::open_raw`]). Before the events are enabled.
    pub fn record_raw(&mut self, files: Vec<std::fs::File>) -> Result<()> {
        self.pump = Pump::open_raw(self.session.instance(), files)?;
        Ok(())
    }

    /// Spawns the command (held), follows it or `opts.pid`, enables the events, releases the
    /// command, and pumps records into `sink` until the end; then disables the events and
    /// drains what the buffers still hold into `sink`. The command's stdout goes where
    /// `command_stdout` says.
    pub fn follow(
        &mut self,
        opts: &TraceOptions,
        command_stdout: CommandStdout,
        sink: &mut dyn RecordSink,
    ) -> Result<Outcome> {
        let mut child = match opts.command.is_empty() {
            true => None,
            false => Some(HeldChild::spawn_with(&opts.command, command_stdout)?),
        };
        if let Some(pid) = child.as_ref().map(HeldChild::pid).or(opts.pid) {
            self.session.follow_pid(pid)?;
        }
        self.session.enable()?;
        if let Some(c) = &mut child {
            c.release()?;
        }
        let start = Instant::now();
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
            self.pump.step(&self.session, sink, Duration::from_millis(100))?;
        }
        self.session.stop()?;
        self.pump.finish(&self.session, sink)?;
        Ok(Outcome {
            events: self.pump.records(),
            lost: self.pump.total_lost(),
            exit_code: child.and_then(|mut c| c.exit_code()),
            stacks: self.pump.stack_stats(),
        })
    }
}
