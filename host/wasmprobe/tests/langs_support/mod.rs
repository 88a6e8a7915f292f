//! Building Python and JavaScript plugins in tests, with the toolchains `.ci/setup` installs:
//! componentize-py in a venv under `~/.cache/wasmprobe-toolchains/py` (or
//! `$WASMPROBE_COMPONENTIZE_PY`, or on PATH), componentize-js in `guest-sdk-js/node_modules`
//! (`npm ci`). A built component is kept in `target/tmp/lang-guests/` under a hash of its
//! sources, the SDK and the WIT, so a rerun builds nothing. A missing toolchain is a SKIP on a
//! laptop and a failure with WASMPROBE_REQUIRE_ALL=1.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// componentize-py, if installed.
pub fn componentize_py() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WASMPROBE_COMPONENTIZE_PY") {
        return Some(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let venv = home.join(".cache/wasmprobe-toolchains/py/bin/componentize-py");
    if venv.is_file() {
        return Some(venv);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join("componentize-py")).find(|p| p.is_file())
}

/// Whether the JS toolchain is installed (node, and componentize-js under guest-sdk-js).
pub fn js_toolchain() -> bool {
    repo().join("guest-sdk-js/node_modules/@bytecodealliance/componentize-js/src/cli.js").is_file()
        && Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// The language of a plugin's sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// `app.py` built by componentize-py with `guest-sdk-python` on its path.
    Python,
    /// `app.js` built by `guest-sdk-js/build.mjs`.
    Js,
}

fn hash_tree(h: &mut Sha256, dir: &Path) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name == "node_modules" || name == "__pycache__" || name.ends_with(".wasm") {
            continue;
        }
        if p.is_dir() {
            hash_tree(h, &p);
        } else {
            h.update(name.as_bytes());
            h.update(std::fs::read(&p).unwrap());
        }
    }
}

static BUILDING: Mutex<()> = Mutex::new(());

/// Builds the plugin whose sources are in `dir` (an `app.py` or `app.js`), or gives the
/// component built before from the same sources; `Err` says which toolchain is missing.
pub fn build(lang: Lang, dir: &Path) -> Result<PathBuf, String> {
    let root = repo();
    let (sdk, tool) = match lang {
        Lang::Python => {
            let tool = componentize_py()
                .ok_or("needs componentize-py (.ci/setup installs it in ~/.cache/wasmprobe-toolchains/py)")?;
            (root.join("guest-sdk-python"), tool)
        }
        Lang::Js => {
            if !js_toolchain() {
                return Err("needs node and componentize-js (.ci/setup runs npm ci in guest-sdk-js)".into());
            }
            (root.join("guest-sdk-js"), PathBuf::from("node"))
        }
    };
    let mut h = Sha256::new();
    hash_tree(&mut h, dir);
    hash_tree(&mut h, &sdk);
    hash_tree(&mut h, &root.join("wit"));
    if lang == Lang::Js {
        h.update(std::fs::read(sdk.join("package-lock.json")).unwrap_or_default());
    }
    let hex: String = h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect();
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("lang-guests");
    std::fs::create_dir_all(&out_dir).unwrap();
    let stem = dir.file_name().unwrap().to_string_lossy().into_owned();
    let out = out_dir.join(format!("{stem}-{hex}.wasm"));
    let _one = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    if out.is_file() {
        return Ok(out);
    }
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    let o = match lang {
        Lang::Python => Command::new(&tool)
            .arg("-d")
            .arg(root.join("wit"))
            .args(["-w", "plugin", "componentize", "-p"])
            .arg(&sdk)
            .arg("-p")
            .arg(dir)
            .arg("app")
            .arg("-o")
            .arg(&tmp)
            .current_dir(dir)
            .output(),
        Lang::Js => Command::new(tool)
            .arg(sdk.join("build.mjs"))
            .arg(dir.join("app.js"))
            .arg("-o")
            .arg(&tmp)
            .current_dir(dir)
            .output(),
    }
    .unwrap();
    assert!(
        o.status.success(),
        "building {}: {}\n{}",
        dir.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::rename(&tmp, &out).unwrap();
    Ok(out)
}

/// Builds an example of `guest-examples/python` or `guest-examples/js`; `None` (after a SKIP,
/// or a panic under WASMPROBE_REQUIRE_ALL=1) when the toolchain is missing.
pub fn example(test: &str, lang: Lang, name: &str) -> Option<PathBuf> {
    let sub = match lang {
        Lang::Python => "python",
        Lang::Js => "js",
    };
    match build(lang, &repo().join("guest-examples").join(sub).join(name)) {
        Ok(p) => Some(p),
        Err(why) => {
            testkit::missing_prerequisite(test, &why);
            None
        }
    }
}
