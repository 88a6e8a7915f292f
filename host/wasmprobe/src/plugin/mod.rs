//! The WebAssembly plugin runtime: loads a plugin component into a sandbox, asks it for its
//! probes, and delivers batches of kernel events to it.
//!
//! The contract is `wit/wasmprobe.wit` (world `wasmprobe:plugin/plugin`). What the run loop
//! calls, in order:
//!
//! ```no_run
//! use std::sync::Arc;
//! use wasmprobe::plugin::{BatchWriter, FixedKernel, Layout, Plugin, PluginSource, Policy, Sandbox, StdOutput};
//! # fn layouts_from_format_files() -> Vec<Layout> { vec![] }
//! let source = PluginSource::parse("exec-open");                // a built-in, or a .wasm path
//! let sandbox = Sandbox::default();                             // memory cap, CPU budgets, output cap
//! let mut plugin = Plugin::load(&source, &sandbox, Box::new(StdOutput::default()))?;
//! let kernel = Arc::new(FixedKernel::with_features(&["uprobe", "tracepoint"]));
//! let plan = plugin.init(&[("key".into(), "value".into())], kernel)?;
//! plan.validate(&Policy::default())?;                           // untrusted input: check before use
//! // ... create plan.probes in the kernel, read their format files ...
//! plugin.set_layouts(layouts_from_format_files())?;             // one per probe, plan order
//! let mut batch = BatchWriter::new();
//! plugin.pack(&mut batch, 0, 1, 1234, 5_000_000, &[/* raw event payload */]); // whole or projected
//! plugin.on_batch(batch.as_bytes(), 0)?;                        // many times
//! batch.clear();
//! plugin.finish()?;
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! - [`Plugin::load`] compiles the component once and caches the compiled code on disk
//!   ([`cache`]); each plugin gets its own `Store`, no WASI files, environment, arguments or
//!   sockets, and its WASI stdout/stderr go to its [`Output`], capped per call.
//! - A plugin that traps, runs past its CPU budget or grows past its memory limit gets an
//!   [`Error`] naming it and the reason, and is poisoned (later calls return the same error);
//!   the host and other plugins go on.
//! - A probe that declares `fields` gets only those delivered ([`Projection`]): [`Plugin::pack`]
//!   packs each record the way its plugin asked.
//! - [`Plan::validate`] refuses declarations that would escape the plugin's probe group or
//!   that the [`Policy`] (`--allow`) does not permit.
//!
//! One module per WIT interface on the host side, holding only its `Host` impl: `host/`.

mod bindings;
mod host;

pub mod batch;
pub mod cache;
pub mod error;
pub mod kernel;
pub mod layout;
pub mod output;
pub mod plan;
pub mod project;
pub mod runtime;
pub mod sandbox;
pub mod stacks;
pub mod timeline;

pub use batch::{BatchReader, BatchRecord, BatchWriter};
pub use cache::CacheOutcome;
pub use error::{Call, Error};
pub use kernel::{CommLookup, FixedKernel, KernelInfo, ProcComm};
pub use layout::{FieldKind, Layout, LayoutField};
pub use output::{Level, Output, StdOutput, Stdio, Value};
pub use plan::{Plan, PlanError, Policy, ProbeDecl, ProbeKind};
pub use project::Projection;
pub use runtime::{LoadInfo, Plugin, PluginSource};
pub use sandbox::Sandbox;
pub use stacks::{AddressSpace, FrameInfo, NoSymbols, StackKinds, Symbolizer};
pub use timeline::{Mark, Scope, Timeline, Track};

/// The example plugins built into the binary (built by build.rs from guest-examples/).
const BUILTINS: &[(&str, &[u8])] = &[
    ("exec-open", include_bytes!(concat!(env!("OUT_DIR"), "/guests/exec_open.wasm"))),
    ("syscount", include_bytes!(concat!(env!("OUT_DIR"), "/guests/syscount.wasm"))),
    ("openlat", include_bytes!(concat!(env!("OUT_DIR"), "/guests/openlat.wasm"))),
    ("readline", include_bytes!(concat!(env!("OUT_DIR"), "/guests/readline.wasm"))),
    ("stackcount", include_bytes!(concat!(env!("OUT_DIR"), "/guests/stackcount.wasm"))),
];

/// The component bytes of built-in plugin `name`.
pub fn builtin(name: &str) -> Option<&'static [u8]> {
    BUILTINS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// The names of the built-in plugins.
pub fn builtin_names() -> Vec<&'static str> {
    BUILTINS.iter().map(|(n, _)| *n).collect()
}

/// The most a plugin component file may hold unless `--max-plugin-mib` says otherwise.
pub const DEFAULT_MAX_PLUGIN_BYTES: u64 = 256 << 20;

/// Reads a plugin or pack file of at most `limit` bytes. Refuses what is not a regular file
/// (a directory, a FIFO, a device such as `/dev/zero`, whatever a symlink points at) before
/// reading a byte of it, and a file that turns out longer than `limit`, so an endless or huge
/// file cannot grow the host. The file is opened non-blocking and checked on the open
/// descriptor, so swapping it for a FIFO after a check cannot make the open hang.
pub fn read_plugin_file(path: &std::path::Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let refuse = |what: &str| Error::new(ErrorKind::InvalidInput, format!("not a regular file ({what})"));
    let kind = |t: std::fs::FileType| {
        if t.is_dir() {
            "a directory"
        } else if t.is_fifo() {
            "a FIFO"
        } else if t.is_char_device() {
            "a character device"
        } else if t.is_block_device() {
            "a block device"
        } else if t.is_socket() {
            "a socket"
        } else {
            "not a file"
        }
    };
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(refuse(kind(meta.file_type())));
    }
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(refuse(kind(meta.file_type())));
    }
    let too_big = |n: u64| {
        Error::new(
            ErrorKind::InvalidData,
            format!("{n} bytes is over the limit of {} MiB (--max-plugin-mib)", limit.div_ceil(1 << 20)),
        )
    };
    if meta.len() > limit {
        return Err(too_big(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
}
