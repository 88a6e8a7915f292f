//! The `WPK1` container (documented in the module above): writing it, and reading it as
//! untrusted input (every length checked before use, every error a message, never a panic).

use std::path::Path;

use sha2::{Digest, Sha256};

use super::keys::{PublicKey, SecretKey, TrustPolicy, Verified};
use super::manifest::Manifest;
use super::PackError;

/// The first four bytes of every pack.
pub const MAGIC: &[u8; 4] = b"WPK1";
const SUM_MAGIC: &[u8; 4] = b"WSUM";
const SIG_MAGIC: &[u8; 4] = b"WSIG";
const ALG_ED25519: u8 = 1;
/// Bytes of the signature block: magic, algorithm, public key, signature.
const SIG_BLOCK_LEN: usize = 4 + 1 + 32 + 64;
/// What is signed: this, then the 32-byte digest.
pub const SIGNED_CONTEXT: &[u8] = b"wasmprobe pack signature v1\0";
/// The name of the component inside a pack.
pub const COMPONENT_FILE: &str = "plugin.wasm";

/// Largest pack file.
pub const MAX_PACK_BYTES: u64 = 128 << 20;
/// Largest manifest.
pub const MAX_MANIFEST_BYTES: usize = 256 << 10;
/// Most files in a pack (the component included).
pub const MAX_FILES: usize = 32;
/// Longest file name.
pub const MAX_FILE_NAME: usize = 128;

/// One file of a pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackFile {
    /// Its relative path in the pack.
    pub name: String,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// The signature of a signed pack (already checked against its digest by [`Pack::open`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The signer's public key, as the pack carries it.
    pub key: PublicKey,
    /// The 64-byte ed25519 signature.
    pub bytes: [u8; 64],
}

/// A pack whose structure, digest and (if signed) signature have been checked.
#[derive(Debug, Clone)]
pub struct Pack {
    manifest: Manifest,
    manifest_json: String,
    files: Vec<PackFile>,
    digest: [u8; 32],
    signature: Option<Signature>,
}

impl Pack {
    /// Reads and checks the pack at `path` (see [`Pack::from_bytes`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Pack, PackError> {
        let path = path.as_ref();
        let bytes = crate::plugin::read_plugin_file(path, MAX_PACK_BYTES).map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => {
                PackError::Malformed(format!("{}: a pack is at most {MAX_PACK_BYTES} bytes", path.display()))
            }
            _ => PackError::io(path, e),
        })?;
        Pack::from_bytes(&bytes)
    }

    /// Parses and checks a pack in memory: the structure, the digest, the manifest's rules,
    /// that the files are exactly the component and the manifest's `files`, that the component
    /// imports the `wasmprobe:plugin` version the manifest names, and for a signed pack the
    /// signature against the key it carries. Trust in that key is [`Pack::verify`]'s job.
    pub fn from_bytes(bytes: &[u8]) -> Result<Pack, PackError> {
        if bytes.len() as u64 > MAX_PACK_BYTES {
            return Err(PackError::Malformed(format!("{} bytes; a pack is at most {MAX_PACK_BYTES}", bytes.len())));
        }
        let mut r = Reader { bytes, pos: 0 };
        let magic = r.take(4, "the magic")?;
        if magic != MAGIC {
            return Err(PackError::Malformed(format!(
                "it does not start with {:?} (it starts with {:?})",
                String::from_utf8_lossy(MAGIC),
                String::from_utf8_lossy(magic).escape_debug().to_string()
            )));
        }
        let mlen = r.u32("the manifest length")? as usize;
        if mlen > MAX_MANIFEST_BYTES {
            return Err(PackError::Malformed(format!(
                "the manifest claims {mlen} bytes; at most {MAX_MANIFEST_BYTES} are allowed"
            )));
        }
        let manifest_bytes = r.take(mlen, "the manifest")?;
        let nfiles = r.u32("the file count")? as usize;
        if nfiles == 0 || nfiles > MAX_FILES {
            return Err(PackError::Malformed(format!("it claims {nfiles} files; 1 to {MAX_FILES} are allowed")));
        }
        let mut files: Vec<PackFile> = Vec::with_capacity(nfiles);
        for i in 0..nfiles {
            let nlen = r.u16(&format!("the name length of file {}", i + 1))? as usize;
            if nlen == 0 || nlen > MAX_FILE_NAME {
                return Err(PackError::Malformed(format!(
                    "file {} has a name of {nlen} bytes; 1 to {MAX_FILE_NAME} are allowed",
                    i + 1
                )));
            }
            let name = std::str::from_utf8(r.take(nlen, "a file name")?)
                .map_err(|_| PackError::Malformed(format!("the name of file {} is not UTF-8", i + 1)))?
                .to_string();
            check_file_name(&name).map_err(PackError::Malformed)?;
            let dlen = r.u64(&format!("the length of {name}"))?;
            if dlen > r.remaining() as u64 {
                return Err(PackError::Malformed(format!(
                    "truncated: {name} claims {dlen} bytes but only {} remain",
                    r.remaining()
                )));
            }
            let data = r.take(dlen as usize, &name)?.to_vec();
            files.push(PackFile { name, data });
        }
        let body_end = r.pos;
        let sum_magic = r.take(4, "the digest marker")?;
        if sum_magic != SUM_MAGIC {
            return Err(PackError::Malformed(format!(
                "expected the digest marker \"WSUM\" at offset {body_end}, found {:?}",
                String::from_utf8_lossy(sum_magic).escape_debug().to_string()
            )));
        }
        let stored: [u8; 32] = r.take(32, "the digest")?.try_into().expect("took 32 bytes");
        let digest: [u8; 32] = Sha256::digest(&bytes[..body_end]).into();
        if stored != digest {
            return Err(PackError::Corrupt(format!(
                "its SHA-256 is {} but the pack records {}: some byte before offset {body_end} changed",
                super::keys::hex(&digest),
                super::keys::hex(&stored)
            )));
        }
        let signature = match r.remaining() {
            0 => None,
            n if n == SIG_BLOCK_LEN => {
                let at = r.pos;
                let block = r.take(SIG_BLOCK_LEN, "the signature block")?;
                if &block[..4] != SIG_MAGIC {
                    return Err(PackError::Malformed(format!(
                        "{n} bytes follow the digest at offset {at} and they are not a signature block"
                    )));
                }
                if block[4] != ALG_ED25519 {
                    return Err(PackError::Malformed(format!(
                        "unknown signature algorithm {} (this host knows 1 = ed25519)",
                        block[4]
                    )));
                }
                let key = PublicKey::from_bytes(block[5..37].try_into().expect("32 bytes"))
                    .map_err(|e| PackError::BadSignature(format!("the signer's key in the pack is invalid: {e}")))?;
                let sig: [u8; 64] = block[37..].try_into().expect("64 bytes");
                key.verify(&signed_message(&digest), &sig).map_err(|_| {
                    PackError::BadSignature(format!(
                        "the signature does not match the pack's contents and key {} (the pack was tampered with, \
                         or its signature block was damaged)",
                        key.id()
                    ))
                })?;
                Some(Signature { key, bytes: sig })
            }
            n if n > SIG_BLOCK_LEN && r.bytes[r.pos..].starts_with(SIG_MAGIC) => {
                return Err(PackError::Malformed(format!(
                    "{} unexpected bytes after the signature block (appended data?)",
                    n - SIG_BLOCK_LEN
                )))
            }
            n if r.bytes[r.pos..].starts_with(SIG_MAGIC) => {
                return Err(PackError::Malformed(format!(
                    "truncated: the signature block has {n} of its {SIG_BLOCK_LEN} bytes"
                )))
            }
            n => {
                return Err(PackError::Malformed(format!(
                    "{n} unexpected bytes after the digest at offset {} (appended data, or a damaged signature block)",
                    r.pos
                )))
            }
        };

        let manifest_json = std::str::from_utf8(manifest_bytes)
            .map_err(|_| PackError::Malformed("the manifest is not UTF-8".into()))?
            .to_string();
        let manifest = Manifest::from_json(&manifest_json)?;
        check_file_list(&manifest, &files)?;
        super::manifest::check_component_matches(&manifest, &files[0].data)?;
        Ok(Pack { manifest, manifest_json, files, digest, signature })
    }

    /// Checks the pack's signer against `trust`. With no policy set, an unsigned pack and a
    /// pack signed by any key pass (its signature was checked by `open`); with a policy, the
    /// pack must be signed by one of its keys.
    pub fn verify(&self, trust: &TrustPolicy) -> Result<Verified, PackError> {
        trust.check(self.signature.as_ref().map(|s| &s.key))
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The manifest exactly as stored (JSON).
    pub fn manifest_json(&self) -> &str {
        &self.manifest_json
    }

    /// The component bytes (`plugin.wasm`).
    pub fn component(&self) -> &[u8] {
        &self.files[0].data
    }

    /// Every file, the component first.
    pub fn files(&self) -> &[PackFile] {
        &self.files
    }

    /// A shipped file by name.
    pub fn file(&self, name: &str) -> Option<&[u8]> {
        self.files.iter().find(|f| f.name == name).map(|f| f.data.as_slice())
    }

    /// The SHA-256 of everything before the digest marker.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// The signature, if the pack is signed.
    pub fn signature(&self) -> Option<&Signature> {
        self.signature.as_ref()
    }
}

/// What an ed25519 pack signature signs.
pub(crate) fn signed_message(digest: &[u8; 32]) -> Vec<u8> {
    [SIGNED_CONTEXT, digest.as_slice()].concat()
}

/// Writes the container: `manifest` (already validated), the component, the other files in
/// order, the digest and, with `signer`, the signature block.
pub(crate) fn encode(
    manifest: &Manifest,
    component: &[u8],
    files: &[PackFile],
    signer: Option<&SecretKey>,
) -> Result<Vec<u8>, PackError> {
    let json = manifest.to_json();
    if json.len() > MAX_MANIFEST_BYTES {
        return Err(PackError::Manifest(format!(
            "the manifest is {} bytes; at most {MAX_MANIFEST_BYTES} are allowed",
            json.len()
        )));
    }
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(json.as_bytes());
    let all: Vec<(&str, &[u8])> = std::iter::once((COMPONENT_FILE, component))
        .chain(files.iter().map(|f| (f.name.as_str(), f.data.as_slice())))
        .collect();
    if all.len() > MAX_FILES {
        return Err(PackError::Manifest(format!("{} files; a pack holds at most {MAX_FILES}", all.len())));
    }
    out.extend_from_slice(&(all.len() as u32).to_le_bytes());
    for (name, data) in all {
        check_file_name(name).map_err(PackError::Manifest)?;
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(data.len() as u64).to_le_bytes());
        out.extend_from_slice(data);
    }
    let digest: [u8; 32] = Sha256::digest(&out).into();
    out.extend_from_slice(SUM_MAGIC);
    out.extend_from_slice(&digest);
    if let Some(key) = signer {
        out.extend_from_slice(SIG_MAGIC);
        out.push(ALG_ED25519);
        out.extend_from_slice(&key.public().to_bytes());
        out.extend_from_slice(&key.sign(&signed_message(&digest)));
    }
    if out.len() as u64 > MAX_PACK_BYTES {
        return Err(PackError::Manifest(format!(
            "the pack would be {} bytes; at most {MAX_PACK_BYTES} are allowed",
            out.len()
        )));
    }
    Ok(out)
}

/// A file name inside a pack: a relative path of plain parts.
pub(crate) fn check_file_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_FILE_NAME
        && name.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "file name {:?} is not allowed (a relative path of letters, digits, '.', '_', '-' and '/', \
             at most {MAX_FILE_NAME} bytes, no '..')",
            name.escape_debug().to_string()
        ))
    }
}

/// The files must be the component, then exactly the manifest's `files`, in order.
fn check_file_list(manifest: &Manifest, files: &[PackFile]) -> Result<(), PackError> {
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    let expected: Vec<&str> =
        std::iter::once(COMPONENT_FILE).chain(manifest.files.iter().map(String::as_str)).collect();
    if names != expected {
        return Err(PackError::Malformed(format!(
            "it holds the files [{}] but its manifest calls for [{}]",
            names.join(", "),
            expected.join(", ")
        )));
    }
    Ok(())
}

/// Bounds-checked reads; every error says what was being read and where.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], PackError> {
        if n > self.remaining() {
            return Err(PackError::Malformed(format!(
                "truncated: {what} needs {n} bytes at offset {} but only {} remain",
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u16(&mut self, what: &str) -> Result<u16, PackError> {
        Ok(u16::from_le_bytes(self.take(2, what)?.try_into().expect("2 bytes")))
    }

    fn u32(&mut self, what: &str) -> Result<u32, PackError> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self, what: &str) -> Result<u64, PackError> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().expect("8 bytes")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_plain_relative_paths() {
        for ok in ["README.md", "docs/usage.txt", "a-b_c.d"] {
            check_file_name(ok).unwrap();
        }
        for bad in ["", "/etc/passwd", "../x", "a//b", "a/./b", "a b", "x\n", "a/"] {
            assert!(check_file_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        let cases: &[&[u8]] = &[
            b"",
            b"WPK",
            b"WPK2\0\0\0\0",
            b"WPK1\xff\xff\xff\xff",
            b"WPK1\x02\0\0\0{}",
            b"WPK1\x02\0\0\0{}\0\0\0\0",
            b"WPK1\x02\0\0\0{}\x01\0\0\0\x0b\0plugin.wasm\xff\xff\xff\xff\xff\xff\xff\xff",
        ];
        for c in cases {
            let e = Pack::from_bytes(c).unwrap_err();
            assert!(matches!(e, PackError::Malformed(_)), "{c:?}: {e}");
        }
    }
}
