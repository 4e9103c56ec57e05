//! The attach protocol between the monitor and its clients, over a unix stream socket
//! (`<dir>/attach.sock`, or a socketpair handed to a new monitor so nothing is missed).
//!
//! The client first sends one hello byte (bit 0: it forwards stdin, bit 1: it wants the output,
//! bit 2: it only waits for the exit). Then both sides send frames: kind (u8), length (u32 LE),
//! payload. Kinds: 0 stdin, 1 stdout, 2 stderr, 3 exit (i32 LE code), 4 stdin closed,
//! 5 resize (rows u16 LE, cols u16 LE), 6 signal (i32 LE).

use crate::error::{Error, ErrorKind, Result};
use crate::sys;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const EXIT: u8 = 3;
pub const STDIN_EOF: u8 = 4;
pub const RESIZE: u8 = 5;
pub const SIGNAL: u8 = 6;

pub const HELLO_STDIN: u8 = 1;
pub const HELLO_OUTPUT: u8 = 2;
pub const HELLO_WAIT: u8 = 4;

pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + payload.len());
    v.push(kind);
    v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    v.extend_from_slice(payload);
    v
}

/// Splits complete frames off the front of `buf`.
pub fn take_frame(buf: &mut Vec<u8>) -> Option<(u8, Vec<u8>)> {
    if buf.len() < 5 {
        return None;
    }
    let len = u32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if buf.len() < 5 + len {
        return None;
    }
    let kind = buf[0];
    let payload = buf[5..5 + len].to_vec();
    buf.drain(..5 + len);
    Some((kind, payload))
}

pub fn connect(path: &Path) -> Result<OwnedFd> {
    let (_dir, short) = sys::short_socket_path(path)?;
    let s = std::os::unix::net::UnixStream::connect(&short).map_err(|e| {
        Error::io(
            format!("connect to the container monitor at {}", path.display()),
            e,
        )
    })?;
    Ok(OwnedFd::from(s))
}

/// One byte to the monitor without SIGPIPE: a monitor that exits between our connect and this
/// send must give an error, not kill the CLI (whose SIGPIPE is the default, for `| head`).
fn send_byte(fd: &OwnedFd, b: u8) -> bool {
    loop {
        let n = unsafe {
            libc::send(
                fd.as_raw_fd(),
                (&b as *const u8).cast(),
                1,
                libc::MSG_NOSIGNAL,
            )
        };
        if n == 1 {
            return true;
        }
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return false;
    }
}

pub fn hello(fd: &OwnedFd, stdin: bool) -> Result<()> {
    let b = HELLO_OUTPUT | if stdin { HELLO_STDIN } else { 0 };
    if !send_byte(fd, b) {
        return Err(Error::internal("attach: the container monitor hung up"));
    }
    Ok(())
}

pub fn hello_wait(fd: &OwnedFd) -> Result<()> {
    if !send_byte(fd, HELLO_WAIT) {
        return Err(Error::internal("attach: the container monitor hung up"));
    }
    Ok(())
}

/// Reads frames until the exit frame; None if the monitor went away first.
pub fn wait_exit(fd: &OwnedFd) -> Option<i32> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        while let Some((kind, p)) = take_frame(&mut buf) {
            if kind == EXIT && p.len() >= 4 {
                return Some(i32::from_le_bytes([p[0], p[1], p[2], p[3]]));
            }
        }
        match sys::read(fd.as_raw_fd(), &mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A connection to a container's monitor.
pub struct Attach {
    fd: OwnedFd,
    tty: bool,
    stdin: bool,
    detach_keys: Vec<u8>,
}

/// How [`Attach::pump_stdio`] (or [`crate::Engine::exec`]) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The container exited with this code.
    Exited(i32),
    /// The user typed the detach keys: the container (or exec'd process) goes on without us.
    Detached,
}

/// docker's default detach keys: ctrl-p ctrl-q.
pub const DEFAULT_DETACH_KEYS: &[u8] = &[0x10, 0x11];

struct RawMode(Option<libc::termios>);

impl RawMode {
    fn enter(fd: RawFd) -> RawMode {
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut t) != 0 {
                return RawMode(None);
            }
            let old = t;
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(fd, libc::TCSANOW, &t);
            RawMode(Some(old))
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            unsafe { libc::tcsetattr(0, libc::TCSANOW, t) };
        }
    }
}

fn term_size(fd: RawFd) -> Option<(u16, u16)> {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } != 0 || ws.ws_row == 0 {
        return None;
    }
    Some((ws.ws_row, ws.ws_col))
}

const PROXIED: &[i32] = &[
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

impl Attach {
    pub fn new(fd: OwnedFd, tty: bool, stdin: bool) -> Attach {
        Attach {
            fd,
            tty,
            stdin,
            detach_keys: DEFAULT_DETACH_KEYS.to_vec(),
        }
    }

    /// Replaces the detach sequence (see [`crate::flags::parse_detach_keys`]).
    pub fn with_detach_keys(mut self, keys: Vec<u8>) -> Attach {
        if !keys.is_empty() {
            self.detach_keys = keys;
        }
        self
    }

    /// Whether the container has a tty.
    pub fn tty(&self) -> bool {
        self.tty
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The monitor connection itself, for a caller that pumps frames on its own (the API).
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    fn send(&self, kind: u8, payload: &[u8]) -> bool {
        sys::write_all(self.fd.as_raw_fd(), &frame(kind, payload))
    }

    /// Copies our stdin to the container and its output to our stdout/stderr until it exits
    /// (its exit code) or, with a tty and our stdin attached, until the detach keys are typed
    /// (as docker, only then). With a tty our terminal goes raw and follows resizes; with
    /// `proxy_signals` the signals we get are passed on to the container (docker's sig-proxy).
    pub fn pump_stdio(self, proxy_signals: bool) -> Result<Ended> {
        let mut escape =
            (self.tty && self.stdin).then(|| berth_runtime::Escape::new(&self.detach_keys));
        let is_tty = unsafe { libc::isatty(0) } == 1;
        let _raw = (self.tty && self.stdin && is_tty).then(|| RawMode::enter(0));
        let sigfd = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGWINCH);
            if proxy_signals && !self.tty {
                for &s in PROXIED {
                    libc::sigaddset(&mut set, s);
                }
            }
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            OwnedFd::from_raw_fd(libc::signalfd(
                -1,
                &set,
                libc::SFD_CLOEXEC | libc::SFD_NONBLOCK,
            ))
        };
        let send_size = |a: &Attach| {
            if a.tty {
                if let Some((r, c)) = term_size(0).or_else(|| term_size(1)) {
                    let mut p = r.to_le_bytes().to_vec();
                    p.extend_from_slice(&c.to_le_bytes());
                    a.send(RESIZE, &p);
                }
            }
        };
        send_size(&self);
        let mut stdin_open = self.stdin;
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 32 * 1024];
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: self.fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: if stdin_open { 0 } else { -1 },
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: sigfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            let r = unsafe { libc::poll(fds.as_mut_ptr(), 3, -1) };
            if r < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(Error::io("poll", std::io::Error::last_os_error()));
            }
            if fds[0].revents != 0 {
                match sys::read(self.fd.as_raw_fd(), &mut chunk) {
                    Ok(0) | Err(_) => {
                        return Err(Error::new(
                            ErrorKind::Internal,
                            "lost the connection to the container monitor",
                        ))
                    }
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                while let Some((kind, p)) = take_frame(&mut buf) {
                    match kind {
                        STDOUT => {
                            sys::write_all(1, &p);
                        }
                        STDERR => {
                            sys::write_all(2, &p);
                        }
                        EXIT if p.len() >= 4 => {
                            return Ok(Ended::Exited(i32::from_le_bytes([p[0], p[1], p[2], p[3]])))
                        }
                        _ => {}
                    }
                }
            }
            if fds[1].revents != 0 {
                match sys::read(0, &mut chunk) {
                    Ok(0) | Err(_) => {
                        stdin_open = false;
                        self.send(STDIN_EOF, &[]);
                    }
                    Ok(n) => match escape.as_mut() {
                        Some(esc) => {
                            let (out, detached) = esc.feed(&chunk[..n]);
                            if !out.is_empty() {
                                self.send(STDIN, &out);
                            }
                            if detached {
                                return Ok(Ended::Detached);
                            }
                        }
                        None => {
                            self.send(STDIN, &chunk[..n]);
                        }
                    },
                }
            }
            if fds[2].revents != 0 {
                let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
                let n = unsafe {
                    libc::read(
                        sigfd.as_raw_fd(),
                        (&mut info as *mut libc::signalfd_siginfo).cast(),
                        std::mem::size_of_val(&info),
                    )
                };
                if n > 0 {
                    let sig = info.ssi_signo as i32;
                    if sig == libc::SIGWINCH {
                        send_size(&self);
                    } else {
                        self.send(SIGNAL, &sig.to_le_bytes());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut b = frame(STDOUT, b"hello");
        b.extend(frame(EXIT, &3i32.to_le_bytes()));
        b.extend_from_slice(&[1, 9]);
        assert_eq!(take_frame(&mut b), Some((STDOUT, b"hello".to_vec())));
        assert_eq!(
            take_frame(&mut b),
            Some((EXIT, 3i32.to_le_bytes().to_vec()))
        );
        assert_eq!(take_frame(&mut b), None);
        assert_eq!(b, vec![1, 9]);
    }

    #[test]
    fn escape_sequence_is_held_back_and_released() {
        let keys = [0x10, 0x11];
        let mut e = berth_runtime::Escape::new(&keys);
        assert_eq!(e.feed(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(
            e.feed(b"c"),
            (b"\x10c".to_vec(), false),
            "a lone ctrl-p goes through"
        );
        assert_eq!(e.feed(b"x\x10\x10"), (b"x\x10".to_vec(), false));
        assert_eq!(e.feed(b"\x11rest"), (vec![], true));
        let keys = [1, b'x'];
        let mut e = berth_runtime::Escape::new(&keys);
        assert_eq!(e.feed(b"q\x01x"), (b"q".to_vec(), true));
    }
}
