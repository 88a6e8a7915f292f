//! One printf conversion (`%-08.3lx`): its flags, width, precision, length modifier and
//! letter, read the same way for both dialects. What each dialect then accepts and how it
//! splits a whole format string into literals and conversions is its own (the kernel's
//! `vsnprintf` and libtraceevent's `parse_args` disagree on `%c`, `%+d`, `%pI4`, ...).

/// The flag characters of a conversion.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Flags {
    /// `-`: pad on the right.
    pub(crate) left: bool,
    /// `+`: a sign on positive numbers.
    pub(crate) plus: bool,
    /// ` `: a space before positive numbers.
    pub(crate) space: bool,
    /// `#`: the alternate form (`0x` before hex, `0` before octal).
    pub(crate) alternate: bool,
    /// `0`: pad numbers with zeros.
    pub(crate) zero: bool,
}

/// A width or precision as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Count {
    /// Not given.
    Absent,
    /// A number (a precision of `.` alone is 0).
    Fixed(usize),
    /// `*`: taken from the next argument.
    Star,
}

impl Count {
    /// The number, or `None` when absent or `*`.
    pub(crate) fn fixed(self) -> Option<usize> {
        match self {
            Count::Fixed(n) => Some(n),
            _ => None,
        }
    }
}

/// The length modifier: how wide the integer argument is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Length {
    /// `hh`.
    Char,
    /// `h`.
    Short,
    /// None.
    Int,
    /// `l`, `z`, `Z`, `t`: a kernel `long`.
    Long,
    /// `ll`, `L`, `q`, `j`.
    LongLong,
}

/// A conversion from its `%` to its letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Conversion {
    pub(crate) flags: Flags,
    pub(crate) width: Count,
    pub(crate) precision: Count,
    pub(crate) length: Length,
    /// The conversion letter (`d`, `x`, `s`, `p`, ...).
    pub(crate) letter: u8,
}

impl Conversion {
    /// Reads the conversion whose `%` is at `b[at]`; returns it and the index after its
    /// letter, or `None` when the text ends before the letter.
    pub(crate) fn parse(b: &[u8], at: usize) -> Option<(Conversion, usize)> {
        let mut i = at + 1;
        let mut flags = Flags::default();
        while let Some(&c) = b.get(i) {
            match c {
                b'-' => flags.left = true,
                b'+' => flags.plus = true,
                b' ' => flags.space = true,
                b'#' => flags.alternate = true,
                b'0' => flags.zero = true,
                _ => break,
            }
            i += 1;
        }
        let width = count(b, &mut i);
        let precision = if b.get(i) == Some(&b'.') {
            i += 1;
            match count(b, &mut i) {
                Count::Absent => Count::Fixed(0),
                c => c,
            }
        } else {
            Count::Absent
        };
        let rest = &b[i.min(b.len())..];
        let (length, n) = if rest.starts_with(b"hh") {
            (Length::Char, 2)
        } else if rest.starts_with(b"ll") {
            (Length::LongLong, 2)
        } else {
            match rest.first() {
                Some(b'h') => (Length::Short, 1),
                Some(b'L' | b'q' | b'j') => (Length::LongLong, 1),
                Some(b'l' | b'z' | b'Z' | b't') => (Length::Long, 1),
                _ => (Length::Int, 0),
            }
        };
        i += n;
        let letter = *b.get(i)?;
        Some((Conversion { flags, width, precision, length, letter }, i + 1))
    }

    /// Whether the conversion takes `*` arguments before its value.
    pub(crate) fn stars(&self) -> usize {
        usize::from(self.width == Count::Star) + usize::from(self.precision == Count::Star)
    }
}

/// A width or precision at `b[*i]`: `*`, digits (a number too large for `usize` reads as 0),
/// or nothing.
fn count(b: &[u8], i: &mut usize) -> Count {
    if b.get(*i) == Some(&b'*') {
        *i += 1;
        return Count::Star;
    }
    let start = *i;
    while b.get(*i).is_some_and(u8::is_ascii_digit) {
        *i += 1;
    }
    if *i == start {
        return Count::Absent;
    }
    let digits = core::str::from_utf8(&b[start..*i]).unwrap_or("");
    Count::Fixed(digits.parse().unwrap_or(0))
}

impl Conversion {
    /// Whether to pad on the right, the width and the precision, with the values of its `*`
    /// arguments applied as printf does (a negative width pads on the right, a negative
    /// precision is none), cut to [`super::sink::MAX_PAD`].
    pub(crate) fn resolve(&self, width_arg: Option<i64>, precision_arg: Option<i64>) -> (bool, usize, Option<usize>) {
        let mut left = self.flags.left;
        let mut width = self.width.fixed().unwrap_or(0);
        let mut precision = self.precision.fixed();
        if let (Count::Star, Some(v)) = (self.width, width_arg) {
            let v = v as i32;
            left |= v < 0;
            width = v.unsigned_abs() as usize;
        }
        if let (Count::Star, Some(v)) = (self.precision, precision_arg) {
            precision = usize::try_from(v as i32).ok();
        }
        let max = super::sink::MAX_PAD;
        (left, width.min(max), precision.map(|p| p.min(max)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_flags_width_precision_length_and_letter() {
        let (c, end) = Conversion::parse(b"x%-08.3lxy", 1).unwrap();
        assert_eq!(end, 9);
        assert!(c.flags.left && c.flags.zero && !c.flags.alternate);
        assert_eq!((c.width, c.precision, c.length, c.letter), (Count::Fixed(8), Count::Fixed(3), Length::Long, b'x'));
        let (c, _) = Conversion::parse(b"%*.*hhd", 0).unwrap();
        assert_eq!((c.width, c.precision, c.length, c.stars()), (Count::Star, Count::Star, Length::Char, 2));
        let (c, _) = Conversion::parse(b"%.s", 0).unwrap();
        assert_eq!(c.precision, Count::Fixed(0));
        let (c, _) = Conversion::parse(b"%99999999999999999999999d", 0).unwrap();
        assert_eq!(c.width, Count::Fixed(0));
        assert_eq!(Conversion::parse(b"%-08l", 0), None);
        let (c, _) = Conversion::parse(b"%*.*d", 0).unwrap();
        assert_eq!(c.resolve(Some(-5), Some(-1)), (true, 5, None));
        assert_eq!(c.resolve(Some(3), Some(2)), (false, 3, Some(2)));
        let (c, _) = Conversion::parse(b"%1048576.7d", 0).unwrap();
        assert_eq!(c.resolve(None, None), (false, 4096, Some(7)));
    }
}
