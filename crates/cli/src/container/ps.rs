//! `berth ps`: docker's columns, filters and formats.

use berth_engine::filters::Filters;
use berth_engine::{timefmt, Container};
use berth_format::Headers;
use clap::Args;
use serde_json::{json, Value};

use super::engine;
use crate::output::print_list;
use crate::units::human_size;
use crate::{CmdResult, Ctx};

#[derive(Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Only display container IDs
    #[arg(short, long)]
    quiet: bool,
    /// Display total file sizes
    #[arg(short, long)]
    size: bool,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long)]
    last: Option<usize>,
    /// Show the latest created container (includes all states)
    #[arg(short, long)]
    latest: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Filter output based on conditions provided
    #[arg(short, long)]
    filter: Vec<String>,
    /// Format output using a custom template ('json', 'table', or a Go-style template)
    #[arg(long)]
    format: Option<String>,
}

/// docker's STATUS column.
pub fn status_text(c: &Container) -> String {
    let s = &c.state;
    match s.status.as_str() {
        "running" => format!("Up {}", timefmt::since(&s.started_at)),
        "paused" => format!("Up {} (Paused)", timefmt::since(&s.started_at)),
        "restarting" => format!(
            "Restarting ({}) {} ago",
            s.exit_code,
            timefmt::since(&s.finished_at)
        ),
        "exited" => format!(
            "Exited ({}) {} ago",
            s.exit_code,
            timefmt::since(&s.finished_at)
        ),
        "dead" => "Dead".into(),
        "removing" => "Removal In Progress".into(),
        _ => "Created".into(),
    }
}

/// "2024-05-01 12:00:00 +0000 UTC", Go's time.String().
fn go_time(rfc: &str) -> String {
    let (d, t) = rfc.split_once('T').unwrap_or((rfc, ""));
    format!("{d} {} +0000 UTC", t.get(..8).unwrap_or(""))
}

fn quoted_command(c: &Container, trunc: bool) -> String {
    let cmd = c.command_line();
    let cmd = if trunc {
        crate::output::ellipsis(&cmd, 20)
    } else {
        cmd
    };
    crate::output::go_quote(&cmd)
}

/// docker's PORTS: "0.0.0.0:8080->80/tcp, 127.0.0.1:5353->53/udp".
fn ports_text(e: &berth_engine::Engine, c: &Container) -> String {
    if !c.state.running
        || (c.host_config.port_bindings.is_empty() && !c.host_config.publish_all_ports)
    {
        return String::new();
    }
    let ports = e.ports(&c.id).unwrap_or_default();
    ports
        .iter()
        .map(|(k, ip, hp)| format!("{ip}:{hp}->{k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn row(c: &Container, trunc: bool, size: Option<(u64, u64)>, ports: String) -> Value {
    let labels: Vec<String> = c
        .config
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mounts: Vec<String> = c
        .mounts
        .iter()
        .map(|m| m.name.clone().unwrap_or_else(|| m.source.clone()))
        .collect();
    let size_text = size
        .map(|(rw, virt)| format!("{} (virtual {})", human_size(rw), human_size(virt)))
        .unwrap_or_else(|| "0B".into());
    json!({
        "Command": quoted_command(c, trunc),
        "CreatedAt": go_time(&c.created),
        "ID": if trunc { c.short_id().to_string() } else { c.id.clone() },
        "Image": c.image_name,
        "Labels": labels.join(","),
        "LocalVolumes": c.mounts.iter().filter(|m| m.typ == "volume").count().to_string(),
        "Mounts": mounts.join(","),
        "Names": c.name,
        "Networks": c.host_config.network_mode,
        "Ports": ports,
        "RunningFor": format!("{} ago", timefmt::since(&c.created)),
        "Size": size_text,
        "State": c.state.status,
        "Status": status_text(c),
    })
}

pub fn run(ctx: &Ctx, a: PsArgs) -> CmdResult {
    let e = engine(ctx)?;
    let filters = Filters::parse(&a.filter)?;
    let limit = if a.latest { Some(1) } else { a.last };
    let mut list = e.list_filtered(a.all || limit.is_some(), &filters)?;
    if let Some(n) = limit {
        list.truncate(n);
    }
    let trunc = !a.no_trunc;
    if a.quiet {
        if a.format.as_deref().is_some_and(|f| !f.is_empty()) {
            eprintln!(
                "WARNING: Ignoring custom format, because both --format and --quiet are set."
            );
        }
        for c in &list {
            println!("{}", if trunc { c.short_id() } else { &c.id });
        }
        return Ok(());
    }
    let sizes: Vec<Option<(u64, u64)>> = list
        .iter()
        .map(|c| {
            a.size.then(|| {
                let rw = c
                    .graph_driver
                    .data
                    .get("UpperDir")
                    .map(|d| berth_engine::tree_size(std::path::Path::new(d)))
                    .unwrap_or(0);
                let img = e
                    .store()
                    .ok()
                    .and_then(|s| s.image(&c.image).ok())
                    .map_or(0, |i| i.size);
                (rw, rw + img)
            })
        })
        .collect();
    let rows: Vec<Value> = list
        .iter()
        .zip(&sizes)
        .map(|(c, s)| row(c, trunc, *s, ports_text(&e, c)))
        .collect();
    let default = if a.size {
        DEFAULT_TABLE_SIZE
    } else {
        DEFAULT_TABLE
    };
    print_list(a.format.as_deref(), default, &HEADERS, &rows)
}

const DEFAULT_TABLE: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";
const DEFAULT_TABLE_SIZE: &str = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}\t{{.Size}}";

/// docker/cli's container formatter headers.
const HEADERS: Headers = Headers(&[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
    ("Networks", "NETWORKS"),
]);
