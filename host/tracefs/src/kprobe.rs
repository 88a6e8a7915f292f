//! kprobes and kretprobes: the libtracefs kprobe API (`tracefs_kprobe_alloc`,
//! `tracefs_kretprobe_alloc`, `tracefs_kprobe_raw`, `tracefs_kretprobe_raw`,
//! `tracefs_kprobe_destroy`), one function each, with the man page's defaults and errors.
//!
//! `None` plays the part of C's `NULL`: no system means `kprobes`; no event means a name
//! derived from the address; no address is `EBADMSG`.

use crate::dir::Tracefs;
use crate::dynevent::{DynEvent, DynEventType};
use crate::error::{Errno, Error, Result};

/// The system (group) of a kprobe created without one.
pub const KPROBE_DEFAULT_SYSTEM: &str = "kprobes";

/// The kernel's limit on event and group names (`MAX_EVENT_NAME_LEN` is 64, NUL included).
pub const MAX_EVENT_NAME_LEN: usize = 63;

/// Whether this kernel can create kprobes (`kprobe_events` exists; one `stat`).
pub fn kprobes_supported(tracefs: &Tracefs) -> bool {
    tracefs.has("kprobe_events")
}

/// The event name used when none is given: the symbol of `addr` made into a name the kernel
/// accepts. libtracefs keeps the address text up to the first `:` (so `vfs_read+0x10` is
/// refused by the kernel and `ext4:ext4_sync_fs` is named `ext4`); we drop a `MODULE:` prefix,
/// turn every character outside `[A-Za-z0-9_]` into `_`, prefix a leading digit with `p_`/`r_`
/// (as the kernel names raw addresses) and cut at 63 bytes.
pub fn event_name_from_addr(addr: &str, kind: DynEventType) -> String {
    let sym = addr.rsplit_once(':').map_or(addr, |(_, s)| s);
    let mut name: String = sym.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        let p = if kind == DynEventType::Kretprobe { "r_" } else { "p_" };
        name.insert_str(0, p);
    }
    name.truncate(MAX_EVENT_NAME_LEN);
    name
}

fn alloc(
    kind: DynEventType,
    system: Option<&str>,
    event: Option<&str>,
    addr: Option<&str>,
    format: Option<&str>,
) -> Result<DynEvent> {
    let Some(addr) = addr.filter(|a| !a.is_empty()) else {
        let name = event.unwrap_or("(unnamed)");
        return Err(Error::new(Errno::EBADMSG, format!("{} {name} has no address to probe", kind.name())));
    };
    let event = match event {
        Some(e) => e.to_string(),
        None => event_name_from_addr(addr, kind),
    };
    Ok(DynEvent::new(kind, system.unwrap_or(KPROBE_DEFAULT_SYSTEM), &event, addr, format.unwrap_or("")))
}

/// `tracefs_kprobe_alloc`: a kprobe descriptor (nothing is written; see [`DynEvent::create`]).
/// `EBADMSG` when `addr` is missing.
pub fn kprobe_alloc(
    system: Option<&str>,
    event: Option<&str>,
    addr: Option<&str>,
    format: Option<&str>,
) -> Result<DynEvent> {
    alloc(DynEventType::Kprobe, system, event, addr, format)
}

/// `tracefs_kretprobe_alloc`: a kretprobe descriptor; `max` is maxactive (0 = kernel default),
/// written `r<max>:` (libtracefs writes `r<max>::`, which the kernel refuses).
pub fn kretprobe_alloc(
    system: Option<&str>,
    event: Option<&str>,
    addr: Option<&str>,
    format: Option<&str>,
    max: u32,
) -> Result<DynEvent> {
    let mut ev = alloc(DynEventType::Kretprobe, system, event, addr, format)?;
    ev.maxactive = (max > 0).then_some(max);
    Ok(ev)
}

/// `tracefs_kprobe_raw`: creates a kprobe at once (one write to `kprobe_events`).
pub fn kprobe_raw(
    tracefs: &Tracefs,
    system: Option<&str>,
    event: Option<&str>,
    addr: Option<&str>,
    format: Option<&str>,
) -> Result<()> {
    kprobe_alloc(system, event, addr, format)?.create(tracefs)
}

/// `tracefs_kretprobe_raw`: creates a kretprobe at once (kernel-default maxactive).
pub fn kretprobe_raw(
    tracefs: &Tracefs,
    system: Option<&str>,
    event: Option<&str>,
    addr: Option<&str>,
    format: Option<&str>,
) -> Result<()> {
    kretprobe_alloc(system, event, addr, format, 0)?.create(tracefs)
}

/// `tracefs_kprobe_destroy`: removes the kprobe or kretprobe that `kprobe_raw` with the same
/// arguments made. The kernel matches by name: `addr` only derives the name when `event` is
/// `None`, `format` is ignored. With `force`, the event is first disabled in every instance.
pub fn kprobe_destroy(
    tracefs: &Tracefs,
    system: Option<&str>,
    event: Option<&str>,
    addr: Option<&str>,
    format: Option<&str>,
    force: bool,
) -> Result<()> {
    kprobe_alloc(system, event, addr, format)?.destroy(tracefs, force)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn fake() -> (tempfile::TempDir, Tracefs) {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("kprobe_events"), "").unwrap();
        let tfs = Tracefs::at(t.path());
        (t, tfs)
    }

    fn written(t: &tempfile::TempDir) -> String {
        fs::read_to_string(t.path().join("kprobe_events")).unwrap()
    }

    // The bytes libtracefs 1.6.4 wrote for the same calls (shared/qemu-kprobe/ltfs_oracle-6.12.strace).
    #[test]
    fn writes_the_lines_libtracefs_writes() {
        let (t, tfs) = fake();
        let fmt = "file=+0($arg2):ustring flags=+0($arg3):x64 mode=+8($arg3):x64";
        kprobe_raw(&tfs, Some("my_kprobes"), Some("open"), Some("do_sys_openat2"), Some(fmt)).unwrap();
        kretprobe_raw(&tfs, Some("my_kprobes"), Some("openret"), Some("do_sys_openat2"), Some("ret=%ax")).unwrap();
        kprobe_raw(&tfs, None, Some("nosys"), Some("do_sys_openat2"), None).unwrap();
        kprobe_raw(&tfs, Some("my_kprobes"), None, Some("vfs_read"), None).unwrap();
        kprobe_raw(&tfs, None, None, Some("vfs_write"), None).unwrap();
        assert_eq!(
            written(&t),
            "p:my_kprobes/open do_sys_openat2 file=+0($arg2):ustring flags=+0($arg3):x64 mode=+8($arg3):x64\n\
             r:my_kprobes/openret do_sys_openat2 ret=%ax\n\
             p:kprobes/nosys do_sys_openat2 \n\
             p:my_kprobes/vfs_read vfs_read \n\
             p:kprobes/vfs_write vfs_write \n"
        );
    }

    #[test]
    fn kretprobe_maxactive_is_rendered_as_the_kernel_wants() {
        let (t, tfs) = fake();
        kretprobe_alloc(Some("my_kprobes"), Some("rmax5"), Some("do_sys_openat2"), Some("ret=$retval"), 5)
            .unwrap()
            .create(&tfs)
            .unwrap();
        kretprobe_alloc(Some("my_kprobes"), Some("rmax0"), Some("do_sys_openat2"), None, 0)
            .unwrap()
            .create(&tfs)
            .unwrap();
        assert_eq!(written(&t), "r5:my_kprobes/rmax5 do_sys_openat2 ret=$retval\nr:my_kprobes/rmax0 do_sys_openat2 \n");
    }

    #[test]
    fn destroy_writes_delete_by_name() {
        let (t, tfs) = fake();
        kprobe_destroy(&tfs, Some("my_kprobes"), Some("open"), Some("do_sys_openat2"), Some("ignored"), false).unwrap();
        kprobe_destroy(&tfs, None, None, Some("vfs_read+0x10"), None, true).unwrap();
        assert_eq!(written(&t), "-:my_kprobes/open-:kprobes/vfs_read_0x10");
    }

    #[test]
    fn names_derived_from_addresses_are_valid() {
        let k = DynEventType::Kprobe;
        assert_eq!(event_name_from_addr("do_sys_open", k), "do_sys_open");
        assert_eq!(event_name_from_addr("vfs_read+0x10", k), "vfs_read_0x10");
        assert_eq!(event_name_from_addr("ext4:ext4_sync_fs", k), "ext4_sync_fs");
        assert_eq!(event_name_from_addr("0xffffffff81000000", k), "p_0xffffffff81000000");
        assert_eq!(event_name_from_addr("0xffffffff81000000", DynEventType::Kretprobe), "r_0xffffffff81000000");
        assert_eq!(event_name_from_addr("vfs_read.cold", k), "vfs_read_cold");
        assert_eq!(event_name_from_addr(&"x".repeat(100), k).len(), MAX_EVENT_NAME_LEN);
        let ev = kprobe_alloc(None, None, Some("vfs_read+0x10"), None).unwrap();
        assert_eq!(ev.create_line(), "p:kprobes/vfs_read_0x10 vfs_read+0x10 \n");
    }

    #[test]
    fn documented_errors() {
        let (_t, tfs) = fake();
        for r in [
            kprobe_alloc(Some("test"), None, None, Some("test")).map(drop),
            kretprobe_alloc(Some("test"), Some("x"), None, None, 0).map(drop),
            kprobe_raw(&tfs, Some("test"), Some("test"), None, Some("test")),
            kretprobe_raw(&tfs, Some("test"), Some("test"), None, None),
            kprobe_destroy(&tfs, None, Some("x"), None, None, false),
        ] {
            assert_eq!(r.unwrap_err().errno(), Errno::EBADMSG);
        }
        let empty = tempfile::tempdir().unwrap();
        let e = kprobe_raw(&Tracefs::at(empty.path()), None, Some("open"), Some("do_sys_openat2"), None).unwrap_err();
        assert_eq!(e.errno(), Errno::ENODEV);
        let msg = e.to_string();
        assert!(msg.contains("kprobes/open") && msg.contains("kprobe_events"), "{msg}");
    }
}
