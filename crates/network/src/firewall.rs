//! berth's nftables rules: one table per berth root and family (`ip berth` for the default
//! root, and `ip6 berth` next to it while a dual-stack network is in use), owned
//! entirely by berth and rebuilt as a whole from the networks database in one atomic `nft -f`
//! transaction whenever endpoints or ports change (`add table; delete table; table {...}`).
//! Rules berth did not create are never read or touched. No endpoint left: no table.

use crate::error::{Error, Result};
use std::io::Write;
use std::process::{Command, Stdio};

/// What the rules are made of: the bridges in use and the published ports.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub bridges: Vec<BridgeRules>,
    pub ports: Vec<PortRule>,
}

#[derive(Debug, Clone, Default)]
pub struct BridgeRules {
    pub name: String,
    pub subnet: String,
    /// A dual-stack network's IPv6 subnet, else empty.
    pub subnet6: String,
    pub internal: bool,
}

#[derive(Debug, Clone, Default)]
pub struct PortRule {
    /// "" (every host address), an IPv4 or an IPv6 address.
    pub host_ip: String,
    pub proto: String,
    pub host_port: u16,
    pub ip: String,
    /// The container's IPv6 address, if it has one: the port is published for IPv6 too.
    pub ip6: String,
    pub port: u16,
}

/// The IPv4 (`ip`) or IPv6 (`ip6`) table. The two families have the same chains; the IPv6
/// one exists only when a dual-stack network is in use.
fn render_family(table: &str, r: &Rules, v6: bool) -> String {
    let (fam, ip) = if v6 { ("ip6", "ip6") } else { ("ip", "ip") };
    let mut s = format!("table {fam} {table} {{\n");
    s.push_str("  chain prerouting {\n    type nat hook prerouting priority -100; policy accept;\n    fib daddr type local jump published\n  }\n");
    s.push_str("  chain output {\n    type nat hook output priority -100; policy accept;\n    fib daddr type local jump published\n  }\n");
    s.push_str("  chain published {\n");
    if v6 {
        // IPv6 has no route_localnet: a packet from ::1 cannot be routed to a bridge, so [::1]
        // is served by berth's port proxy instead of NAT.
        s.push_str("    ip6 daddr ::1 return\n");
    }
    for p in &r.ports {
        let (hip_v6, cip) = (p.host_ip.contains(':'), if v6 { &p.ip6 } else { &p.ip });
        if cip.is_empty() || (!p.host_ip.is_empty() && hip_v6 != v6) || p.host_ip == "::1" {
            continue;
        }
        let daddr = match p.host_ip.as_str() {
            "" | "0.0.0.0" | "::" => String::new(),
            h => format!("{ip} daddr {h} "),
        };
        let to = if v6 {
            format!("[{cip}]:{}", p.port)
        } else {
            format!("{cip}:{}", p.port)
        };
        s.push_str(&format!(
            "    {daddr}{} dport {} dnat to {to}\n",
            p.proto, p.host_port
        ));
    }
    s.push_str("  }\n");
    s.push_str(
        "  chain postrouting {\n    type nat hook postrouting priority 100; policy accept;\n",
    );
    for b in &r.bridges {
        let (br, subnet) = (&b.name, if v6 { &b.subnet6 } else { &b.subnet });
        if subnet.is_empty() {
            continue;
        }
        if !b.internal {
            s.push_str(&format!(
                "    {ip} saddr {subnet} oifname != \"{br}\" masquerade\n"
            ));
        }
        // Published ports reached from the host's loopback or from the same network (hairpin):
        // the container must answer through the bridge.
        if !v6 {
            s.push_str(&format!(
                "    oifname \"{br}\" ip saddr 127.0.0.0/8 masquerade\n"
            ));
        }
        s.push_str(&format!(
            "    oifname \"{br}\" ct status dnat {ip} saddr {subnet} masquerade\n"
        ));
    }
    s.push_str("  }\n");
    s.push_str("  chain forward {\n    type filter hook forward priority 0; policy accept;\n");
    for a in &r.bridges {
        let a_name = &a.name;
        if a.internal {
            s.push_str(&format!("    iifname \"{a_name}\" oifname != \"{a_name}\" drop\n    oifname \"{a_name}\" iifname != \"{a_name}\" drop\n"));
        }
        for b in &r.bridges {
            if a.name != b.name {
                s.push_str(&format!(
                    "    iifname \"{a_name}\" oifname \"{}\" drop\n",
                    b.name
                ));
            }
        }
    }
    s.push_str("  }\n}\n");
    s
}

/// The whole transaction: both tables replaced (or deleted) at once.
pub fn render(table: &str, r: &Rules) -> String {
    let mut s = reset(table);
    s.push_str(&render_family(table, r, false));
    if r.bridges.iter().any(|b| !b.subnet6.is_empty()) {
        s.push_str(&render_family(table, r, true));
    }
    s
}

/// Deletes berth's tables of both families ("add" first: no error when one is missing).
fn reset(table: &str) -> String {
    format!(
        "table ip {table} {{}}\ndelete table ip {table}\ntable ip6 {table} {{}}\ndelete table ip6 {table}\n"
    )
}

fn nft(args: &[&str], stdin: Option<&str>) -> Result<()> {
    let mut c = Command::new("nft");
    c.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c
        .spawn()
        .map_err(|e| Error::io("run nft (install Debian's nftables package)", e))?;
    if let Some(text) = stdin {
        let _ = child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io("run nft", e))?;
    if !out.status.success() {
        return Err(Error::internal(format!(
            "nft {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Replaces the table with `r`'s rules, or deletes it when there is nothing to filter.
pub fn apply(table: &str, r: &Rules) -> Result<()> {
    if r.bridges.is_empty() && r.ports.is_empty() {
        return delete(table);
    }
    nft(&["-f", "-"], Some(&render(table, r)))
}

pub fn delete(table: &str) -> Result<()> {
    // "add" then "delete" in one transaction: no error when it was not there.
    nft(&["-f", "-"], Some(&reset(table)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bridge(name: &str, subnet: &str, subnet6: &str, internal: bool) -> BridgeRules {
        BridgeRules {
            name: name.into(),
            subnet: subnet.into(),
            subnet6: subnet6.into(),
            internal,
        }
    }

    fn port(host_ip: &str, proto: &str, hp: u16, ip: &str, ip6: &str, cp: u16) -> PortRule {
        PortRule {
            host_ip: host_ip.into(),
            proto: proto.into(),
            host_port: hp,
            ip: ip.into(),
            ip6: ip6.into(),
            port: cp,
        }
    }

    #[test]
    fn renders_ports_masquerade_and_isolation() {
        let r = Rules {
            bridges: vec![
                bridge("br-a", "10.1.0.0/24", "", false),
                bridge("br-b", "10.2.0.0/24", "", true),
            ],
            ports: vec![
                port("", "tcp", 8080, "10.1.0.2", "", 80),
                port("127.0.0.1", "udp", 53, "10.1.0.2", "", 5353),
            ],
        };
        let s = render("berth_t", &r);
        assert!(s.contains("tcp dport 8080 dnat to 10.1.0.2:80"), "{s}");
        assert!(s.contains("ip daddr 127.0.0.1 udp dport 53 dnat to 10.1.0.2:5353"));
        assert!(s.contains("ip saddr 10.1.0.0/24 oifname != \"br-a\" masquerade"));
        assert!(
            !s.contains("ip saddr 10.2.0.0/24 oifname != \"br-b\" masquerade"),
            "internal networks are not masqueraded"
        );
        assert!(
            s.contains("iifname \"br-a\" oifname \"br-b\" drop")
                && s.contains("iifname \"br-b\" oifname \"br-a\" drop")
        );
        assert!(s.starts_with(&reset("berth_t")));
        assert!(
            !s.contains("\ntable ip6 berth_t {\n"),
            "no IPv6 table without IPv6: {s}"
        );
    }

    #[test]
    fn dual_stack_gets_an_ip6_table_next_to_the_ip_one() {
        let r = Rules {
            bridges: vec![
                bridge("br-a", "10.1.0.0/24", "fd01::/64", false),
                bridge("br-b", "10.2.0.0/24", "", false),
            ],
            ports: vec![
                port("", "tcp", 8080, "10.1.0.2", "fd01::2", 80),
                port("::1", "tcp", 8081, "10.1.0.2", "fd01::2", 81),
                port("fd00::2", "udp", 53, "10.1.0.2", "fd01::2", 53),
                port("127.0.0.1", "tcp", 9000, "10.1.0.2", "fd01::2", 90),
            ],
        };
        let s = render("berth_t", &r);
        let (v4, v6) = s
            .split_once("\ntable ip6 berth_t {\n")
            .expect("an ip6 table");
        assert!(v6.contains("tcp dport 8080 dnat to [fd01::2]:80"), "{v6}");
        assert!(v6.contains("ip6 daddr fd00::2 udp dport 53 dnat to [fd01::2]:53"));
        assert!(v6.contains("ip6 saddr fd01::/64 oifname != \"br-a\" masquerade"));
        assert!(v6.contains("iifname \"br-a\" oifname \"br-b\" drop"));
        assert!(!v6.contains("9000") && !v6.contains("ip saddr"), "{v6}");
        // ::1 goes to the proxy, never through NAT; v6 host addresses stay out of `ip`.
        assert!(v6.contains("ip6 daddr ::1 return") && !v6.contains("8081"));
        assert!(!v4.contains("::") && v4.contains("ip daddr 127.0.0.1 tcp dport 9000"));
    }
}
