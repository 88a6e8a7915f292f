//! The symbolizer on addresses whose names are known: kallsyms' own, and those a small C
//! program prints of its functions (checked against `nm`), before and after it exits.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use super::*;

/// Builds `prog.c` (functions a, b, c, target, main) with frame pointers into `dir`.
fn build_prog(dir: &std::path::Path) -> std::path::PathBuf {
    let src = dir.join("prog.c");
    std::fs::write(
        &src,
        r#"#include <stdio.h>
#include <unistd.h>
__attribute__((noinline)) void target(void) { asm volatile(""); }
__attribute__((noinline)) void c(void) { target(); asm volatile(""); }
__attribute__((noinline)) void b(void) { c(); asm volatile(""); }
__attribute__((noinline)) void a(void) { b(); asm volatile(""); }
int main(void) {
    a();
    printf("%p %p %p %p %p\n", (void *)target, (void *)c, (void *)b, (void *)a, (void *)main);
    fflush(stdout);
    char x;
    return (int)read(0, &x, 1) < 0;
}
"#,
    )
    .unwrap();
    let bin = dir.join("prog");
    let out = Command::new("cc")
        .args(["-O0", "-g", "-fno-omit-frame-pointer", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("cc runs");
    assert!(out.status.success(), "cc: {}", String::from_utf8_lossy(&out.stderr));
    bin
}

/// `nm`'s address of each function of the program (its file's virtual addresses).
fn nm(bin: &std::path::Path) -> HashMap<String, u64> {
    let out = Command::new("nm").arg(bin).output().expect("nm runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (addr, ty, name) = (it.next()?, it.next()?, it.next()?);
            (ty == "T").then(|| Some((name.to_string(), u64::from_str_radix(addr, 16).ok()?)))?
        })
        .collect()
}

#[test]
fn user_addresses_of_a_program_symbolized_after_it_exits() {
    let dir = tempfile::tempdir().unwrap();
    let bin = build_prog(dir.path());
    let syms = nm(&bin);
    let mut child = Command::new(&bin).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let pid = child.id() as i32;
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addrs: Vec<u64> =
        line.split_whitespace().map(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).unwrap()).collect();
    assert_eq!(addrs.len(), 5, "{line:?}");

    let mut s = StackSymbolizer::live();
    s.process_seen(pid, None);
    child.stdin.take().unwrap().write_all(b"x").unwrap();
    assert!(child.wait().unwrap().success());

    // Inside each function (+1), and one unknown address, in one batch, after the exit.
    let mut batch: Vec<u64> = addrs.iter().map(|a| a + 1).collect();
    batch.push(0x10);
    let frames = s.symbolize(Space::User(pid), &batch);
    let names: Vec<_> = frames.iter().map(|f| f.symbol.as_deref().unwrap_or("?")).collect();
    assert_eq!(names, ["target", "c", "b", "a", "main", "?"]);
    for f in &frames[..5] {
        assert_eq!(f.offset, 1, "{f:?}");
        assert_eq!(f.module.as_deref(), Some(bin.to_str().unwrap()));
        assert!(f.file.as_deref().is_some_and(|p| p.ends_with("prog.c")), "DWARF gives the file: {f:?}");
    }
    assert_eq!(frames[5], Frame { addr: 0x10, ..Frame::default() });
    assert_eq!(frames[0].label(), "target+0x1");
    // The PIE's load address differs from nm's; the distance between two functions does not.
    assert_eq!(addrs[1] - addrs[0], syms["c"] - syms["target"]);
    let st = s.stats();
    assert_eq!((st.frames, st.resolved, st.cached, st.elf_calls), (6, 5, 0, 1), "one call for the batch");

    // Again: from the cache, nothing new resolved.
    let again = s.symbolize(Space::User(pid), &batch);
    assert_eq!(again, frames);
    assert_eq!((s.stats().resolved, s.stats().cached, s.stats().elf_calls), (5, 5, 1));

    // A replay: the recorded table, no /proc, the same answers.
    let procs = Processes::from_bytes(&s.processes().to_bytes()).unwrap();
    let mut r = StackSymbolizer::replay(&std::fs::read_to_string("/proc/kallsyms").unwrap(), procs);
    assert_eq!(r.symbolize(Space::User(pid), &batch), frames);
    // An unknown process: addresses only.
    assert_eq!(r.symbolize(Space::User(pid + 1_000_000), &[1, 2]).iter().filter(|f| f.symbol.is_some()).count(), 0);
}

#[test]
fn a_replaced_file_is_not_read_for_symbols() {
    let dir = tempfile::tempdir().unwrap();
    let bin = build_prog(dir.path());
    let id = maps::read_build_id(bin.to_str().unwrap()).expect("cc writes a build id");
    let table = ProcMaps {
        pid: 7,
        mappings: vec![Mapping {
            start: 0x1000,
            end: 0x9000,
            offset: 0,
            path: bin.to_string_lossy().into_owned(),
            build_id: Some(format!("{}00", &id[..id.len() - 2])),
        }],
    };
    let mut s = StackSymbolizer::with_kernel(Default::default(), Processes::recorded(vec![table]));
    let f = &s.symbolize(Space::User(7), &[0x1200])[0];
    assert_eq!((f.symbol.as_deref(), f.module.as_deref()), (None, bin.to_str()), "build id differs: no symbol");
}

#[test]
fn kernel_addresses_through_kallsyms() {
    let text = std::fs::read_to_string("/proc/kallsyms").unwrap();
    let pick = |want: &str| {
        text.lines().find_map(|l| {
            let mut it = l.split_whitespace();
            let (a, t, n) = (it.next()?, it.next()?, it.next()?);
            (n == want && (t == "T" || t == "t")).then(|| u64::from_str_radix(a, 16).ok())?
        })
    };
    let Some(openat) = pick("do_sys_openat2").filter(|a| *a != 0) else {
        eprintln!("kallsyms shows no addresses (kptr_restrict): nothing to check");
        return;
    };
    let mut s = StackSymbolizer::live();
    let frames = s.symbolize(Space::Kernel, &[openat + 0x10, openat, 0x10]);
    assert_eq!(frames[0].symbol.as_deref(), Some("do_sys_openat2"));
    assert_eq!((frames[0].offset, frames[0].module.as_deref()), (0x10, None));
    assert_eq!(frames[0].label(), "do_sys_openat2+0x10");
    assert_eq!(frames[1].label(), "do_sys_openat2");
    assert_eq!(frames[2].symbol, None);
    // A module's symbol names its module.
    let lines: Vec<&str> = text.lines().collect();
    let module_sym = lines.windows(2).find_map(|w| {
        let mut it = w[0].split_whitespace();
        let (a, t, n, m) = (it.next()?, it.next()?, it.next()?, it.next()?);
        let m = m.strip_prefix('[')?.strip_suffix(']')?;
        let real = (t == "t" || t == "T") && !m.starts_with("__builtin") && w[1].ends_with(&format!("[{m}]"));
        real.then(|| Some((u64::from_str_radix(a, 16).ok()?, n.to_string(), m.to_string())))?
    });
    if let Some((addr, name, module)) = module_sym {
        let f = &s.symbolize(Space::Kernel, &[addr])[0];
        assert_eq!((f.symbol.as_deref(), f.module.as_deref()), (Some(name.as_str()), Some(module.as_str())));
    }
    // A replay from the same text answers alike.
    let mut r = StackSymbolizer::replay(&text, Processes::recorded(Vec::new()));
    assert_eq!(r.symbolize(Space::Kernel, &[openat + 0x10]), frames[..1]);
}

/// A Rust function of this test binary, through the test process's own mappings: demangled.
#[inline(never)]
fn marker() -> u64 {
    std::hint::black_box(7)
}

#[test]
fn rust_names_are_demangled() {
    let mut s = StackSymbolizer::live();
    let addr = marker as *const () as u64;
    let me = std::process::id() as i32;
    assert!(s.process_seen(me, None));
    let f = &s.symbolize(Space::User(me), &[addr + 1])[0];
    assert!(f.symbol.as_deref().is_some_and(|n| n.ends_with("symbolize::tests::marker")), "{f:?}");
    assert_eq!(marker(), 7);
}

#[test]
fn only_processes_shown_to_the_plugin_are_symbolized_and_their_threads() {
    let mut s = StackSymbolizer::live();
    let addr = marker as *const () as u64 + 1;
    let me = std::process::id() as i32;
    // A live process no stack of which was delivered: addresses only, not even the file.
    let f = &s.symbolize(Space::User(me), &[addr])[0];
    assert_eq!(*f, Frame { addr, ..Frame::default() }, "a process not shown was read");
    assert!(s.processes().is_empty());
    // Shown: named; and one of its threads is named through its process.
    assert!(s.process_seen(me, None));
    let (tx, rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        tx.send(nix::unistd::gettid().as_raw()).unwrap();
        let _ = done_rx.recv();
    });
    let tid = rx.recv().unwrap();
    assert_ne!(tid, me);
    let tid_frames = s.symbolize(Space::User(tid), &[addr]);
    done_tx.send(()).unwrap();
    thread.join().unwrap();
    for f in [&s.symbolize(Space::User(me), &[addr])[0], &tid_frames[0]] {
        assert!(f.symbol.as_deref().is_some_and(|n| n.ends_with("symbolize::tests::marker")), "{f:?}");
    }
}
