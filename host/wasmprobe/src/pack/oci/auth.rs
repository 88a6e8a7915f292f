//! Registry credentials from the Docker config file (`docker login` writes it): the `auths`
//! entry for the registry, as `auth` (base64 of `user:password`) or `username`/`password`.
//! Credential helpers (`credsStore`, `credHelpers`) are not run: give such registries'
//! credentials with `--username` and `--password-stdin`.

use std::path::{Path, PathBuf};

use base64::Engine;

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json` (`None` without a home).
pub fn docker_config_path() -> Option<PathBuf> {
    let var = |n: &str| std::env::var_os(n).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("DOCKER_CONFIG").or_else(|| var("HOME").map(|h| h.join(".docker"))).map(|d| d.join("config.json"))
}

/// A user name and password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password (never printed).
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <redacted>)", self.username)
    }
}

/// The credentials `config` (a Docker config file) has for `registry` (`host[:port]`):
/// `Ok(None)` when the file does not exist or has no entry for it. A file that exists but
/// cannot be read or parsed is an error naming it.
pub fn from_docker_config(config: &Path, registry: &str) -> Result<Option<Credentials>, String> {
    let text = match std::fs::read_to_string(config) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", config.display())),
    };
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not a Docker config file: {e}", config.display()))?;
    let Some(auths) = json.get("auths").and_then(|a| a.as_object()) else { return Ok(None) };
    let Some((key, entry)) = auths.iter().find(|(k, _)| same_registry(k, registry)) else { return Ok(None) };
    let bad = |why: &str| format!("{}: auths entry {key:?}: {why}", config.display());
    let field = |n: &str| entry.get(n).and_then(|v| v.as_str()).filter(|s| !s.is_empty());
    if let Some(auth) = field("auth") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| bad(&format!("`auth` is not base64: {e}")))?;
        let text = String::from_utf8(raw).map_err(|_| bad("`auth` is not UTF-8"))?;
        let (u, p) = text.split_once(':').ok_or_else(|| bad("`auth` is not base64 of USER:PASSWORD"))?;
        return Ok(Some(Credentials { username: u.to_string(), password: p.to_string() }));
    }
    match (field("username"), field("password")) {
        (Some(u), Some(p)) => Ok(Some(Credentials { username: u.to_string(), password: p.to_string() })),
        _ if field("identitytoken").is_some() => {
            Err(bad("has only an identity token, which wasmprobe cannot use: give credentials with --username and \
             --password-stdin"))
        }
        _ => Ok(None),
    }
}

/// Whether an `auths` key (`host:port`, `https://host/v1/`, ...) names `registry`.
fn same_registry(key: &str, registry: &str) -> bool {
    let k = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    let k = k.split('/').next().unwrap_or(k);
    let hub = |r: &str| matches!(r, "docker.io" | "index.docker.io" | "registry-1.docker.io");
    k == registry || (hub(k) && hub(registry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_auths_entries_in_both_forms() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = tmp.path().join("config.json");
        assert_eq!(from_docker_config(&cfg, "localhost:5000"), Ok(None), "no file");
        let b64 = base64::engine::general_purpose::STANDARD.encode("alice:pa:ss");
        std::fs::write(
            &cfg,
            format!(
                r#"{{"auths":{{"https://127.0.0.1:5000/v1/":{{"auth":"{b64}"}},
                   "reg.example.com":{{"username":"bob","password":"pw"}},
                   "tok.example.com":{{"identitytoken":"x"}},
                   "https://index.docker.io/v1/":{{"auth":"{b64}"}}}},"credsStore":"desktop"}}"#
            ),
        )
        .unwrap();
        let c = from_docker_config(&cfg, "127.0.0.1:5000").unwrap().unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("alice", "pa:ss"));
        assert_eq!(format!("{c:?}"), "Credentials(alice, <redacted>)");
        let c = from_docker_config(&cfg, "reg.example.com").unwrap().unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("bob", "pw"));
        assert!(from_docker_config(&cfg, "docker.io").unwrap().is_some());
        assert_eq!(from_docker_config(&cfg, "127.0.0.1:5001"), Ok(None));
        let e = from_docker_config(&cfg, "tok.example.com").unwrap_err();
        assert!(e.contains("identity token") && e.contains("--password-stdin"), "{e}");
        std::fs::write(&cfg, r#"{"auths":{"localhost:5000":{"auth":"%%%"}}}"#).unwrap();
        let e = from_docker_config(&cfg, "localhost:5000").unwrap_err();
        assert!(e.contains("`auth` is not base64"), "{e}");
        std::fs::write(&cfg, "{").unwrap();
        assert!(from_docker_config(&cfg, "localhost:5000").unwrap_err().contains("not a Docker config file"));
    }
}
