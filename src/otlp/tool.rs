//! Until the core's tool calls land: a tool call as a stage (replaced by `Ace::record_tool_call`).
use ace_core::{Ace, Result};

pub(crate) const TOOL_STAGE: &str = "tool";

pub(crate) fn record(
    ace: &Ace,
    agent: &str,
    task: &str,
    _tool: &str,
    _digest: Option<&str>,
    d: f64,
    ok: bool,
) -> Result<()> {
    ace.record_stage(agent, task, TOOL_STAGE, d, ok).map(|_| ())
}

pub(crate) fn args_digest(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}
