//! A uprobe target must be a program or a shared library: an existing regular ELF file with an
//! executable segment; a bare name is only a library name (ld.so's search, never the current
//! directory). Anything else is refused by wasmprobe before anything is written to tracefs,
//! through `wasmprobe uprobe add` and through a plugin's plan alike, with one line saying so.
//!
//! "Nothing written" is watched, not inferred: the refusals run against a scratch tracefs
//! directory (`TRACEFS=`) under inotify, which sees every create, write and removal; the same
//! refusals against the real tracefs then leave nothing of ours there.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use testkit::{need, require};

/// What `wasmprobe run` puts before a probe's arming error (the tag of the hostile plugin).
const RUN_PREFIX: &str = "wasmprobe: error: hostile_plan: cannot arm the probes: ";
const REAL: &str = "/sys/kernel/tracing";

fn guest(stem: &str) -> PathBuf {
    PathBuf::from(env!("OUT_DIR")).join("guests").join(format!("{stem}.wasm"))
}

/// Runs wasmprobe in `cwd` with `env`, killed if it takes more than 60 s (a FIFO that blocked
/// the host would otherwise hang the test).
fn wasmprobe(args: &[&str], cwd: &Path, env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmprobe"));
    cmd.args(args)
        .current_dir(cwd)
        .env("WASMPROBE_CACHE", std::env::temp_dir().join("wasmprobe-test-cache"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run wasmprobe");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!("wasmprobe {args:?} still running after 60 s: {}", String::from_utf8_lossy(&o.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// A scratch tracefs tree: what wasmprobe looks at before it arms anything.
fn scratch_tracefs(dir: &Path) -> PathBuf {
    let t = dir.join("tracing");
    std::fs::create_dir_all(t.join("instances")).unwrap();
    std::fs::create_dir_all(t.join("events/raw_syscalls/sys_enter")).unwrap();
    for f in ["uprobe_events", "kprobe_events", "dynamic_events", "error_log", "available_events"] {
        std::fs::write(t.join(f), "").unwrap();
    }
    std::fs::write(t.join("events/raw_syscalls/sys_enter/filter"), "none\n").unwrap();
    t
}

/// An inotify watch on directories: every create, write, attribute change, move or removal in
/// them is an event.
struct Watch(OwnedFd);

impl Watch {
    fn new(dirs: &[PathBuf]) -> Watch {
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(fd >= 0, "inotify_init1: {}", std::io::Error::last_os_error());
        let w = Watch(unsafe { OwnedFd::from_raw_fd(fd) });
        let mask = libc::IN_CREATE
            | libc::IN_DELETE
            | libc::IN_MODIFY
            | libc::IN_CLOSE_WRITE
            | libc::IN_ATTRIB
            | libc::IN_MOVED_FROM
            | libc::IN_MOVED_TO;
        for d in dirs {
            let c = CString::new(d.to_str().unwrap()).unwrap();
            let wd = unsafe { libc::inotify_add_watch(fd, c.as_ptr(), mask) };
            assert!(wd >= 0, "inotify_add_watch {}: {}", d.display(), std::io::Error::last_os_error());
        }
        w
    }

    /// The names of what changed since the last call.
    fn changes(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return out;
            }
            let mut at = 0;
            while at + 16 <= n as usize {
                let mask = u32::from_ne_bytes(buf[at + 4..at + 8].try_into().unwrap());
                let len = u32::from_ne_bytes(buf[at + 12..at + 16].try_into().unwrap()) as usize;
                let name = String::from_utf8_lossy(&buf[at + 16..at + 16 + len]);
                out.push(format!("{} (mask {mask:#x})", name.trim_end_matches('\0')));
                at += 16 + len;
            }
        }
    }
}

/// Stderr without the lines that say what dead runs left and this run removed (the real
/// tracefs is shared with whatever else runs on the machine).
fn without_sweep(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| !l.starts_with("wasmprobe: removed "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Every kind of file that is not a program, each with the reason wasmprobe gives.
struct NotPrograms {
    _dir: tempfile::TempDir,
    /// `(target, path as the message names it, reason)`.
    cases: Vec<(String, String, String)>,
    /// Holds an ELF copy named `mytool` (a bare name must not find it).
    cwd: PathBuf,
}

fn not_programs() -> NotPrograms {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut cases = Vec::new();
    let mut case = |path: &str, reason: &str| cases.push((format!("{path}:0x0"), path.to_string(), reason.to_string()));
    case("/etc/shadow", "not an ELF file");
    std::fs::create_dir(d.join("dir")).unwrap();
    case(&format!("{}/dir", d.display()), "not a regular file (a directory)");
    nix::unistd::mkfifo(&d.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    case(&format!("{}/fifo", d.display()), "not a regular file (a FIFO)");
    case("/dev/zero", "not a regular file (a character device)");
    // An object file: ELF, but not a program (and no program headers at all).
    std::fs::write(d.join("f.c"), "int f(void) { return 1; }\n").unwrap();
    let cc = Command::new("cc").arg("-c").arg(d.join("f.c")).arg("-o").arg(d.join("f.o")).status().expect("run cc");
    assert!(cc.success(), "cc -c f.c");
    case(&format!("{}/f.o", d.display()), "an ELF relocatable object (.o), not a program or shared library");
    // A program whose loadable segments are none of them executable (PF_X cleared).
    let mut b = std::fs::read("/bin/true").unwrap();
    assert_eq!((&b[..4], b[4], b[5]), (&b"\x7fELF"[..], 2, 1), "a 64-bit little-endian /bin/true");
    let phoff = u64::from_le_bytes(b[32..40].try_into().unwrap()) as usize;
    let (size, n) = (u16::from_le_bytes([b[54], b[55]]) as usize, u16::from_le_bytes([b[56], b[57]]) as usize);
    for i in 0..n {
        b[phoff + i * size + 4] &= !1;
    }
    std::fs::write(d.join("noexec"), &b).unwrap();
    case(&format!("{}/noexec", d.display()), "an ELF file with no executable segment (no PT_LOAD with PF_X)");
    // A real program, in the current directory, under a bare name: not a library.
    let cwd = d.join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    std::fs::copy("/bin/true", cwd.join("mytool")).unwrap();
    cases.push((
        "mytool:0x0".into(),
        "mytool".into(),
        "no shared library of that name in ld.so.cache or the system library directories (a PATH without \
         '/' is only looked up as a library, never in the current directory; give a program's absolute path)"
            .into(),
    ));
    NotPrograms { _dir: dir, cases, cwd }
}

#[test]
fn a_plan_uprobe_on_a_file_that_is_not_a_program_is_refused_before_anything_is_written() {
    let np = not_programs();
    let scratch = tempfile::tempdir().unwrap();
    let t = scratch_tracefs(scratch.path());
    let watch = Watch::new(&[t.clone(), t.join("instances"), t.join("events/raw_syscalls/sys_enter")]);
    let plugin = guest("hostile_plan");
    for (target, path, reason) in &np.cases {
        let arg = format!("target={target}");
        let args = ["run", plugin.to_str().unwrap(), "--arg", "case=uprobe", "--arg", &arg];
        let o = wasmprobe(&args, &np.cwd, &[("TRACEFS", &t)]);
        assert_eq!(o.status.code(), Some(1), "{target}");
        assert_eq!(
            String::from_utf8_lossy(&o.stderr),
            format!("{RUN_PREFIX}probe target: uprobe target {path}: refused by wasmprobe: {reason}\n"),
            "{target}"
        );
        assert_eq!(watch.changes(), Vec::<String>::new(), "{target}: nothing is written to tracefs");
    }
    require!("the real-tracefs half": root, tracefs, uprobes);
    for (target, path, reason) in &np.cases {
        let arg = format!("target={target}");
        let args = ["run", plugin.to_str().unwrap(), "--arg", "case=uprobe", "--arg", &arg];
        let child = Command::new(env!("CARGO_BIN_EXE_wasmprobe"))
            .args(args)
            .current_dir(&np.cwd)
            .env("WASMPROBE_CACHE", std::env::temp_dir().join("wasmprobe-test-cache"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let o = child.wait_with_output().unwrap();
        assert_eq!(
            without_sweep(&o.stderr),
            format!("{RUN_PREFIX}probe target: uprobe target {path}: refused by wasmprobe: {reason}\n"),
            "{target}"
        );
        assert_eq!(o.status.code(), Some(1), "{target}");
        assert_eq!(testkit::leftovers(pid), Vec::<String>::new(), "{target}");
    }
}

#[test]
fn uprobe_add_on_a_file_that_is_not_a_program_is_refused_before_anything_is_written() {
    let np = not_programs();
    let scratch = tempfile::tempdir().unwrap();
    let t = scratch_tracefs(scratch.path());
    let watch = Watch::new(&[t.clone(), t.join("instances")]);
    let group = format!("wasmprobe_{}_utargets", std::process::id());
    let half = format!("{}: the real-tracefs half", testkit::test_name!());
    let live = testkit::require(&half, &[need::root, need::tracefs, need::uprobes]).is_some();
    for (target, path, reason) in &np.cases {
        let args = ["uprobe", "add", "-s", &group, "-e", "x", target];
        let o = wasmprobe(&args, &np.cwd, &[("TRACEFS", &t)]);
        assert_eq!(o.status.code(), Some(1), "{target}");
        let expected =
            format!("wasmprobe: error: probe {group}/x: uprobe target {path}: refused by wasmprobe: {reason}\n");
        assert_eq!(String::from_utf8_lossy(&o.stderr), expected, "{target}");
        assert_eq!(watch.changes(), Vec::<String>::new(), "{target}: nothing is written to tracefs");
        if live {
            let o = wasmprobe(&args, &np.cwd, &[]);
            assert_eq!(without_sweep(&o.stderr), expected, "{target}");
            let events = std::fs::read_to_string(format!("{REAL}/uprobe_events")).unwrap();
            if events.contains(&group) {
                let _ = std::fs::write(format!("{REAL}/uprobe_events"), format!("-:{group}/x\n"));
                panic!("{target}: the kernel has {group}/x: {events}");
            }
        }
    }
}

/// `/etc/shadow:root` once blamed the kernel although our own ELF reader had refused it.
#[test]
fn a_symbol_in_a_file_that_is_not_elf_is_refused_by_us_not_the_kernel() {
    let scratch = tempfile::tempdir().unwrap();
    let t = scratch_tracefs(scratch.path());
    let o = wasmprobe(&["uprobe", "add", "-e", "x", "/etc/shadow:root"], scratch.path(), &[("TRACEFS", &t)]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "wasmprobe: error: probe uprobes/x: uprobe target /etc/shadow: refused by wasmprobe: not an ELF file\n"
    );
}

/// A library by its bare name still resolves (through ld.so.cache), in a plan and on the
/// command line, whatever the current directory holds.
#[test]
fn libc_by_name_still_resolves() {
    require!(root, tracefs, uprobes);
    let np = not_programs();
    // A decoy named like the library in the current directory changes nothing.
    std::fs::copy("/bin/true", np.cwd.join("libc")).unwrap();
    let group = format!("wasmprobe_{}_ulibc", std::process::id());
    struct Guard(String);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = std::fs::write(format!("{REAL}/uprobe_events"), format!("-:{}/open\n", self.0));
        }
    }
    let _guard = Guard(group.clone());
    let o = wasmprobe(&["uprobe", "add", "-s", &group, "-e", "open", "libc:open"], &np.cwd, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let libc = tracefs::resolve_target("libc:open").unwrap();
    assert!(libc.path.starts_with("/usr/lib") || libc.path.starts_with("/lib"), "{libc:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("created uprobe {group}/open at {}:0x{:016x}\n", libc.path.display(), libc.offset)
    );
    let o = wasmprobe(&["uprobe", "remove", "-s", &group, "-e", "open"], &np.cwd, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let plugin = guest("hostile_plan");
    let args =
        ["run", plugin.to_str().unwrap(), "--arg", "case=uprobe", "--arg", "target=libc:open", "--duration", "300ms"];
    let child = Command::new(env!("CARGO_BIN_EXE_wasmprobe"))
        .args(args)
        .current_dir(&np.cwd)
        .env("WASMPROBE_CACHE", std::env::temp_dir().join("wasmprobe-test-cache"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(testkit::leftovers(pid), Vec::<String>::new());
}

/// `inspect` gives the verdict the run would give.
#[test]
fn inspect_shows_the_refusal() {
    let scratch = tempfile::tempdir().unwrap();
    let t = scratch_tracefs(scratch.path());
    let plugin = guest("hostile_plan");
    let args = ["inspect", plugin.to_str().unwrap(), "--arg", "case=uprobe", "--arg", "target=/etc/shadow:0x0"];
    let o = wasmprobe(&args, scratch.path(), &[("TRACEFS", &t)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[2].ends_with("[REFUSED: uprobe target /etc/shadow: refused by wasmprobe: not an ELF file]"), "{out}");
    assert_eq!(
        lines[3],
        "plan: refused: probe target: uprobe target /etc/shadow: refused by wasmprobe: not an ELF file"
    );
}
