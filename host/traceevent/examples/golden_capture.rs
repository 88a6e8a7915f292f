//! Makes the golden fixtures of `tests/golden.rs` from a real kernel and a real trace-cmd
//! (run by `tests/data/golden/capture.sh`, which says how; needs root and tracefs):
//!
//! ```text
//! golden_capture kernel OUT_DIR            # the kernel's `trace` text of an instance of ours
//! golden_capture trace-cmd DAT REPORT OUT_DIR  # `trace-cmd report` text of a trace.dat
//! ```
//!
//! `kernel`: in an instance `wasmprobe-<pid>-golden`, sched, irq, timer, workqueue, kmem,
//! signal and task events and a few syscall events are traced while a shell workload runs;
//! the instance's `trace` file (the kernel's own text) is read, then each CPU's
//! `trace_pipe_raw`, and the records are paired with the lines in order. `trace-cmd`: the
//! records of a trace.dat are paired with the lines of its `trace-cmd report`. Either way a
//! few records of each event are kept, those whose text does not need kallsyms or
//! printk_formats (the fixtures carry neither) and that this crate prints as the reference
//! does: a regression fixture, each line `system/event TAB payload-hex TAB expected text`
//! (text escaped: `\\`, `\t`, `\n`), and the format files they need under `formats/`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use traceevent::{
    Dialect, Endian, EventFormat, EventFormats, EventHeader, LineFormatter, PageHeader, SubBuffer, TimeFormat, TraceDat,
};

/// How many records of each event a fixture keeps.
const PER_EVENT: usize = 4;

/// What the kernel capture enables in its instance.
const EVENTS: [&str; 15] = [
    "sched",
    "irq",
    "timer",
    "workqueue",
    "signal",
    "task",
    "kmem/kmalloc",
    "kmem/kfree",
    "syscalls/sys_enter_openat",
    "syscalls/sys_exit_openat",
    "syscalls/sys_enter_read",
    "syscalls/sys_exit_read",
    "syscalls/sys_enter_close",
    "syscalls/sys_exit_close",
    "syscalls/sys_enter_getppid",
];

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["kernel", out] => kernel(Path::new(out)),
        ["trace-cmd", dat, report, out] => trace_cmd(Path::new(dat), Path::new(report), Path::new(out)),
        _ => Err("usage: golden_capture kernel OUT_DIR | golden_capture trace-cmd DAT REPORT OUT_DIR".into()),
    }
}

/// One record kept for a fixture.
struct Kept {
    system: String,
    name: String,
    payload: Vec<u8>,
    text: String,
}

/// Keeps at most [`PER_EVENT`] records per event.
#[derive(Default)]
struct Fixture {
    kept: Vec<Kept>,
    per_event: BTreeMap<(String, String), usize>,
    /// Records whose reference text needs symbols or that we print differently, by event.
    left_out: BTreeMap<String, usize>,
}

impl Fixture {
    fn offer(&mut self, f: &EventFormat, payload: &[u8], reference: &str, ours_without_symbols: &str) {
        if reference != ours_without_symbols {
            *self.left_out.entry(format!("{}/{}", f.system, f.name)).or_default() += 1;
            return;
        }
        let n = self.per_event.entry((f.system.clone(), f.name.clone())).or_default();
        if *n < PER_EVENT {
            *n += 1;
            self.kept.push(Kept {
                system: f.system.clone(),
                name: f.name.clone(),
                payload: payload.to_vec(),
                text: reference.to_string(),
            });
        }
    }

    /// Writes `FILE` and the formats it needs under `formats/`.
    fn write(
        &self,
        out: &Path,
        file: &str,
        header: &str,
        formats: &EventFormats,
        raw: &BTreeMap<(String, String), String>,
    ) -> Result<(), Error> {
        let mut text = String::from(header);
        for k in &self.kept {
            let hex: String = k.payload.iter().map(|b| format!("{b:02x}")).collect();
            text.push_str(&format!("{}/{}\t{hex}\t{}\n", k.system, k.name, escape(&k.text)));
        }
        fs::write(out.join(file), text)?;
        let needed: BTreeSet<(String, String)> = self.kept.iter().map(|k| (k.system.clone(), k.name.clone())).collect();
        for (system, name) in &needed {
            let dir = out.join("formats").join(system);
            fs::create_dir_all(&dir)?;
            let body = raw.get(&(system.clone(), name.clone())).ok_or("no format text")?;
            fs::write(dir.join(name), body)?;
        }
        eprintln!("{file}: {} records of {} events ({} formats known)", self.kept.len(), needed.len(), formats.len());
        for (event, n) in &self.left_out {
            eprintln!("  left out {n} of {event} (text needs symbols, or differs)");
        }
        Ok(())
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\t', "\\t").replace('\n', "\\n")
}

/// A tracefs file's text. Read in large pieces: some (`header_page`) answer only the first
/// read, which `fs::read_to_string` makes small.
fn read_text(path: &Path) -> std::io::Result<String> {
    let mut f = fs::File::open(path)?;
    let mut text = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match f.read(&mut buf)? {
            0 => return Ok(String::from_utf8_lossy(&text).into_owned()),
            n => text.extend_from_slice(&buf[..n]),
        }
    }
}

fn tracefs_root() -> PathBuf {
    std::env::var_os("TRACEFS").map_or_else(|| PathBuf::from("/sys/kernel/tracing"), PathBuf::from)
}

/// Our instance; removed on drop, whatever happened.
struct OwnInstance(PathBuf);

impl Drop for OwnInstance {
    fn drop(&mut self) {
        let _ = fs::write(self.0.join("tracing_on"), "0");
        let _ = fs::remove_dir(&self.0);
    }
}

/// The first `[ddd] ` column of a `trace` line, and what follows the timestamp.
fn parse_trace_line(l: &str) -> Option<(u32, &str)> {
    let b = l.as_bytes();
    let at = (0..b.len().saturating_sub(5)).find(|&i| {
        b[i] == b'[' && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) && b[i + 4] == b']' && b[i + 5] == b' '
    })?;
    let cpu = l[at + 1..at + 4].parse().ok()?;
    let (_, after) = l[at + 6..].trim_start().split_once(' ')?;
    let (_, rest) = after.trim_start().split_once(": ")?;
    Some((cpu, rest))
}

fn kernel(out: &Path) -> Result<(), Error> {
    let root = tracefs_root();
    let inst = OwnInstance(root.join(format!("instances/wasmprobe-{}-golden", std::process::id())));
    fs::create_dir(&inst.0)?;
    fs::write(inst.0.join("tracing_on"), "0")?;
    for e in EVENTS {
        fs::write(inst.0.join("events").join(e).join("enable"), "1")?;
    }
    fs::write(inst.0.join("tracing_on"), "1")?;
    let sh = "for i in 1 2 3; do cat /etc/hostname > /dev/null; ls / > /dev/null; kill -0 $$; sleep 0.01; done";
    let status = Command::new("sh").args(["-c", sh]).status()?;
    std::thread::sleep(std::time::Duration::from_millis(30));
    fs::write(inst.0.join("tracing_on"), "0")?;
    if !status.success() {
        return Err("the workload failed".into());
    }
    let trace = read_text(&inst.0.join("trace"))?;
    let lines: Vec<&str> = trace.lines().filter(|l| !l.starts_with('#')).collect();

    let endian = Endian::native();
    let page_header = PageHeader::parse(&read_text(&root.join("events/header_page"))?, endian)?;
    let event_header = EventHeader::parse(&read_text(&root.join("events/header_event"))?)?;
    let mut raw = BTreeMap::new();
    let mut formats = EventFormats::new(page_header);
    formats.set_event_header(event_header);
    for sys in fs::read_dir(root.join("events"))?.flatten().filter(|e| e.path().is_dir()) {
        for ev in fs::read_dir(sys.path())?.flatten() {
            let Ok(text) = read_text(&ev.path().join("format")) else { continue };
            let system = sys.file_name().to_string_lossy().into_owned();
            if formats.add_format(&system, &text).is_ok() {
                raw.insert((system, ev.file_name().to_string_lossy().into_owned()), text);
            }
        }
    }
    // The records of every CPU, merged by timestamp (ties to the lower CPU) as `trace` is.
    let mut records: Vec<(u64, u32, Vec<u8>)> = Vec::new();
    let cpus = fs::read_dir(inst.0.join("per_cpu"))?.count();
    for cpu in 0..cpus as u32 {
        let path = inst.0.join(format!("per_cpu/cpu{cpu}/trace_pipe_raw"));
        let mut f = fs::OpenOptions::new().read(true).custom_flags(0o4000).open(path)?;
        let mut page = vec![0u8; page_header.subbuf_size()];
        loop {
            match f.read(&mut page) {
                Ok(0) => break,
                Ok(n) => {
                    let sb = SubBuffer::with_event_header(&page[..n], &page_header, &event_header)?;
                    for r in sb.records() {
                        let r = r?;
                        records.push((r.ts, cpu, r.data.to_vec()));
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
    }
    records.sort_by_key(|r| (r.0, r.1));
    if records.len() != lines.len() {
        return Err(format!("{} records, {} lines of text: events were lost", records.len(), lines.len()).into());
    }
    let mut fixture = Fixture::default();
    for ((_, cpu, payload), line) in records.iter().zip(&lines) {
        let (line_cpu, rest) = parse_trace_line(line).ok_or_else(|| format!("cannot read {line:?}"))?;
        if line_cpu != *cpu {
            return Err(format!("record of CPU {cpu} paired with {line:?}").into());
        }
        let Some(f) = formats.for_record(payload) else { continue };
        // Syscall events print without their name; the others as `name: info`.
        let reference = if f.system == "syscalls" { Some(rest) } else { rest.strip_prefix(&format!("{}: ", f.name)) };
        let Some(reference) = reference else { continue };
        let mut ours = String::new();
        formats.print_info(payload, &mut ours);
        fixture.offer(f, payload, reference, &ours);
    }
    let header = "# The kernel's `trace` text (Dialect::Kernel) of records captured on this machine:\n\
                  # `host/traceevent/tests/data/golden/capture.sh` (examples/golden_capture.rs kernel).\n\
                  # system/event TAB payload (hex) TAB text after `event: ` (\\\\ \\t \\n escaped)\n";
    fixture.write(out, "kernel.txt", header, &formats, &raw)
}

fn trace_cmd(dat_path: &Path, report: &Path, out: &Path) -> Result<(), Error> {
    let dat = TraceDat::open(fs::File::open(dat_path)?)?;
    let mut formats = dat.event_formats(Dialect::LibTraceEvent)?;
    // The same formats without kallsyms and printk_formats: what the fixture can print.
    let mut bare = EventFormats::new(dat.page_header()?);
    bare.set_dialect(Dialect::LibTraceEvent);
    let mut raw = BTreeMap::new();
    for (system, text) in &dat.meta.event_formats {
        if let Ok(f) = EventFormat::parse(system, text, dat.meta.endian) {
            raw.insert((system.clone(), f.name.clone()), text.clone());
            bare.insert(f);
        }
    }
    let report = fs::read_to_string(report)?;
    let mut lines = report.lines().filter(|l| !l.starts_with("cpus=") && !l.starts_with("CPU:"));
    let time = TimeFormat::for_clock(dat.meta.buffers.first().map_or("local", |b| b.clock.as_str()));
    let mut line_formatter = LineFormatter::new(time);
    let mut records = dat.records(0)?;
    let mut fixture = Fixture::default();
    while let Some(rec) = records.next_record() {
        let rec = rec?;
        let theirs = lines.next().ok_or("the report has fewer lines than the file has records")?;
        let ev = formats.for_record(rec.data);
        let mut ours = Vec::new();
        line_formatter.line(&formats, ev, rec.cpu, rec.ts, rec.data, &mut ours);
        if let Some(f) = ev.cloned() {
            let mut info = Vec::new();
            formats.print_record(&f, rec.data, &mut info);
            formats.note_record(rec.data);
            if info.ends_with(b"\n") {
                info.pop();
            }
            let prefix = ours.len() - info.len();
            if ours == theirs.as_bytes() && theirs.len() >= prefix {
                let mut without_symbols = Vec::new();
                bare.print_info_bytes(rec.data, &mut without_symbols);
                if without_symbols.ends_with(b"\n") {
                    without_symbols.pop();
                }
                let reference = &theirs[prefix..];
                fixture.offer(&f, rec.data, reference, &String::from_utf8_lossy(&without_symbols));
            } else {
                *fixture.left_out.entry(format!("{}/{} (line differs)", f.system, f.name)).or_default() += 1;
            }
        }
    }
    let header = "# `trace-cmd report` text (Dialect::LibTraceEvent) of a trace.dat trace-cmd recorded on this\n\
                  # machine: `host/traceevent/tests/data/golden/capture.sh` (examples/golden_capture.rs trace-cmd).\n\
                  # system/event TAB payload (hex) TAB text after `event: ` and its padding (\\\\ \\t \\n escaped)\n";
    fixture.write(out, "trace-cmd.txt", header, &bare, &raw)
}
