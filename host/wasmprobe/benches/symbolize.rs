//! Stack symbolization throughput: stacks per second through `symbolize::StackSymbolizer`,
//! cold (a new symbolizer: kallsyms parsed, ELF files opened and read) and cached (the same
//! stacks again), on a corpus of real stacks that tests/bench/symbolize.sh takes from a `perf
//! record` of a live workload. Each stack part (kernel, user) is one call, as a plugin makes
//! them. Also checks each name against the one `perf script` gave for the same address.
//!
//! Corpus lines: `K 0 ADDR,ADDR,... NAME,NAME,...` (kernel) or `U PID ADDR,... NAME,...`
//! (user; the process must still be alive), addresses in hex, innermost first.
//!
//! `SYMBOLIZE_CORPUS=FILE cargo bench -p wasmprobe --bench symbolize`

use std::time::Instant;

use wasmprobe::symbolize::{Space, StackSymbolizer};

struct Stack {
    space: Space,
    addrs: Vec<u64>,
    names: Vec<String>,
}

fn main() {
    let Ok(path) = std::env::var("SYMBOLIZE_CORPUS") else {
        eprintln!("symbolize bench: set SYMBOLIZE_CORPUS=FILE (tests/bench/symbolize.sh makes one)");
        return;
    };
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let stacks: Vec<Stack> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let pid: i32 = f[1].parse().unwrap();
            let space = if f[0] == "K" { Space::Kernel } else { Space::User(pid) };
            let addrs = f[2].split(',').map(|a| u64::from_str_radix(a, 16).unwrap()).collect();
            let names = f.get(3).map_or_else(Vec::new, |n| n.split(',').map(str::to_string).collect());
            Stack { space, addrs, names }
        })
        .collect();
    let frames: usize = stacks.iter().map(|s| s.addrs.len()).sum();
    let rounds: usize = std::env::var("SYMBOLIZE_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(5);
    println!("corpus: {} stack parts, {frames} frames ({path})", stacks.len());
    let mut colds = Vec::new();
    let mut cacheds = Vec::new();
    let mut agree = (0usize, 0usize);
    for round in 0..rounds {
        let t = Instant::now();
        let mut s = StackSymbolizer::live();
        let mut first = Vec::with_capacity(stacks.len());
        for st in &stacks {
            if let Space::User(pid) = st.space {
                s.process_seen(pid, None);
            }
            first.push(s.symbolize(st.space, &st.addrs));
        }
        colds.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        for st in &stacks {
            std::hint::black_box(s.symbolize(st.space, &st.addrs));
        }
        cacheds.push(t.elapsed().as_secs_f64());
        if round == 0 {
            for (st, got) in stacks.iter().zip(&first) {
                for (want, f) in st.names.iter().zip(got) {
                    if want == "[unknown]" {
                        continue;
                    }
                    agree.1 += 1;
                    if f.symbol.as_deref() == Some(want.as_str()) {
                        agree.0 += 1;
                    } else if std::env::var_os("SYMBOLIZE_SHOW").is_some() {
                        println!("differs: {:x} perf {want} ours {:?} {:?}", f.addr, f.symbol, f.module);
                    }
                }
            }
            let st = s.stats();
            println!(
                "first round: {} frames, {} resolved through blazesym in {} file calls, {} from the cache",
                st.frames, st.resolved, st.elf_calls, st.cached
            );
        }
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (cold, cached) = (med(&mut colds), med(&mut cacheds));
    let n = stacks.len() as f64;
    println!("cold:   {:>10.0} stack parts/s  ({:.2} ms for the corpus, median of {rounds})", n / cold, cold * 1e3);
    println!("cached: {:>10.0} stack parts/s  ({:.2} ms for the corpus, median of {rounds})", n / cached, cached * 1e3);
    println!("names equal to perf script's: {} of {} named frames", agree.0, agree.1);
    println!("us: cold={:.0} cached={:.0}", cold * 1e6, cached * 1e6);
}
