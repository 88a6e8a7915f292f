//! Write wasmprobe plugins in Rust.
//!
//! A plugin declares the probes it wants in [`Plugin::init`] and then receives one
//! [`Plugin::on_event`] call per event, like the callback of the libtracefs kprobe man page.
//! The built-in `exec-open` (`guest-examples/exec-open/src/lib.rs`, shown here as it is) is
//! that example, with a uprobe fallback and records for `--json`:
//!
//! ```ignore
#![doc = include_str!("../../guest-examples/exec-open/src/lib.rs")]
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2`: the `.wasm` is a component the
//! host loads (`wasmprobe run plugin.wasm`).
//!
//! Under the hood the host calls `on-batch` with many events packed into one byte buffer (see
//! `wit/wasmprobe.wit`); this crate walks that buffer and resolves field names to offsets once
//! per probe, so a field access costs a few compares and an unaligned load.
//!
//! Plugins that aggregate (count, sum, bucket) should override [`Plugin::on_batch`] instead and
//! read whole columns of the batch ([`Batch::pids`], [`Batch::u64s`], ...): a tight loop per
//! column, no per-event object, the fast path inside Wasm (see [`batch`]).

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;

pub mod agg;
pub mod batch;
mod event;
pub mod metrics;
#[doc(hidden)]
pub mod rt;
pub mod stacks;
pub mod timeline;

pub use batch::Batch;
pub use event::Event;
pub use stacks::Stack;
pub use wasmprobe_abi::batch::{Malformed, Record, Records, HEADER_LEN};
pub use wasmprobe_abi::columns::{Column, Int, Rows};
pub use wasmprobe_abi::fxhash::{self, FxBuildHasher, FxHashMap, FxHashSet, FxHasher};
pub use wasmprobe_abi::FieldKind;

/// The generated bindings of the `wasmprobe:plugin` world (for what the ergonomic API lacks).
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "wasmprobe:plugin/plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin_world",
        default_bindings_module: "wasmprobe_guest::bindings",
    });
}

use bindings::wasmprobe::plugin::{kernel, output, run, types};
pub use types::{Level, ProbeKind, Value};

/// A plugin: what [`export!`] turns into the component's exports.
pub trait Plugin {
    /// Reads the arguments and returns the probes to create. Runs before anything is traced;
    /// [`kernel_supports`] and [`has_symbol`] help choose a fallback.
    fn init(&mut self, args: &Args) -> Result<Plan, String>;

    /// Called once per event, in timestamp order within a batch (by the default
    /// [`Plugin::on_batch`]).
    fn on_event(&mut self, ev: &Event) {
        let _ = ev;
    }

    /// Called once per batch of events. The default calls [`Plugin::on_event`] for each
    /// event, in order. Override it to read whole columns instead ([`Batch::pids`],
    /// [`Batch::u64s`], ...): the fast path for counters and histograms, with no per-event
    /// object (see [`batch`]).
    fn on_batch(&mut self, batch: &Batch)
    where
        Self: Sized,
    {
        batch.events(|ev| self.on_event(ev));
    }

    /// Called before a batch's events when the kernel lost `count` events since the last batch.
    fn on_lost(&mut self, count: u64) {
        let _ = count;
    }

    /// Called after the last event of each batch: the place to hand a batch's aggregated
    /// counts to [`metrics`] (sent to the host right after).
    fn on_batch_end(&mut self) {}

    /// Called once at the end of the run: print tables and histograms here.
    fn finish(&mut self) {}
}

/// Exports a [`Plugin`] type (which must implement `Default`) as the component's plugin.
#[macro_export]
macro_rules! export {
    ($ty:ty) => {
        struct __WasmprobeExport;
        impl $crate::bindings::Guest for __WasmprobeExport {
            fn init(
                args: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
            ) -> ::std::result::Result<$crate::bindings::Plan, ::std::string::String> {
                $crate::rt::init(<$ty as ::std::default::Default>::default(), args)
            }
            fn on_batch(batch: ::std::vec::Vec<u8>, lost: u64) -> ::std::result::Result<(), ::std::string::String> {
                $crate::rt::on_batch::<$ty>(&batch, lost)
            }
            fn finish() -> ::std::result::Result<(), ::std::string::String> {
                $crate::rt::finish::<$ty>()
            }
        }
        $crate::bindings::__export_plugin_world!(__WasmprobeExport with_types_in $crate::bindings);
    };
}

/// The `--arg key=value` pairs of the command line, in order.
#[derive(Debug, Clone, Default)]
pub struct Args(Vec<(String, String)>);

impl Args {
    /// Wraps key/value pairs.
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Args(pairs)
    }

    /// The last value given for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The last value of `key` parsed as `T`; `Ok(None)` when absent, an error naming the key
    /// when it does not parse.
    pub fn parse<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, String>
    where
        T::Err: fmt::Display,
    {
        self.get(key).map(|v| v.parse::<T>().map_err(|e| format!("--arg {key}={v}: {e}"))).transpose()
    }

    /// All pairs, in command-line order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

/// The handle of a declared probe: its index in the plan. Compare it with [`Event::probe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ProbeId(pub u32);

/// The probes a plugin asks for, built in [`Plugin::init`].
#[derive(Debug, Clone, Default)]
pub struct Plan {
    probes: Vec<types::Probe>,
    /// Stacks asked for, by probe (`stacks.request` is called for each in `init`).
    stacks: Vec<(ProbeId, stacks::Kinds)>,
}

impl Plan {
    /// An empty plan.
    pub fn new() -> Self {
        Plan::default()
    }

    /// Adds a probe of any kind; the shortcuts below are usually clearer.
    pub fn add(&mut self, kind: ProbeKind, name: &str, target: &str, fetchargs: &str) -> ProbeId {
        self.probes.push(types::Probe {
            kind,
            name: name.to_string(),
            target: target.to_string(),
            fetchargs: fetchargs.to_string(),
            filter: None,
            maxactive: None,
            fields: None,
        });
        ProbeId(self.probes.len() as u32 - 1)
    }

    /// A kprobe on kernel function `target` (`SYMBOL[+OFFSET]`).
    pub fn kprobe(&mut self, name: &str, target: &str, fetchargs: &str) -> ProbeId {
        self.add(ProbeKind::Kprobe, name, target, fetchargs)
    }

    /// A kretprobe on the return of kernel function `target`.
    pub fn kretprobe(&mut self, name: &str, target: &str, fetchargs: &str) -> ProbeId {
        self.add(ProbeKind::Kretprobe, name, target, fetchargs)
    }

    /// A uprobe on `PATH:SYMBOL` or `PATH:0xOFFSET`; PATH may be a bare library name (`libc`).
    pub fn uprobe(&mut self, name: &str, target: &str, fetchargs: &str) -> ProbeId {
        self.add(ProbeKind::Uprobe, name, target, fetchargs)
    }

    /// A uretprobe on the return of a user function (`target` as for [`Plan::uprobe`]).
    pub fn uretprobe(&mut self, name: &str, target: &str, fetchargs: &str) -> ProbeId {
        self.add(ProbeKind::Uretprobe, name, target, fetchargs)
    }

    /// An existing tracepoint, `SYSTEM:EVENT` (e.g. `raw_syscalls:sys_enter`).
    pub fn tracepoint(&mut self, name: &str, target: &str) -> ProbeId {
        self.add(ProbeKind::Tracepoint, name, target, "")
    }

    /// An event probe on the existing event `SYSTEM.EVENT`.
    pub fn eprobe(&mut self, name: &str, target: &str, fetchargs: &str) -> ProbeId {
        self.add(ProbeKind::Eprobe, name, target, fetchargs)
    }

    /// Sets a kernel filter (ftrace syntax) on probe `id`.
    pub fn filter(&mut self, id: ProbeId, filter: &str) -> &mut Self {
        self.probes[id.0 as usize].filter = Some(filter.to_string());
        self
    }

    /// Sets maxactive of kretprobe `id`.
    pub fn maxactive(&mut self, id: ProbeId, n: u32) -> &mut Self {
        self.probes[id.0 as usize].maxactive = Some(n);
        self
    }

    /// Says that the plugin reads only `fields` of probe `id`'s events (format-file names,
    /// e.g. `&["file", "ret"]`; `common_pid` and the like are fields too, while `ev.pid()`,
    /// `ev.ts()` and `ev.cpu()` always work). The host then delivers just those fields:
    /// less to copy per event. Reading any other field gives 0 / "" (and `Event::field`
    /// `None`); a field the event does not have stops the run with an error naming it.
    pub fn fields(&mut self, id: ProbeId, fields: &[&str]) -> &mut Self {
        self.probes[id.0 as usize].fields = Some(fields.iter().map(|f| f.to_string()).collect());
        self
    }

    /// Asks for the kernel's call stack on every event of probe `id` ([`Event::kstack`]):
    /// the host arms ftrace's `stacktrace` trigger on the event.
    pub fn kstack(&mut self, id: ProbeId) -> &mut Self {
        self.stacks.push((id, stacks::Kinds::KERNEL));
        self
    }

    /// Asks for the user-space call stack of the task on every event of probe `id`
    /// ([`Event::ustack`]): ftrace's `userstacktrace`, which follows frame pointers and keeps
    /// at most 8 frames. Code built without frame pointers gives stacks that stop early.
    pub fn ustack(&mut self, id: ProbeId) -> &mut Self {
        self.stacks.push((id, stacks::Kinds::USER));
        self
    }

    /// The declarations so far.
    pub fn probes(&self) -> &[types::Probe] {
        &self.probes
    }

    /// Tells the host which probes want stacks (during `init`), and gives the WIT plan.
    pub(crate) fn into_wit(self) -> Result<types::Plan, String> {
        for (id, kinds) in &self.stacks {
            let p = self.probes.get(id.0 as usize).ok_or_else(|| format!("stacks asked for probe {} of none", id.0))?;
            stacks::request(&p.name, *kinds)?;
        }
        Ok(types::Plan { probes: self.probes })
    }
}

/// Prints one line of output (the host adds the newline). See also [`println!`].
pub fn print(line: &str) {
    output::print(line);
}

/// Prints a formatted line through the host (not WASI stdout): the plugin's own output.
#[macro_export]
macro_rules! println {
    () => {
        $crate::print("")
    };
    ($($arg:tt)*) => {
        $crate::print(&::std::format!($($arg)*))
    };
}

/// Emits one structured record (`--json` prints it as a JSON object, its fields in this order;
/// without `--json` it is printed as `name=value` pairs).
pub fn emit_record(fields: &[(&str, Value)]) {
    let owned: Vec<(String, Value)> = fields.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    output::emit(&owned);
}

/// Whether the user asked for records (`wasmprobe run --json`): then every line of output is a
/// JSON object (a [`println!`] line becomes `{"plugin": NAME, "line": LINE}`), and a plugin
/// with data should [`emit_record`] its fields instead of printing text. Fixed for the run.
pub fn wants_records() -> bool {
    output::wants_records()
}

/// Logs a message about the plugin itself, to the host's stderr.
pub fn log(level: Level, message: &str) {
    output::log(level, message);
}

/// Whether the kernel can do `feature` ("kprobe", "uprobe", "eprobe", "tracepoint").
pub fn kernel_supports(feature: &str) -> bool {
    kernel::supports(feature)
}

/// Whether the kernel has function `name`.
pub fn has_symbol(name: &str) -> bool {
    kernel::has_symbol(name)
}

/// Events the kernel lost so far in this run.
pub fn lost_events() -> u64 {
    run::lost_events()
}

/// The command name of `pid` as the host knows it (uncached; [`Event::comm`] caches).
pub fn comm_of(pid: i32) -> Option<String> {
    kernel::comm(pid)
}

/// A field of a probe's events, as the host's layout describes it.
#[derive(Debug, Clone)]
pub struct Field {
    /// The field's name in the format file.
    pub name: String,
    /// Offset from the start of the payload.
    pub offset: u32,
    /// Size in bytes (4 for `__data_loc` locators).
    pub size: u32,
    /// Whether an integer field is signed.
    pub signed: bool,
    /// How to read it.
    pub kind: FieldKind,
    /// Size of one array element.
    pub elem_size: u32,
}

impl Field {
    /// The bytes of this field in `payload`: for `__data_loc`/`__rel_loc` fields the data they
    /// locate, else the field itself. `None` when the payload is too short.
    pub fn bytes<'p>(&self, payload: &'p [u8]) -> Option<&'p [u8]> {
        let start = self.offset as usize;
        let own = payload.get(start..start + self.size as usize)?;
        if !self.kind.is_located() {
            return Some(own);
        }
        let loc = u32::from_le_bytes(own.get(..4)?.try_into().ok()?);
        let mut off = (loc & 0xffff) as usize;
        let len = (loc >> 16) as usize;
        if self.kind.is_relative() {
            off += start + self.size as usize;
        }
        payload.get(off..off + len)
    }

    /// The field as an unsigned integer (sign-extended to 64 bits first if signed). Arrays
    /// read their first element.
    #[inline]
    pub fn u64(&self, payload: &[u8]) -> Option<u64> {
        self.i64(payload).map(|v| v as u64)
    }

    /// The field as a signed integer (zero-extended if unsigned).
    #[inline]
    pub fn i64(&self, payload: &[u8]) -> Option<i64> {
        // The common case first: a 64-bit integer (u64, long, pointers on x86_64).
        if self.size == 8 && self.kind == FieldKind::Integer {
            let at = self.offset as usize;
            return payload.get(at..at + 8).map(|b| i64::from_le_bytes(b.try_into().unwrap()));
        }
        let size = match self.kind {
            FieldKind::Integer | FieldKind::Other => self.size,
            FieldKind::Array => self.elem_size,
            _ => return None,
        };
        let b = payload.get(self.offset as usize..self.offset as usize + size as usize)?;
        Some(match (size, self.signed) {
            (1, false) => b[0] as i64,
            (1, true) => b[0] as i8 as i64,
            (2, false) => u16::from_le_bytes([b[0], b[1]]) as i64,
            (2, true) => i16::from_le_bytes([b[0], b[1]]) as i64,
            (4, false) => u32::from_le_bytes(b.try_into().ok()?) as i64,
            (4, true) => i32::from_le_bytes(b.try_into().ok()?) as i64,
            (8, _) => i64::from_le_bytes(b.try_into().ok()?),
            _ => return None,
        })
    }

    /// The field as text: strings up to their NUL, lossily decoded; integers in decimal.
    pub fn str<'p>(&self, payload: &'p [u8]) -> Cow<'p, str> {
        match self.kind {
            FieldKind::Integer | FieldKind::Other => match self.i64(payload) {
                Some(v) if self.signed => Cow::Owned(v.to_string()),
                Some(v) => Cow::Owned((v as u64).to_string()),
                None => Cow::Borrowed(""),
            },
            _ => {
                let b = self.bytes(payload).unwrap_or(&[]);
                let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                String::from_utf8_lossy(&b[..end])
            }
        }
    }
}

/// What the SDK knows about one declared probe once the host has sent the layouts.
#[derive(Debug)]
pub(crate) struct ProbeInfo {
    pub(crate) id: ProbeId,
    pub(crate) name: String,
    pub(crate) fields: Vec<Field>,
    /// Field names already looked up, keyed by the address and length of the `&'static str`
    /// the plugin passed: resolved once per probe and name, then a pointer compare.
    lookups: RefCell<Vec<(usize, usize, Option<u16>)>>,
    /// The last lookup that found a field: checked first, without touching the RefCell.
    last: Cell<(usize, usize, u16)>,
    /// The last 64-bit integer field read through [`ProbeInfo::read_i64`], with its offset:
    /// the field a plugin reads per event (a syscall id, a size) costs one compare and one
    /// load, not a walk through `fields` (4-5 ns per event inside Wasm, the delivery bench's
    /// keyed count and histogram measured).
    /// The key is the name's address and length in one word (`name_key`): one compare.
    word: Cell<(u64, u32)>,
}

impl ProbeInfo {
    pub(crate) fn new(id: ProbeId, name: String) -> Self {
        ProbeInfo {
            id,
            name,
            fields: Vec::new(),
            lookups: RefCell::new(Vec::new()),
            last: Cell::new((0, 0, 0)),
            word: Cell::new((0, 0)),
        }
    }

    #[inline]
    pub(crate) fn field(&self, name: &'static str) -> Option<&Field> {
        let key = (name.as_ptr() as usize, name.len());
        let (p, l, i) = self.last.get();
        if (p, l) == key {
            return self.fields.get(i as usize);
        }
        let found = {
            let lookups = self.lookups.borrow();
            lookups.iter().find(|(p, l, _)| (*p, *l) == key).map(|&(_, _, i)| i)
        };
        let index = match found {
            Some(i) => i,
            None => {
                let i = self.fields.iter().position(|f| f.name == name).map(|i| i as u16);
                self.lookups.borrow_mut().push((key.0, key.1, i));
                i
            }
        };
        let i = index?;
        self.last.set((key.0, key.1, i));
        self.fields.get(i as usize)
    }

    /// Integer field `name` of `payload` as i64 (what `Field::i64` gives), the last 64-bit
    /// field read being remembered with its offset.
    #[inline(always)]
    pub(crate) fn read_i64(&self, name: &'static str, payload: &[u8]) -> Option<i64> {
        let (key, off) = self.word.get();
        if key == name_key(name) {
            let off = off as usize;
            return payload.get(off..off + 8).map(|b| i64::from_le_bytes(b.try_into().unwrap()));
        }
        self.read_i64_slow(name, payload)
    }

    #[inline(never)]
    fn read_i64_slow(&self, name: &'static str, payload: &[u8]) -> Option<i64> {
        let f = self.field(name)?;
        if f.size == 8 && f.kind == FieldKind::Integer {
            self.word.set((name_key(name), f.offset));
        }
        f.i64(payload)
    }

    pub(crate) fn field_by_name(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// A `&'static str` as one word: its address and its length (a literal's are constants, so
/// comparing with a remembered key is one compare). Exact on wasm32 (32-bit addresses); a
/// 64-bit build (the SDK's own tests) would need two literals whose addresses differ by their
/// lengths' xor shifted 32 bits up to collide, which one binary's literals cannot. Never 0.
#[inline(always)]
fn name_key(name: &'static str) -> u64 {
    (name.as_ptr() as usize as u64).rotate_left(32) ^ name.len() as u64
}

/// Command names looked up through the host, cached per pid for one batch (a process that
/// execs changes its comm, and pids are reused, so the cache must not live long).
#[derive(Default)]
pub(crate) struct CommCache(RefCell<FxHashMap<i32, Rc<str>>>);

impl CommCache {
    pub(crate) fn get(&self, pid: i32) -> Rc<str> {
        if let Some(c) = self.0.borrow().get(&pid) {
            return c.clone();
        }
        // The kernel prints "<...>" for a pid whose comm it did not save.
        let comm: Rc<str> = if pid == 0 {
            Rc::from("<idle>")
        } else {
            kernel::comm(pid).map(Rc::from).unwrap_or_else(|| Rc::from("<...>"))
        };
        self.0.borrow_mut().insert(pid, comm.clone());
        comm
    }

    pub(crate) fn clear(&self) {
        self.0.borrow_mut().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(kind: FieldKind, offset: u32, size: u32, signed: bool) -> Field {
        Field { name: "f".into(), offset, size, signed, kind, elem_size: 1 }
    }

    #[test]
    fn data_loc_and_rel_loc_strings_lose_their_nul() {
        let mut p = vec![0u8; 16];
        p.extend_from_slice(b"/etc/passwd\0");
        p[8..12].copy_from_slice(&((12u32 << 16) | 16).to_le_bytes());
        assert_eq!(field(FieldKind::DataLocString, 8, 4, false).str(&p), "/etc/passwd");
        // __rel_loc: offset counted from the end of the field (8 + 4).
        p[8..12].copy_from_slice(&((12u32 << 16) | 4).to_le_bytes());
        assert_eq!(field(FieldKind::RelLocString, 8, 4, false).str(&p), "/etc/passwd");
        // A locator pointing past the payload reads as empty, never panics.
        p[8..12].copy_from_slice(&((200u32 << 16) | 16).to_le_bytes());
        assert_eq!(field(FieldKind::DataLocString, 8, 4, false).str(&p), "");
    }

    #[test]
    fn integers_extend_by_sign_and_char_arrays_stop_at_nul() {
        let mut p = vec![0u8; 32];
        p[8..12].copy_from_slice(&(-2i32).to_le_bytes());
        assert_eq!(field(FieldKind::Integer, 8, 4, true).i64(&p), Some(-2));
        assert_eq!(field(FieldKind::Integer, 8, 4, false).i64(&p), Some(0xffff_fffe));
        assert_eq!(field(FieldKind::Integer, 8, 4, true).str(&p), "-2");
        assert_eq!(field(FieldKind::Integer, 30, 4, true).i64(&p), None);
        p[16..20].copy_from_slice(b"bash");
        assert_eq!(field(FieldKind::CharArray, 16, 16, true).str(&p), "bash");
    }
}
