//! The syscalls the engine makes, behind small named functions.

use crate::error::{Error, Result};
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

pub fn cstr(p: impl AsRef<std::ffi::OsStr>) -> CString {
    CString::new(p.as_ref().as_bytes()).expect("no NUL in path")
}

fn last(what: impl std::fmt::Display) -> Error {
    Error::io(what, std::io::Error::last_os_error())
}

pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    unsafe { libc::getrandom(b.as_mut_ptr().cast(), 8, 0) };
    u64::from_ne_bytes(b)
}

/// 64 random hex digits.
pub fn random_id() -> String {
    let mut b = [0u8; 32];
    unsafe { libc::getrandom(b.as_mut_ptr().cast(), 32, 0) };
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Field 22 of /proc/<pid>/stat: tells a pid from a later process reusing it.
pub fn proc_start_time(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // rest starts at field 3 (state).
    if f.first() == Some(&"Z") || f.first() == Some(&"X") {
        return None;
    }
    f.get(19)?.parse().ok()
}

/// Whether `pid` is still the process that started at `start` (and not a zombie).
pub fn alive(pid: i32, start: u64) -> bool {
    pid > 0 && proc_start_time(pid) == Some(start)
}

/// An exclusive flock on `path` (created), held until the file is dropped.
/// Whether nobody holds the lock file (a missing file counts as free); never blocks.
pub fn try_lock(path: &Path) -> bool {
    let Ok(f) = std::fs::OpenOptions::new().write(true).open(path) else {
        return true;
    };
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

pub fn lock_file(path: &Path) -> Result<File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    loop {
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(f);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(Error::io(format!("lock {}", path.display()), e));
        }
    }
}

pub fn mount(
    src: &str,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<()> {
    let s = cstr(src);
    let t = cstr(target);
    let f = fstype.map(cstr);
    let d = data.map(cstr);
    let r = unsafe {
        libc::mount(
            s.as_ptr(),
            t.as_ptr(),
            f.as_ref().map_or(std::ptr::null(), |x| x.as_ptr()),
            flags,
            d.as_ref().map_or(std::ptr::null(), |x| x.as_ptr().cast()),
        )
    };
    if r < 0 {
        return Err(last(format!("mount {} on {}", src, target.display())));
    }
    Ok(())
}

/// Lazily unmounts `target`; not mounted is fine.
pub fn umount(target: &Path) -> Result<()> {
    let t = cstr(target);
    if unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH) } < 0 {
        let e = std::io::Error::last_os_error();
        if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) {
            return Ok(());
        }
        return Err(Error::io(format!("unmount {}", target.display()), e));
    }
    Ok(())
}

/// Whether `path` is a mount point (its mount id differs from its parent's).
pub fn is_mountpoint(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(a), Some(parent)) = (std::fs::metadata(path), path.parent()) else {
        return false;
    };
    let Ok(b) = std::fs::metadata(parent) else {
        return false;
    };
    if a.dev() != b.dev() {
        return true;
    }
    // Same device (a bind of a dir on the same fs): compare mount ids via statx.
    mnt_id(path) != mnt_id(parent)
}

fn mnt_id(path: &Path) -> u64 {
    let c = cstr(path);
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    let r = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_MNT_ID,
            &mut st,
        )
    };
    if r < 0 {
        return 0;
    }
    st.stx_mnt_id
}

pub fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(last("pipe"));
    }
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub fn socketpair() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } < 0
    {
        return Err(last("socketpair"));
    }
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub fn set_nonblock(fd: RawFd) {
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

pub fn write_all(fd: RawFd, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = std::io::Error::last_os_error().raw_os_error();
            if e == Some(libc::EINTR) {
                continue;
            }
            if e == Some(libc::EAGAIN) {
                let mut p = libc::pollfd {
                    fd,
                    events: libc::POLLOUT,
                    revents: 0,
                };
                if unsafe { libc::poll(&mut p, 1, 5000) } <= 0 {
                    return false;
                }
                continue;
            }
            return false;
        }
        buf = &buf[n as usize..];
    }
    true
}

/// read(2) retrying EINTR; Ok(0) at EOF.
pub fn read(fd: RawFd, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

pub fn kill(pid: i32, sig: i32) -> bool {
    pid > 0 && unsafe { libc::kill(pid, sig) } == 0
}

/// Signal number from "KILL", "SIGKILL" or "9".
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(Error::invalid(format!("invalid signal: {s}")));
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => {
            if let Some(rt) = name
                .strip_prefix("RTMIN+")
                .and_then(|x| x.parse::<i32>().ok())
            {
                return Ok(libc::SIGRTMIN() + rt);
            }
            return Err(Error::invalid(format!("invalid signal: {s}")));
        }
    };
    Ok(n)
}

/// openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS): `path` resolves as if `root` were "/", so
/// symlinks and `..` can never lead out of it.
pub fn openat_in_root(root: RawFd, path: &[u8], flags: i32) -> io::Result<OwnedFd> {
    let rel: &[u8] = match path.iter().position(|&b| b != b'/') {
        Some(i) => &path[i..],
        None => b".",
    };
    let p = CString::new(rel).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let root = unsafe { BorrowedFd::borrow_raw(root) };
    let flags = OFlags::from_bits_retain(flags as u32) | OFlags::CLOEXEC;
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    // EAGAIN: a concurrent rename elsewhere in the tree; bounded retries.
    for _ in 0..64 {
        match openat2(root, p.as_c_str(), flags, Mode::empty(), resolve) {
            Err(Errno::AGAIN | Errno::INTR) => continue,
            r => return Ok(r?),
        }
    }
    Err(io::Error::from_raw_os_error(libc::EAGAIN))
}

/// Opens `path` read-only inside `root` without ever leaving it (symlinks resolve against `root`).
pub fn open_in_root(root: &Path, path: &str) -> Result<File> {
    let r = File::open(root).map_err(|e| Error::io(format!("open {}", root.display()), e))?;
    openat_in_root(r.as_raw_fd(), path.as_bytes(), libc::O_RDONLY)
        .map(File::from)
        .map_err(|e| Error::io(format!("open {path} in {}", root.display()), e))
}

/// Brings up `lo` in the current network namespace.
pub fn loopback_up() -> Result<()> {
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return Err(last("socket"));
    }
    let s = unsafe { OwnedFd::from_raw_fd(s) };
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in b"lo".iter().enumerate() {
        ifr.ifr_name[i] = *b as libc::c_char;
    }
    if unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) } < 0 {
        return Err(last("get lo flags"));
    }
    unsafe { ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    if unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) } < 0 {
        return Err(last("set lo up"));
    }
    Ok(())
}

pub fn unshare(flags: i32) -> Result<()> {
    if unsafe { libc::unshare(flags) } < 0 {
        return Err(last("unshare"));
    }
    Ok(())
}

/// Writes `data` to `path` through a temp file and rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, data)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| Error::io(format!("write {}", path.display()), e))
}

extern "C" {
    static environ: *const *const libc::c_char;
}

/// posix_spawn (a vfork: nothing of the caller's memory is copied, which a fork of the API
/// server's threads and heap was) of `exe` in a new session, stdio on /dev/null, with our
/// environment and the descriptors in `keep` inherited (close-on-exec everywhere else, so a
/// concurrent spawn in another thread never gets them).
pub fn spawn_session(exe: &CStr, args: &[CString], keep: &[RawFd]) -> Result<libc::pid_t> {
    let mut argv: Vec<*mut libc::c_char> = args.iter().map(|a| a.as_ptr().cast_mut()).collect();
    argv.push(std::ptr::null_mut());
    let fail =
        |what: &str, rc: i32| Error::io(what.to_string(), std::io::Error::from_raw_os_error(rc));
    // SAFETY: attr and actions are initialised before use and destroyed on every path; the
    // strings outlive the call.
    unsafe {
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        libc::posix_spawnattr_init(&mut attr);
        libc::posix_spawn_file_actions_init(&mut actions);
        let mut rc = libc::posix_spawnattr_setflags(&mut attr, libc::POSIX_SPAWN_SETSID as _);
        if rc == 0 {
            rc = libc::posix_spawn_file_actions_addopen(
                &mut actions,
                0,
                c"/dev/null".as_ptr(),
                libc::O_RDWR,
                0,
            );
        }
        for fd in [1, 2] {
            if rc == 0 {
                rc = libc::posix_spawn_file_actions_adddup2(&mut actions, 0, fd);
            }
        }
        // dup2 onto itself clears close-on-exec in the child only (glibc 2.29, POSIX 2024).
        for fd in keep {
            if rc == 0 {
                rc = libc::posix_spawn_file_actions_adddup2(&mut actions, *fd, *fd);
            }
        }
        let mut pid = 0;
        if rc == 0 {
            rc = libc::posix_spawn(
                &mut pid,
                exe.as_ptr(),
                &actions,
                &attr,
                argv.as_ptr(),
                environ.cast(),
            );
            if rc != 0 {
                rc = rc.max(1);
            }
        }
        libc::posix_spawn_file_actions_destroy(&mut actions);
        libc::posix_spawnattr_destroy(&mut attr);
        if rc != 0 {
            return Err(fail(&format!("spawn {}", exe.to_string_lossy()), rc));
        }
        Ok(pid)
    }
}

/// A unix socket path that fits sun_path however deep `path` is: through an O_PATH fd of its
/// directory, "/proc/self/fd/N/name". Keep the fd alive while the path is used.
pub fn short_socket_path(path: &Path) -> Result<(OwnedFd, std::path::PathBuf)> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let c = cstr(dir);
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(last(format!("open {}", dir.display())));
    }
    let name = path.file_name().unwrap_or_default();
    let p = Path::new(&format!("/proc/self/fd/{fd}")).join(name);
    Ok((unsafe { OwnedFd::from_raw_fd(fd) }, p))
}

/// Gives back what a monitor no longer needs once its container runs: heap freed after the
/// start (malloc_trim), the faulted pages of its read-only file mappings (code and constants,
/// re-read from the page cache if ever touched again) and the stack below what it uses now
/// (the start ran deeper; below the stack pointer nothing is live). RELRO pages (r--p right
/// before the file's rw-p mapping) hold relocations and are kept. Its steady state is a poll
/// loop over a few fds, so its resident set stays near that of the libc it links.
pub fn trim_memory() {
    // Left below our frame for the callee's own (the syscall wrappers, poll's caller).
    const STACK_MARGIN: usize = 16 * 1024;
    let here = 0u8;
    let sp = std::hint::black_box(&here) as *const u8 as usize;
    extern "C" {
        fn malloc_trim(pad: libc::size_t) -> libc::c_int;
    }
    unsafe { malloc_trim(0) };
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    let rows: Vec<(usize, usize, &str, &str)> = maps
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (a, b) = f.first()?.split_once('-')?;
            let path = f.get(5).copied().unwrap_or("");
            Some((
                usize::from_str_radix(a, 16).ok()?,
                usize::from_str_radix(b, 16).ok()?,
                *f.get(1)?,
                path,
            ))
        })
        .collect();
    for (i, &(a, b, perms, path)) in rows.iter().enumerate() {
        if path == "[stack]" && (a..b).contains(&sp) {
            let end = (sp & !4095).saturating_sub(STACK_MARGIN);
            if end > a {
                unsafe { libc::madvise(a as *mut libc::c_void, end - a, libc::MADV_DONTNEED) };
            }
            continue;
        }
        if !path.starts_with('/') || (perms != "r-xp" && perms != "r--p") {
            continue;
        }
        let relro = perms == "r--p"
            && rows
                .get(i + 1)
                .is_some_and(|n| n.0 == b && n.2 == "rw-p" && n.3 == path);
        if relro {
            continue;
        }
        unsafe { libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_DONTNEED) };
    }
}

/// Bytes below `dir` as docker's directory.Size counts them (every entry but directories, each
/// inode once): SizeRw and the sizes `system df` shows. An unreadable entry counts as nothing.
pub fn tree_size(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() {
                stack.push(e.path());
            } else if seen.insert((md.dev(), md.ino())) {
                total += md.len();
            }
        }
    }
    total
}
