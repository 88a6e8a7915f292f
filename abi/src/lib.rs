//! The plugin ABI of wasmprobe, in the one place both sides of it read: the host
//! (`host/wasmprobe`, which writes batches) and the guest SDK (`guest-sdk`, which reads them
//! inside the plugin). The contract itself is `wit/wasmprobe.wit`; this crate is the part of
//! it that the WIT cannot express, the byte layout of `on-batch`'s packed records:
//!
//! - [`batch`]: the 24-byte record header, the 8-byte record alignment, and a reader;
//! - [`columns`]: one probe's records, or one value of each (pid, timestamp, an integer
//!   field), in a tight loop: strided over a uniform batch, walked over any other;
//! - [`FieldKind`]: the WIT `field-kind` enum with its numbering;
//! - [`fxhash`]: the hasher plugins (and the host) count small integer keys with;
//! - [`agg`]: bpftrace's aggregations (`count()`, `hist()`, ...) on maps built for Wasm, and
//!   their text, the same code in a plugin and in the host's benchmark.
//!
//! No dependencies, no `unsafe`, and nothing that allocates on the record path: it builds for
//! the host and for `wasm32-wasip2` alike.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod agg;
pub mod batch;
pub mod columns;
mod field;
pub mod fxhash;

pub use field::FieldKind;
