//! The one error type of the engine.
//!
//! Every fallible call in ace returns [`Error`]. Each variant is named for what the caller can do
//! about it, and [`Error::code`] gives a stable string that the Python and Node bindings map to
//! their own exception classes, so no binding ever parses an error message.

use std::fmt;

/// A boxed error from a backend (SQLite, PostgreSQL, Redis, a host callback).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in ace.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is missing, malformed or out of range. Fix the setting and restart.
    #[error("invalid configuration {key}={value}: {reason}")]
    Config {
        /// The setting, as its environment variable name (`ACE_BATCH_SIZE`).
        key: String,
        /// The offending value (credentials are redacted).
        value: String,
        /// What a valid value looks like.
        reason: String,
    },

    /// An argument of a call was rejected (empty id, NaN metric, negative duration...).
    /// Nothing of the call was recorded; fix the input and call again.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The argument that was rejected.
        field: &'static str,
        /// Why it was rejected.
        reason: String,
    },

    /// The engine was closed; build a new one.
    #[error("the ace engine is closed")]
    Closed,

    /// A store or cache could not be reached or opened. Retrying later may succeed.
    #[error("{backend} store unavailable: {message}")]
    StoreUnavailable {
        /// `sqlite`, `postgres`, `redis`, ...
        backend: &'static str,
        /// What failed, without credentials.
        message: String,
        /// The backend's own error.
        #[source]
        source: Option<BoxError>,
    },

    /// A store operation failed after the store was reached.
    #[error("{backend} store failed to {operation}: {source}")]
    Store {
        /// `sqlite`, `postgres`, `redis`, ...
        backend: &'static str,
        /// What ace was doing (`append records`, `load baselines`, `migrate`).
        operation: &'static str,
        /// The backend's own error.
        #[source]
        source: BoxError,
    },

    /// Stored data is damaged or was tampered with; ace refuses to use it.
    #[error("corrupt data in {what}: {reason}")]
    Corrupt {
        /// What holds the damaged data (a file path, a table).
        what: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A circuit breaker did not let the call through.
    #[error("circuit breaker '{breaker}' is open{}", retry_after.map(|d| format!(" (retry after {:.3} s)", d.as_secs_f64())).unwrap_or_default())]
    CircuitOpen {
        /// The breaker's name.
        breaker: String,
        /// How long until it lets a trial through, when known.
        retry_after: Option<std::time::Duration>,
    },

    /// A bug in ace. Please report it with the message.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// A stable, machine-readable code for this error.
    ///
    /// | code | variant |
    /// |---|---|
    /// | `config` | [`Error::Config`] |
    /// | `invalid_input` | [`Error::InvalidInput`] |
    /// | `closed` | [`Error::Closed`] |
    /// | `store_unavailable` | [`Error::StoreUnavailable`] |
    /// | `store` | [`Error::Store`] |
    /// | `corrupt` | [`Error::Corrupt`] |
    /// | `internal` | [`Error::Internal`] |
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Error::Config { .. } => "config",
            Error::InvalidInput { .. } => "invalid_input",
            Error::Closed => "closed",
            Error::StoreUnavailable { .. } => "store_unavailable",
            Error::Store { .. } => "store",
            Error::Corrupt { .. } => "corrupt",
            Error::CircuitOpen { .. } => "circuit_open",
            Error::Internal(_) => "internal",
        }
    }

    /// The structured fields the bindings attach to their exception beside the code and the
    /// message, by snake_case name: `key` ([`Error::Config`]), `field` ([`Error::InvalidInput`]),
    /// `backend` ([`Error::StoreUnavailable`], [`Error::Store`]), `breaker` and `retry_after`
    /// ([`Error::CircuitOpen`]); none for the others.
    ///
    /// ```
    /// use ace_core::error::{Detail, Error};
    ///
    /// let e = Error::CircuitOpen { breaker: "llm".into(), retry_after: None };
    /// assert_eq!(e.details(), [("breaker", Detail::Text("llm")), ("retry_after", Detail::Seconds(None))]);
    /// ```
    #[must_use]
    pub fn details(&self) -> Vec<(&'static str, Detail<'_>)> {
        match self {
            Error::Config { key, .. } => vec![("key", Detail::Text(key))],
            Error::InvalidInput { field, .. } => vec![("field", Detail::Text(field))],
            Error::StoreUnavailable { backend, .. } | Error::Store { backend, .. } => {
                vec![("backend", Detail::Text(backend))]
            }
            Error::CircuitOpen { breaker, retry_after } => vec![
                ("breaker", Detail::Text(breaker)),
                ("retry_after", Detail::Seconds(retry_after.map(|d| d.as_secs_f64()))),
            ],
            Error::Closed | Error::Corrupt { .. } | Error::Internal(_) => Vec::new(),
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl fmt::Display) -> Self {
        Error::InvalidInput { field, reason: reason.to_string() }
    }

    pub(crate) fn config(key: &str, value: &str, reason: impl fmt::Display) -> Self {
        Error::Config { key: key.to_owned(), value: value.to_owned(), reason: reason.to_string() }
    }
}

/// A count (a version, a burst, a number of failures, a size) as a binding receives it.
///
/// JS numbers arrive as `f64`, and the bindings' own integer conversions wrap a negative to
/// `4294967295` and turn NaN into `0`; both bindings pass counts through here instead, so NaN,
/// infinities, negatives, fractions and values past `u32::MAX` are an
/// [`InvalidInput`](Error::InvalidInput) error in every language.
///
/// ```
/// assert_eq!(ace_core::error::count("burst", 3.0)?, 3);
/// assert!(ace_core::error::count("burst", -1.0).is_err());
/// assert!(ace_core::error::count("version", f64::NAN).is_err());
/// # Ok::<(), ace_core::Error>(())
/// ```
pub fn count(field: &'static str, value: f64) -> Result<u32> {
    if value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value <= f64::from(u32::MAX) {
        Ok(value as u32)
    } else {
        Err(Error::invalid(field, format_args!("expected a whole number from 0 to {}, got {value}", u32::MAX)))
    }
}

/// The value of one of an error's [`details`](Error::details).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Detail<'a> {
    /// A name: the setting, the argument, the backend, the breaker.
    Text(&'a str),
    /// A duration in seconds, when known.
    Seconds(Option<f64>),
}

/// The message a caught panic carries (`catch_unwind`'s payload, dereferenced: pass
/// `&*payload`, not `&payload`), or `"unknown panic"` when it carries none. The bindings report
/// a panic as an internal error with this text instead of letting it cross into the host.
#[must_use]
pub fn panic_message(payload: &dyn std::any::Any) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "unknown panic"
    }
}

/// Replaces the password of a URL with `***`, so that a connection string can appear in an
/// error or a log line: the one in its user information (`scheme://user:password@host`) and any
/// secret in its query string (`?password=`, `sslpassword=`, `token=`, `secret=`, `key=` and
/// other names holding one of `pass`, `secret`, `token`, `key`; matched in any case).
#[must_use]
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let mut out = scheme.to_owned();
    // The user information ends at the last `@` before the path (a password may hold `?`).
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push_str(":***");
                }
                None => out.push_str(userinfo),
            }
            out.push('@');
            &rest[at + 1..]
        }
        None => rest,
    };
    let Some((path, query)) = rest.split_once('?') else {
        out.push_str(rest);
        return out;
    };
    out.push_str(path);
    out.push('?');
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((name, _)) if is_secret_name(name) => {
                out.push_str(name);
                out.push_str("=***");
            }
            _ => out.push_str(pair),
        }
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// Whether a query parameter's name says it holds a secret.
fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["pass", "pwd", "secret", "token", "key", "auth"].iter().any(|s| name.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        assert_eq!(Error::Closed.code(), "closed");
        assert_eq!(Error::invalid("agent", "empty").code(), "invalid_input");
        assert_eq!(Error::config("ACE_BATCH_SIZE", "x", "bad").code(), "config");
    }

    #[test]
    fn details_name_what_each_error_is_about() {
        use std::time::Duration;
        let e = Error::config("ACE_BATCH_SIZE", "x", "bad");
        assert_eq!(e.details(), [("key", Detail::Text("ACE_BATCH_SIZE"))]);
        assert_eq!(Error::invalid("agent", "empty").details(), [("field", Detail::Text("agent"))]);
        let e = Error::StoreUnavailable { backend: "redis", message: "down".into(), source: None };
        assert_eq!(e.details(), [("backend", Detail::Text("redis"))]);
        let e = Error::Store { backend: "sqlite", operation: "migrate", source: "boom".into() };
        assert_eq!(e.details(), [("backend", Detail::Text("sqlite"))]);
        let e = Error::CircuitOpen { breaker: "llm".into(), retry_after: Some(Duration::from_millis(1500)) };
        assert_eq!(e.details(), [("breaker", Detail::Text("llm")), ("retry_after", Detail::Seconds(Some(1.5)))]);
        assert!(Error::Closed.details().is_empty());
        assert!(Error::Internal("bug".into()).details().is_empty());
        assert!(Error::Corrupt { what: "f".into(), reason: "r".into() }.details().is_empty());
    }

    #[test]
    fn panic_messages_are_read_from_the_payload() {
        let caught = |f: fn()| std::panic::catch_unwind(f).unwrap_err();
        let text = caught(|| panic!("static text"));
        let formatted = caught(|| panic!("formatted {}", 42));
        let other = caught(|| std::panic::panic_any(7_u32));
        assert_eq!(panic_message(&*text), "static text");
        assert_eq!(panic_message(&*formatted), "formatted 42");
        assert_eq!(panic_message(&*other), "unknown panic");
    }

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("redis://:pw@h/0"), "redis://:***@h/0");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn redacts_secrets_in_query_strings() {
        assert_eq!(
            redact_url("postgres://u@h/db?sslmode=require&password=hunter2"),
            "postgres://u@h/db?sslmode=require&password=***"
        );
        assert_eq!(redact_url("postgres://u:a@h/db?PASSWORD=b#x"), "postgres://u:***@h/db?PASSWORD=***#x");
        assert_eq!(
            redact_url("postgres:///db?host=/run&sslpassword=k&user=u"),
            "postgres:///db?host=/run&sslpassword=***&user=u"
        );
        assert_eq!(redact_url("rediss://h/0?auth_token=t"), "rediss://h/0?auth_token=***");
        assert_eq!(redact_url("sqlite:///tmp/a.db?mode=rwc"), "sqlite:///tmp/a.db?mode=rwc");
        // A password holding `?` or `@` before the host.
        assert_eq!(redact_url("postgres://u:p?q@h/db"), "postgres://u:***@h/db");
    }
}
