//! The networks database (`<root>/networks.db`, SQLite in WAL mode like the containers'):
//! networks, endpoints (a container's lease on a network: UNIQUE(network, ip) and, on a
//! dual-stack network, UNIQUE(network, ip6) mean no address is ever handed out twice; both
//! live in the one row, so they go together) and published ports (UNIQUE(proto, host_port)).

use crate::error::{Error, ErrorKind, Result};
use crate::{Endpoint, Network, PortBinding};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;

/// Chooses a free address given the taken ones.
pub type Picker<'a> = Box<dyn Fn(&HashSet<IpAddr>) -> Option<IpAddr> + 'a>;

/// One address to lease: `want` (--ip, --ip6) or the lowest free one `pick` returns.
pub struct LeaseRequest<'a> {
    pub pick: Picker<'a>,
    pub want: Option<IpAddr>,
}

impl LeaseRequest<'_> {
    fn choose(&self, taken: &HashSet<IpAddr>, network: &str) -> Result<IpAddr> {
        match self.want {
            Some(ip) if taken.contains(&ip) => Err(Error::conflict(format!(
                "address {ip} is already in use on network {network}"
            ))),
            Some(ip) => Ok(ip),
            None => (self.pick)(taken).ok_or_else(|| {
                Error::new(
                    ErrorKind::Unavailable,
                    format!("no available IP addresses on network {network}"),
                )
            }),
        }
    }
}

pub struct Store {
    conn: Connection,
}

fn parse<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s)
        .map_err(|e| Error::internal(format!("networks database: bad record: {e}")))
}

const BUSY: std::time::Duration = std::time::Duration::from_secs(30);

fn schema(c: &rusqlite::Connection) -> rusqlite::Result<()> {
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS networks (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, record TEXT NOT NULL);
     CREATE TABLE IF NOT EXISTS endpoints (container TEXT NOT NULL, network TEXT NOT NULL, ip TEXT NOT NULL,
         record TEXT NOT NULL, PRIMARY KEY (container, network), UNIQUE (network, ip));
     CREATE TABLE IF NOT EXISTS ports (proto TEXT NOT NULL, host_port INTEGER NOT NULL, container TEXT NOT NULL,
         record TEXT NOT NULL, PRIMARY KEY (proto, host_port));",
    )?;
    // ip6 came with IPv6 networks: older databases get the column (NULL: no IPv6
    // lease, and NULLs never clash in a UNIQUE index).
    let has_ip6: bool = c.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('endpoints') WHERE name = 'ip6'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !has_ip6 {
        c.execute_batch("ALTER TABLE endpoints ADD COLUMN ip6 TEXT")?;
    }
    c.execute_batch("CREATE UNIQUE INDEX IF NOT EXISTS endpoints_ip6 ON endpoints (network, ip6)")
}

impl Store {
    pub fn open(path: &Path) -> Result<Store> {
        let conn = berth_statedb::open(path, BUSY, schema)?;
        Ok(Store { conn })
    }

    /// Fails instead of creating a database that is not there (see `Networks::open_existing`).
    pub fn open_existing(path: &Path) -> Result<Store> {
        let conn = berth_statedb::open_existing(path, BUSY, schema)?;
        Ok(Store { conn })
    }

    pub fn insert_network(&self, n: &Network) -> Result<()> {
        let rec = serde_json::to_string(n).expect("network serializes");
        self.conn
            .execute(
                "INSERT INTO networks (id, name, record) VALUES (?1, ?2, ?3)",
                params![n.id, n.name, rec],
            )
            .map_err(|e| {
                let e = Error::from(e);
                if e.kind() == ErrorKind::AlreadyExists {
                    Error::conflict(format!("network with name {} already exists", n.name))
                } else {
                    e
                }
            })?;
        Ok(())
    }

    pub fn delete_network(&self, id: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM networks WHERE id = ?1", [id])?;
        Ok(())
    }

    /// By name, full id or unique id prefix.
    pub fn find_network(&self, key: &str) -> Result<Option<Network>> {
        let row: Option<String> = self
            .conn
            .query_row("SELECT record FROM networks WHERE name = ?1 OR id = ?1 ORDER BY name = ?1 DESC LIMIT 1", [key], |r| r.get(0))
            .optional()?;
        if let Some(r) = row {
            return Ok(Some(parse(&r)?));
        }
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let mut st = self
            .conn
            .prepare("SELECT record FROM networks WHERE id >= ?1 AND id < ?2 LIMIT 2")?;
        let rows: Vec<String> = st
            .query_map(params![key, format!("{key}g")], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        match rows.len() {
            0 => Ok(None),
            1 => Ok(Some(parse(&rows[0])?)),
            _ => Err(Error::invalid(format!(
                "network {key} is ambiguous ({} matches found based on ID prefix)",
                rows.len()
            ))),
        }
    }

    pub fn networks(&self) -> Result<Vec<Network>> {
        let mut st = self
            .conn
            .prepare("SELECT record FROM networks ORDER BY name")?;
        let rows: Vec<String> = st
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        rows.iter().map(|r| parse(r)).collect()
    }

    /// Leases the endpoint's addresses atomically: the IPv4 one (`v4`) and, on a dual-stack
    /// network, the IPv6 one (`v6`).
    pub fn lease(
        &mut self,
        e: &mut Endpoint,
        v4: LeaseRequest,
        v6: Option<LeaseRequest>,
    ) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let (taken4, taken6) = {
            let mut st = tx.prepare("SELECT ip, ip6 FROM endpoints WHERE network = ?1")?;
            let v: Vec<(String, Option<String>)> = st
                .query_map([&e.network_id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let t4: HashSet<IpAddr> = v.iter().filter_map(|(s, _)| s.parse().ok()).collect();
            let t6: HashSet<IpAddr> = v
                .iter()
                .filter_map(|(_, s)| s.as_deref()?.parse().ok())
                .collect();
            (t4, t6)
        };
        e.ip = v4.choose(&taken4, &e.network)?.to_string();
        let ip6 = match v6 {
            Some(r) => Some(r.choose(&taken6, &e.network)?.to_string()),
            None => None,
        };
        e.ip6 = ip6.clone().unwrap_or_default();
        let rec = serde_json::to_string(e).expect("endpoint serializes");
        tx.execute(
            "INSERT INTO endpoints (container, network, ip, ip6, record) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![e.container, e.network_id, e.ip, ip6, rec],
        )
        .map_err(|err| {
            let err = Error::from(err);
            if err.kind() == ErrorKind::AlreadyExists {
                Error::conflict(format!(
                    "container {} is already connected to network {}",
                    e.container, e.network
                ))
            } else {
                err
            }
        })?;
        tx.commit()?;
        Ok(())
    }

    pub fn update_endpoint(&self, e: &Endpoint) -> Result<()> {
        let rec = serde_json::to_string(e).expect("endpoint serializes");
        self.conn.execute(
            "UPDATE endpoints SET record = ?3 WHERE container = ?1 AND network = ?2",
            params![e.container, e.network_id, rec],
        )?;
        Ok(())
    }

    pub fn release(&self, container: &str, network_id: Option<&str>) -> Result<()> {
        match network_id {
            Some(n) => self.conn.execute(
                "DELETE FROM endpoints WHERE container = ?1 AND network = ?2",
                params![container, n],
            )?,
            None => self
                .conn
                .execute("DELETE FROM endpoints WHERE container = ?1", [container])?,
        };
        Ok(())
    }

    fn endpoints_where(&self, clause: &str, arg: &str) -> Result<Vec<Endpoint>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT record FROM endpoints {clause} ORDER BY container, network"
        ))?;
        let rows: Vec<String> = if clause.is_empty() {
            st.query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?
        } else {
            st.query_map([arg], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?
        };
        rows.iter().map(|r| parse(r)).collect()
    }

    pub fn endpoints(&self) -> Result<Vec<Endpoint>> {
        self.endpoints_where("", "")
    }
    pub fn endpoints_of(&self, container: &str) -> Result<Vec<Endpoint>> {
        self.endpoints_where("WHERE container = ?1", container)
    }
    pub fn endpoints_on(&self, network_id: &str) -> Result<Vec<Endpoint>> {
        self.endpoints_where("WHERE network = ?1", network_id)
    }

    /// Reserves every binding or none (UNIQUE(proto, host_port): clear error on a clash).
    pub fn reserve_ports(&mut self, container: &str, ports: &[PortBinding]) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for p in ports {
            let rec = serde_json::to_string(p).expect("port serializes");
            tx.execute(
                "INSERT INTO ports (proto, host_port, container, record) VALUES (?1, ?2, ?3, ?4)",
                params![p.proto, p.host_port, container, rec],
            )
            .map_err(|e| {
                let e = Error::from(e);
                if e.kind() == ErrorKind::AlreadyExists {
                    Error::conflict(format!(
                        "Bind for {}:{} failed: port is already allocated",
                        p.host_ip_or_any(),
                        p.host_port
                    ))
                } else {
                    e
                }
            })?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn release_ports(&self, container: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM ports WHERE container = ?1", [container])?;
        Ok(())
    }

    pub fn port_taken(&self, proto: &str, port: u16) -> Result<bool> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM ports WHERE proto = ?1 AND host_port = ?2",
            params![proto, port],
            |r| r.get::<_, i64>(0),
        )? > 0)
    }

    /// (container, binding) for every published port.
    pub fn ports(&self) -> Result<Vec<(String, PortBinding)>> {
        let mut st = self
            .conn
            .prepare("SELECT container, record FROM ports ORDER BY container, proto, host_port")?;
        let rows: Vec<(String, String)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        rows.into_iter().map(|(c, r)| Ok((c, parse(&r)?))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(want: Option<&str>, first: &'static str) -> LeaseRequest<'static> {
        LeaseRequest {
            pick: Box::new(move |taken| {
                let ip: IpAddr = first.parse().unwrap();
                (!taken.contains(&ip)).then_some(ip)
            }),
            want: want.map(|w| w.parse().unwrap()),
        }
    }

    fn endpoint(container: &str) -> Endpoint {
        Endpoint {
            container: container.into(),
            network: "n".into(),
            network_id: "nid".into(),
            ..Default::default()
        }
    }

    #[test]
    fn old_databases_get_ip6_and_no_ipv6_address_is_leased_twice() {
        let dir = berth_testkit::Scratch::new("netstore");
        let db = dir.join("networks.db");
        // The schema before IPv6, with a lease in it.
        let c = Connection::open(&db).unwrap();
        c.execute_batch(
            "CREATE TABLE endpoints (container TEXT NOT NULL, network TEXT NOT NULL, ip TEXT NOT NULL,
                 record TEXT NOT NULL, PRIMARY KEY (container, network), UNIQUE (network, ip));
             INSERT INTO endpoints VALUES ('old', 'nid', '10.0.0.2', '{}');",
        )
        .unwrap();
        drop(c);
        let mut s = Store::open(&db).unwrap();
        let mut a = endpoint("a");
        s.lease(&mut a, req(None, "10.0.0.3"), Some(req(None, "fd00::2")))
            .unwrap();
        assert_eq!((a.ip.as_str(), a.ip6.as_str()), ("10.0.0.3", "fd00::2"));
        // The same IPv6 address again: asked for, or as the only free one.
        let mut b = endpoint("b");
        let e = s
            .lease(
                &mut b,
                req(None, "10.0.0.4"),
                Some(req(Some("fd00::2"), "fd00::9")),
            )
            .unwrap_err();
        assert!(e.message().contains("fd00::2 is already in use"), "{e}");
        let e = s
            .lease(&mut b, req(None, "10.0.0.4"), Some(req(None, "fd00::2")))
            .unwrap_err();
        assert!(e.message().contains("no available IP addresses"), "{e}");
        // Nothing of the failed leases was stored; releasing frees both addresses at once.
        assert_eq!(s.endpoints_on("nid").unwrap().len(), 2);
        s.release("a", None).unwrap();
        s.lease(&mut b, req(None, "10.0.0.3"), Some(req(None, "fd00::2")))
            .unwrap();
        assert_eq!((b.ip.as_str(), b.ip6.as_str()), ("10.0.0.3", "fd00::2"));
        // Reopening an up-to-date database changes nothing.
        drop(s);
        let s = Store::open(&db).unwrap();
        assert_eq!(s.endpoints_on("nid").unwrap().len(), 2);
    }
}
