//! COPY and ADD: the files a step adds, gathered (and hashed for the cache) before any byte is
//! written, then written as the step's layer tar. No container is needed: the layer is the
//! tar of what is copied, with the missing parent directories.

use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::layers::{components, Layers};

#[derive(Debug, Clone)]
pub enum Data {
    Dir,
    File(PathBuf),
    Bytes(Vec<u8>),
    Symlink(String),
    /// ADD of a local archive: its entries go below the destination.
    Archive(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Item {
    /// Absolute path in the image (parents already resolved).
    pub dest: String,
    pub data: Data,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
}

/// The files of a COPY/ADD, in order.
#[derive(Default)]
pub struct Plan {
    pub items: Vec<Item>,
}

impl Plan {
    /// A digest of everything that decides the layer: paths, modes, owners and contents
    /// (mtimes are left out, as BuildKit does, so a touched file still hits the cache).
    pub fn digest(&self) -> io::Result<String> {
        let mut h = Sha256::new();
        for it in &self.items {
            h.update(format!("{}\0{:o}\0{}:{}\0", it.dest, it.mode, it.uid, it.gid).as_bytes());
            match &it.data {
                Data::Dir => h.update(b"d"),
                Data::Symlink(t) => h.update(format!("l{t}").as_bytes()),
                Data::Bytes(b) => {
                    h.update(b"f");
                    h.update(b);
                }
                Data::File(p) | Data::Archive(p) => {
                    h.update(b"f");
                    let mut f = File::open(p)?;
                    io::copy(&mut f, &mut HashWrite(&mut h))?;
                }
            }
            h.update(b"\n");
        }
        Ok(hex::encode(h.finalize()))
    }

    /// Writes the layer tar: parent directories the image lacks (root-owned, 0755), then the items;
    /// and its tar-split to `split` (files' contents recorded by path, see berth_archive::Recorder).
    pub fn write<W: Write>(
        &self,
        image: &Layers,
        out: W,
        split: Box<dyn Write + Send>,
    ) -> io::Result<()> {
        let rec = berth_archive::Recorder::new(out, split)?;
        let marker = rec.marker();
        let mut b = tar::Builder::new(rec);
        b.follow_symlinks(false);
        let mut made: BTreeSet<String> = BTreeSet::new();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        // A file's contents are left to the unpacked layer only when nothing later in the layer
        // can overwrite that path (a later item of the same name, or any archive's entries):
        // otherwise the tar-split keeps them, so the rebuilt tar is still this one.
        let last_archive = self
            .items
            .iter()
            .rposition(|it| matches!(it.data, Data::Archive(_)));
        let mut last_of: std::collections::HashMap<Vec<String>, usize> = Default::default();
        for (i, it) in self.items.iter().enumerate() {
            last_of.insert(components(&it.dest), i);
        }
        for (i, it) in self.items.iter().enumerate() {
            let parts = components(&it.dest);
            let final_copy = last_of.get(&parts) == Some(&i) && last_archive.is_none_or(|a| a < i);
            let size_if_final = |n: u64| if final_copy { n } else { 0 };
            for n in 1..parts.len() {
                let p = parts[..n].join("/");
                if made.contains(&p) {
                    continue;
                }
                if image.resolve(&p, false).1.is_none() {
                    let mut h = header(tar::EntryType::Directory, 0o755, 0, 0, now);
                    b.append_data(&mut h, format!("{p}/"), io::empty())?;
                }
                made.insert(p);
            }
            let name = parts.join("/");
            match &it.data {
                Data::Dir => {
                    if !made.insert(name.clone()) && it.dest.is_empty() {
                        continue;
                    }
                    let mut h =
                        header(tar::EntryType::Directory, it.mode, it.uid, it.gid, it.mtime);
                    b.append_data(&mut h, format!("{name}/"), io::empty())?;
                }
                Data::File(p) => {
                    let f = File::open(p)?;
                    let len = f.metadata()?.len();
                    let mut h = header(tar::EntryType::Regular, it.mode, it.uid, it.gid, it.mtime);
                    h.set_size(len);
                    let data = marker.mark(f.take(len), name.as_bytes(), size_if_final(len));
                    b.append_data(&mut h, &name, data)?;
                }
                Data::Bytes(v) => {
                    let mut h = header(tar::EntryType::Regular, it.mode, it.uid, it.gid, it.mtime);
                    h.set_size(v.len() as u64);
                    let data = marker.mark(&v[..], name.as_bytes(), size_if_final(v.len() as u64));
                    b.append_data(&mut h, &name, data)?;
                }
                Data::Symlink(t) => {
                    let mut h = header(tar::EntryType::Symlink, 0o777, it.uid, it.gid, it.mtime);
                    b.append_link(&mut h, &name, t)?;
                }
                Data::Archive(p) => {
                    made.insert(name.clone());
                    append_archive(&mut b, p, &name, &mut made)?;
                }
            }
        }
        b.into_inner()?.finish()?.flush()
    }
}

struct HashWrite<'a>(&'a mut Sha256);

impl Write for HashWrite<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.update(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn header(t: tar::EntryType, mode: u32, uid: u32, gid: u32, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(t);
    h.set_mode(mode & 0o7777);
    h.set_uid(uid as u64);
    h.set_gid(gid as u64);
    h.set_mtime(mtime);
    h.set_size(0);
    h
}

/// Opens a local archive as ADD extracts it (plain, gzip, zstd); None when it isn't one.
pub fn open_archive(p: &Path) -> io::Result<Option<Box<dyn Read>>> {
    let mut f = File::open(p)?;
    let mut head = [0u8; 512];
    let mut n = 0;
    while n < head.len() {
        let k = f.read(&mut head[n..])?;
        if k == 0 {
            break;
        }
        n += k;
    }
    let f = File::open(p)?;
    Ok(match berth_archive::Compression::detect(&head[..n]) {
        berth_archive::Compression::Gzip => Some(Box::new(flate2::read::GzDecoder::new(f))),
        berth_archive::Compression::Zstd => Some(Box::new(zstd::Decoder::new(f)?)),
        berth_archive::Compression::None if n >= 262 && &head[257..262] == b"ustar" => {
            Some(Box::new(f))
        }
        _ => None,
    })
}

/// The archive's entries, renamed below `dest` (".." and absolute names kept inside).
fn append_archive<W: Write>(
    b: &mut tar::Builder<W>,
    p: &Path,
    dest: &str,
    made: &mut BTreeSet<String>,
) -> io::Result<()> {
    let r = open_archive(p)?
        .ok_or_else(|| io::Error::other(format!("{} is not an archive", p.display())))?;
    let mut ar = tar::Archive::new(r);
    for e in ar.entries()? {
        let mut e = e?;
        let raw = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let rel = components(&raw).join("/");
        if rel.is_empty() {
            continue;
        }
        let name = if dest.is_empty() {
            rel.clone()
        } else {
            format!("{dest}/{rel}")
        };
        // A fresh header: archives from other tools may leave numeric fields blank.
        let src = e.header();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(src.entry_type());
        h.set_mode(src.mode().unwrap_or(0o644) & 0o7777);
        h.set_uid(src.uid().unwrap_or(0));
        h.set_gid(src.gid().unwrap_or(0));
        h.set_mtime(src.mtime().unwrap_or(0));
        h.set_size(src.size().unwrap_or(0));
        if let (Ok(Some(ma)), Ok(Some(mi))) = (src.device_major(), src.device_minor()) {
            let _ = h.set_device_major(ma);
            let _ = h.set_device_minor(mi);
        }
        match h.entry_type() {
            tar::EntryType::Directory => {
                made.insert(name.clone());
                b.append_data(&mut h, format!("{name}/"), io::empty())?;
            }
            tar::EntryType::Link => {
                let t = e
                    .link_name_bytes()
                    .map(|t| components(&String::from_utf8_lossy(&t)).join("/"))
                    .unwrap_or_default();
                let t = if dest.is_empty() {
                    t
                } else {
                    format!("{dest}/{t}")
                };
                h.set_size(0);
                b.append_link(&mut h, &name, t)?;
            }
            tar::EntryType::Symlink => {
                let t = e
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                b.append_link(&mut h, &name, t)?;
            }
            tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink => {}
            _ => {
                let size = h.size()?;
                b.append_data(&mut h, &name, (&mut e).take(size))?;
            }
        }
    }
    Ok(())
}

/// Owner and permission overrides of `--chown` / `--chmod` (None: keep).
#[derive(Debug, Clone, Copy, Default)]
pub struct Perms {
    pub owner: Option<(u32, u32)>,
    pub chmod: Option<u32>,
}

/// Adds a host path (file, dir, symlink) as `dest`; directories recursively, with `skip`
/// deciding (by context-relative path) what is left out.
pub fn add_host(
    plan: &mut Plan,
    src: &Path,
    rel: &str,
    dest: &str,
    perms: Perms,
    skip: &dyn Fn(&str) -> bool,
) -> io::Result<()> {
    let m = std::fs::symlink_metadata(src)?;
    let (uid, gid) = perms.owner.unwrap_or((0, 0));
    let mode = perms.chmod.unwrap_or(m.permissions().mode() & 0o7777);
    let mtime = m.mtime().max(0) as u64;
    let ft = m.file_type();
    if ft.is_dir() {
        plan.items.push(Item {
            dest: dest.to_string(),
            data: Data::Dir,
            mode,
            uid,
            gid,
            mtime,
        });
        let mut names: Vec<_> = std::fs::read_dir(src)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort();
        for n in names {
            let n = n.to_string_lossy().into_owned();
            let r = if rel.is_empty() {
                n.clone()
            } else {
                format!("{rel}/{n}")
            };
            if skip(&r) {
                continue;
            }
            add_host(
                plan,
                &src.join(&n),
                &r,
                &format!("{}/{n}", dest.trim_end_matches('/')),
                perms,
                skip,
            )?;
        }
    } else if ft.is_symlink() {
        let t = std::fs::read_link(src)?.to_string_lossy().into_owned();
        plan.items.push(Item {
            dest: dest.to_string(),
            data: Data::Symlink(t),
            mode: 0o777,
            uid,
            gid,
            mtime,
        });
    } else if ft.is_file() {
        plan.items.push(Item {
            dest: dest.to_string(),
            data: Data::File(src.to_path_buf()),
            mode,
            uid,
            gid,
            mtime,
        });
    }
    // Sockets, fifos and devices of a context are not copied (as docker).
    Ok(())
}

/// Adds the contents of the directory `parts` of another image (COPY --from) below `dest`.
pub fn add_from_image(
    plan: &mut Plan,
    img: &Layers,
    parts: &[String],
    dest: &str,
    perms: Perms,
    top: bool,
) -> io::Result<()> {
    let Some(e) = img.resolve(&parts.join("/"), false).1 else {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("/{} not found", parts.join("/")),
        ));
    };
    let keep_owner = (e.meta.uid(), e.meta.gid());
    let (uid, gid) = perms.owner.unwrap_or(keep_owner);
    let mode = perms.chmod.unwrap_or(e.meta.permissions().mode() & 0o7777);
    let mtime = e.meta.mtime().max(0) as u64;
    let ft = e.meta.file_type();
    if ft.is_dir() {
        if !top {
            plan.items.push(Item {
                dest: dest.to_string(),
                data: Data::Dir,
                mode,
                uid,
                gid,
                mtime,
            });
        }
        for (name, _) in img.list(parts) {
            let mut p = parts.to_vec();
            p.push(name.clone());
            add_from_image(
                plan,
                img,
                &p,
                &format!("{}/{name}", dest.trim_end_matches('/')),
                perms,
                false,
            )?;
        }
    } else if ft.is_symlink() {
        let t = std::fs::read_link(&e.host)?.to_string_lossy().into_owned();
        plan.items.push(Item {
            dest: dest.to_string(),
            data: Data::Symlink(t),
            mode: 0o777,
            uid,
            gid,
            mtime,
        });
    } else if ft.is_file() {
        plan.items.push(Item {
            dest: dest.to_string(),
            data: Data::File(e.host),
            mode,
            uid,
            gid,
            mtime,
        });
    }
    Ok(())
}
