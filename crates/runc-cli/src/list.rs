//! `list`: runc's table (tab-aligned columns) or a JSON array of container states.

use anyhow::Result;
use berth_runtime::Runtime;
use clap::Args;

use crate::ListFormat;

#[derive(Args)]
pub struct ListArgs {
    #[arg(short, long, value_enum, default_value = "table")]
    format: ListFormat,
    /// Print only the container ids.
    #[arg(short, long)]
    quiet: bool,
}

pub fn list(rt: &Runtime, args: &ListArgs) -> Result<()> {
    let states = rt.list()?;
    if args.quiet {
        for s in &states {
            println!("{}", s.id);
        }
        return Ok(());
    }
    match args.format {
        ListFormat::Json => println!("{}", serde_json::to_string(&states)?),
        ListFormat::Table => {
            let mut rows = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
                .map(String::from)
                .to_vec()];
            for s in &states {
                let (pid, status, bundle) = (
                    s.pid.to_string(),
                    s.status.to_string(),
                    s.bundle.display().to_string(),
                );
                rows.push(vec![
                    s.id.clone(),
                    pid,
                    status,
                    bundle,
                    s.created.clone(),
                    s.owner.clone(),
                ]);
            }
            print!("{}", align(&rows));
        }
    }
    Ok(())
}

/// Left-aligned columns separated by at least three spaces, like Go's tabwriter in runc.
pub fn align(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, s)| format!("{s:<w$}", w = widths[c]))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let rows = vec![
            vec!["ID".into(), "PID".into()],
            vec!["abcdef".into(), "1".into()],
        ];
        assert_eq!(align(&rows), "ID       PID\nabcdef   1\n");
    }
}
