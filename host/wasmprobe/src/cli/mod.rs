//! The command line: flags in [`args`], one module per family of commands. [`run`] returns
//! the process's exit code (a traced command's own, when it failed), so `main` can return it
//! after every destructor has run.

mod agent;
pub mod args;
pub mod flamegraph;
mod new;
mod plugin;
mod probes;
mod trace;

use std::process::ExitCode;

use anyhow::Result;

pub use args::{parse_duration, Cli, Command};

/// Runs a parsed command line; the error, if any, is for the user.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run(a) => plugin::run(a),
        Command::Inspect(a) => plugin::inspect(a).map(|()| ExitCode::SUCCESS),
        Command::New(a) => new::new(a).map(|()| ExitCode::SUCCESS),
        Command::Record(a) => trace::record(a),
        Command::Stream(a) => trace::stream(a),
        Command::Flamegraph(a) => flamegraph::flamegraph(a).map(|()| ExitCode::SUCCESS),
        Command::Agent(a) => agent::agent(a).map(|()| ExitCode::SUCCESS),
        Command::Report { file } => trace::report(&file),
        Command::Convert { file, output } => trace::convert(&file, &output),
        Command::Pack(cmd) => crate::pack::cli::run(cmd).map(|()| ExitCode::SUCCESS),
        Command::Kprobe(cmd) => probes::kprobe(cmd).map(|()| ExitCode::SUCCESS),
        Command::Uprobe(cmd) => probes::uprobe(cmd).map(|()| ExitCode::SUCCESS),
        Command::Probes { json } => probes::probes(json).map(|()| ExitCode::SUCCESS),
        Command::Cleanup { all } => probes::cleanup(all).map(|()| ExitCode::SUCCESS),
    }
}

/// The exit code of a run that followed a command: the command's own when it failed.
fn exit_code(command: Option<i32>) -> ExitCode {
    match command {
        Some(c) if c != 0 => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        _ => ExitCode::SUCCESS,
    }
}
