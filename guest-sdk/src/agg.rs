//! Aggregations, bpftrace style: `count()`, `sum()`, `min()`, `max()`, `avg()`, `stats()`,
//! `hist()` and `lhist()` on keyed maps, updated per event at near-native speed inside Wasm
//! and printed at `finish` in bpftrace's formats.
//!
//! ```ignore
//! use wasmprobe_guest::agg::{Count, Hist, Print, Str};
//!
//! #[derive(Default)]
//! struct Top {
//!     calls: Option<Count<(Str<16>, i64)>>, // @calls[comm, args.id] = count()
//!     usecs: Option<Hist>,                  // @usecs = hist(...)
//! }
//! // In init: self.calls = Some(Count::new("@calls"));
//! // Per event: calls.inc((Str::new(&ev.comm()), ev.i64("id")));
//! // In finish: calls.print(); usecs.print();
//! ```
//!
//! The maps are `wasmprobe_abi::agg`'s, the same code the host's delivery benchmark runs
//! natively to measure them against: open addressing with linear probing on the Fx hash, no
//! SIMD control groups, fixed-width keys ([`Key`]: integers, [`Str`], `()`, tuples). Why they
//! are not kept by the host instead: see [`map`].

pub use wasmprobe_abi::agg::*;

/// Printing an aggregation through the host, one line of output per line of its text.
pub trait Print {
    /// The text bpftrace prints for it (see `text()` of each type).
    fn agg_text(&self) -> String;

    /// Prints it as bpftrace would at exit (nothing if it is empty).
    fn print(&self) {
        for line in self.agg_text().lines() {
            crate::print(line);
        }
    }
}

impl<K: Key, V: Value> Print for Agg<K, V> {
    fn agg_text(&self) -> String {
        self.text()
    }
}

impl<K: Key> Print for Hist<K> {
    fn agg_text(&self) -> String {
        self.text()
    }
}

impl<K: Key> Print for Lhist<K> {
    fn agg_text(&self) -> String {
        self.text()
    }
}
