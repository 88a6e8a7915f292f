//! Golden fixtures (`tests/data/golden`, made by its `capture.sh` on Linux 6.18 with
//! trace-cmd 3.1.6): records captured from the kernel, each with the text the kernel's `trace`
//! file printed for it (`kernel.txt`) or that `trace-cmd report` printed (`trace-cmd.txt`),
//! and the format files of their events. Each payload, printed by this crate in the matching
//! dialect from those format files alone, must give that text exactly.

use std::path::Path;

use traceevent::{Dialect, Endian, EventFormats, PageHeader};

fn golden() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/golden"))
}

/// Every format under `formats/SYSTEM/EVENT`, printing in `dialect` (x86_64: little-endian,
/// 8-byte longs, 4 KiB pages).
fn formats(dialect: Dialect) -> EventFormats {
    let mut formats = EventFormats::new(PageHeader::standard(8, Endian::Little, 4096).unwrap());
    formats.set_dialect(dialect);
    for system in std::fs::read_dir(golden().join("formats")).unwrap().flatten() {
        let name = system.file_name().to_string_lossy().into_owned();
        for event in std::fs::read_dir(system.path()).unwrap().flatten() {
            let text = std::fs::read_to_string(event.path()).unwrap();
            formats.add_format(&name, &text).unwrap_or_else(|e| panic!("{}: {e}", event.path().display()));
        }
    }
    formats
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('t') => out.push('\t'),
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            },
            (c, false) => out.push(c),
        }
    }
    out
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Prints every record of fixture `file` in `dialect`; returns how many there were and the
/// ones that differ, as `line N system/event: got ... want ...`.
fn check(file: &str, dialect: Dialect) -> (usize, Vec<String>) {
    let formats = formats(dialect);
    let text = std::fs::read_to_string(golden().join(file)).unwrap();
    let mut differ = Vec::new();
    let mut n = 0;
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.starts_with('#')) {
        let mut parts = line.splitn(3, '\t');
        let (event, payload, want) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap_or(""));
        let payload = hex(payload);
        let (system, name) = event.split_once('/').unwrap();
        let f = formats.for_record(&payload).unwrap_or_else(|| panic!("{file}:{}: no format for {event}", i + 1));
        assert_eq!((f.system.as_str(), f.name.as_str()), (system, name), "{file}:{}", i + 1);
        let mut got = String::new();
        formats.print_info(&payload, &mut got);
        if dialect == Dialect::LibTraceEvent && got.ends_with('\n') {
            // trace-cmd drops one trailing newline of a line.
            got.pop();
        }
        let want = unescape(want);
        if got != want {
            differ.push(format!("line {} {event}:\n  got  {got:?}\n  want {want:?}", i + 1));
        }
        n += 1;
    }
    (n, differ)
}

#[test]
fn kernel_dialect_prints_what_the_kernel_printed() {
    let (n, differ) = check("kernel.txt", Dialect::Kernel);
    assert!(n >= 100, "only {n} records in kernel.txt");
    assert!(differ.is_empty(), "{} of {n} records differ:\n{}", differ.len(), differ.join("\n"));
}

#[test]
fn libtraceevent_dialect_prints_what_trace_cmd_printed() {
    let (n, differ) = check("trace-cmd.txt", Dialect::LibTraceEvent);
    assert!(n >= 100, "only {n} records in trace-cmd.txt");
    assert!(differ.is_empty(), "{} of {n} records differ:\n{}", differ.len(), differ.join("\n"));
}
