//! The engine's side of networking: which network mode a container has, asking berth-network
//! to attach and detach it, /etc/hosts and /etc/resolv.conf of its init layer, and docker's
//! NetworkSettings for inspect. Bridges, veths, leases, rules and DNS live in berth-network.

use crate::error::{Error, ErrorKind, Result};
use crate::model::{Container, HostConfig};
use crate::snapshot::container_resolv_conf;
use crate::Engine;
use berth_network::{AttachRequest, Endpoint, EndpointRequest, Networks, PortRequest};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

impl From<berth_network::Error> for Error {
    fn from(e: berth_network::Error) -> Error {
        let kind = match e.kind() {
            berth_network::ErrorKind::NotFound => ErrorKind::NotFound,
            berth_network::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
            berth_network::ErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
            berth_network::ErrorKind::Conflict => ErrorKind::Conflict,
            berth_network::ErrorKind::Unavailable => ErrorKind::Unavailable,
            berth_network::ErrorKind::Internal => ErrorKind::Internal,
        };
        Error::new(kind, e.message().to_string())
    }
}

/// Modes that get their own namespace from berth-network.
pub(crate) fn is_bridged(mode: &str) -> bool {
    !matches!(mode, "none" | "host") && !mode.starts_with("container:")
}

/// The networks of `root`, whose helpers (`__dns`, `__netreap`) run from berth-monitor next to
/// `exe`: a DNS responder lives as long as its network, and berth's API server and registry
/// client would only add to its resident set.
pub(crate) fn open(root: &Path, exe: Option<&Path>) -> Result<Networks> {
    let exe = match exe {
        Some(e) => e.to_path_buf(),
        None => std::env::current_exe().map_err(|e| Error::io("locate the berth binary", e))?,
    };
    Ok(Networks::open(
        root,
        &exe.with_file_name(crate::monitor::BIN),
    )?)
}

impl Engine {
    /// The networks of this root.
    pub fn networks(&self) -> Result<Networks> {
        open(self.root(), self.opts.exe.as_deref())
    }

    /// Detaches every container whose network a killed berth or monitor left behind: gone
    /// from the database, or neither running nor being worked on (its lock is free).
    pub fn network_gc(&self, nets: &mut Networks) -> Result<()> {
        nets.gc(|id| match self.get(id) {
            Err(e) => e.kind() == ErrorKind::NotFound,
            // A monitor that a killed CLI left starting the container still needs the network.
            Ok(c) => {
                !c.state.running
                    && crate::sys::try_lock(&self.container_dir(id).join("lock"))
                    && !monitor_alive(id)
            }
        })?;
        Ok(())
    }

    /// Before the monitor starts: the container's network namespace, attached to its
    /// networks, with /etc/hosts and /etc/resolv.conf to match. Returns the namespace path
    /// for the spec (None: the monitor's own namespace).
    pub(crate) fn network_setup(&self, c: &Container) -> Result<Option<PathBuf>> {
        let h = &c.host_config;
        let mode = h.network_mode.as_str();
        let dir = self.container_dir(&c.id);
        let mut eps = Vec::new();
        let mut dns_gw = None;
        let path = if let Some(other) = mode.strip_prefix("container:") {
            let o = self.get(other)?;
            if !o.state.running {
                return Err(Error::conflict(format!(
                    "cannot join network of a non running container: {}",
                    o.id
                )));
            }
            let nets = self.networks()?;
            let pinned = nets.netns_path(&o.id);
            Some(if pinned.exists() {
                pinned
            } else {
                PathBuf::from(format!("/proc/{}/ns/net", o.state.pid))
            })
        } else if is_bridged(mode) {
            let mut nets = self.networks()?;
            self.network_gc(&mut nets)?;
            let mut endpoints = vec![endpoint_request(mode, c)];
            for (name, _) in c.networking.iter().filter(|(n, _)| n.as_str() != mode) {
                endpoints.push(endpoint_request(name, c));
            }
            let req = AttachRequest {
                container: c.id.clone(),
                name: c.name.clone(),
                endpoints,
                ports: port_requests(c)?,
            };
            eps = nets.attach(&req)?;
            if let Some(n) = nets.get(mode).ok().filter(|n| n.dns) {
                dns_gw = Some(n.gateway);
            }
            Some(nets.netns_path(&c.id))
        } else {
            None
        };
        let r = (|| {
            let init = dir.join("init/etc");
            if mode != "host" {
                crate::sys::write_atomic(&init.join("hosts"), hosts_file(c, &eps).as_bytes())?;
            }
            let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            crate::sys::write_atomic(
                &init.join("resolv.conf"),
                resolv_conf(h, &host_resolv, mode == "host", dns_gw.as_deref()).as_bytes(),
            )
        })();
        if let Err(e) = r {
            self.network_teardown(&c.id);
            return Err(e);
        }
        Ok(path)
    }

    /// Leaves every network (idempotent; also what the monitor does when the container ends).
    pub(crate) fn network_teardown(&self, id: &str) {
        if let Ok(mut nets) = self.networks() {
            let _ = nets.detach(id);
        }
    }

    /// docker's NetworkSettings.
    pub fn network_settings(&self, c: &Container) -> Value {
        let mode = c.host_config.network_mode.as_str();
        let nets = self.networks().ok();
        let eps: Vec<Endpoint> = if c.state.running {
            nets.as_ref()
                .and_then(|n| n.endpoints_of(&c.id).ok())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let ports = if c.state.running {
            nets.as_ref()
                .and_then(|n| n.ports_of(&c.id).ok())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let mut networks = serde_json::Map::new();
        let mut joined: Vec<String> = vec![];
        if is_bridged(mode) {
            joined.push(mode.to_string());
            joined.extend(c.networking.keys().filter(|k| k.as_str() != mode).cloned());
        } else if mode == "none" || mode == "host" {
            joined.push(mode.to_string());
        }
        for name in joined {
            let e = eps.iter().find(|e| e.network == name);
            let mut req = c.networking.get(&name).cloned().unwrap_or_default();
            let net = nets
                .as_ref()
                .filter(|_| is_bridged(&name))
                .and_then(|n| n.get(&name).ok());
            // The short id is a name on user networks (docker <= 24 lists it here too, and
            // docker-compose reconnects a container whose aliases lack it).
            if net.as_ref().is_some_and(|n| n.dns) && !req.aliases.iter().any(|a| a == &c.id[..12])
            {
                req.aliases.insert(0, c.id[..12].to_string());
            }
            let net_id = net.map(|n| n.id).unwrap_or_default();
            let mut ipam = serde_json::Map::new();
            if !req.ipv4_address.is_empty() {
                ipam.insert("IPv4Address".into(), json!(req.ipv4_address));
            }
            if !req.ipv6_address.is_empty() {
                ipam.insert("IPv6Address".into(), json!(req.ipv6_address));
            }
            networks.insert(name.clone(), json!({
                "IPAMConfig": if ipam.is_empty() { Value::Null } else { Value::Object(ipam) },
                "Links": null,
                "Aliases": if req.aliases.is_empty() { Value::Null } else { json!(req.aliases) },
                "MacAddress": e.map(|e| e.mac.clone()).unwrap_or_default(),
                "NetworkID": net_id,
                "EndpointID": e.map(|e| format!("{}{}", &e.container[..32.min(e.container.len())], &e.network_id[..32.min(e.network_id.len())])).unwrap_or_default(),
                "Gateway": e.map(|e| e.gateway.clone()).unwrap_or_default(),
                "IPAddress": e.map(|e| e.ip.clone()).unwrap_or_default(),
                "IPPrefixLen": e.map(|e| e.prefix).unwrap_or(0),
                "IPv6Gateway": e.map(|e| e.gateway6.clone()).unwrap_or_default(),
                "GlobalIPv6Address": e.map(|e| e.ip6.clone()).unwrap_or_default(),
                "GlobalIPv6PrefixLen": e.map(|e| e.prefix6).unwrap_or(0),
                "DNSNames": e.map(|e| json!(e.names)).unwrap_or(Value::Null),
            }));
        }
        let mut pmap = serde_json::Map::new();
        for (k, _) in exposed(c) {
            pmap.insert(k, Value::Null);
        }
        let v6 = c.state.running
            && nets
                .as_ref()
                .is_some_and(|n| n.publishes_ipv6(&c.id).unwrap_or(false));
        for (k, ip, hp) in port_list(&ports, v6) {
            let entry = pmap.entry(k).or_insert(Value::Null);
            if entry.is_null() {
                *entry = json!([]);
            }
            entry
                .as_array_mut()
                .unwrap()
                .push(json!({"HostIp": ip, "HostPort": hp.to_string()}));
        }
        let first = if mode == "bridge" {
            eps.iter().find(|e| e.network == "bridge")
        } else {
            None
        };
        json!({
            "Bridge": "",
            "SandboxID": if c.state.running && is_bridged(mode) { c.id.clone() } else { String::new() },
            "SandboxKey": if c.state.running && is_bridged(mode) { nets.as_ref().map(|n| n.netns_path(&c.id).to_string_lossy().into_owned()).unwrap_or_default() } else { String::new() },
            "Ports": pmap,
            "HairpinMode": false,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "SecondaryIPAddresses": null,
            "SecondaryIPv6Addresses": null,
            "EndpointID": first.map(|e| format!("{}{}", &e.container[..32.min(e.container.len())], &e.network_id[..32.min(e.network_id.len())])).unwrap_or_default(),
            "Gateway": first.map(|e| e.gateway.clone()).unwrap_or_default(),
            "GlobalIPv6Address": first.map(|e| e.ip6.clone()).unwrap_or_default(),
            "GlobalIPv6PrefixLen": first.map(|e| e.prefix6).unwrap_or(0),
            "IPAddress": first.map(|e| e.ip.clone()).unwrap_or_default(),
            "IPPrefixLen": first.map(|e| e.prefix).unwrap_or(0),
            "IPv6Gateway": first.map(|e| e.gateway6.clone()).unwrap_or_default(),
            "MacAddress": first.map(|e| e.mac.clone()).unwrap_or_default(),
            "Networks": networks,
        })
    }

    /// `berth inspect`'s object for a container (NetworkSettings from the networks database).
    pub fn inspect(&self, c: &Container) -> Value {
        let mut v = c.inspect();
        v["NetworkSettings"] = self.network_settings(c);
        v
    }

    /// `berth port`: (container port/proto, host ip, host port) of a running container.
    pub fn ports(&self, key: &str) -> Result<Vec<(String, String, u16)>> {
        let c = self.get(key)?;
        if !c.state.running {
            return Ok(Vec::new());
        }
        let nets = self.networks()?;
        Ok(port_list(
            &nets.ports_of(&c.id)?,
            nets.publishes_ipv6(&c.id)?,
        ))
    }

    /// `network connect`: joins another network now (running) or at start (created).
    pub fn network_connect(
        &self,
        network: &str,
        key: &str,
        aliases: &[String],
        ip: Option<&str>,
        ip6: Option<&str>,
    ) -> Result<()> {
        let mut c = self.get(key)?;
        let _lock = crate::sys::lock_file(&self.container_dir(&c.id).join("lock"))?;
        let mut nets = self.networks()?;
        let n = nets.get(network)?;
        if !is_bridged(&c.host_config.network_mode) {
            return Err(Error::invalid(format!("container sharing network namespace with another container or host cannot be connected to any other network ({})", c.host_config.network_mode)));
        }
        if c.host_config.network_mode == n.name || c.networking.contains_key(&n.name) {
            return Err(Error::conflict(format!(
                "endpoint with name {} already exists in network {}",
                c.name, n.name
            )));
        }
        if let (Some(ip6), false) = (ip6, n.ipv6) {
            return Err(Error::invalid(format!(
                "--ip6 {ip6}: network {} has no IPv6 (create it with --ipv6)",
                n.name
            )));
        }
        let cfg = crate::model::EndpointConfig {
            aliases: aliases.to_vec(),
            ipv4_address: ip.unwrap_or_default().to_string(),
            ipv6_address: ip6.unwrap_or_default().to_string(),
            mac_address: String::new(),
        };
        c.networking.insert(n.name.clone(), cfg);
        if c.state.running {
            let req = AttachRequest {
                container: c.id.clone(),
                name: c.name.clone(),
                endpoints: vec![endpoint_request(&n.name, &c)],
                ports: vec![],
            };
            nets.attach(&req)?;
        }
        self.save(&c)
    }

    /// `network disconnect`.
    pub fn network_disconnect(&self, network: &str, key: &str) -> Result<()> {
        let mut c = self.get(key)?;
        let _lock = crate::sys::lock_file(&self.container_dir(&c.id).join("lock"))?;
        let mut nets = self.networks()?;
        let n = nets.get(network)?;
        if c.host_config.network_mode == n.name {
            return Err(Error::invalid(format!(
                "container {} is attached to {} as its primary network: berth cannot disconnect it",
                c.name, n.name
            )));
        }
        if c.networking.remove(&n.name).is_none() {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "container {} is not connected to network {}",
                    c.name, n.name
                ),
            ));
        }
        if c.state.running {
            nets.disconnect(&c.id, &n.name)?;
        }
        self.save(&c)
    }

    /// Whether any container (running or not) names the network: `network rm` refuses then.
    pub fn network_users(&self, name: &str) -> Result<Vec<String>> {
        Ok(self
            .list(true)?
            .into_iter()
            .filter(|c| c.host_config.network_mode == name || c.networking.contains_key(name))
            .map(|c| c.name)
            .collect())
    }
}

impl Engine {
    /// `docker network inspect`'s object: the stored record with its containers' endpoints.
    pub fn network_inspect(&self, n: &berth_network::Network) -> Value {
        let nets = self.networks().ok();
        let mut containers = serde_json::Map::new();
        if let Some(eps) = nets.as_ref().and_then(|x| x.endpoints_on(n).ok()) {
            for ep in eps {
                containers.insert(ep.container.clone(), json!({
                    "Name": ep.container_name,
                    "EndpointID": format!("{}{}", &ep.container[..32.min(ep.container.len())], &ep.network_id[..32.min(ep.network_id.len())]),
                    "MacAddress": ep.mac,
                    "IPv4Address": format!("{}/{}", ep.ip, ep.prefix),
                    "IPv6Address": if ep.ip6.is_empty() { String::new() } else { format!("{}/{}", ep.ip6, ep.prefix6) },
                }));
            }
        }
        let mut cfg = json!({"Subnet": n.subnet, "Gateway": n.gateway});
        if !n.ip_range.is_empty() {
            cfg["IPRange"] = json!(n.ip_range);
        }
        let mut configs = vec![cfg];
        if n.ipv6 {
            let mut cfg6 = json!({"Subnet": n.subnet6, "Gateway": n.gateway6});
            if !n.ip_range6.is_empty() {
                cfg6["IPRange"] = json!(n.ip_range6);
            }
            configs.push(cfg6);
        }
        let mut options = n.options.clone();
        options
            .entry("com.docker.network.bridge.name".into())
            .or_insert_with(|| n.bridge.clone());
        json!({
            "Name": n.name,
            "Id": n.id,
            "Created": n.created,
            "Scope": "local",
            "Driver": n.driver,
            "EnableIPv6": n.ipv6,
            "IPAM": {"Driver": "default", "Options": {}, "Config": configs},
            "Internal": n.internal,
            "Attachable": false,
            "Ingress": false,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": false,
            "Containers": containers,
            "Options": options,
            "Labels": n.labels,
        })
    }

    /// `network rm`: refused while any container (running or not) names the network.
    pub fn network_remove(&self, key: &str) -> Result<berth_network::Network> {
        let nets = self.networks()?;
        let n = nets.get(key)?;
        let users = self.network_users(&n.name)?;
        if !users.is_empty() {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "error while removing network: network {} id {} has active endpoints ({})",
                    n.name,
                    n.id,
                    users.join(", ")
                ),
            ));
        }
        Ok(nets.remove(&n.name)?)
    }

    /// `network prune`: every user network that matches `filters` and nobody uses; their names.
    pub fn network_prune(&self, filters: &[(String, String)]) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for n in self.networks()?.list()? {
            if n.name == berth_network::DEFAULT_NETWORK || !network_matches(&n, filters)? {
                continue;
            }
            if self.network_remove(&n.name).is_ok() {
                removed.push(n.name);
            }
        }
        Ok(removed)
    }
}

/// docker's network filters (`name`, `id`, `driver`, `scope`, `type`, `label`), every one ANDed.
pub fn network_matches(n: &berth_network::Network, filters: &[(String, String)]) -> Result<bool> {
    for (k, v) in filters {
        let ok = match k.as_str() {
            "name" => n.name.contains(v.as_str()),
            "id" => n.id.starts_with(v.as_str()),
            "driver" => n.driver == *v,
            "scope" => v == "local",
            "type" => (v == "builtin") == (n.name == berth_network::DEFAULT_NETWORK),
            "label" => match v.split_once('=') {
                Some((lk, lv)) => n.labels.get(lk).is_some_and(|x| x == lv),
                None => n.labels.contains_key(v.as_str()),
            },
            _ => return Err(Error::invalid(format!("invalid filter '{k}'"))),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether a monitor process for container `id` exists (`berth __monitor ROOT ID ...`).
fn monitor_alive(id: &str) -> bool {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return false;
    };
    rd.flatten().any(|e| {
        let name = e.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            return false;
        };
        let mut args = cmd.split(|b| *b == 0);
        args.nth(1) == Some(crate::monitor::ARG.as_bytes()) && args.nth(1) == Some(id.as_bytes())
    })
}

fn endpoint_request(name: &str, c: &Container) -> EndpointRequest {
    let cfg = c.networking.get(name).cloned().unwrap_or_default();
    EndpointRequest {
        network: name.to_string(),
        aliases: cfg.aliases,
        ip: Some(cfg.ipv4_address).filter(|s| !s.is_empty()),
        ip6: Some(cfg.ipv6_address).filter(|s| !s.is_empty()),
        mac: Some(cfg.mac_address).filter(|s| !s.is_empty()),
    }
}

/// (container port/proto, host ip, host port) of each binding; a binding to every host
/// address is listed for `::` too when it is published for IPv6, as docker does.
fn port_list(ports: &[berth_network::PortBinding], v6: bool) -> Vec<(String, String, u16)> {
    let mut out = Vec::new();
    for p in ports {
        let k = format!("{}/{}", p.container_port, p.proto);
        out.push((k.clone(), p.host_ip_or_any().to_string(), p.host_port));
        if v6 && p.host_ip.is_empty() {
            out.push((k, "::".to_string(), p.host_port));
        }
    }
    out
}

/// The image's and --expose's ports, "80/tcp" form.
fn exposed(c: &Container) -> Vec<(String, ())> {
    c.config
        .exposed_ports
        .iter()
        .flatten()
        .map(|(k, _)| (k.clone(), ()))
        .collect()
}

fn split_port(k: &str) -> Result<(u16, String)> {
    let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
    let port = p
        .parse::<u16>()
        .map_err(|_| Error::invalid(format!("invalid port {k}")))?;
    Ok((port, proto.to_string()))
}

fn port_requests(c: &Container) -> Result<Vec<PortRequest>> {
    let h = &c.host_config;
    let mut out = Vec::new();
    for (k, binds) in &h.port_bindings {
        let (cp, proto) = split_port(k)?;
        for b in binds {
            let hp = if b.host_port.is_empty() {
                0
            } else {
                b.host_port
                    .parse::<u16>()
                    .map_err(|_| Error::invalid(format!("invalid host port {}", b.host_port)))?
            };
            out.push(PortRequest {
                host_ip: b.host_ip.clone(),
                host_port: hp,
                container_port: cp,
                proto: proto.clone(),
            });
        }
    }
    if h.publish_all_ports {
        for (k, _) in exposed(c) {
            if !h.port_bindings.contains_key(&k) {
                let (cp, proto) = split_port(&k)?;
                out.push(PortRequest {
                    host_ip: String::new(),
                    host_port: 0,
                    container_port: cp,
                    proto,
                });
            }
        }
    }
    Ok(out)
}

fn hosts_file(c: &Container, eps: &[Endpoint]) -> String {
    let hostname = &c.config.hostname;
    let mut s = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n");
    for h in c.host_config.extra_hosts.iter().flatten() {
        if let Some((name, ip)) = h
            .split_once(':')
            .map(|(n, ip)| (n, ip))
            .or_else(|| h.split_once('='))
        {
            s.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    match eps.first() {
        Some(e) => {
            s.push_str(&format!("{}\t{hostname}\n", e.ip));
            if !e.ip6.is_empty() {
                s.push_str(&format!("{}\t{hostname}\n", e.ip6));
            }
        }
        None => s.push_str(&format!("127.0.0.1\t{hostname}\n")),
    }
    s
}

/// --dns, --dns-search and --dns-option over the host's resolv.conf; on a network with name
/// resolution the nameserver is the network's responder at its gateway.
fn resolv_conf(h: &HostConfig, host: &str, host_network: bool, dns_gw: Option<&str>) -> String {
    let base = container_resolv_conf(host, host_network);
    if h.dns.is_empty() && h.dns_search.is_empty() && h.dns_options.is_empty() && dns_gw.is_none() {
        return base;
    }
    let mut servers: Vec<String> = Vec::new();
    let mut search: Vec<String> = Vec::new();
    let mut options: Vec<String> = Vec::new();
    for l in base.lines() {
        let mut f = l.split_whitespace();
        match f.next() {
            Some("nameserver") => servers.extend(f.map(String::from)),
            Some("search") | Some("domain") => search.extend(f.map(String::from)),
            Some("options") => options.extend(f.map(String::from)),
            _ => {}
        }
    }
    if !h.dns.is_empty() {
        servers = h.dns.clone();
    } else if let Some(gw) = dns_gw {
        servers = vec![gw.to_string()];
    }
    if !h.dns_search.is_empty() {
        search = h
            .dns_search
            .iter()
            .filter(|s| s.as_str() != ".")
            .cloned()
            .collect();
    }
    if !h.dns_options.is_empty() {
        options = h.dns_options.clone();
    }
    let mut s = String::new();
    if !search.is_empty() {
        s.push_str(&format!("search {}\n", search.join(" ")));
    }
    for n in servers {
        s.push_str(&format!("nameserver {n}\n"));
    }
    if !options.is_empty() {
        s.push_str(&format!("options {}\n", options.join(" ")));
    }
    s
}

/// `-p [IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]` with ranges ("8000-8002:80-82") into
/// docker's PortBindings ("80/tcp" -> [{HostIp, HostPort}]).
pub fn parse_publish(
    spec: &str,
    into: &mut BTreeMap<String, Vec<crate::model::PortBinding>>,
) -> Result<()> {
    let bad = || Error::invalid(format!("invalid publish spec: {spec}"));
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) if p == "tcp" || p == "udp" => (r, p),
        Some((_, p)) => {
            return Err(Error::invalid(format!(
                "invalid proto: {p} (only tcp and udp)"
            )))
        }
        None => (spec, "tcp"),
    };
    // An IPv6 host address comes in brackets: "[::1]:8080:80".
    let (ip, rest) = match rest.strip_prefix('[') {
        Some(r) => {
            let (ip, r) = r.split_once("]:").ok_or_else(bad)?;
            (ip, r)
        }
        None => ("", rest),
    };
    let parts: Vec<&str> = rest.rsplitn(3, ':').collect();
    let (ip, host, cont) = match (ip, parts.as_slice()) {
        ("", [c]) => ("", "", *c),
        ("", [c, h]) => ("", *h, *c),
        ("", [c, h, ip]) => (*ip, *h, *c),
        (ip, [c, h]) => (ip, *h, *c),
        _ => return Err(bad()),
    };
    if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
        return Err(Error::invalid(format!(
            "invalid IP address in publish spec: {ip}"
        )));
    }
    let range = |s: &str| -> Result<(u16, u16)> {
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let a: u16 = a.parse().map_err(|_| bad())?;
        let b: u16 = b.parse().map_err(|_| bad())?;
        if a == 0 || b < a {
            return Err(bad());
        }
        Ok((a, b))
    };
    let (c0, c1) = range(cont)?;
    let hosts = if host.is_empty() {
        None
    } else {
        Some(range(host)?)
    };
    if let Some((h0, h1)) = hosts {
        if h1 - h0 != c1 - c0 && !(h0 == h1 || c0 == c1) {
            return Err(Error::invalid(format!(
                "invalid ranges specified for container and host Ports: {cont} and {host}"
            )));
        }
    }
    for (i, cp) in (c0..=c1).enumerate() {
        let hp = match hosts {
            None => String::new(),
            Some((h0, h1)) if h0 != h1 => (h0 + i as u16).to_string(),
            Some((h0, _)) => h0.to_string(),
        };
        into.entry(format!("{cp}/{proto}"))
            .or_default()
            .push(crate::model::PortBinding {
                host_ip: ip.to_string(),
                host_port: hp,
            });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_specs() {
        let mut m = BTreeMap::new();
        parse_publish("8080:80", &mut m).unwrap();
        parse_publish("127.0.0.1:5353:53/udp", &mut m).unwrap();
        parse_publish("9000-9001:90-91", &mut m).unwrap();
        parse_publish("7000", &mut m).unwrap();
        assert_eq!(m["80/tcp"][0].host_port, "8080");
        assert_eq!(m["53/udp"][0].host_ip, "127.0.0.1");
        assert_eq!(m["91/tcp"][0].host_port, "9001");
        assert_eq!(m["7000/tcp"][0].host_port, "");
        assert!(parse_publish("1-3:1-2", &mut m).is_err());
        assert!(parse_publish("80/sctp", &mut m).is_err());
        assert!(parse_publish("x:80", &mut m).is_err());
        parse_publish("[::1]:8081:81", &mut m).unwrap();
        parse_publish("[fd00::2]:5300:53/udp", &mut m).unwrap();
        assert_eq!(m["81/tcp"][0].host_ip, "::1");
        assert_eq!(m["81/tcp"][0].host_port, "8081");
        assert_eq!(m["53/udp"][1].host_ip, "fd00::2");
        assert!(parse_publish("[::1:8081:81", &mut m).is_err());
        assert!(parse_publish("[::zz]:8081:81", &mut m).is_err());
    }

    #[test]
    fn resolv_conf_overrides() {
        let h = HostConfig {
            dns: vec!["10.9.9.9".into()],
            dns_search: vec!["corp".into()],
            ..Default::default()
        };
        let r = resolv_conf(&h, "search a\nnameserver 10.1.1.1\n", false, None);
        assert_eq!(r, "search corp\nnameserver 10.9.9.9\n");
        let r = resolv_conf(
            &HostConfig::default(),
            "search a\nnameserver 10.1.1.1\n",
            false,
            Some("10.89.0.1"),
        );
        assert_eq!(r, "search a\nnameserver 10.89.0.1\n");
    }
}
