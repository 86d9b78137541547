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

/// The interventions awaiting an outcome, in a ring of [`MAX_AWAITING`] slots.
///
/// Ids are `first + n` (wrapping), so an id gives back its sequence number `n`, and
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
        InterventionId(self.first.wrapping_add(n))
    }

    fn slot(&mut self, id: InterventionId) -> Option<&mut Option<(u64, Awaiting)>> {
        let n = id.0.wrapping_sub(self.first);
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
    fn an_id_gives_back_its_sequence_number() {
        let mut ring = Awaited::new(u64::MAX - 1);
        let ids: Vec<InterventionId> = (0..3).map(|_| ring.push(awaiting())).collect();
        assert_eq!(ids.iter().map(|i| i.0).collect::<Vec<_>>(), [u64::MAX - 1, u64::MAX, 0], "wrapping");
        assert!(ring.remove(InterventionId(1)).is_none(), "not issued yet");
        assert!(ring.remove(InterventionId(7)).is_none(), "never issued");
        assert!(ring.remove(ids[1]).is_some());
        assert!(ring.remove(ids[1]).is_none(), "reported once");
        assert!(ring.get_mut(ids[0]).is_some() && ring.get_mut(ids[2]).is_some());
    }
}
