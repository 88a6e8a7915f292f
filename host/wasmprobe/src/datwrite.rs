//! Writing trace-cmd's trace.dat: the writer is `traceevent::dat::write_dat` (pure format
//! code, beside the reader); what is wasmprobe's own is the option that carries the plan.

pub use traceevent::dat::{write_dat, CpuPages};

/// Our own option id for the recorded plan: readers skip unknown options by their size.
pub const OPTION_WASMPROBE: u16 = 0x7770;
