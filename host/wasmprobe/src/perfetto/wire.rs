//! Protobuf's wire format, the little of it the hand-written encoders need: varints, keys
//! and length-delimited fields appended to a `Vec<u8>`.

/// Wire type of varint fields (integers, bools, enums).
pub const VARINT: u32 = 0;
/// Wire type of length-delimited fields (strings, bytes, messages).
pub const LEN: u32 = 2;

/// Appends `v` as a base-128 varint.
#[inline]
pub fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Bytes [`put_varint`] appends for `v`.
#[inline]
pub fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// The encoded key of field `tag` with wire type `wire`.
pub fn key(tag: u32, wire: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(2);
    put_varint(&mut k, u64::from(tag << 3 | wire));
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_protobufs() {
        for v in [0u64, 1, 127, 128, 300, 16383, 16384, u32::MAX as u64, u64::MAX, (-1i64) as u64] {
            let mut ours = Vec::new();
            put_varint(&mut ours, v);
            assert_eq!(ours.len(), varint_len(v), "{v}");
            let mut theirs = Vec::new();
            prost::encode_length_delimiter(v as usize, &mut theirs).unwrap();
            assert_eq!(ours, theirs, "{v}");
        }
        assert_eq!(key(327, LEN), [0xba, 0x14]);
        assert_eq!(key(1, VARINT), [0x08]);
    }
}
