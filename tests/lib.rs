//! Helpers for the kernel tests: deciding honestly whether a test can run here, and guards that
//! remove every probe a test made even when the test panics.

use std::path::PathBuf;

use tracefs::{DynEvent, Errno, Tracefs};

/// The live tracing directory, or `None` (with the reason printed) when this process cannot
/// use it: not root, or no tracefs. On the project's machines both hold, so tests run.
pub fn live_tracefs(test: &str) -> Option<Tracefs> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP {test}: needs root to write tracefs control files");
        return None;
    }
    match Tracefs::open() {
        Ok(t) => Some(t),
        Err(e) => {
            eprintln!("SKIP {test}: no usable tracefs: {e}");
            None
        }
    }
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
