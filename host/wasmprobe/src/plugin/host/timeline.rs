//! `wasmprobe:plugin/timeline`: a plugin's marks, charged to its output cap and handed to the
//! run's [`Timeline`](crate::plugin::Timeline) when it has one.

use crate::plugin::bindings::wasmprobe::plugin::timeline;
use crate::plugin::runtime::State;
use crate::plugin::timeline::{Mark, Scope, Track};

impl From<timeline::Track> for Track {
    fn from(t: timeline::Track) -> Track {
        let scope = match t.scope {
            timeline::Scope::Thread(tid) => Scope::Thread(tid),
            timeline::Scope::Process(pid) => Scope::Process(pid),
            timeline::Scope::Global => Scope::Global,
        };
        Track { scope, name: t.name }
    }
}

/// A mark's arguments as host values.
fn values(args: Vec<(String, timeline::Value)>) -> Vec<(String, crate::plugin::Value)> {
    args.into_iter().map(|(k, v)| (k, v.into())).collect()
}

impl State {
    /// Hands `mark` on if the run keeps marks and the call's output cap allows it.
    fn take_mark(&mut self, mark: impl FnOnce() -> Mark) {
        let Some(t) = &mut self.timeline else { return };
        let mark = mark();
        if self.cap.take(mark.cost()) {
            t.mark(&self.name, mark);
        }
    }
}

impl timeline::Host for State {
    fn enabled(&mut self) -> bool {
        self.timeline.is_some()
    }

    fn slice(&mut self, track: timeline::Track, name: String, ts: u64, dur: u64, args: Vec<(String, timeline::Value)>) {
        self.take_mark(|| Mark::Slice { track: track.into(), name, ts, dur, args: values(args) });
    }

    fn begin(&mut self, track: timeline::Track, name: String, ts: u64, args: Vec<(String, timeline::Value)>) {
        self.take_mark(|| Mark::Begin { track: track.into(), name, ts, args: values(args) });
    }

    fn end(&mut self, track: timeline::Track, ts: u64) {
        self.take_mark(|| Mark::End { track: track.into(), ts });
    }

    fn instant(&mut self, track: timeline::Track, name: String, ts: u64, args: Vec<(String, timeline::Value)>) {
        self.take_mark(|| Mark::Instant { track: track.into(), name, ts, args: values(args) });
    }

    fn counter(&mut self, track: timeline::Track, ts: u64, value: f64) {
        self.take_mark(|| Mark::Counter { track: track.into(), ts, value });
    }
}
