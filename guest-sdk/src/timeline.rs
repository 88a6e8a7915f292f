//! Drawing on the run's timeline: slices, instants and counters at trace timestamps, on
//! tracks the plugin names. With `wasmprobe run --perfetto FILE` (live or `--replay`) they are
//! written to the Perfetto trace beside the kernel's events; otherwise [`enabled`] is false and
//! every call here returns at once.
//!
//! ```ignore
//! use wasmprobe_guest::timeline::{self, Track};
//! use wasmprobe_guest::Value;
//!
//! // In on_event, at the return of a call whose entry was at `start`:
//! timeline::slice(&Track::thread(ev.pid()), "open", start, ev.ts() - start,
//!                 &[("file", Value::Str(file)), ("ret", Value::S64(ret))]);
//! // A counter of the plugin's own:
//! timeline::counter(&Track::global("syscalls per second"), second_start, count as f64);
//! ```

use std::cell::Cell;

use crate::bindings::wasmprobe::plugin::timeline as wit;
use crate::Value;

/// A track: a row of marks, under a thread, a process, or at the top of the trace.
#[derive(Debug, Clone)]
pub struct Track(wit::Track);

impl Track {
    /// Thread `tid`'s own slice track (the row where its slices nest).
    pub fn thread(tid: i32) -> Track {
        Track(wit::Track { scope: wit::Scope::Thread(tid), name: String::new() })
    }

    /// A track named `name` under thread `tid`.
    pub fn thread_named(tid: i32, name: &str) -> Track {
        Track(wit::Track { scope: wit::Scope::Thread(tid), name: name.to_string() })
    }

    /// A track named `name` under process `pid`.
    pub fn process(pid: i32, name: &str) -> Track {
        Track(wit::Track { scope: wit::Scope::Process(pid), name: name.to_string() })
    }

    /// A track of the plugin's own named `name`, at the top level.
    pub fn global(name: &str) -> Track {
        Track(wit::Track { scope: wit::Scope::Global, name: name.to_string() })
    }
}

thread_local! {
    static ENABLED: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Whether the run keeps marks (asked of the host once, then remembered: it does not change).
pub fn enabled() -> bool {
    ENABLED.with(|e| match e.get() {
        Some(v) => v,
        None => {
            let v = wit::enabled();
            e.set(Some(v));
            v
        }
    })
}

fn owned(args: &[(&str, Value)]) -> Vec<(String, Value)> {
    args.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// A slice of `dur` ns from `ts` on `track`, with arguments. Slices of a track must nest.
pub fn slice(track: &Track, name: &str, ts: u64, dur: u64, args: &[(&str, Value)]) {
    if enabled() {
        wit::slice(&track.0, name, ts, dur, &owned(args));
    }
}

/// Opens a slice on `track` at `ts`; [`end`] on the same track closes it.
pub fn begin(track: &Track, name: &str, ts: u64, args: &[(&str, Value)]) {
    if enabled() {
        wit::begin(&track.0, name, ts, &owned(args));
    }
}

/// Closes the innermost open slice of `track` at `ts`.
pub fn end(track: &Track, ts: u64) {
    if enabled() {
        wit::end(&track.0, ts);
    }
}

/// A point in time on `track`.
pub fn instant(track: &Track, name: &str, ts: u64, args: &[(&str, Value)]) {
    if enabled() {
        wit::instant(&track.0, name, ts, &owned(args));
    }
}

/// The counter `track` has `value` from `ts` on (counters get tracks of their own).
pub fn counter(track: &Track, ts: u64, value: f64) {
    if enabled() {
        wit::counter(&track.0, ts, value);
    }
}
