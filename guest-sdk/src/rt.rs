//! The glue behind [`crate::export!`]: keeps the plugin and the probe layouts, and turns each
//! `on-batch` call into `on_event` calls. Not for direct use.

use std::cell::RefCell;

use crate::batch::Records;
use crate::bindings::wasmprobe::plugin::{run, types};
use crate::event::Event;
use crate::{Args, CommCache, Field, Plugin, ProbeId, ProbeInfo};

struct Runtime {
    plugin: Box<dyn Plugin>,
    probes: Vec<ProbeInfo>,
    layouts_loaded: bool,
    comms: CommCache,
}

thread_local! {
    static RUNTIME: RefCell<Option<Runtime>> = const { RefCell::new(None) };
}

/// The `init` export.
pub fn init(mut plugin: Box<dyn Plugin>, args: Vec<(String, String)>) -> Result<types::Plan, String> {
    let plan = plugin.init(&Args::new(args))?;
    let probes =
        plan.probes().iter().enumerate().map(|(i, p)| ProbeInfo::new(ProbeId(i as u32), p.name.clone())).collect();
    RUNTIME.with(|r| {
        *r.borrow_mut() = Some(Runtime { plugin, probes, layouts_loaded: false, comms: CommCache::default() })
    });
    Ok(plan.into_wit())
}

/// The `on-batch` export.
pub fn on_batch(batch: &[u8], lost: u64) -> Result<(), String> {
    RUNTIME.with(|r| {
        let mut guard = r.borrow_mut();
        let rt = guard.as_mut().ok_or("on-batch called before init")?;
        if !rt.layouts_loaded {
            load_layouts(&mut rt.probes);
            rt.layouts_loaded = true;
        }
        rt.comms.clear();
        if lost > 0 {
            rt.plugin.on_lost(lost);
        }
        let Runtime { plugin, probes, comms, .. } = rt;
        for rec in Records::new(batch) {
            let rec = rec?;
            let probe = probes
                .get(rec.probe_index as usize)
                .ok_or_else(|| format!("batch names probe {} but the plan has {}", rec.probe_index, probes.len()))?;
            plugin.on_event(&Event { rec, probe, comms });
        }
        Ok(())
    })
}

/// The `finish` export.
pub fn finish() -> Result<(), String> {
    RUNTIME.with(|r| {
        let mut guard = r.borrow_mut();
        let rt = guard.as_mut().ok_or("finish called before init")?;
        rt.plugin.finish();
        Ok(())
    })
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
                kind: f.kind,
                elem_size: f.elem_size,
            })
            .collect();
    }
}
