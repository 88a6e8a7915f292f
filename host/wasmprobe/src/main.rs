use clap::Parser;

fn main() {
    let cli = wasmprobe::cli::Cli::parse();
    if let Err(e) = wasmprobe::cli::run(cli) {
        // One line: the chain of causes, outermost first.
        eprintln!("wasmprobe: error: {e:#}");
        std::process::exit(1);
    }
}
