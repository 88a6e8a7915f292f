//! Registry references: `registry[:port]/repository[:tag|@sha256:DIGEST]`.
//!
//! The registry is never implied (no Docker Hub default): the first component must be a
//! registry host, i.e. `localhost`, a name with a dot, an IP address, or anything with a port
//! (`HOST:PORT`, `[::1]:PORT`). That is also what tells a reference apart from a file path on
//! `wasmprobe run`'s command line (see [`looks_like_reference`]).

use std::fmt;
use std::path::Path;

/// The prefix that marks an argument as a reference even where it could be a path.
pub const SCHEME: &str = "oci://";

/// A parsed reference. With a digest it is pinned: what it names can never change, so a
/// cached copy answers it without asking the registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `host[:port]`, as given (`[::1]:5000` for IPv6).
    pub registry: String,
    /// The repository path, e.g. `team/packs/exec-open`.
    pub repository: String,
    /// The tag, if given (`latest` is used when neither a tag nor a digest is).
    pub tag: Option<String>,
    /// `sha256:<64 hex digits>`, if given.
    pub digest: Option<String>,
}

/// The tag used when a reference names none.
pub const DEFAULT_TAG: &str = "latest";

impl Reference {
    /// Parses `s` (an optional `oci://` prefix is allowed). The error says what is wrong
    /// and the expected form.
    pub fn parse(s: &str) -> Result<Reference, String> {
        let bad = |why: String| {
            Err(format!("invalid reference {s:?}: {why} (expected REGISTRY[:PORT]/REPOSITORY[:TAG|@sha256:DIGEST])"))
        };
        let body = s.strip_prefix(SCHEME).unwrap_or(s);
        let Some((registry, rest)) = body.split_once('/') else {
            return bad("no registry".into());
        };
        if let Err(why) = check_registry(registry) {
            return bad(why);
        }
        let (name, digest) = match rest.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (rest, None),
        };
        if let Some(d) = digest {
            if let Err(why) = check_digest(d) {
                return bad(why);
            }
        }
        let (repository, tag) = match name.rsplit_once(':') {
            Some((repo, tag)) => (repo, Some(tag)),
            None => (name, None),
        };
        if let Err(why) = check_repository(repository) {
            return bad(why);
        }
        if registry.len() + 1 + repository.len() > 255 {
            return bad("the name is longer than 255 characters".into());
        }
        if let Some(t) = tag {
            if let Err(why) = check_tag(t) {
                return bad(why);
            }
        }
        Ok(Reference {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        })
    }

    /// The tag a by-tag lookup uses: the given one or `latest`.
    pub fn tag_or_default(&self) -> &str {
        self.tag.as_deref().unwrap_or(DEFAULT_TAG)
    }

    /// This reference pinned to `digest` (the tag is kept, for messages).
    pub fn pinned(&self, digest: &str) -> Reference {
        Reference { digest: Some(digest.to_string()), ..self.clone() }
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The client crate's form of this reference.
    pub(crate) fn to_client(&self) -> oci_client::Reference {
        match &self.digest {
            Some(d) => oci_client::Reference::with_digest(self.registry.clone(), self.repository.clone(), d.clone()),
            None => oci_client::Reference::with_tag(
                self.registry.clone(),
                self.repository.clone(),
                self.tag_or_default().to_string(),
            ),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Whether `run`'s (or `pack inspect`'s) argument `arg` is meant as a registry reference
/// rather than a file or a built-in: it starts with `oci://`, or it is not an existing path,
/// does not end in `.wpk`/`.wasm`, and its first `/`-separated part is a registry host
/// (`localhost`, a dotted name, an address or `HOST:PORT`). Such an argument that does not
/// parse is still a reference: [`Reference::parse`] then says what is wrong with it.
pub fn looks_like_reference(arg: &str) -> bool {
    if arg.starts_with(SCHEME) {
        return true;
    }
    if arg.ends_with(".wpk") || arg.ends_with(".wasm") || Path::new(arg).exists() {
        return false;
    }
    arg.split_once('/').is_some_and(|(first, _)| check_registry(first).is_ok())
}

fn check_registry(r: &str) -> Result<(), String> {
    let (host, port) = if let Some(v6) = r.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return Err(format!("registry {r:?}: unclosed '['"));
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("registry {r:?}: {addr:?} is not an IPv6 address"));
        }
        match after {
            "" => (None, None),
            p => match p.strip_prefix(':') {
                Some(p) => (None, Some(p)),
                None => return Err(format!("registry {r:?}: junk after ']'")),
            },
        }
    } else {
        match r.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(r), None),
        }
    };
    if let Some(p) = port {
        if !p.bytes().all(|b| b.is_ascii_digit()) || !matches!(p.parse::<u32>(), Ok(1..=65535)) {
            return Err(format!("registry {r:?}: {p:?} is not a port"));
        }
    }
    let Some(host) = host else { return Ok(()) };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(format!("registry {r:?}: {host:?} is not a host name"));
    }
    if port.is_none() && host != "localhost" && !host.contains('.') {
        return Err(format!(
            "{r:?} is not a registry (a registry is `localhost`, a name with a dot, an address, or HOST:PORT; \
             there is no default registry)"
        ));
    }
    Ok(())
}

fn check_repository(repo: &str) -> Result<(), String> {
    if repo.is_empty() {
        return Err("no repository".into());
    }
    for part in repo.split('/') {
        if !repository_part_ok(part) {
            return Err(format!(
                "repository {repo:?}: {part:?} is not a valid path component (lower-case letters and digits, \
                 separated by '.', '_', '__' or dashes)"
            ));
        }
    }
    Ok(())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, the distribution spec's path component.
fn repository_part_ok(part: &str) -> bool {
    let b = part.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__", or one or more "-".
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &part[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-')) {
            return false;
        }
    }
    true
}

fn check_tag(tag: &str) -> Result<(), String> {
    let b = tag.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!("{tag:?} is not a tag (letters, digits, '_', '.', '-'; at most 128; not starting with '.' or '-')"))
    }
}

/// `sha256:` and 64 lower-case hex digits (the only algorithm we check).
pub fn check_digest(d: &str) -> Result<(), String> {
    match d.split_once(':') {
        Some(("sha256", hex))
            if hex.len() == 64 && hex.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) =>
        {
            Ok(())
        }
        Some(("sha256", _)) => Err(format!("{d:?} is not a sha256 digest (64 lower-case hex digits)")),
        Some((alg, _)) => Err(format!("digest algorithm {alg:?} is not supported (only sha256)")),
        None => Err(format!("{d:?} is not a digest (sha256:HEX)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0f99d0d3fe55e9b3651c6ff61dcec47f0d08874773ec6e043b0bdfa347a7b32e";

    #[test]
    fn parses_every_form() {
        let r = Reference::parse("127.0.0.1:5000/packs/exec-open:v1").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref(), r.digest.as_deref()),
            ("127.0.0.1:5000", "packs/exec-open", Some("v1"), None)
        );
        assert_eq!(r.to_string(), "127.0.0.1:5000/packs/exec-open:v1");
        let r = Reference::parse(&format!("localhost/x@{D}")).unwrap();
        assert_eq!((r.tag.as_deref(), r.digest.as_deref(), r.tag_or_default()), (None, Some(D), "latest"));
        let r = Reference::parse(&format!("oci://reg.example.com/a/b_c/d-e:1.0@{D}")).unwrap();
        assert_eq!((r.repository.as_str(), r.tag.as_deref(), r.digest.as_deref()), ("a/b_c/d-e", Some("1.0"), Some(D)));
        let r = Reference::parse("[::1]:5000/p").unwrap();
        assert_eq!((r.registry.as_str(), r.tag_or_default()), ("[::1]:5000", "latest"));
        assert_eq!(Reference::parse("reg.io/p").unwrap().pinned(D).to_string(), format!("reg.io/p@{D}"));
    }

    #[test]
    fn refuses_what_is_not_a_reference() {
        for (s, why) in [
            ("exec-open", "no registry"),
            ("library/busybox", "\"library\" is not a registry"),
            ("localhost:99999/p", "\"99999\" is not a port"),
            ("localhost:5000/", "no repository"),
            ("localhost:5000/Packs", "\"Packs\" is not a valid path component"),
            ("localhost:5000/a//b", "\"\" is not a valid path component"),
            ("localhost:5000/a:", "\"\" is not a tag"),
            ("localhost:5000/a:.x", "\".x\" is not a tag"),
            ("localhost:5000/a@sha256:abc", "is not a sha256 digest"),
            ("localhost:5000/a@sha512:abc", "digest algorithm \"sha512\" is not supported"),
            ("[::1/p", "unclosed"),
            ("bad_host.io/p", "is not a host name"),
        ] {
            let e = Reference::parse(s).unwrap_err();
            assert!(e.contains(why) && e.starts_with(&format!("invalid reference {s:?}: ")), "{s}: {e}");
        }
    }

    #[test]
    fn tells_references_from_paths_and_builtins() {
        for r in ["localhost:5000/p:v1", "reg.example.com/p", "localhost/p", "oci://x.wpk", "127.0.0.1:5000/Bad"] {
            assert!(looks_like_reference(r), "{r}");
        }
        for p in ["exec-open", "packs/exec-open", "some.dir/x.wpk", "out.d/p.wasm", "/etc/hostname", "library/busybox"]
        {
            assert!(!looks_like_reference(p), "{p}");
        }
    }
}
