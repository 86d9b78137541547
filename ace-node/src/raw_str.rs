//! String arguments of the raw calls (src/raw.rs), read without allocating.
//!
//! `napi_get_value_string_utf16` copies a string's code units as they are (V8's UTF-8 writer,
//! `napi_get_value_string_utf8`, was a fifth of `recordStage`); an ASCII string is then narrowed
//! into a stack buffer, anything else decoded into a `String` (a lone surrogate, which UTF-8
//! cannot hold, is refused there). A string longer than the stack buffer is read whole on the
//! heap.

use std::mem::MaybeUninit;
use std::ptr::null_mut;

use napi::bindgen_prelude::*;
use napi::sys;

use crate::raw::arg_error;

/// Code units read on the stack; a longer string goes to the heap.
pub(crate) const UNITS: usize = 256;

/// The code units of one read, shared by the reads of a call (each result is copied out of it).
pub(crate) type Units = [MaybeUninit<u16>; UNITS];

/// A fresh, uninitialised [`Units`] (Node writes it; nothing is read before that).
pub(crate) const fn units() -> Units {
    [MaybeUninit::uninit(); UNITS]
}

/// Where one string argument ends up: its ASCII bytes on the stack, or a `String`.
pub(crate) struct StrBuf {
    bytes: [MaybeUninit<u8>; UNITS],
    heap: String,
}

impl StrBuf {
    pub(crate) const fn new() -> Self {
        StrBuf { bytes: [MaybeUninit::uninit(); UNITS], heap: String::new() }
    }
}

/// Reads the string argument `v` (argument `position`, for errors); `units` is scratch space.
///
/// # Safety
/// `env` and `v` must be the live env and an argument value of the running callback.
pub(crate) unsafe fn read<'a>(
    env: sys::napi_env,
    v: sys::napi_value,
    position: usize,
    units: &mut Units,
    out: &'a mut StrBuf,
) -> Result<&'a str> {
    let mut len = 0usize;
    // SAFETY: `units` is writable for `UNITS` code units; Node writes at most `UNITS - 1` and a NUL.
    let status = unsafe { sys::napi_get_value_string_utf16(env, v, units.as_mut_ptr().cast::<u16>(), UNITS, &mut len) };
    if status != sys::Status::napi_ok {
        return Err(arg_error(position, "a string"));
    }
    if len + 1 < UNITS {
        // SAFETY: Node initialised the first `len` units (`len < UNITS`).
        let read = unsafe { std::slice::from_raw_parts(units.as_ptr().cast::<u16>(), len) };
        if let Some(s) = ascii(read, &mut out.bytes) {
            return Ok(s);
        }
        decode(read, &mut out.heap, position)?;
        return Ok(&out.heap);
    }
    // Possibly cut: ask for the length, then copy it whole.
    // SAFETY: a null buffer asks only for the length (in code units).
    unsafe { sys::napi_get_value_string_utf16(env, v, null_mut(), 0, &mut len) };
    let mut all = vec![0u16; len + 1];
    // SAFETY: `all` has room for `len` units and the NUL.
    unsafe { sys::napi_get_value_string_utf16(env, v, all.as_mut_ptr(), len + 1, &mut len) };
    decode(&all[..len.min(all.len())], &mut out.heap, position)?;
    Ok(&out.heap)
}

/// `units` narrowed into `bytes` when every one is ASCII.
#[inline]
fn ascii<'a>(units: &[u16], bytes: &'a mut [MaybeUninit<u8>; UNITS]) -> Option<&'a str> {
    if units.len() > UNITS || units.iter().fold(0u16, |acc, &u| acc | u) >= 0x80 {
        return None;
    }
    for (b, &u) in bytes.iter_mut().zip(units) {
        b.write(u as u8);
    }
    // SAFETY: the first `units.len()` bytes were written just above, all ASCII (valid UTF-8).
    Some(unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(bytes.as_ptr().cast::<u8>(), units.len())) })
}

/// `units` decoded into `out`; a lone surrogate is an `invalid_input` error.
fn decode(units: &[u16], out: &mut String, position: usize) -> Result<()> {
    out.clear();
    out.reserve(units.len());
    for c in char::decode_utf16(units.iter().copied()) {
        out.push(c.map_err(|_| arg_error(position, "a string without lone surrogates"))?);
    }
    Ok(())
}
