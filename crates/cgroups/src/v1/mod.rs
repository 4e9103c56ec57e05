//! cgroup v1: one directory per hierarchy, a file per controller here. On hybrid hosts the
//! cgroup2 mount is joined too (so accounting there is right) and carries hugetlb when v1 lacks it.

pub mod blkio;
pub mod cpu;
pub mod cpuset;
pub mod devices;
pub mod freezer;
pub mod hugetlb;
pub mod memory;
pub mod net;
pub mod pids;

use crate::path::{self, CgroupPath, Mount};
use crate::stats::Stats;
use crate::{fs, v2, Error, FreezerState, Manager, Result, Version};
use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxResources};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One v1 hierarchy as the manager sees it: where it is mounted and our directory in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub root: PathBuf,
    pub dir: PathBuf,
}

#[derive(Debug)]
pub struct V1Manager {
    /// Controller ("memory", "name=systemd", ...) -> hierarchy; co-mounted controllers share one.
    hierarchies: BTreeMap<String, Hierarchy>,
    /// Hybrid hosts: our directory in the cgroup2 mount.
    unified: Option<Hierarchy>,
}

impl V1Manager {
    /// A manager over explicit directories (tests point these at temporary directories).
    pub fn new(hierarchies: BTreeMap<String, Hierarchy>, unified: Option<Hierarchy>) -> V1Manager {
        V1Manager {
            hierarchies,
            unified,
        }
    }

    /// Resolves `path` in every v1 hierarchy among `mounts` (and the cgroup2 one on hybrid hosts).
    pub fn from_mounts(
        mounts: &[Mount],
        own: &[(Vec<String>, PathBuf)],
        path: &CgroupPath,
    ) -> Result<V1Manager> {
        let mut hierarchies = BTreeMap::new();
        let mut unified = None;
        for m in mounts {
            if m.v2 {
                if unified.is_none() && m.mount_point != Path::new("/sys/fs/cgroup") {
                    unified = Some(Hierarchy {
                        root: m.mount_point.clone(),
                        dir: path::resolve(m, own, path)?,
                    });
                }
                continue;
            }
            if m.controllers.is_empty() {
                continue;
            }
            let dir = path::resolve(m, own, path)?;
            for c in &m.controllers {
                // A hierarchy mounted twice keeps its first mount point.
                hierarchies.entry(c.clone()).or_insert_with(|| Hierarchy {
                    root: m.mount_point.clone(),
                    dir: dir.clone(),
                });
            }
        }
        Ok(V1Manager {
            hierarchies,
            unified,
        })
    }

    fn dir(&self, controller: &str, needed_for: &str) -> Result<&Path> {
        self.hierarchies
            .get(controller)
            .map(|h| h.dir.as_path())
            .ok_or_else(|| Error::Unsupported {
                what: needed_for.to_owned(),
                why: format!("the {controller} cgroup v1 controller is not mounted on this host"),
            })
    }

    /// Each hierarchy once (co-mounted controllers share a directory), cpuset first.
    fn unique(&self) -> Vec<(&str, &Hierarchy)> {
        let mut out: Vec<(&str, &Hierarchy)> = Vec::new();
        let mut keys: Vec<&String> = self.hierarchies.keys().collect();
        keys.sort_by_key(|k| k.as_str() != "cpuset");
        for k in keys {
            let h = &self.hierarchies[k];
            if !out.iter().any(|(_, o)| o.dir == h.dir) {
                out.push((k.as_str(), h));
            }
        }
        out
    }

    fn unified_hugetlb(&self) -> Option<&Hierarchy> {
        let u = self.unified.as_ref()?;
        let ctrls = std::fs::read_to_string(u.root.join("cgroup.controllers")).ok()?;
        ctrls
            .split_whitespace()
            .any(|c| c == "hugetlb")
            .then_some(u)
    }
}

fn cpu_bandwidth_set(c: &LinuxCpu) -> bool {
    c.shares().is_some()
        || c.quota().is_some()
        || c.period().is_some()
        || c.burst().is_some()
        || c.realtime_period().is_some()
        || c.realtime_runtime().is_some()
        || c.idle().is_some()
}

impl Manager for V1Manager {
    fn version(&self) -> Version {
        Version::V1
    }

    /// pid <= 0 only creates the directories.
    fn apply(&self, pid: i32) -> Result<()> {
        for (ctrl, h) in self.unique() {
            if ctrl == "cpuset" {
                cpuset::create(&h.root, &h.dir)?;
            } else {
                fs::create_dir_all(&h.dir)?;
            }
            if pid > 0 {
                fs::add_pid(&h.dir, pid)?;
            }
        }
        if let Some(u) = &self.unified {
            // Only hugetlb can live there on a hybrid host; joining is for accounting, not fatal.
            let joined = fs::create_dir_all(&u.dir).and_then(|_| {
                if pid > 0 {
                    fs::add_pid(&u.dir, pid)
                } else {
                    Ok(())
                }
            });
            if let Err(e) = joined {
                tracing::warn!("joining the cgroup2 hierarchy of this hybrid host failed: {e}");
            }
        }
        Ok(())
    }

    fn set(&self, r: &LinuxResources) -> Result<()> {
        if let Some(c) = r.cpu() {
            if c.cpus().as_deref().is_some_and(|s| !s.is_empty())
                || c.mems().as_deref().is_some_and(|s| !s.is_empty())
            {
                cpuset::set(self.dir("cpuset", "linux.resources.cpu.cpus/mems")?, c)?;
            }
        }
        if let Some(rules) = r.devices().as_deref().filter(|d| !d.is_empty()) {
            devices::set(self.dir("devices", "linux.resources.devices")?, rules)?;
        }
        if let Some(m) = r.memory().filter(|m| *m != LinuxMemory::default()) {
            memory::set(self.dir("memory", "linux.resources.memory")?, &m)?;
        }
        if let Some(c) = r.cpu().as_ref().filter(|c| cpu_bandwidth_set(c)) {
            cpu::set(self.dir("cpu", "linux.resources.cpu")?, c)?;
        }
        if let Some(p) = r.pids() {
            pids::set(self.dir("pids", "linux.resources.pids")?, p)?;
        }
        if let Some(b) = r.block_io() {
            blkio::set(self.dir("blkio", "linux.resources.blockIO")?, b)?;
        }
        if let Some(limits) = r.hugepage_limits().as_deref().filter(|l| !l.is_empty()) {
            if let Some(h) = self.hierarchies.get("hugetlb") {
                hugetlb::set_v1(&h.dir, limits)?;
            } else if let Some(u) = self.unified_hugetlb() {
                v2::enable_controllers(&u.root, &u.dir, &["hugetlb"])?;
                fs::create_dir_all(&u.dir)?;
                hugetlb::set_v2(&u.dir, limits)?;
            } else {
                return Err(Error::Unsupported {
                    what: "linux.resources.hugepageLimits".into(),
                    why: "no hugetlb controller in a v1 hierarchy nor in the cgroup2 mount".into(),
                });
            }
        }
        if let Some(n) = r.network() {
            if n.class_id().is_some() {
                net::set_cls(self.dir("net_cls", "linux.resources.network.classID")?, n)?;
            }
            if n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
                net::set_prio(
                    self.dir("net_prio", "linux.resources.network.priorities")?,
                    n,
                )?;
            }
        }
        if let Some(rdma) = r.rdma().as_ref().filter(|m| !m.is_empty()) {
            v2::set_rdma(self.dir("rdma", "linux.resources.rdma")?, rdma)?;
        }
        if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
            return Err(Error::Unsupported {
                what: "linux.resources.unified".into(),
                why: "this host uses cgroup v1 (unified keys are cgroup v2 files)".into(),
            });
        }
        Ok(())
    }

    fn freeze(&self, state: FreezerState) -> Result<()> {
        freezer::freeze(self.dir("freezer", "freeze")?, state)
    }

    fn freezer_state(&self) -> Result<FreezerState> {
        freezer::state(self.dir("freezer", "freezer state")?)
    }

    fn pids(&self) -> Result<Vec<i32>> {
        let h = ["pids", "freezer", "memory", "devices", "cpu"]
            .iter()
            .find_map(|c| self.hierarchies.get(*c))
            .or_else(|| self.hierarchies.values().next())
            .ok_or_else(|| Error::Unsupported {
                what: "pids".into(),
                why: "no cgroup v1 hierarchy is mounted".into(),
            })?;
        let mut out = Vec::new();
        fs::pids_recursive(&h.dir, &mut out)?;
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        let get = |c: &str| self.hierarchies.get(c).map(|h| h.dir.as_path());
        if let Some(d) = get("cpu") {
            cpu::stats(d, &mut s)?;
        }
        if let Some(d) = get("cpuacct") {
            cpu::acct_stats(d, &mut s)?;
        }
        if let Some(d) = get("cpuset") {
            cpuset::stats(d, &mut s)?;
        }
        if let Some(d) = get("memory") {
            memory::stats(d, &mut s)?;
        }
        if let Some(d) = get("pids") {
            pids::stats(d, &mut s)?;
        }
        if let Some(d) = get("blkio") {
            blkio::stats(d, &mut s)?;
        }
        if let Some(d) = get("hugetlb") {
            hugetlb::stats_v1(d, &mut s)?;
        } else if let Some(u) = self.unified_hugetlb() {
            if u.dir.exists() {
                hugetlb::stats_v2(&u.dir, &mut s)?;
            }
        }
        Ok(s)
    }

    fn oom_kill_count(&self) -> Result<u64> {
        memory::oom_kill_count(self.dir("memory", "oom kill count")?)
    }

    fn destroy(&self) -> Result<()> {
        let mut first = None;
        let dirs = self
            .unique()
            .into_iter()
            .map(|(_, h)| h)
            .chain(self.unified.as_ref());
        for h in dirs {
            if let Err(e) = fs::remove_cgroup(&h.dir) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    fn paths(&self) -> Vec<(String, PathBuf)> {
        let mut out: Vec<(String, PathBuf)> = self
            .hierarchies
            .iter()
            .map(|(c, h)| (c.clone(), h.dir.clone()))
            .collect();
        // runc names the hybrid host's cgroup2 directory "" as well.
        if let Some(u) = &self.unified {
            out.push((String::new(), u.dir.clone()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manager(root: &Path, ctrls: &[&str]) -> V1Manager {
        let mut h = BTreeMap::new();
        for c in ctrls {
            let r = root.join(c);
            std::fs::create_dir_all(r.join("c1")).unwrap();
            h.insert(
                c.to_string(),
                Hierarchy {
                    dir: r.join("c1"),
                    root: r,
                },
            );
        }
        V1Manager::new(h, None)
    }

    #[test]
    fn set_routes_each_resource_to_its_controller() {
        let t = tempfile::tempdir().unwrap();
        let m = manager(t.path(), &["memory", "cpu", "pids"]);
        let d = t.path().join("memory/c1");
        std::fs::write(d.join("memory.limit_in_bytes"), "9223372036854771712").unwrap();
        std::fs::write(d.join("memory.memsw.limit_in_bytes"), "9223372036854771712").unwrap();
        crate::fs::touch(
            &t.path().join("cpu/c1"),
            &["cpu.cfs_quota_us", "cpu.cfs_period_us"],
        );
        crate::fs::touch(&t.path().join("pids/c1"), &["pids.max"]);
        let r: LinuxResources = serde_json::from_str(
            r#"{"memory":{"limit":33554432,"swap":33554432},"cpu":{"quota":10000,"period":100000},"pids":{"limit":5}}"#,
        )
        .unwrap();
        m.set(&r).unwrap();
        let rd = |p: &str| std::fs::read_to_string(t.path().join(p)).unwrap();
        assert_eq!(rd("memory/c1/memory.limit_in_bytes"), "33554432");
        assert_eq!(rd("memory/c1/memory.memsw.limit_in_bytes"), "33554432");
        assert_eq!(rd("cpu/c1/cpu.cfs_quota_us"), "10000");
        assert_eq!(rd("pids/c1/pids.max"), "5");
    }

    #[test]
    fn missing_controllers_and_unified_are_clear_errors() {
        let t = tempfile::tempdir().unwrap();
        let m = manager(t.path(), &["memory"]);
        let r: LinuxResources = serde_json::from_str(r#"{"network":{"classID":1048577}}"#).unwrap();
        let e = m.set(&r).unwrap_err().to_string();
        assert!(e.contains("net_cls") && e.contains("not mounted"), "{e}");
        let r: LinuxResources =
            serde_json::from_str(r#"{"unified":{"memory.high":"1000"}}"#).unwrap();
        assert!(m.set(&r).unwrap_err().to_string().contains("cgroup v1"));
        let r: LinuxResources = serde_json::from_str(r#"{"pids":{"limit":3}}"#).unwrap();
        assert!(m.set(&r).unwrap_err().to_string().contains("pids"));
    }

    #[test]
    fn comounted_controllers_are_listed_once_for_creation() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("cpu,cpuacct/c1");
        let h = Hierarchy {
            root: t.path().join("cpu,cpuacct"),
            dir: dir.clone(),
        };
        let m = V1Manager::new(
            BTreeMap::from([("cpu".into(), h.clone()), ("cpuacct".into(), h)]),
            None,
        );
        assert_eq!(m.unique().len(), 1);
        assert_eq!(m.paths().len(), 2);
    }

    #[test]
    fn hybrid_mounts_give_v1_dirs_plus_the_unified_one() {
        let mounts = crate::path::parse_mountinfo(
            "31 30 0:27 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
             33 30 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
             40 30 0:36 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
        );
        let own = crate::path::parse_proc_cgroup("2:cpu,cpuacct:/\n1:memory:/user/me\n0::/\n");
        let path =
            crate::path::cgroup_path(Some(Path::new("/libpod_parent/libpod-abc")), "abc").unwrap();
        let m = V1Manager::from_mounts(&mounts, &own, &path).unwrap();
        let paths: BTreeMap<String, PathBuf> = m.paths().into_iter().collect();
        assert_eq!(
            paths["cpu"],
            Path::new("/sys/fs/cgroup/cpu,cpuacct/libpod_parent/libpod-abc")
        );
        assert_eq!(paths["cpuacct"], paths["cpu"]);
        assert_eq!(
            paths["memory"],
            Path::new("/sys/fs/cgroup/memory/libpod_parent/libpod-abc")
        );
        assert_eq!(
            paths[""],
            Path::new("/sys/fs/cgroup/unified/libpod_parent/libpod-abc")
        );
        let rel = crate::path::cgroup_path(None, "abc").unwrap();
        let m = V1Manager::from_mounts(&mounts, &own, &rel).unwrap();
        let paths: BTreeMap<String, PathBuf> = m.paths().into_iter().collect();
        assert_eq!(
            paths["memory"],
            Path::new("/sys/fs/cgroup/memory/user/me/abc")
        );
        assert_eq!(paths["cpu"], Path::new("/sys/fs/cgroup/cpu,cpuacct/abc"));
    }
}
