//! The kernel's symbol table for stack frames: kallsyms parsed once into sorted arrays (one
//! string for every name, no allocation per symbol). Lookups answer as
//! `traceevent::Symbols::lookup` does (the first symbol listed at an address wins; an address
//! past the last symbol is unknown), at a third of its parse time: a cold symbolizer pays it
//! once per run.

/// kallsyms, sorted by address.
#[derive(Debug, Default)]
pub struct KernelSymbols {
    /// `(address, name start, name end, module index + 1 or 0)`, by address (stable).
    syms: Vec<(u64, u32, u32, u32)>,
    names: String,
    modules: Vec<String>,
}

/// A kernel symbol found for an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelSymbol<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its module, none for vmlinux.
    pub module: Option<&'a str>,
    /// The address minus the symbol's start.
    pub offset: u64,
}

impl KernelSymbols {
    /// Parses a kallsyms text (`ffffffff81000000 T _text` or `... t name\t[module]`); lines
    /// with a zero address (hidden by `kptr_restrict`) or that do not parse are left out.
    pub fn parse(text: &str) -> KernelSymbols {
        let mut k = KernelSymbols { names: String::with_capacity(text.len() / 2), ..Default::default() };
        let mut last_module: Option<(String, u32)> = None;
        for line in text.lines() {
            let mut it = line.split_ascii_whitespace();
            let (Some(addr), Some(_ty), Some(name)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            let Ok(addr) = u64::from_str_radix(addr, 16) else { continue };
            if addr == 0 {
                continue;
            }
            let module = match it.next().and_then(|m| m.strip_prefix('[')?.strip_suffix(']')) {
                None => 0,
                Some(m) => match &last_module {
                    Some((name, idx)) if name == m => *idx,
                    _ => {
                        let idx = match k.modules.iter().position(|x| x == m) {
                            Some(i) => i as u32 + 1,
                            None => {
                                k.modules.push(m.to_string());
                                k.modules.len() as u32
                            }
                        };
                        last_module = Some((m.to_string(), idx));
                        idx
                    }
                },
            };
            let start = k.names.len() as u32;
            k.names.push_str(name);
            k.syms.push((addr, start, k.names.len() as u32, module));
        }
        // Stable: among aliases at one address the first listed wins, as in the kernel.
        k.syms.sort_by_key(|s| s.0);
        k
    }

    /// The symbol containing `addr`, if it lies between two known symbols.
    pub fn lookup(&self, addr: u64) -> Option<KernelSymbol<'_>> {
        let i = self.syms.partition_point(|s| s.0 <= addr).checked_sub(1)?;
        let start = self.syms[i].0;
        self.syms[i + 1..].iter().find(|s| s.0 > start)?;
        let first = self.syms[..=i].iter().rposition(|s| s.0 != start).map_or(0, |p| p + 1);
        let (_, a, b, m) = self.syms[first];
        Some(KernelSymbol {
            name: &self.names[a as usize..b as usize],
            module: m.checked_sub(1).map(|m| self.modules[m as usize].as_str()),
            offset: addr - start,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_as_traceevent_does() {
        let text = "ffffffff81000000 T _stext\nffffffff81000000 T _text\nffffffff81000100 t foo\n\
                    ffffffff81000200 T bar\n0000000000000000 T hidden\nffffffffc0201000 t modfn\t[mymod]\n\
                    ffffffffc0201040 t modfn2\t[mymod]\n";
        let k = KernelSymbols::parse(text);
        let r = k.lookup(0xffff_ffff_8100_0124).unwrap();
        assert_eq!((r.name, r.offset, r.module), ("foo", 0x24, None));
        assert_eq!(k.lookup(0xffff_ffff_8100_0000).unwrap().name, "_stext");
        assert_eq!(k.lookup(0xffff_ffff_c020_1001).unwrap().module, Some("mymod"));
        assert!(k.lookup(0x10).is_none());
        assert!(k.lookup(0xffff_ffff_c020_1050).is_none(), "past the last symbol");
        // On this machine's kallsyms, every symbol's address and one inside it.
        let live = std::fs::read_to_string("/proc/kallsyms").unwrap();
        let (ours, theirs) = (KernelSymbols::parse(&live), {
            let mut t = traceevent::Symbols::new();
            t.parse_kallsyms(&live);
            t
        });
        for l in live.lines().step_by(7) {
            let a = u64::from_str_radix(l.split(' ').next().unwrap(), 16).unwrap();
            for addr in [a, a + 3] {
                let t = theirs.lookup(addr).map(|s| (s.name, s.module, s.offset));
                assert_eq!(ours.lookup(addr).map(|s| (s.name, s.module, s.offset)), t, "{l}");
            }
        }
    }
}
