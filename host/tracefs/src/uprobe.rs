//! uprobes and uretprobes (`tracefs_uprobe_alloc`, `tracefs_uretprobe_alloc`), plus what the C
//! API leaves to the caller: turning `PATH:SYMBOL` into the file offset the kernel wants by
//! reading the ELF symbol tables.
//!
//! The address is written `PATH:0x%016x`, exactly as the kernel lists it back, so a listing
//! compares equal to what was created.

use std::path::{Path, PathBuf};

use object::{Object, ObjectSegment, ObjectSymbol};

use crate::dir::Tracefs;
use crate::dynevent::{DynEvent, DynEventType};
use crate::error::{Errno, Error, Result};

/// The system (group) of a uprobe created without one.
pub const UPROBE_DEFAULT_SYSTEM: &str = "uprobes";

/// Whether this kernel can create uprobes (`uprobe_events` exists; one `stat`).
pub fn uprobes_supported(tracefs: &Tracefs) -> bool {
    tracefs.has("uprobe_events")
}

/// The uprobe address for `offset` in `file`: `FILE:0x%016x` (no syscalls).
pub fn uprobe_address(file: &str, offset: u64) -> String {
    format!("{file}:0x{offset:016x}")
}

fn alloc(
    kind: DynEventType,
    system: Option<&str>,
    event: &str,
    file: &str,
    offset: u64,
    fetchargs: Option<&str>,
) -> Result<DynEvent> {
    if event.is_empty() || file.is_empty() {
        return Err(Error::new(Errno::EINVAL, format!("{} needs an event name and a file", kind.name())));
    }
    Ok(DynEvent::new(
        kind,
        system.unwrap_or(UPROBE_DEFAULT_SYSTEM),
        event,
        &uprobe_address(file, offset),
        fetchargs.unwrap_or(""),
    ))
}

/// `tracefs_uprobe_alloc`: a uprobe descriptor at byte `offset` of `file` (nothing is written).
pub fn uprobe_alloc(
    system: Option<&str>,
    event: &str,
    file: &str,
    offset: u64,
    fetchargs: Option<&str>,
) -> Result<DynEvent> {
    alloc(DynEventType::Uprobe, system, event, file, offset, fetchargs)
}

/// `tracefs_uretprobe_alloc`: a uretprobe descriptor (fires when the function returns).
pub fn uretprobe_alloc(
    system: Option<&str>,
    event: &str,
    file: &str,
    offset: u64,
    fetchargs: Option<&str>,
) -> Result<DynEvent> {
    alloc(DynEventType::Uretprobe, system, event, file, offset, fetchargs)
}

/// A uprobe target resolved to what the kernel needs: an absolute path and a file offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UprobeTarget {
    /// Absolute path of the ELF file (symlinks resolved: the kernel probes the inode).
    pub path: PathBuf,
    /// Byte offset in the file.
    pub offset: u64,
}

/// Resolves `PATH:SYMBOL`, `PATH:SYMBOL+OFF`, `PATH:0xOFFSET` or `PATH:OFFSET` to a file and
/// an offset, and refuses anything that is not a place code runs, before anything is written
/// to tracefs:
///
/// - PATH with a `/` is a file (as given); PATH without one is a shared library's name
///   (`libc`, `libc.so.6`), looked up only as ld.so looks up libraries (see
///   [`find_library`]), never in the current directory.
/// - The file must be a regular file (not a directory, FIFO, device or socket), an ELF
///   program or shared library (`ET_EXEC` or `ET_DYN`), with an executable segment (a
///   `PT_LOAD` with `PF_X`), and the offset (or the symbol's) must lie in such a segment.
///
/// Every error is a refusal of ours ([`Error::is_refusal`]), one line naming the target and
/// why: `ENOENT` for a missing file, library or symbol, `EINVAL` otherwise.
pub fn resolve_target(spec: &str) -> Result<UprobeTarget> {
    let Some((file, what)) = spec.rsplit_once(':').filter(|(p, w)| !p.is_empty() && !w.is_empty()) else {
        return Err(Error::refused(
            Errno::EINVAL,
            format_args!("uprobe target {spec:?}"),
            "not PATH:SYMBOL or PATH:0xOFFSET",
        ));
    };
    let (subject, given) = if file.contains('/') {
        (format!("uprobe target {file}"), PathBuf::from(file))
    } else {
        let lib = find_library(file)?;
        (format!("uprobe target {file} ({})", lib.display()), lib)
    };
    let refuse = |errno, reason: String| Error::refused(errno, &subject, reason);
    if let Some(c) = file.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(refuse(Errno::EINVAL, format!("the path contains {c:?}, which uprobe_events cannot carry")));
    }
    let path = std::fs::canonicalize(&given).map_err(|e| refuse(io_errno(&e), io_reason(&e)))?;
    let elf = ElfSegments::read(&path).map_err(|(errno, reason)| refuse(errno, reason))?;
    let offset = match parse_number(what) {
        Some(off) => off,
        None => {
            let (sym, add) = match what.split_once('+') {
                Some((s, a)) => (s, parse_number(a).ok_or_else(|| refuse(Errno::EINVAL, format!("bad offset {a:?}")))?),
                None => (what, 0),
            };
            let data = std::fs::read(&path).map_err(|e| refuse(io_errno(&e), io_reason(&e)))?;
            let off = symbol_offset(&data, sym).map_err(|(errno, why)| refuse(errno, why))? + add;
            if !elf.executable(off) {
                return Err(refuse(Errno::EINVAL, format!("{what} (offset {off:#x}) is in no executable segment")));
            }
            off
        }
    };
    if !elf.executable(offset) {
        return Err(refuse(Errno::EINVAL, format!("offset {offset:#x} is in no executable segment")));
    }
    Ok(UprobeTarget { path, offset })
}

fn parse_number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

fn io_errno(e: &std::io::Error) -> Errno {
    e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO)
}

/// Why a file could not be used, in a few words.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        _ => format!("cannot read it: {}", Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)).desc()),
    }
}

/// Whether a bare uprobe PATH is a name a library can have: letters, digits, `.`, `_`, `+`,
/// `-`, starting with a letter, digit or `_` (so never `.`, `..` or an option).
pub fn is_library_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-'))
}

/// The shared library a bare name means, found as ld.so finds libraries: in `/etc/ld.so.cache`,
/// then in the default directories (the multiarch ones, `/lib64`, `/usr/lib64`, `/lib`,
/// `/usr/lib`); never in the current directory, and not through `LD_LIBRARY_PATH`. `NAME`
/// matches a library file (or cache entry) named `NAME`, `NAME.so` or `NAME.so.*`
/// (`libc` is `libc.so.6`) built for this machine. Several different files matching is an
/// error: give the path.
pub fn find_library(name: &str) -> Result<PathBuf> {
    let subject = format!("uprobe target {name}");
    if !is_library_name(name) {
        return Err(Error::refused(
            Errno::EINVAL,
            subject,
            "a PATH without '/' is a shared library's name (letters, digits, '.', '_', '+', '-')",
        ));
    }
    let native = ElfSegments::read(Path::new("/proc/self/exe")).ok().map(|e| e.machine);
    let usable = |p: &Path| -> Option<PathBuf> {
        let real = std::fs::canonicalize(p).ok()?;
        let elf = ElfSegments::read(&real).ok()?;
        (native.is_none() || native == Some(elf.machine)).then_some(real)
    };
    let mut found: Vec<PathBuf> = Vec::new();
    for p in ld_so_cache().into_iter().filter(|(key, _)| library_matches(name, key)).map(|(_, p)| p) {
        if let Some(real) = usable(Path::new(&p)) {
            if !found.contains(&real) {
                found.push(real);
            }
        }
    }
    if found.is_empty() {
        let arch = std::env::consts::ARCH;
        let multiarch = [format!("/lib/{arch}-linux-gnu"), format!("/usr/lib/{arch}-linux-gnu")];
        let dirs = multiarch.iter().map(String::as_str).chain(["/lib64", "/usr/lib64", "/lib", "/usr/lib"]);
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(dir) else { continue };
            for e in entries.flatten() {
                let fname = e.file_name();
                if fname.to_str().is_some_and(|f| library_matches(name, f)) {
                    if let Some(real) = usable(&e.path()) {
                        if !found.contains(&real) {
                            found.push(real);
                        }
                    }
                }
            }
            if !found.is_empty() {
                break; // ld.so stops at the first directory that has it
            }
        }
    }
    match found.len() {
        0 => Err(Error::refused(
            Errno::ENOENT,
            subject,
            "no shared library of that name in ld.so.cache or the system library directories (a PATH \
             without '/' is only looked up as a library, never in the current directory; give a \
             program's absolute path)",
        )),
        1 => Ok(found.remove(0)),
        _ => Err(Error::refused(
            Errno::EINVAL,
            subject,
            format!(
                "several libraries have that name ({}); give the path",
                found.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

/// Whether library file (or soname) `file` is what the bare name `name` means.
fn library_matches(name: &str, file: &str) -> bool {
    file == name
        || file
            .strip_prefix(name)
            .and_then(|r| r.strip_prefix(".so"))
            .is_some_and(|r| r.is_empty() || r.starts_with('.'))
}

/// The `(soname, path)` entries of `/etc/ld.so.cache` (glibc's "glibc-ld.so.cache1.1" format,
/// alone or after the old "ld.so-1.7.0" table), in the cache's order; empty if there is none.
fn ld_so_cache() -> Vec<(String, String)> {
    std::fs::read("/etc/ld.so.cache").map(|d| parse_ld_so_cache(&d)).unwrap_or_default()
}

/// Parses an ld.so.cache image (see [`ld_so_cache`]); what it cannot read it leaves out.
pub fn parse_ld_so_cache(data: &[u8]) -> Vec<(String, String)> {
    const OLD: &[u8] = b"ld.so-1.7.0";
    const NEW: &[u8] = b"glibc-ld.so.cache1.1";
    let u32_at = |d: &[u8], o: usize| d.get(o..o + 4).map(|b| u32::from_ne_bytes(b.try_into().unwrap()));
    let mut base = 0usize;
    if data.starts_with(OLD) {
        // struct cache_file: magic[11] (+1 pad), nlibs, then 12-byte entries; the new table
        // follows, aligned to 8.
        let Some(n) = u32_at(data, 12) else { return Vec::new() };
        base = (16 + n as usize * 12).next_multiple_of(8);
    }
    let Some(d) = data.get(base..).filter(|d| d.starts_with(NEW)) else { return Vec::new() };
    let Some(nlibs) = u32_at(d, 20) else { return Vec::new() };
    let string = |off: u32| -> Option<String> {
        let rest = d.get(off as usize..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        String::from_utf8(rest[..end].to_vec()).ok()
    };
    // struct file_entry_new (24 bytes): flags i32, key u32, value u32, osversion u32, hwcap u64;
    // key and value are offsets from the start of this header (48 bytes).
    (0..nlibs as usize)
        .map_while(|i| {
            let e = 48 + i * 24;
            Some((u32_at(d, e + 4)?, u32_at(d, e + 8)?))
        })
        .filter_map(|(k, v)| Some((string(k)?, string(v)?)))
        .collect()
}

/// What a uprobe target file must be, read from its ELF and program headers only.
#[derive(Debug)]
struct ElfSegments {
    /// `e_machine`.
    machine: u16,
    /// File ranges `[start, end)` of the executable loadable segments (`PT_LOAD` with `PF_X`).
    exec: Vec<(u64, u64)>,
}

impl ElfSegments {
    /// Opens `path` without blocking (a FIFO swapped in after the `stat` cannot hang us) and
    /// reads its headers; the error is `(errno, reason)`.
    fn read(path: &Path) -> std::result::Result<ElfSegments, (Errno, String)> {
        use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
        let kind = |ft: std::fs::FileType| {
            if ft.is_file() {
                None
            } else if ft.is_dir() {
                Some("a directory")
            } else if ft.is_fifo() {
                Some("a FIFO")
            } else if ft.is_char_device() {
                Some("a character device")
            } else if ft.is_block_device() {
                Some("a block device")
            } else if ft.is_socket() {
                Some("a socket")
            } else {
                Some("of an unknown type")
            }
        };
        let not_regular = |what: &str| (Errno::EINVAL, format!("not a regular file ({what})"));
        let meta = std::fs::metadata(path).map_err(|e| (io_errno(&e), io_reason(&e)))?;
        if let Some(what) = kind(meta.file_type()) {
            return Err(not_regular(what));
        }
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(|e| (io_errno(&e), io_reason(&e)))?;
        let meta = f.metadata().map_err(|e| (io_errno(&e), io_reason(&e)))?;
        if let Some(what) = kind(meta.file_type()) {
            return Err(not_regular(what));
        }
        let not_elf = || (Errno::EINVAL, "not an ELF file".to_string());
        let unreadable = |why: &str| (Errno::EINVAL, format!("an ELF file whose headers cannot be read ({why})"));
        let mut h = [0u8; 64];
        let n = read_at_most(&f, &mut h, 0).map_err(|e| (io_errno(&e), io_reason(&e)))?;
        if n < 16 || &h[..4] != b"\x7fELF" {
            return Err(not_elf());
        }
        let (wide, big) = match (h[4], h[5]) {
            (1, 1) => (false, false),
            (1, 2) => (false, true),
            (2, 1) => (true, false),
            (2, 2) => (true, true),
            _ => return Err(unreadable("unknown class or byte order")),
        };
        if n < if wide { 64 } else { 52 } {
            return Err(unreadable("truncated ELF header"));
        }
        let u16_at = |b: &[u8], o: usize| {
            let v = [b[o], b[o + 1]];
            if big {
                u16::from_be_bytes(v)
            } else {
                u16::from_le_bytes(v)
            }
        };
        let u32_at = |b: &[u8], o: usize| {
            let v = b[o..o + 4].try_into().unwrap();
            if big {
                u32::from_be_bytes(v)
            } else {
                u32::from_le_bytes(v)
            }
        };
        let u64_at = |b: &[u8], o: usize| {
            let v = b[o..o + 8].try_into().unwrap();
            if big {
                u64::from_be_bytes(v)
            } else {
                u64::from_le_bytes(v)
            }
        };
        let word = |b: &[u8], o32: usize, o64: usize| if wide { u64_at(b, o64) } else { u32_at(b, o32) as u64 };
        match u16_at(&h, 16) {
            2 | 3 => {} // ET_EXEC, ET_DYN
            1 => return Err((Errno::EINVAL, "an ELF relocatable object (.o), not a program or shared library".into())),
            4 => return Err((Errno::EINVAL, "an ELF core dump, not a program or shared library".into())),
            t => return Err((Errno::EINVAL, format!("an ELF file of type {t}, not a program or shared library"))),
        }
        let machine = u16_at(&h, 18);
        let phoff = word(&h, 28, 32);
        let (phentsize, phnum) = if wide { (u16_at(&h, 54), u16_at(&h, 56)) } else { (u16_at(&h, 42), u16_at(&h, 44)) };
        let need = if wide { 56 } else { 32 };
        if phnum == 0xffff || (phnum > 0 && (phentsize as usize) < need) {
            return Err(unreadable("program header table"));
        }
        let mut table = vec![0u8; phentsize as usize * phnum as usize];
        if read_at_most(&f, &mut table, phoff).map_err(|e| (io_errno(&e), io_reason(&e)))? < table.len() {
            return Err(unreadable("truncated program headers"));
        }
        let mut exec = Vec::new();
        for ph in table.chunks_exact(phentsize as usize) {
            const PT_LOAD: u32 = 1;
            const PF_X: u32 = 1;
            let flags = if wide { u32_at(ph, 4) } else { u32_at(ph, 24) };
            if u32_at(ph, 0) == PT_LOAD && flags & PF_X != 0 {
                let (off, filesz) = (word(ph, 4, 8), word(ph, 16, 32));
                exec.push((off, off.saturating_add(filesz).min(meta.len())));
            }
        }
        if exec.is_empty() {
            return Err((Errno::EINVAL, "an ELF file with no executable segment (no PT_LOAD with PF_X)".into()));
        }
        Ok(ElfSegments { machine, exec })
    }

    /// Whether file offset `off` is inside an executable segment.
    fn executable(&self, off: u64) -> bool {
        self.exec.iter().any(|&(start, end)| off >= start && off < end)
    }
}

/// Reads up to `buf.len()` bytes at `off`; fewer only at the end of the file.
fn read_at_most(f: &std::fs::File, buf: &mut [u8], off: u64) -> std::io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], off + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The file offset of function `symbol` in the ELF file at `path` (`.symtab`, then `.dynsym`),
/// found through the loadable segment that maps its address. Reads the whole file.
pub fn symbol_file_offset(path: &Path, symbol: &str) -> Result<u64> {
    let data = std::fs::read(path).map_err(|e| Error::io(format!("cannot read {symbol} from"), path, &e))?;
    symbol_offset(&data, symbol).map_err(|(errno, why)| Error::new(errno, format!("{}: {why}", path.display())))
}

/// [`symbol_file_offset`] on the file's bytes; the error is `(errno, reason)`.
fn symbol_offset(data: &[u8], symbol: &str) -> std::result::Result<u64, (Errno, String)> {
    let file = object::File::parse(data).map_err(|e| (Errno::EINVAL, format!("an ELF file we cannot read ({e})")))?;
    let addr = file
        .symbols()
        .chain(file.dynamic_symbols())
        .find(|s| s.is_definition() && s.name() == Ok(symbol) && s.address() != 0)
        .map(|s| s.address())
        .ok_or_else(|| (Errno::ENOENT, format!("no function {symbol} in its symbol tables")))?;
    file.segments()
        .find_map(|seg| {
            let (start, size) = (seg.address(), seg.size());
            let (file_off, file_size) = seg.file_range();
            (addr >= start && addr < start + size.min(file_size)).then(|| addr - start + file_off)
        })
        .ok_or_else(|| (Errno::EINVAL, format!("{symbol} at {addr:#x} is in no loadable segment")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_zero_padded_like_the_kernel_lists_them() {
        let ev = uprobe_alloc(Some("utest"), "utest_u", "/bin/true", 1000, Some("arg1=$stack2")).unwrap();
        assert_eq!(ev.address, "/bin/true:0x00000000000003e8");
        assert_eq!(ev.create_line(), "p:utest/utest_u /bin/true:0x00000000000003e8 arg1=$stack2\n");
        let r = uretprobe_alloc(None, "r", "/bin/true", 0x10, None).unwrap();
        assert_eq!(r.create_line(), "r:uprobes/r /bin/true:0x0000000000000010 \n");
        assert_eq!(uprobe_alloc(None, "", "/bin/true", 0, None).unwrap_err().errno(), Errno::EINVAL);
        assert_eq!(uprobe_alloc(None, "x", "", 0, None).unwrap_err().errno(), Errno::EINVAL);
    }

    #[test]
    fn resolves_symbols_of_a_real_binary() {
        // Our own test binary is an ELF file with a symbol table.
        let exe = std::env::current_exe().unwrap();
        let t = resolve_target(&format!("{}:main", exe.display())).unwrap();
        assert!(t.offset > 0);
        let t2 = resolve_target(&format!("{}:main+4", exe.display())).unwrap();
        assert_eq!(t2.offset, t.offset + 4);
        let t3 = resolve_target(&format!("{}:0x{:x}", exe.display(), t.offset)).unwrap();
        assert_eq!(t3.offset, t.offset);
        let e = resolve_target(&format!("{}:no_such_symbol_xyz", exe.display())).unwrap_err();
        assert_eq!(e.errno(), Errno::ENOENT);
        assert!(e.to_string().contains("no_such_symbol_xyz"), "{e}");
        assert_eq!(resolve_target("/nonexistent/file:main").unwrap_err().errno(), Errno::ENOENT);
        assert_eq!(resolve_target("nocolon").unwrap_err().errno(), Errno::EINVAL);
    }

    /// `resolve_target(spec)`'s error, which must be a refusal of ours.
    fn refusal(spec: &str) -> String {
        let e = resolve_target(spec).unwrap_err();
        assert!(e.is_refusal(), "{e}");
        e.to_string()
    }

    /// A copy of `/bin/true` (a 64-bit little-endian ELF here) with `PF_X` cleared in every
    /// program header, or with `e_type` set to `etype`.
    fn patched_true(dir: &Path, clear_exec: bool, etype: Option<u16>) -> PathBuf {
        let mut b = std::fs::read("/bin/true").unwrap();
        assert_eq!((&b[..4], b[4], b[5]), (&b"\x7fELF"[..], 2, 1), "a 64-bit little-endian /bin/true");
        if let Some(t) = etype {
            b[16..18].copy_from_slice(&t.to_le_bytes());
        }
        if clear_exec {
            let phoff = u64::from_le_bytes(b[32..40].try_into().unwrap()) as usize;
            let (size, n) = (u16::from_le_bytes([b[54], b[55]]) as usize, u16::from_le_bytes([b[56], b[57]]) as usize);
            for i in 0..n {
                b[phoff + i * size + 4] &= !1;
            }
        }
        let p = dir.join(if clear_exec { "noexec" } else { "typed" });
        std::fs::write(&p, b).unwrap();
        p
    }

    #[test]
    fn targets_that_are_not_programs_are_refused_by_us_naming_the_file_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let text = dir.path().join("text");
        std::fs::write(&text, "root:x:0:0\n").unwrap();
        assert_eq!(
            refusal(&format!("{d}/text:0x0")),
            format!("uprobe target {d}/text: refused by wasmprobe: not an ELF file")
        );
        // The symbol case too: our ELF reader refuses, the kernel is never asked.
        assert_eq!(
            refusal(&format!("{d}/text:root")),
            format!("uprobe target {d}/text: refused by wasmprobe: not an ELF file")
        );
        assert_eq!(
            refusal(&format!("{d}:0x0")),
            format!("uprobe target {d}: refused by wasmprobe: not a regular file (a directory)")
        );
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(
            refusal(&format!("{d}/fifo:0x0")),
            format!("uprobe target {d}/fifo: refused by wasmprobe: not a regular file (a FIFO)")
        );
        assert_eq!(
            refusal("/dev/zero:0x0"),
            "uprobe target /dev/zero: refused by wasmprobe: not a regular file (a character device)"
        );
        let noexec = patched_true(dir.path(), true, None);
        assert_eq!(
            refusal(&format!("{}:0x1000", noexec.display())),
            format!(
                "uprobe target {}: refused by wasmprobe: an ELF file with no executable segment (no PT_LOAD with PF_X)",
                noexec.display()
            )
        );
        let rel = patched_true(dir.path(), false, Some(1));
        assert_eq!(
            refusal(&format!("{}:0x1000", rel.display())),
            format!(
                "uprobe target {}: refused by wasmprobe: an ELF relocatable object (.o), not a program or shared library",
                rel.display()
            )
        );
        assert_eq!(
            refusal(&format!("{d}/missing:0x0")),
            format!("uprobe target {d}/missing: refused by wasmprobe: no such file")
        );
        // Offset 0 of a program is its ELF header, in no executable segment (the text starts
        // a page further with the usual layouts; this one has PT_LOADs to check against).
        let exe = std::env::current_exe().unwrap();
        let first_exec = ElfSegments::read(&std::fs::canonicalize(&exe).unwrap()).unwrap().exec[0].0;
        if first_exec > 0 {
            assert_eq!(
                refusal(&format!("{}:0x0", exe.display())),
                format!(
                    "uprobe target {}: refused by wasmprobe: offset 0x0 is in no executable segment",
                    exe.display()
                )
            );
        }
        assert_eq!(
            refusal("/bin/sh space:0x0"),
            "uprobe target /bin/sh space: refused by wasmprobe: the path contains ' ', which uprobe_events cannot carry"
        );
    }

    #[test]
    fn bare_names_are_libraries_only() {
        let libc = resolve_target("libc:open").unwrap();
        assert!(libc.path.file_name().unwrap().to_str().unwrap().starts_with("libc.so"), "{libc:?}");
        assert_eq!(resolve_target("libc.so.6:open").unwrap(), libc);
        assert_eq!(resolve_target(&format!("{}:open", libc.path.display())).unwrap(), libc);
        let e = resolve_target("nosuchlib_xyz:0x0").unwrap_err();
        assert_eq!(e.errno(), Errno::ENOENT);
        assert_eq!(
            e.to_string(),
            "uprobe target nosuchlib_xyz: refused by wasmprobe: no shared library of that name in ld.so.cache or \
             the system library directories (a PATH without '/' is only looked up as a library, never in the \
             current directory; give a program's absolute path)"
        );
        for bad in ["..", ".", "-x"] {
            assert_eq!(
                refusal(&format!("{bad}:0x0")),
                format!(
                    "uprobe target {bad}: refused by wasmprobe: a PATH without '/' is a shared library's name \
                     (letters, digits, '.', '_', '+', '-')"
                )
            );
        }
        assert!(library_matches("libc", "libc.so.6") && library_matches("libc", "libc.so"));
        assert!(library_matches("libc.so.6", "libc.so.6"));
        assert!(!library_matches("libc", "libcrypt.so.1") && !library_matches("libc", "libc.sox"));
        assert!(!library_matches("libc", "lib") && !library_matches("libc", "libc-2.31.so"));
    }

    #[test]
    fn the_ld_so_cache_is_read() {
        let Ok(data) = std::fs::read("/etc/ld.so.cache") else { return };
        let entries = parse_ld_so_cache(&data);
        assert!(entries.iter().any(|(k, v)| k == "libc.so.6" && v.ends_with("/libc.so.6")), "{entries:?}");
        assert!(parse_ld_so_cache(b"garbage").is_empty());
        assert!(parse_ld_so_cache(&data[..30]).is_empty());
    }

    /// A new-format cache of `entries`, after an old-format table of `old` entries if given.
    fn cache_image(entries: &[(&str, &str)], old: Option<u32>) -> Vec<u8> {
        let mut new = b"glibc-ld.so.cache1.1".to_vec();
        let strings_at = 48 + entries.len() * 24;
        let mut strings = Vec::new();
        let mut table = Vec::new();
        for (k, v) in entries {
            let key = (strings_at + strings.len()) as u32;
            strings.extend_from_slice(k.as_bytes());
            strings.push(0);
            let value = (strings_at + strings.len()) as u32;
            strings.extend_from_slice(v.as_bytes());
            strings.push(0);
            table.extend_from_slice(&0x303i32.to_ne_bytes());
            table.extend_from_slice(&key.to_ne_bytes());
            table.extend_from_slice(&value.to_ne_bytes());
            table.extend_from_slice(&[0; 12]);
        }
        new.extend_from_slice(&(entries.len() as u32).to_ne_bytes());
        new.extend_from_slice(&(strings.len() as u32).to_ne_bytes());
        new.resize(48, 0);
        new.extend(table);
        new.extend(strings);
        let Some(n) = old else { return new };
        let mut img = b"ld.so-1.7.0\0".to_vec();
        img.extend_from_slice(&n.to_ne_bytes());
        img.resize((16 + n as usize * 12).next_multiple_of(8), 0);
        img.extend(new);
        img
    }

    #[test]
    fn both_cache_layouts_parse() {
        let entries = [("libz.so.1", "/lib/x/libz.so.1"), ("libc.so.6", "/lib/x/libc.so.6")];
        let want: Vec<(String, String)> = entries.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(parse_ld_so_cache(&cache_image(&entries, None)), want);
        assert_eq!(parse_ld_so_cache(&cache_image(&entries, Some(3))), want);
        let mut cut = cache_image(&entries, None);
        cut.truncate(48 + 24 + 4);
        assert!(parse_ld_so_cache(&cut).is_empty());
    }
}
