//! Borrowing a Python `str` as UTF-8 without a copy, and turning an unencodable one into an
//! `InvalidInputError` naming the argument.
//!
//! `PyUnicode_AsUTF8AndSize` returns the UTF-8 form the string object caches (computed once per
//! string, kept for its lifetime), so a recording call's ids cost no allocation. A lone
//! surrogate makes it fail; PyO3's own `&str` conversion would raise `UnicodeEncodeError`, which
//! `except ace.AceError` does not catch.

use std::os::raw::c_char;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyString;

unsafe extern "C" {
    fn PyUnicode_AsUTF8AndSize(unicode: *mut ffi::PyObject, size: *mut ffi::Py_ssize_t) -> *const c_char;
}

/// `s` as UTF-8, borrowed from the string object. A string that cannot be encoded (a lone
/// surrogate) is `InvalidInputError` naming `field`.
#[inline]
pub(crate) fn utf8<'a>(py: Python<'_>, field: &str, s: &'a Bound<'_, PyString>) -> PyResult<&'a str> {
    let mut size: ffi::Py_ssize_t = 0;
    // SAFETY: `s` is a live `str` (the type was checked when it was extracted) and the GIL is
    // held. On success the result points at `size` bytes of UTF-8 owned by the string object,
    // which `s` keeps alive for `'a`; the bytes never change (strings are immutable).
    let data = unsafe { PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut size) };
    if data.is_null() {
        let cause = PyErr::take(py).map(|e| e.to_string()).unwrap_or_default();
        return Err(crate::errors::invalid(py, field, &format!("not valid Unicode ({cause})")));
    }
    let len = usize::try_from(size).unwrap_or(0);
    // SAFETY: see above; CPython guarantees the buffer is valid UTF-8 of `len` bytes.
    let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) };
    // SAFETY: CPython produced it as UTF-8 (it refuses strings that are not encodable).
    Ok(unsafe { std::str::from_utf8_unchecked(bytes) })
}

/// A `str` argument, owned. PyO3's own conversion raises `UnicodeEncodeError` for a string
/// that cannot be encoded (a lone surrogate); this one raises `InvalidInputError`, like the
/// rest of the bad input. For the calls off the recording path, where a copy costs nothing.
pub(crate) struct Text(String);

impl std::ops::Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'a, 'py> FromPyObject<'a, 'py> for Text {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let s = obj.cast::<PyString>()?;
        Ok(Text(utf8(obj.py(), "text", &s)?.to_owned()))
    }
}
