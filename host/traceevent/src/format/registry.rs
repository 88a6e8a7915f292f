//! [`EventFormats`]: every event format of a trace by id, with what printing their records
//! needs besides the formats (page header, byte order, long size, comms, symbols).

use std::collections::HashMap;

use std::sync::OnceLock;

use super::EventFormat;
use crate::endian::Endian;
use crate::error::Result;
use crate::header::{EventHeader, PageHeader};
use crate::symbols::Symbols;
use crate::text::{Dialect, PrintContext, Printer};

/// Every event format of a trace, by id, with what decoding them needs: the page header,
/// the kernel's long size and byte order, and the pid → comm map.
#[derive(Debug, Clone)]
pub struct EventFormats {
    page_header: PageHeader,
    event_header: EventHeader,
    /// The formats, each with its printer.
    entries: Vec<Entry>,
    by_id: HashMap<u32, usize>,
    /// `common_type` (a u16) → index + 1 into `entries`, 0 for none: the per-record lookup.
    by_type: Vec<TypeSlot>,
    /// pid → where its comm is in `comm_text` (start, end), hashed with the project's one
    /// cheap hasher (keys are pids, not an adversary's choice; SipHash would cost most of the
    /// per-record lookup).
    cmdlines: HashMap<i32, (u32, u32), wasmprobe_abi::fxhash::FxBuildHasher>,
    /// The comms of `cmdlines`: the `saved_cmdlines` texts whole (one copy, not an allocation
    /// per pid), and the comms added one by one.
    comm_text: String,
    /// The pids below [`KNOWN_PIDS`] that `cmdlines` holds, one bit each: the sched plugin
    /// asks for two pids per `sched_switch`, nearly always known.
    known: Vec<u64>,
    /// Counts changes of `cmdlines`, for callers that cache what [`EventFormats::comm`] said.
    comm_generation: u64,
    /// libtraceevent's comm list, while it is one (see [`CommList`]).
    comm_list: Option<CommList>,
    /// Pids libtraceevent holds more than one comm for (see [`Duplicates`]).
    duplicates: Option<Duplicates>,
    /// Counts changes that may change a format's text (its printer dropped: a new dialect or
    /// symbols, a format replaced), for callers that keep texts printed before.
    text_generation: u64,
    symbols: Symbols,
    dialect: Dialect,
}

/// Pids below this are looked up in [`EventFormats`]' `known` bits (the kernel's largest
/// `pid_max`, 2^22: 512 KiB of bits at most, grown to the largest pid seen).
const KNOWN_PIDS: i32 = 1 << 22;

/// A format and its printer for the registry's dialect, compiled on first use.
#[derive(Debug, Clone)]
struct Entry {
    format: FormatCell,
    printer: PrinterSlot,
}

/// A format, parsed when added or (see [`EventFormats::add_format_deferred`]) when first
/// needed: `None` once parsed if its text does not parse, and then the entry counts as absent.
#[derive(Debug, Clone)]
struct FormatCell {
    parsed: OnceLock<Option<EventFormat>>,
    /// The system and text of a deferred format, until it is parsed.
    source: Option<std::sync::Arc<(String, String)>>,
}

impl FormatCell {
    fn parsed(f: EventFormat) -> Self {
        FormatCell { parsed: OnceLock::from(Some(f)), source: None }
    }

    /// The format, parsed now if it was deferred.
    #[inline]
    fn get(&self, endian: Endian) -> Option<&EventFormat> {
        self.parsed
            .get_or_init(|| {
                let (system, text) = &**self.source.as_ref()?;
                EventFormat::parse(system, text, endian).ok()
            })
            .as_ref()
    }
}

/// The id of a format text if it has exactly one `ID:` line, of a number, before its
/// `print fmt:` (what [`EventFormat::parse`] would take it to be, if the text parses).
fn quick_id(text: &str) -> Option<u32> {
    let mut id = None;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with("print fmt:") {
            break;
        }
        if let Some(v) = l.strip_prefix("ID:") {
            if id.is_some() {
                return None;
            }
            id = Some(v.trim().parse::<u32>().ok()?);
        }
    }
    id
}

/// An entry of `EventFormats::by_type`: index + 1 into `entries` (0: none), with
/// [`UNPARSED`] set while the format is deferred and not parsed yet. The per-record lookup
/// reads this word alone; the bit is cleared (or the word zeroed, for a text that does not
/// parse) by the first record's lookup, through `&self`, hence the atomic.
#[derive(Debug, Default)]
struct TypeSlot(std::sync::atomic::AtomicU32);

/// See [`TypeSlot`].
const UNPARSED: u32 = 1 << 31;

impl Clone for TypeSlot {
    fn clone(&self) -> Self {
        TypeSlot(std::sync::atomic::AtomicU32::new(self.0.load(std::sync::atomic::Ordering::Relaxed)))
    }
}

/// What [`EventFormats::format_at`] gives for an index whose format did not parse (an index
/// from [`EventFormats::index_of`] or [`EventFormats::index_of_record`] never is one).
static NO_FORMAT: EventFormat = EventFormat {
    system: String::new(),
    name: String::new(),
    id: 0,
    common_fields: Vec::new(),
    fields: Vec::new(),
    print_fmt: None,
    print_raw: None,
    registers_comms: false,
};

/// A format's printer, compiled on first use; a clone, or a change of what compiling depends
/// on (dialect, symbols), starts it empty again.
#[derive(Debug, Default)]
struct PrinterSlot(OnceLock<Printer>);

impl Clone for PrinterSlot {
    fn clone(&self) -> Self {
        PrinterSlot::default()
    }
}

impl EventFormats {
    /// An empty registry for a kernel with this page header.
    pub fn new(page_header: PageHeader) -> Self {
        EventFormats {
            page_header,
            event_header: EventHeader::default(),
            entries: Vec::new(),
            by_id: HashMap::new(),
            by_type: Vec::new(),
            cmdlines: HashMap::default(),
            comm_text: String::new(),
            known: Vec::new(),
            comm_generation: 0,
            comm_list: None,
            duplicates: None,
            text_generation: 0,
            symbols: Symbols::new(),
            dialect: Dialect::Kernel,
        }
    }

    /// Sets the parsed `header_event` (defaults to the standard one).
    pub fn set_event_header(&mut self, h: EventHeader) {
        self.event_header = h;
    }

    /// The `header_event` in use.
    pub fn event_header(&self) -> &EventHeader {
        &self.event_header
    }

    /// The sub-buffer header layout.
    pub fn page_header(&self) -> &PageHeader {
        &self.page_header
    }

    /// The kernel's `long` size in bytes.
    pub fn long_size(&self) -> usize {
        self.page_header.long_size()
    }

    /// Byte order of the data.
    pub fn endian(&self) -> Endian {
        self.page_header.endian
    }

    /// Chooses whose text `print` reproduces (default: the kernel's `trace` file).
    pub fn set_dialect(&mut self, d: Dialect) {
        self.dialect = d;
        self.forget_printers();
    }

    /// Drops the compiled printers (they are compiled again on first use).
    fn forget_printers(&mut self) {
        self.entries.iter_mut().for_each(|e| e.printer = PrinterSlot::default());
        self.text_generation += 1;
    }

    /// A number that changes whenever a format's text may change for the same record bytes
    /// (see [`EventFormats::comm_generation`] for comms): texts kept from before are good
    /// while it stays the same.
    pub fn text_generation(&self) -> u64 {
        self.text_generation
    }

    /// The format at `i` (an index [`EventFormats::index_of_record`] gave) and its
    /// printer, compiled on first use.
    #[inline]
    fn entry(&self, i: usize) -> (&EventFormat, &Printer) {
        let e = &self.entries[i];
        let format = e.format.get(self.endian()).unwrap_or(&NO_FORMAT);
        (format, e.printer.0.get_or_init(|| Printer::compile(format, &self.print_context())))
    }

    /// The format at `i` (an index [`EventFormats::index_of_record`] gave).
    #[inline]
    pub(crate) fn format_at(&self, i: usize) -> &EventFormat {
        self.entries[i].format.get(self.endian()).unwrap_or(&NO_FORMAT)
    }

    /// Appends the info text of a record whose format is at `i` (an index
    /// [`EventFormats::index_of_record`] gave) to `out`.
    #[inline]
    pub(crate) fn print_at(&self, i: usize, data: &[u8], out: &mut Vec<u8>) {
        let (format, printer) = self.entry(i);
        printer.print(format, data, &self.print_context(), out);
    }

    /// Which bytes of a record of the format at `i` its info text depends on, if it depends
    /// on nothing else (see [`crate::text::memo`]); `None` in the kernel dialect, which does
    /// not memoize.
    pub(crate) fn info_key(&self, i: usize) -> Option<crate::text::libtraceevent::InfoKey> {
        let (format, printer) = self.entry(i);
        printer.libtraceevent()?.info_key(format)
    }

    /// The index of the format with id `id`.
    #[inline]
    pub(crate) fn index_of(&self, id: u32) -> Option<usize> {
        match u16::try_from(id) {
            Ok(t) => self.index_of_type(t),
            Err(_) => {
                let i = self.by_id.get(&id).copied()?;
                self.entries[i].format.get(self.endian()).map(|_| i)
            }
        }
    }

    /// The index of the format whose records have `common_type` `t`, parsing a deferred
    /// format first.
    #[inline]
    fn index_of_type(&self, t: u16) -> Option<usize> {
        let slot = &self.by_type.get(usize::from(t))?.0;
        let v = slot.load(std::sync::atomic::Ordering::Relaxed);
        if v & UNPARSED == 0 {
            return (v as usize).checked_sub(1);
        }
        self.parse_deferred(slot, v)
    }

    /// [`EventFormats::index_of_type`] of a deferred format: parsed now, and its
    /// [`TypeSlot`] set to say so (or to none, if the text does not parse).
    #[cold]
    fn parse_deferred(&self, slot: &std::sync::atomic::AtomicU32, v: u32) -> Option<usize> {
        let i = ((v & !UNPARSED) as usize).checked_sub(1)?;
        let parsed = self.entries.get(i)?.format.get(self.endian()).is_some();
        slot.store(if parsed { v & !UNPARSED } else { 0 }, std::sync::atomic::Ordering::Relaxed);
        parsed.then_some(i)
    }

    /// The context for printing with this registry's long size, byte order and dialect.
    pub fn print_context(&self) -> PrintContext<'_> {
        PrintContext {
            long_size: self.long_size() as u8,
            endian: self.endian(),
            dialect: self.dialect,
            symbols: Some(&self.symbols),
        }
    }

    /// Parses a format file of `system` and adds it; returns its id. A format with an id
    /// already present replaces it.
    pub fn add_format(&mut self, system: &str, text: &str) -> Result<u32> {
        let f = EventFormat::parse(system, text, self.endian())?;
        let id = f.id;
        self.insert(f);
        Ok(id)
    }

    /// [`EventFormats::add_format`], except that the text is parsed when a record or a
    /// caller first needs the format: a trace.dat of `trace-cmd record -e all` carries some
    /// 2,000 formats, of which a report prints a few hundred (parsing them all took a fifth of
    /// such a report). The id is read at once. A text that turns out not to parse leaves the
    /// format absent, as `add_format` would have; a text whose id is not plain or is already
    /// held is parsed now (a replacement keeps `add_format`'s rules).
    pub fn add_format_deferred(&mut self, system: &str, text: &str) {
        match quick_id(text) {
            Some(id) if !self.by_id.contains_key(&id) => {
                let source = Some(std::sync::Arc::new((system.to_string(), text.to_string())));
                self.put(id, FormatCell { parsed: OnceLock::new(), source });
            }
            _ => {
                let _ = self.add_format(system, text);
            }
        }
    }

    /// Adds a parsed format.
    pub fn insert(&mut self, f: EventFormat) {
        self.put(f.id, FormatCell::parsed(f));
    }

    /// Adds (or replaces) the format of `id`.
    fn put(&mut self, id: u32, format: FormatCell) {
        let i = match self.by_id.get(&id) {
            Some(&i) => {
                self.entries[i] = Entry { format, printer: PrinterSlot::default() };
                self.text_generation += 1;
                i
            }
            None => {
                self.by_id.insert(id, self.entries.len());
                self.entries.push(Entry { format, printer: PrinterSlot::default() });
                self.entries.len() - 1
            }
        };
        if let Ok(t) = u16::try_from(id) {
            if self.by_type.len() <= usize::from(t) {
                self.by_type.resize_with(usize::from(t) + 1, TypeSlot::default);
            }
            let deferred = self.entries[i].format.parsed.get().is_none();
            let v = (i as u32 + 1) | if deferred { UNPARSED } else { 0 };
            self.by_type[usize::from(t)] = TypeSlot(std::sync::atomic::AtomicU32::new(v));
        }
    }

    /// The format with this id.
    pub fn by_id(&self, id: u32) -> Option<&EventFormat> {
        self.by_id.get(&id).and_then(|&i| self.entries[i].format.get(self.endian()))
    }

    /// The format of `system`/`name`.
    pub fn find(&self, system: &str, name: &str) -> Option<&EventFormat> {
        self.iter().find(|f| f.name == name && (system.is_empty() || f.system == system))
    }

    /// The format of a record payload, from its `common_type`.
    #[inline]
    pub fn for_record(&self, data: &[u8]) -> Option<&EventFormat> {
        Some(self.format_at(self.index_of_record(data)?))
    }

    /// The index of a record payload's format (for [`EventFormats::format_at`] and
    /// [`EventFormats::print_at`]).
    #[inline]
    pub(crate) fn index_of_record(&self, data: &[u8]) -> Option<usize> {
        // A deferred format is parsed by its first record.
        self.index_of_type(crate::subbuf::common_type(data, self.endian())?)
    }

    /// Every format, in insertion order (deferred ones parsed now; those that do not parse
    /// left out).
    pub fn iter(&self) -> impl Iterator<Item = &EventFormat> {
        let endian = self.endian();
        self.entries.iter().filter_map(move |e| e.format.get(endian))
    }

    /// Number of formats.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// True if no format was added.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Adds the `<pid> <comm>` lines of a `saved_cmdlines` text; unparsable lines are skipped.
    pub fn parse_cmdlines(&mut self, text: &str) {
        // A line per pid: room for them all at once, not by rehashing as they come.
        let b = text.as_bytes();
        // (The compiler vectorizes this count.)
        self.cmdlines.reserve(b.iter().filter(|&&c| c == b'\n').count() + 1);
        // The comms stay where they are in the text, which is kept whole.
        let base = self.comm_text.len();
        self.comm_text.push_str(text);
        let mut p = 0;
        while p < b.len() {
            // `pid comm` as the kernel writes it (up to 9 digits: no overflow; a comm that
            // ends in ASCII other than whitespace: nothing to trim), read in one pass.
            let digits = b[p..].iter().take(10).take_while(|c| c.is_ascii_digit()).count();
            let comm = p + digits + 1;
            let end = b[p..].iter().position(|&c| c == b'\n').map_or(b.len(), |n| p + n);
            if (1..10).contains(&digits)
                && b.get(comm - 1) == Some(&b' ')
                && comm <= end
                && (comm == end || (0x21..0x7f).contains(&b[end - 1]))
            {
                let pid = b[p..comm - 1].iter().fold(0, |n, &c| n * 10 + i32::from(c - b'0'));
                self.set_comm_at(pid, base + comm, base + end);
            } else if let Some((pid, comm)) = text[p..end].trim_start().split_once(' ') {
                // Any other line, by the general rules.
                if let Ok(pid) = pid.parse::<i32>() {
                    let comm = comm.trim_end();
                    let at = comm.as_ptr() as usize - text.as_ptr() as usize;
                    self.set_comm_at(pid, base + at, base + at + comm.len());
                }
            }
            p = end + 1;
        }
        self.comm_generation += 1;
    }

    /// Sets the comm of `pid` (its known bit too).
    fn set_comm(&mut self, pid: i32, comm: &str) {
        let (start, end) = self.keep_comm(comm);
        self.set_comm_at(pid, start, end);
    }

    /// Appends `comm` to `comm_text`: where it is now.
    fn keep_comm(&mut self, comm: &str) -> (usize, usize) {
        let start = self.comm_text.len();
        self.comm_text.push_str(comm);
        (start, self.comm_text.len())
    }

    /// Sets the comm of `pid` to `comm_text[start..end]` (its known bit too); left unknown
    /// past 4 GiB of comms.
    fn set_comm_at(&mut self, pid: i32, start: usize, end: usize) {
        let (Ok(start), Ok(end)) = (u32::try_from(start), u32::try_from(end)) else {
            return;
        };
        if (0..KNOWN_PIDS).contains(&pid) {
            let word = pid as usize >> 6;
            if self.known.len() <= word {
                self.known.resize(word + 1, 0);
            }
            self.known[word] |= 1 << (pid & 63);
        }
        self.cmdlines.insert(pid, (start, end));
    }

    /// Whether `cmdlines` holds `pid`.
    #[inline]
    pub(crate) fn has_comm(&self, pid: i32) -> bool {
        if (0..KNOWN_PIDS).contains(&pid) {
            self.known.get(pid as usize >> 6).is_some_and(|w| w >> (pid & 63) & 1 != 0)
        } else {
            self.cmdlines.contains_key(&pid)
        }
    }

    /// Adds the symbols of a `/proc/kallsyms` text (for `%pS` and friends).
    pub fn parse_kallsyms(&mut self, text: &str) {
        self.symbols.parse_kallsyms(text);
        self.forget_printers();
    }

    /// Adds a kallsyms text that `load` gives when a record first needs a symbol (see
    /// [`Symbols::defer_kallsyms`]).
    pub fn defer_kallsyms(&mut self, load: impl Fn() -> String + Send + Sync + 'static) {
        self.symbols.defer_kallsyms(load);
        self.forget_printers();
    }

    /// [`EventFormats::defer_kallsyms`] with a loader that may give the text without a copy
    /// (see [`crate::symbols::KallsymsText`]).
    pub fn defer_kallsyms_text(&mut self, load: impl Fn() -> crate::symbols::KallsymsText + Send + Sync + 'static) {
        self.symbols.defer_kallsyms_text(load);
        self.forget_printers();
    }

    /// Adds the strings of a `printk_formats` text (for `%s` of kernel string pointers).
    pub fn parse_printk_formats(&mut self, text: &str) {
        self.symbols.parse_printk_formats(text);
        self.forget_printers();
    }

    /// The symbol and string tables.
    pub fn symbols(&self) -> &Symbols {
        &self.symbols
    }

    /// Starts keeping comm registrations the way libtraceevent does before its first lookup
    /// of a pid (see [`CommList`]); [`EventFormats::end_comm_list`] ends it. For a report that
    /// must print what `trace-cmd report` prints: call it once the file's cmdlines are in.
    pub fn begin_comm_list(&mut self) {
        self.comm_list = Some(CommList::default());
    }

    /// Whether registrations are kept as libtraceevent's list (between
    /// [`EventFormats::begin_comm_list`] and [`EventFormats::end_comm_list`]).
    #[inline]
    pub fn keeps_comm_list(&self) -> bool {
        self.comm_list.is_some()
    }

    /// Ends the list: what libtraceevent does at its first lookup of a pid that is not 0
    /// (`cmdline_init`: the list becomes an array sorted by pid, duplicates and all, in
    /// which each later lookup is a binary search). A pid registered more than once meanwhile
    /// (a task that `exec`ed: the file's cmdlines name it by its new comm, a `sched_switch`
    /// before the first lookup by its old one) then shows the comm that search lands on.
    pub fn end_comm_list(&mut self) {
        let Some(list) = self.comm_list.take() else {
            return;
        };
        // A pid known before the list began (from the file) keeps the comm it had: none of
        // the registrations replaced it.
        let from_file = |pid: &i32| self.cmdlines.contains_key(pid) && !list.added.contains(pid);
        let mut count: HashMap<i32, usize> = HashMap::new();
        for &(pid, _) in &list.registered {
            *count.entry(pid).or_insert(usize::from(from_file(&pid))) += 1;
        }
        // Entries of a pid in the sorted array are in list order: the latest registered first
        // (registrations are prepended), the file's line last.
        let mut comms: HashMap<i32, Vec<(u32, u32)>> = HashMap::new();
        for &(pid, at) in list.registered.iter().rev() {
            if pid != 0 && count[&pid] > 1 {
                comms.entry(pid).or_default().push(at);
            }
        }
        if comms.is_empty() {
            return;
        }
        for (pid, c) in comms.iter_mut() {
            if from_file(pid) {
                c.push(self.cmdlines[pid]);
            }
        }
        let file = self.cmdlines.keys().copied().filter(|pid| !list.added.contains(pid));
        let mut pids: Vec<i32> = file.chain(list.registered.iter().map(|(pid, _)| *pid)).collect();
        pids.sort_unstable();
        self.duplicates = Some(Duplicates { pids, comms });
        self.settle_duplicates();
    }

    /// Sets each duplicated pid's comm to the one libtraceevent's binary search finds now.
    fn settle_duplicates(&mut self) {
        let Some(d) = &self.duplicates else {
            return;
        };
        let found: Vec<(i32, (u32, u32))> = d
            .comms
            .iter()
            .filter_map(|(&pid, comms)| {
                let hit = glibc_bsearch(&d.pids, pid)?;
                let run = d.pids.partition_point(|&p| p < pid);
                comms.get(hit - run).map(|&at| (pid, at))
            })
            .collect();
        for (pid, at) in found {
            if self.cmdlines.insert(pid, at) != Some(at) {
                self.comm_generation += 1;
            }
        }
    }

    /// Records `comm` as the command of `pid`.
    pub fn add_cmdline(&mut self, pid: i32, comm: &str) {
        self.set_comm(pid, comm);
        self.comm_generation += 1;
    }

    /// Records `comm` as the command of `pid` unless `pid` already has one (or is 0), as
    /// libtraceevent's `tep_register_comm` does.
    pub fn register_comm(&mut self, pid: i32, comm: &str) {
        if pid != 0 && !self.has_comm(pid) {
            self.set_comm(pid, comm);
            self.comm_generation += 1;
        }
    }

    /// Applies what printing this record does to the registry besides the text: in
    /// [`Dialect::LibTraceEvent`], the sched plugin of libtraceevent registers the comms of
    /// `sched_switch` and `sched_wakeup` records, which later lines then show. Call it after
    /// printing each record to reproduce `trace-cmd report` exactly.
    pub fn note_record(&mut self, data: &[u8]) {
        if let Some(i) = self.index_of_record(data) {
            self.note_record_at(i, data);
        }
    }

    /// The compiled event at `i` if its records register comms (the sched plugin's events,
    /// in libtraceevent's dialect).
    fn comm_event(&self, i: usize) -> Option<&crate::text::libtraceevent::EventText> {
        if self.dialect != Dialect::LibTraceEvent || !self.format_at(i).registers_comms() {
            return None;
        }
        self.entry(i).1.libtraceevent()
    }

    /// The pid fields, (offset, size), of a record of the format at `i` that decide whether
    /// [`EventFormats::note_record_at`] has anything to do: nothing when each pid they hold
    /// is 0 or [known](EventFormats::has_comm). None for a format that registers no comms.
    pub(crate) fn comm_pid_fields_at(&self, i: usize) -> [Option<(usize, usize)>; 2] {
        self.comm_event(i).map_or([None, None], |e| e.comm_pid_fields())
    }

    /// [`EventFormats::note_record`] of a record whose format is at `i` (what
    /// [`EventFormats::index_of_record`] gave).
    pub(crate) fn note_record_at(&mut self, i: usize, data: &[u8]) {
        let Some(event) = self.comm_event(i) else {
            return;
        };
        let listing = self.comm_list.is_some();
        // While libtraceevent keeps a list, every registration counts, pid 0 and known pids too.
        let pairs = event.registered_comms(data, self.endian(), |pid| !listing && (pid == 0 || self.has_comm(pid)));
        for (pid, comm) in pairs.into_iter().flatten() {
            let comm = String::from_utf8_lossy(comm);
            if listing {
                let (start, end) = self.keep_comm(&comm);
                // Past 4 GiB of comms, as in set_comm_at: not kept.
                let (Ok(s), Ok(e)) = (u32::try_from(start), u32::try_from(end)) else {
                    continue;
                };
                let added = pid != 0 && !self.has_comm(pid);
                if let Some(list) = &mut self.comm_list {
                    list.registered.push((pid, (s, e)));
                    if added {
                        list.added.push(pid);
                    }
                }
                if added {
                    self.set_comm_at(pid, start, end);
                    self.comm_generation += 1;
                }
            } else if !self.has_comm(pid) {
                self.set_comm(pid, &comm);
                self.comm_generation += 1;
                if let Some(d) = &mut self.duplicates {
                    // `add_new_comm`: into the sorted array, which moves the searches.
                    let at = d.pids.partition_point(|&p| p < pid);
                    d.pids.insert(at, pid);
                    self.settle_duplicates();
                }
            }
        }
    }

    /// A number that changes whenever [`EventFormats::comm`] may answer differently: text
    /// built from comms can be kept while it stays the same.
    pub fn comm_generation(&self) -> u64 {
        self.comm_generation
    }

    /// The command of `pid` as trace output shows it: `<idle>` for 0, `<...>` if unknown.
    pub fn comm(&self, pid: i32) -> &str {
        if pid == 0 {
            return "<idle>";
        }
        self.cmdlines.get(&pid).map_or("<...>", |&(start, end)| &self.comm_text[start as usize..end as usize])
    }

    /// Appends the info text of a record payload; `[UNKNOWN EVENT]`-free: an unknown id prints
    /// as `unknown event id N`. Never fails.
    pub fn print_info(&self, data: &[u8], out: &mut String) {
        crate::text::append_to_string(out, |bytes| self.print_info_bytes(data, bytes));
    }

    /// [`EventFormats::print_info`] into bytes (the text is UTF-8). Compiles the record's
    /// format on its first record; allocates nothing else.
    pub fn print_info_bytes(&self, data: &[u8], out: &mut Vec<u8>) {
        match self.index_of_record(data) {
            Some(i) => self.print_at(i, data, out),
            None => {
                use std::io::Write;
                let id = crate::subbuf::common_type(data, self.endian());
                let _ = match id {
                    Some(id) => write!(out, "unknown event id {id}"),
                    None => write!(out, "truncated record of {} bytes", data.len()),
                };
            }
        }
    }

    /// Appends the info text of a record whose format is `format` (one of this registry's,
    /// as [`EventFormats::for_record`] gave it) to `out`; nothing for a format it does not
    /// hold. For callers that looked the format up already.
    #[inline]
    pub fn print_record(&self, format: &EventFormat, data: &[u8], out: &mut Vec<u8>) {
        if let Some(i) = self.index_of(format.id) {
            self.print_at(i, data, out);
        }
    }
}

/// libtraceevent's comms before its first lookup of a pid that is not 0: a list that every
/// `tep_register_comm` prepends to, duplicates and pid 0 included (it checks for a known pid
/// only once the list has become an array).
#[derive(Debug, Clone, Default)]
struct CommList {
    /// Registrations since the file's cmdlines, in order: pid, comm (in `comm_text`).
    registered: Vec<(i32, (u32, u32))>,
    /// The pids of `registered` that were not known before (few: the list lasts until the
    /// first line of a task).
    added: Vec<i32>,
}

/// libtraceevent's comm array once it holds a pid more than once: every pid of the array,
/// sorted (duplicates and all, as glibc's stable sort leaves them), and, for each pid held
/// more than once, its comms in array order. Which of them a lookup shows depends on where
/// the binary search lands, which every pid added later moves.
#[derive(Debug, Clone)]
struct Duplicates {
    pids: Vec<i32>,
    comms: HashMap<i32, Vec<(u32, u32)>>,
}

/// Where glibc's `bsearch` finds `key` in `sorted` (halving `[l, u)` at `(l + u) / 2`), if
/// anywhere: among equal keys, the first its halving meets.
fn glibc_bsearch(sorted: &[i32], key: i32) -> Option<usize> {
    let (mut l, mut u) = (0, sorted.len());
    while l < u {
        let i = (l + u) / 2;
        match key.cmp(&sorted[i]) {
            std::cmp::Ordering::Less => u = i,
            std::cmp::Ordering::Greater => l = i + 1,
            std::cmp::Ordering::Equal => return Some(i),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tests::SCHED_SWITCH;

    #[test]
    fn registry_and_cmdlines() {
        let mut r = EventFormats::new(PageHeader::standard(8, Endian::Little, 4096).unwrap());
        assert_eq!(r.add_format("sched", SCHED_SWITCH).unwrap(), 372);
        assert_eq!(r.by_id(372).unwrap().name, "sched_switch");
        assert!(r.find("sched", "sched_switch").is_some());
        r.parse_cmdlines("1 systemd\n  42 kworker/0:1\nbad\n");
        assert_eq!(r.comm(0), "<idle>");
        assert_eq!(r.comm(1), "systemd");
        assert_eq!(r.comm(42), "kworker/0:1");
        assert_eq!(r.comm(7), "<...>");
        let mut d = vec![0u8; 64];
        d[0..2].copy_from_slice(&372u16.to_le_bytes());
        assert_eq!(r.for_record(&d).unwrap().id, 372);
    }

    /// A format added deferred is the format added eagerly, parsed when first needed; one
    /// whose text does not parse is absent, as `add_format` leaves it; ids already held are
    /// replaced by `add_format`'s rules.
    #[test]
    fn a_deferred_format_is_what_add_format_would_have_added() {
        let common = crate::format::tests::COMMON;
        let tick = |id: u32, fmt: &str| {
            format!(
                "name: tick\nID: {id}\nformat:\n{common}\n\tfield:int value;\toffset:8;\tsize:4;\tsigned:1;\n\n\
                 print fmt: \"{fmt}\", REC->value\n"
            )
        };
        let record = |id: u16, value: i32| {
            let mut d = vec![0u8; 12];
            d[0..2].copy_from_slice(&id.to_le_bytes());
            d[8..12].copy_from_slice(&value.to_le_bytes());
            d
        };
        let text = |r: &EventFormats, d: &[u8]| {
            let mut out = Vec::new();
            r.print_info_bytes(d, &mut out);
            String::from_utf8(out).unwrap()
        };
        let new = || EventFormats::new(PageHeader::standard(8, Endian::Little, 4096).unwrap());
        let (mut eager, mut lazy) = (new(), new());
        eager.add_format("sched", SCHED_SWITCH).unwrap();
        eager.add_format("t", &tick(7, "v=%d")).unwrap();
        lazy.add_format_deferred("sched", SCHED_SWITCH);
        lazy.add_format_deferred("t", &tick(7, "v=%d"));
        // Broken: a field line that does not parse, an ID that is not a number, no ID.
        let broken = tick(8, "v=%d").replace("field:int value;", "field int value");
        assert!(eager.add_format("t", &broken).is_err());
        lazy.add_format_deferred("t", &broken);
        lazy.add_format_deferred("t", &tick(9, "v=%d").replace("ID: 9", "ID: nine"));
        lazy.add_format_deferred("t", &tick(10, "v=%d").replace("ID: 10\n", ""));
        assert!(lazy.entries.iter().any(|e| e.format.parsed.get().is_none()), "nothing parsed yet");
        for (id, value) in [(7u16, -5), (8, 1), (9, 2), (10, 3), (372, 0)] {
            let d = record(id, value);
            assert_eq!(text(&lazy, &d), text(&eager, &d), "id {id}");
            assert_eq!(lazy.index_of_record(&d), eager.index_of_record(&d), "id {id}");
        }
        assert_eq!(text(&lazy, &record(8, 1)), "unknown event id 8");
        assert!(lazy.by_id(8).is_none() && lazy.find("t", "tick").is_some_and(|f| f.id == 7));
        assert_eq!(lazy.len(), 2);
        assert_eq!(lazy.iter().map(|f| f.id).collect::<Vec<_>>(), [372, 7]);
        // An id already held: a replacement parsed now; one that does not parse keeps the
        // format it would replace.
        lazy.add_format_deferred("t", &broken.replace("ID: 8", "ID: 7"));
        assert_eq!(text(&lazy, &record(7, 4)), "v=4");
        lazy.add_format_deferred("t", &tick(7, "w=%d"));
        assert_eq!(text(&lazy, &record(7, 4)), "w=4");
        // A deferred format replaced before it was ever parsed.
        lazy.add_format_deferred("t", &tick(11, "x=%d"));
        lazy.add_format("t", &tick(11, "y=%d")).unwrap();
        assert_eq!(text(&lazy, &record(11, 5)), "y=5");
    }

    #[test]
    fn cmdlines_read_as_the_general_rules_read_them() {
        let lines = [
            "1 systemd",
            "  42 kworker/0:1",
            "bad",
            "",
            "7 ",
            "8",
            "9  two spaces",
            "10 trailing space ",
            "11 crlf\r",
            "0012 zeros",
            "123456789 nine",
            "1234567890 ten",
            "9999999999 overflow",
            "-5 negative",
            "+6 plus",
            "13 caf\u{e9}",
            "14 nbsp\u{a0}",
            "\u{a0}15 lead",
            "16 tab\tinside",
            "17\ttab",
            "1 replaced",
        ];
        for text in &crate::tests::line_mixes(&lines) {
            let text = text.as_str();
            let mut want = HashMap::new();
            for line in text.lines() {
                let Some((pid, comm)) = line.trim_start().split_once(' ') else {
                    continue;
                };
                if let Ok(pid) = pid.parse::<i32>() {
                    want.insert(pid, comm.trim_end().to_string());
                }
            }
            let mut r = EventFormats::new(PageHeader::standard(8, Endian::Little, 4096).unwrap());
            r.parse_cmdlines(text);
            assert_eq!(r.cmdlines.len(), want.len(), "{text:?}");
            for (pid, comm) in want {
                assert_eq!(r.comm(pid), comm, "{text:?}");
                assert!(pid == 0 || r.has_comm(pid));
            }
        }
    }
}
