//! The command a run follows (the man page example's `run_exec`), and the signals that end a
//! run cleanly.
//!
//! The child is forked held: it waits on a pipe until the parent has told the kernel to trace
//! its pid, then execs, so not one of its events is missed.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, pipe2, ForkResult, Pid};

/// Where the followed command's stdout goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommandStdout {
    /// Ours: the terminal, or wherever our stdout goes.
    #[default]
    Inherit,
    /// Our stderr, so that our stdout holds our output alone (`run --json` without `-o`).
    ToStderr,
}

/// A forked command waiting for [`HeldChild::release`] before it execs.
#[derive(Debug)]
pub struct HeldChild {
    pid: Pid,
    release: Option<OwnedFd>,
    status: Option<WaitStatus>,
}

impl HeldChild {
    /// Forks `argv` (looked up in `PATH`); the child blocks until released. If exec fails the
    /// child prints why and exits 127.
    pub fn spawn(argv: &[String]) -> Result<HeldChild> {
        Self::spawn_with(argv, CommandStdout::Inherit)
    }

    /// [`HeldChild::spawn`], with the command's stdout sent where `stdout` says (its stderr is
    /// always ours). If that cannot be set up the child exits 126 without running the command.
    pub fn spawn_with(argv: &[String], stdout: CommandStdout) -> Result<HeldChild> {
        if argv.is_empty() {
            bail!("no command given");
        }
        let args: Vec<CString> = argv
            .iter()
            .map(|a| CString::new(a.as_str()))
            .collect::<Result<_, _>>()
            .context("command has a NUL byte")?;
        let mut ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        let msg = format!("wasmprobe: cannot run {}: ", argv[0]);
        let redirect_msg = format!("wasmprobe: cannot run {}: its stdout cannot go to stderr\n", argv[0]);
        let (r, w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")?;
        // SAFETY: between fork and exec the child only calls async-signal-safe functions
        // (read, close, dup2, execvp, write, strerror-free reporting, _exit) on memory prepared before.
        match unsafe { fork() }.context("fork")? {
            ForkResult::Child => unsafe {
                drop(w);
                let mut b = [0u8; 1];
                let n = libc::read(r.as_raw_fd(), b.as_mut_ptr().cast(), 1);
                if n != 1 {
                    // The parent gave up (its end closed without a byte): never run the command.
                    libc::_exit(126);
                }
                if stdout == CommandStdout::ToStderr && libc::dup2(2, 1) != 1 {
                    libc::write(2, redirect_msg.as_ptr().cast(), redirect_msg.len());
                    libc::_exit(126);
                }
                libc::execvp(ptrs[0], ptrs.as_ptr());
                let errno = *libc::__errno_location();
                libc::write(2, msg.as_ptr().cast(), msg.len());
                let reason: &[u8] = if errno == libc::ENOENT { b"not found\n" } else { b"exec failed\n" };
                libc::write(2, reason.as_ptr().cast(), reason.len());
                libc::_exit(127)
            },
            ForkResult::Parent { child } => {
                drop(r);
                Ok(HeldChild { pid: child, release: Some(w), status: None })
            }
        }
    }

    /// The child's pid.
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// Lets the child exec its command.
    pub fn release(&mut self) -> Result<()> {
        if let Some(w) = self.release.take() {
            nix::unistd::write(&w, b"x").context("releasing the command")?;
        }
        Ok(())
    }

    /// Whether the command has exited (does not block). The child is not reaped: as a zombie
    /// it keeps `/proc/<pid>/comm`, so events still to be delivered can be named.
    pub fn exited(&mut self) -> bool {
        if self.status.is_some() {
            return true;
        }
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        match waitid(Id::Pid(self.pid), flags) {
            Ok(WaitStatus::StillAlive) => false,
            Ok(_) => true,
            Err(_) => true,
        }
    }

    /// Reaps the exited command and returns its exit code (128 + signal for a killed one);
    /// `None` while it runs.
    pub fn exit_code(&mut self) -> Option<i32> {
        if self.status.is_none() {
            match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => {}
                Ok(s) => self.status = Some(s),
            }
        }
        match self.status? {
            WaitStatus::Exited(_, c) => Some(c),
            WaitStatus::Signaled(_, s, _) => Some(128 + s as i32),
            _ => None,
        }
    }
}

impl Drop for HeldChild {
    fn drop(&mut self) {
        // A child never released exits without running its command when the pipe closes; one
        // still running is left alone (it is the user's command), but reaped if it is done.
        self.release = None;
        if self.status.is_none() {
            let _ = waitpid(self.pid, Some(WaitPidFlag::WNOHANG));
        }
    }
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Makes SIGINT and SIGTERM set the stop flag instead of killing us, so a run can tear down.
/// No `SA_RESTART`: a blocked `poll` returns at once.
pub fn install_stop_handlers() -> Result<()> {
    let act = SigAction::new(SigHandler::Handler(on_signal), SaFlags::empty(), SigSet::empty());
    for s in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { sigaction(s, &act) }.with_context(|| format!("installing a {s} handler"))?;
    }
    Ok(())
}

/// Whether SIGINT or SIGTERM arrived.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_child_runs_only_when_released() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let mut c = HeldChild::spawn(&["touch".into(), marker.to_str().unwrap().into()]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!marker.exists(), "held child must not exec before release");
        c.release().unwrap();
        while !c.exited() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(c.exit_code(), Some(0));
        assert!(marker.exists());

        let mut bad = HeldChild::spawn(&["/no/such/command".into()]).unwrap();
        bad.release().unwrap();
        while !bad.exited() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(bad.exit_code(), Some(127));

        let mut dropped =
            HeldChild::spawn(&["touch".into(), dir.path().join("never").to_str().unwrap().into()]).unwrap();
        let pid = dropped.pid;
        dropped.release = None; // the parent gives up
        let st = waitpid(pid, None).unwrap();
        assert_eq!(st, WaitStatus::Exited(pid, 126));
        assert!(!dir.path().join("never").exists());
    }
}
