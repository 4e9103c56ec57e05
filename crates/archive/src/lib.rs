//! Layer archives: safe, fast application of OCI layer tarballs (with overlay whiteouts),
//! an overlay upper dir (or any tree) back to a layer tar, and `docker diff` of an upper dir.
//!
//! Rules `apply_layer` follows (OCI image-spec layer.md, containerd's habits):
//! - Names are cleaned like tar does: a leading `/` or `./` is stripped (so `/etc/x` lands at
//!   `dest/etc/x`, as with docker and containerd), and any `..` component is an
//!   [`ErrorKind::Escape`]; hard-link targets likewise.
//! - Parent directories are opened with openat2 `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`
//!   relative to `dest`: symlinks that stay inside are followed (`lib -> usr/lib`), a parent
//!   that is or passes through a symlink leading out (absolute, or `..` above `dest`, chained or
//!   not) is refused as an escape rather than clamped. Entries are created relative to the
//!   parent's fd and never follow their last component; symlinks are written as they are.
//! - An entry replaces what is at its path (from earlier in the layer, or from lower layers in
//!   Direct mode): a dir over a dir merges and takes the new metadata, anything else is removed
//!   first. Whiteout markers may come in any order: they only remove what lower layers put
//!   there. In Overlay mode a whiteout and an entry of the same name in one layer conflict.
//! - Files: holes are kept (4 KiB zero blocks are skipped, GNU and PAX 0.1/1.0 sparse entries
//!   expanded); owner from the numeric ids, xattrs from `SCHILY.xattr.*`, mode after chown,
//!   mtimes (directories' at the end). Nothing is fsynced: callers syncfs once.
//! - A truncated archive, a corrupt or trailing-garbage gzip/zstd stream and a diff_id mismatch
//!   are errors. `apply_layer` leaves a partial tree behind on error: callers apply into a
//!   temporary directory and remove it when apply fails.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub use pipe::piped;
pub use split::{rebuild, Marked, Marker, Rebuilt, Recorder};
mod apply;
mod changes;
mod pipe;
mod split;
mod stream;
mod sys;
mod write;

/// Compression of a layer stream, detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Detects the compression from magic bytes; anything unknown is treated as a plain tar.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// How whiteout markers are turned into the filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// dest is an empty dir that becomes an overlay lower layer: `.wh.X` becomes a 0/0 char
    /// device named X, `.wh..wh..opq` becomes `trusted.overlay.opaque=y` on the dir.
    Overlay,
    /// dest already holds the parent layers: `.wh.X` deletes X, an opaque dir loses what it
    /// had before this layer.
    Direct,
}

#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub whiteouts: WhiteoutMode,
    /// "sha256:<hex>" of the uncompressed tar; a mismatch is an error.
    pub expected_diff_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// "sha256:<hex>" of the uncompressed tar.
    pub diff_id: String,
    /// Uncompressed bytes.
    pub size: u64,
    pub entries: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    pub diff_id: String,
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    Added,
    Changed,
    Deleted,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Change {
    pub kind: ChangeKind,
    pub path: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidArchive,
    Escape,
    DigestMismatch,
    Io,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("layer entry {entry:?}: {reason}")]
    Invalid { entry: String, reason: String },
    #[error("layer entry {entry:?}: path escapes the layer directory")]
    Escape { entry: String },
    #[error("{what}: {reason}")]
    Corrupt { what: String, reason: String },
    #[error("layer digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Invalid { .. } | Error::Corrupt { .. } => ErrorKind::InvalidArchive,
            Error::Escape { .. } => ErrorKind::Escape,
            Error::DigestMismatch { .. } => ErrorKind::DigestMismatch,
            Error::Io { .. } => ErrorKind::Io,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Applies one layer (plain, gzip or zstd tar, detected from its first bytes) into `dest`.
///
/// Decompression and hashing run on the calling thread while a second thread creates the files.
/// The diff_id covers every uncompressed byte up to EOF, end-of-archive padding included. Nothing
/// is fsynced: callers syncfs once. On error `dest` holds a partial tree: apply into a temporary
/// directory and remove it on failure.
pub fn apply_layer<R: Read>(reader: R, dest: &Path, opts: &ApplyOptions) -> Result<Applied> {
    let mut ex = apply::Extractor::new(dest, opts)?;
    let (entries, hashed) = stream::pipeline(reader, |input| {
        ex.run(input)?;
        Ok(ex.entries)
    })?;
    if let Some(expected) = &opts.expected_diff_id {
        if *expected != hashed.diff_id {
            return Err(Error::DigestMismatch {
                expected: expected.clone(),
                actual: hashed.diff_id,
            });
        }
    }
    Ok(Applied {
        diff_id: hashed.diff_id,
        size: hashed.size,
        entries,
    })
}

/// Writes an overlay upper dir as an OCI layer tar: 0/0 character devices become `.wh.NAME`,
/// opaque dirs get a `.wh..wh..opq` entry; `exclude` (relative to `upper`) is left out with
/// everything below it. Entries are sorted, hard links kept, symlinks never followed.
pub fn write_layer_from_upper<W: Write>(
    upper: &Path,
    exclude: &[PathBuf],
    out: W,
) -> Result<LayerInfo> {
    write::write(upper, exclude, true, out, Box::new(std::io::sink()), true)
}

/// [`write_layer_from_upper`] for a reader that hashes the tar itself (as [`apply_layer`]
/// does), also writing the layer's tar-split to `split`: what, with the layer unpacked,
/// rebuilds this exact tar (see [`rebuild`]). Returns the tar's size.
pub fn write_layer_split<W: Write>(
    upper: &Path,
    exclude: &[PathBuf],
    out: W,
    split: Box<dyn Write + Send>,
) -> Result<u64> {
    write::write(upper, exclude, true, out, split, false).map(|i| i.size)
}

/// Writes a plain tree as a tar (no whiteout conversion).
pub fn write_tree<W: Write>(root: &Path, out: W) -> Result<LayerInfo> {
    write::write(root, &[], false, out, Box::new(std::io::sink()), true)
}

/// `docker diff` of an overlay upper dir against its lower layers (top first). Paths are
/// absolute ("/etc/passwd"), sorted. An opaque dir also reports the lower entries it hides as
/// deleted; a dir that only holds changes is reported as changed.
pub fn changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>> {
    changes::changes(upper, lowers)
}
