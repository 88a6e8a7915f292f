//! The `output` interface: what a plugin prints, emits and logs, and its WASI stdout/stderr,
//! all attributed to the plugin, capped per call, and handed to an [`Output`] sink.

use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

use super::bindings::types as wit;
use super::bindings::wasmprobe::plugin::output;
use super::runtime::State;

/// A value of a structured record ([`Output::record`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    I64(i64),
    U64(u64),
    F64(f64),
    Str(String),
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
    Error,
    Warn,
    Info,
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
    Stdout,
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
}

/// The terminal sink: lines and records to stdout (records as JSON objects with `json`, else
/// `name=value` pairs), logs and WASI stdio to stderr prefixed with the plugin's name.
/// Write errors (a closed pipe) are ignored: output is best effort, the run goes on.
#[derive(Debug, Default, Clone)]
pub struct StdOutput {
    /// Print records as one JSON object per line.
    pub json: bool,
}

impl Output for StdOutput {
    fn line(&mut self, _plugin: &str, line: &str) {
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }

    fn record(&mut self, _plugin: &str, fields: &[(String, Value)]) {
        let text = if self.json {
            let obj: serde_json::Map<String, serde_json::Value> =
                fields.iter().map(|(k, v)| (k.clone(), v.to_json())).collect();
            serde_json::Value::Object(obj).to_string()
        } else {
            fields.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
        };
        let _ = writeln!(std::io::stdout().lock(), "{text}");
    }

    fn log(&mut self, plugin: &str, level: Level, message: &str) {
        let _ = writeln!(std::io::stderr().lock(), "wasmprobe: {plugin}: {level}: {message}");
    }

    fn stdio(&mut self, plugin: &str, stream: Stdio, line: &str) {
        let _ = match stream {
            Stdio::Stdout => writeln!(std::io::stdout().lock(), "[{plugin}] {line}"),
            Stdio::Stderr => writeln!(std::io::stderr().lock(), "[{plugin}] {line}"),
        };
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

impl output::Host for State {
    fn print(&mut self, line: String) {
        if self.cap.take(line.len() + 1) {
            self.sink.line(&self.name, &line);
        }
    }

    fn emit(&mut self, fields: Vec<(String, wit::Value)>) {
        let size = fields.iter().map(|(k, v)| k.len() + 8 + if let wit::Value::Str(s) = v { s.len() } else { 0 }).sum();
        if self.cap.take(size) {
            let fields: Vec<(String, Value)> = fields.into_iter().map(|(k, v)| (k, v.into())).collect();
            self.sink.record(&self.name, &fields);
        }
    }

    fn log(&mut self, level: wit::Level, message: String) {
        if self.cap.take(message.len() + 1) {
            let level = match level {
                wit::Level::Error => Level::Error,
                wit::Level::Warn => Level::Warn,
                wit::Level::Info => Level::Info,
                wit::Level::Debug => Level::Debug,
            };
            self.sink.log(&self.name, level, &message);
        }
    }
}

impl wit::Host for State {}

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

    /// Takes the complete lines written so far (all of it when `all`), and the count of
    /// bytes dropped over the limit; the allowance starts again.
    pub(crate) fn drain(&self, all: bool) -> (Vec<String>, usize) {
        let mut c = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let end = if all { c.buf.len() } else { c.buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) };
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
