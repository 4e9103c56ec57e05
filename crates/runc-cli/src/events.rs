//! `events`: runc's {"type":"stats","id":...,"data":...} lines, once (--stats) or every --interval
//! until the container is gone or stopped.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use berth_runtime::{Runtime, Status};
use clap::Args;
use serde_json::json;

#[derive(Args)]
pub struct EventsArgs {
    /// Print one stats line and exit.
    #[arg(long)]
    stats: bool,
    /// Time between stats lines, e.g. 5s, 500ms, 1m.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    interval: Duration,
    id: String,
}

pub fn events(rt: &Runtime, a: &EventsArgs) -> Result<()> {
    let mut first = true;
    loop {
        let stats = match rt.stats(&a.id) {
            Ok(s) => s,
            // Stopped between the state check below and this read: the stream ends, as it would have.
            Err(e) if !first && e.kind() == berth_runtime::ErrorKind::Conflict => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        first = false;
        println!("{}", json!({ "type": "stats", "id": a.id, "data": stats }));
        if a.stats {
            return Ok(());
        }
        std::thread::sleep(a.interval);
        match rt.state(&a.id) {
            Ok(s) if s.status != Status::Stopped => {}
            _ => return Ok(()),
        }
    }
}

/// Go-style durations as runc takes them: 5s, 100ms, 1m30s, 2h.
fn parse_duration(s: &str) -> Result<Duration> {
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let u_end = rest[n_end..]
            .find(|c: char| c.is_ascii_digit())
            .map_or(rest.len(), |i| n_end + i);
        let n: f64 = rest[..n_end]
            .parse()
            .with_context(|| format!("invalid duration {s:?}"))?;
        let unit = match &rest[n_end..u_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => bail!("invalid duration {s:?}: use units ns, us, ms, s, m, h"),
        };
        total += n * unit;
        rest = &rest[u_end..];
    }
    if total <= 0.0 {
        bail!("invalid duration {s:?}: must be positive");
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("").is_err());
    }
}
