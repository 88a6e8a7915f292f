//! The on-disk cache of compiled components: a second start of the same plugin maps the
//! compiled code instead of compiling it (about 0.2 ms instead of 50-700 ms).
//!
//! A cache file is native code that wasmtime maps and runs without checking it, so it is
//! only trusted when its directory and the file belong to us and nobody else may write
//! them. The key is the sha256 of the component bytes, the wasmtime version and the
//! engine's `precompile_compatibility_hash` (its configuration and the CPU's features).

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
        // SAFETY: the file was written by `store` below (our uid, not writable by others, in a
        // directory nobody else may write), from `precompile_component` of the same engine
        // configuration: the key covers wasmtime's version and compatibility hash.
        if let Ok(c) = unsafe { Component::deserialize_file(engine, &file) } {
            return Ok((c, CacheOutcome::Hit(file)));
        }
    }
    let compiled = engine.precompile_component(wasm)?;
    // SAFETY: these bytes come from `precompile_component` of this very engine just now.
    let component = unsafe { Component::deserialize(engine, &compiled)? };
    let outcome = match store(dir, &file, &compiled) {
        Ok(()) => CacheOutcome::Stored(file),
        Err(e) => CacheOutcome::Compiled(format!("cannot write {}: {e}", file.display())),
    };
    Ok((component, outcome))
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
