//! The container's terminal: a pty made inside the container's devpts, and the proxy used by a
//! foreground `run`/`exec` without a console socket.

use crate::error::{Error, Result};
use crate::sys;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const TIOCGPTPEER: libc::c_ulong = 0x5441;

/// Opens /dev/ptmx (-> pts/ptmx of the container's devpts) and its peer.
pub fn open_pty(size: Option<(u16, u16)>) -> Result<(OwnedFd, OwnedFd)> {
    let master = sys::open(c"/dev/ptmx", libc::O_RDWR | libc::O_NOCTTY, 0)
        .map_err(|e| Error::sys("open /dev/ptmx", e))?;
    let unlock: libc::c_int = 0;
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } < 0 {
        return Err(Error::last("unlock pty"));
    }
    let slave = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        return Err(Error::last("open pty peer"));
    }
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    if let Some((h, w)) = size {
        set_size(master.as_raw_fd(), h, w);
    }
    Ok((master, slave))
}

pub fn pty_number(master: RawFd) -> Result<u32> {
    let mut n: libc::c_uint = 0;
    if unsafe { libc::ioctl(master, libc::TIOCGPTN, &mut n) } < 0 {
        return Err(Error::last("get pty number"));
    }
    Ok(n)
}

pub fn set_size(fd: RawFd, rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
}

pub fn copy_size(from: RawFd, to: RawFd) {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // A pseudo terminal nobody sized reports 0x0: keep consoleSize then.
    if unsafe { libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) } == 0
        && ws.ws_row > 0
        && ws.ws_col > 0
    {
        unsafe { libc::ioctl(to, libc::TIOCSWINSZ, &ws) };
    }
}

/// New session, the pty peer as controlling terminal and stdio.
pub fn make_controlling(slave: &OwnedFd) -> Result<()> {
    unsafe { libc::setsid() };
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(Error::last("set controlling terminal"));
    }
    for fd in 0..3 {
        sys::dup2(slave.as_raw_fd(), fd).map_err(|e| Error::sys("dup pty to stdio", e))?;
    }
    Ok(())
}

/// Puts stdin in raw mode while alive (only when it is a terminal).
pub struct RawMode {
    saved: Option<libc::termios>,
}

impl RawMode {
    pub fn enter() -> RawMode {
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::isatty(0) } != 1 || unsafe { libc::tcgetattr(0, &mut t) } < 0 {
            return RawMode { saved: None };
        }
        let saved = t;
        unsafe {
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(0, libc::TCSANOW, &t);
        }
        RawMode { saved: Some(saved) }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = self.saved {
            unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
        }
    }
}

/// Spots a detach sequence in what we read from a terminal (moby/term's EscapeProxy): bytes
/// that may start it are held back, and passed on when it turns out they do not.
pub struct Escape<'a> {
    keys: &'a [u8],
    matched: usize,
}

impl<'a> Escape<'a> {
    /// `keys` must not be empty.
    pub fn new(keys: &'a [u8]) -> Escape<'a> {
        Escape { keys, matched: 0 }
    }

    /// What to forward from `data`, and whether the sequence is now complete.
    pub fn feed(&mut self, data: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(data.len());
        for &b in data {
            if b != self.keys[self.matched] && self.matched > 0 {
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
            }
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return (out, true);
                }
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

/// After a detach: a child of ours, in its own session, keeps the pty master open and drops
/// what the process prints (docker drops a detached exec's output too) until its side closes,
/// so the process neither gets SIGHUP nor blocks on a full terminal.
pub fn hold_master(master: &OwnedFd) {
    let pid = unsafe { libc::fork() };
    if pid != 0 {
        return;
    }
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::setsid();
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        let m = master.as_raw_fd();
        let flags = libc::fcntl(m, libc::F_GETFL);
        libc::fcntl(m, libc::F_SETFL, flags & !libc::O_NONBLOCK);
        let mut buf = [0u8; 4096];
        loop {
            let n = libc::read(m, buf.as_mut_ptr().cast(), buf.len());
            if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            if n <= 0 {
                break;
            }
        }
        libc::_exit(0);
    }
}

/// Copies what is readable on `from` to `to`; false on EOF/error of `from`.
pub fn pump(from: RawFd, to: RawFd) -> bool {
    let mut buf = [0u8; 8192];
    let n = unsafe { libc::read(from, buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR);
    }
    sys::write_all_fd(to, &buf[..n as usize]).is_ok()
}
