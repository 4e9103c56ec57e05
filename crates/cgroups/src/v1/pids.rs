//! pids controller (same files in v1 and v2).

use crate::fs;
use crate::stats::{Pids, Stats};
use crate::Result;
use oci_spec::runtime::LinuxPids;
use std::path::Path;

/// 0 or negative means no limit, written as "max".
pub fn limit_value(p: &LinuxPids) -> String {
    match p.limit() {
        l if l > 0 => l.to_string(),
        _ => "max".into(),
    }
}

pub fn set(dir: &Path, p: &LinuxPids) -> Result<()> {
    fs::write(&dir.join("pids.max"), limit_value(p))
}

pub fn stats(dir: &Path, s: &mut Stats) -> Result<()> {
    let limit = fs::read_u64(&dir.join("pids.max"))?;
    s.pids = Pids {
        current: fs::read_u64(&dir.join("pids.current"))?,
        limit: if limit == u64::MAX { 0 } else { limit },
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_max() {
        let t = tempfile::tempdir().unwrap();
        crate::fs::touch(t.path(), &["pids.max"]);
        for (json, want) in [
            (r#"{"limit":10}"#, "10"),
            (r#"{"limit":0}"#, "max"),
            (r#"{"limit":-1}"#, "max"),
        ] {
            set(t.path(), &serde_json::from_str(json).unwrap()).unwrap();
            assert_eq!(
                std::fs::read_to_string(t.path().join("pids.max")).unwrap(),
                want
            );
        }
        std::fs::write(t.path().join("pids.current"), "3\n").unwrap();
        let mut s = Stats::default();
        stats(t.path(), &mut s).unwrap();
        assert_eq!((s.pids.current, s.pids.limit), (3, 0));
    }
}
