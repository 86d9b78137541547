//! # The map
//!
//! ace-core is built in five layers. **Arrows point down, and organs never import organs**:
//! a module imports only from its own layer or a lower one (`scripts/check_layers.py` fails the
//! build otherwise), so an organ's folder reads alone and a change to one organ cannot break
//! another.
//!
//! | layer | module | what lives there |
//! |---|---|---|
//! | foundation | [`error`] | [`Error`], its stable `code()`, [`Result`] |
//! | | [`clock`] | [`Clock`], [`SystemClock`], [`CoarseClock`], [`ManualClock`], [`Timestamp`] |
//! | | [`ids`] | [`PatternId`], [`InterventionId`] (16 hex digits) |
//! | | [`event`] | [`Severity`], metric and stage names, input validation |
//! | | [`tool`] | tool calls: [`tool::ToolCall`], the arguments digest, tool-name validation |
//! | | `shard` | the 16-shard plumbing and the per-task table caps |
//! | | [`telemetry`] | the per-agent label cap, label sets, buckets, [`telemetry::Instrumented`] |
//! | | [`config`] | [`AceConfig`]: every `ACE_*` setting |
//! | vocabulary, ports | [`signal`] | [`Signal`], [`SignalKind`], [`Evidence`] |
//! | | [`decision`] | [`Strategy`], [`Intervention`], [`Report`], [`Verdict`] |
//! | | [`record`] | every persisted record, [`BaselineState`] |
//! | | [`store`], [`cache`] | the [`Store`] and [`Cache`] traits, [`MemoryStore`], [`MemoryCache`] |
//! | organs | [`monitor`] | streams and baselines per (agent, stage): degradation, recovery |
//! | | [`errors`] | the online pattern miner and its sliding windows |
//! | | [`context`] | context staleness per agent |
//! | | [`trajectory`] | loops, runs of failures and long tasks |
//! | | [`intervene`] | rules, gates and Thompson sampling: which strategy, if any; the judge hook |
//! | | [`breaker`] | circuit breakers, rate limiters, bulkheads |
//! | | [`playbook`] | hash-chained playbooks: de-dup, retrieval, stages |
//! | composition | `persist` | the writer thread, flush tickets, spill files, the journal |
//! | | `hot` | the per-call entry table: one lock per record across the organs |
//! | | `fleet` | what replicas share through the cache |
//! | | `trace` | the trace writer |
//! | API | `engine` | [`Ace`], [`AceBuilder`], [`Health`], [`Stats`], [`StageTimer`], [`Metrics`] |
//! | | [`replay`] | a trace through a fresh engine, scored |
//!
//! Where to look:
//! - *why a record costs one lock*: `hot/mod.rs`;
//! - *why a store outage loses nothing*: `persist/mod.rs`;
//! - *how ten replicas share a baseline*: `fleet/mod.rs`;
//! - *how an error becomes a pattern*: [`errors`] and `errors/miner.rs`;
//! - *how a strategy is chosen*: [`intervene`].
//!
#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

// Foundation.
pub mod clock;
pub mod config;
pub mod error;
pub mod event;
pub mod ids;
mod shard;
pub mod telemetry;
pub mod tool;
// Vocabulary and ports.
pub mod cache;
pub mod decision;
pub mod record;
pub mod signal;
pub mod store;
// Organs.
pub mod breaker;
pub mod context;
pub mod errors;
pub mod intervene;
pub mod monitor;
pub mod playbook;
pub mod trajectory;
// Composition.
mod fleet;
mod hot;
mod persist;
mod trace;
// API.
mod engine;
pub mod replay;

/// The engine's metrics: the handle ([`Metrics`]) and the shared label sets and text format.
pub mod metrics {
    pub use crate::engine::Metrics;
    pub use crate::telemetry::*;
}

pub use cache::{Cache, Lease, LeaseRequest, MemoryCache};
pub use clock::{Clock, CoarseClock, ManualClock, SystemClock, Timestamp};
pub use config::{AceConfig, AceConfigBuilder};
pub use decision::{Amendment, Confidence, Intervention, Report, Strategy, Verdict};
pub use engine::{
    Ace, AceBuilder, Health, MAX_READ_BACK, MAX_SUMMARY_BYTES, Metrics, RECENT_SIGNALS, Reflection, Reflector,
    StageTimer, Stats, TaskSummary,
};
pub use error::{Error, Result};
pub use errors::{ErrorEvent, ErrorReport};
pub use event::{Severity, metric_names, stages};
pub use ids::{InterventionId, PatternId};
pub use intervene::Judge;
pub use persist::fork;
#[doc(hidden)]
pub use persist::spill::SpillDir;
pub use record::{BaselineState, PatternRecord};
pub use signal::{Direction, ErrorScope, Evidence, Signal, SignalKind};
pub use store::{
    BaselineRecord, ErrorQuery, ErrorRecord, InterventionQuery, InterventionRecord, MemoryStore, MetricQuery,
    MetricRecord, Record, Store,
};
pub use tool::ToolCall;
