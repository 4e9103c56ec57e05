//! `berth network create/ls/inspect/rm/connect/disconnect/prune` and `berth port`, in docker's
//! shape.

use berth_engine::{Engine, EngineOptions, Network, NetworkCreate};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::BufRead;

use crate::{CmdResult, Ctx, Failure};
use berth_format::{render_list, Headers};

#[derive(Subcommand)]
pub enum NetworkCommand {
    /// Create a network
    Create(CreateArgs),
    /// List networks
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks
    Inspect(InspectArgs),
    /// Remove one or more networks
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Connect a container to a network
    Connect(ConnectArgs),
    /// Disconnect a container from a network
    Disconnect(DisconnectArgs),
    /// Remove all unused networks
    Prune(PruneArgs),
}

#[derive(Args)]
pub struct CreateArgs {
    /// Driver to manage the Network
    #[arg(short, long, default_value = "bridge")]
    driver: String,
    /// Subnet in CIDR format that represents a network segment (an IPv4 one and, with
    /// --ipv6, an IPv6 one)
    #[arg(long)]
    subnet: Vec<String>,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long)]
    gateway: Vec<String>,
    /// Allocate container ip from a sub-range (one per family)
    #[arg(long)]
    ip_range: Vec<String>,
    /// Restrict external access to the network
    #[arg(long)]
    internal: bool,
    /// Enable IPv6 networking
    #[arg(long)]
    ipv6: bool,
    /// Set metadata on a network
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    opts: Vec<String>,
    name: String,
}

#[derive(Args)]
pub struct LsArgs {
    /// Only display network IDs
    #[arg(short, long)]
    quiet: bool,
    /// Do not truncate the output
    #[arg(long)]
    no_trunc: bool,
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short, long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template ("json", "table", or a Go template)
    #[arg(long)]
    format: Option<String>,
}

#[derive(Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    format: Option<String>,
    /// Verbose output for diagnostics
    #[arg(short, long)]
    verbose: bool,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args)]
pub struct RmArgs {
    /// Do not error if the network does not exist
    #[arg(short, long)]
    force: bool,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args)]
pub struct ConnectArgs {
    /// Add network-scoped alias for the container
    #[arg(long = "alias")]
    aliases: Vec<String>,
    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(long)]
    ip: Option<String>,
    /// IPv6 address (e.g., "2001:db8::33")
    #[arg(long)]
    ip6: Option<String>,
    network: String,
    container: String,
}

#[derive(Args)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short, long)]
    force: bool,
    network: String,
    container: String,
}

#[derive(Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    /// Provide filter values (e.g. "label=<key>=<value>")
    #[arg(long = "filter")]
    filter: Vec<String>,
}

#[derive(Args)]
pub struct PortArgs {
    container: String,
    /// PRIVATE_PORT[/PROTO]
    port: Option<String>,
}

fn engine(ctx: &Ctx) -> Result<Engine, Failure> {
    let driver = ctx
        .driver
        .as_deref()
        .map(berth_image::Driver::parse)
        .transpose()?;
    Ok(Engine::open(
        &ctx.root,
        &EngineOptions { driver, exe: None },
    )?)
}

fn pairs(items: &[String]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .unwrap_or((l.clone(), String::new()))
        })
        .collect()
}

pub fn run(ctx: &Ctx, c: NetworkCommand) -> CmdResult {
    match c {
        NetworkCommand::Create(a) => create(ctx, a),
        NetworkCommand::Ls(a) => ls(ctx, a),
        NetworkCommand::Inspect(a) => inspect(ctx, a),
        NetworkCommand::Rm(a) => rm(ctx, a),
        NetworkCommand::Connect(a) => {
            engine(ctx)?.network_connect(
                &a.network,
                &a.container,
                &a.aliases,
                a.ip.as_deref(),
                a.ip6.as_deref(),
            )?;
            Ok(())
        }
        NetworkCommand::Disconnect(a) => {
            let _ = a.force;
            engine(ctx)?.network_disconnect(&a.network, &a.container)?;
            Ok(())
        }
        NetworkCommand::Prune(a) => prune(ctx, a),
    }
}

fn create(ctx: &Ctx, a: CreateArgs) -> CmdResult {
    let (subnet, subnet6) = by_family("--subnet", &a.subnet)?;
    let (gateway, gateway6) = by_family("--gateway", &a.gateway)?;
    let (ip_range, ip_range6) = by_family("--ip-range", &a.ip_range)?;
    let e = engine(ctx)?;
    let nets = e.networks()?;
    let n = nets.create(&NetworkCreate {
        name: a.name,
        driver: Some(a.driver),
        subnet,
        gateway,
        subnet6,
        gateway6,
        ip_range,
        ip_range6,
        internal: a.internal,
        ipv6: a.ipv6,
        labels: pairs(&a.labels),
        options: pairs(&a.opts),
    })?;
    println!("{}", n.id);
    Ok(())
}

/// At most one IPv4 and one IPv6 value of a repeatable flag (an IPv6 one has a ':').
fn by_family(flag: &str, v: &[String]) -> Result<(Option<String>, Option<String>), Failure> {
    let (v6, v4): (Vec<&String>, Vec<&String>) = v.iter().partition(|s| s.contains(':'));
    if v4.len() > 1 || v6.len() > 1 {
        return Err(Failure(format!(
            "{flag}: at most one IPv4 and one IPv6 value (berth networks have one subnet per family)"
        )));
    }
    Ok((
        v4.first().map(|s| s.to_string()),
        v6.first().map(|s| s.to_string()),
    ))
}

/// `docker network inspect`'s object.
fn inspect_json(e: &Engine, n: &Network) -> Value {
    let nets = e.networks().ok();
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

fn matches(n: &Network, filters: &[(String, String)]) -> Result<bool, Failure> {
    for (k, v) in filters {
        let ok = match k.as_str() {
            "name" => n.name.contains(v.as_str()),
            "id" => n.id.starts_with(v.as_str()),
            "driver" => n.driver == *v,
            "scope" => v == "local",
            "type" => (v == "builtin") == (n.name == berth_engine::DEFAULT_NETWORK),
            "label" => match v.split_once('=') {
                Some((lk, lv)) => n.labels.get(lk).is_some_and(|x| x == lv),
                None => n.labels.contains_key(v.as_str()),
            },
            _ => return Err(Failure(format!("invalid filter '{k}'"))),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn parse_filters(f: &[String]) -> Result<Vec<(String, String)>, Failure> {
    f.iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| Failure("bad format of filter (expected name=value)".into()))
        })
        .collect()
}

fn ls(ctx: &Ctx, a: LsArgs) -> CmdResult {
    let e = engine(ctx)?;
    let filters = parse_filters(&a.filter)?;
    let mut list = Vec::new();
    for n in e.networks()?.list()? {
        if matches(&n, &filters)? {
            list.push(n);
        }
    }
    let id = |n: &Network| {
        if a.no_trunc {
            n.id.clone()
        } else {
            n.id[..12].to_string()
        }
    };
    if a.quiet
        && a.format
            .as_deref()
            .is_none_or(|f| f.is_empty() || f == "table")
    {
        for n in &list {
            println!("{}", id(n));
        }
        return Ok(());
    }
    let rows: Vec<Value> = list
        .iter()
        .map(|n| {
            let labels = n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
            json!({"ID": id(n), "Name": n.name, "Driver": n.driver, "Scope": "local", "IPv6": n.ipv6.to_string(),
                   "Internal": n.internal.to_string(), "Labels": labels, "CreatedAt": n.created})
        })
        .collect();
    let headers = Headers(&[
        ("ID", "NETWORK ID"),
        ("Name", "NAME"),
        ("Driver", "DRIVER"),
        ("Scope", "SCOPE"),
        ("IPv6", "IPV6"),
        ("Internal", "INTERNAL"),
        ("CreatedAt", "CREATED"),
    ]);
    print!(
        "{}",
        render_list(
            a.format.as_deref(),
            "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
            &headers,
            &rows
        )?
    );
    Ok(())
}

fn inspect(ctx: &Ctx, a: InspectArgs) -> CmdResult {
    let e = engine(ctx)?;
    let nets = e.networks()?;
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for n in &a.names {
        match nets.get(n) {
            Ok(n) => out.push(inspect_json(&e, &n)),
            Err(err) => missing.push(err.to_string()),
        }
    }
    let _ = a.verbose;
    if !out.is_empty() || missing.is_empty() {
        crate::output::print_inspect(a.format.as_deref(), &out, crate::output::indented_json)?;
    }
    if !missing.is_empty() {
        return Err(Failure(missing.join("\n")));
    }
    Ok(())
}

fn remove_one(e: &Engine, name: &str) -> Result<(), Failure> {
    let nets = e.networks()?;
    let n = nets.get(name)?;
    let users = e.network_users(&n.name)?;
    if !users.is_empty() {
        return Err(Failure(format!(
            "error while removing network: network {} id {} has active endpoints ({})",
            n.name,
            n.id,
            users.join(", ")
        )));
    }
    nets.remove(&n.name)?;
    Ok(())
}

fn rm(ctx: &Ctx, a: RmArgs) -> CmdResult {
    let e = engine(ctx)?;
    let mut errs = Vec::new();
    for n in &a.names {
        match remove_one(&e, n) {
            Ok(()) => println!("{n}"),
            Err(Failure(m)) if a.force && m.contains("not found") => {}
            Err(Failure(m)) => errs.push(m),
        }
    }
    if !errs.is_empty() {
        return Err(Failure(errs.join("\nError: ")));
    }
    Ok(())
}

fn prune(ctx: &Ctx, a: PruneArgs) -> CmdResult {
    if !a.force {
        eprint!("WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] ");
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Ok(());
        }
    }
    let e = engine(ctx)?;
    let filters = parse_filters(&a.filter)?;
    let mut removed = Vec::new();
    for n in e.networks()?.list()? {
        if n.name == berth_engine::DEFAULT_NETWORK || !matches(&n, &filters)? {
            continue;
        }
        if remove_one(&e, &n.name).is_ok() {
            removed.push(n.name);
        }
    }
    if !removed.is_empty() {
        println!("Deleted Networks:");
        for n in removed {
            println!("{n}");
        }
    }
    Ok(())
}

/// `berth port CONTAINER [PRIVATE_PORT[/PROTO]]`.
pub fn port(ctx: &Ctx, a: PortArgs) -> CmdResult {
    let e = engine(ctx)?;
    let ports = e.ports(&a.container)?;
    let want = a.port.as_ref().map(|p| {
        if p.contains('/') {
            p.clone()
        } else {
            format!("{p}/tcp")
        }
    });
    let mut found = false;
    for (k, ip, hp) in &ports {
        // docker port brackets IPv6 addresses: "[::]:8080".
        let ip = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.clone()
        };
        match &want {
            Some(w) if w != k => continue,
            Some(_) => println!("{ip}:{hp}"),
            None => println!("{k} -> {ip}:{hp}"),
        }
        found = true;
    }
    if let (Some(w), false) = (&want, found) {
        return Err(Failure(format!(
            "No public port '{w}' published for {}",
            a.container
        )));
    }
    Ok(())
}
