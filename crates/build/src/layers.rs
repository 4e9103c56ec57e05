//! A read-only merged view of an image's unpacked layers, without mounting anything: what
//! overlayfs would show (whiteouts hide lower entries, opaque directories hide lower contents,
//! symlinks resolved inside the image root). COPY uses it to decide Docker's destination rules
//! and COPY --from reads stages through it.

use std::collections::BTreeMap;
use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

pub struct Layers {
    /// Bottom → top.
    dirs: Vec<PathBuf>,
}

/// An entry of the merged view: where it lives on the host and what it is.
#[derive(Debug)]
pub struct Entry {
    pub host: PathBuf,
    pub meta: Metadata,
}

fn is_whiteout(m: &Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(p: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    let mut buf = [0u8; 4];
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n == 1 && buf[0] == b'y'
}

pub fn components(p: &str) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                v.pop();
            }
            c => v.push(c.to_string()),
        }
    }
    v
}

impl Layers {
    /// `dirs`: the layers' trees bottom → top (a vfs layer holds the whole tree: pass only it).
    pub fn new(dirs: Vec<PathBuf>) -> Layers {
        Layers { dirs }
    }

    /// The entry at the lexical path `parts` (no symlink resolution), top layer first.
    fn entry(&self, parts: &[String]) -> Option<Entry> {
        let rel: PathBuf = parts.iter().collect();
        'layers: for d in self.dirs.iter().rev() {
            // A whiteout or a non-directory on the way hides everything below in lower layers.
            let mut p = d.clone();
            for (i, c) in parts.iter().enumerate() {
                p.push(c);
                match std::fs::symlink_metadata(&p) {
                    Ok(m) if is_whiteout(&m) => return None,
                    Ok(m) if i + 1 < parts.len() && !m.is_dir() => return None,
                    Ok(m) if i + 1 < parts.len() && is_opaque(&p) => {
                        let _ = m;
                        // Opaque: lower layers have nothing below this dir.
                        return std::fs::symlink_metadata(d.join(&rel))
                            .ok()
                            .filter(|m| !is_whiteout(m))
                            .map(|meta| Entry {
                                host: d.join(&rel),
                                meta,
                            });
                    }
                    Ok(m) if i + 1 == parts.len() => return Some(Entry { host: p, meta: m }),
                    Ok(_) => {}
                    Err(_) => continue 'layers,
                }
            }
            if parts.is_empty() {
                return std::fs::symlink_metadata(d).ok().map(|meta| Entry {
                    host: d.clone(),
                    meta,
                });
            }
        }
        None
    }

    /// Resolves `path` inside the image (symlinks followed, the last one only with `follow`);
    /// returns the resolved components and the entry, if it exists.
    pub fn resolve(&self, path: &str, follow: bool) -> (Vec<String>, Option<Entry>) {
        let mut todo: Vec<String> = components(path);
        todo.reverse();
        let mut done: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(c) = todo.pop() {
            done.push(c);
            let Some(e) = self.entry(&done) else {
                // Missing: the rest is lexical.
                while let Some(c) = todo.pop() {
                    done.push(c);
                }
                return (done, None);
            };
            let last = todo.is_empty();
            if e.meta.file_type().is_symlink() && (!last || follow) && links < 40 {
                links += 1;
                let target = std::fs::read_link(&e.host).unwrap_or_default();
                let t = target.to_string_lossy().into_owned();
                done.pop();
                if t.starts_with('/') {
                    done.clear();
                }
                for c in t.split('/').rev() {
                    match c {
                        "" | "." => {}
                        c => todo.push(c.to_string()),
                    }
                }
                // ".." is applied as it comes up.
                while todo.last().is_some_and(|c| c == "..") {
                    todo.pop();
                    done.pop();
                }
                continue;
            }
            if last {
                return (done, Some(e));
            }
        }
        let e = self.entry(&done);
        (done, e)
    }

    /// The paths matching `pattern` (Go's filepath.Match per component, as COPY's sources in the
    /// context), sorted; components without wildcards are taken as they are.
    pub fn glob(&self, pattern: &str) -> Vec<String> {
        let mut found: Vec<Vec<String>> = vec![Vec::new()];
        for comp in components(pattern) {
            let mut next = Vec::new();
            for path in found {
                if !crate::ignore::has_glob(&comp) {
                    let mut p = path;
                    p.push(comp.clone());
                    next.push(p);
                    continue;
                }
                let (parts, e) = self.resolve(&path.join("/"), true);
                if !e.is_some_and(|e| e.meta.is_dir()) && !path.is_empty() {
                    continue;
                }
                for name in self.list(&parts).into_keys() {
                    if crate::ignore::glob(comp.as_bytes(), name.as_bytes()) {
                        let mut p = path.clone();
                        p.push(name);
                        next.push(p);
                    }
                }
            }
            found = next;
        }
        let mut out: Vec<String> = found
            .into_iter()
            .filter(|p| self.resolve(&p.join("/"), false).1.is_some())
            .map(|p| p.join("/"))
            .collect();
        out.sort();
        out
    }

    /// The merged children of the directory at resolved components `parts`, by name.
    pub fn list(&self, parts: &[String]) -> BTreeMap<String, Entry> {
        let mut out: BTreeMap<String, Entry> = BTreeMap::new();
        let mut hidden: Vec<String> = Vec::new();
        let rel: PathBuf = parts.iter().collect();
        for d in self.dirs.iter().rev() {
            let dir = d.join(&rel);
            // The directory must exist as a directory in this layer, with nothing hiding it above.
            match std::fs::symlink_metadata(&dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => break,
                Err(_) => continue,
            }
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if out.contains_key(&name) || hidden.contains(&name) {
                    continue;
                }
                let Ok(meta) = e.metadata() else { continue };
                if is_whiteout(&meta) {
                    hidden.push(name);
                    continue;
                }
                out.insert(
                    name,
                    Entry {
                        host: e.path(),
                        meta,
                    },
                );
            }
            if is_opaque(&dir) {
                break;
            }
        }
        out
    }
}
