//! The packed batch that `on-batch` carries (`wit/wasmprobe.wit`, "The packed batch format"):
//! records of a 24-byte little-endian [`Header`] and the payload, each padded with zeros to a
//! multiple of [`ALIGN`] bytes from the start of the batch.
//!
//! ```text
//!  offset size  field (all little-endian)
//!  0      4     u32 probe-index
//!  4      4     u32 payload-len
//!  8      8     u64 ts
//!  16     4     s32 pid
//!  20     4     u32 cpu
//!  24     payload-len bytes of payload, then 0-7 bytes of zero padding
//! ```
//!
//! The host writes batches with [`Header::encode`] and [`padded`]; the guest SDK reads them
//! with [`record_at`] (its per-event loop) and [`Records`] (which also says what is wrong
//! with a malformed batch).
//!
//! A record whose `probe-index` has bit 31 ([`STACKS`]) set carries call stacks: after its
//! padded payload comes a trailer of [`TRAILER_LEN`] bytes (u16 kernel frames, u16 user
//! frames, u32 [`StackTrailer`] flags) and the frames, 8 bytes each, kernel ones first. The
//! next record follows. [`record_at`], the per-event step, knows nothing of it: a record with
//! the bit names no probe of the plan there (its index is over 2^31), which sends the reader
//! to [`record_with_stacks_at`], its slow path, which masks the bit off and hands the trailer
//! over ([`StackTrailer::parse`] reads it). So records without the bit cost what they cost
//! before stacks existed.

use std::fmt;

/// Bytes of a record header.
pub const HEADER_LEN: usize = 24;

/// Records start at multiples of this many bytes from the start of the batch.
pub const ALIGN: usize = 8;

/// Where in a header the payload length sits (a writer that learns the length only after
/// writing the payload patches these 4 bytes).
pub const PAYLOAD_LEN_AT: usize = 4;

/// Bit of a header's `probe-index` that says a stack trailer follows the payload.
pub const STACKS: u32 = 1 << 31;

/// Bytes of a stack trailer before its frames.
pub const TRAILER_LEN: usize = 8;

/// Trailer flag: a kernel stack is attached.
pub const KSTACK: u32 = 1;
/// Trailer flag: a user stack is attached.
pub const USTACK: u32 = 1 << 1;
/// Trailer flag: the user stack stops early (it does not reach the program's own code, or
/// the kernel's frame-pointer walk gave up).
pub const USTACK_TRUNCATED: u32 = 1 << 2;

/// `len` rounded up to a multiple of [`ALIGN`]: where a record ending at `len` is followed by
/// the next.
#[inline]
pub const fn padded(len: usize) -> usize {
    (len + ALIGN - 1) & !(ALIGN - 1)
}

/// A record header, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Index of the probe in the plugin's plan (and in `run.layouts()`).
    pub probe_index: u32,
    /// Bytes of payload after the header.
    pub payload_len: u32,
    /// Event timestamp, nanoseconds of the trace clock.
    pub ts: u64,
    /// `common_pid` of the event.
    pub pid: i32,
    /// The CPU whose ring buffer held the event.
    pub cpu: u32,
}

impl Header {
    /// The header's 24 bytes. No allocation: the host appends them to its batch.
    #[inline]
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        // Three little-endian words: what the host's writer stores per record.
        let words = [
            self.probe_index as u64 | (self.payload_len as u64) << 32,
            self.ts,
            self.pid as u32 as u64 | (self.cpu as u64) << 32,
        ];
        let mut out = [0u8; HEADER_LEN];
        for (chunk, word) in out.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        out
    }

    /// Decodes a header's 24 bytes.
    #[inline]
    pub fn decode(h: &[u8; HEADER_LEN]) -> Header {
        let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        Header {
            probe_index: u32_at(0),
            payload_len: u32_at(PAYLOAD_LEN_AT),
            ts: u64::from_le_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]),
            pid: u32_at(16) as i32,
            cpu: u32_at(20),
        }
    }
}

/// One record of a batch: its header's fields and the payload it borrows from the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Index of the probe in the plan.
    pub probe_index: u32,
    /// Timestamp in nanoseconds.
    pub ts: u64,
    /// `common_pid` of the event.
    pub pid: i32,
    /// CPU the event came from.
    pub cpu: u32,
    /// The kernel's event record (common fields first), or the projected fields.
    pub payload: &'a [u8],
}

/// A record's stack trailer, decoded: which stacks are attached and where their frames are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackTrailer<'a> {
    /// [`KSTACK`], [`USTACK`], [`USTACK_TRUNCATED`].
    pub flags: u32,
    /// The kernel frames, 8 little-endian bytes each.
    pub kernel: &'a [u8],
    /// The user frames, 8 little-endian bytes each.
    pub user: &'a [u8],
}

impl<'a> StackTrailer<'a> {
    /// Reads the trailer [`record_with_stacks_at`] found; `None` when it is empty or malformed.
    #[inline]
    pub fn parse(stacks: &'a [u8]) -> Option<StackTrailer<'a>> {
        let t = stacks.get(..TRAILER_LEN)?;
        let nk = u16::from_le_bytes([t[0], t[1]]) as usize * 8;
        let nu = u16::from_le_bytes([t[2], t[3]]) as usize * 8;
        let flags = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
        let kernel = stacks.get(TRAILER_LEN..TRAILER_LEN + nk)?;
        let user = stacks.get(TRAILER_LEN + nk..TRAILER_LEN + nk + nu)?;
        Some(StackTrailer { flags, kernel, user })
    }

    /// Appends a trailer with these frames to `out` (the host's writer).
    pub fn encode(out: &mut Vec<u8>, flags: u32, kernel: &[u64], user: &[u64]) {
        let (nk, nu) = (kernel.len().min(u16::MAX as usize), user.len().min(u16::MAX as usize));
        out.extend_from_slice(&(nk as u16).to_le_bytes());
        out.extend_from_slice(&(nu as u16).to_le_bytes());
        out.extend_from_slice(&flags.to_le_bytes());
        for a in kernel[..nk].iter().chain(&user[..nu]) {
            out.extend_from_slice(&a.to_le_bytes());
        }
    }
}

/// The `i`th address of frames as a trailer holds them (8 little-endian bytes each).
#[inline]
pub fn frame_at(frames: &[u8], i: usize) -> Option<u64> {
    let b = frames.get(i * 8..i * 8 + 8)?;
    Some(u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
}

/// The record at offset `off` of `batch`, and the offset of the next one. `None` at the end
/// of the batch and at a malformed record ([`Records`] says what is wrong with it). No
/// allocation, no panic; this is the per-event step of the guest SDK's loop.
#[inline]
pub fn record_at(batch: &[u8], off: usize) -> Option<(Record<'_>, usize)> {
    let h = Header::decode(batch.get(off..off + HEADER_LEN)?.try_into().ok()?);
    let start = off + HEADER_LEN;
    let end = start + h.payload_len as usize;
    let payload = batch.get(start..end)?;
    Some((Record { probe_index: h.probe_index, ts: h.ts, pid: h.pid, cpu: h.cpu, payload }, padded(end)))
}

/// The record at offset `off` whether or not it carries stacks: the record (its probe index
/// without [`STACKS`]), its stack trailer (empty without the bit) and the offset of the next
/// record. `None` at the end of the batch and at a malformed record or trailer.
#[inline(never)]
pub fn record_with_stacks_at(batch: &[u8], off: usize) -> Option<(Record<'_>, &[u8], usize)> {
    let (mut rec, at) = record_at(batch, off)?;
    if rec.probe_index & STACKS == 0 {
        return Some((rec, &[], at));
    }
    rec.probe_index &= !STACKS;
    let t = batch.get(at..at + TRAILER_LEN)?;
    let frames = (u16::from_le_bytes([t[0], t[1]]) as usize + u16::from_le_bytes([t[2], t[3]]) as usize) * 8;
    let end = at + TRAILER_LEN + frames;
    Some((rec, batch.get(at..end)?, end))
}

/// What is wrong with a batch that does not end where a record ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Fewer than [`HEADER_LEN`] bytes are left at `offset`.
    ShortHeader {
        /// Where the record should start.
        offset: usize,
        /// Bytes left from there.
        left: usize,
    },
    /// The record at `offset` claims more payload than the batch holds.
    ShortPayload {
        /// Where the record starts.
        offset: usize,
        /// The payload length its header claims.
        claimed: u32,
    },
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Malformed::ShortHeader { offset, left } => {
                write!(f, "batch truncated: {left} bytes left at offset {offset}, need a header")
            }
            Malformed::ShortPayload { offset, claimed } => {
                write!(f, "batch truncated: record at offset {offset} claims {claimed} payload bytes")
            }
        }
    }
}

impl std::error::Error for Malformed {}

/// Iterates the records of a batch; yields one `Err` at a malformed record, then stops.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    batch: &'a [u8],
    off: usize,
}

impl<'a> Records<'a> {
    /// Starts at the first record of `batch`.
    pub fn new(batch: &'a [u8]) -> Self {
        Records { batch, off: 0 }
    }

    /// Starts at the record at offset `off` (a multiple of [`ALIGN`]).
    pub fn at(batch: &'a [u8], off: usize) -> Self {
        Records { batch, off }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, Malformed>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let (batch, off) = (self.batch, self.off);
        if off >= batch.len() {
            return None;
        }
        if let Some((rec, _, next)) = record_with_stacks_at(batch, off) {
            self.off = next;
            return Some(Ok(rec));
        }
        self.off = batch.len();
        let left = batch.len() - off;
        Some(Err(match batch.get(off..off + HEADER_LEN) {
            Some(h) => {
                Malformed::ShortPayload { offset: off, claimed: Header::decode(h.try_into().unwrap()).payload_len }
            }
            None => Malformed::ShortHeader { offset: off, left },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record as the WIT describes it, byte by byte (independent of [`Header::encode`]).
    fn record(out: &mut Vec<u8>, probe: u32, ts: u64, pid: i32, cpu: u32, payload: &[u8]) {
        out.extend_from_slice(&probe.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&ts.to_le_bytes());
        out.extend_from_slice(&pid.to_le_bytes());
        out.extend_from_slice(&cpu.to_le_bytes());
        out.extend_from_slice(payload);
        while !out.len().is_multiple_of(8) {
            out.push(0);
        }
    }

    #[test]
    fn header_encodes_as_the_wit_says_and_decodes_back() {
        let h = Header { probe_index: 1, payload_len: 3, ts: 1000, pid: -42, cpu: 3 };
        let mut wit = Vec::new();
        record(&mut wit, 1, 1000, -42, 3, &[9, 9, 9]);
        assert_eq!(h.encode(), wit[..HEADER_LEN]);
        assert_eq!(Header::decode(&h.encode()), h);
        assert_eq!(&wit[PAYLOAD_LEN_AT..PAYLOAD_LEN_AT + 4], &3u32.to_le_bytes());
        assert_eq!((padded(0), padded(1), padded(8), padded(27)), (0, 8, 8, 32));
    }

    #[test]
    fn walks_padded_records() {
        let mut b = Vec::new();
        record(&mut b, 1, 100, 42, 3, &[1, 2, 3]);
        record(&mut b, 0, 200, -1, 0, &[9; 16]);
        assert_eq!(b.len(), 32 + 40);
        let recs: Vec<_> = Records::new(&b).collect::<Result<_, _>>().unwrap();
        assert_eq!(recs[0], Record { probe_index: 1, ts: 100, pid: 42, cpu: 3, payload: &[1, 2, 3] });
        assert_eq!((recs[1].pid, recs[1].payload.len()), (-1, 16));
        assert_eq!(recs.len(), 2);
        let (rec, next) = record_at(&b, 0).unwrap();
        assert_eq!((rec.probe_index, next), (1, 32));
        assert_eq!(record_at(&b, 32).unwrap().1, 72);
        assert!(record_at(&b, 72).is_none());
        assert_eq!(Records::at(&b, 32).count(), 1);
    }

    #[test]
    fn a_record_with_stacks_carries_its_trailer_and_the_next_follows_it() {
        let mut b = Vec::new();
        record(&mut b, 2 | STACKS, 100, 42, 1, &[1, 2, 3]);
        StackTrailer::encode(&mut b, KSTACK | USTACK, &[0xffff_ffff_8100_0000, 0xffff_ffff_8100_0010], &[0x401000]);
        assert_eq!(b.len(), 32 + 8 + 24);
        record(&mut b, 0, 200, 7, 0, &[9; 8]);
        let recs: Vec<_> = Records::new(&b).collect::<Result<_, _>>().unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!((recs[0].probe_index, recs[0].payload), (2, &[1u8, 2, 3][..]));
        // The fast step leaves the bit on (no probe has such an index) and stops at the trailer.
        assert_eq!(record_at(&b, 0).map(|(r, next)| (r.probe_index, next)), Some((2 | STACKS, 32)));
        let (rec, stacks, next) = record_with_stacks_at(&b, 0).unwrap();
        assert_eq!((rec.probe_index, stacks.len(), next), (2, 32, 64));
        let t = StackTrailer::parse(stacks).unwrap();
        assert_eq!(t.flags, KSTACK | USTACK);
        assert_eq!(
            (frame_at(t.kernel, 0), frame_at(t.kernel, 1), frame_at(t.kernel, 2)),
            (Some(0xffff_ffff_8100_0000), Some(0xffff_ffff_8100_0010), None)
        );
        assert_eq!(frame_at(t.user, 0), Some(0x401000));
        assert_eq!((recs[1].probe_index, recs[1].pid), (0, 7));
        assert_eq!(record_with_stacks_at(&b, 64).map(|(r, s, n)| (r.pid, s.len(), n)), Some((7, 0, 96)));
        assert!(StackTrailer::parse(&[]).is_none());
        // A trailer cut short ends the walk as a malformed record does.
        assert!(record_with_stacks_at(&b[..60], 0).is_none());
    }

    #[test]
    fn a_truncated_batch_is_an_error_not_a_panic() {
        let mut b = Vec::new();
        record(&mut b, 0, 1, 1, 0, &[0; 8]);
        record(&mut b, 0, 1, 1, 0, &[0; 8]);
        let cut = &b[..b.len() - 4];
        let all: Vec<_> = Records::new(cut).collect();
        assert_eq!(all.len(), 2);
        let e = all[1].unwrap_err();
        assert_eq!(e, Malformed::ShortPayload { offset: 32, claimed: 8 });
        assert_eq!(e.to_string(), "batch truncated: record at offset 32 claims 8 payload bytes");
        let e = Records::new(&b[..10]).next().unwrap().unwrap_err();
        assert_eq!(e.to_string(), "batch truncated: 10 bytes left at offset 0, need a header");
        assert!(record_at(cut, 32).is_none());
    }
}
