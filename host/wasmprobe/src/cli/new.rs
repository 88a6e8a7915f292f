//! `wasmprobe new --lang rust|python|js DIR`: a small plugin project to start from, the
//! libtracefs kprobe man page's example (exec-open) with its build (a Makefile) and a README
//! that says how to build and run it. Python and JS projects carry their SDK and the WIT, so
//! they build anywhere the toolchain is; a Rust project points at this source tree's SDK.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::args::{Lang, NewArgs};

const WIT: &str = include_str!("../../../../wit/wasmprobe.wit");
const RUST_LIB: &str = include_str!("../../../../guest-examples/exec-open/src/lib.rs");
const PY_APP: &str = include_str!("../../../../guest-examples/python/exec-open/app.py");
const PY_SDK: &str = include_str!("../../../../guest-sdk-python/wasmprobe/__init__.py");
const PY_TIMELINE: &str = include_str!("../../../../guest-sdk-python/wasmprobe/timeline.py");
const PY_METRICS: &str = include_str!("../../../../guest-sdk-python/wasmprobe/metrics.py");
const JS_SDK: &str = include_str!("../../../../guest-sdk-js/wasmprobe.js");
const JS_BUILD: &str = include_str!("../../../../guest-sdk-js/build.mjs");
const JS_PACKAGE: &str = include_str!("../../../../guest-sdk-js/package.json");
const JS_LOCK: &str = include_str!("../../../../guest-sdk-js/package-lock.json");

/// The Rust SDK of the source tree this binary was built from.
const RUST_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../guest-sdk");

/// Writes the project.
pub(super) fn new(a: NewArgs) -> Result<()> {
    let dir = &a.dir;
    if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
        bail!("{}: exists and is not empty", dir.display());
    }
    let name = project_name(dir)?;
    let files: Vec<(&str, String)> = match a.lang {
        Lang::Rust => {
            let sdk = a.sdk.clone().unwrap_or_else(|| PathBuf::from(RUST_SDK));
            let sdk = sdk.canonicalize().ok().filter(|s| s.join("Cargo.toml").is_file()).with_context(|| {
                format!("no Rust SDK at {}: give --sdk DIR (the guest-sdk of a wasmprobe source tree)", sdk.display())
            })?;
            let fill = |t: &str| {
                t.replace("{{NAME}}", &name)
                    .replace("{{CRATE}}", &name.replace('-', "_"))
                    .replace("{{SDK}}", &sdk.display().to_string())
            };
            vec![
                ("Cargo.toml", fill(include_str!("../../templates/rust/Cargo.toml"))),
                ("Makefile", fill(include_str!("../../templates/rust/Makefile"))),
                ("README.md", fill(include_str!("../../templates/rust/README.md"))),
                ("src/lib.rs", RUST_LIB.to_string()),
            ]
        }
        Lang::Python => vec![
            ("app.py", PY_APP.to_string()),
            ("wasmprobe/__init__.py", PY_SDK.to_string()),
            ("wasmprobe/timeline.py", PY_TIMELINE.to_string()),
            ("wasmprobe/metrics.py", PY_METRICS.to_string()),
            ("wit/wasmprobe.wit", WIT.to_string()),
            ("Makefile", include_str!("../../templates/python/Makefile").to_string()),
            ("README.md", include_str!("../../templates/python/README.md").replace("{{NAME}}", &name)),
        ],
        Lang::Js => vec![
            ("app.js", include_str!("../../templates/js/app.js").to_string()),
            ("wasmprobe.js", JS_SDK.to_string()),
            ("build.mjs", JS_BUILD.to_string()),
            ("package.json", JS_PACKAGE.to_string()),
            ("package-lock.json", JS_LOCK.to_string()),
            ("wit/wasmprobe.wit", WIT.to_string()),
            ("Makefile", include_str!("../../templates/js/Makefile").to_string()),
            ("README.md", include_str!("../../templates/js/README.md").replace("{{NAME}}", &name)),
        ],
    };
    for (path, text) in &files {
        write(&dir.join(path), text)?;
    }
    println!(
        "wrote {} ({}): build it with `make -C {}`, then `wasmprobe run {}/plugin.wasm -- COMMAND`",
        dir.display(),
        a.lang.name(),
        dir.display(),
        dir.display()
    );
    Ok(())
}

/// The project's name: DIR's last component, which must be a name Cargo and npm take.
fn project_name(dir: &Path) -> Result<String> {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        bail!(
            "{}: the project's name {name:?} must be lowercase letters, digits, - and _, from a letter",
            dir.display()
        );
    }
    Ok(name)
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
