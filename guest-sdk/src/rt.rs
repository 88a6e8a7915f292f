//! The glue behind [`crate::export!`]: keeps the plugin and the probe layouts, and hands each
//! `on-batch` call to [`Plugin::on_batch`] (by default one `on_event` call per event). Not for
//! direct use.

use std::any::Any;
use std::cell::RefCell;

use wasmprobe_abi::batch::Records;
use wasmprobe_abi::FieldKind;

use crate::batch::{walk_end, Batch};
use crate::bindings::wasmprobe::plugin::{run, types};
use crate::{Args, CommCache, Field, Plugin, ProbeId, ProbeInfo};

struct Runtime {
    /// The plugin, downcast to its concrete type once per call so that `on_event` is a
    /// static (inlinable) call rather than a dynamic one per event.
    plugin: Box<dyn Any>,
    probes: Vec<ProbeInfo>,
    layouts_loaded: bool,
    comms: CommCache,
}

thread_local! {
    static RUNTIME: RefCell<Option<Runtime>> = const { RefCell::new(None) };
}

/// The `init` export.
pub fn init<P: Plugin + 'static>(mut plugin: P, args: Vec<(String, String)>) -> Result<types::Plan, String> {
    let plan = plugin.init(&Args::new(args))?;
    let probes =
        plan.probes().iter().enumerate().map(|(i, p)| ProbeInfo::new(ProbeId(i as u32), p.name.clone())).collect();
    RUNTIME.with(|r| {
        *r.borrow_mut() =
            Some(Runtime { plugin: Box::new(plugin), probes, layouts_loaded: false, comms: CommCache::default() })
    });
    plan.into_wit()
}

/// The `on-batch` export.
pub fn on_batch<P: Plugin + 'static>(bytes: &[u8], lost: u64) -> Result<(), String> {
    RUNTIME.with(|r| {
        let mut guard = r.borrow_mut();
        let rt = guard.as_mut().ok_or("on-batch called before init")?;
        if !rt.layouts_loaded {
            load_layouts(&mut rt.probes);
            rt.layouts_loaded = true;
        }
        rt.comms.clear();
        let Runtime { plugin, probes, comms, .. } = rt;
        let plugin = plugin.downcast_mut::<P>().ok_or("the exported plugin type changed")?;
        if lost > 0 {
            plugin.on_lost(lost);
        }
        let batch = Batch::new(bytes, probes, comms);
        plugin.on_batch(&batch);
        // A batch must end where a record ends: the per-event walk knows where it stopped, a
        // uniform batch was checked whole; any other is walked here (a plugin that read only
        // columns of a batch that is not uniform).
        let off = match batch.walked_to.get() {
            Some(off) => off,
            None if batch.uniform().is_some() => bytes.len(),
            None => walk_end(bytes, probes.len()),
        };
        if off < bytes.len() {
            return Err(malformed(bytes, off, probes.len()));
        }
        plugin.on_batch_end();
        crate::metrics::flush();
        Ok(())
    })
}

/// Why the record at `off` stopped the walk, worded as the `Records` iterator words it.
#[cold]
#[inline(never)]
fn malformed(batch: &[u8], off: usize, probes: usize) -> String {
    match Records::at(batch, off).next() {
        Some(Err(e)) => e.to_string(),
        Some(Ok(rec)) => format!("batch names probe {} but the plan has {probes}", rec.probe_index),
        None => format!("batch truncated at offset {off}"),
    }
}

/// The `finish` export.
pub fn finish<P: Plugin + 'static>() -> Result<(), String> {
    RUNTIME.with(|r| {
        let mut guard = r.borrow_mut();
        let rt = guard.as_mut().ok_or("finish called before init")?;
        rt.plugin.downcast_mut::<P>().ok_or("the exported plugin type changed")?.finish();
        crate::metrics::flush();
        Ok(())
    })
}

/// The ABI's kind of a WIT `field-kind` (the same numbering: `wasmprobe_abi::FieldKind`).
fn kind_of(k: types::FieldKind) -> FieldKind {
    FieldKind::from_index(k as u8).unwrap_or(FieldKind::Other)
}

fn load_layouts(probes: &mut [ProbeInfo]) {
    for layout in run::layouts() {
        let Some(p) = probes.get_mut(layout.probe_index as usize) else { continue };
        p.fields = layout
            .fields
            .into_iter()
            .map(|f| Field {
                name: f.name,
                offset: f.offset,
                size: f.size,
                signed: f.signed,
                kind: kind_of(f.kind),
                elem_size: f.elem_size,
            })
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wit_field_kinds_are_the_abi_kinds_by_number() {
        use types::FieldKind as Wit;
        let wit = [
            (Wit::Integer, FieldKind::Integer),
            (Wit::Array, FieldKind::Array),
            (Wit::CharArray, FieldKind::CharArray),
            (Wit::DataLocString, FieldKind::DataLocString),
            (Wit::DataLocArray, FieldKind::DataLocArray),
            (Wit::RelLocString, FieldKind::RelLocString),
            (Wit::RelLocArray, FieldKind::RelLocArray),
            (Wit::Other, FieldKind::Other),
        ];
        for (w, k) in wit {
            assert_eq!(kind_of(w), k);
        }
    }
}
