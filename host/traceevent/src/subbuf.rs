//! Ring-buffer sub-buffers ("pages") as read from `per_cpu/cpuN/trace_pipe_raw`, the mmapped
//! ring buffer, or a trace.dat flyrecord, decoded into records that borrow the page.
//!
//! Layout (`struct buffer_data_page`): u64 `time_stamp` at 0; `commit` (a kernel `long`) at 8,
//! whose low 27 bits are the bytes of event data and whose bit 31 says events were lost before
//! this page and bit 30 that their count (a `long`) is stored right after the data, at
//! `data + commit`; events from offset 8 + long, 4-byte aligned.
//!
//! Every event starts with a u32 holding `type_len:5` and `time_delta:27` (little-endian:
//! type_len in the low bits; big-endian: in the high bits), then `array[]`:
//! - type_len 1..=28: data, payload of `type_len * 4` bytes right after the header word;
//! - 0: data, `array[0]` = payload length + 4, payload from `array[1]`;
//! - 29 PADDING: `time_delta == 0` is the end-of-page filler; otherwise a discarded event of
//!   `4 + array[0]` bytes;
//! - 30 TIME_EXTEND: adds `(array[0] << 27) + time_delta` to the running timestamp;
//! - 31 TIME_STAMP: an absolute timestamp `(array[0] << 27) | time_delta` that replaces the low
//!   59 bits of the running timestamp.
//!
//! Data events add their `time_delta` to the running timestamp, which starts at the page's
//! `time_stamp`. A lost-events count is attached to the first *data* record of the page, even
//! when the page starts with a time extend or stamp (libtraceevent's kbuffer loses it then).

use crate::endian::Endian;
use crate::error::{Error, Result};
use crate::header::{EventHeader, PageHeader};

const MISSED_EVENTS: u32 = 1 << 31;
const MISSED_STORED: u32 = 1 << 30;
pub(crate) const COMMIT_MASK: u32 = (1 << 27) - 1;
const TS_MSB: u64 = 0xf8 << 56;

/// Events lost before a sub-buffer, as the kernel reports them in the commit flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissedEvents {
    /// Nothing was lost (or this is not the first record of its page).
    #[default]
    None,
    /// Events were lost but the kernel did not store how many.
    Unknown,
    /// This many events were lost.
    Count(u64),
}

/// One data record of a sub-buffer; borrows the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Timestamp in trace-clock units.
    pub ts: u64,
    /// The payload: the event's common fields and its own fields.
    pub data: &'a [u8],
    /// Offset of the record's event header in the sub-buffer.
    pub offset: usize,
    /// Offset of the payload in the sub-buffer.
    pub payload_offset: usize,
    /// Events lost before this page; set on the page's first data record only.
    pub missed_events: MissedEvents,
    /// Byte order of the payload (that of the page).
    pub endian: Endian,
}

impl Record<'_> {
    /// Bytes of event header plus payload (a preceding time extend is not counted).
    pub fn record_size(&self) -> usize {
        self.payload_offset - self.offset + self.data.len()
    }

    /// The event id: `common_type`, in the trace's byte order; `None` for a payload too short
    /// to hold it. No allocation.
    #[inline]
    pub fn common_type(&self) -> Option<u16> {
        common_type(self.data, self.endian)
    }

    /// The pid that wrote the record: `common_pid`, in the trace's byte order; `None` for a
    /// payload too short to hold it. No allocation.
    #[inline]
    pub fn common_pid(&self) -> Option<i32> {
        common_pid(self.data, self.endian)
    }
}

/// Where `common_type` (a u16) and `common_pid` (an int) sit in every record payload: the
/// kernel's `struct trace_entry`, which every event's fields follow.
const COMMON_TYPE_OFFSET: usize = 0;
const COMMON_PID_OFFSET: usize = 4;

/// `common_type` of a record payload in byte order `endian` (what [`Record::common_type`]
/// answers, for payloads held without their [`Record`]).
#[inline]
pub fn common_type(payload: &[u8], endian: Endian) -> Option<u16> {
    endian.read_u16(payload, COMMON_TYPE_OFFSET)
}

/// `common_pid` of a record payload in byte order `endian` (what [`Record::common_pid`]
/// answers, for payloads held without their [`Record`]).
#[inline]
pub fn common_pid(payload: &[u8], endian: Endian) -> Option<i32> {
    endian.read_u32(payload, COMMON_PID_OFFSET).map(|v| v as i32)
}

#[derive(Debug, Clone, Copy)]
struct Kinds {
    max_data: u32,
    padding: u32,
    extend: u32,
    stamp: u32,
}

impl From<&EventHeader> for Kinds {
    fn from(h: &EventHeader) -> Self {
        Kinds { max_data: h.data_max_type_len, padding: h.padding, extend: h.time_extend, stamp: h.time_stamp }
    }
}

/// A validated sub-buffer: header read, commit checked against the page length.
#[derive(Debug, Clone, Copy)]
pub struct SubBuffer<'a> {
    page: &'a [u8],
    endian: Endian,
    timestamp: u64,
    data_start: usize,
    data_end: usize,
    missed: MissedEvents,
    kinds: Kinds,
}

impl<'a> SubBuffer<'a> {
    /// Reads the header of `page` (one whole sub-buffer, or at least header + commit bytes)
    /// with the standard event header. No allocation; errors if the commit does not fit.
    pub fn new(page: &'a [u8], header: &PageHeader) -> Result<Self> {
        Self::with_event_header(page, header, &EventHeader::default())
    }

    /// Like [`SubBuffer::new`] with the type values of a parsed `header_event`.
    pub fn with_event_header(page: &'a [u8], header: &PageHeader, event_header: &EventHeader) -> Result<Self> {
        let endian = header.endian;
        let long = header.commit_size;
        let truncated = |what, offset, need| Error::Truncated { what, offset, need, len: page.len() };
        if page.len() < header.data_offset {
            return Err(truncated("sub-buffer header", 0, header.data_offset));
        }
        let timestamp = endian
            .read_u64(page, header.timestamp_offset)
            .ok_or_else(|| truncated("page timestamp", header.timestamp_offset, 8))?;
        let commit = endian
            .read_uint(page, header.commit_offset, long)
            .ok_or_else(|| truncated("commit", header.commit_offset, long))?;
        let flags = commit as u32;
        let size = (flags & COMMIT_MASK) as usize;
        let available = page.len() - header.data_offset;
        if size > available {
            return Err(Error::CommitOverflow { commit: size, available });
        }
        let data_end = header.data_offset + size;
        let missed = if flags & MISSED_EVENTS == 0 {
            MissedEvents::None
        } else if flags & MISSED_STORED != 0 {
            let n = endian
                .read_uint(page, data_end, long)
                .ok_or_else(|| truncated("missed events count", data_end, long))?;
            MissedEvents::Count(n)
        } else {
            MissedEvents::Unknown
        };
        Ok(SubBuffer {
            page,
            endian,
            timestamp,
            data_start: header.data_offset,
            data_end,
            missed,
            kinds: event_header.into(),
        })
    }

    /// The page's base timestamp.
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }

    /// Bytes of event data (the commit without its flags).
    pub fn data_len(&self) -> usize {
        self.data_end - self.data_start
    }

    /// True if the page holds no event data.
    pub fn is_empty(&self) -> bool {
        self.data_end == self.data_start
    }

    /// Events lost before this page, from the commit flags.
    pub fn missed_events(&self) -> MissedEvents {
        self.missed
    }

    /// Byte order of the page.
    pub fn endian(&self) -> Endian {
        self.endian
    }

    /// The whole page this sub-buffer reads.
    pub fn bytes(&self) -> &'a [u8] {
        self.page
    }

    /// Iterates over the data records; allocation-free. After an `Err` the iterator ends.
    pub fn records(&self) -> Records<'a> {
        Records {
            page: self.page,
            endian: self.endian,
            pos: self.data_start,
            end: self.data_end,
            ts: self.timestamp,
            missed: self.missed,
            kinds: self.kinds,
        }
    }
}

impl<'a> IntoIterator for &SubBuffer<'a> {
    type Item = Result<Record<'a>>;
    type IntoIter = Records<'a>;
    fn into_iter(self) -> Records<'a> {
        self.records()
    }
}

/// Iterator over the data records of a [`SubBuffer`].
#[derive(Debug, Clone)]
pub struct Records<'a> {
    page: &'a [u8],
    endian: Endian,
    pos: usize,
    end: usize,
    ts: u64,
    missed: MissedEvents,
    kinds: Kinds,
}

impl<'a> Records<'a> {
    /// Offset in the sub-buffer of the next event header to decode.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The running timestamp (that of the last record returned, or the page base).
    pub fn timestamp(&self) -> u64 {
        self.ts
    }

    #[inline(always)]
    fn word(&self, off: usize, what: &'static str) -> Result<u32> {
        if off + 4 > self.end {
            return Err(Error::Truncated { what, offset: off, need: 4, len: self.end });
        }
        // In bounds: end <= page.len() was checked in SubBuffer::new.
        self.endian.read_u32(self.page, off).ok_or(Error::Truncated {
            what,
            offset: off,
            need: 4,
            len: self.page.len(),
        })
    }

    #[inline(always)]
    fn step(&mut self) -> Result<Option<Record<'a>>> {
        loop {
            let off = self.pos;
            if off >= self.end {
                return Ok(None);
            }
            let w = self.word(off, "event header")?;
            let (type_len, delta) = match self.endian {
                Endian::Little => (w & 31, w >> 5),
                Endian::Big => (w >> 27, w & COMMIT_MASK),
            };
            let (payload_offset, len) = if type_len == 0 {
                let a = self.word(off + 4, "event length")? as usize;
                if a < 4 {
                    return Err(Error::BadEvent { offset: off, reason: "type_len 0 with array[0] < 4" });
                }
                (off + 8, a - 4)
            } else if type_len <= self.kinds.max_data {
                (off + 4, type_len as usize * 4)
            } else if type_len == self.kinds.extend {
                let a = self.word(off + 4, "time extend")?;
                self.ts = self.ts.wrapping_add((u64::from(a) << 27) + u64::from(delta));
                self.pos = off + 8;
                continue;
            } else if type_len == self.kinds.stamp {
                let a = self.word(off + 4, "time stamp")?;
                let abs = (u64::from(a) << 27) | u64::from(delta);
                self.ts = (self.ts & TS_MSB) | abs;
                self.pos = off + 8;
                continue;
            } else if type_len == self.kinds.padding {
                if delta == 0 {
                    // End-of-page filler: nothing follows.
                    self.pos = self.end;
                    return Ok(None);
                }
                let a = self.word(off + 4, "discarded event length")? as usize;
                let next = off + 4 + a;
                if next > self.end {
                    return Err(Error::BadEvent { offset: off, reason: "discarded event runs past the commit" });
                }
                self.pos = next;
                continue;
            } else {
                return Err(Error::BadEvent { offset: off, reason: "unknown type_len" });
            };
            let payload_end = payload_offset + len;
            if payload_end > self.end {
                return Err(Error::Truncated {
                    what: "event payload",
                    offset: payload_offset,
                    need: len,
                    len: self.end,
                });
            }
            self.pos = (payload_end + 3) & !3;
            self.ts = self.ts.wrapping_add(u64::from(delta));
            return Ok(Some(Record {
                ts: self.ts,
                data: &self.page[payload_offset..payload_end],
                offset: off,
                payload_offset,
                missed_events: core::mem::take(&mut self.missed),
                endian: self.endian,
            }));
        }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self.step() {
            Ok(Some(r)) => Some(Ok(r)),
            Ok(None) => None,
            Err(e) => {
                self.pos = self.end;
                Some(Err(e))
            }
        }
    }
}

impl core::iter::FusedIterator for Records<'_> {}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds sub-buffers for tests in any byte order and long size.
    pub(crate) struct PageBuilder {
        endian: Endian,
        long: usize,
        buf: Vec<u8>,
    }

    impl PageBuilder {
        pub(crate) fn new(endian: Endian, long: usize, ts: u64) -> Self {
            let mut b = PageBuilder { endian, long, buf: Vec::new() };
            b.put(ts, 8);
            b.put(0, long);
            b
        }
        fn put(&mut self, v: u64, size: usize) {
            let bytes = v.to_le_bytes();
            match self.endian {
                Endian::Little => self.buf.extend_from_slice(&bytes[..size]),
                Endian::Big => self.buf.extend(bytes[..size].iter().rev()),
            }
        }
        fn head(&mut self, type_len: u32, delta: u32) {
            let w = match self.endian {
                Endian::Little => type_len | (delta << 5),
                Endian::Big => (type_len << 27) | delta,
            };
            self.put(w.into(), 4);
        }
        pub(crate) fn small(&mut self, delta: u32, payload: &[u8]) -> &mut Self {
            assert!(payload.len().is_multiple_of(4) && payload.len() <= 112 && !payload.is_empty());
            self.head(payload.len() as u32 / 4, delta);
            self.buf.extend_from_slice(payload);
            self
        }
        pub(crate) fn big(&mut self, delta: u32, payload: &[u8]) -> &mut Self {
            self.head(0, delta);
            self.put(payload.len() as u64 + 4, 4);
            self.buf.extend_from_slice(payload);
            while !self.buf.len().is_multiple_of(4) {
                self.buf.push(0);
            }
            self
        }
        pub(crate) fn extend(&mut self, delta: u64) -> &mut Self {
            self.head(30, (delta & u64::from(COMMIT_MASK)) as u32);
            self.put(delta >> 27, 4);
            self
        }
        pub(crate) fn stamp(&mut self, abs: u64) -> &mut Self {
            self.head(31, (abs & u64::from(COMMIT_MASK)) as u32);
            self.put(abs >> 27, 4);
            self
        }
        pub(crate) fn discarded(&mut self, total: usize) -> &mut Self {
            self.head(29, 1);
            self.put(total as u64 - 4, 4);
            self.buf.resize(self.buf.len() + total - 8, 0xee);
            self
        }
        /// Finishes: writes the commit (with flags and an optional stored count) and pads.
        pub(crate) fn finish(&mut self, missed: MissedEvents, subbuf: usize) -> Vec<u8> {
            let hdr = 8 + self.long;
            let size = (self.buf.len() - hdr) as u64;
            let commit = match missed {
                MissedEvents::None => size,
                MissedEvents::Unknown => size | u64::from(MISSED_EVENTS),
                MissedEvents::Count(n) => {
                    self.put(n, self.long);
                    size | u64::from(MISSED_EVENTS | MISSED_STORED)
                }
            };
            let mut out = std::mem::take(&mut self.buf);
            let mut c = PageBuilder { endian: self.endian, long: self.long, buf: Vec::new() };
            c.put(commit, self.long);
            out[8..hdr].copy_from_slice(&c.buf);
            assert!(out.len() <= subbuf);
            out.resize(subbuf, 0);
            out
        }
    }

    /// The §3.9 vector of the anchor study, byte for byte (LE, long 8).
    fn vector_3_9() -> Vec<u8> {
        let mut p = vec![0u8; 4096];
        p[0..8].copy_from_slice(&1000u64.to_le_bytes());
        let commit: u64 = 180 | 1 << 31 | 1 << 30;
        p[8..16].copy_from_slice(&commit.to_le_bytes());
        p[16 + 180..16 + 188].copy_from_slice(&42u64.to_le_bytes());
        let mut at = 16;
        let mut put = |bytes: &[u8], payload: usize, fill: u8| {
            p[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
            for b in &mut p[at..at + payload] {
                *b = fill;
            }
            at += payload;
        };
        put(&[0xa2, 0, 0, 0], 8, 1); // 16: type_len 2, delta 5
        put(&[0x7e, 0, 0, 0, 1, 0, 0, 0], 0, 0); // 28: TIME_EXTEND (1<<27)+3
        put(&[0x01, 0, 0, 0], 4, 2); // 36: type_len 1, delta 0
        put(&[0xe0, 0, 0, 0, 0x78, 0, 0, 0], 116, 3); // 44: type_len 0, delta 7, len 120
        put(&[0x3d, 0, 0, 0, 8, 0, 0, 0], 4, 0xee); // 168: PADDING delta 1, len 8
        put(&[0x1f, 0xcf, 0x8a, 0x46, 2, 0, 0, 0], 0, 0); // 180: TIME_STAMP 0x12345678
        put(&[0x21, 0x01, 0, 0], 4, 4); // 188: type_len 1, delta 9
        p
    }

    fn collect<'a>(page: &'a [u8], hdr: &PageHeader) -> Vec<Record<'a>> {
        let sb = SubBuffer::new(page, hdr).unwrap();
        sb.records().collect::<Result<Vec<_>>>().unwrap()
    }

    #[test]
    fn decodes_anchor_vector() {
        let page = vector_3_9();
        let hdr = PageHeader::standard(8, Endian::Little, 4096).unwrap();
        let sb = SubBuffer::new(&page, &hdr).unwrap();
        assert_eq!(sb.timestamp(), 1000);
        assert_eq!(sb.data_len(), 180);
        assert_eq!(sb.missed_events(), MissedEvents::Count(42));
        let r = collect(&page, &hdr);
        assert_eq!(r.len(), 4);
        assert_eq!((r[0].ts, r[0].payload_offset, r[0].data.len(), r[0].record_size()), (1005, 20, 8, 12));
        assert_eq!(r[0].missed_events, MissedEvents::Count(42));
        assert_eq!(r[0].data, &[1; 8]);
        assert_eq!((r[1].ts, r[1].payload_offset, r[1].data.len(), r[1].record_size()), (134218736, 40, 4, 8));
        assert_eq!(r[1].missed_events, MissedEvents::None);
        assert_eq!((r[2].ts, r[2].payload_offset, r[2].data.len(), r[2].record_size()), (134218743, 52, 116, 124));
        assert_eq!((r[3].ts, r[3].payload_offset, r[3].offset), (305419905, 192, 188));
        assert_eq!(r[3].data, &[4; 4]);
    }

    #[test]
    fn missed_events_attach_to_first_data_record_after_extend() {
        // Second page of §3.9: ts 5000, commit 16|1<<31, TIME_EXTEND delta 3, type_len-1 record.
        let mut p = vec![0u8; 4096];
        p[0..8].copy_from_slice(&5000u64.to_le_bytes());
        p[8..16].copy_from_slice(&(16u64 | 1 << 31).to_le_bytes());
        p[16..24].copy_from_slice(&[0x7e, 0, 0, 0, 0, 0, 0, 0]);
        p[24..28].copy_from_slice(&[0x01, 0, 0, 0]);
        let hdr = PageHeader::standard(8, Endian::Little, 4096).unwrap();
        let r = collect(&p, &hdr);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].ts, 5003);
        // kbuffer reports 0 here; we keep the page's "unknown count".
        assert_eq!(r[0].missed_events, MissedEvents::Unknown);
        // The same page with an absolute stamp first.
        let mut b = PageBuilder::new(Endian::Little, 8, 0);
        b.stamp(777).small(1, &[9; 4]);
        let page = b.finish(MissedEvents::Count(5), 4096);
        let r = collect(&page, &hdr);
        assert_eq!((r[0].ts, r[0].missed_events), (778, MissedEvents::Count(5)));
    }

    #[test]
    fn all_orders_long_sizes_and_subbuf_sizes() {
        for endian in [Endian::Little, Endian::Big] {
            for long in [4, 8] {
                for subbuf in [4096, 8192, 65536] {
                    let hdr = PageHeader::standard(long, endian, subbuf).unwrap();
                    let mut b = PageBuilder::new(endian, long, 1 << 40);
                    b.small(5, &[1; 8])
                        .extend((1 << 27) + 3)
                        .small(0, &[2; 4])
                        .big(7, &[3; 116])
                        .discarded(12)
                        .stamp(0x1234_5678)
                        .small(9, &[4; 4]);
                    let big_payload = vec![5u8; subbuf - 400];
                    b.big(1, &big_payload);
                    let page = b.finish(MissedEvents::Count(42), subbuf);
                    let r = collect(&page, &hdr);
                    let ts: Vec<u64> = r.iter().map(|r| r.ts).collect();
                    let base = 1u64 << 40;
                    assert_eq!(
                        ts,
                        [base + 5, base + 5 + (1 << 27) + 3, base + 15 + (1 << 27), 0x1234_5678 + 9, 0x1234_5678 + 10]
                    );
                    let lens: Vec<usize> = r.iter().map(|r| r.data.len()).collect();
                    assert_eq!(lens, [8, 4, 116, 4, subbuf - 400]);
                    assert_eq!(r[0].missed_events, MissedEvents::Count(42));
                    assert_eq!(r[4].data[0], 5);
                }
            }
        }
    }

    #[test]
    fn big_endian_header_word() {
        let mut b = PageBuilder::new(Endian::Big, 8, 0);
        b.small(5, &[0; 8]);
        let page = b.finish(MissedEvents::None, 4096);
        assert_eq!(&page[16..20], &[0x10, 0, 0, 5]);
    }

    #[test]
    fn common_type_and_pid_follow_the_page_byte_order() {
        // common_type 372, flags, preempt_count, common_pid 4242.
        for endian in [Endian::Little, Endian::Big] {
            let mut payload = endian.u16_bytes(372).to_vec();
            payload.extend_from_slice(&[1, 2]);
            payload.extend_from_slice(&endian.u32_bytes(4242));
            let mut b = PageBuilder::new(endian, 8, 0);
            b.small(1, &payload).small(1, &[0; 4]);
            let page = b.finish(MissedEvents::None, 4096);
            let r = collect(&page, &PageHeader::standard(8, endian, 4096).unwrap());
            assert_eq!((r[0].endian, r[0].common_type(), r[0].common_pid()), (endian, Some(372), Some(4242)));
            // A payload too short for the pid says so instead of reading past it.
            assert_eq!((r[1].common_type(), r[1].common_pid()), (Some(0), None));
        }
    }

    #[test]
    fn missed_without_count_and_end_filler() {
        let hdr = PageHeader::standard(8, Endian::Little, 4096).unwrap();
        let mut b = PageBuilder::new(Endian::Little, 8, 10);
        b.small(1, &[1; 4]);
        // End-of-page filler (PADDING, delta 0) inside the commit stops decoding.
        b.buf.extend_from_slice(&[29, 0, 0, 0, 0, 0, 0, 0]);
        b.small(1, &[2; 4]);
        let page = b.finish(MissedEvents::Unknown, 4096);
        let r = collect(&page, &hdr);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].missed_events, MissedEvents::Unknown);
    }

    #[test]
    fn empty_page() {
        let hdr = PageHeader::standard(8, Endian::Little, 4096).unwrap();
        let page = vec![0u8; 4096];
        let sb = SubBuffer::new(&page, &hdr).unwrap();
        assert!(sb.is_empty());
        assert_eq!(sb.records().count(), 0);
    }

    #[test]
    fn malformed_pages_are_errors_not_panics() {
        let hdr = PageHeader::standard(8, Endian::Little, 4096).unwrap();
        // Shorter than the header.
        assert!(SubBuffer::new(&[0u8; 10], &hdr).is_err());
        // Commit larger than the page.
        let mut p = vec![0u8; 64];
        p[8..16].copy_from_slice(&100u64.to_le_bytes());
        assert!(matches!(SubBuffer::new(&p, &hdr), Err(Error::CommitOverflow { commit: 100, .. })));
        // Missed count stored past the end.
        p[8..16].copy_from_slice(&(48u64 | 3 << 30).to_le_bytes());
        assert!(SubBuffer::new(&p, &hdr).is_err());
        let expect_err = |page: &[u8]| {
            let sb = SubBuffer::new(page, &hdr).unwrap();
            let items: Vec<_> = sb.records().collect();
            assert!(items.last().unwrap().is_err(), "{items:?}");
            assert_eq!(items.iter().filter(|r| r.is_err()).count(), 1);
        };
        // Truncated small event: type_len 4 (16 bytes) in a 12-byte commit.
        let mut p = vec![0u8; 64];
        p[8..16].copy_from_slice(&12u64.to_le_bytes());
        p[16] = 4;
        expect_err(&p);
        // Header word cut by the commit.
        p[8..16].copy_from_slice(&2u64.to_le_bytes());
        expect_err(&p);
        // type_len 0 with zero length.
        p[8..16].copy_from_slice(&16u64.to_le_bytes());
        p[16..24].copy_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        expect_err(&p);
        // type_len 0 with a length beyond the commit.
        p[16..24].copy_from_slice(&[0, 0, 0, 0, 0xff, 0, 0, 0]);
        expect_err(&p);
        // Time extend cut short.
        p[8..16].copy_from_slice(&4u64.to_le_bytes());
        p[16..20].copy_from_slice(&[30, 0, 0, 0]);
        expect_err(&p);
        // Discarded event longer than the commit.
        p[8..16].copy_from_slice(&16u64.to_le_bytes());
        p[16..24].copy_from_slice(&[0x3d, 0, 0, 0, 0x40, 0, 0, 0]);
        expect_err(&p);
    }

    #[test]
    fn every_byte_pattern_in_a_small_page_is_safe() {
        // Cheap exhaustive-ish fuzz: random commits and bytes never panic.
        let hdr = PageHeader::standard(8, Endian::Little, 256).unwrap();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut p = [0u8; 256];
            for b in p.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            p[8..16].copy_from_slice(&(((x >> 8) % 260) | ((x & 3) << 30)).to_le_bytes());
            for endian in [Endian::Little, Endian::Big] {
                let h = PageHeader { endian, ..hdr };
                if let Ok(sb) = SubBuffer::new(&p, &h) {
                    for r in sb.records().flatten() {
                        assert!(r.payload_offset + r.data.len() <= 16 + sb.data_len());
                    }
                }
            }
        }
    }
}
