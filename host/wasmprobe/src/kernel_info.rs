//! What a plugin hears when it asks the kernel (`kernel.supports`, `kernel.has-symbol`,
//! `kernel.comm`): the live kernel's answers, those answers remembered for a recording, and a
//! recording's answers given back in a replay, so a plugin makes the same plan live and in
//! replay.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Arc, Mutex};

use tracefs::{kprobes_supported, uprobes_supported, Instance, Tracefs};

use crate::plugin::{CommLookup, KernelInfo};

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

/// Answers a plugin's `init` questions from the live kernel and remembers them, so that a
/// replay of the recording can give the plugin the same answers (and it makes the same plan).
pub struct RecordingKernel {
    inner: LiveKernel,
    answers: Mutex<Answers>,
}

impl RecordingKernel {
    /// Answers from the live kernel of `tracefs`, remembering them.
    pub fn new(tracefs: &Tracefs) -> Self {
        RecordingKernel { inner: LiveKernel::new(tracefs), answers: Mutex::default() }
    }

    /// What was asked and answered so far.
    pub fn answers(&self) -> Answers {
        self.answers.lock().unwrap().clone()
    }
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
pub struct LiveComm {
    tracefs: Tracefs,
    given: Arc<Mutex<BTreeMap<i32, String>>>,
    exits: Option<Arc<ExitNames>>,
}

impl LiveComm {
    /// Names from this tracefs' kernel; every answer is also put in `given`.
    pub fn new(tracefs: &Tracefs, given: Arc<Mutex<BTreeMap<i32, String>>>) -> Self {
        LiveComm { tracefs: tracefs.clone(), given, exits: None }
    }

    /// Names processes that are gone by the name they exited with, from `exits`, before
    /// falling back to `saved_cmdlines`.
    pub fn with_exits(mut self, exits: Option<Arc<ExitNames>>) -> Self {
        self.exits = exits;
        self
    }
}

impl CommLookup for LiveComm {
    fn comm(&mut self, pid: i32) -> Option<String> {
        if let Some(c) = self.given.lock().unwrap().get(&pid) {
            return Some(c.clone());
        }
        let c = proc_comm(pid)
            .or_else(|| self.exits.as_ref().and_then(|e| e.name(pid)))
            .or_else(|| saved_comm(&self.tracefs, pid))?;
        self.given.lock().unwrap().insert(pid, c.clone());
        Some(c)
    }
}

/// The names processes had when they exited, for a run's processes that are gone by the
/// time a plugin asks. The kernel's `saved_cmdlines` is written at context switches and, for
/// a process that exec'd, usually still holds the name from before the exec (`sh` for the
/// `ls` of `sh -c ls`: 6 runs of 6 on 6.18), so a run keeps a small instance of its own,
/// `wasmprobe-<pid>-comm`, with `sched:sched_process_exit` on, and reads the exit names from
/// its `trace_pipe` (text, without blocking) when asked about a process not in `/proc`. The
/// instance goes when this is dropped; a killed run's is swept as any of ours.
pub struct ExitNames {
    // Fields drop in order: the pipe is closed before the instance is removed (an open file
    // keeps the kernel from removing it).
    state: Mutex<ExitState>,
    instance: Instance,
}

struct ExitState {
    pipe: std::fs::File,
    seen: HashMap<i32, String>,
    partial: Vec<u8>,
}

/// Exit names kept at most (about 3 MB).
const MAX_EXIT_NAMES: usize = 65536;

/// Per-CPU buffer of the exit-names instance: an exit record is 48 bytes, so a few thousand
/// exits per CPU between two lookups fit.
const EXIT_BUFFER_KB: u64 = 128;

impl ExitNames {
    /// Starts following exits, or `None` (the caller falls back to `saved_cmdlines`) when the
    /// kernel has no instances or no `sched_process_exit` event.
    pub fn start(tracefs: &Tracefs) -> Option<Arc<ExitNames>> {
        if !tracefs.has("events/sched/sched_process_exit") {
            return None;
        }
        let instance = crate::owned::create_instance(tracefs, "comm").ok()?;
        instance.set_buffer_size_kb(EXIT_BUFFER_KB, None).ok()?;
        instance.write_file("events/sched/sched_process_exit/enable", "1").ok()?;
        let pipe = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(instance.file("trace_pipe"))
            .ok()?;
        let state = Mutex::new(ExitState { pipe, seen: HashMap::new(), partial: Vec::new() });
        Some(Arc::new(ExitNames { state, instance }))
    }

    /// The name `pid` exited with, if it exited since [`ExitNames::start`].
    pub fn name(&self, pid: i32) -> Option<String> {
        let mut st = self.state.lock().unwrap();
        let mut buf = [0u8; 16384];
        // Everything the kernel has now; EAGAIN (or any error) ends the read.
        while let Ok(n @ 1..) = st.pipe.read(&mut buf) {
            st.partial.extend_from_slice(&buf[..n]);
        }
        let text = std::mem::take(&mut st.partial);
        // A run (or an agent) that goes on for weeks sees every exit of the node: past this
        // many, the older names go (a lookup comes soon after its process exited).
        if st.seen.len() >= MAX_EXIT_NAMES {
            st.seen.clear();
        }
        let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        for line in String::from_utf8_lossy(&text[..complete]).lines() {
            if let Some((tid, comm)) = parse_exit_line(line) {
                st.seen.insert(tid, comm);
            }
        }
        st.partial = text[complete..].to_vec();
        st.seen.get(&pid).cloned()
    }
}

impl Drop for ExitNames {
    fn drop(&mut self) {
        let _ = self.instance.write_file("events/sched/sched_process_exit/enable", "0");
    }
}

/// `(pid, comm)` of a `sched_process_exit: comm=NAME pid=N prio=P ...` line of `trace_pipe`
/// (a comm may hold spaces, so the pid is found from the right).
fn parse_exit_line(line: &str) -> Option<(i32, String)> {
    let rest = &line[line.find("sched_process_exit: comm=")? + "sched_process_exit: comm=".len()..];
    let at = rest.rfind(" pid=")?;
    let pid = rest[at + 5..].split(' ').next()?.parse().ok()?;
    Some((pid, rest[..at].to_string()))
}

/// The command name of a live process: `/proc/<pid>/comm`, else (it is gone) the kernel's
/// `saved_cmdlines`.
pub(crate) fn live_comm(tracefs: &Tracefs, pid: i32) -> Option<String> {
    proc_comm(pid).or_else(|| saved_comm(tracefs, pid))
}

/// The command name of a live process, from `/proc/<pid>/comm`.
pub(crate) fn proc_comm(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).ok().map(|c| c.trim_end().to_string())
}

fn saved_comm(tracefs: &Tracefs, pid: i32) -> Option<String> {
    tracefs::saved_cmdlines(tracefs).ok().and_then(|m| m.get(&pid).cloned())
}

#[cfg(test)]
mod tests {
    use super::parse_exit_line;

    #[test]
    fn exit_lines_give_pid_and_name_even_with_spaces() {
        let l = "              ls-6441    [001] ..... 12345.678901: sched_process_exit: comm=ls pid=6441 prio=120 group_dead=true";
        assert_eq!(parse_exit_line(l), Some((6441, "ls".to_string())));
        let l = "  <...>-7 [000] d..2. 1.000000: sched_process_exit: comm=Web Content pid=77 prio=120";
        assert_eq!(parse_exit_line(l), Some((77, "Web Content".to_string())));
        assert_eq!(parse_exit_line("  sh-1 [000] 1.0: sched_process_fork: comm=sh pid=1"), None);
    }
}
