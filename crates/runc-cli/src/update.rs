//! `update`: new resource limits for a running container, from a LinuxResources JSON (-r FILE,
//! or - for stdin) with runc's individual flags applied on top.

use std::io::Read;

use anyhow::{bail, Context, Result};
use berth_runtime::Runtime;
use clap::Args;
use oci_spec::runtime::LinuxResources;
use serde_json::{json, Value};

#[derive(Args)]
pub struct UpdateArgs {
    /// A LinuxResources JSON file, or - for stdin.
    #[arg(short, long)]
    resources: Option<String>,
    /// Memory limit, e.g. 512m (-1: unlimited).
    #[arg(long)]
    memory: Option<String>,
    #[arg(long)]
    memory_reservation: Option<String>,
    /// Memory plus swap limit (-1: unlimited swap).
    #[arg(long)]
    memory_swap: Option<String>,
    /// runc spells it --cpu-share; --cpu-shares is accepted too.
    #[arg(long = "cpu-share", alias = "cpu-shares")]
    cpu_shares: Option<u64>,
    #[arg(long, allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    #[arg(long)]
    cpu_period: Option<u64>,
    #[arg(long)]
    cpu_rt_period: Option<u64>,
    #[arg(long)]
    cpu_rt_runtime: Option<i64>,
    #[arg(long)]
    cpuset_cpus: Option<String>,
    #[arg(long)]
    cpuset_mems: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    #[arg(long)]
    blkio_weight: Option<u16>,
    id: String,
}

pub fn update(rt: &Runtime, a: &UpdateArgs) -> Result<()> {
    let mut r = match a.resources.as_deref() {
        Some(src) => read_resources(src)?,
        None => json!({}),
    };
    apply_flags(&mut r, a)?;
    let resources: LinuxResources = serde_json::from_value(r).context("invalid resources")?;
    rt.update(&a.id, &resources)?;
    Ok(())
}

fn read_resources(src: &str) -> Result<Value> {
    let mut data = Vec::new();
    if src == "-" {
        std::io::stdin()
            .read_to_end(&mut data)
            .context("read resources from stdin")?;
    } else {
        data = std::fs::read(src).with_context(|| format!("read resources {src}"))?;
    }
    let v: Value =
        serde_json::from_slice(&data).with_context(|| format!("parse resources {src}"))?;
    if !v.is_object() {
        bail!("resources {src}: want a JSON object (LinuxResources)");
    }
    Ok(v)
}

fn apply_flags(r: &mut Value, a: &UpdateArgs) -> Result<()> {
    let mut set = |section: &str, key: &str, v: Value| {
        if !r[section].is_object() {
            r[section] = json!({});
        }
        r[section][key] = v;
    };
    for (key, flag) in [
        ("limit", &a.memory),
        ("reservation", &a.memory_reservation),
        ("swap", &a.memory_swap),
    ] {
        if let Some(s) = flag {
            set("memory", key, json!(parse_bytes(s)?));
        }
    }
    if let Some(v) = a.cpu_shares {
        set("cpu", "shares", json!(v));
    }
    if let Some(v) = a.cpu_quota {
        set("cpu", "quota", json!(v));
    }
    if let Some(v) = a.cpu_period {
        set("cpu", "period", json!(v));
    }
    if let Some(v) = a.cpu_rt_period {
        set("cpu", "realtimePeriod", json!(v));
    }
    if let Some(v) = a.cpu_rt_runtime {
        set("cpu", "realtimeRuntime", json!(v));
    }
    if let Some(v) = &a.cpuset_cpus {
        set("cpu", "cpus", json!(v));
    }
    if let Some(v) = &a.cpuset_mems {
        set("cpu", "mems", json!(v));
    }
    if let Some(v) = a.pids_limit {
        set("pids", "limit", json!(v));
    }
    if let Some(v) = a.blkio_weight {
        set("blockIO", "weight", json!(v));
    }
    Ok(())
}

/// Sizes as Docker and runc take them: 1024, 512k, 100M, 1.5g, 2GiB (binary units); -1 is unlimited.
fn parse_bytes(s: &str) -> Result<i64> {
    if s == "-1" {
        return Ok(-1);
    }
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num.parse().with_context(|| format!("invalid size {s:?}"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.trim_end_matches('b').trim_end_matches('i');
    let mult: i64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => bail!("invalid size {s:?}"),
    };
    Ok((num * mult as f64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert_eq!(parse_bytes("512k").unwrap(), 512 << 10);
        assert_eq!(parse_bytes("100M").unwrap(), 100 << 20);
        assert_eq!(parse_bytes("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_bytes("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("-1").unwrap(), -1);
        assert!(parse_bytes("12x").is_err());
        assert!(parse_bytes("m").is_err());
    }
}
