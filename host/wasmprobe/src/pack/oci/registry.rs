//! Talking to a registry, through `oci-client` on a current-thread tokio runtime that lives
//! for one command. Every error is one line: the registry and its reason.

use std::time::Duration;

use futures_util::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::RegistryOperation;

use super::artifact::{sha256_digest, Descriptor, MANIFEST_MEDIA_TYPE};
use super::reference::Reference;
use super::RegistryOptions;

/// What we accept for a manifest: ours, and the container-image types, so that a container
/// image is answered (and refused by its media type) rather than converted or hidden.
const ACCEPT: &[&str] = &[
    MANIFEST_MEDIA_TYPE,
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// A connection to one registry for one command.
pub struct Session {
    client: oci_client::Client,
    auth: RegistryAuth,
    registry: String,
    insecure: bool,
}

/// A small current-thread runtime for the client's futures.
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the registry client's runtime: {e}"))
}

impl Session {
    /// A client for `r`'s registry under `opts` (TLS roots, plain HTTP if allowed, credentials).
    pub fn new(opts: &RegistryOptions, r: &Reference) -> Result<Session, String> {
        // rustls without a compiled-in default: ring, installed once for the process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = Vec::new();
        for file in &opts.ca_files {
            let text = std::fs::read(file).map_err(|e| format!("--ca-file {}: {e}", file.display()))?;
            let certs = pem_certificates(&text);
            if certs.is_empty() {
                return Err(format!(
                    "--ca-file {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
                    file.display()
                ));
            }
            roots.extend(certs.into_iter().map(|data| Certificate { encoding: CertificateEncoding::Pem, data }));
        }
        let insecure = opts.insecure.iter().any(|h| h == &r.registry);
        let config = ClientConfig {
            protocol: if insecure { ClientProtocol::Http } else { ClientProtocol::Https },
            extra_root_certificates: roots,
            // An index is refused by its media type, never resolved to a platform.
            platform_resolver: None,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            user_agent: concat!("wasmprobe/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        // try_from, not Client::new: that one falls back to a default client on error.
        let client = oci_client::Client::try_from(config).map_err(|e| format!("cannot set up the client: {e}"))?;
        let auth = match opts.credentials(&r.registry)? {
            Some(c) => RegistryAuth::Basic(c.username, c.password),
            None => RegistryAuth::Anonymous,
        };
        Ok(Session { client, auth, registry: r.registry.clone(), insecure })
    }

    fn fail(&self, e: &OciDistributionError) -> String {
        format!("registry {}: {}", self.registry, explain(e, self.insecure))
    }

    /// The manifest `r` names: its bytes and digest (checked against the bytes, and against
    /// the reference's digest if pinned).
    pub async fn manifest(&self, r: &Reference) -> Result<(Vec<u8>, String), String> {
        let cr = r.to_client();
        self.client.store_auth_if_needed(&self.registry, &self.auth).await;
        let (body, _) = self.client.pull_manifest_raw(&cr, &self.auth, ACCEPT).await.map_err(|e| self.fail(&e))?;
        let digest = sha256_digest(&body);
        if let Some(want) = &r.digest {
            if &digest != want {
                return Err(format!(
                    "registry {}: the manifest's digest is {digest}, not {want}: refused",
                    self.registry
                ));
            }
        }
        Ok((body.to_vec(), digest))
    }

    /// Downloads blob `d` of `r`'s repository, refusing more bytes than its size, fewer
    /// (an interrupted download), or bytes that do not match its digest.
    pub async fn blob(&self, r: &Reference, d: &Descriptor) -> Result<Vec<u8>, String> {
        let cr = r.to_client();
        self.client.store_auth_if_needed(&self.registry, &self.auth).await;
        let what = format!("blob {} ({})", d.digest, d.media_type);
        let stream = self.client.pull_blob_stream(&cr, d.digest.as_str()).await.map_err(|e| self.fail(&e))?;
        if let Some(n) = stream.content_length.filter(|&n| n != d.size) {
            return Err(format!(
                "registry {}: {what}: the registry announces {n} bytes, the manifest says {}: refused",
                self.registry, d.size
            ));
        }
        let mut bytes = Vec::with_capacity(d.size.min(16 << 20) as usize);
        let mut stream = stream.stream;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) => {
                    if bytes.len() as u64 + c.len() as u64 > d.size {
                        return Err(format!(
                            "registry {}: {what}: more than the {} bytes the manifest says: refused",
                            self.registry, d.size
                        ));
                    }
                    bytes.extend_from_slice(&c);
                }
                // The client's own digest check reports a mismatch here; ours below says it
                // the same way whichever comes first.
                Err(e) if bytes.len() as u64 == d.size && is_digest_error(&e) => break,
                Err(e) => {
                    return Err(format!(
                        "registry {}: {what}: download interrupted after {} of {} bytes: {}",
                        self.registry,
                        bytes.len(),
                        d.size,
                        chain(&e)
                    ))
                }
            }
        }
        if bytes.len() as u64 != d.size {
            return Err(format!(
                "registry {}: {what}: download interrupted after {} of {} bytes",
                self.registry,
                bytes.len(),
                d.size
            ));
        }
        let got = sha256_digest(&bytes);
        if got != d.digest {
            return Err(format!(
                "registry {}: {what} does not match its digest (the bytes hash to {got}): refused, nothing cached",
                self.registry
            ));
        }
        Ok(bytes)
    }

    /// Checks the credentials for a push (a token flow fails here when refused).
    pub async fn login_for_push(&self, r: &Reference) -> Result<(), String> {
        self.client.auth(&r.to_client(), &self.auth, RegistryOperation::Push).await.map(drop).map_err(|e| self.fail(&e))
    }

    /// Uploads blob `d` unless the repository has it already.
    pub async fn push_blob(&self, r: &Reference, d: &Descriptor, bytes: &[u8]) -> Result<(), String> {
        let cr = r.to_client();
        if self.client.blob_exists(&cr, &d.digest).await.map_err(|e| self.fail(&e))? {
            return Ok(());
        }
        self.client.push_blob(&cr, bytes.to_vec(), &d.digest).await.map(drop).map_err(|e| self.fail(&e))
    }

    /// Uploads the manifest under `r`'s tag (or digest).
    pub async fn push_manifest(&self, r: &Reference, manifest: &[u8]) -> Result<(), String> {
        // (The header type is the `http` crate's, which oci-client does not re-export.)
        let content_type = MANIFEST_MEDIA_TYPE.parse().expect("a valid header value");
        self.client
            .push_manifest_raw(&r.to_client(), manifest.to_vec(), content_type)
            .await
            .map(drop)
            .map_err(|e| self.fail(&e))
    }
}

/// The PEM certificate blocks of `text` (a CA file may hold several).
fn pem_certificates(text: &[u8]) -> Vec<Vec<u8>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let text = String::from_utf8_lossy(text);
    let mut out = Vec::new();
    let mut rest = &text[..];
    while let Some(b) = rest.find(BEGIN) {
        let Some(e) = rest[b..].find(END) else { break };
        out.push(format!("{}\n", &rest[b..b + e + END.len()]).into_bytes());
        rest = &rest[b + e + END.len()..];
    }
    out
}

fn is_digest_error(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<oci_client::errors::DigestError>())
}

/// The causes of `e`, outermost first, joined with ": " (repeats dropped).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// The registry's reason for `e`, with a hint where one helps.
fn explain(e: &OciDistributionError, insecure: bool) -> String {
    use OciDistributionError as E;
    match e {
        E::RegistryError { envelope, .. } => {
            let errs: Vec<String> = envelope
                .errors
                .iter()
                .map(|x| {
                    let code = serde_json::to_value(&x.code).ok().and_then(|v| v.as_str().map(str::to_string));
                    format!("{}: {}", code.unwrap_or_else(|| format!("{:?}", x.code)), x.message)
                })
                .collect();
            errs.join("; ")
        }
        E::ServerError { code, message, .. } => {
            let first = message.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
            let first: String = first.chars().take(200).collect();
            if first.is_empty() {
                format!("HTTP {code}")
            } else {
                format!("HTTP {code}: {first}")
            }
        }
        E::UnauthorizedError { .. } => UNAUTHORIZED.to_string(),
        E::AuthenticationFailure(reason) => format!("authentication failed: {}", reason.trim()),
        // Only manifests get here (blobs are checked in `Session::blob`).
        E::DigestError(oci_client::errors::DigestError::VerificationError { expected, actual }) => format!(
            "the manifest does not match its digest {expected} (the bytes hash to {actual}): refused, nothing cached"
        ),
        // A status without a body to read (e.g. a HEAD request).
        E::RequestError(re) if re.status().is_some_and(|s| s.as_u16() == 401) => UNAUTHORIZED.to_string(),
        E::RequestError(re) if re.status().is_some() => {
            format!("HTTP {}", re.status().map(|s| s.to_string()).unwrap_or_default())
        }
        E::RequestError(re) => {
            // The outermost message only repeats the URL; the causes say what happened.
            let why = match std::error::Error::source(re) {
                Some(src) => chain(src),
                None => re.to_string(),
            };
            // hyper's wording, said plainly.
            let mut why = match why.strip_prefix("client error (Connect): ") {
                Some(rest) => format!("cannot connect: {rest}"),
                None => why,
            };
            if why.contains("UnknownIssuer") || why.contains("invalid peer certificate") {
                why.push_str(" (for a registry with its own CA, give it with --ca-file CA.pem)");
            } else if !insecure
                && (why.contains("InvalidContentType") || why.contains("corrupt message") || why.contains("record"))
            {
                why.push_str(" (a plain-HTTP registry? allow it with --insecure-registry HOST:PORT)");
            }
            why
        }
        other => chain(other),
    }
}

const UNAUTHORIZED: &str = "unauthorized (HTTP 401): the registry wants credentials or refused the ones given (a \
                            Docker config `auths` entry, or --username with --password-stdin)";
