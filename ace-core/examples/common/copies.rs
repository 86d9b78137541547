//! A trace as copies of itself, one after another, for `benches/replay.rs` and
//! `examples/replay_speed.rs`: each copy's task names are suffixed `-c{copy}` and its times
//! shifted by 10^7 s a copy, so the engine sees new tasks of the same shape.

/// `text` (JSON Lines, blank lines dropped) as `copies` copies of itself.
pub fn copied(text: &str, copies: usize) -> Result<String, serde_json::Error> {
    let mut out = String::with_capacity(text.len() * copies * 11 / 10);
    for copy in 0..copies {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut v: serde_json::Value = serde_json::from_str(line)?;
            if let Some(task) = v.get("task").and_then(|t| t.as_str()).map(|t| format!("{t}-c{copy}")) {
                v["task"] = task.into();
            }
            if let Some(ts) = v.get("ts").and_then(serde_json::Value::as_f64) {
                v["ts"] = (ts + copy as f64 * 1e7).into();
            }
            out += &v.to_string();
            out.push('\n');
        }
    }
    Ok(out)
}
