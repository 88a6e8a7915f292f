//! Names of the kernel objects wasmprobe makes, so that what a killed run left behind can be
//! found and removed without touching anybody else's probes or instances.
//!
//! Every probe group is `wasmprobe_<pid>[_<tag>]` and every instance `wasmprobe-<pid>[-<tag>]`,
//! where `<pid>` is the process that made it. `cleanup` removes the ones whose process is gone.

use tracefs::{dynevent_get_all, instances, DynEvent, DynEventType, Instance, Tracefs};

/// Prefix of every probe group we create (a C identifier, as the kernel wants).
pub const GROUP_PREFIX: &str = "wasmprobe_";
/// Prefix of every instance we create.
pub const INSTANCE_PREFIX: &str = "wasmprobe-";

/// The probe group for this process and `tag` (`wasmprobe_<pid>_<tag>`).
pub fn group_name(tag: &str) -> String {
    let pid = std::process::id();
    if tag.is_empty() {
        format!("{GROUP_PREFIX}{pid}")
    } else {
        format!("{GROUP_PREFIX}{pid}_{tag}")
    }
}

/// The instance name for this process and `tag` (`wasmprobe-<pid>-<tag>`).
pub fn instance_name(tag: &str) -> String {
    let pid = std::process::id();
    if tag.is_empty() {
        format!("{INSTANCE_PREFIX}{pid}")
    } else {
        format!("{INSTANCE_PREFIX}{pid}-{tag}")
    }
}

/// The pid that owns a group or instance name of ours, or `None` if the name is not ours.
pub fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(GROUP_PREFIX).or_else(|| name.strip_prefix(INSTANCE_PREFIX))?;
    let digits: &str = rest.split(['_', '-']).next()?;
    digits.parse().ok()
}

fn process_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// What [`cleanup`] removed.
#[derive(Debug, Default)]
pub struct Cleaned {
    /// Instances removed.
    pub instances: Vec<String>,
    /// Probes removed (`kind system/event`).
    pub probes: Vec<String>,
    /// What could not be removed, with why.
    pub failures: Vec<String>,
}

/// Removes our instances and probe groups whose owning process is gone (all of ours when
/// `all`). Instances go first: an event enabled in an instance blocks the probe's removal.
pub fn cleanup(tracefs: &Tracefs, all: bool) -> tracefs::Result<Cleaned> {
    let stale = |name: &str| owner_pid(name).is_some_and(|pid| all || !process_alive(pid));
    let mut out = Cleaned::default();
    for name in instances(tracefs)? {
        if !stale(&name) {
            continue;
        }
        match Instance::open(tracefs, &name).and_then(Instance::destroy) {
            Ok(()) => out.instances.push(name),
            Err(e) => out.failures.push(e.to_string()),
        }
    }
    let probes: Vec<DynEvent> = dynevent_get_all(tracefs, &[], None)?
        .into_iter()
        .filter(|e| stale(&e.system) && !matches!(e.kind, DynEventType::Synth | DynEventType::Other))
        .collect();
    for ev in probes {
        match ev.destroy(tracefs, true) {
            Ok(()) => out.probes.push(format!("{} {}", ev.kind.name(), ev.full_name())),
            Err(e) => out.failures.push(e.to_string()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_owner() {
        let me = std::process::id();
        assert_eq!(owner_pid(&group_name("")), Some(me));
        assert_eq!(owner_pid(&group_name("exec_open")), Some(me));
        assert_eq!(owner_pid(&instance_name("run")), Some(me));
        assert_eq!(owner_pid("wasmprobe_12_x"), Some(12));
        assert_eq!(owner_pid("my_kprobes"), None);
        assert_eq!(owner_pid("wasmprobe_abc"), None);
        assert_eq!(owner_pid("wasmprobe-"), None);
    }
}
