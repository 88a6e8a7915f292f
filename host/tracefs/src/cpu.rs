//! Per-CPU raw ring-buffer readers of `per_cpu/cpuN/trace_pipe_raw`, three ways:
//!
//! - [`ReadMode::Read`]: one `read(2)` per sub-buffer. The kernel swaps a full page out or copies
//!   a partial one; each read returns a whole sub-buffer (zero padded).
//! - [`ReadMode::Splice`]: `splice(2)` into a pipe, then `read` from the pipe. The kernel only
//!   splices full pages, so a partial page is read with `read(2)`.
//! - [`ReadMode::Mmap`]: the ring buffer mapped into our memory (kernels 6.10+,
//!   Documentation/trace/ring-buffer-map.rst): a meta page, then every sub-buffer by id. We copy
//!   the reader page's committed events and ask the kernel for the next page with the
//!   `TRACE_MMAP_IOCTL_GET_READER` ioctl. A page may be handed out in several pieces while the
//!   writer is still on it: [`Chunk::skip`] says how much of its data was handed out before.
//!
//! Reads consume: a page read here is gone from the kernel's buffer.
//!
//! No reader ever waits inside the kernel: the file is always opened `O_NONBLOCK`, and a
//! blocking reader waits in `poll(2)` on its buffer and its stopper's eventfd, with a timeout.
//! A `read(2)` blocked in the kernel is ended on 6.12 by `ioctl(fd, 0)` and closing a
//! descriptor of the file (its `flush` marks the reader closed), but not on 6.1, Debian 12's
//! own kernel: the woken read finds the buffer empty and waits on, and its open file keeps
//! the instance busy (`rmdir`: EBUSY). libtracefs also sets `O_NONBLOCK` on the shared file
//! before the ioctl, which 6.1 honours, but leaves a window between the read's flag check and
//! its wait.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::error::{Errno, Error, Result};
use crate::instance::{page_size, Instance};

/// How a [`CpuReader`] gets pages out of the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// `read(2)` of `trace_pipe_raw`.
    Read,
    /// `splice(2)` through a pipe (full pages), `read(2)` for partial ones.
    Splice,
    /// The memory-mapped ring buffer (kernel 6.10+).
    Mmap,
}

/// What one successful read produced in the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Bytes of sub-buffer written to the buffer.
    pub len: usize,
    /// Bytes of the sub-buffer's event data (after its header) that an earlier chunk already
    /// delivered: records starting before this offset must be skipped. Always 0 except for
    /// mapped reads of a page the writer is still filling.
    pub skip: usize,
}

/// A reader of one CPU's ring buffer in one instance (`tracefs_cpu_open`).
#[derive(Debug)]
pub struct CpuReader {
    file: File,
    cpu: usize,
    subbuf_size: usize,
    mode: Mode,
    /// A blocking reader's stop signal (an eventfd its [`CpuStopper`]s write to); `None` for a
    /// non-blocking reader.
    stop: Option<OwnedFd>,
}

/// Longest a blocking reader sleeps in `poll` before it reads again, in milliseconds. `poll`
/// on `trace_pipe_raw` reports data only once the buffer is `buffer_percent` full, where a
/// blocking `read(2)` returned as soon as there was any: this bounds the difference.
const WAIT_MS: u16 = 10;

/// How a blocking reader's wait ended.
enum Wait {
    Stopped,
    Ready,
    TimedOut,
}

#[derive(Debug)]
enum Mode {
    Read,
    Splice { pipe_r: File, pipe_w: OwnedFd },
    Mmap(Mapping),
}

impl CpuReader {
    /// Opens `per_cpu/cpu<cpu>/trace_pipe_raw` of `instance` for plain reads (non-blocking when
    /// `nonblock`). A blocking reader's reads wait for data or for its [`CpuStopper`], polling
    /// the buffer at least every 10 ms; they never wait in the kernel.
    pub fn open(instance: &Instance, cpu: usize, nonblock: bool) -> Result<CpuReader> {
        Self::open_with(instance, cpu, nonblock, ReadMode::Read)
    }

    /// Opens the reader with the given mode. `Mmap` is `ENODEV` on kernels that cannot map the
    /// ring buffer (before 6.10).
    pub fn open_with(instance: &Instance, cpu: usize, nonblock: bool, mode: ReadMode) -> Result<CpuReader> {
        let path = instance.file(&format!("per_cpu/cpu{cpu}/trace_pipe_raw"));
        let subbuf_size = instance.subbuf_size()?;
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true).custom_flags(libc::O_NONBLOCK);
        let file = opts.open(&path).map_err(|e| Error::io(format!("cannot open CPU {cpu}'s buffer"), &path, &e))?;
        let stop = if nonblock {
            None
        } else {
            // SAFETY: eventfd takes no pointers; a valid result is a new descriptor we own.
            let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
            if fd < 0 {
                return Err(Error::new(Errno::last(), "cannot make an eventfd to stop a blocking reader"));
            }
            // SAFETY: `fd` is a fresh descriptor, owned by nothing else.
            Some(unsafe { OwnedFd::from_raw_fd(fd) })
        };
        let mode = match mode {
            ReadMode::Read => Mode::Read,
            ReadMode::Splice => {
                let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                    .map_err(|e| Error::new(e, "cannot make a pipe for splice"))?;
                // A pipe holds 16 pages by default; one sub-buffer must fit, and a larger pipe
                // lets [`CpuReader::splice_to`] move more pages per call (1 MiB is the
                // unprivileged limit by default; refused: the default stays).
                let want = (1usize << 20).max(subbuf_size).max(page_size());
                if nix::fcntl::fcntl(&w, nix::fcntl::FcntlArg::F_SETPIPE_SZ(want as i32)).is_err() {
                    let _ =
                        nix::fcntl::fcntl(&w, nix::fcntl::FcntlArg::F_SETPIPE_SZ(subbuf_size.max(page_size()) as i32));
                }
                Mode::Splice { pipe_r: File::from(r), pipe_w: w }
            }
            ReadMode::Mmap => Mode::Mmap(
                Mapping::new(&file).map_err(|e| e_with_path(e, &format!("cannot map CPU {cpu}'s buffer"), &path))?,
            ),
        };
        Ok(CpuReader { file, cpu, subbuf_size, mode, stop })
    }

    /// The CPU this reader drains.
    pub fn cpu(&self) -> usize {
        self.cpu
    }

    /// The size of one sub-buffer, the unit every read returns.
    pub fn subbuf_size(&self) -> usize {
        self.subbuf_size
    }

    /// How this reader reads.
    pub fn mode(&self) -> ReadMode {
        match self.mode {
            Mode::Read => ReadMode::Read,
            Mode::Splice { .. } => ReadMode::Splice,
            Mode::Mmap(_) => ReadMode::Mmap,
        }
    }

    /// Reads one sub-buffer into `buf` (at least [`subbuf_size`](Self::subbuf_size) bytes).
    /// Returns its length, or 0 when a non-blocking reader finds nothing (a blocking one: when
    /// it was stopped). For mapped readers use [`read_chunk`](Self::read_chunk), which also
    /// says what to skip.
    pub fn read_subbuf(&mut self, buf: &mut [u8]) -> Result<usize> {
        Ok(self.read_chunk(buf)?.map_or(0, |c| c.len))
    }

    /// Reads the next piece of this CPU's buffer into `buf`, or `None` when there is nothing
    /// (non-blocking) or the reader was stopped (blocking). One or two syscalls when there is
    /// data (read; splice + read; ioctl for a new mapped page).
    pub fn read_chunk(&mut self, buf: &mut [u8]) -> Result<Option<Chunk>> {
        let mut ready = false;
        loop {
            let got = self.try_read_chunk(buf)?;
            if got.is_some() || self.stop.is_none() {
                return Ok(got);
            }
            // A buffer that said it had data and then had none is not asked again this time.
            match self.wait(!ready)? {
                Wait::Stopped => return Ok(None),
                Wait::Ready => ready = true,
                Wait::TimedOut => ready = false,
            }
        }
    }

    /// A blocking reader's wait: up to [`WAIT_MS`] for data (polled only when `ask_buffer`),
    /// ended at once by a stop.
    fn wait(&self, ask_buffer: bool) -> Result<Wait> {
        let stop = self.stop.as_ref().expect("blocking readers have a stop fd");
        let mut fds = [
            libc::pollfd { fd: stop.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: self.file.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        let n = if ask_buffer { 2 } else { 1 };
        // SAFETY: `fds` holds at least `n` valid pollfd entries for the duration of the call.
        if unsafe { libc::poll(fds.as_mut_ptr(), n, i32::from(WAIT_MS)) } < 0 {
            let e = Errno::last();
            if e != Errno::EINTR {
                return Err(Error::new(e, format!("cannot wait for CPU {}'s buffer", self.cpu)));
            }
        }
        Ok(if fds[0].revents & libc::POLLIN != 0 {
            Wait::Stopped
        } else if fds[1].revents != 0 {
            Wait::Ready
        } else {
            Wait::TimedOut
        })
    }

    /// Moves every full sub-buffer the kernel has for this CPU, up to `max` bytes, to `out`
    /// without copying it through our memory: `splice(2)` into the reader's pipe, then from the
    /// pipe to `out` (at its file position), as many pages per call as the pipe holds. Returns
    /// the bytes moved (whole sub-buffers), 0 when no page is full. A [`ReadMode::Splice`]
    /// reader only (`EINVAL` otherwise); partial pages are left for
    /// [`read_subbuf`](Self::read_subbuf).
    pub fn splice_to(&mut self, out: BorrowedFd<'_>, max: usize) -> Result<usize> {
        let cpu = self.cpu;
        let Mode::Splice { pipe_r, pipe_w } = &mut self.mode else {
            return Err(Error::new(Errno::EINVAL, format!("CPU {cpu}'s reader does not splice")));
        };
        let flags = nix::fcntl::SpliceFFlags::SPLICE_F_NONBLOCK | nix::fcntl::SpliceFFlags::SPLICE_F_MOVE;
        // The kernel takes whole pages only; the pipe's capacity bounds one call.
        let room = nix::fcntl::fcntl(&*pipe_w, nix::fcntl::FcntlArg::F_GETPIPE_SZ).map_or(page_size(), |n| n as usize);
        let unit = self.subbuf_size.max(page_size());
        let mut moved = 0;
        while moved + unit <= max {
            let want = (max - moved).min(room) / unit * unit;
            let n = match nix::fcntl::splice(self.file.as_fd(), None, pipe_w.as_fd(), None, want, flags) {
                Ok(0) | Err(Errno::EAGAIN) => break,
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(Error::new(e, format!("cannot splice CPU {cpu}'s buffer"))),
            };
            let mut left = n;
            while left > 0 {
                match nix::fcntl::splice(pipe_r.as_fd(), None, out, None, left, nix::fcntl::SpliceFFlags::SPLICE_F_MOVE)
                {
                    Ok(0) => return Err(Error::new(Errno::EIO, format!("CPU {cpu}'s pages stuck in the pipe"))),
                    Ok(k) => left -= k,
                    Err(Errno::EINTR) => {}
                    Err(e) => return Err(Error::new(e, format!("cannot write CPU {cpu}'s pages"))),
                }
            }
            moved += n;
            if n < want {
                break;
            }
        }
        Ok(moved)
    }

    fn try_read_chunk(&mut self, buf: &mut [u8]) -> Result<Option<Chunk>> {
        let size = self.subbuf_size;
        if buf.len() < size {
            return Err(Error::new(Errno::EINVAL, format!("buffer of {} bytes is under a sub-buffer", buf.len())));
        }
        let cpu = self.cpu;
        let io = |e: std::io::Error| Error::io(format!("cannot read CPU {cpu}'s buffer"), "trace_pipe_raw", &e);
        match &mut self.mode {
            Mode::Read => read_once(&mut self.file, &mut buf[..size]).map_err(io),
            Mode::Splice { pipe_r, pipe_w } => {
                let flags = nix::fcntl::SpliceFFlags::SPLICE_F_NONBLOCK | nix::fcntl::SpliceFFlags::SPLICE_F_MOVE;
                match nix::fcntl::splice(self.file.as_fd(), None, pipe_w.as_fd(), None, size, flags) {
                    Ok(0) | Err(Errno::EAGAIN) => read_once(&mut self.file, &mut buf[..size]).map_err(io),
                    Ok(n) => {
                        pipe_r.read_exact(&mut buf[..n]).map_err(io)?;
                        Ok(Some(Chunk { len: n, skip: 0 }))
                    }
                    Err(e) => Err(Error::new(e, format!("cannot splice CPU {cpu}'s buffer"))),
                }
            }
            Mode::Mmap(m) => m.read(self.file.as_raw_fd(), &mut buf[..size]),
        }
    }
}

fn e_with_path(e: Error, what: &str, path: &std::path::Path) -> Error {
    Error::new(e.errno(), format!("{what}: {}", e.what())).with_path(path)
}

fn read_once(f: &mut File, buf: &mut [u8]) -> std::io::Result<Option<Chunk>> {
    match f.read(buf) {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(Chunk { len: n, skip: 0 })),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// Wakes a [`CpuReader`] waiting in a read, from another thread (`tracefs_cpu_stop`).
#[derive(Debug)]
pub struct CpuStopper {
    /// A copy of the reader's eventfd; `None` for a non-blocking reader, which never waits.
    fd: Option<OwnedFd>,
}

impl CpuStopper {
    /// Stops the reader: a read waiting on this CPU buffer returns with nothing at once, and
    /// later reads no longer wait (they still hand over what is there), like libtracefs'
    /// `tracefs_cpu_stop`. One `write(2)` to the reader's eventfd, the same on every kernel
    /// (the module comment says why not the kernel's own wake-up).
    pub fn stop(self) -> Result<()> {
        let Some(fd) = self.fd else { return Ok(()) };
        let one = 1u64.to_ne_bytes();
        // SAFETY: an 8-byte write from a live buffer to our own eventfd.
        if unsafe { libc::write(fd.as_raw_fd(), one.as_ptr().cast(), one.len()) } < 0 {
            let e = Errno::last();
            // EAGAIN: the counter is at its maximum, so the reader is stopped already.
            if e != Errno::EAGAIN {
                return Err(Error::new(e, "cannot stop the reader of a CPU buffer"));
            }
        }
        Ok(())
    }
}

impl CpuReader {
    /// A handle that stops this reader's waits from another thread.
    pub fn stopper(&self) -> Result<CpuStopper> {
        let fd = match &self.stop {
            None => None,
            Some(fd) => Some(fd.try_clone().map_err(|e| {
                let errno = e.raw_os_error().map_or(Errno::EIO, Errno::from_raw);
                Error::new(errno, "cannot share the stop signal of a CPU buffer's reader")
            })?),
        };
        Ok(CpuStopper { fd })
    }
}

impl AsFd for CpuReader {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// Whether the kernel can map `trace_pipe_raw` (tries CPU 0 of `instance`; 6.10+).
pub fn mapping_supported(instance: &Instance) -> bool {
    CpuReader::open_with(instance, 0, true, ReadMode::Mmap).is_ok()
}

// struct trace_buffer_meta (include/uapi/linux/trace_mmap.h), host byte order.
const META_PAGE_SIZE: usize = 0;
const META_SUBBUF_SIZE: usize = 8;
const META_NR_SUBBUFS: usize = 12;
const META_READER_ID: usize = 24;
const META_READER_READ: usize = 28;
/// `TRACE_MMAP_IOCTL_GET_READER` = `_IO('R', 0x20)`.
const GET_READER: libc::c_ulong = 0x5220;
const COMMIT_SIZE_MASK: u64 = (1 << 27) - 1;

/// A mapped per-CPU ring buffer.
#[derive(Debug)]
struct Mapping {
    meta: *mut libc::c_void,
    meta_len: usize,
    data: *mut libc::c_void,
    data_len: usize,
    subbuf_size: usize,
    nr_subbufs: u32,
    current: Option<u32>,
    consumed: usize,
}

// SAFETY: the mapping is owned by this value alone; the kernel is the only other writer.
unsafe impl Send for Mapping {}

impl Mapping {
    fn new(file: &File) -> Result<Mapping> {
        let fd = file.as_raw_fd();
        let map = |len: usize, off: usize| -> Result<*mut libc::c_void> {
            // SAFETY: a fresh shared read-only mapping of the fd; the kernel validates the range.
            let p = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, fd, off as i64) };
            if p == libc::MAP_FAILED {
                let e = Errno::last();
                let e = if e == Errno::EINVAL { Errno::ENODEV } else { e };
                return Err(Error::new(e, "this kernel cannot map the ring buffer"));
            }
            Ok(p)
        };
        let page = page_size();
        let first = map(page, 0)?;
        // SAFETY: the meta page is at least one page and starts with these u32 fields.
        let (meta_len, subbuf_size, nr) = unsafe {
            let b = first as *const u8;
            (
                (b.add(META_PAGE_SIZE) as *const u32).read_volatile() as usize,
                (b.add(META_SUBBUF_SIZE) as *const u32).read_volatile() as usize,
                (b.add(META_NR_SUBBUFS) as *const u32).read_volatile(),
            )
        };
        let meta = if meta_len > page {
            // SAFETY: `first` is our own mapping of `page` bytes.
            unsafe { libc::munmap(first, page) };
            map(meta_len, 0)?
        } else {
            first
        };
        let meta_len = meta_len.max(page);
        let data_len = subbuf_size * nr as usize;
        let data = match map(data_len, meta_len) {
            Ok(d) => d,
            Err(e) => {
                // SAFETY: unmapping our own meta mapping.
                unsafe { libc::munmap(meta, meta_len) };
                return Err(e);
            }
        };
        Ok(Mapping { meta, meta_len, data, data_len, subbuf_size, nr_subbufs: nr, current: None, consumed: 0 })
    }

    fn meta_u32(&self, off: usize) -> u32 {
        // SAFETY: `off` is a field offset inside the mapped meta page; the kernel updates it.
        unsafe { (*((self.meta as *const u8).add(off) as *const AtomicU32)).load(Ordering::Acquire) }
    }

    fn commit(&self, id: u32) -> u64 {
        // SAFETY: `id < nr_subbufs` (checked by the caller); the commit word is at offset 8.
        unsafe {
            (*((self.data as *const u8).add(id as usize * self.subbuf_size + 8) as *const AtomicU64))
                .load(Ordering::Acquire)
        }
    }

    fn read(&mut self, fd: i32, buf: &mut [u8]) -> Result<Option<Chunk>> {
        // At most: notice new data, or mark the page read and swap in the next one.
        for _ in 0..3 {
            let id = self.meta_u32(META_READER_ID);
            if id >= self.nr_subbufs {
                return Err(Error::new(Errno::EIO, format!("mapped reader page id {id} out of range")));
            }
            if self.current != Some(id) {
                // A page found at open may have been partly read by an earlier reader; a page
                // swapped in by our own ioctl is all new to us (the kernel already counts it
                // read in `reader.read`, assuming we consume it whole).
                self.consumed = match self.current {
                    None => self.meta_u32(META_READER_READ) as usize,
                    Some(_) => 0,
                };
                self.current = Some(id);
            }
            let word = self.commit(id);
            let size = (word & COMMIT_SIZE_MASK) as usize;
            if size > self.consumed && size + 16 <= self.subbuf_size {
                let start = id as usize * self.subbuf_size;
                // SAFETY: the reader page is ours until the next GET_READER; bytes up to `size`
                // are committed and no longer written.
                let page = unsafe { std::slice::from_raw_parts((self.data as *const u8).add(start), self.subbuf_size) };
                buf[..self.subbuf_size].copy_from_slice(page);
                // Freeze the copy at what was committed when we looked.
                buf[8..16].copy_from_slice(&((word & !COMMIT_SIZE_MASK) | size as u64).to_ne_bytes());
                let skip = self.consumed;
                self.consumed = size;
                return Ok(Some(Chunk { len: self.subbuf_size, skip }));
            }
            // SAFETY: ioctl on our own trace_pipe_raw fd with no argument.
            if unsafe { libc::ioctl(fd, GET_READER) } < 0 {
                let e = Errno::last();
                if e == Errno::EAGAIN || e == Errno::EINTR {
                    return Ok(None);
                }
                return Err(Error::new(e, "GET_READER ioctl on the mapped ring buffer failed"));
            }
            if self.meta_u32(META_READER_ID) == id && (self.commit(id) & COMMIT_SIZE_MASK) as usize <= self.consumed {
                // Same page, nothing new: either the kernel just marked it read (the next
                // ioctl swaps) or there is nothing to read at all.
                continue;
            }
        }
        Ok(None)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mappings, once.
        unsafe {
            libc::munmap(self.data, self.data_len);
            libc::munmap(self.meta, self.meta_len);
        }
    }
}
