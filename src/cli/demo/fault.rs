//! The faults the demo injects: which agents get them and which streams they should move.

use ace::{metric_names as m, stages};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(super) enum Fault {
    Slowdown,
    Failures,
    TokenBloat,
}

impl Fault {
    pub(super) const ALL: [Fault; 3] = [Fault::Slowdown, Fault::Failures, Fault::TokenBloat];

    pub(super) fn of_agent(i: usize) -> Option<Fault> {
        match (i % 10, i % 20) {
            (3, _) => Some(Fault::Slowdown),
            (_, 7) => Some(Fault::Failures),
            (_, 12) => Some(Fault::TokenBloat),
            _ => None,
        }
    }

    pub(super) fn describe(self) -> &'static str {
        match self {
            Fault::Slowdown => "execution 3x slower",
            Fault::Failures => "verification failing",
            Fault::TokenBloat => "planning tokens_in 2.5x",
        }
    }

    /// The (stage, metric) streams this fault is expected to move.
    pub(super) fn streams(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Fault::Slowdown => &[(stages::EXECUTION, m::DURATION)],
            Fault::Failures => &[(stages::VERIFICATION, m::SUCCESS)],
            Fault::TokenBloat => &[(stages::PLANNING, m::TOKENS_IN), (stages::PLANNING, m::COST_USD)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_land_on_the_advertised_agents() {
        assert_eq!(Fault::of_agent(3), Some(Fault::Slowdown));
        assert_eq!(Fault::of_agent(13), Some(Fault::Slowdown));
        assert_eq!(Fault::of_agent(7), Some(Fault::Failures));
        assert_eq!(Fault::of_agent(27), Some(Fault::Failures));
        assert_eq!(Fault::of_agent(12), Some(Fault::TokenBloat));
        assert_eq!(Fault::of_agent(32), Some(Fault::TokenBloat));
        assert_eq!(Fault::of_agent(0), None);
        let faulted = (0..100).filter_map(Fault::of_agent).count();
        assert_eq!(faulted, 20);
    }
}
