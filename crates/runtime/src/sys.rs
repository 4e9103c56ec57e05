//! Thin named wrappers over the syscalls the runtime uses. Each returns the OS error so callers
//! can attach the path or object they were working on.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub use rustix::fs::ResolveFlags;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

pub type SysResult<T> = io::Result<T>;

fn check(ret: libc::c_int) -> SysResult<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn check_l(ret: libc::c_long) -> SysResult<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A NUL-terminated copy of a path (paths with interior NULs cannot name files anyway).
pub fn cstr(p: impl AsRef<OsStr>) -> CString {
    CString::new(p.as_ref().as_bytes()).unwrap_or_else(|_| CString::new("/\u{1}invalid").unwrap())
}

pub fn fd_path(fd: RawFd) -> CString {
    let mut buf = itoa_buf(b"/proc/self/fd/", fd as u64);
    buf.push(0);
    CString::from_vec_with_nul(buf).unwrap()
}

fn itoa_buf(prefix: &[u8], mut n: u64) -> Vec<u8> {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut v = Vec::with_capacity(prefix.len() + 21);
    v.extend_from_slice(prefix);
    v.extend_from_slice(&digits[i..]);
    v
}

pub fn mount(
    src: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> SysResult<()> {
    let p = |c: Option<&CStr>| c.map_or(std::ptr::null(), |c| c.as_ptr());
    check(unsafe { libc::mount(p(src), target.as_ptr(), p(fstype), flags, p(data).cast()) })
        .map(drop)
}

pub fn umount2(target: &CStr, flags: libc::c_int) -> SysResult<()> {
    check(unsafe { libc::umount2(target.as_ptr(), flags) }).map(drop)
}

/// openat2(2): `path` resolved with `resolve` flags relative to `dirfd`; retried on EAGAIN/EINTR
/// (a concurrent rename or mount elsewhere makes the kernel ask for a retry).
pub fn openat2(
    dirfd: RawFd,
    path: &CStr,
    flags: libc::c_int,
    mode: u32,
    resolve: ResolveFlags,
) -> SysResult<OwnedFd> {
    let dir = unsafe { BorrowedFd::borrow_raw(dirfd) };
    let flags = OFlags::from_bits_retain(flags as u32) | OFlags::CLOEXEC;
    loop {
        match rustix::fs::openat2(dir, path, flags, Mode::from_bits_retain(mode), resolve) {
            Err(Errno::AGAIN | Errno::INTR) => continue,
            r => return r.map_err(io::Error::from),
        }
    }
}

pub fn openat(dirfd: RawFd, path: &CStr, flags: libc::c_int, mode: u32) -> SysResult<OwnedFd> {
    let fd = check(unsafe { libc::openat(dirfd, path.as_ptr(), flags | libc::O_CLOEXEC, mode) })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn open(path: &CStr, flags: libc::c_int, mode: u32) -> SysResult<OwnedFd> {
    openat(libc::AT_FDCWD, path, flags, mode)
}

pub fn mkdirat(dirfd: RawFd, name: &CStr, mode: u32) -> SysResult<()> {
    check(unsafe { libc::mkdirat(dirfd, name.as_ptr(), mode) }).map(drop)
}

pub fn mknodat(dirfd: RawFd, name: &CStr, mode: u32, dev: libc::dev_t) -> SysResult<()> {
    check(unsafe { libc::mknodat(dirfd, name.as_ptr(), mode, dev) }).map(drop)
}

pub fn symlinkat(target: &CStr, dirfd: RawFd, name: &CStr) -> SysResult<()> {
    check(unsafe { libc::symlinkat(target.as_ptr(), dirfd, name.as_ptr()) }).map(drop)
}

pub fn fchownat_empty(fd: RawFd, uid: u32, gid: u32) -> SysResult<()> {
    check(unsafe {
        libc::fchownat(
            fd,
            c"".as_ptr(),
            uid,
            gid,
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

pub fn fchmod_path_fd(fd: RawFd, mode: u32) -> SysResult<()> {
    // An O_PATH fd cannot be fchmod'ed; go through its magic link.
    check(unsafe { libc::chmod(fd_path(fd).as_ptr(), mode) }).map(drop)
}

pub fn fstat(fd: RawFd) -> SysResult<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

pub fn stat(path: &CStr) -> SysResult<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe { libc::stat(path.as_ptr(), &mut st) })?;
    Ok(st)
}

pub fn fstatfs(fd: RawFd) -> SysResult<libc::statfs> {
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstatfs(fd, &mut st) })?;
    Ok(st)
}

pub fn statvfs(path: &CStr) -> SysResult<libc::statvfs> {
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    check(unsafe { libc::statvfs(path.as_ptr(), &mut st) })?;
    Ok(st)
}

pub fn pivot_root(new: &CStr, old: &CStr) -> SysResult<()> {
    check_l(unsafe { libc::syscall(libc::SYS_pivot_root, new.as_ptr(), old.as_ptr()) }).map(drop)
}

pub fn fchdir(fd: RawFd) -> SysResult<()> {
    check(unsafe { libc::fchdir(fd) }).map(drop)
}

pub fn chdir(p: &CStr) -> SysResult<()> {
    check(unsafe { libc::chdir(p.as_ptr()) }).map(drop)
}

pub fn chroot(p: &CStr) -> SysResult<()> {
    check(unsafe { libc::chroot(p.as_ptr()) }).map(drop)
}

pub fn setns(fd: RawFd, nstype: libc::c_int) -> SysResult<()> {
    check(unsafe { libc::setns(fd, nstype) }).map(drop)
}

pub fn unshare(flags: libc::c_int) -> SysResult<()> {
    check(unsafe { libc::unshare(flags) }).map(drop)
}

/// clone(2) without a new stack, fork-like: returns 0 in the child. Must only be called by a
/// single-threaded process.
pub fn clone_fork(flags: libc::c_ulong) -> SysResult<libc::pid_t> {
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags | libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    check_l(r).map(|p| p as libc::pid_t)
}

pub fn fork() -> SysResult<libc::pid_t> {
    clone_fork(0)
}

pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> SysResult<()> {
    check(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// waitpid that retries on EINTR; returns (pid, raw status).
pub fn waitpid(pid: libc::pid_t, flags: libc::c_int) -> SysResult<(libc::pid_t, libc::c_int)> {
    let mut status = 0;
    loop {
        let r = unsafe { libc::waitpid(pid, &mut status, flags) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        return Ok((r, status));
    }
}

/// Exit code shell-style: the code, or 128+N for a signal.
pub fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    }
}

pub fn prctl(
    op: libc::c_int,
    a: libc::c_ulong,
    b: libc::c_ulong,
    c: libc::c_ulong,
    d: libc::c_ulong,
) -> SysResult<libc::c_int> {
    check(unsafe { libc::prctl(op, a, b, c, d) })
}

pub fn close_range(first: u32, last: u32, flags: u32) -> SysResult<()> {
    check_l(unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) }).map(drop)
}

/// Closes every fd >= `from` except those in `keep`.
pub fn close_fds_from(from: RawFd, keep: &[RawFd]) {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|&k| k >= from).collect();
    keep.sort_unstable();
    let mut start = from as u32;
    for k in keep {
        let k = k as u32;
        if k > start {
            let _ = close_range(start, k - 1, 0);
        }
        start = k + 1;
    }
    let _ = close_range(start, u32::MAX, 0);
}

pub const CLOSE_RANGE_CLOEXEC: u32 = 4;

pub fn write_all_fd(fd: RawFd, mut buf: &[u8]) -> SysResult<()> {
    while !buf.is_empty() {
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

pub fn dup2(old: RawFd, new: RawFd) -> SysResult<()> {
    check(unsafe { libc::dup2(old, new) }).map(drop)
}

pub fn pipe() -> SysResult<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub fn pidfd_open(pid: libc::pid_t) -> SysResult<OwnedFd> {
    let r = check_l(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

pub fn poll_one(
    fd: RawFd,
    events: libc::c_short,
    timeout_ms: libc::c_int,
) -> SysResult<libc::c_short> {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    loop {
        let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        return Ok(if r == 0 { 0 } else { p.revents });
    }
}

/// Waits for events on several fds; `timeout_ms` < 0 waits without limit. Returns each fd's
/// revents (all 0 on timeout).
pub fn poll_fds<const N: usize>(
    fds: [(RawFd, libc::c_short); N],
    timeout_ms: libc::c_int,
) -> SysResult<[libc::c_short; N]> {
    let mut p = fds.map(|(fd, events)| libc::pollfd {
        fd,
        events,
        revents: 0,
    });
    loop {
        let r = unsafe { libc::poll(p.as_mut_ptr(), N as libc::nfds_t, timeout_ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        return Ok(p.map(|x| x.revents));
    }
}

/// Occupies every free slot of [3, 3+n) with a close-on-exec /dev/null, so that every fd the
/// runtime opens from here on (in the parent and in its children) lands above the range the
/// container inherits; the caller's own fds in the range are left as they are. The placeholders
/// vanish at execve; drop them in the parent once the container process is cloned.
pub fn reserve_fd_range(n: u32) -> SysResult<Vec<OwnedFd>> {
    let mut held = Vec::new();
    if n == 0 {
        return Ok(held);
    }
    let end =
        RawFd::try_from(3i64 + n as i64).map_err(|_| io::Error::from_raw_os_error(libc::EMFILE))?;
    let null = open(c"/dev/null", libc::O_RDWR, 0)?;
    if null.as_raw_fd() >= end {
        return Ok(held);
    }
    held.push(null);
    // F_DUPFD takes the lowest free fd atomically: never clobbers one opened meanwhile.
    loop {
        let fd = check(unsafe { libc::fcntl(held[0].as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) })?;
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        if fd.as_raw_fd() >= end {
            return Ok(held);
        }
        held.push(fd);
    }
}

/// Number of threads of this process, from /proc/self/status.
pub fn thread_count() -> usize {
    let Ok(s) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    s.lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Start time of `pid` in clock ticks since boot (field 22 of /proc/PID/stat) and whether it is a zombie.
pub fn proc_start_time(pid: i32) -> Option<(u64, bool)> {
    let mut path = itoa_buf(b"/proc/", pid as u64);
    path.extend_from_slice(b"/stat");
    let data = std::fs::read(OsStr::from_bytes(&path)).ok()?;
    let close = data.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&data[close + 1..]).ok()?;
    let mut it = rest.split_ascii_whitespace();
    let state = it.next()?; // field 3
    let start = it.nth(18)?; // field 22
    Some((start.parse().ok()?, state == "Z" || state == "X"))
}

pub fn path_exists(p: &Path) -> bool {
    let c = cstr(p);
    unsafe { libc::access(c.as_ptr(), libc::F_OK) == 0 }
}

pub fn makedev(major: i64, minor: i64) -> libc::dev_t {
    libc::makedev(major as u32, minor as u32)
}

pub fn getuid() -> u32 {
    unsafe { libc::getuid() }
}

/// Writes the message to stderr unbuffered (safe in a forked child).
/// Where `warn` writes instead of stderr (the CLI's --log file), set once by the caller.
static WARNING_SINK: std::sync::OnceLock<Box<dyn Fn(&str) + Send + Sync>> =
    std::sync::OnceLock::new();

pub fn set_warning_sink(sink: Box<dyn Fn(&str) + Send + Sync>) {
    let _ = WARNING_SINK.set(sink);
}

pub fn warn(msg: &str) {
    if let Some(sink) = WARNING_SINK.get() {
        return sink(msg);
    }
    let mut v = Vec::with_capacity(msg.len() + 24);
    v.extend_from_slice(b"berth-runc: warning: ");
    v.extend_from_slice(msg.as_bytes());
    v.push(b'\n');
    let _ = write_all_fd(2, &v);
}

/// f_type of the filesystem at `path`.
pub fn statfs_magic(path: &CStr) -> Option<i64> {
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(path.as_ptr(), &mut st) } < 0 {
        return None;
    }
    Some(st.f_type as i64)
}

/// Drops the already-faulted pages of our executable mappings (r-xp, never written, so they are
/// re-read from the page cache when touched again). Peak RSS is what `run` is measured on; the
/// CLI's argument parsing touched code that the container start does not need again.
pub fn trim_text() {
    let Ok(maps) = std::fs::read("/proc/self/maps") else {
        return;
    };
    for line in maps.split(|&b| b == b'\n') {
        let mut f = line.split(|&b| b == b' ').filter(|s| !s.is_empty());
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        if perms != b"r-xp" {
            continue;
        }
        let Some(path) = f.nth(3) else { continue };
        if path.first() != Some(&b'/') {
            continue;
        }
        let Ok(range) = std::str::from_utf8(range) else {
            continue;
        };
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else {
            continue;
        };
        unsafe { libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_DONTNEED) };
    }
}
