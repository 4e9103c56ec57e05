//! `ps`: the container's host pids, as JSON or as the caller's `ps` output filtered to them.

use anyhow::{bail, Context, Result};
use berth_runtime::Runtime;
use clap::Args;

use crate::ListFormat;

#[derive(Args)]
pub struct PsArgs {
    #[arg(short, long, value_enum, default_value = "table")]
    format: ListFormat,
    id: String,
    /// Options passed to ps(1) (default -ef).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_args: Vec<String>,
}

pub fn ps(rt: &Runtime, args: &PsArgs) -> Result<()> {
    let pids = rt.pids(&args.id)?;
    if let ListFormat::Json = args.format {
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(());
    }
    let ps_args: Vec<&str> = if args.ps_args.is_empty() {
        vec!["-ef"]
    } else {
        args.ps_args.iter().map(String::as_str).collect()
    };
    let out = std::process::Command::new("ps")
        .args(&ps_args)
        .output()
        .context("run ps")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            ps_args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    print!("{}", filter(&String::from_utf8_lossy(&out.stdout), &pids)?);
    Ok(())
}

/// Keeps the header and the lines whose PID column is one of `pids`.
fn filter(ps_out: &str, pids: &[i32]) -> Result<String> {
    let mut lines = ps_out.lines();
    let header = lines.next().unwrap_or_default();
    let Some(col) = header.split_whitespace().position(|h| h == "PID") else {
        bail!("ps output has no PID column: {header:?}");
    };
    let mut out = format!("{header}\n");
    for l in lines {
        if l.split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok())
            .is_some_and(|p| pids.contains(&p))
        {
            out.push_str(l);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_header_and_matching_pids() {
        let ps = "UID PID PPID CMD\nroot 1 0 init\nroot 42 1 sh\nroot 420 1 sleep\n";
        assert_eq!(
            filter(ps, &[42]).unwrap(),
            "UID PID PPID CMD\nroot 42 1 sh\n"
        );
        assert!(filter("USER CMD\n", &[1]).is_err());
    }
}
