#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod batcher;
mod bounded;
pub mod breaker;
pub mod cache;
pub mod clock;
pub mod config;
pub mod context;
mod engine;
pub mod error;
pub mod errors;
pub mod event;
pub mod intervene;
pub mod metrics;
pub mod monitor;
pub mod playbook;
pub mod replay;
pub mod signal;
pub mod spill;
pub mod store;
mod trace;
pub mod trajectory;

pub use cache::{Cache, MemoryCache};
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use config::{AceConfig, AceConfigBuilder};
pub use engine::{Ace, AceBuilder, Health, Stats};
pub use error::{Error, Result};
pub use errors::{ErrorEvent, ErrorReport, PatternId, PatternRecord};
pub use event::{Severity, metric_names, stages};
pub use intervene::{Intervention, InterventionId, Judge, Report, Strategy, Verdict};
pub use metrics::Metrics;
pub use monitor::{BaselineState, StageTimer};
pub use signal::{Direction, ErrorScope, Evidence, Signal, SignalKind};
pub use store::{BaselineRecord, ErrorQuery, ErrorRecord, MemoryStore, MetricQuery, MetricRecord, Record, Store};
