//! One field of an event format: its declaration parsed into offset, size, signedness and
//! type-derived [`FieldFlags`], the copyable [`FieldLayout`] the hot path reads with, and the
//! readers of its value.

use super::ctype::ctype_of;
use crate::endian::{sign_extend, Endian};
use crate::error::{Error, Result};

/// One `field:` line, borrowed from the text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawField<'a> {
    pub decl: &'a str,
    pub name: &'a str,
    pub offset: usize,
    pub size: usize,
    pub signed: Option<bool>,
}

/// Parses `field:<decl>; offset:N; size:N; [signed:N;]` (leading whitespace already trimmed).
pub(crate) fn parse_field_line(line: &str) -> Option<RawField<'_>> {
    let rest = line.strip_prefix("field:")?;
    let mut parts = rest.split(';');
    let decl = parts.next()?.trim();
    let (mut offset, mut size, mut signed) = (None, None, None);
    for p in parts {
        let Some((k, v)) = p.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim() {
            "offset" => offset = v.parse().ok(),
            "size" => size = v.parse().ok(),
            "signed" => signed = Some(v != "0"),
            _ => {}
        }
    }
    let base = match decl.rfind('[') {
        Some(i) if decl.ends_with(']') => decl[..i].trim_end(),
        _ => decl,
    };
    let start = base
        .char_indices()
        .rfind(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let name = &base[start..];
    if name.is_empty() {
        return None;
    }
    Some(RawField { decl, name, offset: offset?, size: size?, signed })
}

/// Properties of a field derived from its declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct FieldFlags(u16);

impl FieldFlags {
    /// A fixed-size array `name[N]` (or a flexible `name[]`).
    pub const ARRAY: Self = Self(1);
    /// A `__data_loc` reference to dynamic data.
    pub const DATA_LOC: Self = Self(2);
    /// A `__rel_loc` reference to dynamic data.
    pub const REL_LOC: Self = Self(4);
    /// Dynamic data (`__data_loc` or `__rel_loc`).
    pub const DYNAMIC: Self = Self(8);
    /// Characters: a `char` array or dynamic `char[]`.
    pub const STRING: Self = Self(16);
    /// A pointer type.
    pub const POINTER: Self = Self(32);
    /// A `long` type (size follows the kernel's long size).
    pub const LONG: Self = Self(64);
    /// A signed value (`signed:1`).
    pub const SIGNED: Self = Self(128);
    /// A flexible array `name[]` that runs to the end of the record.
    pub const FLEXIBLE: Self = Self(256);

    /// True if every flag of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of two flag sets.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

impl core::ops::BitOr for FieldFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

/// Where a field lives in a record and how to read it; `Copy`, for the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldLayout {
    /// Offset in the record payload.
    pub offset: usize,
    /// Size in the record payload (of the `__data_loc` word for dynamic fields).
    pub size: usize,
    /// Element size of an array (the size itself for scalars).
    pub elem_size: usize,
    /// Type-derived properties.
    pub flags: FieldFlags,
    /// Byte order of the data.
    pub endian: Endian,
}

impl FieldLayout {
    /// Reads the value zero-extended (sizes 1, 2, 4, 8); `None` if out of bounds or another size.
    #[inline]
    pub fn read_u64(&self, data: &[u8]) -> Option<u64> {
        self.endian.read_uint(data, self.offset, self.size)
    }

    /// Reads the value sign-extended; `None` if out of bounds or another size.
    #[inline]
    pub fn read_i64(&self, data: &[u8]) -> Option<i64> {
        self.endian.read_int(data, self.offset, self.size)
    }

    /// Reads the value extended by the field's signedness, as 64 bits.
    #[inline]
    pub fn read_value(&self, data: &[u8]) -> Option<u64> {
        let v = self.read_u64(data)?;
        Some(if self.flags.contains(FieldFlags::SIGNED) { sign_extend(v, self.size) as u64 } else { v })
    }

    /// Reads element `i` of a fixed array, extended by signedness.
    #[inline]
    pub fn read_element(&self, data: &[u8], i: usize) -> Option<u64> {
        let off = self.offset.checked_add(i.checked_mul(self.elem_size)?)?;
        if self.elem_size == 0 || off + self.elem_size > self.offset + self.size {
            return None;
        }
        let v = self.endian.read_uint(data, off, self.elem_size)?;
        Some(if self.flags.contains(FieldFlags::SIGNED) { sign_extend(v, self.elem_size) as u64 } else { v })
    }

    /// The field's bytes: the payload of a dynamic field, the rest of the record for a
    /// flexible array, else the field itself. `None` if out of bounds.
    #[inline]
    pub fn bytes<'d>(&self, data: &'d [u8]) -> Option<&'d [u8]> {
        if self.flags.contains(FieldFlags::DYNAMIC) {
            let (off, len) = if self.size == 2 {
                let off = usize::from(self.endian.read_u16(data, self.offset)?);
                (off, data.len().checked_sub(off)?)
            } else {
                let v = self.endian.read_u32(data, self.offset)?;
                let mut off = (v & 0xffff) as usize;
                if self.flags.contains(FieldFlags::REL_LOC) {
                    off += self.offset + self.size;
                }
                (off, (v >> 16) as usize)
            };
            data.get(off..off.checked_add(len)?)
        } else if self.flags.contains(FieldFlags::FLEXIBLE) {
            data.get(self.offset..)
        } else {
            data.get(self.offset..self.offset.checked_add(self.size)?)
        }
    }

    /// The field's bytes up to the first NUL (C string semantics).
    #[inline]
    pub fn str_bytes<'d>(&self, data: &'d [u8]) -> Option<&'d [u8]> {
        let b = self.bytes(data)?;
        // Found with core's word-at-a-time memchr, not a byte loop.
        Some(std::ffi::CStr::from_bytes_until_nul(b).map_or(b, |s| s.to_bytes()))
    }
}

/// The words of a declared type: `__data_loc const char[]` gives `__data_loc`, `const`,
/// `char`.
fn type_words(type_name: &str) -> impl Iterator<Item = &str> {
    type_name.split(|c: char| c.is_whitespace() || c == '*' || c == '[' || c == ']').filter(|w| !w.is_empty())
}

/// The words naming the element type: [`type_words`] without `__data_loc`, `__rel_loc` and
/// the qualifiers.
fn element_words(type_name: &str) -> impl Iterator<Item = &str> {
    type_words(type_name).filter(|w| !matches!(*w, "__data_loc" | "__rel_loc" | "const" | "volatile"))
}

/// How a field's bytes are to be copied out of a record (the plugin ABI's `field-kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldKind {
    /// An integer (or pointer) of 1, 2, 4 or 8 bytes.
    Integer,
    /// A fixed-size (or flexible) array of non-char elements.
    Array,
    /// A fixed-size char array holding a NUL-terminated string (`char comm[16]`).
    CharArray,
    /// `__data_loc char[]`: a string elsewhere in the record.
    DataLocString,
    /// `__data_loc T[]`: an array elsewhere in the record.
    DataLocArray,
    /// `__rel_loc char[]`: a string located relative to the field's end.
    RelLocString,
    /// `__rel_loc T[]`: an array located relative to the field's end.
    RelLocArray,
    /// Anything else (a struct, an odd-sized scalar).
    Other,
}

/// What [`Field::shape`] answers: enough to copy a field out of a record without this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FieldShape {
    /// How the bytes are laid out.
    pub kind: FieldKind,
    /// Size of one element: of the array element, 1 for strings, the field's size otherwise.
    pub elem_size: usize,
    /// `Some(n)` for `name[n]`, `Some(0)` for a flexible `name[]`, `None` otherwise.
    pub array_len: Option<usize>,
}

/// One field of an event format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Field name, e.g. `prev_comm`.
    pub name: String,
    /// Declared type without the name and fixed-array suffix, e.g. `char`,
    /// `__data_loc char[]`, `const char *`.
    pub type_name: String,
    /// `Some(n)` for `name[n]`, `Some(0)` for a flexible `name[]`, `None` otherwise.
    pub array_len: Option<usize>,
    /// Offset in the record payload.
    pub offset: usize,
    /// Size in the record payload.
    pub size: usize,
    /// From `signed:` (guessed from the type when the kernel did not say).
    pub signed: bool,
    /// Type-derived properties.
    pub flags: FieldFlags,
    /// Byte order of the data.
    pub endian: Endian,
}

impl Field {
    pub(crate) fn from_raw(raw: &RawField<'_>, endian: Endian) -> Self {
        let decl = raw.decl;
        let (base, array_len) = match decl.rfind('[') {
            Some(i) if decl.ends_with(']') => {
                let dims = decl[i + 1..decl.len() - 1].trim();
                let name_end = decl[..i].trim_end();
                let base = name_end[..name_end.len() - raw.name.len()].trim_end();
                (base, Some(dims.parse().unwrap_or(0)))
            }
            _ => (decl[..decl.len() - raw.name.len()].trim_end(), None),
        };
        let type_name = base.to_string();
        let words: Vec<&str> = type_words(&type_name).collect();
        let mut flags = FieldFlags::default();
        if array_len.is_some() {
            flags = flags | FieldFlags::ARRAY;
            if array_len == Some(0) {
                flags = flags | FieldFlags::FLEXIBLE;
            }
        }
        let data_loc = words.first() == Some(&"__data_loc");
        let rel_loc = words.first() == Some(&"__rel_loc");
        if data_loc {
            flags = flags | FieldFlags::DATA_LOC | FieldFlags::DYNAMIC;
        }
        if rel_loc {
            flags = flags | FieldFlags::REL_LOC | FieldFlags::DYNAMIC;
        }
        let elem: Vec<&str> = element_words(&type_name).collect();
        let is_char = elem == ["char"] || elem == ["signed", "char"] || elem == ["unsigned", "char"];
        let dynamic = data_loc || rel_loc;
        let pointer = type_name.contains('*') && !dynamic;
        if is_char && (array_len.is_some() || dynamic) || (dynamic && elem.is_empty()) {
            flags = flags | FieldFlags::STRING;
        }
        if pointer {
            flags = flags | FieldFlags::POINTER;
        }
        let longs = elem.iter().filter(|w| **w == "long").count();
        if longs == 1 && !pointer {
            flags = flags | FieldFlags::LONG;
        }
        let signed = raw.signed.unwrap_or_else(|| {
            !pointer
                && !dynamic
                && !elem.iter().any(|w| *w == "unsigned" || *w == "bool" || w.starts_with('u') || w.starts_with("__u"))
        });
        if signed {
            flags = flags | FieldFlags::SIGNED;
        }
        Field {
            name: raw.name.to_string(),
            type_name,
            array_len,
            offset: raw.offset,
            size: raw.size,
            signed,
            flags,
            endian,
        }
    }

    /// The declared type with the array suffix the name carried, as C would write it without
    /// the name: `char[16]`, `__data_loc char[]`, `u64`, `char[]`. Allocates the string.
    pub fn c_type(&self) -> String {
        match self.array_len {
            Some(0) => format!("{}[]", self.type_name),
            Some(n) => format!("{}[{n}]", self.type_name),
            None => self.type_name.clone(),
        }
    }

    /// How to copy the field out of a record on a kernel whose `long` has `long_size` bytes:
    /// its [`FieldKind`], the size of one element and, for a fixed array, its length (what a
    /// plugin's field layout says). Allocates a little to read the type name.
    pub fn shape(&self, long_size: u8) -> FieldShape {
        let string = self.is_string();
        // The size of the element type, from its name (`u64` of `__data_loc u64[]`).
        let named = || {
            let words: Vec<&str> = element_words(&self.type_name).collect();
            let pointer = self.type_name.contains('*');
            ctype_of(&words, pointer).size(long_size).map_or(1, |s| s as usize)
        };
        let (kind, elem_size) = if self.flags.contains(FieldFlags::DATA_LOC) {
            if string {
                (FieldKind::DataLocString, 1)
            } else {
                (FieldKind::DataLocArray, named())
            }
        } else if self.flags.contains(FieldFlags::REL_LOC) {
            if string {
                (FieldKind::RelLocString, 1)
            } else {
                (FieldKind::RelLocArray, named())
            }
        } else {
            match self.array_len {
                Some(_) if string => (FieldKind::CharArray, 1),
                Some(n) if n > 0 => (FieldKind::Array, self.size / n),
                Some(_) => (FieldKind::Array, named()),
                None if matches!(self.size, 1 | 2 | 4 | 8) => (FieldKind::Integer, self.size),
                None => (FieldKind::Other, self.size),
            }
        };
        FieldShape { kind, elem_size, array_len: self.array_len }
    }

    /// The copyable layout used for reading; no allocation.
    pub fn layout(&self) -> FieldLayout {
        let elem_size = match self.array_len {
            Some(n) if n > 0 => self.size / n,
            _ => self.size,
        };
        FieldLayout { offset: self.offset, size: self.size, elem_size, flags: self.flags, endian: self.endian }
    }

    fn err(&self, msg: &'static str) -> Error {
        Error::Field { field: self.name.clone(), msg }
    }

    /// True for `__data_loc` / `__rel_loc` fields.
    pub fn is_dynamic(&self) -> bool {
        self.flags.contains(FieldFlags::DYNAMIC)
    }

    /// True for character arrays and dynamic strings.
    pub fn is_string(&self) -> bool {
        self.flags.contains(FieldFlags::STRING)
    }

    /// Reads the value zero-extended (field sizes 1, 2, 4, 8).
    pub fn read_u64(&self, data: &[u8]) -> Result<u64> {
        self.layout().read_u64(data).ok_or_else(|| self.err("out of bounds or not a 1/2/4/8-byte integer"))
    }

    /// Reads the value sign-extended (field sizes 1, 2, 4, 8).
    pub fn read_i64(&self, data: &[u8]) -> Result<i64> {
        self.layout().read_i64(data).ok_or_else(|| self.err("out of bounds or not a 1/2/4/8-byte integer"))
    }

    /// Reads element `i` of a fixed-size array, extended by the field's signedness.
    pub fn read_element(&self, data: &[u8], i: usize) -> Result<u64> {
        self.layout().read_element(data, i).ok_or_else(|| self.err("array index out of bounds"))
    }

    /// The raw bytes: dynamic payload, flexible tail, or the field itself.
    pub fn bytes<'d>(&self, data: &'d [u8]) -> Result<&'d [u8]> {
        self.layout().bytes(data).ok_or_else(|| self.err("data out of bounds"))
    }

    /// A string field's bytes up to the first NUL; no allocation.
    pub fn str_bytes<'d>(&self, data: &'d [u8]) -> Result<&'d [u8]> {
        self.layout().str_bytes(data).ok_or_else(|| self.err("data out of bounds"))
    }

    /// A string field as UTF-8 up to the first NUL; errors if it is not UTF-8.
    pub fn str<'d>(&self, data: &'d [u8]) -> Result<&'d str> {
        core::str::from_utf8(self.str_bytes(data)?).map_err(|_| self.err("not UTF-8"))
    }

    /// The payload of a dynamic array (`__data_loc`/`__rel_loc`), e.g. `__data_loc u64[]`.
    pub fn dynamic_array<'d>(&self, data: &'d [u8]) -> Result<&'d [u8]> {
        if !self.is_dynamic() {
            return Err(self.err("not a __data_loc/__rel_loc field"));
        }
        self.bytes(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tests::SCHED_SWITCH;
    use crate::format::EventFormat;

    #[test]
    fn shapes_for_copying_fields_out() {
        let p = |l: &str| Field::from_raw(&parse_field_line(l).unwrap(), Endian::Little);
        let shape = |l: &str| {
            let f = p(l);
            let s = f.shape(8);
            (f.c_type(), s.kind, s.elem_size, s.array_len)
        };
        use FieldKind::*;
        /// A `field:` line and its C type, kind, element size and array length.
        type Case = (&'static str, (&'static str, FieldKind, usize, Option<usize>));
        let cases: [Case; 12] = [
            (
                "field:__data_loc char[] file;	offset:16;	size:4;	signed:0;",
                ("__data_loc char[]", DataLocString, 1, None),
            ),
            ("field:__rel_loc char[] name;	offset:8;	size:4;	signed:0;", ("__rel_loc char[]", RelLocString, 1, None)),
            (
                "field:__data_loc unsigned long[] stack;	offset:8;	size:4;	signed:0;",
                ("__data_loc unsigned long[]", DataLocArray, 8, None),
            ),
            ("field:__rel_loc u16[] ids;	offset:8;	size:4;	signed:0;", ("__rel_loc u16[]", RelLocArray, 2, None)),
            ("field:char comm[16];	offset:8;	size:16;	signed:1;", ("char[16]", CharArray, 1, Some(16))),
            ("field:unsigned long args[6];	offset:16;	size:48;	signed:0;", ("unsigned long[6]", Array, 8, Some(6))),
            ("field:u32 words[];	offset:16;	size:0;	signed:0;", ("u32[]", Array, 4, Some(0))),
            ("field:u64 flags;	offset:20;	size:8;	signed:0;", ("u64", Integer, 8, None)),
            ("field:const char * filename;	offset:24;	size:8;	signed:0;", ("const char *", Integer, 8, None)),
            ("field:struct foo blob;	offset:8;	size:12;	signed:0;", ("struct foo", Other, 12, None)),
            // Old kernels: a 2-byte __data_loc word with no element type is a string.
            ("field:__data_loc name;	offset:12;	size:2;", ("__data_loc", DataLocString, 1, None)),
            // A bitmap of unsigned longs.
            (
                "field:__data_loc cpumask_t *[] cpumask;	offset:8;	size:4;	signed:0;",
                ("__data_loc cpumask_t *[]", DataLocArray, 8, None),
            ),
        ];
        for (line, (c_type, kind, elem, len)) in cases {
            assert_eq!(shape(line), (c_type.to_string(), kind, elem, len), "{line}");
        }
        // `long` follows the kernel's long size.
        let f = p("field:__data_loc long[] v;	offset:8;	size:4;	signed:0;");
        assert_eq!(f.shape(4).elem_size, 4);
    }

    #[test]
    fn field_declarations() {
        let p = |l: &str| Field::from_raw(&parse_field_line(l).unwrap(), Endian::Little);
        let f = p("field:__data_loc char[] name;\toffset:12;\tsize:4;\tsigned:0;");
        assert_eq!((f.name.as_str(), f.type_name.as_str()), ("name", "__data_loc char[]"));
        assert!(f.is_dynamic() && f.is_string() && f.flags.contains(FieldFlags::DATA_LOC));
        assert_eq!(f.array_len, None);
        let f = p("field:__rel_loc u64[] addrs;\toffset:8;\tsize:4;\tsigned:0;");
        assert!(f.flags.contains(FieldFlags::REL_LOC) && !f.is_string());
        let f = p("field:const char * filename;\toffset:24;\tsize:8;\tsigned:0;");
        assert_eq!(f.type_name, "const char *");
        assert!(f.flags.contains(FieldFlags::POINTER) && !f.is_string());
        let f = p("field:char buf[];\toffset:16;\tsize:0;\tsigned:0;");
        assert_eq!(f.array_len, Some(0));
        assert!(f.flags.contains(FieldFlags::FLEXIBLE) && f.is_string());
        let f = p("field:unsigned long caller[8];\toffset:8;\tsize:64;\tsigned:0;");
        assert_eq!((f.array_len, f.layout().elem_size), (Some(8), 8));
        // Old kernels: no signed key, 2-byte data_loc.
        let f = p("field:__data_loc name;\toffset:12;\tsize:2;");
        assert!(f.is_dynamic() && f.is_string() && !f.signed);
        let f = p("field:int irq;\toffset:8;\tsize:4;");
        assert!(f.signed);
        let f = p("field:unsigned int x;\toffset:8;\tsize:4;");
        assert!(!f.signed);
    }

    #[test]
    fn field_access() {
        let f = EventFormat::parse("sched", SCHED_SWITCH, Endian::Little).unwrap();
        let mut d = vec![0u8; 64];
        d[8..13].copy_from_slice(b"bash\0");
        d[24..28].copy_from_slice(&(-5i32).to_le_bytes());
        d[32..40].copy_from_slice(&2u64.to_le_bytes());
        assert_eq!(f.field("prev_comm").unwrap().str(&d).unwrap(), "bash");
        assert_eq!(f.field("prev_pid").unwrap().read_i64(&d).unwrap(), -5);
        assert_eq!(f.field("prev_pid").unwrap().read_u64(&d).unwrap(), 0xffff_fffb);
        assert_eq!(f.field("prev_state").unwrap().read_u64(&d).unwrap(), 2);
        assert!(f.field("prev_state").unwrap().read_u64(&d[..35]).is_err());
        assert!(f.field("prev_comm").unwrap().read_u64(&d).is_err());
        // data_loc: offset 16, len 6; rel_loc: offset relative to the field end.
        let dl = Field::from_raw(
            &parse_field_line("field:__data_loc char[] name;\toffset:12;\tsize:4;\tsigned:0;").unwrap(),
            Endian::Little,
        );
        let mut d = vec![0u8; 24];
        d[12..16].copy_from_slice(&(16u32 | 6 << 16).to_le_bytes());
        d[16..22].copy_from_slice(b"hello\0");
        assert_eq!(dl.str(&d).unwrap(), "hello");
        assert_eq!(dl.dynamic_array(&d).unwrap(), b"hello\0");
        d[12..16].copy_from_slice(&(20u32 | 6 << 16).to_le_bytes());
        assert!(dl.str(&d).is_err());
        let rl = Field::from_raw(
            &parse_field_line("field:__rel_loc char[] name;\toffset:12;\tsize:4;\tsigned:0;").unwrap(),
            Endian::Little,
        );
        d[12..16].copy_from_slice(&(6u32 << 16).to_le_bytes());
        assert_eq!(rl.str(&d).unwrap(), "hello");
        // Big-endian data_loc.
        let be = Field { endian: Endian::Big, ..dl.clone() };
        d[12..16].copy_from_slice(&(16u32 | 6 << 16).to_be_bytes());
        assert_eq!(be.str(&d).unwrap(), "hello");
    }
}
