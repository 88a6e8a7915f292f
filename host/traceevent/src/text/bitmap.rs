//! Bitmaps (`__get_bitmask`, `__get_cpumask`, `%*pb`, `%*pbl`) as a CPU list (`0-3,8`) or as
//! comma-separated 32-bit hex chunks, most significant first (`00000001,000000ff`).
//!
//! A kernel bitmap is an array of `unsigned long` words in the traced kernel's byte order;
//! which bytes hold bit `i` therefore depends on the word size. libtraceevent reads the whole
//! bitmap as one big number instead (its `print_bitmask_to_seq`); with a single word the two
//! agree. [`Bitmap::new`] takes the word size, so each dialect says which reading it follows.

use std::io::Write as _;

use crate::endian::Endian;

/// A bitmap's bytes with the layout that says where bit `i` is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bitmap<'a> {
    bytes: &'a [u8],
    endian: Endian,
    /// Bytes per word.
    word: usize,
}

impl<'a> Bitmap<'a> {
    /// A bitmap of `word`-byte words in byte order `endian`. A word size that does not divide
    /// the length reads bytes one by one; 0 reads the whole bitmap as one word.
    pub(crate) fn new(bytes: &'a [u8], endian: Endian, word: usize) -> Self {
        let word = match word {
            0 => bytes.len().max(1),
            w if bytes.len().is_multiple_of(w) => w,
            _ => 1,
        };
        Bitmap { bytes, endian, word }
    }

    /// Bits the bytes hold.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len() * 8
    }

    /// Whether bit `i` is set (false past the end).
    pub(crate) fn bit(&self, i: usize) -> bool {
        let w = self.word;
        let (word, in_word) = (i / (8 * w), i % (8 * w));
        let byte = match self.endian {
            Endian::Little => in_word / 8,
            Endian::Big => w - 1 - in_word / 8,
        };
        self.bytes.get(word * w + byte).is_some_and(|x| x >> (in_word % 8) & 1 == 1)
    }

    /// The set bits among the first `nbits` as ranges: `0-3,8,10-11`.
    pub(crate) fn write_list(&self, out: &mut Vec<u8>, nbits: usize) {
        let nbits = nbits.min(self.len());
        let mut first = true;
        let mut i = 0;
        while i < nbits {
            if !self.bit(i) {
                i += 1;
                continue;
            }
            let start = i;
            while i + 1 < nbits && self.bit(i + 1) {
                i += 1;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            let _ = write!(out, "{start}");
            if i > start {
                let _ = write!(out, "-{i}");
            }
            i += 1;
        }
    }

    /// The first `nbits` bits in hex, 32 bits a chunk, the most significant chunk first and
    /// only as wide as its bits need.
    pub(crate) fn write_hex(&self, out: &mut Vec<u8>, nbits: usize) {
        let nbits = nbits.min(self.len());
        if nbits == 0 {
            return;
        }
        let mut chunk = nbits % 32;
        if chunk == 0 {
            chunk = 32;
        }
        let mut low = nbits.div_ceil(32) * 32 - 32;
        loop {
            let v = (0..chunk).rev().fold(0u32, |v, k| v << 1 | u32::from(self.bit(low + k)));
            let _ = write!(out, "{:0w$x}", v, w = chunk.div_ceil(4));
            if low == 0 {
                break;
            }
            out.push(b',');
            low -= 32;
            chunk = 32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(b: &[u8], endian: Endian, word: usize) -> String {
        let mut out = Vec::new();
        Bitmap::new(b, endian, word).write_list(&mut out, b.len() * 8);
        String::from_utf8(out).unwrap()
    }

    fn hex(b: &[u8], endian: Endian, word: usize) -> String {
        let mut out = Vec::new();
        Bitmap::new(b, endian, word).write_hex(&mut out, b.len() * 8);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn lists_and_hex_in_both_readings() {
        let b = [1, 0x80, 0, 0, 0, 0, 0, 0x80];
        assert_eq!(list(&b, Endian::Little, 8), "0,15,63");
        assert_eq!(hex(&b, Endian::Little, 8), "80000000,00008001");
        assert_eq!(list(&[0xff; 8], Endian::Little, 8), "0-63");
        assert_eq!(list(&[0; 8], Endian::Little, 8), "");
        // Two big-endian 4-byte words, or one 8-byte number: the readings differ.
        let b = [0, 0, 0, 1, 0, 0, 0, 2];
        assert_eq!(list(&b, Endian::Big, 4), "0,33");
        assert_eq!(list(&b, Endian::Big, 0), "1,32");
        // Three bytes: a short top chunk.
        assert_eq!(hex(&[0xff, 0x01, 0x02], Endian::Little, 1), "0201ff");
        assert_eq!(hex(&[1, 2, 3, 4, 5], Endian::Little, 0), "05,04030201");
    }
}
