//! The error messages `benches/errors.rs` records and `examples/error_speed.rs` counts
//! instructions on: eight kinds, their numbers varied so the miner sees one template per kind.

const MESSAGES: [(&str, &str); 8] = [
    ("TimeoutError", "model call to gpt-4o timed out after {} s"),
    ("ConnectionError", "connection to 10.0.3.{}:5432 refused"),
    ("ToolError", "search tool returned HTTP {} for query id q-{}"),
    ("ValueError", "could not parse step {} of the plan: unexpected token"),
    ("RateLimitError", "rate limit exceeded: {} requests in the last minute"),
    ("KeyError", "'result_{}' not found in tool output"),
    ("JSONDecodeError", "Expecting value: line {} column {} (char 17)"),
    ("AssertionError", "verification failed for answer {}: expected 42"),
];

/// The `i`-th message of the mix: its kind and its text.
pub fn message(i: usize) -> (&'static str, String) {
    let (kind, template) = MESSAGES[i % MESSAGES.len()];
    (kind, template.replace("{}", &(i * 7919 % 1000).to_string()))
}
