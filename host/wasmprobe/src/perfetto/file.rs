//! An output file that appears under its name only when complete.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A file written under a temporary name beside its destination (`.NAME.PID.tmp`) and renamed
/// to it by [`PendingFile::commit`]. Dropped without a commit (an error, a panic, Ctrl-C), it
/// removes what was written: a failed conversion never leaves half a trace behind.
#[derive(Debug)]
pub struct PendingFile {
    tmp: PathBuf,
    dest: PathBuf,
    file: Option<std::fs::File>,
}

impl PendingFile {
    /// Creates the temporary file (mode 0666 less the umask, as the destination would get).
    pub fn create(dest: &Path) -> std::io::Result<PendingFile> {
        let name = dest.file_name().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{} is not a file name", dest.display()))
        })?;
        let tmp = dest.with_file_name(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
        let file = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        Ok(PendingFile { tmp, dest: dest.to_path_buf(), file: Some(file) })
    }

    /// The destination path.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Syncs nothing, renames the temporary file to the destination (replacing it).
    pub fn commit(mut self) -> std::io::Result<()> {
        drop(self.file.take());
        std::fs::rename(&self.tmp, &self.dest)?;
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Write for PendingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.as_mut().expect("written after commit").write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().expect("flushed after commit").flush()
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
