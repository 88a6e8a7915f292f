//! `events/header_page` and `events/header_event`: the kernel's self-description of its
//! ring-buffer sub-buffer ("page") header and of the compressed event header.
//!
//! `header_page` is four `field:` lines in the format-file syntax:
//! `u64 timestamp` at 0, `local_t commit` at 8 (its size is the kernel's `long` size),
//! `int overwrite` (a legacy alias of commit's low byte) and `char data` whose offset is the
//! header size and whose size is the data bytes of one sub-buffer (so sub-buffer size =
//! data offset + data size; 16 + 4080 = 4096 on a 64-bit kernel with 4 KiB sub-buffers).
//!
//! `header_event` describes `struct ring_buffer_event`: `type_len : 5 bits`,
//! `time_delta : 27 bits`, `array : 32 bits`, then the reserved type_len values
//! (`padding : type == 29`, `time_extend : type == 30`, `time_stamp : type == 31`) and
//! `data max type_len == 28`.

use crate::endian::Endian;
use crate::error::{Error, Result};
use crate::format::parse_field_line;

/// The sub-buffer header layout from `events/header_page`, plus the byte order of the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageHeader {
    /// Offset of the u64 page timestamp (0).
    pub timestamp_offset: usize,
    /// Size of the page timestamp (8).
    pub timestamp_size: usize,
    /// Offset of the commit word (8).
    pub commit_offset: usize,
    /// Size of the commit word: the kernel's `long` size, 4 or 8.
    pub commit_size: usize,
    /// Offset of the first event: the header size (16 on 64-bit kernels).
    pub data_offset: usize,
    /// Data bytes of one sub-buffer (sub-buffer size minus header).
    pub data_size: usize,
    /// Byte order of the kernel that wrote the pages.
    pub endian: Endian,
}

impl PageHeader {
    /// Bytes of event data a sub-buffer says it holds (its commit, without the flags), if
    /// `page` is long enough to have a header.
    pub fn commit_len(&self, page: &[u8]) -> Option<usize> {
        let commit = self.endian.read_uint(page, self.commit_offset, self.commit_size)?;
        Some((commit as u32 & crate::subbuf::COMMIT_MASK) as usize)
    }

    /// Parses the text of `events/header_page`; the byte order is not in the text, so the caller
    /// names it ([`Endian::native`] for a live kernel). Allocates nothing.
    pub fn parse(text: &str, endian: Endian) -> Result<Self> {
        let (mut ts, mut commit, mut data) = (None, None, None);
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let f = parse_field_line(line).ok_or_else(|| Error::HeaderPage(format!("cannot parse line {line:?}")))?;
            match f.name {
                "timestamp" => ts = Some((f.offset, f.size)),
                "commit" => commit = Some((f.offset, f.size)),
                "data" => data = Some((f.offset, f.size)),
                _ => {}
            }
        }
        let (timestamp_offset, timestamp_size) = ts.ok_or_else(|| Error::HeaderPage("no timestamp field".into()))?;
        let (commit_offset, commit_size) = commit.ok_or_else(|| Error::HeaderPage("no commit field".into()))?;
        let (data_offset, data_size) = data.ok_or_else(|| Error::HeaderPage("no data field".into()))?;
        let hdr =
            PageHeader { timestamp_offset, timestamp_size, commit_offset, commit_size, data_offset, data_size, endian };
        hdr.validate()?;
        Ok(hdr)
    }

    /// The standard layout for a kernel with the given `long` size (4 or 8), byte order and
    /// sub-buffer size; what `header_page` says on every kernel since 2.6.31.
    pub fn standard(long_size: usize, endian: Endian, subbuf_size: usize) -> Result<Self> {
        let hdr = PageHeader {
            timestamp_offset: 0,
            timestamp_size: 8,
            commit_offset: 8,
            commit_size: long_size,
            data_offset: 8 + long_size,
            data_size: subbuf_size.saturating_sub(8 + long_size),
            endian,
        };
        hdr.validate()?;
        Ok(hdr)
    }

    fn validate(&self) -> Result<()> {
        if self.timestamp_size != 8 {
            return Err(Error::HeaderPage(format!("timestamp size {} (expected 8)", self.timestamp_size)));
        }
        if self.commit_size != 4 && self.commit_size != 8 {
            return Err(Error::HeaderPage(format!("commit size {} (expected 4 or 8)", self.commit_size)));
        }
        if self.timestamp_offset + 8 > self.data_offset || self.commit_offset + self.commit_size > self.data_offset {
            return Err(Error::HeaderPage("data overlaps the header fields".into()));
        }
        if self.data_size == 0 {
            return Err(Error::HeaderPage("data size 0".into()));
        }
        Ok(())
    }

    /// The kernel's `long` size in bytes (the commit word's size).
    pub fn long_size(&self) -> usize {
        self.commit_size
    }

    /// Total bytes of one sub-buffer: header plus data (4096 by default).
    pub fn subbuf_size(&self) -> usize {
        self.data_offset + self.data_size
    }

    /// The same layout for another sub-buffer size (instances may use `buffer_subbuf_size_kb`).
    pub fn with_subbuf_size(&self, subbuf_size: usize) -> Result<Self> {
        let hdr = PageHeader { data_size: subbuf_size.saturating_sub(self.data_offset), ..*self };
        hdr.validate()?;
        Ok(hdr)
    }
}

/// The compressed event header description from `events/header_event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventHeader {
    /// Bits of `type_len` (5).
    pub type_len_bits: u32,
    /// Bits of `time_delta` (27).
    pub time_delta_bits: u32,
    /// Bits of `array[0]` (32).
    pub array_bits: u32,
    /// type_len value of padding / discarded events (29).
    pub padding: u32,
    /// type_len value of a time extend (30).
    pub time_extend: u32,
    /// type_len value of an absolute time stamp (31).
    pub time_stamp: u32,
    /// Largest type_len that encodes a data length (28).
    pub data_max_type_len: u32,
}

impl Default for EventHeader {
    fn default() -> Self {
        EventHeader {
            type_len_bits: 5,
            time_delta_bits: 27,
            array_bits: 32,
            padding: 29,
            time_extend: 30,
            time_stamp: 31,
            data_max_type_len: 28,
        }
    }
}

impl EventHeader {
    /// Parses the text of `events/header_event`; values not mentioned keep their defaults.
    /// Errors if the layout is not the 5/27-bit split that [`crate::SubBuffer`] decodes.
    pub fn parse(text: &str) -> Result<Self> {
        let mut h = EventHeader::default();
        let num = |s: &str, line: &str| -> Result<u32> {
            let digits: String = s.chars().filter(|c| c.is_ascii_digit()).collect();
            digits.parse().map_err(|_| Error::HeaderEvent(format!("no number in {line:?}")))
        };
        for line in text.lines() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            if let Some(rest) = l.strip_prefix("data max type_len") {
                h.data_max_type_len = num(rest, l)?;
                continue;
            }
            let Some((name, value)) = l.split_once(':') else {
                return Err(Error::HeaderEvent(format!("cannot parse line {l:?}")));
            };
            let (name, value) = (name.trim(), value.trim());
            if let Some(bits) = value.strip_suffix("bits") {
                let bits = num(bits, l)?;
                match name {
                    "type_len" => h.type_len_bits = bits,
                    "time_delta" => h.time_delta_bits = bits,
                    "array" => h.array_bits = bits,
                    _ => {}
                }
            } else if let Some(v) = value.strip_prefix("type ==") {
                let v = num(v, l)?;
                match name {
                    "padding" => h.padding = v,
                    "time_extend" => h.time_extend = v,
                    "time_stamp" => h.time_stamp = v,
                    _ => {}
                }
            }
        }
        if h.type_len_bits != 5 || h.time_delta_bits != 27 || h.array_bits != 32 {
            return Err(Error::HeaderEvent(format!(
                "unsupported layout type_len:{} time_delta:{} array:{}",
                h.type_len_bits, h.time_delta_bits, h.array_bits
            )));
        }
        let max = (1 << h.type_len_bits) - 1;
        if [h.padding, h.time_extend, h.time_stamp, h.data_max_type_len].iter().any(|&v| v > max)
            || h.data_max_type_len >= h.padding.min(h.time_extend).min(h.time_stamp)
        {
            return Err(Error::HeaderEvent("inconsistent type values".into()));
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `events/header_page` captured from Linux 6.18 x86_64 (`cat /sys/kernel/tracing/events/header_page`).
    pub(crate) const HEADER_PAGE_6_18: &str = "\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n\
\tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;\n\
\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n\
\tfield: char data;\toffset:16;\tsize:4080;\tsigned:0;\n";

    /// `events/header_event` captured from the same kernel.
    const HEADER_EVENT_6_18: &str = "# compressed entry header\n\
\ttype_len    :    5 bits\n\
\ttime_delta  :   27 bits\n\
\tarray       :   32 bits\n\
\n\
\tpadding     : type == 29\n\
\ttime_extend : type == 30\n\
\ttime_stamp : type == 31\n\
\tdata max type_len  == 28\n";

    #[test]
    fn parses_captured_header_page() {
        let h = PageHeader::parse(HEADER_PAGE_6_18, Endian::Little).unwrap();
        assert_eq!(h.long_size(), 8);
        assert_eq!(h.data_offset, 16);
        assert_eq!(h.data_size, 4080);
        assert_eq!(h.subbuf_size(), 4096);
        assert_eq!(h, PageHeader::standard(8, Endian::Little, 4096).unwrap());
        assert_eq!(h.with_subbuf_size(8192).unwrap().data_size, 8176);
    }

    #[test]
    fn parses_32bit_header_page() {
        let text = "\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n\
\tfield: local_t commit;\toffset:8;\tsize:4;\tsigned:1;\n\
\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n\
\tfield: char data;\toffset:12;\tsize:4084;\tsigned:1;\n";
        let h = PageHeader::parse(text, Endian::Big).unwrap();
        assert_eq!((h.long_size(), h.data_offset, h.subbuf_size()), (4, 12, 4096));
    }

    #[test]
    fn rejects_bad_header_page() {
        assert!(PageHeader::parse("", Endian::Little).is_err());
        assert!(PageHeader::parse("garbage", Endian::Little).is_err());
        let no_data = HEADER_PAGE_6_18.lines().take(3).collect::<Vec<_>>().join("\n");
        assert!(PageHeader::parse(&no_data, Endian::Little).is_err());
        let bad_commit = HEADER_PAGE_6_18.replace("size:8;\tsigned:1", "size:3;\tsigned:1");
        assert!(PageHeader::parse(&bad_commit, Endian::Little).is_err());
    }

    #[test]
    fn the_live_header_page_parses() {
        let t = testkit::require!(root, tracefs).tracefs();
        // Read with one large buffer: this kernel's header_page returns EOF after a short
        // first read (std::fs::read_to_string probes with 32 bytes and gets a cut file).
        use std::io::Read;
        let mut f = std::fs::File::open(t.path().join("events/header_page")).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let n = f.read(&mut buf).unwrap();
        let h = PageHeader::parse(std::str::from_utf8(&buf[..n]).unwrap(), Endian::native()).unwrap();
        assert!(h.subbuf_size() >= 4096);
    }

    #[test]
    fn parses_captured_header_event() {
        let h = EventHeader::parse(HEADER_EVENT_6_18).unwrap();
        assert_eq!(h, EventHeader::default());
        assert!(EventHeader::parse(&HEADER_EVENT_6_18.replace("5 bits", "6 bits")).is_err());
        assert!(EventHeader::parse("type_len : x bits").is_err());
        assert!(EventHeader::parse(&HEADER_EVENT_6_18.replace("== 28", "== 30")).is_err());
    }

    #[test]
    fn commit_len_drops_the_flags() {
        let h = PageHeader::standard(8, Endian::Little, 4096).unwrap();
        let mut page = vec![0u8; 4096];
        page[8..16].copy_from_slice(&((1u64 << 31) | (1 << 30) | 4000).to_le_bytes());
        assert_eq!(h.commit_len(&page), Some(4000));
        assert_eq!(h.commit_len(&page[..12]), None);
    }
}
