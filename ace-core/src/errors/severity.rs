//! Severity inferred from an error's kind and message when the caller gives none.
//!
//! Words are matched case-insensitively at the start of a word of the kind (read as words:
//! `TimeoutError` is `timeout error`) and of the first 512 bytes of the message; the first row
//! that matches wins:
//!
//! | severity | words |
//! |---|---|
//! | critical | fatal, panic, critical, out of memory / outofmemory / oom, segfault / segmentation fault, corrupt, data loss, deadlock, stack overflow |
//! | high | timeout / timed out, refused, unavailable, unreachable, permission denied, unauthorized, forbidden, authentication, crash, connection reset, broken pipe, exhausted |
//! | low | warning / warn, deprecated / deprecation, retrying, not found, skipped, slow |
//! | medium | anything else |

use crate::event::Severity;

const CRITICAL: &[&str] = &[
    "fatal",
    "panic",
    "critical",
    "out of memory",
    "outofmemory",
    "oom",
    "segfault",
    "segmentation fault",
    "corrupt",
    "data loss",
    "deadlock",
    "stack overflow",
    "stackoverflow",
];
const HIGH: &[&str] = &[
    "timeout",
    "timed out",
    "refused",
    "unavailable",
    "unreachable",
    "permission denied",
    "unauthorized",
    "forbidden",
    "authentication",
    "crash",
    "connection reset",
    "broken pipe",
    "exhausted",
];
const LOW: &[&str] = &["warning", "warn", "deprecated", "deprecation", "retrying", "not found", "skipped", "slow"];

/// The severity of an error of `kind` with `message` (see the module docs for the rules).
#[must_use]
pub fn infer(kind: &str, message: &str) -> Severity {
    // Only the first 512 bytes of the message are read: severity words come early.
    let message = &message.as_bytes()[..message.len().min(512)];
    let table = by_first_letter();
    let mut best: Option<Severity> = None;
    let mut consider = |text: &[u8], i: usize| {
        let letter = usize::from(text[i].to_ascii_lowercase() - b'a');
        for &(word, severity) in &table[letter] {
            if best.is_some_and(|b| rank(b) >= rank(severity)) {
                break;
            }
            if starts_with_ignore_case(&text[i..], word) {
                best = Some(severity);
                break;
            }
        }
    };
    // Word starts: after a non-letter, and (in the kind) at a CamelCase hump.
    let kind_bytes = kind.as_bytes();
    for i in 0..kind_bytes.len() {
        let prev = if i == 0 { b' ' } else { kind_bytes[i - 1] };
        if kind_bytes[i].is_ascii_alphabetic()
            && (!prev.is_ascii_alphabetic() || (prev.is_ascii_lowercase() && kind_bytes[i].is_ascii_uppercase()))
        {
            consider(kind_bytes, i);
        }
    }
    for i in 0..message.len() {
        if message[i].is_ascii_alphabetic() && (i == 0 || !message[i - 1].is_ascii_alphabetic()) {
            consider(message, i);
        }
    }
    best.unwrap_or(Severity::Medium)
}

type Table = [Vec<(&'static [u8], Severity)>; 26];

/// The words by their first letter, most severe first.
fn by_first_letter() -> &'static Table {
    static TABLE: std::sync::OnceLock<Table> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t: Table = Default::default();
        for (words, severity) in [(CRITICAL, Severity::Critical), (HIGH, Severity::High), (LOW, Severity::Low)] {
            for w in words {
                t[usize::from(w.as_bytes()[0] - b'a')].push((w.as_bytes(), severity));
            }
        }
        t
    })
}

/// Critical first, then high, then low: the order in which rules win.
fn rank(s: Severity) -> u8 {
    match s {
        Severity::Critical => 3,
        Severity::High => 2,
        Severity::Low => 1,
        Severity::Medium => 0,
    }
}

fn starts_with_ignore_case(text: &[u8], word: &[u8]) -> bool {
    text.len() >= word.len() && text[..word.len()].eq_ignore_ascii_case(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_messages_give_severities() {
        for (kind, message, want) in [
            ("MemoryError", "process ran out of memory", Severity::Critical),
            ("RuntimeError", "FATAL: database is corrupt", Severity::Critical),
            ("TimeoutError", "model call exceeded 30s", Severity::High),
            ("ConnectionError", "connection refused by 10.0.0.1:5432", Severity::High),
            ("HTTPError", "403 Forbidden", Severity::High),
            ("DeprecationWarning", "use v2", Severity::Low),
            ("KeyError", "'answer' not found in response", Severity::Low),
            ("ValueError", "could not parse the plan", Severity::Medium),
            ("ValueError", "the room is full", Severity::Medium),
            ("", "", Severity::Medium),
        ] {
            assert_eq!(infer(kind, message), want, "{kind}: {message}");
        }
    }
}
