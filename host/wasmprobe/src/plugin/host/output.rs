//! `wasmprobe:plugin/output` (and `types`): what a plugin prints, emits and logs, capped per
//! call and handed to the run's [`Output`](crate::plugin::Output) sink.

use crate::plugin::bindings::types as wit;
use crate::plugin::bindings::wasmprobe::plugin::output;
use crate::plugin::output::{Level, Value};
use crate::plugin::runtime::State;

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

    fn wants_records(&mut self) -> bool {
        self.sink.wants_records()
    }
}

impl wit::Host for State {}
