//! `docker diff` of an overlay upper dir.
//!
//! Rules (kept simple, like moby's overlay walker): every path in the upper dir is reported;
//! a 0/0 character device is D; anything else is C when the merged lower layers hold the path,
//! A otherwise; a directory that only holds changes is C since it exists below. For an opaque
//! directory, the lower entries it hides (its direct children in the lowers that the upper does
//! not hold) are reported as D. A lower lookup stops at a whiteout, and at a lower whose parent
//! directory of the path is opaque.

use crate::{Change, ChangeKind, Error, Result};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

fn ioe(path: &Path, what: &str, e: io::Error) -> Error {
    Error::Io {
        context: format!("{what} {}", path.display()),
        source: e,
    }
}

fn is_whiteout(md: &fs::Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

fn is_opaque(path: &Path) -> bool {
    xattr::get(path, "trusted.overlay.opaque")
        .ok()
        .flatten()
        .as_deref()
        == Some(b"y")
}

/// Whether `rel` is visible in the union of `lowers` (top first).
fn in_lowers(lowers: &[PathBuf], rel: &Path) -> bool {
    for lower in lowers {
        let p = lower.join(rel);
        match fs::symlink_metadata(&p) {
            Ok(md) => return !is_whiteout(&md),
            Err(_) => {
                if let Some(parent) = p.parent() {
                    if parent != lower.as_path() && is_opaque(parent) {
                        return false;
                    }
                }
            }
        }
    }
    false
}

pub fn changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>> {
    let mut out = BTreeMap::new();
    walk(upper, Path::new(""), lowers, &mut out)?;
    Ok(out
        .into_iter()
        .map(|(path, kind)| Change { kind, path })
        .collect())
}

fn walk(
    upper: &Path,
    rel: &Path,
    lowers: &[PathBuf],
    out: &mut BTreeMap<PathBuf, ChangeKind>,
) -> Result<()> {
    let dir = upper.join(rel);
    let mut names = Vec::new();
    for e in fs::read_dir(&dir).map_err(|e| ioe(&dir, "read dir", e))? {
        names.push(e.map_err(|e| ioe(&dir, "read dir", e))?.file_name());
    }
    for name in &names {
        let crel = rel.join(name);
        let cpath = upper.join(&crel);
        let md = fs::symlink_metadata(&cpath).map_err(|e| ioe(&cpath, "stat", e))?;
        let shown = Path::new("/").join(&crel);
        if is_whiteout(&md) {
            out.insert(shown, ChangeKind::Deleted);
            continue;
        }
        let kind = if in_lowers(lowers, &crel) {
            ChangeKind::Changed
        } else {
            ChangeKind::Added
        };
        out.insert(shown, kind);
        if md.is_dir() {
            if is_opaque(&cpath) {
                for hidden in lower_children(lowers, &crel) {
                    if !names_contains(&cpath, &hidden) {
                        out.insert(
                            Path::new("/").join(&crel).join(&hidden),
                            ChangeKind::Deleted,
                        );
                    }
                }
            }
            walk(upper, &crel, lowers, out)?;
        }
    }
    Ok(())
}

fn names_contains(dir: &Path, name: &std::ffi::OsStr) -> bool {
    fs::symlink_metadata(dir.join(name)).is_ok()
}

/// Names visible in the lowers' directory `rel` (union of the layers, whiteouts applied).
fn lower_children(lowers: &[PathBuf], rel: &Path) -> Vec<std::ffi::OsString> {
    let mut seen = std::collections::BTreeSet::new();
    let mut hidden = std::collections::BTreeSet::new();
    for lower in lowers {
        let d = lower.join(rel);
        let Ok(md) = fs::symlink_metadata(&d) else {
            continue;
        };
        if !md.is_dir() {
            break;
        }
        if let Ok(rd) = fs::read_dir(&d) {
            for e in rd.flatten() {
                let n = e.file_name();
                if seen.contains(&n) || hidden.contains(&n) {
                    continue;
                }
                match e.metadata() {
                    Ok(m) if is_whiteout(&m) => {
                        hidden.insert(n);
                    }
                    _ => {
                        seen.insert(n);
                    }
                }
            }
        }
        if is_opaque(&d) {
            break;
        }
    }
    seen.into_iter().collect()
}
