//! maskedPaths, readonlyPaths, sysctl and the read-only root; run after the root switch, so
//! every path here is the container's own.

use super::mounts::remount_bind;
use crate::error::{Error, Result};
use crate::sys;
use std::os::fd::AsRawFd;
use std::path::Path;

const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// A file gets /dev/null bound over it (after checking that it is char 1:3); a directory a
/// read-only tmpfs. Missing paths are skipped.
pub fn mask(path: &str) -> Result<()> {
    let c = sys::cstr(path);
    let fd = match sys::open(&c, libc::O_PATH | libc::O_NOFOLLOW, 0) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(Error::sys(format!("mask {path}"), e)),
    };
    let st = sys::fstat(fd.as_raw_fd()).map_err(|e| Error::sys(format!("stat {path}"), e))?;
    if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        // Masking through a symlink would hide its target instead (CVE-2025-31133's shape).
        return Err(Error::invalid(format!(
            "masked path {path} is a symlink in the rootfs: refusing to mask through it"
        )));
    }
    let target = sys::fd_path(fd.as_raw_fd());
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        sys::mount(
            Some(c"tmpfs"),
            &target,
            Some(c"tmpfs"),
            libc::MS_RDONLY,
            None,
        )
        .map_err(|e| Error::sys(format!("mask {path}"), e))
    } else {
        let null = sys::open(c"/dev/null", libc::O_PATH, 0)
            .map_err(|e| Error::sys("open /dev/null", e))?;
        let nst = sys::fstat(null.as_raw_fd()).map_err(|e| Error::sys("stat /dev/null", e))?;
        if nst.st_mode & libc::S_IFMT != libc::S_IFCHR || nst.st_rdev != libc::makedev(1, 3) {
            return Err(Error::invalid(format!(
                "mask {path}: /dev/null is not the null device"
            )));
        }
        sys::mount(
            Some(&sys::fd_path(null.as_raw_fd())),
            &target,
            None,
            libc::MS_BIND,
            None,
        )
        .map_err(|e| Error::sys(format!("mask {path}"), e))
    }
}

/// Recursive bind onto itself, remounted read-only keeping nosuid/nodev/noexec.
pub fn readonly(path: &str) -> Result<()> {
    let c = sys::cstr(path);
    match sys::mount(Some(&c), &c, None, libc::MS_BIND | libc::MS_REC, None) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(Error::sys(format!("bind {path} read-only"), e)),
    }
    remount_bind(&c, libc::MS_RDONLY | libc::MS_REC, Path::new(path))
}

/// Writes a sysctl through /proc/sys after checking /proc really is procfs (a container image
/// could have put something else there).
pub fn sysctl(key: &str, value: &str) -> Result<()> {
    if key.contains("..") {
        return Err(Error::invalid(format!("sysctl {key}: invalid name")));
    }
    let procfs = sys::open(
        c"/proc",
        libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )
    .map_err(|e| Error::sys(format!("sysctl {key}: open /proc"), e))?;
    let st = sys::fstatfs(procfs.as_raw_fd()).map_err(|e| Error::sys("statfs /proc", e))?;
    if st.f_type as i64 != PROC_SUPER_MAGIC {
        return Err(Error::invalid(format!("sysctl {key}: /proc is not procfs")));
    }
    let rel = format!("sys/{}", key.replace('.', "/"));
    let fd = sys::openat2(
        procfs.as_raw_fd(),
        &sys::cstr(&rel),
        libc::O_WRONLY | libc::O_TRUNC,
        0,
        sys::ResolveFlags::NO_MAGICLINKS | sys::ResolveFlags::NO_SYMLINKS,
    )
    .map_err(|e| Error::sys(format!("sysctl {key}"), e))?;
    sys::write_all_fd(fd.as_raw_fd(), value.as_bytes())
        .map_err(|e| Error::sys(format!("sysctl {key}={value}"), e))
}

/// Remounts / read-only at the very end.
pub fn readonly_root() -> Result<()> {
    remount_bind(c"/", libc::MS_RDONLY, Path::new("/"))
}
