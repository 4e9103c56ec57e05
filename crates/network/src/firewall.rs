//! berth's nftables rules: one table per berth root (`ip berth` for the default root), owned
//! entirely by berth and rebuilt as a whole from the networks database in one atomic `nft -f`
//! transaction whenever endpoints or ports change (`add table; delete table; table {...}`).
//! Rules berth did not create are never read or touched. No endpoint left: no table.

use crate::error::{Error, Result};
use std::io::Write;
use std::process::{Command, Stdio};

/// What the rules are made of: the bridges in use and the published ports.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// (bridge, subnet, internal)
    pub bridges: Vec<(String, String, bool)>,
    /// (host ip or "", proto, host port, container ip, container port)
    pub ports: Vec<(String, String, u16, String, u16)>,
}

pub fn render(table: &str, r: &Rules) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "table ip {table} {{}}\ndelete table ip {table}\ntable ip {table} {{\n"
    ));
    s.push_str("  chain prerouting {\n    type nat hook prerouting priority -100; policy accept;\n    fib daddr type local jump published\n  }\n");
    s.push_str("  chain output {\n    type nat hook output priority -100; policy accept;\n    fib daddr type local jump published\n  }\n");
    s.push_str("  chain published {\n");
    for (hip, proto, hp, cip, cp) in &r.ports {
        let daddr = if hip.is_empty() || hip == "0.0.0.0" {
            String::new()
        } else {
            format!("ip daddr {hip} ")
        };
        s.push_str(&format!(
            "    {daddr}{proto} dport {hp} dnat to {cip}:{cp}\n"
        ));
    }
    s.push_str("  }\n");
    s.push_str(
        "  chain postrouting {\n    type nat hook postrouting priority 100; policy accept;\n",
    );
    for (br, subnet, internal) in &r.bridges {
        if !internal {
            s.push_str(&format!(
                "    ip saddr {subnet} oifname != \"{br}\" masquerade\n"
            ));
        }
        // Published ports reached from the host's loopback or from the same network (hairpin):
        // the container must answer through the bridge.
        s.push_str(&format!(
            "    oifname \"{br}\" ip saddr 127.0.0.0/8 masquerade\n"
        ));
        s.push_str(&format!(
            "    oifname \"{br}\" ct status dnat ip saddr {subnet} masquerade\n"
        ));
    }
    s.push_str("  }\n");
    s.push_str("  chain forward {\n    type filter hook forward priority 0; policy accept;\n");
    for (a, _, internal) in &r.bridges {
        if *internal {
            s.push_str(&format!("    iifname \"{a}\" oifname != \"{a}\" drop\n    oifname \"{a}\" iifname != \"{a}\" drop\n"));
        }
        for (b, _, _) in &r.bridges {
            if a != b {
                s.push_str(&format!("    iifname \"{a}\" oifname \"{b}\" drop\n"));
            }
        }
    }
    s.push_str("  }\n}\n");
    s
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
    nft(
        &["-f", "-"],
        Some(&format!("table ip {table} {{}}\ndelete table ip {table}\n")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_ports_masquerade_and_isolation() {
        let r = Rules {
            bridges: vec![
                ("br-a".into(), "10.1.0.0/24".into(), false),
                ("br-b".into(), "10.2.0.0/24".into(), true),
            ],
            ports: vec![
                ("".into(), "tcp".into(), 8080, "10.1.0.2".into(), 80),
                (
                    "127.0.0.1".into(),
                    "udp".into(),
                    53,
                    "10.1.0.2".into(),
                    5353,
                ),
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
        assert!(s.starts_with("table ip berth_t {}\ndelete table ip berth_t\n"));
    }
}
