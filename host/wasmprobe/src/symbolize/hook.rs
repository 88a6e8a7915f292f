//! The symbolizer as the plugin runtime's hook ([`crate::plugin::stacks::Symbolizer`]): what a
//! plugin's `stacks.symbolize` calls, and what the sink tells when a process is first seen.

use super::{Frame, Space, StackSymbolizer};
use crate::plugin::stacks::{AddressSpace, FrameInfo};

impl crate::plugin::stacks::Symbolizer for StackSymbolizer {
    fn symbolize(&mut self, space: AddressSpace, frames: &[u64]) -> Vec<FrameInfo> {
        let space = match space {
            AddressSpace::Kernel => Space::Kernel,
            AddressSpace::User(pid) => Space::User(pid),
        };
        StackSymbolizer::symbolize(self, space, frames).into_iter().map(Frame::into_info).collect()
    }

    fn process_seen(&mut self, pid: i32, anchor: Option<&super::maps::Anchor>) -> bool {
        StackSymbolizer::process_seen(self, pid, anchor)
    }
}

impl Frame {
    /// The WIT's `frame-info`.
    pub fn into_info(self) -> FrameInfo {
        FrameInfo {
            addr: self.addr,
            symbol: self.symbol,
            offset: self.offset,
            module: self.module,
            file: self.file,
            line: self.line,
        }
    }
}
