//! Errors of the store backends, converted into the core's [`ace_core::Error`] at the trait
//! boundary so that callers see one error type with stable codes.

use ace_core::error::BoxError;

/// What can go wrong in a store backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store could not be opened or reached.
    #[error("cannot open {backend} store at {location}: {source}")]
    Open {
        /// `sqlite`, `postgres`, `redis`.
        backend: &'static str,
        /// The path or URL, without credentials.
        location: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// The file or database holds something ace cannot use.
    #[error("{location} is not a usable ace database: {reason}")]
    Corrupt {
        /// The path or URL, without credentials.
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// A query failed.
    #[error("{backend} failed to {operation}: {source}")]
    Query {
        /// `sqlite`, `postgres`, `redis`.
        backend: &'static str,
        /// What ace was doing.
        operation: &'static str,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// The store URL is not one ace understands.
    #[error("unsupported store URL {url}: {reason}")]
    UnsupportedUrl {
        /// The URL, without credentials.
        url: String,
        /// What would work.
        reason: String,
    },
}

impl From<Error> for ace_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Open { backend, location, source } => ace_core::Error::StoreUnavailable {
                backend,
                message: format!("cannot open {location}: {source}"),
                source: Some(source),
            },
            Error::Corrupt { location, reason } => ace_core::Error::Corrupt { what: location, reason },
            Error::Query { backend, operation, source } => ace_core::Error::Store { backend, operation, source },
            Error::UnsupportedUrl { url, reason } => {
                ace_core::Error::Config { key: "DATABASE_URL".into(), value: url, reason }
            }
        }
    }
}
