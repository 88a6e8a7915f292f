//! The agent's configuration file (TOML): the plugins to run and how, the node's labels, the
//! metrics address and where events go. Parsed strictly (an unknown key is an error, named),
//! then checked as a whole by [`Config::validate`] before anything touches the kernel.
//!
//! ```toml
//! node = "node-a"                    # default: $NODE_NAME, else the host name
//! metrics_listen = "0.0.0.0:9464"    # /metrics, /healthz, /readyz; omitted: none
//! queue_batches = 64                 # batches queued per plugin before its events are dropped
//! [labels]                           # added to every metric and event
//! cluster = "prod"
//! [events]
//! to = "stdout"                      # or "file": path, max_bytes, keep
//! [[plugin]]
//! name = "syscount"                  # unique; the `plugin` label
//! source = "syscount"                # built-in, .wasm, .wpk or a registry reference
//! args = { top = "5" }
//! allow = "tracepoint"               # probe kinds it may use (default: all)
//! trust = ["/etc/wasmprobe/team.pub"]
//! memory_mib = 64
//! cpu_budget = "100ms"
//! setup_budget = "1s"
//! restart = "on-failure"             # or "never"
//! backoff = "1s"                     # first delay; doubled after each failure ...
//! backoff_max = "1m"                 # ... up to this
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::cli::parse_duration;
use crate::pack::TrustPolicy;
use crate::plugin::{Policy, Sandbox};

/// The whole file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The node's name (the `node` label of metrics and events).
    #[serde(default)]
    pub node: Option<String>,
    /// Labels added to every metric and every event.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served (`HOST:PORT`).
    #[serde(default)]
    pub metrics_listen: Option<String>,
    /// Batches that may wait for one plugin before its new events are dropped (and counted).
    #[serde(default = "default_queue")]
    pub queue_batches: usize,
    /// Where events go.
    #[serde(default)]
    pub events: EventsConfig,
    /// The plugins.
    #[serde(default, rename = "plugin")]
    pub plugins: Vec<PluginConfig>,
}

fn default_queue() -> usize {
    64
}

/// Where the plugins' events (records and lines) go: JSON lines on stdout, or a file rotated by size.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// `stdout` (default) or `file`.
    #[serde(default)]
    pub to: EventsTo,
    /// The file, for `to = "file"`.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Size at which the file is rotated (`FILE` → `FILE.1` → ... → `FILE.keep`).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Rotated files kept.
    #[serde(default = "default_keep")]
    pub keep: u32,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig { to: EventsTo::Stdout, path: None, max_bytes: default_max_bytes(), keep: default_keep() }
    }
}

fn default_max_bytes() -> u64 {
    64 << 20
}

fn default_keep() -> u32 {
    3
}

/// Where events go.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum EventsTo {
    /// Standard output, one JSON object a line.
    #[default]
    Stdout,
    /// A file rotated by size.
    File,
}

/// When a plugin that failed (trapped, ran over a budget, returned an error) is started again.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    /// Never: the plugin stays stopped, the others go on.
    Never,
    /// After a delay that doubles with each failure in a row, up to `backoff_max`.
    #[default]
    OnFailure,
}

/// One plugin.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Its name in metrics and events; unique in the file.
    pub name: String,
    /// A built-in name, a `.wasm` component, a `.wpk` pack or a registry reference.
    pub source: String,
    /// The `--arg K=V` pairs of its `init`.
    #[serde(default)]
    pub args: BTreeMap<String, String>,
    /// The probe kinds it may use (`--allow`), e.g. `tracepoint,uprobe`; default all.
    #[serde(default)]
    pub allow: Option<String>,
    /// Public keys whose signed packs may run (`--trust`).
    #[serde(default)]
    pub trust: Vec<PathBuf>,
    /// A directory of trusted `*.pub` keys (`--trust-dir`).
    #[serde(default)]
    pub trust_dir: Option<PathBuf>,
    /// Memory cap in MiB.
    #[serde(default = "default_memory")]
    pub memory_mib: u64,
    /// Budget of one `on-batch` call (e.g. `100ms`).
    #[serde(default)]
    pub cpu_budget: Option<String>,
    /// Budget of instantiation, `init` and `finish`.
    #[serde(default)]
    pub setup_budget: Option<String>,
    /// Restart policy.
    #[serde(default)]
    pub restart: Restart,
    /// First restart delay.
    #[serde(default)]
    pub backoff: Option<String>,
    /// Longest restart delay.
    #[serde(default)]
    pub backoff_max: Option<String>,
}

fn default_memory() -> u64 {
    64
}

/// A plugin ready to start: its config turned into what the runtime takes.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    /// Its config, as written (a reload compares these).
    pub config: PluginConfig,
    /// `init`'s arguments.
    pub args: Vec<(String, String)>,
    /// `--allow`.
    pub policy: Policy,
    /// Signers trusted.
    pub trust: TrustPolicy,
    /// Limits.
    pub sandbox: Sandbox,
    /// First restart delay.
    pub backoff: Duration,
    /// Longest restart delay.
    pub backoff_max: Duration,
}

impl Config {
    /// Reads and parses `path` (not yet validated).
    pub fn read(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| format!("config {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("config {}", path.display()))
    }

    /// Parses TOML text (not yet validated).
    pub fn parse(text: &str) -> Result<Config> {
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim().replace('\n', " ")))
    }

    /// The node's name: `node`, else `$NODE_NAME`, else the host name.
    pub fn node_name(&self) -> String {
        self.node
            .clone()
            .or_else(|| std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty()))
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_string()))
            .unwrap_or_else(|| "unknown".into())
    }

    /// Checks everything that can be checked without the kernel and returns the plugins ready
    /// to start: unique names, labels, addresses, durations, policies, trust keys, event output.
    pub fn validate(&self) -> Result<Vec<PluginSpec>> {
        for k in self.labels.keys() {
            if !is_label_name(k) || matches!(k.as_str(), "node" | "plugin") {
                bail!("labels: {k:?} is not a label name of our own (letters, digits, _; not node or plugin)");
            }
        }
        if let Some(a) = &self.metrics_listen {
            a.parse::<std::net::SocketAddr>()
                .map_err(|e| anyhow::anyhow!("metrics_listen: {a:?} is not HOST:PORT ({e})"))?;
        }
        if self.queue_batches == 0 {
            bail!("queue_batches: must be at least 1");
        }
        match (self.events.to, &self.events.path) {
            (EventsTo::File, None) => bail!("events: to = \"file\" needs a path"),
            (EventsTo::Stdout, Some(_)) => bail!("events: a path is given but to = \"stdout\""),
            _ => {}
        }
        if self.events.max_bytes < 4096 {
            bail!("events: max_bytes {} is under 4096", self.events.max_bytes);
        }
        let mut seen = std::collections::HashSet::new();
        let mut specs = Vec::new();
        for p in &self.plugins {
            if !is_label_value_name(&p.name) {
                bail!("plugin {:?}: a name is 1-63 letters, digits, '-' or '_'", p.name);
            }
            if !seen.insert(p.name.as_str()) {
                bail!("plugin {}: the name is used twice", p.name);
            }
            specs.push(p.spec().with_context(|| format!("plugin {}", p.name))?);
        }
        Ok(specs)
    }
}

impl PluginConfig {
    /// What the runtime takes.
    pub fn spec(&self) -> Result<PluginSpec> {
        let dur = |what: &str, v: &Option<String>, default: Duration| -> Result<Duration> {
            match v {
                None => Ok(default),
                Some(s) => parse_duration(s).map_err(|e| anyhow::anyhow!("{what}: {e}")),
            }
        };
        let defaults = Sandbox::default();
        let policy = match &self.allow {
            Some(a) => Policy::from_allow_list(a).map_err(|e| anyhow::anyhow!("allow: {e}"))?,
            None => Policy::default(),
        };
        if self.memory_mib == 0 || self.memory_mib > 4096 {
            bail!("memory_mib: {} is not in 1..=4096", self.memory_mib);
        }
        let trust = TrustPolicy::from_args(&self.trust, self.trust_dir.as_deref())?;
        let backoff = dur("backoff", &self.backoff, Duration::from_secs(1))?;
        let backoff_max = dur("backoff_max", &self.backoff_max, Duration::from_secs(60))?;
        if backoff.is_zero() || backoff_max < backoff {
            bail!("backoff: must be over zero and at most backoff_max");
        }
        Ok(PluginSpec {
            config: self.clone(),
            args: self.args.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            policy,
            trust,
            sandbox: Sandbox {
                memory_limit_bytes: self.memory_mib << 20,
                callback_budget: dur("cpu_budget", &self.cpu_budget, defaults.callback_budget)?,
                setup_budget: dur("setup_budget", &self.setup_budget, defaults.setup_budget)?,
                ..defaults
            },
            backoff,
            backoff_max,
        })
    }
}

/// A Prometheus label name of our own: `[a-zA-Z_][a-zA-Z0-9_]*`, not `__` reserved.
pub fn is_label_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
        && !s.starts_with("__")
}

fn is_label_value_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        let c = Config::parse(
            "node = \"n1\"\nmetrics_listen = \"127.0.0.1:9464\"\n[labels]\nzone = \"a\"\n\
             [[plugin]]\nname = \"sc\"\nsource = \"syscount\"\nargs = { top = \"3\" }\nrestart = \"never\"\n",
        )
        .unwrap();
        let specs = c.validate().unwrap();
        assert_eq!(specs.len(), 1);
        assert_eq!(specs[0].config.restart, Restart::Never);
        assert_eq!(specs[0].args, vec![("top".to_string(), "3".to_string())]);
    }

    #[test]
    fn refusals_name_the_thing() {
        let err = |t: &str| format!("{:#}", Config::parse(t).and_then(|c| c.validate().map(|_| ())).unwrap_err());
        assert!(err("bogus = 1").contains("unknown field `bogus`"), "{}", err("bogus = 1"));
        let two = "[[plugin]]\nname = \"a\"\nsource = \"syscount\"\n[[plugin]]\nname = \"a\"\nsource = \"openlat\"\n";
        assert_eq!(err(two), "plugin a: the name is used twice");
        let bad = "[[plugin]]\nname = \"a\"\nsource = \"syscount\"\ncpu_budget = \"soon\"\n";
        assert!(err(bad).starts_with("plugin a: cpu_budget: "), "{}", err(bad));
        assert!(err("metrics_listen = \"nowhere\"").starts_with("metrics_listen: \"nowhere\" is not HOST:PORT"));
        assert_eq!(err("[events]\nto = \"file\"\n"), "events: to = \"file\" needs a path");
    }
}
