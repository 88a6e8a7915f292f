//! Finding the tracing directory: the `TRACEFS` override, a mounted tracefs from
//! `/proc/mounts`, the `tracing` directory of a mounted debugfs, and as a last resort mounting
//! tracefs at `/sys/kernel/tracing` when we are privileged.

use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Errno, Error, Result};

/// Environment variable that points every lookup at another tracing directory (tests on a
/// fake tree, a copied tree, or a tracefs mounted somewhere unusual).
pub const TRACEFS_ENV: &str = "TRACEFS";

const DEFAULT_MOUNT: &str = "/sys/kernel/tracing";

/// A tracing directory (the top of tracefs). Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracefs {
    root: Arc<Path>,
}

impl Tracefs {
    /// Finds the tracing directory, mounting tracefs if it is absent and we may (reads
    /// `/proc/mounts`; may call `mount(2)`).
    pub fn open() -> Result<Tracefs> {
        if let Some(dir) = std::env::var_os(TRACEFS_ENV) {
            let dir = PathBuf::from(dir);
            if !dir.is_dir() {
                return Err(Error::new(
                    Errno::ENOENT,
                    format!("{TRACEFS_ENV} points at {}, which is not a directory", dir.display()),
                ));
            }
            return Ok(Tracefs::at(dir));
        }
        if let Some(dir) = find_mounted() {
            return Ok(Tracefs::at(dir));
        }
        mount_tracefs(Path::new(DEFAULT_MOUNT))?;
        Ok(Tracefs::at(DEFAULT_MOUNT))
    }

    /// Uses `dir` as the tracing directory without checking it (no syscalls).
    pub fn at(dir: impl AsRef<Path>) -> Tracefs {
        Tracefs { root: Arc::from(dir.as_ref()) }
    }

    /// The tracing directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// `<tracing dir>/<name>` (no existence check).
    pub fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Whether `<tracing dir>/<name>` exists (one `stat`).
    pub fn has(&self, name: &str) -> bool {
        self.file(name).exists()
    }
}

/// The first tracefs mount in `/proc/mounts`, else a debugfs mount's `tracing` directory.
fn find_mounted() -> Option<PathBuf> {
    let mounts = fs::read_to_string("/proc/mounts").ok()?;
    let parsed = parse_mounts(&mounts);
    let usable = |p: &PathBuf| p.join("trace").exists() || p.join("events").is_dir();
    parsed.iter().filter(|(_, fstype)| fstype == "tracefs").map(|(dir, _)| dir.clone()).find(usable).or_else(|| {
        parsed.iter().filter(|(_, fstype)| fstype == "debugfs").map(|(dir, _)| dir.join("tracing")).find(usable)
    })
}

/// (mount point, fstype) pairs of a `/proc/mounts` text, with the kernel's octal escapes
/// (`\040` for a space, `\011`, `\012`, `\134`) undone.
pub fn parse_mounts(text: &str) -> Vec<(PathBuf, String)> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_ascii_whitespace();
            let _dev = f.next()?;
            let dir = f.next()?;
            let fstype = f.next()?;
            Some((PathBuf::from(unescape_mount_path(dir)), fstype.to_string()))
        })
        .collect()
}

fn unescape_mount_path(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = (oct[0] - b'0') as u32 * 64 + (oct[1] - b'0') as u32 * 8 + (oct[2] - b'0') as u32;
                if v <= 0xff {
                    out.push(v as u8);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn mount_tracefs(at: &Path) -> Result<()> {
    use nix::mount::{mount, MsFlags};
    if !at.is_dir() {
        return Err(Error::new(
            Errno::ENODEV,
            "tracefs is not mounted and this kernel has no /sys/kernel/tracing to mount it on",
        ));
    }
    mount(Some("nodev"), at, Some("tracefs"), MsFlags::empty(), None::<&str>).map_err(|e| {
        let e = if e == Errno::EACCES { Errno::EPERM } else { e };
        Error::new(e, "tracefs is not mounted and mounting it failed").with_path(at)
    })
}

/// Reads a whole control file (one open, reads to EOF).
pub(crate) fn read(path: &Path, what: &str) -> Result<String> {
    read_text(path).map_err(|e| Error::io(what, path, &e))
}

/// Reads a tracefs file whole, starting with one large `read(2)`. Some tracefs files
/// (`events/header_page`, `header_event`) answer only a read at offset 0, so the small first
/// read `std::fs::read_to_string` makes would cut them short.
pub fn read_text(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = fs::File::open(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e))
}

/// Writes `data` to a control file with a single `write(2)`. `truncate` opens with `O_TRUNC`
/// (what value files want); otherwise the write appends (what command files such as
/// `kprobe_events` need: truncating one deletes every probe in it).
pub(crate) fn write(path: &Path, data: &str, truncate: bool, what: &str) -> Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true);
    if truncate {
        opts.truncate(true);
    } else {
        opts.custom_flags(libc::O_APPEND);
    }
    let mut f = opts.open(path).map_err(|e| Error::io(what, path, &e))?;
    match f.write(data.as_bytes()) {
        Ok(n) if n == data.len() => Ok(()),
        Ok(n) => {
            Err(Error::new(Errno::EIO, format!("{what}: short write ({n} of {} bytes)", data.len())).with_path(path))
        }
        Err(e) => Err(Error::io(what, path, &e)),
    }
}

/// Whether an I/O error means the file is not there.
pub(crate) fn is_not_found(e: &std::io::Error) -> bool {
    e.kind() == ErrorKind::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_unescapes_mounts() {
        let m = "sysfs /sys sysfs rw 0 0\nnodev /sys/kernel/tracing tracefs rw,relatime 0 0\n\
                 none /mnt/my\\040trace tracefs rw 0 0\ndebugfs /sys/kernel/debug debugfs rw 0 0\n";
        let p = parse_mounts(m);
        assert_eq!(p.len(), 4);
        assert_eq!(p[1], (PathBuf::from("/sys/kernel/tracing"), "tracefs".to_string()));
        assert_eq!(p[2].0, PathBuf::from("/mnt/my trace"));
        assert_eq!(unescape_mount_path("a\\011b\\134c\\012"), "a\tb\\c\n");
        assert_eq!(unescape_mount_path("trailing\\04"), "trailing\\04");
        assert_eq!(unescape_mount_path("\\999"), "\\999");
    }

    #[test]
    fn env_override_is_used_and_checked() {
        // Only this test touches TRACEFS in this process's unit-test binary.
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var(TRACEFS_ENV, dir.path());
        let t = Tracefs::open().unwrap();
        assert_eq!(t.path(), dir.path());
        std::env::set_var(TRACEFS_ENV, dir.path().join("missing"));
        let e = Tracefs::open().unwrap_err();
        assert_eq!(e.errno(), Errno::ENOENT);
        assert!(e.to_string().contains("TRACEFS"), "{e}");
        std::env::remove_var(TRACEFS_ENV);
    }
}
