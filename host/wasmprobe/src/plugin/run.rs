//! The `run` interface: the state of the run as the host sees it.

use super::bindings::types as wit;
use super::bindings::wasmprobe::plugin::run;
use super::runtime::State;

impl run::Host for State {
    fn layouts(&mut self) -> Vec<wit::Layout> {
        self.layouts.clone()
    }

    fn lost_events(&mut self) -> u64 {
        self.lost_total
    }
}
