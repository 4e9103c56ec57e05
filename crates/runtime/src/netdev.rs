//! linux.netDevices: host interfaces moved into the container's network namespace (and renamed)
//! with one rtnetlink RTM_NEWLINK each, as `ip link set DEV netns N name NEW` does.

use crate::error::{Error, ErrorKind, Result};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const RTM_NEWLINK: u16 = 16;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_ERROR: u16 = 2;
const IFLA_IFNAME: u16 = 3;
const IFLA_NET_NS_FD: u16 = 28;

/// Checks the names before anything is created: each host device exists, each name is valid.
pub fn check(
    devices: &HashMap<String, oci_spec::runtime::LinuxNetDevice>,
    new_netns: bool,
) -> Result<()> {
    if devices.is_empty() {
        return Ok(());
    }
    if !new_netns {
        return Err(Error::invalid(
            "linux.netDevices needs a new network namespace",
        ));
    }
    for (host, d) in devices {
        let name = d.name().as_deref().unwrap_or(host);
        for n in [host.as_str(), name] {
            if n.is_empty() || n.len() > 15 || n.contains(['/', ' ', ':']) || n == "." || n == ".."
            {
                return Err(Error::invalid(format!(
                    "linux.netDevices: invalid interface name {n:?}"
                )));
            }
        }
        if index(host).is_none() {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("linux.netDevices: no interface {host:?} on the host"),
            ));
        }
    }
    Ok(())
}

fn index(name: &str) -> Option<i32> {
    let c = std::ffi::CString::new(name).ok()?;
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i > 0).then_some(i as i32)
}

/// Moves every device into the network namespace of `pid`, under its new name.
pub fn move_all(
    devices: &HashMap<String, oci_spec::runtime::LinuxNetDevice>,
    pid: i32,
) -> Result<()> {
    if devices.is_empty() {
        return Ok(());
    }
    let ns_path = format!("/proc/{pid}/ns/net");
    let ns: OwnedFd = std::fs::File::open(&ns_path)
        .map_err(|e| Error::sys(format!("open {ns_path}"), e))?
        .into();
    let sock = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if sock < 0 {
        return Err(Error::last("netlink socket"));
    }
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    let mut names: Vec<_> = devices.iter().collect();
    names.sort_by(|a, b| a.0.cmp(b.0));
    for (seq, (host, d)) in names.into_iter().enumerate() {
        let name = d.name().as_deref().unwrap_or(host);
        let idx = index(host).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("linux.netDevices: no interface {host:?} on the host"),
            )
        })?;
        let msg = newlink(seq as u32 + 1, idx, ns.as_raw_fd(), name);
        request(sock.as_raw_fd(), &msg).map_err(|e| {
            Error::sys(
                format!("move interface {host} into the container as {name}"),
                e,
            )
        })?;
    }
    Ok(())
}

fn attr(buf: &mut Vec<u8>, typ: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&typ.to_ne_bytes());
    buf.extend_from_slice(data);
    while buf.len() % 4 != 0 {
        buf.push(0);
    }
}

/// nlmsghdr + ifinfomsg{index} + IFLA_NET_NS_FD + IFLA_IFNAME.
fn newlink(seq: u32, index: i32, ns_fd: i32, name: &str) -> Vec<u8> {
    let mut b = vec![0u8; 16];
    // struct ifinfomsg: family, pad, type, index, flags, change.
    b.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    b.extend_from_slice(&index.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes());
    attr(&mut b, IFLA_NET_NS_FD, &(ns_fd as u32).to_ne_bytes());
    let mut n = name.as_bytes().to_vec();
    n.push(0);
    attr(&mut b, IFLA_IFNAME, &n);
    let len = b.len() as u32;
    b[0..4].copy_from_slice(&len.to_ne_bytes());
    b[4..6].copy_from_slice(&RTM_NEWLINK.to_ne_bytes());
    b[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    b[8..12].copy_from_slice(&seq.to_ne_bytes());
    b
}

/// Sends one request and reads its ack (an NLMSG_ERROR with 0, or -errno).
fn request(sock: i32, msg: &[u8]) -> std::io::Result<()> {
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as u16;
    let r = unsafe {
        libc::sendto(
            sock,
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of_val(&addr) as u32,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut buf = [0u8; 4096];
    loop {
        let n = unsafe { libc::recv(sock, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        if (n as usize) < 20 {
            return Err(std::io::Error::other("short netlink reply"));
        }
        let typ = u16::from_ne_bytes([buf[4], buf[5]]);
        if typ == NLMSG_ERROR {
            let code = i32::from_ne_bytes(buf[16..20].try_into().unwrap());
            return if code == 0 {
                Ok(())
            } else {
                Err(std::io::Error::from_raw_os_error(-code))
            };
        }
    }
}
