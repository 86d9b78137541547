//! The per-step calls written against Node-API directly.
//!
//! Even a plain `#[napi]` function opens and closes a borrow-tracking scope (a thread-local push,
//! an allocation) around every call: about 110 ns, more than a breaker's whole decision. These
//! callbacks read their arguments with `napi_get_cb_info` into stack buffers and do nothing
//! else: `breakerTryAcquire`, `breakerComplete`, `breakerFlush`, and in src/raw_record.rs
//! `recordStage` (without metrics), `recordStageSame` and `recordError`. They never unwind
//! into Node (a panic is caught and thrown as an `internal` error).

use std::ffi::{CString, c_void};
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

pub(crate) fn arg_error(position: usize, expected: &str) -> Error {
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

/// Reads up to `N` arguments and the function's callback data.
pub(crate) unsafe fn args_data<const N: usize>(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> ([sys::napi_value; N], usize, *mut c_void) {
    let mut argv = [null_mut(); N];
    let mut argc = N;
    let mut data = null_mut();
    // SAFETY: `argv` has room for `argc` values; `env` and `info` come from Node for this call.
    unsafe { sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), null_mut(), &mut data) };
    (argv, argc.min(N), data)
}

pub(crate) unsafe fn u32_arg(env: sys::napi_env, v: sys::napi_value, position: usize) -> Result<u32> {
    let mut out = 0u32;
    // SAFETY: `v` is an argument value of this call.
    match unsafe { sys::napi_get_value_uint32(env, v, &mut out) } {
        sys::Status::napi_ok => Ok(out),
        _ => Err(arg_error(position, "a number")),
    }
}

pub(crate) unsafe fn f64_arg(env: sys::napi_env, v: sys::napi_value, position: usize) -> Result<f64> {
    let mut out = 0f64;
    // SAFETY: as above.
    match unsafe { sys::napi_get_value_double(env, v, &mut out) } {
        sys::Status::napi_ok => Ok(out),
        _ => Err(arg_error(position, "a number")),
    }
}

pub(crate) unsafe fn bool_arg(env: sys::napi_env, v: sys::napi_value, position: usize) -> Result<bool> {
    let mut out = false;
    // SAFETY: as above.
    match unsafe { sys::napi_get_value_bool(env, v, &mut out) } {
        sys::Status::napi_ok => Ok(out),
        _ => Err(arg_error(position, "a boolean")),
    }
}

pub(crate) unsafe fn int(env: sys::napi_env, v: i32) -> sys::napi_value {
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

pub(crate) unsafe fn null(env: sys::napi_env) -> sys::napi_value {
    let mut out = null_mut();
    // SAFETY: `env` is live.
    unsafe { sys::napi_get_null(env, &mut out) };
    out
}

/// Runs a callback body, throwing its error and catching any panic.
pub(crate) unsafe fn run(env: sys::napi_env, f: impl FnOnce() -> Result<sys::napi_value>) -> sys::napi_value {
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

/// Makes function `name` calling `cb` with `data`, and puts it on `exports`.
pub(crate) fn define(
    env: sys::napi_env,
    exports: sys::napi_value,
    name: &std::ffi::CStr,
    cb: sys::napi_callback,
    data: *mut c_void,
) -> Result<sys::napi_value> {
    let mut f = null_mut();
    // SAFETY: `env` is the live env of the `fastApi()` call; `name` is NUL-terminated.
    let status =
        unsafe { sys::napi_create_function(env, name.as_ptr(), name.to_bytes().len() as isize, cb, data, &mut f) };
    if status != sys::Status::napi_ok {
        return Err(Error::from_reason("napi_create_function failed"));
    }
    // SAFETY: as above; `exports` is an object made in this call.
    let status = unsafe { sys::napi_set_named_property(env, exports, name.as_ptr(), f) };
    if status != sys::Status::napi_ok {
        return Err(Error::from_reason("napi_set_named_property failed"));
    }
    Ok(f)
}

/// The fast per-step calls: `{recordStage, recordStageSame, recordError, breakerTryAcquire,
/// breakerComplete, breakerFlush}`, with `errorScratch` and `severities` (src/raw_record.rs),
/// and `breakerEpoch`: 4 bytes over [`hot::BREAKER_EPOCH`] (the count of breaker transitions in
/// this process), which the JS fast path reads on every call (`null` where Node refuses external
/// buffers: the fast path is then off).
#[napi(
    ts_return_type = "{ recordStage(handle: number, agent: string, task: string, stage: string, durationS: number, success: boolean): Record<string, unknown> | null; recordStageSame(handle: number, durationS: number, success: boolean): Record<string, unknown> | null | undefined; recordError(handle: number, agent: string, task: string, stage: string, kind: string, message: string, severity?: string | null): string | [string, string, string, number, boolean] | Record<string, unknown>; errorScratch: ArrayBuffer | null; severities: string[]; breakerTryAcquire(id: number): number; breakerComplete(id: number, slot: number, outcome: number): null; breakerFlush(id: number, pending: number, outcome: number): number; breakerEpoch: ArrayBuffer | null }"
)]
pub fn fast_api(env: &Env) -> Result<Object<'_>> {
    let obj = Object::new(env)?;
    let raw = obj.raw();
    crate::raw_record::define_all(env.raw(), raw)?;
    define(env.raw(), raw, c"breakerTryAcquire", Some(breaker_try_acquire), null_mut())?;
    define(env.raw(), raw, c"breakerComplete", Some(breaker_complete), null_mut())?;
    define(env.raw(), raw, c"breakerFlush", Some(breaker_flush), null_mut())?;
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
