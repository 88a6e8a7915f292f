//! Writing a trace.dat (what [`super::TraceDat`] reads): version 6, or version 7 with
//! uncompressed sections; what `trace-cmd report` and KernelShark read.
//!
//! Every number is written in the byte order of the traced machine (`DatMeta::endian`), as
//! trace-cmd does, so that the raw pages (which are in that order) and the file agree. The
//! per-CPU data is the sub-buffers exactly as the kernel gave them, each CPU's block starting
//! page-aligned in the file.

use std::io::{self, Read, Seek, SeekFrom, Write};

use super::{option, selected_clock, DatMeta};
use crate::endian::Endian;

/// One CPU's raw pages, to be copied into the file.
pub struct CpuPages<R: Read> {
    /// The CPU number.
    pub cpu: u32,
    /// Its pages, concatenated.
    pub data: R,
    /// Their total size in bytes.
    pub size: u64,
}

/// Metadata put together in memory, numbers in the file's byte order.
struct Block {
    bytes: Vec<u8>,
    endian: Endian,
}

impl Block {
    fn new(endian: Endian) -> Self {
        Block { bytes: Vec::new(), endian }
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes.extend_from_slice(&self.endian.u16_bytes(v));
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes.extend_from_slice(&self.endian.u32_bytes(v));
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes.extend_from_slice(&self.endian.u64_bytes(v));
        self
    }
    fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(b);
        self
    }
    /// A NUL-terminated string.
    fn cstr(&mut self, s: &str) -> &mut Self {
        self.raw(s.as_bytes()).raw(&[0])
    }
    /// Text after its size as a u32.
    fn text_u32(&mut self, s: &str) -> &mut Self {
        self.u32(s.len() as u32).raw(s.as_bytes())
    }
    /// Text after its size as a u64.
    fn text_u64(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64).raw(s.as_bytes())
    }
    /// An option: id, size, data.
    fn option(&mut self, id: u16, data: &[u8]) -> &mut Self {
        self.u16(id).u32(data.len() as u32).raw(data)
    }
    fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.bytes)
    }
}

fn headers(m: &DatMeta) -> Vec<u8> {
    Block::new(m.endian)
        .raw(b"header_page\0")
        .text_u64(&m.header_page)
        .raw(b"header_event\0")
        .text_u64(&m.header_event)
        .take()
}

fn ftrace_formats(m: &DatMeta) -> Vec<u8> {
    let mut b = Block::new(m.endian);
    b.u32(m.ftrace_formats.len() as u32);
    for f in &m.ftrace_formats {
        b.text_u64(f);
    }
    b.take()
}

/// Event formats grouped by system, systems in first-seen order.
fn event_formats(m: &DatMeta) -> Vec<u8> {
    let mut systems: Vec<(&str, Vec<&str>)> = Vec::new();
    for (sys, f) in &m.event_formats {
        match systems.iter_mut().find(|(s, _)| s == sys) {
            Some((_, v)) => v.push(f),
            None => systems.push((sys, vec![f])),
        }
    }
    let mut b = Block::new(m.endian);
    b.u32(systems.len() as u32);
    for (sys, formats) in systems {
        b.cstr(sys).u32(formats.len() as u32);
        for f in formats {
            b.text_u64(f);
        }
    }
    b.take()
}

fn prologue(m: &DatMeta, version: u32) -> Vec<u8> {
    let endian_byte = match m.endian {
        Endian::Little => 0,
        Endian::Big => 1,
    };
    Block::new(m.endian)
        .raw(b"\x17\x08\x44tracing")
        .cstr(&version.to_string())
        .raw(&[endian_byte, m.long_size])
        .u32(m.page_size)
        .take()
}

/// Pads `w` with zeros to a multiple of `to`; returns the new position.
fn align(w: &mut (impl Write + Seek), to: u64) -> io::Result<u64> {
    let pos = w.stream_position()?;
    let pad = (to - pos % to) % to;
    w.write_all(&vec![0u8; pad as usize])?;
    Ok(pos + pad)
}

/// Copies each CPU's pages, each block page-aligned; returns `(cpu, offset, size)` of each.
fn copy_cpus<W: Write + Seek, R: Read>(
    w: &mut W,
    cpus: &mut [CpuPages<R>],
    page: u64,
) -> io::Result<Vec<(u32, u64, u64)>> {
    let mut entries = Vec::new();
    for c in cpus.iter_mut() {
        let off = align(w, page)?;
        let n = io::copy(&mut (&mut c.data).take(c.size), w)?;
        entries.push((c.cpu, off, n));
    }
    Ok(entries)
}

/// Writes `bytes` at `at`, then returns to the end of the file.
fn patch(w: &mut (impl Write + Seek), at: u64, bytes: &[u8]) -> io::Result<()> {
    let end = w.stream_position()?;
    w.seek(SeekFrom::Start(at))?;
    w.write_all(bytes)?;
    w.seek(SeekFrom::Start(end))?;
    Ok(())
}

/// Writes a trace.dat of `version` 6 or 7 from `meta` (formats, kallsyms, printk formats,
/// cmdlines, CPU count, the options in `meta.options`) and the CPUs' pages, in the byte order
/// `meta.endian`. The clock is the one `meta.options` names in a TRACECLOCK option, `local`
/// if none. Seeks back to fill in offsets; reads each CPU's pages once.
pub fn write_dat<W: Write + Seek, R: Read>(
    w: &mut W,
    meta: &DatMeta,
    version: u32,
    cpus: &mut [CpuPages<R>],
) -> io::Result<()> {
    if !matches!(version, 6 | 7) {
        let e = format!("cannot write trace.dat version {version} (6 or 7)");
        return Err(io::Error::new(io::ErrorKind::InvalidInput, e));
    }
    let mut head = Block::new(meta.endian);
    head.raw(&prologue(meta, version));
    let file = File { w, meta, cpus, page: u64::from(meta.page_size.max(4096)) };
    if version == 6 {
        file.write_v6(head)
    } else {
        file.write_v7(head)
    }
}

/// One file being written: where to, what, and the page size its CPU blocks align to.
struct File<'a, W, R: Read> {
    w: &'a mut W,
    meta: &'a DatMeta,
    cpus: &'a mut [CpuPages<R>],
    page: u64,
}

impl<W: Write + Seek, R: Read> File<'_, W, R> {
    /// Version 6: the metadata in a fixed order, options, then the `flyrecord` CPU table.
    fn write_v6(self, mut b: Block) -> io::Result<()> {
        let File { w, meta, cpus, page } = self;
        b.raw(&headers(meta)).raw(&ftrace_formats(meta)).raw(&event_formats(meta));
        b.text_u32(&meta.kallsyms).text_u32(&meta.printk_formats).text_u64(&meta.cmdlines);
        b.u32(cpus.len() as u32).raw(b"options  \0");
        for (id, data) in &meta.options {
            b.option(*id, data);
        }
        b.u16(option::DONE).raw(b"flyrecord\0");
        w.write_all(&b.take())?;
        let table = w.stream_position()?;
        w.write_all(&vec![0u8; 16 * cpus.len()])?;
        let entries = copy_cpus(w, cpus, page)?;
        for (_, off, n) in entries {
            b.u64(off).u64(n);
        }
        patch(w, table, &b.take())
    }

    /// Version 7: uncompressed sections, each named by an option of the OPTIONS section.
    fn write_v7(self, mut b: Block) -> io::Result<()> {
        let File { w, meta, cpus, page } = self;
        let e = meta.endian;
        w.write_all(&b.raw(b"none\0\0").take())?;
        let first_options = w.stream_position()?;
        w.write_all(&e.u64_bytes(0))?;
        let sections = [
            (option::HEADER_INFO, headers(meta)),
            (option::FTRACE_EVENTS, ftrace_formats(meta)),
            (option::EVENT_FORMATS, event_formats(meta)),
            (option::KALLSYMS, b.text_u32(&meta.kallsyms).take()),
            (option::PRINTK, b.text_u32(&meta.printk_formats).take()),
            (option::CMDLINES, b.text_u64(&meta.cmdlines).take()),
        ];
        let mut opts: Vec<(u16, Vec<u8>)> = Vec::new();
        for (id, body) in sections {
            let at = section(w, e, id, &body)?;
            opts.push((id, e.u64_bytes(at).to_vec()));
        }
        // The trace data: a BUFFER section whose CPU blocks start page-aligned.
        let buf_at = section(w, e, option::BUFFER, &[])?;
        let body_start = w.stream_position()?;
        let entries = copy_cpus(w, cpus, page)?;
        let end = w.stream_position()?;
        patch(w, buf_at + 8, &e.u64_bytes(end - body_start))?;
        let clock = meta
            .options
            .iter()
            .find(|(id, _)| *id == option::TRACECLOCK)
            .map_or_else(|| "local".to_string(), |(_, d)| selected_clock(d));
        b.u64(buf_at).cstr("").cstr(&clock).u32(meta.page_size).u32(entries.len() as u32);
        for (cpu, off, n) in entries {
            b.u32(cpu).u64(off).u64(n);
        }
        opts.push((option::BUFFER, b.take()));
        opts.push((option::CPUCOUNT, e.u32_bytes(meta.cpu_count).to_vec()));
        opts.extend(meta.options.iter().cloned());
        for (id, data) in &opts {
            b.option(*id, data);
        }
        b.option(option::DONE, &e.u64_bytes(0));
        let opt_at = section(w, e, 0, &b.take())?;
        patch(w, first_options, &e.u64_bytes(opt_at))
    }
}

/// A v7 section: 16-byte header (id, flags, description string id, size) and the body.
fn section(w: &mut (impl Write + Seek), endian: Endian, id: u16, body: &[u8]) -> io::Result<u64> {
    let at = w.stream_position()?;
    w.write_all(&Block::new(endian).u16(id).u16(0).u32(0).u64(body.len() as u64).take())?;
    w.write_all(body)?;
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dat::tests::HEADER_PAGE;
    use crate::dat::TraceDat;

    /// An option id of our own: readers keep options they do not know, by their size.
    const OPTION_OURS: u16 = 0x7770;

    fn meta(endian: Endian) -> DatMeta {
        let formats = vec![("sched".into(), "name: a\nID: 1\n".into()), ("irq".into(), "name: b\nID: 2\n".into())];
        let mut m = crate::dat::tests::meta(endian, formats, "1 init\n");
        m.ftrace_formats = vec!["name: print\nID: 5\nformat:\n".into()];
        m.kallsyms = "ffffffff81000000 T _stext\n".into();
        m.cpu_count = 2;
        m.options.push((OPTION_OURS, b"{}".to_vec()));
        m
    }

    /// A page holding one 8-byte record at ts `ts` + 5, in byte order `e`.
    fn page(e: Endian, ts: u64) -> Vec<u8> {
        let mut p = vec![0u8; 4096];
        p[0..8].copy_from_slice(&e.u64_bytes(ts));
        p[8..16].copy_from_slice(&e.u64_bytes(12));
        let word = match e {
            Endian::Little => (5u32 << 5) | 2,
            Endian::Big => (2 << 27) | 5,
        };
        p[16..20].copy_from_slice(&e.u32_bytes(word));
        p[20..22].copy_from_slice(&e.u16_bytes(1));
        p
    }

    /// A stand-in for a host's mapping (this crate cannot map): the bytes read, checked to be
    /// where the kallsyms starts.
    fn read_text(file: &std::fs::File, offset: u64, len: u32) -> Option<crate::symbols::KallsymsText> {
        let mut buf = vec![0; len as usize];
        std::os::unix::fs::FileExt::read_exact_at(file, &mut buf, offset).ok()?;
        let text = String::from_utf8(buf).ok()?;
        assert!(text.starts_with("ffffffff81000000 T _stext\n"), "{text}");
        Some(crate::symbols::KallsymsText::Shared(Box::new(text)))
    }

    #[test]
    fn kallsyms_read_when_first_needed_gives_the_same_symbols() {
        // Read by the reader, or (v6, uncompressed) given by the host's loader.
        for (version, with_map) in [(6, false), (7, false), (6, true), (7, true)] {
            let path = std::env::temp_dir()
                .join(format!("traceevent-deferred-{}-v{version}-{with_map}.dat", std::process::id()));
            let mut m = meta(Endian::Little);
            m.kallsyms = "ffffffff81000000 T _stext\nffffffff81000100 t foo\t[m]\nffffffff81000200 T bar\n".into();
            let mut out = std::io::Cursor::new(Vec::new());
            write_dat::<_, &[u8]>(&mut out, &m, version, &mut []).unwrap();
            std::fs::write(&path, out.into_inner()).unwrap();
            let file = std::fs::File::open(&path).unwrap();
            let dat =
                if with_map { TraceDat::open_deferred_with(file, read_text) } else { TraceDat::open_deferred(file) };
            std::fs::remove_file(&path).unwrap();
            let dat = dat.unwrap();
            assert_eq!(dat.meta.kallsyms, "", "v{version}: left to the registry");
            for dialect in [crate::text::Dialect::LibTraceEvent, crate::text::Dialect::Kernel] {
                let formats = dat.event_formats(dialect).unwrap();
                let s = formats.symbols();
                assert_eq!(s.libtraceevent_function(0xffff_ffff_8100_0104), Some(("foo", 0xffff_ffff_8100_0100)));
                assert_eq!(s.libtraceevent_symbol_address("bar"), Some(0xffff_ffff_8100_0200));
                let r = s.lookup(0xffff_ffff_8100_0004).unwrap();
                assert_eq!((r.name, r.size), ("_stext", 0x100), "v{version}");
                assert_eq!(s.lookup(0xffff_ffff_8100_0101).unwrap().module, Some("m"));
            }
        }
    }

    #[test]
    fn what_we_write_reads_back_in_both_versions_and_byte_orders() {
        for endian in [Endian::Little, Endian::Big] {
            for version in [6, 7] {
                let pages = [page(endian, 1000), page(endian, 500)];
                let mut cpus: Vec<CpuPages<&[u8]>> = pages
                    .iter()
                    .enumerate()
                    .map(|(i, p)| CpuPages { cpu: i as u32, data: &p[..], size: 4096 })
                    .collect();
                let mut out = std::io::Cursor::new(Vec::new());
                write_dat(&mut out, &meta(endian), version, &mut cpus).unwrap();
                let dat = TraceDat::open(out.into_inner()).unwrap();
                let m = &dat.meta;
                assert_eq!((m.version, m.endian), (version, endian));
                assert_eq!(m.header_page, HEADER_PAGE);
                assert_eq!(m.ftrace_formats.len(), 1);
                assert_eq!(m.event_formats, meta(endian).event_formats);
                assert_eq!(m.kallsyms, meta(endian).kallsyms);
                assert_eq!(m.cmdlines, "1 init\n");
                assert!(m.options.iter().any(|(id, d)| *id == OPTION_OURS && d == b"{}"));
                assert_eq!(m.buffers[0].clock, "local");
                assert_eq!(m.buffers[0].cpus.len(), 2);
                assert!(m.buffers[0].cpus.iter().all(|c| c.offset % 4096 == 0 && c.size == 4096));
                let mut recs = dat.records(0).unwrap();
                let mut got = Vec::new();
                while let Some(r) = recs.next_record() {
                    let r = r.unwrap();
                    got.push((r.cpu, r.ts, r.common_type()));
                }
                assert_eq!(got, [(1, 505, Some(1)), (0, 1005, Some(1))], "v{version} {endian:?}: merged by timestamp");
            }
        }
        let mut out = std::io::Cursor::new(Vec::new());
        let e = write_dat::<_, &[u8]>(&mut out, &meta(Endian::Little), 5, &mut []).unwrap_err();
        assert_eq!(e.to_string(), "cannot write trace.dat version 5 (6 or 7)");
    }
}
