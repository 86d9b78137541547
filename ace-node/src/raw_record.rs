//! `recordStage`, `recordStageSame` and `recordError` written against Node-API directly (see
//! src/raw.rs for why).
//!
//! Each `fastApi()` object has a [`Fast`] of its own, shared by its three functions (their
//! callback data) and freed with the last of them: the names of its last `recordStage`, for
//! `recordStageSame`, which records again under them without reading three strings (JS calls it
//! only when it was given the same names as the last call: ace-node/record.js); and the numbers
//! of `recordError`'s report, which JS reads from a buffer over them, so that the common report
//! (no signal, no intervention) crosses as one string.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_void};
use std::ptr::null_mut;
use std::rc::Rc;

use napi::bindgen_prelude::*;
use napi::sys;
use serde_json::Value;

use crate::hot;
use crate::raw::{arg_error, args_data, bool_arg, define, f64_arg, int, null, run, u32_arg};
use crate::raw_str::{StrBuf, read, units};

/// What the record calls of one `fastApi()` object share.
pub(crate) struct Fast {
    /// The names (agent, task, stage) of the last `recordStage` whose arguments were read.
    last: RefCell<Option<[String; 3]>>,
    /// What `recordError` leaves beside the string it returns: occurrences, the severity (its
    /// index in `severities`) and whether the message was truncated (0 or 1).
    scratch: [Cell<f64>; 3],
    /// Whether JS has a buffer over `scratch` (Node may refuse external buffers): if not,
    /// `recordError` returns its five values as an array.
    shared: Cell<bool>,
}

/// Drops the `Fast` a function or buffer held (its finaliser).
unsafe extern "C" fn release(_env: sys::napi_env, data: *mut c_void, hint: *mut c_void) {
    let fast = if hint.is_null() { data } else { hint };
    // SAFETY: `fast` came from `Rc::into_raw` in `define_all`, once per finaliser.
    drop(unsafe { Rc::from_raw(fast.cast_const().cast::<Fast>()) });
}

/// The `Fast` of this call (its callback data).
///
/// # Safety
/// `data` is the callback data of a function made by `define_all`, which the function keeps.
unsafe fn fast<'a>(data: *mut c_void) -> &'a Fast {
    // SAFETY: see above; the function being called holds a count of the `Rc`.
    unsafe { &*data.cast_const().cast::<Fast>() }
}

/// `recordStage(handle, agent, task, stage, durationS, success)`: `null` or a report.
unsafe extern "C" fn record_stage(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: called by Node with this call's env and info.
    unsafe {
        run(env, || {
            let (argv, argc, data) = args_data::<6>(env, info);
            if argc < 6 {
                return Err(arg_error(argc + 1, "recordStage(handle, agent, task, stage, durationS, success)"));
            }
            let handle = u32_arg(env, argv[0], 1)?;
            let mut scratch = units();
            let (mut b1, mut b2, mut b3) = (StrBuf::new(), StrBuf::new(), StrBuf::new());
            let agent = read(env, argv[1], 2, &mut scratch, &mut b1)?;
            let task = read(env, argv[2], 3, &mut scratch, &mut b2)?;
            let stage = read(env, argv[3], 4, &mut scratch, &mut b3)?;
            let duration = f64_arg(env, argv[4], 5)?;
            let success = bool_arg(env, argv[5], 6)?;
            remember(fast(data), [agent, task, stage]);
            report(env, hot::record_stage_report(handle, agent, task, stage, duration, success)?)
        })
    }
}

/// Keeps `names` as the last call's, in the strings already there.
fn remember(fast: &Fast, names: [&str; 3]) {
    let mut last = fast.last.borrow_mut();
    let kept = last.get_or_insert_with(Default::default);
    for (kept, name) in kept.iter_mut().zip(names) {
        kept.clear();
        kept.push_str(name);
    }
}

unsafe fn report(env: sys::napi_env, r: Option<Value>) -> Result<sys::napi_value> {
    match r {
        // SAFETY: `env` is live.
        None => Ok(unsafe { null(env) }),
        // SAFETY: as above.
        Some(v) => unsafe { Value::to_napi_value(env, v) },
    }
}

/// `recordStageSame(handle, durationS, success)`: `recordStage` under the last call's names;
/// `undefined` when there is none (JS then makes the whole call).
unsafe extern "C" fn record_stage_same(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: called by Node with this call's env and info.
    unsafe {
        run(env, || {
            let (argv, argc, data) = args_data::<3>(env, info);
            if argc < 3 {
                return Err(arg_error(argc + 1, "recordStageSame(handle, durationS, success)"));
            }
            let handle = u32_arg(env, argv[0], 1)?;
            let duration = f64_arg(env, argv[1], 2)?;
            let success = bool_arg(env, argv[2], 3)?;
            let last = fast(data).last.borrow();
            let Some([agent, task, stage]) = last.as_ref() else {
                let mut undefined = null_mut();
                sys::napi_get_undefined(env, &mut undefined);
                return Ok(undefined);
            };
            report(env, hot::record_stage_report(handle, agent, task, stage, duration, success)?)
        })
    }
}

/// `recordError(handle, agent, task, stage, kind, message, severity)`: an error report. When it
/// raised nothing: the pattern (16 hex digits) followed by the template, one string, with the
/// rest in `errorScratch` (or `[pattern, template, severity, occurrences, truncated]` where there
/// is no `errorScratch`); else the whole report. `severity` is a name or `null`/`undefined`.
unsafe extern "C" fn record_error(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: called by Node with this call's env and info.
    unsafe {
        run(env, || {
            let (argv, argc, data) = args_data::<7>(env, info);
            if argc < 6 {
                return Err(arg_error(argc + 1, "recordError(handle, agent, task, stage, kind, message, severity)"));
            }
            let handle = u32_arg(env, argv[0], 1)?;
            let mut scratch = units();
            let (mut b1, mut b2, mut b3) = (StrBuf::new(), StrBuf::new(), StrBuf::new());
            let (mut b4, mut b5, mut b6) = (StrBuf::new(), StrBuf::new(), StrBuf::new());
            let agent = read(env, argv[1], 2, &mut scratch, &mut b1)?;
            let task = read(env, argv[2], 3, &mut scratch, &mut b2)?;
            let stage = read(env, argv[3], 4, &mut scratch, &mut b3)?;
            let kind = read(env, argv[4], 5, &mut scratch, &mut b4)?;
            let message = read(env, argv[5], 6, &mut scratch, &mut b5)?;
            let severity = if argc < 7 || is_nullish(env, argv[6]) {
                None
            } else {
                Some(read(env, argv[6], 7, &mut scratch, &mut b6)?)
            };
            match hot::record_error_report(handle, agent, task, stage, (kind, message), severity)? {
                hot::ErrorOut::Plain(r) => {
                    let fast = fast(data);
                    if !fast.shared.get() {
                        return Ok(plain_error(env, &r));
                    }
                    let severity = ace::Severity::ALL.iter().position(|s| *s == r.severity).unwrap_or(0);
                    fast.scratch[0].set(r.occurrences as f64);
                    fast.scratch[1].set(severity as f64);
                    fast.scratch[2].set(f64::from(u8::from(r.truncated)));
                    Ok(pattern_and_template(env, &r))
                }
                hot::ErrorOut::Whole(v) => Value::to_napi_value(env, v),
            }
        })
    }
}

/// The pattern's 16 hex digits.
fn hex(r: &ace::ErrorReport) -> [u8; 16] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 16];
    for (i, b) in r.pattern.0.to_be_bytes().iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 15)];
    }
    out
}

/// The pattern's hex digits and the template, as one JS string (Latin-1, a copy, when ASCII).
unsafe fn pattern_and_template(env: sys::napi_env, r: &ace::ErrorReport) -> sys::napi_value {
    let template = r.template.as_bytes();
    let mut stack = [0u8; 256];
    let mut heap = Vec::new();
    let whole: &mut [u8] = if 16 + template.len() <= stack.len() {
        &mut stack[..16 + template.len()]
    } else {
        heap.resize(16 + template.len(), 0);
        &mut heap[..]
    };
    whole[..16].copy_from_slice(&hex(r));
    whole[16..].copy_from_slice(template);
    let mut out = null_mut();
    let (ptr, len) = (whole.as_ptr().cast::<c_char>(), whole.len() as isize);
    // SAFETY: `env` is live; `whole` is valid UTF-8 (hex digits and a `str`) of length `len`.
    unsafe {
        if template.is_ascii() {
            sys::napi_create_string_latin1(env, ptr, len, &mut out);
        } else {
            sys::napi_create_string_utf8(env, ptr, len, &mut out);
        }
    }
    out
}

unsafe fn string(env: sys::napi_env, v: &[u8]) -> sys::napi_value {
    let mut out = null_mut();
    // SAFETY: `env` is live; `v` is valid UTF-8 of the given length.
    unsafe { sys::napi_create_string_utf8(env, v.as_ptr().cast::<c_char>(), v.len() as isize, &mut out) };
    out
}

/// `[pattern, template, severity, occurrences, truncated]`: an error report with no signal and
/// no intervention, as five values (where JS has no `errorScratch`).
unsafe fn plain_error(env: sys::napi_env, r: &ace::ErrorReport) -> sys::napi_value {
    let mut array = null_mut();
    // SAFETY: `env` is live; the array is made here and filled within its length.
    unsafe {
        sys::napi_create_array_with_length(env, 5, &mut array);
        let mut truncated = null_mut();
        sys::napi_get_boolean(env, r.truncated, &mut truncated);
        let values = [
            string(env, &hex(r)),
            string(env, r.template.as_bytes()),
            string(env, r.severity.as_str().as_bytes()),
            int(env, r.occurrences as i32),
            truncated,
        ];
        for (i, v) in values.into_iter().enumerate() {
            sys::napi_set_element(env, array, i as u32, v);
        }
    }
    array
}

/// Whether `v` is `null` or `undefined`.
unsafe fn is_nullish(env: sys::napi_env, v: sys::napi_value) -> bool {
    let mut kind = sys::ValueType::napi_undefined;
    // SAFETY: `v` is an argument value of this call.
    unsafe { sys::napi_typeof(env, v, &mut kind) };
    kind == sys::ValueType::napi_undefined || kind == sys::ValueType::napi_null
}

/// Puts `recordStage`, `recordStageSame`, `recordError`, `errorScratch` (an `ArrayBuffer` over
/// three f64: occurrences, severity index, truncated; or `null`) and `severities` (the names,
/// by index) on `exports`, with a new [`Fast`].
pub(crate) fn define_all(env: sys::napi_env, exports: sys::napi_value) -> Result<()> {
    let fast = Rc::new(Fast {
        last: RefCell::new(None),
        scratch: [Cell::new(0.0), Cell::new(0.0), Cell::new(0.0)],
        shared: Cell::new(false),
    });
    let calls: [(&std::ffi::CStr, sys::napi_callback); 3] = [
        (c"recordStage", Some(record_stage)),
        (c"recordStageSame", Some(record_stage_same)),
        (c"recordError", Some(record_error)),
    ];
    for (name, cb) in calls {
        let data = Rc::into_raw(fast.clone()).cast_mut().cast::<c_void>();
        let f = define(env, exports, name, cb, data)?;
        // SAFETY: `f` is the function just made; `release` drops the count `data` holds.
        let status = unsafe { sys::napi_add_finalizer(env, f, data, Some(release), null_mut(), null_mut()) };
        if status != sys::Status::napi_ok {
            return Err(Error::from_reason("napi_add_finalizer failed"));
        }
    }
    let mut buffer = null_mut();
    let hint = Rc::into_raw(fast.clone()).cast_mut().cast::<c_void>();
    // SAFETY: the memory is `fast.scratch`, which lives while the buffer does (it holds a count
    // of `fast`, dropped by `release`); JS only reads it between calls.
    let status = unsafe {
        sys::napi_create_external_arraybuffer(
            env,
            fast.scratch.as_ptr().cast_mut().cast::<c_void>(),
            std::mem::size_of_val(&fast.scratch),
            Some(release),
            hint,
            &mut buffer,
        )
    };
    if status == sys::Status::napi_ok {
        fast.shared.set(true);
    } else {
        // SAFETY: the buffer was not made, so `hint`'s count is dropped here; `env` is live.
        unsafe {
            drop(Rc::from_raw(hint.cast_const().cast::<Fast>()));
            sys::napi_get_null(env, &mut buffer);
        }
    }
    let mut severities = null_mut();
    // SAFETY: `env` is live; the array is made here and filled within its length.
    unsafe {
        sys::napi_create_array_with_length(env, ace::Severity::ALL.len(), &mut severities);
        for (i, s) in ace::Severity::ALL.iter().enumerate() {
            sys::napi_set_element(env, severities, i as u32, string(env, s.as_str().as_bytes()));
        }
    }
    for (name, value) in [(c"errorScratch", buffer), (c"severities", severities)] {
        // SAFETY: `exports` is the object being filled; the name is NUL-terminated.
        if unsafe { sys::napi_set_named_property(env, exports, name.as_ptr(), value) } != sys::Status::napi_ok {
            return Err(Error::from_reason("napi_set_named_property failed"));
        }
    }
    Ok(())
}
