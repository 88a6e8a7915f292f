//! Where the agent's plugins' output goes: JSON lines, one object a line, each tagged with
//! the node, the plugin and its version, on stdout or in a file rotated by size
//! (`FILE` → `FILE.1` → ... → `FILE.KEEP`). Logs stay on stderr, as text.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::plugin::{Level, Output, Stdio, Value};

use super::config::{EventsConfig, EventsTo};

/// The destination of every plugin's lines.
pub struct EventWriter {
    file: Option<(PathBuf, File, u64)>,
    max_bytes: u64,
    keep: u32,
}

impl EventWriter {
    /// Opens the destination `cfg` names (a file is appended to).
    pub fn open(cfg: &EventsConfig) -> anyhow::Result<EventWriter> {
        let file = match (cfg.to, &cfg.path) {
            (EventsTo::File, Some(p)) => {
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| anyhow::anyhow!("events: cannot open {}: {e}", p.display()))?;
                let len = f.metadata()?.len();
                Some((p.clone(), f, len))
            }
            _ => None,
        };
        Ok(EventWriter { file, max_bytes: cfg.max_bytes, keep: cfg.keep })
    }

    /// Writes one line (a newline is added); rotates first when the file would pass its size.
    pub fn line(&mut self, text: &str) {
        let Some((path, f, len)) = &mut self.file else {
            let _ = writeln!(std::io::stdout().lock(), "{text}");
            return;
        };
        if *len > 0 && *len + text.len() as u64 + 1 > self.max_bytes {
            let name = |i: u32| PathBuf::from(format!("{}.{i}", path.display()));
            let _ = std::fs::remove_file(name(self.keep));
            for i in (1..self.keep).rev() {
                let _ = std::fs::rename(name(i), name(i + 1));
            }
            if self.keep > 0 {
                let _ = std::fs::rename(&*path, name(1));
            } else {
                let _ = std::fs::remove_file(&*path);
            }
            if let Ok(nf) = OpenOptions::new().create(true).append(true).open(&*path) {
                *f = nf;
                *len = 0;
            }
        }
        if writeln!(f, "{text}").is_ok() {
            *len += text.len() as u64 + 1;
        }
    }
}

/// One plugin's [`Output`] in the agent: records and lines as tagged JSON objects.
pub struct AgentOutput {
    /// `"node":..,"plugin":..,"version":..` (and the config's labels), ready to prefix.
    tag: String,
    writer: Arc<Mutex<EventWriter>>,
}

impl AgentOutput {
    /// Output of plugin `plugin` (version `version`) on node `node`.
    pub fn new(writer: Arc<Mutex<EventWriter>>, node: &str, plugin: &str, version: &str) -> AgentOutput {
        let s = |v: &str| serde_json::Value::from(v).to_string();
        let tag = format!("\"node\":{},\"plugin\":{},\"version\":{}", s(node), s(plugin), s(version));
        AgentOutput { tag, writer }
    }

    fn write(&self, rest: &[(String, serde_json::Value)]) {
        let mut text = format!("{{{}", self.tag);
        for (k, v) in rest {
            if matches!(k.as_str(), "node" | "plugin" | "version") {
                continue; // ours, not the plugin's to forge
            }
            text.push(',');
            text.push_str(&serde_json::Value::from(k.as_str()).to_string());
            text.push(':');
            text.push_str(&v.to_string());
        }
        text.push('}');
        self.writer.lock().unwrap().line(&text);
    }
}

impl Output for AgentOutput {
    fn line(&mut self, _plugin: &str, line: &str) {
        self.write(&[("line".into(), line.into())]);
    }

    fn record(&mut self, _plugin: &str, fields: &[(String, Value)]) {
        // A name given twice keeps its last value, in its first place.
        let mut out: Vec<(String, serde_json::Value)> = Vec::with_capacity(fields.len());
        for (k, v) in fields {
            match out.iter_mut().find(|(n, _)| n == k) {
                Some(slot) => slot.1 = v.to_json(),
                None => out.push((k.clone(), v.to_json())),
            }
        }
        self.write(&out);
    }

    fn log(&mut self, plugin: &str, level: Level, message: &str) {
        let level = format!("{level:?}").to_lowercase();
        eprintln!("wasmprobe: {plugin}: {level}: {}", crate::plugin::output::terminal_safe(message));
    }

    fn stdio(&mut self, plugin: &str, stream: Stdio, line: &str) {
        // The plugin's stderr is a log (a panic message), as with `run`; its stdout is output.
        match stream {
            Stdio::Stderr => self.log(plugin, Level::Warn, line),
            Stdio::Stdout => self.write(&[("stream".into(), "stdout".into()), ("line".into(), line.into())]),
        }
    }

    fn wants_records(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_tagged_and_files_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ev.jsonl");
        let cfg = EventsConfig { to: EventsTo::File, path: Some(path.clone()), max_bytes: 4096, keep: 2 };
        let w = Arc::new(Mutex::new(EventWriter::open(&cfg).unwrap()));
        let mut out = AgentOutput::new(w, "n1", "sc", "0.1.0");
        out.record("sc", &[("count".into(), Value::U64(3)), ("plugin".into(), Value::Str("forged".into()))]);
        let first = std::fs::read_to_string(&path).unwrap();
        assert_eq!(first, "{\"node\":\"n1\",\"plugin\":\"sc\",\"version\":\"0.1.0\",\"count\":3}\n");
        for i in 0..200 {
            out.line("sc", &format!("line {i}"));
        }
        assert!(std::fs::metadata(&path).unwrap().len() <= 4096);
        assert!(dir.path().join("ev.jsonl.1").exists());
        assert!(dir.path().join("ev.jsonl.2").exists());
        assert!(!dir.path().join("ev.jsonl.3").exists());
        let last = std::fs::read_to_string(&path).unwrap();
        assert!(last.ends_with("\"line\":\"line 199\"}\n"), "{last}");
    }
}
