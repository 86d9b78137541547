//! Tool calls: which tool an agent called, and a digest of the arguments it called it with.
//!
//! A tool call is a stage that carries a tool name and, when the arguments are known, their
//! digest: equal digests mean identical arguments. The arguments themselves are never stored
//! nor written to a trace, only the digest, which every binding computes the same way:
//!
//! 1. the binding writes the arguments as JSON (values JSON cannot hold written as their text:
//!    Python's `default=str`, a `BigInt`'s decimal digits in Node);
//! 2. [`digest_json`] reads that JSON and writes it again in one canonical form: object keys
//!    sorted by code point, no whitespace between tokens, strings with only `"`, `\\` and
//!    control characters escaped (non-ASCII as itself, UTF-8), a number with an integral value
//!    below 2^53 written as an integer (`1.0` and `1` are the same argument, as they are in
//!    JavaScript), any other number in its shortest round-trip form (`0.1`, `1e+21`);
//! 3. [`args_digest`] hashes those bytes with 64-bit FNV-1a and writes the hash as 16 lower-case
//!    hex digits.
//!
//! Step 2 makes the digest independent of how each language prints JSON (Python writes `1.0`
//! and `1e+21`, JavaScript `1` and `1e+21`; Python sorts keys by code point, JavaScript by
//! UTF-16 unit).
//!
//! FNV-1a is fixed (no random key, no platform dependence), so a digest computed by the Python
//! binding on Linux equals one computed by the Node binding on macOS, and a digest written to a
//! trace today still matches the same call recorded by a later version. It is not a
//! cryptographic hash: it identifies repeated calls, it does not hide the arguments from
//! someone who can guess them.

use std::fmt::Write as _;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::event::{is_graphic_ascii, truncate, validate_id};

/// The stage name a tool call is recorded under when the caller names no stage.
pub const TOOL_STAGE: &str = "tool";
/// The longest arguments digest accepted, in bytes (a caller may bring its own hash).
pub const MAX_DIGEST_LEN: usize = 128;
/// The longest arguments text [`digest_json`] reads, in bytes (4 MiB).
pub const MAX_ARGS_JSON_LEN: usize = 4 << 20;
/// Integral numbers below this magnitude are written as integers.
const EXACT: f64 = 9_007_199_254_740_992.0;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The digest of a tool call's arguments given as canonical JSON bytes (see the module docs):
/// 64-bit FNV-1a, as 16 lower-case hex digits.
///
/// ```
/// use ace_core::tool::args_digest;
///
/// assert_eq!(args_digest(b""), "cbf29ce484222325");
/// assert_eq!(args_digest(br#"{"city":"Paris","days":3}"#), args_digest(br#"{"city":"Paris","days":3}"#));
/// assert_ne!(args_digest(br#"{"days":3}"#), args_digest(br#"{"days":4}"#));
/// ```
#[must_use]
pub fn args_digest(canonical_json: &[u8]) -> String {
    format!("{:016x}", fnv1a(FNV_OFFSET, canonical_json))
}

/// 64-bit FNV-1a of `bytes`, continuing from `hash` (start from [`FNV_OFFSET`]).
pub(crate) fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// The key of a tool (`digest` `None`) or of a call (a tool and its arguments digest).
pub(crate) fn call_key(tool: &str, digest: Option<&str>) -> u64 {
    let hash = fnv1a(FNV_OFFSET, tool.as_bytes());
    match digest {
        // 0xff never occurs in UTF-8, so ("ab", "c") and ("a", "bc") differ.
        Some(d) => fnv1a(fnv1a(hash, &[0xff]), d.as_bytes()),
        None => hash,
    }
}

/// The digest of a tool call's arguments given as JSON text in any formatting: the text is read,
/// written again in the canonical form of the module docs, and hashed by [`args_digest`]. Text
/// that is not JSON, or longer than [`MAX_ARGS_JSON_LEN`], or nested deeper than 128 levels, is
/// [`Error::InvalidInput`].
///
/// ```
/// use ace_core::tool::digest_json;
///
/// let a = digest_json(r#"{"days": 3.0, "city": "Paris"}"#)?;
/// assert_eq!(a, digest_json(r#"{"city":"Paris","days":3}"#)?);
/// assert!(digest_json("{not json").is_err());
/// # Ok::<(), ace_core::Error>(())
/// ```
pub fn digest_json(json: &str) -> Result<String> {
    if json.len() > MAX_ARGS_JSON_LEN {
        return Err(Error::invalid("args", format!("at most {MAX_ARGS_JSON_LEN} bytes of JSON, got {}", json.len())));
    }
    let value: Value = serde_json::from_str(json).map_err(|e| Error::invalid("args", format!("not JSON: {e}")))?;
    let mut out = String::with_capacity(json.len());
    canonical_write(&value, &mut out);
    Ok(args_digest(out.as_bytes()))
}

/// Writes `value` in the canonical form (see the module docs).
fn canonical_write(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                let _ = write!(out, "{i}");
            } else if let Some(u) = n.as_u64() {
                let _ = write!(out, "{u}");
            } else {
                let f = n.as_f64().unwrap_or(0.0);
                if f.fract() == 0.0 && f.abs() < EXACT {
                    let _ = write!(out, "{}", f as i64);
                } else {
                    out.push_str(&serde_json::to_string(&f).unwrap_or_default());
                }
            }
        }
        Value::String(s) => out.push_str(&serde_json::to_string(s).unwrap_or_default()),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_write(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(key).unwrap_or_default());
                out.push(':');
                canonical_write(&map[key], out);
            }
            out.push('}');
        }
    }
}

/// Checks a tool name: like an agent id, 1 to [`crate::event::MAX_ID_LEN`] bytes without
/// control characters (`search_flights`, `github.create_issue`, `mcp__fs__read`).
pub fn validate_tool(tool: &str) -> Result<()> {
    validate_id("tool", tool)
}

/// Checks an arguments digest: 1 to [`MAX_DIGEST_LEN`] bytes of printable ASCII without spaces
/// (the 16 hex digits of [`args_digest`], or a caller's own hash).
pub fn validate_digest(digest: &str) -> Result<()> {
    if digest.is_empty() || digest.len() > MAX_DIGEST_LEN {
        return Err(Error::invalid(
            "args_digest",
            format!("must be 1 to {MAX_DIGEST_LEN} bytes, got {}", digest.len()),
        ));
    }
    if !is_graphic_ascii(digest.as_bytes()) {
        return Err(Error::invalid(
            "args_digest",
            format!("must be printable ASCII without spaces: {:?}", truncate(digest, 40)),
        ));
    }
    Ok(())
}

/// One tool call, for `Ace::record_tool_call`: a stage of a task
/// that called `tool`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ToolCall<'a> {
    /// The agent.
    pub agent: &'a str,
    /// The task.
    pub task: &'a str,
    /// The stage the call belongs to ([`TOOL_STAGE`] when the caller has no other).
    pub stage: &'a str,
    /// The tool called.
    pub tool: &'a str,
    /// The digest of the call's arguments ([`args_digest`]), when known.
    pub args_digest: Option<&'a str>,
    /// How long the call took, in seconds.
    pub duration_s: f64,
    /// Whether it succeeded.
    pub success: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_fnv1a_64_in_hex() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(args_digest(b""), "cbf29ce484222325");
        assert_eq!(args_digest(b"a"), "af63dc4c8601ec8c");
        assert_eq!(args_digest(b"foobar"), "85944171f73967e8");
    }

    #[test]
    fn json_is_canonicalised_before_hashing() {
        let canonical = "{\"a\":null,\"b\":[1,\"é\\n\",0.5,1e+21],\"c\":{\"x\":true,\"y\":-2}}";
        let want = args_digest(canonical.as_bytes());
        for text in [
            canonical,
            "{ \"c\": {\"y\": -2.0, \"x\": true}, \"b\": [1.0, \"\\u00e9\\n\", 0.5, 1e+21], \"a\": null }",
            "{\"b\":[1,\"é\\n\",5e-1,1000000000000000000000],\"a\":null,\"c\":{\"x\":true,\"y\":-2}}",
        ] {
            assert_eq!(digest_json(text).unwrap(), want, "{text}");
        }
        // What the Python and Node tests check they both produce.
        assert_eq!(digest_json(r#"{"city":"Paris","days":3,"tags":["a","é"]}"#).unwrap(), "7aab4de8599970a7");
        assert_ne!(digest_json("[1,2]").unwrap(), digest_json("[2,1]").unwrap());
        for bad in ["", "{", "NaN", "[1,]"] {
            assert_eq!(digest_json(bad).unwrap_err().code(), "invalid_input", "{bad}");
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(digest_json(&deep).unwrap_err().code(), "invalid_input");
    }

    #[test]
    fn tools_and_digests_are_checked() {
        assert!(validate_tool("search_flights").is_ok());
        assert!(validate_tool("mcp__fs__read/α").is_ok());
        for bad in ["", "a\nb", &"t".repeat(300)] {
            assert_eq!(validate_tool(bad).unwrap_err().code(), "invalid_input");
        }
        assert!(validate_digest("be671ec683edad8f").is_ok());
        for bad in ["", "a b", "é", "a\0", &"f".repeat(129)] {
            assert_eq!(validate_digest(bad).unwrap_err().code(), "invalid_input", "{bad:?}");
        }
    }
}
