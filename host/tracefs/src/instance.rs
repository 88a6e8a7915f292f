//! Tracing instances: independent ring buffers with their own event enables, under
//! `instances/<name>`. The top instance is the tracing directory itself.
//!
//! Name collisions: [`Instance::create`] refuses a name that already exists (`EEXIST`) instead
//! of silently sharing somebody else's buffer, because an owned instance is removed when its
//! handle drops. Use [`Instance::open`] to work in an existing instance without owning it.

use std::fs;
use std::path::{Path, PathBuf};

use crate::dir::{self, Tracefs};
use crate::error::{Errno, Error, Result};

/// A tracing instance (or the top instance). An instance made by [`Instance::create`] is owned:
/// dropping the handle disables its events and removes it from the kernel.
#[derive(Debug)]
pub struct Instance {
    tracefs: Tracefs,
    name: Option<String>,
    dir: PathBuf,
    owned: bool,
}

impl Instance {
    /// The top instance (the tracing directory itself; never removed). No syscalls.
    pub fn top(tracefs: &Tracefs) -> Instance {
        Instance { tracefs: tracefs.clone(), name: None, dir: tracefs.path().to_path_buf(), owned: false }
    }

    /// Creates `instances/<name>` (one `mkdir`) and owns it. `EEXIST` if it already exists,
    /// `EINVAL` for a name with `/` or that is empty.
    pub fn create(tracefs: &Tracefs, name: &str) -> Result<Instance> {
        check_name(name)?;
        let dir = tracefs.path().join("instances").join(name);
        fs::create_dir(&dir).map_err(|e| {
            let err = Error::io(format!("cannot create instance {name}"), &dir, &e);
            if dir::is_not_found(&e) {
                Error::new(Errno::ENODEV, format!("cannot create instance {name}: this kernel has no instances"))
                    .with_path(&dir)
            } else {
                err
            }
        })?;
        Ok(Instance { tracefs: tracefs.clone(), name: Some(name.to_string()), dir, owned: true })
    }

    /// Opens the existing instance `name` without owning it (one `stat`; `ENOENT` if absent).
    pub fn open(tracefs: &Tracefs, name: &str) -> Result<Instance> {
        check_name(name)?;
        let dir = tracefs.path().join("instances").join(name);
        if !dir.is_dir() {
            return Err(Error::new(Errno::ENOENT, format!("no instance named {name}")).with_path(&dir));
        }
        Ok(Instance { tracefs: tracefs.clone(), name: Some(name.to_string()), dir, owned: false })
    }

    /// The tracing directory this instance lives in.
    pub fn tracefs(&self) -> &Tracefs {
        &self.tracefs
    }

    /// The instance name (`None` for the top instance).
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The instance's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether dropping this handle removes the instance.
    pub fn is_owned(&self) -> bool {
        self.owned
    }

    /// Path of a file of this instance (no existence check).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Reads a file of this instance whole.
    pub fn read_file(&self, name: &str) -> Result<String> {
        dir::read(&self.file(name), &format!("cannot read {name}"))
    }

    /// Writes a value file of this instance (`O_TRUNC`, one write).
    pub fn write_file(&self, name: &str, value: &str) -> Result<()> {
        dir::write(&self.file(name), value, true, &format!("cannot write {value:?} to {name}"))
    }

    /// Appends to a file of this instance (one write, no truncation).
    pub fn append_file(&self, name: &str, value: &str) -> Result<()> {
        dir::write(&self.file(name), value, false, &format!("cannot append {value:?} to {name}"))
    }

    fn read_number(&self, name: &str) -> Result<u64> {
        let text = self.read_file(name)?;
        let t = text.split_whitespace().next().unwrap_or("");
        t.parse().map_err(|_| {
            Error::new(Errno::EINVAL, format!("{name} holds {t:?}, not a number")).with_path(self.file(name))
        })
    }

    /// Per-CPU ring-buffer size in KiB (`buffer_size_kb`, or `per_cpu/cpuN/buffer_size_kb`).
    pub fn buffer_size_kb(&self, cpu: Option<usize>) -> Result<u64> {
        match cpu {
            Some(c) => self.read_number(&format!("per_cpu/cpu{c}/buffer_size_kb")),
            None => self.read_number("buffer_size_kb"),
        }
    }

    /// Sets the per-CPU ring-buffer size in KiB (all CPUs, or one).
    pub fn set_buffer_size_kb(&self, kb: u64, cpu: Option<usize>) -> Result<()> {
        match cpu {
            Some(c) => self.write_file(&format!("per_cpu/cpu{c}/buffer_size_kb"), &kb.to_string()),
            None => self.write_file("buffer_size_kb", &kb.to_string()),
        }
    }

    /// Sum of all CPUs' buffers in KiB (`buffer_total_size_kb`).
    pub fn buffer_total_size_kb(&self) -> Result<u64> {
        self.read_number("buffer_total_size_kb")
    }

    /// How full (percent) a buffer must be before a blocked reader wakes (`buffer_percent`).
    pub fn buffer_percent(&self) -> Result<u64> {
        self.read_number("buffer_percent")
    }

    /// Sets `buffer_percent` (0 = wake on any data, 100 = only when full).
    pub fn set_buffer_percent(&self, percent: u64) -> Result<()> {
        self.write_file("buffer_percent", &percent.to_string())
    }

    /// Sub-buffer size in bytes (`buffer_subbuf_size_kb`; one page on kernels before 6.8).
    pub fn subbuf_size(&self) -> Result<usize> {
        if self.file("buffer_subbuf_size_kb").exists() {
            Ok(self.read_number("buffer_subbuf_size_kb")? as usize * 1024)
        } else {
            Ok(page_size())
        }
    }

    /// Sets the sub-buffer size in KiB (kernel ≥ 6.8; `ENODEV` before).
    pub fn set_subbuf_size_kb(&self, kb: u64) -> Result<()> {
        if !self.file("buffer_subbuf_size_kb").exists() {
            return Err(Error::new(Errno::ENODEV, "this kernel cannot change the sub-buffer size"));
        }
        self.write_file("buffer_subbuf_size_kb", &kb.to_string())
    }

    /// Empties this instance's ring buffer (truncates `trace`).
    pub fn clear(&self) -> Result<()> {
        self.write_file("trace", "")
    }

    /// Whether writes to the ring buffer are on (`tracing_on`).
    pub fn tracing_on(&self) -> Result<bool> {
        Ok(self.read_number("tracing_on")? != 0)
    }

    /// Turns recording into this instance's buffer on or off (`tracing_on`).
    pub fn set_tracing_on(&self, on: bool) -> Result<()> {
        self.write_file("tracing_on", if on { "1" } else { "0" })
    }

    /// The number of CPUs the kernel keeps buffers for (`per_cpu/cpuN` directories).
    pub fn cpu_count(&self) -> Result<usize> {
        let dir = self.file("per_cpu");
        let rd = fs::read_dir(&dir).map_err(|e| Error::io("cannot list per_cpu", &dir, &e))?;
        Ok(rd
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.strip_prefix("cpu").is_some_and(|d| d.parse::<usize>().is_ok()))
            })
            .count())
    }

    /// Removes the instance now (one `rmdir` after disabling its events), reporting failure.
    /// Removing the top instance is `EINVAL`.
    pub fn destroy(mut self) -> Result<()> {
        self.owned = false;
        self.remove()
    }

    fn remove(&self) -> Result<()> {
        if self.name.is_none() {
            return Err(Error::new(Errno::EINVAL, "the top instance cannot be removed"));
        }
        // Events enabled in an instance keep a reference on their probe; drop them first so the
        // probes can be deleted after us.
        let _ = self.write_file("events/enable", "0");
        let _ = self.write_file("tracing_on", "0");
        // The kernel refuses (EBUSY) while anyone has a file of the instance open, for instance
        // a force-destroy elsewhere disabling a probe in every instance: give that a moment.
        let mut tries = 0;
        loop {
            match fs::remove_dir(&self.dir) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::ResourceBusy && tries < REMOVE_TRIES => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => {
                    let name = self.name.as_deref().unwrap_or("");
                    return Err(Error::io(format!("cannot remove instance {name}"), &self.dir, &e));
                }
            }
        }
    }
}

/// How many times [`Instance::remove`] tries an instance that is busy (10 ms apart).
const REMOVE_TRIES: u32 = 100;

impl Drop for Instance {
    fn drop(&mut self) {
        if self.owned {
            if let Err(e) = self.remove() {
                // Nowhere to return it: leaving kernel state behind must at least be visible.
                eprintln!("tracefs: warning: {e}");
            }
        }
    }
}

/// Names of all instances (`instances/*`), sorted. Empty when the kernel has none.
pub fn instances(tracefs: &Tracefs) -> Result<Vec<String>> {
    let dir = tracefs.path().join("instances");
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if dir::is_not_found(&e) => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("cannot list instances", &dir, &e)),
    };
    let mut names: Vec<String> = rd.filter_map(|e| e.ok()).filter_map(|e| e.file_name().into_string().ok()).collect();
    names.sort();
    Ok(names)
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." || name.contains('\0') {
        return Err(Error::new(Errno::EINVAL, format!("{name:?} is not a valid instance name")));
    }
    Ok(())
}

pub(crate) fn page_size() -> usize {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE) {
        Ok(Some(v)) if v > 0 => v as usize,
        _ => 4096,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_collides_and_drop_removes() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("instances")).unwrap();
        let t = Tracefs::at(tmp.path());
        {
            let i = Instance::create(&t, "wasmprobe-unit").unwrap();
            assert!(i.dir().is_dir());
            assert!(i.is_owned());
            let e = Instance::create(&t, "wasmprobe-unit").unwrap_err();
            assert_eq!(e.errno(), Errno::EEXIST);
            assert!(e.to_string().contains("wasmprobe-unit"), "{e}");
            let o = Instance::open(&t, "wasmprobe-unit").unwrap();
            assert!(!o.is_owned());
            drop(o);
            assert!(i.dir().is_dir(), "an opened instance is not removed on drop");
            assert_eq!(instances(&t).unwrap(), vec!["wasmprobe-unit".to_string()]);
        }
        assert!(!tmp.path().join("instances/wasmprobe-unit").exists());
        assert!(instances(&t).unwrap().is_empty());
        for bad in ["", "a/b", "..", "."] {
            assert_eq!(Instance::create(&t, bad).unwrap_err().errno(), Errno::EINVAL);
        }
        assert_eq!(Instance::top(&t).destroy().unwrap_err().errno(), Errno::EINVAL);
    }

    #[test]
    fn numbers_and_values() {
        let tmp = tempfile::tempdir().unwrap();
        let t = Tracefs::at(tmp.path());
        fs::write(tmp.path().join("buffer_size_kb"), "1408\n").unwrap();
        fs::write(tmp.path().join("buffer_percent"), "50\n").unwrap();
        fs::write(tmp.path().join("buffer_subbuf_size_kb"), "4\n").unwrap();
        let top = Instance::top(&t);
        assert_eq!(top.buffer_size_kb(None).unwrap(), 1408);
        top.set_buffer_percent(0).unwrap();
        assert_eq!(fs::read_to_string(tmp.path().join("buffer_percent")).unwrap(), "0");
        assert_eq!(top.subbuf_size().unwrap(), 4096);
        fs::write(tmp.path().join("buffer_size_kb"), "x\n").unwrap();
        assert_eq!(top.buffer_size_kb(None).unwrap_err().errno(), Errno::EINVAL);
    }
}
