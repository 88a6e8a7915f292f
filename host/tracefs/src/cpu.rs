//! Per-CPU raw ring-buffer readers: `per_cpu/cpuN/trace_pipe_raw`, read one sub-buffer at a
//! time. Reads consume: a page read here is gone from the kernel's buffer.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

use crate::error::{Error, Result};
use crate::instance::Instance;

/// A reader of one CPU's ring buffer in one instance (`tracefs_cpu_open`).
#[derive(Debug)]
pub struct CpuReader {
    file: File,
    cpu: usize,
    subbuf_size: usize,
}

impl CpuReader {
    /// Opens `per_cpu/cpu<cpu>/trace_pipe_raw` of `instance` (non-blocking when `nonblock`).
    pub fn open(instance: &Instance, cpu: usize, nonblock: bool) -> Result<CpuReader> {
        let path = instance.file(&format!("per_cpu/cpu{cpu}/trace_pipe_raw"));
        let subbuf_size = instance.subbuf_size()?;
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true);
        if nonblock {
            opts.custom_flags(libc::O_NONBLOCK);
        }
        let file = opts.open(&path).map_err(|e| Error::io(format!("cannot open CPU {cpu}'s buffer"), &path, &e))?;
        Ok(CpuReader { file, cpu, subbuf_size })
    }

    /// The CPU this reader drains.
    pub fn cpu(&self) -> usize {
        self.cpu
    }

    /// The size of one sub-buffer, the unit every read returns.
    pub fn subbuf_size(&self) -> usize {
        self.subbuf_size
    }

    /// Reads one sub-buffer into `buf` (at least [`subbuf_size`](Self::subbuf_size) bytes; one
    /// `read(2)`). Returns its length, or 0 when a non-blocking reader finds nothing.
    pub fn read_subbuf(&mut self, buf: &mut [u8]) -> Result<usize> {
        let n = self.subbuf_size.min(buf.len());
        match self.file.read(&mut buf[..n]) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(Error::io(format!("cannot read CPU {}'s buffer", self.cpu), "trace_pipe_raw", &e)),
        }
    }
}
