//! The on-disk cache of compiled components: a second start of the same plugin maps the
//! compiled code instead of compiling it (start-up figures: docs/ARCHITECTURE.md).
//!
//! A cache file is native code that wasmtime maps and runs without checking it, so it is
//! only trusted when its directory and the file belong to us and nobody else may write
//! them. The key is the sha256 of the component bytes, the wasmtime version and the
//! engine's `precompile_compatibility_hash` (its configuration and the CPU's features).
//!
//! A plugin loaded from a file is found without reading or hashing it (a Python or JS plugin
//! is 12-19 MB: reading and hashing it was most of a warm start): a small `id-*` file, named
//! by the hash of the file's identity (device, inode, size, mtime and ctime in nanoseconds,
//! with the engine's key material), holds the name of its compiled file. Any write to the
//! plugin file changes its ctime, which no user can set back, so a changed file misses and
//! is read, hashed and recorded again; a first load always goes through the content key.
//!
//! The cache is bounded: after each store the compiled files are evicted least recently
//! used first (a hit touches its file) until they total at most [`max_bytes`]
//! (`$WASMPROBE_CACHE_MAX_MIB`, default 1024 MiB); the file just stored is kept.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// The environment variable that overrides the cache directory (`off` disables the cache).
pub const CACHE_ENV: &str = "WASMPROBE_CACHE";

/// `$WASMPROBE_CACHE`, else `$XDG_CACHE_HOME/wasmprobe`, else `~/.cache/wasmprobe`; `None`
/// when `$WASMPROBE_CACHE` is `off` or no home is known.
pub fn default_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var(CACHE_ENV) {
        return (dir.as_os_str() != "off").then_some(dir);
    }
    var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|h| h.join(".cache"))).map(|d| d.join("wasmprobe"))
}

/// The environment variable that sets the cache's size cap in MiB.
pub const CACHE_MAX_ENV: &str = "WASMPROBE_CACHE_MAX_MIB";

/// The cache's size cap: `$WASMPROBE_CACHE_MAX_MIB` MiB, else 1 GiB.
pub fn max_bytes() -> u64 {
    std::env::var(CACHE_MAX_ENV).ok().and_then(|v| v.parse::<u64>().ok()).map_or(1 << 30, |m| m << 20)
}

/// The wasmtime release we are built with (Cargo.toml pins it). The compatibility hash covers
/// the version too (wasmtime's `module_version`); this keeps old files apart by name as well.
pub const WASMTIME_VERSION: &str = "48.0.8";

/// How a load got its compiled code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Mapped from this cache file.
    Hit(PathBuf),
    /// Compiled, and stored in this file for next time.
    Stored(PathBuf),
    /// Compiled; the cache was off or could not be used (why).
    Compiled(String),
}

impl CacheOutcome {
    /// Whether the code came from the cache.
    pub fn is_hit(&self) -> bool {
        matches!(self, CacheOutcome::Hit(_))
    }
}

struct Sha(Sha256);

impl Hasher for Sha {
    fn finish(&self) -> u64 {
        unreachable!("only written to")
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The cache file name of `wasm` for `engine`.
pub fn cache_key(engine: &Engine, wasm: &[u8]) -> String {
    let mut h = Sha(Sha256::new());
    h.write(b"wasmprobe component cache v1\0");
    h.write(WASMTIME_VERSION.as_bytes());
    h.write(&[0]);
    engine.precompile_compatibility_hash().hash(&mut h);
    h.write(&Sha256::digest(wasm));
    let digest = h.0.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.cwasm")
}

/// The name of the `id-*` file of a plugin file with metadata `meta`, for `engine`.
fn identity_key(engine: &Engine, meta: &std::fs::Metadata) -> String {
    let mut h = Sha(Sha256::new());
    h.write(b"wasmprobe component identity v1\0");
    h.write(WASMTIME_VERSION.as_bytes());
    h.write(&[0]);
    engine.precompile_compatibility_hash().hash(&mut h);
    for v in [meta.dev(), meta.ino(), meta.size()] {
        h.write(&v.to_le_bytes());
    }
    for v in [meta.mtime(), meta.mtime_nsec(), meta.ctime(), meta.ctime_nsec()] {
        h.write(&v.to_le_bytes());
    }
    let digest = h.0.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("id-{hex}")
}

/// Maps the compiled code of the plugin file whose metadata is `meta` without reading the
/// file, if a load of the same file (same identity, see the module's documentation) stored it.
pub(crate) fn load_by_identity(
    engine: &Engine,
    meta: &std::fs::Metadata,
    dir: Option<&Path>,
) -> Option<(Component, CacheOutcome)> {
    let dir = dir?;
    if untrusted(dir).is_some() {
        return None;
    }
    let id = dir.join(identity_key(engine, meta));
    if untrusted(&id).is_some() {
        return None;
    }
    let name = std::fs::read_to_string(&id).ok()?;
    let name = name.trim();
    if !(name.ends_with(".cwasm") && name.len() == 70 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')) {
        return None;
    }
    let file = dir.join(name);
    if !file.exists() || untrusted(&file).is_some() {
        let _ = std::fs::remove_file(&id);
        return None;
    }
    let c = match mapped(&file) {
        Some(c) => c,
        None => {
            // SAFETY: as in `load`: our file, in our directory, written by `store`.
            let c = unsafe { Component::deserialize_file(engine, &file) }.ok()?;
            remember_mapped(&file, &c);
            c
        }
    };
    touch(&file);
    Some((c, CacheOutcome::Hit(file)))
}

/// Records that the plugin file with metadata `meta` compiled to `outcome`'s file, for
/// [`load_by_identity`].
pub(crate) fn remember_identity(engine: &Engine, meta: &std::fs::Metadata, dir: Option<&Path>, outcome: &CacheOutcome) {
    let (Some(dir), CacheOutcome::Hit(file) | CacheOutcome::Stored(file)) = (dir, outcome) else { return };
    let Some(name) = file.file_name().and_then(|n| n.to_str()) else { return };
    let _ = store(dir, &dir.join(identity_key(engine, meta)), name.as_bytes());
}

/// Marks `file` as just used (the eviction is least recently used first).
fn touch(file: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(file) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

/// Removes the least recently used compiled files of `dir` until they total at most `cap`
/// bytes, never `keep`; then the `id-*` files whose compiled file is gone. Returns the
/// files removed.
pub fn evict(dir: &Path, cap: u64, keep: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = Vec::new();
    let mut ids = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(meta) = e.metadata() else { continue };
        if name.starts_with("id-") {
            ids.push(path);
        } else if name.ends_with(".cwasm") && meta.is_file() {
            files.push((meta.modified().unwrap_or(std::time::UNIX_EPOCH), meta.len(), path));
        }
    }
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    files.sort();
    let mut removed = Vec::new();
    for (_, len, path) in files {
        if total <= cap {
            break;
        }
        if path == keep {
            continue;
        }
        if std::fs::remove_file(&path).is_ok() {
            total -= len;
            removed.push(path);
        }
    }
    if !removed.is_empty() {
        for id in ids {
            let target = std::fs::read_to_string(&id).unwrap_or_default();
            if !dir.join(target.trim()).is_file() {
                let _ = std::fs::remove_file(&id);
            }
        }
    }
    removed
}

/// Why `dir` (and `file`, if present) cannot be trusted, if so.
fn untrusted(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let uid = nix::unistd::geteuid().as_raw();
    if meta.uid() != uid {
        return Some(format!("{} belongs to uid {}, not to us ({uid})", path.display(), meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Some(format!("{} is writable by others", path.display()));
    }
    None
}

/// Compiles `wasm`, or maps it from the cache in `dir`.
pub(crate) fn load(engine: &Engine, wasm: &[u8], dir: Option<&Path>) -> wasmtime::Result<(Component, CacheOutcome)> {
    let Some(dir) = dir else {
        return Ok((Component::new(engine, wasm)?, CacheOutcome::Compiled("the cache is off".into())));
    };
    if let Err(e) = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        let why = format!("cannot create {}: {e}", dir.display());
        return Ok((Component::new(engine, wasm)?, CacheOutcome::Compiled(why)));
    }
    if let Some(why) = untrusted(dir) {
        return Ok((Component::new(engine, wasm)?, CacheOutcome::Compiled(why)));
    }
    let file = dir.join(cache_key(engine, wasm));
    if file.exists() && untrusted(&file).is_none() {
        if let Some(c) = mapped(&file) {
            touch(&file);
            return Ok((c, CacheOutcome::Hit(file)));
        }
        // SAFETY: the file was written by `store` below (our uid, not writable by others, in a
        // directory nobody else may write), from `precompile_component` of the same engine
        // configuration: the key covers wasmtime's version and compatibility hash.
        if let Ok(c) = unsafe { Component::deserialize_file(engine, &file) } {
            remember_mapped(&file, &c);
            touch(&file);
            return Ok((c, CacheOutcome::Hit(file)));
        }
    }
    let compiled = engine.precompile_component(wasm)?;
    // SAFETY: these bytes come from `precompile_component` of this very engine just now.
    let component = unsafe { Component::deserialize(engine, &compiled)? };
    let outcome = match store(dir, &file, &compiled) {
        Ok(()) => {
            evict(dir, max_bytes(), &file);
            remember_mapped(&file, &component);
            CacheOutcome::Stored(file)
        }
        Err(e) => CacheOutcome::Compiled(format!("cannot write {}: {e}", file.display())),
    };
    Ok((component, outcome))
}

/// Compiled components already mapped in this process, by cache file, newest last: loading a
/// plugin again in the same process (an agent's restart or reload, a second instance of the
/// same file) reuses the mapped code instead of deserializing the file again, which is most
/// of a warm start (1.8-2 ms of a 19 MB Python plugin's 2.6-2.8 ms, 0.12 of a small Rust
/// one's 0.25 ms; `tests/bench/plugin-agg.sh`). A cache file's name is the hash of its
/// content for this engine, so the same name is the same code; callers check the file (it
/// exists and is ours) before asking. At most [`MAPPED_MAX`] are kept.
static MAPPED: std::sync::Mutex<Vec<(PathBuf, Component)>> = std::sync::Mutex::new(Vec::new());

/// How many mapped components [`MAPPED`] keeps (the least recently used is dropped).
const MAPPED_MAX: usize = 16;

/// The component mapped from `file` earlier in this process, if any.
fn mapped(file: &Path) -> Option<Component> {
    let mut m = MAPPED.lock().unwrap_or_else(|e| e.into_inner());
    let i = m.iter().position(|(f, _)| f == file)?;
    let entry = m.remove(i);
    let c = entry.1.clone();
    m.push(entry);
    Some(c)
}

/// Forgets the components mapped so far: the next load of each maps its file again, as the
/// first load in a new process does (the delivery benchmark times both).
pub fn forget_mapped() {
    MAPPED.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// Keeps `c`, mapped from (or stored as) `file`, for [`mapped`].
fn remember_mapped(file: &Path, c: &Component) {
    let mut m = MAPPED.lock().unwrap_or_else(|e| e.into_inner());
    m.retain(|(f, _)| f != file);
    if m.len() >= MAPPED_MAX {
        m.remove(0);
    }
    m.push((file.to_path_buf(), c.clone()));
}

/// Writes atomically (temporary file, then rename), so a concurrent load never maps half a file.
fn store(dir: &Path, file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".tmp-{}-{:?}", std::process::id(), std::thread::current().id()));
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&tmp, file).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_load_in_the_process_reuses_the_mapped_component() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = super::super::builtin("readline").expect("built-in readline");
        let engine = super::super::sandbox::engine();
        let (_, first) = load(engine, wasm, Some(dir.path())).unwrap();
        let CacheOutcome::Stored(file) = first else { panic!("first load stores: {first:?}") };
        assert!(mapped(&file).is_some());
        let (_, second) = load(engine, wasm, Some(dir.path())).unwrap();
        assert_eq!(second, CacheOutcome::Hit(file.clone()));
        // A file gone from the cache is not served from memory: it is compiled and stored again.
        std::fs::remove_file(&file).unwrap();
        let (_, third) = load(engine, wasm, Some(dir.path())).unwrap();
        assert_eq!(third, CacheOutcome::Stored(file));
    }
}
