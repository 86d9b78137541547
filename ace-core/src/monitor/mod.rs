//! The performance monitor: stage outcomes and metrics in, baselines and degradation signals out.
//!
//! Each (agent, stage) has [`Streams`]: its duration, its success and its named metrics, each
//! with a baseline and a degradation detector ([`Detector`]). Feeding a stream an observation
//! returns a `degradation` signal when the stream has shifted for real, and a `recovery` signal
//! when it comes back. The organ holds no table of its own: the engine keeps every (agent,
//! stage)'s streams in its per-call entry table (`hot`), beside what the other organs keep for
//! the same pair, so that a record takes one lock.

mod baseline;
mod streams;

pub use baseline::{BaselineState, Detector, DetectorConfig, Transition, Watch};
pub(crate) use streams::NO_STREAM;
pub use streams::{MAX_STREAMS_PER_ENTRY, Sample, Stream, Streams};
