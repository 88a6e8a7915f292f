//! Signing keys, trusted keys and the trust policy.
//!
//! Key files are one line of text (blank lines and lines starting with `#` are ignored):
//!
//! ```text
//! KEY       wasmprobe-ed25519-secret-key <64 hex digits: the 32-byte ed25519 seed>
//! KEY.pub   wasmprobe-ed25519-public-key <64 hex digits: the 32-byte public key> [comment]
//! ```
//!
//! A key's id is the first 8 bytes of the SHA-256 of its 32 public-key bytes, in hex (16
//! digits): short enough for messages, long enough to tell keys apart.

use std::fmt;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::PackError;

const SECRET_TAG: &str = "wasmprobe-ed25519-secret-key";
const PUBLIC_TAG: &str = "wasmprobe-ed25519-public-key";
/// Key files are tiny; anything bigger is not one.
const MAX_KEY_FILE: u64 = 64 << 10;

/// A public key's short id (hex).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub String);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An ed25519 public key (a pack's signer, or a trusted key).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id())
    }
}

impl PublicKey {
    /// The key from its 32 bytes; refuses bytes that are not a valid curve point.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<PublicKey, String> {
        VerifyingKey::from_bytes(bytes).map(PublicKey).map_err(|_| "not a valid ed25519 public key".to_string())
    }

    /// The 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The short id messages show.
    pub fn id(&self) -> KeyId {
        KeyId(hex(&Sha256::digest(self.0.as_bytes())[..8]))
    }

    /// Checks `sig` over `msg` (strict: no malleable or weak-key signatures).
    pub fn verify(&self, msg: &[u8], sig: &[u8; 64]) -> Result<(), String> {
        self.0.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(sig)).map_err(|e| e.to_string())
    }

    /// Parses a public key file's text.
    pub fn parse(text: &str) -> Result<PublicKey, String> {
        let hexkey = key_line(text, PUBLIC_TAG)?;
        PublicKey::from_bytes(&unhex32(hexkey)?)
    }

    /// Reads a public key file.
    pub fn read(path: impl AsRef<Path>) -> Result<PublicKey, PackError> {
        let path = path.as_ref();
        let text = read_small(path)?;
        PublicKey::parse(&text).map_err(|e| PackError::Key(format!("{}: {e}", path.display())))
    }

    /// The public key file's text.
    pub fn to_text(&self, comment: &str) -> String {
        let comment: String = comment.chars().filter(|c| !c.is_control()).collect();
        if comment.is_empty() {
            format!("{PUBLIC_TAG} {}\n", hex(&self.to_bytes()))
        } else {
            format!("{PUBLIC_TAG} {} {comment}\n", hex(&self.to_bytes()))
        }
    }
}

/// An ed25519 signing key.
pub struct SecretKey(SigningKey);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(public {})", self.public().id())
    }
}

impl SecretKey {
    /// A new key from the operating system's randomness.
    pub fn generate() -> Result<SecretKey, PackError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| PackError::Key(format!("no randomness for a new key: {e}")))?;
        Ok(SecretKey::from_seed(&seed))
    }

    /// The key of a 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> SecretKey {
        SecretKey(SigningKey::from_bytes(seed))
    }

    /// Its public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Signs `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg).to_bytes()
    }

    /// Parses a secret key file's text.
    pub fn parse(text: &str) -> Result<SecretKey, String> {
        if text.contains(PUBLIC_TAG) {
            return Err("this is a public key file; signing needs the secret key (the file without .pub)".into());
        }
        Ok(SecretKey::from_seed(&unhex32(key_line(text, SECRET_TAG)?)?))
    }

    /// Reads a secret key file.
    pub fn read(path: impl AsRef<Path>) -> Result<SecretKey, PackError> {
        let path = path.as_ref();
        let text = read_small(path)?;
        SecretKey::parse(&text).map_err(|e| PackError::Key(format!("{}: {e}", path.display())))
    }

    /// The secret key file's text.
    pub fn to_text(&self) -> String {
        format!("{SECRET_TAG} {}\n", hex(&self.0.to_bytes()))
    }

    /// Writes a new key pair: the secret key to `path` (mode 0600, refusing to overwrite an
    /// existing file) and the public key to `path.pub`. Returns the public key's path.
    pub fn write_pair(&self, path: impl AsRef<Path>) -> Result<PathBuf, PackError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = path.as_ref();
        let pub_path = public_path(path);
        for p in [path, pub_path.as_path()] {
            if p.exists() {
                return Err(PackError::Key(format!("{} exists; not overwriting a key", p.display())));
            }
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| PackError::io(path, e))?;
        f.write_all(self.to_text().as_bytes()).map_err(|e| PackError::io(path, e))?;
        let comment = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        std::fs::write(&pub_path, self.public().to_text(&comment)).map_err(|e| PackError::io(&pub_path, e))?;
        Ok(pub_path)
    }
}

/// `KEY` → `KEY.pub`.
pub fn public_path(secret: &Path) -> PathBuf {
    let mut s = secret.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// Which signers the user trusts. With no policy set, every pack may run (its signature, if
/// any, must still be valid); with one, only packs signed by one of its keys.
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    /// `None`: no policy. `Some`: the trusted keys, with where each came from.
    keys: Option<Vec<(PublicKey, String)>>,
}

impl TrustPolicy {
    /// No policy: unsigned packs run, and signed ones whatever their key.
    pub fn none() -> TrustPolicy {
        TrustPolicy::default()
    }

    /// A policy trusting exactly `keys` (possibly none: then every pack is refused).
    pub fn trusting(keys: impl IntoIterator<Item = PublicKey>) -> TrustPolicy {
        TrustPolicy { keys: Some(keys.into_iter().map(|k| (k, "given".to_string())).collect()) }
    }

    /// From `--trust FILE` (repeatable) and `--trust-dir DIR` (every `*.pub` in it). Neither
    /// given: no policy. Given but empty (a directory without keys): a policy nothing passes.
    pub fn from_args(files: &[PathBuf], dir: Option<&Path>) -> Result<TrustPolicy, PackError> {
        if files.is_empty() && dir.is_none() {
            return Ok(TrustPolicy::none());
        }
        let mut keys = Vec::new();
        for f in files {
            keys.push((PublicKey::read(f)?, f.display().to_string()));
        }
        if let Some(dir) = dir {
            let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| PackError::io(dir, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "pub") && p.is_file())
                .collect();
            paths.sort();
            for p in paths {
                keys.push((PublicKey::read(&p)?, p.display().to_string()));
            }
        }
        Ok(TrustPolicy { keys: Some(keys) })
    }

    /// Whether a policy is set (then unsigned packs are refused).
    pub fn is_set(&self) -> bool {
        self.keys.is_some()
    }

    /// The trusted keys (empty without a policy).
    pub fn keys(&self) -> impl Iterator<Item = &PublicKey> {
        self.keys.iter().flatten().map(|(k, _)| k)
    }

    /// Checks a pack's signer (already verified cryptographically) against the policy.
    pub fn check(&self, signer: Option<&PublicKey>) -> Result<Verified, PackError> {
        let Some(keys) = &self.keys else {
            return Ok(Verified { signer: signer.map(PublicKey::id), trusted_key: None });
        };
        let Some(signer) = signer else {
            return Err(PackError::Untrusted(
                "the pack is unsigned, and a trust policy is set (--trust/--trust-dir): only packs signed by a \
                 trusted key may run (sign it with `wasmprobe pack build DIR -o FILE --sign KEY`)"
                    .into(),
            ));
        };
        match keys.iter().find(|(k, _)| k == signer) {
            Some((_, source)) => Ok(Verified { signer: Some(signer.id()), trusted_key: Some(source.clone()) }),
            None => {
                let trusted: Vec<String> = keys.iter().map(|(k, _)| k.id().0).collect();
                Err(PackError::Untrusted(format!(
                    "the pack is signed by key {}, which is not a trusted key (trusted: {})",
                    signer.id(),
                    if trusted.is_empty() { "none".to_string() } else { trusted.join(", ") }
                )))
            }
        }
    }
}

/// What [`super::Pack::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signer's key id, if signed.
    pub signer: Option<KeyId>,
    /// Where the trusted key that matched came from (a key file), if a policy is set.
    pub trusted_key: Option<String>,
}

impl fmt::Display for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.signer, &self.trusted_key) {
            (Some(id), Some(src)) => write!(f, "signature OK: signed by trusted key {id} ({src})"),
            (Some(id), None) => write!(f, "signature OK: signed by key {id} (no trust policy given: not checked)"),
            (None, _) => f.write_str("unsigned (no trust policy given)"),
        }
    }
}

fn read_small(path: &Path) -> Result<String, PackError> {
    let meta = std::fs::metadata(path).map_err(|e| PackError::io(path, e))?;
    if meta.len() > MAX_KEY_FILE {
        return Err(PackError::Key(format!("{}: {} bytes is too big for a key file", path.display(), meta.len())));
    }
    std::fs::read_to_string(path).map_err(|e| PackError::io(path, e))
}

/// The hex field of the one `TAG HEX [comment]` line of a key file.
fn key_line<'a>(text: &'a str, tag: &str) -> Result<&'a str, String> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
    let line = lines.next().ok_or_else(|| format!("empty key file (expected a line `{tag} HEX`)"))?;
    if lines.next().is_some() {
        return Err("more than one key line".into());
    }
    let mut words = line.split_whitespace();
    if words.next() != Some(tag) {
        return Err(format!("not a wasmprobe key file of this kind (expected a line `{tag} HEX`)"));
    }
    words.next().ok_or_else(|| format!("no key after {tag}"))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(s: &str) -> Result<[u8; 32], String> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("the key must be 64 hex digits (32 bytes), got {} characters", s.len()));
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_text_round_trips_and_signatures_verify() {
        let k = SecretKey::from_seed(&[7; 32]);
        let k2 = SecretKey::parse(&k.to_text()).unwrap();
        assert_eq!(k.public(), k2.public());
        let p = PublicKey::parse(&format!("# a comment\n{}", k.public().to_text("alice@example"))).unwrap();
        assert_eq!(p, k.public());
        assert_eq!(p.id().0.len(), 16);
        let sig = k.sign(b"msg");
        p.verify(b"msg", &sig).unwrap();
        assert!(p.verify(b"msG", &sig).is_err());
    }

    #[test]
    fn malformed_key_files_are_refused() {
        assert!(PublicKey::parse("").is_err());
        assert!(PublicKey::parse("wasmprobe-ed25519-public-key abc").is_err());
        assert!(PublicKey::parse(&SecretKey::from_seed(&[1; 32]).to_text()).is_err());
        let e = SecretKey::parse(&SecretKey::from_seed(&[1; 32]).public().to_text("")).unwrap_err();
        assert!(e.contains("public key file"), "{e}");
    }

    #[test]
    fn no_policy_passes_everything_and_a_policy_needs_a_trusted_signer() {
        let a = SecretKey::from_seed(&[1; 32]).public();
        let b = SecretKey::from_seed(&[2; 32]).public();
        assert!(TrustPolicy::none().check(None).is_ok());
        assert!(TrustPolicy::none().check(Some(&a)).is_ok());
        let p = TrustPolicy::trusting([a.clone()]);
        assert!(p.check(Some(&a)).is_ok());
        assert!(matches!(p.check(Some(&b)), Err(PackError::Untrusted(_))));
        assert!(matches!(p.check(None), Err(PackError::Untrusted(_))));
        assert!(TrustPolicy::trusting([]).check(Some(&a)).is_err());
    }
}
