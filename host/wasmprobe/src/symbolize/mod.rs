//! Stack symbolization on the host: kernel addresses through kallsyms (module symbols
//! included), user addresses through the process's mappings (read when the process is first
//! seen, kept after it exits, see [`maps`]) and the mapped file's ELF symbols and DWARF
//! (blazesym), with a cache per build id.
//!
//! Requests come in batches (one stack or many, one address space), never one frame per
//! call: a batch's user addresses are grouped by file and each file is asked once for all of
//! its offsets not already in the cache. A recording keeps what a replay needs: kallsyms is in
//! every trace.dat, and the mappings and build ids of the processes seen go in an option of
//! ours ([`OPTION_PROCESS_MAPS`]), which trace-cmd skips.

mod elf;
pub mod folded;
mod hook;
pub mod maps;

use std::collections::HashMap;
use std::sync::Arc;

pub use maps::{Anchor, Mapping, ProcMaps, Processes};

/// Our trace.dat option holding the mappings of the processes whose user stacks were seen
/// ([`Processes::to_bytes`]); 0x7770 is `datwrite::OPTION_WASMPROBE`.
pub const OPTION_PROCESS_MAPS: u16 = 0x7771;

/// Whose addresses a batch holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Space {
    /// Kernel text.
    Kernel,
    /// The user space of this process (a tgid, or a tid of it).
    User(i32),
}

/// One symbolized address.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    /// The address asked about.
    pub addr: u64,
    /// Function name (demangled), none when unknown.
    pub symbol: Option<String>,
    /// `addr` minus the start of the symbol (0 when unknown).
    pub offset: u64,
    /// Kernel: the module (none for vmlinux). User: the path of the mapped file.
    pub module: Option<String>,
    /// Source file from DWARF, when known.
    pub file: Option<String>,
    /// Source line from DWARF, when known.
    pub line: Option<u32>,
}

impl Frame {
    /// `symbol+0xoff` as the kernel prints `%pS` (`symbol` alone at offset 0), or `0xADDR`
    /// when unknown.
    pub fn label(&self) -> String {
        match &self.symbol {
            Some(s) if self.offset == 0 => s.clone(),
            Some(s) => format!("{s}+0x{:x}", self.offset),
            None => format!("0x{:x}", self.addr),
        }
    }
}

/// What the symbolizer did so far (for benchmarks and `--stats`-style notes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Addresses asked about.
    pub frames: u64,
    /// User addresses answered from the per-build-id cache.
    pub cached: u64,
    /// User addresses resolved through blazesym (cache misses).
    pub resolved: u64,
    /// Calls into blazesym (one per file per batch).
    pub elf_calls: u64,
}

/// A resolved user address, as cached (per file, per file offset).
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) symbol: Option<Arc<str>>,
    /// Offset from the symbol's start.
    pub(crate) offset: u64,
    pub(crate) file: Option<Arc<str>>,
    pub(crate) line: Option<u32>,
}

/// Which file a mapping shows: by build id when it has one (the same library in every
/// process shares one cache), else by path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum FileKey {
    BuildId(String),
    Path(String),
}

/// The symbolizer of a run: kallsyms, the process table and the per-file caches.
pub struct StackSymbolizer {
    kallsyms: traceevent::Symbols,
    procs: Processes,
    elf: elf::ElfThread,
    /// Per file: its resolved offsets.
    cache: HashMap<FileKey, HashMap<u64, Resolved>>,
    /// Per file: the path it is read from, or none when no file with that build id was found.
    files: HashMap<FileKey, Option<Located>>,
    stats: Stats,
}

impl StackSymbolizer {
    /// For a live run: kallsyms from `/proc` (read on the first kernel request), processes'
    /// mappings from `/proc/PID/maps` when they are first seen.
    pub fn live() -> Self {
        let mut kallsyms = traceevent::Symbols::new();
        kallsyms.defer_kallsyms(|| std::fs::read_to_string("/proc/kallsyms").unwrap_or_default());
        Self::with_kernel(kallsyms, Processes::live())
    }

    /// For a replay: the recording's kallsyms text (parsed on the first kernel request) and
    /// processes.
    pub fn replay(text: &str, procs: Processes) -> Self {
        let mut kallsyms = traceevent::Symbols::new();
        kallsyms.parse_kallsyms(text);
        Self::with_kernel(kallsyms, procs)
    }

    /// With a kernel symbol table of traceevent's (the one `report` prints `%pS` with), whose
    /// kallsyms are parsed on the first kernel request.
    pub fn with_kernel(kallsyms: traceevent::Symbols, procs: Processes) -> Self {
        StackSymbolizer {
            kallsyms,
            procs,
            elf: elf::ElfThread::default(),
            cache: HashMap::new(),
            files: HashMap::new(),
            stats: Stats::default(),
        }
    }

    /// A handle on the process table (shared): the pump calls [`Processes::observe`] on it,
    /// a recording writes it.
    pub fn processes(&self) -> Processes {
        self.procs.clone()
    }

    /// What was done so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Notes a process whose user stack was seen: its mappings are read now, while it lives,
    /// or placed from `anchor` if it is gone (see [`Processes::observe_anchored`]). Returns
    /// whether its mappings are known.
    pub fn process_seen(&mut self, pid: i32, anchor: Option<&maps::Anchor>) -> bool {
        self.procs.observe_anchored(pid, anchor)
    }

    /// Exactly one frame per address, in order.
    pub fn symbolize(&mut self, space: Space, addrs: &[u64]) -> Vec<Frame> {
        self.stats.frames += addrs.len() as u64;
        match space {
            Space::Kernel => self.kernel(addrs),
            Space::User(pid) => self.user(pid, addrs),
        }
    }

    fn kernel(&self, addrs: &[u64]) -> Vec<Frame> {
        addrs
            .iter()
            .map(|&addr| match self.kallsyms.lookup(addr) {
                Some(s) => Frame {
                    addr,
                    symbol: Some(s.name.to_string()),
                    offset: s.offset,
                    module: s.module.map(str::to_string),
                    ..Frame::default()
                },
                None => Frame { addr, ..Frame::default() },
            })
            .collect()
    }

    fn user(&mut self, pid: i32, addrs: &[u64]) -> Vec<Frame> {
        // Only processes the host was shown (see `Processes::known_as`).
        let Some(pid) = self.procs.known_as(pid) else {
            return addrs.iter().map(|&addr| Frame { addr, ..Frame::default() }).collect();
        };
        let mut maps = self.procs.get(pid);
        // An address outside every mapping known: the process may have exec'd or mapped a
        // library since; read its maps again (while it lives) once for the batch.
        if addrs.iter().any(|&a| a != 0 && maps.as_ref().is_none_or(|m| m.find(a).is_none())) && self.procs.refresh(pid)
        {
            maps = self.procs.get(pid);
        }
        let mut out: Vec<Frame> = addrs.iter().map(|&addr| Frame { addr, ..Frame::default() }).collect();
        let Some(maps) = maps else { return out };
        // Per file: (path, [(index in out, file offset)]) of the addresses not yet cached.
        let mut misses: HashMap<FileKey, Vec<(usize, u64)>> = HashMap::new();
        for (i, frame) in out.iter_mut().enumerate() {
            let Some(m) = maps.find(frame.addr) else { continue };
            frame.module = Some(m.path.clone());
            if !m.is_file() {
                continue;
            }
            let key = m.build_id.clone().map_or_else(|| FileKey::Path(m.path.clone()), FileKey::BuildId);
            let off = m.file_offset(frame.addr);
            if let Some(r) = self.cache.get(&key).and_then(|c| c.get(&off)) {
                fill(frame, r);
                self.stats.cached += 1;
                continue;
            }
            if !self.files.contains_key(&key) {
                let path = locate(&key, m);
                self.files.insert(key.clone(), path);
            }
            misses.entry(key).or_default().push((i, off));
        }
        // One round trip to the ELF thread for the batch: each file once, its offsets sorted.
        let mut jobs = Vec::new();
        let mut waiting = Vec::new();
        for (key, wanted) in misses {
            let Some(Some(file)) = self.files.get(&key) else { continue };
            let mut offsets: Vec<u64> = wanted.iter().map(|w| w.1).collect();
            offsets.sort_unstable();
            offsets.dedup();
            let (addrs, virt) = match &file.segments {
                // A debug file: its segments hold no bytes, so ask by virtual address.
                Some(segs) => (offsets.iter().map(|&o| elf::virt_of(segs, o).unwrap_or(u64::MAX)).collect(), true),
                None => (offsets.clone(), false),
            };
            // A distribution's debug file holds megabytes of compressed DWARF: its symbol table
            // names the frame; the program's own DWARF (file and line) is read.
            jobs.push((elf::Lookup { path: file.path.clone(), addrs, virt, dwarf: !virt }, offsets));
            waiting.push((key, wanted));
        }
        if jobs.is_empty() {
            return out;
        }
        self.stats.elf_calls += jobs.len() as u64;
        let (lookups, jobs): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
        let answers = self.elf.resolve(lookups);
        for (((key, wanted), offsets), resolved) in waiting.into_iter().zip(jobs).zip(answers) {
            self.stats.resolved += offsets.len() as u64;
            let cache = self.cache.entry(key).or_default();
            cache.extend(offsets.into_iter().zip(resolved));
            for (i, off) in wanted {
                if let Some(r) = cache.get(&off) {
                    fill(&mut out[i], r);
                }
            }
        }
        out
    }
}

fn fill(frame: &mut Frame, r: &Resolved) {
    frame.symbol = r.symbol.as_deref().map(str::to_string);
    frame.offset = r.offset;
    frame.file = r.file.as_deref().map(str::to_string);
    frame.line = r.line;
}

/// Where a file's symbols are read: `path`, by file offset, or (a debug file) by the virtual
/// address the mapped file's `segments` give an offset.
#[derive(Debug)]
struct Located {
    path: String,
    segments: Option<Vec<elf::Segment>>,
}

/// The file to read a mapping's symbols from: the debug file of its build id under
/// `/usr/lib/debug/.build-id/` when one is installed (a distribution's library keeps only its
/// dynamic symbols; its debug file has them all, and DWARF), else its path when the file there
/// is the one that was mapped (same build id), else none (a file replaced since, on a replay
/// elsewhere).
fn locate(key: &FileKey, m: &Mapping) -> Option<Located> {
    let path = m.path.strip_suffix(" (deleted)").unwrap_or(&m.path);
    let here = |path: &str| Located { path: path.to_string(), segments: None };
    match key {
        FileKey::Path(_) => std::path::Path::new(path).is_file().then(|| here(path)),
        FileKey::BuildId(id) => {
            let same = maps::read_build_id(path).as_deref() == Some(id.as_str());
            let debug = format!("/usr/lib/debug/.build-id/{}/{}.debug", id.get(..2)?, id.get(2..)?);
            if same && maps::read_build_id(&debug).as_deref() == Some(id.as_str()) {
                if let Some(segments) = elf::load_segments(path) {
                    return Some(Located { path: debug, segments: Some(segments) });
                }
            }
            same.then(|| here(path))
        }
    }
}

#[cfg(test)]
mod tests;
