//! A tracing session: the kernel side of a run. It turns validated probe declarations (a
//! plugin's plan, or tracepoints named on the command line) into dynamic
//! events in a group of our own, enables them in an instance of our own, and takes everything
//! down again when dropped, whatever happened in between.

use anyhow::{bail, Context, Result};
use tracefs::{
    event_format, kprobe_alloc, kretprobe_alloc, resolve_target, uprobe_alloc, uretprobe_alloc, Instance,
    OwnedDynEvent, Tracefs, UprobeTarget,
};

use traceevent::filter::Filter;
use traceevent::{Endian, EventFormat};

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
    /// Still armed: false once [`Session::remove`] took it out (its index stays taken).
    pub active: bool,
}

/// A running session. Drop order: the instance first (which disables its events), then the
/// probes, so no removal meets `EBUSY`.
pub struct Session {
    tracefs: Tracefs,
    instance: Option<Instance>,
    created: Vec<OwnedDynEvent>,
    armed: Vec<ArmedProbe>,
    /// Armed probe by event id: looked up for every record.
    by_id: ProbeIds,
    /// The declaration of each armed probe, by index (what [`Session::add`] and
    /// [`Session::remove`] recompute the filters and routes from).
    decls: Vec<ProbeDecl>,
    /// Whether the events are enabled (probes added now are enabled at once).
    enabled: bool,
    /// `stacktrace` triggers for kernel stacks: `(system, event, trigger line)`, written when
    /// the events are enabled and removed before they are disabled.
    triggers: Vec<(String, String, String)>,
    /// Whether the triggers are in tracefs now.
    triggers_on: bool,
    /// `(file, offset)` of each uprobe made, by `(system, event)`.
    uprobes: std::collections::HashMap<(String, String), (String, u64)>,
}

impl Session {
    /// Creates our instance and every requested probe, enables them there, and reads their
    /// formats. On any failure, what was made so far is removed before the error returns.
    pub fn arm(tracefs: &Tracefs, tag: &str, requests: &[ProbeDecl]) -> Result<Session> {
        // A uprobe target we refuse (see `resolve_target`) is refused before anything is
        // written to tracefs, the instance included. Each is resolved once (an ELF may be
        // hundreds of MB), and a stop request is heard between any two.
        let mut targets: Vec<Option<UprobeTarget>> = vec![None; requests.len()];
        for (i, req) in requests.iter().enumerate() {
            if matches!(req.kind, ProbeKind::Uprobe | ProbeKind::Uretprobe) {
                check_stop(0, requests.len())?;
                targets[i] = Some(resolve_target(&req.target).with_context(|| format!("probe {}", req.name))?);
            }
        }
        let instance = owned::create_instance(tracefs, tag)?;
        let mut s = Session {
            tracefs: tracefs.clone(),
            instance: Some(instance),
            created: Vec::new(),
            armed: Vec::new(),
            by_id: ProbeIds::default(),
            decls: requests.to_vec(),
            enabled: false,
            triggers: Vec::new(),
            triggers_on: false,
            uprobes: Default::default(),
        };
        let group = owned::group_name(tag);
        for (index, req) in requests.iter().enumerate() {
            check_stop(index, requests.len())?;
            let (system, event) =
                s.create(&group, req, targets[index].take()).with_context(|| format!("probe {}", req.name))?;
            let format = event_format(tracefs, &system, &event)?;
            let id = parse_id(&format).with_context(|| format!("probe {}: no ID in its format", req.name))?;
            s.armed.push(ArmedProbe { index, system, event, format, id, active: true });
        }
        s.set_filters(requests, false)?;
        s.arm_stacks(requests)?;
        Ok(s)
    }

    /// Prepares call stacks: the `stacktrace` trigger line of each event a declaration wants
    /// kernel stacks of (installed by [`Session::enable`]), and the instance's
    /// `userstacktrace` option if one wants user stacks.
    ///
    /// A trigger fires for every hit that passes its own filter, even one the event's filter
    /// then discards, and (being a post trigger) even while the event is soft-disabled. So
    /// each trigger carries the filter of the declarations that asked (joined by `||`; none if
    /// one of them has none, when the event has none either), and it is in tracefs only while
    /// the event is enabled.
    fn arm_stacks(&mut self, requests: &[ProbeDecl]) -> Result<()> {
        let mut triggers: Vec<(String, String, Vec<Option<String>>)> = Vec::new();
        for a in self.armed.iter().filter(|a| a.active) {
            let req = &requests[a.index];
            if !req.stacks.kernel {
                continue;
            }
            match triggers.iter_mut().find(|(s, e, _)| *s == a.system && *e == a.event) {
                Some((_, _, filters)) => filters.push(req.filter.clone()),
                None => triggers.push((a.system.clone(), a.event.clone(), vec![req.filter.clone()])),
            }
        }
        self.triggers = triggers
            .into_iter()
            .map(|(sys, ev, filters)| {
                let line = match filters.iter().all(Option::is_some) {
                    true if filters.len() == 1 => format!("stacktrace if {}", filters[0].as_deref().unwrap_or("")),
                    true => format!(
                        "stacktrace if {}",
                        filters.iter().flatten().map(|f| format!("({f})")).collect::<Vec<_>>().join(" || ")
                    ),
                    false => "stacktrace".to_string(),
                };
                (sys, ev, line)
            })
            .collect();
        if requests.iter().any(|r| r.stacks.user) {
            self.instance().write_file("options/userstacktrace", "1").context("turning on options/userstacktrace")?;
        }
        Ok(())
    }

    /// Writes the `stacktrace` triggers (events enabled first: see [`Session::arm_stacks`]).
    fn install_triggers(&mut self) -> Result<()> {
        if self.triggers_on || self.triggers.is_empty() {
            return Ok(());
        }
        self.triggers_on = true;
        for (sys, ev, line) in &self.triggers {
            self.instance()
                .append_file(&format!("events/{sys}/{ev}/trigger"), line)
                .with_context(|| format!("{sys}:{ev}: cannot add the trigger {line:?}"))?;
        }
        Ok(())
    }

    /// Removes the `stacktrace` triggers; every one is tried, the first failure returned.
    fn remove_triggers(&mut self) -> Result<()> {
        if !self.triggers_on {
            return Ok(());
        }
        self.triggers_on = false;
        let mut first = None;
        for (sys, ev, _) in &self.triggers {
            let path = format!("events/{sys}/{ev}/trigger");
            if let Err(e) = self.instance().append_file(&path, "!stacktrace") {
                first.get_or_insert(anyhow::Error::new(e).context(format!("{sys}:{ev}: cannot remove the trigger")));
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// What [`crate::stacks::StackMatcher`] needs for this session: the ids of the stack
    /// records, the stacks each event id wants and those each probe asked for. `None` when no
    /// probe asked for stacks.
    pub fn stack_routing(&self) -> Result<Option<crate::pump::StackRouting>> {
        if !self.decls.iter().any(|d| d.stacks.any()) {
            return Ok(None);
        }
        let mut formats = Vec::new();
        for ev in ["kernel_stack", "user_stack"] {
            formats.push(event_format(&self.tracefs, "ftrace", ev).with_context(|| format!("format of ftrace:{ev}"))?);
        }
        let ids = crate::stacks::StackIds::from_formats(formats.iter().map(String::as_str));
        let mut by_probe = vec![crate::plugin::StackKinds::NONE; self.armed.len()];
        let mut want = Vec::new();
        for a in &self.armed {
            let kinds = self.decls[a.index].stacks;
            by_probe[a.index] = kinds;
            if want.len() <= a.id as usize {
                want.resize(a.id as usize + 1, crate::plugin::StackKinds::NONE);
            }
            want[a.id as usize] = want[a.id as usize].union(kinds);
        }
        let matcher = crate::stacks::StackMatcher::new(ids, want, Endian::native());
        Ok(Some(crate::pump::StackRouting { matcher, by_probe }))
    }

    /// The file and offset of each armed uprobe (not uretprobe: its first user frame is the
    /// return address, not the probe), by probe index; `None` for every other probe.
    pub fn uprobe_anchors(&self) -> Vec<Option<(String, u64)>> {
        let mut out = vec![None; self.armed.iter().map(|a| a.index + 1).max().unwrap_or(0)];
        for a in &self.armed {
            out[a.index] = self.uprobes.get(&(a.system.clone(), a.event.clone())).cloned();
        }
        out
    }

    /// Arms more probes in the running session, in group `tag` (the agent adding a plugin
    /// between pump steps); they are enabled at once if the session is. Probes asking for call
    /// stacks are refused here (only [`Session::arm`] arms stacks). Returns their indexes,
    /// which follow every index given so far. On failure, what this call made is removed and
    /// the session is as it was.
    pub fn add(&mut self, tag: &str, requests: &[ProbeDecl]) -> Result<std::ops::Range<usize>> {
        if let Some(r) = requests.iter().find(|r| r.stacks.any()) {
            bail!(
                "probe {}: call stacks are not available to probes added to a running session (the agent) yet",
                r.name
            );
        }
        let first = self.armed.len();
        let group = owned::group_name(tag);
        let made = (|| -> Result<()> {
            for (i, req) in requests.iter().enumerate() {
                let (system, event) = self.create(&group, req, None).with_context(|| format!("probe {}", req.name))?;
                let format = event_format(&self.tracefs, &system, &event)?;
                let id = parse_id(&format).with_context(|| format!("probe {}: no ID in its format", req.name))?;
                self.armed.push(ArmedProbe { index: first + i, system, event, format, id, active: true });
                self.decls.push(req.clone());
            }
            self.reroute()?;
            if self.enabled {
                for p in &self.armed[first..] {
                    self.instance().event_enable(Some(&p.system), Some(&p.event))?;
                }
            }
            Ok(())
        })();
        if let Err(e) = made {
            // Made by this call and never enabled: removed at once, without a buffer reset.
            for p in self.armed.drain(first..).collect::<Vec<_>>() {
                let _ = self.instance().event_disable(Some(&p.system), Some(&p.event));
                if let Some(at) =
                    self.created.iter().position(|c| c.event().system == p.system && c.event().event == p.event)
                {
                    let _ = self.created.remove(at).remove();
                }
            }
            self.decls.truncate(first);
            let _ = self.reroute();
            return Err(e);
        }
        Ok(first..self.armed.len())
    }

    /// Takes the probes `indexes` out of the running session: disabled in our instance
    /// (unless another armed probe reads the same event) and routed nowhere. A probe of ours
    /// stays defined in the kernel, parked, until the session ends or [`Session::restore`]
    /// takes it back: deleting a dynamic event that was enabled in an instance makes the
    /// kernel reset that instance's ring buffers (`tr->clear_trace`), which would throw away
    /// the unread events of every other probe, uncounted. Disabled, a parked uprobe is
    /// unregistered from its file and costs nothing.
    pub fn remove(&mut self, indexes: &[usize]) -> Result<()> {
        let mut first_err = None;
        for &i in indexes {
            let Some(p) = self.armed.get(i).filter(|p| p.active).cloned() else { continue };
            self.armed[i].active = false;
            let shared = self.armed.iter().any(|o| o.active && o.system == p.system && o.event == p.event);
            if !shared {
                if let Err(e) = self.instance().event_disable(Some(&p.system), Some(&p.event)) {
                    first_err.get_or_insert(anyhow::Error::new(e));
                }
            }
        }
        let rerouted = self.reroute();
        match first_err {
            Some(e) => Err(e),
            None => rerouted,
        }
    }

    /// Takes back a probe [`Session::remove`] parked: routed again, and enabled if the session is.
    pub fn restore(&mut self, index: usize) -> Result<()> {
        let Some(p) = self.armed.get_mut(index) else { bail!("no armed probe {index}") };
        if p.active {
            return Ok(());
        }
        p.active = true;
        let (system, event) = (p.system.clone(), p.event.clone());
        self.reroute()?;
        if self.enabled {
            self.instance().event_enable(Some(&system), Some(&event))?;
        }
        Ok(())
    }

    /// Recomputes every event's filter and the routing table from the active probes.
    fn reroute(&mut self) -> Result<()> {
        self.by_id = ProbeIds::default();
        let decls = std::mem::take(&mut self.decls);
        let r = self.set_filters(&decls, true);
        self.decls = decls;
        r
    }

    /// Gives each event its filter in our instance, and fills the routing table. An event
    /// declared once gets its declaration's filter. An event declared several times gets the
    /// disjunction of theirs (none if one has none), and each declaration's own filter is
    /// applied to each record by [`ProbeIds::route`]. Every filter is first written alone, so
    /// a bad one is refused with the kernel's own reason and named.
    /// With `rebuild` (probes were added or removed), an event declared once and without a
    /// filter gets its filter cleared, since it may have had a joined one.
    fn set_filters(&mut self, requests: &[ProbeDecl], rebuild: bool) -> Result<()> {
        let mut by_id: std::collections::BTreeMap<u16, Vec<usize>> = Default::default();
        for (i, a) in self.armed.iter().enumerate().filter(|(_, a)| a.active) {
            by_id.entry(a.id).or_default().push(i);
        }
        for members in by_id.values() {
            let first = &self.armed[members[0]];
            for &m in members {
                let req = &requests[self.armed[m].index];
                if let Some(f) = &req.filter {
                    self.instance()
                        .event_filter_apply(&first.system, &first.event, f)
                        .with_context(|| format!("probe {}", req.name))?;
                }
            }
            if members.len() == 1 {
                if rebuild && requests[first.index].filter.is_none() {
                    self.instance()
                        .event_filter_apply(&first.system, &first.event, "0")
                        .with_context(|| format!("{}:{}: clearing its filter", first.system, first.event))?;
                }
                self.by_id.insert(first.id, first.index);
                continue;
            }
            let format = EventFormat::parse(&first.system, &first.format, Endian::native())
                .with_context(|| format!("format of {}/{}", first.system, first.event))?;
            let filters: Vec<Option<&String>> =
                members.iter().map(|&m| requests[self.armed[m].index].filter.as_ref()).collect();
            let combined = if filters.iter().all(Option::is_some) {
                filters.iter().flatten().map(|f| format!("({f})")).collect::<Vec<_>>().join(" || ")
            } else {
                "0".to_string() // clears the filter
            };
            self.instance()
                .event_filter_apply(&first.system, &first.event, &combined)
                .with_context(|| format!("{}:{}: the declarations' filters joined", first.system, first.event))?;
            for &m in members {
                let req = &requests[self.armed[m].index];
                let filter = routing_filter(req, &format)?;
                self.by_id.insert_filtered(first.id, self.armed[m].index, filter);
            }
        }
        Ok(())
    }

    fn create(&mut self, group: &str, req: &ProbeDecl, target: Option<UprobeTarget>) -> Result<(String, String)> {
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
                let t = match target {
                    Some(t) => t,
                    None => resolve_target(&req.target)?,
                };
                let path = t.path.to_str().context("uprobe path is not UTF-8")?;
                let alloc = if req.kind == ProbeKind::Uprobe { uprobe_alloc } else { uretprobe_alloc };
                let ev = alloc(Some(group), &req.name, path, t.offset, fetch)?;
                if req.kind == ProbeKind::Uprobe {
                    self.uprobes.insert((ev.system.clone(), ev.event.clone()), (path.to_string(), t.offset));
                }
                ev
            }
            ProbeKind::Eprobe => {
                let Some((sys, ev)) = req.target.split_once('.') else {
                    bail!("eprobe target {:?} is not SYSTEM.EVENT", req.target)
                };
                tracefs::eprobe_alloc(Some(group), &req.name, sys, ev, fetch)?
            }
        };
        let (system, event) = (ev.system.clone(), ev.event.clone());
        self.created.push(OwnedDynEvent::create(&self.tracefs, ev)?);
        Ok((system, event))
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

    /// Where records of each event id go (see [`ProbeIds::route`]).
    pub fn routes(&self) -> &ProbeIds {
        &self.by_id
    }

    /// Restricts tracing to `pid` and, through `options/event-fork`, the children it forks.
    pub fn follow_pid(&self, pid: i32) -> Result<()> {
        let inst = self.instance();
        inst.write_file("set_event_pid", &pid.to_string())?;
        inst.write_file("options/event-fork", "1")?;
        Ok(())
    }

    /// Enables every armed probe in our instance (one write each).
    pub fn enable(&mut self) -> Result<()> {
        let inst = self.instance();
        for p in self.armed.iter().filter(|p| p.active) {
            inst.event_enable(Some(&p.system), Some(&p.event))?;
        }
        self.enabled = true;
        self.install_triggers()
    }

    /// Stops recording into our buffer (the data already there stays readable).
    pub fn stop(&mut self) -> Result<()> {
        self.remove_triggers()?;
        let inst = self.instance();
        for p in self.armed.iter().filter(|p| p.active) {
            inst.event_disable(Some(&p.system), Some(&p.event))?;
        }
        self.enabled = false;
        Ok(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // The triggers first (removing the instance would also clear them); then removing the
        // instance disables every event in it; then the probes go, newest first.
        if self.instance.is_some() {
            if let Err(e) = self.remove_triggers() {
                eprintln!("wasmprobe: warning: {e:#}");
            }
        }
        if let Some(inst) = self.instance.take() {
            if let Err(e) = inst.destroy() {
                eprintln!("wasmprobe: warning: {e}");
            }
        }
        while let Some(probe) = self.created.pop() {
            if let Err(e) = probe.remove() {
                eprintln!("wasmprobe: warning: {e}");
            }
        }
    }
}

/// Ends arming when the run was asked to stop (SIGINT/SIGTERM): what was made so far is
/// removed as the error returns, so a long arming never keeps a stopped run alive.
fn check_stop(done: usize, total: usize) -> Result<()> {
    if crate::child::stop_requested() {
        bail!("stopped by a signal while arming the probes ({done} of {total} armed; all removed)");
    }
    Ok(())
}

/// `ID: <n>` of a format file.
pub fn parse_id(format: &str) -> Option<u16> {
    format.lines().find_map(|l| l.strip_prefix("ID:")).and_then(|v| v.trim().parse().ok())
}

/// Which probes (indexes in the plan) the records of an event id go to: a table indexed by
/// id, since the lookup is made for every record, live and in a replay. An id declared once
/// maps to its probe (the kernel applied its filter). An id declared several times (two
/// probes on one tracepoint) maps to all of them, each with its own filter, evaluated here on
/// each record ([`traceevent::filter`]): every declaration gets exactly what passes its own.
#[derive(Debug, Clone, Default)]
pub struct ProbeIds {
    table: Vec<u32>,
    shared: Vec<Vec<(usize, Option<Filter>)>>,
}

const NO_PROBE: u32 = u32::MAX;
const SHARED: u32 = 1 << 31;

impl ProbeIds {
    /// Records that events with id `id` are (also) probe `probe`'s, unfiltered.
    pub fn insert(&mut self, id: u16, probe: usize) {
        self.insert_filtered(id, probe, None);
    }

    /// Records that events with id `id` that pass `filter` (all of them for `None`) are (also)
    /// probe `probe`'s.
    pub fn insert_filtered(&mut self, id: u16, probe: usize, filter: Option<Filter>) {
        let i = id as usize;
        if self.table.len() <= i {
            self.table.resize(i + 1, NO_PROBE);
        }
        match self.table[i] {
            NO_PROBE if filter.is_none() => self.table[i] = probe as u32,
            NO_PROBE => self.share(i, vec![(probe, filter)]),
            v if v & SHARED != 0 => self.shared[(v & !SHARED) as usize].push((probe, filter)),
            v => self.share(i, vec![(v as usize, None), (probe, filter)]),
        }
    }

    fn share(&mut self, i: usize, members: Vec<(usize, Option<Filter>)>) {
        self.table[i] = SHARED | self.shared.len() as u32;
        self.shared.push(members);
    }

    /// The first probe of events with id `id`, if any.
    pub fn get(&self, id: u16) -> Option<usize> {
        match self.table.get(id as usize).copied()? {
            NO_PROBE => None,
            v if v & SHARED != 0 => self.shared[(v & !SHARED) as usize].first().map(|m| m.0),
            v => Some(v as usize),
        }
    }

    /// Calls `to` with each probe the record `payload` (id `id`, read on `cpu`) goes to;
    /// returns how many.
    #[inline]
    pub fn route(&self, id: u16, payload: &[u8], cpu: u32, mut to: impl FnMut(usize) -> Result<()>) -> Result<u64> {
        match self.table.get(id as usize).copied() {
            None | Some(NO_PROBE) => Ok(0),
            Some(v) if v & SHARED == 0 => to(v as usize).map(|()| 1),
            Some(v) => {
                let mut n = 0;
                for (probe, filter) in &self.shared[(v & !SHARED) as usize] {
                    if filter.as_ref().is_none_or(|f| f.matches(payload, cpu)) {
                        to(*probe)?;
                        n += 1;
                    }
                }
                Ok(n)
            }
        }
    }
}

/// The filter of probe `decl` compiled for host-side routing of event `format`: needed when
/// the event is declared more than once, so the error says so.
pub fn routing_filter(decl: &ProbeDecl, format: &EventFormat) -> Result<Option<Filter>> {
    let Some(text) = &decl.filter else { return Ok(None) };
    Filter::compile(text, format).map(Some).map_err(|why| {
        anyhow::anyhow!(
            "probe {}: {} {}:{} is declared more than once, so each declaration's filter is applied by \
             wasmprobe, which cannot apply {text:?}: {why}",
            decl.name,
            decl.kind.name(),
            format.system,
            format.name
        )
    })
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
