//! The packed batch the host hands a plugin's `on-batch` (format in `wit/wasmprobe.wit`, its
//! byte layout in `wasmprobe_abi::batch`): records of a 24-byte little-endian header and the
//! raw kernel payload, each padded to 8 bytes.

use wasmprobe_abi::batch::{
    padded, record_at, record_with_stacks_at, Header, StackTrailer, HEADER_LEN, KSTACK, PAYLOAD_LEN_AT, STACKS, USTACK,
    USTACK_TRUNCATED,
};

use crate::stacks::EventStacks;

use super::project::Projection;

/// One record read back from a batch.
pub use wasmprobe_abi::batch::Record as BatchRecord;

/// Builds a batch. Reuse one writer per plugin: [`BatchWriter::clear`] keeps the allocation,
/// so after warm-up [`BatchWriter::push`] allocates nothing.
#[derive(Debug, Default, Clone)]
pub struct BatchWriter {
    buf: Vec<u8>,
    records: usize,
}

impl BatchWriter {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch with room for `bytes` bytes of records.
    pub fn with_capacity(bytes: usize) -> Self {
        BatchWriter { buf: Vec::with_capacity(bytes), records: 0 }
    }

    /// Appends one event: `payload` is the kernel's record data (common_type first).
    /// Payloads longer than `u32::MAX` bytes cannot occur in a ring buffer and are truncated.
    pub fn push(&mut self, probe_index: u32, cpu: u32, pid: i32, ts: u64, payload: &[u8]) {
        let len = payload.len().min(u32::MAX as usize);
        self.buf.reserve(padded(HEADER_LEN + len));
        self.header(probe_index, len as u32, ts, pid, cpu);
        self.buf.extend_from_slice(&payload[..len]);
        self.end_record();
    }

    /// Appends one event projected onto the fields a plugin asked for (see [`Projection`]).
    #[inline]
    pub fn push_projected(&mut self, probe_index: u32, cpu: u32, pid: i32, ts: u64, payload: &[u8], p: &Projection) {
        let start = self.buf.len();
        let fixed = p.fixed_len();
        self.header(probe_index, fixed as u32, ts, pid, cpu);
        let len = p.append(payload, &mut self.buf);
        if len != fixed {
            // Variable-size data followed the fixed part.
            let at = start + PAYLOAD_LEN_AT;
            self.buf[at..at + 4].copy_from_slice(&(len as u32).to_le_bytes());
        }
        self.end_record();
    }

    /// Gives the record that starts at byte `start` (the [`BatchWriter::byte_len`] before it
    /// was pushed, and the last one pushed) its call stacks: sets [`STACKS`] in its probe index
    /// and appends the trailer (`wasmprobe_abi::batch::StackTrailer`).
    pub fn add_stacks(&mut self, start: usize, stacks: &EventStacks<'_>) {
        let Some(word) = self.buf.get_mut(start..start + 4) else { return };
        let probe = u32::from_le_bytes([word[0], word[1], word[2], word[3]]) | STACKS;
        word.copy_from_slice(&probe.to_le_bytes());
        let mut flags = 0;
        if stacks.kernel.is_some() {
            flags |= KSTACK;
        }
        if stacks.user.is_some() {
            flags |= USTACK;
        }
        if stacks.user_truncated {
            flags |= USTACK_TRUNCATED;
        }
        StackTrailer::encode(&mut self.buf, flags, stacks.kernel.unwrap_or(&[]), stacks.user.unwrap_or(&[]));
    }

    /// The record header.
    #[inline]
    fn header(&mut self, probe_index: u32, payload_len: u32, ts: u64, pid: i32, cpu: u32) {
        self.buf.extend_from_slice(&Header { probe_index, payload_len, ts, pid, cpu }.encode());
    }

    /// Pads the record just written to a multiple of 8 bytes and counts it.
    #[inline]
    fn end_record(&mut self) {
        let end = padded(self.buf.len());
        if end != self.buf.len() {
            self.buf.resize(end, 0);
        }
        self.records += 1;
    }

    /// Empties the batch, keeping its allocation.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.records = 0;
    }

    /// Makes this batch a copy of `other`, in the memory it has (one copy of the bytes; no
    /// allocation once it is big enough).
    pub fn copy_from(&mut self, other: &BatchWriter) {
        self.buf.clear();
        self.buf.extend_from_slice(&other.buf);
        self.records = other.records;
    }

    /// The packed records, as `on-batch` takes them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records
    }

    /// Whether there is no record.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Size of the packed records in bytes.
    pub fn byte_len(&self) -> usize {
        self.buf.len()
    }
}

/// Iterates the records of a packed batch with the guest SDK's own step
/// (`wasmprobe_abi::batch::record_at`), for tests, replay and native baselines. Stops at the
/// first malformed record (`wasmprobe_abi::batch::Records` says what is wrong with it).
#[derive(Debug, Clone)]
pub struct BatchReader<'a> {
    buf: &'a [u8],
    off: usize,
}

impl<'a> BatchReader<'a> {
    /// Reads `batch` from its first record.
    pub fn new(batch: &'a [u8]) -> Self {
        BatchReader { buf: batch, off: 0 }
    }
}

impl<'a> BatchReader<'a> {
    /// The next record with its stack trailer (empty for a record without stacks).
    pub fn next_with_stacks(&mut self) -> Option<(BatchRecord<'a>, &'a [u8])> {
        let (rec, stacks, next) = record_with_stacks_at(self.buf, self.off)?;
        self.off = next;
        Some((rec, stacks))
    }
}

impl<'a> Iterator for BatchReader<'a> {
    type Item = BatchRecord<'a>;

    #[inline]
    fn next(&mut self) -> Option<BatchRecord<'a>> {
        let (rec, next) = record_at(self.buf, self.off)?;
        if rec.probe_index & STACKS != 0 {
            return self.next_with_stacks().map(|(rec, _)| rec);
        }
        self.off = next;
        Some(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_headed_padded_and_read_back() {
        let mut b = BatchWriter::new();
        b.push(1, 3, 42, 1000, &[1, 2, 3]);
        b.push(0, 0, -1, 2000, &[7; 16]);
        assert_eq!(b.len(), 2);
        assert_eq!(b.byte_len(), 32 + 40);
        let bytes = b.as_bytes();
        assert_eq!(&bytes[0..4], &1u32.to_le_bytes());
        assert_eq!(&bytes[4..8], &3u32.to_le_bytes());
        assert_eq!(&bytes[8..16], &1000u64.to_le_bytes());
        assert_eq!(&bytes[16..20], &42i32.to_le_bytes());
        assert_eq!(&bytes[20..24], &3u32.to_le_bytes());
        assert_eq!(&bytes[24..32], &[1, 2, 3, 0, 0, 0, 0, 0]);
        let recs: Vec<_> = BatchReader::new(bytes).collect();
        assert_eq!(recs[0], BatchRecord { probe_index: 1, cpu: 3, pid: 42, ts: 1000, payload: &[1, 2, 3] });
        assert_eq!(recs[1].pid, -1);
        assert_eq!(recs[1].payload, &[7; 16]);
        b.clear();
        assert!(b.is_empty() && b.as_bytes().is_empty());
    }

    #[test]
    fn stacks_follow_their_record_and_read_back() {
        let mut b = BatchWriter::new();
        let start = b.byte_len();
        b.push(2, 1, 42, 1000, &[1, 2, 3]);
        let stacks = EventStacks { kernel: Some(&[10, 11]), user: Some(&[20]), user_truncated: true, tgid: 42 };
        b.add_stacks(start, &stacks);
        b.push(0, 0, 7, 2000, &[9; 8]);
        let recs: Vec<_> = BatchReader::new(b.as_bytes()).collect();
        assert_eq!(recs.len(), 2);
        assert_eq!((recs[0].probe_index, recs[0].payload), (2, &[1u8, 2, 3][..]));
        assert_eq!((recs[1].probe_index, recs[1].pid), (0, 7));
        let mut r = BatchReader::new(b.as_bytes());
        let (rec, stacks) = r.next_with_stacks().unwrap();
        assert_eq!(rec.probe_index, 2);
        let t = StackTrailer::parse(stacks).unwrap();
        assert_eq!(t.flags, KSTACK | USTACK | USTACK_TRUNCATED);
        assert_eq!((t.kernel.len(), t.user.len()), (16, 8));
        assert_eq!(r.next_with_stacks().map(|(r, s)| (r.probe_index, s.len())), Some((0, 0)));
    }

    #[test]
    fn reader_stops_at_truncation() {
        let mut b = BatchWriter::new();
        b.push(0, 0, 1, 1, &[0; 8]);
        let bytes = b.as_bytes();
        assert_eq!(BatchReader::new(&bytes[..bytes.len() - 1]).count(), 0);
        assert_eq!(BatchReader::new(&bytes[..10]).count(), 0);
    }
}
