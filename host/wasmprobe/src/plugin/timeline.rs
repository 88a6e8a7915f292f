//! What the `timeline` interface hands its work to: a plugin's marks (slices, instants,
//! counters on tracks it names), as host values, and the [`Timeline`] that takes them (the
//! Perfetto writer of a `--perfetto` run, [`crate::perfetto::LiveTrace`]).

use super::output::Value;

/// Whose row a track is on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// A thread, by its id.
    Thread(i32),
    /// A process, by its id (thread group id).
    Process(i32),
    /// The plugin's own, at the top level.
    Global,
}

/// A track: a scope and a name (the empty name on a thread: the thread's own slice track).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Track {
    /// Whose row it is on.
    pub scope: Scope,
    /// Its name under the scope.
    pub name: String,
}

/// One mark a plugin made; times are trace-clock nanoseconds. Each names its `track`; slices,
/// instants and their `args` are as the plugin gave them.
#[derive(Debug, Clone, PartialEq)]
pub enum Mark {
    /// A slice from `ts` lasting `dur`.
    Slice {
        /// Where it is drawn.
        track: Track,
        /// Its name.
        name: String,
        /// Its start.
        ts: u64,
        /// Its length in nanoseconds.
        dur: u64,
        /// Named values shown with it.
        args: Vec<(String, Value)>,
    },
    /// A slice opens at `ts`.
    Begin {
        /// Where it is drawn.
        track: Track,
        /// Its name.
        name: String,
        /// Its start.
        ts: u64,
        /// Named values shown with it.
        args: Vec<(String, Value)>,
    },
    /// The innermost open slice of the track closes at `ts`.
    End {
        /// The track whose slice closes.
        track: Track,
        /// When.
        ts: u64,
    },
    /// A point in time.
    Instant {
        /// Where it is drawn.
        track: Track,
        /// Its name.
        name: String,
        /// When.
        ts: u64,
        /// Named values shown with it.
        args: Vec<(String, Value)>,
    },
    /// The counter's value from `ts` on.
    Counter {
        /// The counter (a track of its own).
        track: Track,
        /// From when.
        ts: u64,
        /// The value.
        value: f64,
    },
}

impl Mark {
    /// Bytes the mark costs against the per-call output cap: its strings and 16 a piece for
    /// the rest (as `output.emit` is charged).
    pub fn cost(&self) -> usize {
        let args = |a: &[(String, Value)]| -> usize {
            a.iter().map(|(k, v)| k.len() + 8 + if let Value::Str(s) = v { s.len() } else { 0 }).sum()
        };
        let (track, rest) = match self {
            Mark::Slice { track, name, args: a, .. }
            | Mark::Begin { track, name, args: a, .. }
            | Mark::Instant { track, name, args: a, .. } => (track, name.len() + args(a)),
            Mark::End { track, .. } | Mark::Counter { track, .. } => (track, 0),
        };
        16 + track.name.len() + rest
    }
}

/// Where a plugin's marks go. It cannot fail towards the plugin: a timeline that cannot write
/// keeps its error for the run to report at the end.
pub trait Timeline: Send {
    /// Takes one mark of plugin `plugin`.
    fn mark(&mut self, plugin: &str, mark: Mark);
}
