//! The parent/child protocol: typed messages over a SOCK_SEQPACKET socketpair, fds passed with
//! SCM_RIGHTS, and the child's errors sent back as messages so the parent can report them.

use crate::error::{Error, ErrorKind, Result};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

#[derive(Debug)]
pub enum Msg {
    /// child -> parent: write my uid/gid maps.
    NeedMaps,
    /// child -> parent: the init's pid (host pid namespace) when it is not the cloned child.
    Pid(i32),
    /// child -> parent: put the init in its cgroup.
    NeedCgroup,
    /// child -> parent: run prestart and createRuntime hooks.
    NeedHooks,
    /// child -> parent: here is the pty master (fd attached).
    Console,
    /// child -> parent: the seccomp notify fd for the listenerPath agent (fd attached).
    SeccompFd,
    /// child -> parent: set up, waiting on the exec fifo (or, for exec, about to execve).
    Ready,
    /// child -> parent: setup failed.
    Fail(ErrorKind, String),
    /// parent -> child: go on; carries the init's host pid where useful.
    Go(i32),
}

pub struct Channel {
    fd: OwnedFd,
}

pub fn pair() -> Result<(Channel, Channel)> {
    let mut fds = [0; 2];
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(Error::last("socketpair"));
    }
    unsafe {
        Ok((
            Channel {
                fd: OwnedFd::from_raw_fd(fds[0]),
            },
            Channel {
                fd: OwnedFd::from_raw_fd(fds[1]),
            },
        ))
    }
}

impl Channel {
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn send(&self, msg: &Msg) -> Result<()> {
        self.send_with_fd(msg, None)
    }

    pub fn send_with_fd(&self, msg: &Msg, fd: Option<RawFd>) -> Result<()> {
        let mut buf = [0u8; 1024];
        let (tag, kind, num, text): (u8, u8, i32, &str) = match msg {
            Msg::NeedMaps => (1, 0, 0, ""),
            Msg::Pid(p) => (2, 0, *p, ""),
            Msg::NeedCgroup => (3, 0, 0, ""),
            Msg::NeedHooks => (4, 0, 0, ""),
            Msg::Console => (5, 0, 0, ""),
            Msg::Ready => (6, 0, 0, ""),
            Msg::Fail(k, s) => (7, k.to_u8(), 0, s.as_str()),
            Msg::Go(p) => (8, 0, *p, ""),
            Msg::SeccompFd => (9, 0, 0, ""),
        };
        buf[0] = tag;
        buf[1] = kind;
        buf[2..6].copy_from_slice(&num.to_le_bytes());
        let t = text.as_bytes();
        let n = t.len().min(buf.len() - 6);
        buf[6..6 + n].copy_from_slice(&t[..n]);
        send_raw(self.raw(), &buf[..6 + n], fd).map_err(|e| Error::sys("sync channel: send", e))
    }

    /// Next message (with an attached fd, if any); None on EOF (the peer is gone).
    pub fn recv(&self) -> Result<Option<(Msg, Option<OwnedFd>)>> {
        let mut buf = [0u8; 1024];
        let (n, fd) =
            recv_raw(self.raw(), &mut buf).map_err(|e| Error::sys("sync channel: receive", e))?;
        if n == 0 {
            return Ok(None);
        }
        if n < 6 {
            return Err(Error::internal("sync channel: short message"));
        }
        let num = i32::from_le_bytes(buf[2..6].try_into().unwrap());
        let msg = match buf[0] {
            1 => Msg::NeedMaps,
            2 => Msg::Pid(num),
            3 => Msg::NeedCgroup,
            4 => Msg::NeedHooks,
            5 => Msg::Console,
            6 => Msg::Ready,
            7 => Msg::Fail(
                ErrorKind::from_u8(buf[1]),
                String::from_utf8_lossy(&buf[6..n]).into_owned(),
            ),
            8 => Msg::Go(num),
            9 => Msg::SeccompFd,
            t => {
                return Err(Error::internal(format!(
                    "sync channel: unknown message {t}"
                )))
            }
        };
        Ok(Some((msg, fd)))
    }

    /// Waits for `Go` from the parent; anything else (or EOF) is an error.
    pub fn wait_go(&self) -> Result<i32> {
        match self.recv()? {
            Some((Msg::Go(p), _)) => Ok(p),
            Some((m, _)) => Err(Error::internal(format!("sync channel: unexpected {m:?}"))),
            None => Err(Error::internal("sync channel: parent went away")),
        }
    }

    /// The failure the other side already reported, if one is queued: when a reply to it fails
    /// (it has exited), its own error says what went wrong, "broken pipe" does not.
    pub fn pending_failure(&self) -> Option<Error> {
        let ready = crate::sys::poll_one(self.raw(), libc::POLLIN, 0).ok()?;
        if ready & libc::POLLIN == 0 {
            return None;
        }
        loop {
            match self.recv() {
                Ok(Some((Msg::Fail(kind, msg), _))) => return Some(Error::new(kind, msg)),
                Ok(Some(_)) => continue,
                _ => return None,
            }
        }
    }

    /// Sends the request and waits for the parent's `Go`.
    pub fn ask(&self, msg: &Msg) -> Result<i32> {
        self.send(msg)?;
        self.wait_go()
    }
}

fn send_raw(sock: RawFd, data: &[u8], fd: Option<RawFd>) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut _,
        iov_len: data.len(),
    };
    let mut cmsg_buf = [0u64; 4];
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    if let Some(fd) = fd {
        unsafe {
            hdr.msg_control = cmsg_buf.as_mut_ptr().cast();
            hdr.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
            let c = libc::CMSG_FIRSTHDR(&hdr);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd);
        }
    }
    loop {
        let r = unsafe { libc::sendmsg(sock, &hdr, libc::MSG_NOSIGNAL) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        return Ok(());
    }
}

fn recv_raw(sock: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cmsg_buf = [0u64; 4];
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = cmsg_buf.as_mut_ptr().cast();
    hdr.msg_controllen = std::mem::size_of_val(&cmsg_buf);
    let n = loop {
        let r = unsafe { libc::recvmsg(sock, &mut hdr, libc::MSG_CMSG_CLOEXEC) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        break r as usize;
    };
    let mut fd = None;
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&hdr);
        if !c.is_null() && (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS
        {
            let raw: RawFd = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<RawFd>());
            fd = Some(OwnedFd::from_raw_fd(raw));
        }
    }
    Ok((n, fd))
}

/// The seccomp notify fd to the agent at linux.seccomp.listenerPath, with the runtime spec's
/// containerProcessState as the message and the fd as SCM_RIGHTS.
pub fn send_seccomp_fd(path: &std::path::Path, fd: RawFd, state: &[u8]) -> Result<()> {
    let sock = std::os::unix::net::UnixStream::connect(path)
        .map_err(|e| Error::sys(format!("connect seccomp listener {}", path.display()), e))?;
    send_raw(sock.as_raw_fd(), state, Some(fd))
        .map_err(|e| Error::sys(format!("send seccomp fd to {}", path.display()), e))
}

/// Sends `fd` over a connected unix socket at `path` (runc's console-socket protocol).
pub fn send_fd_to_socket(path: &std::path::Path, fd: RawFd, name: &str) -> Result<()> {
    let sock = std::os::unix::net::UnixStream::connect(path)
        .map_err(|e| Error::sys(format!("connect console socket {}", path.display()), e))?;
    send_raw(sock.as_raw_fd(), name.as_bytes(), Some(fd))
        .map_err(|e| Error::sys(format!("send pty master to {}", path.display()), e))
}
