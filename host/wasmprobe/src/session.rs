//! A tracing session: the kernel side of a run. It turns validated probe declarations (a
//! plugin's plan, or tracepoints named on the command line) into dynamic
//! events in a group of our own, enables them in an instance of our own, and takes everything
//! down again when dropped, whatever happened in between.

use anyhow::{bail, Context, Result};
use tracefs::{
    event_format, kprobe_alloc, kretprobe_alloc, resolve_target, uprobe_alloc, uretprobe_alloc, DynEvent, Errno,
    Instance, Tracefs,
};

use crate::owned;
use crate::plugin::{ProbeDecl, ProbeKind};

/// A probe as armed in the kernel: where its events come from and what they look like.
#[derive(Debug, Clone)]
pub struct ArmedProbe {
    /// Index of the request in the plan.
    pub index: usize,
    /// Event system in tracefs.
    pub system: String,
    /// Event name in tracefs.
    pub event: String,
    /// The event's `format` file text, as the kernel gives it.
    pub format: String,
    /// The event id (`common_type` of its records).
    pub id: u16,
}

/// A running session. Drop order: the instance first (which disables its events), then the
/// probes, so no removal meets `EBUSY`.
pub struct Session {
    tracefs: Tracefs,
    instance: Option<Instance>,
    created: Vec<DynEvent>,
    armed: Vec<ArmedProbe>,
    /// Armed probe by event id: looked up for every record.
    by_id: ProbeIds,
}

impl Session {
    /// Creates our instance and every requested probe, enables them there, and reads their
    /// formats. On any failure, what was made so far is removed before the error returns.
    pub fn arm(tracefs: &Tracefs, tag: &str, requests: &[ProbeDecl]) -> Result<Session> {
        // A uprobe target we refuse (see `resolve_target`) is refused before anything is
        // written to tracefs, the instance included.
        for req in requests.iter().filter(|r| matches!(r.kind, ProbeKind::Uprobe | ProbeKind::Uretprobe)) {
            resolve_target(&req.target).with_context(|| format!("probe {}", req.name))?;
        }
        let instance = Instance::create(tracefs, &owned::instance_name(tag))?;
        let mut s = Session {
            tracefs: tracefs.clone(),
            instance: Some(instance),
            created: Vec::new(),
            armed: Vec::new(),
            by_id: ProbeIds::default(),
        };
        let group = owned::group_name(tag);
        for (index, req) in requests.iter().enumerate() {
            let (system, event) = s.create(&group, req).with_context(|| format!("probe {}", req.name))?;
            let inst = s.instance();
            if let Some(f) = &req.filter {
                inst.write_file(&format!("events/{system}/{event}/filter"), f)
                    .with_context(|| format!("probe {}: kernel filter {f:?}", req.name))?;
            }
            let format = event_format(tracefs, &system, &event)?;
            let id = parse_id(&format).with_context(|| format!("probe {}: no ID in its format", req.name))?;
            s.by_id.insert(id, s.armed.len());
            s.armed.push(ArmedProbe { index, system, event, format, id });
        }
        Ok(s)
    }

    fn create(&mut self, group: &str, req: &ProbeDecl) -> Result<(String, String)> {
        let fetch = (!req.fetchargs.is_empty()).then_some(req.fetchargs.as_str());
        let ev = match req.kind {
            ProbeKind::Tracepoint => {
                let Some((sys, ev)) = req.target.split_once(':') else {
                    bail!("tracepoint target {:?} is not SYSTEM:EVENT", req.target)
                };
                return Ok((sys.to_string(), ev.to_string()));
            }
            ProbeKind::Kprobe => kprobe_alloc(Some(group), Some(&req.name), Some(&req.target), fetch)?,
            ProbeKind::Kretprobe => {
                kretprobe_alloc(Some(group), Some(&req.name), Some(&req.target), fetch, req.maxactive.unwrap_or(0))?
            }
            ProbeKind::Uprobe | ProbeKind::Uretprobe => {
                let t = resolve_target(&req.target)?;
                let path = t.path.to_str().context("uprobe path is not UTF-8")?;
                let alloc = if req.kind == ProbeKind::Uprobe { uprobe_alloc } else { uretprobe_alloc };
                alloc(Some(group), &req.name, path, t.offset, fetch)?
            }
            ProbeKind::Eprobe => {
                let Some((sys, ev)) = req.target.split_once('.') else {
                    bail!("eprobe target {:?} is not SYSTEM.EVENT", req.target)
                };
                tracefs::eprobe_alloc(Some(group), &req.name, sys, ev, fetch)?
            }
        };
        ev.create(&self.tracefs)?;
        self.created.push(ev.clone());
        Ok((ev.system, ev.event))
    }

    /// Asks for sub-buffers of `kb` KiB in our instance (kernel 6.8+), before anything reads
    /// it; the ring buffer keeps its size. Best effort: a kernel that cannot, or refuses the
    /// size, keeps its own, which every reader handles.
    pub fn prefer_subbuf_kb(&self, kb: u64) {
        let _ = self.instance().set_subbuf_size_kb(kb);
    }

    /// Our instance.
    pub fn instance(&self) -> &Instance {
        self.instance.as_ref().expect("instance lives until drop")
    }

    /// The armed probes, in plan order.
    pub fn probes(&self) -> &[ArmedProbe] {
        &self.armed
    }

    /// The armed probe whose records carry `common_type == id`.
    pub fn probe_by_id(&self, id: u16) -> Option<&ArmedProbe> {
        self.by_id.get(id).map(|i| &self.armed[i])
    }

    /// Restricts tracing to `pid` and, through `options/event-fork`, the children it forks.
    pub fn follow_pid(&self, pid: i32) -> Result<()> {
        let inst = self.instance();
        inst.write_file("set_event_pid", &pid.to_string())?;
        inst.write_file("options/event-fork", "1")?;
        Ok(())
    }

    /// Enables every armed probe in our instance (one write each).
    pub fn enable(&self) -> Result<()> {
        let inst = self.instance();
        for p in &self.armed {
            inst.event_enable(Some(&p.system), Some(&p.event))?;
        }
        Ok(())
    }

    /// Stops recording into our buffer (the data already there stays readable).
    pub fn stop(&self) -> Result<()> {
        let inst = self.instance();
        for p in &self.armed {
            inst.event_disable(Some(&p.system), Some(&p.event))?;
        }
        Ok(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Removing the instance disables every event in it.
        if let Some(inst) = self.instance.take() {
            if let Err(e) = inst.destroy() {
                eprintln!("wasmprobe: warning: {e}");
            }
        }
        for ev in self.created.drain(..).rev() {
            match ev.destroy(&self.tracefs, true) {
                Ok(()) => {}
                Err(e) if e.errno() == Errno::ENOENT => {}
                Err(e) => eprintln!("wasmprobe: warning: {e}"),
            }
        }
    }
}

/// `ID: <n>` of a format file.
pub fn parse_id(format: &str) -> Option<u16> {
    format.lines().find_map(|l| l.strip_prefix("ID:")).and_then(|v| v.trim().parse().ok())
}

/// Which probe (index in the plan) an event id belongs to: a table indexed by id, since the
/// lookup is made for every record, live and in a replay.
#[derive(Debug, Clone, Default)]
pub struct ProbeIds(Vec<u32>);

impl ProbeIds {
    /// Records that events with id `id` are probe `probe`'s.
    pub fn insert(&mut self, id: u16, probe: usize) {
        let i = id as usize;
        if self.0.len() <= i {
            self.0.resize(i + 1, u32::MAX);
        }
        self.0[i] = probe as u32;
    }

    /// The probe of events with id `id`, if any.
    #[inline]
    pub fn get(&self, id: u16) -> Option<usize> {
        self.0.get(id as usize).copied().filter(|&p| p != u32::MAX).map(|p| p as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        // Library names (`libc:open`) are resolved by tracefs::resolve_target; see its tests.
        assert_eq!(parse_id("name: open\nID: 1496\nformat:\n"), Some(1496));
        assert_eq!(parse_id("name: open\n"), None);
    }
}
