//! Reading eight bytes at a time, as one word: where a JSON string ends, whether eight bytes
//! are digits and what number they spell. For the trace scan (`scan.rs`).

/// Whether the eight bytes of `x` are all ASCII digits (a byte's high half is 3, and stays 3
/// when 6 is added to it).
#[inline]
pub(super) fn eight_digits(x: u64) -> bool {
    const HIGH_HALVES: u64 = 0xf0f0_f0f0_f0f0_f0f0;
    (x & HIGH_HALVES) | ((x.wrapping_add(0x0606_0606_0606_0606) & HIGH_HALVES) >> 4) == 0x3333_3333_3333_3333
}

/// The number eight ASCII digits spell, the first in the lowest byte: pairs, then fours, then
/// all eight are combined by multiplications on the whole word.
#[inline]
pub(super) fn eight_value(x: u64) -> u64 {
    const LOW: u64 = 0x0000_00ff_0000_00ff;
    let v = x - 0x3030_3030_3030_3030;
    let v = v * 10 + (v >> 8);
    ((v & LOW).wrapping_mul(100 + (1_000_000 << 32)).wrapping_add(((v >> 16) & LOW).wrapping_mul(1 + (10_000 << 32))))
        >> 32
}

/// Where the first `"`, `\\` or control character (< 0x20) of `b` is: eight bytes at a time,
/// as `newline` finds line ends.
#[inline]
pub(super) fn string_end(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = ONES << 7;
    let mut chunks = b.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let x = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let quote = x ^ (ONES * u64::from(b'"'));
        let slash = x ^ (ONES * u64::from(b'\\'));
        // The lowest set bit of each marks the first byte that is zero (a quote, a backslash)
        // or below 0x20; bits above it may be false alarms, so only the lowest is used.
        let found =
            (quote.wrapping_sub(ONES) & !quote | slash.wrapping_sub(ONES) & !slash | x.wrapping_sub(ONES * 0x20) & !x)
                & HIGH;
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    chunks.remainder().iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20).map(|p| at + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_ends_are_found_where_they_are() {
        let text: Vec<u8> =
            (0..300u32).map(|i| [b'a', 0xc3, b'"', b'\\', 0x1f, 0x20, 0x7f, 0xa0][(i * 7 % 11 % 8) as usize]).collect();
        for start in 0..text.len() {
            let slow = text[start..].iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
            assert_eq!(string_end(&text[start..]), slow, "from {start}");
        }
        let plain: Vec<u8> = (0x20..=0xffu8).filter(|&c| c != b'"' && c != b'\\').collect();
        assert_eq!(string_end(&plain), None);
        for c in 0..0x20u8 {
            let mut t = plain.clone();
            t.insert(13, c);
            assert_eq!(string_end(&t), Some(13));
        }
    }

    #[test]
    fn eight_digits_are_read_as_one_word() {
        for text in ["00000000", "12345678", "99999999", "17000000", "00000001", "90000000"] {
            let x = u64::from_le_bytes(text.as_bytes().try_into().unwrap());
            assert!(eight_digits(x), "{text}");
            assert_eq!(eight_value(x), text.parse::<u64>().unwrap(), "{text}");
        }
        for c in (0..=255u8).filter(|c| !c.is_ascii_digit()) {
            for at in 0..8 {
                let mut b = *b"12345678";
                b[at] = c;
                assert!(!eight_digits(u64::from_le_bytes(b)), "{c} at {at}");
            }
        }
    }
}
