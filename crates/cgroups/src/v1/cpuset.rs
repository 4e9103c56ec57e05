//! v1 cpuset controller. A new cpuset cgroup starts with empty cpus/mems and refuses tasks
//! until they are filled, so every level we create copies them from its parent.

use crate::fs;
use crate::stats::{CpuSet, Stats};
use crate::Result;
use oci_spec::runtime::LinuxCpu;
use std::path::Path;

/// Creates `dir` (and missing ancestors below `root`), each inheriting cpus/mems; an existing
/// level left empty by someone else is filled too.
pub fn create(root: &Path, dir: &Path) -> Result<()> {
    if dir == root || !dir.starts_with(root) {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create(root, parent)?;
    }
    fs::create_dir_all(dir)?;
    inherit(dir)
}

/// Copies cpuset.cpus and cpuset.mems from the parent when empty.
pub fn inherit(dir: &Path) -> Result<()> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for f in ["cpuset.cpus", "cpuset.mems"] {
        if fs::read(&dir.join(f))?.trim().is_empty() {
            let v = fs::read(&parent.join(f))?;
            fs::write(&dir.join(f), v.trim())?;
        }
    }
    Ok(())
}

pub fn set(dir: &Path, c: &LinuxCpu) -> Result<()> {
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        fs::write(&dir.join("cpuset.cpus"), cpus)?;
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        fs::write(&dir.join("cpuset.mems"), mems)?;
    }
    Ok(())
}

pub fn stats(dir: &Path, s: &mut Stats) -> Result<()> {
    let list = |f: &str| -> Result<Vec<u16>> {
        let p = dir.join(f);
        let v = fs::read(&p)?;
        fs::parse_list(&v).ok_or_else(|| fs::parse_err(&p, &v))
    };
    let num = |f: &str| fs::read_u64_opt(&dir.join(f));
    let level = dir.join("cpuset.sched_relax_domain_level");
    s.cpuset = CpuSet {
        cpus: list("cpuset.cpus")?,
        mems: list("cpuset.mems")?,
        cpu_exclusive: num("cpuset.cpu_exclusive")?,
        mem_hardwall: num("cpuset.mem_hardwall")?,
        mem_exclusive: num("cpuset.mem_exclusive")?,
        memory_migrate: num("cpuset.memory_migrate")?,
        memory_spread_page: num("cpuset.memory_spread_page")?,
        memory_spread_slab: num("cpuset.memory_spread_slab")?,
        memory_pressure: num("cpuset.memory_pressure")?,
        sched_load_balance: num("cpuset.sched_load_balance")?,
        sched_relax_domain_level: if level.exists() {
            let v = fs::read(&level)?;
            v.trim().parse().map_err(|_| fs::parse_err(&level, &v))?
        } else {
            0
        },
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_levels_inherit_from_parent() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("cpuset.cpus"), "0-1\n").unwrap();
        std::fs::write(t.path().join("cpuset.mems"), "0\n").unwrap();
        // A real cgroupfs creates the files with the directory; emulate that for two levels.
        let a = t.path().join("a");
        let b = a.join("b");
        for d in [&a, &b] {
            std::fs::create_dir(d).unwrap();
            std::fs::write(d.join("cpuset.cpus"), "").unwrap();
            std::fs::write(d.join("cpuset.mems"), "").unwrap();
            inherit(d).unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(b.join("cpuset.cpus")).unwrap(),
            "0-1"
        );
        assert_eq!(std::fs::read_to_string(b.join("cpuset.mems")).unwrap(), "0");
        set(
            &b,
            &serde_json::from_str(r#"{"cpus":"1","mems":"0"}"#).unwrap(),
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(b.join("cpuset.cpus")).unwrap(), "1");
    }
}
