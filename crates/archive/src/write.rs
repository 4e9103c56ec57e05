//! A directory tree (or an overlay upper dir) → tar, sorted, hashed while written.

use crate::split::{Marker, Recorder};
use crate::{Error, LayerInfo, Result};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

struct HashWriter<W> {
    inner: W,
    /// None: only counted (the reader hashes what it receives).
    hasher: Option<Sha256>,
    size: u64,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct Writer<W: Write> {
    tar: tar::Builder<Recorder<BufWriter<HashWriter<W>>>>,
    upper: bool,
    exclude: Vec<Vec<u8>>,
    links: HashMap<(u64, u64), Vec<u8>>,
    /// Marks files' contents for the tar-split.
    marker: Marker,
}

fn ioe(path: &Path, what: &str, e: io::Error) -> Error {
    Error::Io {
        context: format!("{what} {}", path.display()),
        source: e,
    }
}

/// Writes `root` as a tar to `out`, and its tar-split (see split.rs) to `split`; the diff id is
/// computed when `hash` (else left empty: the reader of `out` hashes it).
pub fn write<W: Write>(
    root: &Path,
    exclude: &[PathBuf],
    upper: bool,
    out: W,
    split: Box<dyn Write + Send>,
    hash: bool,
) -> Result<LayerInfo> {
    let hw = HashWriter {
        inner: out,
        hasher: hash.then(Sha256::new),
        size: 0,
    };
    let exclude = exclude
        .iter()
        .map(|p| {
            crate::apply::clean(p.as_os_str().as_bytes())
                .unwrap_or_else(|_| p.as_os_str().as_bytes().to_vec())
        })
        .collect();
    let rec = Recorder::new(BufWriter::with_capacity(1 << 20, hw), split)
        .map_err(|e| ioe(root, "write the tar-split of", e))?;
    let marker = rec.marker();
    let mut w = Writer {
        tar: tar::Builder::new(rec),
        upper,
        exclude,
        links: HashMap::new(),
        marker,
    };
    let meta = fs::symlink_metadata(root).map_err(|e| ioe(root, "stat", e))?;
    if !meta.is_dir() {
        return Err(ioe(
            root,
            "walk",
            io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        ));
    }
    w.dir(root, b"")?;
    let buf = w
        .tar
        .into_inner()
        .and_then(Recorder::finish)
        .map_err(|e| ioe(root, "write tar to", e))?;
    let hw = buf
        .into_inner()
        .map_err(|e| ioe(root, "write tar to", e.into_error()))?;
    Ok(LayerInfo {
        diff_id: hw
            .hasher
            .map(|h| format!("sha256:{}", hex::encode(h.finalize())))
            .unwrap_or_default(),
        size: hw.size,
    })
}

fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut v = parent.to_vec();
    if !v.is_empty() {
        v.push(b'/');
    }
    v.extend_from_slice(name);
    v
}

impl<W: Write> Writer<W> {
    fn dir(&mut self, path: &Path, rel: &[u8]) -> Result<()> {
        let mut names: Vec<_> = fs::read_dir(path)
            .map_err(|e| ioe(path, "read dir", e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .map_err(|e| ioe(path, "read dir", e))?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let crel = join(rel, name.as_bytes());
            if self.exclude.contains(&crel) {
                continue;
            }
            let cpath = path.join(&name);
            self.entry(&cpath, &crel)?;
        }
        Ok(())
    }

    fn entry(&mut self, path: &Path, rel: &[u8]) -> Result<()> {
        let md = fs::symlink_metadata(path).map_err(|e| ioe(path, "stat", e))?;
        let ft = md.file_type();
        let mut h = tar::Header::new_ustar();
        h.set_mode(md.mode() & 0o7777);
        h.set_mtime(md.mtime().max(0) as u64);
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        set_ids(&mut h, md.uid(), md.gid(), &mut pax);

        if self.upper && ft.is_char_device() && md.rdev() == 0 {
            // An overlay whiteout (possibly a hard link to the shared whiteout inode).
            let (parent, base) = match rel.iter().rposition(|&c| c == b'/') {
                Some(i) => (&rel[..i], &rel[i + 1..]),
                None => (&b""[..], rel),
            };
            let name = join(parent, &[b".wh.", base].concat());
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o600);
            h.set_size(0);
            return self.append(path, h, &name, None, pax, io::empty());
        }
        for (k, v) in read_xattrs(path)? {
            pax.push((format!("SCHILY.xattr.{k}"), v));
        }
        if !ft.is_dir() && md.nlink() > 1 {
            let key = (md.dev(), md.ino());
            if let Some(first) = self.links.get(&key).cloned() {
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                pax.retain(|(k, _)| k == "uid" || k == "gid");
                return self.append(path, h, rel, Some(&first), pax, io::empty());
            }
            self.links.insert(key, rel.to_vec());
        }
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            let mut name = rel.to_vec();
            name.push(b'/');
            let opaque = self.upper
                && xattr::get(path, OPAQUE_XATTR).ok().flatten().as_deref() == Some(b"y");
            self.append(path, h.clone(), &name, None, pax, io::empty())?;
            if opaque {
                let mut o = tar::Header::new_ustar();
                o.set_entry_type(tar::EntryType::Regular);
                o.set_mode(md.mode() & 0o777);
                o.set_mtime(md.mtime().max(0) as u64);
                let mut opax = Vec::new();
                set_ids(&mut o, md.uid(), md.gid(), &mut opax);
                o.set_size(0);
                self.append(
                    path,
                    o,
                    &join(rel, b".wh..wh..opq"),
                    None,
                    opax,
                    io::empty(),
                )?;
            }
            return self.dir(path, rel);
        }
        if ft.is_file() {
            let f = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
                .map_err(|e| ioe(path, "open", e))?;
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(md.len());

            // Exactly the size announced in the header, even if the file changes meanwhile: a
            // shorter file is padded with zeros rather than corrupting the archive. Unbuffered:
            // the copy reads straight into the tar's 1 MiB write buffer.
            let data = self.marker.mark(
                io::Read::take(io::Read::chain(f, io::repeat(0)), md.len()),
                rel,
                md.len(),
            );
            return self.append(path, h, rel, None, pax, data);
        }
        h.set_size(0);
        if ft.is_symlink() {
            let target = fs::read_link(path).map_err(|e| ioe(path, "readlink", e))?;
            h.set_entry_type(tar::EntryType::Symlink);
            return self.append(
                path,
                h,
                rel,
                Some(target.as_os_str().as_bytes()),
                pax,
                io::empty(),
            );
        }
        let et = if ft.is_char_device() {
            tar::EntryType::Char
        } else if ft.is_block_device() {
            tar::EntryType::Block
        } else if ft.is_fifo() {
            tar::EntryType::Fifo
        } else {
            // Sockets cannot be archived; tar and docker skip them too.
            return Ok(());
        };
        h.set_entry_type(et);
        if et != tar::EntryType::Fifo {
            let rdev = md.rdev();
            h.set_device_major(libc::major(rdev))
                .map_err(|e| ioe(path, "device", e))?;
            h.set_device_minor(libc::minor(rdev))
                .map_err(|e| ioe(path, "device", e))?;
        }
        self.append(path, h, rel, None, pax, io::empty())
    }

    /// Writes a PAX header first when the name, link name, ids or xattrs do not fit ustar.
    fn append(
        &mut self,
        path: &Path,
        mut h: tar::Header,
        name: &[u8],
        link: Option<&[u8]>,
        mut pax: Vec<(String, Vec<u8>)>,
        data: impl io::Read,
    ) -> Result<()> {
        if !set_ustar_name(&mut h, name) {
            pax.push(("path".into(), name.to_vec()));
            let cut = name.len().min(100);
            h.as_old_mut().name[..cut].copy_from_slice(&name[..cut]);
        }
        if let Some(link) = link {
            let ln = &mut h.as_old_mut().linkname;
            if link.len() <= ln.len() {
                ln[..link.len()].copy_from_slice(link);
            } else {
                ln.copy_from_slice(&link[..100]);
                pax.push(("linkpath".into(), link.to_vec()));
            }
        }
        if !pax.is_empty() {
            self.tar
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(|e| ioe(path, "write pax header for", e))?;
        }
        h.set_cksum();
        self.tar
            .append(&h, data)
            .map_err(|e| ioe(path, "archive", e))
    }
}

fn set_ids(h: &mut tar::Header, uid: u32, gid: u32, pax: &mut Vec<(String, Vec<u8>)>) {
    const MAX: u32 = 0o7777777;
    h.set_uid(uid.min(MAX) as u64);
    h.set_gid(gid.min(MAX) as u64);
    if uid > MAX {
        pax.push(("uid".into(), uid.to_string().into_bytes()));
    }
    if gid > MAX {
        pax.push(("gid".into(), gid.to_string().into_bytes()));
    }
}

/// ustar holds a name of up to 100 bytes, or 155 + "/" + 100 split at a slash.
fn set_ustar_name(h: &mut tar::Header, name: &[u8]) -> bool {
    let u = h.as_ustar_mut().expect("ustar header");
    if name.len() <= 100 {
        u.name[..name.len()].copy_from_slice(name);
        return true;
    }
    // The name part may keep a trailing slash; split at a slash that leaves both parts in range.
    for (i, &c) in name.iter().enumerate() {
        if c == b'/' && i <= 155 && name.len() - i - 1 <= 100 && i > 0 && i + 1 < name.len() {
            u.prefix[..i].copy_from_slice(&name[..i]);
            u.name[..name.len() - i - 1].copy_from_slice(&name[i + 1..]);
            return true;
        }
    }
    false
}

fn read_xattrs(path: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let names = match xattr::list(path) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(out),
        Err(e) => return Err(ioe(path, "list xattrs of", e)),
    };
    for n in names {
        let Some(name) = n.to_str() else { continue };
        // Overlay's own bookkeeping (opaque, redirect, origin...) is not part of the layer.
        if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
            continue;
        }
        if let Some(v) = xattr::get(path, name).map_err(|e| ioe(path, "read xattr of", e))? {
            out.push((name.to_string(), v));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ustar_names_split_at_a_slash_or_need_pax() {
        let mut h = tar::Header::new_ustar();
        assert!(set_ustar_name(&mut h, b"short/name"));
        assert_eq!(&*h.path_bytes(), b"short/name");

        let long = format!("{}/{}", "p".repeat(150), "n".repeat(99));
        let mut h = tar::Header::new_ustar();
        assert!(set_ustar_name(&mut h, long.as_bytes()));
        assert_eq!(&*h.path_bytes(), long.as_bytes());

        let too_long = "x".repeat(101);
        assert!(!set_ustar_name(
            &mut tar::Header::new_ustar(),
            too_long.as_bytes()
        ));
    }
}
