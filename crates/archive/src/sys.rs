//! Thin wrappers over the *at syscalls used while extracting: every call is relative to a
//! directory fd and never follows a symlink in the last component.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};

pub fn cstr(b: &[u8]) -> io::Result<CString> {
    CString::new(b)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn check_fd(r: libc::c_int) -> io::Result<OwnedFd> {
    check(r).map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens a directory as the root of an extraction.
pub fn open_dir(path: &std::path::Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let p = cstr(path.as_os_str().as_bytes())?;
    check_fd(unsafe {
        libc::open(
            p.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })
}

/// Opens the directory `path` (relative, may span several components) beneath `root`: symlinks
/// inside are followed, but any resolution leaving `root` (absolute links, `..` above it, magic
/// links) fails with EXDEV/ELOOP instead of escaping.
pub fn open_dir_beneath(root: RawFd, path: &[u8]) -> io::Result<OwnedFd> {
    let root = unsafe { BorrowedFd::borrow_raw(root) };
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    Ok(openat2(
        root,
        cstr(path)?.as_c_str(),
        flags,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
    )?)
}

/// Opens the regular file `path` beneath `root` for reading, following no symlink at all.
pub fn open_file_beneath(root: RawFd, path: &[u8]) -> io::Result<OwnedFd> {
    let root = unsafe { BorrowedFd::borrow_raw(root) };
    Ok(openat2(
        root,
        cstr(path)?.as_c_str(),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
    )?)
}

/// Opens a directory entry of `dir` that must itself be a directory (not a symlink to one).
pub fn open_subdir(dir: RawFd, name: &[u8]) -> io::Result<OwnedFd> {
    let p = cstr(name)?;
    check_fd(unsafe {
        libc::openat(
            dir,
            p.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })
}

/// Creates a new regular file; fails with EEXIST when anything is already there.
pub fn create_file(dir: RawFd, name: &[u8], mode: u32) -> io::Result<OwnedFd> {
    let p = cstr(name)?;
    check_fd(unsafe {
        libc::openat(
            dir,
            p.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })
}

pub fn mkdirat(dir: RawFd, name: &[u8], mode: u32) -> io::Result<()> {
    let p = cstr(name)?;
    check(unsafe { libc::mkdirat(dir, p.as_ptr(), mode as libc::mode_t) }).map(drop)
}

pub fn symlinkat(target: &[u8], dir: RawFd, name: &[u8]) -> io::Result<()> {
    let t = cstr(target)?;
    let p = cstr(name)?;
    check(unsafe { libc::symlinkat(t.as_ptr(), dir, p.as_ptr()) }).map(drop)
}

/// Hard-links `old` (never following a symlink there) as `new`.
pub fn linkat(old_dir: RawFd, old: &[u8], new_dir: RawFd, new: &[u8]) -> io::Result<()> {
    let o = cstr(old)?;
    let n = cstr(new)?;
    check(unsafe { libc::linkat(old_dir, o.as_ptr(), new_dir, n.as_ptr(), 0) }).map(drop)
}

pub fn mknodat(dir: RawFd, name: &[u8], mode: u32, major: u32, minor: u32) -> io::Result<()> {
    let p = cstr(name)?;
    let dev = libc::makedev(major, minor);
    check(unsafe { libc::mknodat(dir, p.as_ptr(), mode as libc::mode_t, dev) }).map(drop)
}

pub fn unlinkat(dir: RawFd, name: &[u8], is_dir: bool) -> io::Result<()> {
    let p = cstr(name)?;
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    check(unsafe { libc::unlinkat(dir, p.as_ptr(), flags) }).map(drop)
}

pub fn lstatat(dir: RawFd, name: &[u8]) -> io::Result<libc::stat> {
    let p = cstr(name)?;
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstatat(dir, p.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(st)
}

pub fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

pub fn lchownat(dir: RawFd, name: &[u8], uid: u32, gid: u32) -> io::Result<()> {
    let p = cstr(name)?;
    check(unsafe { libc::fchownat(dir, p.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) }).map(drop)
}

pub fn fchown(fd: RawFd, uid: u32, gid: u32) -> io::Result<()> {
    check(unsafe { libc::fchown(fd, uid, gid) }).map(drop)
}

pub fn fchmod(fd: RawFd, mode: u32) -> io::Result<()> {
    check(unsafe { libc::fchmod(fd, mode as libc::mode_t) }).map(drop)
}

/// chmod of an entry just created by us (never a symlink: Linux cannot chmod those).
pub fn fchmodat(dir: RawFd, name: &[u8], mode: u32) -> io::Result<()> {
    let p = cstr(name)?;
    check(unsafe { libc::fchmodat(dir, p.as_ptr(), mode as libc::mode_t, 0) }).map(drop)
}

fn timespecs(sec: i64, nsec: i64) -> [libc::timespec; 2] {
    let t = libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as _,
    };
    [t, t]
}

pub fn lutimesat(dir: RawFd, name: &[u8], sec: i64, nsec: i64) -> io::Result<()> {
    let p = cstr(name)?;
    let ts = timespecs(sec, nsec);
    check(unsafe { libc::utimensat(dir, p.as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) })
        .map(drop)
}

pub fn futimens(fd: RawFd, sec: i64, nsec: i64) -> io::Result<()> {
    let ts = timespecs(sec, nsec);
    check(unsafe { libc::futimens(fd, ts.as_ptr()) }).map(drop)
}

pub fn fsetxattr(fd: RawFd, name: &[u8], value: &[u8]) -> io::Result<()> {
    let n = cstr(name)?;
    check(unsafe { libc::fsetxattr(fd, n.as_ptr(), value.as_ptr().cast(), value.len(), 0) })
        .map(drop)
}

/// setxattr on the entry `name` of `dir` without following it (symlinks, devices, fifos).
pub fn lsetxattrat(dir: RawFd, name: &[u8], key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut path = format!("/proc/self/fd/{dir}/").into_bytes();
    path.extend_from_slice(name);
    let p = cstr(&path)?;
    let k = cstr(key)?;
    check(unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            k.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
    .map(drop)
}

pub fn pwrite_all(fd: RawFd, mut buf: &[u8], mut off: u64) -> io::Result<()> {
    while !buf.is_empty() {
        let n = unsafe { libc::pwrite(fd, buf.as_ptr().cast(), buf.len(), off as libc::off_t) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "pwrite wrote nothing",
            ));
        }
        buf = &buf[n as usize..];
        off += n as u64;
    }
    Ok(())
}

pub fn ftruncate(fd: RawFd, len: u64) -> io::Result<()> {
    check(unsafe { libc::ftruncate(fd, len as libc::off_t) }).map(drop)
}

/// Names in a directory (without `.` and `..`).
pub fn list_dir(dir: RawFd) -> io::Result<Vec<Vec<u8>>> {
    // A duplicate fd keeps `dir` usable; the stream owns and closes the duplicate.
    let dup = check(unsafe { libc::fcntl(dir, libc::F_DUPFD_CLOEXEC, 0) })?;
    let d = unsafe { libc::fdopendir(dup) };
    if d.is_null() {
        let e = io::Error::last_os_error();
        unsafe { libc::close(dup) };
        return Err(e);
    }
    unsafe { libc::rewinddir(d) };
    let mut names = Vec::new();
    loop {
        unsafe { *libc::__errno_location() = 0 };
        let ent = unsafe { libc::readdir64(d) };
        if ent.is_null() {
            let errno = unsafe { *libc::__errno_location() };
            unsafe { libc::closedir(d) };
            if errno != 0 {
                return Err(io::Error::from_raw_os_error(errno));
            }
            return Ok(names);
        }
        let name = unsafe { std::ffi::CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
}

/// Removes `name` in `dir`, recursively when it is a directory, never following symlinks.
/// Returns the file type bits of what was removed.
pub fn remove_all_at(dir: RawFd, name: &[u8]) -> io::Result<u32> {
    let st = lstatat(dir, name)?;
    let fmt = st.st_mode & libc::S_IFMT;
    if fmt == libc::S_IFDIR {
        let sub = open_subdir(dir, name)?;
        for child in list_dir(sub.as_raw_fd())? {
            remove_all_at(sub.as_raw_fd(), &child)?;
        }
        unlinkat(dir, name, true)?;
    } else {
        unlinkat(dir, name, false)?;
    }
    Ok(fmt)
}

pub fn umask() -> u32 {
    // Read without changing it: other threads may be creating files right now.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}
