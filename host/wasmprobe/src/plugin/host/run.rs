//! `wasmprobe:plugin/run`: the state of the run as the host sees it.

use crate::plugin::bindings::types as wit;
use crate::plugin::bindings::wasmprobe::plugin::run;
use crate::plugin::runtime::State;

impl run::Host for State {
    fn layouts(&mut self) -> Vec<wit::Layout> {
        self.layouts.clone()
    }

    fn lost_events(&mut self) -> u64 {
        self.lost_total
    }
}
