//! A fast reader for the common shape of a trace line: one flat JSON object whose strings have
//! no escapes and whose numbers are short. It reads such a line into the same [`Raw`] that
//! serde would, in a third of the time; any other line (escapes, long or odd numbers, nested
//! values, duplicate fields, anything invalid) gets `None`, and the caller reads it with serde,
//! whose answer (or error) then stands. So the scan changes speed, never results.
//!
//! Numbers are taken only where a correctly rounded parse and serde_json's own agree exactly:
//! at most 15 significant digits and a decimal exponent within +-22 (both are then exact or
//! rounded once), no `-0`, JSON's grammar only.

use std::borrow::Cow;

use super::words::{eight_digits, eight_value, string_end};
use super::{FEW, Raw};

/// Reads the line into `raw` (a default one, filled in place: it is large to move), or says it
/// is not of the simple shape (see the module; `raw` is then to be dropped).
pub(super) fn scan<'a>(line: &'a [u8], raw: &mut Raw<'a>) -> bool {
    // One check of the whole line (a check per string costs more); strings are then cut at
    // ASCII quotes, on char boundaries.
    std::str::from_utf8(line).is_ok_and(|text| read(text, raw) == Some(line.len()))
}

/// Reads the first line of `text` (text already known to be UTF-8: a whole buffer of lines is
/// checked at once) into `raw` where it lies, without looking for its end first: the number of
/// bytes it takes, its newline included, or `None` when it is not of the simple shape or has
/// no newline in `text` (`raw` is then to be dropped, and the line read as [`scan`] reads it).
#[inline]
pub(super) fn scan_first<'a>(text: &'a str, raw: &mut Raw<'a>) -> Option<usize> {
    let n = read(text, raw)?;
    (text.as_bytes()[..n].last() == Some(&b'\n')).then_some(n)
}

/// Reads one object and the blanks after it, up to the end of its line: the bytes it takes
/// (the newline included, where there is one). A newline is no blank inside a line, so the
/// line ends at the first. Out of line: inlined, its helpers were not (3% more instructions).
#[inline(never)]
fn read<'a>(text: &'a str, raw: &mut Raw<'a>) -> Option<usize> {
    let mut s = Scanner { text, b: text.as_bytes(), i: 0 };
    let mut seen = 0u32;
    let mut has_type = false;
    s.ws();
    s.eat(b'{')?;
    s.ws();
    if s.peek()? == b'}' {
        return None; // no `type`: serde explains
    }
    loop {
        let field = s.key()?;
        s.colon()?;
        if let Some(f) = field {
            if seen & (1 << f) != 0 {
                return None; // duplicate field: serde's error
            }
            seen |= 1 << f;
        }
        match field {
            Some(0) => {
                raw.kind = s.text()?;
                has_type = true;
            }
            Some(1) => raw.ts = s.opt(Scanner::number)?,
            Some(2) => raw.agent = s.opt_str()?,
            Some(3) => raw.task = s.opt_str()?,
            Some(4) => raw.stage = s.opt_str()?,
            Some(5) => raw.duration_s = s.opt(Scanner::number)?,
            Some(6) => raw.success = s.opt(Scanner::boolean)?,
            Some(7) => {
                if s.null() {
                    raw.metrics.clear();
                    raw.few.len = 0;
                } else {
                    s.metrics(raw)?;
                }
            }
            Some(8) => raw.tool = s.opt_str()?,
            Some(9) => raw.args_digest = s.opt_str()?,
            Some(10) => raw.error_kind = s.opt_str()?,
            Some(11) => raw.message = s.opt_str()?,
            Some(12) => raw.severity = s.opt_str()?,
            Some(13) => raw.failed = s.opt(Scanner::boolean)?,
            Some(14) => raw.mistake_index = s.opt(Scanner::whole)?,
            _ => s.scalar()?,
        }
        if !s.comma()? {
            break;
        }
    }
    s.ws();
    if !has_type {
        return None;
    }
    match s.peek() {
        None => Some(s.i),
        Some(b'\n') => Some(s.i + 1),
        Some(_) => None,
    }
}

/// The field of [`Raw`] a key names (its number in the match of `read`), by a match the compiler turns into length and word
/// compares (a search of the list costs more than the rest of a short line).
#[inline]
fn field(key: &[u8]) -> Option<usize> {
    Some(match key {
        b"type" => 0,
        b"ts" => 1,
        b"agent" => 2,
        b"task" => 3,
        b"stage" => 4,
        b"duration_s" => 5,
        b"success" => 6,
        b"metrics" => 7,
        b"tool" => 8,
        b"args_digest" => 9,
        b"kind" => 10,
        b"message" => 11,
        b"severity" => 12,
        b"failed" => 13,
        b"mistake_index" => 14,
        _ => return None,
    })
}

/// The first eight bytes of a short key as a little-endian word (the key's bytes only).
const fn word(key: &[u8]) -> u64 {
    let mut w = 0u64;
    let mut i = key.len();
    while i > 0 {
        i -= 1;
        w = (w << 8) | key[i] as u64;
    }
    w
}

/// The exact powers of ten in f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

struct Scanner<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// JSON's blanks but the newline, which ends the line.
    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// `:` and the blanks around it (the colon is looked for first: compact JSON has no blanks).
    #[inline]
    fn colon(&mut self) -> Option<()> {
        // Compact JSON: the colon and a value's first byte (a blank is never one).
        if let Some(&[b':', next]) = self.b.get(self.i..self.i + 2)
            && !matches!(next, b' ' | b'\t' | b'\r')
        {
            self.i += 1;
            return Some(());
        }
        if self.peek() != Some(b':') {
            self.ws();
        }
        self.eat(b':')?;
        self.ws();
        Some(())
    }

    /// What follows a value: `,` and the blanks after it (`true`: another member follows) or
    /// `}` (`false`), blanks before either.
    #[inline]
    fn comma(&mut self) -> Option<bool> {
        // Compact JSON: a comma and the next key's quote, told apart in one look.
        if self.b.get(self.i..self.i + 2) == Some(b",\"") {
            self.i += 1;
            return Some(true);
        }
        let mut c = self.next()?;
        if let b' ' | b'\t' | b'\r' = c {
            self.ws();
            c = self.next()?;
        }
        match c {
            b',' => {
                self.ws();
                Some(true)
            }
            b'}' => Some(false),
            _ => None,
        }
    }

    /// A key, as the number of the field it names (`None`: a field the format does not know).
    /// A known key of up to 7 bytes is told from the 8 bytes after its opening quote at once:
    /// where the first `"` stands gives its length, and the bytes before it are compared as one
    /// word; any other key is read as a string and matched by [`field`].
    #[inline]
    fn key(&mut self) -> Option<Option<usize>> {
        const ONES: u64 = 0x0101_0101_0101_0101;
        if let Some(&[b'"', ref next @ ..]) = self.b.get(self.i..self.i + 9) {
            let x = u64::from_le_bytes(next.try_into().unwrap_or_default());
            let quote = x ^ (ONES * u64::from(b'"'));
            // The lowest set bit marks the first quote (bits above it may be false alarms).
            let found = quote.wrapping_sub(ONES) & !quote & (ONES << 7);
            if found != 0 {
                let len = found.trailing_zeros() as usize / 8;
                let mask = (1u64 << (8 * len)).wrapping_sub(1);
                // The keys of up to 7 bytes that `field` knows, with its numbers.
                const TYPE: u64 = word(b"type");
                const TS: u64 = word(b"ts");
                const AGENT: u64 = word(b"agent");
                const TASK: u64 = word(b"task");
                const STAGE: u64 = word(b"stage");
                const SUCCESS: u64 = word(b"success");
                const METRICS: u64 = word(b"metrics");
                const TOOL: u64 = word(b"tool");
                const KIND: u64 = word(b"kind");
                const MESSAGE: u64 = word(b"message");
                const FAILED: u64 = word(b"failed");
                let f = match (len, x & mask) {
                    (4, TYPE) => Some(0),
                    (2, TS) => Some(1),
                    (5, AGENT) => Some(2),
                    (4, TASK) => Some(3),
                    (5, STAGE) => Some(4),
                    (7, SUCCESS) => Some(6),
                    (7, METRICS) => Some(7),
                    (4, TOOL) => Some(8),
                    (4, KIND) => Some(10),
                    (7, MESSAGE) => Some(11),
                    (6, FAILED) => Some(13),
                    _ => None,
                };
                if f.is_some() {
                    self.i += len + 2;
                    return Some(f);
                }
            } else if let Some(f) = self.long_key() {
                return Some(Some(f));
            }
        }
        let key = self.string()?;
        Some(field(key.as_bytes()))
    }

    /// A known key of 8 to 15 bytes (there is no quote in the 8 bytes after the opening one),
    /// told from the 16 bytes after its opening quote at once, as [`Scanner::key`] tells the
    /// short ones: the key's bytes and its closing quote are compared as one word.
    #[inline]
    fn long_key(&mut self) -> Option<usize> {
        const fn long(key: &[u8]) -> (u128, u128, usize) {
            let mut w = 0u128;
            let mut i = key.len();
            while i > 0 {
                i -= 1;
                w = (w << 8) | key[i] as u128;
            }
            (w, (1u128 << (8 * key.len())) - 1, key.len())
        }
        // Each with its closing quote, and the number `field` gives it.
        const LONG: [((u128, u128, usize), usize); 4] = [
            (long(b"duration_s\""), 5),
            (long(b"args_digest\""), 9),
            (long(b"severity\""), 12),
            (long(b"mistake_index\""), 14),
        ];
        let next = self.b.get(self.i + 1..self.i + 17)?;
        let y = u128::from_le_bytes(next.try_into().unwrap_or_default());
        let &((_, _, len), f) = LONG.iter().find(|((w, mask, _), _)| y & mask == *w)?;
        self.i += len + 1;
        Some(f)
    }

    /// `null` (consumed) or not (nothing consumed). The first byte is looked at first: most
    /// values are not null.
    #[inline]
    fn null(&mut self) -> bool {
        let found = self.peek() == Some(b'n') && self.b[self.i..].starts_with(b"null");
        if found {
            self.i += 4;
        }
        found
    }

    /// A string value ([`Scanner::text`]) or `null`, told by its first byte.
    #[inline]
    fn opt_str(&mut self) -> Option<Option<Cow<'a, str>>> {
        match self.peek()? {
            b'"' => self.text().map(Some),
            b'n' => self.null().then_some(None),
            _ => None,
        }
    }

    /// `null` as `None`, else the value `read` reads.
    #[inline]
    fn opt<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.null() { Some(None) } else { read(self).map(Some) }
    }

    /// A string value: borrowed where it has no escapes, else unescaped as serde_json reads it
    /// (a `\u` escape of a UTF-16 surrogate is left to serde, as are control characters).
    #[inline(always)]
    fn text(&mut self) -> Option<Cow<'a, str>> {
        let at = self.i;
        match self.string() {
            Some(t) => Some(Cow::Borrowed(t)),
            None => {
                self.i = at;
                self.escaped().map(Cow::Owned)
            }
        }
    }

    /// A string that [`Scanner::string`] does not read: unescaped if it stopped at an escape.
    #[cold]
    fn escaped(&mut self) -> Option<String> {
        self.eat(b'"')?;
        let start = self.i;
        let len = string_end(&self.b[start..])?;
        if self.b[start + len] != b'\\' {
            return None;
        }
        self.unescape(start, len)
    }

    /// The rest of a string with escapes, from `start`, whose first `plain` bytes have none.
    #[cold]
    fn unescape(&mut self, start: usize, plain: usize) -> Option<String> {
        let mut out = String::with_capacity(plain + 16);
        let mut i = start;
        let mut n = plain;
        loop {
            out.push_str(self.text.get(i..i + n)?);
            i += n;
            match self.b[i] {
                b'"' => {
                    self.i = i + 1;
                    return Some(out);
                }
                b'\\' => {
                    let c = match *self.b.get(i + 1)? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hex = self.b.get(i + 2..i + 6)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            let code = hex.iter().fold(0, |n, &c| n * 16 + (c as char).to_digit(16).unwrap_or(0));
                            i += 4;
                            // `None` for a surrogate: serde pairs them (or refuses a lone one).
                            char::from_u32(code)?
                        }
                        _ => return None,
                    };
                    out.push(c);
                    i += 2;
                }
                _ => return None, // a control character
            }
            n = string_end(&self.b[i..])?;
        }
    }

    /// A string without escapes or control characters.
    #[inline(always)]
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let rest = &self.b[start..];
        let len = string_end(rest)?;
        if rest[len] != b'"' {
            return None;
        }
        self.i = start + len + 1;
        self.text.get(start..start + len)
    }

    fn boolean(&mut self) -> Option<bool> {
        let rest = &self.b[self.i..];
        if rest.starts_with(b"true") {
            self.i += 4;
            Some(true)
        } else if rest.starts_with(b"false") {
            self.i += 5;
            Some(false)
        } else {
            None
        }
    }

    /// A JSON number with at most 15 significant digits and a decimal exponent within +-22.
    /// One pass: the significand is summed as its digits are read, and a number that cannot
    /// qualify (a 16th significant digit) is given up on there.
    #[inline(always)]
    fn number(&mut self) -> Option<f64> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.i += 1;
            if self.peek() == Some(b'0') {
                return None; // `-0...` is left to serde (the sign of zero)
            }
        }
        // The significand (leading zeros add nothing to it).
        let mut m = 0u64;
        let int_start = self.i;
        self.significand(&mut m)?;
        let int = self.i - int_start;
        if int == 0 || (int > 1 && self.b[int_start] == b'0') {
            return None;
        }
        let mut exponent: i64 = 0;
        if self.peek() == Some(b'.') {
            self.i += 1;
            let frac_start = self.i;
            self.significand(&mut m)?;
            let frac = self.i - frac_start;
            if frac == 0 || int + frac > 40 {
                return None;
            }
            exponent = -(frac as i64);
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            let negative = match self.peek()? {
                b'-' | b'+' => self.next()? == b'-',
                _ => false,
            };
            let e = self.digits();
            if e.is_empty() || e.len() > 4 {
                return None;
            }
            let e: i64 = e.iter().fold(0, |n, &c| n * 10 + i64::from(c - b'0'));
            exponent += if negative { -e } else { e };
        }
        if int > 40 || !(-22..=22).contains(&exponent) {
            return None;
        }
        // As serde_json computes it: exact here, as the significand (< 10^15) and the power of
        // ten (<= 10^22) are exact and one product or quotient rounds once.
        let pow = POW10[exponent.unsigned_abs() as usize];
        // Through i64 (the same value, below 10^15): one instruction where u64 takes several.
        let m = m as i64 as f64;
        let f = if exponent >= 0 { m * pow } else { m / pow };
        Some(if negative { -f } else { f })
    }

    /// Reads a run of digits into the significand `m`; `None` at a 16th significant digit
    /// (digits from the first non-zero one on: `m` then reaches 10^15, before it can overflow).
    /// The loop works on local copies of the position and the significand, which stay in
    /// registers (through `&mut` they went to memory and back at every digit).
    /// Eight digits are read at once where there are eight (a timestamp's ten whole digits,
    /// say), as one word.
    #[inline]
    fn significand(&mut self, m: &mut u64) -> Option<()> {
        let (mut i, mut v) = (self.i, *m);
        while let Some(chunk) = self.b.get(i..i + 8) {
            let x = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
            if !eight_digits(x) {
                break;
            }
            // `v` only grows as digits are added, so the check after eight is the check after
            // each; past u64 it is past 10^15 too.
            v = v.checked_mul(100_000_000)?.checked_add(eight_value(x))?;
            if v >= 1_000_000_000_000_000 {
                return None;
            }
            i += 8;
        }
        while let Some(&c @ b'0'..=b'9') = self.b.get(i) {
            i += 1;
            v = v * 10 + u64::from(c - b'0');
            if v >= 1_000_000_000_000_000 {
                return None;
            }
        }
        (self.i, *m) = (i, v);
        Some(())
    }

    /// A run of ASCII digits (perhaps empty).
    #[inline]
    fn digits(&mut self) -> &'a [u8] {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        &self.b[start..self.i]
    }

    /// A whole number >= 0 that fits in u64 (`mistake_index`).
    fn whole(&mut self) -> Option<u64> {
        let text = self.digits();
        if text.is_empty() || (text.len() > 1 && text[0] == b'0') {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            return None;
        }
        self.text.get(self.i - text.len()..self.i)?.parse().ok()
    }

    /// `metrics`: a flat object of name -> number, in order; up to [`FEW`] pairs in `raw.few`
    /// (no allocation), more in `raw.metrics`.
    fn metrics(&mut self, raw: &mut Raw<'a>) -> Option<()> {
        raw.few.len = 0;
        raw.metrics.clear();
        self.eat(b'{')?;
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            let name = self.string()?;
            self.colon()?;
            let value = self.number()?;
            if raw.few.len < FEW && raw.metrics.is_empty() {
                raw.few.pairs[raw.few.len] = (name, value);
                raw.few.len += 1;
            } else {
                if raw.metrics.is_empty() {
                    raw.metrics.extend(raw.few.pairs.iter().map(|&(k, v)| (Cow::Borrowed(k), v)));
                    raw.few.len = 0;
                }
                raw.metrics.push((Cow::Borrowed(name), value));
            }
            if !self.comma()? {
                return Some(());
            }
        }
    }

    /// The value of an unknown field: a string, number, boolean or null (anything else: `None`).
    fn scalar(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b't' | b'f' => self.boolean().map(drop),
            b'n' => self.null().then_some(()),
            _ => self.number().map(drop),
        }
    }
}

/// Whether the scan read `line`; where it did, its reading equals serde's, field for field and
/// bit for bit (a panic otherwise). The fuzz target and the tests check the scan with it.
pub(super) fn agrees(line: &[u8]) -> bool {
    let mut raw = Raw::default();
    let fast = scan(line, &mut raw).then(|| {
        // As serde keeps them: all in the list.
        let few = std::mem::take(&mut raw.few);
        raw.metrics.splice(0..0, few.pairs[..few.len].iter().map(|&(k, v)| (Cow::Borrowed(k), v)));
        raw
    });
    let slow: Option<Raw<'_>> = serde_json::from_slice(line).ok();
    match (&fast, &slow) {
        (Some(f), Some(s)) => {
            assert_eq!(format!("{f:?}"), format!("{s:?}"), "{}", String::from_utf8_lossy(line));
            for (a, b) in [(f.ts, s.ts), (f.duration_s, s.duration_s)] {
                assert_eq!(a.map(f64::to_bits), b.map(f64::to_bits), "{}", String::from_utf8_lossy(line));
            }
            for ((_, a), (_, b)) in f.metrics.iter().zip(&s.metrics) {
                assert_eq!(a.to_bits(), b.to_bits(), "{}", String::from_utf8_lossy(line));
            }
            true
        }
        (Some(_), None) => panic!("the scan accepted what serde refuses: {}", String::from_utf8_lossy(line)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(line: &str) -> bool {
        agrees(line.as_bytes())
    }

    #[test]
    fn common_lines_are_scanned_as_serde_reads_them() {
        for line in [
            r#"{"ts":1700000000.0,"type":"task_start","agent":"tau-airline","task":"tau-0-t0"}"#,
            r#"{"ts":1700000012.5,"type":"stage","agent":"a","task":"t","stage":"execution","duration_s":1.0,"success":true,"metrics":{"chars":0,"x":1.5e3},"tool":"get","args_digest":"be671ec683edad8f"}"#,
            r#" { "type" : "error" , "ts":1,"agent":"a","task":"t","stage":"s","kind":"E","message":"café ✓","severity":null } "#,
            r#"{"type":"label","task":"t","failed":true,"mistake_index":12,"extra":"x","n":null,"b":false,"f":-2.5}"#,
            r#"{"type":"stage","metrics":null,"duration_s":0.000001,"ts":1e3}"#,
            r#"{"type":"stage","metrics":{}}"#,
            // Escapes in values (not in keys) are read as serde reads them.
            r#"{"type":"a\"b","message":"x\n\r\t\b\f\/\\\u00e9\u20AC\u0000 end","agent":"\"q\""}"#,
            r#"{"type":"x","message":"exitcode: 124 (execution failed)\nCode output: \nTimeout","severity":"h\u0069gh"}"#,
            // Leading zeros are not significant digits; 15 significant digits are taken.
            r#"{"type":"x","ts":0.000123456789012345,"duration_s":999999999999999}"#,
            r#"{"type":"x","ts":0.0000000000000000000001,"duration_s":-1.00000000000000e-3}"#,
        ] {
            assert!(same(line), "not scanned: {line}");
        }
    }

    #[test]
    fn odd_lines_are_left_to_serde() {
        for line in [
            r#"{"type":"x","message":"\ud83d\ude00"}"#,
            r#"{"type":"x","message":"\udc00"}"#,
            r#"{"type":"x","message":"a\x"}"#,
            r#"{"type":"x","message":"a\u00g0"}"#,
            r#"{"type":"x","message":"a\u+0e9"}"#,
            r#"{"type":"x","message":"a\"#,
            r#"{"type":"x","message":"a\u00"}"#,
            r#"{"type":"x","m\u0065ssage":"a"}"#,
            "{\"type\":\"x\",\"message\":\"a\\n\tb\"}",
            r#"{"type":"x","ts":-0.0}"#,
            r#"{"type":"x","ts":1234567890123456}"#,
            r#"{"type":"x","ts":1e23}"#,
            r#"{"type":"x","ts":1000000000000000}"#,
            r#"{"type":"x","ts":0.1000000000000000}"#,
            r#"{"type":"x","ts":0.00000000000000000000001}"#,
            r#"{"type":"x","ts":01}"#,
            r#"{"type":"x","ts":1.}"#,
            r#"{"type":"x","ts":1e}"#,
            r#"{"type":"x","type":"y"}"#,
            r#"{"type":"x","other":[1]}"#,
            r#"{"type":"x","mistake_index":1.0}"#,
            r#"{"type":"x","mistake_index":-1}"#,
            r#"{"type":"x","ts":"1"}"#,
            r#"{"type":"x"} x"#,
            r#"{"type":"x",}"#,
            r#"{"ts":1}"#,
            "{\"type\":\"x\ty\"}",
            r#"{"type":"x","metrics":{"a":"1"}}"#,
            r#"[1]"#,
        ] {
            assert!(!same(line), "scanned: {line}");
        }
        // Bytes that are not UTF-8, in a value, a key and an unknown field's value.
        for line in
            [&b"{\"type\":\"a\xff\"}"[..], b"{\"type\":\"a\",\"\xc3\":1}", b"{\"type\":\"a\",\"x\":\"\xe2\x82\"}"]
        {
            assert!(!agrees(line), "scanned: {}", String::from_utf8_lossy(line));
        }
        assert!(agrees("{\"type\":\"\u{e9}\",\"x\":\"\u{20ac}\"}".as_bytes()));
    }

    #[test]
    fn keys_are_told_as_a_string_and_field_tell_them() {
        let keys = [
            "type",
            "ts",
            "agent",
            "task",
            "stage",
            "duration_s",
            "success",
            "metrics",
            "tool",
            "args_digest",
            "kind",
            "message",
            "severity",
            "failed",
            "mistake_index",
            "",
            "t",
            "typ",
            "types",
            "Type",
            "tasks",
            "ts2",
            "kind\\n",
            "duration_",
            "duration_ss",
            "durationXs",
            "severit",
            "severityy",
            "args_digests",
            "mistake_inde",
            "mistake_index_",
            "severity\\u0022",
            "duration_s\u{0}",
            "tool\\u0001",
            "ts\u{0}",
            "tool\u{1}",
            "x",
            "succes",
            "messages",
            "é",
            "tâche",
        ];
        for key in keys {
            for tail in ["\":1}", "\"", "\":null,\"a_longer_key\":2}", ""] {
                let text = format!("\"{key}{tail}");
                let mut fast = Scanner { text: &text, b: text.as_bytes(), i: 0 };
                let mut slow = Scanner { text: &text, b: text.as_bytes(), i: 0 };
                let expected = slow.string().map(|k| field(k.as_bytes()));
                assert_eq!(fast.key(), expected, "{text}");
                if expected.is_some() {
                    assert_eq!(fast.i, slow.i, "{text}");
                }
            }
        }
    }

    #[test]
    fn many_metrics_are_read_in_order() {
        let pairs: Vec<String> = (0..12).map(|i| format!("\"m{i}\":{i}.5")).collect();
        for n in [0, 1, 8, 9, 12] {
            let line = format!(r#"{{"type":"stage","metrics":{{{}}}}}"#, pairs[..n].join(","));
            assert!(same(&line), "not scanned: {line}");
        }
    }

    #[test]
    fn numbers_match_serde_bit_for_bit() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut scanned = 0;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let digits = (x % 15 + 1) as usize;
            let mantissa = format!("{:0>15}", x % 1_000_000_000_000_000)[..digits].to_owned();
            let point = (x >> 20) as usize % (digits + 1);
            let exp = ((x >> 30) % 31) as i32 - 15;
            let mut n = mantissa.clone();
            if point > 0 && point < digits {
                n.insert(point, '.');
            }
            let n = if n.starts_with('0') && !n.starts_with("0.") { format!("1{n}") } else { n };
            let text = if x.is_multiple_of(3) { format!("{n}e{exp}") } else { n };
            let line = format!(r#"{{"type":"x","ts":{text}}}"#);
            scanned += usize::from(same(&line));
        }
        assert!(scanned > 10_000, "only {scanned} numbers scanned");
    }
}
