//! Plugin marks as Perfetto track events: each track a plugin names gets a `TrackDescriptor`
//! (announced before its first event) and a uuid; each mark becomes one or two `TrackEvent`
//! packets on the writer's track sequence.
//!
//! A thread's own track is a thread track (`ThreadDescriptor` with its process id, so it sits
//! under its process beside the kernel's rows for that thread); a named track under a thread or
//! a process is a child of that thread's or process's track; a global track has no parent.
//! Counters always have tracks of their own (`CounterDescriptor`).

use std::collections::HashMap;

use crate::plugin::{Mark, Scope, Track, Value};

use super::proto::{self, debug_annotation, trace_packet::Data};
use super::writer::ThreadInfo;

/// The `trusted_packet_sequence_id` of plugin marks.
pub const TRACK_SEQUENCE: u32 = 2;
/// Tracks a trace may have; marks on further new tracks are dropped (and counted).
pub const MAX_TRACKS: usize = 1 << 16;

/// What a track is, as a key: a thread's or a process's own track (`name` None), or a named
/// slice or counter track.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    scope: Scope,
    name: Option<String>,
    counter: bool,
}

/// The tracks announced so far.
#[derive(Debug, Default)]
pub struct Tracks {
    uuids: HashMap<Key, u64>,
    sequence_started: bool,
    /// Marks dropped because they would have made more than [`MAX_TRACKS`] tracks.
    pub dropped: u64,
}

impl Tracks {
    /// The packets of `mark`: descriptors of tracks it is the first to use, then its events.
    /// `thread` tells what is known of a thread (its name and process). Empty if the mark was
    /// dropped.
    pub fn packets(&mut self, mark: &Mark, thread: &mut dyn FnMut(i32) -> ThreadInfo) -> Vec<proto::TracePacket> {
        let mut out = Vec::new();
        let (track, counter, ts) = match mark {
            Mark::Slice { track, ts, .. }
            | Mark::Begin { track, ts, .. }
            | Mark::End { track, ts }
            | Mark::Instant { track, ts, .. } => (track, false, *ts),
            Mark::Counter { track, ts, .. } => (track, true, *ts),
        };
        let Some(uuid) = self.uuid(track, counter, ts, thread, &mut out) else {
            self.dropped += 1;
            return out;
        };
        let event = |kind: i32, name: Option<&str>, args: &[(String, Value)], value: Option<f64>| proto::TrackEvent {
            r#type: Some(kind),
            track_uuid: Some(uuid),
            name: name.map(str::to_string),
            debug_annotations: args.iter().map(annotation).collect(),
            double_counter_value: value,
        };
        match mark {
            Mark::Slice { name, dur, args, .. } => {
                out.push(self.packet(ts, Data::TrackEvent(event(proto::TYPE_SLICE_BEGIN, Some(name), args, None))));
                let end = ts.saturating_add(*dur);
                out.push(self.packet(end, Data::TrackEvent(event(proto::TYPE_SLICE_END, None, &[], None))));
            }
            Mark::Begin { name, args, .. } => {
                out.push(self.packet(ts, Data::TrackEvent(event(proto::TYPE_SLICE_BEGIN, Some(name), args, None))))
            }
            Mark::End { .. } => {
                out.push(self.packet(ts, Data::TrackEvent(event(proto::TYPE_SLICE_END, None, &[], None))))
            }
            Mark::Instant { name, args, .. } => {
                out.push(self.packet(ts, Data::TrackEvent(event(proto::TYPE_INSTANT, Some(name), args, None))))
            }
            Mark::Counter { value, .. } => {
                out.push(self.packet(ts, Data::TrackEvent(event(proto::TYPE_COUNTER, None, &[], Some(*value)))))
            }
        }
        out
    }

    /// A packet of the track sequence at `ts` (the sequence's first says it starts clean).
    fn packet(&mut self, ts: u64, data: Data) -> proto::TracePacket {
        let first = !std::mem::replace(&mut self.sequence_started, true);
        proto::TracePacket {
            timestamp: Some(ts),
            trusted_packet_sequence_id: Some(TRACK_SEQUENCE),
            sequence_flags: first.then_some(proto::SEQ_INCREMENTAL_STATE_CLEARED),
            data: Some(data),
        }
    }

    /// The uuid of `track` (its counter track if `counter`), announcing it and its parent
    /// first if they are new. `None` past [`MAX_TRACKS`].
    fn uuid(
        &mut self,
        track: &Track,
        counter: bool,
        ts: u64,
        thread: &mut dyn FnMut(i32) -> ThreadInfo,
        out: &mut Vec<proto::TracePacket>,
    ) -> Option<u64> {
        let own = track.name.is_empty() && !counter && track.scope != Scope::Global;
        let name = match (own, counter && track.name.is_empty()) {
            (true, _) => None,
            (false, true) => Some("value".to_string()),
            (false, false) => Some(track.name.clone()),
        };
        let key = Key { scope: track.scope.clone(), name, counter };
        if let Some(u) = self.uuids.get(&key) {
            return Some(*u);
        }
        let parent = match (&track.scope, own) {
            (Scope::Global, _) | (_, true) => None,
            (scope, false) => {
                let parent = Track { scope: scope.clone(), name: String::new() };
                Some(self.uuid(&parent, false, ts, thread, out)?)
            }
        };
        if self.uuids.len() >= MAX_TRACKS {
            return None;
        }
        let uuid = self.uuids.len() as u64 + 1;
        self.uuids.insert(key.clone(), uuid);
        let mut d = proto::TrackDescriptor {
            uuid: Some(uuid),
            parent_uuid: parent,
            name: key.name.clone(),
            process: None,
            thread: None,
            counter: counter.then(proto::CounterDescriptor::default),
        };
        if own {
            match track.scope {
                Scope::Thread(tid) => {
                    let info = thread(tid);
                    d.thread = Some(proto::ThreadDescriptor {
                        pid: Some(info.tgid.unwrap_or(tid)),
                        tid: Some(i64::from(tid)),
                        thread_name: info.name,
                    });
                }
                Scope::Process(pid) => {
                    d.process = Some(proto::ProcessDescriptor { pid: Some(pid), process_name: thread(pid).name });
                }
                Scope::Global => {}
            }
        }
        let p = self.packet(ts, Data::TrackDescriptor(d));
        out.push(p);
        Some(uuid)
    }
}

/// A mark's argument as a `DebugAnnotation`.
fn annotation((name, value): &(String, Value)) -> proto::DebugAnnotation {
    use debug_annotation::Value as V;
    let value = match value {
        Value::I64(v) => V::IntValue(*v),
        Value::U64(v) => V::UintValue(*v),
        Value::F64(v) => V::DoubleValue(*v),
        Value::Str(s) => V::StringValue(s.clone()),
        Value::Bool(b) => V::BoolValue(*b),
    };
    proto::DebugAnnotation { name: Some(name.clone()), value: Some(value) }
}
