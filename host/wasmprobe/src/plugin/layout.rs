//! The field layout of a probe's events, as the host hands it to a plugin (`run.layouts`).
//! The run loop fills it from the kernel's format file; [`LayoutField::from_format`] classifies a
//! format-file declaration so the guest SDK knows how to read it.

use super::bindings::types as wit;

/// How a field's bytes are to be read: the WIT `field-kind`, numbered by the ABI crate.
pub use wasmprobe_abi::FieldKind;

/// One field of an event, as its format file describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutField {
    /// The field's name, without an array suffix (`comm`, not `comm[16]`).
    pub name: String,
    /// The C type, e.g. `__data_loc char[]`, `u64`, `char[16]`.
    pub c_type: String,
    /// Byte offset in the payload.
    pub offset: u32,
    /// Size in bytes (4 for a `__data_loc` / `__rel_loc` locator).
    pub size: u32,
    /// Whether an integer is signed.
    pub signed: bool,
    /// How its bytes are read.
    pub kind: FieldKind,
    /// Size of one array element (1 for strings, `size` for integers).
    pub elem_size: u32,
}

/// The layout of one declared probe's events, in plan order (the n-th layout is probe n's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The kernel's event system (our group, for dynamic probes).
    pub system: String,
    /// The event's name.
    pub event: String,
    /// The event id: `common_type` of its records.
    pub id: u32,
    /// All fields, `common_*` included, in format-file order.
    pub fields: Vec<LayoutField>,
}

impl LayoutField {
    /// The plugin's view of a parsed format-file field on a kernel whose `long` has
    /// `long_size` bytes: traceevent's one field model ([`traceevent::Field::shape`]) says
    /// what it is.
    pub fn from_field(f: &traceevent::Field, long_size: u8) -> LayoutField {
        use traceevent::format::FieldKind as Shape;
        let shape = f.shape(long_size);
        let kind = match shape.kind {
            Shape::Integer => FieldKind::Integer,
            Shape::Array => FieldKind::Array,
            Shape::CharArray => FieldKind::CharArray,
            Shape::DataLocString => FieldKind::DataLocString,
            Shape::DataLocArray => FieldKind::DataLocArray,
            Shape::RelLocString => FieldKind::RelLocString,
            Shape::RelLocArray => FieldKind::RelLocArray,
            Shape::Other => FieldKind::Other,
        };
        LayoutField {
            name: f.name.clone(),
            c_type: f.c_type(),
            offset: f.offset as u32,
            size: f.size as u32,
            signed: f.signed,
            kind,
            elem_size: shape.elem_size as u32,
        }
    }

    /// Classifies a format-file field. `decl_type` is the type part of the declaration and
    /// `name` the name part; an array suffix (`[16]`, `[]`) may sit on either.
    /// E.g. `("__data_loc char[]", "file", 16, 4, false)` or `("char", "comm[16]", 8, 16, true)`.
    pub fn from_format(decl_type: &str, name: &str, offset: u32, size: u32, signed: bool) -> LayoutField {
        let (name, name_suffix) = match name.find('[') {
            Some(i) => (&name[..i], &name[i..]),
            None => (name, ""),
        };
        let c_type = format!("{}{}", decl_type.trim(), name_suffix);
        let (loc, rest) = if let Some(r) = c_type.strip_prefix("__data_loc") {
            (Some(false), r.trim())
        } else if let Some(r) = c_type.strip_prefix("__rel_loc") {
            (Some(true), r.trim())
        } else {
            (None, c_type.as_str())
        };
        let (base, array_len) = match rest.find('[') {
            Some(i) => (rest[..i].trim(), Some(rest[i + 1..].trim_end_matches(']').trim())),
            None => (rest.trim(), None),
        };
        let is_char = matches!(base, "char" | "signed char" | "unsigned char" | "const char");
        let elem = elem_size(base).unwrap_or(1);
        let (kind, elem_size) = match (loc, array_len) {
            (Some(false), _) if is_char => (FieldKind::DataLocString, 1),
            (Some(false), _) => (FieldKind::DataLocArray, elem),
            (Some(true), _) if is_char => (FieldKind::RelLocString, 1),
            (Some(true), _) => (FieldKind::RelLocArray, elem),
            (None, Some(_)) if is_char => (FieldKind::CharArray, 1),
            (None, Some(n)) => {
                let elem = n.parse::<u32>().ok().filter(|&n| n > 0).map(|n| size / n).unwrap_or(elem);
                (FieldKind::Array, elem)
            }
            (None, None) if matches!(size, 1 | 2 | 4 | 8) => (FieldKind::Integer, size),
            (None, None) => (FieldKind::Other, size),
        };
        LayoutField { name: name.to_string(), c_type, offset, size, signed, kind, elem_size }
    }

    /// Whether this field's data is located by a `__data_loc` / `__rel_loc` word.
    pub fn is_located(&self) -> bool {
        self.kind.is_located()
    }

    pub(crate) fn to_wit(&self) -> wit::Field {
        wit::Field {
            name: self.name.clone(),
            c_type: self.c_type.clone(),
            offset: self.offset,
            size: self.size,
            signed: self.signed,
            kind: match self.kind {
                FieldKind::Integer => wit::FieldKind::Integer,
                FieldKind::Array => wit::FieldKind::Array,
                FieldKind::CharArray => wit::FieldKind::CharArray,
                FieldKind::DataLocString => wit::FieldKind::DataLocString,
                FieldKind::DataLocArray => wit::FieldKind::DataLocArray,
                FieldKind::RelLocString => wit::FieldKind::RelLocString,
                FieldKind::RelLocArray => wit::FieldKind::RelLocArray,
                FieldKind::Other => wit::FieldKind::Other,
            },
            elem_size: self.elem_size,
        }
    }
}

/// Size of a C base type the format files use, if it is one we know.
fn elem_size(base: &str) -> Option<u32> {
    Some(match base {
        "char" | "signed char" | "unsigned char" | "u8" | "s8" | "bool" | "_Bool" => 1,
        "short" | "unsigned short" | "u16" | "s16" | "__u16" | "__s16" => 2,
        "int" | "unsigned int" | "u32" | "s32" | "__u32" | "__s32" | "pid_t" => 4,
        "long" | "unsigned long" | "u64" | "s64" | "__u64" | "__s64" | "long long" | "unsigned long long" => 8,
        _ => return None,
    })
}

impl Layout {
    /// The layout with the probe's plan index and name, in WIT form.
    pub(crate) fn to_wit(&self, index: u32, name: &str) -> wit::Layout {
        wit::Layout {
            probe_index: index,
            name: name.to_string(),
            system: self.system.clone(),
            event: self.event.clone(),
            id: self.id,
            fields: self.fields.iter().map(LayoutField::to_wit).collect(),
        }
    }

    /// The common fields every event starts with (common_type, flags, preempt_count, pid).
    pub fn common_fields() -> Vec<LayoutField> {
        vec![
            LayoutField::from_format("unsigned short", "common_type", 0, 2, false),
            LayoutField::from_format("unsigned char", "common_flags", 2, 1, false),
            LayoutField::from_format("unsigned char", "common_preempt_count", 3, 1, false),
            LayoutField::from_format("int", "common_pid", 4, 4, true),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wit_field_kinds_have_the_abi_numbering() {
        for kind in FieldKind::ALL {
            let f = LayoutField { kind, ..LayoutField::from_format("u64", "x", 8, 8, false) };
            assert_eq!(f.to_wit().kind as u8, kind as u8, "{kind:?}");
        }
    }

    #[test]
    fn classifies_format_file_declarations() {
        let f = LayoutField::from_format("__data_loc char[]", "file", 16, 4, false);
        assert_eq!((f.kind, f.elem_size, f.c_type.as_str()), (FieldKind::DataLocString, 1, "__data_loc char[]"));
        let f = LayoutField::from_format("__rel_loc char[]", "name", 8, 4, false);
        assert_eq!(f.kind, FieldKind::RelLocString);
        let f = LayoutField::from_format("__data_loc unsigned long[]", "stack", 8, 4, false);
        assert_eq!((f.kind, f.elem_size), (FieldKind::DataLocArray, 8));
        let f = LayoutField::from_format("char", "comm[16]", 8, 16, true);
        assert_eq!((f.name.as_str(), f.kind, f.c_type.as_str()), ("comm", FieldKind::CharArray, "char[16]"));
        let f = LayoutField::from_format("unsigned long", "args[6]", 16, 48, false);
        assert_eq!((f.kind, f.elem_size), (FieldKind::Array, 8));
        let f = LayoutField::from_format("u64", "flags", 20, 8, false);
        assert_eq!((f.kind, f.elem_size), (FieldKind::Integer, 8));
        let f = LayoutField::from_format("struct foo", "blob", 8, 12, false);
        assert_eq!(f.kind, FieldKind::Other);
    }
}
