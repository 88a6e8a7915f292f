//! Our decoding of raw ring-buffer records against the kernel's own text for the same records.
//!
//! In an instance of ours, with sched, irq, timer and workqueue events, kmalloc/kfree,
//! a few syscall events, raw_syscalls (for this process) and a uprobe (plus its uretprobe)
//! on libc, a workload runs; tracing stops; the instance's `trace` file
//! (the kernel's text, read without consuming) is compared with what traceevent makes of the
//! records read from `per_cpu/cpuN/trace_pipe_raw` in the kernel dialect: record for record,
//! in the same order, the text after the timestamp must be equal.
//!
//! One exception: events whose print fmt uses enum constants the kernel did not replace by
//! numbers (`HRTIMER_MODE_ABS` in `hrtimer_start`/`hrtimer_setup`). The kernel prints them
//! with compiled code that knows their values; the format file does not carry them, and this
//! kernel has no `eval_map` file (CONFIG_TRACE_EVAL_MAP_FILE; it would list only the enums
//! the kernel already substituted into the formats anyway). For those events every
//! `key=value` must still be equal except the symbolic ones, where the kernel prints a name
//! (`mode=ABS`) and we print the value (`mode=0x0`).

use std::ffi::CString;
use std::process::Command;

use testkit::{libc_path, require, ProbeGuard};
use traceevent::{Dialect, EventFormats, EventHeader, PageHeader, SubBuffer};
use tracefs::{event_format, resolve_target, uprobe_alloc, uretprobe_alloc, CpuReader, Instance, Tracefs};
use wasmprobe::owned::{group_name, instance_name};

const SYSCALLS: [&str; 5] = ["openat", "read", "write", "close", "getppid"];

/// One record as the kernel prints it, or as we do.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    cpu: u32,
    /// `SECS.USECS`, as printed.
    time: String,
    /// Everything after `time: `: `name: info`, or the syscall text.
    rest: String,
}

/// Parses a line of the `trace` file: `COMM-PID [CPU] FLAGS SECS.USECS: REST`.
fn parse_trace_line(l: &str) -> Option<Line> {
    // The CPU column is the first `[ddd] ` (comms may hold anything else).
    let b = l.as_bytes();
    let at = (0..b.len().saturating_sub(5)).find(|&i| {
        b[i] == b'[' && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) && b[i + 4] == b']' && b[i + 5] == b' '
    })?;
    let cpu = l[at + 1..at + 4].parse().ok()?;
    let after = l[at + 6..].trim_start();
    // Skip the irq-flags column (e.g. `d.h1.`), then the timestamp.
    let (_, after) = after.split_once(' ')?;
    let after = after.trim_start();
    let (time, rest) = after.split_once(": ")?;
    Some(Line { cpu, time: time.to_string(), rest: rest.to_string() })
}

fn libc_target(sym: &str) -> (String, u64) {
    let t = resolve_target(&format!("{}:{sym}", libc_path().display())).expect("resolve libc symbol");
    (t.path.to_str().unwrap().to_string(), t.offset)
}

/// A child that calls libc's `openat` itself (for the uprobe), then exits.
fn child_openat(path: &str) {
    let c = CString::new(path).unwrap();
    // SAFETY: the child only calls async-signal-safe functions before exiting.
    match unsafe { nix::unistd::fork() }.expect("fork") {
        nix::unistd::ForkResult::Child => unsafe {
            let fd = libc::openat(libc::AT_FDCWD, c.as_ptr(), libc::O_RDONLY);
            if fd >= 0 {
                libc::close(fd);
            }
            libc::_exit(0)
        },
        nix::unistd::ForkResult::Parent { child } => {
            nix::sys::wait::waitpid(child, None).expect("wait");
        }
    }
}

fn workload(dir: &std::path::Path) {
    let file = dir.join("data.txt");
    std::fs::write(&file, "0123456789\n".repeat(100)).unwrap();
    for _ in 0..20 {
        child_openat(file.to_str().unwrap());
        // SAFETY: getppid has no preconditions.
        unsafe { libc::getppid() };
    }
    let sh = format!("for i in 1 2 3; do cat {f} > /dev/null; ls / > /dev/null; done; sleep 0.05", f = file.display());
    assert!(Command::new("sh").args(["-c", &sh]).status().unwrap().success());
    std::thread::sleep(std::time::Duration::from_millis(30));
}

/// Reads every sub-buffer of every CPU and decodes the records (kernel dialect), merged by
/// timestamp with ties going to the lower CPU, as the `trace` file orders them.
fn decode_raw(t: &Tracefs, inst: &Instance, formats: &EventFormats) -> Vec<(Line, u32)> {
    let header =
        PageHeader::parse(&tracefs::read_text(&t.file("events/header_page")).unwrap(), traceevent::Endian::native())
            .unwrap();
    let subbuf = inst.subbuf_size().unwrap();
    let header = header.with_subbuf_size(subbuf).unwrap();
    let ev_header = EventHeader::parse(&tracefs::read_text(&t.file("events/header_event")).unwrap()).unwrap();
    let mut all: Vec<(u64, u32, String, u32)> = Vec::new();
    let mut buf = vec![0u8; subbuf];
    for cpu in 0..inst.cpu_count().unwrap() {
        let mut r = CpuReader::open(inst, cpu, true).unwrap();
        loop {
            let n = r.read_subbuf(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            let page = SubBuffer::with_event_header(&buf[..n], &header, &ev_header).expect("sub-buffer");
            for rec in page.records() {
                let rec = rec.expect("record");
                let Some(f) = formats.for_record(rec.data) else {
                    panic!("record of an unknown event id {:?}", rec.common_type())
                };
                let mut text = String::new();
                formats.print_info(rec.data, &mut text);
                let syscall = f.system == "syscalls";
                let rest = if syscall { text } else { format!("{}: {}", f.name, text) };
                all.push((rec.ts, cpu as u32, rest, formats.for_record(rec.data).map_or(0, |f| f.id)));
            }
        }
    }
    all.sort_by_key(|r| (r.0, r.1));
    all.into_iter()
        .map(|(ts, cpu, rest, id)| {
            let us = (ts + 500) / 1000;
            (Line { cpu, time: format!("{}.{:06}", us / 1_000_000, us % 1_000_000), rest }, id)
        })
        .collect()
}

/// Equal, except that where we print a hex value (`0x2`) the kernel may print names
/// (`be`, `I_DIRTY_SYNC|I_NEW`).
fn same_but_enum_names(kernel: &str, ours: &str) -> bool {
    let (k, o) = (kernel.as_bytes(), ours.as_bytes());
    let name = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'|';
    let (mut i, mut j) = (0, 0);
    while j < o.len() {
        let boundary = j == 0 || !name(o[j - 1]);
        if boundary && o[j..].starts_with(b"0x") {
            let end = j + 2 + o[j + 2..].iter().take_while(|c| c.is_ascii_hexdigit()).count();
            let hex = &o[j..end];
            if k[i..].starts_with(hex) && k.get(i + hex.len()).is_none_or(|&c| !name(c)) {
                i += hex.len();
            } else {
                let n = k[i..].iter().take_while(|&&c| name(c)).count();
                if n == 0 {
                    return false;
                }
                i += n;
            }
            j = end;
            continue;
        }
        if k.get(i) != Some(&o[j]) {
            return false;
        }
        i += 1;
        j += 1;
    }
    i == k.len()
}

#[test]
fn kernel_text_equals_our_decoding_of_the_same_records() {
    let t = require!(root, tracefs, uprobes).tracefs();
    let mut probes = ProbeGuard::new(&t);
    let group = group_name("decode");
    let (libc, openat_off) = libc_target("openat");
    let up = probes
        .create(
            uprobe_alloc(Some(&group), "openat", &libc, openat_off, Some("file=+0(%si):ustring flags=%dx:x32"))
                .unwrap(),
        )
        .unwrap();
    let urp = probes
        .create(uretprobe_alloc(Some(&group), "openat_ret", &libc, openat_off, Some("ret=$retval:s32")).unwrap())
        .unwrap();

    let inst = Instance::create(&t, &instance_name("decode")).unwrap();
    inst.set_buffer_size_kb(8192, None).unwrap();
    // Plain %p as raw addresses, as our kernel dialect prints them.
    if inst.file("options/hash-ptr").exists() {
        inst.write_file("options/hash-ptr", "0").unwrap();
    }
    // Only the events we ask for: the uprobe fires in every process, the syscalls too.
    let mut enabled: Vec<(String, String)> = Vec::new();
    for sys in ["sched", "irq", "timer", "workqueue"] {
        inst.event_enable(Some(sys), None).unwrap();
        for ev in tracefs::system_events(&t, sys).unwrap() {
            enabled.push((sys.to_string(), ev));
        }
    }
    // kmem's page events print `vmemmap_base` arithmetic and gfp masks built by statement
    // expressions, which we cannot evaluate: only the slab events here.
    for ev in ["kmalloc", "kfree", "kmem_cache_alloc", "kmem_cache_free"] {
        inst.event_enable(Some("kmem"), Some(ev)).unwrap();
        enabled.push(("kmem".into(), ev.into()));
    }
    // Every syscall of the machine would be a lot: this thread's only (it runs the workload).
    let tid = nix::unistd::gettid();
    for ev in ["sys_enter", "sys_exit"] {
        inst.write_file(&format!("events/raw_syscalls/{ev}/filter"), &format!("common_pid == {tid}")).unwrap();
        inst.event_enable(Some("raw_syscalls"), Some(ev)).unwrap();
        enabled.push(("raw_syscalls".into(), ev.into()));
    }
    for s in SYSCALLS {
        for dir in ["enter", "exit"] {
            let ev = format!("sys_{dir}_{s}");
            inst.event_enable(Some("syscalls"), Some(&ev)).unwrap();
            enabled.push(("syscalls".into(), ev));
        }
    }
    inst.event_enable(Some(&group), None).unwrap();
    enabled.push((group.clone(), "openat".into()));
    enabled.push((group.clone(), "openat_ret".into()));
    let _ = (up, urp);

    let dir = std::env::temp_dir().join(format!("wasmprobe-decode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    workload(&dir);
    inst.set_tracing_on(false).unwrap();
    std::fs::remove_dir_all(&dir).ok();

    // The kernel's text, without consuming.
    let trace = inst.read_file("trace").unwrap();
    let header = trace.lines().find(|l| l.starts_with("# entries-in-buffer")).unwrap_or("").to_string();
    let kernel: Vec<Line> = trace.lines().filter(|l| !l.starts_with('#')).filter_map(parse_trace_line).collect();
    assert!(!trace.contains("LOST") && !header.contains("entries-in-buffer/entries-written: 0/"), "{header}");

    // Our decoding of the same records.
    let mut formats = EventFormats::new(
        PageHeader::parse(&tracefs::read_text(&t.file("events/header_page")).unwrap(), traceevent::Endian::native())
            .unwrap(),
    );
    formats.set_dialect(Dialect::Kernel);
    let mut excluded = std::collections::HashMap::new();
    for (sys, ev) in &enabled {
        let text = event_format(&t, sys, ev).unwrap();
        let id = formats.add_format(sys, &text).unwrap();
        let f = formats.by_id(id).unwrap();
        if !f.unresolved_symbols().is_empty() {
            excluded.insert(id, format!("{sys}:{ev} ({})", f.unresolved_symbols().join(", ")));
        }
    }
    formats.parse_kallsyms(&tracefs::read_text(std::path::Path::new("/proc/kallsyms")).unwrap());
    formats.parse_printk_formats(&tracefs::read_text(&t.file("printk_formats")).unwrap_or_default());
    let ours = decode_raw(&t, &inst, &formats);
    drop(inst);
    drop(probes);

    assert!(kernel.len() > 200, "too few events traced ({}): {header}", kernel.len());
    eprintln!(
        "{} records; enum names not compared in {} of them, from {:?}",
        kernel.len(),
        ours.iter().filter(|(_, id)| excluded.contains_key(id)).count(),
        excluded.values().collect::<Vec<_>>()
    );
    let mut diffs = Vec::new();
    for (i, (k, (o, id))) in kernel.iter().zip(&ours).enumerate() {
        let same = if excluded.contains_key(id) {
            (k.cpu, &k.time) == (o.cpu, &o.time) && same_but_enum_names(&k.rest, &o.rest)
        } else {
            k == o
        };
        if !same {
            diffs.push(format!(
                "#{i}\n  kernel: [{:03}] {}: {}\n  ours:   [{:03}] {}: {}",
                k.cpu, k.time, k.rest, o.cpu, o.time, o.rest
            ));
        }
    }
    assert_eq!(
        kernel.len(),
        ours.len(),
        "record counts differ ({header}); first diffs:\n{}",
        diffs.iter().take(5).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(
        diffs.is_empty(),
        "{} of {} records differ; first ones:\n{}",
        diffs.len(),
        kernel.len(),
        diffs.iter().take(15).cloned().collect::<Vec<_>>().join("\n")
    );
    // The syscalls, the uprobe and its return were all seen and compared.
    for want in ["sys_openat(", "sys_getppid -> ", "openat: (", "openat_ret: (", "sched_switch: ", "sys_enter: NR "] {
        assert!(kernel.iter().any(|l| l.rest.starts_with(want)), "no {want} line");
    }
}
