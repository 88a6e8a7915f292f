//! `record`, `stream` and `report`: traces, live or from a file.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use super::args::{RecordArgs, StreamArgs};
use super::plugin::{plugin_options, trace_options};

pub(super) fn record(r: RecordArgs) -> Result<ExitCode> {
    let plugin = match r.plugin {
        Some(p) => Some(plugin_options(p, r.plugin_args, r.plugin_output)?),
        None => None,
    };
    let to = crate::record::RecordTo { path: r.output.clone(), version: r.file_version, events: r.events };
    let out = crate::run::record(plugin.as_ref(), &trace_options(r.trace), &to)?;
    eprintln!("wasmprobe: recorded {} events to {} ({} lost)", out.events, r.output.display(), out.lost);
    Ok(super::exit_code(out.exit_code))
}

pub(super) fn stream(s: StreamArgs) -> Result<ExitCode> {
    let stdout = std::io::stdout();
    let out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let stats = crate::stream::stream(&s.events, &trace_options(s.trace), out)?;
    eprintln!("wasmprobe: {} events, {} lost", stats.events, stats.lost);
    Ok(super::exit_code(stats.exit_code))
}

pub(super) fn report(file: &Path) -> Result<ExitCode> {
    crate::report::to_stdout(file).map(|()| ExitCode::SUCCESS)
}

pub(super) fn convert(file: &Path, output: &Path) -> Result<ExitCode> {
    let c = crate::perfetto::convert(file, output)?;
    if c.buffers_left_out > 0 {
        eprintln!(
            "wasmprobe: {} holds {} more buffer(s) (instances): only the first was converted",
            file.display(),
            c.buffers_left_out
        );
    }
    let w = c.written;
    eprintln!("wasmprobe: wrote {} events and {} thread names to {}", w.events, w.threads, output.display());
    if w.unknown > 0 {
        eprintln!("wasmprobe: {} events of ids with no format in {} were left out", w.unknown, file.display());
    }
    Ok(ExitCode::SUCCESS)
}
