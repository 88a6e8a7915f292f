//! Short text appended over and over: the literals of a print fmt, the cached pieces of a
//! report line.

/// Text kept in a fixed array of `N` bytes when it fits, so that appending it is one fixed-size
/// copy and a cut rather than a `memcpy` call; longer text is kept and appended as it is.
#[derive(Debug, Clone)]
pub struct ShortText<const N: usize> {
    short: [u8; N],
    len: usize,
    long: Vec<u8>,
}

impl<const N: usize> Default for ShortText<N> {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl<const N: usize> ShortText<N> {
    /// No text.
    pub const EMPTY: Self = ShortText { short: [0; N], len: 0, long: Vec::new() };

    /// `text`, kept.
    pub fn new(text: &[u8]) -> Self {
        let mut t = Self::EMPTY;
        t.set(text);
        t
    }

    /// Replaces the text with `text`.
    pub fn set(&mut self, text: &[u8]) {
        self.len = text.len();
        if self.fits() {
            self.short[..text.len()].copy_from_slice(text);
            self.long.clear();
        } else {
            self.long = text.to_vec();
        }
    }

    /// Bytes of text.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no text.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the text is kept in the fixed array.
    pub fn fits(&self) -> bool {
        self.len <= N
    }

    /// Appends the text to `out`.
    #[inline]
    pub fn append_to(&self, out: &mut Vec<u8>) {
        if self.fits() {
            let end = out.len() + self.len;
            out.extend_from_slice(&self.short);
            out.truncate(end);
        } else {
            out.extend_from_slice(&self.long);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ShortText;

    #[test]
    fn short_and_long_text_append_exactly() {
        let mut out = b"<".to_vec();
        ShortText::<4>::new(b", ").append_to(&mut out);
        ShortText::<4>::new(b"longer").append_to(&mut out);
        ShortText::<4>::EMPTY.append_to(&mut out);
        let mut t = ShortText::<4>::new(b"longer");
        t.set(b"ab");
        t.append_to(&mut out);
        assert_eq!(out, b"<, longerab");
        assert!(t.fits() && !ShortText::<4>::new(b"12345").fits());
    }
}
