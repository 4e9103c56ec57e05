//! inspect, logs, top, stats.

use berth_engine::logs::{self, LogOptions};
use clap::Args;
use serde_json::Value;
use std::time::Duration;

use super::engine;
use crate::output::{print_inspect, print_list};
use crate::units::{go_g, human_size_prec};
use crate::{CmdResult, Ctx, Failure};
use berth_format::Headers;

#[derive(Args)]
pub struct InspectArgs {
    /// Format output using a custom template ('json' or a Go-style template)
    #[arg(short, long)]
    format: Option<String>,
    /// Only inspect objects of the given type
    #[arg(long = "type")]
    typ: Option<String>,
    /// Display total file sizes
    #[arg(short, long)]
    size: bool,
    /// Containers or images to inspect
    #[arg(required = true)]
    names: Vec<String>,
}

/// docker's object types for `inspect --type`; berth has containers, images and volumes.
const TYPES: &[&str] = &[
    "config",
    "container",
    "image",
    "network",
    "node",
    "plugin",
    "secret",
    "service",
    "task",
    "volume",
];

/// `berth inspect` (docker's autodetection: container, image, then volume) and `berth
/// container inspect` (`containers_only`).
pub fn inspect(ctx: &Ctx, a: InspectArgs, containers_only: bool) -> CmdResult {
    let typ = if containers_only {
        Some("container")
    } else {
        a.typ.as_deref()
    };
    match typ {
        Some("") => {
            return Err(Failure(format!(
                "type is empty: must be one of \"{}\"",
                TYPES.join("\", \"")
            )))
        }
        Some(t) if !TYPES.contains(&t) => {
            return Err(Failure(format!(
                "unknown type: \"{t}\": must be one of \"{}\"",
                TYPES.join("\", \"")
            )))
        }
        _ => {}
    }
    let want = |t: &str| typ.is_none_or(|x| x == t);
    let e = engine(ctx)?;
    let volumes = if want("volume") {
        Some(e.volumes()?)
    } else {
        None
    };
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for n in &a.names {
        if want("container") {
            match e.get(n) {
                Ok(c) => {
                    out.push(e.inspect(&c));
                    continue;
                }
                Err(err) if typ.is_some() => {
                    missing.push(err.to_string());
                    continue;
                }
                Err(_) => {}
            }
        }
        if want("image") {
            match e.store().and_then(|s| Ok((s, s.resolve(n)?))) {
                Ok((store, img)) => {
                    out.push(crate::inspect::inspect_json(store, &img));
                    continue;
                }
                Err(err) if typ.is_some() => {
                    missing.push(err.to_string());
                    continue;
                }
                Err(_) => {}
            }
        }
        if let Some(vs) = &volumes {
            match vs.inspect(n) {
                Ok(v) => {
                    out.push(serde_json::to_value(&v).expect("volume json"));
                    continue;
                }
                Err(err) if typ.is_some() => {
                    missing.push(err.to_string());
                    continue;
                }
                Err(_) => {}
            }
        }
        missing.push(match typ {
            Some(t) => format!("No such {t}: {n}"),
            None => format!("No such object: {n}"),
        });
    }
    print_inspect(a.format.as_deref(), &out, crate::inspect::docker_order)?;
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Failure(missing.join("\nError: ")))
    }
}

#[derive(Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    follow: bool,
    /// Number of lines to show from the end of the logs ("all" for everything)
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)
    #[arg(long)]
    since: Option<String>,
    /// Show logs before a timestamp or relative
    #[arg(long)]
    until: Option<String>,
    /// Show timestamps
    #[arg(short, long)]
    timestamps: bool,
    container: String,
}

pub fn logs(ctx: &Ctx, a: LogsArgs) -> CmdResult {
    let e = engine(ctx)?;
    let c = e.get(&a.container)?;
    let tail = if a.tail == "all" || a.tail == "-1" {
        None
    } else {
        Some(
            a.tail
                .parse::<usize>()
                .map_err(|_| Failure(format!("invalid tail value: {}", a.tail)))?,
        )
    };
    let o = LogOptions {
        stdout: true,
        stderr: true,
        follow: a.follow,
        tail,
        since: a.since.as_deref().map(logs::parse_time).transpose()?,
        until: a.until.as_deref().map(logs::parse_time).transpose()?,
        timestamps: a.timestamps,
    };
    let id = c.id.clone();
    let running = || e.get(&id).map(|c| c.state.running).unwrap_or(false);
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    logs::read(
        std::path::Path::new(&c.log_path),
        &o,
        &mut out,
        &mut err,
        &running,
    )?;
    Ok(())
}

#[derive(Args)]
pub struct TopArgs {
    container: String,
    /// ps options (default -ef)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_args: Vec<String>,
}

/// docker top: the host's `ps` output, limited to the container's processes.
pub fn top(ctx: &Ctx, a: TopArgs) -> CmdResult {
    let e = engine(ctx)?;
    let pids = e.pids(&a.container)?;
    let args = if a.ps_args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        a.ps_args.clone()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| Failure(format!("run ps: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| Failure("couldn't find PID field in ps output".into()))?;
    let mut rows: Vec<Vec<String>> = vec![header.split_whitespace().map(String::from).collect()];
    let ncols = rows[0].len();
    for l in lines {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.get(col)
            .and_then(|p| p.parse::<i32>().ok())
            .is_some_and(|p| pids.contains(&p))
        {
            let mut r: Vec<String> = f[..ncols.min(f.len()).saturating_sub(1)]
                .iter()
                .map(|s| s.to_string())
                .collect();
            r.push(f[ncols.min(f.len()).saturating_sub(1)..].join(" "));
            rows.push(r);
        }
    }
    let text: String = rows.iter().map(|r| r.join("\t") + "\n").collect();
    print!("{}", berth_format::tabwrite(&text));
    Ok(())
}

#[derive(Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Disable streaming stats and only pull the first result
    #[arg(long)]
    no_stream: bool,
    /// Do not truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
    containers: Vec<String>,
}

fn bin_size(b: u64) -> String {
    const U: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut s = b as f64;
    let mut i = 0;
    while s >= 1024.0 && i < U.len() - 1 {
        s /= 1024.0;
        i += 1;
    }
    format!("{}{}", go_g(s, 4), U[i])
}

pub fn stats(ctx: &Ctx, a: StatsArgs) -> CmdResult {
    let e = engine(ctx)?;
    let names: Vec<String> = if a.containers.is_empty() {
        e.list(a.all)?.into_iter().map(|c| c.id).collect()
    } else {
        a.containers.clone()
    };
    loop {
        let first: Vec<_> = names.iter().map(|n| e.stats(n)).collect::<Result<_, _>>()?;
        std::thread::sleep(Duration::from_millis(500));
        let second: Vec<_> = names.iter().map(|n| e.stats(n)).collect::<Result<_, _>>()?;
        let mut rows: Vec<Value> = Vec::new();
        for (x, y) in first.iter().zip(&second) {
            let cpu_d = y.cpu_nanos.saturating_sub(x.cpu_nanos) as f64;
            let sys_d = y.system_nanos.saturating_sub(x.system_nanos) as f64;
            let cpu = if sys_d > 0.0 {
                cpu_d / sys_d * y.online_cpus as f64 * 100.0
            } else {
                0.0
            };
            let mem_pct = if y.mem_limit > 0 {
                y.mem_usage as f64 / y.mem_limit as f64 * 100.0
            } else {
                0.0
            };
            rows.push(serde_json::json!({
                "Container": y.id[..12].to_string(),
                "ID": if a.no_trunc { y.id.clone() } else { y.id[..12].to_string() },
                "Name": y.name,
                "CPUPerc": format!("{cpu:.2}%"),
                "MemUsage": format!("{} / {}", bin_size(y.mem_usage), bin_size(y.mem_limit)),
                "MemPerc": format!("{mem_pct:.2}%"),
                "NetIO": "0B / 0B",
                "BlockIO": format!("{} / {}", human_size_prec(y.blk_read as f64, 3), human_size_prec(y.blk_write as f64, 3)),
                "PIDs": y.pids.to_string(),
            }));
        }
        print_list(a.format.as_deref(), STATS_TABLE, &STATS_HEADERS, &rows)?;
        if a.no_stream {
            return Ok(());
        }
    }
}

const STATS_TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

/// docker/cli's stats formatter headers.
const STATS_HEADERS: Headers = Headers(&[
    ("ID", "CONTAINER ID"),
    ("Container", "CONTAINER"),
    ("Name", "NAME"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
]);
