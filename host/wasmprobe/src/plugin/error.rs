//! Why a plugin could not be loaded or was stopped. Every message names the plugin.

use std::fmt;
use std::time::Duration;

/// Which call into the plugin failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// Creating the instance (its start functions run).
    Instantiate,
    /// The `init` export: the plan.
    Init,
    /// The `on-batch` export: a batch of events.
    OnBatch,
    /// The `finish` export, at the end of the run.
    Finish,
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Call::Instantiate => "instantiation",
            Call::Init => "init",
            Call::OnBatch => "on-batch",
            Call::Finish => "finish",
        })
    }
}

/// A plugin error. Only [`Error::CpuBudget`], [`Error::MemoryLimit`], [`Error::Stopped`] and
/// [`Error::Trap`] poison the
/// plugin: its instance may be in any state, so every later call returns the same error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The component could not be read, compiled or linked.
    #[error("plugin {plugin}: cannot load: {message}")]
    Load {
        /// The plugin, by name.
        plugin: String,
        /// What happened, in the words of whoever said it.
        message: String,
    },
    /// A call ran past its CPU budget and was interrupted.
    #[error("plugin {plugin}: exceeded its CPU budget of {} in {call}", fmt_duration(*budget))]
    CpuBudget {
        /// The plugin, by name.
        plugin: String,
        /// The call that failed.
        call: Call,
        /// The budget it ran past.
        budget: Duration,
    },
    /// The plugin tried to grow its memory past the limit.
    #[error("plugin {plugin}: exceeded its memory limit of {} in {call}", fmt_bytes(*limit))]
    MemoryLimit {
        /// The plugin, by name.
        plugin: String,
        /// The call that failed.
        call: Call,
        /// The limit, in bytes.
        limit: u64,
    },
    /// The run was asked to stop (SIGINT/SIGTERM) and the call did not return within `grace`.
    #[error("plugin {plugin}: interrupted in {call}: the run was asked to stop and it did not return within {}", fmt_duration(*grace))]
    Stopped {
        /// The plugin, by name.
        plugin: String,
        /// The call that failed.
        call: Call,
        /// How long the call was given after the stop request.
        grace: Duration,
    },
    /// The plugin trapped (a panic, unreachable, out-of-bounds access, stack overflow, ...).
    #[error("plugin {plugin}: trapped in {call}: {}", plugin_text(message))]
    Trap {
        /// The plugin, by name.
        plugin: String,
        /// The call that failed.
        call: Call,
        /// The trap and where in the guest it happened.
        message: String,
    },
    /// The plugin returned an error of its own (e.g. bad `--arg`s in init).
    #[error("plugin {plugin}: {call} failed: {}", plugin_text(message))]
    Failed {
        /// The plugin, by name.
        plugin: String,
        /// The call that failed.
        call: Call,
        /// The error string the plugin returned.
        message: String,
    },
    /// A probe's declaration does not fit the event the kernel made of it (e.g. it asks for
    /// a field the event lacks).
    #[error("plugin {plugin}: probe {probe:?}: {message}")]
    Probe {
        /// The plugin, by name.
        plugin: String,
        /// The probe, by the plugin's name for it.
        probe: String,
        /// What does not fit.
        message: String,
    },
    /// The host called the plugin out of order (e.g. on_batch before init).
    #[error("plugin {plugin}: {message}")]
    Usage {
        /// The plugin, by name.
        plugin: String,
        /// What was out of order.
        message: String,
    },
}

impl Error {
    /// Whether the plugin is unusable after this error.
    pub fn poisons(&self) -> bool {
        matches!(self, Error::CpuBudget { .. } | Error::MemoryLimit { .. } | Error::Trap { .. } | Error::Stopped { .. })
    }
}

/// Most bytes of a plugin's own message (its error, its panic) an error shows.
pub const MAX_PLUGIN_MESSAGE: usize = 1024;

/// A message the plugin wrote, as our one-line error shows it: control characters escaped
/// (a newline would start a forged `wasmprobe: error:` line, an escape sequence drive the
/// terminal), and cut after [`MAX_PLUGIN_MESSAGE`] bytes (a plugin may return megabytes).
fn plugin_text(message: &str) -> String {
    let safe = super::output::terminal_safe(message);
    if safe.len() <= MAX_PLUGIN_MESSAGE {
        return safe.into_owned();
    }
    let mut end = MAX_PLUGIN_MESSAGE;
    while !safe.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes in all)", &safe[..end], message.len())
}

fn fmt_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{d:?}")
    }
}

/// Joins the parts of a message into one line: each part's lines joined by "; ", runs of
/// whitespace (wasmparser's byte arrays print one element per line) collapsed, parts joined
/// by ": ".
pub(crate) fn one_line<S: AsRef<str>>(parts: &[S]) -> String {
    let mut out = String::new();
    for part in parts {
        let part = part.as_ref().trim();
        if part.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        let mut pending_space = false;
        for (i, line) in part.lines().map(str::trim).filter(|l| !l.is_empty()).enumerate() {
            if i > 0 {
                // A line that continues a list or a bracket joins with a space, others with "; ".
                let joins_list = out.ends_with([',', '[', '(', '{']) || line.starts_with([']', ')', '}']);
                out.push_str(if joins_list { " " } else { "; " });
            }
            for w in line.split_whitespace() {
                if pending_space {
                    out.push(' ');
                }
                out.push_str(w);
                pending_space = true;
            }
            pending_space = false;
        }
    }
    out
}

pub(crate) fn fmt_bytes(n: u64) -> String {
    if n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_plugin_and_the_reason() {
        let e =
            Error::CpuBudget { plugin: "exec-open".into(), call: Call::OnBatch, budget: Duration::from_millis(100) };
        assert_eq!(e.to_string(), "plugin exec-open: exceeded its CPU budget of 100ms in on-batch");
        let e = Error::MemoryLimit { plugin: "x".into(), call: Call::Init, limit: 64 << 20 };
        assert_eq!(e.to_string(), "plugin x: exceeded its memory limit of 64 MiB in init");
        assert!(e.poisons());
    }

    #[test]
    fn a_plugins_own_message_is_one_safe_line() {
        let e = Error::Failed {
            plugin: "p".into(),
            call: Call::Init,
            message: "bad\nwasmprobe: error: forged\u{1b}[8m".into(),
        };
        assert_eq!(e.to_string(), "plugin p: init failed: bad\\nwasmprobe: error: forged\\u{1b}[8m");
        let e = Error::Trap { plugin: "p".into(), call: Call::OnBatch, message: "é".repeat(2000) };
        let shown = e.to_string();
        assert!(shown.ends_with(&format!("{}... (4000 bytes in all)", "é".repeat(512))), "{shown}");
    }

    #[test]
    fn one_line_joins_multi_line_messages() {
        assert_eq!(one_line(&["failed to parse", "bytes [\n  0,\n  97,\n]\n"]), "failed to parse: bytes [ 0, 97, ]");
        assert_eq!(one_line(&["a\nb", "", "c"]), "a; b: c");
    }
}
