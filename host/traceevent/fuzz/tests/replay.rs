//! Every saved input of every fuzz target, fed to the target's entry point on stable Rust:
//! `regressions/TARGET/` (committed: inputs that once broke a parser, and the seeds below),
//! `corpus/TARGET/` (what `seed.sh` and `cargo fuzz` collected here, if anything) and
//! `artifacts/TARGET/` (inputs `cargo fuzz` saved when a target failed). A panic names the file.
//!
//! Run: `cargo test --manifest-path host/traceevent/fuzz/Cargo.toml --no-default-features`.

use std::path::{Path, PathBuf};

/// The saved inputs of `target`, sorted.
fn inputs(target: &str) -> Vec<PathBuf> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = ["regressions", "corpus", "artifacts"]
        .iter()
        .filter_map(|dir| std::fs::read_dir(here.join(dir).join(target)).ok())
        .flat_map(|d| d.flatten().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_saved_input_runs_through_its_target() {
    let mut counts = Vec::new();
    for (target, run) in traceevent_fuzz::TARGETS {
        let files = inputs(target);
        for file in &files {
            let data = std::fs::read(file).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(
                outcome.is_ok(),
                "{target}: {} panicked (replay it with `cargo fuzz run {target} FILE`)",
                file.display()
            );
        }
        counts.push(format!("{target}: {}", files.len()));
    }
    eprintln!("replayed {}", counts.join(", "));
}

#[test]
fn the_committed_seeds_are_there() {
    for (target, _) in traceevent_fuzz::TARGETS {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions").join(target);
        let n = std::fs::read_dir(&dir).map_or(0, |d| d.count());
        assert!(n > 0, "no committed input in {}", dir.display());
    }
}
