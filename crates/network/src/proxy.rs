//! Published ports on IPv6 listeners NAT cannot serve: [::1] (IPv6 has no route_localnet, so
//! the kernel never routes a packet from ::1 out of a bridge, nor its reply back to ::1), and
//! every IPv6 listener of a container without an IPv6 address (no NAT from IPv6 to IPv4).
//! docker uses docker-proxy for both. One small process per container (`berth __portproxy
//! ROOT CONTAINER FD/PROTO/TARGET...`, a re-executed berth) relays TCP connections and UDP
//! datagrams to the container, on sockets berth bound when the container's network was
//! attached, before it runs (a port in use fails with a clear error).
//! It exits when the container's pinned namespace is gone, or when detach kills it.
//!
//! Blocking sockets and one thread per connection (or UDP client): no async runtime.

use crate::error::Result;
use std::collections::HashMap;
use std::io::ErrorKind as IoKind;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const ARG: &str = "__portproxy";

/// How long a UDP client's flow lives without traffic.
const UDP_IDLE: Duration = Duration::from_secs(60);

/// A bound [::1] socket and where its traffic goes.
pub struct Relay {
    pub sock: OwnedFd,
    pub proto: String,
    pub target: SocketAddr,
}

impl Relay {
    /// Binds `at` (an IPv6 address, IPv6 only: IPv4 is NAT's) for `proto`.
    pub fn bind(proto: &str, at: SocketAddr, target: SocketAddr) -> Result<Relay> {
        let sock = bind_v6only(proto, at).map_err(|e| crate::publish_error(at, proto, e))?;
        Ok(Relay {
            sock,
            proto: proto.to_string(),
            target,
        })
    }

    /// The argument that hands this relay to the proxy: `FD/PROTO/TARGET`.
    pub fn arg(&self) -> String {
        format!("{}/{}/{}", self.sock.as_raw_fd(), self.proto, self.target)
    }
}

fn bind_v6only(proto: &str, at: SocketAddr) -> std::io::Result<OwnedFd> {
    use rustix::net::{sockopt, AddressFamily, SocketFlags, SocketType};
    let udp = proto == "udp";
    let kind = if udp {
        SocketType::DGRAM
    } else {
        SocketType::STREAM
    };
    let fd = rustix::net::socket_with(AddressFamily::INET6, kind, SocketFlags::CLOEXEC, None)?;
    sockopt::set_ipv6_v6only(&fd, true)?;
    if !udp {
        // As std's TcpListener: a port left in TIME_WAIT by the last container can be reused.
        sockopt::set_socket_reuseaddr(&fd, true)?;
    }
    rustix::net::bind(&fd, &at)?;
    if !udp {
        rustix::net::listen(&fd, 128)?;
    }
    Ok(fd)
}

fn parse(arg: &str) -> Option<(RawFd, String, SocketAddr)> {
    let mut f = arg.splitn(3, '/');
    Some((
        f.next()?.parse().ok()?,
        f.next()?.to_string(),
        f.next()?.parse().ok()?,
    ))
}

enum Listener {
    Tcp(TcpListener),
    Udp(Arc<UdpSocket>, Flows),
}

/// Upstream socket of each UDP client.
type Flows = Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>>;

/// Entry point of `berth __portproxy ROOT CONTAINER RELAY...`; returns the exit status.
pub fn main(args: &[String]) -> i32 {
    let (Some(root), Some(id)) = (args.first(), args.get(1)) else {
        return 2;
    };
    let Some(relays) = args[2..]
        .iter()
        .map(|a| parse(a))
        .collect::<Option<Vec<_>>>()
    else {
        return 2;
    };
    // Detach from whoever started us: they wait for this parent, which records the daemon's
    // pid (and start time) first, so a detach right after attach always finds it.
    match unsafe { libc::fork() } {
        0 => {}
        n if n > 0 => {
            let start = crate::proc_start(n).unwrap_or(0);
            let file = pid_file(Path::new(root), id);
            return match crate::write_atomic(&file, format!("{n} {start}\n").as_bytes()) {
                Ok(()) => 0,
                Err(_) => {
                    unsafe { libc::kill(n, libc::SIGKILL) };
                    1
                }
            };
        }
        _ => return 1,
    }
    unsafe { libc::setsid() };
    let netns = Path::new(root).join("netns").join(id);
    let mut listeners = Vec::new();
    for (fd, proto, target) in relays {
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        let l = if proto == "udp" {
            Listener::Udp(
                Arc::new(unsafe { UdpSocket::from_raw_fd(fd) }),
                Arc::new(Mutex::new(HashMap::new())),
            )
        } else {
            let l = unsafe { TcpListener::from_raw_fd(fd) };
            if l.set_nonblocking(true).is_err() {
                return 1;
            }
            Listener::Tcp(l)
        };
        listeners.push((l, target));
    }
    let mut pfds: Vec<libc::pollfd> = listeners
        .iter()
        .map(|(l, _)| libc::pollfd {
            fd: match l {
                Listener::Tcp(t) => t.as_raw_fd(),
                Listener::Udp(u, _) => u.as_raw_fd(),
            },
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let mut buf = vec![0u8; 65536];
    // The pinned namespace goes with the container's network: then so do we.
    while netns.exists() {
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, 500) };
        if n <= 0 {
            continue;
        }
        for (p, (l, target)) in pfds.iter_mut().zip(&listeners) {
            if p.revents & libc::POLLIN == 0 {
                continue;
            }
            p.revents = 0;
            match l {
                Listener::Tcp(t) => {
                    if let Ok((c, _)) = t.accept() {
                        let target = *target;
                        std::thread::spawn(move || relay_tcp(c, target));
                    }
                }
                Listener::Udp(u, flows) => relay_udp(u, flows, *target, &mut buf),
            }
        }
    }
    0
}

fn relay_tcp(client: TcpStream, target: SocketAddr) {
    let _ = client.set_nonblocking(false);
    let Ok(up) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
        return;
    };
    let (Ok(mut c2), Ok(mut u2)) = (client.try_clone(), up.try_clone()) else {
        return;
    };
    let back = std::thread::spawn(move || {
        let _ = std::io::copy(&mut u2, &mut c2);
        let _ = c2.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut &client, &mut &up);
    let _ = up.shutdown(Shutdown::Write);
    let _ = back.join();
}

/// One datagram from a client: sent on the client's own upstream socket, whose replies a
/// thread returns to the client until the flow is idle.
fn relay_udp(sock: &Arc<UdpSocket>, flows: &Flows, target: SocketAddr, buf: &mut [u8]) {
    let Ok((n, client)) = sock.recv_from(buf) else {
        return;
    };
    let up = {
        let mut map = flows.lock().expect("flows lock");
        if let Some(u) = map.get(&client) {
            u.clone()
        } else {
            let any: SocketAddr = if target.is_ipv6() {
                "[::]:0".parse().expect("addr")
            } else {
                "0.0.0.0:0".parse().expect("addr")
            };
            let Ok(u) = UdpSocket::bind(any).and_then(|u| u.connect(target).map(|_| u)) else {
                return;
            };
            let _ = u.set_read_timeout(Some(UDP_IDLE));
            let u = Arc::new(u);
            map.insert(client, u.clone());
            let (u2, sock, flows) = (u.clone(), sock.clone(), flows.clone());
            std::thread::spawn(move || {
                let mut b = vec![0u8; 65536];
                loop {
                    match u2.recv(&mut b) {
                        Ok(n) => {
                            let _ = sock.send_to(&b[..n], client);
                        }
                        Err(e) if e.kind() == IoKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                flows.lock().expect("flows lock").remove(&client);
            });
            u
        }
    };
    let _ = up.send(&buf[..n]);
}

pub fn pid_file(root: &Path, container: &str) -> std::path::PathBuf {
    root.join("proxy").join(container)
}
