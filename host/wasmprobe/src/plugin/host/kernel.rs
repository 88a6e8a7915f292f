//! `wasmprobe:plugin/kernel`: what the plugin may ask about the kernel, answered by the run's
//! [`KernelInfo`](crate::plugin::KernelInfo) and [`CommLookup`](crate::plugin::CommLookup).

use crate::plugin::bindings::wasmprobe::plugin::kernel;
use crate::plugin::runtime::State;

impl kernel::Host for State {
    fn supports(&mut self, feature: String) -> bool {
        self.kernel.supports(&feature)
    }

    fn has_symbol(&mut self, name: String) -> bool {
        self.kernel.has_symbol(&name)
    }

    fn comm(&mut self, pid: i32) -> Option<String> {
        self.comm.comm(pid)
    }
}
