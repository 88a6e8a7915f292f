// Part of tests/oci.rs (included there, so one test crate and one scope): a fake registry
// for what a real one will not do, and the tests that use it.

// ---- a fake registry for what a real one will not do -----------------------------------------

/// A request as the fake registry sees it.
struct Req {
    /// `GET /v2/p/manifests/x` (the path without its query).
    line: String,
    query: String,
    authorization: Option<String>,
}

type Handler = Arc<dyn Fn(&Req) -> Vec<u8> + Send + Sync>;

/// Answers each request on a loopback port with `handler`'s bytes, until dropped.
struct Fake {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Fake {
    fn start(handler: Handler) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => serve(s, &*handler),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Fake { port, stop, thread: Some(thread) }
    }

    /// A fake that answers `METHOD PATH` from `routes`, and 404 NAME_UNKNOWN otherwise.
    fn routes(routes: Vec<(String, Vec<u8>)>) -> Fake {
        Fake::start(Arc::new(move |req: &Req| {
            routes.iter().find(|(k, _)| *k == req.line).map(|(_, r)| r.clone()).unwrap_or_else(|| {
                let body = br#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#;
                http(404, "application/json", body, None, &[])
            })
        }))
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(s: TcpStream, handler: &(dyn Fn(&Req) -> Vec<u8> + Send + Sync)) {
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    let mut authorization = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            if name.eq_ignore_ascii_case("authorization") {
                authorization = Some(value.trim().to_string());
            }
        }
    }
    let mut words = request.split_whitespace();
    let method = words.next().unwrap_or("");
    let target = words.next().unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let req = Req { line: format!("{method} {path}"), query: query.to_string(), authorization };
    let response = handler(&req);
    let mut s = s;
    let _ = s.write_all(&response);
    let _ = s.flush();
    drop(reader);
    let _ = s.shutdown(std::net::Shutdown::Both);
    let _ = s.read(&mut [0u8; 1]);
}

/// An HTTP response; `length` overrides Content-Length (to announce more than is sent).
fn http(status: u16, content_type: &str, body: &[u8], length: Option<usize>, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        length.unwrap_or(body.len())
    );
    for (k, v) in headers {
        r += &format!("{k}: {v}\r\n");
    }
    r += "\r\n";
    let mut r = r.into_bytes();
    r.extend_from_slice(body);
    r
}

/// A pack artifact's manifest with only the pack layer (`digest`, announced `size`).
fn pack_manifest(digest: &str, size: u64) -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.wasmprobe.pack.v1","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}},"layers":[{{"mediaType":"application/vnd.wasmprobe.pack.v1+wpk","digest":"{digest}","size":{size}}}]}}"#
    )
}

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

#[test]
fn the_registry_token_flow_gets_a_bearer_token_with_the_docker_config_credentials() {
    let w = World::new();
    let pack_bytes = std::fs::read(w.pack("alice", true)).unwrap();
    let layer = sha256_digest(&pack_bytes);
    let manifest = pack_manifest(&layer, pack_bytes.len() as u64);
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("alice:s3cret"));
    let scopes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = scopes.clone();
    let port = Arc::new(std::sync::OnceLock::<u16>::new());
    let port2 = port.clone();
    let (manifest2, pack2) = (manifest.clone(), pack_bytes.clone());
    // The distribution spec's token flow: 401 with a Bearer challenge naming the token
    // service; the token service wants the user's credentials; the registry the token.
    let fake = Fake::start(Arc::new(move |req: &Req| {
        let challenge =
            format!(r#"Bearer realm="http://127.0.0.1:{}/token",service="fake-registry""#, port2.get().unwrap());
        let bearer = req.authorization.as_deref() == Some("Bearer t0ken");
        match req.line.as_str() {
            "GET /token" if req.authorization.as_deref() == Some(basic.as_str()) => {
                seen.lock().unwrap().push(req.query.clone());
                http(200, "application/json", br#"{"token":"t0ken","expires_in":300}"#, None, &[])
            }
            "GET /token" => http(401, "application/json", br#"{"details":"bad credentials"}"#, None, &[]),
            "GET /v2/p/manifests/v1" if bearer => http(200, MANIFEST_TYPE, manifest2.as_bytes(), None, &[]),
            l if bearer && l == format!("GET /v2/p/blobs/{layer}") => {
                http(200, "application/octet-stream", &pack2, None, &[])
            }
            _ => http(
                401,
                "application/json",
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
                None,
                &[("WWW-Authenticate", &challenge)],
            ),
        }
    }));
    port.set(fake.port).unwrap();
    let host = format!("127.0.0.1:{}", fake.port);
    let r = format!("{host}/p:v1");

    let o = w.wp(&["pack", "pull", &r, "--insecure-registry", &host]);
    fails(&o, &format!("{r}: registry {host}: unauthorized (HTTP 401)"), &[]);
    std::fs::create_dir_all(w.path("docker")).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    std::fs::write(w.path("docker/config.json"), format!(r#"{{"auths":{{"http://{host}":{{"auth":"{auth}"}}}}}}"#))
        .unwrap();
    let out_file = w.s("out.wpk");
    let out = ok(&w.wp(&["pack", "pull", &r, "-o", &out_file, "--insecure-registry", &host]));
    assert!(out.starts_with(&format!("pulled {r}@{} (exec-open 0.1.0", sha256_digest(manifest.as_bytes()))), "{out}");
    assert_eq!(std::fs::read(&out_file).unwrap(), pack_bytes);
    let scopes = scopes.lock().unwrap().clone();
    assert!(!scopes.is_empty() && scopes.iter().all(|q| q.contains("scope=repository%3Ap%3Apull")), "{scopes:?}");
    assert!(scopes.iter().all(|q| q.contains("service=fake-registry")), "{scopes:?}");
    let o = w.wp_in(
        "cache2",
        &["pack", "pull", &r, "--insecure-registry", &host, "--username", "alice", "--password-stdin"],
        Some("wrong\n"),
    );
    fails(&o, &format!("{r}: registry {host}: "), &["unauthorized (HTTP 401)"]);
}

#[test]
fn bad_input_gets_one_line_and_leaves_no_file_or_cache_entry() {
    let w = World::new();
    let pack_bytes = std::fs::read(w.pack("alice", true)).unwrap();
    let layer = sha256_digest(&pack_bytes);
    let manifest = |size: u64| pack_manifest(&layer, size);
    let mt = MANIFEST_TYPE;
    let half = &pack_bytes[..pack_bytes.len() / 2];
    let mut liar = pack_bytes.clone();
    liar[10] ^= 0xff;
    let long = [&pack_bytes[..], b"0123456789"].concat();
    let routes: Vec<(String, Vec<u8>)> = vec![
        ("GET /v2/".into(), http(200, "application/json", b"{}", None, &[])),
        ("GET /v2/p/manifests/huge".into(), http(200, mt, manifest(200 << 20).as_bytes(), None, &[])),
        ("GET /v2/p/manifests/cut".into(), http(200, mt, manifest(pack_bytes.len() as u64).as_bytes(), None, &[])),
        (format!("GET /v2/p/blobs/{layer}"), http(200, "application/octet-stream", half, Some(pack_bytes.len()), &[])),
        ("GET /v2/q/manifests/liar".into(), http(200, mt, manifest(pack_bytes.len() as u64).as_bytes(), None, &[])),
        (format!("GET /v2/q/blobs/{layer}"), http(200, "application/octet-stream", &liar, None, &[])),
        (
            "GET /v2/p/manifests/gone".into(),
            http(
                404,
                "application/json",
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"gone"}}]}"#,
                None,
                &[],
            ),
        ),
        ("GET /v2/r/manifests/long".into(), http(200, mt, manifest(pack_bytes.len() as u64).as_bytes(), None, &[])),
        (format!("GET /v2/r/blobs/{layer}"), http(200, "application/octet-stream", &long, None, &[])),
        ("GET /v2/p/manifests/down".into(), http(500, "text/plain", b"storage backend is down\n", None, &[])),
    ];
    let fake = Fake::routes(routes);
    let host = format!("127.0.0.1:{}", fake.port);
    let out_file = w.s("out.wpk");
    let pull = |tag: &str| {
        let r = format!("{host}/{tag}");
        let o = w.wp(&["pack", "pull", &r, "-o", &out_file, "--insecure-registry", &host]);
        (r, o)
    };
    let (r, o) = pull("p:huge");
    fails(&o, &format!("{r}: the pack layer is 209715200 bytes, more than the limit of 134217728 bytes (128 MiB): refused before download"), &[]);
    let (r, o) = pull("p:cut");
    fails(
        &o,
        &format!(
            "{r}: registry {host}: blob {layer} (application/vnd.wasmprobe.pack.v1+wpk): download interrupted after "
        ),
        &[&format!(" of {} bytes", pack_bytes.len())],
    );
    let (r, o) = pull("q:liar");
    fails(
        &o,
        &format!(
            "{r}: registry {host}: blob {layer} (application/vnd.wasmprobe.pack.v1+wpk) does not match its digest"
        ),
        &[],
    );
    let (r, o) = pull("r:long");
    let n = pack_bytes.len();
    fails(&o, &format!("{r}: registry {host}: blob {layer} (application/vnd.wasmprobe.pack.v1+wpk): the registry announces {} bytes, the manifest says {n}: refused", n + 10), &[]);
    let (r, o) = pull("p:gone");
    fails(&o, &format!("{r}: registry {host}: MANIFEST_UNKNOWN: manifest unknown"), &[]);
    let (r, o) = pull("p:down");
    fails(&o, &format!("{r}: registry {host}: HTTP 500: storage backend is down"), &[]);
    let (r, o) = pull("nothing/here:v1");
    fails(&o, &format!("{r}: registry {host}: NAME_UNKNOWN: repository name not known to registry"), &[]);
    assert!(!Path::new(&out_file).exists(), "no partial file");
    assert!(w.blobs_in("cache").is_empty(), "no cache entry");

    fails(
        &w.wp(&["pack", "pull", "localhost:5000/Bad"]),
        "invalid reference \"localhost:5000/Bad\": ",
        &["is not a valid path component"],
    );
    fails(&w.wp(&["run", "127.0.0.1:1/p@sha256:123", "--", "true"]), "invalid reference ", &["is not a sha256 digest"]);
    fails(
        &w.wp(&["pack", "pull", "localhost:5000/p", "--offline"]),
        "localhost:5000/p: tag latest is not in the cache (",
        &[],
    );
    let o = w.wp_in("cache", &["pack", "pull", &format!("{host}/p:huge"), "--insecure-registry", &host], None);
    assert!(!o.status.success());
}
