use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = wasmprobe::cli::Cli::parse();
    match wasmprobe::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            // One line: the chain of causes, outermost first (a cause's own line breaks joined).
            let text = format!("{e:#}");
            let line: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            eprintln!("wasmprobe: error: {}", line.join("; "));
            ExitCode::FAILURE
        }
    }
}
