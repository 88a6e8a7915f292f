//! The thread that owns blazesym. Its symbolizer keeps each ELF file it has parsed (symbol
//! tables, DWARF) but is not `Send` (it shares parsers through `Rc`), while a plugin's
//! symbolizer moves with the plugin between threads: so blazesym lives on a thread of its own,
//! started on the first request, and each batch is one round trip (every file of the batch,
//! every offset of each file). The thread ends when its [`ElfThread`] is dropped.

use std::sync::mpsc;
use std::sync::Arc;

use blazesym::symbolize::source::{Elf, Source};
use blazesym::symbolize::{Input, Symbolized, Symbolizer};

use super::Resolved;

/// The addresses of one file to resolve: file offsets, or (`virt`) virtual addresses of the
/// file (for a debug file, whose segments hold no bytes: its file offsets mean nothing).
#[derive(Debug, Clone)]
pub(crate) struct Lookup {
    pub(crate) path: String,
    pub(crate) addrs: Vec<u64>,
    pub(crate) virt: bool,
    /// Whether to read DWARF (file and line) besides the symbol tables.
    pub(crate) dwarf: bool,
}

/// The lookups; the answer has one [`Resolved`] per address of each, in order.
type Job = (Vec<Lookup>, mpsc::Sender<Vec<Vec<Resolved>>>);

/// A handle on the blazesym thread.
#[derive(Default)]
pub(crate) struct ElfThread {
    tx: Option<mpsc::Sender<Job>>,
}

impl ElfThread {
    /// Resolves every file's offsets; a file that cannot be read gives unknown symbols.
    pub(crate) fn resolve(&mut self, files: Vec<Lookup>) -> Vec<Vec<Resolved>> {
        let unknown = |files: &[Lookup]| files.iter().map(|f| vec![Resolved::UNKNOWN; f.addrs.len()]).collect();
        let tx = self.tx.get_or_insert_with(spawn);
        let (reply, answer) = mpsc::channel();
        if tx.send((files.clone(), reply)).is_err() {
            self.tx = None;
            return unknown(&files);
        }
        answer.recv().unwrap_or_else(|_| {
            self.tx = None;
            unknown(&files)
        })
    }
}

impl Resolved {
    const UNKNOWN: Resolved = Resolved { symbol: None, offset: 0, file: None, line: None };
}

fn spawn() -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel::<Job>();
    let started = std::thread::Builder::new().name("wasmprobe-symbolize".into()).spawn(move || {
        let blaze =
            Symbolizer::builder().enable_inlined_fns(false).enable_auto_reload(false).enable_demangling(false).build();
        for (files, reply) in rx {
            let answer = files.iter().map(|l| resolve(&blaze, l)).collect();
            let _ = reply.send(answer);
        }
    });
    // Without a thread the receiver is dropped: every send fails and answers are unknown.
    drop(started);
    tx
}

/// One pass over the file (ELF symbols, and DWARF where the file or its debug file has it).
/// Names are demangled here, not by blazesym: blazesym 0.2.7 hands every name of unknown
/// language to the C++ demangler, which reads C functions named `a`, `b`, `c` as the type
/// codes `signed char`, `bool`, `char`.
fn resolve(blaze: &Symbolizer, l: &Lookup) -> Vec<Resolved> {
    let input = || if l.virt { Input::VirtOffset(&l.addrs[..]) } else { Input::FileOffset(&l.addrs[..]) };
    // DWARF it cannot read (a compression it was built without, a damaged section): the
    // symbol tables alone.
    let tables = || blaze.symbolize(&Source::Elf(Elf { debug_syms: false, ..Elf::new(&l.path) }), input());
    let syms = match l.dwarf {
        true => blaze.symbolize(&Source::Elf(Elf::new(&l.path)), input()).or_else(|_| tables()),
        false => tables(),
    };
    let Ok(syms) = syms else {
        return vec![Resolved::UNKNOWN; l.addrs.len()];
    };
    syms.into_iter()
        .map(|sym| match sym {
            Symbolized::Sym(s) => Resolved {
                symbol: Some(Arc::from(demangle(&s.name).as_str())),
                offset: s.offset as u64,
                file: s.code_info.as_ref().map(|c| Arc::from(&*c.to_path().to_string_lossy())),
                line: s.code_info.as_ref().and_then(|c| c.line),
            },
            Symbolized::Unknown(_) => Resolved::UNKNOWN,
        })
        .collect()
}

/// A Rust name (legacy `_ZN...E` or v0 `_R...`) without its hash, a C++ name (`_Z...`)
/// demangled, anything else as it is.
pub(crate) fn demangle(name: &str) -> String {
    if let Ok(d) = rustc_demangle::try_demangle(name) {
        return format!("{d:#}");
    }
    if name.starts_with("_Z") {
        if let Some(d) = cpp_demangle::Symbol::new(name).ok().and_then(|s| s.demangle().ok()) {
            return d;
        }
    }
    name.to_string()
}

/// A `PT_LOAD` segment: where its bytes are in the file and at which virtual address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    pub(crate) offset: u64,
    pub(crate) vaddr: u64,
    pub(crate) filesz: u64,
}

/// The `PT_LOAD` segments of a 64-bit little-endian ELF file (x86-64, arm64, riscv64).
pub(crate) fn load_segments(path: &str) -> Option<Vec<Segment>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let mut eh = [0u8; 64];
    f.read_exact(&mut eh).ok()?;
    if &eh[..4] != b"\x7fELF" || eh[4] != 2 || eh[5] != 1 {
        return None;
    }
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as u64;
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let (phoff, phentsize, phnum) = (u64_at(&eh, 32), u16_at(&eh, 54), u16_at(&eh, 56));
    if phentsize < 56 || phnum > 4096 {
        return None;
    }
    let mut ph = vec![0u8; (phentsize * phnum) as usize];
    f.seek(SeekFrom::Start(phoff)).ok()?;
    f.read_exact(&mut ph).ok()?;
    Some(
        ph.chunks(phentsize as usize)
            .filter(|p| u32_at(p, 0) == 1)
            .map(|p| Segment { offset: u64_at(p, 8), vaddr: u64_at(p, 16), filesz: u64_at(p, 32) })
            .collect(),
    )
}

/// The virtual address of file offset `off` by `segments`.
pub(crate) fn virt_of(segments: &[Segment], off: u64) -> Option<u64> {
    let s = segments.iter().find(|s| s.offset <= off && off < s.offset + s.filesz)?;
    Some(s.vaddr + (off - s.offset))
}

#[cfg(test)]
mod tests {
    #[test]
    fn segments_of_a_program() {
        let exe = std::env::current_exe().unwrap();
        let segs = super::load_segments(exe.to_str().unwrap()).unwrap();
        let text = segs.iter().find(|s| s.filesz > 0 && s.offset > 0).unwrap();
        assert_eq!(super::virt_of(&segs, text.offset + 4), Some(text.vaddr + 4));
        assert_eq!(super::load_segments("/etc/hostname"), None);
    }

    #[test]
    fn demangles_rust_and_cpp_only() {
        use super::demangle;
        assert_eq!(demangle("c"), "c");
        assert_eq!(demangle("target"), "target");
        assert_eq!(demangle("_ZN9wasmprobe6marker17h0123456789abcdefE"), "wasmprobe::marker");
        assert_eq!(demangle("_ZN3foo3barEv"), "foo::bar()");
        assert_eq!(demangle("_Zbad"), "_Zbad");
    }
}
