//! Byte tests eight bytes at a time in a `u64` ("SIMD within a register"), for the line
//! readers' fast paths (kallsyms names, C strings). Written out because the alternatives cost
//! more on these short runs: core's `memchr` is a call with setup per token, and explicit
//! SIMD would take `unsafe`, which this crate forbids.

/// A byte's worth of ones in each byte of a word.
pub(crate) const ONES: u64 = 0x0101_0101_0101_0101;
/// The high bit of each byte of a word.
pub(crate) const HIGHS: u64 = ONES * 0x80;

/// The 8 bytes of `b` at `p` as a little-endian word (the first byte lowest).
#[inline(always)]
pub(crate) fn word(b: &[u8], p: usize) -> u64 {
    u64::from_le_bytes(b[p..p + 8].try_into().expect("8 bytes"))
}

/// The high bit set in the bytes of `x` below `c` (`c` at most 0x80): exact for the lowest
/// such byte, which is what the callers take (`trailing_zeros() / 8`); a borrow may also mark
/// bytes above it.
#[inline(always)]
pub(crate) fn below(x: u64, c: u8) -> u64 {
    x.wrapping_sub(ONES * u64::from(c)) & !x & HIGHS
}
