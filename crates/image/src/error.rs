//! One error type for the image store; `kind()` decides the CLI's exit code (and later an API status).

use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    Conflict,
    InvalidArgument,
    PermissionDenied,
    Unavailable,
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Docker's wording, capitalised as docker prints it.
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("invalid reference format: {0:?}")]
    InvalidReference(String),
    #[error("image id prefix {0:?} is ambiguous: it matches several images")]
    Ambiguous(String),
    #[error("invalid archive: {0}")]
    InvalidArchive(String),
    #[error("invalid image config {id}: {reason}")]
    InvalidConfig { id: String, reason: String },
    #[error("blob {digest}: content digest is {actual}")]
    DigestMismatch { digest: String, actual: String },
    #[error("layer {diff_id}: {source}")]
    Layer {
        diff_id: String,
        source: berth_archive::Error,
    },
    #[error("invalid change {change:?}: {reason}")]
    InvalidChange { change: String, reason: String },
    #[error("{0}")]
    Conflict(String),
    #[error("storage driver {requested:?} conflicts with {existing:?}, the driver {root} was created with")]
    DriverConflict {
        requested: String,
        existing: String,
        root: PathBuf,
    },
    #[error("unknown storage driver {0:?}: overlay or vfs")]
    UnknownDriver(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("database {context}: {source}")]
    Db {
        context: String,
        source: rusqlite::Error,
    },
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NoSuchImage(_) => ErrorKind::NotFound,
            Error::InvalidReference(_)
            | Error::Ambiguous(_)
            | Error::InvalidArchive(_)
            | Error::InvalidConfig { .. }
            | Error::DigestMismatch { .. }
            | Error::InvalidChange { .. }
            | Error::UnknownDriver(_) => ErrorKind::InvalidArgument,
            Error::Layer { source, .. } => match source.kind() {
                berth_archive::ErrorKind::Io => ErrorKind::Internal,
                _ => ErrorKind::InvalidArgument,
            },
            Error::Conflict(_) | Error::DriverConflict { .. } => ErrorKind::Conflict,
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
                ErrorKind::PermissionDenied
            }
            Error::Io { .. } => ErrorKind::Internal,
            Error::Db { source, .. } => match source.sqlite_error_code() {
                Some(rusqlite::ErrorCode::DatabaseBusy)
                | Some(rusqlite::ErrorCode::DatabaseLocked) => ErrorKind::Unavailable,
                _ => ErrorKind::Internal,
            },
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Attaches what was being done to an io::Error.
pub(crate) trait IoContext<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: what(),
            source,
        })
    }
}

pub(crate) trait DbContext<T> {
    fn db(self, what: &str) -> Result<T>;
}

impl<T> DbContext<T> for rusqlite::Result<T> {
    fn db(self, what: &str) -> Result<T> {
        self.map_err(|source| Error::Db {
            context: what.to_string(),
            source,
        })
    }
}
