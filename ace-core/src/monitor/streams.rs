//! The streams of one (agent, stage): its duration, its success and its named metrics, each
//! with a baseline, fed one observation at a time and turned into degradation and recovery
//! signals.

use std::sync::Arc;

use super::baseline::{BaselineState, Detector, DetectorConfig, Transition, Watch};
use crate::clock::Timestamp;
use crate::event::{Severity, metric_names, same_name};
use crate::signal::{Direction, Evidence, Signal, SignalKind};

/// Named metrics tracked with a baseline per (agent, stage); more are stored but not baselined.
pub const MAX_STREAMS_PER_ENTRY: usize = 64;
/// The slot of a metric without a named stream ([`Streams::slot`]).
pub(crate) const NO_STREAM: u8 = u8::MAX;
const _: () = assert!(MAX_STREAMS_PER_ENTRY < NO_STREAM as usize);

/// One metric's baseline, under its name.
pub struct Stream {
    /// The metric's name (`duration_s`, `success`, or a named metric).
    pub name: Arc<str>,
    /// Its baseline and degradation state.
    pub detector: Detector,
}

impl Stream {
    /// A stream resuming from `state`.
    #[must_use]
    pub fn new(name: Arc<str>, state: BaselineState) -> Self {
        Stream { name, detector: Detector::from_state(state) }
    }
}

/// The streams of one (agent, stage).
pub struct Streams {
    /// The stage's duration (watched for increases).
    pub duration: Stream,
    /// The stage's success as 0/1 (watched for drops).
    pub success: Stream,
    /// Named metrics, up to [`MAX_STREAMS_PER_ENTRY`], in order of first sight.
    pub named: Vec<Stream>,
}

/// What one observation of an (agent, stage) carries.
#[derive(Clone, Copy, Debug)]
pub struct Sample<'a> {
    /// The task it belongs to (named in signals).
    pub task: &'a str,
    /// The stage's duration in seconds and whether it succeeded, for a finished stage.
    pub outcome: Option<(f64, bool)>,
    /// Named metrics.
    pub metrics: &'a [(&'a str, f64)],
}

impl Streams {
    /// Fresh streams; `duration` and `success` are the shared names of the outcome streams.
    #[must_use]
    pub fn new(duration: Arc<str>, success: Arc<str>) -> Self {
        Streams {
            duration: Stream::new(duration, BaselineState::default()),
            success: Stream::new(success, BaselineState::default()),
            named: Vec::new(),
        }
    }

    /// Every stream: duration, success, then the named ones.
    pub fn iter(&self) -> impl Iterator<Item = &Stream> {
        [&self.duration, &self.success].into_iter().chain(self.named.iter())
    }

    /// The named stream's own copy of `name`, or a new one.
    #[must_use]
    pub fn intern(&self, name: &str) -> Arc<str> {
        self.name_at(self.slot(name), name)
    }

    /// The baseline of `metric`, if it has a stream.
    #[must_use]
    pub fn state(&self, metric: &str) -> Option<BaselineState> {
        self.iter().find(|s| &*s.name == metric).map(|s| s.detector.state)
    }

    /// Whether `metric`'s stream has seen at least `count` observations.
    #[must_use]
    pub fn has_seen(&self, metric: &str, count: u64) -> bool {
        self.iter().any(|s| &*s.name == metric && s.detector.state.count >= count)
    }

    /// Replaces `metric`'s baseline with `state` (a named stream is made if there is room);
    /// whether it was taken.
    pub fn set(&mut self, metric: &str, state: BaselineState) -> bool {
        match metric {
            metric_names::DURATION => self.duration.detector = Detector::from_state(state),
            metric_names::SUCCESS => self.success.detector = Detector::from_state(state),
            name => {
                let full = self.named.len() >= MAX_STREAMS_PER_ENTRY;
                match self.named.iter_mut().find(|s| &*s.name == name) {
                    Some(s) => s.detector = Detector::from_state(state),
                    None if !full => {
                        self.named.reserve_exact(1);
                        self.named.push(Stream::new(Arc::from(name), state));
                    }
                    None => return false,
                }
            }
        }
        true
    }

    /// Feeds one observation to its streams; signals for the streams that degraded or
    /// recovered go to `out`.
    pub fn observe(
        &mut self,
        now: Timestamp,
        agent: &Arc<str>,
        stage: &Arc<str>,
        sample: &Sample<'_>,
        cfg: &DetectorConfig,
        out: &mut Vec<Signal>,
    ) {
        // The engine's record path finds the slots as it checks the metrics (`observe_slots`).
        let mut slots: Vec<u8> =
            sample.metrics.iter().enumerate().map(|(i, &(name, _))| self.slot_near(name, i)).collect();
        self.observe_slots(now, agent, stage, sample, &mut slots, cfg, out);
    }

    /// The index of `name`'s named stream, or [`NO_STREAM`].
    #[inline]
    #[must_use]
    pub(crate) fn slot(&self, name: &str) -> u8 {
        // At most `MAX_STREAMS_PER_ENTRY` (64) streams: an index fits a byte.
        self.named.iter().position(|s| same_name(&s.name, name)).map_or(NO_STREAM, |i| i as u8)
    }

    /// [`Streams::slot`], trying `hint` first: a stage's metrics mostly come in the same order at
    /// every record, so the `i`-th metric's stream is most often the `i`-th.
    #[inline]
    #[must_use]
    pub(crate) fn slot_near(&self, name: &str, hint: usize) -> u8 {
        match self.named.get(hint) {
            // At most `MAX_STREAMS_PER_ENTRY` (64) streams: an index fits a byte.
            Some(s) if same_name(&s.name, name) => hint as u8,
            _ => self.slot(name),
        }
    }

    /// The named stream's own copy of its name at `slot`, or a new copy of `name` where it has
    /// no stream ([`NO_STREAM`]).
    #[inline]
    #[must_use]
    pub(crate) fn name_at(&self, slot: u8, name: &str) -> Arc<str> {
        match self.named.get(usize::from(slot)) {
            Some(s) => s.name.clone(),
            None => Arc::from(name),
        }
    }

    /// [`Streams::observe`] with each metric's stream already found ([`Streams::slot`]) in
    /// `slots`, one per metric (at least as many); a metric without one gets a new stream while
    /// there is room, and its slot says so.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn observe_slots(
        &mut self,
        now: Timestamp,
        agent: &Arc<str>,
        stage: &Arc<str>,
        sample: &Sample<'_>,
        slots: &mut [u8],
        cfg: &DetectorConfig,
        out: &mut Vec<Signal>,
    ) {
        let ctx = SignalContext { now, agent, task: sample.task, stage, cfg };
        if let Some((duration, success)) = sample.outcome {
            ctx.feed(&mut self.duration, duration, Watch::Up, out);
            ctx.feed(&mut self.success, if success { 1.0 } else { 0.0 }, Watch::Rate, out);
        }
        for (slot, &(name, value)) in slots.iter_mut().zip(sample.metrics) {
            if *slot == NO_STREAM {
                if self.named.len() >= MAX_STREAMS_PER_ENTRY {
                    continue;
                }
                // Most entries have one or two named metrics: no room for four.
                self.named.reserve_exact(1);
                self.named.push(Stream::new(Arc::from(name), BaselineState::default()));
                *slot = (self.named.len() - 1) as u8;
            }
            if let Some(stream) = self.named.get_mut(usize::from(*slot)) {
                ctx.feed(stream, value, Watch::Both, out);
            }
        }
    }
}

struct SignalContext<'a> {
    now: Timestamp,
    agent: &'a Arc<str>,
    task: &'a str,
    stage: &'a Arc<str>,
    cfg: &'a DetectorConfig,
}

impl SignalContext<'_> {
    /// Feeds one value to its stream. Inlined, with the signal built out of line: most values
    /// raise none, and the call's set-up cost more than the check.
    #[inline]
    fn feed(&self, stream: &mut Stream, value: f64, watch: Watch, out: &mut Vec<Signal>) {
        if let Some(transition) = stream.detector.observe(value, watch, self.cfg) {
            self.signal(stream, transition, out);
        }
    }

    #[cold]
    #[inline(never)]
    fn signal(&self, stream: &Stream, transition: Transition, out: &mut Vec<Signal>) {
        let state = &stream.detector.state;
        let (kind, direction) = match transition {
            Transition::Degraded(d) => (SignalKind::Degradation, d),
            Transition::Recovered => {
                (SignalKind::Recovery, if state.recent >= state.mean { Direction::Up } else { Direction::Down })
            }
        };
        let pct = state.deviation_pct();
        let severity = match kind {
            SignalKind::Recovery => Severity::Low,
            _ if &*stream.name == metric_names::SUCCESS || pct.abs() >= 100.0 => Severity::High,
            _ => Severity::Medium,
        };
        let message = match kind {
            SignalKind::Recovery => format!(
                "{} {} {} is back near its baseline ({} vs {})",
                self.agent,
                self.stage,
                stream.name,
                fmt_num(state.recent),
                fmt_num(state.mean)
            ),
            _ => format!(
                "{} {} {} is {:.0}% {} its baseline ({} vs {}, z={:.1})",
                self.agent,
                self.stage,
                stream.name,
                pct.abs(),
                if direction == Direction::Up { "above" } else { "below" },
                fmt_num(state.recent),
                fmt_num(state.mean),
                state.z_score()
            ),
        };
        out.push(Signal {
            kind,
            severity,
            at: self.now,
            agent: self.agent.clone(),
            task: Some(Arc::from(self.task)),
            stage: Some(self.stage.clone()),
            message,
            evidence: Evidence::BaselineShift {
                metric: stream.name.to_string(),
                direction,
                baseline_mean: state.mean,
                baseline_std: state.std(),
                recent_mean: state.recent,
                deviation_pct: pct,
                z_score: state.z_score(),
                samples: state.count,
            },
        });
    }
}

fn fmt_num(x: f64) -> String {
    if x.abs() >= 100.0 { format!("{x:.0}") } else { format!("{x:.3}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> DetectorConfig {
        DetectorConfig { warmup: 20, alpha: 0.01, z: 4.0, min_pct: 20.0, sustain: 3 }
    }

    #[test]
    fn a_slowdown_after_warm_up_is_one_degradation_signal() {
        let mut s = Streams::new(Arc::from(metric_names::DURATION), Arc::from(metric_names::SUCCESS));
        let (agent, stage): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("planning"));
        let mut out = Vec::new();
        for i in 0..200u32 {
            let d = if i < 100 { 1.0 + f64::from(i % 3) * 0.01 } else { 5.0 };
            let sample = Sample { task: "t", outcome: Some((d, true)), metrics: &[("tokens", 10.0)] };
            s.observe(Timestamp::from_micros(i64::from(i)), &agent, &stage, &sample, &cfg(), &mut out);
        }
        let degraded: Vec<_> = out.iter().filter(|s| s.kind == SignalKind::Degradation).collect();
        assert_eq!(degraded.len(), 1, "{out:?}");
        assert!(degraded[0].message.starts_with("a planning duration_s is"), "{}", degraded[0].message);
        assert_eq!(s.named.len(), 1);
        assert_eq!(s.state("tokens").unwrap().count, 200);
    }

    #[test]
    fn a_metric_is_found_whether_or_not_its_hint_is_right() {
        let mut s = Streams::new(Arc::from(metric_names::DURATION), Arc::from(metric_names::SUCCESS));
        for name in ["tokens_in", "tokens_out", "cost_usd"] {
            assert!(s.set(name, BaselineState::default()));
        }
        for (hint, name) in [(0, "tokens_in"), (2, "cost_usd"), (0, "cost_usd"), (2, "tokens_in"), (9, "tokens_out")] {
            assert_eq!(s.slot_near(name, hint), s.slot(name), "{name} hinted at {hint}");
            assert_eq!(&*s.name_at(s.slot_near(name, hint), name), name);
        }
        assert_eq!(s.slot_near("tokens_out", 1), 1);
        assert_eq!(s.slot_near("unknown", 0), NO_STREAM);
        assert_eq!(s.slot_near("unknown", 7), NO_STREAM);
    }

    #[test]
    fn set_takes_named_streams_only_while_there_is_room() {
        let mut s = Streams::new(Arc::from(metric_names::DURATION), Arc::from(metric_names::SUCCESS));
        let state = BaselineState { count: 5, ..BaselineState::default() };
        for i in 0..MAX_STREAMS_PER_ENTRY {
            assert!(s.set(&format!("m{i}"), state));
        }
        assert!(!s.set("one_more", state));
        assert!(s.set(metric_names::DURATION, state));
        assert!(s.has_seen(metric_names::DURATION, 5) && !s.has_seen(metric_names::DURATION, 6));
    }
}
