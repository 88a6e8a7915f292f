//! The `wasmprobe pack ...` subcommands and the `--trust`/`--trust-dir` flags of `run` and
//! `pack verify`, for `crate::cli` to embed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use super::keys::SecretKey;
use super::{build_dir, check_wit_version, describe, Pack, PackError, TrustPolicy};

/// `wasmprobe pack ...`
#[derive(Debug, Subcommand)]
pub enum PackCmd {
    /// Make an ed25519 signing key: KEYFILE (secret, mode 0600) and KEYFILE.pub (to share).
    Keygen {
        /// Where to write the secret key; the public key goes to the same path plus `.pub`.
        #[arg(short, long, value_name = "KEYFILE")]
        output: PathBuf,
    },
    /// Build a pack from DIR: manifest.toml, the component (plugin.wasm) and the files the
    /// manifest lists.
    Build {
        /// The pack directory.
        dir: PathBuf,
        /// The pack file to write (e.g. tcp-pack.wpk).
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Sign the pack with this secret key (from `pack keygen`).
        #[arg(long, value_name = "KEYFILE")]
        sign: Option<PathBuf>,
    },
    /// Print a pack's manifest, files, signature and the probes it may create, without
    /// running it. For a REF: also the artifact's digest and layers.
    Inspect {
        /// The pack file, or a registry reference REGISTRY[:PORT]/REPOSITORY[:TAG|@sha256:DIGEST].
        file: PathBuf,
        /// Print the manifest as stored (JSON) instead.
        #[arg(long)]
        json: bool,
        /// How to reach the registry when FILE is a reference.
        #[command(flatten)]
        registry: super::oci::cli::RegistryArgs,
    },
    /// Check a pack's integrity and signature, and its signer against --trust/--trust-dir.
    Verify {
        /// The pack file, or a registry reference.
        file: PathBuf,
        /// Which signers to trust.
        #[command(flatten)]
        trust: TrustArgs,
        /// How to reach the registry when FILE is a reference.
        #[command(flatten)]
        registry: super::oci::cli::RegistryArgs,
    },
    /// Push a pack to a registry as an OCI artifact (see docs/oci.md) and print its digest.
    Push {
        /// The pack file.
        file: PathBuf,
        /// Where: REGISTRY[:PORT]/REPOSITORY[:TAG|@sha256:DIGEST] (tag default: latest).
        reference: String,
        /// How to reach the registry when FILE is a reference.
        #[command(flatten)]
        registry: super::oci::cli::RegistryArgs,
    },
    /// Pull a pack from a registry into the local cache (and with -o to a file), checking
    /// every digest, the pack's signature and --trust/--trust-dir.
    Pull {
        /// REGISTRY[:PORT]/REPOSITORY[:TAG|@sha256:DIGEST].
        reference: String,
        /// Also write the pack file here.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Which signers to trust.
        #[command(flatten)]
        trust: TrustArgs,
        /// How to reach the registry when FILE is a reference.
        #[command(flatten)]
        registry: super::oci::cli::RegistryArgs,
    },
}

/// The trust policy flags.
#[derive(Debug, Clone, Default, Args)]
pub struct TrustArgs {
    /// Run only packs signed by this public key (a KEYFILE.pub; repeatable). Unsigned packs,
    /// packs signed by other keys and plain .wasm files are refused.
    #[arg(long = "trust", value_name = "PUBKEYFILE")]
    pub trust: Vec<PathBuf>,
    /// Like --trust, for every *.pub key in DIR.
    #[arg(long, value_name = "DIR")]
    pub trust_dir: Option<PathBuf>,
}

impl TrustArgs {
    /// The policy the flags give (none when neither is given).
    pub fn policy(&self) -> Result<TrustPolicy, PackError> {
        TrustPolicy::from_args(&self.trust, self.trust_dir.as_deref())
    }
}

/// Runs `wasmprobe pack ...`; the error, if any, is for the user.
pub fn run(cmd: PackCmd) -> Result<()> {
    match cmd {
        PackCmd::Keygen { output } => {
            let key = SecretKey::generate()?;
            let pub_path = key.write_pair(&output)?;
            println!("wrote secret key {} (keep it private) and public key {}", output.display(), pub_path.display());
            println!("key id {}", key.public().id());
        }
        PackCmd::Build { dir, output, sign } => {
            let key = sign.as_deref().map(SecretKey::read).transpose()?;
            let bytes = build_dir(&dir, key.as_ref()).with_context(|| format!("cannot build {}", dir.display()))?;
            write_atomically(&output, &bytes)?;
            let pack = Pack::from_bytes(&bytes)?;
            let m = pack.manifest();
            let signed = match &key {
                Some(k) => format!("signed by key {}", k.public().id()),
                None => "unsigned".into(),
            };
            println!("built {} ({} {}, {} bytes, {signed})", output.display(), m.name, m.version, bytes.len());
        }
        PackCmd::Inspect { file, json, registry } => {
            if let Some(r) = reference_arg(&file) {
                return super::oci::cli::inspect(r, json, &registry);
            }
            let pack = Pack::open(&file).with_context(|| format!("{}", file.display()))?;
            if json {
                println!("{}", pack.manifest_json());
            } else {
                print!("{}", describe(&pack));
            }
        }
        PackCmd::Verify { file, trust, registry } => {
            let policy = trust.policy()?;
            if let Some(r) = reference_arg(&file) {
                return super::oci::cli::verify(r, &policy, &registry);
            }
            let pack = Pack::open(&file).with_context(|| format!("{}", file.display()))?;
            let verified = pack.verify(&policy).with_context(|| format!("{}", file.display()))?;
            let m = pack.manifest();
            println!("{}: {} {}: integrity OK; {verified}", file.display(), m.name, m.version);
            match check_wit_version(m) {
                Ok(()) => println!("this host can run it ({})", m.wit),
                Err(e) => println!("this host cannot run it: {e}"),
            }
        }
        PackCmd::Push { file, reference, registry } => super::oci::cli::push(&file, &reference, &registry)?,
        PackCmd::Pull { reference, output, trust, registry } => {
            super::oci::cli::pull(&reference, output.as_deref(), &trust.policy()?, &registry)?
        }
    }
    Ok(())
}

/// `arg` as a registry reference, if it is one (see [`super::oci::looks_like_reference`]).
fn reference_arg(arg: &Path) -> Option<&str> {
    arg.to_str().filter(|a| super::oci::looks_like_reference(a))
}

/// Writes `bytes` to `path` through a temporary file in the same directory, so a failed
/// write never leaves half a pack.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::anyhow!("cannot write {}: {e}", path.display())
    })
}
