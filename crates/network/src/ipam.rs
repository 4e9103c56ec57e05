//! IPv4 subnets and address choice. The leases themselves live in the networks database
//! (`store`), whose UNIQUE(network, ip) makes a double allocation impossible.

use crate::error::{Error, Result};
use std::net::Ipv4Addr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    pub fn parse(s: &str) -> Result<Subnet> {
        let (a, p) = s.split_once('/').ok_or_else(|| {
            Error::invalid(format!("invalid subnet {s}: expected ADDRESS/PREFIX"))
        })?;
        let addr: Ipv4Addr = a.parse().map_err(|_| {
            if a.contains(':') {
                Error::invalid(format!("IPv6 subnets are not supported yet: {s}"))
            } else {
                Error::invalid(format!("invalid subnet {s}"))
            }
        })?;
        let prefix: u8 =
            p.parse().ok().filter(|p| *p <= 30).ok_or_else(|| {
                Error::invalid(format!("invalid subnet {s}: prefix must be 0..30"))
            })?;
        let s = Subnet { addr, prefix };
        Ok(Subnet {
            addr: Ipv4Addr::from(u32::from(addr) & s.mask()),
            prefix,
        })
    }
    pub fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix as u32)
        }
    }
    pub fn network(&self) -> u32 {
        u32::from(self.addr) & self.mask()
    }
    pub fn broadcast(&self) -> u32 {
        self.network() | !self.mask()
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == self.network()
    }
    pub fn overlaps(&self, o: &Subnet) -> bool {
        let m = self.mask() & o.mask();
        self.network() & m == o.network() & m
    }
    /// The first host address: docker's default gateway.
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network() + 1)
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network()), self.prefix)
    }
}

/// Subnets berth picks from when none is given: docker's 172.17-31/16, then /24s of 10.89/16.
pub fn candidates() -> impl Iterator<Item = Subnet> {
    (17..=31u8)
        .map(|b| Subnet {
            addr: Ipv4Addr::new(172, b, 0, 0),
            prefix: 16,
        })
        .chain((0..=255u8).map(|c| Subnet {
            addr: Ipv4Addr::new(10, 89, c, 0),
            prefix: 24,
        }))
}

/// The lowest address of `range` (inside `subnet`) that is neither the network, broadcast,
/// gateway nor `taken`.
pub fn pick(
    subnet: &Subnet,
    range: &Subnet,
    gateway: Ipv4Addr,
    taken: &std::collections::HashSet<Ipv4Addr>,
) -> Option<Ipv4Addr> {
    let lo = range.network().max(subnet.network() + 1);
    let hi = range.broadcast().min(subnet.broadcast() - 1);
    (lo..=hi)
        .map(Ipv4Addr::from)
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

    #[test]
    fn subnet_math() {
        let s = Subnet::parse("10.1.2.3/24").unwrap();
        assert_eq!(s.to_string(), "10.1.2.0/24");
        assert_eq!(s.first_host(), Ipv4Addr::new(10, 1, 2, 1));
        assert!(
            s.contains(Ipv4Addr::new(10, 1, 2, 255)) && !s.contains(Ipv4Addr::new(10, 1, 3, 0))
        );
        assert!(s.overlaps(&Subnet::parse("10.1.0.0/16").unwrap()));
        assert!(!s.overlaps(&Subnet::parse("10.1.3.0/24").unwrap()));
        assert!(Subnet::parse("fd00::/64")
            .unwrap_err()
            .message()
            .contains("IPv6"));
        assert!(Subnet::parse("10.0.0.0").is_err());
    }

    #[test]
    fn pick_skips_gateway_taken_and_edges() {
        let s = Subnet::parse("10.1.2.0/30").unwrap();
        let gw = s.first_host();
        let mut taken = std::collections::HashSet::new();
        assert_eq!(pick(&s, &s, gw, &taken), Some(Ipv4Addr::new(10, 1, 2, 2)));
        taken.insert(Ipv4Addr::new(10, 1, 2, 2));
        assert_eq!(pick(&s, &s, gw, &taken), None);
        let range = Subnet::parse("10.1.2.128/25").unwrap();
        let s24 = Subnet::parse("10.1.2.0/24").unwrap();
        assert_eq!(
            pick(&s24, &range, gw, &taken),
            Some(Ipv4Addr::new(10, 1, 2, 128))
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
