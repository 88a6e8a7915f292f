//! Recording to a trace.dat: the raw pages each reader reads go to per-CPU scratch files while
//! the pipeline runs (a page tap), and become a trace.dat in trace-cmd's format at the end,
//! with what a replay needs to give a plugin the answers it had live.

use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use traceevent::{Compression, DatMeta};

use crate::datwrite::{write_dat, CpuPages, OPTION_WASMPROBE};
use crate::kernel_info::Answers;
use crate::pump::PageTap;
use crate::session::Session;

/// What a recording stores about the plugin run that made it (option [`OPTION_WASMPROBE`]).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct RecordedRun {
    /// The plugin, as given on the command line.
    pub plugin: Option<String>,
    /// Its init arguments.
    pub args: Vec<(String, String)>,
    /// What it asked the kernel.
    pub answers: Answers,
    /// Each plan probe's event: `(probe name, system, event)`, in plan order.
    pub probes: Vec<(String, String, String)>,
    /// Command names the plugin was given.
    pub comms: BTreeMap<i32, String>,
    /// The processes whose user stacks were seen, with their mappings (written as option
    /// [`crate::symbolize::OPTION_PROCESS_MAPS`], not in this JSON).
    #[serde(skip)]
    pub processes: Option<crate::symbolize::Processes>,
}

/// Where and how a run records what it traced.
#[derive(Debug, Clone)]
pub struct RecordTo {
    /// The trace.dat to write.
    pub path: PathBuf,
    /// File version, 6 or 7.
    pub version: u32,
    /// Tracepoints to record besides the plugin's probes (`SYSTEM[:EVENT]`).
    pub events: Vec<String>,
}

/// Per-CPU scratch files the raw pages go to while tracing, turned into a trace.dat at the end.
pub struct Recorder {
    paths: Vec<PathBuf>,
    files: Arc<Vec<Mutex<std::fs::File>>>,
}

impl Recorder {
    /// Scratch files beside `out`, one per CPU.
    pub fn new(out: &Path, cpus: usize) -> Result<Recorder> {
        let mut paths = Vec::new();
        let mut files = Vec::new();
        for cpu in 0..cpus {
            let p = PathBuf::from(format!("{}.cpu{cpu}.tmp", out.display()));
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&p)
                .with_context(|| format!("cannot create {}", p.display()))?;
            paths.push(p);
            files.push(Mutex::new(f));
        }
        Ok(Recorder { paths, files: Arc::new(files) })
    }

    /// Writes the trace.dat `to` describes from the pages recorded and the session's formats.
    pub fn finish(&self, session: &Session, to: &RecordTo, run: &RecordedRun) -> Result<()> {
        let inst = session.instance();
        let t = inst.tracefs();
        let read = |p: &Path| tracefs::read_text(p).with_context(|| format!("reading {}", p.display()));
        let mut ftrace_formats = Vec::new();
        for ev in tracefs::system_events(t, "ftrace").unwrap_or_default() {
            if let Ok(f) = tracefs::event_format(t, "ftrace", &ev) {
                ftrace_formats.push(f);
            }
        }
        let uname = nix::sys::utsname::uname().map(|u| {
            format!(
                "{} {} {} {}",
                u.sysname().to_string_lossy(),
                u.nodename().to_string_lossy(),
                u.release().to_string_lossy(),
                u.machine().to_string_lossy()
            )
        });
        let mut options = vec![(traceevent::dat::option::TRACECLOCK, {
            let mut c = read(&inst.file("trace_clock"))?.into_bytes();
            c.push(0);
            c
        })];
        if let Ok(u) = uname {
            options.push((traceevent::dat::option::UNAME, format!("{u}\0").into_bytes()));
        }
        options.push((
            traceevent::dat::option::VERSION,
            format!("wasmprobe {}\0", env!("CARGO_PKG_VERSION")).into_bytes(),
        ));
        options.push((OPTION_WASMPROBE, serde_json::to_vec(run)?));
        if let Some(p) = run.processes.as_ref().filter(|p| !p.is_empty()) {
            options.push((crate::symbolize::OPTION_PROCESS_MAPS, p.to_bytes()));
        }
        let meta = DatMeta {
            version: to.version,
            endian: traceevent::Endian::native(),
            long_size: std::mem::size_of::<usize>() as u8,
            page_size: system_page_size(),
            compression: Compression::None,
            header_page: read(&t.file("events/header_page"))?,
            header_event: read(&t.file("events/header_event"))?,
            ftrace_formats,
            event_formats: session.probes().iter().map(|p| (p.system.clone(), p.format.clone())).collect(),
            kallsyms: std::fs::read_to_string("/proc/kallsyms").unwrap_or_default(),
            printk_formats: read(&t.file("printk_formats")).unwrap_or_default(),
            cmdlines: read(&t.file("saved_cmdlines")).unwrap_or_default(),
            cpu_count: self.paths.len() as u32,
            options,
            buffers: Vec::new(),
        };
        let mut cpus = Vec::new();
        for (cpu, f) in self.files.iter().enumerate() {
            let mut f = f.lock().unwrap().try_clone()?;
            let size = f.seek(SeekFrom::End(0))?;
            f.seek(SeekFrom::Start(0))?;
            cpus.push(CpuPages { cpu: cpu as u32, data: f, size });
        }
        let tmp = PathBuf::from(format!("{}.tmp", to.path.display()));
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?,
        );
        write_dat(&mut out, &meta, to.version, &mut cpus).with_context(|| format!("writing {}", tmp.display()))?;
        out.flush()?;
        drop(out);
        std::fs::rename(&tmp, &to.path).with_context(|| format!("cannot create {}", to.path.display()))?;
        Ok(())
    }
}

impl Recorder {
    /// The scratch files, by CPU, for readers that write to them themselves
    /// ([`crate::pipeline::Pipeline::record_raw`]).
    pub fn files(&self) -> Result<Vec<std::fs::File>> {
        self.files.iter().map(|f| Ok(f.lock().unwrap().try_clone()?)).collect()
    }

    /// The page tap that writes each page read to its CPU's scratch file.
    pub fn tap(&self) -> PageTap {
        let files = self.files.clone();
        Box::new(move |cpu, page| files[cpu].lock().unwrap().write_all(page))
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        for p in &self.paths {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn system_page_size() -> u32 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok().flatten().map_or(4096, |v| v as u32)
}
