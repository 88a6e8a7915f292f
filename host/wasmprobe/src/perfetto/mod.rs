//! Perfetto traces (ui.perfetto.dev, trace processor) from recordings and live runs.
//!
//! - [`convert()`]: a trace.dat, ours or trace-cmd's, v6 or v7, to a `.pftrace`.
//! - [`LiveTrace`]: `--perfetto FILE` of `run`, `record` and `stream`: the run's records (a
//!   [`PerfettoSink`] beside its other sinks) and its plugin's timeline marks.
//! - [`TraceWriter`]: the streaming writer under both: kernel records and marks in, Perfetto
//!   packets out.
//!
//! # What becomes what
//!
//! - The scheduler events Perfetto draws from become its typed ftrace messages:
//!   `sched_switch`, `sched_waking`, `sched_wakeup`, `sched_wakeup_new`, `sched_process_fork`,
//!   `sched_process_exec`, `sched_process_exit`, `task_newtask`, `task_rename`, `cpu_idle`,
//!   `cpu_frequency`. Their kernel fields go to the message fields of the same name; a kernel
//!   field Perfetto's message has no place for is left out (on 6.x kernels only
//!   `sched_process_exit.group_dead`).
//! - Every other event (syscalls, kmem, irq, timers, kprobes, uprobes, eprobes, ...) becomes a
//!   `GenericFtraceEvent`: the event's name and each field of its format file with its type:
//!   strings as `str_value`, signed integers as `int_value`, unsigned ones (pointers too) as
//!   `uint_value`, and arrays as one field per element (`args[0]` ... `args[5]`).
//! - Each record keeps its CPU (one `FtraceEventBundle` per CPU at a time), its `common_pid`
//!   and `common_flags`; a page that lost events marks its bundle `lost_events`.
//! - Threads are named in a `ProcessTree`: the recording's saved command lines, and the comms
//!   `trace-cmd report` learns from `sched_switch`/`sched_wakeup` records, i.e. the names
//!   `trace-cmd report` shows. The process a thread belongs to is given where the trace says
//!   it (`task_newtask` with or without `CLONE_THREAD`, `sched_process_exec`) or, live, where
//!   `/proc` does; a thread the trace says nothing about is taken as the leader of a process
//!   of its own (a trace.dat has no thread group ids, and Perfetto files a thread given without
//!   one under process 0).
//! - The machine (`uname`, CPU count, page size) goes in a `SystemInfo`: Perfetto needs the
//!   kernel release to decode `sched_switch.prev_state`.
//!
//! # Clock
//!
//! Timestamps are written as the trace has them: nanoseconds of the recording's trace clock
//! (trace-cmd and wasmprobe record with the kernel's default, `local`). Bundles carry no
//! `ftrace_clock`, so Perfetto takes them as CLOCK_BOOTTIME, its default trace clock, and
//! converts nothing: the timeline shows exactly the times `trace-cmd report -t` prints, and
//! marks that plugins add at event timestamps line up with the events. (`local` counts like
//! CLOCK_MONOTONIC, close to but not equal to boot time, so a Perfetto trace taken at the
//! same time by other means would not line up with this one to the microsecond; a recording
//! made with `trace_clock` `boot` would.)

pub mod convert;
mod file;
pub mod ftrace;
pub mod live;
pub mod proto;
pub mod tracks;
mod wire;
pub mod writer;

pub use convert::{convert, Converted};
pub use file::PendingFile;
pub use live::{live_threads, LiveTrace, PerfettoSink};
pub use writer::{Machine, ThreadInfo, ThreadLookup, TraceWriter, Written};
