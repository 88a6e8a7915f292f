//! Probe packs as OCI artifacts: pushed to and pulled from container registries by
//! reference, pinned by digest, cached, and verified against the trust policy before
//! anything is armed. The user's guide is `docs/oci.md`.
//!
//! # The artifact (OCI image spec 1.1 artifact guidance)
//!
//! ```text
//! manifest  application/vnd.oci.image.manifest.v1+json
//!   artifactType  application/vnd.wasmprobe.pack.v1
//!   config        application/vnd.oci.empty.v1+json        the empty descriptor: `{}`
//!   layers[0]     application/wasm                         the component (title plugin.wasm),
//!                                                          as the CNCF Wasm OCI artifact layout
//!   layers[1]     application/vnd.wasmprobe.pack.v1+wpk    the whole .wpk file, byte for byte
//!                                                          (title NAME-VERSION.wpk)
//!   annotations   org.opencontainers.image.{title,version,description,authors} from the
//!                 pack's manifest; vnd.wasmprobe.pack.digest (the pack's own sha256) and
//!                 vnd.wasmprobe.pack.signer (its key id, for display only)
//! ```
//!
//! The pack layer is the signed file itself, so a pulled pack goes through exactly the checks
//! a file does ([`Pack::from_bytes`], then [`Pack::verify`] against `--trust`/`--trust-dir`).
//! The component layer lets a generic Wasm or ORAS tool find the component; on a pull it is
//! not downloaded but must be the pack's component (same digest), so what such a tool takes
//! is what the signature covers. The manifest is serialised deterministically (no
//! timestamps): the same pack always gives the same manifest digest.
//!
//! # Pulls
//!
//! A reference with a digest whose manifest and pack layer are in the [`cache`] is answered
//! from it with no network. A tag is always looked up in the registry, unless `--offline`:
//! then the cache answers with what the tag named when last pulled. Every blob is checked
//! against its digest and size on arrival; a mismatch, an interrupted download, a layer over
//! the size limit, a wrong media type (a container image, an index, another artifact), a
//! damaged or untrusted pack are refused with one line, and nothing is cached or written.

pub mod artifact;
pub mod auth;
pub mod cache;
pub mod cli;
mod reference;
mod registry;

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use anyhow::{anyhow, Context, Result};

pub use artifact::{
    ARTIFACT_TYPE, EMPTY_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, MAX_MANIFEST_BYTES, PACK_MEDIA_TYPE, WASM_MEDIA_TYPE,
};
pub use auth::Credentials;
pub use cache::Cache;
pub use reference::{check_digest, looks_like_reference, Reference, DEFAULT_TAG};

use super::{check_wit_version, Pack, PackError, TrustPolicy, Verified, MAX_PACK_BYTES};

/// How to reach registries: which may be spoken to over plain HTTP, extra CA certificates,
/// credentials, and the cache.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Registries (`host:port`, as written in references) allowed over plain HTTP. Never any
    /// by default.
    pub insecure: Vec<String>,
    /// PEM files of CA certificates trusted besides the system roots.
    pub ca_files: Vec<PathBuf>,
    /// Credentials given on the command line, for whichever registry the command talks to.
    pub login: Option<Credentials>,
    /// The Docker config file to take credentials from (`None`: none).
    pub docker_config: Option<PathBuf>,
    /// Use only the cache.
    pub offline: bool,
    /// The cache (`None`: nothing is cached, and `--offline` has nothing to use).
    pub cache: Option<Cache>,
}

impl Default for RegistryOptions {
    /// HTTPS only, the system roots, the Docker config's credentials, the default cache.
    fn default() -> Self {
        RegistryOptions {
            insecure: Vec::new(),
            ca_files: Vec::new(),
            login: None,
            docker_config: auth::docker_config_path(),
            offline: false,
            cache: Cache::default_location(),
        }
    }
}

impl RegistryOptions {
    /// The credentials for `registry`: the command line's, else the Docker config's.
    pub fn credentials(&self, registry: &str) -> Result<Option<Credentials>, String> {
        if let Some(c) = &self.login {
            return Ok(Some(c.clone()));
        }
        match &self.docker_config {
            Some(path) => auth::from_docker_config(path, registry),
            None => Ok(None),
        }
    }
}

/// A pulled pack that passed every check.
#[derive(Debug)]
pub struct Pulled {
    /// The reference, pinned to the manifest's digest.
    pub reference: Reference,
    /// The manifest's bytes.
    pub manifest: Vec<u8>,
    /// The manifest, parsed and checked.
    pub checked: artifact::Checked,
    /// The pack file's bytes.
    pub bytes: Vec<u8>,
    /// The pack.
    pub pack: Pack,
    /// Its signer, against the trust policy.
    pub verified: Verified,
    /// Whether it came from the cache (no network at all).
    pub from_cache: bool,
}

impl Pulled {
    /// The manifest's digest (what the reference is pinned to).
    pub fn digest(&self) -> &str {
        self.reference.digest.as_deref().expect("pinned")
    }
}

/// Pulls the pack `r` names: from the cache when that needs no network (see the module docs),
/// else from the registry. Checks the manifest, the blob digests and sizes, the pack's
/// integrity and signature, that the component layer is the pack's, and the signer against
/// `trust`; only then caches it. Errors are one line naming `r`.
pub fn pull(r: &Reference, opts: &RegistryOptions, trust: &TrustPolicy) -> Result<Pulled> {
    pull_inner(r, opts, trust).with_context(|| r.to_string())
}

fn pull_inner(r: &Reference, opts: &RegistryOptions, trust: &TrustPolicy) -> Result<Pulled> {
    let cache = opts.cache.as_ref();
    // What the cache can answer without the registry: a digest, or with --offline a tag.
    let digest = match (&r.digest, opts.offline) {
        (Some(d), _) => Some(d.clone()),
        (None, true) => {
            let Some(c) = cache else {
                return Err(anyhow!("--offline, and the cache is off (WASMPROBE_CACHE=off)"));
            };
            Some(c.tag(r).ok_or_else(|| {
                anyhow!(
                    "tag {} is not in the cache ({}): pull it once without --offline",
                    r.tag_or_default(),
                    c.root().display()
                )
            })?)
        }
        (None, false) => None,
    };
    if let (Some(c), Some(d)) = (cache, &digest) {
        if let Some(manifest) = c.blob(d, MAX_MANIFEST_BYTES as u64) {
            let checked = artifact::check(&manifest).map_err(|e| anyhow!("cached manifest {d}: {e}"))?;
            if let Some(bytes) = c.blob(&checked.pack.digest, checked.pack.size) {
                return finish(r.pinned(d), manifest, checked, bytes, trust, None);
            }
        }
    }
    if opts.offline {
        let d = digest.expect("set with --offline");
        let where_ = cache.map(|c| c.root().display().to_string()).unwrap_or_default();
        return Err(anyhow!("{d} is not in the cache ({where_}) and --offline forbids the registry"));
    }
    let session = registry::Session::new(opts, r).map_err(|e| anyhow!(e))?;
    let rt = registry::runtime().map_err(|e| anyhow!(e))?;
    let (manifest, digest, checked, bytes) = rt
        .block_on(async {
            let (manifest, digest) = session.manifest(r).await?;
            let checked = artifact::check(&manifest)?;
            let cached = cache.and_then(|c| c.blob(&checked.pack.digest, checked.pack.size));
            let bytes = match cached {
                Some(b) => b,
                None => session.blob(r, &checked.pack).await?,
            };
            Ok::<_, String>((manifest, digest, checked, bytes))
        })
        .map_err(|e| anyhow!(e))?;
    let tag = r.digest.is_none().then_some(r);
    finish(r.pinned(&digest), manifest, checked, bytes, trust, Some((cache, tag)))
}

/// The checks of the pack itself; then, for a download (`store`: the cache and the tag
/// pulled, if any), caching: the pack layer, the manifest, and the tag's digest.
fn finish(
    pinned: Reference,
    manifest: Vec<u8>,
    checked: artifact::Checked,
    bytes: Vec<u8>,
    trust: &TrustPolicy,
    store: Option<(Option<&Cache>, Option<&Reference>)>,
) -> Result<Pulled> {
    let pack = Pack::from_bytes(&bytes)?;
    artifact::check_component_layer(&checked, &pack).map_err(|e| anyhow!(e))?;
    let verified = pack.verify(trust)?;
    let from_cache = store.is_none();
    let pulled = Pulled { reference: pinned, manifest, checked, bytes, pack, verified, from_cache };
    if let Some((Some(cache), tag)) = store {
        store_in(cache, &pulled, tag);
    }
    Ok(pulled)
}

/// Stores a downloaded pull in `cache` (a failure to write is a warning, not an error: the
/// pull itself succeeded).
fn store_in(cache: &Cache, pulled: &Pulled, tag: Option<&Reference>) {
    let digest = pulled.digest();
    let result = cache
        .put_blob(&pulled.checked.pack.digest, &pulled.bytes)
        .and_then(|()| cache.put_blob(digest, &pulled.manifest))
        .and_then(|()| tag.map_or(Ok(()), |t| cache.put_tag(t, digest)));
    if let Err(e) = result {
        eprintln!("wasmprobe: warning: cannot cache {} in {}: {e}", pulled.reference, cache.root().display());
    }
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The reference pushed to, pinned to the manifest's digest.
    pub reference: Reference,
    /// The manifest's size in bytes.
    pub manifest_size: usize,
}

/// Pushes the pack file `bytes` (checked: integrity and signature) to `r`: the config, the
/// component and the pack blobs (those the repository lacks), then the manifest under `r`'s
/// tag (or digest, which must then be the manifest's). Errors are one line naming `r`.
pub fn push(bytes: &[u8], r: &Reference, opts: &RegistryOptions) -> Result<Pushed> {
    (|| {
        if opts.offline {
            return Err(anyhow!("a push needs the registry (--offline given)"));
        }
        let pack = Pack::from_bytes(bytes)?;
        let art = artifact::build(&pack, bytes);
        if let Some(d) = &r.digest {
            if d != &art.digest {
                return Err(anyhow!("the artifact's digest is {}, not {d}", art.digest));
            }
        }
        let session = registry::Session::new(opts, r).map_err(|e| anyhow!(e))?;
        let rt = registry::runtime().map_err(|e| anyhow!(e))?;
        rt.block_on(async {
            session.login_for_push(r).await?;
            for (d, blob) in &art.blobs {
                session.push_blob(r, d, blob).await?;
            }
            session.push_manifest(r, &art.manifest).await
        })
        .map_err(|e| anyhow!(e))?;
        Ok(Pushed { reference: r.pinned(&art.digest), manifest_size: art.manifest.len() })
    })()
    .with_context(|| r.to_string())
}

/// What `pack inspect REF` prints: the reference and its digest, the artifact's layers, then
/// the pack as [`super::describe`] shows a file.
pub fn describe(pulled: &Pulled) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let m = &pulled.checked.manifest;
    let _ = writeln!(s, "reference {}", pulled.reference);
    let _ =
        writeln!(s, "  manifest:       {} ({} bytes, {})", pulled.digest(), pulled.manifest.len(), MANIFEST_MEDIA_TYPE);
    let _ = writeln!(s, "  artifactType:   {}", m.artifact_type.as_deref().unwrap_or(""));
    let _ = writeln!(s, "  config:         {} {}", m.config.media_type, m.config.digest);
    for l in &m.layers {
        let title = l.annotations.get(artifact::ANNOTATION_TITLE).map(|t| format!(" {t}")).unwrap_or_default();
        let _ = writeln!(s, "  layer:          {} {} {} bytes{title}", l.media_type, l.digest, l.size);
    }
    let signer = match &pulled.verified.signer {
        Some(id) => format!("key {id}"),
        None => "unsigned".to_string(),
    };
    let _ = writeln!(s, "  signer:         {signer}");
    let _ =
        writeln!(s, "  from:           {}", if pulled.from_cache { "the cache (no network)" } else { "the registry" });
    s.push_str(&super::describe(&pulled.pack));
    s
}

/// The registry options `wasmprobe run REF` uses (set once by the command line; the defaults
/// otherwise).
static RUN_OPTIONS: OnceLock<RegistryOptions> = OnceLock::new();

/// Sets the registry options of the runs of this process (`run`'s `--insecure-registry`,
/// `--ca-file`, credentials, `--offline`). Only the first call counts.
pub fn set_run_options(opts: RegistryOptions) {
    let _ = RUN_OPTIONS.set(opts);
}

/// Packs already pulled by this process, by the argument that named them: a run resolves its
/// argument more than once (to refuse early, then to load), and must get the same pack each
/// time without asking the registry again.
static PULLED: OnceLock<Mutex<Vec<PulledBytes>>> = OnceLock::new();

/// A run argument and the pack file it resolved to.
type PulledBytes = (String, Vec<u8>);

/// Resolves `run`'s argument `arg`, a reference (see [`looks_like_reference`]), to a pack that
/// passed every check, the trust policy and the `wasmprobe:plugin` version included. Prints
/// one note on stderr the first time: the digest, and whether it came from the cache.
pub fn open_for_run(arg: &str, trust: &TrustPolicy) -> Result<(Pack, Verified)> {
    let pulled = PULLED.get_or_init(Mutex::default);
    let known = pulled.lock().unwrap().iter().find(|(a, _)| a == arg).map(|(_, b)| b.clone());
    if let Some(bytes) = known {
        let pack = Pack::from_bytes(&bytes).with_context(|| arg.to_string())?;
        let verified = pack.verify(trust).with_context(|| arg.to_string())?;
        return Ok((pack, verified));
    }
    let r = Reference::parse(arg).map_err(|e| anyhow!(e))?;
    let opts = RUN_OPTIONS.get_or_init(RegistryOptions::default);
    let p = pull(&r, opts, trust)?;
    check_wit_version(p.pack.manifest()).map_err(|e: PackError| anyhow::Error::new(e).context(r.to_string()))?;
    let m = p.pack.manifest();
    eprintln!(
        "wasmprobe: {r}: pack {} {} ({}, {}), {}",
        m.name,
        m.version,
        p.digest(),
        match &p.verified.signer {
            Some(id) => format!("signed by key {id}"),
            None => "unsigned".into(),
        },
        if p.from_cache { "from the cache" } else { "pulled from the registry" }
    );
    pulled.lock().unwrap().push((arg.to_string(), p.bytes.clone()));
    Ok((p.pack, p.verified))
}

/// The largest pack layer accepted (the pack format's own limit).
pub const MAX_PACK_LAYER_BYTES: u64 = MAX_PACK_BYTES;
