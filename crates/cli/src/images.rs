//! `berth images` / `berth image ls`.

use clap::Args;
use serde_json::json;

use crate::output::print_list;
use crate::units::{ago, human_size};
use crate::{CmdResult, Ctx, Failure};
use berth_format::Headers;
use berth_image::{familiar_repository, timefmt};

#[derive(Args)]
pub struct LsArgs {
    /// Filter by repository (and optionally tag)
    repository: Option<String>,
    /// Show all images (default hides intermediate images)
    #[arg(short, long)]
    all: bool,
    /// Show digests
    #[arg(long)]
    digests: bool,
    /// Filter output based on conditions provided (dangling=true|false, reference=PATTERN, label=KEY[=VALUE], before=IMAGE, since=IMAGE)
    #[arg(short, long)]
    filter: Vec<String>,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json', 'TEMPLATE'
    #[arg(long)]
    format: Option<String>,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
}

struct Row {
    repo: String,
    tag: String,
    digest: String,
    id: String,
    created: i64,
    size: u64,
    unique: u64,
    users: usize,
}

pub fn run(ctx: &Ctx, a: LsArgs) -> CmdResult {
    let store = ctx.store()?;
    let mut dangling: Option<bool> = None;
    let mut labels: Vec<(String, Option<String>)> = Vec::new();
    let mut before: Option<i64> = None;
    let mut since: Option<i64> = None;
    let mut refs: Vec<String> = a.repository.iter().cloned().collect();
    for f in &a.filter {
        match f.split_once('=') {
            Some(("dangling", v)) => {
                dangling = Some(match v {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(Failure(format!("invalid filter 'dangling={v}'"))),
                })
            }
            Some(("reference", v)) => refs.push(v.to_string()),
            Some(("label", v)) => labels.push(match v.split_once('=') {
                Some((k, val)) => (k.to_string(), Some(val.to_string())),
                None => (v.to_string(), None),
            }),
            Some(("before", v)) => before = Some(store.resolve(v)?.created),
            Some(("since", v)) => since = Some(store.resolve(v)?.created),
            _ => return Err(Failure(format!("invalid filter '{f}'"))),
        }
    }
    let mut rows = Vec::new();
    let images = store.list()?;
    // Parents of other images (docker's intermediate images, from commit) without a name are
    // listed only with -a.
    let mut parents = std::collections::HashSet::new();
    for img in &images {
        if let Some(p) = store.parent(&img.id)? {
            parents.insert(p);
        }
    }
    for img in images {
        if !a.all && img.names.is_empty() && parents.contains(&img.id) {
            continue;
        }
        if dangling.is_some_and(|d| d != img.names.is_empty())
            || before.is_some_and(|t| img.created >= t)
            || since.is_some_and(|t| img.created <= t)
        {
            continue;
        }
        let image_labels = img.config_json.pointer("/config/Labels");
        if !labels
            .iter()
            .all(|(k, v)| match image_labels.and_then(|l| l.get(k)) {
                Some(found) => v.as_ref().is_none_or(|v| found.as_str() == Some(v)),
                None => false,
            })
        {
            continue;
        }
        let unique = store.unique_size(&img.id)?;
        let id = if a.no_trunc {
            format!("sha256:{}", img.id)
        } else {
            img.short_id().to_string()
        };
        let mut names: Vec<(String, String)> = img
            .names
            .iter()
            .map(|n| {
                (
                    familiar_repository(&n.repository()),
                    n.tag.clone().unwrap_or_default(),
                )
            })
            .collect();
        if !refs.is_empty() {
            names.retain(|(r, t)| {
                refs.iter()
                    .any(|p| glob(p, r) || glob(p, &format!("{r}:{t}")))
            });
            if names.is_empty() {
                continue;
            }
        }
        if names.is_empty() {
            names.push(("<none>".into(), "<none>".into()));
        }
        for (repo, tag) in names {
            rows.push(Row {
                repo,
                tag,
                digest: if img.names.is_empty() {
                    "<none>".into()
                } else {
                    img.manifest_digest.clone()
                },
                id: id.clone(),
                created: img.created,
                size: img.size,
                unique,
                users: img.users.len(),
            });
        }
    }
    // docker: -q only replaces the default table; a custom format wins.
    let format = a
        .format
        .as_deref()
        .filter(|f| !f.is_empty() && *f != "table");
    if a.quiet && format.is_none() {
        let mut seen = std::collections::HashSet::new();
        for r in rows {
            if seen.insert(r.id.clone()) {
                println!("{}", r.id);
            }
        }
        return Ok(());
    }
    let values: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({
                "Containers": if r.users == 0 { "N/A".to_string() } else { r.users.to_string() },
                "CreatedAt": timefmt::go_time_string(r.created),
                "CreatedSince": ago(r.created),
                "Digest": r.digest,
                "ID": r.id,
                "Repository": r.repo,
                "SharedSize": "N/A",
                "Size": human_size(r.size),
                "Tag": r.tag,
                "UniqueSize": human_size(r.unique),
                "VirtualSize": human_size(r.size),
            })
        })
        .collect();
    let default = if a.digests {
        DEFAULT_TABLE_DIGESTS
    } else {
        DEFAULT_TABLE
    };
    print_list(format, default, &HEADERS, &values)
}

const DEFAULT_TABLE: &str =
    "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
const DEFAULT_TABLE_DIGESTS: &str =
    "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";

/// docker/cli's image formatter headers.
const HEADERS: Headers = Headers(&[
    ("ID", "IMAGE ID"),
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("Digest", "DIGEST"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
    ("Containers", "CONTAINERS"),
    ("VirtualSize", "VIRTUAL SIZE"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
]);

/// Glob match with `*` and `?` (docker's reference filter uses path.Match).
fn glob(pattern: &str, s: &str) -> bool {
    fn m(p: &[char], s: &[char]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some('*'), _) => m(&p[1..], s) || (!s.is_empty() && s[0] != '/' && m(p, &s[1..])),
            (Some('?'), Some(c)) if *c != '/' => m(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &s[1..]),
            _ => false,
        }
    }
    m(
        &pattern.chars().collect::<Vec<_>>(),
        &s.chars().collect::<Vec<_>>(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn glob_like_path_match() {
        assert!(super::glob("busy*", "busybox"));
        assert!(!super::glob("busy*", "a/busybox"));
        assert!(super::glob("b?sybox", "busybox"));
    }
}
