//! cgroups v1 and v2 behind one interface.
//!
//! ```no_run
//! # fn main() -> berth_cgroups::Result<()> {
//! let spec: oci_spec::runtime::LinuxResources = serde_json::from_str(r#"{"pids":{"limit":64}}"#).unwrap();
//! let cg = berth_cgroups::open(Some(std::path::Path::new("/berth/c1")), "c1")?;
//! cg.apply(1234)?; // create the directories, move the process in
//! cg.set(&spec)?;
//! println!("{}", serde_json::to_string(&cg.stats()?).unwrap()); // runc `events --stats` "data"
//! cg.destroy()?;
//! # Ok(()) }
//! ```
//!
//! [`open`] looks at /sys/fs/cgroup: a cgroup2 mount there means the unified layout ([`Version::V2`]);
//! anything else is treated as v1, including "hybrid" hosts whose cgroup2 mount at
//! /sys/fs/cgroup/unified carries few or no controllers. The v1 backend joins that mount too (so
//! the process is accounted there, as runc does) and writes hugetlb limits there when hugetlb is
//! not a v1 hierarchy; it needs nothing else from it.
//!
//! cgroupsPath follows runc's cgroupfs driver: an absolute path is relative to each hierarchy's
//! root, a relative one to the caller's own cgroup in that hierarchy (from /proc/self/cgroup),
//! and no path means the container id, relative. On a pure v2 host a relative path starts at the
//! *parent* of the caller's cgroup (runc's fs2, crun): the caller's own cgroup has processes, and
//! v2 forbids enabling controllers in such a cgroup. systemd "slice:prefix:name" paths are refused.
//!
//! v2 device rules become a BPF_PROG_TYPE_CGROUP_DEVICE program ([`v2::devices`]); settings a
//! layout cannot express (v1: `unified`, missing net_cls/net_prio; v2: realtime, swappiness,
//! disableOOMKiller, network) are errors, never silently dropped. Only kernelTCP (always) and
//! kernel memory (where the kernel no longer enforces it), both deprecated by the runtime-spec,
//! are ignored with a warning.
//!
//! Each v1 controller and the v2 backend write into a directory they are given, so their unit
//! tests run against temporary directories; the real-kernel tests live in `tests/`.

use std::path::{Path, PathBuf};

mod fs;
pub mod path;
pub mod stats;
pub mod v1;
pub mod v2;

pub use stats::Stats;

/// Which cgroup layout a manager drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Version {
    V1,
    V2,
}

/// Freezer state as both v1 (`freezer.state`) and v2 (`cgroup.freeze`) report it once settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezerState {
    Frozen,
    Thawed,
}

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("write {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: std::io::Error,
    },
    #[error("parse {path}: unexpected content {content:?}")]
    Parse { path: PathBuf, content: String },
    #[error(
        "cgroups path {0:?} looks like a systemd slice path (slice:prefix:name); only the cgroupfs driver is supported"
    )]
    SystemdPath(String),
    #[error("{what} not supported: {why}")]
    Unsupported { what: String, why: String },
    #[error("invalid {what}: {why}")]
    Invalid { what: String, why: String },
    #[error("{path}: timed out waiting for freezer state {state}")]
    FreezeTimeout { path: PathBuf, state: &'static str },
}

impl Error {
    /// The errno behind an I/O failure (EBUSY, ENOENT, EINVAL...), for callers that map kinds.
    pub fn raw_os_error(&self) -> Option<i32> {
        fs::raw_os_error(self)
    }
}

/// One container's cgroup, whatever the layout.
pub trait Manager: Send + Sync {
    fn version(&self) -> Version;
    /// Creates the directories (idempotent) and moves `pid` in.
    fn apply(&self, pid: i32) -> Result<()>;
    fn set(&self, resources: &oci_spec::runtime::LinuxResources) -> Result<()>;
    /// Returns once the kernel reports the requested state.
    fn freeze(&self, state: FreezerState) -> Result<()>;
    fn freezer_state(&self) -> Result<FreezerState>;
    /// Every pid in the cgroup, sub-cgroups included.
    fn pids(&self) -> Result<Vec<i32>>;
    fn stats(&self) -> Result<Stats>;
    /// v1 memory.oom_control `oom_kill`, v2 memory.events `oom_kill`.
    fn oom_kill_count(&self) -> Result<u64>;
    /// Removes the directories (brief retry on EBUSY); Ok when already gone.
    fn destroy(&self) -> Result<()>;
    /// Controller -> directory (v2: one entry, controller "").
    fn paths(&self) -> Vec<(String, PathBuf)>;
}

/// Opens (without creating) the cgroup of container `id` at `cgroups_path`.
pub fn open(cgroups_path: Option<&Path>, id: &str) -> Result<Box<dyn Manager>> {
    let path = path::cgroup_path(cgroups_path, id)?;
    let mounts = path::read_mounts()?;
    let own = path::read_own()?;
    if unified_at(Path::new(CGROUP_ROOT))? {
        let m = mounts
            .iter()
            .find(|m| m.v2 && m.mount_point == Path::new(CGROUP_ROOT))
            .ok_or_else(|| Error::Invalid {
                what: "cgroup mounts".into(),
                why: format!("{CGROUP_ROOT} is cgroup2 but not in /proc/self/mountinfo"),
            })?;
        let dir = path::resolve_v2(m, &own, &path)?;
        return Ok(Box::new(v2::V2Manager::new(m.mount_point.clone(), dir)));
    }
    Ok(Box::new(v1::V1Manager::from_mounts(&mounts, &own, &path)?))
}

/// Reopens a container's cgroup from the directories [`Manager::paths`] gave at create time, so a
/// later command run from another cgroup finds the same one even for a relative cgroupsPath (the
/// v2 directory is stored as it was resolved); falls back to [`open`] for v1 or without paths.
pub fn open_saved(
    cgroups_path: Option<&Path>,
    id: &str,
    saved: &[(String, PathBuf)],
) -> Result<Box<dyn Manager>> {
    if let [(ctrl, dir)] = saved {
        if ctrl.is_empty() && dir.starts_with(CGROUP_ROOT) && unified_at(Path::new(CGROUP_ROOT))? {
            return Ok(Box::new(v2::V2Manager::new(
                PathBuf::from(CGROUP_ROOT),
                dir.clone(),
            )));
        }
    }
    open(cgroups_path, id)
}

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Which layout this host uses: cgroup2 mounted at /sys/fs/cgroup means unified.
pub fn host_version() -> Result<Version> {
    Ok(if unified_at(Path::new(CGROUP_ROOT))? {
        Version::V2
    } else {
        Version::V1
    })
}

fn unified_at(p: &Path) -> Result<bool> {
    let st = nix::sys::statfs::statfs(p).map_err(|e| fs::io_err("statfs", p, e.into()))?;
    Ok(st.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}
