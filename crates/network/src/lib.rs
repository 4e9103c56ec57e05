//! berth's container networks: Linux bridges, one veth pair per container and network, IPAM
//! in SQLite, nftables rules (NAT, published ports, isolation) and a DNS responder per
//! user-defined network. The engine calls [`Networks::attach`] with a pinned network
//! namespace before the container's process exists, and [`Networks::detach`] when it is
//! gone; both are idempotent, and [`Networks::gc`] finishes whatever a killed berth left.
//!
//! ```text
//! <root>/networks.db        networks, endpoints (leases), published ports (see `store`)
//! <root>/networks.lock      flock: one attach/detach of this root at a time
//! <root>/netns/<id>         a container's pinned network namespace
//! <root>/network/<net id>/  hosts (names the DNS responder serves), dns.pid
//! <root>/proxy/<id>         pid of a container's [::1] port proxy (see `proxy`)
//! /run/berth/subnets        subnets taken by every berth root of the host (flock'd), so two
//!                           roots never pick the same one
//! ```

mod dns;
mod error;
mod firewall;
mod ipam;
mod netlink;
mod netns;
mod proxy;
mod store;

pub use dns::{main as dns_main, ARG as DNS_ARG};
pub use error::{Error, ErrorKind, Result};
pub use ipam::Subnet;
pub use proxy::{main as proxy_main, ARG as PROXY_ARG};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use store::Store;

/// The default network's name, as in docker.
pub const DEFAULT_NETWORK: &str = "bridge";
const DEFAULT_ROOT: &str = "/var/lib/berth";
const REGISTRY: &str = "/run/berth/subnets";

/// `docker network inspect`'s object (the stored record; [`Network::inspect`] adds Containers).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Network {
    pub name: String,
    pub id: String,
    pub created: String,
    pub driver: String,
    /// The Linux bridge's name.
    pub bridge: String,
    pub subnet: String,
    pub gateway: String,
    pub ip_range: String,
    pub internal: bool,
    /// Name resolution between its containers (user-defined networks, not the default bridge).
    pub dns: bool,
    #[serde(rename = "EnableIPv6")]
    pub ipv6: bool,
    /// The IPv6 subnet and gateway of a dual-stack network (`--ipv6`), else empty.
    #[serde(rename = "SubnetV6")]
    pub subnet6: String,
    #[serde(rename = "GatewayV6")]
    pub gateway6: String,
    #[serde(rename = "IPRangeV6")]
    pub ip_range6: String,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
}

/// A container's place on a network: its lease, interface and names.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Endpoint {
    pub container: String,
    pub container_name: String,
    pub network: String,
    pub network_id: String,
    /// Interface in the container ("eth0", ...).
    pub ifname: String,
    /// The host side of the veth pair.
    pub host_veth: String,
    pub ip: String,
    pub prefix: u8,
    pub gateway: String,
    /// On a dual-stack network: the global IPv6 address, its prefix and gateway.
    pub ip6: String,
    pub prefix6: u8,
    pub gateway6: String,
    pub mac: String,
    pub aliases: Vec<String>,
    /// Names other containers resolve it by (name, short id, aliases).
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct PortBinding {
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    /// "tcp" or "udp".
    pub proto: String,
}

impl PortBinding {
    pub fn host_ip_or_any(&self) -> &str {
        if self.host_ip.is_empty() {
            "0.0.0.0"
        } else {
            &self.host_ip
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct NetworkCreate {
    pub name: String,
    pub driver: Option<String>,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub ip_range: Option<String>,
    pub internal: bool,
    pub ipv6: bool,
    /// With `ipv6`: the IPv6 subnet (a free ULA /64 when not given) and its gateway.
    pub subnet6: Option<String>,
    pub gateway6: Option<String>,
    pub ip_range6: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
}

/// One network a container joins.
#[derive(Debug, Clone, Default)]
pub struct EndpointRequest {
    pub network: String,
    pub aliases: Vec<String>,
    pub ip: Option<String>,
    pub ip6: Option<String>,
    pub mac: Option<String>,
}

/// `-p`: host port 0 means "choose a free one".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PortRequest {
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: String,
}

#[derive(Debug, Clone, Default)]
pub struct AttachRequest {
    pub container: String,
    pub name: String,
    pub endpoints: Vec<EndpointRequest>,
    pub ports: Vec<PortRequest>,
}

pub struct Networks {
    root: PathBuf,
    store: Store,
    table: String,
    /// The berth binary that runs DNS responders.
    exe: PathBuf,
}

fn fnv(s: &str) -> u32 {
    s.bytes().fold(0x811c9dc5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x01000193)
    })
}

fn random_bytes(b: &mut [u8]) {
    unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n.div_ceil(2)];
    random_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect::<String>()[..n].to_string()
}

fn now_rfc3339() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = t.as_secs() as i64;
    let (d, s) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // civil from days (Howard Hinnant's algorithm)
    let z = d + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60,
        t.subsec_nanos()
    )
}

struct Lock(#[allow(dead_code)] std::fs::File);

fn lock(path: &Path) -> Result<Lock> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| Error::io(format!("create {}", d.display()), e))?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    while unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(Error::io(format!("lock {}", path.display()), e));
        }
    }
    Ok(Lock(f))
}

fn sysctl(path: &str, value: &str) {
    let _ = std::fs::write(path, value);
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)
        .map_err(|e| Error::io(format!("create {}", tmp.display()), e))?;
    f.write_all(data)
        .map_err(|e| Error::io(format!("write {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("rename {}", path.display()), e))
}

/// The pid a `PID START` file names, if that very process (same start time) still runs.
fn alive_pid(file: &Path) -> Option<i32> {
    let s = std::fs::read_to_string(file).ok()?;
    let mut f = s.split_whitespace();
    let pid = f.next()?.parse::<i32>().ok()?;
    let start = f.next()?.parse::<u64>().ok()?;
    (proc_start(pid) == Some(start)).then_some(pid)
}

fn proc_start(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl Networks {
    /// Opens the networks of `root`; `exe` is the berth binary (for the DNS responders).
    pub fn open(root: &Path, exe: &Path) -> Result<Networks> {
        std::fs::create_dir_all(root)
            .map_err(|e| Error::io(format!("create {}", root.display()), e))?;
        Self::with_store(root, exe, Store::open(&root.join("networks.db"))?)
    }

    /// As [`Networks::open`], but creates nothing: the reaper runs after its command has
    /// returned, and must not bring back a root (a test's temporary one) removed meanwhile.
    pub fn open_existing(root: &Path, exe: &Path) -> Result<Networks> {
        Self::with_store(root, exe, Store::open_existing(&root.join("networks.db"))?)
    }

    fn with_store(root: &Path, exe: &Path, store: Store) -> Result<Networks> {
        let canon = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        let table = if canon == Path::new(DEFAULT_ROOT) {
            "berth".to_string()
        } else {
            format!("berth_{:08x}", fnv(&canon.to_string_lossy()))
        };
        Ok(Networks {
            root: canon,
            store,
            table,
            exe: exe.to_path_buf(),
        })
    }

    /// The nftables table of this root (`ip` family).
    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn netns_path(&self, container: &str) -> PathBuf {
        self.root.join("netns").join(container)
    }

    fn lock(&self) -> Result<Lock> {
        lock(&self.root.join("networks.lock"))
    }

    // ---- networks ---------------------------------------------------------------------

    pub fn get(&self, key: &str) -> Result<Network> {
        if key == DEFAULT_NETWORK {
            return self.ensure_default();
        }
        self.store
            .find_network(key)?
            .ok_or_else(|| Error::not_found(format!("network {key} not found")))
    }

    pub fn list(&self) -> Result<Vec<Network>> {
        self.ensure_default()?;
        self.store.networks()
    }

    /// The default "bridge" network, made on first use with a subnet nothing else uses.
    fn ensure_default(&self) -> Result<Network> {
        if let Some(n) = self.store.find_network(DEFAULT_NETWORK)? {
            return Ok(n);
        }
        let bridge = if self.table == "berth" {
            Some("berth0".to_string())
        } else {
            None
        };
        let mut opts = BTreeMap::new();
        if let Some(b) = &bridge {
            opts.insert("com.docker.network.bridge.name".to_string(), b.clone());
        }
        let r = self.create_locked(
            &NetworkCreate {
                name: DEFAULT_NETWORK.into(),
                options: opts,
                ..Default::default()
            },
            false,
        );
        match r {
            Err(e) if e.kind() == ErrorKind::Conflict => {
                self.store.find_network(DEFAULT_NETWORK)?.ok_or(e)
            }
            r => r,
        }
    }

    /// `network create`.
    pub fn create(&self, o: &NetworkCreate) -> Result<Network> {
        if o.name == DEFAULT_NETWORK || o.name == "none" || o.name == "host" {
            return Err(Error::conflict(format!(
                "network with name {} already exists",
                o.name
            )));
        }
        if o.name.is_empty()
            || !o
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            || !o.name.as_bytes()[0].is_ascii_alphanumeric()
        {
            return Err(Error::invalid(format!(
                "invalid network name {:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
                o.name
            )));
        }
        if let Some(d) = &o.driver {
            if d != "bridge" {
                return Err(Error::invalid(format!(
                    "network driver {d} is not supported (only bridge)"
                )));
            }
        }
        if !o.ipv6 {
            if let Some(s) = o.subnet6.as_ref().or(o.gateway6.as_ref()) {
                return Err(Error::invalid(format!(
                    "IPv6 subnet or gateway {s} given without --ipv6"
                )));
            }
        }
        if let (Some(r), false) = (&o.ip_range6, o.ipv6) {
            return Err(Error::invalid(format!(
                "IPv6 ip range {r} given without --ipv6"
            )));
        }
        if o.gateway6.is_some() && o.subnet6.is_none() {
            return Err(Error::invalid(
                "an IPv6 --gateway needs an IPv6 --subnet to belong to",
            ));
        }
        self.create_locked(o, true)
    }

    fn create_locked(&self, o: &NetworkCreate, dns: bool) -> Result<Network> {
        let _reg = lock(Path::new(&format!("{REGISTRY}.lock")))?;
        let mut taken = registry_read(&self.root);
        let routes = netlink::Netlink::open()
            .and_then(|mut n| n.routes())
            .unwrap_or_default();
        let subnet = choose_subnet(o.subnet.as_deref(), ipam::candidates(), &taken, &routes)?;
        let gateway = choose_gateway(&subnet, o.gateway.as_deref())?;
        let v6 = if o.ipv6 {
            ipv6_available()?;
            let s = choose_subnet(o.subnet6.as_deref(), ipam::candidates_v6(), &taken, &routes)?;
            Some((s, choose_gateway(&s, o.gateway6.as_deref())?))
        } else {
            None
        };
        let ip_range = choose_range(&subnet, o.ip_range.as_deref())?;
        let ip_range6 = match v6 {
            Some((s, _)) => choose_range(&s, o.ip_range6.as_deref())?,
            None => String::new(),
        };
        let id = random_hex(64);
        let bridge = match o.options.get("com.docker.network.bridge.name") {
            Some(b) if b.len() > 15 => {
                return Err(Error::invalid(format!(
                    "bridge name {b} is longer than 15 characters"
                )))
            }
            Some(b) => b.clone(),
            None => format!("br-{}", &id[..12]),
        };
        let n = Network {
            name: o.name.clone(),
            id,
            created: now_rfc3339(),
            driver: "bridge".into(),
            bridge,
            subnet: subnet.to_string(),
            gateway: gateway.to_string(),
            ip_range,
            internal: o.internal,
            dns,
            ipv6: v6.is_some(),
            subnet6: v6.map(|(s, _)| s.to_string()).unwrap_or_default(),
            gateway6: v6.map(|(_, g)| g.to_string()).unwrap_or_default(),
            ip_range6,
            labels: o.labels.clone(),
            options: o.options.clone(),
        };
        self.store.insert_network(&n)?;
        let me = self.root.to_string_lossy().into_owned();
        taken.push((subnet, me.clone()));
        if let Some((s, _)) = v6 {
            taken.push((s, me));
        }
        registry_write(&taken)?;
        Ok(n)
    }

    /// `network rm`: refuses a network with containers; the default one cannot go.
    pub fn remove(&self, key: &str) -> Result<Network> {
        let n = self.get(key)?;
        if n.name == DEFAULT_NETWORK {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("{} is a pre-defined network and cannot be removed", n.name),
            ));
        }
        let _l = self.lock()?;
        let eps = self.store.endpoints_on(&n.id)?;
        if !eps.is_empty() {
            return Err(Error::conflict(format!(
                "error while removing network: network {} id {} has active endpoints",
                n.name, n.id
            )));
        }
        self.teardown_network(&n)?;
        self.store.delete_network(&n.id)?;
        self.sync_firewall()?;
        let _reg = lock(Path::new(&format!("{REGISTRY}.lock")))?;
        let mut taken = registry_read(&self.root);
        let me = self.root.to_string_lossy().into_owned();
        taken.retain(|(s, r)| {
            !((s.to_string() == n.subnet || s.to_string() == n.subnet6) && *r == me)
        });
        registry_write(&taken)?;
        Ok(n)
    }

    /// Drops the bridge and the DNS responder of a network without containers.
    fn teardown_network(&self, n: &Network) -> Result<()> {
        self.stop_dns(n);
        netlink::Netlink::open()?.delete_link(&n.bridge)
    }

    /// The endpoints of a container (for inspect, /etc/hosts).
    pub fn endpoints_of(&self, container: &str) -> Result<Vec<Endpoint>> {
        self.store.endpoints_of(container)
    }

    pub fn endpoints_on(&self, network: &Network) -> Result<Vec<Endpoint>> {
        self.store.endpoints_on(&network.id)
    }

    pub fn ports_of(&self, container: &str) -> Result<Vec<PortBinding>> {
        Ok(self
            .store
            .ports()?
            .into_iter()
            .filter(|(c, _)| c == container)
            .map(|(_, p)| p)
            .collect())
    }

    // ---- attach / detach --------------------------------------------------------------

    /// Makes the container's pinned namespace (lo up) and joins it to its networks, publishes
    /// its ports. On failure nothing of it is left.
    pub fn attach(&mut self, req: &AttachRequest) -> Result<Vec<Endpoint>> {
        let path = self.netns_path(&req.container);
        if !path.exists() || !is_mountpoint(&path) {
            netns::create(&path)?;
        }
        let r = self.attach_in(req, &path);
        if r.is_err() {
            let _ = self.detach(&req.container);
        }
        r
    }

    fn attach_in(&mut self, req: &AttachRequest, path: &Path) -> Result<Vec<Endpoint>> {
        let nets: Vec<Network> = req
            .endpoints
            .iter()
            .map(|e| self.get(&e.network))
            .collect::<Result<_>>()?;
        let _l = self.lock()?;
        let ns = netns::open(path)?;
        let mut out = Vec::new();
        let mut created = false;
        let existing = self.store.endpoints_of(&req.container)?;
        for (i, (er, n)) in req.endpoints.iter().zip(&nets).enumerate() {
            if existing.iter().any(|e| e.network_id == n.id) {
                continue;
            }
            let idx = existing.len() + i;
            out.push(self.join(req, er, n, &ns, idx, &mut created)?);
        }
        if !req.ports.is_empty() {
            let ports = self.choose_ports(&req.ports)?;
            self.store.reserve_ports(&req.container, &ports)?;
            self.start_proxy(&req.container, &ports)?;
        }
        // The rules change only with a new bridge or published ports; an existing bridge
        // already has its masquerade and isolation rules.
        if created || !req.ports.is_empty() {
            self.sync_firewall()?;
        }
        for n in &nets {
            if n.dns {
                self.sync_dns(n, true)?;
            }
        }
        Ok(out)
    }

    fn join(
        &mut self,
        req: &AttachRequest,
        er: &EndpointRequest,
        n: &Network,
        ns: &OwnedFd,
        idx: usize,
        created: &mut bool,
    ) -> Result<Endpoint> {
        let subnet = Subnet::parse(&n.subnet)?;
        let gw: IpAddr = n
            .gateway
            .parse()
            .map_err(|_| Error::internal(format!("network {}: bad gateway", n.name)))?;
        let range = if n.ip_range.is_empty() {
            subnet
        } else {
            Subnet::parse(&n.ip_range)?
        };
        let v6 = if n.ipv6 {
            let s6 = Subnet::parse(&n.subnet6)?;
            let gw6: IpAddr = n
                .gateway6
                .parse()
                .map_err(|_| Error::internal(format!("network {}: bad IPv6 gateway", n.name)))?;
            let r6 = if n.ip_range6.is_empty() {
                s6
            } else {
                Subnet::parse(&n.ip_range6)?
            };
            Some((s6, gw6, r6))
        } else {
            if let Some(ip6) = &er.ip6 {
                return Err(Error::invalid(format!(
                    "--ip6 {ip6}: network {} has no IPv6 (create it with --ipv6)",
                    n.name
                )));
            }
            None
        };
        let want4 = requested_address(n, er.ip.as_deref(), &subnet, gw)?;
        let want6 = match &v6 {
            Some((s6, gw6, _)) => requested_address(n, er.ip6.as_deref(), s6, *gw6)?,
            None => None,
        };
        let mac = er.mac.as_deref().map(ipam::parse_mac).transpose()?;
        let mut names = vec![
            req.name.clone(),
            req.container[..12.min(req.container.len())].to_string(),
        ];
        names.extend(er.aliases.iter().cloned());
        let mut e = Endpoint {
            container: req.container.clone(),
            container_name: req.name.clone(),
            network: n.name.clone(),
            network_id: n.id.clone(),
            ifname: format!("eth{idx}"),
            host_veth: format!("vb{}{}", &req.container[..11.min(req.container.len())], idx),
            prefix: subnet.prefix,
            gateway: n.gateway.clone(),
            prefix6: v6.map(|(s, _, _)| s.prefix).unwrap_or(0),
            gateway6: n.gateway6.clone(),
            aliases: er.aliases.clone(),
            names,
            ..Default::default()
        };
        let lease4 = store::LeaseRequest {
            pick: Box::new(|taken| ipam::pick(&subnet, &range, gw, taken)),
            want: want4,
        };
        let lease6 = v6.map(|(s6, gw6, r6)| store::LeaseRequest {
            pick: Box::new(move |taken| ipam::pick(&s6, &r6, gw6, taken)),
            want: want6,
        });
        self.store.lease(&mut e, lease4, lease6)?;
        let ip: Ipv4Addr = e.ip.parse().expect("leased ip");
        let ip6: Option<IpAddr> = v6.map(|_| e.ip6.parse().expect("leased ip6"));
        let mac = mac.unwrap_or_else(|| ipam::mac_for(ip));
        e.mac = ipam::format_mac(&mac);
        self.store.update_endpoint(&e)?;

        let mut nl = netlink::Netlink::open()?;
        let br = bridge_up(
            &mut nl,
            n,
            (gw, subnet.prefix),
            v6.map(|(s6, gw6, _)| (gw6, s6.prefix)),
            created,
        )?;
        let _ = nl.delete_link(&e.host_veth);
        nl.create_veth(&e.host_veth, &e.ifname, ns.as_raw_fd(), Some(mac))?;
        let hv = nl
            .link_index(&e.host_veth)?
            .ok_or_else(|| Error::internal(format!("veth {} vanished", e.host_veth)))?;
        nl.set_up(hv, Some(br))?;
        let (ifname, prefix, internal) = (e.ifname.clone(), subnet.prefix, n.internal);
        let first = idx == 0;
        let v6 = v6.map(|(s, g, _)| (s, g)).zip(ip6);
        netns::with_netlink(ns, move |nl| {
            let i = nl
                .link_index(&ifname)?
                .ok_or_else(|| Error::internal(format!("{ifname} missing in the container")))?;
            nl.add_address(i, IpAddr::V4(ip), prefix)?;
            if let Some(((s6, _), ip6)) = v6 {
                // Before the link is up: IPv6 on (the namespace may have it off by default),
                // no DAD for the link-local address either, and no SLAAC from stray RAs.
                for (k, v) in [
                    ("disable_ipv6", "0"),
                    ("accept_dad", "0"),
                    ("autoconf", "0"),
                ] {
                    sysctl(&format!("/proc/sys/net/ipv6/conf/{ifname}/{k}"), v);
                }
                nl.add_address(i, ip6, s6.prefix)?;
            }
            nl.set_up(i, None)?;
            if first && !internal {
                nl.add_default_route(gw)?;
                if let Some(((_, gw6), _)) = v6 {
                    nl.add_default_route(gw6)?;
                }
            }
            Ok(())
        })?;
        Ok(e)
    }

    /// Fails as attach would if a requested host port is taken (by a container or the host).
    pub fn check_ports(&self, reqs: &[PortRequest]) -> Result<()> {
        self.choose_ports(reqs).map(drop)
    }

    /// Host ports for each request: the given one if nothing holds it, else a free one.
    fn choose_ports(&self, reqs: &[PortRequest]) -> Result<Vec<PortBinding>> {
        let mut out: Vec<PortBinding> = Vec::new();
        for r in reqs {
            let proto = if r.proto.is_empty() {
                "tcp".to_string()
            } else {
                r.proto.clone()
            };
            let host_ip = r.host_ip.clone();
            let bind_ip: IpAddr = if host_ip.is_empty() {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            } else {
                host_ip
                    .parse()
                    .map_err(|_| Error::invalid(format!("invalid host IP {host_ip}")))?
            };
            let port = if r.host_port != 0 {
                if out
                    .iter()
                    .any(|p| p.proto == proto && p.host_port == r.host_port)
                    || self.store.port_taken(&proto, r.host_port)?
                {
                    return Err(Error::conflict(format!(
                        "Bind for {}:{} failed: port is already allocated",
                        if host_ip.is_empty() {
                            "0.0.0.0"
                        } else {
                            &host_ip
                        },
                        r.host_port
                    )));
                }
                probe(bind_ip, r.host_port, &proto)?;
                r.host_port
            } else {
                let mut found = None;
                for _ in 0..64 {
                    let p = free_port(bind_ip, &proto)?;
                    if !self.store.port_taken(&proto, p)?
                        && !out.iter().any(|x| x.proto == proto && x.host_port == p)
                    {
                        found = Some(p);
                        break;
                    }
                }
                found.ok_or_else(|| Error::new(ErrorKind::Unavailable, "no free host port"))?
            };
            out.push(PortBinding {
                host_ip,
                host_port: port,
                container_port: r.container_port,
                proto,
            });
        }
        Ok(out)
    }

    /// Leaves every network: leases, ports and their rules, DNS names at once; then unpins
    /// the namespace. The slow kernel work (deleting the host veths, whose namespace is going
    /// anyway, and bridges left without containers) is handed to a detached reaper after a
    /// grace period, so `run --rm` does not wait for it and back-to-back containers reuse the
    /// bridge. Safe to repeat. The reaper starts when the returned [`Reap`] drops.
    pub fn detach(&mut self, container: &str) -> Result<Reap> {
        let l = self.lock()?;
        let eps = self.store.endpoints_of(container)?;
        let had_ports = !self.ports_of(container)?.is_empty();
        self.stop_proxy(container);
        self.store.release(container, None)?;
        self.store.release_ports(container)?;
        if had_ports {
            self.sync_firewall()?;
        }
        for e in &eps {
            if let Some(n) = self.store.find_network(&e.network_id)? {
                if n.dns {
                    self.sync_dns(&n, false)?;
                }
            }
        }
        netns::remove(&self.netns_path(container));
        drop(l);
        let veths: Vec<String> = eps.iter().map(|e| e.host_veth.clone()).collect();
        let run = !veths.is_empty();
        Ok(self.reaper(veths, run))
    }

    /// A reaper for `veths` and then the empty bridges; `run` false: nothing to do.
    fn reaper(&self, veths: Vec<String>, run: bool) -> Reap {
        let bridges = if run {
            let nets = self.store.networks().unwrap_or_default();
            nets.into_iter().map(|n| n.bridge).collect()
        } else {
            Vec::new()
        };
        Reap {
            exe: self.exe.clone(),
            root: self.root.clone(),
            table: self.table.clone(),
            bridges,
            veths,
            run,
        }
    }

    /// How long an empty network keeps its bridge (and so its rules) for the next container.
    const BRIDGE_GRACE: std::time::Duration = std::time::Duration::from_millis(1500);

    /// Deletes the bridge of every network without containers, then rebuilds the rules.
    pub fn reap(&self) -> Result<()> {
        let _l = self.lock()?;
        let mut nl = netlink::Netlink::open()?;
        let mut changed = false;
        for n in self.store.networks()? {
            if self.store.endpoints_on(&n.id)?.is_empty() && nl.link_index(&n.bridge)?.is_some() {
                self.stop_dns(&n);
                nl.delete_link(&n.bridge)?;
                changed = true;
            }
        }
        if changed {
            self.sync_firewall()?;
        }
        Ok(())
    }

    /// `network disconnect`: leaves one network (the namespace stays).
    pub fn disconnect(&mut self, container: &str, network: &str) -> Result<()> {
        let n = self.get(network)?;
        let _l = self.lock()?;
        let Some(e) = self
            .store
            .endpoints_of(container)?
            .into_iter()
            .find(|e| e.network_id == n.id)
        else {
            return Err(Error::not_found(format!(
                "container {container} is not connected to network {}",
                n.name
            )));
        };
        netlink::Netlink::open()?.delete_link(&e.host_veth)?;
        self.store.release(container, Some(&n.id))?;
        if n.dns {
            self.sync_dns(&n, false)?;
        }
        drop(_l);
        drop(self.reaper(Vec::new(), true));
        Ok(())
    }

    /// Finishes the detach of every container `stale` says is gone (a killed berth or monitor),
    /// and unpins namespaces nobody has an endpoint for.
    pub fn gc(&mut self, stale: impl Fn(&str) -> bool) -> Result<()> {
        let mut ids: Vec<String> = self
            .store
            .endpoints()?
            .into_iter()
            .map(|e| e.container)
            .collect();
        ids.extend(self.store.ports()?.into_iter().map(|(c, _)| c));
        if let Ok(rd) = std::fs::read_dir(self.root.join("netns")) {
            ids.extend(
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned()),
            );
        }
        ids.sort();
        ids.dedup();
        for id in ids {
            if stale(&id) {
                let _ = self.detach(&id)?;
            }
        }
        Ok(())
    }

    // ---- firewall and DNS -------------------------------------------------------------

    fn sync_firewall(&self) -> Result<()> {
        let eps = self.store.endpoints()?;
        let mut r = firewall::Rules::default();
        let mut nl = netlink::Netlink::open()?;
        for n in self.store.networks()? {
            if eps.iter().any(|e| e.network_id == n.id) || nl.link_index(&n.bridge)?.is_some() {
                r.bridges.push(firewall::BridgeRules {
                    name: n.bridge.clone(),
                    subnet: n.subnet.clone(),
                    subnet6: n.subnet6.clone(),
                    internal: n.internal,
                });
            }
        }
        for (c, p) in self.store.ports()? {
            // The container's first network carries its published ports.
            if let Some(e) = eps.iter().find(|e| e.container == c) {
                r.ports.push(firewall::PortRule {
                    host_ip: p.host_ip.clone(),
                    proto: p.proto.clone(),
                    host_port: p.host_port,
                    ip: e.ip.clone(),
                    ip6: e.ip6.clone(),
                    port: p.container_port,
                });
            }
        }
        firewall::apply(&self.table, &r)
    }

    /// Whether the container's ports published on every host address are published for IPv6
    /// too (as docker does whenever the host has IPv6): by NAT and the [::1] relay for a
    /// container with an IPv6 address, by the relay alone for one without.
    pub fn publishes_ipv6(&self, container: &str) -> Result<bool> {
        Ok(self
            .store
            .endpoints_of(container)?
            .first()
            .is_some_and(|e| !e.ip6.is_empty() || ipv6_available().is_ok()))
    }

    /// The IPv6 listeners NAT cannot serve, relayed by the container's port proxy: [::1]
    /// (IPv6 cannot route from loopback to a bridge), and for a container without an IPv6
    /// address, every IPv6 binding (IPv6 cannot be NATed to IPv4).
    fn start_proxy(&self, container: &str, ports: &[PortBinding]) -> Result<()> {
        let Some(e) = self.store.endpoints_of(container)?.into_iter().next() else {
            return Ok(());
        };
        if ipv6_available().is_err() {
            return Ok(());
        }
        let ip6 = e.ip6.parse::<IpAddr>().ok();
        let target = ip6.or_else(|| e.ip.parse().ok());
        let relays = ports
            .iter()
            .filter_map(|p| {
                let at: std::net::Ipv6Addr = match (ip6, p.host_ip.as_str()) {
                    (Some(_), "" | "::" | "::1") => std::net::Ipv6Addr::LOCALHOST,
                    (Some(_), _) => return None,
                    (None, "" | "::") => std::net::Ipv6Addr::UNSPECIFIED,
                    (None, h) => h.parse().ok()?,
                };
                let to = std::net::SocketAddr::new(target?, p.container_port);
                Some(proxy::Relay::bind(
                    &p.proto,
                    std::net::SocketAddr::new(at.into(), p.host_port),
                    to,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        if relays.is_empty() {
            return Ok(());
        }
        let file = proxy::pid_file(&self.root, container);
        if let Some(d) = file.parent() {
            std::fs::create_dir_all(d)
                .map_err(|e| Error::io(format!("create {}", d.display()), e))?;
        }
        let mut c = std::process::Command::new(&self.exe);
        c.arg0("berth")
            .arg(proxy::ARG)
            .arg(&self.root)
            .arg(container)
            .args(relays.iter().map(|r| r.arg()));
        c.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let fds: Vec<i32> = relays.iter().map(|r| r.sock.as_raw_fd()).collect();
        unsafe {
            c.pre_exec(move || {
                for fd in &fds {
                    libc::fcntl(*fd, libc::F_SETFD, 0);
                }
                Ok(())
            });
        }
        let status = c
            .status()
            .map_err(|e| Error::io(format!("start the port proxy ({})", self.exe.display()), e))?;
        if !status.success() {
            return Err(Error::internal("the port proxy did not start"));
        }
        Ok(())
    }

    fn stop_proxy(&self, container: &str) {
        let file = proxy::pid_file(&self.root, container);
        if let Some(pid) = alive_pid(&file) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = std::fs::remove_file(file);
    }

    fn dns_dir(&self, n: &Network) -> PathBuf {
        self.root.join("network").join(&n.id)
    }

    /// Rewrites the names the network's responder serves; starts it if `start` and not running.
    fn sync_dns(&self, n: &Network, start: bool) -> Result<()> {
        let eps = self.store.endpoints_on(&n.id)?;
        if eps.is_empty() {
            self.stop_dns(n);
            return Ok(());
        }
        let dir = self.dns_dir(n);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        let mut text = String::new();
        for e in &eps {
            text.push_str(&format!("{} {}\n", e.ip, e.names.join(" ")));
            if !e.ip6.is_empty() {
                text.push_str(&format!("{} {}\n", e.ip6, e.names.join(" ")));
            }
        }
        write_atomic(&dir.join("hosts"), text.as_bytes())?;
        if start && !self.dns_alive(n) {
            self.start_dns(n)?;
        }
        Ok(())
    }

    fn dns_alive(&self, n: &Network) -> bool {
        alive_pid(&self.dns_dir(n).join("dns.pid")).is_some()
    }

    fn start_dns(&self, n: &Network) -> Result<()> {
        let gw: IpAddr = n
            .gateway
            .parse()
            .map_err(|_| Error::internal("bad gateway"))?;
        let sock = match std::net::UdpSocket::bind((gw, 53)) {
            Ok(s) => s,
            // A responder whose starter was killed before it recorded it: it already serves
            // this network's hosts file (and wrote its own pid file).
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => return Ok(()),
            Err(e) => return Err(Error::io(format!("bind DNS on {gw}:53"), e)),
        };
        let fd = sock.as_raw_fd();
        let (rd, wr) = rustix::pipe::pipe().map_err(|e| Error::io("pipe", e.into()))?;
        let mut c = std::process::Command::new(&self.exe);
        c.arg0("berth").args([
            dns::ARG,
            &self.root.to_string_lossy(),
            &n.id,
            &fd.to_string(),
            &wr.as_raw_fd().to_string(),
        ]);
        c.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let wfd = wr.as_raw_fd();
        unsafe {
            c.pre_exec(move || {
                libc::fcntl(fd, libc::F_SETFD, 0);
                libc::fcntl(wfd, libc::F_SETFD, 0);
                Ok(())
            });
        }
        let mut child = c.spawn().map_err(|e| {
            Error::io(
                format!("start the DNS responder ({})", self.exe.display()),
                e,
            )
        })?;
        drop(wr);
        let _ = child.wait();
        // The daemonised responder writes its pid, then we record it with its start time.
        let mut buf = [0u8; 32];
        let n_read = rustix::io::read(&rd, &mut buf).unwrap_or(0);
        let _pid: i32 = String::from_utf8_lossy(&buf[..n_read])
            .trim()
            .parse()
            .map_err(|_| Error::internal("the DNS responder did not start"))?;
        Ok(())
    }

    fn stop_dns(&self, n: &Network) {
        let dir = self.dns_dir(n);
        if let Some(pid) = alive_pid(&dir.join("dns.pid")) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

use std::os::unix::process::CommandExt;

/// argv[1] of the reaper.
pub const REAP_ARG: &str = "__netreap";

/// What a detach leaves to a detached reaper (`berth __netreap ROOT TABLE BRIDGES VETH...`, see
/// [`reap_main`]): started when this drops, so a caller on a hot path (a monitor ending
/// `docker run --rm`) can hold it until it has reported the removal; starting it is an exec.
#[must_use = "the reaper starts when this drops"]
pub struct Reap {
    exe: PathBuf,
    root: PathBuf,
    table: String,
    bridges: Vec<String>,
    veths: Vec<String>,
    run: bool,
}

impl Drop for Reap {
    fn drop(&mut self) {
        if !self.run {
            return;
        }
        let mut c = std::process::Command::new(&self.exe);
        c.arg0("berth")
            .arg(REAP_ARG)
            .arg(&self.root)
            .arg(&self.table)
            .arg(self.bridges.join(","))
            .args(&self.veths);
        c.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Ok(mut child) = c.spawn() {
            let _ = child.wait();
        }
    }
}

/// `berth __netreap ROOT TABLE BRIDGES VETH...`: detaches (its parent returns at once),
/// deletes the host veths, waits the grace period, then deletes the bridges of networks left
/// without containers and rebuilds the rules. If the root is gone meanwhile (a test's temp
/// root), its bridges and its table go: nobody can use them any more.
pub fn reap_main(args: &[String]) -> i32 {
    let (Some(root), Some(table), Some(bridges)) =
        (args.first().map(PathBuf::from), args.get(1), args.get(2))
    else {
        return 2;
    };
    unsafe {
        match libc::fork() {
            0 => {}
            n if n > 0 => return 0,
            _ => return 1,
        }
        libc::setsid();
    }
    if let Ok(mut nl) = netlink::Netlink::open() {
        for v in &args[3..] {
            let _ = nl.delete_link(v);
        }
    }
    std::thread::sleep(Networks::BRIDGE_GRACE);
    let root_gone = || {
        if let Ok(mut nl) = netlink::Netlink::open() {
            for b in bridges.split(',').filter(|b| !b.is_empty()) {
                let _ = nl.delete_link(b);
            }
        }
        let _ = firewall::delete(table);
    };
    match Networks::open_existing(&root, Path::new("/proc/self/exe")) {
        Ok(n) => {
            let r = n.reap();
            // Removed while we reaped: what we read (and the rules we rebuilt) belonged to
            // a database on its way out.
            if !root.join("networks.db").exists() {
                root_gone();
                return 0;
            }
            match r {
                Ok(()) => 0,
                Err(_) => 1,
            }
        }
        Err(_) if !root.join("networks.db").exists() => {
            root_gone();
            0
        }
        Err(_) => 1,
    }
}

fn is_mountpoint(p: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let s = p.to_string_lossy();
    info.lines().any(|l| l.split(' ').nth(4) == Some(&*s))
}

/// A host port in use gives a clear error before any rule exists.
fn probe(ip: IpAddr, port: u16, proto: &str) -> Result<()> {
    let r = if proto == "udp" {
        std::net::UdpSocket::bind((ip, port)).map(drop)
    } else {
        std::net::TcpListener::bind((ip, port)).map(drop)
    };
    r.map_err(|e| publish_error(std::net::SocketAddr::new(ip, port), proto, e))
}

/// Why `addr` cannot be bound for a published port.
fn publish_error(addr: std::net::SocketAddr, proto: &str, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        Error::conflict(format!(
            "cannot publish {addr}/{proto}: address already in use on the host"
        ))
    } else {
        Error::io(format!("bind host port {addr}/{proto}"), e)
    }
}

fn free_port(ip: IpAddr, proto: &str) -> Result<u16> {
    let r = if proto == "udp" {
        std::net::UdpSocket::bind((ip, 0)).and_then(|s| s.local_addr())
    } else {
        std::net::TcpListener::bind((ip, 0)).and_then(|s| s.local_addr())
    };
    r.map(|a| a.port())
        .map_err(|e| Error::io("choose a free host port", e))
}

/// Subnets of every root on this host; entries of roots that no longer exist are dropped.
fn registry_read(_me: &Path) -> Vec<(Subnet, String)> {
    let text = std::fs::read_to_string(REGISTRY).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (s, r) = l.split_once(' ')?;
            let s = Subnet::parse(s).ok()?;
            Path::new(r)
                .join("networks.db")
                .exists()
                .then(|| (s, r.to_string()))
        })
        .collect()
}

fn registry_write(v: &[(Subnet, String)]) -> Result<()> {
    let text: String = v.iter().map(|(s, r)| format!("{s} {r}\n")).collect();
    std::fs::create_dir_all("/run/berth").map_err(|e| Error::io("create /run/berth", e))?;
    write_atomic(Path::new(REGISTRY), text.as_bytes())
}

/// The subnet asked for if nothing holds it (another network of any berth root, a host route),
/// else the first free candidate.
fn choose_subnet(
    want: Option<&str>,
    mut candidates: impl Iterator<Item = Subnet>,
    taken: &[(Subnet, String)],
    routes: &[Subnet],
) -> Result<Subnet> {
    let Some(want) = want else {
        return candidates
            .find(|c| {
                !taken.iter().any(|(t, _)| t.overlaps(c)) && !routes.iter().any(|r| r.overlaps(c))
            })
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Unavailable,
                    "could not find a free subnet for the network",
                )
            });
    };
    let s = Subnet::parse(want)?;
    if let Some((t, _)) = taken.iter().find(|(t, _)| t.overlaps(&s)) {
        return Err(Error::conflict(format!(
            "invalid pool request: Pool overlaps with other one on this address space ({t})"
        )));
    }
    if let Some(r) = routes.iter().find(|r| r.overlaps(&s)) {
        return Err(Error::conflict(format!(
            "subnet {s} overlaps the host route to {r}"
        )));
    }
    Ok(s)
}

/// `--ip`/`--ip6`: a usable address of the network's subnet (of that family) other than the
/// gateway.
fn requested_address(
    n: &Network,
    want: Option<&str>,
    subnet: &Subnet,
    gw: IpAddr,
) -> Result<Option<IpAddr>> {
    let Some(s) = want else { return Ok(None) };
    let ip: IpAddr = s
        .parse()
        .ok()
        .filter(|ip: &IpAddr| ip.is_ipv6() == subnet.is_v6())
        .ok_or_else(|| {
            let fam = if subnet.is_v6() { "IPv6" } else { "IPv4" };
            Error::invalid(format!("invalid {fam} address: {s}"))
        })?;
    if !subnet.usable(ip) || ip == gw {
        return Err(Error::invalid(format!(
            "address {ip} is not a usable address of network {} ({subnet})",
            n.name
        )));
    }
    Ok(Some(ip))
}

/// The network's bridge, made if missing (`created` then), with its gateway addresses
/// (IPv4, and IPv6 on a dual-stack network) and forwarding on; returns its index.
fn bridge_up(
    nl: &mut netlink::Netlink,
    n: &Network,
    (gw, prefix): (IpAddr, u8),
    v6: Option<(IpAddr, u8)>,
    created: &mut bool,
) -> Result<u32> {
    if nl.link_index(&n.bridge)?.is_none() {
        *created = true;
    }
    nl.create_bridge(&n.bridge)?;
    let br = nl
        .link_index(&n.bridge)?
        .ok_or_else(|| Error::internal(format!("bridge {} vanished", n.bridge)))?;
    nl.add_address(br, gw, prefix)?;
    if let Some((gw6, prefix6)) = v6 {
        // berth's own bridge: IPv6 on, no DAD (the gateway answers at once), and a router.
        for (k, v) in [
            ("disable_ipv6", "0"),
            ("accept_dad", "0"),
            ("forwarding", "1"),
        ] {
            sysctl(&format!("/proc/sys/net/ipv6/conf/{}/{k}", n.bridge), v);
        }
        nl.add_address(br, gw6, prefix6)?;
    }
    nl.set_up(br, None)?;
    // Published ports reached from 127.0.0.1 are routed out of the bridge.
    sysctl(
        &format!("/proc/sys/net/ipv4/conf/{}/route_localnet", n.bridge),
        "1",
    );
    if !n.internal {
        sysctl("/proc/sys/net/ipv4/ip_forward", "1");
        if v6.is_some() {
            // IPv6 forwards only with the global switch (as docker sets it).
            sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1");
        }
    }
    Ok(br)
}

/// `--ip-range`: a part of the subnet addresses are leased from ("" for the whole subnet).
fn choose_range(subnet: &Subnet, want: Option<&str>) -> Result<String> {
    let Some(r) = want else {
        return Ok(String::new());
    };
    let r = Subnet::parse(r)?;
    if !subnet.overlaps(&r) || r.prefix < subnet.prefix {
        return Err(Error::invalid(format!(
            "ip range {r} is not inside subnet {subnet}"
        )));
    }
    Ok(r.to_string())
}

/// The gateway asked for (inside the subnet), else the subnet's first host.
fn choose_gateway(subnet: &Subnet, want: Option<&str>) -> Result<IpAddr> {
    let Some(g) = want else {
        return Ok(subnet.first_host());
    };
    let ip: IpAddr = g
        .parse()
        .map_err(|_| Error::invalid(format!("invalid gateway {g}")))?;
    if !subnet.usable(ip) {
        return Err(Error::invalid(format!(
            "gateway {g} is not in subnet {subnet}"
        )));
    }
    Ok(ip)
}

/// An IPv6 network needs IPv6 on the host: a clear error instead of a failed address later.
fn ipv6_available() -> Result<()> {
    match std::fs::read_to_string("/proc/sys/net/ipv6/conf/default/disable_ipv6") {
        Ok(v) if v.trim() == "0" => Ok(()),
        Ok(_) => Err(Error::invalid(
            "--ipv6: IPv6 is disabled on this host (net.ipv6.conf.default.disable_ipv6=1)",
        )),
        Err(_) => Err(Error::invalid(
            "--ipv6: this kernel has no IPv6 (no /proc/sys/net/ipv6)",
        )),
    }
}
