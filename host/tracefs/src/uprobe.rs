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

/// Resolves `PATH:SYMBOL`, `PATH:SYMBOL+OFF`, `PATH:0xOFFSET` or `PATH:OFFSET` (reads the ELF
/// file for a symbol). `ENOENT` for a missing file or symbol, `EINVAL` for a malformed spec.
pub fn resolve_target(spec: &str) -> Result<UprobeTarget> {
    let Some((path, what)) = spec.rsplit_once(':').filter(|(p, w)| !p.is_empty() && !w.is_empty()) else {
        return Err(Error::new(Errno::EINVAL, format!("uprobe target {spec:?} is not PATH:SYMBOL or PATH:0xOFFSET")));
    };
    let path = std::fs::canonicalize(path).map_err(|e| Error::io(format!("uprobe target {spec}"), path, &e))?;
    let offset = match parse_number(what) {
        Some(off) => off,
        None => {
            let (sym, add) = match what.split_once('+') {
                Some((s, a)) => (
                    s,
                    parse_number(a)
                        .ok_or_else(|| Error::new(Errno::EINVAL, format!("uprobe target {spec}: bad offset {a:?}")))?,
                ),
                None => (what, 0),
            };
            symbol_file_offset(&path, sym)? + add
        }
    };
    Ok(UprobeTarget { path, offset })
}

fn parse_number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// The file offset of function `symbol` in the ELF file at `path` (`.symtab`, then `.dynsym`),
/// found through the loadable segment that maps its address. Reads the whole file.
pub fn symbol_file_offset(path: &Path, symbol: &str) -> Result<u64> {
    let data = std::fs::read(path).map_err(|e| Error::io(format!("cannot read {symbol} from"), path, &e))?;
    let file = object::File::parse(&*data)
        .map_err(|e| Error::new(Errno::EINVAL, format!("{} is not an ELF file we can read: {e}", path.display())))?;
    let addr = file
        .symbols()
        .chain(file.dynamic_symbols())
        .find(|s| s.is_definition() && s.name() == Ok(symbol) && s.address() != 0)
        .map(|s| s.address())
        .ok_or_else(|| Error::new(Errno::ENOENT, format!("no function {symbol} in {}", path.display())))?;
    file.segments()
        .find_map(|seg| {
            let (start, size) = (seg.address(), seg.size());
            let (file_off, file_size) = seg.file_range();
            (addr >= start && addr < start + size.min(file_size)).then(|| addr - start + file_off)
        })
        .ok_or_else(|| {
            Error::new(Errno::EINVAL, format!("{symbol} at {addr:#x} is in no loadable segment of {}", path.display()))
        })
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
}
