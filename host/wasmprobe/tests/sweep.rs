//! What a run killed with SIGKILL leaves in the kernel (its instance, its probe group) is
//! removed by the next `run`, `record` or `stream`, which says so on stderr, one line each;
//! nobody has to run `wasmprobe cleanup`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use testkit::require;
use tracefs::{dynevent_get_all, instances, Instance, Tracefs};

fn wasmprobe() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wasmprobe"));
    c.env("WASMPROBE_CACHE", std::env::temp_dir().join("wasmprobe-test-cache"));
    c
}

fn owned_by(name: &str, pid: u32) -> bool {
    [format!("wasmprobe-{pid}"), format!("wasmprobe_{pid}")]
        .iter()
        .any(|p| name.strip_prefix(p.as_str()).is_some_and(|r| r.is_empty() || r.starts_with(['-', '_'])))
}

/// What the kernel has of process `pid`, as the sweep announces it once the process is gone.
fn leftovers(t: &Tracefs, pid: u32) -> Vec<String> {
    let mut left: Vec<String> = instances(t)
        .unwrap()
        .into_iter()
        .filter(|n| owned_by(n, pid))
        .map(|n| format!("wasmprobe: removed instance {n} left by exited process {pid}"))
        .collect();
    for ev in dynevent_get_all(t, &[], None).unwrap().into_iter().filter(|e| owned_by(&e.system, pid)) {
        left.push(format!("wasmprobe: removed {} {} left by exited process {pid}", ev.kind.name(), ev.full_name()));
    }
    left.sort();
    left
}

/// Kills and reaps the runs it holds, then removes whatever they left, however the test ends.
struct Victims {
    t: Tracefs,
    children: Mutex<Vec<Child>>,
}

impl Victims {
    fn remove_leftovers(&self, pid: u32) {
        for n in instances(&self.t).unwrap_or_default().into_iter().filter(|n| owned_by(n, pid)) {
            if let Ok(i) = Instance::open(&self.t, &n) {
                let _ = i.destroy();
            }
        }
        let groups: Vec<String> = dynevent_get_all(&self.t, &[], None)
            .unwrap_or_default()
            .into_iter()
            .filter(|e| owned_by(&e.system, pid))
            .map(|e| e.system)
            .collect();
        for g in groups {
            let _ = tracefs::dynevent_destroy_all(&self.t, &[], Some(&g), true);
        }
    }
}

impl Drop for Victims {
    fn drop(&mut self) {
        for mut c in self.children.lock().unwrap().drain(..) {
            let _ = c.kill();
            let _ = c.wait();
            self.remove_leftovers(c.id());
        }
    }
}

/// Starts wasmprobe with `args`, waits until it is tracing (its `instances` instances and
/// `probes` probes exist), kills it with SIGKILL, and returns its pid and the lines the sweep
/// will print.
fn kill_mid_run(v: &Victims, args: &[&str], instances: usize, probes: usize) -> (u32, Vec<String>) {
    let child = wasmprobe().args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let pid = child.id();
    v.children.lock().unwrap().push(child);
    let start = Instant::now();
    loop {
        let left = leftovers(&v.t, pid);
        let inst = left.iter().filter(|l| l.contains(" instance ")).count();
        if inst == instances && left.len() == instances + probes {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{args:?} never armed: {left:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    let mut children = v.children.lock().unwrap();
    let i = children.iter().position(|c| c.id() == pid).unwrap();
    let status = children[i].wait().unwrap();
    drop(children);
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9));
    let left = leftovers(&v.t, pid);
    assert_eq!(left.len(), instances + probes, "a killed run leaves its instances and probes: {left:?}");
    (pid, left)
}

/// Runs `args` to its end (bounded) and returns its stderr.
fn sweeper(args: &[&str]) -> String {
    let mut child = wasmprobe().args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("{args:?} still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{args:?}: {err}");
    err
}

fn check_swept(t: &Tracefs, pid: u32, expected: &[String], stderr: &str, by: &str) {
    let mut said: Vec<&str> = stderr.lines().filter(|l| l.contains(&format!("exited process {pid}"))).collect();
    said.sort();
    assert_eq!(said, expected, "{by} says what it removed: {stderr}");
    assert_eq!(leftovers(t, pid), Vec::<String>::new(), "{by} removed what process {pid} left");
}

#[test]
fn the_next_run_record_or_stream_removes_what_a_killed_run_left_and_says_so() {
    // Runs sweep only in the initial pid namespace, where a pid names any process.
    let t = require!(root, tracefs, uprobes, initial_pid_namespace).tracefs();
    let v = Victims { t: t.clone(), children: Mutex::new(Vec::new()) };
    let dir = tempfile::tempdir().unwrap();
    let dat: PathBuf = dir.path().join("x.dat");

    // A plugin run (exec-open: four probes in its own group, its instance and the instance
    // that keeps exit names), then `stream`.
    let probes = if tracefs::kprobes_supported(&t) { 2 } else { 4 };
    let (pid, expected) = kill_mid_run(&v, &["run", "exec-open"], 2, probes);
    assert!(expected.iter().any(|l| l.contains(&format!(" instance wasmprobe-{pid}-exec_open "))), "{expected:?}");
    assert!(expected.iter().any(|l| l.contains(&format!(" instance wasmprobe-{pid}-comm "))), "{expected:?}");
    let err = sweeper(&["stream", "-e", "sched:sched_process_exit", "--duration", "100ms"]);
    check_swept(&t, pid, &expected, &err, "stream");

    // A stream (its instance), then `run`.
    let (pid, expected) = kill_mid_run(&v, &["stream", "-e", "sched:sched_process_exit"], 1, 0);
    let err = sweeper(&["run", "syscount", "--duration", "100ms"]);
    check_swept(&t, pid, &expected, &err, "run");

    // A recording (its instance), then `record`.
    let (pid, expected) =
        kill_mid_run(&v, &["record", "-o", dat.to_str().unwrap(), "-e", "sched:sched_process_exit"], 1, 0);
    let err =
        sweeper(&["record", "-o", dat.to_str().unwrap(), "-e", "sched:sched_process_exit", "--duration", "100ms"]);
    check_swept(&t, pid, &expected, &err, "record");

    // Nothing left to sweep: not a word about it.
    let err = sweeper(&["stream", "-e", "sched:sched_process_exit", "--duration", "100ms"]);
    assert!(!err.contains("removed"), "{err}");
}
