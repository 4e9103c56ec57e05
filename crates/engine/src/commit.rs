//! A container's filesystem out and in: `diff`, `commit`, `export`, `cp`, and the copy-up of
//! image content into new volumes.
//!
//! Container-side paths are never resolved as host strings: every lookup is an openat2 with
//! `RESOLVE_IN_ROOT` from an fd of the container's root, so a symlink to `/` or `../..` lands
//! inside the container, and every entry below is opened `O_NOFOLLOW` relative to its parent's
//! fd. Nothing from the container is executed or loaded. The same code serves the host side of
//! `cp` with "/" as the root.

use crate::error::{Error, ErrorKind, Result};
use crate::model::Container;
use crate::snapshot::{Snapshot, INIT_PATHS};
use crate::{sys, Engine};
use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// `berth commit` options (docker's flags).
#[derive(Debug, Clone)]
pub struct CommitOptions {
    /// REPO[:TAG] for the new image.
    pub reference: Option<String>,
    /// -m
    pub comment: Option<String>,
    /// -a
    pub author: Option<String>,
    /// -c: Dockerfile instructions applied to the new config.
    pub changes: Vec<String>,
    /// --pause (docker's default: true): freeze the container while its layer is read.
    pub pause: bool,
}

impl Default for CommitOptions {
    fn default() -> Self {
        CommitOptions {
            reference: None,
            comment: None,
            author: None,
            changes: Vec::new(),
            pause: true,
        }
    }
}

/// A writer that reports each chunk's size (commit's progress).
struct Counted<'a, W> {
    inner: W,
    progress: &'a (dyn Fn(u64) + Sync),
}

impl<W: Write> Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        (self.progress)(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Where an archive lands relative to the destination path (docker cp's rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Extract as it is into DEST, which must be an existing directory (`cp - C:DEST`).
    Into,
    /// The archive's top entry becomes DEST (or goes into DEST when that is a directory).
    As,
    /// The archive holds a directory's contents (`SRC/.`): DEST is created if missing and the
    /// contents go into it.
    ContentsAs,
}

// ---- syscalls ---------------------------------------------------------------------------

fn cstr(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let p = cstr(path.as_os_str().as_bytes())?;
    owned(unsafe {
        libc::open(
            p.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })
}

fn openat(dir: RawFd, name: &[u8], flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let n = cstr(name)?;
    owned(unsafe {
        libc::openat(
            dir,
            n.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })
}

fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

fn fstatat(dir: RawFd, name: &[u8]) -> io::Result<libc::stat> {
    let n = cstr(name)?;
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstatat(dir, n.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(st)
}

/// The target of an `O_PATH | O_NOFOLLOW` fd of a symlink.
fn readlink_fd(fd: RawFd) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    let n = unsafe {
        libc::readlinkat(
            fd,
            c"".as_ptr(),
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// Reopens an `O_PATH` fd with real access: the /proc magic link names that exact inode.
fn reopen(fd: RawFd, flags: i32) -> io::Result<OwnedFd> {
    let p = cstr(format!("/proc/self/fd/{fd}").as_bytes())?;
    owned(unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC) })
}

fn list_dir(fd: RawFd) -> io::Result<Vec<Vec<u8>>> {
    let mut v: Vec<Vec<u8>> = std::fs::read_dir(format!("/proc/self/fd/{fd}"))?
        .map(|e| e.map(|e| e.file_name().as_bytes().to_vec()))
        .collect::<io::Result<_>>()?;
    v.sort();
    Ok(v)
}

fn mkdirat(dir: RawFd, name: &[u8], mode: u32) -> io::Result<()> {
    let n = cstr(name)?;
    check(unsafe { libc::mkdirat(dir, n.as_ptr(), mode) })
}

fn unlinkat(dir: RawFd, name: &[u8], flags: i32) -> io::Result<()> {
    let n = cstr(name)?;
    check(unsafe { libc::unlinkat(dir, n.as_ptr(), flags) })
}

fn fchownat_nofollow(dir: RawFd, name: &[u8], uid: u32, gid: u32) -> io::Result<()> {
    let n = cstr(name)?;
    check(unsafe { libc::fchownat(dir, n.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) })
}

fn set_mtime(dir: RawFd, name: &[u8], secs: i64) -> io::Result<()> {
    let n = cstr(name)?;
    let t = libc::timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let ts = [t, t];
    check(unsafe { libc::utimensat(dir, n.as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) })
}

fn ioerr(what: impl std::fmt::Display, e: io::Error) -> Error {
    Error::io(what, e)
}

/// Lexical components of a path ("" and "." dropped); ".." is refused.
fn components(path: &[u8]) -> Result<Vec<&[u8]>> {
    let mut v = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(Error::invalid(format!(
                    "path {:?} has a \"..\" component",
                    String::from_utf8_lossy(path)
                )))
            }
            c => v.push(c),
        }
    }
    Ok(v)
}

/// `..` resolved lexically against "/" (docker's cp accepts `C:../x`-style paths this way).
fn clean_abs(path: &str) -> String {
    let mut v: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                v.pop();
            }
            c => v.push(c),
        }
    }
    format!("/{}", v.join("/"))
}

// ---- tar out ------------------------------------------------------------------------------

struct TarOut<W: Write> {
    b: tar::Builder<W>,
    links: HashMap<(u64, u64), Vec<u8>>,
    /// Archive names left out (with what is below them).
    skip: Vec<Vec<u8>>,
}

/// A file's bytes, exactly `len` of them: zero padding if it shrank while read.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left as usize);
        let mut n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            buf[..want].fill(0);
            n = want;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn header_for(st: &libc::stat, typ: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(typ);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid as u64);
    h.set_gid(st.st_gid as u64);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    h
}

impl<W: Write> TarOut<W> {
    fn new(out: W) -> Self {
        let mut b = tar::Builder::new(out);
        b.follow_symlinks(false);
        TarOut {
            b,
            links: HashMap::new(),
            skip: Vec::new(),
        }
    }

    /// Appends the object `fd` (opened `O_PATH | O_NOFOLLOW`) as `name`, recursively.
    fn add(&mut self, fd: &OwnedFd, name: &[u8]) -> io::Result<()> {
        let st = fstat(fd.as_raw_fd())?;
        let path = Path::new(OsStr::from_bytes(name));
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                let mut h = header_for(&st, tar::EntryType::Directory);
                let mut dname = name.to_vec();
                dname.push(b'/');
                self.b
                    .append_data(&mut h, Path::new(OsStr::from_bytes(&dname)), io::empty())?;
                self.add_children(fd, name)?;
            }
            libc::S_IFREG => {
                if st.st_nlink > 1 {
                    let key = (st.st_dev, st.st_ino);
                    if let Some(first) = self.links.get(&key) {
                        let mut h = header_for(&st, tar::EntryType::Link);
                        let target = first.clone();
                        return self.b.append_link(
                            &mut h,
                            path,
                            Path::new(OsStr::from_bytes(&target)),
                        );
                    }
                    self.links.insert(key, name.to_vec());
                }
                let file = File::from(reopen(
                    fd.as_raw_fd(),
                    libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
                )?);
                let st = fstat(file.as_raw_fd())?;
                let mut h = header_for(&st, tar::EntryType::Regular);
                h.set_size(st.st_size as u64);
                self.b.append_data(
                    &mut h,
                    path,
                    Exact {
                        inner: file,
                        left: st.st_size as u64,
                    },
                )?;
            }
            libc::S_IFLNK => {
                let target = readlink_fd(fd.as_raw_fd())?;
                let mut h = header_for(&st, tar::EntryType::Symlink);
                if target.len() <= 100 {
                    // Exactly as read: append_link would normalise "/" to "//".
                    h.set_link_name_literal(&target)?;
                    self.b.append_data(&mut h, path, io::empty())?;
                } else {
                    self.b
                        .append_link(&mut h, path, Path::new(OsStr::from_bytes(&target)))?;
                }
            }
            t @ (libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO) => {
                let typ = match t {
                    libc::S_IFCHR => tar::EntryType::Char,
                    libc::S_IFBLK => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                };
                let mut h = header_for(&st, typ);
                if t != libc::S_IFIFO {
                    h.set_device_major(libc::major(st.st_rdev))?;
                    h.set_device_minor(libc::minor(st.st_rdev))?;
                }
                self.b.append_data(&mut h, path, io::empty())?;
            }
            _ => {} // sockets: docker leaves them out too
        }
        Ok(())
    }

    /// The children of directory `fd` as `prefix/child` (no prefix: at the archive's top).
    fn add_children(&mut self, fd: &OwnedFd, prefix: &[u8]) -> io::Result<()> {
        let dir = reopen(fd.as_raw_fd(), libc::O_RDONLY | libc::O_DIRECTORY)?;
        for child in list_dir(dir.as_raw_fd())? {
            let cfd = match openat(dir.as_raw_fd(), &child, libc::O_PATH | libc::O_NOFOLLOW, 0) {
                Ok(f) => f,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue, // gone meanwhile
                Err(e) => return Err(e),
            };
            let mut name = prefix.to_vec();
            if !name.is_empty() {
                name.push(b'/');
            }
            name.extend_from_slice(&child);
            if self.skip.contains(&name) {
                continue;
            }
            self.add(&cfd, &name)?;
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        self.b.finish()?;
        self.b.into_inner()
    }
}

/// Writes `path` (resolved inside `root`) as a tar to `out`: a path ending in "/." (or "/")
/// gives the directory's contents at the archive's top, anything else one top entry named like
/// the path's last component. `follow` follows a symlink in the last component only.
pub fn write_path_tar<W: Write>(root: &Path, path: &str, follow: bool, out: W) -> Result<()> {
    let rootfd = open_dir(root).map_err(|e| ioerr(format!("open {}", root.display()), e))?;
    let contents = path.ends_with("/.") || components(path.as_bytes())?.is_empty();
    let cleaned = clean_abs(path);
    let flags = libc::O_PATH
        | if follow || contents || path.ends_with('/') {
            0
        } else {
            libc::O_NOFOLLOW
        };
    let fd = sys::openat_in_root(rootfd.as_raw_fd(), cleaned.as_bytes(), flags)
        .map_err(|e| not_found(path, e))?;
    let mut t = TarOut::new(out);
    let r = if contents {
        t.add_children(&fd, b"")
    } else {
        let name = cleaned.rsplit('/').next().unwrap_or("").as_bytes().to_vec();
        t.add(&fd, &name)
    };
    r.and_then(|_| t.finish())
        .map_err(|e| ioerr(format!("archive {path}"), e))?;
    Ok(())
}

fn not_found(path: &str, e: io::Error) -> Error {
    if e.raw_os_error() == Some(libc::ENOENT) {
        Error::new(
            ErrorKind::NotFound,
            format!("could not find the file {path} in container"),
        )
    } else {
        ioerr(format!("resolve {path}"), e)
    }
}

// ---- tar in -------------------------------------------------------------------------------

struct Extract {
    root: OwnedFd,
    owner: Option<(u32, u32)>,
    dirs: HashMap<Vec<u8>, OwnedFd>,
}

impl Extract {
    /// The directory `path` inside the root (created with its parents when missing).
    fn dir(&mut self, path: &[u8]) -> io::Result<RawFd> {
        if !self.dirs.contains_key(path) {
            let fd = match sys::openat_in_root(
                self.root.as_raw_fd(),
                path,
                libc::O_PATH | libc::O_DIRECTORY,
            ) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    let (parent, name) = split_last(path);
                    if name.is_empty() {
                        return Err(e);
                    }
                    let p = self.dir(&parent)?;
                    match mkdirat(p, name, 0o755) {
                        Ok(()) => {}
                        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                        Err(e) => return Err(e),
                    }
                    sys::openat_in_root(
                        self.root.as_raw_fd(),
                        path,
                        libc::O_PATH | libc::O_DIRECTORY,
                    )?
                }
                Err(e) => return Err(e),
            };
            self.dirs.insert(path.to_vec(), fd);
        }
        Ok(self.dirs[path].as_raw_fd())
    }

    /// Removes what is at `name` unless it is a directory and `keep_dir`.
    fn clear(&self, dir: RawFd, name: &[u8], keep_dir: bool) -> io::Result<bool> {
        match fstatat(dir, name) {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                if keep_dir {
                    return Ok(true);
                }
                let fd = openat(
                    dir,
                    name,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                )?;
                remove_contents(&fd)?;
                unlinkat(dir, name, libc::AT_REMOVEDIR)?;
                Ok(false)
            }
            Ok(_) => {
                unlinkat(dir, name, 0)?;
                Ok(false)
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn ids(&self, h: &tar::Header) -> (u32, u32) {
        self.owner
            .unwrap_or((h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32))
    }

    fn entry<R: Read>(
        &mut self,
        full: &[u8],
        e: &mut tar::Entry<R>,
        dir_times: &mut Vec<(Vec<u8>, i64)>,
    ) -> io::Result<()> {
        let (parent, name) = split_last(full);
        let h = e.header().clone();
        let (uid, gid) = self.ids(&h);
        let mode = h.mode().unwrap_or(0o644) & 0o7777;
        let mtime = h.mtime().unwrap_or(0) as i64;
        if name.is_empty() {
            // The destination directory itself: its metadata only.
            if h.entry_type() == tar::EntryType::Directory {
                let fd = reopen(self.dir(b"/")?, libc::O_RDONLY | libc::O_DIRECTORY)?;
                check(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) })?;
                check(unsafe { libc::fchmod(fd.as_raw_fd(), mode) })?;
            }
            return Ok(());
        }
        let p = self.dir(&parent)?;
        match h.entry_type() {
            tar::EntryType::Directory => {
                if !self.clear(p, name, true)? {
                    mkdirat(p, name, 0o700)?;
                }
                self.dirs.remove(full);
                let fd = openat(
                    p,
                    name,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                )?;
                check(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) })?;
                check(unsafe { libc::fchmod(fd.as_raw_fd(), mode) })?;
                dir_times.push((full.to_vec(), mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                self.clear(p, name, false)?;
                let fd = openat(
                    p,
                    name,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                    0o600,
                )?;
                let mut f = File::from(fd);
                io::copy(e, &mut f)?;
                check(unsafe { libc::fchown(f.as_raw_fd(), uid, gid) })?;
                check(unsafe { libc::fchmod(f.as_raw_fd(), mode) })?;
                let t = libc::timespec {
                    tv_sec: mtime,
                    tv_nsec: 0,
                };
                check(unsafe { libc::futimens(f.as_raw_fd(), [t, t].as_ptr()) })?;
            }
            tar::EntryType::Symlink => {
                let target = e
                    .link_name_bytes()
                    .ok_or_else(|| io::Error::other("symlink without a target"))?
                    .into_owned();
                self.clear(p, name, false)?;
                let (t, n) = (cstr(&target)?, cstr(name)?);
                check(unsafe { libc::symlinkat(t.as_ptr(), p, n.as_ptr()) })?;
                fchownat_nofollow(p, name, uid, gid)?;
                set_mtime(p, name, mtime)?;
            }
            t @ (tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo) => {
                let kind = match t {
                    tar::EntryType::Char => libc::S_IFCHR,
                    tar::EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let dev = libc::makedev(
                    h.device_major()?.unwrap_or(0),
                    h.device_minor()?.unwrap_or(0),
                );
                self.clear(p, name, false)?;
                let n = cstr(name)?;
                check(unsafe { libc::mknodat(p, n.as_ptr(), kind | mode, dev) })?;
                fchownat_nofollow(p, name, uid, gid)?;
            }
            _ => {} // pax/gnu metadata entries are consumed by the reader
        }
        Ok(())
    }
}

fn remove_contents(dir: &OwnedFd) -> io::Result<()> {
    for child in list_dir(dir.as_raw_fd())? {
        let st = fstatat(dir.as_raw_fd(), &child)?;
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            let fd = openat(
                dir.as_raw_fd(),
                &child,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )?;
            remove_contents(&fd)?;
            unlinkat(dir.as_raw_fd(), &child, libc::AT_REMOVEDIR)?;
        } else {
            unlinkat(dir.as_raw_fd(), &child, 0)?;
        }
    }
    Ok(())
}

fn split_last(p: &[u8]) -> (Vec<u8>, &[u8]) {
    let trimmed = {
        let mut end = p.len();
        while end > 0 && p[end - 1] == b'/' {
            end -= 1;
        }
        &p[..end]
    };
    match trimmed.iter().rposition(|&b| b == b'/') {
        Some(i) => (trimmed[..i.max(1)].to_vec(), &trimmed[i + 1..]),
        None => (b"/".to_vec(), trimmed),
    }
}

/// Extracts the tar `input` at `dest` inside `root` (docker cp's placement rules). `owner`
/// replaces the archive's owners (cp without -a: the destination's root owns the files).
pub fn extract_at<R: Read>(
    root: &Path,
    dest: &str,
    input: R,
    placement: Placement,
    owner: Option<(u32, u32)>,
) -> Result<()> {
    let rootfd = open_dir(root).map_err(|e| ioerr(format!("open {}", root.display()), e))?;
    let dest_clean = clean_abs(dest);
    let is_dir = match sys::openat_in_root(rootfd.as_raw_fd(), dest_clean.as_bytes(), libc::O_PATH)
    {
        Ok(fd) => Some(
            fstat(fd.as_raw_fd())
                .map_err(|e| ioerr(format!("stat {dest}"), e))?
                .st_mode
                & libc::S_IFMT
                == libc::S_IFDIR,
        ),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => None,
        Err(e) => return Err(ioerr(format!("resolve {dest}"), e)),
    };
    let mut ex = Extract {
        root: rootfd,
        owner,
        dirs: HashMap::new(),
    };
    // (base dir, renamed top component)
    let (base, rename): (String, Option<Vec<u8>>) = match (placement, is_dir) {
        (Placement::Into, Some(true)) | (Placement::As, Some(true)) => (dest_clean.clone(), None),
        (Placement::Into, _) => {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("destination \"{dest}\" must be a directory"),
            ))
        }
        (Placement::ContentsAs, Some(true)) => (dest_clean.clone(), None),
        (Placement::ContentsAs, Some(false)) => {
            return Err(Error::invalid(format!(
                "cannot copy a directory to a non-directory: {dest}"
            )))
        }
        (Placement::ContentsAs, None) | (Placement::As, _) => {
            if is_dir.is_none() && dest.ends_with('/') {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("destination directory \"{dest}\" does not exist"),
                ));
            }
            let (parent, name) = split_last(dest_clean.as_bytes());
            let parent = String::from_utf8_lossy(&parent).into_owned();
            match sys::openat_in_root(
                ex.root.as_raw_fd(),
                parent.as_bytes(),
                libc::O_PATH | libc::O_DIRECTORY,
            ) {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                    return Err(Error::new(
                        ErrorKind::NotFound,
                        format!("no such directory: {parent}"),
                    ))
                }
                Err(e) => return Err(ioerr(format!("resolve {parent}"), e)),
            }
            if placement == Placement::ContentsAs {
                ex.dir(dest_clean.as_bytes())
                    .map_err(|e| ioerr(format!("create {dest}"), e))?;
                (dest_clean.clone(), None)
            } else {
                (parent, Some(name.to_vec()))
            }
        }
    };
    let mut ar = tar::Archive::new(input);
    let mut top: Option<Vec<u8>> = None;
    let mut dir_times = Vec::new();
    let map = |name: &[u8], top: &mut Option<Vec<u8>>| -> Result<Option<Vec<u8>>> {
        let mut comps = components(name)?;
        if let Some(r) = &rename {
            let Some(first) = comps.first().map(|c| c.to_vec()) else {
                return Ok(None);
            };
            let t = top.get_or_insert_with(|| first.clone());
            if first != *t {
                return Err(Error::invalid(
                    "archive has more than one top-level entry".to_string(),
                ));
            }
            comps[0] = r.as_slice();
        }
        let mut full = base.as_bytes().to_vec();
        for c in comps {
            if full.last() != Some(&b'/') {
                full.push(b'/');
            }
            full.extend_from_slice(c);
        }
        Ok(Some(full))
    };
    let entries = ar
        .entries()
        .map_err(|e| Error::invalid(format!("read archive: {e}")))?;
    let mut links: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for e in entries {
        let mut e = e.map_err(|e| Error::invalid(format!("read archive: {e}")))?;
        let name = e.path_bytes().into_owned();
        let Some(full) = map(&name, &mut top)? else {
            continue;
        };
        if rename.is_some()
            && is_dir == Some(false)
            && e.header().entry_type() == tar::EntryType::Directory
            && full.len() == base.len() + 1 + rename.as_ref().unwrap().len()
        {
            return Err(Error::invalid(format!(
                "cannot copy a directory to a non-directory: {dest}"
            )));
        }
        if e.header().entry_type() == tar::EntryType::Link {
            // Resolved after the loop: the target may come in a later position only in odd tars,
            // but the mapping needs the same renaming as names.
            let target = e
                .link_name_bytes()
                .map(|t| t.into_owned())
                .unwrap_or_default();
            let Some(tfull) = map(&target, &mut top)? else {
                continue;
            };
            links.push((full, tfull));
            continue;
        }
        ex.entry(&full, &mut e, &mut dir_times)
            .map_err(|err| ioerr(format!("extract {}", String::from_utf8_lossy(&name)), err))?;
    }
    for (full, tfull) in links {
        let (parent, name) = split_last(&full);
        let (tparent, tname) = split_last(&tfull);
        let mut l = || -> io::Result<()> {
            let tp = ex.dir(&tparent)?;
            let p = ex.dir(&parent)?;
            ex.clear(p, name, false)?;
            let (a, b) = (cstr(tname)?, cstr(name)?);
            check(unsafe { libc::linkat(tp, a.as_ptr(), p, b.as_ptr(), 0) })
        };
        l().map_err(|e| ioerr(format!("link {}", String::from_utf8_lossy(&full)), e))?;
    }
    for (full, mtime) in dir_times.iter().rev() {
        let (parent, name) = split_last(full);
        if let Ok(p) = ex.dir(&parent) {
            let _ = set_mtime(p, name, *mtime);
        }
    }
    Ok(())
}

/// Creates directory `path` inside `root` (and its missing parents) with mode 0755, never
/// leaving `root` (docker's working directory set-up); an existing non-directory is an error.
pub(crate) fn mkdir_all_in_root(root: &Path, path: &str) -> Result<()> {
    let rootfd = open_dir(root).map_err(|e| ioerr(format!("open {}", root.display()), e))?;
    let clean = clean_abs(path);
    let mut cur = String::new();
    for comp in clean.split('/').filter(|c| !c.is_empty()) {
        let parent = if cur.is_empty() {
            "/".to_string()
        } else {
            cur.clone()
        };
        cur = format!("{cur}/{comp}");
        match sys::openat_in_root(
            rootfd.as_raw_fd(),
            cur.as_bytes(),
            libc::O_PATH | libc::O_DIRECTORY,
        ) {
            Ok(_) => continue,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                return Err(Error::invalid(format!(
                    "Cannot mkdir: {path} is not a directory"
                )))
            }
            Err(e) => return Err(ioerr(format!("resolve {cur}"), e)),
        }
        let p = sys::openat_in_root(
            rootfd.as_raw_fd(),
            parent.as_bytes(),
            libc::O_PATH | libc::O_DIRECTORY,
        )
        .map_err(|e| ioerr(format!("resolve {parent}"), e))?;
        match mkdirat(p.as_raw_fd(), comp.as_bytes(), 0o755) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(ioerr(format!("mkdir {cur}"), e)),
        }
        let d = sys::openat_in_root(
            rootfd.as_raw_fd(),
            cur.as_bytes(),
            libc::O_RDONLY | libc::O_DIRECTORY,
        )
        .map_err(|e| ioerr(format!("resolve {cur}"), e))?;
        // Exactly 0755 whatever our umask.
        check(unsafe { libc::fchmod(d.as_raw_fd(), 0o755) })
            .map_err(|e| ioerr(format!("chmod {cur}"), e))?;
    }
    Ok(())
}

/// Copies the image content at `target` (inside `rootfs`) into the empty volume dir `data`,
/// owners and modes kept, the mount point's own owner and mode included (docker's copy-up).
pub(crate) fn copy_up(rootfs: &Path, target: &str, data: &Path) -> Result<()> {
    let rootfd = open_dir(rootfs).map_err(|e| ioerr(format!("open {}", rootfs.display()), e))?;
    let src = match sys::openat_in_root(
        rootfd.as_raw_fd(),
        clean_abs(target).as_bytes(),
        libc::O_PATH | libc::O_DIRECTORY,
    ) {
        Ok(fd) => fd,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
            return Ok(())
        }
        Err(e) => return Err(ioerr(format!("resolve {target}"), e)),
    };
    let st = fstat(src.as_raw_fd()).map_err(|e| ioerr(format!("stat {target}"), e))?;
    let d = File::open(data).map_err(|e| ioerr(format!("open {}", data.display()), e))?;
    check(unsafe { libc::fchown(d.as_raw_fd(), st.st_uid, st.st_gid) })
        .map_err(|e| ioerr(format!("chown {}", data.display()), e))?;
    check(unsafe { libc::fchmod(d.as_raw_fd(), st.st_mode & 0o7777) })
        .map_err(|e| ioerr(format!("chmod {}", data.display()), e))?;
    // The init layer's files (hosts, hostname, ...) are the container's, not the image's.
    let prefix = format!("{}/", clean_abs(target).trim_end_matches('/'));
    let skip: Vec<Vec<u8>> = INIT_PATHS
        .iter()
        .filter_map(|p| p.strip_prefix(prefix.as_str()))
        .map(|p| p.as_bytes().to_vec())
        .collect();
    let (r, w) = io::pipe().map_err(|e| ioerr("pipe", e))?;
    std::thread::scope(|s| {
        let writer = s.spawn(move || {
            let mut t = TarOut::new(w);
            t.skip = skip;
            t.add_children(&src, b"").and_then(|_| t.finish()).map(drop)
        });
        let ex = extract_at(data, "/", r, Placement::Into, None);
        let wr = writer
            .join()
            .map_err(|_| Error::internal("copy-up writer panicked"))?;
        wr.map_err(|e| ioerr(format!("copy {target} into the volume"), e))?;
        ex
    })
}

// ---- engine operations ----------------------------------------------------------------------

impl Engine {
    /// `berth diff`: what the writable layer changed (A/C/D, whiteouts as D), without the
    /// init layer's paths.
    pub fn diff(&self, key: &str) -> Result<Vec<berth_archive::Change>> {
        let c = self.get(key)?;
        let snap = self.overlay_snapshot(&c, "diff")?;
        let lowers: Vec<PathBuf> = snap.lower_dirs().into_iter().skip(1).collect();
        let mut v = berth_archive::changes(&snap.upper(), &lowers).map_err(archive_err)?;
        v.retain(|ch| !is_init_path(&ch.path));
        Ok(v)
    }

    fn overlay_snapshot(&self, c: &Container, what: &str) -> Result<Snapshot> {
        if c.driver == "vfs" {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "{what}: the vfs driver keeps no separate writable layer for {}",
                    c.id
                ),
            ));
        }
        Ok(Snapshot::new(self.container_dir(&c.id)))
    }

    /// `berth commit`: the writable layer (without init paths and mount points) as one new
    /// layer on the container's image, streamed straight into the image store (hashed while
    /// written, stored uncompressed). Returns the new image id.
    pub fn commit(&self, key: &str, o: &CommitOptions) -> Result<String> {
        self.commit_with_progress(key, o, &|_| {})
    }

    /// [`Engine::commit`], reporting the bytes of the new layer as they are stored.
    pub fn commit_with_progress(
        &self,
        key: &str,
        o: &CommitOptions,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<String> {
        let c = self.get(key)?;
        self.overlay_snapshot(&c, "commit")?;
        let store = self.store()?;
        let mut changes = container_changes(&c);
        changes.extend(o.changes.iter().cloned());
        let mut cmd = vec![c.path.clone()];
        cmd.extend(c.args.iter().cloned());
        let opts = berth_image::CommitOptions {
            parent: Some(c.image.clone()),
            changes,
            comment: o.comment.clone(),
            author: o.author.clone(),
            created_by: Some(cmd.join(" ")),
            reference: o.reference.clone(),
            platform: None,
        };
        // Check the changes before freezing anything.
        berth_image::apply_changes(&mut serde_json::Map::new(), &o.changes)?;

        let paused = if o.pause && c.state.running && !c.state.paused {
            self.runtime().pause(&c.id)?;
            true
        } else {
            false
        };
        let _resume = Resume(paused.then(|| (self.runtime(), c.id.clone())));
        let id = self.with_layer_writer(&c, progress, |w| Ok(store.commit_from(w, &opts)?))?;
        self.event(
            &c,
            "commit",
            &[("comment", o.comment.as_deref().unwrap_or(""))],
        );
        Ok(id)
    }

    /// The paths of `c`'s upper dir that are not part of its layer: the init layer's, mount
    /// points of volumes, binds and tmpfs (relative to the upper dir).
    fn layer_excludes(c: &Container) -> Vec<PathBuf> {
        let mut exclude: Vec<PathBuf> = INIT_PATHS.iter().map(|p| PathBuf::from(&p[1..])).collect();
        for m in c.host_config.mounts.iter().flatten() {
            exclude.push(PathBuf::from(clean_abs(&m.target).trim_start_matches('/')));
        }
        for d in c.host_config.tmpfs.iter().flatten().map(|(d, _)| d) {
            exclude.push(PathBuf::from(clean_abs(d).trim_start_matches('/')));
        }
        exclude.retain(|p| !p.as_os_str().is_empty());
        exclude
    }

    /// Gives `sink` the writer of `c`'s writable layer (its tar and tar-split, for the image
    /// store's `commit_from`/`derive_from`), reporting the tar's bytes to `progress`.
    fn with_layer_writer<T>(
        &self,
        c: &Container,
        progress: &(dyn Fn(u64) + Sync),
        sink: impl FnOnce(berth_image::LayerWriter) -> Result<T>,
    ) -> Result<T> {
        let snap = self.overlay_snapshot(c, "commit")?;
        let exclude = Self::layer_excludes(c);
        let upper = snap.upper();
        let write = |w: &mut dyn Write, split: Box<dyn Write + Send>| {
            berth_archive::write_layer_split(
                &upper,
                &exclude,
                Counted { inner: w, progress },
                split,
            )
            .map(|_| ())
        };
        sink(&write)
    }

    /// The builder's commit: `sink` gets the writer of the stopped container's layer, or nothing
    /// runs and None comes back when the container changed no file (a step that adds no layer).
    pub fn layer<T>(
        &self,
        key: &str,
        sink: impl FnOnce(berth_image::LayerWriter) -> Result<T>,
    ) -> Result<Option<T>> {
        let c = self.get(key)?;
        let snap = self.overlay_snapshot(&c, "commit")?;
        let exclude = Self::layer_excludes(&c);
        if !has_entries(&snap.upper(), Path::new(""), &exclude)
            .map_err(|e| ioerr("read the container's layer", e))?
        {
            return Ok(None);
        }
        self.with_layer_writer(&c, &|_| {}, sink).map(Some)
    }

    /// `berth export`: the container's whole filesystem as a tar.
    pub fn export<W: Write>(&self, key: &str, out: W) -> Result<()> {
        let c = self.get(key)?;
        self.with_rootfs(&c, |merged| write_path_tar(merged, "/", false, out))
    }

    /// `berth cp CONTAINER:SRC -`: `src` as a tar (see [`write_path_tar`]); paths inside a
    /// volume or bind mount are read from the mount's source.
    pub fn copy_from<W: Write>(&self, key: &str, src: &str, follow: bool, out: W) -> Result<()> {
        let c = self.get(key)?;
        if let Some((root, rel)) = self.mount_for(&c, src) {
            return write_path_tar(&root, &rel, follow, out);
        }
        self.with_rootfs(&c, |merged| write_path_tar(merged, src, follow, out))
    }

    /// `berth cp - CONTAINER:DEST` and `cp SRC CONTAINER:DEST`: extracts `input` at `dest`.
    /// Without `archive` the files belong to root.
    pub fn copy_to<R: Read>(
        &self,
        key: &str,
        dest: &str,
        input: R,
        placement: Placement,
        archive: bool,
    ) -> Result<()> {
        let c = self.get(key)?;
        let owner = if archive { None } else { Some((0, 0)) };
        if let Some((root, rel)) = self.mount_for(&c, dest) {
            let ro = c
                .host_config
                .mounts
                .iter()
                .flatten()
                .any(|m| m.read_only && dest_under(&clean_abs(dest), &clean_abs(&m.target)));
            if ro {
                return Err(Error::new(
                    ErrorKind::PermissionDenied,
                    format!("mounted volume is marked read-only: {dest}"),
                ));
            }
            return extract_at(&root, &rel, input, placement, owner);
        }
        if c.host_config.readonly_rootfs {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "container rootfs is marked read-only",
            ));
        }
        self.with_rootfs(&c, |merged| {
            extract_at(merged, dest, input, placement, owner)
        })
        .map_err(|e| {
            // docker's words for a destination whose directory is missing.
            match e.message().strip_prefix("no such directory: ") {
                Some(dir) if e.kind() == ErrorKind::NotFound => Error::new(
                    ErrorKind::NotFound,
                    format!("Could not find the file {dir} in container {key}"),
                ),
                _ => e,
            }
        })
    }

    /// (host root, path inside it) when `path` lies in a volume or bind mount of `c`.
    fn mount_for(&self, c: &Container, path: &str) -> Option<(PathBuf, String)> {
        let p = clean_abs(path);
        let mut best: Option<(usize, PathBuf, String)> = None;
        for m in c.host_config.mounts.iter().flatten() {
            let t = clean_abs(&m.target);
            if !dest_under(&p, &t) || best.as_ref().is_some_and(|(n, _, _)| *n >= t.len()) {
                continue;
            }
            let root = match m.typ.as_str() {
                "volume" => self.root().join("volumes").join(&m.source).join("_data"),
                "bind" => PathBuf::from(&m.source),
                _ => continue,
            };
            let mut rel = p[t.len()..].to_string();
            if t == "/" {
                rel = p.clone();
            }
            if rel.is_empty() {
                rel = "/".into();
            }
            if path.ends_with("/.") {
                rel.push_str("/.");
            } else if path.ends_with('/') && !rel.ends_with('/') {
                rel.push('/');
            }
            best = Some((t.len(), root, rel));
        }
        // A bind of a single file: its "root" is the file itself.
        best.filter(|(_, root, _)| root.is_dir())
            .map(|(_, r, rel)| (r, rel))
    }

    /// Runs `f` with the container's mounted rootfs, mounting it for the call when the
    /// container is not running (under its lock, so a start cannot race the unmount).
    fn with_rootfs<T>(&self, c: &Container, f: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
        let dir = self.container_dir(&c.id);
        let snap = Snapshot::new(dir.clone());
        let vfs = c.driver == "vfs";
        if snap.is_mounted() {
            return f(&snap.merged());
        }
        let _lock = sys::lock_file(&dir.join("lock"))?;
        let mounted_here = !snap.is_mounted();
        snap.mount(vfs)?;
        let r = f(&snap.merged());
        if mounted_here && !self.get(&c.id).map(|c| c.state.running).unwrap_or(false) {
            let _ = snap.unmount();
        }
        r
    }
}

/// Whether `dir/rel` holds anything outside `exclude` (relative paths).
fn has_entries(dir: &Path, rel: &Path, exclude: &[PathBuf]) -> io::Result<bool> {
    for e in std::fs::read_dir(dir.join(rel))? {
        let e = e?;
        let r = rel.join(e.file_name());
        if exclude.iter().any(|x| *x == r) {
            continue;
        }
        if !exclude.iter().any(|x| x.starts_with(&r))
            || !e.file_type()?.is_dir()
            || has_entries(dir, &r, exclude)?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

fn dest_under(p: &str, t: &str) -> bool {
    t == "/" || p == t || (p.starts_with(t) && p.as_bytes().get(t.len()) == Some(&b'/'))
}

fn is_init_path(p: &Path) -> bool {
    INIT_PATHS
        .iter()
        .any(|i| p == Path::new(i) || (matches!(*i, "/dev" | "/proc" | "/sys") && p.starts_with(i)))
}

/// docker commit takes the container's command and environment into the new config.
fn container_changes(c: &Container) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(e) = &c.config.entrypoint {
        v.push(format!(
            "ENTRYPOINT {}",
            serde_json::to_string(e).expect("json")
        ));
    }
    if let Some(cmd) = &c.config.cmd {
        v.push(format!("CMD {}", serde_json::to_string(cmd).expect("json")));
    }
    for e in &c.config.env {
        let Some((k, val)) = e.split_once('=') else {
            continue;
        };
        if k == "HOSTNAME" || k.is_empty() || k.contains(['"', ' ', '\\']) {
            continue;
        }
        v.push(format!(
            "ENV {k}=\"{}\"",
            val.replace('\\', "\\\\").replace('"', "\\\"")
        ));
    }
    v
}

fn archive_err(e: berth_archive::Error) -> Error {
    match e {
        berth_archive::Error::Io { context, source } => Error::io(context, source),
        e => Error::internal(e.to_string()),
    }
}

/// Resumes a container paused for commit, whatever happens.
struct Resume(Option<(berth_runtime::Runtime, String)>);

impl Drop for Resume {
    fn drop(&mut self) {
        if let Some((rt, id)) = &self.0 {
            let _ = rt.resume(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_helpers() {
        assert_eq!(clean_abs("a/../../b/./c/"), "/b/c");
        assert_eq!(split_last(b"/a/b"), (b"/a".to_vec(), &b"b"[..]));
        assert_eq!(split_last(b"/a"), (b"/".to_vec(), &b"a"[..]));
        assert!(components(b"a/../b").is_err());
        assert!(
            dest_under("/data/x", "/data")
                && !dest_under("/database", "/data")
                && dest_under("/x", "/")
        );
        assert!(
            is_init_path(Path::new("/etc/hosts"))
                && is_init_path(Path::new("/dev/pts/0"))
                && !is_init_path(Path::new("/etc"))
        );
    }

    #[test]
    fn tar_round_trip_stays_inside_the_root() {
        let t = berth_testkit::Scratch::new("cp-unit");
        let src = t.join("src");
        std::fs::create_dir_all(src.join("d/e")).unwrap();
        std::fs::write(src.join("d/e/f"), b"hello").unwrap();
        std::os::unix::fs::symlink("/", src.join("d/up")).unwrap();
        std::fs::hard_link(src.join("d/e/f"), src.join("d/h")).unwrap();
        let mut buf = Vec::new();
        write_path_tar(&src, "/d", false, &mut buf).unwrap();
        // A destination root whose "/x" is a symlink to "/": it must stay inside dst.
        let dst = t.join("dst");
        std::fs::create_dir_all(&dst).unwrap();
        std::os::unix::fs::symlink("/", dst.join("x")).unwrap();
        extract_at(&dst, "/x/copy", &buf[..], Placement::As, None).unwrap();
        assert_eq!(std::fs::read(dst.join("copy/e/f")).unwrap(), b"hello");
        assert_eq!(
            std::fs::read_link(dst.join("copy/up")).unwrap(),
            Path::new("/")
        );
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(dst.join("copy/h")).unwrap().ino(),
            std::fs::metadata(dst.join("copy/e/f")).unwrap().ino()
        );
        // Reading through a symlink to "/" stays inside too.
        let mut buf = Vec::new();
        write_path_tar(&src, "/d/up/d/e/f", false, &mut buf).unwrap();
        let mut ar = tar::Archive::new(&buf[..]);
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, vec!["f"]);
    }
}

/// `HEAD /containers/{id}/archive`: what docker's `X-Docker-Container-Path-Stat` carries.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go's os.FileMode: permission bits plus its type bits (dir 1<<31, symlink 1<<27, ...).
    pub mode: u32,
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

fn stat_in(root: &Path, path: &str) -> Result<PathStat> {
    let rootfd = open_dir(root).map_err(|e| ioerr(format!("open {}", root.display()), e))?;
    let cleaned = clean_abs(path);
    let fd = sys::openat_in_root(
        rootfd.as_raw_fd(),
        cleaned.as_bytes(),
        libc::O_PATH | libc::O_NOFOLLOW,
    )
    .map_err(|e| not_found(path, e))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| ioerr(format!("stat {path}"), e.into()))?;
    let fmt = st.st_mode & libc::S_IFMT;
    let mut mode = st.st_mode & 0o777;
    let mut link_target = String::new();
    mode |= match fmt {
        libc::S_IFDIR => 1 << 31,
        libc::S_IFLNK => {
            if let Ok(t) = rustix::fs::readlinkat(&fd, "", Vec::new()) {
                link_target = t.to_string_lossy().into_owned();
            }
            1 << 27
        }
        libc::S_IFIFO => 1 << 25,
        libc::S_IFSOCK => 1 << 24,
        libc::S_IFCHR => (1 << 26) | (1 << 21),
        libc::S_IFBLK => 1 << 26,
        _ => 0,
    };
    if st.st_mode & libc::S_ISUID != 0 {
        mode |= 1 << 23;
    }
    if st.st_mode & libc::S_ISGID != 0 {
        mode |= 1 << 22;
    }
    if st.st_mode & libc::S_ISVTX != 0 {
        mode |= 1 << 20;
    }
    let mtime = std::time::UNIX_EPOCH
        + std::time::Duration::new(st.st_mtime as u64, st.st_mtime_nsec as u32);
    let name = cleaned
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("/")
        .to_string();
    Ok(PathStat {
        name,
        size: st.st_size,
        mode,
        mtime: crate::timefmt::format(mtime),
        link_target,
    })
}

impl Engine {
    /// Stat of a path inside the container (volumes and binds through their source), without
    /// following a final symlink and never leaving the rootfs.
    pub fn stat_path(&self, key: &str, path: &str) -> Result<PathStat> {
        let c = self.get(key)?;
        if let Some((root, rel)) = self.mount_for(&c, path) {
            return stat_in(&root, &rel);
        }
        self.with_rootfs(&c, |merged| stat_in(merged, path))
    }
}
