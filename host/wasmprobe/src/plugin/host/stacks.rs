//! `wasmprobe:plugin/stacks`: stack requests during `init`, and symbolization through the
//! plugin's [`Symbolizer`](crate::plugin::stacks::Symbolizer).

use crate::plugin::bindings::wasmprobe::plugin::stacks;
use crate::plugin::runtime::State;

impl stacks::Host for State {
    fn request(&mut self, probe: String, kinds: stacks::StackKinds) -> Result<(), String> {
        if self.initialized {
            return Err("stacks.request is for init: the plan is already armed".into());
        }
        if self.stack_requests.len() >= super::super::plan::MAX_PROBES * 4 {
            return Err("too many stacks.request calls".into());
        }
        self.stack_requests.push((probe, kinds.into()));
        Ok(())
    }

    fn symbolize(&mut self, space: stacks::AddressSpace, frames: Vec<u64>) -> Vec<stacks::FrameInfo> {
        let mut out = self.symbolizer.symbolize(space.into(), &frames);
        // The contract is one per address, in order, whatever the symbolizer did.
        out.truncate(frames.len());
        for &addr in &frames[out.len()..] {
            out.push(crate::plugin::stacks::unnamed(addr));
        }
        out
    }

    fn write_folded(&mut self, lines: Vec<String>) -> Result<(), String> {
        self.folded.write(&lines)
    }
}
