//! `wasmprobe pack build DIR`: a pack directory (manifest, component, shipped files) into
//! pack bytes.

use std::path::{Component, Path};

use super::format::{encode, PackFile, COMPONENT_FILE, MAX_PACK_BYTES};
use super::keys::SecretKey;
use super::manifest::{check_component_matches, Manifest};
use super::{Pack, PackError};

/// `component = "builtin:NAME"` in a manifest.toml takes a built-in example's bytes.
pub const BUILTIN_PREFIX: &str = "builtin:";

/// A pack directory, read: the manifest (its `component` resolved and cleared), the
/// component's bytes, and the shipped files in the manifest's order.
#[derive(Debug, Clone)]
pub struct SourceDir {
    /// The manifest, `component` resolved and cleared.
    pub manifest: Manifest,
    /// The component's bytes.
    pub component: Vec<u8>,
    /// The shipped files, in the manifest's order.
    pub files: Vec<PackFile>,
}

/// Reads a pack directory: `DIR/manifest.toml` (or `DIR/manifest.json`), the component
/// (`DIR/plugin.wasm`, or the manifest's `component`), and every file the manifest's `files`
/// lists.
pub fn read_source_dir(dir: &Path) -> Result<SourceDir, PackError> {
    let toml_path = dir.join("manifest.toml");
    let json_path = dir.join("manifest.json");
    let mut manifest = if toml_path.exists() {
        let text = std::fs::read_to_string(&toml_path).map_err(|e| PackError::io(&toml_path, e))?;
        Manifest::from_toml(&text).map_err(|e| in_file(&toml_path, e))?
    } else if json_path.exists() {
        let text = std::fs::read_to_string(&json_path).map_err(|e| PackError::io(&json_path, e))?;
        let m: Manifest = serde_json::from_str(&text).map_err(|e| PackError::Manifest(e.to_string()))?;
        m.validate().map_err(|e| in_file(&json_path, e))?;
        m
    } else {
        return Err(PackError::Manifest(format!("{} has no manifest.toml (or manifest.json)", dir.display())));
    };
    let component = match manifest.component.take() {
        Some(c) if c.starts_with(BUILTIN_PREFIX) => {
            let name = &c[BUILTIN_PREFIX.len()..];
            crate::plugin::builtin(name)
                .ok_or_else(|| {
                    PackError::Manifest(format!(
                        "component {c:?}: no such built-in (built-ins: {})",
                        crate::plugin::builtin_names().join(", ")
                    ))
                })?
                .to_vec()
        }
        Some(c) => read_in(dir, &c)?,
        None => read_in(dir, COMPONENT_FILE)?,
    };
    let mut files = Vec::new();
    for name in &manifest.files {
        files.push(PackFile { name: name.clone(), data: read_in(dir, name)? });
    }
    Ok(SourceDir { manifest, component, files })
}

fn in_file(path: &Path, e: PackError) -> PackError {
    match e {
        PackError::Manifest(m) => PackError::Manifest(format!("{}: {m}", path.display())),
        other => other,
    }
}

/// Reads `rel` inside `dir` (a relative path that stays inside it, symbolic links resolved:
/// a `README.md` that links to `/etc/shadow` would ship the secret in the pack; files only,
/// size-capped).
fn read_in(dir: &Path, rel: &str) -> Result<Vec<u8>, PackError> {
    let p = Path::new(rel);
    if !p.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(PackError::Manifest(format!("{rel:?} must be a relative path inside the pack directory")));
    }
    let path = dir.join(p);
    let root = dir.canonicalize().map_err(|e| PackError::io(dir, e))?;
    let real = path.canonicalize().map_err(|e| PackError::io(&path, e))?;
    if !real.starts_with(&root) {
        return Err(PackError::Manifest(format!(
            "{} leads outside the pack directory (to {}): a pack ships files of its own directory only",
            path.display(),
            real.display()
        )));
    }
    let meta = std::fs::metadata(&path).map_err(|e| PackError::io(&path, e))?;
    if !meta.is_file() {
        return Err(PackError::Manifest(format!("{} is not a file", path.display())));
    }
    if meta.len() > MAX_PACK_BYTES {
        return Err(PackError::Manifest(format!("{} is {} bytes: too big for a pack", path.display(), meta.len())));
    }
    std::fs::read(&path).map_err(|e| PackError::io(&path, e))
}

/// Builds a pack from its parts: checks the manifest and that the component imports the
/// `wasmprobe:plugin` version it names, writes the container, signs it with `signer`, and
/// reads the result back to be sure it opens.
pub fn build(
    manifest: &Manifest,
    component: &[u8],
    files: &[PackFile],
    signer: Option<&SecretKey>,
) -> Result<Vec<u8>, PackError> {
    let mut m = manifest.clone();
    m.component = None;
    m.validate()?;
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    if names != m.files.iter().map(String::as_str).collect::<Vec<_>>() {
        return Err(PackError::Manifest(format!(
            "the files given [{}] are not the manifest's files [{}]",
            names.join(", "),
            m.files.join(", ")
        )));
    }
    check_component_matches(&m, component)?;
    let bytes = encode(&m, component, files, signer)?;
    Pack::from_bytes(&bytes)?;
    Ok(bytes)
}

/// Builds the pack of directory `dir` (see [`read_source_dir`]), signed with `signer`.
pub fn build_dir(dir: &Path, signer: Option<&SecretKey>) -> Result<Vec<u8>, PackError> {
    let src = read_source_dir(dir)?;
    build(&src.manifest, &src.component, &src.files, signer)
}
