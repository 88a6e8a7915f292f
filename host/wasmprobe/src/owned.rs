//! Names of the kernel objects wasmprobe makes, so that what a killed run left behind can be
//! found and removed without touching anybody else's probes or instances.
//!
//! Every probe group is `wasmprobe_<pid>[_<tag>]` and every instance `wasmprobe-<pid>[-<tag>]`,
//! where `<pid>` is the process that made it. `cleanup` removes the ones whose process is gone.

use tracefs::{dynevent_get_all, instances, DynEvent, DynEventType, Errno, Instance, Tracefs};

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

/// Options every new instance inherits from the top instance (the kernel copies the top
/// instance's flags into each instance it makes), set back to what our readers expect. A
/// user's `echo 1 > options/stacktrace`, or a `trace-cmd record -T` running meanwhile, would
/// otherwise put a kernel stack after every event of ours; `raw`, `hex`, `bin` and
/// `context-info` change the text of `trace_pipe`, which the process-name instance parses.
const INSTANCE_OPTIONS: &[(&str, &str)] =
    &[("stacktrace", "0"), ("userstacktrace", "0"), ("raw", "0"), ("hex", "0"), ("bin", "0"), ("context-info", "1")];

/// Creates our instance `wasmprobe-<pid>-<tag>` with the options of [`INSTANCE_OPTIONS`]
/// (an option this kernel lacks is skipped). The instance is removed again on failure.
pub fn create_instance(tracefs: &Tracefs, tag: &str) -> anyhow::Result<Instance> {
    use anyhow::Context;
    let name = instance_name(tag);
    let instance = Instance::create(tracefs, &name)?;
    for (option, value) in INSTANCE_OPTIONS {
        let path = format!("options/{option}");
        if instance.file(&path).exists() {
            instance.write_file(&path, value).with_context(|| format!("instance {name}: setting {path} to {value}"))?;
        }
    }
    Ok(instance)
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
            // Removed meanwhile by someone else (another run sweeping): not ours to report.
            Err(e) if e.errno() == Errno::ENOENT => {}
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
            Err(e) if e.errno() == Errno::ENOENT => {}
            Err(e) => out.failures.push(e.to_string()),
        }
    }
    Ok(out)
}

/// Opens the tracing directory for a run (`run`, `record`, `stream`), after removing what runs
/// of ours that died without cleaning up (`kill -9`) left in it, as `wasmprobe cleanup` does:
/// only instances and probe groups whose owner process is gone. Quiet when there is nothing;
/// otherwise one stderr line per object removed (and per object that could not be). Skipped
/// when this process cannot see every owner: outside the initial pid namespace (a run in
/// another namespace would look dead) or without `/proc`.
pub fn open_for_run() -> tracefs::Result<Tracefs> {
    let tracefs = Tracefs::open()?;
    if sees_every_process() {
        if let Ok(done) = cleanup(&tracefs, false) {
            for line in sweep_report(&done) {
                eprintln!("{line}");
            }
        }
    }
    Ok(tracefs)
}

/// The lines [`open_for_run`] prints for what it removed.
pub fn sweep_report(done: &Cleaned) -> Vec<String> {
    let by = |name: &str| owner_pid(name).map_or(String::new(), |pid| format!(" left by exited process {pid}"));
    let mut lines: Vec<String> =
        done.instances.iter().map(|i| format!("wasmprobe: removed instance {i}{}", by(i))).collect();
    for p in &done.probes {
        // `KIND GROUP/EVENT`
        let group = p.split_once(' ').and_then(|(_, name)| name.split('/').next()).unwrap_or("");
        lines.push(format!("wasmprobe: removed {p}{}", by(group)));
    }
    lines.extend(done.failures.iter().map(|f| format!("wasmprobe: warning: leftover of an exited run: {f}")));
    lines
}

/// The inode number of the initial pid namespace (the kernel's PROC_PID_INIT_INO).
const INITIAL_PID_NS: &str = "pid:[4026531836]";

/// Whether `/proc` shows every process that could own our objects: we are in the initial pid
/// namespace and `/proc` is mounted.
fn sees_every_process() -> bool {
    std::fs::read_link("/proc/self/ns/pid").is_ok_and(|l| l.as_os_str() == INITIAL_PID_NS)
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

    #[test]
    fn the_sweep_says_what_it_removed_and_whose_it_was() {
        let done = Cleaned {
            instances: vec!["wasmprobe-1234-syscount".into()],
            probes: vec!["uprobe wasmprobe_1234_exec_open/open".into()],
            failures: vec!["remove instance wasmprobe-99: busy".into()],
        };
        assert_eq!(
            sweep_report(&done),
            [
                "wasmprobe: removed instance wasmprobe-1234-syscount left by exited process 1234",
                "wasmprobe: removed uprobe wasmprobe_1234_exec_open/open left by exited process 1234",
                "wasmprobe: warning: leftover of an exited run: remove instance wasmprobe-99: busy",
            ]
        );
        assert!(sweep_report(&Cleaned::default()).is_empty());
    }
}
