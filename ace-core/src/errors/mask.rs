//! The masking pass: variable parts of a message become `<*>` before it is matched.
//!
//! A message is split on whitespace. A token that is a URL or a path becomes `<*>` whole. Any
//! other token is cut into segments at punctuation (`=:,;()[]{}<>|"'`), and a segment holding a
//! digit (numbers, hex, UUIDs, IPs, durations, sizes, ids with digits) becomes `<*>`; a token left
//! with nothing but wildcards and punctuation is the single wildcard `<*>`. So
//! `rhost=218.188.2.4` reads `rhost=<*>`, `[173.234.31.186]` reads `<*>`, `onExtend:1514038530000`
//! reads `onExtend:<*>`, and a quoted value `'abc'` reads `<*>`.
//!
//! The pass writes into a reusable buffer and allocates nothing once the buffer has grown.

/// The wildcard.
pub const WILDCARD: &str = "<*>";

/// Characters that cut a token into segments.
pub(crate) fn is_delimiter(b: u8) -> bool {
    matches!(b, b'=' | b':' | b',' | b';' | b'(' | b')' | b'[' | b']' | b'{' | b'}' | b'<' | b'>' | b'|' | b'"' | b'\'')
}

/// A masked message: its tokens, written one after another into `text`.
#[derive(Debug, Default)]
pub(crate) struct Masked {
    pub text: String,
    /// Token `i` is `text[ends[i-1]..ends[i]]` (from 0 for the first).
    pub ends: Vec<u32>,
    /// FNV-1a hash of each token; [`WILDCARD_HASH`] for the wildcard. The lowest bit is set for
    /// a token with a wildcard inside (`rhost=<*>`), which matches words as a glob.
    pub hashes: Vec<u64>,
}

pub(crate) const WILDCARD_HASH: u64 = 0;

/// Whether a token hash is of a token with a wildcard inside.
pub(crate) fn is_glob(hash: u64) -> bool {
    hash & 1 == 1
}

/// The hash of a token (see [`Masked::hashes`]); [`mask_into`] computes it as it writes.
#[cfg(test)]
pub(crate) fn token_hash(tok: &str) -> u64 {
    if tok == WILDCARD { WILDCARD_HASH } else { word_hash(tok.as_bytes(), tok.contains(WILDCARD)) }
}

/// Whether `text` matches `pattern`, where each `<*>` of the pattern stands for any run of
/// characters (the empty one included).
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split(WILDCARD);
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

impl Masked {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn token(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.text[start..self.ends[i] as usize]
    }

    fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
        self.hashes.clear();
    }
}

/// 64-bit FNV-1a: stable across processes, platforms and versions (pattern ids depend on it).
#[must_use]
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Month and weekday names (English, three letters or in full): parts of dates. The cheap
/// test inline: most words are not capitalised.
#[inline]
fn is_date_word(tok: &str) -> bool {
    let b = tok.as_bytes();
    (3..=9).contains(&b.len()) && b[0].is_ascii_uppercase() && is_date_name(tok)
}

#[inline(never)]
fn is_date_name(tok: &str) -> bool {
    const NAMES: [&str; 19] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec", "mon", "tue", "wed", "thu",
        "fri", "sat", "sun",
    ];
    let b = tok.as_bytes();
    NAMES.iter().any(|n| n.as_bytes().eq_ignore_ascii_case(&b[..3]))
        && (b.len() == 3
            || [
                "january",
                "february",
                "march",
                "april",
                "june",
                "july",
                "august",
                "september",
                "october",
                "november",
                "december",
                "monday",
                "tuesday",
                "wednesday",
                "thursday",
                "friday",
                "saturday",
                "sunday",
            ]
            .iter()
            .any(|full| full.eq_ignore_ascii_case(tok)))
}

/// Units of sizes and durations, which belong to the number before them (`5.2 KB`, `12 ms`),
/// with any punctuation after them (`ms,`).
fn is_unit(tok: &str) -> bool {
    let mut word = tok.as_bytes();
    while let [rest @ .., last] = word
        && last.is_ascii_punctuation()
    {
        word = rest;
    }
    matches!(
        word,
        b"B" | b"KB"
            | b"MB"
            | b"GB"
            | b"TB"
            | b"PB"
            | b"KiB"
            | b"MiB"
            | b"GiB"
            | b"TiB"
            | b"kB"
            | b"ns"
            | b"us"
            | b"\xC2\xB5s"
            | b"ms"
            | b"s"
            | b"sec"
            | b"secs"
    )
}

/// Hex groups joined by `:`, `-` or `.` (MAC addresses, IPv6, UUIDs, hex dumps) with a digit
/// somewhere: `FF:F2:9F:16:E2:23:00:0D`. One pass over the token (brackets around it aside).
fn is_hex_groups(tok: &str) -> bool {
    let word = tok.trim_end_matches([',', ';', ')', ']', '}']).trim_start_matches(['(', '[', '{']);
    let (mut separators, mut digit) = (0, false);
    for &b in word.as_bytes() {
        match b {
            b':' | b'-' | b'.' => separators += 1,
            b'0'..=b'9' => digit = true,
            b'a'..=b'f' | b'A'..=b'F' => {}
            _ => return false,
        }
    }
    separators >= 2 && digit
}

fn is_whole_variable(tok: &str) -> bool {
    let b = tok.as_bytes();
    is_date_word(tok)
        || is_hex_groups(tok)
        || b.windows(3).any(|w| w == b"://")
        || (b.len() > 1 && (b[0] == b'/' || (b[0] == b'~' && b[1] == b'/')))
        || b.iter().filter(|&&c| c == b'/' || c == b'\\').count() >= 2
        || (b.len() >= 2 && matches!(b[0], b'\'' | b'"') && b[b.len() - 1] == b[0])
}

/// Byte classes of the masking pass, looked up once per byte.
const SPACE: u8 = 1;
/// A digit, slash, backslash, quote or `<`: a token with none is a plain word.
const SPECIAL: u8 = 2;
const CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        // The whitespace of `str::split_ascii_whitespace`.
        if matches!(c, b' ' | b'\t' | b'\n' | b'\x0c' | b'\r') {
            t[b] = SPACE;
        } else if c.is_ascii_digit() || matches!(c, b'/' | b'\\' | b'\'' | b'"' | b'<') {
            t[b] = SPECIAL;
        }
        b += 1;
    }
    t
};

/// Whether `bytes` holds the wildcard.
fn has_wildcard(bytes: &[u8]) -> bool {
    bytes.windows(3).any(|w| w == WILDCARD.as_bytes())
}

/// Masks `message` into `out`, keeping at most `max_tokens` tokens (the rest are dropped; the
/// caller notes the truncation).
pub(crate) fn mask_into(message: &str, max_tokens: usize, out: &mut Masked) -> bool {
    out.clear();
    let all = message.as_bytes();
    let mut at = 0;
    // The last token is the wildcard: a unit after it belongs to the value.
    let mut after_value = false;
    loop {
        while at < all.len() && CLASSES[all[at] as usize] == SPACE {
            at += 1;
        }
        if at == all.len() {
            return false;
        }
        if out.len() == max_tokens {
            return true;
        }
        let from = at;
        let mut special = 0;
        // The FNV-1a hash of the token as it reads, which a plain word keeps.
        let mut h = FNV_OFFSET;
        while at < all.len() {
            let class = CLASSES[all[at] as usize];
            if class == SPACE {
                break;
            }
            special |= class;
            h = (h ^ u64::from(all[at])).wrapping_mul(FNV_PRIME);
            at += 1;
        }
        // Cut at ASCII whitespace, so on character boundaries.
        let tok = &message[from..at];
        let start = out.text.len();
        // Most tokens are plain words: no digit, slash, quote or wildcard means nothing to mask
        // but a date word or a unit, and the token is copied as it is (and holds no wildcard).
        let wildcard = if special == 0 {
            is_date_word(tok) || (after_value && is_unit(tok))
        } else {
            is_whole_variable(tok) || (after_value && is_unit(tok))
        };
        let hash = if wildcard {
            out.text.push_str(WILDCARD);
            WILDCARD_HASH
        } else if special == 0 {
            out.text.push_str(tok);
            (h & !1).max(2)
        } else {
            mask_segments(tok, out, start)
        };
        out.ends.push(out.text.len() as u32);
        out.hashes.push(hash);
        after_value = hash == WILDCARD_HASH;
    }
}

/// The hash of a token other than the wildcard, `glob` if it holds one.
fn word_hash(bytes: &[u8], glob: bool) -> u64 {
    (fnv1a(bytes) & !1).max(2) | u64::from(glob)
}

/// Writes a token with a digit, slash or quote segment by segment (cut at punctuation), a
/// segment with a digit as the wildcard; returns the token's hash.
fn mask_segments(tok: &str, out: &mut Masked, start: usize) -> u64 {
    let bytes = tok.as_bytes();
    let mut has_word = false;
    let mut seg_start = 0;
    for i in 0..=bytes.len() {
        if i < bytes.len() && !is_delimiter(bytes[i]) {
            continue;
        }
        let seg = &tok[seg_start..i];
        if !seg.is_empty() {
            if seg.bytes().any(|c| c.is_ascii_digit()) {
                if !out.text[start..].ends_with(WILDCARD) {
                    out.text.push_str(WILDCARD);
                }
            } else {
                has_word |= seg.bytes().any(|c| c.is_ascii_alphabetic() || c >= 0x80);
                out.text.push_str(seg);
            }
        }
        if i < bytes.len() {
            out.text.push(bytes[i] as char);
        }
        seg_start = i + 1;
    }
    let glob = has_wildcard(&out.text.as_bytes()[start..]);
    if glob && !has_word {
        out.text.truncate(start);
        out.text.push_str(WILDCARD);
        return WILDCARD_HASH;
    }
    if &out.text[start..] == WILDCARD { WILDCARD_HASH } else { word_hash(&out.text.as_bytes()[start..], glob) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(s: &str) -> String {
        let mut m = Masked::default();
        mask_into(s, 1000, &mut m);
        (0..m.len()).map(|i| m.token(i)).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn variable_parts_become_wildcards() {
        for (input, want) in [
            ("Invalid user webmaster from 173.234.31.186", "Invalid user webmaster from <*>"),
            ("authentication failure; rhost=218.188.2.4 uid=0", "authentication failure; rhost=<*> uid=<*>"),
            ("onExtend:1514038530000 14 0 4", "onExtend:<*> <*> <*> <*>"),
            ("getaddrinfo for [173.234.31.186] failed", "getaddrinfo for <*> failed"),
            ("GET http://10.0.0.1:8774/v2/servers took 0.27s", "GET <*> took <*>"),
            ("workerEnv.init() ok /etc/httpd/conf/workers2.properties", "workerEnv.init() ok <*>"),
            ("req-38101a0b-2096-447d-96ea-a692162415ae blk_-1608999687919862906", "<*> <*>"),
            ("value 'abc' and \"x y\"", "value <*> and \"x y\""),
            ("Registered signal handlers for [TERM, HUP, INT]", "Registered signal handlers for [TERM, HUP, INT]"),
            ("size 4096KB at 0x7fff5fbff8c0 in 12ms", "size <*> at <*> in <*>"),
            ("connection at Fri Jun 17 07:07:00 2005", "connection at <*> <*> <*> <*> <*>"),
            ("Mayday: Monitor the Sunday batch", "Mayday: Monitor the <*> batch"),
            ("estimated size 5.2 KB, free 12 B) took 3 s", "estimated size <*> <*> free <*> <*> took <*> <*>"),
            ("chip FF:F2:9F:16:E2:23:00:0D:60:E9:1D:DC ip=10.0.0.151", "chip <*> ip=<*>"),
            ("", ""),
        ] {
            assert_eq!(masked(input), want, "{input}");
        }
    }

    #[test]
    fn globs_match_words() {
        assert!(glob_match("rhost=<*>", "rhost=csnsu.nsuok.edu"));
        assert!(glob_match("rhost=<*>", "rhost="));
        assert!(glob_match("<*>:<*>x", "a:bx"));
        assert!(!glob_match("rhost=<*>", "user=root"));
        assert!(!glob_match("a<*>b<*>c", "a-c-b"));
        assert!(is_glob(token_hash("rhost=<*>")) && !is_glob(token_hash("rhost")));
        assert_eq!(token_hash(WILDCARD), WILDCARD_HASH);
    }

    #[test]
    fn hashes_are_those_of_the_tokens_written() {
        let mut m = Masked::default();
        for s in ["a<*>b x=1 <*> '7' Jan 5 KB", "<*>", "x <*>:<*>y 12 ms", "\t a\x0c b\r\n"] {
            mask_into(s, 100, &mut m);
            for i in 0..m.len() {
                assert_eq!(m.hashes[i], token_hash(m.token(i)), "{s:?} token {i}");
            }
        }
    }

    #[test]
    fn tokens_are_capped() {
        let mut m = Masked::default();
        assert!(mask_into(&"x ".repeat(10), 4, &mut m));
        assert_eq!(m.len(), 4);
        assert!(!mask_into("a b", 4, &mut m));
    }

    #[test]
    fn fnv_is_stable() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
