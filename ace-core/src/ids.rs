//! Ids that records and decisions refer to: 64-bit values written as 16 hex digits.
//!
//! They sit below the organs so that a stored record, a signal or a decision can name a pattern
//! or an intervention without importing the organ that makes it.

/// FNV-1a over `bytes` (the hash behind [`PatternId::of`]).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The stable id of a pattern: a hash of its kind and template. Written as 16 hex digits
/// (also in JSON, where a 64-bit number would lose digits in JavaScript).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PatternId(pub u64);

crate::event::hex_id!(PatternId, "pattern id");

impl PatternId {
    /// The id of `template` for errors of `kind`.
    #[must_use]
    pub fn of(kind: &str, template: &str) -> Self {
        let mut h = fnv1a(kind.as_bytes());
        h ^= 0x1f;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        for &b in template.as_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        PatternId(h)
    }
}

/// An intervention's id: an engine's ids count up from a random start of its own, so they are
/// unique across engines too (a restart, a replica); 16 hex digits when written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InterventionId(pub u64);

crate::event::hex_id!(InterventionId, "intervention id");
