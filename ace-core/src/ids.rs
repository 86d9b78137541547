//! Ids that records and decisions refer to: 64-bit values written as 16 hex digits.
//!
//! They sit below the organs so that a stored record, a signal or a decision can name a pattern
//! or an intervention without importing the organ that makes it.

/// A random 64-bit value, different at every call and in every process: std's hasher, whose
/// keys come from the system's randomness, over a process-wide count (no unsafe, no crate).
/// For values that must not meet another engine's (an engine's first intervention id, a spill
/// directory owner's tag), not for cryptography.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static DRAWN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(DRAWN.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.finish()
}

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
