//! How a field's bytes are read: the WIT `field-kind`, numbered in its declaration order.

/// How a field's bytes are to be read. The discriminants are the WIT enum's case indices
/// (`wit/wasmprobe.wit`, `enum field-kind`), which the component model passes as a u8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FieldKind {
    /// An integer of 1, 2, 4 or 8 bytes; `signed` says how to extend it.
    Integer = 0,
    /// A fixed-size array of non-char elements (`unsigned long args[6]`).
    Array = 1,
    /// A fixed-size char array holding a NUL-terminated string (`char comm[16]`).
    CharArray = 2,
    /// `__data_loc char[]`: a u32 locating a NUL-terminated string in the payload.
    DataLocString = 3,
    /// `__data_loc T[]`: a u32 locating an array in the payload.
    DataLocArray = 4,
    /// `__rel_loc char[]`: like `DataLocString`, the offset counted from the field's end.
    RelLocString = 5,
    /// `__rel_loc T[]`: like `DataLocArray`, the offset counted from the field's end.
    RelLocArray = 6,
    /// Anything else.
    Other = 7,
}

impl FieldKind {
    /// Every kind, in WIT order (`ALL[k as usize] == k`).
    pub const ALL: [FieldKind; 8] = [
        FieldKind::Integer,
        FieldKind::Array,
        FieldKind::CharArray,
        FieldKind::DataLocString,
        FieldKind::DataLocArray,
        FieldKind::RelLocString,
        FieldKind::RelLocArray,
        FieldKind::Other,
    ];

    /// The kind of WIT case index `index`, if there is one.
    pub const fn from_index(index: u8) -> Option<FieldKind> {
        if (index as usize) < Self::ALL.len() {
            Some(Self::ALL[index as usize])
        } else {
            None
        }
    }

    /// Whether the field is a u32 locator (`__data_loc` / `__rel_loc`) of data elsewhere in
    /// the payload: low 16 bits the offset, high 16 bits the length.
    pub const fn is_located(self) -> bool {
        matches!(
            self,
            FieldKind::DataLocString | FieldKind::DataLocArray | FieldKind::RelLocString | FieldKind::RelLocArray
        )
    }

    /// Whether a locator's offset counts from the end of the field (`__rel_loc`) rather than
    /// from the start of the payload.
    pub const fn is_relative(self) -> bool {
        matches!(self, FieldKind::RelLocString | FieldKind::RelLocArray)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_is_the_wit_declaration_order() {
        for (i, k) in FieldKind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
            assert_eq!(FieldKind::from_index(i as u8), Some(*k));
        }
        assert_eq!(FieldKind::from_index(8), None);
        // The WIT names, in order, as the file declares them.
        let wit = include_str!("../../wit/wasmprobe.wit");
        let body = wit.split("enum field-kind {").nth(1).unwrap().split('}').next().unwrap();
        let cases: Vec<&str> = body
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("//"))
            .map(|l| l.trim_end_matches(','))
            .collect();
        let ours: Vec<String> = FieldKind::ALL.iter().map(|k| kebab(&format!("{k:?}"))).collect();
        assert_eq!(cases, ours);
    }

    fn kebab(camel: &str) -> String {
        let mut out = String::new();
        for (i, c) in camel.chars().enumerate() {
            if c.is_uppercase() && i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        }
        out
    }

    #[test]
    fn located_and_relative() {
        assert!(FieldKind::DataLocString.is_located() && !FieldKind::DataLocString.is_relative());
        assert!(FieldKind::RelLocArray.is_located() && FieldKind::RelLocArray.is_relative());
        assert!(!FieldKind::CharArray.is_located() && !FieldKind::Integer.is_located());
    }
}
