//! Name resolution on user-defined networks, the way aardvark-dns does it for podman: one small
//! responder per network (`berth-monitor __dns ROOT NETWORK_ID FD`), listening on the network's
//! gateway address, port 53, with a socket the engine bound before the first container of the
//! network starts (so no query can come too early). It answers A and AAAA queries for the names
//! in `<root>/network/<id>/hosts` (re-read when it changes: containers started later
//! resolve at once), and forwards every other query to the host's resolvers. It exits when the
//! hosts file is gone (the network has no running container left).
//!
//! It is synchronous and single-threaded apart from one short thread per forwarded query:
//! hickory-proto does the wire format, and no async runtime starts.

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{rdata::A, rdata::AAAA, RData, Record, RecordType};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{FromRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub const ARG: &str = "__dns";

struct Names {
    path: PathBuf,
    /// Inode and mtime of the last read: berth replaces the file (rename), so a new inode means
    /// new names even within one mtime tick.
    mtime: Option<(u64, SystemTime)>,
    map: HashMap<String, Vec<IpAddr>>,
    search: Vec<String>,
}

impl Names {
    /// Re-reads the hosts file if it changed; false once it is gone.
    fn refresh(&mut self) -> bool {
        let Ok(meta) = std::fs::metadata(&self.path) else {
            return false;
        };
        let m = meta
            .modified()
            .ok()
            .map(|t| (std::os::unix::fs::MetadataExt::ino(&meta), t));
        if m.is_some() && m == self.mtime {
            return true;
        }
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            return false;
        };
        self.mtime = m;
        self.map = parse_hosts(&text);
        true
    }

    fn lookup(&self, q: &str) -> Option<&Vec<IpAddr>> {
        let q = q.trim_end_matches('.').to_ascii_lowercase();
        if let Some(v) = self.map.get(&q) {
            return Some(v);
        }
        // "web.example.org" when example.org is a search domain of the host (and so of the
        // container): answered here rather than forwarded.
        self.search.iter().find_map(|s| {
            q.strip_suffix(s.as_str())
                .and_then(|p| p.strip_suffix('.'))
                .and_then(|p| self.map.get(p))
        })
    }
}

/// `IP NAME...` lines (IPv4 or IPv6).
pub fn parse_hosts(text: &str) -> HashMap<String, Vec<IpAddr>> {
    let mut map: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for l in text.lines() {
        let mut f = l.split_whitespace();
        let Some(ip) = f.next().and_then(|s| s.parse::<IpAddr>().ok()) else {
            continue;
        };
        for n in f {
            let v = map.entry(n.to_ascii_lowercase()).or_default();
            if !v.contains(&ip) {
                v.push(ip);
            }
        }
    }
    map
}

fn host_resolvers(own: Ipv4Addr) -> (Vec<SocketAddr>, Vec<String>) {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut ns = Vec::new();
    let mut search = Vec::new();
    for l in text.lines() {
        let mut f = l.split_whitespace();
        match f.next() {
            Some("nameserver") => {
                if let Some(ip) = f.next().and_then(|s| s.parse::<std::net::IpAddr>().ok()) {
                    if ip != std::net::IpAddr::V4(own) {
                        ns.push(SocketAddr::new(ip, 53));
                    }
                }
            }
            Some("search") | Some("domain") => {
                search.extend(f.map(|s| s.trim_end_matches('.').to_ascii_lowercase()))
            }
            _ => {}
        }
    }
    (ns, search)
}

/// The answer to `req` from `names`, or None when it must be forwarded.
fn answer(names: &Names, req: &Message) -> Option<Message> {
    let q = req.queries.first()?;
    if req.metadata.message_type != MessageType::Query || req.metadata.op_code != OpCode::Query {
        return None;
    }
    let ips = names.lookup(&q.name().to_ascii())?;
    let mut resp = Message::response(req.metadata.id, OpCode::Query);
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.metadata.authoritative = true;
    resp.queries.push(q.clone());
    // A known name gets its A or AAAA records; other types (and AAAA on an IPv4-only
    // network) an empty NOERROR, never a forward.
    for ip in ips {
        let rdata = match (q.query_type(), ip) {
            (RecordType::A, IpAddr::V4(a)) => RData::A(A(*a)),
            (RecordType::AAAA, IpAddr::V6(a)) => RData::AAAA(AAAA(*a)),
            _ => continue,
        };
        resp.add_answer(Record::from_rdata(q.name().clone(), 0, rdata));
    }
    resp.metadata.response_code = ResponseCode::NoError;
    Some(resp)
}

fn forward(
    sock: UdpSocket,
    client: SocketAddr,
    query: Vec<u8>,
    upstream: Vec<SocketAddr>,
    id: u16,
) {
    std::thread::spawn(move || {
        for up in upstream {
            let Ok(s) = UdpSocket::bind(if up.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }) else {
                continue;
            };
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            if s.send_to(&query, up).is_err() {
                continue;
            }
            let mut buf = [0u8; 4096];
            if let Ok((n, from)) = s.recv_from(&mut buf) {
                if from == up {
                    let _ = sock.send_to(&buf[..n], client);
                    return;
                }
            }
        }
        if let Ok(b) = Message::error_msg(id, OpCode::Query, ResponseCode::ServFail).to_vec() {
            let _ = sock.send_to(&b, client);
        }
    });
}

/// Entry point of `berth __dns ROOT NETWORK_ID SOCKET_FD PID_FD`; returns the exit status.
pub fn main(args: &[String]) -> i32 {
    let num = |i: usize| args.get(i).and_then(|s| s.parse::<RawFd>().ok());
    let (Some(root), Some(id), Some(fd), Some(pid_fd)) =
        (args.first(), args.get(1), num(2), num(3))
    else {
        return 2;
    };
    // Detach from whoever started us (they wait for this parent only); the daemon tells them
    // its pid on PID_FD.
    match unsafe { libc::fork() } {
        0 => {}
        n if n > 0 => return 0,
        _ => return 1,
    }
    unsafe {
        libc::setsid();
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
    }
    // Our own pid file (pid and start time), written before the starter hears from us, so a
    // starter killed right now still leaves a responder that the next detach can find.
    let me = std::process::id() as i32;
    let dir = Path::new(root).join("network").join(id);
    let start = crate::proc_start(me).unwrap_or(0);
    let _ = crate::write_atomic(&dir.join("dns.pid"), format!("{me} {start}\n").as_bytes());
    unsafe {
        let pid = format!("{me}\n");
        libc::write(pid_fd, pid.as_ptr().cast(), pid.len());
        libc::close(pid_fd);
    }
    let sock = unsafe { UdpSocket::from_raw_fd(fd) };
    let own = match sock.local_addr() {
        Ok(SocketAddr::V4(a)) => *a.ip(),
        _ => return 1,
    };
    let (upstream, search) = host_resolvers(own);
    let mut names = Names {
        path: Path::new(root).join("network").join(id).join("hosts"),
        mtime: None,
        map: HashMap::new(),
        search,
    };
    let _ = sock.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 4096];
    loop {
        if !names.refresh() {
            return 0;
        }
        let (n, client) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(_) => return 1,
        };
        // Re-read the names now: one stat per query, so a container started a moment ago
        // resolves even if the last refresh was before our receive began.
        if !names.refresh() {
            return 0;
        }
        let Ok(req) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        match answer(&names, &req) {
            Some(resp) => {
                if let Ok(b) = resp.to_vec() {
                    let _ = sock.send_to(&b, client);
                }
            }
            None => match sock.try_clone() {
                Ok(s) => forward(
                    s,
                    client,
                    buf[..n].to_vec(),
                    upstream.clone(),
                    req.metadata.id,
                ),
                Err(_) => continue,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;
    use std::str::FromStr;

    fn names(text: &str, search: &[&str]) -> Names {
        Names {
            path: PathBuf::new(),
            mtime: None,
            map: parse_hosts(text),
            search: search.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn query(name: &str, t: RecordType) -> Message {
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.queries
            .push(Query::query(Name::from_str(name).unwrap(), t));
        m
    }

    #[test]
    fn answers_known_names_and_forwards_the_rest() {
        let n = names(
            "10.0.0.2 web alias1 abc123\nfd00::2 web alias1 abc123\n10.0.0.3 db\n",
            &["example.org"],
        );
        let r = answer(&n, &query("Web.", RecordType::A)).unwrap();
        assert_eq!(r.metadata.id, 7);
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.answers[0].data, RData::A(A(Ipv4Addr::new(10, 0, 0, 2))));
        let r6 = answer(&n, &query("web.", RecordType::AAAA)).unwrap();
        assert_eq!(r6.answers.len(), 1);
        assert_eq!(
            r6.answers[0].data,
            RData::AAAA(AAAA("fd00::2".parse().unwrap()))
        );
        assert!(answer(&n, &query("alias1.example.org.", RecordType::A)).is_some());
        let aaaa = answer(&n, &query("db.", RecordType::AAAA)).unwrap();
        assert!(aaaa.answers.is_empty() && aaaa.metadata.response_code == ResponseCode::NoError);
        assert!(answer(&n, &query("debian.org.", RecordType::A)).is_none());
        // Round trip through the wire format.
        let back = Message::from_vec(&r.to_vec().unwrap()).unwrap();
        assert_eq!(back.answers.len(), 1);
    }
}
