//! Packs through OCI registries, against real ones: Debian's `docker-registry` (the CNCF
//! distribution server) started by each test on a free loopback port with a temporary storage
//! directory, and stopped at the end even when the test fails (a Drop guard). Interop with
//! Debian's `skopeo`. A fake registry (a few lines of std TCP) serves what a real one will
//! not: an oversized layer, a download cut short, a server error.
//!
//! Prerequisites: `docker-registry`, `skopeo`, `openssl`, `htpasswd` (apache2-utils), and
//! root with tracefs for the `run` steps. Without one a test prints SKIP and passes; with
//! `WASMPROBE_REQUIRE_ALL=1` (tests/run-all.sh, so CI) it fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use wasmprobe::pack::oci::artifact::sha256_digest;

// ---- prerequisites ---------------------------------------------------------------------------

/// Whether `what` is there; if not, SKIP (or, under WASMPROBE_REQUIRE_ALL=1, fail).
fn have(test: &str, what: &str, ok: bool) -> bool {
    if !ok {
        testkit::missing_prerequisite(test, &format!("needs {what}"));
    }
    ok
}

fn tool(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

fn tools(test: &str, names: &[&str]) -> bool {
    names.iter().all(|n| have(test, &format!("`{n}` (see .ci/setup)"), tool(n)))
}

fn root_with_tracefs(test: &str) -> bool {
    have(
        test,
        "root and tracefs with uprobe_events (for the run steps)",
        nix::unistd::geteuid().is_root() && Path::new("/sys/kernel/tracing/uprobe_events").exists(),
    )
}

// ---- a real registry -------------------------------------------------------------------------

/// A `docker-registry` on a free loopback port, killed on drop.
struct Registry {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
}

#[derive(Default)]
struct RegistryConfig<'a> {
    /// (certificate, key) for HTTPS.
    tls: Option<(&'a Path, &'a Path)>,
    /// An htpasswd file (bcrypt) for basic auth.
    htpasswd: Option<&'a Path>,
}

impl Registry {
    fn start(dir: &Path, cfg: RegistryConfig) -> Registry {
        std::fs::create_dir_all(dir).unwrap();
        for attempt in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let mut yaml = format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    \
                 rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: wasmprobe-test\n",
                dir.join("data").display()
            );
            if let Some((cert, key)) = cfg.tls {
                yaml += &format!("  tls:\n    certificate: {}\n    key: {}\n", cert.display(), key.display());
            }
            if let Some(h) = cfg.htpasswd {
                yaml += &format!("auth:\n  htpasswd:\n    realm: wasmprobe-test\n    path: {}\n", h.display());
            }
            let config = dir.join("config.yml");
            std::fs::write(&config, yaml).unwrap();
            let log = std::fs::File::create(dir.join("registry.log")).unwrap();
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start docker-registry");
            let mut reg = Registry { child: Some(child), dir: dir.to_path_buf(), port };
            if reg.wait_ready() {
                return reg;
            }
            reg.stop();
            eprintln!("registry did not come up on port {port} (attempt {attempt}): {}", reg.log());
        }
        panic!("docker-registry did not start");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                return false;
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// The file the registry keeps blob `digest` in.
    fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir.join(format!("data/docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]))
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---- running wasmprobe -----------------------------------------------------------------------

/// A test's own world: a cache, a Docker config dir, keys and packs in a temp dir.
struct World {
    tmp: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        World { tmp: tempfile::tempdir().unwrap() }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    fn s(&self, p: &str) -> String {
        self.path(p).display().to_string()
    }

    /// Runs wasmprobe with cache `cache` (a directory under the temp dir) and the Docker
    /// config dir `docker` there.
    fn wp_in(&self, cache: &str, args: &[&str], stdin: Option<&str>) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_wasmprobe"));
        c.args(args)
            .env("WASMPROBE_CACHE", self.path(cache))
            .env("DOCKER_CONFIG", self.path("docker"))
            .env("HOME", self.tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        let mut child = c.spawn().expect("run wasmprobe");
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    fn wp(&self, args: &[&str]) -> Output {
        self.wp_in("cache", args, None)
    }

    /// Makes key `name` and the exec-open pack signed by it (or unsigned): returns its path.
    fn pack(&self, name: &str, signed: bool) -> PathBuf {
        let key = self.s(&format!("{name}.key"));
        if signed && !Path::new(&key).exists() {
            ok(&self.wp(&["pack", "keygen", "-o", &key]));
        }
        let out = self.s(&format!("{name}.wpk"));
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packs/exec-open");
        let mut args = vec!["pack", "build", dir.to_str().unwrap(), "-o", &out];
        if signed {
            args.extend(["--sign", &key]);
        }
        ok(&self.wp(&args));
        PathBuf::from(out)
    }

    fn blobs_in(&self, cache: &str) -> Vec<String> {
        let dir = self.path(cache).join("oci/blobs/sha256");
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Asserts success; returns stdout.
fn ok(o: &Output) -> String {
    let (out, err) = text(o);
    assert!(o.status.success(), "expected success\nstdout:\n{out}\nstderr:\n{err}");
    out
}

/// Asserts failure with exit status 1 and one line on stderr starting with `prefix` and
/// containing every `want`; returns the line.
fn fails(o: &Output, prefix: &str, want: &[&str]) -> String {
    let (out, err) = text(o);
    assert_eq!(o.status.code(), Some(1), "expected exit 1\nstdout:\n{out}\nstderr:\n{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("wasmprobe: warning")).collect();
    assert_eq!(lines.len(), 1, "one line on stderr:\n{err}");
    let line = lines[0];
    assert!(line.starts_with(&format!("wasmprobe: error: {prefix}")), "expected prefix {prefix:?}:\n{line}");
    for w in want {
        assert!(line.contains(w), "expected {w:?} in:\n{line}");
    }
    line.to_string()
}

/// The `digest: sha256:...` line of `pack push`.
fn pushed_digest(out: &str) -> String {
    out.lines().find_map(|l| l.strip_prefix("digest: ")).expect(out).to_string()
}

fn key_id(world: &World, name: &str) -> String {
    let pubkey = std::fs::read_to_string(world.path(&format!("{name}.key.pub"))).unwrap();
    let k = wasmprobe::pack::PublicKey::parse(&pubkey).unwrap();
    k.id().0
}

/// Runs `wasmprobe run REF ... -- cat FILE` and checks it printed the file's open.
fn run_cat(world: &World, cache: &str, reference: &str, extra: &[&str]) -> String {
    let file = world.path("opened-by-cat.txt");
    std::fs::write(&file, "x\n").unwrap();
    let f = file.to_str().unwrap();
    let mut args = vec!["run", reference];
    args.extend(extra);
    args.extend(["--", "cat", f]);
    let o = world.wp_in(cache, &args, None);
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.lines().any(|l| l.ends_with(&format!("-cat: open file='{f}'"))), "stdout:\n{out}\nstderr:\n{err}");
    err
}

// ---- the tests -------------------------------------------------------------------------------

#[test]
fn push_pull_by_tag_and_digest_run_then_run_offline_with_the_registry_stopped() {
    let test = "push_pull_run_offline";
    if !tools(test, &["docker-registry"]) {
        return;
    }
    let w = World::new();
    let pack = w.pack("alice", true);
    let pack_bytes = std::fs::read(&pack).unwrap();
    let mut reg = Registry::start(&w.path("reg"), RegistryConfig::default());
    let host = reg.host();
    let r = format!("{host}/packs/exec-open:v1");
    let insecure = ["--insecure-registry", host.as_str()];
    let p = pack.to_str().unwrap();

    // Plain HTTP only when allowed for that registry.
    fails(&w.wp(&["pack", "push", p, &r]), &format!("{r}: registry {host}: "), &["--insecure-registry HOST:PORT"]);
    let out = ok(&w.wp(&["pack", "push", p, &r, "--insecure-registry", &host]));
    assert!(
        out.starts_with(&format!("pushed {p} (exec-open 0.1.0, signed by key {}) to {r}\n", key_id(&w, "alice"))),
        "{out}"
    );
    let digest = pushed_digest(&out);
    assert_eq!(
        pushed_digest(&ok(&w.wp(&["pack", "push", p, &r, "--insecure-registry", &host]))),
        digest,
        "deterministic"
    );

    // Into an empty cache, under the trust policy; the file is the pushed one, byte for byte.
    assert!(w.blobs_in("cache").is_empty());
    let alice_pub = w.s("alice.key.pub");
    let trust = ["--trust", alice_pub.as_str()];
    let out_file = w.s("pulled.wpk");
    let out = ok(&w.wp(&[&["pack", "pull", &r, "-o", &out_file][..], &trust, &insecure].concat()));
    assert!(
        out.starts_with(&format!("pulled {r}@{digest} (exec-open 0.1.0, signature OK: signed by trusted key ")),
        "{out}"
    );
    assert!(out.contains(" from the registry\nwrote "), "{out}");
    assert_eq!(std::fs::read(&out_file).unwrap(), pack_bytes);
    let cached = w.blobs_in("cache");
    let mut want =
        vec![digest["sha256:".len()..].to_string(), sha256_digest(&pack_bytes)["sha256:".len()..].to_string()];
    want.sort();
    assert_eq!(cached, want, "the manifest and the pack layer, nothing else");

    // By digest: the cache answers.
    let by_digest = format!("{host}/packs/exec-open@{digest}");
    let out = ok(&w.wp(&["pack", "pull", &by_digest, "--trust", &alice_pub]));
    assert!(out.contains(") from the cache\ncached in "), "{out}");

    // What inspect shows, without running anything.
    let out = ok(&w.wp(&[&["pack", "inspect", &r][..], &insecure].concat()));
    for want in [
        format!("reference {r}@{digest}\n"),
        format!("  manifest:       {digest} ("),
        "  artifactType:   application/vnd.wasmprobe.pack.v1\n".into(),
        "  config:         application/vnd.oci.empty.v1+json sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a\n".into(),
        " bytes plugin.wasm\n".into(),
        format!("  layer:          application/vnd.wasmprobe.pack.v1+wpk {} {} bytes exec-open-0.1.0.wpk\n", sha256_digest(&pack_bytes), pack_bytes.len()),
        format!("  signer:         key {}\n", key_id(&w, "alice")),
        "pack exec-open 0.1.0\n".into(),
        "probes it may create (6;".into(),
    ] {
        assert!(out.contains(&want), "{want:?} in:\n{out}");
    }

    let root = root_with_tracefs(test);
    if root {
        let err = run_cat(&w, "cache", &r, &[&trust[..], &insecure].concat());
        assert!(err.contains(&format!("wasmprobe: {r}: pack exec-open 0.1.0 ({digest}, signed by key ")), "{err}");
        assert!(err.contains("pulled from the registry"), "{err}");
    }

    // The registry goes away: a digest still runs (no network), a tag only with --offline.
    reg.stop();
    ok(&w.wp(&["pack", "pull", &by_digest, "--trust", &alice_pub]));
    fails(
        &w.wp(&[&["pack", "pull", &r][..], &trust, &insecure].concat()),
        &format!("{r}: registry {host}: "),
        &["Connection refused"],
    );
    let out = ok(&w.wp(&[&["pack", "pull", &r, "--offline"][..], &trust].concat()));
    assert!(out.starts_with(&format!("pulled {r}@{digest} (")) && out.contains("from the cache"), "{out}");
    fails(
        &w.wp_in("empty-cache", &["pack", "pull", &r, "--offline"], None),
        &format!("{r}: tag v1 is not in the cache ("),
        &["pull it once without --offline"],
    );
    fails(
        &w.wp_in("empty-cache", &["pack", "pull", &by_digest], None),
        &format!("{by_digest}: registry {host}: "),
        &["Connection refused"],
    );
    if root {
        let err = run_cat(&w, "cache", &by_digest, &trust);
        assert!(err.contains("from the cache"), "{err}");
        let err = run_cat(&w, "cache", &r, &[&trust[..], &["--offline"]].concat());
        assert!(
            err.contains(&format!("wasmprobe: {r}: pack exec-open 0.1.0 ({digest}, "))
                && err.contains("from the cache"),
            "{err}"
        );
    }
}

/// A CA, and a server certificate for 127.0.0.1 signed by it, made with openssl.
fn make_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let sh = |script: &str| {
        let o = Command::new("sh").arg("-ec").arg(script).current_dir(dir).output().unwrap();
        assert!(o.status.success(), "{script}: {}", String::from_utf8_lossy(&o.stderr));
    };
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem \
        -days 2 -subj /CN=wasmprobe-test-ca -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null");
    sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr \
        -subj /CN=127.0.0.1 2>/dev/null");
    sh("openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 \
        -extfile server.ext 2>/dev/null");
    (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key"))
}

#[test]
fn an_https_registry_with_htpasswd_auth_works_with_ca_file_and_credentials_and_refuses_without() {
    let test = "https_auth_registry";
    if !tools(test, &["docker-registry", "openssl", "htpasswd"]) {
        return;
    }
    let w = World::new();
    let pack = w.pack("alice", true);
    let pack_bytes = std::fs::read(&pack).unwrap();
    let (ca, cert, key) = make_ca(&w.path("tls"));
    let htpasswd = w.path("htpasswd");
    let o = Command::new("htpasswd").args(["-Bbn", "alice", "s3cret"]).output().unwrap();
    assert!(o.status.success());
    std::fs::write(&htpasswd, &o.stdout).unwrap();
    let reg = Registry::start(&w.path("reg"), RegistryConfig { tls: Some((&cert, &key)), htpasswd: Some(&htpasswd) });
    let host = reg.host();
    let r = format!("{host}/secure/exec-open:v1");
    let (p, ca) = (pack.to_str().unwrap(), ca.to_str().unwrap());
    let prefix = format!("{r}: registry {host}: ");

    // Without the CA: the certificate is refused. With it but without credentials: 401.
    fails(&w.wp(&["pack", "push", p, &r]), &prefix, &["UnknownIssuer", "--ca-file"]);
    fails(&w.wp(&["pack", "push", p, &r, "--ca-file", ca]), &prefix, &["unauthorized (HTTP 401)"]);
    // Plain HTTP to an HTTPS registry is no way around it.
    assert!(!w.wp(&["pack", "push", p, &r, "--insecure-registry", &host]).status.success());

    // Credentials from the Docker config file.
    std::fs::create_dir_all(w.path("docker")).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    std::fs::write(w.path("docker/config.json"), format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#)).unwrap();
    let digest = pushed_digest(&ok(&w.wp(&["pack", "push", p, &r, "--ca-file", ca])));
    let out_file = w.s("pulled.wpk");
    let out = ok(&w.wp(&["pack", "pull", &r, "-o", &out_file, "--ca-file", ca, "--trust", &w.s("alice.key.pub")]));
    assert!(out.starts_with(&format!("pulled {r}@{digest} (exec-open 0.1.0, signature OK")), "{out}");
    assert_eq!(std::fs::read(&out_file).unwrap(), pack_bytes);
    fails(&w.wp_in("cache2", &["pack", "pull", &r], None), &prefix, &["UnknownIssuer"]);

    // --username with --password-stdin instead; a wrong password is refused.
    std::fs::remove_file(w.path("docker/config.json")).unwrap();
    fails(&w.wp_in("cache2", &["pack", "pull", &r, "--ca-file", ca], None), &prefix, &["unauthorized (HTTP 401)"]);
    let login = ["--ca-file", ca, "--username", "alice", "--password-stdin"];
    let out = ok(&w.wp_in("cache2", &[&["pack", "pull", &r][..], &login].concat(), Some("s3cret\n")));
    assert!(out.contains(") from the registry\ncached in "), "{out}");
    fails(
        &w.wp_in("cache3", &[&["pack", "pull", &r][..], &login].concat(), Some("wrong\n")),
        &prefix,
        &["unauthorized (HTTP 401)"],
    );
    assert!(w.blobs_in("cache3").is_empty());
    if root_with_tracefs(test) {
        std::fs::write(w.path("docker/config.json"), format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#))
            .unwrap();
        run_cat(&w, "cache4", &r, &["--ca-file", ca, "--trust", &w.s("alice.key.pub")]);
    }
}

#[test]
fn a_blob_changed_in_the_registrys_storage_is_refused_and_nothing_is_cached() {
    let test = "tampered_blob";
    if !tools(test, &["docker-registry"]) {
        return;
    }
    let w = World::new();
    let pack = w.pack("alice", true);
    let pack_bytes = std::fs::read(&pack).unwrap();
    let reg = Registry::start(&w.path("reg"), RegistryConfig::default());
    let host = reg.host();
    let r = format!("{host}/packs/exec-open:v1");
    let insecure = ["--insecure-registry", host.as_str()];
    let digest = pushed_digest(&ok(&w.wp(&[&["pack", "push", pack.to_str().unwrap(), &r][..], &insecure].concat())));

    // One byte of the pack layer flipped where the registry keeps it.
    let layer = sha256_digest(&pack_bytes);
    let blob = reg.blob_file(&layer);
    let mut bytes = std::fs::read(&blob).unwrap();
    assert_eq!(bytes, pack_bytes);
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&blob, &bytes).unwrap();
    let out_file = w.s("pulled.wpk");
    for reference in [r.clone(), format!("{host}/packs/exec-open@{digest}")] {
        let line = fails(
            &w.wp(&[&["pack", "pull", &reference, "-o", &out_file][..], &insecure].concat()),
            &format!("{reference}: registry {host}: blob {layer} (application/vnd.wasmprobe.pack.v1+wpk) "),
            &["does not match its digest", "refused, nothing cached"],
        );
        assert!(line.contains("(the bytes hash to sha256:"), "{line}");
        assert!(!Path::new(&out_file).exists(), "no partial file");
        assert!(w.blobs_in("cache").is_empty(), "nothing cached: {:?}", w.blobs_in("cache"));
    }
    // `run` refuses it before anything is armed.
    fails(
        &w.wp(&[&["run", &r][..], &insecure, &["--", "true"]].concat()),
        &format!("{r}: registry {host}: blob {layer} "),
        &["does not match its digest"],
    );

    // The manifest changed in storage (still valid JSON): its digest no longer matches.
    let manifest = reg.blob_file(&digest);
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("exec-open-0.1.0.wpk", "exec-open-6.6.6.wpk")).unwrap();
    for reference in [r.clone(), format!("{host}/packs/exec-open@{digest}")] {
        fails(
            &w.wp(&[&["pack", "pull", &reference][..], &insecure].concat()),
            &format!("{reference}: registry {host}: the manifest does not match its digest {digest} (the bytes hash to sha256:"),
            &["): refused, nothing cached"],
        );
    }
    assert!(w.blobs_in("cache").is_empty());
}

#[test]
fn a_pack_signed_by_another_key_is_refused_under_trust() {
    let test = "other_key";
    if !tools(test, &["docker-registry"]) {
        return;
    }
    let w = World::new();
    w.pack("alice", true); // alice's key: the trusted one
    let bobs = w.pack("bob", true);
    let unsigned = w.pack("nobody", false);
    let reg = Registry::start(&w.path("reg"), RegistryConfig::default());
    let host = reg.host();
    let insecure = ["--insecure-registry", host.as_str()];
    let r = format!("{host}/packs/exec-open:bob");
    ok(&w.wp(&[&["pack", "push", bobs.to_str().unwrap(), &r][..], &insecure].concat()));
    let alice = w.s("alice.key.pub");
    let out_file = w.s("pulled.wpk");
    let why = format!(
        "untrusted pack: the pack is signed by key {}, which is not a trusted key (trusted: {})",
        key_id(&w, "bob"),
        key_id(&w, "alice")
    );
    fails(
        &w.wp(&[&["pack", "pull", &r, "-o", &out_file, "--trust", &alice][..], &insecure].concat()),
        &format!("{r}: {why}"),
        &[],
    );
    assert!(!Path::new(&out_file).exists());
    assert!(w.blobs_in("cache").is_empty(), "an untrusted pack is not cached");
    fails(
        &w.wp(&[&["run", &r, "--trust", &alice][..], &insecure, &["--", "true"]].concat()),
        &format!("{r}: {why}"),
        &[],
    );
    fails(
        &w.wp(&[&["run", &r, "--trust-dir", &w.s("nowhere")][..], &insecure, &["--", "true"]].concat()),
        "",
        &["nowhere"],
    );
    // Bob's key trusts it; without a policy it passes too, saying it was not checked.
    let out = ok(&w.wp(&[&["pack", "verify", &r, "--trust", &w.s("bob.key.pub")][..], &insecure].concat()));
    assert!(out.contains("integrity OK (every blob matches its digest); signature OK: signed by trusted key"), "{out}");

    let r2 = format!("{host}/packs/exec-open:unsigned");
    ok(&w.wp(&[&["pack", "push", unsigned.to_str().unwrap(), &r2][..], &insecure].concat()));
    fails(
        &w.wp(&[&["pack", "pull", &r2, "--trust", &alice][..], &insecure].concat()),
        &format!("{r2}: untrusted pack: the pack is unsigned, and a trust policy is set"),
        &[],
    );
}

/// An OCI image layout with one small container image (a tar+gzip layer, an image config).
fn container_image_layout(dir: &Path) {
    let sh = |script: &str| {
        let o = Command::new("sh").arg("-ec").arg(script).current_dir(dir).output().unwrap();
        assert!(o.status.success(), "{script}: {}", String::from_utf8_lossy(&o.stderr));
    };
    std::fs::create_dir_all(dir.join("rootfs/etc")).unwrap();
    std::fs::create_dir_all(dir.join("layout/blobs/sha256")).unwrap();
    std::fs::write(dir.join("rootfs/etc/motd"), "a container image, not a pack\n").unwrap();
    sh("tar --sort=name --mtime=@0 --owner=0 --group=0 -cf layer.tar -C rootfs . && gzip -n -k layer.tar");
    let tar = std::fs::read(dir.join("layer.tar")).unwrap();
    let gz = std::fs::read(dir.join("layer.tar.gz")).unwrap();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        sha256_digest(&tar)
    );
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":{}}}]}}"#,
        sha256_digest(config.as_bytes()),
        config.len(),
        sha256_digest(&gz),
        gz.len()
    );
    for blob in [config.as_bytes(), &gz, manifest.as_bytes()] {
        let d = sha256_digest(blob);
        std::fs::write(dir.join("layout/blobs/sha256").join(&d["sha256:".len()..]), blob).unwrap();
    }
    std::fs::write(dir.join("layout/oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("layout/index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"v1"}}}}]}}"#,
            sha256_digest(manifest.as_bytes()),
            manifest.len()
        ),
    )
    .unwrap();
}

#[test]
fn a_container_image_in_the_same_registry_is_refused_by_media_type() {
    let test = "container_image";
    if !tools(test, &["docker-registry", "skopeo"]) {
        return;
    }
    let w = World::new();
    let pack = w.pack("alice", true);
    container_image_layout(&w.path("image"));
    let reg = Registry::start(&w.path("reg"), RegistryConfig::default());
    let host = reg.host();
    let insecure = ["--insecure-registry", host.as_str()];
    ok(&w.wp(
        &[&["pack", "push", pack.to_str().unwrap(), &format!("{host}/packs/exec-open:v1")][..], &insecure].concat()
    ));
    let layout = format!("oci:{}:v1", w.s("image/layout"));
    for (repo, format) in [("images/oci", "oci"), ("images/docker", "v2s2")] {
        let o = Command::new("skopeo")
            .args([
                "copy",
                "--dest-tls-verify=false",
                "--format",
                format,
                &layout,
                &format!("docker://{host}/{repo}:v1"),
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "skopeo copy: {}", String::from_utf8_lossy(&o.stderr));
    }
    let r = format!("{host}/images/oci:v1");
    let why = "it is a container image (config application/vnd.oci.image.config.v1+json), not a wasmprobe pack \
               (artifactType application/vnd.wasmprobe.pack.v1)";
    fails(&w.wp(&[&["pack", "pull", &r, "-o", &w.s("x.wpk")][..], &insecure].concat()), &format!("{r}: {why}"), &[]);
    fails(&w.wp(&[&["run", &r][..], &insecure, &["--", "true"]].concat()), &format!("{r}: {why}"), &[]);
    fails(&w.wp(&[&["pack", "inspect", &r][..], &insecure].concat()), &format!("{r}: {why}"), &[]);
    let r = format!("{host}/images/docker:v1");
    fails(
        &w.wp(&[&["pack", "pull", &r][..], &insecure].concat()),
        &format!(
            "{r}: it is a Docker container image (application/vnd.docker.distribution.manifest.v2+json), not a \
             wasmprobe pack"
        ),
        &[],
    );
    assert!(!w.path("x.wpk").exists());
    assert!(w.blobs_in("cache").is_empty());
}

#[test]
fn skopeo_reads_and_copies_the_artifact_and_wasmprobe_pulls_the_copy_back_unchanged() {
    let test = "skopeo_interop";
    if !tools(test, &["docker-registry", "skopeo"]) {
        return;
    }
    let w = World::new();
    let pack = w.pack("alice", true);
    let pack_bytes = std::fs::read(&pack).unwrap();
    let reg = Registry::start(&w.path("reg"), RegistryConfig::default());
    let reg2 = Registry::start(&w.path("reg2"), RegistryConfig::default());
    let (host, host2) = (reg.host(), reg2.host());
    let r = format!("{host}/packs/exec-open:v1");
    let digest = pushed_digest(&ok(&w.wp(&["pack", "push", pack.to_str().unwrap(), &r, "--insecure-registry", &host])));
    let skopeo = |args: &[&str]| {
        let o = Command::new("skopeo").args(args).output().unwrap();
        assert!(o.status.success(), "skopeo {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        o.stdout
    };

    // What a standard client sees: the manifest (its digest is ours), the tag.
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &format!("docker://{r}")]);
    assert_eq!(sha256_digest(&raw), digest);
    let m: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(m["artifactType"], "application/vnd.wasmprobe.pack.v1");
    assert_eq!(m["config"]["mediaType"], "application/vnd.oci.empty.v1+json");
    assert_eq!(m["config"]["size"], 2);
    assert_eq!(m["layers"][0]["mediaType"], "application/wasm");
    assert_eq!(m["layers"][0]["annotations"]["org.opencontainers.image.title"], "plugin.wasm");
    assert_eq!(m["layers"][1]["mediaType"], "application/vnd.wasmprobe.pack.v1+wpk");
    assert_eq!(m["layers"][1]["digest"], sha256_digest(&pack_bytes));
    assert_eq!(m["annotations"]["org.opencontainers.image.title"], "exec-open");
    assert_eq!(m["annotations"]["vnd.wasmprobe.pack.signer"], key_id(&w, "alice"));
    let tags: serde_json::Value = serde_json::from_slice(&skopeo(&[
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{host}/packs/exec-open"),
    ]))
    .unwrap();
    assert_eq!(tags["Tags"], serde_json::json!(["v1"]));

    // Copied into an OCI layout directory: the same manifest and blobs.
    let layout = w.s("layout");
    skopeo(&["copy", "--src-tls-verify=false", &format!("docker://{r}"), &format!("oci:{layout}:v1")]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.path("layout/index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());
    let blob = |d: &str| std::fs::read(w.path("layout/blobs/sha256").join(&d["sha256:".len()..])).unwrap();
    assert_eq!(blob(&digest), raw);
    assert_eq!(blob(&sha256_digest(&pack_bytes)), pack_bytes);

    // From the layout to another registry, and back with wasmprobe: unchanged.
    let r2 = format!("{host2}/mirror/exec-open:copied");
    skopeo(&["copy", "--dest-tls-verify=false", &format!("oci:{layout}:v1"), &format!("docker://{r2}")]);
    let out_file = w.s("back.wpk");
    let out = ok(&w.wp_in(
        "cache2",
        &["pack", "pull", &r2, "-o", &out_file, "--trust", &w.s("alice.key.pub"), "--insecure-registry", &host2],
        None,
    ));
    assert!(
        out.starts_with(&format!("pulled {r2}@{digest} (exec-open 0.1.0, signature OK: signed by trusted key")),
        "{out}"
    );
    assert_eq!(std::fs::read(&out_file).unwrap(), pack_bytes);
}

// The rest of this test crate, kept in its own file to keep each under 800 lines.
include!("oci_parts/fake_registry.rs");
