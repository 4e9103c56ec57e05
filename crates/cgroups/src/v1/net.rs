//! v1 net_cls / net_prio.

use crate::fs;
use crate::Result;
use oci_spec::runtime::LinuxNetwork;
use std::path::Path;

pub fn set_cls(dir: &Path, n: &LinuxNetwork) -> Result<()> {
    if let Some(id) = n.class_id() {
        fs::write(&dir.join("net_cls.classid"), id.to_string())?;
    }
    Ok(())
}

pub fn set_prio(dir: &Path, n: &LinuxNetwork) -> Result<()> {
    for p in n.priorities().iter().flatten() {
        fs::write(
            &dir.join("net_prio.ifpriomap"),
            format!("{} {}", p.name(), p.priority()),
        )?;
    }
    Ok(())
}
