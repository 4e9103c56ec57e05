//! Which namespaces to create (clone flags or unshare) and which to join (setns on a path).

use crate::error::{Error, Result};
use crate::sys;
use oci_spec::runtime::{Linux, LinuxNamespaceType};
use std::os::fd::{AsRawFd, OwnedFd};

pub fn flag(t: LinuxNamespaceType) -> libc::c_int {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => CLONE_NEWTIME,
    }
}

pub const CLONE_NEWTIME: libc::c_int = 0x80;

/// /proc/PID/ns file name of a namespace type.
pub fn proc_name(t: libc::c_int) -> &'static str {
    match t {
        libc::CLONE_NEWNS => "mnt",
        libc::CLONE_NEWCGROUP => "cgroup",
        libc::CLONE_NEWUTS => "uts",
        libc::CLONE_NEWIPC => "ipc",
        libc::CLONE_NEWUSER => "user",
        libc::CLONE_NEWPID => "pid",
        libc::CLONE_NEWNET => "net",
        _ => "time",
    }
}

/// Join order: user first (it grants the rights for the rest), mount last (after it, host paths
/// are gone).
pub const JOIN_ORDER: [libc::c_int; 8] = [
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWCGROUP,
    CLONE_NEWTIME,
    libc::CLONE_NEWNS,
];

#[derive(Default)]
pub struct Plan {
    /// Namespaces to create (CLONE_NEW* bits).
    pub new: libc::c_int,
    /// Namespaces to join, in JOIN_ORDER, with an open fd each.
    pub join: Vec<(libc::c_int, OwnedFd)>,
}

impl Plan {
    pub fn from_linux(linux: Option<&Linux>) -> Result<Plan> {
        let mut plan = Plan::default();
        let mut joins = Vec::new();
        for ns in linux
            .and_then(|l| l.namespaces().as_ref())
            .into_iter()
            .flatten()
        {
            let f = flag(ns.typ());
            match ns.path() {
                None => plan.new |= f,
                Some(p) => {
                    let fd = sys::open(&sys::cstr(p), libc::O_RDONLY, 0).map_err(|e| {
                        Error::sys(format!("namespace {} path {}", ns.typ(), p.display()), e)
                    })?;
                    // Joining the namespace we are already in is a no-op (and EINVAL for user).
                    if same_ns(&fd, f) {
                        continue;
                    }
                    joins.push((f, fd));
                }
            }
        }
        for t in JOIN_ORDER {
            if let Some(i) = joins.iter().position(|(f, _)| *f == t) {
                plan.join.push(joins.swap_remove(i));
            }
        }
        Ok(plan)
    }

    pub fn has(&self, f: libc::c_int) -> bool {
        self.new & f != 0
    }

    pub fn joins(&self, f: libc::c_int) -> bool {
        self.join.iter().any(|(t, _)| *t == f)
    }

    /// The init can be cloned with every new namespace at once only when nothing is joined and
    /// no time namespace (which only applies to children) is asked for.
    pub fn direct(&self) -> bool {
        self.join.is_empty() && !self.has(CLONE_NEWTIME)
    }
}

fn same_ns(fd: &OwnedFd, f: libc::c_int) -> bool {
    let own = format!("/proc/self/ns/{}", proc_name(f));
    match (sys::fstat(fd.as_raw_fd()), sys::stat(&sys::cstr(&own))) {
        (Ok(a), Ok(b)) => a.st_ino == b.st_ino && a.st_dev == b.st_dev,
        _ => false,
    }
}

pub fn join(plan: &Plan, only: Option<libc::c_int>) -> Result<()> {
    for (t, fd) in &plan.join {
        if only.is_some_and(|o| o != *t) {
            continue;
        }
        sys::setns(fd.as_raw_fd(), *t)
            .map_err(|e| Error::sys(format!("join {} namespace", proc_name(*t)), e))?;
    }
    Ok(())
}

/// Closes the namespace fds once joined, in a child that never drops `plan`: they name host
/// namespaces and must not stay reachable from the container while the init waits for start.
pub fn close_joined(plan: &Plan) {
    for (_, fd) in &plan.join {
        let raw = fd.as_raw_fd() as u32;
        let _ = sys::close_range(raw, raw, 0);
    }
}

/// uid_map/gid_map lines for /proc/PID/{uid,gid}_map.
pub fn map_text(maps: &[oci_spec::runtime::LinuxIdMapping]) -> String {
    let mut s = String::new();
    for m in maps {
        s.push_str(&format!(
            "{} {} {}\n",
            m.container_id(),
            m.host_id(),
            m.size()
        ));
    }
    s
}

/// Writes the maps of `pid`'s new user namespace from the parent.
pub fn write_maps(pid: i32, linux: &Linux) -> Result<()> {
    let uid = map_text(linux.uid_mappings().as_deref().unwrap_or(&[]));
    let gid = map_text(linux.gid_mappings().as_deref().unwrap_or(&[]));
    if unsafe { libc::geteuid() } != 0 {
        // An unprivileged writer may only map itself, and only with setgroups denied.
        let _ = std::fs::write(format!("/proc/{pid}/setgroups"), "deny");
    }
    std::fs::write(format!("/proc/{pid}/uid_map"), uid)
        .map_err(|e| Error::sys(format!("write uid_map of {pid}"), e))?;
    std::fs::write(format!("/proc/{pid}/gid_map"), gid)
        .map_err(|e| Error::sys(format!("write gid_map of {pid}"), e))?;
    Ok(())
}
