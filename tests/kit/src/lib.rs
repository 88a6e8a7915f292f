//! What the kernel tests of every crate share: whether a test can run here, guards that take
//! out of the kernel what a test put in even when it panics, and where libc is.
//!
//! A test names what it needs first:
//!
//! ```ignore
//! #[test]
//! fn uprobe_on_libc_open() {
//!     let t = testkit::require!(root, tracefs, uprobes).tracefs();
//!     // ...
//! }
//! ```
//!
//! When something is missing the test prints `SKIP <test>: <why>` on stderr and returns, so
//! that `cargo test` passes on a developer's laptop without root. With
//! `WASMPROBE_REQUIRE_ALL=1` (tests/run-all.sh exports it, so CI and the VM tier run with it)
//! a missing prerequisite is a failure instead: there every prerequisite exists, and a test
//! that skipped would pass without testing anything.
//!
//! Two needs name a kind of kernel rather than a prerequisite, because the project tests on
//! two kinds: the host tier's kernel has no kprobe events, the VM tier's kernels have them
//! (tests/vm/run-in-vm.sh). `kprobes` and `no_kprobes` say which kind a test is for; on the
//! other kind the test skips, in CI too, naming the tier that runs it. Inside the VM
//! (`KP_IN_VM=1`) every skip is a failure, `kprobes` included: the tier exists to run them.

use std::path::PathBuf;

use tracefs::{DynEvent, Errno, Tracefs};

/// The variable that turns a missing prerequisite from a skip into a failure (value `1`).
pub const REQUIRE_ALL_ENV: &str = "WASMPROBE_REQUIRE_ALL";

/// Something a test needs from the machine it runs on. Write them in lower case in
/// [`require!`]: `require!(root, tracefs, uprobes)` (see [`need`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Effective uid 0: tracefs control files are root's.
    Root,
    /// A usable tracing directory ([`Tracefs::open`], which honours `TRACEFS`, gives one
    /// with an `events` directory). Reads `/proc/mounts`; may mount tracefs.
    Tracefs,
    /// `uprobe_events` in the tracing directory.
    Uprobes,
    /// The `raw_syscalls` tracepoints in the tracing directory.
    RawSyscalls,
    /// An executable of this name in `PATH` (e.g. `trace-cmd`, `unshare`, `script`).
    Program(&'static str),
    /// This process is in the initial pid namespace (`/proc/self/ns/pid`), where pids name
    /// every process of the machine.
    InitialPidNamespace,
    /// A kernel with kprobe events: the VM tier's kind of kernel.
    Kprobes,
    /// A kernel without kprobe events: the host tier's kind of kernel.
    NoKprobes,
}

/// The names [`require!`] takes: one per [`Need`], and [`need::program`].
#[allow(non_upper_case_globals)]
pub mod need {
    use super::Need;

    /// [`Need::Root`].
    pub const root: Need = Need::Root;
    /// [`Need::Tracefs`].
    pub const tracefs: Need = Need::Tracefs;
    /// [`Need::Uprobes`].
    pub const uprobes: Need = Need::Uprobes;
    /// [`Need::RawSyscalls`].
    pub const raw_syscalls: Need = Need::RawSyscalls;
    /// The `trace-cmd` program.
    pub const trace_cmd: Need = Need::Program("trace-cmd");
    /// The `unshare` program (util-linux).
    pub const unshare: Need = Need::Program("unshare");
    /// [`Need::InitialPidNamespace`].
    pub const initial_pid_namespace: Need = Need::InitialPidNamespace;
    /// [`Need::Kprobes`].
    pub const kprobes: Need = Need::Kprobes;
    /// [`Need::NoKprobes`].
    pub const no_kprobes: Need = Need::NoKprobes;

    /// [`Need::Program`]: `require!(root, program("script"))`.
    pub const fn program(name: &'static str) -> Need {
        Need::Program(name)
    }
}

/// Why a need is not met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// A prerequisite is absent: a skip on a laptop, a failure with [`REQUIRE_ALL_ENV`].
    Prerequisite(String),
    /// The test is for the other tier's kind of kernel: a skip, also in CI.
    OtherTier(String),
}

/// Proof that a test's needs are met, as [`require!`] returns it.
#[derive(Debug)]
pub struct Ready(());

impl Ready {
    /// The tracing directory (for tests that required `tracefs`). Panics if there is none.
    pub fn tracefs(&self) -> Tracefs {
        Tracefs::open().expect("require!(tracefs) found a tracing directory")
    }
}

/// Checks `needs` in order for test `test`. All met: `Some`. One missing: prints
/// `SKIP <test>: <why>` and gives `None`, or panics when a skip would hide a missing
/// prerequisite in CI (see the crate's documentation). [`require!`] calls this.
pub fn require(test: &str, needs: &[Need]) -> Option<Ready> {
    match needs.iter().find_map(|n| check(*n).err()) {
        None => Some(Ready(())),
        Some(missing) => {
            report(test, missing);
            None
        }
    }
}

/// Says that `test` skips for `missing`, or panics when that skip must be a failure.
fn report(test: &str, missing: Missing) {
    let in_vm = std::env::var_os("KP_IN_VM").is_some_and(|v| v == "1");
    let strict = in_vm || std::env::var_os(REQUIRE_ALL_ENV).is_some_and(|v| v == "1");
    match missing {
        Missing::Prerequisite(why) if strict => {
            let who = if in_vm { "KP_IN_VM=1".to_string() } else { format!("{REQUIRE_ALL_ENV}=1") };
            panic!("{test}: {why} ({who}: a missing prerequisite fails the test)");
        }
        Missing::OtherTier(why) if in_vm => panic!("{test}: {why} (KP_IN_VM=1: the VM tier runs every test)"),
        Missing::Prerequisite(why) | Missing::OtherTier(why) => eprintln!("SKIP {test}: {why}"),
    }
}

/// Reports a prerequisite the test found missing itself (e.g. a file it looks up): prints
/// `SKIP <test>: <why>`, or panics where a skip would hide it (as [`require`] does). The
/// caller returns after it.
pub fn missing_prerequisite(test: &str, why: &str) {
    report(test, Missing::Prerequisite(why.to_string()));
}

/// Whether `need` holds here; if not, why.
pub fn check(need: Need) -> Result<(), Missing> {
    let missing = |why: &str| Err(Missing::Prerequisite(why.to_string()));
    match need {
        Need::Root => match nix::unistd::geteuid().is_root() {
            true => Ok(()),
            false => missing("needs root to write tracefs control files"),
        },
        Need::Tracefs => tracefs().map(drop),
        Need::Uprobes => match tracefs()?.path().join("uprobe_events").exists() {
            true => Ok(()),
            false => missing("needs uprobes: the tracing directory has no uprobe_events"),
        },
        Need::RawSyscalls => match tracefs()?.path().join("events/raw_syscalls").is_dir() {
            true => Ok(()),
            false => missing("needs the raw_syscalls tracepoints: no events/raw_syscalls"),
        },
        Need::Program(name) => match in_path(name) {
            true => Ok(()),
            false => missing(&format!("needs the program {name}, which is not in PATH (.ci/setup installs it)")),
        },
        Need::InitialPidNamespace => match std::fs::read_link("/proc/self/ns/pid") {
            // The initial pid namespace's inode number is fixed (PROC_PID_INIT_INO).
            Ok(l) if l.as_os_str() == "pid:[4026531836]" => Ok(()),
            _ => missing("needs the initial pid namespace (this process is in another)"),
        },
        Need::Kprobes => match tracefs::kprobes_supported(&tracefs()?) {
            true => Ok(()),
            false => Err(Missing::OtherTier(
                "this kernel has no kprobe events: the VM tier runs this test (tests/run-all.sh)".into(),
            )),
        },
        Need::NoKprobes => match tracefs::kprobes_supported(&tracefs()?) {
            false => Ok(()),
            true => Err(Missing::OtherTier(
                "this kernel has kprobe events: the test is for kernels without them (the host tier)".into(),
            )),
        },
    }
}

/// The tracing directory, if it is a usable one.
fn tracefs() -> Result<Tracefs, Missing> {
    let t = Tracefs::open().map_err(|e| Missing::Prerequisite(format!("needs tracefs: {e}")))?;
    if !t.path().join("events").is_dir() {
        let why = format!("needs tracefs: {} has no events directory", t.path().display());
        return Err(Missing::Prerequisite(why));
    }
    Ok(t)
}

/// Whether `PATH` has an executable file named `program`.
fn in_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .filter_map(|dir| std::fs::metadata(dir.join(program)).ok())
        .any(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Returns from the calling test unless its needs are met (see the crate's documentation);
/// evaluates to a [`Ready`] otherwise.
///
/// `require!(root, tracefs)` names the test after the function it is written in;
/// `require!("the live half": root, uprobes)` skips only the rest of a test, naming the part.
/// The needs are the names of [`need`].
#[macro_export]
macro_rules! require {
    ($part:literal : $($need:expr),+ $(,)?) => {
        match $crate::require(&format!("{}: {}", $crate::test_name!(), $part), &$crate::needs!($($need),+)) {
            Some(ready) => ready,
            None => return,
        }
    };
    ($($need:expr),+ $(,)?) => {
        match $crate::require($crate::test_name!(), &$crate::needs!($($need),+)) {
            Some(ready) => ready,
            None => return,
        }
    };
}

/// The array of [`Need`]s that [`require!`]'s arguments name.
#[doc(hidden)]
#[macro_export]
macro_rules! needs {
    ($($need:expr),+) => {{
        #[allow(unused_imports)]
        use $crate::need::*;
        [$($need),+]
    }};
}

/// The name of the function this is written in (the test's name), without its module path.
#[macro_export]
macro_rules! test_name {
    () => {{
        fn here() {}
        $crate::last_segment(::std::any::type_name_of_val(&here))
    }};
}

/// `a::b::test` of `a::b::test::here`: what [`test_name!`] reads from a type name.
#[doc(hidden)]
pub fn last_segment(path: &'static str) -> &'static str {
    let path = path.strip_suffix("::here").unwrap_or(path);
    path.rsplit("::").next().unwrap_or(path)
}

/// Destroys (with force) every dynamic event pushed into it when dropped, so a failing test
/// leaves nothing in the kernel. Drop it after the instances that enabled its events.
pub struct ProbeGuard {
    tracefs: Tracefs,
    events: Vec<DynEvent>,
}

impl ProbeGuard {
    /// An empty guard for this tracing directory.
    pub fn new(tracefs: &Tracefs) -> Self {
        ProbeGuard { tracefs: tracefs.clone(), events: Vec::new() }
    }

    /// Creates `ev` in the kernel and takes charge of removing it.
    pub fn create(&mut self, ev: DynEvent) -> tracefs::Result<DynEvent> {
        ev.create(&self.tracefs)?;
        self.events.push(ev.clone());
        Ok(ev)
    }

    /// Takes charge of removing `ev`, created elsewhere (or perhaps created: absent is fine).
    pub fn adopt(&mut self, ev: DynEvent) {
        self.events.push(ev);
    }
}

impl Drop for ProbeGuard {
    fn drop(&mut self) {
        for ev in self.events.drain(..).rev() {
            match ev.destroy(&self.tracefs, true) {
                Ok(()) => {}
                Err(e) if e.errno() == Errno::ENOENT => {}
                Err(e) => eprintln!("ProbeGuard: could not remove {}: {e}", ev.full_name()),
            }
        }
    }
}

/// The C library the test process itself uses (from `/proc/self/maps`), where libc's `open`
/// and `openat` live.
pub fn libc_path() -> PathBuf {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.contains("/libc.so") || p.contains("/libc-"))
        .map(PathBuf::from)
        .expect("libc is mapped")
}

/// Waits until `cond` holds on the text of `read()`, polling up to `tries` times 50 ms apart;
/// returns the last text read. Kernel buffers are written asynchronously to our reads.
pub fn poll_text(mut read: impl FnMut() -> String, cond: impl Fn(&str) -> bool, tries: usize) -> String {
    let mut text = read();
    for _ in 0..tries {
        if cond(&text) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        text = read();
    }
    text
}

/// What the wasmprobe process `pid` left in the kernel of `/sys/kernel/tracing`: its probes
/// (lines of `uprobe_events` and `dynamic_events` in a `wasmprobe_<pid>_` group) and its
/// instances (`wasmprobe-<pid>-...`). Empty when a run cleaned up after itself.
pub fn leftovers(pid: u32) -> Vec<String> {
    const T: &str = "/sys/kernel/tracing";
    let mut left = Vec::new();
    for f in ["uprobe_events", "dynamic_events"] {
        let s = std::fs::read_to_string(format!("{T}/{f}")).unwrap_or_default();
        left.extend(s.lines().filter(|l| l.contains(&format!("wasmprobe_{pid}_"))).map(str::to_string));
    }
    for e in std::fs::read_dir(format!("{T}/instances")).into_iter().flatten().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(&format!("wasmprobe-{pid}-")) {
            left.push(format!("instance {n}"));
        }
    }
    left
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Output};

    use super::*;

    /// What [`a_missing_prerequisite_skips_on_a_laptop_and_fails_in_ci`] runs in a child
    /// process, with tracefs hidden; does nothing when run otherwise.
    #[test]
    #[ignore = "run in a child process by a_missing_prerequisite_skips_on_a_laptop_and_fails_in_ci"]
    fn child_needing_tracefs() {
        if std::env::var_os("TESTKIT_CHILD").is_none() {
            return;
        }
        require!(tracefs);
        panic!("TRACEFS=/nonexistent hides tracefs: require! must not let the test go on");
    }

    fn child(require_all: bool) -> Output {
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.args(["--exact", "tests::child_needing_tracefs", "--include-ignored", "--nocapture"])
            .env("TESTKIT_CHILD", "1")
            .env("TRACEFS", "/nonexistent")
            .env_remove("KP_IN_VM");
        match require_all {
            true => c.env(REQUIRE_ALL_ENV, "1"),
            false => c.env_remove(REQUIRE_ALL_ENV),
        };
        c.output().unwrap()
    }

    #[test]
    fn a_missing_prerequisite_skips_on_a_laptop_and_fails_in_ci() {
        let why = "needs tracefs: TRACEFS points at /nonexistent, which is not a directory";
        let o = child(false);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        assert!(err.contains(&format!("SKIP child_needing_tracefs: {why}")), "{err}");

        let o = child(true);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(101), "{err}");
        assert!(err.contains(&format!("child_needing_tracefs: {why}")), "{err}");
        assert!(err.contains("(WASMPROBE_REQUIRE_ALL=1: a missing prerequisite fails the test)"), "{err}");
        assert!(!err.contains("SKIP"), "{err}");
    }

    #[test]
    fn names_the_test_it_is_written_in() {
        assert_eq!(test_name!(), "names_the_test_it_is_written_in");
        assert_eq!(last_segment("cli::a_test::here"), "a_test");
    }

    #[test]
    fn a_met_need_gives_ready_and_an_other_tier_kernel_is_not_a_prerequisite() {
        // Every machine running this has some pid namespace; only the outcome's kind is fixed.
        match check(Need::InitialPidNamespace) {
            Ok(()) | Err(Missing::Prerequisite(_)) => {}
            Err(Missing::OtherTier(why)) => panic!("{why}"),
        }
        assert!(require("nothing_needed", &[]).is_some());
        // Exactly one of kprobes / no_kprobes holds wherever tracefs does.
        if check(Need::Tracefs).is_ok() {
            let (k, n) = (check(Need::Kprobes), check(Need::NoKprobes));
            assert!(k.is_ok() != n.is_ok(), "{k:?} {n:?}");
            assert!(matches!(k.err().or(n.err()), Some(Missing::OtherTier(_))));
        }
    }
}
