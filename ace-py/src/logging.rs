//! ace's log events into Python's `logging`, under the logger `ace` (`ace.persist.writer`,
//! `ace.store.postgres`, ...). The core logs through `tracing`; with no tracing subscriber set,
//! its events arrive here as `log` records.

use pyo3::prelude::*;

struct PyLogger;

/// The Python logger name for a Rust target: `ace_core::persist::writer` is `ace.persist.writer`,
/// `ace_store::postgres` is `ace.store.postgres`, another crate's `sqlx::pool` is `ace.sqlx`.
fn logger_name(target: &str) -> String {
    let mut parts = target.split("::");
    let first = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    let head = match first {
        "ace" | "ace_core" | "_ace" | "ace_py" => "ace".to_owned(),
        "ace_store" => "ace.store".to_owned(),
        other => return format!("ace.{other}"),
    };
    if rest.is_empty() { head } else { format!("{head}.{}", rest.join(".")) }
}

fn python_level(l: log::Level) -> u32 {
    match l {
        log::Level::Error => 40,
        log::Level::Warn => 30,
        log::Level::Info => 20,
        log::Level::Debug | log::Level::Trace => 10,
    }
}

impl log::Log for PyLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        let ours = metadata.target().starts_with("ace");
        metadata.level() <= log::max_level() && (ours || metadata.level() <= log::Level::Warn)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // Not during interpreter shutdown, and never raising: logging must not fail a call.
        let _ = crate::hooks::attach(|py| -> PyResult<()> {
            let level = python_level(record.level());
            let logger = py.import("logging")?.getattr("getLogger")?.call1((logger_name(record.target()),))?;
            if logger.call_method1("isEnabledFor", (level,))?.is_truthy()? {
                logger.call_method1("log", (level, "%s", record.args().to_string()))?;
            }
            Ok(())
        })
        .map(|r| r.map_err(|e| crate::hooks::attach(|py| e.write_unraisable(py, None))));
    }

    fn flush(&self) {}
}

/// Sets how much ace sends to `logging`: the effective level of the `ace` logger. Called at
/// import; call `ace.sync_log_level()` again after changing that level.
#[pyfunction]
pub(crate) fn sync_log_level(py: Python<'_>) -> PyResult<()> {
    let level: u32 =
        py.import("logging")?.getattr("getLogger")?.call1(("ace",))?.call_method0("getEffectiveLevel")?.extract()?;
    let filter = match level {
        0..=10 => log::LevelFilter::Debug,
        11..=20 => log::LevelFilter::Info,
        21..=30 => log::LevelFilter::Warn,
        31..=40 => log::LevelFilter::Error,
        _ => log::LevelFilter::Off,
    };
    log::set_max_level(filter);
    Ok(())
}

/// Installs the bridge (once per process; a second import keeps the first).
pub(crate) fn install(py: Python<'_>) {
    static LOGGER: PyLogger = PyLogger;
    if log::set_logger(&LOGGER).is_ok() {
        let _ = sync_log_level(py);
    }
}
