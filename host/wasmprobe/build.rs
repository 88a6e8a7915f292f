//! Builds the guest plugins (the guest-examples workspace: the built-in examples and the
//! hostile plugins of the sandbox tests) for wasm32-wasip2 and copies their components to
//! `$OUT_DIR/guests/`, where `src/plugin/mod.rs` embeds the built-ins with `include_bytes!`
//! and the tests find the rest.
//!
//! The guests are their own workspace with their own target directory (`<repo>/target/guests`),
//! so the inner cargo never waits for the lock the outer one holds.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Components every build must produce (the built-ins).
const REQUIRED: &[&str] = &["exec_open", "syscount", "openlat", "readline", "stackcount"];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest.join("../..");
    for dir in ["wit", "abi", "guest-sdk", "guest-examples"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    check_wasm_target(&rustc);

    let target_dir = root.join("target").join("guests");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(root.join("guest-examples"))
        .args(["build", "--release", "--workspace", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(&target_dir);
    // What cargo sets for *this* crate's compilation must not leak into the guests' build:
    // host rustflags (coverage, target-cpu), clippy's wrapper, an outer target dir.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cargo} to build the guest plugins: {e}"));
    if !out.status.success() {
        panic!(
            "building the guest plugins (cd guest-examples && cargo build --release --target wasm32-wasip2) \
             failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let built = target_dir.join("wasm32-wasip2").join("release");
    let dest = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("guests");
    std::fs::create_dir_all(&dest).expect("creating $OUT_DIR/guests");
    let mut copied = Vec::new();
    for entry in std::fs::read_dir(&built).unwrap_or_else(|e| panic!("reading {}: {e}", built.display())) {
        let path = entry.expect("reading a directory entry").path();
        if path.extension().is_some_and(|e| e == "wasm") {
            let name = path.file_name().expect("a file name");
            copy_if_changed(&path, &dest.join(name));
            copied.push(path.file_stem().expect("a stem").to_string_lossy().into_owned());
        }
    }
    for name in REQUIRED {
        assert!(copied.iter().any(|c| c == name), "the guest build produced no {name}.wasm in {}", built.display());
    }
}

/// Panics with the fix when the Rust standard library for wasm32-wasip2 is not installed.
fn check_wasm_target(rustc: &str) {
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(sysroot) = sysroot {
        if !sysroot.join("lib/rustlib/wasm32-wasip2").is_dir() {
            panic!(
                "the Rust target wasm32-wasip2 is not installed (needed to build the built-in plugins).\n\
                 Run: rustup target add wasm32-wasip2"
            );
        }
    }
}

/// Copies unless the destination already has the same bytes (keeps its mtime, so cargo does
/// not rebuild what embeds it).
fn copy_if_changed(from: &Path, to: &Path) {
    let new = std::fs::read(from).unwrap_or_else(|e| panic!("reading {}: {e}", from.display()));
    if std::fs::read(to).ok().as_deref() != Some(&new[..]) {
        std::fs::write(to, &new).unwrap_or_else(|e| panic!("writing {}: {e}", to.display()));
    }
}
