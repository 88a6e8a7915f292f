//! The output sink both dialects print into: a `Vec<u8>` that always holds UTF-8.
//!
//! Appending to a `Vec<u8>` needs no validation where a `String` would check every piece;
//! everything appended is UTF-8 by construction (literals, numbers, and record bytes through
//! [`push_text`], which replaces what is not UTF-8), so the text can be handed on as `str`
//! without a check that could fail.

/// Widths and precisions beyond this are cut to it: the kernel formats into a page-sized
/// `trace_seq`, and no field is wider than that.
pub(crate) const MAX_PAD: usize = 4096;

/// Appending `&str` to the byte sink.
pub(crate) trait PushStr {
    /// Appends `s`.
    fn push_str(&mut self, s: &str);
}

impl PushStr for Vec<u8> {
    #[inline]
    fn push_str(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }
}

/// Appends record bytes as text: as they are when they are UTF-8, else with each invalid
/// sequence replaced by U+FFFD (as `String::from_utf8_lossy` does).
#[inline]
pub(crate) fn push_text(out: &mut Vec<u8>, b: &[u8]) {
    // Comms and paths are ASCII nearly always: checked a word at a time.
    if b.is_ascii() {
        out.extend_from_slice(b);
        return;
    }
    match core::str::from_utf8(b) {
        Ok(_) => out.extend_from_slice(b),
        Err(_) => out.push_str(&String::from_utf8_lossy(b)),
    }
}

/// The bytes of a C string: up to the first NUL, or all of them.
#[inline]
pub(crate) fn c_str(b: &[u8]) -> &[u8] {
    // Eight bytes a step, inline: comms are 16-byte arrays and paths a few words, where a
    // byte loop was a quarter of printing a path and core's memchr (through
    // `CStr::from_bytes_until_nul`) still a tenth, most of it its call and setup.
    let mut at = 0;
    while at + 8 <= b.len() {
        // The lowest marked byte is the first zero byte.
        let zero = crate::swar::below(crate::swar::word(b, at), 1);
        if zero != 0 {
            return &b[..at + (zero.trailing_zeros() / 8) as usize];
        }
        at += 8;
    }
    match b[at..].iter().position(|&c| c == 0) {
        Some(n) => &b[..at + n],
        None => b,
    }
}

/// A printable ASCII character (C's `isprint` in the C locale).
#[inline]
pub(crate) fn is_print(c: u8) -> bool {
    (0x20..0x7f).contains(&c)
}

const SPACES: &[u8; 64] = b"                                                                ";
const ZEROS: &[u8; 64] = b"0000000000000000000000000000000000000000000000000000000000000000";

/// Appends `n` spaces.
#[inline]
pub(crate) fn spaces(out: &mut Vec<u8>, n: usize) {
    repeat(out, SPACES, n);
}

/// Appends `n` zeros.
#[inline]
pub(crate) fn zeros(out: &mut Vec<u8>, n: usize) {
    repeat(out, ZEROS, n);
}

/// Appends `n` copies of the one byte `run` is made of, a run at a time.
fn repeat(out: &mut Vec<u8>, run: &[u8], mut n: usize) {
    while n > 0 {
        let k = n.min(run.len());
        out.extend_from_slice(&run[..k]);
        n -= k;
    }
}

/// Cuts the text written since `start` to `max_chars` characters (if given) and pads it with
/// spaces to `width` characters, on the right when `left`, else on the left (moving it).
pub(crate) fn pad_since(out: &mut Vec<u8>, start: usize, left: bool, width: usize, max_chars: Option<usize>) {
    let is_char_start = |b: &u8| (*b as i8) >= -0x40;
    if let Some(max) = max_chars {
        if let Some((cut, _)) = out[start..].iter().enumerate().filter(|(_, b)| is_char_start(b)).nth(max) {
            out.truncate(start + cut);
        }
    }
    let len = out[start..].iter().filter(|b| is_char_start(b)).count();
    if len >= width {
        return;
    }
    let pad = width - len;
    if left {
        spaces(out, pad);
    } else {
        spaces(out, pad);
        out[start..].rotate_right(pad);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_counts_characters_not_bytes() {
        let mut out = b"<".to_vec();
        out.extend_from_slice("h\u{e9}llo".as_bytes());
        pad_since(&mut out, 1, false, 8, Some(3));
        assert_eq!(String::from_utf8(out).unwrap(), "<     h\u{e9}l");
        let mut out = b"ab".to_vec();
        pad_since(&mut out, 0, true, 70, None);
        assert_eq!(out.len(), 70);
        assert!(out.starts_with(b"ab ") && out.ends_with(b" "));
        let mut out = Vec::new();
        push_text(&mut out, b"a\xffb");
        assert_eq!(String::from_utf8(out).unwrap(), "a\u{fffd}b");
        assert_eq!(c_str(b"ab\0cd"), b"ab");
        let mut out = Vec::new();
        zeros(&mut out, 70);
        spaces(&mut out, 1);
        assert_eq!(out.len(), 71);
    }

    #[test]
    fn c_str_stops_at_the_first_nul_wherever_it_is() {
        for len in 0..40 {
            let full: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            assert_eq!(c_str(&full), &full[..], "no NUL in {len} bytes");
            for nul in 0..len {
                let mut b = full.clone();
                b[nul] = 0;
                // Bytes of 0x01 and 0x80 around the NUL must not confuse the word test.
                if nul + 1 < len {
                    b[nul + 1] = 0x01;
                }
                if nul > 0 {
                    b[nul - 1] = 0x80;
                }
                assert_eq!(c_str(&b), &b[..nul], "NUL at {nul} of {len}");
            }
        }
    }
}
