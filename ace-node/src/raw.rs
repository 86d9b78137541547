//! The per-step calls written against Node-API directly.
//!
//! Even a plain `#[napi]` function opens and closes a borrow-tracking scope (a thread-local push,
//! an allocation) around every call: about 110 ns, more than a breaker's whole decision. These
//! callbacks read their arguments with `napi_get_cb_info` into stack buffers and do nothing
//! else: `breakerTryAcquire`, `breakerComplete`, `breakerFlush`, `recordStage` (without
//! metrics) and `recordError`. They
//! never unwind into Node (a panic is caught and thrown as an `internal` error).

use std::ffi::{CString, c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::null_mut;

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;
use serde_json::Value;

use crate::hot;

/// Throws `error` (an `ace:{json}` error) and returns no value.
unsafe fn throw(env: sys::napi_env, error: &Error) -> sys::napi_value {
    let message = CString::new(error.reason.replace('\0', " ")).unwrap_or_default();
    // SAFETY: `env` is the live env of this callback; both strings are NUL-terminated.
    unsafe { sys::napi_throw_error(env, null_mut(), message.as_ptr()) };
    null_mut()
}

fn arg_error(position: usize, expected: &str) -> Error {
    crate::coded(
        "invalid_input",
        &format!("invalid argument {position}: expected {expected}"),
        serde_json::json!({ "field": format!("argument {position}") }),
    )
}

/// Reads up to `N` arguments.
unsafe fn args<const N: usize>(env: sys::napi_env, info: sys::napi_callback_info) -> ([sys::napi_value; N], usize) {
    let mut argv = [null_mut(); N];
    let mut argc = N;
    // SAFETY: `argv` has room for `argc` values; `env` and `info` come from Node for this call.
    unsafe { sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), null_mut(), null_mut()) };
    (argv, argc.min(N))
}

unsafe fn u32_arg(env: sys::napi_env, v: sys::napi_value, position: usize) -> Result<u32> {
    let mut out = 0u32;
    // SAFETY: `v` is an argument value of this call.
    match unsafe { sys::napi_get_value_uint32(env, v, &mut out) } {
        sys::Status::napi_ok => Ok(out),
        _ => Err(arg_error(position, "a number")),
    }
}

unsafe fn f64_arg(env: sys::napi_env, v: sys::napi_value, position: usize) -> Result<f64> {
    let mut out = 0f64;
    // SAFETY: as above.
    match unsafe { sys::napi_get_value_double(env, v, &mut out) } {
        sys::Status::napi_ok => Ok(out),
        _ => Err(arg_error(position, "a number")),
    }
}

unsafe fn bool_arg(env: sys::napi_env, v: sys::napi_value, position: usize) -> Result<bool> {
    let mut out = false;
    // SAFETY: as above.
    match unsafe { sys::napi_get_value_bool(env, v, &mut out) } {
        sys::Status::napi_ok => Ok(out),
        _ => Err(arg_error(position, "a boolean")),
    }
}

/// A string argument as UTF-8: in `buf` when it fits, else in `heap`. A string holding a lone
/// surrogate (which UTF-8 cannot hold, and V8 would replace with U+FFFD) is refused.
unsafe fn str_arg<'a>(
    env: sys::napi_env,
    v: sys::napi_value,
    position: usize,
    buf: &'a mut [u8; 256],
    heap: &'a mut Vec<u8>,
) -> Result<&'a str> {
    let mut len = 0usize;
    // SAFETY: `buf` is writable for its length; Node writes at most `len - 1` bytes and a NUL.
    let status =
        unsafe { sys::napi_get_value_string_utf8(env, v, buf.as_mut_ptr().cast::<c_char>(), buf.len(), &mut len) };
    if status != sys::Status::napi_ok {
        return Err(arg_error(position, "a string"));
    }
    // Node stops short of a character that does not fit, up to 3 bytes before the end of the
    // buffer: only a string that left 4 bytes free is surely whole.
    let bytes: &[u8] = if len + 4 < buf.len() {
        &buf[..len]
    } else {
        // Possibly cut: ask for the length, then copy it whole.
        // SAFETY: a null buffer asks only for the length.
        unsafe { sys::napi_get_value_string_utf8(env, v, null_mut(), 0, &mut len) };
        heap.resize(len + 1, 0);
        // SAFETY: `heap` has room for `len` bytes and the NUL.
        unsafe { sys::napi_get_value_string_utf8(env, v, heap.as_mut_ptr().cast::<c_char>(), len + 1, &mut len) };
        &heap[..len]
    };
    let text = std::str::from_utf8(bytes).map_err(|_| arg_error(position, "a string"))?;
    // V8 wrote U+FFFD for each lone surrogate: only then is the UTF-16 original looked at.
    // SAFETY: `env` and `v` are live for this call, as above.
    if !text.is_ascii() && text.contains('\u{FFFD}') && unsafe { lone_surrogate(env, v) } {
        return Err(arg_error(position, "a string without lone surrogates"));
    }
    Ok(text)
}

/// Whether the JS string `v` holds a lone surrogate.
unsafe fn lone_surrogate(env: sys::napi_env, v: sys::napi_value) -> bool {
    let mut len = 0usize;
    // SAFETY: a null buffer asks only for the length (in UTF-16 units).
    unsafe { sys::napi_get_value_string_utf16(env, v, null_mut(), 0, &mut len) };
    let mut units = vec![0u16; len + 1];
    // SAFETY: `units` has room for `len` units and the NUL.
    unsafe { sys::napi_get_value_string_utf16(env, v, units.as_mut_ptr(), len + 1, &mut len) };
    char::decode_utf16(units[..len].iter().copied()).any(|c| c.is_err())
}

unsafe fn int(env: sys::napi_env, v: i32) -> sys::napi_value {
    let mut out = null_mut();
    // SAFETY: `env` is live.
    unsafe { sys::napi_create_int32(env, v, &mut out) };
    out
}

unsafe fn double(env: sys::napi_env, v: f64) -> sys::napi_value {
    let mut out = null_mut();
    // SAFETY: `env` is live.
    unsafe { sys::napi_create_double(env, v, &mut out) };
    out
}

unsafe fn null(env: sys::napi_env) -> sys::napi_value {
    let mut out = null_mut();
    // SAFETY: `env` is live.
    unsafe { sys::napi_get_null(env, &mut out) };
    out
}

/// Runs a callback body, throwing its error and catching any panic.
unsafe fn run(env: sys::napi_env, f: impl FnOnce() -> Result<sys::napi_value>) -> sys::napi_value {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        // SAFETY: `env` is live.
        Ok(Err(e)) => unsafe { throw(env, &e) },
        Err(_) => unsafe {
            throw(env, &crate::coded("internal", "internal error in ace (please report it)", Value::Null))
        },
    }
}

/// `breakerTryAcquire(id)`: a permit (its number), or -1 when the breaker turns the call away.
unsafe extern "C" fn breaker_try_acquire(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: called by Node with this call's env and info.
    unsafe {
        run(env, || {
            let (argv, _) = args::<1>(env, info);
            let id = u32_arg(env, argv[0], 1)?;
            Ok(double(env, hot::try_acquire(id)?))
        })
    }
}

/// `breakerComplete(id, permit, outcome)`: 0 success, 1 failure, 2 ignored, 3 given back.
unsafe extern "C" fn breaker_complete(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: called by Node with this call's env and info.
    unsafe {
        run(env, || {
            let (argv, _) = args::<3>(env, info);
            let id = u32_arg(env, argv[0], 1)?;
            let permit = f64_arg(env, argv[1], 2)?;
            let outcome = u32_arg(env, argv[2], 3)?;
            hot::complete(id, permit, outcome)?;
            Ok(null(env))
        })
    }
}

/// `breakerFlush(id, pending, outcome)`: hands over successes counted in JS and an outcome;
/// whether JS may keep counting (see `hot::flush`).
unsafe extern "C" fn breaker_flush(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: called by Node with this call's env and info.
    unsafe {
        run(env, || {
            let (argv, _) = args::<3>(env, info);
            let id = u32_arg(env, argv[0], 1)?;
            let pending = u32_arg(env, argv[1], 2)?;
            let outcome = u32_arg(env, argv[2], 3)?;
            Ok(int(env, i32::from(hot::flush(id, pending, outcome)?)))
        })
    }
}

/// `recordStage(handle, agent, task, stage, durationS, success)`: `null` or a report.
unsafe extern "C" fn record_stage(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: called by Node with this call's env and info.
    unsafe {
        run(env, || {
            let (argv, argc) = args::<6>(env, info);
            if argc < 6 {
                return Err(arg_error(argc + 1, "recordStage(handle, agent, task, stage, durationS, success)"));
            }
            let handle = u32_arg(env, argv[0], 1)?;
            let (mut b1, mut b2, mut b3) = ([0u8; 256], [0u8; 256], [0u8; 256]);
            let (mut h1, mut h2, mut h3) = (Vec::new(), Vec::new(), Vec::new());
            let agent = str_arg(env, argv[1], 2, &mut b1, &mut h1)?;
            let task = str_arg(env, argv[2], 3, &mut b2, &mut h2)?;
            let stage = str_arg(env, argv[3], 4, &mut b3, &mut h3)?;
            let duration = f64_arg(env, argv[4], 5)?;
            let success = bool_arg(env, argv[5], 6)?;
            match hot::record_stage_report(handle, agent, task, stage, duration, success)? {
                None => Ok(null(env)),
                Some(v) => Value::to_napi_value(env, v),
            }
        })
    }
}

unsafe fn string(env: sys::napi_env, v: &str) -> sys::napi_value {
    let mut out = null_mut();
    // SAFETY: `env` is live; `v` is valid UTF-8 of the given length.
    unsafe { sys::napi_create_string_utf8(env, v.as_ptr().cast::<c_char>(), v.len() as isize, &mut out) };
    out
}

/// `[pattern, template, severity, occurrences, truncated]`: an error report with no signal and
/// no intervention, as five values (JS makes the object: cheaper than setting its properties
/// from here one by one).
unsafe fn plain_error(env: sys::napi_env, r: &ace::ErrorReport) -> sys::napi_value {
    let mut array = null_mut();
    let mut pattern = [0u8; 16];
    let id = r.pattern.0.to_be_bytes();
    for (i, b) in id.iter().enumerate() {
        pattern[2 * i] = HEX[usize::from(b >> 4)];
        pattern[2 * i + 1] = HEX[usize::from(b & 15)];
    }
    // SAFETY: `env` is live; the array is made here and filled within its length.
    unsafe {
        sys::napi_create_array_with_length(env, 5, &mut array);
        let mut truncated = null_mut();
        sys::napi_get_boolean(env, r.truncated, &mut truncated);
        let values = [
            string(env, std::str::from_utf8_unchecked(&pattern)),
            string(env, &r.template),
            string(env, r.severity.as_str()),
            int(env, r.occurrences as i32),
            truncated,
        ];
        for (i, v) in values.into_iter().enumerate() {
            sys::napi_set_element(env, array, i as u32, v);
        }
    }
    array
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `recordError(handle, agent, task, stage, kind, message, severity)`: an error report, as
/// `[pattern, template, severity, occurrences, truncated]` when it raised nothing, else whole.
/// `severity` is a name or `null`/`undefined`.
unsafe extern "C" fn record_error(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: called by Node with this call's env and info.
    unsafe {
        run(env, || {
            let (argv, argc) = args::<7>(env, info);
            if argc < 6 {
                return Err(arg_error(argc + 1, "recordError(handle, agent, task, stage, kind, message, severity)"));
            }
            let handle = u32_arg(env, argv[0], 1)?;
            let (mut b1, mut b2, mut b3, mut b4) = ([0u8; 256], [0u8; 256], [0u8; 256], [0u8; 256]);
            let (mut b5, mut b6) = ([0u8; 256], [0u8; 256]);
            let (mut h1, mut h2, mut h3, mut h4) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            let (mut h5, mut h6) = (Vec::new(), Vec::new());
            let agent = str_arg(env, argv[1], 2, &mut b1, &mut h1)?;
            let task = str_arg(env, argv[2], 3, &mut b2, &mut h2)?;
            let stage = str_arg(env, argv[3], 4, &mut b3, &mut h3)?;
            let kind = str_arg(env, argv[4], 5, &mut b4, &mut h4)?;
            let message = str_arg(env, argv[5], 6, &mut b5, &mut h5)?;
            let severity = if argc < 7 || is_nullish(env, argv[6]) {
                None
            } else {
                Some(str_arg(env, argv[6], 7, &mut b6, &mut h6)?)
            };
            match hot::record_error_report(handle, agent, task, stage, (kind, message), severity)? {
                hot::ErrorOut::Plain(r) => Ok(plain_error(env, &r)),
                hot::ErrorOut::Whole(v) => Value::to_napi_value(env, v),
            }
        })
    }
}

/// Whether `v` is `null` or `undefined`.
unsafe fn is_nullish(env: sys::napi_env, v: sys::napi_value) -> bool {
    let mut kind = sys::ValueType::napi_undefined;
    // SAFETY: `v` is an argument value of this call.
    unsafe { sys::napi_typeof(env, v, &mut kind) };
    kind == sys::ValueType::napi_undefined || kind == sys::ValueType::napi_null
}

fn define(
    env: sys::napi_env,
    exports: &mut sys::napi_value,
    name: &std::ffi::CStr,
    cb: sys::napi_callback,
) -> Result<()> {
    let mut f = null_mut();
    // SAFETY: `env` is the live env of the `fastApi()` call; `name` is NUL-terminated.
    let status = unsafe {
        sys::napi_create_function(env, name.as_ptr(), name.to_bytes().len() as isize, cb, null_mut::<c_void>(), &mut f)
    };
    if status != sys::Status::napi_ok {
        return Err(Error::from_reason("napi_create_function failed"));
    }
    // SAFETY: as above; `exports` is an object made in this call.
    let status = unsafe { sys::napi_set_named_property(env, *exports, name.as_ptr(), f) };
    if status != sys::Status::napi_ok {
        return Err(Error::from_reason("napi_set_named_property failed"));
    }
    Ok(())
}

/// The fast per-step calls: `{recordStage, recordError, breakerTryAcquire, breakerComplete,
/// breakerFlush}`,
/// and `breakerEpoch`: 4 bytes over [`hot::BREAKER_EPOCH`] (the count of breaker transitions in
/// this process), which the JS fast path reads on every call (`null` where Node refuses external
/// buffers: the fast path is then off).
#[napi(
    ts_return_type = "{ recordStage(handle: number, agent: string, task: string, stage: string, durationS: number, success: boolean): Record<string, unknown> | null; recordError(handle: number, agent: string, task: string, stage: string, kind: string, message: string, severity?: string | null): [string, string, string, number, boolean] | Record<string, unknown>; breakerTryAcquire(id: number): number; breakerComplete(id: number, slot: number, outcome: number): null; breakerFlush(id: number, pending: number, outcome: number): number; breakerEpoch: ArrayBuffer | null }"
)]
pub fn fast_api(env: &Env) -> Result<Object<'_>> {
    let obj = Object::new(env)?;
    let mut raw = obj.raw();
    define(env.raw(), &mut raw, c"recordStage", Some(record_stage))?;
    define(env.raw(), &mut raw, c"recordError", Some(record_error))?;
    define(env.raw(), &mut raw, c"breakerTryAcquire", Some(breaker_try_acquire))?;
    define(env.raw(), &mut raw, c"breakerComplete", Some(breaker_complete))?;
    define(env.raw(), &mut raw, c"breakerFlush", Some(breaker_flush))?;
    let mut epoch = null_mut();
    // SAFETY: the buffer's memory is a static that lives as long as the process, so it needs no
    // finaliser; JS only reads it, and the Rust side writes it atomically.
    let status = unsafe {
        sys::napi_create_external_arraybuffer(
            env.raw(),
            hot::BREAKER_EPOCH.as_ptr().cast::<c_void>(),
            std::mem::size_of::<u32>(),
            None,
            null_mut(),
            &mut epoch,
        )
    };
    if status != sys::Status::napi_ok {
        // SAFETY: as above.
        unsafe { sys::napi_get_null(env.raw(), &mut epoch) };
    }
    // SAFETY: `raw` is the object made above; the name is NUL-terminated.
    let status = unsafe { sys::napi_set_named_property(env.raw(), raw, c"breakerEpoch".as_ptr(), epoch) };
    if status != sys::Status::napi_ok {
        return Err(Error::from_reason("napi_set_named_property failed"));
    }
    Ok(obj)
}
