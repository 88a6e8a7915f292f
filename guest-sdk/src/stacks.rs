//! Call stacks: the frames an event carries ([`crate::Event::kstack`], [`crate::Event::ustack`],
//! asked for with [`crate::Plan::kstack`] and [`crate::Plan::ustack`]) and their symbols,
//! which the host looks up in batches.
//!
//! ```ignore
//! // init:
//! let p = plan.uprobe("hit", "/usr/bin/prog:target", "");
//! plan.ustack(p);
//! // on_event: keep the raw frames (cheap), per pid
//! if let Some(u) = ev.ustack() { self.seen.push((ev.pid(), u.to_vec())); }
//! // finish: one host call per stack (or per pid, stacks concatenated)
//! for (pid, frames) in &self.seen {
//!     for f in stacks::symbolize_user(*pid, frames) { println!("{}", f.symbol.unwrap_or_default()); }
//! }
//! ```

use wasmprobe_abi::batch::frame_at;

use crate::bindings::wasmprobe::plugin::stacks as wit;

pub use wit::FrameInfo as Frame;
pub(crate) use wit::{request, StackKinds as Kinds};

/// The frames of one stack, borrowed from the batch: return addresses, innermost first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stack<'a> {
    pub(crate) frames: &'a [u8],
    pub(crate) truncated: bool,
}

impl<'a> Stack<'a> {
    /// Number of frames.
    pub fn len(&self) -> usize {
        self.frames.len() / 8
    }

    /// Whether there is no frame.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Frame `i` (0 is the innermost).
    pub fn get(&self, i: usize) -> Option<u64> {
        frame_at(self.frames, i)
    }

    /// The frames, innermost first.
    pub fn iter(&self) -> impl Iterator<Item = u64> + 'a {
        let frames = self.frames;
        (0..frames.len() / 8).filter_map(move |i| frame_at(frames, i))
    }

    /// The frames, copied.
    pub fn to_vec(&self) -> Vec<u64> {
        self.iter().collect()
    }

    /// Whether the host found that this (user) stack stops early: it does not reach the
    /// program's own code, typically code built without frame pointers.
    pub fn truncated(&self) -> bool {
        self.truncated
    }
}

/// Symbols of kernel addresses: one [`Frame`] per address, in order (one host call).
pub fn symbolize_kernel(frames: &[u64]) -> Vec<Frame> {
    wit::symbolize(wit::AddressSpace::Kernel, frames)
}

/// Symbols of addresses in the user space of process `pid` (as the host saw its mappings,
/// also after it exited): one [`Frame`] per address, in order (one host call).
pub fn symbolize_user(pid: i32, frames: &[u64]) -> Vec<Frame> {
    wit::symbolize(wit::AddressSpace::User(pid), frames)
}

/// Writes folded stacks (`outer;...;inner COUNT` lines, what flame-graph tools read) to the
/// file the user named with `--arg folded=FILE` (the host writes it; the plugin names no path).
/// The first call creates the file, later ones append.
pub fn write_folded(lines: &[String]) -> Result<(), String> {
    wit::write_folded(lines)
}
