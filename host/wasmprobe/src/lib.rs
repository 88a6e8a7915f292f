//! wasmprobe: run trace logic against the Linux kernel through tracefs. This crate holds the
//! command line and what ties the `tracefs` and `traceevent` crates into runs.

/// The one line a failed command prints on stderr after `wasmprobe: error: `: the chain of
/// causes, outermost first, each cause's own line breaks joined.
pub fn error_line(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines.join("; ")
}

pub mod agent;
pub mod child;
pub mod cli;
pub mod datwrite;
pub mod kernel_info;
pub mod owned;
pub mod pack;
pub mod perfetto;
pub mod pipeline;
pub mod plugin;
pub mod pump;
pub mod record;
pub mod replay;
pub mod report;
pub mod run;
pub mod session;
pub mod sink;
pub mod stacks;
pub mod stream;
pub mod symbolize;
