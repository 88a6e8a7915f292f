//! The OCI manifest of a pack: built for a push, checked on a pull (see the module docs of
//! [`super`] for the layout and its media types).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::reference::check_digest;
use crate::pack::{keys, Pack, COMPONENT_FILE, MAX_PACK_BYTES};

/// The manifest's media type (OCI image spec 1.1 image manifest).
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Our artifact type (the manifest's `artifactType`).
pub const ARTIFACT_TYPE: &str = "application/vnd.wasmprobe.pack.v1";
/// The layer that holds the whole signed pack file, byte for byte.
pub const PACK_MEDIA_TYPE: &str = "application/vnd.wasmprobe.pack.v1+wpk";
/// The layer that holds the component, as the CNCF Wasm OCI artifact layout names it.
pub const WASM_MEDIA_TYPE: &str = "application/wasm";
/// The config: the OCI 1.1 empty descriptor, `{}`.
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// The empty config's bytes.
pub const EMPTY_CONFIG: &[u8] = b"{}";
/// The largest manifest we read (the distribution server's own limit is 4 MiB too).
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// Annotation keys we set on the manifest besides the `org.opencontainers.image.*` ones.
pub const ANNOTATION_PACK_DIGEST: &str = "vnd.wasmprobe.pack.digest";
/// The signer's key id (informational: the signature inside the pack layer is what counts).
pub const ANNOTATION_SIGNER: &str = "vnd.wasmprobe.pack.signer";
/// The layer title annotation, which ORAS and similar tools use as the file name.
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";

/// An OCI content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the content.
    pub media_type: String,
    /// `sha256:HEX` of the content.
    pub digest: String,
    /// Its length in bytes.
    pub size: u64,
    /// Annotations (sorted, so serialisation is deterministic).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    fn of(media_type: &str, bytes: &[u8], title: Option<String>) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest: sha256_digest(bytes),
            size: bytes.len() as u64,
            annotations: title.map(|t| (ANNOTATION_TITLE.to_string(), t)).into_iter().collect(),
        }
    }
}

/// The subset of the OCI image manifest we write and read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// [`MANIFEST_MEDIA_TYPE`] (optional in the spec; always written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// [`ARTIFACT_TYPE`] for a pack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The config descriptor ([`EMPTY_MEDIA_TYPE`] for a pack).
    pub config: Descriptor,
    /// The layers.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// Manifest annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// `sha256:HEX` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", keys::hex(&Sha256::digest(bytes)))
}

/// What a push uploads: the blobs (config, component, pack) and the manifest's bytes.
pub struct Artifact {
    /// `(descriptor, bytes)` of the config and each layer, in upload order.
    pub blobs: Vec<(Descriptor, Vec<u8>)>,
    /// The manifest, serialised (deterministic: the same pack gives the same bytes).
    pub manifest: Vec<u8>,
    /// `sha256:` of [`Artifact::manifest`]: what a reference pins.
    pub digest: String,
}

/// The artifact of the pack file `bytes` (already checked with [`Pack::from_bytes`]).
pub fn build(pack: &Pack, bytes: &[u8]) -> Artifact {
    let m = pack.manifest();
    let config = Descriptor::of(EMPTY_MEDIA_TYPE, EMPTY_CONFIG, None);
    let wasm = Descriptor::of(WASM_MEDIA_TYPE, pack.component(), Some(COMPONENT_FILE.into()));
    let wpk = Descriptor::of(PACK_MEDIA_TYPE, bytes, Some(format!("{}-{}.wpk", m.name, m.version)));
    let mut annotations = BTreeMap::new();
    annotations.insert(ANNOTATION_TITLE.to_string(), m.name.clone());
    annotations.insert("org.opencontainers.image.version".to_string(), m.version.clone());
    if !m.description.is_empty() {
        annotations.insert("org.opencontainers.image.description".to_string(), m.description.clone());
    }
    if !m.author.is_empty() {
        annotations.insert("org.opencontainers.image.authors".to_string(), m.author.clone());
    }
    annotations.insert(ANNOTATION_PACK_DIGEST.to_string(), format!("sha256:{}", keys::hex(&pack.digest())));
    if let Some(sig) = pack.signature() {
        annotations.insert(ANNOTATION_SIGNER.to_string(), sig.key.id().0);
    }
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(MANIFEST_MEDIA_TYPE.into()),
        artifact_type: Some(ARTIFACT_TYPE.into()),
        config: config.clone(),
        layers: vec![wasm.clone(), wpk.clone()],
        annotations,
    };
    let manifest = serde_json::to_vec(&manifest).expect("a manifest serialises");
    let digest = sha256_digest(&manifest);
    Artifact {
        blobs: vec![(config, EMPTY_CONFIG.to_vec()), (wasm, pack.component().to_vec()), (wpk, bytes.to_vec())],
        manifest,
        digest,
    }
}

/// A pulled manifest that passed [`check`]: where the pack and (if present) the component are.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The manifest as parsed.
    pub manifest: ImageManifest,
    /// The pack layer.
    pub pack: Descriptor,
    /// The component layer, if the artifact has one.
    pub wasm: Option<Descriptor>,
}

/// Checks that `bytes` is a pack artifact's manifest; the error says what it is instead
/// (a container image, an index, another artifact) or what is wrong.
pub fn check(bytes: &[u8]) -> Result<Checked, String> {
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(format!("the manifest is {} bytes, more than the limit of {MAX_MANIFEST_BYTES}", bytes.len()));
    }
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("the manifest is not valid JSON: {e}"))?;
    let media_type = value.get("mediaType").and_then(|v| v.as_str());
    let not_ours = "not a wasmprobe pack";
    match media_type {
        Some(
            t @ ("application/vnd.oci.image.index.v1+json"
            | "application/vnd.docker.distribution.manifest.list.v2+json"),
        ) => return Err(format!("it is an image index ({t}), {not_ours}")),
        None if value.get("manifests").is_some() => return Err(format!("it is an image index, {not_ours}")),
        Some(t @ "application/vnd.docker.distribution.manifest.v2+json") => {
            return Err(format!("it is a Docker container image ({t}), {not_ours}"))
        }
        Some(MANIFEST_MEDIA_TYPE) | None => {}
        Some(t) => return Err(format!("manifest media type {t} is not supported: {not_ours}")),
    }
    let manifest: ImageManifest =
        serde_json::from_value(value).map_err(|e| format!("not a valid OCI image manifest: {e}"))?;
    if manifest.schema_version != 2 {
        return Err(format!("schemaVersion {} is not supported (2 is)", manifest.schema_version));
    }
    match manifest.artifact_type.as_deref() {
        Some(ARTIFACT_TYPE) => {}
        other => {
            let config = manifest.config.media_type.as_str();
            return Err(match other {
                _ if config == "application/vnd.oci.image.config.v1+json"
                    || config == "application/vnd.docker.container.image.v1+json" =>
                {
                    format!("it is a container image (config {config}), {not_ours} (artifactType {ARTIFACT_TYPE})")
                }
                Some(t) => format!("it is an artifact of type {t}, {not_ours} ({ARTIFACT_TYPE})"),
                None => format!("it is an artifact with config {config}, {not_ours} (artifactType {ARTIFACT_TYPE})"),
            });
        }
    }
    let mut pack = None;
    let mut wasm = None;
    for layer in &manifest.layers {
        let slot = match layer.media_type.as_str() {
            PACK_MEDIA_TYPE => &mut pack,
            WASM_MEDIA_TYPE => &mut wasm,
            t => return Err(format!("unexpected layer of media type {t} in a pack artifact")),
        };
        if slot.replace(layer.clone()).is_some() {
            return Err(format!("more than one {} layer", layer.media_type));
        }
        check_digest(&layer.digest).map_err(|e| format!("layer {}: {e}", layer.media_type))?;
    }
    let pack = pack.ok_or_else(|| format!("the artifact has no {PACK_MEDIA_TYPE} layer"))?;
    if pack.size > MAX_PACK_BYTES {
        return Err(format!(
            "the pack layer is {} bytes, more than the limit of {MAX_PACK_BYTES} bytes (128 MiB): refused before download",
            pack.size
        ));
    }
    Ok(Checked { manifest, pack, wasm })
}

/// Checks that the artifact's component layer, if any, is the signed pack's component: what a
/// generic Wasm tool takes from the artifact is what the signature covers.
pub fn check_component_layer(checked: &Checked, pack: &Pack) -> Result<(), String> {
    let Some(w) = &checked.wasm else { return Ok(()) };
    let component = pack.component();
    if w.digest != sha256_digest(component) || w.size != component.len() as u64 {
        return Err(format!(
            "the {WASM_MEDIA_TYPE} layer ({}) is not the pack's component ({}): refused",
            w.digest,
            sha256_digest(component)
        ));
    }
    Ok(())
}
