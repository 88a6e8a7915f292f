//! The one error type of the crate: an errno with the meaning libtracefs documents, what we were
//! doing, the file we touched, and the kernel's own explanation from `error_log` when it left one.

use std::fmt;
use std::path::{Path, PathBuf};

pub use nix::errno::Errno;

use crate::error_log::ErrorLogEntry;

/// A failed tracefs operation.
///
/// `errno` follows the libtracefs man page: `EPERM` without privilege, `ENODEV` when the kernel
/// lacks the feature, `EBADMSG` for a probe without an address, `EINVAL` for a parse error (with
/// the kernel's `error_log` entry in `kernel`), and `EEXIST`/`EBUSY`/`ENOENT` passed through.
#[derive(Debug, Clone)]
pub struct Error {
    errno: Errno,
    what: String,
    path: Option<PathBuf>,
    kernel: Option<Box<ErrorLogEntry>>,
    /// Refused by us before anything reached the kernel (see [`Error::refused`]).
    refused: bool,
}

/// Result alias of the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with an errno and a sentence naming what failed (no path, no kernel log).
    pub fn new(errno: Errno, what: impl Into<String>) -> Self {
        Error { errno, what: what.into(), path: None, kernel: None, refused: false }
    }

    /// A request that wasmprobe itself refuses before anything is written to tracefs: shown as
    /// `SUBJECT: refused by wasmprobe: REASON`, without an errno meaning (which would read as
    /// if the kernel had said no). `errno` still classifies it for callers (`ENOENT`,
    /// `EINVAL`, ...).
    pub fn refused(errno: Errno, subject: impl fmt::Display, reason: impl fmt::Display) -> Self {
        Error { refused: true, ..Error::new(errno, format!("{subject}: refused by wasmprobe: {reason}")) }
    }

    /// Whether this is a refusal of ours ([`Error::refused`]) rather than a failed operation.
    pub fn is_refusal(&self) -> bool {
        self.refused
    }

    /// The same error, naming the file that was read or written.
    pub fn with_path(mut self, path: impl AsRef<Path>) -> Self {
        self.path = Some(path.as_ref().to_path_buf());
        self
    }

    /// The same error, carrying the kernel's `error_log` entry for it.
    pub fn with_kernel(mut self, entry: Option<ErrorLogEntry>) -> Self {
        self.kernel = entry.map(Box::new);
        self
    }

    /// An I/O error on `path` while doing `what`, with the errno mapped to the documented codes
    /// (EACCES becomes EPERM: the man page promises EPERM when not privileged).
    pub fn io(what: impl Into<String>, path: impl AsRef<Path>, err: &std::io::Error) -> Self {
        let errno = err.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO);
        let errno = if errno == Errno::EACCES { Errno::EPERM } else { errno };
        Error::new(errno, what).with_path(path)
    }

    /// The errno, as the man page documents it.
    pub fn errno(&self) -> Errno {
        self.errno
    }

    /// The file that was being read or written, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The kernel's `error_log` entry explaining a rejected command, if it left one.
    pub fn kernel_log(&self) -> Option<&ErrorLogEntry> {
        self.kernel.as_deref()
    }

    /// What failed, without errno or path.
    pub fn what(&self) -> &str {
        &self.what
    }
}

fn errno_meaning(e: Errno) -> &'static str {
    match e {
        Errno::EPERM => "permission denied (needs root or CAP_SYS_ADMIN)",
        Errno::ENODEV => "not supported by this kernel",
        Errno::EBADMSG => "no probe address given",
        Errno::EINVAL => "rejected by the kernel",
        Errno::EEXIST => "already exists",
        Errno::EBUSY => "busy (enabled or in use; disable it first, or use force)",
        Errno::ENOENT => "not found",
        Errno::EILSEQ => "not an instruction boundary",
        Errno::EADDRNOTAVAIL => "symbol is not unique",
        e => e.desc(),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.refused {
            return f.write_str(&self.what);
        }
        write!(f, "{}: {} ({})", self.what, errno_meaning(self.errno), self.errno)?;
        if let Some(p) = &self.path {
            write!(f, " [{}]", p.display())?;
        }
        if let Some(k) = &self.kernel {
            write!(f, "; kernel error_log: {}: {}", k.subsystem, k.message)?;
            if !k.command.is_empty() {
                write!(f, " (at column {} of `{}`)", k.position, k.command)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Error {}
