//! `berth system df`.

use clap::Args;
use serde_json::json;

use crate::format::{human_size, human_size_prec, print_formatted, table};
use crate::{CmdResult, Ctx, Failure};

#[derive(Args)]
pub struct DfArgs {
    /// Format output using a custom template ('json', 'table TEMPLATE', 'TEMPLATE')
    #[arg(long)]
    format: Option<String>,
    /// Show detailed information on space usage
    #[arg(short, long)]
    verbose: bool,
}

pub fn df(ctx: &Ctx, a: DfArgs) -> CmdResult {
    let _ = a.verbose;
    let du = ctx.store()?.disk_usage()?;
    let reclaimable = if du.size > 0 {
        format!("{} ({}%)", human_size_prec(du.reclaimable as f64, 4), du.reclaimable * 100 / du.size)
    } else {
        human_size(du.reclaimable)
    };
    // Containers, volumes and build cache do not exist yet in berth: truly zero.
    let rows = [
        ("Images", du.images, du.active, human_size_prec(du.size as f64, 4), reclaimable),
        ("Containers", 0, 0, "0B".into(), "0B".into()),
        ("Local Volumes", 0, 0, "0B".into(), "0B".into()),
        ("Build Cache", 0, 0, "0B".into(), "0B".into()),
    ];
    match a.format.as_deref() {
        None | Some("table") => {
            let mut lines = vec![["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"].iter().map(|s| s.to_string()).collect::<Vec<_>>()];
            for (t, total, active, size, rec) in &rows {
                lines.push(vec![t.to_string(), total.to_string(), active.to_string(), size.clone(), rec.clone()]);
            }
            print!("{}", table(&lines));
            Ok(())
        }
        Some(f) => {
            let values: Vec<_> = rows
                .iter()
                .map(|(t, total, active, size, rec)| {
                    json!({"Active": active.to_string(), "Reclaimable": rec, "Size": size, "TotalCount": total.to_string(), "Type": t})
                })
                .collect();
            print_formatted(f, &values).map_err(Failure)
        }
    }
}
