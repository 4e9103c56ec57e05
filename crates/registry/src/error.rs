//! The registry client's errors; `kind()` maps onto the image store's kinds for exit codes.

use berth_image::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An unknown repository, tag, manifest or blob.
    #[error("{0}")]
    NotFound(String),
    /// Missing or wrong credentials, or access denied.
    #[error("{0}")]
    Unauthorized(String),
    /// The registry answered something the protocol does not allow (or we refuse).
    #[error("{0}")]
    Protocol(String),
    /// Connection, TLS, redirect or timeout trouble.
    #[error("{0}")]
    Network(String),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] berth_image::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Unauthorized(_) => ErrorKind::PermissionDenied,
            Error::Protocol(_) | Error::Config(_) => ErrorKind::InvalidArgument,
            Error::Network(_) => ErrorKind::Unavailable,
            Error::Store(e) => e.kind(),
            Error::Io { .. } => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// A reqwest error as one line, with the cause chain (rustls' reason, "too many redirects").
pub(crate) fn network(what: &str, e: reqwest::Error) -> Error {
    let mut msg = format!("{what}: ");
    if e.is_redirect() {
        msg.push_str("too many redirects (a redirect loop?)");
        if let Some(u) = e.url() {
            msg.push_str(&format!(" at {u}"));
        }
        return Error::Network(msg);
    }
    if e.is_timeout() {
        msg.push_str("timed out");
        return Error::Network(msg);
    }
    let mut causes = String::new();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        causes.push_str(&format!(": {s}"));
        src = s.source();
    }
    msg.push_str(&e.without_url().to_string());
    msg.push_str(&causes);
    Error::Network(msg)
}
