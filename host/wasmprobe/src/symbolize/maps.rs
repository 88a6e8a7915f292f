//! The executable mappings of the processes a run has seen, read from `/proc/PID/maps` when a
//! process is first seen and kept after it exits, so that its user stacks can still be
//! symbolized at the end of the run (bpftrace#246), and written into a recording so that a
//! replay symbolizes them the same way.
//!
//! A maps line: `55d0c3a00000-55d0c3a01000 r-xp 00001000 08:01 1234567   /usr/bin/cat`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// One executable mapping of a process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    /// First address of the mapping.
    pub start: u64,
    /// One past its last address.
    pub end: u64,
    /// Offset in the file of `start`.
    pub offset: u64,
    /// The mapped file (`/usr/lib/x86_64-linux-gnu/libc.so.6`), or a pseudo name such as
    /// `[vdso]`; ` (deleted)` kept as the kernel writes it.
    pub path: String,
    /// The file's GNU build id in hex, read when the mapping was first seen (none for pseudo
    /// files and files without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
}

impl Mapping {
    /// Whether the mapping is of a file on disk (not `[vdso]`, `[heap]`, anonymous memory).
    pub fn is_file(&self) -> bool {
        self.path.starts_with('/')
    }

    /// The file offset `addr` (inside the mapping) corresponds to.
    pub fn file_offset(&self, addr: u64) -> u64 {
        addr - self.start + self.offset
    }
}

/// The executable mappings of one process (thread group), sorted by address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcMaps {
    /// Thread group id.
    pub pid: i32,
    /// Executable mappings, by start address.
    pub mappings: Vec<Mapping>,
}

impl ProcMaps {
    /// The mapping that contains `addr`.
    pub fn find(&self, addr: u64) -> Option<&Mapping> {
        let i = self.mappings.partition_point(|m| m.start <= addr).checked_sub(1)?;
        let m = &self.mappings[i];
        (addr < m.end).then_some(m)
    }
}

/// Parses the executable mappings of a `/proc/PID/maps` text; build ids are left empty.
pub fn parse_maps(pid: i32, text: &str) -> ProcMaps {
    let mut mappings = Vec::new();
    for line in text.lines() {
        let mut rest = line;
        let mut fields = [""; 5];
        for f in &mut fields {
            rest = rest.trim_start();
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            *f = &rest[..end];
            rest = &rest[end..];
        }
        let [range, perms, offset, _dev, _inode] = fields;
        if !perms.contains('x') {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else { continue };
        let (Ok(start), Ok(end), Ok(offset)) =
            (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16), u64::from_str_radix(offset, 16))
        else {
            continue;
        };
        let path = rest.trim().to_string();
        mappings.push(Mapping { start, end, offset, path, build_id: None });
    }
    mappings.sort_by_key(|m| m.start);
    ProcMaps { pid, mappings }
}

/// The GNU build id of an ELF file, in hex.
pub fn read_build_id(path: &str) -> Option<String> {
    let id = blazesym::helper::read_elf_build_id(path).ok()??;
    Some(hex(&id))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a process's code was, known without its maps: the first user frame of a uprobe's
/// event is the probed instruction, at `file_offset` in `path`. It places the file's segment
/// holding that offset for a process that exited before its maps could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// The probed ELF file.
    pub path: String,
    /// The probe's offset in the file.
    pub file_offset: u64,
    /// The probed instruction's address in the process (the event's first user frame).
    pub addr: u64,
}

/// The mapping of `anchor`'s file segment (the `PT_LOAD` holding the probed offset) in the
/// process it was seen in.
fn anchored_mapping(anchor: &Anchor) -> Option<Mapping> {
    let segments = super::elf::load_segments(&anchor.path)?;
    let s = segments.iter().find(|s| s.offset <= anchor.file_offset && anchor.file_offset - s.offset < s.filesz)?;
    let start = anchor.addr.checked_sub(anchor.file_offset - s.offset)?;
    Some(Mapping {
        start,
        end: start.checked_add(s.filesz)?,
        offset: s.offset,
        path: anchor.path.clone(),
        build_id: None,
    })
}

/// The processes seen so far and their mappings, shared by whoever sees records (and calls
/// [`observe`](Processes::observe)) and the symbolizer. Cloning shares the table.
#[derive(Debug, Clone, Default)]
pub struct Processes {
    inner: Arc<Mutex<Table>>,
}

#[derive(Debug, Default)]
struct Table {
    procs: HashMap<i32, Arc<ProcMaps>>,
    /// Build ids by path: each file is read once per run, not once per process.
    build_ids: HashMap<String, Option<String>>,
    /// Whether live `/proc` may be read (false in a replay: the recording's maps are all).
    live: bool,
    /// When each process's maps were last read again by [`Processes::refresh`].
    refreshed: HashMap<i32, std::time::Instant>,
    /// Threads asked about, by the process ([`Processes::known_as`]) they belong to (`None`:
    /// not one of ours).
    threads: HashMap<i32, Option<i32>>,
}

/// A process's maps are read again at most this often: addresses no mapping holds (JIT code,
/// a stack walked into garbage) would otherwise cost a read of `/proc/PID/maps` per batch.
const REFRESH_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

impl Processes {
    /// A table that reads `/proc/PID/maps` of processes it has not seen.
    pub fn live() -> Self {
        Processes { inner: Arc::new(Mutex::new(Table { live: true, ..Table::default() })) }
    }

    /// A table of recorded processes only (a replay): `/proc` is never read.
    pub fn recorded(procs: Vec<ProcMaps>) -> Self {
        let procs = procs.into_iter().map(|p| (p.pid, Arc::new(p))).collect();
        Processes { inner: Arc::new(Mutex::new(Table { procs, ..Table::default() })) }
    }

    /// Called for each process whose user stack is seen (cheap when already known): reads its
    /// mappings while it is alive. Returns whether its mappings are known.
    pub fn observe(&self, pid: i32) -> bool {
        let mut t = self.inner.lock().unwrap();
        if t.procs.contains_key(&pid) {
            return true;
        }
        t.read(pid)
    }

    /// [`observe`](Processes::observe), and for a process already gone whose event carries
    /// an [`Anchor`], the anchored file's segment (only that file's frames get names: its
    /// other mappings died with it). Short-lived processes are bpftrace#246's case: a run
    /// reads maps when a batch is delivered, milliseconds after the event.
    pub fn observe_anchored(&self, pid: i32, anchor: Option<&Anchor>) -> bool {
        let mut t = self.inner.lock().unwrap();
        if t.procs.contains_key(&pid) || t.read(pid) {
            return true;
        }
        let Some(mut m) = anchor.and_then(anchored_mapping) else { return false };
        let id = t.build_ids.entry(m.path.clone()).or_insert_with(|| read_build_id(&m.path));
        m.build_id = id.clone();
        t.procs.insert(pid, Arc::new(ProcMaps { pid, mappings: vec![m] }));
        true
    }

    /// The process in the table that `pid` is, or whose thread it is: what a plugin's
    /// `symbolize` may ask about. Unlike [`observe`](Processes::observe) it never adds a
    /// process, so a plugin cannot read the mappings of processes it was not shown.
    pub fn known_as(&self, pid: i32) -> Option<i32> {
        let mut t = self.inner.lock().unwrap();
        if t.procs.contains_key(&pid) {
            return Some(pid);
        }
        if let Some(&tgid) = t.threads.get(&pid) {
            return tgid;
        }
        let tgid = match t.live && pid > 0 {
            true => std::fs::read_to_string(format!("/proc/{pid}/status")).ok().and_then(|s| {
                s.lines().find_map(|l| l.strip_prefix("Tgid:")).and_then(|v| v.trim().parse::<i32>().ok())
            }),
            false => None,
        };
        let tgid = tgid.filter(|g| t.procs.contains_key(g));
        if t.threads.len() < 65536 {
            t.threads.insert(pid, tgid);
        }
        tgid
    }

    /// Reads the mappings of a known live process again (after an exec, or when an address
    /// fell outside every mapping known), at most every 100 ms per process; keeps what was
    /// known if the process is gone. Returns whether its mappings are known.
    pub fn refresh(&self, pid: i32) -> bool {
        let mut t = self.inner.lock().unwrap();
        if !t.procs.contains_key(&pid) {
            return false;
        }
        let now = std::time::Instant::now();
        if t.refreshed.get(&pid).is_some_and(|at| now.duration_since(*at) < REFRESH_EVERY) {
            return t.procs.contains_key(&pid);
        }
        t.refreshed.insert(pid, now);
        t.read(pid)
    }

    /// The mappings of `pid`, if it was seen.
    pub fn get(&self, pid: i32) -> Option<Arc<ProcMaps>> {
        self.inner.lock().unwrap().procs.get(&pid).cloned()
    }

    /// Every process seen, by pid: what a recording keeps.
    pub fn snapshot(&self) -> Vec<ProcMaps> {
        let t = self.inner.lock().unwrap();
        let mut v: Vec<ProcMaps> = t.procs.values().map(|p| (**p).clone()).collect();
        v.sort_by_key(|p| p.pid);
        v
    }

    /// How many processes are known.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap().procs.len()
    }

    /// Whether no process is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The recording's form of the table (a trace.dat option of ours, see
    /// [`OPTION_PROCESS_MAPS`](super::OPTION_PROCESS_MAPS)): JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.snapshot()).unwrap_or_default()
    }

    /// A replay's table from [`to_bytes`](Processes::to_bytes)' output.
    pub fn from_bytes(bytes: &[u8]) -> anyhow::Result<Self> {
        Ok(Processes::recorded(serde_json::from_slice(bytes)?))
    }
}

impl Table {
    fn read(&mut self, pid: i32) -> bool {
        if !self.live || pid <= 0 {
            return self.procs.contains_key(&pid);
        }
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
            return self.procs.contains_key(&pid);
        };
        let mut maps = parse_maps(pid, &text);
        if maps.mappings.is_empty() {
            // A kernel thread, or a process caught between exit and reaping.
            return self.procs.contains_key(&pid);
        }
        for m in maps.mappings.iter_mut().filter(|m| m.is_file()) {
            let id = self.build_ids.entry(m.path.clone()).or_insert_with(|| read_build_id(&m.path));
            m.build_id = id.clone();
        }
        self.procs.insert(pid, Arc::new(maps));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_executable_mappings_only() {
        let text = "\
5591a0000000-5591a0001000 r--p 00000000 08:01 1234                       /usr/bin/my prog\n\
5591a0001000-5591a0003000 r-xp 00001000 08:01 1234                       /usr/bin/my prog\n\
7f0000000000-7f0000100000 r-xp 00028000 08:01 99                         /usr/lib/libc.so.6\n\
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0                          [vdso]\n\
7ffe00000000-7ffe00021000 rw-p 00000000 00:00 0                          [stack]\n";
        let m = parse_maps(42, text);
        assert_eq!(m.mappings.len(), 3);
        let prog = m.find(0x5591_a000_1010).unwrap();
        assert_eq!((prog.path.as_str(), prog.file_offset(0x5591_a000_1010)), ("/usr/bin/my prog", 0x1010));
        assert_eq!(m.find(0x7f00_0000_0010).unwrap().file_offset(0x7f00_0000_0010), 0x28010);
        assert!(m.find(0x5591_a000_0010).is_none(), "not executable");
        assert!(m.find(0x7f00_0010_0000).is_none(), "one past the end");
        assert!(!m.find(0x7ffd_0000_0000).unwrap().is_file());
    }

    #[test]
    fn a_process_is_kept_after_it_exits_and_travels_as_bytes() {
        let procs = Processes::live();
        let mut child = std::process::Command::new("/bin/sleep").arg("10").spawn().unwrap();
        let pid = child.id() as i32;
        // Reading the maps of a child that has not exec'd yet (or whose exec has not mapped
        // the program yet) would give ours: wait for sleep's text.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mapped = || {
            let text = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
            parse_maps(pid, &text).mappings.iter().any(|m| m.path.ends_with("/sleep"))
        };
        while !mapped() {
            assert!(std::time::Instant::now() < deadline, "sleep did not exec");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(procs.observe(pid));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(procs.observe(pid), "kept after exit");
        assert!(procs.refresh(pid), "a refresh of an exited process keeps what was known");
        let maps = procs.get(pid).unwrap();
        let sleep = maps.mappings.iter().find(|m| m.path.ends_with("/sleep")).expect("sleep's text is mapped");
        assert!(sleep.build_id.as_ref().is_some_and(|b| b.len() >= 16), "{sleep:?}");
        let replayed = Processes::from_bytes(&procs.to_bytes()).unwrap();
        assert_eq!(replayed.snapshot(), procs.snapshot());
        assert!(!replayed.observe(pid + 1_000_000), "a replay reads no /proc");
    }
}
