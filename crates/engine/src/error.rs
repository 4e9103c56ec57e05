//! One error type for the engine: a kind decides the CLI's exit code (125/126/127 and friends).

/// What went wrong, coarsely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    InvalidArgument,
    Conflict,
    PermissionDenied,
    Unavailable,
    Internal,
    /// The container's command could not be invoked (docker's 126).
    CannotInvoke,
    /// The container's command was not found (docker's 127).
    CommandNotFound,
}

#[derive(Debug, thiserror::Error)]
#[error("{msg}")]
pub struct Error {
    kind: ErrorKind,
    msg: String,
}

impl Error {
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Error {
        Error {
            kind,
            msg: msg.into(),
        }
    }
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    pub fn message(&self) -> &str {
        &self.msg
    }
    /// Docker's exit code for a failure of berth itself (125) or of the command (126/127).
    pub fn exit_code(&self) -> i32 {
        match self.kind {
            ErrorKind::CannotInvoke => 126,
            ErrorKind::CommandNotFound => 127,
            _ => 125,
        }
    }
    pub(crate) fn io(what: impl std::fmt::Display, e: std::io::Error) -> Error {
        let kind = match e.raw_os_error() {
            Some(libc::ENOENT) => ErrorKind::NotFound,
            Some(libc::EEXIST) => ErrorKind::AlreadyExists,
            Some(libc::EACCES) | Some(libc::EPERM) => ErrorKind::PermissionDenied,
            Some(libc::EBUSY) => ErrorKind::Conflict,
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
    pub(crate) fn no_such_container(name: &str) -> Error {
        Error::new(ErrorKind::NotFound, format!("no such container: {name}"))
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        let kind = match &e {
            rusqlite::Error::QueryReturnedNoRows => ErrorKind::NotFound,
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
        Error::new(kind, format!("containers database: {e}"))
    }
}

impl From<berth_image::Error> for Error {
    fn from(e: berth_image::Error) -> Error {
        let kind = match e.kind() {
            berth_image::ErrorKind::NotFound => ErrorKind::NotFound,
            berth_image::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
            berth_image::ErrorKind::Conflict => ErrorKind::Conflict,
            berth_image::ErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
            _ => ErrorKind::Internal,
        };
        Error::new(kind, e.to_string())
    }
}

impl From<berth_runtime::Error> for Error {
    /// The runtime resolves args[0] through PATH before the container counts as created and
    /// reports "exec: ..." with ENOENT (NotFound) or EACCES (PermissionDenied).
    fn from(e: berth_runtime::Error) -> Error {
        let msg = e.to_string();
        let is_exec = msg.starts_with("exec:") || msg.contains(": exec:");
        let kind = match e.kind() {
            berth_runtime::ErrorKind::NotFound if is_exec => ErrorKind::CommandNotFound,
            berth_runtime::ErrorKind::PermissionDenied if is_exec => ErrorKind::CannotInvoke,
            berth_runtime::ErrorKind::InvalidArgument if is_exec => ErrorKind::CannotInvoke,
            berth_runtime::ErrorKind::NotFound => ErrorKind::NotFound,
            berth_runtime::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
            berth_runtime::ErrorKind::Conflict => ErrorKind::Conflict,
            berth_runtime::ErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
            berth_runtime::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            berth_runtime::ErrorKind::Unavailable => ErrorKind::Unavailable,
            berth_runtime::ErrorKind::Internal => ErrorKind::Internal,
        };
        Error::new(kind, msg)
    }
}

pub type Result<T> = std::result::Result<T, Error>;
