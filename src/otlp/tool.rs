//! A span's tool call, through the core's tool calls.
use ace_core::tool::ToolCall;
use ace_core::{Ace, Result};

pub(crate) use ace_core::tool::TOOL_STAGE;

pub(crate) fn record(
    ace: &Ace,
    agent: &str,
    task: &str,
    tool: &str,
    digest: Option<&str>,
    d: f64,
    ok: bool,
) -> Result<()> {
    let call = ToolCall { agent, task, stage: TOOL_STAGE, tool, args_digest: digest, duration_s: d, success: ok };
    ace.record_tool_call(&call).map(|_| ())
}
