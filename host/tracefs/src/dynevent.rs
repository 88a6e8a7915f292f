//! Dynamic events: the probes a user adds at run time. Each kind lives in its own control file
//! and is written as one command line, appended, never truncating (truncating `kprobe_events`
//! deletes every kprobe):
//!
//! | kind | file | create line | delete line |
//! |---|---|---|---|
//! | kprobe / kretprobe | `kprobe_events` | `p:SYS/EV ADDR ARGS`, `r[N]:SYS/EV ADDR ARGS` | `-:SYS/EV` |
//! | uprobe / uretprobe | `uprobe_events` | `p:SYS/EV PATH:0xOFFSET ARGS`, `r:…` | `-:SYS/EV` |
//! | eprobe | `dynamic_events` | `e:SYS/EV TSYS.TEVENT ARGS` | `-:SYS/EV` |
//!
//! kprobes and uprobes share the `p`/`r` prefixes, so they are listed from their own files, not
//! from `dynamic_events`, where they cannot be told apart by prefix alone.

use serde::Serialize;

use crate::dir::{self, Tracefs};
use crate::error::{Errno, Error, Result};
use crate::instance::{instances, Instance};

/// The kind of a dynamic event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DynEventType {
    /// Kernel function entry (or offset) probe, `p:` in `kprobe_events`.
    Kprobe,
    /// Kernel function return probe, `r[maxactive]:` in `kprobe_events`.
    Kretprobe,
    /// User-space probe, `p:` in `uprobe_events`.
    Uprobe,
    /// User-space return probe, `r:` in `uprobe_events`.
    Uretprobe,
    /// Event probe on another event, `e:` in `dynamic_events`.
    Eprobe,
    /// Synthetic event, `s:` in `dynamic_events` (listed, not created here).
    Synth,
    /// Anything else `dynamic_events` lists (`f:` fprobes, `t:` tracepoint probes, ...).
    Other,
}

impl DynEventType {
    /// Every kind, for listing everything.
    pub const ALL: [DynEventType; 7] = [
        DynEventType::Kprobe,
        DynEventType::Kretprobe,
        DynEventType::Uprobe,
        DynEventType::Uretprobe,
        DynEventType::Eprobe,
        DynEventType::Synth,
        DynEventType::Other,
    ];

    /// The control file that creates and lists this kind.
    pub fn control_file(self) -> &'static str {
        match self {
            DynEventType::Kprobe | DynEventType::Kretprobe => "kprobe_events",
            DynEventType::Uprobe | DynEventType::Uretprobe => "uprobe_events",
            _ => "dynamic_events",
        }
    }

    /// A human name (`kprobe`, `kretprobe`, ...), used in messages.
    pub fn name(self) -> &'static str {
        match self {
            DynEventType::Kprobe => "kprobe",
            DynEventType::Kretprobe => "kretprobe",
            DynEventType::Uprobe => "uprobe",
            DynEventType::Uretprobe => "uretprobe",
            DynEventType::Eprobe => "eprobe",
            DynEventType::Synth => "synthetic event",
            DynEventType::Other => "dynamic event",
        }
    }
}

/// A dynamic event descriptor (`struct tracefs_dynevent`): what to write, or what was listed.
/// Creating one touches nothing; [`DynEvent::create`] writes it to the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DynEvent {
    /// The kind of probe.
    pub kind: DynEventType,
    /// Event system (group), e.g. `kprobes`.
    pub system: String,
    /// Event name.
    pub event: String,
    /// Where it attaches: `SYM[+OFF]`, `0xADDR`, `PATH:0xOFFSET`, `SYS.EVENT`; empty for synth.
    pub address: String,
    /// Fetch arguments (`FETCHARGS` of kprobetrace.rst), verbatim; may be empty.
    pub format: String,
    /// kretprobe maxactive (`r<N>:`); `None` lets the kernel choose.
    pub maxactive: Option<u32>,
    /// Further locations of a multi-probe event, as listed (the kernel appends a location when
    /// a probe with the same name and arguments is added elsewhere).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also_at: Vec<String>,
    #[serde(skip)]
    other_prefix: Option<char>,
}

impl DynEvent {
    /// A descriptor of the given kind (no syscalls). Fields are used verbatim; `create` checks them.
    pub fn new(kind: DynEventType, system: &str, event: &str, address: &str, format: &str) -> DynEvent {
        DynEvent {
            kind,
            system: system.to_string(),
            event: event.to_string(),
            address: address.to_string(),
            format: format.to_string(),
            maxactive: None,
            also_at: Vec::new(),
            other_prefix: None,
        }
    }

    /// The command prefix: `p`, `r`, `r10`, `e`, `s`.
    pub fn prefix(&self) -> String {
        match self.kind {
            DynEventType::Kprobe | DynEventType::Uprobe => "p".into(),
            DynEventType::Kretprobe | DynEventType::Uretprobe => match self.maxactive {
                Some(n) => format!("r{n}"),
                None => "r".into(),
            },
            DynEventType::Eprobe => "e".into(),
            DynEventType::Synth => "s".into(),
            DynEventType::Other => self.other_prefix.unwrap_or('?').to_string(),
        }
    }

    /// `SYSTEM/EVENT`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.system, self.event)
    }

    /// The exact line [`create`](Self::create) writes, byte for byte what libtracefs writes
    /// (`PREFIX:SYSTEM/EVENT ADDRESS FORMAT\n`, with its trailing space when there is no format),
    /// except that a kretprobe maxactive is rendered `r10:` as the kernel wants, not `r10::`.
    pub fn create_line(&self) -> String {
        format!("{}:{}/{} {} {}\n", self.prefix(), self.system, self.event, self.address, self.format)
    }

    /// The event as the kernel lists it: one line per location, without newlines.
    pub fn listing_lines(&self) -> Vec<String> {
        std::iter::once(&self.address)
            .chain(&self.also_at)
            .map(|a| {
                let line = format!("{}:{}/{} {} {}", self.prefix(), self.system, self.event, a, self.format);
                line.trim_end().to_string()
            })
            .collect()
    }

    /// The line that deletes this event (`-:SYSTEM/EVENT`); the kernel matches by name only.
    pub fn delete_line(&self) -> String {
        format!("-:{}/{}", self.system, self.event)
    }

    /// The control file this event is written to.
    pub fn control_file(&self) -> &'static str {
        self.kind.control_file()
    }

    fn describe(&self) -> String {
        match self.address.as_str() {
            "" => format!("{} {}", self.kind.name(), self.full_name()),
            a => format!("{} {} at {a}", self.kind.name(), self.full_name()),
        }
    }

    /// Refuses what would let one command smuggle in another: newlines or NULs anywhere, and an
    /// empty or `/`-containing system or event name. The kernel checks everything else itself
    /// and explains in `error_log`.
    fn check(&self) -> Result<()> {
        let bad = |s: &str| s.contains(['\n', '\r', '\0']);
        if [&self.system, &self.event, &self.address, &self.format].iter().any(|s| bad(s)) {
            return Err(Error::new(
                Errno::EINVAL,
                format!("{}: a newline or NUL in a probe definition is not allowed", self.describe().escape_debug()),
            ));
        }
        for (what, s) in [("system", &self.system), ("event", &self.event)] {
            if s.is_empty() || s.contains(['/', ' ', '\t']) {
                return Err(Error::new(Errno::EINVAL, format!("{}: invalid {what} name {s:?}", self.describe())));
            }
        }
        Ok(())
    }

    fn missing_file_error(&self, tracefs: &Tracefs) -> Error {
        let what = match self.kind {
            DynEventType::Kprobe | DynEventType::Kretprobe => "kprobe events (CONFIG_KPROBE_EVENTS)",
            DynEventType::Uprobe | DynEventType::Uretprobe => "uprobe events (CONFIG_UPROBE_EVENTS)",
            _ => "dynamic events (CONFIG_DYNAMIC_EVENTS)",
        };
        Error::new(Errno::ENODEV, format!("cannot create {}: this kernel has no {what}", self.describe()))
            .with_path(tracefs.file(self.control_file()))
    }

    /// `tracefs_dynevent_create`: writes the create line to the kernel (one append write).
    /// Errors: `ENODEV` without the control file, `EPERM` without privilege, the kernel's errno
    /// otherwise with its `error_log` entry attached.
    pub fn create(&self, tracefs: &Tracefs) -> Result<()> {
        self.check()?;
        if matches!(self.kind, DynEventType::Synth | DynEventType::Other) {
            return Err(Error::new(Errno::ENOTSUP, format!("creating a {} is not supported", self.kind.name())));
        }
        let path = tracefs.file(self.control_file());
        if !path.exists() {
            return Err(self.missing_file_error(tracefs));
        }
        let line = self.create_line();
        dir::write(&path, &line, false, &format!("cannot create {}", self.describe())).map_err(|e| {
            let log = Instance::top(tracefs).error_for(&line);
            e.with_kernel(log)
        })
    }

    /// `tracefs_dynevent_destroy`: deletes the event by name. With `force`, first disables it in
    /// the top instance and in every instance (deleting an enabled event is `EBUSY`).
    pub fn destroy(&self, tracefs: &Tracefs, force: bool) -> Result<()> {
        self.check()?;
        let path = tracefs.file(self.control_file());
        if !path.exists() {
            return Err(self.missing_file_error(tracefs));
        }
        if force {
            disable_everywhere(tracefs, &self.system, &self.event);
        }
        let line = self.delete_line();
        dir::write(&path, &line, false, &format!("cannot remove {}", self.describe()))
            .map_err(|e| e.with_kernel(Instance::top(tracefs).error_for(&line)))
    }
}

/// A dynamic event this process created and owns: removed from the kernel (disabled in every
/// instance first) when dropped, so it cannot outlive its owner by accident, as aya's links
/// detach on drop. The man page's C-shaped functions ([`DynEvent::create`],
/// [`DynEvent::destroy`]) stay for callers that manage lifetimes themselves.
#[derive(Debug)]
pub struct OwnedDynEvent {
    tracefs: Tracefs,
    event: DynEvent,
    armed: bool,
}

impl OwnedDynEvent {
    /// Creates `event` in the kernel (see [`DynEvent::create`]) and owns it.
    pub fn create(tracefs: &Tracefs, event: DynEvent) -> Result<OwnedDynEvent> {
        event.create(tracefs)?;
        Ok(OwnedDynEvent { tracefs: tracefs.clone(), event, armed: true })
    }

    /// The event.
    pub fn event(&self) -> &DynEvent {
        &self.event
    }

    /// Removes the event now, reporting a failure (dropping reports it on stderr instead). An
    /// event someone else already removed (`ENOENT`) is not an error.
    pub fn remove(mut self) -> Result<()> {
        self.armed = false;
        remove_owned(&self.tracefs, &self.event)
    }
}

fn remove_owned(tracefs: &Tracefs, event: &DynEvent) -> Result<()> {
    match event.destroy(tracefs, true) {
        Err(e) if e.errno() == Errno::ENOENT => Ok(()),
        r => r,
    }
}

impl Drop for OwnedDynEvent {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = remove_owned(&self.tracefs, &self.event) {
                // Nowhere to return it: leaving kernel state behind must at least be visible.
                eprintln!("tracefs: warning: {e}");
            }
        }
    }
}

/// Writes 0 to `events/SYS/EV/enable` in the top instance and every instance, ignoring
/// failures (an instance may not have the event, or may be going away).
fn disable_everywhere(tracefs: &Tracefs, system: &str, event: &str) {
    let rel = format!("events/{system}/{event}/enable");
    let mut dirs = vec![tracefs.path().to_path_buf()];
    dirs.extend(instances(tracefs).unwrap_or_default().iter().map(|n| tracefs.path().join("instances").join(n)));
    for d in dirs {
        let f = d.join(&rel);
        if f.exists() {
            let _ = dir::write(&f, "0", true, "disable");
        }
    }
}

/// Which file a listing came from: it decides whether `p:`/`r:` lines are kprobes or uprobes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// `kprobe_events`.
    Kprobes,
    /// `uprobe_events`.
    Uprobes,
    /// `dynamic_events` (a `p:`/`r:` line is a uprobe when its address is a path).
    Dynamic,
}

/// Parses a probe listing (`kprobe_events`, `uprobe_events`, `dynamic_events`) into events.
/// Lines of one multi-location event are merged into one entry (see [`DynEvent::also_at`]);
/// lines that are not probe definitions are skipped.
pub fn parse_listing(text: &str, from: Listing) -> Vec<DynEvent> {
    let mut out: Vec<DynEvent> = Vec::new();
    for line in text.lines() {
        let Some(ev) = parse_line(line, from) else { continue };
        if let Some(prev) = out.iter_mut().find(|p| p.kind == ev.kind && p.system == ev.system && p.event == ev.event) {
            prev.also_at.push(ev.address);
        } else {
            out.push(ev);
        }
    }
    out
}

fn parse_line(line: &str, from: Listing) -> Option<DynEvent> {
    let line = line.trim_end();
    let (head, rest) = line.split_once(' ').unwrap_or((line, ""));
    let (prefix, name) = head.split_once(':')?;
    let (system, event) = name.split_once('/').or_else(|| name.split_once('.'))?;
    let mut chars = prefix.chars();
    let letter = chars.next()?;
    let digits = chars.as_str();
    let rest = rest.trim_start();
    let (address, format) = match letter {
        's' => ("", rest),
        _ => rest.split_once(' ').map(|(a, f)| (a, f.trim_start())).unwrap_or((rest, "")),
    };
    let user = match from {
        Listing::Kprobes => false,
        Listing::Uprobes => true,
        Listing::Dynamic => address.contains('/'),
    };
    let (kind, maxactive) = match (letter, user) {
        ('p', false) if digits.is_empty() => (DynEventType::Kprobe, None),
        ('p', true) if digits.is_empty() => (DynEventType::Uprobe, None),
        ('r', false) => (DynEventType::Kretprobe, digits.parse().ok()),
        ('r', true) => (DynEventType::Uretprobe, digits.parse().ok()),
        ('e', _) if from == Listing::Dynamic => (DynEventType::Eprobe, None),
        ('s', _) if from == Listing::Dynamic => (DynEventType::Synth, None),
        (c, _) if from == Listing::Dynamic && c.is_ascii_alphabetic() => (DynEventType::Other, None),
        _ => return None,
    };
    let mut ev = DynEvent::new(kind, system, event, address, format);
    ev.maxactive = maxactive;
    if kind == DynEventType::Other {
        ev.other_prefix = Some(letter);
    }
    Some(ev)
}

fn read_listing(tracefs: &Tracefs, file: &str) -> Result<Option<String>> {
    let path = tracefs.file(file);
    match dir::read_text(&path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if dir::is_not_found(&e) => Ok(None),
        Err(e) => Err(Error::io(format!("cannot list {file}"), &path, &e)),
    }
}

/// `tracefs_dynevent_get_all`: every dynamic event of the given kinds (all kinds when `types` is
/// empty), optionally only of one system. Missing control files count as empty. Reads up to
/// three files.
pub fn dynevent_get_all(tracefs: &Tracefs, types: &[DynEventType], system: Option<&str>) -> Result<Vec<DynEvent>> {
    let want = |k: DynEventType| types.is_empty() || types.contains(&k);
    let mut out = Vec::new();
    let sources = [
        ("kprobe_events", Listing::Kprobes, want(DynEventType::Kprobe) || want(DynEventType::Kretprobe)),
        ("uprobe_events", Listing::Uprobes, want(DynEventType::Uprobe) || want(DynEventType::Uretprobe)),
        (
            "dynamic_events",
            Listing::Dynamic,
            want(DynEventType::Eprobe) || want(DynEventType::Synth) || want(DynEventType::Other),
        ),
    ];
    for (file, from, needed) in sources {
        if !needed {
            continue;
        }
        let Some(text) = read_listing(tracefs, file)? else { continue };
        out.extend(parse_listing(&text, from).into_iter().filter(|e| {
            let own_file = from != Listing::Dynamic
                || matches!(e.kind, DynEventType::Eprobe | DynEventType::Synth | DynEventType::Other);
            own_file && want(e.kind) && system.is_none_or(|s| e.system == s)
        }));
    }
    Ok(out)
}

/// `tracefs_dynevent_get`: the event of this kind named `system/event` (`system` any when `None`).
pub fn dynevent_get(
    tracefs: &Tracefs,
    kind: DynEventType,
    system: Option<&str>,
    event: &str,
) -> Result<Option<DynEvent>> {
    Ok(dynevent_get_all(tracefs, &[kind], system)?.into_iter().find(|e| e.event == event))
}

/// `tracefs_dynevent_destroy_all`: destroys every event of these kinds (all when empty) in
/// `system` (any when `None`). Tries them all; returns how many went, or the first error.
pub fn dynevent_destroy_all(
    tracefs: &Tracefs,
    types: &[DynEventType],
    system: Option<&str>,
    force: bool,
) -> Result<usize> {
    let mut first_err = None;
    let mut n = 0;
    for ev in dynevent_get_all(tracefs, types, system)? {
        if matches!(ev.kind, DynEventType::Synth | DynEventType::Other) {
            continue;
        }
        match ev.destroy(tracefs, force) {
            Ok(()) => n += 1,
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // kprobe_events as Debian's 6.12 kernel lists it after the man page's two probes, a
    // second location for `open`, and a kretprobe with maxactive (shared/qemu-kprobe).
    const KPROBES: &str = "\
p:my_kprobes/open do_sys_openat2 file=+0($arg2):ustring flags=+0($arg3):x64 mode=+8($arg3):x64
r10:my_kprobes/openret do_sys_openat2 ret=%ax
p:kprobes/nosys do_sys_openat2
p:my_kprobes/open do_sys_open file=+0($arg2):ustring flags=+0($arg3):x64 mode=+8($arg3):x64
r5:my_kprobes/rmax5 do_sys_openat2 ret=$retval
";

    #[test]
    fn parses_kprobe_listing_with_maxactive_and_multi_location() {
        let l = parse_listing(KPROBES, Listing::Kprobes);
        assert_eq!(l.len(), 4);
        assert_eq!(l[0].kind, DynEventType::Kprobe);
        assert_eq!(l[0].full_name(), "my_kprobes/open");
        assert_eq!(l[0].address, "do_sys_openat2");
        assert_eq!(l[0].format, "file=+0($arg2):ustring flags=+0($arg3):x64 mode=+8($arg3):x64");
        assert_eq!(l[0].also_at, vec!["do_sys_open".to_string()]);
        assert_eq!(l[1].kind, DynEventType::Kretprobe);
        assert_eq!(l[1].maxactive, Some(10));
        assert_eq!(l[1].prefix(), "r10");
        assert_eq!(l[2].format, "");
        assert_eq!(l[3].maxactive, Some(5));
        assert_eq!(l[3].create_line(), "r5:my_kprobes/rmax5 do_sys_openat2 ret=$retval\n");
    }

    #[test]
    fn parses_uprobe_and_dynamic_listings() {
        let up = "p:uprobes/open /usr/lib/x86_64-linux-gnu/libc.so.6:0x00000000000f5e40 file=+0(%di):ustring\n\
                  r:uprobes/open_ret /usr/lib/x86_64-linux-gnu/libc.so.6:0x00000000000f5e40 ret=$retval\n";
        let l = parse_listing(up, Listing::Uprobes);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].kind, DynEventType::Uprobe);
        assert_eq!(l[0].address, "/usr/lib/x86_64-linux-gnu/libc.so.6:0x00000000000f5e40");
        assert_eq!(l[1].kind, DynEventType::Uretprobe);
        assert_eq!(l[1].maxactive, None);

        let dynamic = format!(
            "{up}p:kprobes/k vfs_read\ne:eprobes/sopen syscalls.sys_enter_openat file=+0($filename):ustring\n\
             s:synthetic/lat u64 delta; pid_t pid\nf:fprobes/vfs_read__entry vfs_read\n"
        );
        let l = parse_listing(&dynamic, Listing::Dynamic);
        let kinds: Vec<_> = l.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                DynEventType::Uprobe,
                DynEventType::Uretprobe,
                DynEventType::Kprobe,
                DynEventType::Eprobe,
                DynEventType::Synth,
                DynEventType::Other
            ]
        );
        assert_eq!(l[3].address, "syscalls.sys_enter_openat");
        assert_eq!(l[4].format, "u64 delta; pid_t pid");
        assert_eq!(l[5].prefix(), "f");
        assert!(parse_listing("garbage\n\n", Listing::Dynamic).is_empty());
    }

    #[test]
    fn round_trips_create_lines() {
        for line in KPROBES.lines() {
            let ev = parse_line(line, Listing::Kprobes).unwrap();
            assert_eq!(ev.create_line().trim_end(), line);
        }
    }

    #[test]
    fn refuses_injected_lines() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("kprobe_events"), "").unwrap();
        let tfs = Tracefs::at(t.path());
        let ev = DynEvent::new(DynEventType::Kprobe, "g", "e", "vfs_read\n-:kprobes/other", "");
        let e = ev.create(&tfs).unwrap_err();
        assert_eq!(e.errno(), Errno::EINVAL);
        assert!(e.to_string().contains("newline"), "{e}");
        let ev = DynEvent::new(DynEventType::Kprobe, "g/x", "e", "vfs_read", "");
        assert_eq!(ev.create(&tfs).unwrap_err().errno(), Errno::EINVAL);
        assert_eq!(std::fs::read_to_string(t.path().join("kprobe_events")).unwrap(), "");
    }
}
