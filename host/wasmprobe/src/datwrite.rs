//! Writing trace-cmd's trace.dat (the format `traceevent::dat` reads): version 6 by default,
//! version 7 (sections, uncompressed) on request. What `trace-cmd report` and KernelShark read.
//!
//! The per-CPU data is raw sub-buffers exactly as `trace_pipe_raw` gave them, each CPU's block
//! starting page-aligned in the file.

use std::io::{self, Read, Seek, SeekFrom, Write};

use traceevent::dat::option;
use traceevent::DatMeta;

/// Our own option id for the recorded plan: readers skip unknown options by their size.
pub const OPTION_WASMPROBE: u16 = 0x7770;

/// One CPU's raw pages, to be copied into the file.
pub struct CpuPages<R: Read> {
    /// The CPU number.
    pub cpu: u32,
    /// Its pages, concatenated.
    pub data: R,
    /// Their total size in bytes.
    pub size: u64,
}

fn align(w: &mut (impl Write + Seek), to: u64) -> io::Result<u64> {
    let pos = w.stream_position()?;
    let pad = (to - pos % to) % to;
    w.write_all(&vec![0u8; pad as usize])?;
    Ok(pos + pad)
}

fn put_str_u64(w: &mut impl Write, s: &str) -> io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

fn put_str_u32(w: &mut impl Write, s: &str) -> io::Result<()> {
    w.write_all(&(s.len() as u32).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

fn headers(m: &DatMeta) -> io::Result<Vec<u8>> {
    let mut b = Vec::new();
    b.write_all(b"header_page\0")?;
    put_str_u64(&mut b, &m.header_page)?;
    b.write_all(b"header_event\0")?;
    put_str_u64(&mut b, &m.header_event)?;
    Ok(b)
}

fn ftrace_formats(m: &DatMeta) -> io::Result<Vec<u8>> {
    let mut b = Vec::new();
    b.write_all(&(m.ftrace_formats.len() as u32).to_le_bytes())?;
    for f in &m.ftrace_formats {
        put_str_u64(&mut b, f)?;
    }
    Ok(b)
}

/// Event formats grouped by system, systems in first-seen order.
fn event_formats(m: &DatMeta) -> io::Result<Vec<u8>> {
    let mut systems: Vec<(&str, Vec<&str>)> = Vec::new();
    for (sys, f) in &m.event_formats {
        match systems.iter_mut().find(|(s, _)| s == sys) {
            Some((_, v)) => v.push(f),
            None => systems.push((sys, vec![f])),
        }
    }
    let mut b = Vec::new();
    b.write_all(&(systems.len() as u32).to_le_bytes())?;
    for (sys, formats) in systems {
        b.write_all(sys.as_bytes())?;
        b.write_all(&[0])?;
        b.write_all(&(formats.len() as u32).to_le_bytes())?;
        for f in formats {
            put_str_u64(&mut b, f)?;
        }
    }
    Ok(b)
}

fn option(w: &mut impl Write, id: u16, data: &[u8]) -> io::Result<()> {
    w.write_all(&id.to_le_bytes())?;
    w.write_all(&(data.len() as u32).to_le_bytes())?;
    w.write_all(data)
}

fn prologue(w: &mut impl Write, m: &DatMeta, version: u32) -> io::Result<()> {
    w.write_all(b"\x17\x08\x44tracing")?;
    w.write_all(format!("{version}\0").as_bytes())?;
    w.write_all(&[0, m.long_size])?; // little endian
    w.write_all(&m.page_size.to_le_bytes())
}

/// Writes a trace.dat of `version` 6 or 7 from `meta` (formats, kallsyms, printk formats,
/// cmdlines, CPU count, the options in `meta.options`) and the CPUs' pages. The clock is the
/// one `meta.options` names in a TRACECLOCK option, `local` if none.
pub fn write_dat<W: Write + Seek, R: Read>(
    w: &mut W,
    meta: &DatMeta,
    version: u32,
    cpus: &mut [CpuPages<R>],
) -> io::Result<()> {
    let page = meta.page_size.max(4096) as u64;
    match version {
        6 => {
            prologue(w, meta, 6)?;
            w.write_all(&headers(meta)?)?;
            w.write_all(&ftrace_formats(meta)?)?;
            w.write_all(&event_formats(meta)?)?;
            put_str_u32(w, &meta.kallsyms)?;
            put_str_u32(w, &meta.printk_formats)?;
            put_str_u64(w, &meta.cmdlines)?;
            w.write_all(&(cpus.len() as u32).to_le_bytes())?;
            w.write_all(b"options  \0")?;
            for (id, data) in &meta.options {
                option(w, *id, data)?;
            }
            w.write_all(&0u16.to_le_bytes())?;
            w.write_all(b"flyrecord\0")?;
            let table = w.stream_position()?;
            w.write_all(&vec![0u8; 16 * cpus.len()])?;
            let mut entries = Vec::new();
            for c in cpus.iter_mut() {
                let off = align(w, page)?;
                let n = io::copy(&mut (&mut c.data).take(c.size), w)?;
                entries.push((off, n));
            }
            let end = w.stream_position()?;
            w.seek(SeekFrom::Start(table))?;
            for (off, n) in entries {
                w.write_all(&off.to_le_bytes())?;
                w.write_all(&n.to_le_bytes())?;
            }
            w.seek(SeekFrom::Start(end))?;
            Ok(())
        }
        7 => write_v7(w, meta, cpus, page),
        v => Err(io::Error::new(io::ErrorKind::InvalidInput, format!("cannot write trace.dat version {v} (6 or 7)"))),
    }
}

/// A v7 section: 16-byte header (id, flags, description string id, size) and the body.
fn section(w: &mut (impl Write + Seek), id: u16, body: &[u8]) -> io::Result<u64> {
    let at = w.stream_position()?;
    w.write_all(&id.to_le_bytes())?;
    w.write_all(&0u16.to_le_bytes())?;
    w.write_all(&0u32.to_le_bytes())?;
    w.write_all(&(body.len() as u64).to_le_bytes())?;
    w.write_all(body)?;
    Ok(at)
}

fn write_v7<W: Write + Seek, R: Read>(
    w: &mut W,
    meta: &DatMeta,
    cpus: &mut [CpuPages<R>],
    page: u64,
) -> io::Result<()> {
    prologue(w, meta, 7)?;
    w.write_all(b"none\0\0")?;
    let first_options = w.stream_position()?;
    w.write_all(&0u64.to_le_bytes())?;
    let mut opts: Vec<(u16, Vec<u8>)> = Vec::new();
    let text_u32 = |s: &str| {
        let mut b = Vec::new();
        put_str_u32(&mut b, s).map(|()| b)
    };
    let sections = [
        (option::HEADER_INFO, headers(meta)?),
        (option::FTRACE_EVENTS, ftrace_formats(meta)?),
        (option::EVENT_FORMATS, event_formats(meta)?),
        (option::KALLSYMS, text_u32(&meta.kallsyms)?),
        (option::PRINTK, text_u32(&meta.printk_formats)?),
        (option::CMDLINES, {
            let mut b = Vec::new();
            put_str_u64(&mut b, &meta.cmdlines)?;
            b
        }),
    ];
    for (id, body) in sections {
        let at = section(w, id, &body)?;
        opts.push((id, at.to_le_bytes().to_vec()));
    }
    // The trace data: a BUFFER section whose CPU blocks start page-aligned.
    let buf_at = w.stream_position()?;
    w.write_all(&option::BUFFER.to_le_bytes())?;
    w.write_all(&0u16.to_le_bytes())?;
    w.write_all(&0u32.to_le_bytes())?;
    w.write_all(&0u64.to_le_bytes())?;
    let body_start = w.stream_position()?;
    let mut entries = Vec::new();
    for c in cpus.iter_mut() {
        let off = align(w, page)?;
        let n = io::copy(&mut (&mut c.data).take(c.size), w)?;
        entries.push((c.cpu, off, n));
    }
    let end = w.stream_position()?;
    w.seek(SeekFrom::Start(buf_at + 8))?;
    w.write_all(&(end - body_start).to_le_bytes())?;
    w.seek(SeekFrom::Start(end))?;
    let clock = meta
        .options
        .iter()
        .find(|(id, _)| *id == option::TRACECLOCK)
        .map(|(_, d)| selected_clock(d))
        .unwrap_or_else(|| "local".into());
    let mut b = Vec::new();
    b.write_all(&buf_at.to_le_bytes())?;
    b.write_all(b"\0")?;
    b.write_all(clock.as_bytes())?;
    b.write_all(b"\0")?;
    b.write_all(&meta.page_size.to_le_bytes())?;
    b.write_all(&(entries.len() as u32).to_le_bytes())?;
    for (cpu, off, n) in entries {
        b.write_all(&cpu.to_le_bytes())?;
        b.write_all(&off.to_le_bytes())?;
        b.write_all(&n.to_le_bytes())?;
    }
    opts.push((option::BUFFER, b));
    opts.push((option::CPUCOUNT, meta.cpu_count.to_le_bytes().to_vec()));
    opts.extend(meta.options.iter().cloned());
    let mut body = Vec::new();
    for (id, data) in &opts {
        option(&mut body, *id, data)?;
    }
    option(&mut body, option::DONE, &0u64.to_le_bytes())?;
    let opt_at = section(w, 0, &body)?;
    let end = w.stream_position()?;
    w.seek(SeekFrom::Start(first_options))?;
    w.write_all(&opt_at.to_le_bytes())?;
    w.seek(SeekFrom::Start(end))?;
    Ok(())
}

fn selected_clock(data: &[u8]) -> String {
    let t = String::from_utf8_lossy(data);
    t.split_whitespace()
        .find_map(|w| w.strip_prefix('[').and_then(|w| w.strip_suffix(']')))
        .unwrap_or("local")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use traceevent::{Compression, Endian, TraceDat};

    const HEADER_PAGE: &str = "\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n\
        \tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;\n\
        \tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n\
        \tfield: char data;\toffset:16;\tsize:4080;\tsigned:0;\n";

    fn meta() -> DatMeta {
        DatMeta {
            version: 6,
            endian: Endian::Little,
            long_size: 8,
            page_size: 4096,
            compression: Compression::None,
            header_page: HEADER_PAGE.into(),
            header_event: String::new(),
            ftrace_formats: vec!["name: print\nID: 5\nformat:\n".into()],
            event_formats: vec![("sched".into(), "name: a\nID: 1\n".into()), ("irq".into(), "name: b\nID: 2\n".into())],
            kallsyms: "ffffffff81000000 T _stext\n".into(),
            printk_formats: String::new(),
            cmdlines: "1 init\n".into(),
            cpu_count: 2,
            options: vec![(option::TRACECLOCK, b"[local] global\n\0".to_vec()), (OPTION_WASMPROBE, b"{}".to_vec())],
            buffers: Vec::new(),
        }
    }

    /// A page holding one 8-byte record at ts 1000 + 5.
    fn page(ts: u64) -> Vec<u8> {
        let mut p = vec![0u8; 4096];
        p[0..8].copy_from_slice(&ts.to_le_bytes());
        p[8..16].copy_from_slice(&12u64.to_le_bytes());
        p[16..20].copy_from_slice(&((5u32 << 5) | 2).to_le_bytes());
        p[20..22].copy_from_slice(&1u16.to_le_bytes());
        p
    }

    #[test]
    fn what_we_write_reads_back_in_both_versions() {
        for version in [6, 7] {
            let pages = [page(1000), page(500)];
            let mut cpus: Vec<CpuPages<&[u8]>> =
                pages.iter().enumerate().map(|(i, p)| CpuPages { cpu: i as u32, data: &p[..], size: 4096 }).collect();
            let mut out = std::io::Cursor::new(Vec::new());
            write_dat(&mut out, &meta(), version, &mut cpus).unwrap();
            let bytes = out.into_inner();
            let dat = TraceDat::open(bytes).unwrap();
            let m = &dat.meta;
            assert_eq!(m.version, version);
            assert_eq!(m.header_page, HEADER_PAGE);
            assert_eq!(m.ftrace_formats.len(), 1);
            assert_eq!(m.event_formats, meta().event_formats);
            assert_eq!(m.kallsyms, meta().kallsyms);
            assert_eq!(m.cmdlines, "1 init\n");
            assert!(m.options.iter().any(|(id, d)| *id == OPTION_WASMPROBE && d == b"{}"));
            assert_eq!(m.buffers[0].cpus.len(), 2);
            assert!(m.buffers[0].cpus.iter().all(|c| c.offset % 4096 == 0 && c.size == 4096));
            let mut recs = dat.records(0).unwrap();
            let mut got = Vec::new();
            while let Some(r) = recs.next_record() {
                let r = r.unwrap();
                got.push((r.cpu, r.ts));
            }
            assert_eq!(got, [(1, 505), (0, 1005)], "v{version}: merged by timestamp");
        }
        let mut out = std::io::Cursor::new(Vec::new());
        assert!(write_dat::<_, &[u8]>(&mut out, &meta(), 5, &mut []).is_err());
    }
}
