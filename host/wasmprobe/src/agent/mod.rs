//! `wasmprobe agent`: every plugin of a config over one live pipeline, for a node that runs
//! them all the time. Its metrics (and its plugins') are served for Prometheus; its plugins'
//! events go out as JSON lines. See docs/agent.md.

pub mod config;
pub mod events;
pub mod metrics;
pub mod plugin_metrics;
mod queue;
pub mod supervisor;

pub use config::{Config, PluginSpec};
pub use supervisor::{check, Agent};
