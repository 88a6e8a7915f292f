//! The `kernel` interface: what a plugin may ask about the machine (feature and symbol
//! probes for choosing a fallback in `init`, and command names of pids).

/// What the kernel can do, as the run found out (or as a replay recorded it).
pub trait KernelInfo: Send + Sync {
    /// Whether the kernel supports `feature`: "kprobe", "uprobe", "eprobe", "tracepoint".
    fn supports(&self, feature: &str) -> bool;
    /// Whether the kernel has the function `name` (in /proc/kallsyms).
    fn has_symbol(&self, name: &str) -> bool;
}

/// A fixed answer: the features and symbols listed, nothing else. For tests and replays.
#[derive(Debug, Clone, Default)]
pub struct FixedKernel {
    /// What `kernel.supports` answers yes to (`kprobe`, `uprobe`, ...).
    pub features: Vec<String>,
    /// The symbols `kernel.has-symbol` finds.
    pub symbols: Vec<String>,
}

impl FixedKernel {
    /// A kernel that supports `features` and has no symbols.
    pub fn with_features(features: &[&str]) -> Self {
        FixedKernel { features: features.iter().map(|s| s.to_string()).collect(), symbols: Vec::new() }
    }
}

impl KernelInfo for FixedKernel {
    fn supports(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }

    fn has_symbol(&self, name: &str) -> bool {
        self.symbols.iter().any(|s| s == name)
    }
}

/// Finds the command name of a pid (the run may use the kernel's saved_cmdlines).
pub trait CommLookup: Send {
    /// The comm of `pid`, if known.
    fn comm(&mut self, pid: i32) -> Option<String>;
}

impl<F: FnMut(i32) -> Option<String> + Send> CommLookup for F {
    fn comm(&mut self, pid: i32) -> Option<String> {
        self(pid)
    }
}

/// Reads `/proc/<pid>/comm` (one small file read per call; the guest SDK caches per batch).
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcComm;

impl CommLookup for ProcComm {
    fn comm(&mut self, pid: i32) -> Option<String> {
        if pid <= 0 {
            return None;
        }
        let s = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        Some(s.trim_end_matches('\n').to_string())
    }
}
