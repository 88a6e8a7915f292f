//! The pack manifest, its rules, the `wasmprobe:plugin` version check, and the check that a
//! plugin's run-time plan stays within the probes its manifest declares.

use std::fmt;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::format::{check_file_name, COMPONENT_FILE, MAX_FILES};
use super::PackError;
use crate::plugin::{Plan, ProbeDecl, ProbeKind};

/// Most probes a manifest may declare (a plugin's alternatives for several kernels included).
pub const MAX_MANIFEST_PROBES: usize = 256;

/// What a pack says about itself. In a pack directory it is `manifest.toml` (or
/// `manifest.json`); inside a pack it is stored as JSON.
///
/// ```toml
/// name = "exec-open"                      # letters, digits, '-', '_', '.'; at most 64 bytes
/// version = "1.0.0"
/// description = "The files a command opens (the libtracefs kprobe man page example)"
/// author = "Jane Doe <jane@example.org>"
/// wit = "wasmprobe:plugin@0.1.0"          # the host interface the component was built against
/// tested-kernels = ["6.12.0-debian", "6.18"]
/// files = ["README.md"]                   # shipped beside the component
/// component = "plugin.wasm"               # build only: where the component is (default), or
///                                         # "builtin:NAME" for a built-in example's bytes
///
/// [[probes]]                              # every probe the plugin may ask for, on any kernel
/// kind = "kprobe"                         # kprobe kretprobe uprobe uretprobe tracepoint eprobe
/// name = "open"
/// target = "do_sys_openat2"
/// fetchargs = "file=+0($arg2):ustring"    # optional: if given, the plan must use exactly these
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Manifest {
    /// The pack's name (what `run` calls the plugin).
    pub name: String,
    /// The pack's own version.
    pub version: String,
    /// One line on what it does.
    #[serde(default)]
    pub description: String,
    /// Who wrote it.
    #[serde(default)]
    pub author: String,
    /// `wasmprobe:plugin@X.Y.Z`.
    pub wit: String,
    /// Every probe the plugin may ask for, on any kernel.
    #[serde(default)]
    pub probes: Vec<ManifestProbe>,
    /// Kernel releases the author ran it on.
    #[serde(default)]
    pub tested_kernels: Vec<String>,
    /// Files shipped beside the component (relative paths in the pack directory).
    #[serde(default)]
    pub files: Vec<String>,
    /// Build only: the component's path in the pack directory (default `plugin.wasm`), or
    /// `builtin:NAME`. Never stored in a pack (there the component is always `plugin.wasm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
}

/// One probe a manifest declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestProbe {
    /// What kind of probe.
    #[serde(with = "kind_serde")]
    pub kind: ProbeKind,
    /// The pack's name (what `run` calls the plugin).
    pub name: String,
    /// Where it goes, as a plan writes it.
    pub target: String,
    /// If given, the plan's fetchargs must be these (compared word by word); if absent, any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetchargs: Option<String>,
}

impl fmt::Display for ManifestProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} at {}", self.kind, self.name, self.target)?;
        match &self.fetchargs {
            Some(a) if !a.is_empty() => write!(f, " [{a}]"),
            _ => Ok(()),
        }
    }
}

mod kind_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::plugin::ProbeKind;

    pub fn serialize<S: Serializer>(k: &ProbeKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(k.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ProbeKind, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Manifest {
    /// Parses a manifest stored in a pack and checks its rules.
    pub fn from_json(json: &str) -> Result<Manifest, PackError> {
        let m: Manifest = serde_json::from_str(json).map_err(|e| PackError::Manifest(e.to_string()))?;
        if m.component.is_some() {
            return Err(PackError::Manifest("`component` is a build-time field; a pack must not carry it".into()));
        }
        m.validate()?;
        Ok(m)
    }

    /// Parses a pack directory's `manifest.toml` and checks its rules.
    pub fn from_toml(text: &str) -> Result<Manifest, PackError> {
        let m: Manifest = toml::from_str(text).map_err(|e| PackError::Manifest(e.to_string()))?;
        m.validate()?;
        Ok(m)
    }

    /// The JSON stored in a pack (fields in declaration order: deterministic).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a manifest always serializes")
    }

    /// The version the manifest needs.
    pub fn wit_version(&self) -> Result<WitVersion, PackError> {
        WitVersion::parse_requirement(&self.wit)
    }

    /// Checks the rules: sane lengths, no control characters, valid probe declarations, a
    /// `wit` of the form `wasmprobe:plugin@X.Y.Z`, file names that are plain relative paths.
    pub fn validate(&self) -> Result<(), PackError> {
        let bad = |m: String| Err(PackError::Manifest(m));
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok {
            return bad(format!(
                "name {:?} must be 1 to 64 letters, digits, '-', '_' or '.'",
                self.name.escape_debug().to_string()
            ));
        }
        text("version", &self.version, 64, false)?;
        if self.version.is_empty() {
            return bad("version is empty".into());
        }
        text("description", &self.description, 4096, true)?;
        text("author", &self.author, 256, false)?;
        self.wit_version()?;
        if self.probes.is_empty() {
            return bad("it declares no probes (list every probe the plugin may ask for under [[probes]])".into());
        }
        if self.probes.len() > MAX_MANIFEST_PROBES {
            return bad(format!("{} probes; at most {MAX_MANIFEST_PROBES} are allowed", self.probes.len()));
        }
        for (i, p) in self.probes.iter().enumerate() {
            // The plan validator's rules, applied to each declaration alone.
            let decl = ProbeDecl {
                kind: p.kind,
                name: p.name.clone(),
                target: p.target.clone(),
                fetchargs: p.fetchargs.clone().unwrap_or_default(),
                filter: None,
                maxactive: None,
                fields: None,
                stacks: Default::default(),
            };
            Plan { probes: vec![decl] }
                .validate(&crate::plugin::Policy::default())
                .map_err(|e| PackError::Manifest(format!("probe {} ({}): {e}", i + 1, p.name.escape_debug())))?;
        }
        if self.tested_kernels.len() > 64 {
            return bad(format!("{} tested-kernels; at most 64 are allowed", self.tested_kernels.len()));
        }
        for k in &self.tested_kernels {
            text("a tested-kernels entry", k, 128, false)?;
        }
        if self.files.len() + 1 > MAX_FILES {
            return bad(format!("{} files; at most {} besides the component", self.files.len(), MAX_FILES - 1));
        }
        let mut seen = std::collections::HashSet::new();
        for f in &self.files {
            check_file_name(f).map_err(PackError::Manifest)?;
            if f == COMPONENT_FILE || f == "manifest.toml" || f == "manifest.json" {
                return bad(format!("files must not list {f:?} (the pack stores it itself)"));
            }
            if !seen.insert(f) {
                return bad(format!("files lists {f:?} twice"));
            }
        }
        if let Some(c) = &self.component {
            text("component", c, 4096, false)?;
        }
        Ok(())
    }
}

fn text(what: &str, s: &str, max: usize, newlines: bool) -> Result<(), PackError> {
    if s.len() > max {
        return Err(PackError::Manifest(format!("{what} is {} bytes; at most {max} are allowed", s.len())));
    }
    if let Some(c) = s.chars().find(|&c| c.is_control() && !(newlines && c == '\n')) {
        return Err(PackError::Manifest(format!("{what} contains the control character {c:?}")));
    }
    Ok(())
}

/// A `wasmprobe:plugin` package version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WitVersion {
    /// Major version.
    pub major: u64,
    /// Minor version.
    pub minor: u64,
    /// Patch version.
    pub patch: u64,
}

impl fmt::Display for WitVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

const WIT_PACKAGE: &str = "wasmprobe:plugin";

impl WitVersion {
    /// `X.Y.Z`.
    pub fn parse(s: &str) -> Option<WitVersion> {
        let mut it = s.split('.').map(|p| {
            (!p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit())).then(|| p.parse().ok()).flatten()
        });
        let v = WitVersion { major: it.next()??, minor: it.next()??, patch: it.next()?? };
        it.next().is_none().then_some(v)
    }

    /// `wasmprobe:plugin@X.Y.Z`, as a manifest's `wit` says it.
    pub fn parse_requirement(s: &str) -> Result<WitVersion, PackError> {
        s.strip_prefix(WIT_PACKAGE)
            .and_then(|r| r.strip_prefix('@'))
            .and_then(WitVersion::parse)
            .ok_or_else(|| PackError::Manifest(format!("wit {s:?} must be of the form \"{WIT_PACKAGE}@X.Y.Z\"")))
    }

    /// Whether a host providing `self` runs a component built against `needed`: the same
    /// semver track (same major; for 0.x the same minor, as wasmtime links imports) and a
    /// version no newer than the host's.
    pub fn runs(self, needed: WitVersion) -> bool {
        let same_track =
            if self.major == 0 { needed.major == 0 && needed.minor == self.minor } else { needed.major == self.major };
        same_track && needed <= self
    }
}

/// The `wasmprobe:plugin` version this host implements (from `wit/wasmprobe.wit`, the one
/// source of truth).
pub fn host_wit_version() -> WitVersion {
    static V: OnceLock<WitVersion> = OnceLock::new();
    *V.get_or_init(|| {
        let wit = include_str!("../../../../wit/wasmprobe.wit");
        wit.lines()
            .find_map(|l| l.trim().strip_prefix("package wasmprobe:plugin@"))
            .and_then(|v| WitVersion::parse(v.trim_end_matches(';').trim()))
            .expect("wit/wasmprobe.wit declares `package wasmprobe:plugin@X.Y.Z;`")
    })
}

/// Refuses a pack this host cannot run: one that needs a newer `wasmprobe:plugin`, or one on
/// an older semver track this host no longer provides. An older compatible one passes.
pub fn check_wit_version(m: &Manifest) -> Result<(), PackError> {
    let needed = m.wit_version()?;
    let host = host_wit_version();
    if host.runs(needed) {
        return Ok(());
    }
    let why = if needed > host {
        "a newer wasmprobe than this one: upgrade wasmprobe to run it"
    } else {
        "an interface this wasmprobe no longer provides: rebuild the pack against the current one"
    };
    Err(PackError::WitVersion(format!(
        "pack {} {} needs {WIT_PACKAGE}@{needed}, this host has @{host} ({why})",
        m.name, m.version
    )))
}

/// The versions of `wasmprobe:plugin` a component imports (its top-level imports such as
/// `wasmprobe:plugin/output@0.1.0`), sorted and deduplicated.
pub fn component_wit_versions(wasm: &[u8]) -> Result<Vec<WitVersion>, String> {
    use wasmparser::{Encoding, Parser, Payload};
    let mut versions = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| format!("the component is not valid WebAssembly: {e}"))?;
        match payload {
            Payload::Version { encoding, .. } if depth == 0 && encoding != Encoding::Component => {
                return Err("plugin.wasm is a core WebAssembly module, not a component (build it for \
                            wasm32-wasip2)"
                    .into())
            }
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            }
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(|e| format!("the component's imports are malformed: {e}"))?;
                    let name = import.name.name;
                    if let Some(rest) = name.strip_prefix(WIT_PACKAGE).and_then(|r| r.strip_prefix('/')) {
                        let v = rest.split_once('@').and_then(|(_, v)| WitVersion::parse(v)).ok_or_else(|| {
                            format!("the component imports {name:?}, with no {WIT_PACKAGE} version it could run on")
                        })?;
                        versions.push(v);
                    }
                }
            }
            _ => {}
        }
    }
    versions.sort();
    versions.dedup();
    Ok(versions)
}

/// The component must be a component, and the `wasmprobe:plugin` version it imports must be
/// the one the manifest names (so the manifest cannot hide what the plugin needs).
pub(crate) fn check_component_matches(m: &Manifest, wasm: &[u8]) -> Result<(), PackError> {
    let declared = m.wit_version()?;
    let versions = component_wit_versions(wasm).map_err(PackError::Manifest)?;
    if let Some(v) = versions.iter().find(|&&v| v != declared) {
        return Err(PackError::Manifest(format!(
            "the manifest says wit = \"{WIT_PACKAGE}@{declared}\" but the component imports {WIT_PACKAGE}@{v}"
        )));
    }
    Ok(())
}

/// Words of a fetchargs string, for a comparison that ignores spacing.
fn words(s: &str) -> Vec<&str> {
    s.split_whitespace().collect()
}

fn matches(decl: &ProbeDecl, p: &ManifestProbe) -> bool {
    p.kind == decl.kind
        && p.name == decl.name
        && p.target == decl.target
        && p.fetchargs.as_deref().is_none_or(|a| words(a) == words(&decl.fetchargs))
}

/// Refuses a run-time plan that asks for any probe the manifest does not declare (same kind,
/// name and target; and the same fetchargs where the manifest gives them).
pub fn check_plan_against_manifest(plan: &Plan, m: &Manifest) -> Result<(), PackError> {
    for decl in &plan.probes {
        if m.probes.iter().any(|p| matches(decl, p)) {
            continue;
        }
        let args = if decl.fetchargs.is_empty() { String::new() } else { format!(" [{}]", decl.fetchargs) };
        let near: Vec<String> =
            m.probes.iter().filter(|p| p.name == decl.name || p.target == decl.target).map(|p| p.to_string()).collect();
        let hint = if near.is_empty() {
            format!("it declares: {}", m.probes.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))
        } else {
            format!("closest declared: {}", near.join("; "))
        };
        return Err(PackError::UndeclaredProbe(format!(
            "pack {} asked at run time for {} {} at {}{args}, which its manifest does not declare ({hint}); \
             refusing to run it",
            m.name, decl.kind, decl.name, decl.target
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> WitVersion {
        WitVersion::parse(s).unwrap()
    }

    #[test]
    fn versions_parse_strictly() {
        assert_eq!(v("0.1.0"), WitVersion { major: 0, minor: 1, patch: 0 });
        for bad in ["", "0.1", "0.1.0.0", "a.b.c", "0.1.-1", "0..1", "0.1.0-rc1", "+1.0.0"] {
            assert!(WitVersion::parse(bad).is_none(), "{bad}");
        }
        assert!(WitVersion::parse_requirement("wasmprobe:plugin@0.1.0").is_ok());
        assert!(WitVersion::parse_requirement("wasmprobe:other@0.1.0").is_err());
        assert!(WitVersion::parse_requirement("wasmprobe:plugin").is_err());
    }

    #[test]
    fn compatibility_follows_the_semver_track() {
        assert!(v("0.1.0").runs(v("0.1.0")));
        assert!(v("0.1.3").runs(v("0.1.0")));
        assert!(!v("0.1.0").runs(v("0.1.1")));
        assert!(!v("0.2.0").runs(v("0.1.0")));
        assert!(!v("0.1.0").runs(v("0.2.0")));
        assert!(v("1.4.0").runs(v("1.0.2")));
        assert!(!v("2.0.0").runs(v("1.9.0")));
    }

    #[test]
    fn the_host_version_comes_from_the_wit_file() {
        assert_eq!(host_wit_version().major, 0);
        let wit = include_str!("../../../../wit/wasmprobe.wit");
        assert!(wit.contains(&format!("package wasmprobe:plugin@{};", host_wit_version())));
    }

    #[test]
    fn a_core_module_or_garbage_is_not_a_component() {
        assert!(component_wit_versions(b"\0asm\x01\0\0\0").unwrap_err().contains("core WebAssembly module"));
        assert!(component_wit_versions(b"not wasm").is_err());
        assert!(component_wit_versions(b"").is_err());
    }
}
