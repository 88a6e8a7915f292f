//! What a plugin hears when it asks the kernel (`kernel.supports`, `kernel.has-symbol`,
//! `kernel.comm`): the live kernel's answers, those answers remembered for a recording, and a
//! recording's answers given back in a replay, so a plugin makes the same plan live and in
//! replay.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tracefs::{kprobes_supported, uprobes_supported, Tracefs};

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
}

impl LiveComm {
    /// Names from this tracefs' kernel; every answer is also put in `given`.
    pub fn new(tracefs: &Tracefs, given: Arc<Mutex<BTreeMap<i32, String>>>) -> Self {
        LiveComm { tracefs: tracefs.clone(), given }
    }
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
