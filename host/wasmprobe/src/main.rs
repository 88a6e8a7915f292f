use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = wasmprobe::cli::Cli::parse();
    match wasmprobe::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wasmprobe: error: {}", wasmprobe::error_line(&e));
            ExitCode::FAILURE
        }
    }
}
