//! One error type for the crate: a kind (for exit codes and, later, HTTP statuses) and a
//! one-line lower-case message that names the path or id involved.

use std::fmt;

/// What went wrong, coarsely: decides the CLI exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    InvalidArgument,
    Conflict,
    PermissionDenied,
    Unavailable,
    Internal,
}

impl ErrorKind {
    /// The kind an errno most naturally maps to.
    pub fn from_errno(errno: i32) -> ErrorKind {
        match errno {
            libc::ENOENT | libc::ESRCH => ErrorKind::NotFound,
            libc::EEXIST => ErrorKind::AlreadyExists,
            libc::EINVAL
            | libc::ENOTDIR
            | libc::EISDIR
            | libc::ELOOP
            | libc::ENAMETOOLONG
            | libc::EXDEV => ErrorKind::InvalidArgument,
            libc::EPERM | libc::EACCES | libc::EROFS => ErrorKind::PermissionDenied,
            libc::EBUSY => ErrorKind::Conflict,
            libc::ENOSYS | libc::EOPNOTSUPP | libc::ENODEV => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        }
    }

    pub(crate) fn to_u8(self) -> u8 {
        self as u8
    }

    pub(crate) fn from_u8(v: u8) -> ErrorKind {
        match v {
            0 => ErrorKind::NotFound,
            1 => ErrorKind::AlreadyExists,
            2 => ErrorKind::InvalidArgument,
            3 => ErrorKind::Conflict,
            4 => ErrorKind::PermissionDenied,
            5 => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        }
    }
}

/// A runtime error: `Display` is one lower-case line such as "container abc: not found".
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

    /// "`what`: <strerror>" with the kind taken from the errno.
    pub(crate) fn sys(what: impl fmt::Display, err: std::io::Error) -> Error {
        let errno = err.raw_os_error().unwrap_or(0);
        Error {
            kind: ErrorKind::from_errno(errno),
            msg: format!("{what}: {}", strerror(&err)),
        }
    }

    pub(crate) fn errno(what: impl fmt::Display, errno: i32) -> Error {
        Error::sys(what, std::io::Error::from_raw_os_error(errno))
    }

    /// The last OS error, attributed to `what`.
    pub(crate) fn last(what: impl fmt::Display) -> Error {
        Error::sys(what, std::io::Error::last_os_error())
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidArgument, msg)
    }

    pub(crate) fn internal(msg: impl Into<String>) -> Error {
        Error::new(ErrorKind::Internal, msg)
    }

    pub(crate) fn not_found(id: &str) -> Error {
        // runc's words: containerd, CRI-O and podman look for "container does not exist".
        Error::new(
            ErrorKind::NotFound,
            format!("container does not exist: {id}"),
        )
    }

    /// runc's "container not running", which callers match on too.
    pub(crate) fn not_running(id: &str) -> Error {
        Error::new(ErrorKind::Conflict, format!("container not running: {id}"))
    }

    pub(crate) fn context(self, what: impl fmt::Display) -> Error {
        Error {
            kind: self.kind,
            msg: format!("{what}: {}", self.msg),
        }
    }
}

/// strerror text in lower case without Rust's " (os error N)" suffix.
fn strerror(err: &std::io::Error) -> String {
    let s = err.to_string();
    let s = match s.find(" (os error") {
        Some(i) => &s[..i],
        None => &s[..],
    };
    let mut out = s.to_string();
    if let Some(c) = out.get(0..1) {
        let lower = c.to_lowercase();
        out.replace_range(0..1, &lower);
    }
    out
}

impl From<berth_cgroups::Error> for Error {
    fn from(e: berth_cgroups::Error) -> Error {
        let kind = match &e {
            berth_cgroups::Error::Io { source, .. } => {
                ErrorKind::from_errno(source.raw_os_error().unwrap_or(0))
            }
            berth_cgroups::Error::Unsupported { .. } => ErrorKind::Unavailable,
            berth_cgroups::Error::Invalid { .. } | berth_cgroups::Error::SystemdPath(_) => {
                ErrorKind::InvalidArgument
            }
            _ => ErrorKind::Internal,
        };
        Error::new(kind, tidy(&format!("cgroup: {e}")))
    }
}

impl From<berth_seccomp::Error> for Error {
    fn from(e: berth_seccomp::Error) -> Error {
        let kind = match &e {
            berth_seccomp::Error::Load(io) => ErrorKind::from_errno(io.raw_os_error().unwrap_or(0)),
            berth_seccomp::Error::NotifyUnsupported | berth_seccomp::Error::FlagUnsupported(_) => {
                ErrorKind::Unavailable
            }
            _ => ErrorKind::InvalidArgument,
        };
        Error::new(kind, tidy(&format!("seccomp: {e}")))
    }
}

/// Drops Rust's " (os error N)" suffixes from messages built by other crates.
fn tidy(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find(" (os error ") {
        out.push_str(&rest[..i]);
        rest = match rest[i..].find(')') {
            Some(j) => &rest[i + j + 1..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    #[test]
    fn os_error_suffix_is_dropped() {
        assert_eq!(
            super::tidy("remove /x: Device or resource busy (os error 16)"),
            "remove /x: Device or resource busy"
        );
        let e = super::Error::sys(
            "mount /proc",
            std::io::Error::from_raw_os_error(libc::EACCES),
        );
        assert_eq!(e.to_string(), "mount /proc: permission denied");
        assert_eq!(e.kind(), super::ErrorKind::PermissionDenied);
    }
}
