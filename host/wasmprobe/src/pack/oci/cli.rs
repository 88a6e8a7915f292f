//! The registry flags (`--insecure-registry`, `--ca-file`, `--username`/`--password-stdin`,
//! `--offline`) and the `pack push`/`pack pull`/`pack inspect REF`/`pack verify REF` commands.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;

use super::{Credentials, Reference, RegistryOptions};
use crate::pack::{check_wit_version, Pack, TrustPolicy, MAX_PACK_BYTES};

/// How to reach a registry (for a REF: `registry[:port]/repository[:tag|@sha256:DIGEST]`).
#[derive(Debug, Clone, Default, Args)]
pub struct RegistryArgs {
    /// Speak plain HTTP (no TLS) to this registry, HOST:PORT exactly as in the reference
    /// (repeatable). Never the default, not even for localhost.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure_registry: Vec<String>,
    /// Trust the CA certificate(s) in this PEM file for registries' HTTPS, besides the system
    /// roots (repeatable).
    #[arg(long = "ca-file", value_name = "PEM")]
    pub ca_file: Vec<PathBuf>,
    /// Log in to the registry as USER, with the password read from stdin (--password-stdin).
    /// Without it: the `auths` entry of the Docker config ($DOCKER_CONFIG/config.json, else
    /// ~/.docker/config.json), else anonymous.
    #[arg(long, value_name = "USER", requires = "password_stdin")]
    pub username: Option<String>,
    /// Read the password for --username from the first line of stdin.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
    /// Do not contact the registry: a digest is answered from the local cache, and a tag by
    /// what it named when last pulled.
    #[arg(long)]
    pub offline: bool,
}

impl RegistryArgs {
    /// The options these flags give (reads the password from stdin if asked).
    pub fn options(&self) -> Result<RegistryOptions> {
        for r in &self.insecure_registry {
            // The same rule as a reference's registry part.
            Reference::parse(&format!("{r}/x")).map_err(|_| anyhow!("--insecure-registry {r:?}: not HOST[:PORT]"))?;
        }
        let login = match &self.username {
            Some(user) => {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line).context("--password-stdin: cannot read stdin")?;
                let password = line.trim_end_matches(['\n', '\r']).to_string();
                if password.is_empty() {
                    bail!("--password-stdin: stdin gave no password");
                }
                Some(Credentials { username: user.clone(), password })
            }
            None => None,
        };
        Ok(RegistryOptions {
            insecure: self.insecure_registry.clone(),
            ca_files: self.ca_file.clone(),
            login,
            offline: self.offline,
            ..RegistryOptions::default()
        })
    }

    /// For `run`: makes these the options of the run's pulls (see [`super::set_run_options`]).
    pub fn install_for_run(&self) -> Result<()> {
        super::set_run_options(self.options()?);
        Ok(())
    }
}

fn parse(reference: &str) -> Result<Reference> {
    Reference::parse(reference).map_err(|e| anyhow!(e))
}

/// `wasmprobe pack push FILE REF`.
pub fn push(file: &Path, reference: &str, registry: &RegistryArgs) -> Result<()> {
    let r = parse(reference)?;
    let bytes = read_pack_file(file)?;
    let pushed = super::push(&bytes, &r, &registry.options()?)?;
    let pack = Pack::from_bytes(&bytes)?;
    let m = pack.manifest();
    let signed = match pack.signature() {
        Some(sig) => format!("signed by key {}", sig.key.id()),
        None => "unsigned".into(),
    };
    println!("pushed {} ({} {}, {signed}) to {r}", file.display(), m.name, m.version);
    println!("digest: {}", pushed.reference.digest.as_deref().unwrap_or(""));
    Ok(())
}

/// `wasmprobe pack pull REF [-o FILE]`.
pub fn pull(reference: &str, output: Option<&Path>, trust: &TrustPolicy, registry: &RegistryArgs) -> Result<()> {
    let r = parse(reference)?;
    let opts = registry.options()?;
    let p = super::pull(&r, &opts, trust)?;
    if let Some(out) = output {
        crate::pack::cli::write_atomically(out, &p.bytes)?;
    }
    let m = p.pack.manifest();
    let from = if p.from_cache { "from the cache" } else { "from the registry" };
    println!("pulled {} ({} {}, {}) {from}", p.reference, m.name, m.version, p.verified);
    match (output, &opts.cache) {
        (Some(out), _) => println!("wrote {}", out.display()),
        (None, Some(c)) => println!("cached in {}", c.root().display()),
        (None, None) => println!("not written: no -o FILE and the cache is off"),
    }
    if let Err(e) = check_wit_version(m) {
        println!("this host cannot run it: {e}");
    }
    Ok(())
}

/// `wasmprobe pack inspect REF [--json]`: the artifact and the pack, without running it.
pub fn inspect(reference: &str, json: bool, registry: &RegistryArgs) -> Result<()> {
    let r = parse(reference)?;
    let p = super::pull(&r, &registry.options()?, &TrustPolicy::none())?;
    if json {
        println!("{}", p.pack.manifest_json());
    } else {
        print!("{}", super::describe(&p));
    }
    Ok(())
}

/// `wasmprobe pack verify REF`: pulls it under the trust policy and says what was checked.
pub fn verify(reference: &str, trust: &TrustPolicy, registry: &RegistryArgs) -> Result<()> {
    let r = parse(reference)?;
    let p = super::pull(&r, &registry.options()?, trust)?;
    let m = p.pack.manifest();
    println!("{}: {} {}: integrity OK (every blob matches its digest); {}", p.reference, m.name, m.version, p.verified);
    match check_wit_version(m) {
        Ok(()) => println!("this host can run it ({})", m.wit),
        Err(e) => println!("this host cannot run it: {e}"),
    }
    Ok(())
}

/// Reads a pack file to push (regular files of at most the pack size limit).
fn read_pack_file(file: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(file).with_context(|| file.display().to_string())?;
    if !meta.is_file() {
        bail!("{}: not a regular file", file.display());
    }
    if meta.len() > MAX_PACK_BYTES {
        bail!("{}: {} bytes, more than a pack may have ({MAX_PACK_BYTES})", file.display(), meta.len());
    }
    let bytes = std::fs::read(file).with_context(|| file.display().to_string())?;
    Pack::from_bytes(&bytes).with_context(|| file.display().to_string())?;
    Ok(bytes)
}
