//! Addresses and byte strings as the `%p` extensions print them (`%pI4`, `%pI6c`, `%pM`,
//! `%pU`, `%ph`) and hex dumps: the same text in both dialects, once the caller has taken the
//! bytes from the record and read the extension's letters its own way.

use std::io::Write as _;

use super::sink::PushStr as _;

/// `a.b.c.d`; with `leading_zeros`, each part three digits (`%pi4`).
pub(crate) fn ipv4(out: &mut Vec<u8>, a: [u8; 4], leading_zeros: bool) {
    let _ = if leading_zeros {
        write!(out, "{:03}.{:03}.{:03}.{:03}", a[0], a[1], a[2], a[3])
    } else {
        write!(out, "{}.{}.{}.{}", a[0], a[1], a[2], a[3])
    };
}

/// All 16 bytes in hex: eight 4-digit groups joined by `:` (`%pI6`), or 32 digits (`%pi6`).
pub(crate) fn ipv6(out: &mut Vec<u8>, a: &[u8; 16], colons: bool) {
    for (i, pair) in a.chunks_exact(2).enumerate() {
        if colons && i > 0 {
            out.push(b':');
        }
        let _ = write!(out, "{:02x}{:02x}", pair[0], pair[1]);
    }
}

/// `%pI6c`, RFC 5952's compressed form as the kernel's `ip6_compressed_string` writes it:
/// the first longest run of two or more zero groups becomes `::`, groups lose their leading
/// zeros, and IPv4-mapped and ISATAP addresses end in dotted quad.
pub(crate) fn ipv6_compressed(out: &mut Vec<u8>, a: &[u8; 16]) {
    let word = |k: usize| u16::from_be_bytes([a[2 * k], a[2 * k + 1]]);
    let word32 = |k: usize| u32::from_be_bytes([a[4 * k], a[4 * k + 1], a[4 * k + 2], a[4 * k + 3]]);
    let mapped = word32(0) | word32(1) == 0 && word32(2) == 0x0000_ffff;
    let isatap = word32(2) | 0x0200_0000 == 0x0200_5efe;
    let dotted = mapped || isatap;
    let groups = if dotted { 6 } else { 8 };
    // The first longest run of zero groups, if longer than one.
    let (mut run_at, mut run_len) = (groups, 1);
    for i in 0..groups {
        let len = (i..groups).take_while(|&j| word(j) == 0).count();
        if len > run_len {
            (run_at, run_len) = (i, len);
        }
    }
    let mut need_colon = false;
    let mut i = 0;
    while i < groups {
        if i == run_at {
            out.push_str("::");
            need_colon = false;
            i += run_len;
            continue;
        }
        if need_colon {
            out.push(b':');
        }
        let _ = write!(out, "{:x}", word(i));
        need_colon = true;
        i += 1;
    }
    if dotted {
        if need_colon {
            out.push(b':');
        }
        ipv4(out, [a[12], a[13], a[14], a[15]], false);
    }
}

/// A MAC address: six hex bytes joined by `separator`, last byte first when `reversed`
/// (`%pM`, `%pMR`, `%pMF`, `%pm`).
pub(crate) fn mac(out: &mut Vec<u8>, b: &[u8; 6], separator: &str, reversed: bool) {
    for i in 0..6 {
        if i > 0 {
            out.push_str(separator);
        }
        let _ = write!(out, "{:02x}", b[if reversed { 5 - i } else { i }]);
    }
}

/// A UUID `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (`%pU`); `upper` for capital hex, `guid` for
/// the little-endian byte order of the first three parts (`%pUl`, `%pUL`).
pub(crate) fn uuid(out: &mut Vec<u8>, b: &[u8; 16], upper: bool, guid: bool) {
    const GUID: [usize; 16] = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
    for i in 0..16 {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push(b'-');
        }
        let v = b[if guid { GUID[i] } else { i }];
        let _ = if upper { write!(out, "{v:02X}") } else { write!(out, "{v:02x}") };
    }
}

/// Each byte as two hex digits, joined by `separator` (`%ph` and its `C`/`D`/`N` forms,
/// `__print_hex`, the `ARRAY[..]` of raw fields).
pub(crate) fn hex_bytes(out: &mut Vec<u8>, b: &[u8], separator: &str) {
    for (i, x) in b.iter().enumerate() {
        if i > 0 {
            out.push_str(separator);
        }
        let _ = write!(out, "{x:02x}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn addresses() {
        assert_eq!(text(|o| ipv4(o, [192, 168, 1, 2], false)), "192.168.1.2");
        assert_eq!(text(|o| ipv4(o, [192, 168, 1, 2], true)), "192.168.001.002");
        let mut v6 = [0u8; 16];
        v6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        v6[15] = 1;
        assert_eq!(text(|o| ipv6_compressed(o, &v6)), "2001:db8::1");
        assert_eq!(text(|o| ipv6(o, &v6, true)), "2001:0db8:0000:0000:0000:0000:0000:0001");
        assert_eq!(text(|o| ipv6(o, &v6, false)), "20010db8000000000000000000000001");
        assert_eq!(text(|o| ipv6_compressed(o, &[0; 16])), "::");
        let mut mapped = [0u8; 16];
        mapped[10..].copy_from_slice(&[0xff, 0xff, 10, 0, 0, 1]);
        assert_eq!(text(|o| ipv6_compressed(o, &mapped)), "::ffff:10.0.0.1");
        // ISATAP: 2001:db8::5efe:10.0.0.1, the kernel's dotted tail.
        let mut isatap = v6;
        isatap[8..].copy_from_slice(&[0, 0, 0x5e, 0xfe, 10, 0, 0, 1]);
        assert_eq!(text(|o| ipv6_compressed(o, &isatap)), "2001:db8::5efe:10.0.0.1");
        // One zero group stays a 0; the first of two equal runs is compressed.
        let one = [0x20, 0x01, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(text(|o| ipv6_compressed(o, &one)), "2001:0:1::1:0:0");
        let mac_bytes = [0, 0x1b, 0x21, 0xab, 0xcd, 0xef];
        assert_eq!(text(|o| mac(o, &mac_bytes, ":", false)), "00:1b:21:ab:cd:ef");
        assert_eq!(text(|o| mac(o, &mac_bytes, "-", true)), "ef-cd-ab-21-1b-00");
        let u: [u8; 16] = core::array::from_fn(|i| i as u8);
        assert_eq!(text(|o| uuid(o, &u, false, false)), "00010203-0405-0607-0809-0a0b0c0d0e0f");
        assert_eq!(text(|o| uuid(o, &u, true, true)), "03020100-0504-0706-0809-0A0B0C0D0E0F");
        assert_eq!(text(|o| hex_bytes(o, &[1, 0xab], ", ")), "01, ab");
    }
}
