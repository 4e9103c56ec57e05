//! Networks end to end through the `berth` binary: name resolution on user networks, published
//! ports (TCP and UDP, loopback and a host address), none and container: modes, isolation,
//! many containers at once, kill -9 in the middle, and that nothing is left afterwards.
//!
//! Every test has its own root, so its own networks: subnets are chosen by berth among those
//! no route and no other berth root uses, bridge names come from random network ids, and the
//! nftables table is named after the root. Traffic goes only to loopback, the host's own
//! address, or containers the test made; every wait is bounded.

mod common;

use berth_testkit::{remove_cgroup_everywhere, require_busybox, Scratch};
use common::{berth, ok};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Env {
    _scratch: Scratch,
    root: PathBuf,
}

impl Env {
    fn new(name: &str) -> Env {
        require_busybox();
        let scratch = Scratch::new(name);
        let root = scratch.join("root");
        common::load_fixture(&root, "busybox.oci-archive.tar");
        Env {
            _scratch: scratch,
            root,
        }
    }
    fn ok(&self, args: &[&str]) -> String {
        ok(&self.root, args)
    }
    fn run(&self, args: &[&str]) -> common::Run {
        berth(&self.root, args)
    }
    fn inspect(&self, name: &str) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(&self.ok(&["inspect", name])).unwrap();
        v[0].clone()
    }
    fn ip(&self, name: &str, network: &str) -> String {
        self.inspect(name)["NetworkSettings"]["Networks"][network]["IPAddress"]
            .as_str()
            .unwrap()
            .to_string()
    }
    fn ids(&self) -> Vec<String> {
        common::ids(&self.root)
    }
    fn bridges(&self) -> Vec<String> {
        let out = self.run(&["network", "ls", "-q", "--no-trunc"]).stdout;
        out.lines()
            .filter_map(|id| {
                let v: serde_json::Value =
                    serde_json::from_str(&self.run(&["network", "inspect", id]).stdout).ok()?;
                v[0]["Options"]["com.docker.network.bridge.name"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect()
    }
    /// berth's nftables table for this root (see berth-network's `Networks::open`).
    /// A new container on `network` asking SERVER at `ip`:8080 until it answers (at most ~30
    /// tries): "got:reply:x" once reached.
    fn reach(&self, network: &str, ip: &str) -> String {
        let probe = format!("i=0; until r=$(echo x | nc -w 2 {ip} 8080) && [ -n \"$r\" ]; do i=$((i+1)); [ $i -gt 30 ] && break; sleep 0.1; done; echo \"got:$r\"");
        self.ok(&[
            "run",
            "--rm",
            "--network",
            network,
            "busybox",
            "sh",
            "-c",
            &probe,
        ])
    }
    fn table(&self) -> String {
        berth_testkit::network_table(&self.root)
    }
    fn dns_processes(&self) -> Vec<i32> {
        let root = std::fs::canonicalize(&self.root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        procs_with(&["__dns", &root])
    }
    fn proxy_processes(&self) -> Vec<i32> {
        let root = std::fs::canonicalize(&self.root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        procs_with(&["__portproxy", &root])
    }
    /// Everything of berth's for this root is gone: veths, bridges, namespaces, rules, DNS.
    /// Host veths and empty bridges go in the background (a reaper, after a grace period):
    /// the wait is bounded.
    fn assert_nothing_left(&self, bridges: &[String], ids: &[String]) {
        let deadline = Instant::now() + Duration::from_secs(8);
        loop {
            let mut left = Vec::new();
            let links = links();
            for b in bridges {
                if links.contains(b) {
                    left.push(format!("bridge {b}"));
                }
            }
            for id in ids {
                let veth = format!("vb{}", &id[..11]);
                left.extend(
                    links
                        .iter()
                        .filter(|l| l.starts_with(&veth))
                        .map(|l| format!("veth {l}")),
                );
            }
            let tables = String::from_utf8_lossy(
                &std::process::Command::new("nft")
                    .args(["list", "tables"])
                    .output()
                    .unwrap()
                    .stdout,
            )
            .into_owned();
            if tables.contains(&self.table()) {
                left.push(format!("nft table {}", self.table()));
            }
            if !self.dns_processes().is_empty() {
                left.push(format!("DNS responders {:?}", self.dns_processes()));
            }
            if !self.proxy_processes().is_empty() {
                left.push(format!("port proxies {:?}", self.proxy_processes()));
            }
            let ns: Vec<_> = std::fs::read_dir(self.root.join("netns"))
                .map(|d| d.flatten().map(|e| e.file_name()).collect())
                .unwrap_or_default();
            if !ns.is_empty() {
                left.push(format!("pinned namespaces {ns:?}"));
            }
            if left.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "left behind: {left:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let bridges = self.bridges();
        let ids = self.ids();
        for id in &ids {
            let _ = berth(&self.root, &["rm", "-f", id]);
        }
        let _ = berth(&self.root, &["network", "prune", "-f"]);
        berth_testkit::end_network_reapers(&self.root);
        // Whatever a failed test left: our bridges, our tables, our DNS responders and proxies.
        for pid in self
            .dns_processes()
            .into_iter()
            .chain(self.proxy_processes())
        {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        for b in bridges {
            let _ = std::process::Command::new("ip")
                .args(["link", "del", &b])
                .output();
        }
        let t = self.table();
        for family in ["ip", "ip6"] {
            let _ = std::process::Command::new("nft")
                .args(["delete", "table", family, &t])
                .output();
        }
        for id in &ids {
            remove_cgroup_everywhere(&format!("berth/{id}"));
        }
    }
}

fn links() -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["-o", "link"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap().to_string())
        .collect()
}

/// One try at SERVER on ip:8080 from inside a container: its reply, then "rc:" and nc's status.
fn ask_once(ip: &str) -> String {
    format!("echo x | nc -w 2 {ip} 8080; echo \"rc:$?\"")
}

fn procs_with(words: &[&str]) -> Vec<i32> {
    berth_testkit::processes_with(words)
        .into_iter()
        .map(|(pid, _)| pid)
        .collect()
}

/// A free TCP (and UDP) port on the host: bound to 0, then released.
fn free_port() -> u16 {
    loop {
        let t = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let p = t.local_addr().unwrap().port();
        if UdpSocket::bind(("0.0.0.0", p)).is_ok() {
            return p;
        }
    }
}

/// The host's first global address of `family` ("-4" or "-6") on a link that is not berth's.
fn host_address(family: &str) -> Option<IpAddr> {
    let out = std::process::Command::new("ip")
        .args([family, "-o", "addr", "show", "scope", "global"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains(" br-") && !l.contains("berth"))
        .find_map(|l| {
            l.split_whitespace()
                .skip_while(|w| *w != "inet" && *w != "inet6")
                .nth(1)
                .and_then(|a| a.split('/').next()?.parse().ok())
        })
}

/// Sends `msg` to addr:port and returns the reply; retries (bounded) while the server starts.
fn tcp_request(addr: impl Into<IpAddr>, port: u16, msg: &str) -> String {
    let addr = addr.into();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = (|| -> std::io::Result<String> {
            let mut s = TcpStream::connect_timeout(&(addr, port).into(), Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            s.write_all(msg.as_bytes())?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })();
        match r {
            Ok(s) if !s.is_empty() => return s,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            other => panic!("no reply from {addr}:{port}: {other:?}"),
        }
    }
}

/// Answers one datagram with "udp:<datagram>" on `ip:port` inside the container's network
/// namespace (busybox has no UDP server); gives up after 10 s.
fn udp_server_in(env: &Env, container: &str, ip: IpAddr, port: u16) -> std::thread::JoinHandle<()> {
    let netns = env.inspect(container)["NetworkSettings"]["SandboxKey"]
        .as_str()
        .unwrap()
        .to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let ns = std::fs::File::open(&netns).unwrap();
        assert_eq!(
            unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        let s = UdpSocket::bind((ip, port)).unwrap();
        tx.send(()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = s.recv_from(&mut buf).unwrap();
        s.send_to(&[b"udp:", &buf[..n]].concat(), from).unwrap();
    });
    rx.recv().unwrap();
    h
}

/// Sends `msg` to addr:port until a reply comes (at most 50 tries of 200 ms).
fn udp_request(addr: IpAddr, port: u16, msg: &str) -> Option<String> {
    let local: IpAddr = if addr.is_ipv6() {
        Ipv6Addr::LOCALHOST.into()
    } else {
        Ipv4Addr::LOCALHOST.into()
    };
    let c = UdpSocket::bind((local, 0)).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 64];
    for _ in 0..50 {
        c.send_to(msg.as_bytes(), (addr, port)).unwrap();
        if let Ok((n, _)) = c.recv_from(&mut buf) {
            return Some(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    None
}

/// A busybox TCP server answering "reply:<first line>" to each connection.
const SERVER: &[&str] = &[
    "nc",
    "-ll",
    "-p",
    "8080",
    "-e",
    "sh",
    "-c",
    "read x; echo reply:$x",
];

fn net_create(env: &Env, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["network", "create"];
    args.extend_from_slice(extra);
    args.push(name);
    env.ok(&args).trim().to_string()
}

#[test]
fn containers_reach_each_other_by_name_and_alias_later_ones_too_and_nothing_is_left() {
    let env = Env::new("net-names");
    net_create(&env, "app", &[]);
    let bridges = env.bridges();
    let mut run = vec![
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "app",
        "--network-alias",
        "www",
        "busybox",
    ];
    run.extend_from_slice(SERVER);
    env.ok(&run);
    // Request and reply over TCP, by name and by alias; the client retries while web starts.
    let client = "for n in web www; do i=0; until r=$(echo ping-$n | nc -w 3 $n 8080) && [ -n \"$r\" ]; do i=$((i+1)); [ $i -gt 50 ] && break; sleep 0.1; done; echo $r; done";
    let out = env.ok(&[
        "run",
        "--rm",
        "--network",
        "app",
        "busybox",
        "sh",
        "-c",
        client,
    ]);
    assert_eq!(out, "reply:ping-web\nreply:ping-www\n");
    // A container started later resolves at once, from a container started before it.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "late",
        "--network",
        "app",
        "busybox",
        "sleep",
        "60",
    ]);
    let late_ip = env.ip("late", "app");
    let out = env.ok(&["exec", "web", "nslookup", "late"]);
    assert!(
        out.contains(&late_ip),
        "late ({late_ip}) not resolved: {out}"
    );
    // The default bridge has no name resolution, as in docker.
    let r = env.run(&["run", "--rm", "busybox", "sh", "-c", "cat /etc/resolv.conf"]);
    assert!(!r.stdout.contains(
        env.inspect("web")["NetworkSettings"]["Networks"]["app"]["Gateway"]
            .as_str()
            .unwrap()
    ));
    assert!(!env.dns_processes().is_empty());
    let ids = env.ids();
    for id in &ids {
        env.ok(&["rm", "-f", id]);
    }
    env.ok(&["network", "rm", "app"]);
    env.assert_nothing_left(&bridges, &ids);
}

#[test]
fn published_ports_answer_on_loopback_and_a_host_address_tcp_and_udp() {
    let env = Env::new("net-ports");
    let (tp, up) = (free_port(), free_port());
    let mut run = vec![
        "run".to_string(),
        "-d".into(),
        "--name".into(),
        "srv".into(),
        "-p".into(),
        format!("{tp}:8080"),
        "-p".into(),
        format!("127.0.0.1:{up}:9090/udp"),
        "busybox".into(),
    ];
    run.extend(SERVER.iter().map(|s| s.to_string()));
    env.ok(&run.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(tcp_request(Ipv4Addr::LOCALHOST, tp, "a\n"), "reply:a\n");
    if let Some(h) = host_address("-4") {
        assert_eq!(tcp_request(h, tp, "b\n"), "reply:b\n");
    }
    // With IPv6 on the host, a port published on every address listens on [::] too (the
    // relay, as docker-proxy does for a container without IPv6).
    let (v6_line, v6_only, v6_ps) = if host_has_ipv6() {
        assert_eq!(tcp_request(Ipv6Addr::LOCALHOST, tp, "e\n"), "reply:e\n");
        (
            format!("8080/tcp -> [::]:{tp}\n"),
            format!("[::]:{tp}\n"),
            format!(", :::{tp}->8080/tcp"),
        )
    } else {
        Default::default()
    };
    let port = env.ok(&["port", "srv"]);
    assert_eq!(
        port,
        format!("8080/tcp -> 0.0.0.0:{tp}\n{v6_line}9090/udp -> 127.0.0.1:{up}\n")
    );
    assert_eq!(
        env.ok(&["port", "srv", "8080"]),
        format!("0.0.0.0:{tp}\n{v6_only}")
    );
    let ps = env.ok(&["ps", "--format", "{{.Ports}}"]);
    assert_eq!(
        ps,
        format!("0.0.0.0:{tp}->8080/tcp{v6_ps}, 127.0.0.1:{up}->9090/udp\n")
    );
    let ports = &env.inspect("srv")["NetworkSettings"]["Ports"];
    assert_eq!(ports["8080/tcp"][0]["HostPort"], tp.to_string());

    // UDP: busybox has no UDP server, so the test serves inside the container's namespace.
    let server = udp_server_in(&env, "srv", Ipv4Addr::UNSPECIFIED.into(), 9090);
    let got = udp_request(Ipv4Addr::LOCALHOST.into(), up, "hi");
    server.join().unwrap();
    assert_eq!(got.as_deref(), Some("udp:hi"));

    // The same host port twice: a clear error, and no container is made.
    let before = env.ids();
    let r = env.run(&["run", "-d", "-p", &format!("{tp}:80"), "busybox", "true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(
        r.stderr.contains("port is already allocated"),
        "{}",
        r.stderr
    );
    // A port some host process holds: a clear error, no container either.
    let held = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let hp = held.local_addr().unwrap().port();
    let r = env.run(&["run", "-d", "-p", &format!("{hp}:80"), "busybox", "true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("address already in use"), "{}", r.stderr);
    assert_eq!(env.ids(), before);
    // -P publishes EXPOSEd ports on free host ports; ranges expand.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "all",
        "-P",
        "--expose",
        "7000-7001",
        "busybox",
        "sleep",
        "60",
    ]);
    let p = env.ok(&["port", "all"]);
    assert!(
        p.contains("7000/tcp -> 0.0.0.0:") && p.contains("7001/tcp -> 0.0.0.0:"),
        "{p}"
    );

    let bridges = env.bridges();
    let ids = env.ids();
    for id in &ids {
        env.ok(&["rm", "-f", id]);
    }
    env.assert_nothing_left(&bridges, &ids);
}

#[test]
fn none_has_only_lo_container_mode_shares_the_stack_and_init_layer_flags() {
    let env = Env::new("net-modes");
    let out = env.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "ls /sys/class/net",
    ]);
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["lo"]);
    net_create(&env, "flags", &["--subnet", "10.251.77.0/24"]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "ca",
        "--network",
        "flags",
        "--ip",
        "10.251.77.50",
        "--mac-address",
        "02:42:0a:fb:4d:99",
        "--hostname",
        "alpha",
        "--add-host",
        "db.example:10.1.2.3",
        "--dns-search",
        "corp.example",
        "busybox",
        "sleep",
        "60",
    ]);
    assert_eq!(env.ip("ca", "flags"), "10.251.77.50");
    let out = env.ok(&[
        "run",
        "--rm",
        "--network",
        "container:ca",
        "busybox",
        "sh",
        "-c",
        "ip -o -4 addr show eth0; cat /sys/class/net/eth0/address",
    ]);
    assert!(
        out.contains("10.251.77.50/24") && out.contains("02:42:0a:fb:4d:99"),
        "{out}"
    );
    let hosts = env.ok(&["exec", "ca", "cat", "/etc/hosts"]);
    assert!(
        hosts.contains("10.251.77.50\talpha") && hosts.contains("10.1.2.3\tdb.example"),
        "{hosts}"
    );
    let resolv = env.ok(&["exec", "ca", "cat", "/etc/resolv.conf"]);
    assert_eq!(resolv, "search corp.example\nnameserver 10.251.77.1\n");
    let r = env.run(&[
        "run",
        "--rm",
        "--network",
        "flags",
        "--ip",
        "10.251.77.50",
        "busybox",
        "true",
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("already in use"), "{}", r.stderr);
    let s = &env.inspect("ca")["NetworkSettings"];
    assert_eq!(s["Networks"]["flags"]["Gateway"], "10.251.77.1");
    assert_eq!(s["Networks"]["flags"]["MacAddress"], "02:42:0a:fb:4d:99");
}

#[test]
fn two_networks_cannot_reach_each_other() {
    let env = Env::new("net-isolation");
    net_create(&env, "n1", &[]);
    net_create(&env, "n2", &[]);
    let mut run = vec!["run", "-d", "--name", "s1", "--network", "n1", "busybox"];
    run.extend_from_slice(SERVER);
    env.ok(&run);
    let ip = env.ip("s1", "n1");
    // Same network: reachable (so the next failure is isolation, not a dead server).
    assert_eq!(env.reach("n1", &ip), "got:reply:x\n");
    let once = ask_once(&ip);
    let out = env.ok(&[
        "run",
        "--rm",
        "--network",
        "n2",
        "busybox",
        "sh",
        "-c",
        &once,
    ]);
    assert!(!out.contains("reply:x"), "n2 reached n1: {out}");
}

#[test]
fn twenty_containers_at_once_get_distinct_addresses_and_all_resolve() {
    let env = Env::new("net-twenty");
    net_create(&env, "many", &[]);
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let root = env.root.clone();
            std::thread::spawn(move || {
                berth(
                    &root,
                    &[
                        "run",
                        "-d",
                        "--name",
                        &format!("c{i}"),
                        "--network",
                        "many",
                        "busybox",
                        "sleep",
                        "120",
                    ],
                )
            })
        })
        .collect();
    for h in handles {
        let r = h.join().unwrap();
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let mut ips: Vec<String> = (0..20).map(|i| env.ip(&format!("c{i}"), "many")).collect();
    let script: String = (0..20)
        .map(|i| format!("nslookup c{i} | tail -n +3 | grep Address; "))
        .collect();
    let out = env.ok(&[
        "run",
        "--rm",
        "--network",
        "many",
        "busybox",
        "sh",
        "-c",
        &script,
    ]);
    for ip in &ips {
        assert!(
            out.contains(&format!("Address: {ip}\n")),
            "{ip} not resolved: {out}"
        );
    }
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 20, "{ips:?}");
}

#[test]
fn kill_9_during_network_setup_or_teardown_is_cleaned_by_the_next_command() {
    let env = Env::new("net-kill");
    net_create(&env, "k", &[]);
    let bridges = env.bridges();
    let exe = env!("CARGO_BIN_EXE_berth");
    // CLIs killed at spread-out points of create/attach.
    for delay in [5u64, 15, 30, 60, 100, 150] {
        let mut child = std::process::Command::new(exe)
            .args([
                "--root",
                env.root.to_str().unwrap(),
                "run",
                "-d",
                "--network",
                "k",
                "-p",
                &format!("{}:80", free_port()),
                "busybox",
                "sleep",
                "60",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let _ = child.wait();
    }
    // A monitor killed with its container: the teardown it would have done never happens.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "mon",
        "--network",
        "k",
        "busybox",
        "sleep",
        "60",
    ]);
    let id = env.inspect("mon")["Id"].as_str().unwrap().to_string();
    let pid = env.inspect("mon")["State"]["Pid"].as_i64().unwrap() as i32;
    let root = std::fs::canonicalize(&env.root)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    for p in procs_with(&["__monitor", &root, &id]) {
        unsafe { libc::kill(p, libc::SIGKILL) };
    }
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.inspect("mon")["State"]["Running"] == true {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    // The next berth command that touches the network finishes every interrupted teardown:
    // only the running containers keep an endpoint.
    env.ok(&["run", "--rm", "--network", "k", "busybox", "true"]);
    let running: Vec<String> = env
        .run(&["ps", "-q", "--no-trunc"])
        .stdout
        .lines()
        .map(str::to_string)
        .collect();
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["network", "inspect", "k"])).unwrap();
    let mut attached: Vec<String> = v[0]["Containers"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    attached.sort();
    let mut want = running.clone();
    want.sort();
    assert_eq!(attached, want);
    let ids = env.ids();
    for id in &ids {
        env.ok(&["rm", "-f", id]);
    }
    env.ok(&["network", "rm", "k"]);
    env.assert_nothing_left(&bridges, &ids);
}

#[test]
fn network_commands_flags_columns_and_format() {
    let env = Env::new("net-cli");
    let id = net_create(
        &env,
        "front",
        &[
            "--subnet",
            "10.251.78.0/24",
            "--gateway",
            "10.251.78.254",
            "--ip-range",
            "10.251.78.128/25",
            "--label",
            "tier=web",
            "-o",
            "com.docker.network.bridge.name=brt-cli-test",
        ],
    );
    assert_eq!(id.len(), 64);
    net_create(&env, "back", &["--internal"]);
    let r = env.run(&["network", "create", "front"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);
    let r = env.run(&["network", "create", "--subnet", "10.251.78.0/25", "other"]);
    assert!(r.stderr.contains("overlaps"), "{}", r.stderr);
    let ls = env.ok(&["network", "ls"]);
    let mut lines = ls.lines();
    assert_eq!(
        common::columns(lines.next().unwrap()),
        ["NETWORK ID", "NAME", "DRIVER", "SCOPE"]
    );
    let names: Vec<&str> = lines.map(|l| common::columns(l)[1]).collect();
    assert_eq!(names, ["back", "bridge", "front"]);
    assert_eq!(
        env.ok(&[
            "network",
            "ls",
            "--filter",
            "label=tier=web",
            "--format",
            "{{.Name}} {{.Driver}}"
        ]),
        "front bridge\n"
    );
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["network", "inspect", "front"])).unwrap();
    assert_eq!(v[0]["IPAM"]["Config"][0]["Gateway"], "10.251.78.254");
    assert_eq!(v[0]["Labels"]["tier"], "web");
    assert_eq!(
        env.ok(&["network", "inspect", "--format", "{{.Internal}}", "back"]),
        "true\n"
    );
    // Addresses come from the ip range; the gateway is the one given.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "cf",
        "--network",
        "front",
        "busybox",
        "sleep",
        "60",
    ]);
    assert_eq!(env.ip("cf", "front"), "10.251.78.128");
    assert!(crate::links().contains(&"brt-cli-test".to_string()));
    // connect/disconnect a running container; rm refuses a network in use.
    env.ok(&["network", "connect", "--alias", "fb", "back", "cf"]);
    let out = env.ok(&["exec", "cf", "ls", "/sys/class/net"]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["eth0", "eth1", "lo"]
    );
    let r = env.run(&["network", "rm", "back"]);
    assert!(
        r.code != 0 && r.stderr.contains("active endpoints"),
        "{}",
        r.stderr
    );
    env.ok(&["network", "disconnect", "back", "cf"]);
    let out = env.ok(&["exec", "cf", "ls", "/sys/class/net"]);
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["eth0", "lo"]);
    env.ok(&["rm", "-f", "cf"]);
    assert!(env.ok(&["network", "prune", "-f"]).contains("back"));
    assert_eq!(env.ok(&["network", "ls", "-q"]).lines().count(), 1);
    let r = env.run(&["network", "rm", "bridge"]);
    assert_ne!(r.code, 0);
}

/// Whether this host has IPv6 on (berth refuses `--ipv6` with a clear error otherwise).
fn host_has_ipv6() -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv6/conf/default/disable_ipv6")
        .is_ok_and(|v| v.trim() == "0")
}

fn ip6_routes() -> String {
    let out = std::process::Command::new("ip")
        .args(["-6", "route"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (subnet, gateway) of a dual-stack network's IPv6 half.
fn v6_config(env: &Env, net: &str) -> (String, String) {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["network", "inspect", net])).unwrap();
    assert_eq!(v[0]["EnableIPv6"], true);
    let c = &v[0]["IPAM"]["Config"][1];
    (
        c["Subnet"].as_str().unwrap().to_string(),
        c["Gateway"].as_str().unwrap().to_string(),
    )
}

fn ip6(env: &Env, name: &str, network: &str) -> String {
    env.inspect(name)["NetworkSettings"]["Networks"][network]["GlobalIPv6Address"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn ipv6_containers_reach_each_other_by_name_and_address_ports_answer_on_loopback_nothing_left() {
    let env = Env::new("net-v6");
    if !host_has_ipv6() {
        let r = env.run(&["network", "create", "--ipv6", "v6"]);
        assert!(
            r.code != 0 && r.stderr.contains("IPv6 is disabled"),
            "{}",
            r.stderr
        );
        return;
    }
    let routes_before = ip6_routes();
    net_create(&env, "v6", &["--ipv6"]);
    // A ULA /64 of fd00::/8 that no host route covers.
    let (subnet, gw) = v6_config(&env, "v6");
    let prefix = subnet.strip_suffix(":/64").expect("a /64").to_string();
    assert!(subnet.starts_with("fd"), "{subnet}");
    assert!(
        !routes_before.contains(&prefix),
        "{subnet} is routed: {routes_before}"
    );
    assert_eq!(gw, format!("{prefix}:1"));
    assert_eq!(
        env.ok(&[
            "network",
            "ls",
            "--filter",
            "name=v6",
            "--format",
            "{{.Name}} {{.IPv6}}"
        ]),
        "v6 true\n"
    );
    let bridges = env.bridges();

    let srv_ip = format!("{prefix}:beef");
    let (hp, hp_lo, up) = (free_port(), free_port(), free_port());
    let mut run = vec![
        "run".to_string(),
        "-d".into(),
        "--name".into(),
        "s6".into(),
        "--network".into(),
        "v6".into(),
        "--ip6".into(),
        srv_ip.clone(),
        "-p".into(),
        format!("{hp}:8080"),
        "-p".into(),
        format!("[::1]:{hp_lo}:8080"),
        "-p".into(),
        format!("{up}:9090/udp"),
        "busybox".into(),
    ];
    run.extend(SERVER.iter().map(|s| s.to_string()));
    env.ok(&run.iter().map(String::as_str).collect::<Vec<_>>());
    let n = &env.inspect("s6")["NetworkSettings"]["Networks"]["v6"];
    assert_eq!(n["GlobalIPv6Address"], srv_ip.as_str());
    assert_eq!(n["GlobalIPv6PrefixLen"], 64);
    assert_eq!(n["IPv6Gateway"], gw.as_str());
    assert_eq!(n["IPAMConfig"]["IPv6Address"], srv_ip.as_str());
    let hostname = env.inspect("s6")["Config"]["Hostname"]
        .as_str()
        .unwrap()
        .to_string();
    let hosts = env.ok(&["exec", "s6", "cat", "/etc/hosts"]);
    assert!(
        hosts.contains(&format!("{srv_ip}\t{hostname}\n")),
        "{hosts}"
    );

    // Another container: global and link-local addresses on eth0, the default route through
    // the gateway, s6 by its AAAA record and by its address, over TCP.
    let client = format!(
        "ip -6 -o addr show dev eth0; ip -6 route show default; \
         a=$(nslookup -type=AAAA s6 | awk '/^Address: /{{print $2}}' | grep :); echo aaaa:$a; \
         for t in $a {srv_ip}; do i=0; until r=$(echo to-$t | nc -w 3 $t 8080) && [ -n \"$r\" ]; \
         do i=$((i+1)); [ $i -gt 50 ] && break; sleep 0.1; done; echo $r; done"
    );
    let out = env.ok(&[
        "run",
        "--rm",
        "--network",
        "v6",
        "busybox",
        "sh",
        "-c",
        &client,
    ]);
    assert!(
        out.contains(&format!("inet6 {prefix}:")) && out.contains("/64 scope global"),
        "{out}"
    );
    assert!(
        out.contains("inet6 fe80::") && out.contains("scope link"),
        "{out}"
    );
    assert!(out.contains(&format!("default via {gw} dev eth0")), "{out}");
    assert!(out.contains(&format!("aaaa:{srv_ip}\n")), "{out}");
    assert_eq!(
        out.matches(&format!("reply:to-{srv_ip}\n")).count(),
        2,
        "{out}"
    );

    // Published ports: the default binding for IPv6 too (loopback and a host address), and
    // one bound to [::1] only; IPv4 loopback still answers.
    assert_eq!(tcp_request(Ipv6Addr::LOCALHOST, hp, "a\n"), "reply:a\n");
    assert_eq!(tcp_request(Ipv6Addr::LOCALHOST, hp_lo, "b\n"), "reply:b\n");
    assert_eq!(tcp_request(Ipv4Addr::LOCALHOST, hp, "c\n"), "reply:c\n");
    if let Some(h) = host_address("-6") {
        assert_eq!(tcp_request(h, hp, "d\n"), "reply:d\n");
    }
    // UDP on [::1] goes through the same proxy, to the container's IPv6 address.
    let server = udp_server_in(&env, "s6", srv_ip.parse().unwrap(), 9090);
    let got = udp_request(Ipv6Addr::LOCALHOST.into(), up, "hi6");
    server.join().unwrap();
    assert_eq!(got.as_deref(), Some("udp:hi6"));
    let mut port: Vec<String> = env.ok(&["port", "s6"]).lines().map(String::from).collect();
    port.sort();
    let mut want = vec![
        format!("8080/tcp -> 0.0.0.0:{hp}"),
        format!("8080/tcp -> [::]:{hp}"),
        format!("8080/tcp -> [::1]:{hp_lo}"),
        format!("9090/udp -> 0.0.0.0:{up}"),
        format!("9090/udp -> [::]:{up}"),
    ];
    want.sort();
    assert_eq!(port, want);

    // Leases: distinct, and an address freed by rm -f is handed out again.
    for c in ["a1", "a2"] {
        env.ok(&[
            "run",
            "-d",
            "--name",
            c,
            "--network",
            "v6",
            "busybox",
            "sleep",
            "60",
        ]);
    }
    let (a1, a2) = (ip6(&env, "a1", "v6"), ip6(&env, "a2", "v6"));
    assert!(a1 != a2 && a1 != srv_ip && a2 != srv_ip, "{a1} {a2}");
    assert!(a1.starts_with(&prefix) && a2.starts_with(&prefix));
    env.ok(&["rm", "-f", "a1"]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "a3",
        "--network",
        "v6",
        "busybox",
        "sleep",
        "60",
    ]);
    assert_eq!(ip6(&env, "a3", "v6"), a1);
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["network", "inspect", "v6"])).unwrap();
    let mut leased: Vec<String> = v[0]["Containers"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["IPv6Address"].as_str().unwrap().to_string())
        .collect();
    leased.sort();
    let mut want = vec![
        format!("{srv_ip}/64"),
        format!("{a1}/64"),
        format!("{a2}/64"),
    ];
    want.sort();
    assert_eq!(leased, want);

    let ids = env.ids();
    for id in &ids {
        env.ok(&["rm", "-f", id]);
    }
    env.ok(&["network", "rm", "v6"]);
    env.assert_nothing_left(&bridges, &ids);
    let addrs = std::process::Command::new("ip")
        .args(["-6", "addr"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&addrs.stdout).contains(&gw));
    assert!(!ip6_routes().contains(&prefix));
}

#[test]
fn ipv6_networks_are_isolated_and_bad_ipv6_requests_fail_clearly() {
    let env = Env::new("net-v6-iso");
    if !host_has_ipv6() {
        return;
    }
    net_create(
        &env,
        "n1",
        &[
            "--ipv6",
            "--subnet",
            "10.251.80.0/24",
            "--subnet",
            "fd42:b17e:5eed::/64",
            "--gateway",
            "fd42:b17e:5eed::fe",
            "--ip-range",
            "fd42:b17e:5eed::100/120",
        ],
    );
    net_create(&env, "n2", &["--ipv6"]);
    assert_eq!(
        v6_config(&env, "n1"),
        (
            "fd42:b17e:5eed::/64".to_string(),
            "fd42:b17e:5eed::fe".to_string()
        )
    );
    let mut run = vec!["run", "-d", "--name", "s1", "--network", "n1", "busybox"];
    run.extend_from_slice(SERVER);
    env.ok(&run);
    let ip = ip6(&env, "s1", "n1");
    assert_eq!(
        ip, "fd42:b17e:5eed::100",
        "the first address of the ip range"
    );
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["network", "inspect", "n1"])).unwrap();
    assert_eq!(
        v[0]["IPAM"]["Config"][1]["IPRange"],
        "fd42:b17e:5eed::100/120"
    );
    assert_eq!(env.reach("n1", &ip), "got:reply:x\n");
    let once = ask_once(&ip);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "c2",
        "--network",
        "n2",
        "busybox",
        "sleep",
        "60",
    ]);
    let out = env.ok(&["exec", "c2", "sh", "-c", &once]);
    assert!(!out.contains("reply:x"), "n2 reached n1 over IPv6: {out}");

    // network connect --ip6: a second dual-stack interface with the address asked for.
    env.ok(&[
        "network",
        "connect",
        "--ip6",
        "fd42:b17e:5eed::77",
        "n1",
        "c2",
    ]);
    let out = env.ok(&[
        "exec", "c2", "ip", "-6", "-o", "addr", "show", "dev", "eth1",
    ]);
    assert!(
        out.contains("inet6 fd42:b17e:5eed::77/64 scope global"),
        "{out}"
    );
    assert_eq!(ip6(&env, "c2", "n1"), "fd42:b17e:5eed::77");

    // Bad requests: a clear error each, and nothing stored.
    let nets = env.ok(&["network", "ls", "-q"]);
    for (args, msg) in [
        (
            &["--ipv6", "--subnet", "fd00:zz::/64"][..],
            "invalid subnet fd00:zz::/64",
        ),
        (
            &["--ipv6", "--subnet", "fd42:1::/129"][..],
            "prefix must be",
        ),
        (
            &["--ipv6", "--subnet", "ff02::/64"][..],
            "not a unicast range",
        ),
        (&["--subnet", "fd42:1::/64"][..], "without --ipv6"),
        (
            &["--ipv6", "--subnet", "fd42:b17e:5eed::/80"][..],
            "overlaps",
        ),
        (
            &[
                "--ipv6",
                "--subnet",
                "fd42:2::/64",
                "--gateway",
                "fd42:3::1",
            ][..],
            "not in subnet",
        ),
        (
            &[
                "--ipv6",
                "--subnet",
                "fd42:2::/64",
                "--ip-range",
                "fd42:3::/120",
            ][..],
            "not inside subnet",
        ),
    ] {
        let mut a = vec!["network", "create"];
        a.extend_from_slice(args);
        a.push("bad");
        let r = env.run(&a);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(msg), "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    }
    assert_eq!(env.ok(&["network", "ls", "-q"]), nets);
    // --ip6 on a network without IPv6: refused before any container exists.
    let before = env.ids();
    let r = env.run(&["run", "-d", "--ip6", "fd42::5", "busybox", "true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("has no IPv6"), "{}", r.stderr);
    assert_eq!(env.ids(), before);
    // A port some host process holds on [::1]: a clear error, no container either.
    let held = std::net::TcpListener::bind("[::1]:0").unwrap();
    let hp = held.local_addr().unwrap().port();
    let spec = format!("[::1]:{hp}:80");
    let r = env.run(&[
        "run",
        "-d",
        "--network",
        "n1",
        "-p",
        &spec,
        "busybox",
        "true",
    ]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "cannot publish [::1]:{hp}/tcp: address already in use"
        )),
        "{}",
        r.stderr
    );
    assert_eq!(env.ids(), before);
    // An address outside the network's subnet.
    let r = env.run(&[
        "run",
        "--rm",
        "--network",
        "n1",
        "--ip6",
        "fd42:9::5",
        "busybox",
        "true",
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("not a usable address"), "{}", r.stderr);
}

/// The reaper runs after `rm` has returned. A root removed meanwhile (as a test's temporary
/// root is) must stay removed, and the reaper takes the root's bridges and table with it.
#[test]
fn a_root_removed_while_its_reaper_waits_stays_removed_and_leaves_no_bridge() {
    let env = Env::new("net-reaper-root-gone");
    net_create(&env, "rg", &[]);
    env.ok(&[
        "run",
        "-d",
        "--network",
        "rg",
        "--name",
        "ra",
        "busybox",
        "sleep",
        "100",
    ]);
    let bridges = env.bridges();
    assert!(bridges.iter().any(|b| links().contains(b)), "{bridges:?}");
    let canon = std::fs::canonicalize(&env.root)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let table = env.table();
    env.ok(&["rm", "-f", "ra"]);
    let reapers = procs_with(&["__netreap", &canon]);
    assert!(!reapers.is_empty(), "rm started no reaper");
    berth_testkit::unmount_below(&env.root);
    std::fs::remove_dir_all(&env.root).unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    while !procs_with(&["__netreap", &canon]).is_empty() {
        assert!(Instant::now() < deadline, "the reaper did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !env.root.exists(),
        "the reaper brought back {}",
        env.root.display()
    );
    let links = links();
    let left: Vec<_> = bridges.iter().filter(|b| links.contains(b)).collect();
    assert!(left.is_empty(), "bridges left: {left:?}");
    let tables = std::process::Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&tables.stdout).contains(&table),
        "table {table} left"
    );
}
