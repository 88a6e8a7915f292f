//! One batch of events, for plugins that override [`crate::Plugin::on_batch`]: whole columns
//! (a probe's pids, timestamps, one integer field) read in tight loops, no per-event object.
//!
//! This is the fast path for aggregations, and the recommended one for counters and
//! histograms: a keyed count is
//!
//! ```ignore
//! fn on_batch(&mut self, batch: &Batch) {
//!     batch.pids(self.enter).for_each(|pid| self.per_pid.inc(pid));   // @[pid] = count()
//!     batch.u64s(self.enter, "id").for_each(|id| self.ids.record((), id)); // @ = hist(args.id)
//! }
//! ```
//!
//! Most batches are *uniform* (every record of one probe and one size: a tracepoint whose
//! projected fields are fixed-size), and a column is then a strided read of the batch
//! (`wasmprobe_abi::columns`). Any other batch is walked, filtered by probe: the same values
//! in the same order. Iterate columns with `for_each`, `fold`, `sum` and the like (internal
//! iteration): the loop is then chosen once per batch. [`Batch::records`] gives a probe's
//! [`Record`](crate::Record)s when a loop needs several values of each event (read fields with an [`Int`]
//! from [`Batch::int`]); [`Batch::events`] the [`Event`]s `on_event` would get, in order.

use std::cell::Cell;
use std::rc::Rc;

use wasmprobe_abi::batch::{record_at, record_with_stacks_at};
use wasmprobe_abi::columns::{Column, Int, Rows, Uniform, Width};
use wasmprobe_abi::FieldKind;

use crate::event::Event;
use crate::{CommCache, ProbeId, ProbeInfo};

/// One `on-batch` call's events. Valid for the call only.
pub struct Batch<'a> {
    bytes: &'a [u8],
    probes: &'a [ProbeInfo],
    comms: &'a CommCache,
    /// `Uniform::of(bytes)` (with a probe of the plan), computed on the first column read.
    uniform: Cell<Option<Option<Uniform>>>,
    /// Where the walk of [`Batch::events`] stopped, if it ran: the runtime's check that the
    /// batch ended where a record ended.
    pub(crate) walked_to: Cell<Option<usize>>,
}

impl<'a> Batch<'a> {
    pub(crate) fn new(bytes: &'a [u8], probes: &'a [ProbeInfo], comms: &'a CommCache) -> Self {
        Batch { bytes, probes, comms, uniform: Cell::new(None), walked_to: Cell::new(None) }
    }

    /// The batch's shape if uniform (every record of one probe of the plan, one size).
    pub(crate) fn uniform(&self) -> Option<Uniform> {
        if let Some(u) = self.uniform.get() {
            return u;
        }
        let u = Uniform::of(self.bytes).filter(|u| (u.probe_index as usize) < self.probes.len());
        self.uniform.set(Some(u));
        u
    }

    /// The packed bytes (`wit/wasmprobe.wit`, "The packed batch format").
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The records of `probe`, in batch order (payloads borrowed from the batch).
    pub fn records(&self, probe: ProbeId) -> Rows<'a> {
        Rows::with(self.bytes, self.uniform(), Some(probe.0))
    }

    /// Every record of the batch, in order (a record's `probe_index` is its [`ProbeId`]'s
    /// number).
    pub fn all_records(&self) -> Rows<'a> {
        Rows::with(self.bytes, self.uniform(), None)
    }

    /// How many events of `probe` the batch holds.
    pub fn count(&self, probe: ProbeId) -> usize {
        match self.uniform() {
            Some(u) if u.probe_index == probe.0 => u.count,
            Some(_) => 0,
            None => self.records(probe).count(),
        }
    }

    /// The pid (`common_pid`) of each of `probe`'s events.
    pub fn pids(&self, probe: ProbeId) -> Column<'a, i32> {
        Column::pids(self.records(probe))
    }

    /// The timestamp of each of `probe`'s events.
    pub fn ts(&self, probe: ProbeId) -> Column<'a, u64> {
        Column::ts(self.records(probe))
    }

    /// The CPU of each of `probe`'s events.
    pub fn cpus(&self, probe: ProbeId) -> Column<'a, u32> {
        Column::cpus(self.records(probe))
    }

    /// Integer field `name` of each of `probe`'s events as u64 (as [`Event::u64`] reads it:
    /// signed fields sign-extended); 0s when the probe has no such integer field.
    pub fn u64s(&self, probe: ProbeId, name: &str) -> Column<'a, u64> {
        Column::field(self.records(probe), self.int(probe, name))
    }

    /// Integer field `name` of each of `probe`'s events as i64 (as [`Event::i64`]).
    pub fn i64s(&self, probe: ProbeId, name: &str) -> Column<'a, i64> {
        Column::field(self.records(probe), self.int(probe, name))
    }

    /// Integer field `name` of `probe`, resolved for reading records
    /// (`int.read(rec.payload)`): `None` when the probe has no such integer field (an array
    /// field reads its first element, as [`crate::Field::i64`] does).
    pub fn int(&self, probe: ProbeId, name: &str) -> Option<Int> {
        let f = self.probes.get(probe.0 as usize)?.field_by_name(name)?;
        let size = match f.kind {
            FieldKind::Integer | FieldKind::Other => f.size,
            FieldKind::Array => f.elem_size,
            _ => return None,
        };
        Some(Int { offset: f.offset as usize, width: Width::of(size, f.signed)? })
    }

    /// The command name of `pid` (asked of the host once per pid and batch), as
    /// [`Event::comm`] gives it.
    pub fn comm(&self, pid: i32) -> Rc<str> {
        self.comms.get(pid)
    }

    /// Calls `f` with each event of the batch, in order: what the default
    /// [`crate::Plugin::on_batch`] does with `on_event`.
    #[inline(always)]
    pub fn events(&self, f: impl FnMut(&Event)) {
        let off = deliver(self.probes, self.comms, self.bytes, f);
        self.walked_to.set(Some(off));
    }
}

/// The hot loop of the per-event path: one `f` call per record, from offset 0 until the batch
/// ends or a record is malformed (too short, or naming a probe the plan lacks); returns where
/// it stopped. Only the fast path is here, the error report is the runtime's: a small loop
/// keeps Cranelift's registers for the loop's values (the memory base, the epoch deadline)
/// instead of spilling them around error-formatting code that never runs.
/// A record with stacks has bit 31 of its probe index set, so it names no probe: the loop then
/// takes it with [`record_with_stacks_at`] (out of line). `f` (the plugin's `on_event`) has
/// this one call site, so that it is inlined into the loop (a second call site measured 1.3 ns
/// more per event without stacks in the delivery benchmark).
#[inline(never)]
fn deliver(probes: &[ProbeInfo], comms: &CommCache, batch: &[u8], mut f: impl FnMut(&Event)) -> usize {
    let mut off = 0;
    while let Some((mut rec, mut next)) = record_at(batch, off) {
        let mut stacks: &[u8] = &[];
        let probe = match probes.get(rec.probe_index as usize) {
            Some(p) => p,
            None => {
                let Some((r, s, n)) = record_with_stacks_at(batch, off) else { break };
                let Some(p) = probes.get(r.probe_index as usize) else { break };
                (rec, stacks, next) = (r, s, n);
                p
            }
        };
        f(&Event { rec, probe, comms, stacks });
        off = next;
    }
    off
}

/// Where a walk of every record of `batch` stops (its length when the batch is well formed).
pub(crate) fn walk_end(batch: &[u8], probes: usize) -> usize {
    let mut off = 0;
    while let Some((rec, _, next)) = record_with_stacks_at(batch, off) {
        if rec.probe_index as usize >= probes {
            break;
        }
        off = next;
    }
    off
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Field;
    use wasmprobe_abi::batch::{padded, Header, HEADER_LEN};

    fn probe(i: u32, fields: &[(&str, u32, u32, bool)]) -> ProbeInfo {
        let mut p = ProbeInfo::new(ProbeId(i), format!("p{i}"));
        p.fields = fields
            .iter()
            .map(|&(name, offset, size, signed)| Field {
                name: name.into(),
                offset,
                size,
                signed,
                kind: FieldKind::Integer,
                elem_size: 1,
            })
            .collect();
        p
    }

    fn push(b: &mut Vec<u8>, probe: u32, pid: i32, payload: &[u8]) {
        let h = Header { probe_index: probe, payload_len: payload.len() as u32, ts: 10 * pid as u64, pid, cpu: 0 };
        b.extend_from_slice(&h.encode());
        b.extend_from_slice(payload);
        b.resize(padded(b.len()), 0);
    }

    /// Columns, counts and events agree, in a uniform batch and in a mixed one; the runtime's
    /// check finds where a malformed batch stops.
    #[test]
    fn columns_and_events_agree_uniform_or_not() {
        let probes = [probe(0, &[("id", 0, 8, true)]), probe(1, &[("ret", 0, 4, true)])];
        let comms = CommCache::default();
        let mut uniform = Vec::new();
        for pid in 1..=6 {
            push(&mut uniform, 0, pid, &(-(pid as i64)).to_le_bytes());
        }
        let mut mixed = uniform.clone();
        push(&mut mixed, 1, 7, &(-7i32).to_le_bytes());
        for (bytes, is_uniform) in [(&uniform, true), (&mixed, false)] {
            let b = Batch::new(bytes, &probes, &comms);
            assert_eq!(b.uniform().is_some(), is_uniform);
            let (p0, p1) = (ProbeId(0), ProbeId(1));
            assert_eq!(b.count(p0), 6);
            assert_eq!(b.count(p1), if is_uniform { 0 } else { 1 });
            assert_eq!(b.pids(p0).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
            assert_eq!(b.i64s(p0, "id").sum::<i64>(), -21);
            assert_eq!(b.u64s(p0, "id").next(), Some(u64::MAX));
            assert_eq!(b.i64s(p1, "ret").collect::<Vec<_>>(), if is_uniform { vec![] } else { vec![-7] });
            assert_eq!(b.u64s(p0, "nope").sum::<u64>(), 0);
            assert_eq!(b.ts(p0).last(), Some(60));
            assert!(b.int(p0, "ret").is_none());
            let id = b.int(p0, "id").unwrap();
            let mut by_record = Vec::new();
            b.records(p0).for_each(|r| by_record.push((r.pid, id.read(r.payload))));
            assert_eq!(by_record[5], (6, -6));
            assert_eq!(b.all_records().count(), bytes.len() / 32);
            // The per-event path: every event, in order, with its fields by name.
            let mut events = Vec::new();
            b.events(|ev| events.push((ev.probe().0, ev.pid(), ev.i64("id") + ev.i64("ret"))));
            assert_eq!(events.len(), bytes.len() / 32);
            assert_eq!(events[0], (0, 1, -1));
            assert_eq!(b.walked_to.get(), Some(bytes.len()));
            assert_eq!(walk_end(bytes, 2), bytes.len());
        }
        // A record cut short, and a probe the plan lacks, stop the walk where they start.
        assert_eq!(walk_end(&mixed[..mixed.len() - 8], 2), 6 * 32);
        assert_eq!(walk_end(&mixed, 1), 6 * 32);
        let cut = Batch::new(&mixed[..HEADER_LEN + 4], &probes, &comms);
        assert!(cut.uniform().is_none());
        assert_eq!(cut.pids(ProbeId(0)).count(), 0);
    }
}
