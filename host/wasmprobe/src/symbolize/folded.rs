//! The one file a plugin can have written: folded stacks (`outer;...;inner COUNT`, the input
//! of flamegraph.pl and `wasmprobe flamegraph`) to the path the *user* named with
//! `--arg folded=FILE`. The plugin hands lines; it never names a path.

use std::io::Write;
use std::path::PathBuf;

/// The `--arg` key naming the file.
pub const ARG: &str = "folded";

/// The most a plugin can have written there.
pub const MAX_BYTES: u64 = 256 << 20;

/// Where a plugin's folded stacks go, if the user said.
#[derive(Debug, Default)]
pub struct FoldedFile {
    path: Option<PathBuf>,
    file: Option<std::fs::File>,
    /// Lines written so far.
    lines: u64,
    /// Bytes written so far.
    bytes: u64,
}

impl FoldedFile {
    /// From the plugin's `--arg` pairs: the last `folded=FILE`, if any (an empty value is none).
    pub fn from_args(args: &[(String, String)]) -> Self {
        let path = args.iter().rev().find(|(k, _)| k == ARG).map(|(_, v)| v).filter(|v| !v.is_empty());
        FoldedFile { path: path.map(PathBuf::from), ..Self::default() }
    }

    /// The file named, if any.
    pub fn path(&self) -> Option<&std::path::Path> {
        self.path.as_deref()
    }

    /// Lines written so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Writes `lines` (a newline after each; a line holding a newline is refused whole):
    /// the first call creates (truncates) the file, later ones append.
    pub fn write(&mut self, lines: &[String]) -> Result<(), String> {
        let Some(path) = &self.path else {
            return Err(format!("no --arg {ARG}=FILE was given"));
        };
        if let Some(bad) = lines.iter().find(|l| l.contains(['\n', '\r'])) {
            return Err(format!("a folded line may not hold a line break: {bad:?}"));
        }
        if self.file.is_none() {
            let f = std::fs::File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            self.file = Some(f);
        }
        let mut buf = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for l in lines {
            buf.extend_from_slice(l.as_bytes());
            buf.push(b'\n');
        }
        if self.bytes + buf.len() as u64 > MAX_BYTES {
            return Err(format!("{} would grow past {} MiB", path.display(), MAX_BYTES >> 20));
        }
        let f = self.file.as_mut().expect("opened above");
        f.write_all(&buf).map_err(|e| format!("writing {}: {e}", path.display()))?;
        self.lines += lines.len() as u64;
        self.bytes += buf.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_only_the_file_the_user_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.folded");
        let mut none = FoldedFile::from_args(&[("top".into(), "3".into())]);
        assert_eq!(none.write(&["a 1".into()]), Err("no --arg folded=FILE was given".into()));
        let mut f = FoldedFile::from_args(&[(ARG.into(), p.to_string_lossy().into_owned())]);
        std::fs::write(&p, "old\n").unwrap();
        f.write(&["main;a 2".into()]).unwrap();
        f.write(&["main;b 1".into(), "main 4".into()]).unwrap();
        assert!(f.write(&["x\ny 1".into()]).is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "main;a 2\nmain;b 1\nmain 4\n");
        assert_eq!(f.lines(), 3);
    }
}
