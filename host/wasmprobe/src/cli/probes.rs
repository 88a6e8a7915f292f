//! `kprobe`, `uprobe`, `probes` and `cleanup`: the tracefs layer, the man page's API.

use anyhow::{Context, Result};
use tracefs::{
    dynevent_get_all, kprobe_alloc, kretprobe_alloc, resolve_target, uprobe_alloc, uretprobe_alloc, DynEvent,
    DynEventType, Tracefs,
};

use super::args::{KprobeCmd, UprobeCmd};
use crate::owned;

fn joined(args: &[String]) -> Option<String> {
    (!args.is_empty()).then(|| args.join(" "))
}

pub(super) fn kprobe(cmd: KprobeCmd) -> Result<()> {
    let t = Tracefs::open()?;
    match cmd {
        KprobeCmd::Add(a) => {
            let fmt = joined(&a.fetchargs);
            let ev = if a.ret {
                kretprobe_alloc(
                    a.system.as_deref(),
                    a.event.as_deref(),
                    Some(&a.addr),
                    fmt.as_deref(),
                    a.maxactive.unwrap_or(0),
                )?
            } else {
                kprobe_alloc(a.system.as_deref(), a.event.as_deref(), Some(&a.addr), fmt.as_deref())?
            };
            ev.create(&t)?;
            println!("created {} {}", ev.kind.name(), ev.full_name());
        }
        KprobeCmd::Remove(r) => {
            let ev = kprobe_alloc(r.system.as_deref(), r.event.as_deref(), Some(&r.addr), None)?;
            ev.destroy(&t, r.force)?;
            println!("removed {}", ev.full_name());
        }
    }
    Ok(())
}

pub(super) fn uprobe(cmd: UprobeCmd) -> Result<()> {
    let t = Tracefs::open()?;
    match cmd {
        UprobeCmd::Add(a) => {
            let system = a.system.as_deref().unwrap_or(tracefs::uprobe::UPROBE_DEFAULT_SYSTEM);
            let target = resolve_target(&a.target).with_context(|| format!("probe {system}/{}", a.event))?;
            let path = target.path.to_str().context("uprobe path is not UTF-8")?;
            let fmt = joined(&a.fetchargs);
            let alloc = if a.ret { uretprobe_alloc } else { uprobe_alloc };
            let ev = alloc(a.system.as_deref(), &a.event, path, target.offset, fmt.as_deref())?;
            ev.create(&t)?;
            println!("created {} {} at {}", ev.kind.name(), ev.full_name(), ev.address);
        }
        UprobeCmd::Remove(r) => {
            let system = r.system.as_deref().unwrap_or(tracefs::uprobe::UPROBE_DEFAULT_SYSTEM);
            DynEvent::new(DynEventType::Uprobe, system, &r.event, "", "").destroy(&t, r.force)?;
            println!("removed {system}/{}", r.event);
        }
    }
    Ok(())
}

pub(super) fn probes(json: bool) -> Result<()> {
    let t = Tracefs::open()?;
    let all = dynevent_get_all(&t, &[], None)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        for line in all.iter().flat_map(DynEvent::listing_lines) {
            println!("{line}");
        }
    }
    Ok(())
}

pub(super) fn cleanup(all: bool) -> Result<()> {
    let t = Tracefs::open()?;
    let done = owned::cleanup(&t, all)?;
    for i in &done.instances {
        println!("removed instance {i}");
    }
    for p in &done.probes {
        println!("removed {p}");
    }
    if done.instances.is_empty() && done.probes.is_empty() && done.failures.is_empty() {
        println!("nothing of ours left in {}", t.path().display());
    }
    if let Some(first) = done.failures.first() {
        anyhow::bail!("{} item(s) could not be removed; first: {first}", done.failures.len());
    }
    Ok(())
}
