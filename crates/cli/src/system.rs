//! `berth system df`.

use clap::Args;
use serde_json::json;
use std::path::Path;

use crate::output::print_list;
use crate::units::{human_size, human_size_prec};
use crate::{CmdResult, Ctx};
use berth_format::Headers;

#[derive(Args)]
pub struct DfArgs {
    /// Format output using a custom template ('json', 'table TEMPLATE', 'TEMPLATE')
    #[arg(long)]
    format: Option<String>,
    /// Show detailed information on space usage
    #[arg(short, long)]
    verbose: bool,
}

/// "4.263MB (100%)" like docker's RECLAIMABLE column.
fn reclaimable(part: u64, total: u64) -> String {
    match (part * 100).checked_div(total) {
        Some(pct) => format!("{} ({pct}%)", human_size_prec(part as f64, 4)),
        None => human_size(part),
    }
}

pub fn df(ctx: &Ctx, a: DfArgs) -> CmdResult {
    let _ = a.verbose;
    let du = ctx.store()?.disk_usage()?;
    let driver = ctx
        .driver
        .as_deref()
        .map(berth_image::Driver::parse)
        .transpose()?;
    let engine = berth_engine::Engine::open(
        &ctx.root,
        &berth_engine::EngineOptions { driver, exe: None },
    )?;
    let (mut c_total, mut c_active, mut c_size, mut c_reclaim) = (0usize, 0usize, 0u64, 0u64);
    for c in engine.list(true)? {
        let size = c
            .graph_driver
            .data
            .get("UpperDir")
            .map(|d| berth_engine::tree_size(Path::new(d)))
            .unwrap_or(0);
        c_total += 1;
        c_size += size;
        if c.state.running {
            c_active += 1;
        } else {
            c_reclaim += size;
        }
    }
    // docker: a volume is active while a container uses it; unused volumes are reclaimable.
    let (mut v_total, mut v_active, mut v_size, mut v_reclaim) = (0usize, 0usize, 0u64, 0u64);
    for v in engine.volumes()?.list(&Default::default())? {
        let size = berth_engine::tree_size(Path::new(&v.mountpoint));
        v_total += 1;
        v_size += size;
        if v.users.is_empty() {
            v_reclaim += size;
        } else {
            v_active += 1;
        }
    }
    // berth has no build cache.
    let rows = [
        (
            "Images",
            du.images,
            du.active,
            human_size_prec(du.size as f64, 4),
            reclaimable(du.reclaimable, du.size),
        ),
        (
            "Containers",
            c_total,
            c_active,
            human_size_prec(c_size as f64, 4),
            reclaimable(c_reclaim, c_size),
        ),
        (
            "Local Volumes",
            v_total,
            v_active,
            human_size_prec(v_size as f64, 4),
            reclaimable(v_reclaim, v_size),
        ),
        ("Build Cache", 0, 0, "0B".into(), "0B".into()),
    ];
    let values: Vec<_> = rows
        .iter()
        .map(|(t, total, active, size, rec)| {
            json!({"Active": active.to_string(), "Reclaimable": rec, "Size": size, "TotalCount": total.to_string(), "Type": t})
        })
        .collect();
    print_list(a.format.as_deref(), DEFAULT_TABLE, &HEADERS, &values)
}

const DEFAULT_TABLE: &str =
    "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}";

/// docker/cli's disk usage formatter headers.
const HEADERS: Headers = Headers(&[
    ("Type", "TYPE"),
    ("TotalCount", "TOTAL"),
    ("Active", "ACTIVE"),
    ("Size", "SIZE"),
    ("Reclaimable", "RECLAIMABLE"),
]);
