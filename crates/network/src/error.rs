//! The network crate's error: a kind (mapped onto the engine's kinds) and a lower-case message.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    InvalidArgument,
    Conflict,
    Unavailable,
    Internal,
}

#[derive(Debug, thiserror::Error)]
#[error("{msg}")]
pub struct Error {
    kind: ErrorKind,
    msg: String,
    errno: Option<i32>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Error {
        Error {
            kind,
            msg: msg.into(),
            errno: None,
        }
    }
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    pub fn message(&self) -> &str {
        &self.msg
    }
    pub fn errno(&self) -> Option<i32> {
        self.errno
    }
    pub(crate) fn io(what: impl std::fmt::Display, e: std::io::Error) -> Error {
        let kind = match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENODEV) => ErrorKind::NotFound,
            Some(libc::EEXIST) => ErrorKind::AlreadyExists,
            Some(libc::EADDRINUSE) | Some(libc::EBUSY) => ErrorKind::Conflict,
            Some(libc::EINVAL) => ErrorKind::InvalidArgument,
            _ => ErrorKind::Internal,
        };
        let mut s = e.to_string();
        if let Some(i) = s.find(" (os error") {
            s.truncate(i);
        }
        Error {
            kind,
            msg: format!("{what}: {}", s.to_lowercase()),
            errno: e.raw_os_error(),
        }
    }
    pub(crate) fn invalid(msg: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidArgument, msg)
    }
    pub(crate) fn internal(msg: impl Into<String>) -> Error {
        Error::new(ErrorKind::Internal, msg)
    }
    pub(crate) fn conflict(msg: impl Into<String>) -> Error {
        Error::new(ErrorKind::Conflict, msg)
    }
    pub(crate) fn not_found(msg: impl Into<String>) -> Error {
        Error::new(ErrorKind::NotFound, msg)
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        let kind = match &e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                ErrorKind::AlreadyExists
            }
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DatabaseBusy => {
                ErrorKind::Unavailable
            }
            _ => ErrorKind::Internal,
        };
        Error::new(kind, format!("networks database: {e}"))
    }
}
