//! C type names as format files and print fmts write them (`unsigned long`, `u8`, `pid_t`,
//! `__s64`, `struct foo`): which are integers, of what size and signedness. The field model
//! (a field's element size) and the kernel dialect's casts and `sizeof` read them here.

/// The size of a C integer type; `long` is the traced kernel's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntSize {
    B1,
    B2,
    B4,
    B8,
    Long,
}

/// A C integer type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IntTy {
    pub(crate) size: IntSize,
    pub(crate) signed: bool,
}

impl IntTy {
    /// `int`.
    pub(crate) const INT: IntTy = IntTy { size: IntSize::B4, signed: true };

    /// Its size in bytes on a kernel whose `long` has `long` bytes.
    pub(crate) fn bytes(self, long: u8) -> u8 {
        match self.size {
            IntSize::B1 => 1,
            IntSize::B2 => 2,
            IntSize::B4 => 4,
            IntSize::B8 => 8,
            IntSize::Long => long,
        }
    }
}

/// What a type name in a cast or declaration is to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CType {
    Int(IntTy),
    Ptr,
    Bool,
    /// A typedef or struct we do not know: casts to it leave the value alone.
    Opaque,
}

impl CType {
    /// `sizeof` the type on a kernel whose `long` has `long` bytes; `None` if unknown.
    pub(crate) fn size(self, long: u8) -> Option<u64> {
        match self {
            CType::Int(t) => Some(u64::from(t.bytes(long))),
            CType::Ptr => Some(u64::from(long)),
            CType::Bool => Some(1),
            CType::Opaque => None,
        }
    }
}

/// Whether `w` can start a type name (so that `(w ...)` is a cast, not a parenthesised value).
pub(crate) fn is_type_word(w: &str) -> bool {
    matches!(
        w,
        "unsigned"
            | "signed"
            | "int"
            | "long"
            | "short"
            | "char"
            | "void"
            | "const"
            | "volatile"
            | "struct"
            | "union"
            | "enum"
            | "bool"
            | "_Bool"
            | "uint"
            | "ulong"
            | "ushort"
            | "uchar"
    ) || w.ends_with("_t")
        || int_typedef(w).is_some()
}

/// The kernel's fixed-size integer typedefs: `u8`..`u64`, `s8`..`s64`, with or without `__`,
/// and `uint32_t`-style names.
pub(crate) fn int_typedef(w: &str) -> Option<IntTy> {
    let w = w.strip_prefix("__").unwrap_or(w);
    let (signed, bits) = if let Some(b) = w.strip_prefix('u') {
        (false, b)
    } else if let Some(b) = w.strip_prefix('s') {
        (true, b)
    } else {
        return None;
    };
    let bits = bits.strip_prefix("int").unwrap_or(bits);
    let bits = bits.strip_suffix("_t").unwrap_or(bits);
    let size = match bits {
        "8" => IntSize::B1,
        "16" => IntSize::B2,
        "32" => IntSize::B4,
        "64" => IntSize::B8,
        _ => return None,
    };
    Some(IntTy { size, signed })
}

/// The type the words of a type name (`const`/`volatile` allowed) make, `pointer` if a `*`
/// followed them.
pub(crate) fn ctype_of<S: AsRef<str>>(words: &[S], pointer: bool) -> CType {
    if pointer {
        return CType::Ptr;
    }
    let has = |w: &str| words.iter().any(|x| x.as_ref() == w);
    let int = |size, signed| CType::Int(IntTy { size, signed });
    let core: Vec<&str> = words.iter().map(AsRef::as_ref).filter(|w| !matches!(*w, "const" | "volatile")).collect();
    if core.len() == 1 {
        let w = core[0];
        if let Some(t) = int_typedef(w) {
            return CType::Int(t);
        }
        match w {
            "bool" | "_Bool" => return CType::Bool,
            "uint" => return int(IntSize::B4, false),
            "ulong" | "size_t" => return int(IntSize::Long, false),
            "ushort" => return int(IntSize::B2, false),
            "uchar" => return int(IntSize::B1, false),
            "ssize_t" | "long" => return int(IntSize::Long, true),
            "loff_t" | "int64_t" | "s64" => return int(IntSize::B8, true),
            "pid_t" | "int" | "signed" => return int(IntSize::B4, true),
            "unsigned" | "gfp_t" | "dev_t" | "uid_t" | "gid_t" => return int(IntSize::B4, false),
            _ => {}
        }
    }
    if has("struct") || has("union") {
        return CType::Opaque;
    }
    if has("enum") {
        return int(IntSize::B4, true);
    }
    let known = core.iter().all(|w| matches!(*w, "unsigned" | "signed" | "int" | "long" | "short" | "char"));
    if !known || core.is_empty() {
        return CType::Opaque;
    }
    let signed = !has("unsigned");
    let longs = core.iter().filter(|w| **w == "long").count();
    let size = if longs >= 2 {
        IntSize::B8
    } else if longs == 1 {
        IntSize::Long
    } else if has("short") {
        IntSize::B2
    } else if has("char") {
        IntSize::B1
    } else {
        IntSize::B4
    };
    int(size, signed)
}
