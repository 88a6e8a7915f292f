//! Raw recording: each CPU's reader moves full pages from the kernel straight to that CPU's
//! file with `splice(2)` (through a pipe, never through our memory), and at the end reads the
//! partial pages with `read(2)`, as `trace-cmd record` does. Nothing is decoded: the events
//! recorded and lost are the kernel's own per-CPU counts (`per_cpu/cpuN/stats`) once the
//! readers have drained everything. For a recording nothing reads live (`record` without a
//! plugin): the rounds, the merge and the page copies of the decoding pump are its cost.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use anyhow::{anyhow, Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use tracefs::{CpuReader, Instance};

use super::{Shared, POLL_MS};

/// Where the kernel counts what each CPU's buffer handed out and lost.
pub(super) struct RawCounts {
    stats: Vec<PathBuf>,
}

impl RawCounts {
    pub(super) fn new(instance: &Instance, cpus: usize) -> RawCounts {
        RawCounts { stats: (0..cpus).map(|c| instance.file(&format!("per_cpu/cpu{c}/stats"))).collect() }
    }

    /// Events read from each CPU's buffer (all of them, once drained), and those lost there
    /// (overwritten before they were read: what the sub-buffers' missed-events flags count).
    pub(super) fn read(&self) -> Result<(u64, Vec<u64>)> {
        let mut events = 0;
        let mut lost = Vec::with_capacity(self.stats.len());
        for p in &self.stats {
            let text = tracefs::read_text(p).with_context(|| format!("reading {}", p.display()))?;
            let field = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(':')))
                    .and_then(|v| v.trim().parse::<u64>().ok())
            };
            events += field("read events").with_context(|| format!("{}: no \"read events\"", p.display()))?;
            lost.push(field("overrun").unwrap_or(0));
        }
        Ok((events, lost))
    }
}

/// One CPU's raw reader (the thread [`super::Pump::open_raw`] starts): waits for pages (the
/// buffer `buffer_percent` full, or the poll timeout), splices every full one to `out`; when
/// told to finish, moves the rest, partial pages included, and ends.
pub(super) fn reader_loop(cpu: usize, mut reader: CpuReader, sh: &Shared, mut out: File) {
    let mut page = vec![0u8; reader.subbuf_size()];
    loop {
        let finishing = sh.finish.load(Ordering::Relaxed);
        if !finishing {
            let mut fds = [PollFd::new(reader.as_fd(), PollFlags::POLLIN)];
            if let Err(e) = poll(&mut fds, PollTimeout::from(POLL_MS)) {
                if e != nix::errno::Errno::EINTR {
                    let _ = sh.rounds.send(Err(anyhow!("waiting for CPU {cpu}'s trace data: {e}")));
                    return;
                }
            }
        }
        if let Err(e) = move_pages(&mut reader, &mut out, &mut page, finishing) {
            let _ = sh.rounds.send(Err(e.context(format!("recording CPU {cpu}'s pages"))));
            return;
        }
        if finishing {
            return;
        }
    }
}

/// Splices the full pages to `out`; with `rest`, then reads and writes the partial ones too.
fn move_pages(reader: &mut CpuReader, out: &mut File, page: &mut [u8], rest: bool) -> Result<()> {
    reader.splice_to(out.as_fd(), usize::MAX)?;
    if rest {
        loop {
            let n = reader.read_subbuf(page)?;
            if n == 0 {
                break;
            }
            out.write_all(&page[..n])?;
        }
    }
    Ok(())
}
