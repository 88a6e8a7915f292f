//! Call stacks on a plugin's events (`wasmprobe:plugin/stacks`, WIT 0.1.2): which probes asked
//! for them, and the [`Symbolizer`] that names their addresses when the plugin asks.
//!
//! A plugin asks with `stacks.request(probe, kinds)` during `init`; [`super::Plugin::init`]
//! puts the answer into each [`super::ProbeDecl::stacks`], so the session arms from the
//! declaration alone (see `session.rs`: the `stacktrace` trigger for kernel stacks, the
//! instance's `userstacktrace` option for user stacks).

use super::bindings::wasmprobe::plugin::stacks as wit;

/// One symbolized address, as the plugin receives it (the WIT's `frame-info`).
pub use wit::FrameInfo;

/// Which stacks a probe's events carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct StackKinds {
    /// The kernel's call stack (a `kernel_stack` record after the event).
    pub kernel: bool,
    /// The task's user-space call stack (a `user_stack` record after the event).
    pub user: bool,
}

impl StackKinds {
    /// Neither.
    pub const NONE: StackKinds = StackKinds { kernel: false, user: false };

    /// Whether any stack is asked for.
    pub fn any(self) -> bool {
        self.kernel || self.user
    }

    /// Both kinds of `self` and `other`.
    pub fn union(self, other: StackKinds) -> StackKinds {
        StackKinds { kernel: self.kernel || other.kernel, user: self.user || other.user }
    }

    /// How `inspect` and messages name it: `kernel`, `user`, `kernel+user` or `none`.
    pub fn name(self) -> &'static str {
        match (self.kernel, self.user) {
            (true, true) => "kernel+user",
            (true, false) => "kernel",
            (false, true) => "user",
            (false, false) => "none",
        }
    }
}

impl From<wit::StackKinds> for StackKinds {
    fn from(k: wit::StackKinds) -> StackKinds {
        StackKinds { kernel: k.contains(wit::StackKinds::KERNEL), user: k.contains(wit::StackKinds::USER) }
    }
}

/// Whose addresses a [`Symbolizer`] is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressSpace {
    /// Kernel text.
    Kernel,
    /// The user space of this process (or thread).
    User(i32),
}

impl From<wit::AddressSpace> for AddressSpace {
    fn from(s: wit::AddressSpace) -> AddressSpace {
        match s {
            wit::AddressSpace::Kernel => AddressSpace::Kernel,
            wit::AddressSpace::User(pid) => AddressSpace::User(pid),
        }
    }
}

/// Names the addresses of stacks for a plugin's `stacks.symbolize`.
pub trait Symbolizer: Send {
    /// Exactly one [`FrameInfo`] per address of `frames`, in order.
    fn symbolize(&mut self, space: AddressSpace, frames: &[u64]) -> Vec<FrameInfo>;

    /// Told as early as the host can (when the first user stack of `pid` is delivered) that
    /// process `pid` was seen, so its mappings can be read while it still exists; `anchor`
    /// places the probed file if it is already gone. Returns whether its mappings are known.
    fn process_seen(&mut self, pid: i32, anchor: Option<&crate::symbolize::Anchor>) -> bool {
        let _ = (pid, anchor);
        false
    }
}

/// A [`Symbolizer`] that knows no symbols: every address comes back unnamed.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSymbols;

impl Symbolizer for NoSymbols {
    fn symbolize(&mut self, _: AddressSpace, frames: &[u64]) -> Vec<FrameInfo> {
        frames.iter().map(|&addr| unnamed(addr)).collect()
    }
}

/// The frame-info of an address nothing is known about.
pub fn unnamed(addr: u64) -> FrameInfo {
    FrameInfo { addr, symbol: None, offset: 0, module: None, file: None, line: None }
}

/// The most user frames the kernel's `user_stack` record holds (its `caller[8]`).
pub const USER_STACK_MAX: usize = 8;
