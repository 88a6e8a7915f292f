//! Event probes (`tracefs_eprobe_alloc`): a probe on another event's fields, `e:` in
//! `dynamic_events`. Kernels without eprobes (this machine's 6.18 build) reject the line with
//! `EINVAL`.

use crate::dynevent::{DynEvent, DynEventType};
use crate::error::{Errno, Error, Result};

/// The system (group) of an eprobe created without one.
pub const EPROBE_DEFAULT_SYSTEM: &str = "eprobes";

/// `tracefs_eprobe_alloc`: an eprobe on `target_system.target_event` (nothing is written).
/// `EINVAL` when a name is missing.
pub fn eprobe_alloc(
    system: Option<&str>,
    event: &str,
    target_system: &str,
    target_event: &str,
    fetchargs: Option<&str>,
) -> Result<DynEvent> {
    if event.is_empty() || target_system.is_empty() || target_event.is_empty() {
        return Err(Error::new(Errno::EINVAL, "an eprobe needs an event name and a target system and event"));
    }
    Ok(DynEvent::new(
        DynEventType::Eprobe,
        system.unwrap_or(EPROBE_DEFAULT_SYSTEM),
        event,
        &format!("{target_system}.{target_event}"),
        fetchargs.unwrap_or(""),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_libtracefs() {
        let e =
            eprobe_alloc(None, "sopen_in", "syscalls", "sys_enter_openat", Some("file=+0($filename):ustring")).unwrap();
        assert_eq!(e.create_line(), "e:eprobes/sopen_in syscalls.sys_enter_openat file=+0($filename):ustring\n");
        assert_eq!(e.control_file(), "dynamic_events");
        assert_eq!(eprobe_alloc(None, "x", "", "y", None).unwrap_err().errno(), Errno::EINVAL);
    }
}
