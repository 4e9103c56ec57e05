//! cgroup v2 device rules need a BPF_PROG_TYPE_CGROUP_DEVICE program; berth does not build one
//! yet, so rules are refused loudly rather than silently dropped.

use crate::{Error, Result};
use oci_spec::runtime::LinuxDeviceCgroup;
use std::path::Path;

pub fn apply(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    Err(Error::Unsupported {
        what: format!("{} linux.resources.devices rules for {}", rules.len(), dir.display()),
        why: "cgroup v2 device control needs a BPF program, which berth does not load yet".into(),
    })
}
