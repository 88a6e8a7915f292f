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

/// `(path, file offsets)` per file; the answer has one [`Resolved`] per offset, in order.
type Job = (Vec<(String, Vec<u64>)>, mpsc::Sender<Vec<Vec<Resolved>>>);

/// A handle on the blazesym thread.
#[derive(Default)]
pub(crate) struct ElfThread {
    tx: Option<mpsc::Sender<Job>>,
}

impl ElfThread {
    /// Resolves every file's offsets; a file that cannot be read gives unknown symbols.
    pub(crate) fn resolve(&mut self, files: Vec<(String, Vec<u64>)>) -> Vec<Vec<Resolved>> {
        let unknown = |files: &[(String, Vec<u64>)]| files.iter().map(|f| vec![Resolved::UNKNOWN; f.1.len()]).collect();
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
            let answer = files.iter().map(|(path, offsets)| resolve(&blaze, path, offsets)).collect();
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
fn resolve(blaze: &Symbolizer, path: &str, offsets: &[u64]) -> Vec<Resolved> {
    let Ok(syms) = blaze.symbolize(&Source::Elf(Elf::new(path)), Input::FileOffset(offsets)) else {
        return vec![Resolved::UNKNOWN; offsets.len()];
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

#[cfg(test)]
mod tests {
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
