//! Probe packs: build → inspect → verify → load and init the plugin, and every refusal:
//! flipped bytes, appended junk, truncation, a wrong key, an unsigned pack under a trust
//! policy, a pack needing a newer `wasmprobe:plugin`, and a plugin asking for a probe its
//! manifest does not declare. No root, no kernel.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use wasmprobe::pack::{
    self, build_dir, check_plan_against_manifest, check_wit_version, host_wit_version, open_for_run, Manifest, Pack,
    PackError, PublicKey, SecretKey, TrustPolicy,
};
use wasmprobe::plugin::{builtin, FixedKernel, Plan, Plugin, Policy, ProbeKind, Sandbox, StdOutput};

/// The example pack directory of the repository.
fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packs/exec-open")
}

/// A pack directory in a temp dir: the example's manifest, with the built-in exec-open
/// component written to plugin.wasm (the default place) instead of `builtin:exec-open`.
fn pack_dir(tmp: &Path, edit: impl FnOnce(String) -> String) -> PathBuf {
    let dir = tmp.join("src");
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = std::fs::read_to_string(example_dir().join("manifest.toml")).unwrap();
    let manifest = manifest.replace("component = \"builtin:exec-open\"\n", "");
    std::fs::write(dir.join("manifest.toml"), edit(manifest)).unwrap();
    std::fs::write(dir.join("plugin.wasm"), builtin("exec-open").unwrap()).unwrap();
    std::fs::copy(example_dir().join("README.md"), dir.join("README.md")).unwrap();
    dir
}

fn key(seed: u8) -> SecretKey {
    SecretKey::from_seed(&[seed; 32])
}

fn sandbox() -> Sandbox {
    Sandbox { cache_dir: Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache")), ..Sandbox::default() }
}

fn kernel_with_kprobes() -> Arc<FixedKernel> {
    Arc::new(FixedKernel::with_features(&["kprobe", "uprobe", "tracepoint"]))
}

fn kernel_without_kprobes() -> Arc<FixedKernel> {
    Arc::new(FixedKernel::with_features(&["uprobe", "tracepoint"]))
}

#[test]
fn build_inspect_verify_and_init_the_plugin_from_the_pack() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = pack_dir(tmp.path(), |m| m);
    let alice = key(1);
    let bytes = build_dir(&dir, Some(&alice)).unwrap();
    assert_eq!(bytes, build_dir(&dir, Some(&alice)).unwrap(), "builds are deterministic");
    let file = tmp.path().join("exec-open.wpk");
    std::fs::write(&file, &bytes).unwrap();
    assert!(pack::is_pack_path(file.to_str().unwrap()));

    let p = Pack::open(&file).unwrap();
    let m = p.manifest();
    assert_eq!((m.name.as_str(), m.version.as_str()), ("exec-open", "0.1.0"));
    assert_eq!(m.wit, format!("wasmprobe:plugin@{}", host_wit_version()));
    assert_eq!(m.probes.len(), 6);
    assert_eq!(m.component, None, "the build-time field is not stored");
    assert_eq!(p.component(), builtin("exec-open").unwrap());
    assert_eq!(p.file("README.md").unwrap(), std::fs::read(dir.join("README.md")).unwrap());
    assert_eq!(p.files().iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["plugin.wasm", "README.md"]);
    assert_eq!(p.signature().unwrap().key, alice.public());

    let text = pack::describe(&p);
    for want in [
        "pack exec-open 0.1.0",
        "needs:          wasmprobe:plugin@0.1.2 (this host has @0.1.2: compatible)",
        "tested kernels: 6.12 (Debian, kprobes), 6.18 (no kprobes: libc uprobes)",
        &format!("key {}", alice.public().id()),
        "README.md",
        "kprobe     open             do_sys_openat2 file=+0($arg2):ustring",
        "uretprobe  openatret        libc:openat ret=$retval:s32",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }

    // Verify: no policy, the right key (as a key file and from a trust directory).
    assert_eq!(p.verify(&TrustPolicy::none()).unwrap().signer, Some(alice.public().id()));
    let keys = tmp.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    std::fs::write(keys.join("alice.pub"), alice.public().to_text("alice")).unwrap();
    std::fs::write(keys.join("bob.pub"), key(2).public().to_text("bob")).unwrap();
    std::fs::write(keys.join("notes.txt"), "not a key").unwrap();
    let by_file = TrustPolicy::from_args(&[keys.join("alice.pub")], None).unwrap();
    let v = p.verify(&by_file).unwrap();
    assert!(v.to_string().contains("signed by trusted key"), "{v}");
    let by_dir = TrustPolicy::from_args(&[], Some(&keys)).unwrap();
    assert_eq!(by_dir.keys().count(), 2);
    p.verify(&by_dir).unwrap();

    // Run: everything `run` does before arming, with the plugin built from the pack's bytes.
    let (p, _) = open_for_run(&file, &by_file).unwrap();
    for kernel in [kernel_with_kprobes(), kernel_without_kprobes()] {
        let mut plugin =
            Plugin::from_bytes(&p.manifest().name, p.component(), &sandbox(), Box::new(StdOutput::default())).unwrap();
        let plan = plugin.init(&[], kernel).unwrap();
        plan.validate(&Policy::default()).unwrap();
        check_plan_against_manifest(&plan, p.manifest()).unwrap();
    }
}

#[test]
fn the_example_pack_directory_builds() {
    let bytes = build_dir(&example_dir(), None).unwrap();
    let p = Pack::from_bytes(&bytes).unwrap();
    assert_eq!(p.component(), builtin("exec-open").unwrap());
    assert!(p.signature().is_none());
    check_wit_version(p.manifest()).unwrap();
}

/// Every refusal has a message that says what is wrong.
fn refused(bytes: &[u8]) -> PackError {
    match Pack::from_bytes(bytes) {
        Ok(_) => panic!("a damaged pack was accepted"),
        Err(e) => {
            assert!(e.to_string().len() > 20, "unclear message: {e}");
            e
        }
    }
}

#[test]
fn a_flipped_byte_anywhere_in_a_signed_pack_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = build_dir(&pack_dir(tmp.path(), |m| m), Some(&key(1))).unwrap();
    let n = bytes.len();
    let manifest_end = 8 + u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    let trailer = n - (4 + 32 + 4 + 1 + 32 + 64);
    // The header, every 5th byte of the manifest, the file table and README around the
    // component, spots inside the component, and every byte of digest and signature block.
    let mut positions: Vec<usize> = (0..16).chain((16..manifest_end).step_by(5)).collect();
    positions.extend(manifest_end..manifest_end + 40);
    positions.extend((manifest_end + 40..trailer).step_by((trailer - manifest_end) / 40));
    positions.extend(trailer - 40..n);
    for &i in &positions {
        for mask in [0x01u8, 0x80] {
            let mut bad = bytes.clone();
            bad[i] ^= mask;
            let e = refused(&bad);
            // A byte of the manifest or the component breaks the digest; one of the digest
            // too; one of the key or signature breaks the signature. (Length fields and the
            // markers give structural errors, also refusals.)
            let component = manifest_end + 4 + 2 + 11 + 8..manifest_end + 25 + builtin("exec-open").unwrap().len();
            if (8..manifest_end).contains(&i) || component.contains(&i) || (trailer + 4..n - 101).contains(&i) {
                assert!(matches!(e, PackError::Corrupt(_)), "byte {i}: {e}");
            }
            if i >= n - 96 {
                assert!(matches!(e, PackError::BadSignature(_)), "byte {i}: {e}");
            }
        }
    }
    let mut bad = bytes.clone();
    bad[n - 1] ^= 1;
    let msg = refused(&bad).to_string();
    assert!(msg.contains("signature does not match"), "{msg}");
    let mut bad = bytes.clone();
    bad[manifest_end - 3] ^= 1;
    let msg = refused(&bad).to_string();
    assert!(msg.contains("corrupt or was tampered with"), "{msg}");
}

#[test]
fn appended_junk_and_truncation_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = pack_dir(tmp.path(), |m| m);
    for signer in [None, Some(key(1))] {
        let bytes = build_dir(&dir, signer.as_ref()).unwrap();
        for junk in [&b"\0"[..], b"junk", &[0u8; 101], b"WSIG"] {
            let msg = refused(&[bytes.as_slice(), junk].concat()).to_string();
            assert!(msg.contains("unexpected bytes") || msg.contains("signature"), "{msg}");
        }
        for cut in [1, 2, 50, 100, 137, 1000, bytes.len() / 2, bytes.len() - 10, bytes.len() - 1] {
            let e = refused(&bytes[..cut]);
            assert!(matches!(e, PackError::Malformed(_)), "cut at {cut}: {e}");
        }
    }
    // A signed pack cut back to its unsigned length is still a valid pack: an unsigned one,
    // which a trust policy refuses.
    let signed = build_dir(&dir, Some(&key(1))).unwrap();
    let stripped = Pack::from_bytes(&signed[..signed.len() - 101]).unwrap();
    let e = stripped.verify(&TrustPolicy::trusting([key(1).public()])).unwrap_err();
    assert!(e.to_string().contains("unsigned"), "{e}");
}

#[test]
fn a_wrong_key_or_no_signature_is_refused_under_a_trust_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = pack_dir(tmp.path(), |m| m);
    let trust_bob = TrustPolicy::trusting([key(2).public()]);
    let by_alice = Pack::from_bytes(&build_dir(&dir, Some(&key(1))).unwrap()).unwrap();
    let e = by_alice.verify(&trust_bob).unwrap_err();
    assert!(matches!(e, PackError::Untrusted(_)), "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&key(1).public().id().0) && msg.contains(&key(2).public().id().0), "{msg}");
    assert!(msg.contains("not a trusted key"), "{msg}");

    let unsigned = Pack::from_bytes(&build_dir(&dir, None).unwrap()).unwrap();
    unsigned.verify(&TrustPolicy::none()).unwrap();
    let msg = unsigned.verify(&trust_bob).unwrap_err().to_string();
    assert!(msg.contains("unsigned") && msg.contains("trust policy"), "{msg}");

    // An empty trust directory is a policy that nothing passes.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let nobody = TrustPolicy::from_args(&[], Some(&empty)).unwrap();
    assert!(nobody.is_set());
    let msg = by_alice.verify(&nobody).unwrap_err().to_string();
    assert!(msg.contains("trusted: none"), "{msg}");

    // A key with another's key swapped into the signature block fails the signature.
    let mut bytes = build_dir(&dir, Some(&key(1))).unwrap();
    let n = bytes.len();
    bytes[n - 96..n - 64].copy_from_slice(&key(2).public().to_bytes());
    assert!(matches!(refused(&bytes), PackError::BadSignature(_)));
}

/// The component with its `wasmprobe:plugin/...@0.1.2` imports renamed to `@{to}` (same
/// length, so the binary stays well-formed): what a plugin built against another WIT looks like.
fn component_importing(to: &str) -> Vec<u8> {
    let mut wasm = builtin("exec-open").unwrap().to_vec();
    let pat = b"wasmprobe:plugin/";
    let mut i = 0;
    let mut renamed = 0;
    while let Some(at) = wasm[i..].windows(pat.len()).position(|w| w == pat) {
        let start = i + at + pat.len();
        if let Some(rel) = wasm[start..start + 40].iter().position(|&b| b == b'@') {
            let v = start + rel + 1;
            if &wasm[v..v + 5] == b"0.1.2" {
                wasm[v..v + 5].copy_from_slice(to.as_bytes());
                renamed += 1;
            }
        }
        i = start;
    }
    assert!(renamed > 0);
    wasm
}

#[test]
fn a_pack_needing_another_wit_version_is_refused_with_the_version_it_needs() {
    assert_eq!(host_wit_version().to_string(), "0.1.2", "update this test with the WIT");
    let tmp = tempfile::tempdir().unwrap();
    let dir = pack_dir(tmp.path(), |m| m.replace("wasmprobe:plugin@0.1.2", "wasmprobe:plugin@0.2.0"));
    // The manifest cannot claim another version than the component imports.
    let msg = build_dir(&dir, None).unwrap_err().to_string();
    assert!(msg.contains("manifest says wit = \"wasmprobe:plugin@0.2.0\" but the component imports"), "{msg}");

    // A component really built against 0.2.0.
    std::fs::write(dir.join("plugin.wasm"), component_importing("0.2.0")).unwrap();
    let file = tmp.path().join("newer.wpk");
    std::fs::write(&file, build_dir(&dir, Some(&key(1))).unwrap()).unwrap();
    let p = Pack::open(&file).unwrap();
    let msg = check_wit_version(p.manifest()).unwrap_err().to_string();
    assert_eq!(
        msg,
        "pack exec-open 0.1.0 needs wasmprobe:plugin@0.2.0, this host has @0.1.2 (a newer wasmprobe than this \
         one: upgrade wasmprobe to run it)"
    );
    assert!(pack::describe(&p).contains("REFUSED"));
    let msg = open_for_run(&file, &TrustPolicy::trusting([key(1).public()])).unwrap_err().to_string();
    assert!(msg.contains("needs wasmprobe:plugin@0.2.0"), "{msg}");

    // An older track this host no longer provides.
    let mut m: Manifest = p.manifest().clone();
    m.wit = "wasmprobe:plugin@0.0.3".into();
    let msg = check_wit_version(&m).unwrap_err().to_string();
    assert!(msg.contains("needs wasmprobe:plugin@0.0.3, this host has @0.1.2"), "{msg}");
}

/// A plugin built against 0.1.0, before `timeline` existed (its imports say `@0.1.0`), loads
/// and runs on this host (0.1.2), alone and as a pack that says it needs 0.1.0.
#[test]
fn a_plugin_built_against_0_1_0_keeps_working() {
    let old = component_importing("0.1.0");
    let mut p = Plugin::from_bytes("exec-open", &old, &sandbox(), Box::new(StdOutput::default())).unwrap();
    let plan = p.init(&[], kernel_without_kprobes()).unwrap();
    assert_eq!(plan.probes.len(), 4);
    let tmp = tempfile::tempdir().unwrap();
    let dir = pack_dir(tmp.path(), |m| m.replace("wasmprobe:plugin@0.1.2", "wasmprobe:plugin@0.1.0"));
    std::fs::write(dir.join("plugin.wasm"), &old).unwrap();
    let pack = Pack::from_bytes(&build_dir(&dir, None).unwrap()).unwrap();
    check_wit_version(pack.manifest()).unwrap();
    assert!(pack::describe(&pack).contains("needs:          wasmprobe:plugin@0.1.0 (this host has @0.1.2: compatible)"));
}

#[test]
fn a_plugin_asking_for_an_undeclared_probe_is_refused() {
    let base = Manifest::from_toml(&std::fs::read_to_string(example_dir().join("manifest.toml")).unwrap()).unwrap();
    let mut plugin =
        Plugin::from_bytes("exec-open", builtin("exec-open").unwrap(), &sandbox(), Box::new(StdOutput::default()))
            .unwrap();
    let plan: Plan = plugin.init(&[], kernel_with_kprobes()).unwrap();
    assert_eq!(plan.probes.iter().map(|p| p.kind).collect::<Vec<_>>(), [ProbeKind::Kprobe, ProbeKind::Kretprobe]);
    check_plan_against_manifest(&plan, &base).unwrap();

    // The manifest without the kretprobe: the plan asks for it anyway.
    let mut m = base.clone();
    m.probes.retain(|p| p.kind != ProbeKind::Kretprobe);
    let e = check_plan_against_manifest(&plan, &m).unwrap_err();
    assert!(matches!(e, PackError::UndeclaredProbe(_)));
    let msg = e.to_string();
    assert!(
        msg.starts_with(
            "pack exec-open asked at run time for kretprobe openret at do_sys_openat2 [ret=%ax], which its manifest \
             does not declare"
        ),
        "{msg}"
    );
    assert!(msg.contains("closest declared: kprobe open at do_sys_openat2"), "{msg}");
    assert!(msg.contains("uretprobe openret at libc:open [ret=$retval:s32]); refusing to run it"), "{msg}");

    // Declared fetchargs must match (spacing aside); undeclared ones are free.
    let mut m = base.clone();
    m.probes[0].fetchargs = Some("file=+0($arg2):string".into());
    assert!(check_plan_against_manifest(&plan, &m).is_err());
    m.probes[0].fetchargs = Some("  file=+0($arg2):ustring   flags=+0($arg3):x64 mode=+8($arg3):x64 ".into());
    check_plan_against_manifest(&plan, &m).unwrap();
    m.probes[0].fetchargs = None;
    check_plan_against_manifest(&plan, &m).unwrap();

    // Another target is another probe.
    let mut m = base.clone();
    m.probes[0].target = "do_sys_open".into();
    assert!(check_plan_against_manifest(&plan, &m).is_err());
}

#[test]
fn manifests_are_checked_as_untrusted_input() {
    let tmp = tempfile::tempdir().unwrap();
    for (edit, want) in [
        (("name = \"exec-open\"", "name = \"../evil\""), "name"),
        (("wit = \"wasmprobe:plugin@0.1.2\"", "wit = \"0.1.2\""), "wasmprobe:plugin@X.Y.Z"),
        (("files = [\"README.md\"]", "files = [\"../../etc/passwd\"]"), "not allowed"),
        (("files = [\"README.md\"]", "files = [\"plugin.wasm\"]"), "must not list"),
        (("files = [\"README.md\"]", "files = [\"MISSING.md\"]"), "MISSING.md"),
        (("target = \"libc:open\"", "target = \"libc:open\\nx\""), "control character"),
        (("name = \"openat\"", "name = \"open-at\""), "C identifier"),
        (("kind = \"kprobe\"", "kind = \"fprobe\""), "unknown probe kind"),
        (("author =", "colour = \"red\"\nauthor ="), "unknown field"),
    ] {
        let t = tmp.path().join(want.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
        std::fs::create_dir(&t).unwrap();
        let dir = pack_dir(&t, |m| {
            assert!(m.contains(edit.0), "{}", edit.0);
            m.replacen(edit.0, edit.1, 1)
        });
        let msg = build_dir(&dir, None).unwrap_err().to_string();
        assert!(msg.contains(want), "{edit:?}: {msg}");
    }
    // Not a component at all.
    let dir = pack_dir(&tmp.path().join("core"), |m| m);
    std::fs::write(dir.join("plugin.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let msg = build_dir(&dir, None).unwrap_err().to_string();
    assert!(msg.contains("not a component"), "{msg}");
}

#[test]
fn keygen_writes_a_pair_that_signs_and_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("alice");
    let k = SecretKey::generate().unwrap();
    let pub_path = k.write_pair(&path).unwrap();
    assert_eq!(pub_path, tmp.path().join("alice.pub"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(SecretKey::read(&path).unwrap().public(), PublicKey::read(&pub_path).unwrap());
    assert!(k.write_pair(&path).unwrap_err().to_string().contains("not overwriting"));
    assert_ne!(SecretKey::generate().unwrap().public(), k.public());
    let msg = SecretKey::read(&pub_path).unwrap_err().to_string();
    assert!(msg.contains("public key file"), "{msg}");
}

// ---- The binary end to end, once the lead wires `wasmprobe pack ...` and `run FILE.wpk`. ----

fn wasmprobe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasmprobe")).args(args).output().expect("run wasmprobe")
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn failed(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(1), "stdout: {}", String::from_utf8_lossy(&o.stdout));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.lines().any(|l| l.starts_with("wasmprobe: error: ")), "{err}");
    err
}

#[test]
fn the_cli_builds_inspects_verifies_and_refuses_packs() {
    let tmp = tempfile::tempdir().unwrap();
    let t = |p: &str| tmp.path().join(p).to_str().unwrap().to_string();
    let src = example_dir();
    let src = src.to_str().unwrap();
    ok(&wasmprobe(&["pack", "keygen", "-o", &t("alice")]));
    ok(&wasmprobe(&["pack", "keygen", "-o", &t("bob")]));
    ok(&wasmprobe(&["pack", "build", src, "-o", &t("signed.wpk"), "--sign", &t("alice")]));
    ok(&wasmprobe(&["pack", "build", src, "-o", &t("unsigned.wpk")]));

    let out = ok(&wasmprobe(&["pack", "inspect", &t("signed.wpk")]));
    assert!(out.contains("pack exec-open 0.1.0") && out.contains("do_sys_openat2"), "{out}");
    let out = ok(&wasmprobe(&["pack", "verify", &t("signed.wpk"), "--trust", &t("alice.pub")]));
    assert!(out.contains("signed by trusted key"), "{out}");

    let err = failed(&wasmprobe(&["pack", "verify", &t("signed.wpk"), "--trust", &t("bob.pub")]));
    assert!(err.contains("not a trusted key"), "{err}");
    let err = failed(&wasmprobe(&["pack", "verify", &t("unsigned.wpk"), "--trust", &t("alice.pub")]));
    assert!(err.contains("unsigned"), "{err}");
    let mut bytes = std::fs::read(t("signed.wpk")).unwrap();
    bytes[100] ^= 1;
    std::fs::write(t("flipped.wpk"), &bytes).unwrap();
    let err = failed(&wasmprobe(&["pack", "verify", &t("flipped.wpk")]));
    assert!(err.contains("tampered"), "{err}");

    // `run` refuses before it touches the kernel.
    let err = failed(&wasmprobe(&["run", &t("unsigned.wpk"), "--trust", &t("alice.pub"), "--", "true"]));
    assert!(err.contains("unsigned"), "{err}");
    let err = failed(&wasmprobe(&["run", &t("signed.wpk"), "--trust", &t("bob.pub"), "--", "true"]));
    assert!(err.contains("not a trusted key"), "{err}");
    let err = failed(&wasmprobe(&["run", &t("flipped.wpk"), "--", "true"]));
    assert!(err.contains("tampered"), "{err}");

    // A plain component is refused under a trust policy; a built-in is part of the binary.
    let wasm = tmp.path().join("exec_open.wasm");
    std::fs::write(&wasm, builtin("exec-open").unwrap()).unwrap();
    let err = failed(&wasmprobe(&["run", wasm.to_str().unwrap(), "--trust", &t("alice.pub"), "--", "true"]));
    assert!(err.contains("only signed packs may run"), "{err}");

    // Root and tracefs needed from here on: uprobes on libc here, kprobes in the VM.
    testkit::require!("the live half": root, tracefs, uprobes);
    let out = ok(&wasmprobe(&["run", &t("signed.wpk"), "--trust", &t("alice.pub"), "--", "cat", "/etc/hostname"]));
    assert!(out.contains("open file='/etc/hostname'"), "{out}");
    // A manifest without the return probes: the plugin asks for one anyway, on any kernel.
    let dir = tmp.path().join("undeclared");
    std::fs::create_dir(&dir).unwrap();
    let manifest = std::fs::read_to_string(example_dir().join("manifest.toml")).unwrap();
    let manifest: String =
        manifest.split("[[probes]]").filter(|p| !p.contains("ret\"")).collect::<Vec<_>>().join("[[probes]]");
    std::fs::write(dir.join("manifest.toml"), manifest).unwrap();
    std::fs::copy(example_dir().join("README.md"), dir.join("README.md")).unwrap();
    ok(&wasmprobe(&["pack", "build", dir.to_str().unwrap(), "-o", &t("undeclared.wpk"), "--sign", &t("alice")]));
    let err = failed(&wasmprobe(&["run", &t("undeclared.wpk"), "--trust", &t("alice.pub"), "--", "true"]));
    assert!(err.contains("which its manifest does not declare"), "{err}");
}
