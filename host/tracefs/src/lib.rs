//! libtracefs in Rust: find the tracing directory, manage instances, create and remove dynamic
//! events (kprobes, kretprobes, uprobes, uretprobes, eprobes), enable events, read the kernel's
//! `error_log`, and read raw per-CPU ring buffers.
//!
//! One module per API family, as in libtracefs: [`kprobe`], [`uprobe`], [`eprobe`],
//! [`dynevent`], [`instance`], [`events`], [`error_log`], [`cpu`]. The crate knows nothing of
//! decoding (see `traceevent`) or of Wasm.
//!
//! ```no_run
//! use tracefs::{kprobe_raw, Instance, Tracefs};
//! let t = Tracefs::open()?;
//! kprobe_raw(&t, Some("my_kprobes"), Some("open"), Some("do_sys_openat2"),
//!            Some("file=+0($arg2):ustring"))?;
//! let inst = Instance::create(&t, "exec_open")?; // removed when `inst` drops
//! inst.event_enable(Some("my_kprobes"), None)?;
//! # Ok::<(), tracefs::Error>(())
//! ```

pub mod cpu;
pub mod dir;
pub mod dynevent;
pub mod eprobe;
pub mod error;
pub mod error_log;
pub mod events;
pub mod instance;
pub mod kprobe;
pub mod uprobe;

pub use cpu::{mapping_supported, Chunk, CpuReader, CpuStopper, ReadMode};
pub use dir::{read_text, Tracefs, TRACEFS_ENV};
pub use dynevent::{
    dynevent_destroy_all, dynevent_get, dynevent_get_all, parse_listing, DynEvent, DynEventType, Listing, OwnedDynEvent,
};
pub use eprobe::eprobe_alloc;
pub use error::{Errno, Error, Result};
pub use error_log::{parse_error_log, ErrorLogEntry};
pub use events::{event_format, event_systems, parse_cmdlines, saved_cmdlines, system_events, EnableState};
pub use instance::{instances, Instance};
pub use kprobe::{
    event_name_from_addr, kprobe_alloc, kprobe_destroy, kprobe_raw, kprobes_supported, kretprobe_alloc, kretprobe_raw,
};
pub use uprobe::{resolve_target, uprobe_address, uprobe_alloc, uprobes_supported, uretprobe_alloc, UprobeTarget};
