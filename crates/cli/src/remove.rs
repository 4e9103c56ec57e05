//! `berth tag`, `berth rmi`, `berth image prune`.

use berth_engine::filters::Filters;
use clap::Args;
use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};

use crate::units::human_size;
use crate::{CmdResult, Ctx, Failure};
use berth_image::RemoveEvent;

#[derive(Args)]
pub struct TagArgs {
    source: String,
    target: String,
}

#[derive(Args)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short, long)]
    force: bool,
    /// Do not delete untagged parents (accepted for docker compatibility)
    #[arg(long)]
    no_prune: bool,
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long)]
    filter: Vec<String>,
}

pub fn tag(ctx: &Ctx, a: TagArgs) -> CmdResult {
    ctx.store()?.tag(&a.source, &a.target)?;
    Ok(())
}

fn print_event(e: &RemoveEvent, lower: bool) {
    match (e, lower) {
        (RemoveEvent::Untagged(n), false) => println!("Untagged: {n}"),
        (RemoveEvent::Deleted(d), false) => println!("Deleted: {d}"),
        (RemoveEvent::Untagged(n), true) => println!("untagged: {n}"),
        (RemoveEvent::Deleted(d), true) => println!("deleted: {d}"),
    }
}

pub fn rmi(ctx: &Ctx, a: RmiArgs) -> CmdResult {
    let _ = a.no_prune;
    let store = ctx.store()?;
    let mut errors = Vec::new();
    for name in &a.images {
        match store.remove(name, a.force) {
            Ok(events) => events.iter().for_each(|e| print_event(e, false)),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Failure(errors.join("\nError: ")))
    }
}

pub fn prune(ctx: &Ctx, mut a: PruneArgs) -> CmdResult {
    let filters = Filters::parse(&a.filter)?;
    filters.validate(&["dangling", "label", "label!", "until"])?;
    for d in filters.values("dangling") {
        match d {
            "false" | "0" => a.all = true,
            "true" | "1" => {}
            _ => return Err(Failure(format!("invalid filter 'dangling={d}'"))),
        }
    }
    if !a.force {
        let what = if a.all {
            "all images without at least one container associated to them"
        } else {
            "all dangling images"
        };
        print!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
        io::stdout().flush()?;
        let mut answer = String::new();
        io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(());
        }
    }
    // A bad `until` fails before anything is removed.
    for u in filters.values("until") {
        berth_engine::filters::parse_until(u)?;
    }
    let select = |img: &berth_image::Image| {
        let labels: BTreeMap<String, String> = img
            .config_json
            .pointer("/config/Labels")
            .and_then(|l| serde_json::from_value(l.clone()).ok())
            .unwrap_or_default();
        let created =
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(img.created.max(0) as u64);
        filters.match_prune(&labels, created).unwrap_or(false)
    };
    let report = ctx.store()?.prune_matching(a.all, &select)?;
    if !report.events.is_empty() {
        println!("Deleted Images:");
        report.events.iter().for_each(|e| print_event(e, true));
        println!();
    }
    println!("Total reclaimed space: {}", human_size(report.reclaimed));
    Ok(())
}
