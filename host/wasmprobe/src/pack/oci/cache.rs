//! The local content-addressed cache of pulled packs.
//!
//! ```text
//! <cache>/oci/blobs/sha256/<hex>                         a manifest or a pack layer, by digest
//! <cache>/oci/tags/<registry>/<repository>/_tags/<tag>   "sha256:<hex>\n": what the tag named
//!                                                         when it was last pulled
//! ```
//!
//! `<cache>` is the compiled-component cache's directory (`$WASMPROBE_CACHE`, else
//! `$XDG_CACHE_HOME/wasmprobe`, else `~/.cache/wasmprobe`), whose own files are
//! `<hex>.cwasm` at its top: `oci/` never collides with them. (A repository path component
//! never starts with `_`, so `_tags` never collides with a repository either.)
//!
//! Only blobs whose digest was checked are written, through a temporary file and a rename,
//! so a failed or interrupted pull leaves nothing. A blob is checked again each time it is
//! read: a file changed on disk is a miss (and is removed), never a wrong answer.

use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::artifact::sha256_digest;
use super::reference::Reference;

/// The cache directory (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// The default cache: `oci/` in the compiled-component cache's directory; `None` when
    /// `WASMPROBE_CACHE=off` or no home directory is known.
    pub fn default_location() -> Option<Cache> {
        crate::plugin::cache::default_dir().map(|d| Cache::at(d.join("oci")))
    }

    /// A cache rooted at `root`.
    pub fn at(root: impl Into<PathBuf>) -> Cache {
        Cache { root: root.into() }
    }

    /// Its directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_path(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:")?;
        super::reference::check_digest(digest).ok()?;
        Some(self.root.join("blobs/sha256").join(hex))
    }

    fn tag_path(&self, r: &Reference) -> PathBuf {
        self.root.join("tags").join(&r.registry).join(&r.repository).join("_tags").join(r.tag_or_default())
    }

    /// The blob `digest`, if cached and intact (at most `max` bytes).
    pub fn blob(&self, digest: &str, max: u64) -> Option<Vec<u8>> {
        let path = self.blob_path(digest)?;
        let meta = std::fs::metadata(&path).ok()?;
        if !meta.is_file() || meta.len() > max {
            return None;
        }
        let bytes = std::fs::read(&path).ok()?;
        if sha256_digest(&bytes) != digest {
            // Changed on disk: drop it, so the next pull by tag downloads it again.
            let _ = std::fs::remove_file(&path);
            return None;
        }
        Some(bytes)
    }

    /// Stores `bytes` as blob `digest`, which the caller checked they match.
    pub fn put_blob(&self, digest: &str, bytes: &[u8]) -> std::io::Result<()> {
        debug_assert_eq!(sha256_digest(bytes), digest);
        let path = self.blob_path(digest).ok_or_else(|| std::io::Error::other(format!("bad digest {digest}")))?;
        write_atomically(&path, bytes)
    }

    /// The digest tag `r` named when it was last pulled, if recorded.
    pub fn tag(&self, r: &Reference) -> Option<String> {
        let text = std::fs::read_to_string(self.tag_path(r)).ok()?;
        let digest = text.trim();
        super::reference::check_digest(digest).ok()?;
        Some(digest.to_string())
    }

    /// Records that tag `r` names `digest`.
    pub fn put_tag(&self, r: &Reference, digest: &str) -> std::io::Result<()> {
        write_atomically(&self.tag_path(r), format!("{digest}\n").as_bytes())
    }
}

/// Writes `path` through a temporary file beside it and a rename (directories made 0700).
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("cache paths have a parent");
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".tmp.{}.{seq}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_checked_on_every_read_and_tags_are_kept_apart_from_repositories() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::at(tmp.path().join("oci"));
        let d = sha256_digest(b"pack");
        assert_eq!(cache.blob(&d, 100), None);
        cache.put_blob(&d, b"pack").unwrap();
        assert_eq!(cache.blob(&d, 100).as_deref(), Some(&b"pack"[..]));
        assert_eq!(cache.blob(&d, 3), None, "over the size limit");
        let path = cache.blob_path(&d).unwrap();
        std::fs::write(&path, b"pick").unwrap();
        assert_eq!(cache.blob(&d, 100), None, "changed on disk: a miss");
        assert!(!path.exists(), "and dropped");

        let a = Reference::parse("localhost:5000/a:b").unwrap();
        let ab = Reference::parse("localhost:5000/a/b:v1").unwrap();
        cache.put_tag(&a, &d).unwrap();
        cache.put_tag(&ab, &sha256_digest(b"other")).unwrap();
        assert_eq!(cache.tag(&a), Some(d.clone()));
        assert_eq!(cache.tag(&ab), Some(sha256_digest(b"other")));
        assert_eq!(cache.tag(&Reference::parse("localhost:5001/a:b").unwrap()), None);
        let leftovers: Vec<_> = walk(tmp.path()).into_iter().filter(|p| p.contains(".tmp.")).collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    fn walk(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            out.push(p.display().to_string());
            if p.is_dir() {
                out.extend(walk(&p));
            }
        }
        out
    }
}
