//! The error organ: groups error messages into patterns and notices when they accumulate.

pub mod eval;
pub mod mask;
pub mod miner;

pub use miner::{Mined, Miner, MinerConfig, PatternId, PatternRecord};
