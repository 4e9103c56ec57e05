//! `berth volume create/ls/inspect/rm/prune`, in docker's shape.

use berth_engine::{Engine, EngineOptions, VolumeCreate, VolumeFilter, VolumeStore};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::BufRead;

use crate::{CmdResult, Ctx, Failure};
use berth_format::{render_list, Headers};

#[derive(Subcommand)]
pub enum VolumeCommand {
    /// Create a volume
    Create(CreateArgs),
    /// List volumes
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes
    Inspect(InspectArgs),
    /// Remove one or more volumes
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove unused local volumes
    Prune(PruneArgs),
}

#[derive(Args)]
pub struct CreateArgs {
    /// Specify volume name
    #[arg(long = "name")]
    name_flag: Option<String>,
    /// Specify volume driver name
    #[arg(short = 'd', long, default_value = "local")]
    driver: String,
    /// Set metadata for a volume
    #[arg(short = 'l', long = "label")]
    labels: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    opts: Vec<String>,
    name: Option<String>,
}

#[derive(Args)]
pub struct LsArgs {
    /// Only display volume names
    #[arg(short, long)]
    quiet: bool,
    /// Provide filter values (e.g. "dangling=true")
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
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args)]
pub struct RmArgs {
    /// Force the removal of one or more volumes
    #[arg(short, long)]
    force: bool,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(Args)]
pub struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    /// Provide filter values (e.g. "label=<key>=<value>")
    #[arg(long = "filter")]
    filter: Vec<String>,
}

fn store(ctx: &Ctx) -> Result<VolumeStore, Failure> {
    let driver = ctx
        .driver
        .as_deref()
        .map(berth_image::Driver::parse)
        .transpose()?;
    Ok(Engine::open(&ctx.root, &EngineOptions { driver, exe: None })?.volumes()?)
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

fn parse_filter(items: &[String]) -> Result<VolumeFilter, Failure> {
    let mut f = VolumeFilter::default();
    for it in items {
        let (k, v) = it
            .split_once('=')
            .ok_or_else(|| Failure(format!("bad format of filter (expected name=value)")))?;
        match k {
            "dangling" => {
                f.dangling = Some(match v {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(Failure(format!("invalid filter 'dangling={v}'"))),
                })
            }
            "name" => f.names.push(v.to_string()),
            "label" => f.labels.push(v.to_string()),
            "driver" => f.drivers.push(v.to_string()),
            _ => return Err(Failure(format!("invalid filter '{k}'"))),
        }
    }
    Ok(f)
}

/// `volume prune --filter`: docker's label, label! and all (true: named volumes too).
fn prune_filter(items: &[String]) -> Result<(VolumeFilter, bool), Failure> {
    let mut f = VolumeFilter::default();
    let mut all = false;
    for it in items {
        let (k, v) = it
            .split_once('=')
            .ok_or_else(|| Failure(format!("bad format of filter (expected name=value): {it}")))?;
        match k {
            "label" => f.labels.push(v.to_string()),
            "label!" => f.not_labels.push(v.to_string()),
            "all" => {
                all = match v {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(Failure(format!("invalid filter 'all={v}'"))),
                }
            }
            _ => return Err(Failure(format!("invalid filter '{k}'"))),
        }
    }
    Ok((f, all))
}

pub fn run(ctx: &Ctx, c: VolumeCommand) -> CmdResult {
    match c {
        VolumeCommand::Create(a) => create(ctx, a),
        VolumeCommand::Ls(a) => ls(ctx, a),
        VolumeCommand::Inspect(a) => inspect(ctx, a),
        VolumeCommand::Rm(a) => rm(ctx, a),
        VolumeCommand::Prune(a) => prune(ctx, a),
    }
}

fn create(ctx: &Ctx, a: CreateArgs) -> CmdResult {
    if let (Some(n), Some(f)) = (&a.name, &a.name_flag) {
        if n != f {
            return Err(Failure(format!(
                "conflicting options: either specify --name or provide positional arg, not both"
            )));
        }
    }
    let req = VolumeCreate {
        name: a.name.or(a.name_flag),
        driver: Some(a.driver),
        labels: pairs(&a.labels),
        options: pairs(&a.opts),
    };
    let v = store(ctx)?.create(&req)?;
    println!("{}", v.name);
    Ok(())
}

fn labels_text(l: &BTreeMap<String, String>) -> String {
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn ls(ctx: &Ctx, a: LsArgs) -> CmdResult {
    let vols = store(ctx)?.list(&parse_filter(&a.filter)?)?;
    // docker: -q only replaces the default table; a custom format wins.
    if a.quiet
        && a.format
            .as_deref()
            .is_none_or(|f| f.is_empty() || f == "table")
    {
        for v in &vols {
            println!("{}", v.name);
        }
        return Ok(());
    }
    let rows: Vec<Value> = vols
        .iter()
        .map(|v| {
            json!({"Availability": "N/A", "Driver": v.driver, "Group": "N/A", "Labels": labels_text(&v.labels),
                   "Links": "N/A", "Mountpoint": v.mountpoint, "Name": v.name, "Scope": v.scope, "Size": "N/A", "Status": "N/A"})
        })
        .collect();
    let headers = Headers(&[("Name", "VOLUME NAME")]);
    print!(
        "{}",
        render_list(
            a.format.as_deref(),
            "table {{.Driver}}\t{{.Name}}",
            &headers,
            &rows
        )?
    );
    Ok(())
}

fn inspect(ctx: &Ctx, a: InspectArgs) -> CmdResult {
    let s = store(ctx)?;
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for n in &a.names {
        match s.inspect(n) {
            Ok(v) => out.push(serde_json::to_value(&v).expect("volume json")),
            Err(e) => missing.push(e.to_string()),
        }
    }
    if !out.is_empty() || missing.is_empty() {
        crate::output::print_inspect(a.format.as_deref(), &out, crate::output::indented_json)?;
    }
    if !missing.is_empty() {
        return Err(Failure(missing.join("\n")));
    }
    Ok(())
}

fn rm(ctx: &Ctx, a: RmArgs) -> CmdResult {
    let mut s = store(ctx)?;
    let mut errs = Vec::new();
    for n in &a.names {
        match s.remove(n, a.force) {
            Ok(()) => println!("{n}"),
            Err(e) => errs.push(e.to_string()),
        }
    }
    if !errs.is_empty() {
        return Err(Failure(errs.join("\n")));
    }
    Ok(())
}

fn prune(ctx: &Ctx, a: PruneArgs) -> CmdResult {
    if !a.force {
        let what = if a.all {
            "all volumes not used by at least one container"
        } else {
            "all anonymous local volumes not used by at least one container"
        };
        eprint!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Ok(());
        }
    }
    let (filter, all) = prune_filter(&a.filter)?;
    let (names, bytes) = store(ctx)?.prune(a.all || all, &filter)?;
    if !names.is_empty() {
        println!("Deleted Volumes:");
        for n in &names {
            println!("{n}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(bytes));
    Ok(())
}

/// go-units HumanSize (decimal units, 4 significant digits), as docker prints reclaimed space.
fn human_size(size: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut s = size as f64;
    let mut i = 0;
    while s >= 1000.0 && i < UNITS.len() - 1 {
        s /= 1000.0;
        i += 1;
    }
    let digits = if s >= 1000.0 {
        0
    } else if s >= 100.0 {
        1
    } else if s >= 10.0 {
        2
    } else {
        3
    };
    let mut n = format!("{s:.digits$}");
    if n.contains('.') {
        n = n.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{n}{}", UNITS[i])
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_size_like_go_units() {
        assert_eq!(super::human_size(0), "0B");
        assert_eq!(super::human_size(1234), "1.234kB");
        assert_eq!(super::human_size(104_857_600), "104.9MB");
    }
}
