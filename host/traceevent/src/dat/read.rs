//! Reading a trace.dat: the metadata whole, the trace data streamed per CPU.

use super::{bad, option, selected_clock, Buffer, Compression, CpuData, DatMeta, ReadAt};
use crate::endian::Endian;
use crate::error::{Error, Result};
use crate::header::{EventHeader, PageHeader};
use crate::subbuf::{MissedEvents, SubBuffer};

/// A trace.dat: its metadata, and streaming access to its pages.
#[derive(Debug)]
pub struct TraceDat<R: ReadAt> {
    /// The metadata.
    pub meta: DatMeta,
    src: R,
    /// Reads the kallsyms left out of `meta` by [`TraceDat::open_deferred`].
    deferred_kallsyms: Option<Loader>,
}

/// Reads a piece of metadata when it is first needed.
#[derive(Clone)]
struct Loader(std::sync::Arc<dyn Fn() -> crate::symbols::KallsymsText + Send + Sync>);

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Loader")
    }
}

/// Where a file's kallsyms text is.
#[derive(Debug, Clone, Copy)]
enum KallsymsAt {
    /// v6: the text's bytes.
    Bytes { offset: u64, len: u32 },
    /// v7: the KALLSYMS section.
    Section(u64),
}

/// A cursor over the file's bytes for sequential parsing.
struct Cursor<'a, R: ReadAt + ?Sized> {
    src: &'a R,
    pos: u64,
    endian: Endian,
}

impl<R: ReadAt + ?Sized> Cursor<'_, R> {
    fn bytes(&mut self, n: usize, what: &str) -> Result<Vec<u8>> {
        if n > 1 << 31 {
            return Err(bad(format!("{what}: implausible size {n}")));
        }
        // Grow as the data arrives, so that a size field pointing past the end of a short
        // input costs an error, not an allocation of that size.
        const STEP: usize = 1 << 20;
        let mut v = Vec::new();
        while v.len() < n {
            let have = v.len();
            let want = (n - have).min(STEP.max(have));
            v.resize(have + want, 0);
            let got =
                self.src.read_at(&mut v[have..], self.pos + have as u64).map_err(|e| bad(format!("{what}: {e}")))?;
            if got < want {
                return Err(bad(format!(
                    "{what}: truncated at offset {} (need {n} bytes, have {})",
                    self.pos,
                    have + got
                )));
            }
        }
        self.pos += n as u64;
        Ok(v)
    }
    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.bytes(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16> {
        let b = self.bytes(2, what)?;
        Ok(self.endian.read_u16(&b, 0).unwrap_or(0))
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        let b = self.bytes(4, what)?;
        Ok(self.endian.read_u32(&b, 0).unwrap_or(0))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        let b = self.bytes(8, what)?;
        Ok(self.endian.read_u64(&b, 0).unwrap_or(0))
    }
    fn cstr(&mut self, what: &str) -> Result<String> {
        let mut out = Vec::new();
        loop {
            let c = self.u8(what)?;
            if c == 0 {
                break;
            }
            out.push(c);
            if out.len() > 4096 {
                return Err(bad(format!("{what}: unterminated string")));
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
    fn text(&mut self, n: u64, what: &str) -> Result<String> {
        // Valid UTF-8 (kallsyms, formats) is kept as read, not copied.
        Ok(String::from_utf8(self.bytes(n as usize, what)?)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }
    fn tag(&mut self, want: &[u8], what: &str) -> Result<()> {
        let got = self.bytes(want.len(), what)?;
        if got != want {
            return Err(bad(format!(
                "expected {:?} at offset {}",
                String::from_utf8_lossy(want),
                self.pos - want.len() as u64
            )));
        }
        Ok(())
    }
}

/// A cursor over a decompressed section held in memory.
fn mem_cursor(buf: &[u8], endian: Endian) -> Cursor<'_, [u8]> {
    Cursor { src: buf, pos: 0, endian }
}

fn decompress(c: Compression, data: &[u8], usize_hint: usize) -> Result<Vec<u8>> {
    match c {
        Compression::None => Ok(data.to_vec()),
        // The declared size bounds the output (and the allocation): a section or chunk that
        // inflates beyond it is an error, whatever its compressed size.
        Compression::Zstd => {
            let mut out = Vec::new();
            zstd_into(data, usize_hint, &mut out)?;
            Ok(out)
        }
        Compression::Zlib => {
            miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(data, usize_hint.saturating_add(1))
                .map_err(|e| bad(format!("zlib: {e:?}")))
        }
    }
}

/// Decompresses the zstd frames of `data` into `out` (cleared first), at most `limit` bytes:
/// more is an error. One decompression context per thread, reused.
///
/// The declared size comes from the file: a corrupt or hostile one may claim gigabytes for a
/// few bytes of input. So the buffer starts at what `out` already holds or a generous guess
/// from the compressed size (trace data compresses 3-10x), and grows fourfold only when
/// zstd reports it too small, up to `limit`: memory follows what the frames really inflate
/// to, and a valid chunk (whose buffer is reused) decompresses in one pass.
fn zstd_into(data: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<()> {
    thread_local! {
        static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    out.clear();
    let mut cap = limit.min(out.capacity().max(data.len().saturating_mul(16)).max(256 << 10));
    DCTX.with_borrow_mut(|d| {
        let d = match d {
            Some(d) => d,
            None => d.insert(zstd::bulk::Decompressor::new().map_err(|e| bad(format!("zstd: {e}")))?),
        };
        loop {
            out.clear();
            out.reserve_exact(cap);
            // Writes into `out`'s spare capacity only; a frame that inflates beyond it fails.
            let spare = out.capacity().min(limit);
            let mut buf = std::mem::take(out);
            let r = d.decompress_to_buffer(data, &mut buf);
            *out = buf;
            match r {
                Ok(n) if n <= spare => return Ok(()),
                Ok(n) => return Err(bad(format!("zstd: {n} bytes, more than the {limit} declared"))),
                Err(e) if cap < limit && e.to_string().contains("too small") => cap = limit.min(cap.saturating_mul(4)),
                Err(e) if e.to_string().contains("too small") => {
                    return Err(bad(format!("zstd: more than the {limit} bytes declared")))
                }
                Err(e) => return Err(bad(format!("zstd: {e}"))),
            }
        }
    })
}

/// Reads `header_page\0` + u64 size + text, then the same for `header_event`.
fn read_headers<R: ReadAt + ?Sized>(c: &mut Cursor<'_, R>, m: &mut DatMeta) -> Result<()> {
    c.tag(b"header_page\0", "header_page tag")?;
    let n = c.u64("header_page size")?;
    m.header_page = c.text(n, "header_page")?;
    c.tag(b"header_event\0", "header_event tag")?;
    let n = c.u64("header_event size")?;
    m.header_event = c.text(n, "header_event")?;
    Ok(())
}

fn read_ftrace_formats<R: ReadAt + ?Sized>(c: &mut Cursor<'_, R>, m: &mut DatMeta) -> Result<()> {
    let count = c.u32("ftrace format count")?;
    for _ in 0..count {
        let n = c.u64("ftrace format size")?;
        m.ftrace_formats.push(c.text(n, "ftrace format")?);
    }
    Ok(())
}

fn read_event_formats<R: ReadAt + ?Sized>(c: &mut Cursor<'_, R>, m: &mut DatMeta) -> Result<()> {
    let systems = c.u32("system count")?;
    for _ in 0..systems {
        let sys = c.cstr("system name")?;
        let count = c.u32("event count")?;
        for _ in 0..count {
            let n = c.u64("event format size")?;
            m.event_formats.push((sys.clone(), c.text(n, "event format")?));
        }
    }
    Ok(())
}

fn read_u32_text<R: ReadAt + ?Sized>(c: &mut Cursor<'_, R>, what: &str) -> Result<String> {
    let n = c.u32(what)?;
    c.text(n as u64, what)
}

fn read_cmdlines<R: ReadAt + ?Sized>(c: &mut Cursor<'_, R>) -> Result<String> {
    let n = c.u64("cmdlines size")?;
    c.text(n, "cmdlines")
}

impl TraceDat<std::fs::File> {
    /// [`TraceDat::open`], except that `meta.kallsyms` is left empty: the registry of
    /// [`TraceDat::event_formats`] reads it from the file when a record first prints a symbol
    /// (a trace.dat carries some 5 MB of kallsyms, which most reports never look at). A
    /// kallsyms that cannot be read then counts as empty.
    pub fn open_deferred(src: std::fs::File) -> Result<Self> {
        Self::open_deferred_with(src, |_, _, _| None)
    }

    /// [`TraceDat::open_deferred`], where `map(file, offset, len)` may give the text of an
    /// uncompressed kallsyms (a v6 file's) without reading it into a buffer: a host that may
    /// map files (this crate forbids the `unsafe` that takes) saves the copy of some 5 MB
    /// into freshly faulted pages. `None` reads it.
    pub fn open_deferred_with(
        src: std::fs::File,
        map: fn(&std::fs::File, u64, u32) -> Option<crate::symbols::KallsymsText>,
    ) -> Result<Self> {
        let mut at = None;
        let mut dat = Self::open_with(src, Some(&mut at))?;
        if let Some(at) = at {
            let (endian, comp) = (dat.meta.endian, dat.meta.compression);
            let file = dat.src.try_clone().map_err(|e| bad(format!("kallsyms: {e}")))?;
            dat.deferred_kallsyms = Some(Loader(std::sync::Arc::new(move || {
                let text = match at {
                    KallsymsAt::Bytes { offset, len } => match map(&file, offset, len) {
                        Some(text) => return text,
                        // Read straight into the string's buffer (a cursor would zero 5 MB first).
                        None => read_file_text(&file, offset, len),
                    },
                    KallsymsAt::Section(_) => read_kallsyms(&file, endian, comp, at).ok(),
                };
                crate::symbols::KallsymsText::Owned(text.unwrap_or_default())
            })));
        }
        Ok(dat)
    }
}

/// The `len` bytes of `file` at `offset` as text (lossy for invalid UTF-8); `None` when the
/// file is shorter.
fn read_file_text(file: &std::fs::File, offset: u64, len: u32) -> Option<String> {
    use std::io::{Read, Seek};
    let mut f = file;
    f.seek(std::io::SeekFrom::Start(offset)).ok()?;
    let mut v = Vec::with_capacity(len as usize);
    f.take(u64::from(len)).read_to_end(&mut v).ok()?;
    if v.len() != len as usize {
        return None;
    }
    Some(String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// The kallsyms text at `at`.
fn read_kallsyms<R: ReadAt + ?Sized>(src: &R, endian: Endian, comp: Compression, at: KallsymsAt) -> Result<String> {
    match at {
        KallsymsAt::Bytes { offset, len } => Cursor { src, pos: offset, endian }.text(u64::from(len), "kallsyms"),
        KallsymsAt::Section(offset) => {
            let (_, mut s) = read_section(src, endian, comp, offset)?;
            // The text is moved to the front of the section's buffer, not copied into a new
            // one (5 MB); a body that does not hold it says why through `read_u32_text`.
            let n = mem_cursor(&s, endian).u32("kallsyms")? as usize;
            if n > 1 << 31 || s.len() < 4 + n {
                return read_u32_text(&mut mem_cursor(&s, endian), "kallsyms");
            }
            s.copy_within(4..4 + n, 0);
            s.truncate(n);
            Ok(String::from_utf8(s).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
        }
    }
}

impl<R: ReadAt> TraceDat<R> {
    /// Reads the header and every piece of metadata of a trace.dat (v6 or v7). Trace data is
    /// only located here; [`records`](Self::records) streams it.
    pub fn open(src: R) -> Result<Self> {
        Self::open_with(src, None)
    }

    /// [`TraceDat::open`]; with `defer`, the kallsyms is not read but located there.
    fn open_with(src: R, defer: Option<&mut Option<KallsymsAt>>) -> Result<Self> {
        let ahead = super::ReadAhead::new(&src);
        let mut c = Cursor { src: &ahead, pos: 0, endian: Endian::Little };
        c.tag(b"\x17\x08\x44tracing", "magic").map_err(|_| bad("not a trace.dat file (bad magic)"))?;
        let version: u32 = c.cstr("version")?.parse().map_err(|_| bad("version is not a number"))?;
        if !(6..=7).contains(&version) {
            return Err(bad(format!("file version {version} is not supported (6 and 7 are)")));
        }
        let endian = if c.u8("endianness")? == 0 { Endian::Little } else { Endian::Big };
        c.endian = endian;
        let mut m = DatMeta {
            version,
            endian,
            long_size: c.u8("long size")?,
            page_size: c.u32("page size")?,
            compression: Compression::None,
            header_page: String::new(),
            header_event: String::new(),
            ftrace_formats: Vec::new(),
            event_formats: Vec::new(),
            kallsyms: String::new(),
            printk_formats: String::new(),
            cmdlines: String::new(),
            cpu_count: 0,
            options: Vec::new(),
            buffers: Vec::new(),
        };
        if version == 6 {
            read_v6(&mut c, &mut m, defer)?;
        } else {
            read_v7(&mut c, &mut m, defer)?;
        }
        if m.header_page.is_empty() {
            return Err(bad("no header_page in the file"));
        }
        Ok(TraceDat { meta: m, src, deferred_kallsyms: None })
    }

    /// The sub-buffer layout of the file's pages.
    pub fn page_header(&self) -> Result<PageHeader> {
        let h = PageHeader::parse(&self.meta.header_page, self.meta.endian)?;
        match self.meta.buffers.first() {
            Some(b) if b.page_size as usize != h.subbuf_size() && b.page_size > 0 => {
                h.with_subbuf_size(b.page_size as usize)
            }
            _ => Ok(h),
        }
    }

    /// A registry of everything the file describes (formats, cmdlines, kallsyms, printk
    /// formats) that prints in `dialect`. Formats that do not parse are left out (their
    /// events print as unknown). Each format is parsed when first needed
    /// ([`crate::format::EventFormats::add_format_deferred`]); no I/O.
    pub fn event_formats(&self, dialect: crate::text::Dialect) -> Result<crate::format::EventFormats> {
        let mut formats = crate::format::EventFormats::new(self.page_header()?);
        formats.set_event_header(self.event_header()?);
        formats.set_dialect(dialect);
        for f in &self.meta.ftrace_formats {
            formats.add_format_deferred("ftrace", f);
        }
        for (sys, f) in &self.meta.event_formats {
            formats.add_format_deferred(sys, f);
        }
        formats.parse_cmdlines(&self.meta.cmdlines);
        formats.parse_kallsyms(&self.meta.kallsyms);
        if let Some(load) = &self.deferred_kallsyms {
            let load = load.0.clone();
            formats.defer_kallsyms_text(move || load());
        }
        formats.parse_printk_formats(&self.meta.printk_formats);
        Ok(formats)
    }

    /// The event header description of the file.
    pub fn event_header(&self) -> Result<EventHeader> {
        if self.meta.header_event.trim().is_empty() {
            Ok(EventHeader::default())
        } else {
            EventHeader::parse(&self.meta.header_event)
        }
    }

    /// The records of buffer `index` (0 = the first, normally the top instance), merged across
    /// CPUs by timestamp as `trace-cmd report` shows them.
    pub fn records(&self, index: usize) -> Result<DatRecords<'_, R>> {
        let buf = self.meta.buffers.get(index).ok_or_else(|| bad(format!("no buffer {index} in the file")))?;
        let page_header = self.page_header()?;
        let page_header =
            if buf.page_size > 0 { page_header.with_subbuf_size(buf.page_size as usize)? } else { page_header };
        let event_header = self.event_header()?;
        let cpus = buf
            .cpus
            .iter()
            .map(|d| CpuStream {
                data: *d,
                pos: d.offset,
                end: d.offset + d.size,
                chunks_left: None,
                ahead: Default::default(),
                window: Vec::new(),
                window_pos: 0,
                window_at: d.offset,
                page_at: 0,
                recs: Vec::new(),
                next: 0,
                done: false,
            })
            .collect();
        Ok(DatRecords {
            src: &self.src,
            compressed: buf.compressed,
            compression: self.meta.compression,
            page_header,
            event_header,
            cpus,
            last: usize::MAX,
        })
    }
}

fn read_v6<R: ReadAt + ?Sized>(
    c: &mut Cursor<'_, R>,
    m: &mut DatMeta,
    defer: Option<&mut Option<KallsymsAt>>,
) -> Result<()> {
    read_headers(c, m)?;
    read_ftrace_formats(c, m)?;
    read_event_formats(c, m)?;
    match defer {
        Some(at) => {
            let len = c.u32("kallsyms size")?;
            *at = Some(KallsymsAt::Bytes { offset: c.pos, len });
            c.pos += u64::from(len);
        }
        None => m.kallsyms = read_u32_text(c, "kallsyms")?,
    }
    m.printk_formats = read_u32_text(c, "printk formats")?;
    m.cmdlines = read_cmdlines(c)?;
    m.cpu_count = c.u32("CPU count")?;
    let mut clock = String::from("local");
    loop {
        let tag = c.bytes(10, "section tag")?;
        match &tag[..] {
            b"options  \0" => loop {
                let id = c.u16("option id")?;
                if id == option::DONE {
                    break;
                }
                let size = c.u32("option size")?;
                let data = c.bytes(size as usize, "option data")?;
                if id == option::TRACECLOCK {
                    clock = selected_clock(&data);
                }
                m.options.push((id, data));
            },
            b"flyrecord\0" => {
                let mut cpus = Vec::new();
                for cpu in 0..m.cpu_count {
                    let offset = c.u64("CPU data offset")?;
                    let size = c.u64("CPU data size")?;
                    cpus.push(CpuData { cpu, offset, size });
                }
                let page_size = PageHeader::parse(&m.header_page, m.endian)?.subbuf_size() as u32;
                m.buffers.push(Buffer { name: String::new(), clock, page_size, cpus, compressed: false });
                return Ok(());
            }
            b"latency  \0" => return Err(bad("latency-format trace.dat files are not supported")),
            _ => {
                return Err(bad(format!(
                    "unknown section tag {:?} at offset {}",
                    String::from_utf8_lossy(&tag),
                    c.pos - 10
                )))
            }
        }
    }
}

/// Reads the v7 section at `offset`: returns its id and its (decompressed) body.
fn read_section<R: ReadAt + ?Sized>(src: &R, endian: Endian, comp: Compression, offset: u64) -> Result<(u16, Vec<u8>)> {
    let mut c = Cursor { src, pos: offset, endian };
    let id = c.u16("section id")?;
    let flags = c.u16("section flags")?;
    let _desc = c.u32("section description")?;
    let size = c.u64("section size")?;
    if flags & 1 == 0 {
        return Ok((id, c.bytes(size as usize, "section")?));
    }
    let csize = c.u32("compressed size")?;
    let usize_ = c.u32("uncompressed size")?;
    let data = c.bytes(csize as usize, "compressed section")?;
    let out = decompress(comp, &data, usize_ as usize)?;
    if out.len() != usize_ as usize {
        return Err(bad(format!("section {id} at {offset}: decompressed {} bytes, header says {usize_}", out.len())));
    }
    Ok((id, out))
}

fn read_v7<R: ReadAt + ?Sized>(
    c: &mut Cursor<'_, R>,
    m: &mut DatMeta,
    mut defer: Option<&mut Option<KallsymsAt>>,
) -> Result<()> {
    let name = c.cstr("compression name")?;
    let _ver = c.cstr("compression version")?;
    m.compression = match name.as_str() {
        "none" | "" => Compression::None,
        "zstd" => Compression::Zstd,
        "zlib" => Compression::Zlib,
        other => return Err(bad(format!("compression {other:?} is not supported (zstd, zlib, none are)"))),
    };
    let mut next = c.u64("first options offset")?;
    let mut seen = 0;
    let mut buffer_opts = Vec::new();
    while next != 0 {
        seen += 1;
        if seen > 1000 {
            return Err(bad("options sections form a loop"));
        }
        let (id, body) = read_section(c.src, m.endian, m.compression, next)?;
        if id != 0 {
            return Err(bad(format!("section at {next} is id {id}, expected an OPTIONS section")));
        }
        next = 0;
        let mut oc = mem_cursor(&body, m.endian);
        while (oc.pos as usize) < body.len() {
            let oid = oc.u16("option id")?;
            let size = oc.u32("option size")?;
            let data = oc.bytes(size as usize, "option data")?;
            if oid == option::DONE {
                next = m.endian.read_u64(&data, 0).unwrap_or(0);
                break;
            }
            let at = || m.endian.read_u64(&data, 0).ok_or_else(|| bad(format!("option {oid}: short offset")));
            match oid {
                option::HEADER_INFO => {
                    let (_, s) = read_section(c.src, m.endian, m.compression, at()?)?;
                    read_headers(&mut mem_cursor(&s, m.endian), m)?;
                }
                option::FTRACE_EVENTS => {
                    let (_, s) = read_section(c.src, m.endian, m.compression, at()?)?;
                    read_ftrace_formats(&mut mem_cursor(&s, m.endian), m)?;
                }
                option::EVENT_FORMATS => {
                    let (_, s) = read_section(c.src, m.endian, m.compression, at()?)?;
                    read_event_formats(&mut mem_cursor(&s, m.endian), m)?;
                }
                option::KALLSYMS => match defer.as_deref_mut() {
                    Some(d) => *d = Some(KallsymsAt::Section(at()?)),
                    None => m.kallsyms = read_kallsyms(c.src, m.endian, m.compression, KallsymsAt::Section(at()?))?,
                },
                option::PRINTK => {
                    let (_, s) = read_section(c.src, m.endian, m.compression, at()?)?;
                    m.printk_formats = read_u32_text(&mut mem_cursor(&s, m.endian), "printk formats")?;
                }
                option::CMDLINES => {
                    let (_, s) = read_section(c.src, m.endian, m.compression, at()?)?;
                    m.cmdlines = read_cmdlines(&mut mem_cursor(&s, m.endian))?;
                }
                option::CPUCOUNT => m.cpu_count = m.endian.read_u32(&data, 0).unwrap_or(0),
                option::BUFFER => buffer_opts.push(data.clone()),
                _ => {}
            }
            m.options.push((oid, data));
        }
    }
    for data in buffer_opts {
        let mut b = mem_cursor(&data, m.endian);
        let section = b.u64("buffer section offset")?;
        let name = b.cstr("buffer name")?;
        let clock = b.cstr("buffer clock")?;
        let page_size = b.u32("buffer page size")?;
        let ncpus = b.u32("buffer CPU count")?;
        let mut cpus = Vec::new();
        for _ in 0..ncpus.min(4096) {
            let cpu = b.u32("CPU id")?;
            let offset = b.u64("CPU data offset")?;
            let size = b.u64("CPU data size")?;
            cpus.push(CpuData { cpu, offset, size });
        }
        let mut sc = Cursor { src: c.src, pos: section, endian: m.endian };
        let _id = sc.u16("buffer section id")?;
        let flags = sc.u16("buffer section flags")?;
        m.buffers.push(Buffer { name, clock, page_size, cpus, compressed: flags & 1 != 0 });
    }
    Ok(())
}

/// One record of a trace.dat, borrowing the decoded page it lives in.
#[derive(Debug, Clone, Copy)]
pub struct DatRecord<'a> {
    /// The CPU it was recorded on.
    pub cpu: u32,
    /// Timestamp (trace clock units).
    pub ts: u64,
    /// The payload (common fields first).
    pub data: &'a [u8],
    /// Events lost before this record's page (first record of a page only).
    pub missed_events: MissedEvents,
    /// Offset of the record's event header from the start of the page's data (0 for a
    /// record that opens its page; libtraceevent reports lost events only then).
    pub page_offset: usize,
    /// Byte order of the payload (that of the traced machine).
    pub endian: Endian,
}

impl DatRecord<'_> {
    /// The event id: `common_type`, in the file's byte order (see [`Record::common_type`]).
    ///
    /// [`Record::common_type`]: crate::Record::common_type
    #[inline]
    pub fn common_type(&self) -> Option<u16> {
        crate::subbuf::common_type(self.data, self.endian)
    }

    /// The pid that wrote the record: `common_pid`, in the file's byte order.
    #[inline]
    pub fn common_pid(&self) -> Option<i32> {
        crate::subbuf::common_pid(self.data, self.endian)
    }
}

#[derive(Debug, Clone, Copy)]
struct Rec {
    ts: u64,
    start: u32,
    len: u32,
    missed: MissedEvents,
    page_offset: u32,
}

/// How much uncompressed trace data is read at once per CPU.
const WINDOW: usize = 256 * 1024;
/// How much of a CPU's compressed data is read at once (trace-cmd's chunks are a few KiB
/// compressed; a larger one is read by itself).
const CHUNK_AHEAD: usize = 64 * 1024;

#[derive(Debug)]
struct CpuStream {
    data: CpuData,
    pos: u64,
    end: u64,
    chunks_left: Option<u32>,
    /// The read-ahead block of compressed data (see [`DatRecords::refill_window`]).
    ahead: super::Held,
    window: Vec<u8>,
    window_pos: usize,
    /// File offset of `window`'s first byte (compressed: of its chunk's header), for errors.
    window_at: u64,
    /// Where the current page starts in `window`.
    page_at: usize,
    recs: Vec<Rec>,
    next: usize,
    done: bool,
}

/// The records of one buffer, merged across CPUs by timestamp. Memory: one window (or one
/// decompressed chunk) and one page per CPU.
pub struct DatRecords<'f, R: ReadAt> {
    src: &'f R,
    compressed: bool,
    compression: Compression,
    page_header: PageHeader,
    event_header: EventHeader,
    cpus: Vec<CpuStream>,
    /// The CPU whose record was returned last: the only one whose page may need refilling
    /// (`usize::MAX` before the first record: all of them).
    last: usize,
}

impl<R: ReadAt> DatRecords<'_, R> {
    fn refill_window(&mut self, i: usize) -> Result<bool> {
        let s = &mut self.cpus[i];
        s.window_pos = 0;
        if !self.compressed {
            if s.pos >= s.end {
                s.window.clear();
                return Ok(false);
            }
            let n = ((s.end - s.pos) as usize).min(WINDOW);
            // The read overwrites the window: only growth needs zeroing.
            if s.window.len() < n {
                s.window.resize(n, 0);
            }
            s.window.truncate(n);
            let got = self.src.read_at(&mut s.window, s.pos).map_err(|e| bad(format!("CPU {}: {e}", s.data.cpu)))?;
            s.window_at = s.pos;
            if got < n {
                return Err(bad(format!("CPU {} data truncated at offset {}", s.data.cpu, s.pos + got as u64)));
            }
            s.pos += n as u64;
            return Ok(true);
        }
        s.window.clear();
        // Through the CPU's own read-ahead (kept in `s.ahead` between chunks): three small
        // reads a chunk cost 2 us of system calls on this VM, 4% of a v7 report.
        let ahead = super::ReadAhead::resume(self.src, CHUNK_AHEAD, std::mem::take(&mut s.ahead));
        let r = Self::next_chunk(s, &ahead, self.page_header.endian, self.compression);
        s.ahead = ahead.into_held();
        r
    }

    /// Decompresses the CPU's next chunk into its window, reading through `src`; false when
    /// there is none.
    fn next_chunk(s: &mut CpuStream, src: &impl ReadAt, endian: Endian, compression: Compression) -> Result<bool> {
        let mut c = Cursor { src, pos: s.pos, endian };
        let left = match s.chunks_left {
            Some(n) => n,
            None => {
                if s.data.size == 0 {
                    0
                } else {
                    c.u32("chunk count")?
                }
            }
        };
        if left == 0 {
            s.chunks_left = Some(0);
            return Ok(false);
        }
        s.window_at = c.pos;
        let csize = c.u32("chunk compressed size")?;
        let usize_ = c.u32("chunk size")?;
        let data = c.bytes(csize as usize, "compressed chunk")?;
        match compression {
            Compression::Zstd => zstd_into(&data, usize_ as usize, &mut s.window)?,
            other => s.window = decompress(other, &data, usize_ as usize)?,
        }
        if s.window.len() != usize_ as usize {
            return Err(bad(format!(
                "CPU {}: chunk decompressed to {} bytes, header says {usize_}",
                s.data.cpu,
                s.window.len()
            )));
        }
        s.pos = c.pos;
        s.chunks_left = Some(left - 1);
        Ok(true)
    }

    /// Loads the CPU's next page that has records; false at the end of its data.
    fn load_page(&mut self, i: usize) -> Result<bool> {
        let size = self.page_header.subbuf_size();
        loop {
            if self.cpus[i].window_pos + size > self.cpus[i].window.len() && !self.refill_window(i)? {
                self.cpus[i].done = true;
                return Ok(false);
            }
            let s = &mut self.cpus[i];
            if s.window_pos + size > s.window.len() {
                return Err(bad(format!("CPU {}: data is not a whole number of pages", s.data.cpu)));
            }
            s.page_at = s.window_pos;
            s.window_pos += size;
            s.recs.clear();
            s.next = 0;
            // A damaged page is named by its file offset, or by its place in a chunk.
            let (cpu, page_at, window_at, compressed) = (s.data.cpu, s.page_at, s.window_at, self.compressed);
            let damaged = |e: Error| match compressed {
                true => {
                    bad(format!("CPU {cpu}: page at byte {page_at} of the compressed chunk at offset {window_at}: {e}"))
                }
                false => bad(format!("CPU {cpu}: page at offset {}: {e}", window_at + page_at as u64)),
            };
            let page = SubBuffer::with_event_header(
                &s.window[s.page_at..s.page_at + size],
                &self.page_header,
                &self.event_header,
            )
            .map_err(damaged)?;
            for r in page.records() {
                let r = r.map_err(damaged)?;
                s.recs.push(Rec {
                    ts: r.ts,
                    start: r.payload_offset as u32,
                    len: r.data.len() as u32,
                    missed: r.missed_events,
                    page_offset: r.offset.saturating_sub(self.page_header.data_offset) as u32,
                });
            }
            if !s.recs.is_empty() {
                return Ok(true);
            }
        }
    }

    /// Loads the next page of each CPU whose page is used up: only the CPU of the record
    /// returned last can be (or, at the start, every CPU has yet to load).
    #[inline(never)]
    fn refill(&mut self) -> Result<()> {
        let refill = if self.last == usize::MAX { 0..self.cpus.len() } else { self.last..self.last + 1 };
        for i in refill {
            let s = &self.cpus[i];
            if !s.done && s.next >= s.recs.len() {
                if let Err(e) = self.load_page(i) {
                    self.cpus[i].done = true;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// The next record in timestamp order (ties: lowest CPU), `None` at the end. Inlined
    /// into the caller's loop; the end of a page takes an out-of-line refill.
    #[inline]
    pub fn next_record(&mut self) -> Option<Result<DatRecord<'_>>> {
        // Refill lazily: the record returned last time borrowed its page until now.
        let stale = match self.cpus.get(self.last) {
            Some(s) => !s.done && s.next >= s.recs.len(),
            None => true,
        };
        if stale {
            if let Err(e) = self.refill() {
                return Some(Err(e));
            }
        }
        // The chosen CPU's next index travels with its timestamp: read again through the
        // chosen index, it waited on the choice (perf put a tenth of the loop on that load).
        let mut best: Option<(u64, usize, usize)> = None;
        for (i, s) in self.cpus.iter().enumerate() {
            if s.done || s.next >= s.recs.len() {
                continue;
            }
            let ts = s.recs[s.next].ts;
            if best.is_none_or(|(b, _, _)| ts < b) {
                best = Some((ts, i, s.next));
            }
        }
        let (_, i, next) = best?;
        self.last = i;
        let s = &mut self.cpus[i];
        let rec = s.recs[next];
        s.next = next + 1;
        Some(Ok(DatRecord {
            cpu: s.data.cpu,
            ts: rec.ts,
            data: &s.window[s.page_at + rec.start as usize..s.page_at + (rec.start + rec.len) as usize],
            missed_events: rec.missed,
            page_offset: rec.page_offset as usize,
            endian: self.page_header.endian,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zstd_memory_follows_the_output_not_the_declared_size() {
        // 4 MiB of zeros compress to a few hundred bytes: the buffer grows from its first
        // guess (256 KiB) until the frame fits.
        let plain = vec![0u8; 4 << 20];
        let packed = zstd::bulk::compress(&plain, 3).unwrap();
        assert!(packed.len() < 4096, "{}", packed.len());
        let mut out = Vec::new();
        zstd_into(&packed, plain.len(), &mut out).unwrap();
        assert_eq!(out, plain);
        // A declared size of 4 GB for the same bytes allocates what they inflate to, not 4 GB.
        let mut out = Vec::new();
        zstd_into(&packed, u32::MAX as usize, &mut out).unwrap();
        assert_eq!(out.len(), plain.len());
        assert!(out.capacity() <= 16 << 20, "{}", out.capacity());
        // Declared smaller than the output: an error that says so.
        let e = zstd_into(&packed, 1 << 20, &mut Vec::new()).unwrap_err().to_string();
        assert!(e.contains("more than the 1048576 bytes declared"), "{e}");
        // Not zstd at all.
        let e = zstd_into(b"not zstd data", 100, &mut Vec::new()).unwrap_err().to_string();
        assert!(e.contains("zstd:"), "{e}");
    }

    fn prologue(version: &str) -> Vec<u8> {
        let mut f = b"\x17\x08\x44tracing".to_vec();
        f.extend_from_slice(version.as_bytes());
        f.push(0);
        f.push(0); // little endian
        f.push(8); // long size
        f.extend_from_slice(&4096u32.to_le_bytes());
        f
    }

    #[test]
    fn rejects_what_is_not_a_trace_dat() {
        assert!(TraceDat::open(b"not a trace".to_vec()).is_err());
        assert!(TraceDat::open(prologue("5")).is_err());
        // Version 6 cut after the prologue.
        assert!(TraceDat::open(prologue("6")).is_err());
    }

    #[test]
    fn sizes_beyond_the_input_are_errors_not_allocations() {
        // v6: a header_page block that claims 2 GiB.
        let mut f = prologue("6");
        f.extend_from_slice(b"header_page\0");
        f.extend_from_slice(&(1u64 << 31).to_le_bytes());
        f.extend_from_slice(b"field: x");
        let e = TraceDat::open(f).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        // v7: zstd, an options section compressed to 4 bytes that claims 4 GiB inflated.
        let mut f = prologue("7");
        f.extend_from_slice(b"zstd\0\0");
        let at = f.len() as u64 + 8;
        f.extend_from_slice(&at.to_le_bytes());
        f.extend_from_slice(&0u16.to_le_bytes()); // OPTIONS
        f.extend_from_slice(&1u16.to_le_bytes()); // compressed
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&12u64.to_le_bytes());
        f.extend_from_slice(&4u32.to_le_bytes());
        f.extend_from_slice(&u32::MAX.to_le_bytes());
        f.extend_from_slice(&[0x28, 0xb5, 0x2f, 0xfd]);
        assert!(TraceDat::open(f).is_err());
    }
}
