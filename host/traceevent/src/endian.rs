//! Byte order of the traced kernel and bounds-checked integer reads over `&[u8]`.
//!
//! The ring buffer, the format files' field values and trace.dat are all in the byte order of
//! the machine that produced them, which need not be ours; every read names its byte order.

/// Byte order of trace data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endian {
    /// Least significant byte first (x86, arm64, riscv).
    Little,
    /// Most significant byte first (s390x, some ppc/mips).
    Big,
}

impl Endian {
    /// Byte order of the machine this code runs on; no cost.
    pub const fn native() -> Self {
        if cfg!(target_endian = "big") {
            Endian::Big
        } else {
            Endian::Little
        }
    }

    /// Reads `N` bytes at `off`, `None` if out of bounds.
    #[inline(always)]
    fn bytes<const N: usize>(data: &[u8], off: usize) -> Option<[u8; N]> {
        let end = off.checked_add(N)?;
        let s = data.get(off..end)?;
        s.try_into().ok()
    }

    /// Reads a u16 at `off`, `None` if out of bounds.
    #[inline(always)]
    pub fn read_u16(self, data: &[u8], off: usize) -> Option<u16> {
        let b = Self::bytes::<2>(data, off)?;
        Some(match self {
            Endian::Little => u16::from_le_bytes(b),
            Endian::Big => u16::from_be_bytes(b),
        })
    }

    /// Reads a u32 at `off`, `None` if out of bounds.
    #[inline(always)]
    pub fn read_u32(self, data: &[u8], off: usize) -> Option<u32> {
        let b = Self::bytes::<4>(data, off)?;
        Some(match self {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        })
    }

    /// Reads a u64 at `off`, `None` if out of bounds.
    #[inline(always)]
    pub fn read_u64(self, data: &[u8], off: usize) -> Option<u64> {
        let b = Self::bytes::<8>(data, off)?;
        Some(match self {
            Endian::Little => u64::from_le_bytes(b),
            Endian::Big => u64::from_be_bytes(b),
        })
    }

    /// Reads an unsigned integer of `size` 1, 2, 4 or 8 bytes at `off`, zero-extended;
    /// `None` if out of bounds or another size.
    #[inline(always)]
    pub fn read_uint(self, data: &[u8], off: usize, size: usize) -> Option<u64> {
        match size {
            1 => data.get(off).map(|&b| u64::from(b)),
            2 => self.read_u16(data, off).map(u64::from),
            4 => self.read_u32(data, off).map(u64::from),
            8 => self.read_u64(data, off),
            _ => None,
        }
    }

    /// Reads a signed integer of `size` 1, 2, 4 or 8 bytes at `off`, sign-extended.
    #[inline(always)]
    pub fn read_int(self, data: &[u8], off: usize, size: usize) -> Option<i64> {
        let v = self.read_uint(data, off, size)?;
        Some(sign_extend(v, size))
    }

    /// The bytes of `v` in this byte order (for writing trace data).
    #[inline]
    pub fn u16_bytes(self, v: u16) -> [u8; 2] {
        match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        }
    }

    /// The bytes of `v` in this byte order (for writing trace data).
    #[inline]
    pub fn u32_bytes(self, v: u32) -> [u8; 4] {
        match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        }
    }

    /// The bytes of `v` in this byte order (for writing trace data).
    #[inline]
    pub fn u64_bytes(self, v: u64) -> [u8; 8] {
        match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        }
    }
}

/// Sign-extends the low `size` bytes of `v` to 64 bits.
#[inline(always)]
pub(crate) fn sign_extend(v: u64, size: usize) -> i64 {
    if size >= 8 || size == 0 {
        return v as i64;
    }
    let shift = 64 - 8 * size as u32;
    ((v << shift) as i64) >> shift
}

/// Keeps the low `size` bytes of `v`.
#[inline(always)]
pub(crate) fn truncate(v: u64, size: usize) -> u64 {
    if size >= 8 {
        v
    } else {
        v & ((1u64 << (8 * size as u32)) - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_orders_and_rejects_out_of_bounds() {
        let b = [1u8, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(Endian::Little.read_u32(&b, 0), Some(0x0403_0201));
        assert_eq!(Endian::Big.read_u32(&b, 0), Some(0x0102_0304));
        assert_eq!(Endian::Big.read_u64(&b, 0), Some(0x0102_0304_0506_0708));
        assert_eq!(Endian::Little.read_u16(&b, 7), None);
        assert_eq!(Endian::Little.read_u64(&b, usize::MAX), None);
        assert_eq!(Endian::Little.read_uint(&b, 0, 3), None);
        assert_eq!(Endian::Little.read_int(&[0xff, 0xff], 0, 2), Some(-1));
        assert_eq!(sign_extend(0x80, 1), -128);
        assert_eq!(truncate(0x1_2345_6789, 4), 0x2345_6789);
        for e in [Endian::Little, Endian::Big] {
            assert_eq!(e.read_u16(&e.u16_bytes(0x1234), 0), Some(0x1234));
            assert_eq!(e.read_u32(&e.u32_bytes(0x1234_5678), 0), Some(0x1234_5678));
            assert_eq!(e.read_u64(&e.u64_bytes(0x1234_5678_9abc), 0), Some(0x1234_5678_9abc));
        }
        assert_eq!(Endian::Big.u32_bytes(1), [0, 0, 0, 1]);
    }
}
