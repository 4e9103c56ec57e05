//! `berth history IMAGE`.

use clap::Args;
use serde_json::{json, Value};

use crate::output::print_list;
use crate::units::{ago, human_size};
use crate::{CmdResult, Ctx};
use berth_format::Headers;
use berth_image::timefmt;

#[derive(Args)]
pub struct HistoryArgs {
    /// Format output using a custom template ('json', 'table TEMPLATE', 'TEMPLATE')
    #[arg(long)]
    format: Option<String>,
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    human: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    image: String,
}

/// How many history entries (or, without history, layers) an image has.
fn history_len(img: &berth_image::Image) -> usize {
    match img.config_json.get("history").and_then(Value::as_array) {
        Some(h) if !h.is_empty() => h.len(),
        _ => img.layers.len(),
    }
}

struct Entry {
    id: String,
    created: i64,
    created_by: String,
    size: u64,
    comment: String,
}

pub fn run(ctx: &Ctx, a: HistoryArgs) -> CmdResult {
    let store = ctx.store()?;
    let img = store.resolve(&a.image)?;
    let history = img
        .config_json
        .get("history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut entries = Vec::new();
    let mut layer = 0usize;
    if history.is_empty() {
        for l in &img.layers {
            entries.push(Entry {
                id: "<missing>".into(),
                created: img.created,
                created_by: String::new(),
                size: l.size,
                comment: String::new(),
            });
        }
    }
    for h in &history {
        let empty = h
            .get("empty_layer")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let size = if empty {
            0
        } else {
            let s = img.layers.get(layer).map(|l| l.size).unwrap_or(0);
            layer += 1;
            s
        };
        let s = |k: &str| h.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        entries.push(Entry {
            id: "<missing>".into(),
            created: timefmt::parse_rfc3339(&s("created")).unwrap_or(0),
            created_by: s("created_by"),
            size,
            comment: s("comment"),
        });
    }
    entries.reverse();
    // docker shows, on the newest entry of each local image in the parent chain, that
    // image's id ("<missing>" on the rest): the image, then its parent from `commit`, ...
    let fmt_id = |hex: &str| {
        if a.no_trunc {
            format!("sha256:{hex}")
        } else {
            hex[..12].to_string()
        }
    };
    let mut at = 0usize;
    let mut cur = Some(img.clone());
    while let Some(i) = cur {
        let Some(e) = entries.get_mut(at) else { break };
        e.id = fmt_id(&i.id);
        let parent = store.parent(&i.id)?.map(|p| store.image(&p)).transpose()?;
        let own = match &parent {
            // Entries this image added on top of its parent.
            Some(p) => history_len(&i).saturating_sub(history_len(p)).max(1),
            None => break,
        };
        at += own;
        cur = parent;
    }

    // docker: -q only replaces the default table; a custom format wins.
    let format = a
        .format
        .as_deref()
        .filter(|f| !f.is_empty() && *f != "table");
    if a.quiet && format.is_none() {
        for e in &entries {
            println!("{}", e.id);
        }
        return Ok(());
    }
    // docker's history formatter: without -H, CREATED is the RFC 3339 time and SIZE in bytes.
    let created = |e: &Entry| {
        if a.human {
            ago(e.created)
        } else {
            timefmt::rfc3339(e.created)
        }
    };
    let size = |e: &Entry| {
        if a.human {
            human_size(e.size)
        } else {
            e.size.to_string()
        }
    };
    let by = |e: &Entry| {
        let b = e.created_by.replace('\t', " ");
        if a.no_trunc {
            b
        } else {
            crate::output::ellipsis(&b, 45)
        }
    };
    let rows: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({"Comment": e.comment, "CreatedAt": timefmt::rfc3339(e.created), "CreatedBy": by(e),
                   "CreatedSince": created(e), "ID": e.id, "Size": size(e)})
        })
        .collect();
    print_list(format, DEFAULT_TABLE, &HEADERS, &rows)
}

const DEFAULT_TABLE: &str =
    "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";

/// docker/cli's history formatter headers.
const HEADERS: Headers = Headers(&[
    ("ID", "IMAGE"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("CreatedBy", "CREATED BY"),
    ("Size", "SIZE"),
    ("Comment", "COMMENT"),
]);
