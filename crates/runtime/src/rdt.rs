//! linux.intelRdt through the resctrl filesystem: one group (closID, or the container id) with
//! the spec's schemata, the init's pid in its tasks; removed at delete when the runtime made it.
//! Only where resctrl is mounted at /sys/fs/resctrl: elsewhere the field fails at once.

use crate::error::{Error, ErrorKind, Result};
use oci_spec::runtime::LinuxIntelRdt;
use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/resctrl";

pub fn available() -> bool {
    Path::new(ROOT).join("schemata").exists()
}

fn group(rdt: &LinuxIntelRdt, id: &str) -> Result<PathBuf> {
    let name = rdt.clos_id().as_deref().unwrap_or(id);
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(Error::invalid(format!(
            "linux.intelRdt.closID {name:?} is not a valid group name"
        )));
    }
    Ok(Path::new(ROOT).join(name))
}

/// Checks before anything is created.
pub fn check(rdt: Option<&LinuxIntelRdt>, id: &str) -> Result<()> {
    let Some(rdt) = rdt else { return Ok(()) };
    if !available() {
        return Err(Error::new(
            ErrorKind::Unavailable,
            format!("linux.intelRdt: resctrl is not mounted at {ROOT} on this host (no Intel RDT / AMD PQoS)"),
        ));
    }
    group(rdt, id).map(drop)
}

/// Creates (or, with closID, joins) the group, writes the schemata and adds `pid`.
pub fn apply(rdt: &LinuxIntelRdt, id: &str, pid: i32) -> Result<()> {
    let dir = group(rdt, id)?;
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && rdt.clos_id().is_some() => {}
        Err(e) => return Err(Error::sys(format!("create {}", dir.display()), e)),
    }
    let mut lines: Vec<String> = Vec::new();
    lines.extend(rdt.l3_cache_schema().iter().cloned());
    lines.extend(rdt.mem_bw_schema().iter().cloned());
    lines.extend(rdt.schemata().iter().flatten().cloned());
    let schemata = dir.join("schemata");
    for l in lines
        .iter()
        .flat_map(|l| l.lines())
        .filter(|l| !l.trim().is_empty())
    {
        std::fs::write(&schemata, format!("{l}\n"))
            .map_err(|e| Error::sys(format!("write {l:?} to {}", schemata.display()), e))?;
    }
    let tasks = dir.join("tasks");
    std::fs::write(&tasks, pid.to_string())
        .map_err(|e| Error::sys(format!("write {}", tasks.display()), e))
}

/// Removes the group the runtime created (a shared closID group stays).
pub fn remove(rdt: Option<&LinuxIntelRdt>, id: &str) {
    if let Some(r) = rdt.filter(|r| r.clos_id().is_none()) {
        if let Ok(dir) = group(r, id) {
            let _ = std::fs::remove_dir(dir);
        }
    }
}
