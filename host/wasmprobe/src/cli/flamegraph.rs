//! `wasmprobe flamegraph FOLDED -o out.svg`: a flame graph of folded stacks (`stackcount
//! --arg folded=FILE`, or any `frame;frame;frame COUNT` lines as flamegraph.pl reads them),
//! drawn by inferno.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::args::FlamegraphArgs;

pub(super) fn flamegraph(a: FlamegraphArgs) -> Result<()> {
    let stacks = draw(&a.folded, &a.output, a.title.as_deref())?;
    eprintln!("wasmprobe: drew {stacks} stacks of {} to {}", a.folded.display(), a.output.display());
    Ok(())
}

/// Draws `folded` to the SVG `output` (written whole or not at all); returns how many stack
/// lines were drawn.
pub fn draw(folded: &Path, output: &Path, title: Option<&str>) -> Result<usize> {
    let text = std::fs::read_to_string(folded).with_context(|| format!("cannot read {}", folded.display()))?;
    // inferno merges equal stacks only when they are next to each other.
    let mut lines: Vec<&str> = text.lines().filter(|l| is_folded(l)).collect();
    lines.sort_unstable();
    if lines.is_empty() {
        bail!("{}: no folded stacks in it (lines of `frame;frame;... COUNT`)", folded.display());
    }
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = title.unwrap_or("Stacks").to_string();
    opts.count_name = "samples".to_string();
    let tmp = output.with_file_name(format!(
        ".{}.tmp",
        output.file_name().map_or_else(|| "flamegraph".into(), |n| n.to_string_lossy())
    ));
    let file = std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let drawn = inferno::flamegraph::from_lines(&mut opts, lines.iter().copied(), &mut w)
        .map_err(anyhow::Error::from)
        .and_then(|()| Ok(w.flush()?));
    if let Err(e) = drawn {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.context(format!("drawing {}", output.display())));
    }
    drop(w);
    std::fs::rename(&tmp, output).with_context(|| format!("cannot create {}", output.display()))?;
    Ok(lines.len())
}

/// A folded line: frames, a space, a count.
fn is_folded(line: &str) -> bool {
    line.trim_end()
        .rsplit_once(' ')
        .is_some_and(|(stack, n)| !stack.is_empty() && n.parse::<f64>().is_ok_and(|v| v >= 0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_lines() {
        assert!(is_folded("main;a;b 3"));
        assert!(is_folded("main 1\n"));
        assert!(!is_folded("# comment"));
        assert!(!is_folded(" 3"));
        assert!(!is_folded("main;a"));
    }
}
