//! podman with a private store in a temp dir: every bench that compares against podman gets a
//! fresh one and leaves nothing behind (containers, overlay mounts, storage, cgroups).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use berth_testkit::{remove_cgroup_everywhere, Scratch};

use crate::stats::Series;

/// podman's cgroup parent with the cgroupfs manager (containers.conf sets cgroupfs here).
const CGROUP_PARENT: &str = "libpod_parent";

pub struct Podman {
    dir: PathBuf,
    /// Containers made here: their cgroups are removed on drop should podman leave any.
    ids: Vec<String>,
    parent_existed: bool,
    scratch: Option<Scratch>,
}

/// Why podman cannot be compared here, or None if it is on PATH.
/// podman's row of a table: empty and saying why when podman can't take part.
pub fn row(unavailable: Option<String>) -> Series {
    match unavailable {
        Some(e) => Series::unavailable("podman", e),
        None => Series::new("podman"),
    }
}

pub fn missing() -> Option<String> {
    match Command::new("podman")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => None,
        Ok(s) => Some(format!("podman --version exited with {s}")),
        Err(e) => Some(format!("podman not runnable: {e}")),
    }
}

impl Podman {
    pub fn new(prefix: &str) -> Podman {
        let scratch = Scratch::new(prefix);
        Podman {
            dir: scratch.join("p"),
            ids: Vec::new(),
            parent_existed: cgroup_parent().exists(),
            scratch: Some(scratch),
        }
    }

    /// `podman` on this store. Runtime, cgroup manager and ulimits come from
    /// /etc/containers/containers.conf (written by scripts/test-deps).
    pub fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        // podman refuses a runroot longer than 50 characters: short names.
        c.arg("--root")
            .arg(self.dir.join("s"))
            .arg("--runroot")
            .arg(self.dir.join("r"))
            .arg("--tmpdir")
            .arg(self.dir.join("t"));
        c.args(["--storage-driver", "overlay"]);
        c
    }

    /// Remembers a container id for the cgroup sweep on drop.
    pub fn track(&mut self, id: &str) {
        self.ids.push(id.to_string());
    }
}

fn cgroup_parent() -> PathBuf {
    PathBuf::from("/sys/fs/cgroup/memory").join(CGROUP_PARENT)
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Stops and removes every container and image, unmounts the overlays, empties storage.
        let _ = self
            .cmd()
            .args(["system", "reset", "-f"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        for id in &self.ids {
            remove_cgroup_everywhere(&format!("{CGROUP_PARENT}/libpod-{id}"));
        }
        // The parent is shared with anyone else's podman: only an empty one we caused goes,
        // by plain rmdir (which fails while anything is inside), never by killing.
        if !self.parent_existed {
            for root in std::fs::read_dir("/sys/fs/cgroup")
                .into_iter()
                .flatten()
                .flatten()
            {
                let parent = root.path().join(CGROUP_PARENT);
                let _ = std::fs::remove_dir(parent.join("conmon"));
                let _ = std::fs::remove_dir(&parent);
            }
        }
        // Scratch's drop unmounts whatever podman left below the dir and deletes it.
        drop(self.scratch.take());
    }
}
