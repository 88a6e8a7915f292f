//! `wasmprobe`, the command users run: a small front. `wasmprobe report FILE` is printed here;
//! every other command (and `report` with anything else: `--help`, options) is handed to
//! `wasmprobe-full`, the whole command line with the plugin runtime, installed beside this
//! binary, by exec: the same process, arguments, `argv[0]`, signals and exit status.
//!
//! Why two binaries: the full one links wasmtime, Cranelift, an HTTP and OCI client and the
//! agent. Starting it relocates some 160 pages of pointers (a page fault each) and builds the
//! whole clap command tree before any work, about 0.7 ms a start here, where a report of a
//! small trace takes 1-8 ms and is measured per event against `trace-cmd report`
//! (tests/bench/report-classes.sh). This front links only the trace.dat reader and printer.

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::process::ExitCode;

/// The binary every other command runs in.
const FULL: &str = "wasmprobe-full";

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if let [_, command, file] = &args[..] {
        if command == "report" && !file.as_encoded_bytes().starts_with(b"-") {
            return match wasmprobe::report::to_stdout(std::path::Path::new(file)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("wasmprobe: error: {}", wasmprobe::error_line(&e));
                    ExitCode::FAILURE
                }
            };
        }
    }
    // Beside this binary; where that is unknown (no /proc), as the shell would find it.
    let full = std::env::current_exe().map_or_else(|_| FULL.into(), |exe| exe.with_file_name(FULL));
    let mut cmd = std::process::Command::new(&full);
    cmd.args(args.iter().skip(1));
    if let Some(arg0) = args.first() {
        cmd.arg0(arg0);
    }
    // Returns only on failure.
    let e = cmd.exec();
    eprintln!("wasmprobe: error: cannot run {} (installed beside wasmprobe): {e}", full.display());
    ExitCode::FAILURE
}
