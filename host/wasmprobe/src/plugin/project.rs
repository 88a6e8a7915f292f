//! Projection: a probe whose declaration names `fields` gets only those fields delivered, packed
//! into a small payload of its own, and the layout the plugin reads describes that payload. A
//! plugin that reads two integers of a 64-byte event then copies 16 bytes per event into its
//! memory instead of 64, and walks smaller batches.
//!
//! The projected payload: the fixed-size fields first, in the order asked for, each at the
//! next offset aligned to its element size (at most 8); then the data of the `__data_loc` /
//! `__rel_loc` fields, in the same order. Every variable-size field becomes a `__data_loc`
//! locator (offset from the payload's start in the low 16 bits, length in the high 16), so
//! the plugin never sees a `__rel_loc`.

use super::layout::{FieldKind, Layout};

/// How one probe's payloads are projected. Built from its layout by [`Projection::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projection {
    /// Fixed-size fields: bytes `src..src + len` of the payload go to `dst..dst + len`.
    fixed: Vec<Copy>,
    /// Variable-size fields, in order: where their locator is read and written.
    dynamic: Vec<Dynamic>,
    /// Bytes of the fixed part (the variable data follows it).
    fixed_len: usize,
    /// The layout of the projected payload, in the order the fields were asked for.
    layout: Layout,
    /// When every field is an integer and nothing is variable-size (the common case): how to
    /// build the payload as little-endian 64-bit words, without zero-filling or copying bytes.
    words: Option<Vec<WordPart>>,
}

/// One integer field as part of an output word: `len` bytes at `src` of the payload, shifted
/// left by `shift` bits into output word `word`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WordPart {
    src: usize,
    len: u8,
    shift: u8,
    word: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Copy {
    src: usize,
    dst: usize,
    len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dynamic {
    /// Offset of the kernel's locator in the payload.
    src: usize,
    /// Whether it is a `__rel_loc` (offset counted from the end of the locator).
    relative: bool,
    /// Offset of our `__data_loc` locator in the projected payload.
    dst: usize,
}

impl Projection {
    /// The projection of `layout` onto the fields named `wanted` (format-file names, without
    /// array suffixes). Names it lacks, and names given twice, are an error that lists what
    /// it has.
    pub fn new(layout: &Layout, wanted: &[String]) -> Result<Projection, String> {
        let mut fixed = Vec::new();
        let mut dynamic = Vec::new();
        let mut fields = Vec::with_capacity(wanted.len());
        let mut at = 0usize;
        for (i, name) in wanted.iter().enumerate() {
            if wanted[..i].contains(name) {
                return Err(format!("field {name:?} is asked for twice"));
            }
            let Some(f) = layout.fields.iter().find(|f| f.name == *name) else {
                let have: Vec<&str> = layout.fields.iter().map(|f| f.name.as_str()).collect();
                return Err(format!(
                    "{}:{} has no field {name:?} (its fields: {})",
                    layout.system,
                    layout.event,
                    have.join(", ")
                ));
            };
            let variable = f.is_located();
            let align = if variable { 4 } else { f.elem_size.clamp(1, 8).next_power_of_two() as usize };
            at = at.next_multiple_of(align);
            let mut out = f.clone();
            out.offset = at as u32;
            if variable {
                dynamic.push(Dynamic {
                    src: f.offset as usize,
                    relative: matches!(f.kind, FieldKind::RelLocString | FieldKind::RelLocArray),
                    dst: at,
                });
                out.size = 4;
                out.kind = match f.kind {
                    FieldKind::RelLocString => FieldKind::DataLocString,
                    FieldKind::RelLocArray => FieldKind::DataLocArray,
                    k => k,
                };
                out.c_type = out.c_type.replacen("__rel_loc", "__data_loc", 1);
                at += 4;
            } else {
                fixed.push(Copy { src: f.offset as usize, dst: at, len: f.size as usize });
                at += f.size as usize;
            }
            fields.push(out);
        }
        let layout = Layout { system: layout.system.clone(), event: layout.event.clone(), id: layout.id, fields };
        // Naturally aligned integers of at most 8 bytes never straddle a word.
        let words = (dynamic.is_empty() && fixed.iter().all(|c| matches!(c.len, 1 | 2 | 4 | 8))).then(|| {
            fixed
                .iter()
                .map(|c| WordPart {
                    src: c.src,
                    len: c.len as u8,
                    shift: (c.dst % 8 * 8) as u8,
                    word: (c.dst / 8) as u32,
                })
                .collect()
        });
        Ok(Projection { fixed, dynamic, fixed_len: at, layout, words })
    }

    /// The layout of the projected payloads (what the plugin reads through `run.layouts`).
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Bytes of the fixed-size part: the length of every projected payload without
    /// variable-size fields.
    #[inline]
    pub fn fixed_len(&self) -> usize {
        self.fixed_len
    }

    /// Appends the projection of `payload` to `out`; returns its length. An all-integer
    /// projection is built as whole little-endian words, so what follows the returned length
    /// up to the next multiple of 8 is already zero padding. A field the payload is too short
    /// for reads as zeros, and a locator pointing outside the payload as empty data: the
    /// kernel's records never do either, a corrupt trace file may.
    #[inline]
    pub fn append(&self, payload: &[u8], out: &mut Vec<u8>) -> usize {
        let base = out.len();
        match &self.words {
            Some(parts) => {
                append_words(parts, payload, out);
                self.fixed_len
            }
            None => {
                self.append_bytes(payload, out);
                out.len() - base
            }
        }
    }

    /// The general case: the fixed part copied field by field, then the variable data.
    fn append_bytes(&self, payload: &[u8], out: &mut Vec<u8>) {
        let base = out.len();
        out.resize(base + self.fixed_len, 0);
        for c in &self.fixed {
            if let Some(src) = payload.get(c.src..c.src + c.len) {
                out[base + c.dst..base + c.dst + c.len].copy_from_slice(src);
            }
        }
        for d in &self.dynamic {
            let data = locate(payload, d.src, d.relative).unwrap_or(&[]);
            let off = out.len() - base;
            let (off, data) = if off + data.len() <= 0xffff { (off, data) } else { (off.min(0xffff), &[][..]) };
            out.extend_from_slice(data);
            let loc = ((data.len() as u32) << 16) | off as u32;
            out[base + d.dst..base + d.dst + 4].copy_from_slice(&loc.to_le_bytes());
        }
    }
}

/// [`Projection::append`] for an all-integer projection: each word put together in a register
/// and appended whole (no zero-filling first, no byte copies).
#[inline]
fn append_words(parts: &[WordPart], payload: &[u8], out: &mut Vec<u8>) {
    let (mut word, mut index) = (0u64, 0u32);
    for c in parts {
        if c.word != index {
            out.extend_from_slice(&word.to_le_bytes());
            (word, index) = (0, c.word);
        }
        let v = match c.len {
            8 => payload.get(c.src..c.src + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap())),
            4 => payload.get(c.src..c.src + 4).map(|b| u32::from_le_bytes(b.try_into().unwrap()) as u64),
            2 => payload.get(c.src..c.src + 2).map(|b| u16::from_le_bytes(b.try_into().unwrap()) as u64),
            _ => payload.get(c.src).map(|&b| b as u64),
        };
        word |= v.unwrap_or(0) << c.shift;
    }
    if !parts.is_empty() {
        out.extend_from_slice(&word.to_le_bytes());
    }
}

/// The data a `__data_loc` (or `__rel_loc`) locator at `at` points to, if it is inside `payload`.
fn locate(payload: &[u8], at: usize, relative: bool) -> Option<&[u8]> {
    let loc = u32::from_le_bytes(payload.get(at..at + 4)?.try_into().ok()?);
    let mut off = (loc & 0xffff) as usize;
    if relative {
        off += at + 4;
    }
    payload.get(off..off + (loc >> 16) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::layout::LayoutField;

    /// sys_enter_openat-like: common fields, `int __syscall_nr` at 8, `const char *filename`
    /// at 16, a `__data_loc char[] file` at 24, a `__rel_loc char[] name` at 28, `long ret`
    /// at 32, and their string data from 40.
    fn layout() -> (Layout, Vec<u8>) {
        let mut fields = Layout::common_fields();
        fields.push(LayoutField::from_format("int", "__syscall_nr", 8, 4, true));
        fields.push(LayoutField::from_format("const char *", "filename", 16, 8, false));
        fields.push(LayoutField::from_format("__data_loc char[]", "file", 24, 4, false));
        fields.push(LayoutField::from_format("__rel_loc char[]", "name", 28, 4, false));
        fields.push(LayoutField::from_format("long", "ret", 32, 8, true));
        let layout = Layout { system: "s".into(), event: "e".into(), id: 7, fields };
        let mut p = vec![0u8; 40];
        p[0..2].copy_from_slice(&7u16.to_le_bytes());
        p[4..8].copy_from_slice(&1234i32.to_le_bytes());
        p[8..12].copy_from_slice(&257i32.to_le_bytes());
        p[16..24].copy_from_slice(&0xffff_8000_1234_5678u64.to_le_bytes());
        p[24..28].copy_from_slice(&((12u32 << 16) | 40).to_le_bytes());
        // __rel_loc: counted from the end of the locator (32): data at 52.
        p[28..32].copy_from_slice(&((4u32 << 16) | 20).to_le_bytes());
        p[32..40].copy_from_slice(&(-2i64).to_le_bytes());
        p.extend_from_slice(b"/etc/passwd\0");
        p.extend_from_slice(b"abc\0");
        (layout, p)
    }

    #[test]
    fn fields_are_packed_aligned_in_the_order_asked() {
        let (layout, payload) = layout();
        let want: Vec<String> = ["common_pid", "ret", "file", "name"].map(String::from).to_vec();
        let p = Projection::new(&layout, &want).unwrap();
        let got: Vec<(&str, u32, u32, FieldKind)> =
            p.layout().fields.iter().map(|f| (f.name.as_str(), f.offset, f.size, f.kind)).collect();
        assert_eq!(
            got,
            [
                ("common_pid", 0, 4, FieldKind::Integer),
                ("ret", 8, 8, FieldKind::Integer),
                ("file", 16, 4, FieldKind::DataLocString),
                ("name", 20, 4, FieldKind::DataLocString),
            ]
        );
        assert_eq!(p.layout().fields[3].c_type, "__data_loc char[]");
        let mut out = vec![0xaa; 3];
        p.append(&payload, &mut out);
        let out = &out[3..];
        assert_eq!(&out[0..4], &1234i32.to_le_bytes());
        assert_eq!(&out[4..8], &[0; 4], "alignment padding is zero");
        assert_eq!(&out[8..16], &(-2i64).to_le_bytes());
        assert_eq!(&out[16..20], &((12u32 << 16) | 24).to_le_bytes());
        assert_eq!(&out[20..24], &((4u32 << 16) | 36).to_le_bytes());
        assert_eq!(&out[24..36], b"/etc/passwd\0");
        assert_eq!(&out[36..40], b"abc\0");
        assert_eq!(out.len(), 40);
    }

    #[test]
    fn integers_alone_are_packed_as_words_exactly_as_byte_by_byte() {
        let (layout, payload) = layout();
        let want: Vec<String> = ["common_type", "ret", "common_pid", "__syscall_nr"].map(String::from).to_vec();
        let p = Projection::new(&layout, &want).unwrap();
        assert!(p.words.is_some());
        let mut words = Vec::new();
        assert_eq!(p.append(&payload, &mut words), 24);
        let mut bytes = Vec::new();
        p.append_bytes(&payload, &mut bytes);
        assert_eq!(&words[..24], &bytes[..]);
        assert_eq!(words.len(), 24);
        assert_eq!(&words[0..2], &7u16.to_le_bytes());
        assert_eq!(&words[8..16], &(-2i64).to_le_bytes());
        assert_eq!(&words[16..20], &1234i32.to_le_bytes());
        assert_eq!(&words[20..24], &257i32.to_le_bytes());
        // Too short a payload reads as zeros either way.
        let mut short = Vec::new();
        p.append(&payload[..6], &mut short);
        assert_eq!(short, [vec![7, 0, 0, 0, 0, 0, 0, 0], vec![0; 16]].concat());
    }

    #[test]
    fn unknown_and_repeated_fields_are_refused_with_what_there_is() {
        let (layout, _) = layout();
        let err = Projection::new(&layout, &["fd".to_string()]).unwrap_err();
        assert_eq!(
            err,
            "s:e has no field \"fd\" (its fields: common_type, common_flags, common_preempt_count, common_pid, \
             __syscall_nr, filename, file, name, ret)"
        );
        let err = Projection::new(&layout, &["ret".to_string(), "ret".to_string()]).unwrap_err();
        assert_eq!(err, "field \"ret\" is asked for twice");
    }

    #[test]
    fn short_payloads_and_wild_locators_read_as_zeros_and_empty() {
        let (layout, mut payload) = layout();
        payload[24..28].copy_from_slice(&((200u32 << 16) | 40).to_le_bytes());
        let p = Projection::new(&layout, &["file".to_string(), "ret".to_string()]).unwrap();
        let mut out = Vec::new();
        p.append(&payload, &mut out);
        assert_eq!(&out[0..4], &16u32.to_le_bytes(), "empty data right after the fixed part");
        assert_eq!(out.len(), 16);
        let mut out = Vec::new();
        p.append(&payload[..20], &mut out);
        assert_eq!(out, [16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }
}
