//! Walking a packed batch (the format is documented in `wit/wasmprobe.wit`).

/// Bytes of a record header: probe index u32, payload length u32, ts u64, pid i32, cpu u32.
pub const HEADER_LEN: usize = 24;

/// One record of a batch: the header's fields and the raw kernel payload.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Index of the probe in the plan.
    pub probe_index: u32,
    /// Timestamp in nanoseconds.
    pub ts: u64,
    /// common_pid of the event.
    pub pid: i32,
    /// CPU the event came from.
    pub cpu: u32,
    /// The kernel's event record: common fields first, then the event's fields.
    pub payload: &'a [u8],
}

/// Iterates the records of a batch; yields `Err` (once, then stops) on a malformed batch.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    buf: &'a [u8],
    off: usize,
}

impl<'a> Records<'a> {
    /// Starts at the first record of `batch`.
    pub fn new(batch: &'a [u8]) -> Self {
        Records { buf: batch, off: 0 }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, String>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let (buf, off) = (self.buf, self.off);
        if off >= buf.len() {
            return None;
        }
        if buf.len() - off < HEADER_LEN {
            self.off = buf.len();
            return Some(Err(format!(
                "batch truncated: {} bytes left at offset {off}, need a header",
                buf.len() - off
            )));
        }
        let h: &[u8; HEADER_LEN] = buf[off..off + HEADER_LEN].try_into().unwrap();
        let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let len = u32_at(4) as usize;
        let start = off + HEADER_LEN;
        if buf.len() - start < len {
            self.off = buf.len();
            return Some(Err(format!("batch truncated: record at offset {off} claims {len} payload bytes")));
        }
        self.off = (start + len + 7) & !7;
        Some(Ok(Record {
            probe_index: u32_at(0),
            ts: u64::from_le_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]),
            pid: u32_at(16) as i32,
            cpu: u32_at(20),
            payload: &buf[start..start + len],
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn walks_padded_records() {
        let mut b = Vec::new();
        record(&mut b, 1, 100, 42, 3, &[1, 2, 3]);
        record(&mut b, 0, 200, -1, 0, &[9; 16]);
        let recs: Vec<_> = Records::new(&b).collect::<Result<_, _>>().unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!((recs[0].probe_index, recs[0].ts, recs[0].pid, recs[0].cpu), (1, 100, 42, 3));
        assert_eq!(recs[0].payload, &[1, 2, 3]);
        assert_eq!((recs[1].pid, recs[1].payload.len()), (-1, 16));
    }

    #[test]
    fn truncated_batch_is_an_error_not_a_panic() {
        let mut b = Vec::new();
        record(&mut b, 0, 1, 1, 0, &[0; 8]);
        let cut = &b[..b.len() - 4];
        let all: Vec<_> = Records::new(cut).collect();
        assert_eq!(all.len(), 1);
        assert!(all[0].is_err());
        assert!(Records::new(&b[..10]).next().unwrap().is_err());
    }
}
