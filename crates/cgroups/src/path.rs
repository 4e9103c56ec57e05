//! Where a container's cgroup lives: cgroup mounts from /proc/self/mountinfo, the caller's own
//! cgroups from /proc/self/cgroup, and cgroupsPath resolved the way runc's cgroupfs driver does.
//! The parsers take the file contents so tests can feed them any layout.

use crate::{Error, Result};
use std::path::{Component, Path, PathBuf};

/// A cgroupsPath after cleaning: either from each hierarchy's root or from the caller's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupPath {
    Absolute(PathBuf),
    Relative(PathBuf),
}

/// Cleans `cgroups_path` as runc does (`..` cannot climb above the start) and decides how it is
/// anchored. No path (or an empty one) means the container id, relative, as in runc.
pub fn cgroup_path(cgroups_path: Option<&Path>, id: &str) -> Result<CgroupPath> {
    let raw = cgroups_path
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !raw.starts_with('/') && raw.split(':').count() == 3 {
        return Err(Error::SystemdPath(raw));
    }
    let (absolute, raw) = if raw.is_empty() {
        (false, id.to_owned())
    } else {
        (raw.starts_with('/'), raw)
    };
    let cleaned = clean(Path::new(&raw));
    if cleaned.as_os_str().is_empty() {
        return Err(Error::Invalid {
            what: "cgroups path".into(),
            why: format!("{raw:?} (id {id:?}) names no cgroup below the root"),
        });
    }
    Ok(if absolute {
        CgroupPath::Absolute(cleaned)
    } else {
        CgroupPath::Relative(cleaned)
    })
}

/// Lexical cleaning relative to "/": drops ".", resolves ".." without going above the start.
fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// One cgroup filesystem mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub mount_point: PathBuf,
    /// The cgroup shown at the mount point (not "/" inside a cgroup namespace or bind mount).
    pub root: PathBuf,
    /// v1: the controllers (and "name=..." for named hierarchies); empty for cgroup2.
    pub controllers: Vec<String>,
    pub v2: bool,
}

/// cgroup and cgroup2 mounts listed in a /proc/self/mountinfo text.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let v2 = match post[0] {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        let controllers = if v2 {
            Vec::new()
        } else {
            post[2]
                .split(',')
                .filter(|o| is_controller_option(o))
                .map(str::to_owned)
                .collect()
        };
        out.push(Mount {
            mount_point: PathBuf::from(unescape(pre[4])),
            root: PathBuf::from(unescape(pre[3])),
            controllers,
            v2,
        });
    }
    out
}

fn is_controller_option(o: &str) -> bool {
    o.starts_with("name=")
        || matches!(
            o,
            "cpu"
                | "cpuacct"
                | "cpuset"
                | "memory"
                | "devices"
                | "freezer"
                | "blkio"
                | "pids"
                | "hugetlb"
                | "net_cls"
                | "net_prio"
                | "perf_event"
                | "rdma"
                | "misc"
        )
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The caller's cgroup per hierarchy from a /proc/self/cgroup text: (controllers, path); the
/// cgroup2 entry has no controllers.
pub fn parse_proc_cgroup(text: &str) -> Vec<(Vec<String>, PathBuf)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            let ctrls = it.next()?;
            let path = it.next()?;
            let ctrls = ctrls
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect();
            Some((ctrls, PathBuf::from(path)))
        })
        .collect()
}

/// The directory of `path` in the hierarchy mounted by `mount`, given the caller's own cgroups.
pub fn resolve(
    mount: &Mount,
    own: &[(Vec<String>, PathBuf)],
    path: &CgroupPath,
) -> Result<PathBuf> {
    match path {
        CgroupPath::Absolute(rel) => Ok(mount.mount_point.join(rel)),
        CgroupPath::Relative(rel) => {
            let mine = own
                .iter()
                .find(|(ctrls, _)| {
                    if mount.v2 {
                        ctrls.is_empty()
                    } else {
                        !ctrls.is_empty() && ctrls.iter().all(|c| mount.controllers.contains(c))
                    }
                })
                .map(|(_, p)| p)
                .ok_or_else(|| Error::Invalid {
                    what: "cgroups path".into(),
                    why: format!(
                        "no entry in /proc/self/cgroup for the hierarchy at {}",
                        mount.mount_point.display()
                    ),
                })?;
            // Inside a cgroup namespace or bind mount the mount shows `root`, not "/".
            let below = mine.strip_prefix(&mount.root).unwrap_or(mine);
            Ok(mount.mount_point.join(clean(below)).join(rel))
        }
    }
}

/// `resolve` for a pure v2 host, as runc's fs2 and crun do: a relative path goes below the
/// *parent* of the caller's cgroup, beside it. The caller's own cgroup holds processes (at least
/// the caller), so v2's no-internal-process rule forbids enabling controllers there.
pub fn resolve_v2(
    mount: &Mount,
    own: &[(Vec<String>, PathBuf)],
    path: &CgroupPath,
) -> Result<PathBuf> {
    match path {
        CgroupPath::Absolute(_) => resolve(mount, own, path),
        CgroupPath::Relative(rel) => {
            let mine = resolve(mount, own, &CgroupPath::Relative(PathBuf::new()))?;
            // Never above the mount point (inside a cgroup namespace the caller may be at its root).
            let parent = if mine == mount.mount_point {
                mine
            } else {
                mine.parent().unwrap_or(&mine).to_path_buf()
            };
            Ok(parent.join(rel))
        }
    }
}

pub(crate) fn read_mounts() -> Result<Vec<Mount>> {
    let p = Path::new("/proc/self/mountinfo");
    Ok(parse_mountinfo(&crate::fs::read(p)?))
}

pub(crate) fn read_own() -> Result<Vec<(Vec<String>, PathBuf)>> {
    let p = Path::new("/proc/self/cgroup");
    Ok(parse_proc_cgroup(&crate::fs::read(p)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
30 24 0:26 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 30 0:29 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 30 0:35 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
40 30 0:36 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
41 30 0:37 /outer /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
";
    const PROC: &str =
        "9:name=systemd:/\n8:pids:/outer/me\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n";

    #[test]
    fn parses_cgroup_mounts() {
        let m = parse_mountinfo(MOUNTINFO);
        assert_eq!(m.len(), 5);
        assert_eq!(m[0].controllers, vec!["cpu"]);
        assert_eq!(m[2].controllers, vec!["name=systemd"]);
        assert!(m[3].v2 && m[3].mount_point == Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(m[4].root, Path::new("/outer"));
    }

    #[test]
    fn absolute_is_from_each_root() {
        let m = parse_mountinfo(MOUNTINFO);
        let own = parse_proc_cgroup(PROC);
        let p = cgroup_path(Some(Path::new("/libpod_parent/libpod-abc")), "abc").unwrap();
        assert_eq!(
            resolve(&m[1], &own, &p).unwrap(),
            Path::new("/sys/fs/cgroup/memory/libpod_parent/libpod-abc")
        );
        assert_eq!(
            resolve(&m[3], &own, &p).unwrap(),
            Path::new("/sys/fs/cgroup/unified/libpod_parent/libpod-abc")
        );
    }

    #[test]
    fn relative_is_from_own_cgroup() {
        let m = parse_mountinfo(MOUNTINFO);
        let own = parse_proc_cgroup(PROC);
        let p = cgroup_path(Some(Path::new("berth/c1")), "c1").unwrap();
        assert_eq!(
            resolve(&m[1], &own, &p).unwrap(),
            Path::new("/sys/fs/cgroup/memory/process_api/abc/berth/c1")
        );
        assert_eq!(
            resolve(&m[0], &own, &p).unwrap(),
            Path::new("/sys/fs/cgroup/cpu/berth/c1")
        );
        // The pids mount shows /outer: our /outer/me is /me below its mount point.
        assert_eq!(
            resolve(&m[4], &own, &p).unwrap(),
            Path::new("/sys/fs/cgroup/pids/me/berth/c1")
        );
        assert_eq!(
            resolve(&m[3], &own, &p).unwrap(),
            Path::new("/sys/fs/cgroup/unified/berth/c1")
        );
    }

    #[test]
    fn v2_relative_is_beside_own_cgroup() {
        let mounts =
            parse_mountinfo("40 30 0:36 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n");
        let own = parse_proc_cgroup("0::/user.slice/user-0.slice/session-1.scope\n");
        let p = cgroup_path(None, "c1").unwrap();
        assert_eq!(
            resolve_v2(&mounts[0], &own, &p).unwrap(),
            Path::new("/sys/fs/cgroup/user.slice/user-0.slice/c1")
        );
        let p = cgroup_path(Some(Path::new("berth/c1")), "c1").unwrap();
        assert_eq!(
            resolve_v2(&mounts[0], &own, &p).unwrap(),
            Path::new("/sys/fs/cgroup/user.slice/user-0.slice/berth/c1")
        );
        let p = cgroup_path(Some(Path::new("/berth/c1")), "c1").unwrap();
        assert_eq!(
            resolve_v2(&mounts[0], &own, &p).unwrap(),
            Path::new("/sys/fs/cgroup/berth/c1")
        );
        // At the root (or the root of a cgroup namespace) there is no parent to go to.
        let own = parse_proc_cgroup("0::/\n");
        let p = cgroup_path(None, "c1").unwrap();
        assert_eq!(
            resolve_v2(&mounts[0], &own, &p).unwrap(),
            Path::new("/sys/fs/cgroup/c1")
        );
    }

    #[test]
    fn no_path_is_the_id_relative_like_runc() {
        assert_eq!(
            cgroup_path(None, "c1").unwrap(),
            CgroupPath::Relative("c1".into())
        );
        assert_eq!(
            cgroup_path(Some(Path::new("")), "c1").unwrap(),
            CgroupPath::Relative("c1".into())
        );
    }

    #[test]
    fn dotdot_cannot_escape() {
        assert_eq!(
            cgroup_path(Some(Path::new("/../../etc/x")), "c").unwrap(),
            CgroupPath::Absolute("etc/x".into())
        );
        assert_eq!(
            cgroup_path(Some(Path::new("a/../../b")), "c").unwrap(),
            CgroupPath::Relative("b".into())
        );
        assert!(cgroup_path(Some(Path::new("/..")), "c").is_err());
        assert!(cgroup_path(None, "..").is_err());
    }

    #[test]
    fn systemd_paths_are_refused() {
        let e = cgroup_path(Some(Path::new("system.slice:docker:abc")), "abc").unwrap_err();
        assert!(matches!(e, Error::SystemdPath(_)), "{e}");
        assert!(e.to_string().contains("system.slice:docker:abc"));
    }

    #[test]
    fn real_host_resolves_our_memory_cgroup() {
        let mounts = read_mounts().unwrap();
        let own = read_own().unwrap();
        let mem = mounts
            .iter()
            .find(|m| m.controllers.iter().any(|c| c == "memory"));
        if let Some(mem) = mem {
            let mine = &own
                .iter()
                .find(|(c, _)| c.iter().any(|c| c == "memory"))
                .unwrap()
                .1;
            let p = cgroup_path(Some(Path::new("x")), "x").unwrap();
            let got = resolve(mem, &own, &p).unwrap();
            assert_eq!(
                got,
                mem.mount_point
                    .join(mine.strip_prefix("/").unwrap())
                    .join("x")
            );
        }
    }
}
