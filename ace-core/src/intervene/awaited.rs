//! The interventions awaiting a reported outcome, in a ring of bounded size.

use std::sync::Arc;

use crate::decision::Strategy;
use crate::ids::InterventionId;
use crate::signal::SignalKind;

/// Interventions awaiting an outcome, at most (the oldest are forgotten beyond this).
pub(super) const MAX_AWAITING: usize = 57_344;

/// An intervention awaiting its outcome.
pub(super) struct Awaiting {
    pub(super) kind: SignalKind,
    pub(super) strategy: Strategy,
    pub(super) agent: Arc<str>,
    pub(super) task: Arc<str>,
    /// What the signal acted on was about (see `super::subject`).
    pub(super) subject: u64,
}

/// The step between consecutive intervention ids (odd, so it has an inverse modulo 2^64).
pub(super) const ID_STEP: u64 = 0x9E37_79B9_7F4A_7C15;
/// `ID_STEP`'s inverse modulo 2^64 (Newton's iteration; each step doubles the correct bits).
const ID_STEP_INVERSE: u64 = {
    let mut inv = ID_STEP;
    let mut i = 0;
    while i < 6 {
        inv = inv.wrapping_mul(2u64.wrapping_sub(ID_STEP.wrapping_mul(inv)));
        i += 1;
    }
    inv
};

/// The interventions awaiting an outcome, in a ring of [`MAX_AWAITING`] slots.
///
/// Ids are `first + n * ID_STEP` (wrapping), so an id gives back its sequence number `n`, and
/// `n % MAX_AWAITING` is its slot: a slot holds the newest intervention that maps to it, and an
/// older one is forgotten when a newer takes its place. A hash map with removals at one end
/// and inserts at the other fills with tombstones until it doubles its table; this never grows
/// past the cap.
pub(super) struct Awaited {
    first: u64,
    next: u64,
    pub(super) slots: Vec<Option<(u64, Awaiting)>>,
}

impl Awaited {
    pub(super) fn new(first: u64) -> Self {
        Awaited { first, next: 0, slots: Vec::new() }
    }

    pub(super) fn push(&mut self, awaiting: Awaiting) -> InterventionId {
        let n = self.next;
        self.next += 1;
        let slot = (n % MAX_AWAITING as u64) as usize;
        if slot == self.slots.len() {
            self.slots.push(Some((n, awaiting)));
        } else {
            self.slots[slot] = Some((n, awaiting));
        }
        InterventionId(self.first.wrapping_add(n.wrapping_mul(ID_STEP)))
    }

    fn slot(&mut self, id: InterventionId) -> Option<&mut Option<(u64, Awaiting)>> {
        let n = id.0.wrapping_sub(self.first).wrapping_mul(ID_STEP_INVERSE);
        if n >= self.next {
            return None;
        }
        let slot = self.slots.get_mut((n % MAX_AWAITING as u64) as usize)?;
        slot.as_ref().is_some_and(|(m, _)| *m == n).then_some(slot)
    }

    pub(super) fn get_mut(&mut self, id: InterventionId) -> Option<&mut Awaiting> {
        self.slot(id)?.as_mut().map(|(_, a)| a)
    }

    pub(super) fn remove(&mut self, id: InterventionId) -> Option<Awaiting> {
        self.slot(id)?.take().map(|(_, a)| a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn awaiting() -> Awaiting {
        Awaiting {
            kind: SignalKind::TaskError,
            strategy: Strategy::Replan,
            agent: "a".into(),
            task: "t".into(),
            subject: 1,
        }
    }

    #[test]
    fn the_step_inverse_recovers_sequence_numbers() {
        assert_eq!(ID_STEP.wrapping_mul(ID_STEP_INVERSE), 1);
        let mut ring = Awaited::new(12_345);
        let ids: Vec<InterventionId> = (0..3).map(|_| ring.push(awaiting())).collect();
        assert_eq!(ids[0].0, 12_345);
        assert_eq!(ids[2].0, 12_345u64.wrapping_add(ID_STEP.wrapping_mul(2)));
        assert!(ring.remove(InterventionId(ids[2].0.wrapping_add(ID_STEP))).is_none(), "not issued yet");
        assert!(ring.remove(InterventionId(7)).is_none(), "never issued");
        assert!(ring.remove(ids[1]).is_some());
        assert!(ring.remove(ids[1]).is_none(), "reported once");
        assert!(ring.get_mut(ids[0]).is_some() && ring.get_mut(ids[2]).is_some());
    }
}
