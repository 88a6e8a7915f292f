//! Columnar reading of a packed batch: one probe's records, or one value of each of them (its
//! pid, its timestamp, one integer field), in a tight loop with no per-event object.
//!
//! Most batches are *uniform*: every record belongs to one probe and has one size (a
//! tracepoint whose projected fields are fixed-size, the common case of counters). Their
//! records then sit at fixed strides from the start of the batch ([`Uniform`]), and a column is
//! a strided read: the loop carries no dependency through memory (where the next record is
//! does not depend on what this one says). Inside Wasm that chain, a load of the record's
//! length, an add and a mask per record, costs the per-record walk ([`crate::batch::record_at`])
//! about 2x its native time; strided, Cranelift's loop is a few loads and adds. Other batches
//! are walked record by record, filtered by probe: the same values, in the same order.
//!
//! [`Rows`] yields [`Record`]s; [`Column`] yields one value per record. Both do their best in
//! internal iteration (`for_each`, `fold`, `sum`, `count`...): the choice between the strided
//! and the walking loop, and the field's width, are then made once per batch, not per record.
//!
//! ```
//! use wasmprobe_abi::batch::{padded, Header, HEADER_LEN};
//! use wasmprobe_abi::columns::{Column, Int, Rows, Width};
//! let mut batch = Vec::new();
//! for pid in [7, 8, 7] {
//!     let h = Header { probe_index: 0, payload_len: 8, ts: 0, pid, cpu: 0 };
//!     batch.extend_from_slice(&h.encode());
//!     batch.extend_from_slice(&(pid as u64 * 10).to_le_bytes());
//! }
//! let rows = Rows::of(&batch, Some(0));
//! assert_eq!(Column::<i32>::pids(rows.clone()).collect::<Vec<_>>(), [7, 8, 7]);
//! let id = Int { offset: 0, width: Width::U64 };
//! assert_eq!(Column::<u64>::field(rows, Some(id)).sum::<u64>(), 220);
//! ```

use std::marker::PhantomData;

use crate::batch::{padded, record_at, record_with_stacks_at, Header, Record, HEADER_LEN, STACKS};

/// The shape of a uniform batch: every record of probe `probe_index`, `stride` bytes apart
/// (header, payload and padding), `count` of them, the last ending where the batch ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uniform {
    /// The probe of every record (never with the [`STACKS`] bit).
    pub probe_index: u32,
    /// Bytes from one record to the next.
    pub stride: usize,
    /// The records' payload length.
    pub payload_len: usize,
    /// How many records.
    pub count: usize,
}

impl Uniform {
    /// The shape of `batch` if it is uniform: each record's first 8 bytes (probe index and
    /// payload length) equal the first record's, and the batch is a whole number of records.
    /// Then walking it record by record would stop at exactly these records. One independent
    /// compare per record; `None` for an empty batch or any other.
    pub fn of(batch: &[u8]) -> Option<Uniform> {
        let first: [u8; 8] = batch.get(..8)?.try_into().ok()?;
        let word = u64::from_le_bytes(first);
        let (probe_index, payload_len) = (word as u32, (word >> 32) as usize);
        if probe_index & STACKS != 0 {
            return None;
        }
        let stride = padded(HEADER_LEN + payload_len);
        if !batch.len().is_multiple_of(stride) {
            return None;
        }
        // Words, not byte slices (a slice compare is a `bcmp` call inside Wasm), and no branch
        // per record: the differences are or-ed together and looked at once.
        // Four records a turn, as in `Rows::fold`.
        let word_at =
            |r: &[u8], at: usize| r.get(at..at + 8).map_or(!word, |w| u64::from_le_bytes(w.try_into().unwrap()));
        let mut quads = batch.chunks_exact(4 * stride);
        let mut diff = 0;
        for q in &mut quads {
            let w = [word_at(q, 0), word_at(q, stride), word_at(q, 2 * stride), word_at(q, 3 * stride)];
            diff |= (w[0] ^ word) | (w[1] ^ word) | (w[2] ^ word) | (w[3] ^ word);
        }
        let diff = quads.remainder().chunks_exact(stride).fold(diff, |acc, r| acc | (word_at(r, 0) ^ word));
        (diff == 0).then_some(Uniform { probe_index, stride, payload_len, count: batch.len() / stride })
    }
}

/// How [`Rows`] steps.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Fixed strides over a uniform batch (every record is one of the wanted probe's).
    Strided { stride: usize, payload_len: usize },
    /// Record by record, keeping those of `probe` (every record when `None`); records with
    /// stacks are stepped over their trailer.
    Walk { probe: Option<u32> },
}

/// The records of one probe of a batch (or all of them), in batch order, as [`Record`]s
/// borrowing their payload from the batch. Stops at the end of the batch or at a malformed
/// record ([`crate::batch::Records`] says what is wrong with it).
#[derive(Debug, Clone)]
pub struct Rows<'a> {
    batch: &'a [u8],
    off: usize,
    step: Step,
}

impl<'a> Rows<'a> {
    /// The records of `probe` (all when `None`), strided if the batch is uniform (checked
    /// here: one pass over the headers; [`Rows::with`] takes a shape already known).
    pub fn of(batch: &'a [u8], probe: Option<u32>) -> Rows<'a> {
        Rows::with(batch, Uniform::of(batch), probe)
    }

    /// [`Rows::of`] with the batch's shape given (`uniform` must be `Uniform::of(batch)`).
    pub fn with(batch: &'a [u8], uniform: Option<Uniform>, probe: Option<u32>) -> Rows<'a> {
        match uniform {
            Some(u) if probe.is_none_or(|p| p == u.probe_index) => {
                Rows { batch, off: 0, step: Step::Strided { stride: u.stride, payload_len: u.payload_len } }
            }
            // A uniform batch of another probe: none of this one's.
            Some(_) => Rows { batch, off: batch.len(), step: Step::Walk { probe } },
            None => Rows { batch, off: 0, step: Step::Walk { probe } },
        }
    }

    /// No records.
    pub fn empty() -> Rows<'a> {
        Rows { batch: &[], off: 0, step: Step::Walk { probe: None } }
    }

    /// The record at a stride's start (the stride holds a header and `payload_len` bytes).
    #[inline(always)]
    fn strided(rec: &'a [u8], payload_len: usize) -> Record<'a> {
        let (h, rest) = rec.split_at(HEADER_LEN);
        let h = Header::decode(h.try_into().unwrap());
        Record { probe_index: h.probe_index, ts: h.ts, pid: h.pid, cpu: h.cpu, payload: &rest[..payload_len] }
    }

    /// The next record of the walk.
    #[inline(always)]
    fn walk_next(&mut self, probe: Option<u32>) -> Option<Record<'a>> {
        loop {
            let (rec, next) = match record_at(self.batch, self.off) {
                Some((rec, next)) if rec.probe_index & STACKS == 0 => (rec, next),
                _ => match record_with_stacks_at(self.batch, self.off) {
                    Some((rec, _, next)) => (rec, next),
                    None => {
                        self.off = self.batch.len();
                        return None;
                    }
                },
            };
            self.off = next;
            if probe.is_none_or(|p| p == rec.probe_index) {
                return Some(rec);
            }
        }
    }
}

impl<'a> Iterator for Rows<'a> {
    type Item = Record<'a>;

    #[inline]
    fn next(&mut self) -> Option<Record<'a>> {
        match self.step {
            Step::Strided { stride, payload_len } => {
                let rec = self.batch.get(self.off..self.off + stride)?;
                self.off += stride;
                Some(Rows::strided(rec, payload_len))
            }
            Step::Walk { probe } => self.walk_next(probe),
        }
    }

    /// One loop per kind of step, chosen once.
    #[inline]
    fn fold<B, F: FnMut(B, Record<'a>) -> B>(mut self, init: B, mut f: F) -> B {
        match self.step {
            Step::Strided { stride, payload_len } => {
                let rest = self.batch.get(self.off..).unwrap_or(&[]);
                // Four records a turn: inside Wasm each turn of a loop also checks the epoch
                // (the plugin's time budget) and reloads what Cranelift spilled.
                let mut quads = rest.chunks_exact(4 * stride);
                let mut acc = init;
                for q in &mut quads {
                    let (a, q) = q.split_at(stride);
                    let (b, q) = q.split_at(stride);
                    let (c, d) = q.split_at(stride);
                    acc = f(acc, Rows::strided(a, payload_len));
                    acc = f(acc, Rows::strided(b, payload_len));
                    acc = f(acc, Rows::strided(c, payload_len));
                    acc = f(acc, Rows::strided(d, payload_len));
                }
                quads.remainder().chunks_exact(stride).fold(acc, |acc, rec| f(acc, Rows::strided(rec, payload_len)))
            }
            Step::Walk { probe } => {
                let mut acc = init;
                while let Some(rec) = self.walk_next(probe) {
                    acc = f(acc, rec);
                }
                acc
            }
        }
    }
}

/// How wide an integer field is and how it extends to 64 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Width {
    /// u8, zero-extended.
    U8,
    /// i8, sign-extended.
    I8,
    /// u16.
    U16,
    /// i16.
    I16,
    /// u32.
    U32,
    /// i32.
    I32,
    /// 64 bits, signed or not.
    U64,
}

impl Width {
    /// The width of a `size`-byte integer (1, 2, 4 or 8 bytes).
    pub fn of(size: u32, signed: bool) -> Option<Width> {
        Some(match (size, signed) {
            (1, false) => Width::U8,
            (1, true) => Width::I8,
            (2, false) => Width::U16,
            (2, true) => Width::I16,
            (4, false) => Width::U32,
            (4, true) => Width::I32,
            (8, _) => Width::U64,
            _ => return None,
        })
    }
}

/// An integer at `offset` of each record's payload: a field resolved once, read per record
/// with [`Int::read`] (or a whole [`Column`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Int {
    /// Bytes from the payload's start.
    pub offset: usize,
    /// Its width and sign.
    pub width: Width,
}

/// Reads an `N`-byte little-endian integer at `at` of `p`, if there.
#[inline(always)]
fn bytes<const N: usize>(p: &[u8], at: usize) -> Option<[u8; N]> {
    p.get(at..at + N).map(|b| b.try_into().unwrap())
}

impl Int {
    /// The integer in `payload` (sign- or zero-extended to 64 bits); 0 when the payload is too
    /// short, as a missing field reads.
    #[inline(always)]
    pub fn read(&self, payload: &[u8]) -> i64 {
        read_width(self.width, payload, self.offset)
    }
}

#[inline(always)]
fn read_width(w: Width, p: &[u8], at: usize) -> i64 {
    match w {
        Width::U8 => bytes::<1>(p, at).map_or(0, |b| b[0] as i64),
        Width::I8 => bytes::<1>(p, at).map_or(0, |b| b[0] as i8 as i64),
        Width::U16 => bytes::<2>(p, at).map_or(0, |b| u16::from_le_bytes(b) as i64),
        Width::I16 => bytes::<2>(p, at).map_or(0, |b| i16::from_le_bytes(b) as i64),
        Width::U32 => bytes::<4>(p, at).map_or(0, |b| u32::from_le_bytes(b) as i64),
        Width::I32 => bytes::<4>(p, at).map_or(0, |b| i32::from_le_bytes(b) as i64),
        Width::U64 => bytes::<8>(p, at).map_or(0, i64::from_le_bytes),
    }
}

/// A value type of a [`Column`]: what a 64-bit integer converts to (`as`).
pub trait FromI64: Copy {
    /// `v as Self`.
    fn from_i64(v: i64) -> Self;
}

macro_rules! from_i64 {
    ($($t:ty),*) => {$(
        impl FromI64 for $t {
            #[inline(always)]
            fn from_i64(v: i64) -> Self {
                v as $t
            }
        }
    )*};
}

from_i64!(i32, u32, i64, u64);

/// What a [`Column`] reads of each record.
#[derive(Debug, Clone, Copy)]
enum Source {
    Pid,
    Ts,
    Cpu,
    Field(Int),
    /// A field the probe does not have: 0 for each record.
    Zero,
}

/// One value of each record of a [`Rows`]: its pid, timestamp, CPU or one integer field.
#[derive(Debug, Clone)]
pub struct Column<'a, T> {
    rows: Rows<'a>,
    source: Source,
    _t: PhantomData<T>,
}

impl<'a, T: FromI64> Column<'a, T> {
    fn new(rows: Rows<'a>, source: Source) -> Self {
        Column { rows, source, _t: PhantomData }
    }

    /// Each record's `common_pid`.
    pub fn pids(rows: Rows<'a>) -> Self {
        Column::new(rows, Source::Pid)
    }

    /// Each record's timestamp.
    pub fn ts(rows: Rows<'a>) -> Self {
        Column::new(rows, Source::Ts)
    }

    /// Each record's CPU.
    pub fn cpus(rows: Rows<'a>) -> Self {
        Column::new(rows, Source::Cpu)
    }

    /// Each record's integer field `int`; 0 for every record when `None` (a field the probe
    /// lacks), or for a record too short to hold it.
    pub fn field(rows: Rows<'a>, int: Option<Int>) -> Self {
        Column::new(rows, int.map_or(Source::Zero, Source::Field))
    }
}

impl<T: FromI64> Iterator for Column<'_, T> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        let r = self.rows.next()?;
        Some(T::from_i64(match self.source {
            Source::Pid => r.pid as i64,
            Source::Ts => r.ts as i64,
            Source::Cpu => r.cpu as i64,
            Source::Field(int) => int.read(r.payload),
            Source::Zero => 0,
        }))
    }

    /// One loop per source and width, chosen once.
    #[inline]
    fn fold<B, F: FnMut(B, T) -> B>(self, init: B, mut f: F) -> B {
        let rows = self.rows;
        macro_rules! each {
            ($r:ident => $v:expr) => {
                rows.fold(init, |acc, $r| f(acc, T::from_i64($v)))
            };
        }
        match self.source {
            Source::Pid => each!(r => r.pid as i64),
            Source::Ts => each!(r => r.ts as i64),
            Source::Cpu => each!(r => r.cpu as i64),
            Source::Zero => each!(_r => 0),
            Source::Field(Int { offset, width }) => match width {
                Width::U8 => each!(r => read_width(Width::U8, r.payload, offset)),
                Width::I8 => each!(r => read_width(Width::I8, r.payload, offset)),
                Width::U16 => each!(r => read_width(Width::U16, r.payload, offset)),
                Width::I16 => each!(r => read_width(Width::I16, r.payload, offset)),
                Width::U32 => each!(r => read_width(Width::U32, r.payload, offset)),
                Width::I32 => each!(r => read_width(Width::I32, r.payload, offset)),
                Width::U64 => each!(r => read_width(Width::U64, r.payload, offset)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{StackTrailer, KSTACK};

    fn push(b: &mut Vec<u8>, probe: u32, pid: i32, payload: &[u8]) {
        let h = Header {
            probe_index: probe,
            payload_len: payload.len() as u32,
            ts: (pid as u64).wrapping_mul(100),
            pid,
            cpu: 1,
        };
        b.extend_from_slice(&h.encode());
        b.extend_from_slice(payload);
        b.resize(padded(b.len()), 0);
    }

    fn payload(v: u64) -> [u8; 12] {
        let mut p = [0u8; 12];
        p[..8].copy_from_slice(&v.to_le_bytes());
        p[8..].copy_from_slice(&(-(v as i32)).to_le_bytes());
        p
    }

    const ID: Int = Int { offset: 0, width: Width::U64 };
    const NEG: Int = Int { offset: 8, width: Width::I32 };

    #[test]
    fn a_uniform_batch_is_read_strided_and_gives_what_the_walk_gives() {
        let mut b = Vec::new();
        for pid in 1..=5 {
            push(&mut b, 2, pid, &payload(pid as u64 * 3));
        }
        let u = Uniform::of(&b).unwrap();
        assert_eq!(u, Uniform { probe_index: 2, stride: 40, payload_len: 12, count: 5 });
        let strided = Rows::of(&b, Some(2));
        let walked = Rows::with(&b, None, Some(2));
        assert_eq!(strided.clone().collect::<Vec<_>>(), walked.clone().collect::<Vec<_>>());
        // Internal and external iteration agree, in both steps.
        for rows in [strided, walked] {
            let by_next: Vec<i64> = Column::<i64>::field(rows.clone(), Some(NEG)).by_ref().collect();
            let mut by_fold = Vec::new();
            Column::<i64>::field(rows.clone(), Some(NEG)).for_each(|v| by_fold.push(v));
            assert_eq!(by_next, [-3, -6, -9, -12, -15]);
            assert_eq!(by_fold, by_next);
            assert_eq!(Column::<u64>::field(rows.clone(), Some(ID)).sum::<u64>(), 45);
            assert_eq!(Column::<i32>::pids(rows.clone()).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
            assert_eq!(Column::<u64>::ts(rows.clone()).last(), Some(500));
            assert_eq!(Column::<u32>::cpus(rows.clone()).sum::<u32>(), 5);
            assert_eq!(Column::<u64>::field(rows.clone(), None).sum::<u64>(), 0);
            // A field past the payload reads 0, as a missing one does.
            let far = Int { offset: 10, width: Width::U32 };
            assert_eq!(Column::<u64>::field(rows, Some(far)).max(), Some(0));
        }
        assert_eq!(Rows::of(&b, Some(1)).count(), 0);
        assert_eq!(Rows::of(&b, None).count(), 5);
    }

    #[test]
    fn mixed_probes_sizes_and_stacks_are_walked_and_filtered() {
        let mut b = Vec::new();
        push(&mut b, 0, 1, &payload(10));
        push(&mut b, 1, 2, &[1, 2, 3]);
        push(&mut b, STACKS, 3, &payload(30));
        StackTrailer::encode(&mut b, KSTACK, &[0xffff_ffff_8100_0000], &[]);
        push(&mut b, 0, 4, &payload(40));
        assert_eq!(Uniform::of(&b), None);
        let zero: Vec<u64> = Column::field(Rows::of(&b, Some(0)), Some(ID)).collect();
        assert_eq!(zero, [10, 30, 40]);
        let mut folded = Vec::new();
        Column::<i32>::pids(Rows::of(&b, Some(0))).for_each(|p| folded.push(p));
        assert_eq!(folded, [1, 3, 4]);
        assert_eq!(Rows::of(&b, None).map(|r| r.probe_index).collect::<Vec<_>>(), [0, 1, 0, 0]);
        // A batch cut short: the records before the cut, then nothing.
        let cut = &b[..b.len() - 8];
        assert_eq!(Rows::of(cut, Some(0)).count(), 2);
        assert_eq!(Column::<i32>::pids(Rows::of(cut, None)).fold(0, |n, _| n + 1), 3);
        // Not uniform: a tail that is not a whole record, another size, no records.
        let mut u = Vec::new();
        push(&mut u, 0, 1, &payload(1));
        push(&mut u, 0, 2, &payload(2));
        assert!(Uniform::of(&u).is_some());
        assert_eq!(Uniform::of(&u[..u.len() - 8]), None);
        assert_eq!(Uniform::of(&[]), None);
        push(&mut u, 0, 3, &[0; 20]);
        assert_eq!(Uniform::of(&u), None);
        assert_eq!(Rows::empty().count(), 0);
    }

    #[test]
    fn columns_read_every_width_as_int_read_does() {
        let p = [0xff, 0xfe, 0xff, 0x7f, 0x01, 0, 0, 0x80, 5, 0, 0, 0];
        let mut b = Vec::new();
        push(&mut b, 0, -7, &p);
        push(&mut b, 0, 9, &p);
        let widths = [Width::U8, Width::I8, Width::U16, Width::I16, Width::U32, Width::I32, Width::U64];
        for rows in [Rows::of(&b, Some(0)), Rows::with(&b, None, Some(0))] {
            for w in widths {
                for offset in [0, 1, 4] {
                    let int = Int { offset, width: w };
                    let got: Vec<i64> = Column::field(rows.clone(), Some(int)).collect();
                    let mut folded = Vec::new();
                    Column::<i64>::field(rows.clone(), Some(int)).for_each(|v| folded.push(v));
                    assert_eq!(got, [int.read(&p); 2], "{w:?} at {offset}");
                    assert_eq!(folded, got);
                }
            }
            assert_eq!(Column::<i32>::pids(rows.clone()).collect::<Vec<_>>(), [-7, 9]);
            assert_eq!(Column::<u64>::ts(rows.clone()).collect::<Vec<_>>(), [(-7i64 as u64).wrapping_mul(100), 900]);
        }
    }

    #[test]
    fn widths() {
        let p = [0xff, 0xfe, 0xff, 0xff, 0x01, 0, 0, 0x80];
        let r = |w, offset| Int { offset, width: w }.read(&p);
        assert_eq!((r(Width::U8, 0), r(Width::I8, 0)), (255, -1));
        assert_eq!((r(Width::U16, 0), r(Width::I16, 0)), (0xfeff, -257));
        assert_eq!((r(Width::U32, 0), r(Width::I32, 0)), (0xfffffeff, -257));
        assert_eq!(r(Width::U64, 0), i64::from_le_bytes(p));
        assert_eq!(r(Width::U32, 6), 0);
        assert_eq!(Width::of(4, true), Some(Width::I32));
        assert_eq!(Width::of(3, false), None);
    }
}
