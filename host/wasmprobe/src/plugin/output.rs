//! Where a plugin's output goes: what it prints, emits and logs (the `output` interface, whose
//! `Host` impl is in [`super::host`]), and its WASI stdout/stderr, all attributed to the
//! plugin, capped per call, and handed to an [`Output`] sink.

use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

use super::bindings::types as wit;

/// A value of a structured record ([`Output::record`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A signed integer.
    I64(i64),
    /// An unsigned integer.
    U64(u64),
    /// A floating-point number.
    F64(f64),
    /// A string.
    Str(String),
    /// A boolean.
    Bool(bool),
}

impl Value {
    /// The value as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::I64(v) => (*v).into(),
            Value::U64(v) => (*v).into(),
            Value::F64(v) => serde_json::Number::from_f64(*v).map(Into::into).unwrap_or(serde_json::Value::Null),
            Value::Str(s) => s.clone().into(),
            Value::Bool(b) => (*b).into(),
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::I64(v) => write!(f, "{v}"),
            Value::U64(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
            Value::Str(s) => write!(f, "{s}"),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl From<wit::Value> for Value {
    fn from(v: wit::Value) -> Self {
        match v {
            wit::Value::S64(v) => Value::I64(v),
            wit::Value::U64(v) => Value::U64(v),
            wit::Value::F64(v) => Value::F64(v),
            wit::Value::Str(s) => Value::Str(s),
            wit::Value::Boolean(b) => Value::Bool(b),
        }
    }
}

/// Severity of a plugin's log message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Something failed.
    Error,
    /// Something looks wrong.
    Warn,
    /// For information.
    Info,
    /// For whoever debugs the plugin.
    Debug,
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Level::Error => "error",
            Level::Warn => "warning",
            Level::Info => "info",
            Level::Debug => "debug",
        })
    }
}

/// Which WASI stream a guest wrote to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdio {
    /// The guest's WASI stdout.
    Stdout,
    /// The guest's WASI stderr.
    Stderr,
}

/// Where a plugin's output goes. The run gives one to each plugin at load; tests capture.
/// Calls happen on the thread that drives the plugin, while the plugin runs (so they count
/// against its CPU budget: keep them cheap).
pub trait Output: Send {
    /// A line the plugin printed (`output.print`), without its newline.
    fn line(&mut self, plugin: &str, line: &str);
    /// A structured record (`output.emit`).
    fn record(&mut self, plugin: &str, fields: &[(String, Value)]);
    /// A log message from the plugin, or the host's own note about it (e.g. output capped).
    fn log(&mut self, plugin: &str, level: Level, message: &str);
    /// A line the plugin wrote to its WASI stdout or stderr.
    fn stdio(&mut self, plugin: &str, stream: Stdio, line: &str) {
        let level = if stream == Stdio::Stderr { Level::Warn } else { Level::Info };
        self.log(plugin, level, line);
    }
    /// Whether the user asked for records (`--json`): the plugin's `output.wants-records`.
    fn wants_records(&self) -> bool {
        false
    }
}

/// The run's sink. Lines, records and the plugin's WASI stdout go to our output (stdout, or
/// the file of `-o`); logs and the plugin's WASI stderr go to stderr, prefixed with the
/// plugin's name. Without `json`: lines as printed, records as `name=value` pairs, WASI
/// stdout lines as `[NAME] LINE`. With `json`, every line of our output is one JSON object:
///
/// ```text
/// {"pid":1234,"comm":"cat","file":"/etc/hostname"}      a record (output.emit), its fields in order
/// {"plugin":"exec-open","line":"some text"}            a line (output.print)
/// {"plugin":"exec-open","stream":"stdout","line":"x"}  a line on the plugin's WASI stdout
/// ```
///
/// Write errors (a closed pipe, a full disk) are ignored: output is best effort, the run goes on.
#[derive(Default)]
pub struct StdOutput {
    json: bool,
    /// The `-o` file; `None`: stdout.
    file: Option<std::io::LineWriter<std::fs::File>>,
}

impl std::fmt::Debug for StdOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdOutput").field("json", &self.json).field("to_file", &self.file.is_some()).finish()
    }
}

impl StdOutput {
    /// Output to stdout; JSON lines when `json`.
    pub fn new(json: bool) -> Self {
        StdOutput { json, file: None }
    }

    /// Output to `file` (written line by line); JSON lines when `json`.
    pub fn to_file(json: bool, file: std::fs::File) -> Self {
        StdOutput { json, file: Some(std::io::LineWriter::new(file)) }
    }

    fn write_line(&mut self, text: &str) {
        let _ = match &mut self.file {
            Some(f) => writeln!(f, "{text}"),
            None => writeln!(std::io::stdout().lock(), "{text}"),
        };
    }
}

/// `s` as a JSON string.
fn json_str(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// A record as one JSON object: its fields in the order given; a name given twice keeps its
/// first place and its last value.
fn record_json(fields: &[(String, Value)]) -> String {
    let mut at: std::collections::HashMap<&str, usize> = std::collections::HashMap::with_capacity(fields.len());
    let mut obj: Vec<(&str, serde_json::Value)> = Vec::with_capacity(fields.len());
    for (k, v) in fields {
        match at.get(k.as_str()) {
            Some(&i) => obj[i].1 = v.to_json(),
            None => {
                at.insert(k, obj.len());
                obj.push((k, v.to_json()));
            }
        }
    }
    let mut text = String::from("{");
    for (i, (k, v)) in obj.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&json_str(k));
        text.push(':');
        text.push_str(&v.to_string());
    }
    text.push('}');
    text
}

/// `s` with its control characters (all but tab) written as Rust escapes (`\n`, `\u{1b}`).
/// What a plugin prints, trace data included (a traced process picks its file names), then
/// cannot end our line and forge one of ours (`wasmprobe: error: ...`), nor drive the
/// terminal with escape sequences (hide text, set the title, move the cursor).
pub fn terminal_safe(s: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\t';
    if !s.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

impl Output for StdOutput {
    fn line(&mut self, plugin: &str, line: &str) {
        if self.json {
            let text = format!("{{\"plugin\":{},\"line\":{}}}", json_str(plugin), json_str(line));
            self.write_line(&text);
        } else {
            self.write_line(&terminal_safe(line));
        }
    }

    fn record(&mut self, _plugin: &str, fields: &[(String, Value)]) {
        let text = if self.json {
            record_json(fields)
        } else {
            let text = fields.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
            terminal_safe(&text).into_owned()
        };
        self.write_line(&text);
    }

    fn log(&mut self, plugin: &str, level: Level, message: &str) {
        let (plugin, message) = (terminal_safe(plugin), terminal_safe(message));
        let _ = writeln!(std::io::stderr().lock(), "wasmprobe: {plugin}: {level}: {message}");
    }

    fn stdio(&mut self, plugin: &str, stream: Stdio, line: &str) {
        match (stream, self.json) {
            (Stdio::Stdout, true) => {
                let text =
                    format!("{{\"plugin\":{},\"stream\":\"stdout\",\"line\":{}}}", json_str(plugin), json_str(line));
                self.write_line(&text);
            }
            (Stdio::Stdout, false) => self.write_line(&format!("[{}] {}", terminal_safe(plugin), terminal_safe(line))),
            (Stdio::Stderr, _) => {
                let _ = writeln!(std::io::stderr().lock(), "[{}] {}", terminal_safe(plugin), terminal_safe(line));
            }
        }
    }

    fn wants_records(&self) -> bool {
        self.json
    }
}

/// Per-call output accounting: what the plugin may still write in this call.
#[derive(Debug, Default)]
pub(crate) struct OutputCap {
    pub(crate) limit: usize,
    pub(crate) used: usize,
    pub(crate) dropped: usize,
}

impl OutputCap {
    /// Takes `n` bytes from the allowance; false (and counted as dropped) when over it.
    pub(crate) fn take(&mut self, n: usize) -> bool {
        if self.used.saturating_add(n) > self.limit {
            self.dropped += n;
            false
        } else {
            self.used += n;
            true
        }
    }
}

/// Bytes a guest wrote to one WASI stream, kept until the host drains them after the call.
#[derive(Debug, Default)]
struct Captured {
    buf: Vec<u8>,
    limit: usize,
    dropped: usize,
}

/// A guest's WASI stdout or stderr: an in-memory buffer that accepts everything and keeps at
/// most `limit` bytes per call (the rest is counted as dropped, so a flood cannot trap the
/// plugin or grow the host).
#[derive(Debug, Clone)]
pub(crate) struct CapturedStream(Arc<Mutex<Captured>>);

impl CapturedStream {
    pub(crate) fn new(limit: usize) -> Self {
        CapturedStream(Arc::new(Mutex::new(Captured { limit, ..Captured::default() })))
    }

    fn write_bytes(&self, bytes: &[u8]) {
        let mut c = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let room = c.limit.saturating_sub(c.buf.len());
        let keep = bytes.len().min(room);
        c.buf.extend_from_slice(&bytes[..keep]);
        c.dropped += bytes.len() - keep;
    }

    /// Takes the complete lines written so far (all of it when `all`, or when the buffer is
    /// full: a line longer than the limit is cut there, so the next call has room again), and
    /// the count of bytes dropped over the limit; the allowance starts again.
    pub(crate) fn drain(&self, all: bool) -> (Vec<String>, usize) {
        let mut c = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let full = c.buf.len() >= c.limit;
        let end = if all || full { c.buf.len() } else { c.buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) };
        let taken: Vec<u8> = c.buf.drain(..end).collect();
        let dropped = std::mem::take(&mut c.dropped);
        let text = String::from_utf8_lossy(&taken);
        let lines = text.lines().map(str::to_string).collect();
        (lines, dropped)
    }
}

impl IsTerminal for CapturedStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CapturedStream {
    fn write(&mut self, bytes: bytes::Bytes) -> Result<(), StreamError> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedStream {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CapturedStream {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
