//! Probe packs: one file (`*.wpk`) a user can download and run with `wasmprobe run FILE.wpk`.
//!
//! A pack holds a plugin component, a [`Manifest`] (name, version, description, author, the
//! `wasmprobe:plugin` version it needs, every probe it may ask for, the kernels it was tested
//! on, the files it ships) and optional files (a README). It may be signed with ed25519.
//!
//! # The file format (`WPK1`)
//!
//! Everything little-endian; no timestamps, no padding, so the same inputs always give the same
//! bytes (and, ed25519 being deterministic, the same signature).
//!
//! ```text
//! size      field
//! 4         magic "WPK1"
//! 4         u32 M: manifest length (at most 256 KiB)
//! M         the manifest, UTF-8 JSON (see Manifest)
//! 4         u32 N: number of files (1..=32)
//! N times:  u16 L: name length (1..=128); L bytes of name (UTF-8, a relative path:
//!           letters, digits, `._-`, `/` between non-empty parts, no `..`);
//!           u64 D: data length; D bytes of data.
//!           The first file is `plugin.wasm` (the component), then the manifest's `files`, in
//!           the manifest's order, each exactly once.
//! 4         "WSUM"
//! 32        SHA-256 of every byte before "WSUM" (the digest)
//! then either the end of the file (an unsigned pack) or the signature block:
//! 4         "WSIG"
//! 1         algorithm: 1 = ed25519
//! 32        the signer's ed25519 public key
//! 64        ed25519 signature of "wasmprobe pack signature v1\0" followed by the digest
//! and the end of the file: nothing may follow.
//! ```
//!
//! Every byte before the signature block is covered by the digest, hence by the signature; the
//! block itself is checked structurally (magic, algorithm, exact length, nothing after it), so
//! flipping, appending or cutting any byte of a pack is an error. [`Pack::open`] checks the
//! structure, the digest and, for a signed pack, the signature against the key it carries;
//! [`Pack::verify`] then checks that key against the user's [`TrustPolicy`].
//!
//! # Keys
//!
//! `wasmprobe pack keygen -o KEY` writes two one-line text files (see [`keys`]):
//! `KEY` (mode 0600) `wasmprobe-ed25519-secret-key <64 hex digits: the 32-byte seed>` and
//! `KEY.pub` `wasmprobe-ed25519-public-key <64 hex digits> [comment]`. A key's id, which
//! messages show, is the first 8 bytes of the SHA-256 of the public key, in hex.
//!
//! # Running a pack
//!
//! ```no_run
//! use std::sync::Arc;
//! use wasmprobe::pack::{self, Pack, TrustPolicy};
//! use wasmprobe::plugin::{FixedKernel, Plugin, Policy, Sandbox, StdOutput};
//! let trust = TrustPolicy::from_args(&["alice.pub".into()], None)?;
//! let pack = Pack::open("tcp-pack.wpk")?;        // structure, digest, signature
//! pack.verify(&trust)?;                           // the signer is trusted (or no policy is set)
//! pack::check_wit_version(pack.manifest())?;      // this host can run it
//! let mut plugin =
//!     Plugin::from_bytes(&pack.manifest().name, pack.component(), &Sandbox::default(), Box::new(StdOutput::default()))?;
//! let plan = plugin.init(&[], Arc::new(FixedKernel::default()))?;
//! plan.validate(&Policy::default())?;
//! pack::check_plan_against_manifest(&plan, pack.manifest())?; // nothing beyond what it declared
//! # Ok::<(), anyhow::Error>(())
//! ```

mod builder;
pub mod cli;
mod format;
pub mod keys;
mod manifest;
pub mod oci;

use std::path::Path;

use crate::plugin::{self, Output, Plan, Plugin, PluginSource, Sandbox};

pub use builder::{build, build_dir, read_source_dir, SourceDir, BUILTIN_PREFIX};
pub use format::{
    Pack, PackFile, Signature, COMPONENT_FILE, MAGIC, MAX_FILES, MAX_FILE_NAME, MAX_MANIFEST_BYTES, MAX_PACK_BYTES,
    SIGNED_CONTEXT,
};
pub use keys::{KeyId, PublicKey, SecretKey, TrustPolicy, Verified};
pub use manifest::{
    check_plan_against_manifest, check_wit_version, component_wit_versions, host_wit_version, Manifest, ManifestProbe,
    WitVersion,
};

/// Why a pack was refused. Every message says what is wrong and, where it helps, what to do.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The file could not be read or written.
    #[error("{path}: {err}")]
    Io {
        /// The file.
        path: String,
        /// What the system said (in the message, not repeated as a source).
        err: std::io::Error,
    },
    /// Not a well-formed pack: wrong magic, truncated, absurd lengths, trailing bytes, ...
    #[error("not a valid probe pack: {0}")]
    Malformed(String),
    /// The digest does not match: some byte of the pack changed.
    #[error("the pack is corrupt or was tampered with: {0}")]
    Corrupt(String),
    /// The signature does not verify.
    #[error("bad signature: {0}")]
    BadSignature(String),
    /// Unsigned, or signed by a key the trust policy does not list.
    #[error("untrusted pack: {0}")]
    Untrusted(String),
    /// The manifest is missing, unparsable or breaks a rule.
    #[error("bad manifest: {0}")]
    Manifest(String),
    /// The pack needs a `wasmprobe:plugin` version this host does not have.
    #[error("{0}")]
    WitVersion(String),
    /// The plugin asked at run time for a probe its manifest does not declare.
    #[error("{0}")]
    UndeclaredProbe(String),
    /// A key file is unreadable or malformed.
    #[error("bad key: {0}")]
    Key(String),
}

impl PackError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> PackError {
        PackError::Io { path: path.display().to_string(), err: source }
    }
}

/// Whether the `run` argument `arg` names a pack: a `.wpk` file, or any file that starts with
/// the pack magic.
pub fn is_pack_path(arg: &str) -> bool {
    let path = Path::new(arg);
    if path.extension().is_some_and(|e| e == "wpk") {
        return true;
    }
    // Only a regular file is opened: opening a FIFO would block, reading a device never ends.
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return false;
    }
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic)).is_ok() && &magic == MAGIC
}

/// Opens the pack at `path` for a run: checks its integrity, its signer against `trust`, and
/// that this host speaks the `wasmprobe:plugin` version it needs. What is left for the run is
/// [`check_plan_against_manifest`] once the plugin's `init` has returned its plan.
pub fn open_for_run(path: impl AsRef<Path>, trust: &TrustPolicy) -> Result<(Pack, Verified), PackError> {
    let pack = Pack::open(path)?;
    let verified = pack.verify(trust)?;
    check_wit_version(pack.manifest())?;
    Ok((pack, verified))
}

/// What `wasmprobe run ARG` runs: a pack (already checked: integrity, signer, WIT version),
/// or a plain plugin source (a built-in, or a `.wasm` file when no trust policy is set).
#[derive(Debug)]
pub enum RunSource {
    /// A pack, checked.
    Pack {
        /// The pack.
        pack: Box<Pack>,
        /// How it was checked (its signer).
        verified: Verified,
    },
    /// A built-in or a `.wasm` file.
    Plain(PluginSource),
}

impl RunSource {
    /// Resolves `run`'s argument under `trust`. A pack must pass [`open_for_run`]; with a
    /// trust policy set, a plain `.wasm` component is refused (it cannot be signed), while the
    /// built-in examples, part of the binary itself, still run.
    /// Errors name `arg`.
    pub fn resolve(arg: &str, trust: &TrustPolicy) -> anyhow::Result<RunSource> {
        // A registry reference: pulled (or taken from the cache) and checked like a file.
        if oci::looks_like_reference(arg) {
            let (pack, verified) = oci::open_for_run(arg, trust)?;
            return Ok(RunSource::Pack { pack: Box::new(pack), verified });
        }
        if is_pack_path(arg) {
            let (pack, verified) = open_for_run(arg, trust).map_err(|e| match e {
                // An I/O error names the file already.
                PackError::Io { .. } => anyhow::Error::new(e),
                e => anyhow::Error::new(e).context(arg.to_string()),
            })?;
            return Ok(RunSource::Pack { pack: Box::new(pack), verified });
        }
        let source = PluginSource::parse(arg);
        if trust.is_set() && matches!(source, PluginSource::Path(_)) {
            return Err(anyhow::Error::new(PackError::Untrusted(
                "a plain component, and a trust policy is set (--trust/--trust-dir): only signed packs may run \
                 (make one with `wasmprobe pack build DIR -o FILE.wpk --sign KEY`)"
                    .into(),
            ))
            .context(arg.to_string()));
        }
        Ok(RunSource::Plain(source))
    }

    /// The name messages use for the plugin.
    pub fn name(&self) -> String {
        match self {
            RunSource::Pack { pack, .. } => pack.manifest().name.clone(),
            RunSource::Plain(s) => s.name(),
        }
    }

    /// Loads the plugin into its sandbox.
    pub fn load(&self, sandbox: &Sandbox, output: Box<dyn Output>) -> Result<Plugin, plugin::Error> {
        match self {
            RunSource::Pack { pack, .. } => {
                Plugin::from_bytes(&pack.manifest().name, pack.component(), sandbox, output)
            }
            RunSource::Plain(s) => Plugin::load(s, sandbox, output),
        }
    }

    /// For a pack, refuses a plan with a probe its manifest does not declare.
    pub fn check_plan(&self, plan: &Plan) -> Result<(), PackError> {
        match self {
            RunSource::Pack { pack, .. } => check_plan_against_manifest(plan, pack.manifest()),
            RunSource::Plain(_) => Ok(()),
        }
    }
}

/// What `wasmprobe pack inspect` prints: the manifest, the files, the signature, the
/// `wasmprobe:plugin` compatibility, and the probes the pack may create.
pub fn describe(pack: &Pack) -> String {
    use std::fmt::Write;
    let m = pack.manifest();
    let mut s = String::new();
    let _ = writeln!(s, "pack {} {}", m.name, m.version);
    if !m.description.is_empty() {
        let _ = writeln!(s, "  description:    {}", m.description);
    }
    if !m.author.is_empty() {
        let _ = writeln!(s, "  author:         {}", m.author);
    }
    let wit = match check_wit_version(m) {
        Ok(()) => format!("{} (this host has @{}: compatible)", m.wit, host_wit_version()),
        Err(e) => format!("{} (REFUSED: {e})", m.wit),
    };
    let _ = writeln!(s, "  needs:          {wit}");
    if m.tested_kernels.is_empty() {
        let _ = writeln!(s, "  tested kernels: (none listed)");
    } else {
        let _ = writeln!(s, "  tested kernels: {}", m.tested_kernels.join(", "));
    }
    let sig = match pack.signature() {
        Some(sig) => format!("ed25519, key {} (signature valid; trust is checked by `run`/`verify`)", sig.key.id()),
        None => "unsigned".to_string(),
    };
    let _ = writeln!(s, "  signature:      {sig}");
    let _ = writeln!(s, "  digest:         sha256:{}", keys::hex(&pack.digest()));
    let _ = writeln!(s, "files:");
    for f in pack.files() {
        let _ = writeln!(s, "  {:<24} {:>10} bytes", f.name, f.data.len());
    }
    let _ =
        writeln!(s, "probes it may create ({}; a run creates those its plugin picks for the kernel):", m.probes.len());
    for p in &m.probes {
        let args = match &p.fetchargs {
            Some(a) if !a.is_empty() => format!(" {a}"),
            Some(_) => String::new(),
            None => " (any fetchargs)".to_string(),
        };
        let _ = writeln!(s, "  {:<10} {:<16} {}{args}", p.kind.name(), p.name, p.target);
    }
    s
}
