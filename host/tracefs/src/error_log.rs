//! The kernel's `error_log`: why the last probe or filter command was rejected.
//!
//! Each entry is three lines (kernel `tracing_err_log_seq_show`):
//!
//! ```text
//! [   23.639624] trace_kprobe: error: Invalid register name
//!   Command: p:my_kprobes/bad1 do_sys_openat2 x=%zz
//!                                               ^
//! ```
//!
//! The caret sits under the offending byte: its column minus the width of `  Command: ` is the
//! byte position in the command. The kernel keeps the newest 8 entries per instance.

use std::io::ErrorKind;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::instance::Instance;

const COMMAND_PREFIX: &str = "  Command: ";

/// One parsed `error_log` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorLogEntry {
    /// Seconds since boot, as the kernel printed it (`23.639624`).
    pub time: String,
    /// Which part of the kernel complained (`trace_kprobe`, `trace_uprobe`, `event_probe`, ...).
    pub subsystem: String,
    /// The kernel's message (`Invalid register name`).
    pub message: String,
    /// The command as the kernel saw it (whitespace-normalised).
    pub command: String,
    /// Byte offset in `command` the caret points at.
    pub position: usize,
}

impl ErrorLogEntry {
    /// The entry back in the kernel's three-line form (allocates).
    pub fn to_kernel_text(&self) -> String {
        format!(
            "[{:>12}] {}: error: {}\n{}{}\n{}^\n",
            self.time,
            self.subsystem,
            self.message,
            COMMAND_PREFIX,
            self.command,
            " ".repeat(COMMAND_PREFIX.len() + self.position)
        )
    }
}

/// Parses the whole text of an `error_log` file into its entries, oldest first. Lines that do
/// not fit the format are skipped rather than failing: the log is diagnostics, not data.
pub fn parse_error_log(text: &str) -> Vec<ErrorLogEntry> {
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(entry) = parse_header(line) else { continue };
        let mut entry = entry;
        if let Some(cmd) = lines.peek().and_then(|l| l.strip_prefix(COMMAND_PREFIX)) {
            entry.command = cmd.to_string();
            lines.next();
            if let Some(caret) = lines.peek().filter(|l| l.trim() == "^") {
                entry.position = caret.find('^').unwrap_or(0).saturating_sub(COMMAND_PREFIX.len());
                lines.next();
            }
        }
        out.push(entry);
    }
    out
}

fn parse_header(line: &str) -> Option<ErrorLogEntry> {
    let rest = line.strip_prefix('[')?;
    let (time, rest) = rest.split_once("] ")?;
    let (subsystem, message) = rest.split_once(": error: ")?;
    Some(ErrorLogEntry {
        time: time.trim().to_string(),
        subsystem: subsystem.to_string(),
        message: message.to_string(),
        command: String::new(),
        position: 0,
    })
}

/// Collapses runs of whitespace the way the kernel does when it logs a command.
pub(crate) fn normalize_command(cmd: &str) -> String {
    cmd.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Instance {
    /// `tracefs_error_all`: the raw text of this instance's `error_log` (one read; `None` when
    /// empty or when the kernel has no `error_log`).
    pub fn error_all(&self) -> Result<Option<String>> {
        let path = self.file("error_log");
        match crate::dir::read_text(&path) {
            Ok(s) if s.trim().is_empty() => Ok(None),
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading the error log", &path, &e)),
        }
    }

    /// `tracefs_error_last`: the newest entry of this instance's `error_log`, parsed.
    pub fn error_last(&self) -> Result<Option<ErrorLogEntry>> {
        Ok(self.error_all()?.and_then(|t| parse_error_log(&t).pop()))
    }

    /// `tracefs_error_clear`: empties this instance's `error_log` (open with `O_TRUNC`).
    pub fn error_clear(&self) -> Result<()> {
        let path = self.file("error_log");
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .map(drop)
            .map_err(|e| Error::io("clearing the error log", &path, &e))
    }

    /// The newest `error_log` entry if it is about `command` (so a stale entry left by somebody
    /// else is never blamed on us).
    pub(crate) fn error_for(&self, command: &str) -> Option<ErrorLogEntry> {
        let want = normalize_command(command);
        let entry = self.error_last().ok().flatten()?;
        (normalize_command(&entry.command) == want).then_some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured on Debian's 6.12 kernel under QEMU (see the fixture's first line).
    const LOG: &str = include_str!("../fixtures/error_log-6.12.txt");

    #[test]
    fn parses_real_entries() {
        let e = parse_error_log(LOG);
        assert_eq!(e.len(), 4);
        assert_eq!(e[1].time, "10.228968");
        assert_eq!(e[1].subsystem, "trace_kprobe");
        assert_eq!(e[1].message, "Invalid register name");
        assert_eq!(e[1].command, "p:my_kprobes/bad1 do_sys_openat2 x=%zz");
        assert_eq!(&e[1].command[e[1].position..], "%zz");
        assert_eq!(e[2].position, e[2].command.len());
        assert_eq!(&e[3].command[e[3].position..], "u33");
        assert_eq!(e[3].message, "Unknown type is specified");
    }

    #[test]
    fn round_trips_to_kernel_text() {
        let text: String = parse_error_log(LOG).iter().map(|e| e.to_kernel_text()).collect();
        let body = LOG.split_once('\n').unwrap().1;
        assert_eq!(text, body);
    }

    #[test]
    fn tolerates_garbage_and_partial_entries() {
        let e = parse_error_log("junk\n[ 1.0] trace_uprobe: error: Bad\n\nmore junk\n");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].message, "Bad");
        assert_eq!(e[0].command, "");
        assert!(parse_error_log("").is_empty());
    }
}
