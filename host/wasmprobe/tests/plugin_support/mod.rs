//! Helpers shared by the plugin_* tests: an output sink that records, payload builders laid
//! out like the kernel's records, and layouts as the format files describe them.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use wasmprobe::plugin::{Layout, LayoutField, Level, Output, Plugin, PluginSource, Sandbox, Stdio, Value};

/// Records everything a plugin outputs, one string per item.
#[derive(Clone, Default)]
pub struct Capture(pub Arc<Mutex<Vec<String>>>);

impl Capture {
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
    pub fn lines(&self) -> Vec<String> {
        self.take().into_iter().filter(|l| !l.starts_with("log ") && !l.starts_with("stdio ")).collect()
    }
}

impl Output for Capture {
    fn line(&mut self, _plugin: &str, line: &str) {
        self.0.lock().unwrap().push(line.to_string());
    }
    fn record(&mut self, _plugin: &str, fields: &[(String, Value)]) {
        let text: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        self.0.lock().unwrap().push(format!("record {}", text.join(" ")));
    }
    fn log(&mut self, plugin: &str, level: Level, message: &str) {
        self.0.lock().unwrap().push(format!("log {plugin} {level}: {message}"));
    }
    fn stdio(&mut self, plugin: &str, stream: Stdio, line: &str) {
        self.0.lock().unwrap().push(format!("stdio {plugin} {stream:?}: {line}"));
    }
}

/// A compile cache shared by the tests of one target (so each component compiles once).
pub fn sandbox() -> Sandbox {
    Sandbox { cache_dir: Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache")), ..Sandbox::default() }
}

/// Loads a built-in with a capturing output and a fixed comm table.
pub fn load_builtin(name: &str) -> (Plugin, Capture) {
    let out = Capture::default();
    let mut p = Plugin::load(&PluginSource::Builtin(name.into()), &sandbox(), Box::new(out.clone())).unwrap();
    p.set_comm_lookup(Box::new(comm));
    (p, out)
}

/// The guest components the build script built but does not embed (the hostile plugins).
pub fn guest_path(stem: &str) -> PluginSource {
    PluginSource::Path(PathBuf::from(env!("OUT_DIR")).join("guests").join(format!("{stem}.wasm")))
}

pub fn comm(pid: i32) -> Option<String> {
    match pid {
        1234 => Some("cat".into()),
        4321 => Some("bash".into()),
        77 => Some("sshd".into()),
        _ => None,
    }
}

/// An event payload: the 8 common bytes, then the fixed fields, then dynamic data.
pub struct Payload {
    pub bytes: Vec<u8>,
    pub fixed_end: usize,
}

impl Payload {
    /// Common fields for event `id` of `pid`, and room for `fixed` bytes of fields.
    pub fn new(id: u16, pid: i32, fixed: usize) -> Payload {
        let mut bytes = vec![0u8; 8 + fixed];
        bytes[0..2].copy_from_slice(&id.to_le_bytes());
        bytes[4..8].copy_from_slice(&pid.to_le_bytes());
        Payload { bytes, fixed_end: 8 + fixed }
    }
    pub fn u32_at(mut self, off: usize, v: u32) -> Self {
        self.bytes[off..off + 4].copy_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64_at(mut self, off: usize, v: u64) -> Self {
        self.bytes[off..off + 8].copy_from_slice(&v.to_le_bytes());
        self
    }
    /// A `__data_loc char[]` at `off` pointing at `s` + NUL appended after the fixed part.
    pub fn data_loc_str(mut self, off: usize, s: &str) -> Self {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(s.as_bytes());
        self.bytes.push(0);
        let loc = ((s.len() as u32 + 1) << 16) | start as u32;
        self.bytes[off..off + 4].copy_from_slice(&loc.to_le_bytes());
        self
    }
}

fn layout(event: &str, id: u32, fields: Vec<LayoutField>) -> Layout {
    let mut all = Layout::common_fields();
    all.extend(fields);
    Layout { system: "wasmprobe_1".into(), event: event.into(), id, fields: all }
}

/// `p:... file=+0(%di):ustring` on a uprobe: __probe_ip, then the data_loc.
pub fn uprobe_file_layout(event: &str, id: u32) -> Layout {
    layout(
        event,
        id,
        vec![
            LayoutField::from_format("unsigned long", "__probe_ip", 8, 8, false),
            LayoutField::from_format("__data_loc char[]", "file", 16, 4, true),
        ],
    )
}

/// `r:... ret=$retval` on a uretprobe: __probe_func, __probe_ret_ip, ret.
pub fn uretprobe_ret_layout(event: &str, id: u32) -> Layout {
    layout(
        event,
        id,
        vec![
            LayoutField::from_format("unsigned long", "__probe_func", 8, 8, false),
            LayoutField::from_format("unsigned long", "__probe_ret_ip", 16, 8, false),
            LayoutField::from_format("u64", "ret", 24, 8, false),
        ],
    )
}

/// `r:... ret=$retval:s32` on a uretprobe: __probe_func, __probe_ret_ip, a 4-byte signed ret.
pub fn uretprobe_s32_ret_layout(event: &str, id: u32) -> Layout {
    layout(
        event,
        id,
        vec![
            LayoutField::from_format("unsigned long", "__probe_func", 8, 8, false),
            LayoutField::from_format("unsigned long", "__probe_ret_ip", 16, 8, false),
            LayoutField::from_format("s32", "ret", 24, 4, true),
        ],
    )
}

/// The kprobe `open` of the man page: __probe_ip, file (data_loc), flags, mode (packed).
pub fn kprobe_open_layout(id: u32) -> Layout {
    layout(
        "open",
        id,
        vec![
            LayoutField::from_format("unsigned long", "__probe_ip", 8, 8, false),
            LayoutField::from_format("__data_loc char[]", "file", 16, 4, true),
            LayoutField::from_format("u64", "flags", 20, 8, false),
            LayoutField::from_format("u64", "mode", 28, 8, false),
        ],
    )
}

/// The kretprobe `openret`: __probe_func, __probe_ret_ip, ret.
pub fn kretprobe_ret_layout(id: u32) -> Layout {
    uretprobe_ret_layout("openret", id)
}

/// raw_syscalls:sys_enter: long id; unsigned long args[6].
pub fn sys_enter_layout(id: u32) -> Layout {
    layout(
        "sys_enter",
        id,
        vec![
            LayoutField::from_format("long", "id", 8, 8, true),
            LayoutField::from_format("unsigned long", "args[6]", 16, 48, false),
        ],
    )
}

/// A layout with only the common fields (probes without fetchargs).
pub fn bare_layout(event: &str, id: u32) -> Layout {
    layout(event, id, vec![LayoutField::from_format("unsigned long", "__probe_ip", 8, 8, false)])
}

/// exec-open's four probes without kprobes (uprobes on libc open/openat and their returns),
/// ids 2001-2004, in plan order.
pub fn exec_open_uprobe_layouts() -> Vec<Layout> {
    vec![
        uprobe_file_layout("open", 2001),
        uprobe_file_layout("openat", 2002),
        uretprobe_s32_ret_layout("openret", 2003),
        uretprobe_s32_ret_layout("openatret", 2004),
    ]
}
