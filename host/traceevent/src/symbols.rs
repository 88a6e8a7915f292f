//! `/proc/kallsyms` and tracefs `printk_formats`: kernel addresses → symbol names (for `%pS`,
//! `%ps`, `%pB`) and → constant strings (for `%s` of a `const char *` the kernel recorded as
//! a pointer, e.g. `rcu_utilization`). Both also travel inside trace.dat.
//!
//! kallsyms lines: `ffffffff81000000 T _text` or `... t name\t[module]`.
//! printk_formats lines: `0xffffffff8281a5be : "Start scheduler-tick"`.

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Sym {
    addr: u64,
    name: String,
    module: Option<String>,
}

/// A resolved symbol: name, offset of the address into it, and the symbol's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SymbolRef<'a> {
    /// Symbol name.
    pub name: &'a str,
    /// Module the symbol belongs to, if not the core kernel.
    pub module: Option<&'a str>,
    /// Address minus the symbol's start.
    pub offset: u64,
    /// Distance to the next symbol.
    pub size: u64,
}

/// Address → symbol and address → string tables; loaded once, looked up per record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Symbols {
    syms: Vec<Sym>,
    sorted: bool,
    strings: HashMap<u64, String>,
    /// kallsyms as libtraceevent holds it: reversed file order, stably sorted by address,
    /// absolute (`A`/`a`) and `$` symbols left out, zero addresses kept.
    libtraceevent_functions: Vec<(u64, Box<str>)>,
    /// printk_formats as libtraceevent holds them: the quoted text, escapes kept.
    libtraceevent_printk_strings: HashMap<u64, String>,
}

impl Symbols {
    /// Empty tables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the symbols of a kallsyms text; lines with a zero address (hidden by
    /// `kptr_restrict`) or that do not parse are skipped. Allocates a string per symbol.
    pub fn parse_kallsyms(&mut self, text: &str) {
        for line in text.lines() {
            let mut it = line.split_whitespace();
            let (Some(addr), Some(_ty), Some(name)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            let Ok(addr) = u64::from_str_radix(addr, 16) else {
                continue;
            };
            if addr == 0 {
                continue;
            }
            let module = it.next().and_then(|m| m.strip_prefix('[')?.strip_suffix(']')).map(str::to_string);
            self.syms.push(Sym { addr, name: name.to_string(), module });
        }
        // Stable: among aliases at one address the first listed wins, as in the kernel.
        self.syms.sort_by_key(|s| s.addr);
        self.sorted = true;
        self.parse_kallsyms_lte(text);
    }

    /// `tep_parse_kallsyms`: stops at the first line it cannot parse.
    fn parse_kallsyms_lte(&mut self, text: &str) {
        let mut added = Vec::new();
        for line in text.split('\n').filter(|l| !l.is_empty()) {
            let t = line.trim_start();
            let hex = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
            let n = hex.bytes().take(16).take_while(u8::is_ascii_hexdigit).count();
            let Ok(addr) = u64::from_str_radix(&hex[..n], 16) else {
                break;
            };
            let rest = hex[n..].trim_start();
            let mut chars = rest.chars();
            let Some(ty) = chars.next() else {
                break;
            };
            let rest = chars.as_str().trim_start();
            let name_len = rest.find(char::is_whitespace).unwrap_or(rest.len());
            if name_len == 0 {
                break;
            }
            let name = &rest[..name_len];
            if name.starts_with('$') || ty == 'A' || ty == 'a' {
                continue;
            }
            added.push((addr, Box::<str>::from(name)));
        }
        added.reverse();
        added.append(&mut self.libtraceevent_functions);
        added.sort_by_key(|f| f.0);
        self.libtraceevent_functions = added;
    }

    /// libtraceevent's `find_func`: glibc's bsearch over the sorted table, matching an
    /// address equal to a symbol or between it and the next one. Returns (name, start).
    pub(crate) fn libtraceevent_function(&self, addr: u64) -> Option<(&str, u64)> {
        let map = &self.libtraceevent_functions;
        let (mut l, mut u) = (0, map.len());
        while l < u {
            let idx = (l + u) / 2;
            let start = map[idx].0;
            let next = map.get(idx + 1).map_or(0, |f| f.0);
            if addr == start || (addr > start && addr < next) {
                return Some((&map[idx].1, start));
            }
            if addr < start {
                u = idx;
            } else {
                l = idx + 1;
            }
        }
        None
    }

    /// libtraceevent's `test_for_symbol`: the address of the first symbol with this name.
    pub(crate) fn libtraceevent_symbol_address(&self, name: &str) -> Option<u64> {
        self.libtraceevent_functions.iter().find(|f| &*f.1 == name).map(|f| f.0)
    }

    /// libtraceevent's `find_printk`.
    pub(crate) fn libtraceevent_printk(&self, addr: u64) -> Option<&str> {
        self.libtraceevent_printk_strings.get(&addr).map(String::as_str)
    }

    /// Adds the `0xADDR : "text"` lines of a printk_formats text.
    pub fn parse_printk_formats(&mut self, text: &str) {
        for line in text.lines() {
            let Some((addr, s)) = line.split_once(" : ") else {
                continue;
            };
            let Ok(addr) = u64::from_str_radix(addr.trim().trim_start_matches("0x"), 16) else {
                continue;
            };
            let s = s.trim();
            let value = match s.strip_prefix('"') {
                Some(body) => crate::format::unescape_literal(body)
                    .map_or_else(|| body.trim_end_matches('"').to_string(), |(v, _)| v),
                None => s.to_string(),
            };
            self.strings.insert(addr, value);
        }
        // libtraceevent: split at the first ':', skip one character, drop one leading and
        // one trailing quote and a trailing `\n`.
        for line in text.split('\n').filter(|l| !l.is_empty()) {
            let Some((addr, fmt)) = line.split_once(':') else {
                continue;
            };
            let addr = addr.trim();
            let addr = addr.strip_prefix("0x").or_else(|| addr.strip_prefix("0X")).unwrap_or(addr);
            let n = addr.bytes().take_while(u8::is_ascii_hexdigit).count();
            let addr = u64::from_str_radix(&addr[..n], 16).unwrap_or(0);
            let mut f = fmt.get(1..).unwrap_or("");
            f = f.strip_prefix('"').unwrap_or(f);
            if let Some(g) = f.strip_suffix('"') {
                f = g.strip_suffix("\\n").unwrap_or(g);
            }
            self.libtraceevent_printk_strings.entry(addr).or_insert_with(|| f.to_string());
        }
    }

    /// True if neither table has entries.
    pub fn is_empty(&self) -> bool {
        self.syms.is_empty() && self.strings.is_empty()
    }

    /// The symbol containing `addr`, if it lies between two known symbols.
    pub fn lookup(&self, addr: u64) -> Option<SymbolRef<'_>> {
        let i = self.syms.partition_point(|s| s.addr <= addr).checked_sub(1)?;
        let start = self.syms[i].addr;
        let first = self.syms[..=i].iter().rposition(|s| s.addr != start).map_or(0, |p| p + 1);
        let next = self.syms[i + 1..].iter().find(|s| s.addr > start)?;
        let s = &self.syms[first];
        Some(SymbolRef { name: &s.name, module: s.module.as_deref(), offset: addr - start, size: next.addr - start })
    }

    /// The printk_formats string at `addr`.
    pub fn string(&self, addr: u64) -> Option<&str> {
        self.strings.get(&addr).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kallsyms_lookup_and_strings() {
        let mut s = Symbols::new();
        s.parse_kallsyms(
            "ffffffff81000000 T _stext\nffffffff81000000 T _text\nffffffff81000100 t foo\n\
             ffffffff81000200 T bar\n0000000000000000 T hidden\nffffffffc0201000 t modfn\t[mymod]\n\
             ffffffffc0201040 t modfn2\t[mymod]\n",
        );
        let r = s.lookup(0xffff_ffff_8100_0124).unwrap();
        assert_eq!((r.name, r.offset, r.size, r.module), ("foo", 0x24, 0x100, None));
        let r = s.lookup(0xffff_ffff_8100_0000).unwrap();
        assert_eq!(r.name, "_stext");
        let r = s.lookup(0xffff_ffff_c020_1001).unwrap();
        assert_eq!((r.name, r.module), ("modfn", Some("mymod")));
        assert!(s.lookup(0x10).is_none());
        assert!(s.lookup(0xffff_ffff_c020_1050).is_none(), "past the last symbol");
        s.parse_printk_formats("0xffffffff8281a5be : \"Start scheduler-tick\"\n0x10 : \"a\\n\"\n");
        assert_eq!(s.string(0xffff_ffff_8281_a5be), Some("Start scheduler-tick"));
        assert_eq!(s.string(0x10), Some("a\n"));
    }
}
