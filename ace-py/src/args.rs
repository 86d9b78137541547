//! The recording calls' arguments as the core takes them: ids given as `str` or `bytes`, a
//! severity's name, a metrics dict, and the digest of a tool call's arguments.

use std::borrow::Cow;

use ace::Severity;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use crate::errors::{IntoPy, invalid};
use crate::text::utf8;

/// An id or a text given as `str` or `bytes`.
pub(crate) fn text<'a>(py: Python<'_>, field: &str, v: &'a Bound<'_, PyAny>) -> PyResult<Cow<'a, str>> {
    if let Ok(s) = v.cast::<PyString>() {
        // Borrowed from the string object (no copy); one that cannot be encoded (a lone
        // surrogate) is read with replacement characters.
        return match utf8(py, field, s) {
            Ok(s) => Ok(Cow::Borrowed(s)),
            Err(_) => Ok(Cow::Owned(s.to_string_lossy().into_owned())),
        };
    }
    if let Ok(b) = v.cast::<PyBytes>() {
        return Ok(Cow::Owned(String::from_utf8_lossy(b.as_bytes()).into_owned()));
    }
    Err(invalid(py, field, &format!("expected str or bytes, got {}", v.get_type().name()?)))
}

pub(crate) fn severity(py: Python<'_>, s: Option<&str>) -> PyResult<Option<Severity>> {
    s.map(|s| s.parse::<Severity>()).transpose().py(py)
}

/// The digest of a tool call's arguments: `json.dumps(args, sort_keys=True,
/// separators=(",", ":"), ensure_ascii=False, default=str)`, canonicalised and hashed by the core
/// (`ace::tool::digest_json`), so Node computes the same digest for the same arguments.
pub(crate) fn digest_of(py: Python<'_>, args: &Bound<'_, PyAny>) -> PyResult<String> {
    let kwargs = PyDict::new(py);
    kwargs.set_item("sort_keys", true)?;
    kwargs.set_item("separators", (",", ":"))?;
    kwargs.set_item("ensure_ascii", false)?;
    kwargs.set_item("allow_nan", false)?;
    kwargs.set_item("default", py.import("builtins")?.getattr("str")?)?;
    let text = py
        .import("json")?
        .getattr("dumps")?
        .call((args,), Some(&kwargs))
        .map_err(|e| invalid(py, "args", &format!("not JSON-able: {e}")))?;
    let text = text.cast::<PyString>().map_err(|_| invalid(py, "args", "json.dumps returned no str"))?;
    ace::tool::digest_json(utf8(py, "args", text)?).py(py)
}

pub(crate) fn metrics_of(py: Python<'_>, m: Option<&Bound<'_, PyDict>>) -> PyResult<Vec<(String, f64)>> {
    let Some(m) = m else { return Ok(Vec::new()) };
    let mut out = Vec::with_capacity(m.len());
    for (k, v) in m.iter() {
        let name: String = k.extract().map_err(|_| invalid(py, "metrics", "metric names are str"))?;
        let value: f64 =
            v.extract().map_err(|_| invalid(py, "metrics", &format!("the value of {name:?} is not a number")))?;
        out.push((name, value));
    }
    Ok(out)
}
