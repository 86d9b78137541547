//! Reading a JSON object of metric values back in the order it was written.

use std::fmt;
use std::sync::Arc;

use serde::de::{Deserializer, MapAccess, Visitor};

struct Pairs;

impl<'de> Visitor<'de> for Pairs {
    type Value = Vec<(Arc<str>, f64)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of metric names to numbers")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(4));
        while let Some((k, v)) = map.next_entry::<String, f64>()? {
            out.push((Arc::from(k), v));
        }
        Ok(out)
    }
}

/// `{"a":1,"b":2}` → `[("a",1.0),("b",2.0)]`, keeping the order.
pub(crate) fn ordered_pairs(text: &str) -> Result<Vec<(Arc<str>, f64)>, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_map(Pairs).map_err(|e| format!("bad metrics JSON {text:?}: {e}"))
}
