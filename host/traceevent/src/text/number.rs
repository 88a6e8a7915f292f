//! Integers as printf conversions print them (`%d %u %x %X %o` with flags, width, precision
//! and length), for both dialects: the kernel's `vsnprintf` and glibc's `printf` differ in
//! four details, named by [`Style`]. No allocation: digits go through a stack buffer or
//! straight into the sink.

use super::printf::Flags;
use crate::endian::{sign_extend, truncate};

/// Whose `printf` rules to follow where the kernel and glibc differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// The kernel's `number()`: `%#x` of 0 is `0x0`, `%#o` puts `0` before the digits (and
    /// any precision zeros), a `0` flag survives a precision, `%.0d` of 0 is `0`.
    Kernel,
    /// glibc: `%#x` of 0 is `0`, `%#o` makes the first digit a `0`, a precision turns the
    /// `0` flag off, `%.0d` of 0 is empty.
    Glibc,
}

/// "00" to "99": two decimal digits per lookup.
pub(crate) const DEC_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// "00" to "ff": two hex digits per lookup.
const HEX_PAIRS: [u8; 512] = hex_pairs(b"0123456789abcdef");
/// "00" to "FF".
const HEX_PAIRS_UPPER: [u8; 512] = hex_pairs(b"0123456789ABCDEF");

const fn hex_pairs(digits: &[u8; 16]) -> [u8; 512] {
    let mut t = [0u8; 512];
    let mut i = 0;
    while i < 256 {
        t[2 * i] = digits[i >> 4];
        t[2 * i + 1] = digits[i & 15];
        i += 1;
    }
    t
}

/// The widest width [`write_plain_int`] handles.
pub(crate) const PLAIN_WIDTH: usize = 32;

/// What [`write_plain_int`] pads with: as long as the longest plain number it writes (a width
/// of at most [`PLAIN_WIDTH`], or 22 octal digits and a sign).
const PAD: [u8; PLAIN_WIDTH] = [b' '; PLAIN_WIDTH];

/// The value of integer conversion `letter` for `v` read as `size` bytes: sign and magnitude,
/// base and case.
fn split(v: u64, size: usize, letter: u8) -> (bool, u64, u32, bool) {
    let x = truncate(v, size);
    let (neg, magnitude) = if matches!(letter, b'd' | b'i') {
        let s = sign_extend(x, size);
        (s < 0, s.unsigned_abs())
    } else {
        (false, x)
    };
    let (base, upper) = match letter {
        b'x' => (16, false),
        b'X' => (16, true),
        b'o' => (8, false),
        _ => (10, false),
    };
    (neg, magnitude, base, upper)
}

/// Appends integer conversion `letter` (`d i u x X o`) of `v`, an argument of `size` bytes,
/// with `flags`, `width` and `precision`, as `style`'s printf does.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_int(
    out: &mut Vec<u8>,
    v: u64,
    size: usize,
    letter: u8,
    flags: Flags,
    width: usize,
    precision: Option<usize>,
    style: Style,
) {
    let (neg, magnitude, base, upper) = split(v, size, letter);
    let kernel = style == Style::Kernel;
    // Digits from the right end of a stack buffer.
    let mut buf = [0u8; 24];
    let mut at = buf.len();
    if kernel || !(precision == Some(0) && magnitude == 0) {
        at = digits(&mut buf, magnitude, base, upper);
    }
    let mut prefix: &[u8] = b"";
    if flags.alternate {
        match (base, kernel) {
            (8, true) if magnitude != 0 => prefix = b"0",
            (8, false) if at == buf.len() || buf[at] != b'0' => {
                at -= 1;
                buf[at] = b'0';
            }
            (16, _) if kernel || magnitude != 0 => prefix = if upper { b"0X" } else { b"0x" },
            _ => {}
        }
    }
    let digits = &buf[at..];
    let signed = matches!(letter, b'd' | b'i');
    let sign: &[u8] = if neg {
        b"-"
    } else if signed && flags.plus {
        b"+"
    } else if signed && flags.space {
        b" "
    } else {
        b""
    };
    let precision_zeros = precision.unwrap_or(0).saturating_sub(digits.len());
    let len = sign.len() + prefix.len() + precision_zeros + digits.len();
    let pad = width.saturating_sub(len);
    let zero_pad = flags.zero && !flags.left && (kernel || precision.is_none());
    if !flags.left && !zero_pad {
        super::sink::spaces(out, pad);
    }
    out.extend_from_slice(sign);
    out.extend_from_slice(prefix);
    if zero_pad {
        super::sink::zeros(out, pad);
    }
    super::sink::zeros(out, precision_zeros);
    out.extend_from_slice(digits);
    if flags.left {
        super::sink::spaces(out, pad);
    }
}

/// [`write_int`] for a conversion with no flag but `0`, no precision and a width of at most
/// [`PLAIN_WIDTH`] (where the kernel and glibc agree): the text is put together right to
/// left in the sink itself (sign, padding, digits) and cut to length.
#[inline]
pub(crate) fn write_plain_int(out: &mut Vec<u8>, v: u64, size: usize, letter: u8, zero: bool, width: usize) {
    if width == 0 && letter != b'o' {
        // No width, the commonest: no padding to lay out.
        let (neg, magnitude, base, upper) = split(v, size, letter);
        return match base {
            16 => write_hex(out, magnitude, upper),
            _ => write_dec(out, neg, magnitude),
        };
    }
    let (neg, magnitude, base, upper) = split(v, size, letter);
    let len = digit_count(magnitude, base) + usize::from(neg);
    let total = len.max(width);
    // Laid out in `out` itself: a fixed-size run of spaces (copied from read-only memory, no
    // `memcpy` call), the digits written at the right end of the first `total` bytes, the
    // rest cut off. (Building it in a stack buffer and copying that made the copy's wide loads
    // wait for the digits' byte stores: a store-forwarding stall per number.)
    let start = out.len();
    out.extend_from_slice(&PAD);
    let buf = &mut out[start..];
    let at = digits(&mut buf[..total], magnitude, base, upper);
    if zero {
        buf[..at].fill(b'0');
        if neg {
            buf[0] = b'-';
        }
    } else if neg {
        buf[at - 1] = b'-';
    }
    out.truncate(start + total);
}

/// `-` when `neg`, then `m` in decimal: the digits go into a fixed 24-byte run appended to
/// `out` (one fixed-size store, no `memcpy` call), which is then cut to length. Eight digits
/// at a time are split off as a `u32` and written in four independent pairs, so a long
/// number (timestamps, sectors) is not one chain of dependent divisions.
#[inline]
fn write_dec(out: &mut Vec<u8>, neg: bool, mut m: u64) {
    let len = m.checked_ilog10().unwrap_or(0) as usize + 1 + usize::from(neg);
    let start = out.len();
    out.extend_from_slice(&[b'-'; 24]);
    let buf: &mut [u8; 24] = (&mut out[start..start + 24]).try_into().expect("24 bytes");
    let mut at = len;
    while m >= 100_000_000 {
        let low = (m % 100_000_000) as u32;
        m /= 100_000_000;
        at -= 8;
        eight_digits(&mut buf[at..at + 8], low);
    }
    let mut m = m as u32;
    while m >= 100 {
        let pair = (m % 100) as usize * 2;
        m /= 100;
        at -= 2;
        buf[at] = DEC_PAIRS[pair];
        buf[at + 1] = DEC_PAIRS[pair + 1];
    }
    if m >= 10 {
        let pair = m as usize * 2;
        buf[at - 2] = DEC_PAIRS[pair];
        buf[at - 1] = DEC_PAIRS[pair + 1];
    } else {
        buf[at - 1] = b'0' + m as u8;
    }
    out.truncate(start + len);
}

/// `v` (below 10^8) as exactly eight decimal digits.
#[inline]
fn eight_digits(buf: &mut [u8], v: u32) {
    let (hi, lo) = (v / 10_000, v % 10_000);
    for (at, pair) in [(0, hi / 100), (2, hi % 100), (4, lo / 100), (6, lo % 100)] {
        let pair = pair as usize * 2;
        buf[at] = DEC_PAIRS[pair];
        buf[at + 1] = DEC_PAIRS[pair + 1];
    }
}

/// `m` in hex: as [`write_dec`], two digits a lookup.
#[inline]
fn write_hex(out: &mut Vec<u8>, mut m: u64, upper: bool) {
    let pairs = if upper { &HEX_PAIRS_UPPER } else { &HEX_PAIRS };
    let len = (64 - (m | 1).leading_zeros()).div_ceil(4) as usize;
    let start = out.len();
    out.extend_from_slice(&[b'0'; 16]);
    let buf: &mut [u8; 16] = (&mut out[start..start + 16]).try_into().expect("16 bytes");
    let mut at = len;
    while at >= 2 {
        let pair = (m & 0xff) as usize * 2;
        at -= 2;
        buf[at] = pairs[pair];
        buf[at + 1] = pairs[pair + 1];
        m >>= 8;
    }
    if at == 1 {
        buf[0] = pairs[(m & 0xf) as usize * 2 + 1];
    }
    out.truncate(start + len);
}

/// `%llx`: `v` in lower-case hex, no prefix (what `core::fmt`'s `{:x}` prints, without it).
#[inline]
pub(crate) fn hex(out: &mut Vec<u8>, v: u64) {
    write_plain_int(out, v, 8, b'x', false, 0);
}

/// `0x%llx`.
#[inline]
pub(crate) fn hex_0x(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(b"0x");
    hex(out, v);
}

/// `%0*llx`: `v` in lower-case hex, zero-padded to `width` (at most [`PLAIN_WIDTH`]).
#[inline]
pub(crate) fn hex_zero(out: &mut Vec<u8>, v: u64, width: usize) {
    write_plain_int(out, v, 8, b'x', true, width.min(PLAIN_WIDTH));
}

/// `%lld`.
#[inline]
pub(crate) fn dec_i64(out: &mut Vec<u8>, v: i64) {
    write_plain_int(out, v as u64, 8, b'd', false, 0);
}

/// `%llu`.
#[inline]
pub(crate) fn dec_u64(out: &mut Vec<u8>, v: u64) {
    write_plain_int(out, v, 8, b'u', false, 0);
}

/// Writes `m` in `base` (10, 16 or 8) at the right end of `buf`; returns where the digits
/// start.
pub(crate) fn digits(buf: &mut [u8], mut m: u64, base: u32, upper: bool) -> usize {
    let mut at = buf.len();
    match base {
        16 => {
            // Two digits a lookup, as decimal does.
            let pairs = if upper { &HEX_PAIRS_UPPER } else { &HEX_PAIRS };
            let n = (64 - (m | 1).leading_zeros()).div_ceil(4) as usize;
            let end = at - n;
            while at >= end + 2 {
                let pair = (m & 0xff) as usize * 2;
                at -= 2;
                buf[at..at + 2].copy_from_slice(&pairs[pair..pair + 2]);
                m >>= 8;
            }
            if at > end {
                at -= 1;
                buf[at] = pairs[(m & 0xf) as usize * 2 + 1];
            }
        }
        8 => loop {
            at -= 1;
            buf[at] = b'0' + (m & 7) as u8;
            m >>= 3;
            if m == 0 {
                break;
            }
        },
        _ => {
            // Two digits at a time.
            while m >= 100 {
                let pair = (m % 100) as usize * 2;
                m /= 100;
                at -= 2;
                buf[at..at + 2].copy_from_slice(&DEC_PAIRS[pair..pair + 2]);
            }
            if m >= 10 {
                let pair = m as usize * 2;
                at -= 2;
                buf[at..at + 2].copy_from_slice(&DEC_PAIRS[pair..pair + 2]);
            } else {
                at -= 1;
                buf[at] = b'0' + m as u8;
            }
        }
    }
    at
}

/// How many digits [`digits`] writes for `m`.
fn digit_count(m: u64, base: u32) -> usize {
    let bits = 64 - (m | 1).leading_zeros();
    (match base {
        16 => bits.div_ceil(4),
        8 => bits.div_ceil(3),
        _ => m.checked_ilog10().unwrap_or(0) + 1,
    }) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::printf::Conversion;

    fn int(spec: &str, v: u64, style: Style) -> String {
        let (c, _) = Conversion::parse(spec.as_bytes(), 0).unwrap();
        let size = match c.length {
            crate::text::printf::Length::Char => 1,
            crate::text::printf::Length::Short => 2,
            crate::text::printf::Length::Int => 4,
            _ => 8,
        };
        let (_, width, precision) = c.resolve(None, None);
        let mut out = b"<".to_vec();
        write_int(&mut out, v, size, c.letter, c.flags, width, precision, style);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn kernel_and_glibc_differ_where_documented() {
        for (spec, v, kernel, glibc) in [
            ("%#x", 0, "<0x0", "<0"),
            ("%#x", 255, "<0xff", "<0xff"),
            ("%#.5o", 8, "<000010", "<00010"),
            ("%#o", 0, "<0", "<0"),
            ("%08.3d", 5, "<00000005", "<     005"),
            ("%.0d", 0, "<0", "<"),
            ("%+5d", 7, "<   +7", "<   +7"),
            ("%-6X|", 0xab, "<AB    ", "<AB    "),
            ("% d", 1 << 31, "<-2147483648", "<-2147483648"),
        ] {
            assert_eq!(int(spec, v, Style::Kernel), kernel, "kernel {spec} {v}");
            assert_eq!(int(spec, v, Style::Glibc), glibc, "glibc {spec} {v}");
        }
    }

    #[test]
    fn shorthands_print_as_core_fmt_does() {
        for v in [0u64, 1, 9, 10, 0xff, 0x1234, 0xffff_ffff_8100_0000, u64::MAX, 1 << 63] {
            let mut o = b"<".to_vec();
            hex(&mut o, v);
            assert_eq!(String::from_utf8(o).unwrap(), format!("<{v:x}"));
            let mut o = b"<".to_vec();
            hex_0x(&mut o, v);
            assert_eq!(String::from_utf8(o).unwrap(), format!("<0x{v:x}"));
            let mut o = b"<".to_vec();
            hex_zero(&mut o, v, 8);
            assert_eq!(String::from_utf8(o).unwrap(), format!("<{v:08x}"));
            let mut o = b"<".to_vec();
            dec_i64(&mut o, v as i64);
            assert_eq!(String::from_utf8(o).unwrap(), format!("<{}", v as i64));
            let mut o = b"<".to_vec();
            dec_u64(&mut o, v);
            assert_eq!(String::from_utf8(o).unwrap(), format!("<{v}"));
        }
    }

    #[test]
    fn decimals_of_every_length_print_as_core_fmt_does() {
        // Each power of ten, one below it and a value with every digit distinct, at every
        // length, so that each split into eight-digit parts is crossed.
        let mut values = vec![0u64, u64::MAX, i64::MAX as u64, i64::MIN as u64];
        for k in 0..20 {
            let p = 10u64.pow(k);
            values.extend([p, p - 1, p + 1, 1_234_567_890_123_456_789 % p.saturating_mul(10)]);
        }
        for v in values {
            let mut o = b"<".to_vec();
            dec_u64(&mut o, v);
            assert_eq!(String::from_utf8(o).unwrap(), format!("<{v}"));
            let mut o = b"<".to_vec();
            dec_i64(&mut o, v as i64);
            assert_eq!(String::from_utf8(o).unwrap(), format!("<{}", v as i64));
        }
    }

    #[test]
    fn plain_numbers_match_the_general_path() {
        for &v in &[0u64, 1, 9, 10, 15, 16, 0xabc, 0x7ffd_1234_5678, u64::MAX, 1 << 63, 0x0123_4567_89ab_cdef] {
            for letter in [b'd', b'u', b'x', b'X', b'o'] {
                for size in [1, 2, 4, 8] {
                    for (zero, width) in [(false, 0), (true, 0), (false, 16), (true, 20), (false, 32), (true, 3)] {
                        let flags = Flags { zero, ..Flags::default() };
                        let mut general = Vec::new();
                        write_int(&mut general, v, size, letter, flags, width, None, Style::Glibc);
                        let mut plain = Vec::new();
                        write_plain_int(&mut plain, v, size, letter, zero, width);
                        assert_eq!(plain, general, "{v:#x} {} size {size} zero {zero} width {width}", letter as char);
                    }
                }
            }
        }
    }
}
