//! The few Perfetto protobuf messages wasmprobe writes, declared by hand with
//! `#[derive(prost::Message)]`.
//!
//! Why by hand: Perfetto's `.proto` tree has well over a thousand messages (every ftrace event
//! of every vendor kernel), and generating Rust from it at build time needs `protoc` or a
//! vendored copy of the tree. We need about thirty messages, and only their wire shape: the
//! field numbers and types below are Perfetto's (google/perfetto, `protos/perfetto/trace/`:
//! `trace.proto`, `trace_packet.proto`, `ftrace/ftrace_event_bundle.proto`,
//! `ftrace/ftrace_event.proto`, `ftrace/sched.proto`, `ftrace/task.proto`,
//! `ftrace/power.proto`, `ftrace/generic.proto`, `ps/process_tree.proto`,
//! `system_info.proto`, `track_event/track_descriptor.proto`, `track_event/track_event.proto`,
//! `track_event/debug_annotation.proto`, `track_event/{thread,process,counter}_descriptor.proto`;
//! Apache-2.0), checked against the Python bindings of the `perfetto` package by
//! `tests/perfetto.rs`. Fields we never write are left out: a protobuf reader skips what it
//! does not know, and Perfetto's fields are all optional (proto2), so every field here is an
//! `Option` and a zero is written when we have one.
//!
//! Enums are plain integers on the wire; the values used are constants next to their field.
//! The ftrace events on the hot path of a conversion are encoded by [`super::ftrace`] straight
//! into bytes (same field numbers; its tests decode them with these types).

#![allow(missing_docs)] // Each field is Perfetto's, documented there; the types say what they are.

/// `perfetto.protos.Trace`: a trace file is this message, i.e. a run of `packet` fields.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Trace {
    #[prost(message, repeated, tag = "1")]
    pub packet: Vec<TracePacket>,
}

/// `TracePacket.sequence_flags`: the sequence's incremental state starts here.
pub const SEQ_INCREMENTAL_STATE_CLEARED: u32 = 1;

/// `perfetto.protos.TracePacket`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TracePacket {
    #[prost(uint64, optional, tag = "8")]
    pub timestamp: Option<u64>,
    #[prost(uint32, optional, tag = "10")]
    pub trusted_packet_sequence_id: Option<u32>,
    #[prost(uint32, optional, tag = "13")]
    pub sequence_flags: Option<u32>,
    #[prost(oneof = "trace_packet::Data", tags = "1, 2, 11, 45, 60")]
    pub data: Option<trace_packet::Data>,
}

/// The payloads of a [`TracePacket`] that we use.
pub mod trace_packet {
    /// `TracePacket.data`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Data {
        #[prost(message, tag = "1")]
        FtraceEvents(super::FtraceEventBundle),
        #[prost(message, tag = "2")]
        ProcessTree(super::ProcessTree),
        #[prost(message, tag = "11")]
        TrackEvent(super::TrackEvent),
        #[prost(message, tag = "45")]
        SystemInfo(super::SystemInfo),
        #[prost(message, tag = "60")]
        TrackDescriptor(super::TrackDescriptor),
    }
}

/// `perfetto.protos.FtraceEventBundle`: one CPU's events, in timestamp order.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FtraceEventBundle {
    #[prost(uint32, optional, tag = "1")]
    pub cpu: Option<u32>,
    #[prost(message, repeated, tag = "2")]
    pub event: Vec<FtraceEvent>,
    /// The kernel lost events on this CPU before this bundle.
    #[prost(bool, optional, tag = "3")]
    pub lost_events: Option<bool>,
}

/// `perfetto.protos.FtraceEvent`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FtraceEvent {
    /// Nanoseconds; without an `ftrace_clock` in the bundle, Perfetto reads it as CLOCK_BOOTTIME.
    #[prost(uint64, optional, tag = "1")]
    pub timestamp: Option<u64>,
    /// `common_pid`.
    #[prost(uint32, optional, tag = "2")]
    pub pid: Option<u32>,
    /// `common_flags` (irqs-off, need-resched, hardirq, softirq bits).
    #[prost(uint32, optional, tag = "5")]
    pub common_flags: Option<u32>,
    #[prost(oneof = "ftrace_event::Event", tags = "4, 11, 13, 17, 20, 114, 235, 236, 237, 238, 239, 327")]
    pub event: Option<ftrace_event::Event>,
}

/// The events of a [`FtraceEvent`] that we use.
pub mod ftrace_event {
    /// `FtraceEvent.event`: the field number is the event's.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Event {
        #[prost(message, tag = "4")]
        SchedSwitch(super::SchedSwitch),
        #[prost(message, tag = "11")]
        CpuFrequency(super::CpuFrequency),
        #[prost(message, tag = "13")]
        CpuIdle(super::CpuIdle),
        #[prost(message, tag = "17")]
        SchedWakeup(super::SchedWakeup),
        #[prost(message, tag = "20")]
        SchedWaking(super::SchedWakeup),
        #[prost(message, tag = "114")]
        SchedWakeupNew(super::SchedWakeup),
        #[prost(message, tag = "235")]
        TaskNewtask(super::TaskNewtask),
        #[prost(message, tag = "236")]
        TaskRename(super::TaskRename),
        #[prost(message, tag = "237")]
        SchedProcessExec(super::SchedProcessExec),
        #[prost(message, tag = "238")]
        SchedProcessExit(super::SchedProcessExit),
        #[prost(message, tag = "239")]
        SchedProcessFork(super::SchedProcessFork),
        #[prost(message, tag = "327")]
        Generic(super::GenericFtraceEvent),
    }
}

/// `SchedSwitchFtraceEvent`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SchedSwitch {
    #[prost(string, optional, tag = "1")]
    pub prev_comm: Option<String>,
    #[prost(int32, optional, tag = "2")]
    pub prev_pid: Option<i32>,
    #[prost(int32, optional, tag = "3")]
    pub prev_prio: Option<i32>,
    #[prost(int64, optional, tag = "4")]
    pub prev_state: Option<i64>,
    #[prost(string, optional, tag = "5")]
    pub next_comm: Option<String>,
    #[prost(int32, optional, tag = "6")]
    pub next_pid: Option<i32>,
    #[prost(int32, optional, tag = "7")]
    pub next_prio: Option<i32>,
}

/// `SchedWakeupFtraceEvent`, `SchedWakingFtraceEvent` and `SchedWakeupNewFtraceEvent` (one
/// shape).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SchedWakeup {
    #[prost(string, optional, tag = "1")]
    pub comm: Option<String>,
    #[prost(int32, optional, tag = "2")]
    pub pid: Option<i32>,
    #[prost(int32, optional, tag = "3")]
    pub prio: Option<i32>,
    #[prost(int32, optional, tag = "4")]
    pub success: Option<i32>,
    #[prost(int32, optional, tag = "5")]
    pub target_cpu: Option<i32>,
}

/// `SchedProcessForkFtraceEvent`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SchedProcessFork {
    #[prost(string, optional, tag = "1")]
    pub parent_comm: Option<String>,
    #[prost(int32, optional, tag = "2")]
    pub parent_pid: Option<i32>,
    #[prost(string, optional, tag = "3")]
    pub child_comm: Option<String>,
    #[prost(int32, optional, tag = "4")]
    pub child_pid: Option<i32>,
}

/// `SchedProcessExecFtraceEvent`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SchedProcessExec {
    #[prost(string, optional, tag = "1")]
    pub filename: Option<String>,
    #[prost(int32, optional, tag = "2")]
    pub pid: Option<i32>,
    #[prost(int32, optional, tag = "3")]
    pub old_pid: Option<i32>,
}

/// `SchedProcessExitFtraceEvent`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SchedProcessExit {
    #[prost(string, optional, tag = "1")]
    pub comm: Option<String>,
    #[prost(int32, optional, tag = "2")]
    pub pid: Option<i32>,
    #[prost(int32, optional, tag = "3")]
    pub tgid: Option<i32>,
    #[prost(int32, optional, tag = "4")]
    pub prio: Option<i32>,
}

/// `TaskNewtaskFtraceEvent`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TaskNewtask {
    #[prost(int32, optional, tag = "1")]
    pub pid: Option<i32>,
    #[prost(string, optional, tag = "2")]
    pub comm: Option<String>,
    #[prost(uint64, optional, tag = "3")]
    pub clone_flags: Option<u64>,
    #[prost(int32, optional, tag = "4")]
    pub oom_score_adj: Option<i32>,
}

/// `TaskRenameFtraceEvent`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TaskRename {
    #[prost(int32, optional, tag = "1")]
    pub pid: Option<i32>,
    #[prost(string, optional, tag = "2")]
    pub oldcomm: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub newcomm: Option<String>,
    #[prost(int32, optional, tag = "4")]
    pub oom_score_adj: Option<i32>,
}

/// `CpuIdleFtraceEvent`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CpuIdle {
    #[prost(uint32, optional, tag = "1")]
    pub state: Option<u32>,
    #[prost(uint32, optional, tag = "2")]
    pub cpu_id: Option<u32>,
}

/// `CpuFrequencyFtraceEvent`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CpuFrequency {
    #[prost(uint32, optional, tag = "1")]
    pub state: Option<u32>,
    #[prost(uint32, optional, tag = "2")]
    pub cpu_id: Option<u32>,
}

/// `GenericFtraceEvent`: any event by name, with its fields.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GenericFtraceEvent {
    #[prost(string, optional, tag = "1")]
    pub event_name: Option<String>,
    #[prost(message, repeated, tag = "2")]
    pub field: Vec<GenericField>,
}

/// `GenericFtraceEvent.Field`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GenericField {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(oneof = "generic_field::Value", tags = "3, 4, 5")]
    pub value: Option<generic_field::Value>,
}

/// The value of a [`GenericField`].
pub mod generic_field {
    /// `GenericFtraceEvent.Field.value`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(string, tag = "3")]
        StrValue(String),
        #[prost(int64, tag = "4")]
        IntValue(i64),
        #[prost(uint64, tag = "5")]
        UintValue(u64),
    }
}

/// `perfetto.protos.ProcessTree`: processes and threads, with their names.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProcessTree {
    #[prost(message, repeated, tag = "1")]
    pub processes: Vec<Process>,
    #[prost(message, repeated, tag = "2")]
    pub threads: Vec<Thread>,
}

/// `ProcessTree.Process`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Process {
    #[prost(int32, optional, tag = "1")]
    pub pid: Option<i32>,
    #[prost(int32, optional, tag = "2")]
    pub ppid: Option<i32>,
    #[prost(string, repeated, tag = "3")]
    pub cmdline: Vec<String>,
    /// The "cmdline" is the command name (comm), not the process's argv.
    #[prost(bool, optional, tag = "9")]
    pub cmdline_is_comm: Option<bool>,
}

/// `ProcessTree.Thread`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Thread {
    #[prost(int32, optional, tag = "1")]
    pub tid: Option<i32>,
    #[prost(string, optional, tag = "2")]
    pub name: Option<String>,
    #[prost(int32, optional, tag = "3")]
    pub tgid: Option<i32>,
}

/// `perfetto.protos.SystemInfo`: the traced machine (Perfetto reads the kernel version from
/// `utsname.release` to decode `sched_switch`'s `prev_state`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SystemInfo {
    #[prost(message, optional, tag = "1")]
    pub utsname: Option<Utsname>,
    #[prost(uint32, optional, tag = "6")]
    pub page_size: Option<u32>,
    #[prost(uint32, optional, tag = "8")]
    pub num_cpus: Option<u32>,
}

/// `perfetto.protos.Utsname`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Utsname {
    #[prost(string, optional, tag = "1")]
    pub sysname: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub version: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub release: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub machine: Option<String>,
}

/// `perfetto.protos.TrackDescriptor`: a track of marks (a thread's, a process's, one of its
/// own), announced before its first event.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TrackDescriptor {
    #[prost(uint64, optional, tag = "1")]
    pub uuid: Option<u64>,
    #[prost(uint64, optional, tag = "5")]
    pub parent_uuid: Option<u64>,
    #[prost(string, optional, tag = "2")]
    pub name: Option<String>,
    #[prost(message, optional, tag = "3")]
    pub process: Option<ProcessDescriptor>,
    #[prost(message, optional, tag = "4")]
    pub thread: Option<ThreadDescriptor>,
    #[prost(message, optional, tag = "8")]
    pub counter: Option<CounterDescriptor>,
}

/// `perfetto.protos.ProcessDescriptor`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProcessDescriptor {
    #[prost(int32, optional, tag = "1")]
    pub pid: Option<i32>,
    #[prost(string, optional, tag = "6")]
    pub process_name: Option<String>,
}

/// `perfetto.protos.ThreadDescriptor`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ThreadDescriptor {
    #[prost(int32, optional, tag = "1")]
    pub pid: Option<i32>,
    #[prost(int64, optional, tag = "2")]
    pub tid: Option<i64>,
    #[prost(string, optional, tag = "5")]
    pub thread_name: Option<String>,
}

/// `perfetto.protos.CounterDescriptor`: present (even empty) makes the track a counter track.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CounterDescriptor {
    #[prost(string, optional, tag = "6")]
    pub unit_name: Option<String>,
}

/// `TrackEvent.type`: a slice begins.
pub const TYPE_SLICE_BEGIN: i32 = 1;
/// `TrackEvent.type`: the innermost open slice of the track ends.
pub const TYPE_SLICE_END: i32 = 2;
/// `TrackEvent.type`: a point in time.
pub const TYPE_INSTANT: i32 = 3;
/// `TrackEvent.type`: a counter value.
pub const TYPE_COUNTER: i32 = 4;

/// `perfetto.protos.TrackEvent`: a mark on a track (the packet's timestamp is its time).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TrackEvent {
    #[prost(int32, optional, tag = "9")]
    pub r#type: Option<i32>,
    #[prost(uint64, optional, tag = "11")]
    pub track_uuid: Option<u64>,
    #[prost(string, optional, tag = "23")]
    pub name: Option<String>,
    #[prost(message, repeated, tag = "4")]
    pub debug_annotations: Vec<DebugAnnotation>,
    #[prost(double, optional, tag = "44")]
    pub double_counter_value: Option<f64>,
}

/// `perfetto.protos.DebugAnnotation`: one named argument of a mark.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DebugAnnotation {
    #[prost(string, optional, tag = "10")]
    pub name: Option<String>,
    #[prost(oneof = "debug_annotation::Value", tags = "2, 3, 4, 5, 6")]
    pub value: Option<debug_annotation::Value>,
}

/// The value of a [`DebugAnnotation`].
pub mod debug_annotation {
    /// `DebugAnnotation.value`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(bool, tag = "2")]
        BoolValue(bool),
        #[prost(uint64, tag = "3")]
        UintValue(u64),
        #[prost(int64, tag = "4")]
        IntValue(i64),
        #[prost(double, tag = "5")]
        DoubleValue(f64),
        #[prost(string, tag = "6")]
        StringValue(String),
    }
}
