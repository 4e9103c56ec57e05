//! The container's root filesystem: propagation, the spec's mounts in order, devices, pivot_root,
//! masked and read-only paths. Destinations are resolved inside the root with openat2
//! (RESOLVE_IN_ROOT) and mounted onto /proc/self/fd/N, so a symlink in the rootfs can never point
//! a mount outside it.

pub mod devices;
pub mod idmap;
pub mod masking;
pub mod mounts;
pub mod pivot;

use crate::error::{Error, Result};
use crate::sys;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

/// Opens `rel` (absolute or relative, taken as inside the root) below `root`, symlinks resolved
/// inside the root.
pub fn open_in_root(root: RawFd, rel: &Path, flags: libc::c_int) -> std::io::Result<OwnedFd> {
    let c = rel_cstr(rel);
    sys::openat2(
        root,
        &c,
        flags,
        0,
        sys::ResolveFlags::IN_ROOT | sys::ResolveFlags::NO_MAGICLINKS,
    )
}

fn rel_cstr(p: &Path) -> CString {
    let b = p.as_os_str().as_bytes();
    let mut i = 0;
    while i < b.len() && b[i] == b'/' {
        i += 1;
    }
    if i == b.len() {
        CString::new(".").unwrap()
    } else {
        CString::new(&b[i..]).unwrap_or_else(|_| CString::new(".").unwrap())
    }
}

/// mkdir -p inside the root; returns an O_PATH fd on the final directory. Dangling symlinks on
/// the way are followed inside the root and their targets created there.
pub fn mkdir_all_in_root(root: RawFd, rel: &Path, mode: u32) -> Result<OwnedFd> {
    mkdir_all_depth(root, rel, mode, 0)
}

fn mkdir_all_depth(root: RawFd, rel: &Path, mode: u32, depth: u32) -> Result<OwnedFd> {
    if depth > 40 {
        return Err(Error::errno(
            format!("mkdir {}", rel.display()),
            libc::ELOOP,
        ));
    }
    match open_in_root(root, rel, libc::O_PATH | libc::O_DIRECTORY) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(Error::sys(format!("open {}", rel.display()), e)),
    }
    let mut cur = sys::openat2(
        root,
        c".",
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        sys::ResolveFlags::empty(),
    )
    .map_err(|e| Error::sys("open rootfs", e))?;
    let mut so_far = std::path::PathBuf::from("/");
    for comp in rel.components() {
        let Component::Normal(name) = comp else {
            continue;
        };
        so_far.push(name);
        match open_in_root(root, &so_far, libc::O_PATH | libc::O_DIRECTORY) {
            Ok(fd) => cur = fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let n = sys::cstr(name);
                match sys::mkdirat(cur.as_raw_fd(), &n, mode) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                        if let Some(target) = readlinkat(cur.as_raw_fd(), &n) {
                            let t = if target.is_absolute() {
                                target
                            } else {
                                so_far.parent().unwrap_or(Path::new("/")).join(target)
                            };
                            mkdir_all_depth(root, &t, mode, depth + 1)?;
                        }
                    }
                    Err(e) => return Err(Error::sys(format!("mkdir {}", so_far.display()), e)),
                }
                cur = open_in_root(root, &so_far, libc::O_PATH | libc::O_DIRECTORY)
                    .map_err(|e| Error::sys(format!("open {}", so_far.display()), e))?;
            }
            Err(e) => return Err(Error::sys(format!("open {}", so_far.display()), e)),
        }
    }
    Ok(cur)
}

/// Makes sure a file exists at `rel` (creating parents); returns an O_PATH fd on it.
pub fn touch_in_root(root: RawFd, rel: &Path, mode: u32) -> Result<OwnedFd> {
    match open_in_root(root, rel, libc::O_PATH) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(Error::sys(format!("open {}", rel.display()), e)),
    }
    let parent = rel.parent().unwrap_or(Path::new("/"));
    let name = rel
        .file_name()
        .ok_or_else(|| Error::invalid(format!("{}: no file name", rel.display())))?;
    let dir = mkdir_all_in_root(root, parent, 0o755)?;
    match sys::openat(
        dir.as_raw_fd(),
        &sys::cstr(name),
        libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW,
        mode,
    ) {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
        Err(e) => return Err(Error::sys(format!("create {}", rel.display()), e)),
    }
    open_in_root(root, rel, libc::O_PATH)
        .map_err(|e| Error::sys(format!("open {}", rel.display()), e))
}

fn readlinkat(dir: RawFd, name: &std::ffi::CStr) -> Option<std::path::PathBuf> {
    let mut buf = [0u8; 4096];
    let n = unsafe { libc::readlinkat(dir, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return None;
    }
    Some(std::path::PathBuf::from(std::ffi::OsStr::from_bytes(
        &buf[..n as usize],
    )))
}
