//! The host side of each WIT interface, one module per interface, each holding only its `Host`
//! impl on the store's [`State`](crate::plugin::runtime::State) (the layout of wasmtime-wasi's
//! `p2/host/`). What the impls hand their work to lives beside this module: [`super::output`],
//! [`super::kernel`], [`super::timeline`].

mod kernel;
mod metrics;
mod output;
mod run;
mod stacks;
mod timeline;

use crate::plugin::bindings::types as wit;
use crate::plugin::ProbeKind;

/// The WIT's probe kind is the plan's: the one place the generated enum is translated.
impl From<wit::ProbeKind> for ProbeKind {
    fn from(k: wit::ProbeKind) -> ProbeKind {
        match k {
            wit::ProbeKind::Kprobe => ProbeKind::Kprobe,
            wit::ProbeKind::Kretprobe => ProbeKind::Kretprobe,
            wit::ProbeKind::Uprobe => ProbeKind::Uprobe,
            wit::ProbeKind::Uretprobe => ProbeKind::Uretprobe,
            wit::ProbeKind::Tracepoint => ProbeKind::Tracepoint,
            wit::ProbeKind::Eprobe => ProbeKind::Eprobe,
        }
    }
}
