//! Subnets of either family and address choice. The leases themselves live in the networks
//! database (`store`), whose UNIQUE(network, ip) and UNIQUE(network, ip6) make a double
//! allocation impossible.

use crate::error::{Error, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IPv4 or IPv6 subnet; the arithmetic is done on u128 for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub addr: IpAddr,
    pub prefix: u8,
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

impl Subnet {
    pub fn parse(s: &str) -> Result<Subnet> {
        let (a, p) = s.split_once('/').ok_or_else(|| {
            Error::invalid(format!("invalid subnet {s}: expected ADDRESS/PREFIX"))
        })?;
        let addr: IpAddr = a
            .parse()
            .map_err(|_| Error::invalid(format!("invalid subnet {s}: {a} is not an address")))?;
        // An IPv4 network needs a gateway, a host and a broadcast address; an IPv6 one the
        // subnet-router anycast address, a gateway and a host.
        let max = if addr.is_ipv4() { 30 } else { 126 };
        let prefix: u8 = p.parse().ok().filter(|p| *p <= max).ok_or_else(|| {
            Error::invalid(format!("invalid subnet {s}: prefix must be 0..{max}"))
        })?;
        if let IpAddr::V6(v6) = addr {
            if v6.is_multicast()
                || v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
            {
                return Err(Error::invalid(format!(
                    "invalid subnet {s}: not a unicast range containers can use"
                )));
            }
        }
        let s = Subnet { addr, prefix };
        Ok(Subnet {
            addr: s.addr_of(s.network()),
            prefix,
        })
    }
    pub fn is_v6(&self) -> bool {
        self.addr.is_ipv6()
    }
    fn bits(&self) -> u32 {
        if self.is_v6() {
            128
        } else {
            32
        }
    }
    fn addr_of(&self, n: u128) -> IpAddr {
        if self.is_v6() {
            IpAddr::V6(Ipv6Addr::from(n))
        } else {
            IpAddr::V4(Ipv4Addr::from(n as u32))
        }
    }
    /// The host bits.
    fn host_mask(&self) -> u128 {
        let host = self.bits() - self.prefix as u32;
        if host == 128 {
            u128::MAX
        } else {
            (1u128 << host) - 1
        }
    }
    pub fn network(&self) -> u128 {
        to_u128(self.addr) & !self.host_mask()
    }
    /// The last address (IPv4's broadcast).
    pub fn last(&self) -> u128 {
        self.network() | self.host_mask()
    }
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv6() == self.is_v6() && to_u128(ip) & !self.host_mask() == self.network()
    }
    pub fn overlaps(&self, o: &Subnet) -> bool {
        if self.is_v6() != o.is_v6() {
            return false;
        }
        let m = !self.host_mask() & !o.host_mask();
        self.network() & m == o.network() & m
    }
    /// The first host address: docker's default gateway.
    pub fn first_host(&self) -> IpAddr {
        self.addr_of(self.network() + 1)
    }
    /// Inside, and neither the network address nor IPv4's broadcast.
    pub fn usable(&self, ip: IpAddr) -> bool {
        self.contains(ip)
            && to_u128(ip) != self.network()
            && (self.is_v6() || to_u128(ip) != self.last())
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr_of(self.network()), self.prefix)
    }
}

/// Subnets berth picks from when none is given: docker's 172.17-31/16, then /24s of 10.89/16.
pub fn candidates() -> impl Iterator<Item = Subnet> {
    (17..=31u8)
        .map(|b| Subnet {
            addr: IpAddr::V4(Ipv4Addr::new(172, b, 0, 0)),
            prefix: 16,
        })
        .chain((0..=255u8).map(|c| Subnet {
            addr: IpAddr::V4(Ipv4Addr::new(10, 89, c, 0)),
            prefix: 24,
        }))
}

/// IPv6 subnets berth picks from when `--ipv6` comes without one, as docker 27+ and podman
/// do: a /64 of a unique local /48 with a random 40-bit global id (RFC 4193).
pub fn candidates_v6() -> impl Iterator<Item = Subnet> {
    (0..64).map(|_| {
        let mut b = [0u8; 16];
        b[0] = 0xfd;
        crate::random_bytes(&mut b[1..6]);
        Subnet {
            addr: IpAddr::V6(Ipv6Addr::from(b)),
            prefix: 64,
        }
    })
}

/// The lowest usable address of `range` (inside `subnet`) that is neither the gateway nor
/// `taken`: at most `taken.len() + 2` addresses are looked at, whatever the subnet's size.
pub fn pick(
    subnet: &Subnet,
    range: &Subnet,
    gateway: IpAddr,
    taken: &std::collections::HashSet<IpAddr>,
) -> Option<IpAddr> {
    let lo = range.network().max(subnet.network() + 1);
    let hi = range.last().min(if subnet.is_v6() {
        subnet.last()
    } else {
        subnet.last() - 1
    });
    (lo..=hi)
        .map(|n| subnet.addr_of(n))
        .find(|ip| *ip != gateway && !taken.contains(ip))
}

/// A locally administered MAC derived from the address (as docker does: 02:42:ip).
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let parts: Vec<&str> = s.split(':').collect();
    let bad = || Error::invalid(format!("invalid MAC address: {s}"));
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut m = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        m[i] = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    Ok(m)
}

pub fn format_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    #[test]
    fn subnet_math() {
        let s = Subnet::parse("10.1.2.3/24").unwrap();
        assert_eq!(s.to_string(), "10.1.2.0/24");
        assert_eq!(s.first_host(), v4(10, 1, 2, 1));
        assert!(s.contains(v4(10, 1, 2, 255)) && !s.contains(v4(10, 1, 3, 0)));
        assert!(s.usable(v4(10, 1, 2, 254)) && !s.usable(v4(10, 1, 2, 255)));
        assert!(s.overlaps(&Subnet::parse("10.1.0.0/16").unwrap()));
        assert!(!s.overlaps(&Subnet::parse("10.1.3.0/24").unwrap()));
        assert!(Subnet::parse("10.0.0.0").is_err());
        assert!(Subnet::parse("0.0.0.0/0").unwrap().contains(v4(1, 2, 3, 4)));
    }

    #[test]
    fn subnet_math_v6() {
        let s = Subnet::parse("fd12:3456:789a:1::5/64").unwrap();
        assert_eq!(s.to_string(), "fd12:3456:789a:1::/64");
        assert_eq!(
            s.first_host(),
            "fd12:3456:789a:1::1".parse::<IpAddr>().unwrap()
        );
        let last: IpAddr = "fd12:3456:789a:1:ffff:ffff:ffff:ffff".parse().unwrap();
        assert!(s.usable(last) && !s.usable("fd12:3456:789a:1::".parse().unwrap()));
        assert!(!s.contains("fd12:3456:789a:2::1".parse().unwrap()));
        assert!(s.overlaps(&Subnet::parse("fd12::/16").unwrap()));
        assert!(!s.overlaps(&Subnet::parse("10.0.0.0/8").unwrap()));
        assert!(!s.contains(v4(10, 0, 0, 1)));
        for bad in [
            "fd00::/127",
            "fd00::zz/64",
            "ff02::/16",
            "fe80::/64",
            "::1/128",
            "fd00::",
        ] {
            let e = Subnet::parse(bad).unwrap_err();
            assert!(
                e.message().starts_with(&format!("invalid subnet {bad}")),
                "{e}"
            );
        }
        let c: Vec<Subnet> = candidates_v6().take(3).collect();
        assert!(c.iter().all(|c| c.prefix == 64
            && c.to_string().starts_with("fd")
            && Subnet::parse("fd00::/8").unwrap().overlaps(c)));
        assert_ne!(c[0], c[1]);
    }

    #[test]
    fn pick_skips_gateway_taken_and_edges() {
        let s = Subnet::parse("10.1.2.0/30").unwrap();
        let gw = s.first_host();
        let mut taken = std::collections::HashSet::new();
        assert_eq!(pick(&s, &s, gw, &taken), Some(v4(10, 1, 2, 2)));
        taken.insert(v4(10, 1, 2, 2));
        assert_eq!(pick(&s, &s, gw, &taken), None);
        let range = Subnet::parse("10.1.2.128/25").unwrap();
        let s24 = Subnet::parse("10.1.2.0/24").unwrap();
        assert_eq!(pick(&s24, &range, gw, &taken), Some(v4(10, 1, 2, 128)));
        // A /64 is never walked: the first free address is near the start.
        let s6 = Subnet::parse("fd00:1::/64").unwrap();
        let gw6 = s6.first_host();
        let taken6 = ["fd00:1::2", "fd00:1::3"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(
            pick(&s6, &s6, gw6, &taken6),
            Some("fd00:1::4".parse().unwrap())
        );
    }

    #[test]
    fn macs() {
        assert_eq!(
            format_mac(&mac_for(Ipv4Addr::new(10, 0, 0, 2))),
            "02:42:0a:00:00:02"
        );
        assert_eq!(
            parse_mac("02:42:0A:00:00:02").unwrap(),
            mac_for(Ipv4Addr::new(10, 0, 0, 2))
        );
        assert!(parse_mac("zz").is_err());
    }
}
