//! A plugin's plan (the probes its `init` asked for) and its validation as untrusted input.
//!
//! The host builds every tracefs line from these declarations, so validation is what keeps a
//! plugin inside its own probe group: names are C identifiers, targets and fetchargs are one
//! line with no control characters and no dynamic-event commands (`-:`, `p:GROUP/...`), and a
//! [`Policy`] (from `--allow`) says which probe kinds a plugin may declare at all.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

/// What kind of kernel probe a declaration asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProbeKind {
    /// A kprobe on a kernel function (`SYM[+OFF]`).
    Kprobe,
    /// A kretprobe: the return of a kernel function.
    Kretprobe,
    /// A uprobe on a program or library (`PATH:SYMBOL[+OFF]`, `PATH:0xOFF`).
    Uprobe,
    /// A uretprobe: the return of a function in user space.
    Uretprobe,
    /// A tracepoint the kernel already has (`SYSTEM:EVENT`).
    Tracepoint,
    /// An event probe on an existing event (`SYSTEM.EVENT`).
    Eprobe,
}

impl ProbeKind {
    /// Every kind, in WIT order.
    pub const ALL: [ProbeKind; 6] = [
        ProbeKind::Kprobe,
        ProbeKind::Kretprobe,
        ProbeKind::Uprobe,
        ProbeKind::Uretprobe,
        ProbeKind::Tracepoint,
        ProbeKind::Eprobe,
    ];

    /// The kind's name as the WIT and `--allow` spell it.
    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Kprobe => "kprobe",
            ProbeKind::Kretprobe => "kretprobe",
            ProbeKind::Uprobe => "uprobe",
            ProbeKind::Uretprobe => "uretprobe",
            ProbeKind::Tracepoint => "tracepoint",
            ProbeKind::Eprobe => "eprobe",
        }
    }
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ProbeKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        ProbeKind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            format!("unknown probe kind {s:?} (kinds: kprobe, kretprobe, uprobe, uretprobe, tracepoint, eprobe)")
        })
    }
}

/// One probe a plugin asked for, exactly as it declared it (not yet validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeDecl {
    /// What kind of probe.
    pub kind: ProbeKind,
    /// The plugin's name for the probe (validated: C identifier, at most 63 bytes).
    pub name: String,
    /// kprobe: `SYM[+OFF]`; uprobe: `PATH:SYMBOL[+OFF]` or `PATH:0xOFF` (PATH absolute or a
    /// bare library name such as `libc`, looked up as ld.so does; the file is checked when the
    /// probe is armed, see `tracefs::resolve_target`); tracepoint: `SYSTEM:EVENT`; eprobe:
    /// `SYSTEM.EVENT`.
    pub target: String,
    /// Fetch arguments in the kernel's syntax; empty for none.
    pub fetchargs: String,
    /// A kernel filter expression.
    pub filter: Option<String>,
    /// kretprobe only: maxactive.
    pub maxactive: Option<u32>,
    /// The fields the plugin reads; when given, only these are delivered (see
    /// [`super::Projection`]). `None`: the whole record.
    pub fields: Option<Vec<String>>,
    /// The call stacks its events carry (`stacks.request`, WIT 0.1.2).
    pub stacks: super::stacks::StackKinds,
}

/// What a plugin's `init` returned: its probes, in the order batch records refer to them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The probes, in plan order.
    pub probes: Vec<ProbeDecl>,
}

/// Which probes the user lets a plugin declare (`--allow uprobe,tracepoint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Kinds the plugin may use.
    pub allowed_kinds: Vec<ProbeKind>,
    /// Most probes one plan may declare.
    pub max_probes: usize,
}

impl Default for Policy {
    /// Every kind, at most [`MAX_PROBES`] probes.
    fn default() -> Self {
        Policy { allowed_kinds: ProbeKind::ALL.to_vec(), max_probes: MAX_PROBES }
    }
}

impl Policy {
    /// Parses an `--allow` list: kinds separated by commas (`uprobe,tracepoint`), or `all`.
    pub fn from_allow_list(list: &str) -> Result<Policy, String> {
        let mut kinds = Vec::new();
        for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            if word == "all" {
                kinds.extend(ProbeKind::ALL);
            } else {
                kinds.push(word.parse::<ProbeKind>().map_err(|e| format!("--allow {list:?}: {e}"))?);
            }
        }
        if kinds.is_empty() {
            return Err(format!("--allow {list:?} names no probe kind"));
        }
        kinds.sort();
        kinds.dedup();
        Ok(Policy { allowed_kinds: kinds, ..Policy::default() })
    }

    /// Whether `kind` is allowed.
    pub fn allows(&self, kind: ProbeKind) -> bool {
        self.allowed_kinds.contains(&kind)
    }
}

impl FromStr for Policy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Policy::from_allow_list(s)
    }
}

/// Why a plan was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The plan as a whole is unusable.
    #[error("{0}")]
    Plan(String),
    /// One declaration is refused.
    #[error("probe {probe:?}: {reason}")]
    Probe {
        /// The probe, by the plugin's name for it.
        probe: String,
        /// Why it is refused.
        reason: String,
    },
}

/// Most probes one plan may declare by default.
pub const MAX_PROBES: usize = 64;
/// Longest probe name: the kernel's MAX_EVENT_NAME_LEN (64) less its NUL.
pub const MAX_NAME_LEN: usize = 63;
/// Longest target (a uprobe path plus symbol); PATH_MAX-ish.
pub const MAX_TARGET_LEN: usize = 4096;
/// Longest fetchargs string and filter.
pub const MAX_ARGS_LEN: usize = 4096;
/// Most fetch arguments per probe (the kernel's MAX_TRACE_ARGS).
pub const MAX_FETCHARGS: usize = 128;
/// Largest kretprobe maxactive the kernel accepts (KRETPROBE_MAXACTIVE_MAX).
pub const MAX_MAXACTIVE: u32 = 4096;

impl Plan {
    /// Checks every declaration against the rules above and `policy`; the first refusal wins
    /// and names the probe. Pure: touches nothing.
    pub fn validate(&self, policy: &Policy) -> Result<(), PlanError> {
        if self.probes.is_empty() {
            return Err(PlanError::Plan("the plan declares no probes".into()));
        }
        if self.probes.len() > policy.max_probes {
            return Err(PlanError::Plan(format!(
                "the plan declares {} probes; at most {} are allowed",
                self.probes.len(),
                policy.max_probes
            )));
        }
        let mut names = HashSet::new();
        for p in &self.probes {
            let refuse = |reason: String| PlanError::Probe { probe: shown(&p.name), reason };
            check_name(&p.name).map_err(refuse)?;
            if !names.insert(p.name.as_str()) {
                return Err(refuse("declared twice (probe names must be unique in a plan)".into()));
            }
            if !policy.allows(p.kind) {
                return Err(refuse(format!(
                    "{} probes are not allowed by the policy (allowed: {}; see --allow)",
                    p.kind,
                    policy.allowed_kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
                )));
            }
            check_target(p.kind, &p.target).map_err(|e| refuse(format!("target {}: {e}", shown(&p.target))))?;
            check_fetchargs(p.kind, &p.fetchargs).map_err(refuse)?;
            check_kernel_reads(p.kind, &p.fetchargs, policy).map_err(refuse)?;
            if let Some(f) = &p.filter {
                check_line("filter", f, MAX_ARGS_LEN).map_err(refuse)?;
            }
            match (p.kind, p.maxactive) {
                (_, None) => {}
                (ProbeKind::Kretprobe, Some(n)) if (1..=MAX_MAXACTIVE).contains(&n) => {}
                (ProbeKind::Kretprobe, Some(n)) => {
                    return Err(refuse(format!("maxactive {n} is out of range 1..={MAX_MAXACTIVE}")))
                }
                (kind, Some(_)) => return Err(refuse(format!("maxactive is for kretprobes, not {kind}"))),
            }
            check_fields(p.fields.as_deref()).map_err(refuse)?;
        }
        Ok(())
    }
}

/// A string as an error message (or `inspect`) shows it: escaped, and cut if long. Plugin
/// text never reaches the terminal raw: an escape sequence in a target could hide the verdict.
pub fn shown(s: &str) -> String {
    let cut: String = s.chars().take(80).collect();
    if cut.len() < s.len() {
        format!("{}...", cut.escape_debug())
    } else {
        cut.escape_debug().to_string()
    }
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty probe name".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("name is {} bytes long; at most {MAX_NAME_LEN} are allowed", name.len()));
    }
    if !is_ident(name) {
        return Err("name must be a C identifier (letters, digits, '_'; no group or '/')".into());
    }
    Ok(())
}

/// Most fields one probe may ask for (the kernel's MAX_TRACE_ARGS plus the common ones).
pub const MAX_FIELDS: usize = 136;

/// Field names: C identifiers (the format file's names), not too many.
fn check_fields(fields: Option<&[String]>) -> Result<(), String> {
    let Some(fields) = fields else { return Ok(()) };
    if fields.len() > MAX_FIELDS {
        return Err(format!("asks for {} fields; at most {MAX_FIELDS} are allowed", fields.len()));
    }
    for f in fields {
        if f.len() > MAX_NAME_LEN || !is_ident(f) {
            return Err(format!(
                "field {} is not a field name (a C identifier of at most {MAX_NAME_LEN} bytes)",
                shown(f)
            ));
        }
    }
    Ok(())
}

/// One line of text of sane length with no control characters (newline, CR, NUL, ...).
fn check_line(what: &str, s: &str, max: usize) -> Result<(), String> {
    if s.len() > max {
        return Err(format!("{what} is {} bytes long; at most {max} are allowed", s.len()));
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(format!("{what} contains the control character {c:?} (one line, no NUL)"));
    }
    Ok(())
}

/// `SYM[+OFF]`: a symbol and an optional decimal or 0x offset.
fn check_symbol_offset(s: &str) -> Result<(), String> {
    let (sym, off) = match s.split_once('+') {
        Some((sym, off)) => (sym, Some(off)),
        None => (s, None),
    };
    let sym_ok = !sym.is_empty()
        && !sym.starts_with(|c: char| c.is_ascii_digit())
        && sym.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '$' || c == '@');
    if !sym_ok {
        return Err(format!("{sym:?} is not a symbol name"));
    }
    if let Some(off) = off {
        let ok = match off.strip_prefix("0x") {
            Some(hex) => !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()),
            None => !off.is_empty() && off.chars().all(|c| c.is_ascii_digit()),
        };
        if !ok {
            return Err(format!("{off:?} is not an offset"));
        }
    }
    Ok(())
}

fn check_target(kind: ProbeKind, target: &str) -> Result<(), String> {
    check_line("it", target, MAX_TARGET_LEN)?;
    if target.is_empty() {
        return Err("empty".into());
    }
    if target.chars().any(char::is_whitespace) {
        return Err("contains whitespace".into());
    }
    match kind {
        ProbeKind::Kprobe | ProbeKind::Kretprobe => {
            if target.contains([':', '/']) {
                return Err("a kprobe target is SYMBOL[+OFFSET] (no ':' or '/': the host chooses the group)".into());
            }
            check_symbol_offset(target)
        }
        ProbeKind::Uprobe | ProbeKind::Uretprobe => {
            let Some((path, what)) = target.rsplit_once(':') else {
                return Err("a uprobe target is PATH:SYMBOL or PATH:0xOFFSET".into());
            };
            if path.is_empty() {
                return Err("no PATH before ':'".into());
            }
            if !path.starts_with('/') && path.contains('/') {
                return Err("PATH must be absolute or a bare library name such as libc".into());
            }
            if !path.contains('/') && !tracefs::uprobe::is_library_name(path) {
                return Err("a PATH without '/' is a shared library's name such as libc (letters, digits, '.', \
                            '_', '+', '-'), looked up as ld.so does, never in the current directory"
                    .into());
            }
            if path.contains(':') {
                return Err("PATH contains ':'".into());
            }
            if let Some(hex) = what.strip_prefix("0x") {
                if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(format!("{what:?} is not an offset"));
                }
                Ok(())
            } else {
                check_symbol_offset(what)
            }
        }
        ProbeKind::Tracepoint => match target.split_once(':') {
            Some((sys, ev)) if is_ident(sys) && is_ident(ev) => check_not_ours(sys),
            _ => Err("a tracepoint target is SYSTEM:EVENT".into()),
        },
        ProbeKind::Eprobe => match target.split_once('.') {
            Some((sys, ev)) if is_ident(sys) && is_ident(ev) => check_not_ours(sys),
            _ => Err("an eprobe target is SYSTEM.EVENT".into()),
        },
    }
}

fn check_fetchargs(kind: ProbeKind, args: &str) -> Result<(), String> {
    check_line("fetchargs", args, MAX_ARGS_LEN)?;
    let words: Vec<&str> = args.split_ascii_whitespace().collect();
    if kind == ProbeKind::Tracepoint && !words.is_empty() {
        return Err("a tracepoint takes no fetchargs (its fields are fixed)".into());
    }
    if words.len() > MAX_FETCHARGS {
        return Err(format!("{} fetchargs; the kernel takes at most {MAX_FETCHARGS}", words.len()));
    }
    for w in words {
        // What would start another dynamic-event command if the line were split: `-:x`,
        // `p:grp/ev`, `r10:grp/ev`, `e:...`, `u:...`. A fetcharg never looks like that.
        let head = w.split(':').next().unwrap_or("");
        let is_command = w.starts_with('-')
            || (w.contains(':')
                && (matches!(head, "p" | "r" | "e" | "t" | "f" | "s" | "u")
                    || (head.starts_with('r') && head[1..].chars().all(|c| c.is_ascii_digit()))));
        if is_command {
            return Err(format!("fetcharg {} looks like a dynamic-event command", shown(w)));
        }
        if let Some((name, _)) = w.split_once('=') {
            if !is_ident(name) {
                return Err(format!("fetcharg name {} is not a C identifier", shown(name)));
            }
        }
    }
    Ok(())
}

/// A tracepoint or eprobe source in a probe group of a wasmprobe run (ours or another's): its
/// events are that run's, and enabling them in our instance would keep its probes from being
/// removed (`EBUSY`). ftrace's own events (`ftrace:function`, `ftrace:print`, ...) have no
/// `enable` file: they are not tracepoints.
fn check_not_ours(system: &str) -> Result<(), String> {
    if system.starts_with(crate::owned::GROUP_PREFIX) {
        return Err(format!(
            "{system} is the probe group of a wasmprobe run, not a tracepoint (a plugin traces its own probes only)"
        ));
    }
    if system == "ftrace" {
        return Err("ftrace's own events (function, print, ...) are not tracepoints and cannot be enabled".into());
    }
    Ok(())
}

/// Refuses a tracepoint or eprobe whose source event is a dynamic event (a kprobe, uprobe,
/// eprobe or synthetic event somebody created: its system is one of `dynamic_groups`, the
/// groups listed in tracefs' `dynamic_events`, `kprobe_events` and `uprobe_events`).
/// Enabling such an event in our instance would hand the plugin the data of a probe it was
/// not allowed to make (a kprobe's, under `--allow tracepoint`), and keep its owner from
/// removing it (`EBUSY`) while the run lasts. The kernel refuses eprobes on dynamic events
/// itself (6.12); this says so before anything is written, for tracepoints too.
pub fn check_sources(probes: &[ProbeDecl], dynamic_groups: &HashSet<String>) -> Result<(), PlanError> {
    for p in probes {
        let system = match p.kind {
            ProbeKind::Tracepoint => p.target.split_once(':').map(|(s, _)| s),
            ProbeKind::Eprobe => p.target.split_once('.').map(|(s, _)| s),
            _ => None,
        };
        if let Some(system) = system.filter(|s| dynamic_groups.contains(*s)) {
            return Err(PlanError::Probe {
                probe: shown(&p.name),
                reason: format!(
                    "target {}: {} is a group of dynamic events (kprobes, uprobes, eprobes or synthetic events \
                     somebody made), not a tracepoint",
                    shown(&p.target),
                    shown(system)
                ),
            });
        }
    }
    Ok(())
}

/// Under a policy that does not allow kprobes, an eprobe may read its event's fields and the
/// traced process's memory, but not kernel memory: the kernel dereferences an eprobe's
/// `+N(...)`, `@ADDR` and `@SYMBOL` in kernel space, and its `string`, `symstr`, `%pd` and
/// `%pD` types read a kernel pointer. (A uprobe's fetchargs read user memory only, and the
/// kernel refuses `@SYMBOL` on uprobes; a tracepoint takes no fetchargs.)
fn check_kernel_reads(kind: ProbeKind, args: &str, policy: &Policy) -> Result<(), String> {
    if kind != ProbeKind::Eprobe || policy.allows(ProbeKind::Kprobe) {
        return Ok(());
    }
    for w in args.split_ascii_whitespace() {
        if let Some(why) = kernel_read(w) {
            return Err(format!(
                "fetcharg {} {why}: kernel memory needs kprobe in --allow (user memory: +uN(...) or :ustring)",
                shown(w)
            ));
        }
    }
    Ok(())
}

/// Why one eprobe fetcharg (`[NAME=]VALUE[:TYPE]`) reads kernel memory, if it does.
fn kernel_read(arg: &str) -> Option<&'static str> {
    let value = match arg.split_once('=') {
        Some((name, v)) if is_ident(name) => v,
        _ => arg,
    };
    if value.starts_with("\\") {
        return None; // an immediate value or string: reads nothing
    }
    // The type follows the last ':' outside parentheses.
    let mut depth = 0i32;
    let mut split = None;
    for (i, c) in value.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ':' if depth == 0 => split = Some(i),
            _ => {}
        }
    }
    let (fetch, ty) = match split {
        Some(i) => (&value[..i], &value[i + 1..]),
        None => (value, ""),
    };
    if fetch.contains('@') {
        return Some("reads kernel memory at an address or symbol (@)");
    }
    if matches!(ty, "%pd" | "%pD") {
        return Some("reads a kernel dentry or file (%pd, %pD)");
    }
    let string = ty.starts_with("string") || ty.starts_with("symstr");
    if string && fetch != "$comm" {
        return Some("reads a string from a kernel pointer (:string, :symstr)");
    }
    // Kernel dereferences: `+N(` or `-N(` without the `u` of a user dereference. With type
    // ustring, the outermost dereference reads user memory.
    let outermost_is_user = ty.starts_with("ustring") && fetch.starts_with(['+', '-']);
    for (n, (i, _)) in fetch.match_indices('(').enumerate() {
        let head = &fetch[..i];
        let start = head.rfind(['+', '-']).map_or(0, |i| i + 1);
        let user = head[start..].starts_with('u') || (n == 0 && outermost_is_user);
        if !user {
            return Some("dereferences kernel memory (+N(...))");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(kind: ProbeKind, name: &str, target: &str, fetchargs: &str) -> ProbeDecl {
        ProbeDecl {
            kind,
            name: name.into(),
            target: target.into(),
            fetchargs: fetchargs.into(),
            filter: None,
            maxactive: None,
            fields: None,
            stacks: Default::default(),
        }
    }

    fn one(p: ProbeDecl) -> Result<(), PlanError> {
        Plan { probes: vec![p] }.validate(&Policy::default())
    }

    fn refused(p: ProbeDecl, needle: &str) {
        let err = one(p).unwrap_err().to_string();
        assert!(err.contains(needle), "{err:?} does not contain {needle:?}");
    }

    #[test]
    fn the_man_page_plan_is_valid() {
        let mut ret = probe(ProbeKind::Kretprobe, "openret", "do_sys_openat2", "ret=%ax");
        ret.maxactive = Some(10);
        let plan = Plan {
            probes: vec![
                probe(
                    ProbeKind::Kprobe,
                    "open",
                    "do_sys_openat2",
                    "file=+0($arg2):ustring flags=+0($arg3):x64 mode=+8($arg3):x64",
                ),
                ret,
                probe(ProbeKind::Uprobe, "uopen", "libc:open", "file=+0(%di):ustring"),
                probe(ProbeKind::Uretprobe, "rl", "/bin/bash:readline", "line=+0($retval):string"),
                probe(ProbeKind::Uprobe, "off", "/usr/lib/x86_64-linux-gnu/libc.so.6:0x1f2a0", ""),
                probe(ProbeKind::Tracepoint, "enter", "raw_syscalls:sys_enter", ""),
                probe(ProbeKind::Eprobe, "ep", "syscalls.sys_enter_openat", "file=+0($filename):ustring"),
                probe(ProbeKind::Kprobe, "off2", "vfs_read+0x10", ""),
            ],
        };
        plan.validate(&Policy::default()).unwrap();
    }

    #[test]
    fn names_must_be_short_unique_identifiers() {
        refused(probe(ProbeKind::Kprobe, "", "f", ""), "empty probe name");
        refused(probe(ProbeKind::Kprobe, &"a".repeat(64), "f", ""), "64 bytes long; at most 63");
        one(probe(ProbeKind::Kprobe, &"a".repeat(63), "f", "")).unwrap();
        refused(probe(ProbeKind::Kprobe, "other/open", "f", ""), "C identifier");
        refused(probe(ProbeKind::Kprobe, "9lives", "f", ""), "C identifier");
        refused(probe(ProbeKind::Kprobe, "a b", "f", ""), "C identifier");
        let dup = Plan { probes: vec![probe(ProbeKind::Kprobe, "x", "f", ""), probe(ProbeKind::Kprobe, "x", "g", "")] };
        assert!(dup.validate(&Policy::default()).unwrap_err().to_string().contains("declared twice"));
    }

    #[test]
    fn newline_cr_and_nul_are_refused_everywhere() {
        refused(probe(ProbeKind::Kprobe, "a", "f\n-:wasmprobe_1/a", ""), "control character '\\n'");
        refused(probe(ProbeKind::Kprobe, "a", "f", "x=%ax\n-:kprobes/other"), "control character '\\n'");
        refused(probe(ProbeKind::Kprobe, "a", "f", "x=%ax\r"), "control character '\\r'");
        refused(probe(ProbeKind::Kprobe, "a", "f\0", ""), "control character '\\0'");
        let mut p = probe(ProbeKind::Tracepoint, "a", "sched:sched_switch", "");
        p.filter = Some("prev_pid == 1\n".into());
        refused(p, "filter contains the control character");
    }

    #[test]
    fn dynamic_event_commands_and_other_groups_are_refused() {
        refused(probe(ProbeKind::Kprobe, "a", "f", "-:kprobes/other"), "looks like a dynamic-event command");
        refused(probe(ProbeKind::Kprobe, "a", "f", "x=%ax p:evil/ev do_exit"), "dynamic-event command");
        refused(probe(ProbeKind::Kprobe, "a", "f", "r10:evil/ev"), "dynamic-event command");
        refused(probe(ProbeKind::Kprobe, "a", "p:evil/ev", ""), "no ':' or '/'");
        refused(probe(ProbeKind::Kprobe, "a", "f x=%ax", ""), "whitespace");
        refused(probe(ProbeKind::Uprobe, "a", "bin/sh:main", ""), "absolute or a bare library name");
        for bare in ["..:0x10", ".:main", "-lib:main"] {
            refused(probe(ProbeKind::Uprobe, "a", bare, ""), "a PATH without '/' is a shared library's name");
        }
        one(probe(ProbeKind::Uprobe, "a", "libstdc++.so.6:main", "")).unwrap();
        refused(probe(ProbeKind::Uprobe, "a", "/bin/sh", ""), "PATH:SYMBOL");
        refused(probe(ProbeKind::Tracepoint, "a", "sched/sched_switch", ""), "SYSTEM:EVENT");
        refused(probe(ProbeKind::Tracepoint, "a", "sched:sched_switch", "x=1"), "takes no fetchargs");
        refused(probe(ProbeKind::Eprobe, "a", "sched:sched_switch", ""), "SYSTEM.EVENT");
        refused(probe(ProbeKind::Kprobe, "a", "f", "a-b=%ax"), "not a C identifier");
    }

    #[test]
    fn sizes_are_bounded() {
        refused(probe(ProbeKind::Kprobe, "a", &"f".repeat(MAX_TARGET_LEN + 1), ""), "bytes long");
        refused(probe(ProbeKind::Kprobe, "a", "f", &"x".repeat(MAX_ARGS_LEN + 1)), "bytes long");
        let many: Vec<String> = (0..129).map(|i| format!("a{i}=%ax")).collect();
        refused(probe(ProbeKind::Kprobe, "a", "f", &many.join(" ")), "at most 128");
        let plan =
            Plan { probes: (0..MAX_PROBES + 1).map(|i| probe(ProbeKind::Kprobe, &format!("p{i}"), "f", "")).collect() };
        assert!(plan.validate(&Policy::default()).unwrap_err().to_string().contains("at most 64"));
        assert!(Plan::default().validate(&Policy::default()).is_err());
    }

    #[test]
    fn maxactive_only_on_kretprobes_and_in_range() {
        let mut p = probe(ProbeKind::Kprobe, "a", "f", "");
        p.maxactive = Some(4);
        refused(p, "maxactive is for kretprobes, not kprobe");
        let mut p = probe(ProbeKind::Kretprobe, "a", "f", "");
        p.maxactive = Some(5000);
        refused(p, "out of range");
    }

    #[test]
    fn policy_refuses_other_kinds_naming_the_probe() {
        let policy: Policy = "uprobe,tracepoint".parse().unwrap();
        assert_eq!(policy.allowed_kinds, vec![ProbeKind::Uprobe, ProbeKind::Tracepoint]);
        let plan = Plan {
            probes: vec![
                probe(ProbeKind::Uprobe, "uopen", "libc:open", ""),
                probe(ProbeKind::Kprobe, "kopen", "do_sys_openat2", ""),
            ],
        };
        assert_eq!(
            plan.validate(&policy).unwrap_err().to_string(),
            "probe \"kopen\": kprobe probes are not allowed by the policy (allowed: uprobe, tracepoint; see --allow)"
        );
        assert!(Policy::from_allow_list("uprobe,bogus").unwrap_err().contains("unknown probe kind \"bogus\""));
        assert!(Policy::from_allow_list(" , ").is_err());
        assert_eq!(Policy::from_allow_list("all").unwrap(), Policy::default());
    }

    #[test]
    fn eprobes_read_no_kernel_memory_unless_kprobes_are_allowed() {
        let no_kprobes: Policy = "eprobe,tracepoint".parse().unwrap();
        let check = |args: &str, policy: &Policy| {
            Plan { probes: vec![probe(ProbeKind::Eprobe, "e", "syscalls.sys_enter_openat", args)] }
                .validate(policy)
                .map_err(|e| e.to_string())
        };
        for ok in [
            "file=+0($filename):ustring",
            "file=+u0($filename):ustring",
            "x=+u8(+u0($filename)):u64",
            "dfd=$dfd flags=$flags:x32 c=$comm c2=$comm:string",
            "s=$dfd:symbol i=\\123 t=\\\"text\\\":string",
        ] {
            assert_eq!(check(ok, &no_kprobes), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("x=+0(@0xffffffff81000000):x64", "(@)"),
            ("x=@jiffies:u64", "(@)"),
            ("x=@_text+8", "(@)"),
            ("x=+0($filename):u64", "dereferences kernel memory"),
            ("x=-8($filename)", "dereferences kernel memory"),
            ("x=+0(+0($filename)):ustring", "dereferences kernel memory"),
            ("x=+u0(+0($filename)):ustring", "dereferences kernel memory"),
            ("x=+0($filename):string", "(:string, :symstr)"),
            ("x=$filename:string", "(:string, :symstr)"),
            ("x=$filename:symstr", "(:string, :symstr)"),
            ("x=$filename:%pd", "(%pd, %pD)"),
        ] {
            let err = check(bad, &no_kprobes).unwrap_err();
            assert!(err.contains(why) && err.contains("kernel memory needs kprobe in --allow"), "{bad}: {err}");
        }
        assert_eq!(
            check("x=+0(@0xffffffff81000000):x64", &no_kprobes).unwrap_err(),
            "probe \"e\": fetcharg x=+0(@0xffffffff81000000):x64 reads kernel memory at an address or symbol (@): \
             kernel memory needs kprobe in --allow (user memory: +uN(...) or :ustring)"
        );
        // With kprobes allowed, an eprobe may read what a kprobe could.
        assert_eq!(check("x=+0(@0xffffffff81000000):x64 y=$filename:string", &Policy::default()), Ok(()));
    }

    #[test]
    fn other_runs_and_dynamic_events_are_no_tracepoints() {
        refused(
            probe(ProbeKind::Tracepoint, "t", "wasmprobe_123_exec_open:open", ""),
            "wasmprobe_123_exec_open is the probe group of a wasmprobe run, not a tracepoint",
        );
        refused(probe(ProbeKind::Eprobe, "e", "wasmprobe_9.open", ""), "probe group of a wasmprobe run");
        refused(probe(ProbeKind::Tracepoint, "t", "ftrace:print", ""), "ftrace's own events");
        let dynamic: HashSet<String> = ["kprobes".to_string(), "mytool".to_string()].into();
        let plan = |kind, target: &str| vec![probe(kind, "t", target, "")];
        assert_eq!(
            check_sources(&plan(ProbeKind::Tracepoint, "kprobes:victim"), &dynamic).unwrap_err().to_string(),
            "probe \"t\": target kprobes:victim: kprobes is a group of dynamic events (kprobes, uprobes, eprobes \
             or synthetic events somebody made), not a tracepoint"
        );
        assert!(check_sources(&plan(ProbeKind::Eprobe, "mytool.x"), &dynamic).is_err());
        assert!(check_sources(&plan(ProbeKind::Tracepoint, "sched:sched_switch"), &dynamic).is_ok());
        // A uprobe's own group is not a source.
        assert!(check_sources(&plan(ProbeKind::Uprobe, "libc:open"), &dynamic).is_ok());
    }
}
