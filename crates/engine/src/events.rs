//! The event log (crates/events), plus docker's time syntax for `--since`/`--until`.

pub use berth_events::*;

use crate::error::Result;
use std::time::UNIX_EPOCH;

/// docker's `--since`/`--until`: RFC 3339, unix seconds (with fraction) or a duration ago.
pub fn parse_time_nanos(s: &str) -> Result<i64> {
    let t = crate::logs::parse_time(s)?;
    Ok(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as i64)
}
