//! Per-container state directory: state.json (written atomically), the exec fifo and a flock.

use crate::error::{Error, ErrorKind, Result};
use crate::sys;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// runc's `state` output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

/// What state.json holds: the public state plus what later commands need.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    #[serde(flatten)]
    pub state: State,
    /// Field 22 of /proc/PID/stat when created: tells our init from a reused pid.
    pub init_start_time: u64,
    #[serde(default)]
    pub cgroups_path: Option<PathBuf>,
    #[serde(default)]
    pub cgroup_paths: Vec<(String, PathBuf)>,
    /// The bundle's config, for hooks, exec (seccomp, namespaces) and delete.
    pub config: oci_spec::runtime::Spec,
}

impl Saved {
    /// Is the recorded init still our process (same start time, not a zombie)?
    pub fn init_alive(&self) -> bool {
        if self.state.pid <= 0 {
            return false;
        }
        match sys::proc_start_time(self.state.pid) {
            Some((start, zombie)) => start == self.init_start_time && !zombie,
            None => false,
        }
    }
}

pub fn dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// runc's id rule: letters, digits, `_ + - .`, not "." or "..", at most 1024 bytes.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'));
    if id.is_empty() {
        return Err(Error::invalid("container id cannot be empty"));
    }
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!("invalid container id {id:?}")))
    }
}

pub fn load(root: &Path, id: &str) -> Result<Saved> {
    validate_id(id)?;
    let path = dir(root, id).join(STATE_FILE);
    let data = match fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::not_found(id)),
        Err(e) => return Err(Error::sys(format!("read {}", path.display()), e)),
    };
    serde_json::from_slice(&data)
        .map_err(|e| Error::internal(format!("container {id}: corrupt {}: {e}", path.display())))
}

/// temp file + rename, so a reader sees the old or the new state, never half. Not fsynced (runc
/// does not either): it describes live processes, which a crash ends anyway, and a sync is a
/// journal commit (tens of ms on a busy disk) on the path of every create.
pub fn save(root: &Path, saved: &Saved) -> Result<()> {
    let d = dir(root, &saved.state.id);
    let tmp = d.join(".state.json.tmp");
    let path = d.join(STATE_FILE);
    let data =
        serde_json::to_vec(saved).map_err(|e| Error::internal(format!("encode state: {e}")))?;
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&data)?;
        fs::rename(&tmp, &path)
    };
    write().map_err(|e| Error::sys(format!("write {}", path.display()), e))
}

/// An exclusive flock on the container directory, held until dropped.
pub struct Lock {
    _fd: OwnedFd,
}

pub fn lock(root: &Path, id: &str) -> Result<Lock> {
    validate_id(id)?;
    let d = dir(root, id);
    let fd = match sys::open(&sys::cstr(&d), libc::O_RDONLY | libc::O_DIRECTORY, 0) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Err(Error::not_found(id)),
        Err(e) => return Err(Error::sys(format!("open {}", d.display()), e)),
    };
    loop {
        if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(Lock { _fd: fd });
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(Error::sys(format!("lock {}", d.display()), e));
        }
    }
}

/// Current status from the kernel: init gone → stopped; fifo still there → created; frozen → paused.
pub fn status(root: &Path, saved: &Saved) -> Status {
    if !saved.init_alive() {
        return Status::Stopped;
    }
    if sys::path_exists(&dir(root, &saved.state.id).join(EXEC_FIFO)) {
        return Status::Created;
    }
    if let Ok(m) = berth_cgroups::open(saved.cgroups_path.as_deref(), &saved.state.id) {
        if let Ok(berth_cgroups::FreezerState::Frozen) = m.freezer_state() {
            return Status::Paused;
        }
    }
    Status::Running
}

/// RFC 3339 with nanoseconds, UTC, as runc prints `created`.
pub fn rfc3339_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_nanos()
    )
}

/// The user name of `uid` from the host's /etc/passwd, or the number.
pub fn owner_name(uid: u32) -> String {
    if uid == 0 {
        return "root".into();
    }
    if let Ok(p) = fs::read_to_string("/etc/passwd") {
        for l in p.lines() {
            let mut f = l.split(':');
            if let (Some(name), _, Some(u)) = (f.next(), f.next(), f.next()) {
                if u.parse::<u32>().ok() == Some(uid) {
                    return name.to_string();
                }
            }
        }
    }
    uid.to_string()
}

/// Maps an unexpected state to a Conflict error naming the container.
pub fn conflict(id: &str, what: &str, status: Status) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!("container {id}: cannot {what} a {status} container"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(validate_id("abc-1_2.3+x").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "../x"] {
            assert_eq!(
                validate_id(bad).unwrap_err().kind(),
                ErrorKind::InvalidArgument,
                "{bad}"
            );
        }
    }

    #[test]
    fn timestamp_shape() {
        let t = rfc3339_now();
        assert_eq!(t.len(), 30, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
    }
}
