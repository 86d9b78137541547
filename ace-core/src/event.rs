//! The shared vocabulary: severities, stage names, ids, and the events agents report.
//!
//! Validation lives here, once, so that the Rust API, the Python binding and the Node binding
//! accept and reject exactly the same input.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The longest agent or task id accepted, in bytes.
pub const MAX_ID_LEN: usize = 256;
/// The longest stage or metric name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// The most named metrics one stage event may carry.
pub const MAX_METRICS_PER_EVENT: usize = 64;

/// The stages most agents go through. Any other lower-case name is a valid stage too.
pub mod stages {
    /// Deciding what to do.
    pub const PLANNING: &str = "planning";
    /// Doing it: model and tool calls.
    pub const EXECUTION: &str = "execution";
    /// Looking back at what happened.
    pub const REFLECTION: &str = "reflection";
    /// Checking the result.
    pub const VERIFICATION: &str = "verification";
}

/// Well-known metric names. Any valid name works; these get documented meaning and are shown
/// by `ace demo`.
pub mod metric_names {
    /// Prompt tokens sent to a model during the stage.
    pub const TOKENS_IN: &str = "tokens_in";
    /// Completion tokens received from a model during the stage.
    pub const TOKENS_OUT: &str = "tokens_out";
    /// Money spent during the stage, in US dollars.
    pub const COST_USD: &str = "cost_usd";
    /// The stage's duration in seconds (recorded for every stage event).
    pub const DURATION: &str = "duration_s";
    /// 1 for a successful stage, 0 for a failed one (recorded for every stage event).
    pub const SUCCESS: &str = "success";
}

/// How bad something is. Ordered: `Low < Medium < High < Critical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing.
    Low,
    /// Worth watching.
    Medium,
    /// Worth acting on.
    High,
    /// Act now.
    Critical,
}

impl Severity {
    /// All severities, from least to most severe.
    pub const ALL: [Severity; 4] = [Severity::Low, Severity::Medium, Severity::High, Severity::Critical];

    /// The lower-case name (`"high"`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            other => Err(Error::invalid(
                "severity",
                format!("expected one of low, medium, high, critical; got {:?}", truncate(other, 40)),
            )),
        }
    }
}

/// Checks an agent or task id: 1 to [`MAX_ID_LEN`] bytes, no control characters.
#[inline]
pub fn validate_id(field: &'static str, id: &str) -> Result<()> {
    // Printable ASCII, the usual id, has no control characters; others are decoded.
    if !id.is_empty() && id.len() <= MAX_ID_LEN && is_printable_ascii(id.as_bytes()) {
        return Ok(());
    }
    validate_unusual_id(field, id)
}

/// [`validate_id`] for an id that is not printable ASCII or has an odd length.
#[cold]
fn validate_unusual_id(field: &'static str, id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(Error::invalid(field, format!("must be at most {MAX_ID_LEN} bytes, got {}", id.len())));
    }
    if id.chars().any(char::is_control) {
        return Err(Error::invalid(field, format!("must not contain control characters: {:?}", truncate(id, 40))));
    }
    Ok(())
}

/// Whether every byte is printable ASCII (0x20 to 0x7e), eight at a time: ids are checked on
/// every recording call.
fn is_printable_ascii(bytes: &[u8]) -> bool {
    is_ascii_from(bytes, 0x20)
}

/// Whether every byte is printable ASCII other than the space (0x21 to 0x7e), eight at a time:
/// a tool call's arguments digest is checked on every call.
pub(crate) fn is_graphic_ascii(bytes: &[u8]) -> bool {
    is_ascii_from(bytes, 0x21)
}

/// Whether every byte is ASCII from `low` (at most 0x80) to 0x7e, eight at a time; a tail or a
/// short id (most are 4 to 16 bytes) is read as overlapping words, not byte by byte.
#[inline]
fn is_ascii_from(bytes: &[u8], low: u8) -> bool {
    let n = bytes.len();
    if n < 4 {
        return bytes.iter().all(|b| (low..0x7f).contains(b));
    }
    if n < 8 {
        // The first four bytes and the last four, which overlap when there are fewer than 8.
        let first = u32::from_ne_bytes(bytes[..4].try_into().expect("four bytes"));
        let last = u32::from_ne_bytes(bytes[n - 4..].try_into().expect("four bytes"));
        return word_in_range(u64::from(first) | (u64::from(last) << 32), low);
    }
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        if !word_in_range(u64::from_ne_bytes(w.try_into().expect("eight bytes")), low) {
            return false;
        }
    }
    // The last eight bytes, overlapping some already checked.
    words.remainder().is_empty()
        || word_in_range(u64::from_ne_bytes(bytes[n - 8..].try_into().expect("eight bytes")), low)
}

/// Whether each of the eight bytes of `x` is from `low` (at most 0x80) to 0x7e.
#[inline]
fn word_in_range(x: u64, low: u8) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // A byte below `low` (or at 0x80 and above) sets its high bit in the first term; one above
    // 0x7e (0x7f and above) in the second. A borrow or carry reaches a byte only from one below
    // it that is out of range already.
    ((x.wrapping_sub(ONES * u64::from(low)) & !x) | (x.wrapping_add(ONES) | x)) & HIGH == 0
}

/// Whether two names (ids, stage or metric names) are equal. A record call compares its agent,
/// stage, task and metric names with an entry's; most are 4 to 16 bytes, compared here as two
/// overlapping words each instead of through a call to `memcmp`.
#[inline]
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        0..4 => a == b,
        4..8 => {
            let word = |s: &[u8], at: usize| u32::from_ne_bytes(s[at..at + 4].try_into().expect("four bytes"));
            word(a, 0) == word(b, 0) && word(a, n - 4) == word(b, n - 4)
        }
        8..=16 => {
            let word = |s: &[u8], at: usize| u64::from_ne_bytes(s[at..at + 8].try_into().expect("eight bytes"));
            word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8)
        }
        _ => a == b,
    }
}

/// Checks a stage name: 1 to [`MAX_NAME_LEN`] bytes of lower-case ASCII letters, digits, `_`, `-`
/// or `.`, starting with a letter (`planning`, `tool_call`, `web-search`).
pub fn validate_stage(stage: &str) -> Result<()> {
    validate_name("stage", stage, &STAGE_CHARS)
}

/// Checks a metric name: 1 to [`MAX_NAME_LEN`] bytes of ASCII letters, digits, `_`, `-`, `.` or
/// `:`, starting with a letter (`tokens_in`, `cost_usd`).
#[inline]
pub fn validate_metric_name(name: &str) -> Result<()> {
    validate_name("metric name", name, &METRIC_CHARS)
}

/// The bytes of a metric name: ASCII letters, digits, `_`, `-`, `.` and `:`.
const METRIC_CHARS: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b':');
        b += 1;
    }
    t
};

/// The bytes of a stage name: lower-case ASCII letters, digits, `_`, `-` and `.`.
const STAGE_CHARS: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b'.');
        b += 1;
    }
    t
};

/// Every allowed character is ASCII, so a name is checked byte by byte against a table (names
/// are checked on every recording call; the error is built apart, out of the way).
#[inline]
fn validate_name(field: &'static str, name: &str, allowed: &[bool; 256]) -> Result<()> {
    let bytes = name.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LEN
        && bytes[0].is_ascii_alphabetic()
        && bytes.iter().all(|&c| allowed[usize::from(c)]);
    if valid { Ok(()) } else { Err(invalid_name(field, name)) }
}

#[cold]
fn invalid_name(field: &'static str, name: &str) -> Error {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Error::invalid(field, format!("must be 1 to {MAX_NAME_LEN} bytes, got {}", name.len()));
    }
    let rule = if field == "stage" {
        "lower-case ASCII letters, digits, '_', '-' or '.', starting with a letter"
    } else {
        "ASCII letters, digits, '_', '-', '.' or ':', starting with a letter"
    };
    Error::invalid(field, format!("{:?} is not valid: use {rule}", truncate(name, 40)))
}

/// Checks a metric value: finite.
#[inline]
pub fn validate_value(field: &'static str, value: f64) -> Result<()> {
    if value.is_finite() { Ok(()) } else { Err(invalid_value(field, value)) }
}

#[cold]
fn invalid_value(field: &'static str, value: f64) -> Error {
    Error::invalid(field, format!("must be finite, got {value}"))
}

/// Checks a duration in seconds: finite and not negative.
#[inline]
pub fn validate_duration(seconds: f64) -> Result<()> {
    if seconds.is_finite() && seconds >= 0.0 { Ok(()) } else { Err(invalid_duration(seconds)) }
}

#[cold]
fn invalid_duration(seconds: f64) -> Error {
    Error::invalid("duration", format!("must be a finite number of seconds >= 0, got {seconds}"))
}

/// The most days of records a store may be told to keep (`retain(days)`, `ace retain`,
/// `ACE_RETAIN_DAYS`): 100 years. More is a typo (a cutoff before 1970 deletes nothing, and past
/// about 292,000 years the cutoff no longer fits in the clock's integer).
pub const MAX_RETAIN_DAYS: u32 = 36_500;

/// The cutoff of keeping `days` days of records back from `now`: records created strictly
/// before it go. The one rule every store's retention and `ACE_RETAIN_DAYS` follow.
///
/// Errors with [`Error::InvalidInput`] (field `days`) for 0, which would delete every record,
/// and for more than [`MAX_RETAIN_DAYS`].
pub fn retain_cutoff(days: u32, now: crate::clock::Timestamp) -> Result<crate::clock::Timestamp> {
    if days == 0 {
        return Err(Error::invalid(
            "days",
            "retaining 0 days would delete every record; give 1 or more \
             (to drop every ace table, use `ace migrate down --to 0`)",
        ));
    }
    if days > MAX_RETAIN_DAYS {
        return Err(Error::invalid("days", format!("{days} days is more than {MAX_RETAIN_DAYS} (100 years)")));
    }
    Ok(now.minus(std::time::Duration::from_secs(u64::from(days) * 86_400)))
}

/// The first `max` characters of `s`, for error messages about huge input.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Display, parsing and serde for a `u64` id written as 16 hex digits (also in JSON, where a
/// 64-bit number would lose digits in JavaScript). `$what` names the id in parse errors.
macro_rules! hex_id {
    ($name:ident, $what:literal) => {
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{:016x}", self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::Error;

            fn from_str(s: &str) -> $crate::Result<Self> {
                if s.len() == 16
                    && let Ok(v) = u64::from_str_radix(s, 16)
                {
                    return Ok($name(v));
                }
                Err($crate::Error::invalid($what, format!("expected 16 hex digits, got {s:?}")))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use hex_id;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_as_their_bytes_at_every_length_and_position() {
        // Every length from empty to past the word paths, each byte changed in turn (the words
        // overlap in the middle for lengths that are not a multiple of the word).
        for n in 0..40 {
            let a: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            assert!(same_name(&a, &a.clone()), "{a:?}");
            for at in 0..n {
                let mut b = a.clone().into_bytes();
                b[at] = b'Z';
                let b = String::from_utf8(b).unwrap();
                assert!(!same_name(&a, &b), "{a:?} against {b:?}");
            }
            let longer = format!("{a}x");
            assert!(!same_name(&a, &longer) && !same_name(&longer, &a), "{a:?}");
            // A multi-byte character: bytes, not characters, are compared.
            if n >= 2 {
                let accented = format!("{}\u{e9}", &a[..n - 2]);
                assert_eq!(same_name(&a, &accented), a == accented);
            }
        }
    }

    #[test]
    fn days_become_a_cutoff_and_zero_or_absurd_days_are_refused() {
        use crate::clock::Timestamp;
        const DAY: i64 = 86_400_000_000;
        let now = Timestamp::from_micros(100 * DAY);
        assert_eq!(retain_cutoff(30, now).unwrap(), Timestamp::from_micros(70 * DAY));
        let oldest = Timestamp::from_micros((100 - i64::from(MAX_RETAIN_DAYS)) * DAY);
        assert_eq!(retain_cutoff(MAX_RETAIN_DAYS, now).unwrap(), oldest);
        for days in [0, MAX_RETAIN_DAYS + 1, u32::MAX] {
            let err = retain_cutoff(days, now).unwrap_err();
            assert_eq!(err.code(), "invalid_input", "{days}: {err}");
            assert!(err.to_string().contains("days"), "{err}");
        }
    }

    #[test]
    fn printable_ascii_is_checked_as_byte_by_byte() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..100_000 {
            let len = i % 40;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Mostly letters, now and then a byte at or past the edges.
                    let edges = [0x00, 0x1f, 0x20, 0x21, 0x7e, 0x7f, 0x80, 0xc3, 0xff];
                    if x % 16 < 12 { b'a' + (x >> 8) as u8 % 26 } else { edges[(x >> 8) as usize % 9] }
                })
                .collect();
            let want = bytes.iter().all(|b| (0x20..0x7f).contains(b));
            assert_eq!(is_printable_ascii(&bytes), want, "{bytes:?}");
            assert_eq!(is_graphic_ascii(&bytes), bytes.iter().all(u8::is_ascii_graphic), "{bytes:?}");
        }
        // Every byte at every place of every length to 17 (short ids and tails are read as
        // overlapping words).
        for len in 1..=17 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut word = vec![b'k'; len];
                    word[at] = b;
                    assert_eq!(is_printable_ascii(&word), (0x20..0x7f).contains(&b), "{b:#x} at {at} of {len}");
                    assert_eq!(is_graphic_ascii(&word), b.is_ascii_graphic(), "{b:#x} at {at} of {len}");
                }
            }
        }
    }

    #[test]
    fn severity_round_trips_and_orders() {
        for s in Severity::ALL {
            assert_eq!(s.as_str().parse::<Severity>().unwrap(), s);
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert!(Severity::Low < Severity::Critical);
        assert_eq!("fatal".parse::<Severity>().unwrap_err().code(), "invalid_input");
    }

    #[test]
    fn ids_are_checked() {
        assert!(validate_id("agent", "agent-7/α").is_ok());
        assert!(validate_id("agent", "").is_err());
        assert!(validate_id("agent", &"x".repeat(100 * 1024)).is_err());
        assert!(validate_id("agent", "a\nb").is_err());
    }

    #[test]
    fn stage_names_are_lower_case() {
        for ok in ["planning", "tool_call", "web-search", "step.2"] {
            assert!(validate_stage(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Planning", "1st", "ex ec", "plan;DROP", "é", &"a".repeat(65)] {
            let err = validate_stage(bad).unwrap_err();
            assert_eq!(err.code(), "invalid_input", "{bad}");
        }
    }

    #[test]
    fn values_must_be_finite() {
        assert!(validate_value("metric", 1.5).is_ok());
        assert!(validate_value("metric", f64::NAN).is_err());
        assert!(validate_duration(-0.1).is_err());
        assert!(validate_duration(f64::INFINITY).is_err());
        assert!(validate_duration(0.0).is_ok());
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("ééé", 2), "éé…");
        assert_eq!(truncate("ab", 5), "ab");
    }
}
