//! Events: enabling and disabling a system or an event in an instance, listing systems and
//! events, reading an event's `format`, and the pid → comm table in `saved_cmdlines`.
//!
//! Unlike libtracefs, system and event are exact names, not anchored regexes: `wasmprobe_1`
//! must never also disable `wasmprobe_10`.

use std::collections::HashMap;
use std::fs;

use crate::dir::{self, Tracefs};
use crate::error::{Errno, Error, Result};
use crate::instance::Instance;

/// Whether an event (or every event of a system) is enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnableState {
    /// Every event is enabled (`1`).
    All,
    /// No event is enabled (`0`).
    None,
    /// Some are (`X` in a system's `enable`).
    Some,
}

fn check_component(what: &str, s: &str) -> Result<()> {
    if s.is_empty() || s.contains(['/', '\n', '\0']) || s == "." || s == ".." {
        return Err(Error::new(Errno::EINVAL, format!("{s:?} is not a valid {what} name")));
    }
    Ok(())
}

fn enable_path(system: Option<&str>, event: Option<&str>) -> Result<String> {
    Ok(match (system, event) {
        (None, None) => "events/enable".into(),
        (Some(s), None) => {
            check_component("system", s)?;
            format!("events/{s}/enable")
        }
        (Some(s), Some(e)) => {
            check_component("system", s)?;
            check_component("event", e)?;
            format!("events/{s}/{e}/enable")
        }
        (None, Some(e)) => return Err(Error::new(Errno::EINVAL, format!("event {e} needs its system"))),
    })
}

fn label(system: Option<&str>, event: Option<&str>) -> String {
    match (system, event) {
        (None, _) => "all events".into(),
        (Some(s), None) => format!("system {s}"),
        (Some(s), Some(e)) => format!("event {s}/{e}"),
    }
}

impl Instance {
    fn set_enable(&self, system: Option<&str>, event: Option<&str>, on: bool) -> Result<()> {
        let rel = enable_path(system, event)?;
        let path = self.file(&rel);
        let inst = self.name().map_or("the top instance".to_string(), |n| format!("instance {n}"));
        if !path.exists() {
            return Err(Error::new(Errno::ENOENT, format!("no {} in {inst}", label(system, event))).with_path(&path));
        }
        let verb = if on { "enable" } else { "disable" };
        dir::write(
            &path,
            if on { "1" } else { "0" },
            true,
            &format!("cannot {verb} {} in {inst}", label(system, event)),
        )
    }

    /// Enables every event (`None, None`), a system (`Some(sys), None`) or one event in this
    /// instance (one write). `ENOENT` when there is no such system or event.
    pub fn event_enable(&self, system: Option<&str>, event: Option<&str>) -> Result<()> {
        self.set_enable(system, event, true)
    }

    /// Disables every event, a system, or one event in this instance (one write).
    pub fn event_disable(&self, system: Option<&str>, event: Option<&str>) -> Result<()> {
        self.set_enable(system, event, false)
    }

    /// Whether the events named are enabled in this instance (one read).
    pub fn event_is_enabled(&self, system: Option<&str>, event: Option<&str>) -> Result<EnableState> {
        let rel = enable_path(system, event)?;
        let text = self.read_file(&rel)?;
        Ok(match text.trim() {
            "1" => EnableState::All,
            "0" => EnableState::None,
            _ => EnableState::Some,
        })
    }

    /// The events enabled in this instance, as `system:event` lines of `set_event`.
    pub fn enabled_events(&self) -> Result<Vec<String>> {
        Ok(self.read_file("set_event")?.lines().filter(|l| !l.is_empty()).map(str::to_string).collect())
    }

    /// `tracefs_event_filter_apply`: sets the filter of `system`/`event` in this instance
    /// (`0` clears it). A filter the kernel rejects is an `EINVAL` error carrying the kernel's
    /// reason: the `parse_error:` line it leaves in the event's `filter` file, and the entry
    /// it adds to `error_log` (whatever errno the write returned: the kernel answers some bad
    /// filters with `EPERM`, which would read as a missing privilege).
    pub fn event_filter_apply(&self, system: &str, event: &str, filter: &str) -> Result<()> {
        check_component("system", system)?;
        check_component("event", event)?;
        let name = format!("events/{system}/{event}/filter");
        let before = self.error_last().ok().flatten();
        let Err(e) = self.write_file(&name, filter) else { return Ok(()) };
        if e.errno() != Errno::EINVAL && e.errno() != Errno::EPERM {
            return Err(e);
        }
        let after = self.error_last().ok().flatten().filter(|a| Some(a) != before.as_ref());
        let shown = self.read_file(&name).unwrap_or_default();
        let reason = shown
            .lines()
            .find_map(|l| l.trim().strip_prefix("parse_error:").map(|r| r.trim().to_string()))
            .or_else(|| after.as_ref().map(|a| a.message.clone()).filter(|m| m != "Error"))
            .unwrap_or_else(|| "not a valid filter".to_string());
        // The reason once: in the message, or in the error_log entry that follows it.
        let what = match &after {
            Some(a) if a.message == reason => format!("event filter {filter:?} for {system}:{event}"),
            _ => format!("event filter {filter:?} for {system}:{event}: {reason}"),
        };
        Err(Error::new(Errno::EINVAL, what).with_path(self.file(&name)).with_kernel(after))
    }
}

fn list_dirs(path: &std::path::Path, what: &str, need_file: &str) -> Result<Vec<String>> {
    let rd = fs::read_dir(path).map_err(|e| Error::io(format!("cannot list {what}"), path, &e))?;
    let mut v: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join(need_file).exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    v.sort();
    Ok(v)
}

/// The event systems of the tracing directory (directories of `events/` with an `enable` file).
pub fn event_systems(tracefs: &Tracefs) -> Result<Vec<String>> {
    list_dirs(&tracefs.file("events"), "event systems", "enable")
}

/// The events of `system` (directories of `events/<system>/` with a `format` file).
pub fn system_events(tracefs: &Tracefs, system: &str) -> Result<Vec<String>> {
    check_component("system", system)?;
    list_dirs(&tracefs.file(&format!("events/{system}")), &format!("events of {system}"), "format")
}

/// The text of `events/<system>/<event>/format` (one read). `ENOENT` if there is no such event.
pub fn event_format(tracefs: &Tracefs, system: &str, event: &str) -> Result<String> {
    check_component("system", system)?;
    check_component("event", event)?;
    let path = tracefs.file(&format!("events/{system}/{event}/format"));
    dir::read_text(&path).map_err(|e| {
        let err = Error::io(format!("cannot read the format of {system}/{event}"), &path, &e);
        if dir::is_not_found(&e) {
            Error::new(Errno::ENOENT, format!("no event {system}/{event}")).with_path(&path)
        } else {
            err
        }
    })
}

/// The kernel's pid → comm table (`saved_cmdlines`; one read).
pub fn saved_cmdlines(tracefs: &Tracefs) -> Result<HashMap<i32, String>> {
    Ok(parse_cmdlines(&dir::read(&tracefs.file("saved_cmdlines"), "cannot read saved_cmdlines")?))
}

/// Parses `saved_cmdlines` text (`<pid> <comm>` per line; a comm may contain spaces).
pub fn parse_cmdlines(text: &str) -> HashMap<i32, String> {
    text.lines()
        .filter_map(|l| {
            let (pid, comm) = l.split_once(' ')?;
            Some((pid.trim().parse().ok()?, comm.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enable_paths_and_exact_names() {
        let t = tempfile::tempdir().unwrap();
        let ev = t.path().join("events/sched/sched_switch");
        fs::create_dir_all(&ev).unwrap();
        fs::write(ev.join("enable"), "0").unwrap();
        fs::write(t.path().join("events/sched/enable"), "0").unwrap();
        fs::write(t.path().join("events/enable"), "0").unwrap();
        fs::write(ev.join("format"), "name: sched_switch\n").unwrap();
        let tfs = Tracefs::at(t.path());
        let top = Instance::top(&tfs);
        top.event_enable(Some("sched"), Some("sched_switch")).unwrap();
        assert_eq!(fs::read_to_string(ev.join("enable")).unwrap(), "1");
        assert_eq!(top.event_is_enabled(Some("sched"), Some("sched_switch")).unwrap(), EnableState::All);
        top.event_disable(Some("sched"), None).unwrap();
        assert_eq!(fs::read_to_string(t.path().join("events/sched/enable")).unwrap(), "0");
        let e = top.event_enable(Some("sched"), Some("sched_swi")).unwrap_err();
        assert_eq!(e.errno(), Errno::ENOENT);
        assert!(e.to_string().contains("sched/sched_swi"), "{e}");
        assert_eq!(top.event_enable(Some("../x"), None).unwrap_err().errno(), Errno::EINVAL);
        assert_eq!(top.event_enable(None, Some("x")).unwrap_err().errno(), Errno::EINVAL);
        assert_eq!(event_systems(&tfs).unwrap(), vec!["sched"]);
        assert_eq!(system_events(&tfs, "sched").unwrap(), vec!["sched_switch"]);
        assert_eq!(event_format(&tfs, "sched", "sched_switch").unwrap(), "name: sched_switch\n");
        assert_eq!(event_format(&tfs, "sched", "nope").unwrap_err().errno(), Errno::ENOENT);
    }

    #[test]
    fn cmdlines() {
        let m = parse_cmdlines("1 systemd\n4242 my prog\nbad line\n");
        assert_eq!(m[&1], "systemd");
        assert_eq!(m[&4242], "my prog");
        assert_eq!(m.len(), 2);
    }
}
