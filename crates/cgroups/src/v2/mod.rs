//! cgroup v2: one directory, resources translated to v2 files the way runc and crun do.

use crate::stats::{BlkioEntry, Stats};
use crate::{fs, v1, Error, FreezerState, Manager, Result, Version};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxRdma, LinuxResources};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug)]
pub struct V2Manager {
    root: PathBuf,
    dir: PathBuf,
}

impl V2Manager {
    /// `root` is the cgroup2 mount point, `dir` our directory below it (tests use temp dirs).
    pub fn new(root: PathBuf, dir: PathBuf) -> V2Manager {
        V2Manager { root, dir }
    }
}

/// cpu.weight from cpu.shares: [2, 262144] -> [1, 10000] (runc, crun 1.8).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.clamp(2, 262144) - 2) * 9999 / 262142
}

/// io.weight from blkio weight: [10, 1000] -> [1, 10000] (crun).
pub fn blkio_weight_to_io_weight(w: u64) -> u64 {
    1 + (w.clamp(10, 1000) - 10) * 9999 / 990
}

/// memory.swap.max from the v1-style memory+swap value (runc's ConvertMemorySwapToCgroupV2Value).
/// None: leave the file alone; -1: "max".
pub fn swap_to_v2(swap: Option<i64>, limit: Option<i64>) -> Result<Option<i64>> {
    let invalid = |why: String| Error::Invalid {
        what: "linux.resources.memory.swap".into(),
        why,
    };
    match (swap, limit) {
        (None, Some(-1)) => Ok(Some(-1)),
        (None | Some(0), _) => Ok(None),
        (Some(-1), _) => Ok(Some(-1)),
        (Some(_), None | Some(0) | Some(-1)) => {
            Err(invalid("a swap limit needs a memory limit".into()))
        }
        (Some(s), Some(l)) if s < l => Err(invalid(format!(
            "memory+swap {s} is below the memory limit {l}"
        ))),
        (Some(s), Some(l)) => Ok(Some(s - l)),
    }
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// Writes "+c" for each of `wanted` (or every available controller when empty) into
/// cgroup.subtree_control of `root` and each ancestor of `dir` below it, creating them.
/// v2's no-internal-process rule: a cgroup with processes of its own (other than the root) never
/// gets controllers enabled. Asked for by name, that is an error naming the cgroup; when
/// enabling "everything", such a cgroup is left alone (its children get no controllers).
pub(crate) fn enable_controllers(root: &Path, dir: &Path, wanted: &[&str]) -> Result<()> {
    let rel = dir.strip_prefix(root).map_err(|_| Error::Invalid {
        what: "cgroup directory".into(),
        why: format!("{} is not below {}", dir.display(), root.display()),
    })?;
    let mut cur = root.to_path_buf();
    for comp in rel.components() {
        let available = fs::read(&cur.join("cgroup.controllers"))?;
        let enabled = fs::read(&cur.join("cgroup.subtree_control"))?;
        let missing: Vec<&str> = available
            .split_whitespace()
            .filter(|c| wanted.is_empty() || wanted.contains(c))
            .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
            .collect();
        if !missing.is_empty() && has_own_processes(&cur)? {
            if !wanted.is_empty() {
                return Err(Error::Unsupported {
                    what: format!(
                        "enabling the {} controller in {}",
                        missing.join(" "),
                        cur.display()
                    ),
                    why: "it has processes of its own (cgroup v2 no-internal-process rule); \
                          use a cgroups path whose parent cgroups hold no processes"
                        .into(),
                });
            }
            tracing::warn!(
                "not enabling controllers in {}: it has processes of its own",
                cur.display()
            );
        } else {
            for c in missing {
                if let Err(e) = fs::write(&cur.join("cgroup.subtree_control"), format!("+{c}")) {
                    if !wanted.is_empty() {
                        return Err(e);
                    }
                    tracing::debug!("enable {c}: {e}");
                }
            }
        }
        cur.push(comp);
        fs::create_dir_all(&cur)?;
    }
    Ok(())
}

/// Whether `dir` is a non-root cgroup with processes in it (the root cgroup has no cgroup.type
/// and is exempt from the no-internal-process rule).
fn has_own_processes(dir: &Path) -> Result<bool> {
    if !dir.join("cgroup.type").exists() {
        return Ok(false);
    }
    Ok(!fs::read(&dir.join("cgroup.procs"))?.trim().is_empty())
}

pub(crate) fn set_rdma(dir: &Path, rdma: &HashMap<String, LinuxRdma>) -> Result<()> {
    for (dev, l) in rdma {
        let mut v = dev.clone();
        if let Some(h) = l.hca_handles() {
            v.push_str(&format!(" hca_handle={h}"));
        }
        if let Some(o) = l.hca_objects() {
            v.push_str(&format!(" hca_object={o}"));
        }
        fs::write(&dir.join("rdma.max"), v)?;
    }
    Ok(())
}

fn set_cpu(dir: &Path, c: &LinuxCpu) -> Result<()> {
    if let Some(w) = c.shares().map(shares_to_weight).filter(|w| *w != 0) {
        fs::write(&dir.join("cpu.weight"), w.to_string())?;
    }
    if c.quota().is_some_and(|q| q != 0) || c.period().is_some_and(|p| p != 0) {
        let mut v = match c.quota() {
            Some(q) if q > 0 => q.to_string(),
            _ => "max".into(),
        };
        if let Some(p) = c.period().filter(|p| *p != 0) {
            v.push_str(&format!(" {p}"));
        }
        fs::write(&dir.join("cpu.max"), v)?;
    }
    if let Some(b) = c.burst() {
        fs::write(&dir.join("cpu.max.burst"), b.to_string())?;
    }
    if c.realtime_runtime().is_some_and(|r| r != 0) || c.realtime_period().is_some_and(|p| p != 0) {
        return Err(Error::Unsupported {
            what: "linux.resources.cpu.realtimeRuntime/realtimePeriod".into(),
            why: "cgroup v2 has no realtime bandwidth files".into(),
        });
    }
    if let Some(i) = c.idle() {
        fs::write(&dir.join("cpu.idle"), i.to_string())?;
    }
    v1::cpuset::set(dir, c)
}

fn set_memory(dir: &Path, m: &LinuxMemory) -> Result<()> {
    if m.check_before_update() == Some(true) {
        if let Some(l) = m.limit().filter(|l| *l > 0) {
            let usage = fs::read_u64(&dir.join("memory.current"))?;
            if (l as u64) < usage {
                return Err(Error::Invalid {
                    what: format!("memory limit for {}", dir.display()),
                    why: format!("{l} is below the current usage {usage} (checkBeforeUpdate)"),
                });
            }
        }
    }
    let swap = swap_to_v2(m.swap(), m.limit())?;
    // Swap first: lowering memory.max below usage starts reclaim, which wants swap room.
    if let Some(s) = swap {
        let p = dir.join("memory.swap.max");
        if p.exists() {
            fs::write(&p, max_or(s))?;
        } else if s != -1 {
            return Err(Error::Unsupported {
                what: "linux.resources.memory.swap".into(),
                why: format!("{} is missing (swap accounting is off)", p.display()),
            });
        }
    }
    if let Some(l) = m.limit() {
        fs::write(&dir.join("memory.max"), max_or(l))?;
    }
    if let Some(r) = m.reservation() {
        fs::write(&dir.join("memory.low"), max_or(r))?;
    }
    if m.kernel().is_some() || m.kernel_tcp().is_some() {
        tracing::warn!(
            "linux.resources.memory.kernel/kernelTCP are deprecated and ignored on cgroup v2"
        );
    }
    if m.swappiness().is_some() {
        return Err(Error::Unsupported {
            what: "linux.resources.memory.swappiness".into(),
            why: "cgroup v2 has no per-cgroup swappiness".into(),
        });
    }
    if m.disable_oom_killer() == Some(true) {
        return Err(Error::Unsupported {
            what: "linux.resources.memory.disableOOMKiller".into(),
            why: "cgroup v2 cannot disable the OOM killer".into(),
        });
    }
    Ok(())
}

fn set_io(dir: &Path, b: &LinuxBlockIo) -> Result<()> {
    let bfq = dir.join("io.bfq.weight");
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        if bfq.exists() {
            fs::write(&bfq, w.to_string())?;
        } else {
            fs::write(
                &dir.join("io.weight"),
                blkio_weight_to_io_weight(w.into()).to_string(),
            )?;
        }
    }
    if b.leaf_weight().is_some()
        || b.weight_device()
            .iter()
            .flatten()
            .any(|d| d.leaf_weight().is_some())
    {
        return Err(Error::Unsupported {
            what: "linux.resources.blockIO leafWeight".into(),
            why: "cgroup v2 has no leaf weights".into(),
        });
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight() {
            if bfq.exists() {
                fs::write(&bfq, format!("{}:{} {}", d.major(), d.minor(), w))?;
            } else {
                let w = blkio_weight_to_io_weight(w.into());
                fs::write(
                    &dir.join("io.weight"),
                    format!("{}:{} {}", d.major(), d.minor(), w),
                )?;
            }
        }
    }
    for (key, devs) in [
        ("rbps", b.throttle_read_bps_device()),
        ("wbps", b.throttle_write_bps_device()),
        ("riops", b.throttle_read_iops_device()),
        ("wiops", b.throttle_write_iops_device()),
    ] {
        for d in devs.iter().flatten() {
            let rate = if d.rate() == 0 {
                "max".to_string()
            } else {
                d.rate().to_string()
            };
            fs::write(
                &dir.join("io.max"),
                format!("{}:{} {key}={rate}", d.major(), d.minor()),
            )?;
        }
    }
    Ok(())
}

fn set_unified(dir: &Path, u: &HashMap<String, String>) -> Result<()> {
    for (k, v) in u {
        if k.contains('/') || k.starts_with("cgroup.procs") || k == "cgroup.threads" {
            return Err(Error::Invalid {
                what: format!("linux.resources.unified key {k:?}"),
                why: "not a resource file".into(),
            });
        }
        let p = dir.join(k);
        if !p.exists() {
            let ctrl = k.split('.').next().unwrap_or_default();
            return Err(Error::Unsupported {
                what: format!("linux.resources.unified {k}"),
                why: format!(
                    "{} does not exist (is the {ctrl} controller enabled?)",
                    p.display()
                ),
            });
        }
        fs::write(&p, v)?;
    }
    Ok(())
}

impl Manager for V2Manager {
    fn version(&self) -> Version {
        Version::V2
    }

    /// pid <= 0 only creates the directory.
    fn apply(&self, pid: i32) -> Result<()> {
        enable_controllers(&self.root, &self.dir, &[])?;
        if pid > 0 {
            fs::add_pid(&self.dir, pid)?;
        }
        Ok(())
    }

    fn set(&self, r: &LinuxResources) -> Result<()> {
        let d = &self.dir;
        if let Some(c) = r.cpu() {
            set_cpu(d, c)?;
        }
        if let Some(m) = r.memory() {
            set_memory(d, m)?;
        }
        if let Some(p) = r.pids() {
            v1::pids::set(d, p)?;
        }
        if let Some(b) = r.block_io() {
            set_io(d, b)?;
        }
        if let Some(l) = r.hugepage_limits().as_deref().filter(|l| !l.is_empty()) {
            v1::hugetlb::set_v2(d, l)?;
        }
        if let Some(rdma) = r.rdma().as_ref().filter(|m| !m.is_empty()) {
            set_rdma(d, rdma)?;
        }
        if let Some(n) = r.network() {
            if n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
                return Err(Error::Unsupported {
                    what: "linux.resources.network".into(),
                    why: "cgroup v2 has no net_cls/net_prio controllers".into(),
                });
            }
        }
        if let Some(rules) = r.devices().as_deref().filter(|d| !d.is_empty()) {
            devices::apply(d, rules)?;
        }
        if let Some(u) = r.unified() {
            set_unified(d, u)?;
        }
        Ok(())
    }

    fn freeze(&self, state: FreezerState) -> Result<()> {
        let want = match state {
            FreezerState::Frozen => "1",
            FreezerState::Thawed => "0",
        };
        fs::write(&self.dir.join("cgroup.freeze"), want)?;
        let events = self.dir.join("cgroup.events");
        for _ in 0..2000 {
            if fs::keyed_value(&events, "frozen")?.to_string() == want {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Err(Error::FreezeTimeout {
            path: events,
            state: if want == "1" { "frozen" } else { "thawed" },
        })
    }

    fn freezer_state(&self) -> Result<FreezerState> {
        let events = self.dir.join("cgroup.events");
        Ok(if fs::keyed_value(&events, "frozen")? == 1 {
            FreezerState::Frozen
        } else {
            FreezerState::Thawed
        })
    }

    fn pids(&self) -> Result<Vec<i32>> {
        let mut out = Vec::new();
        fs::pids_recursive(&self.dir, &mut out)?;
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    fn stats(&self) -> Result<Stats> {
        stats(&self.dir)
    }

    fn oom_kill_count(&self) -> Result<u64> {
        let p = self.dir.join("memory.events");
        match fs::keyed_value(&p, "oom_kill") {
            Err(Error::Parse { .. }) => Ok(0),
            r => r,
        }
    }

    fn destroy(&self) -> Result<()> {
        fs::remove_cgroup(&self.dir)
    }

    fn paths(&self) -> Vec<(String, PathBuf)> {
        vec![(String::new(), self.dir.clone())]
    }
}

/// Stats from whichever controller files exist in `dir`.
pub fn stats(dir: &Path) -> Result<Stats> {
    let mut s = Stats::default();
    let cpu_stat = dir.join("cpu.stat");
    if cpu_stat.exists() {
        for (k, v) in fs::read_keyed(&cpu_stat)? {
            match k.as_str() {
                "usage_usec" => s.cpu.usage.total = v * 1000,
                "user_usec" => s.cpu.usage.user = v * 1000,
                "system_usec" => s.cpu.usage.kernel = v * 1000,
                "nr_periods" => s.cpu.throttling.periods = v,
                "nr_throttled" => s.cpu.throttling.throttled_periods = v,
                "throttled_usec" => s.cpu.throttling.throttled_time = v * 1000,
                _ => {}
            }
        }
    }
    if dir.join("cpuset.cpus.effective").exists() {
        let list = |f: &str| -> Result<Vec<u16>> {
            let p = dir.join(f);
            let v = fs::read(&p)?;
            fs::parse_list(&v).ok_or_else(|| fs::parse_err(&p, &v))
        };
        s.cpuset.cpus = list("cpuset.cpus.effective")?;
        s.cpuset.mems = list("cpuset.mems.effective")?;
    }
    if dir.join("memory.current").exists() {
        let num = |f: &str| fs::read_u64_opt(&dir.join(f));
        let limit = |v: u64| if v == u64::MAX { 0 } else { v };
        let raw: std::collections::BTreeMap<String, u64> =
            fs::read_keyed(&dir.join("memory.stat"))?
                .into_iter()
                .collect();
        s.memory.cache = raw.get("file").copied().unwrap_or(0);
        s.memory.usage.usage = num("memory.current")?;
        s.memory.usage.max = num("memory.peak")?;
        s.memory.usage.limit = limit(num("memory.max")?);
        s.memory.usage.failcnt = match fs::keyed_value(&dir.join("memory.events"), "max") {
            Ok(v) => v,
            Err(Error::Parse { .. }) => 0,
            Err(e) => return Err(e),
        };
        // runc reports swap as memory+swap, like v1's memsw.
        let swap = num("memory.swap.current")?;
        s.memory.swap.usage = swap + s.memory.usage.usage;
        let swap_max = num("memory.swap.max")?;
        s.memory.swap.limit = if swap_max == u64::MAX || s.memory.usage.limit == 0 {
            0
        } else {
            swap_max + s.memory.usage.limit
        };
        s.memory.raw = raw;
    }
    if dir.join("pids.current").exists() {
        v1::pids::stats(dir, &mut s)?;
    }
    let io = dir.join("io.stat");
    if io.exists() {
        for line in fs::read(&io)?.lines() {
            let mut it = line.split_whitespace();
            let Some((maj, min)) = it.next().and_then(|d| d.split_once(':')) else {
                continue;
            };
            let (Ok(major), Ok(minor)) = (maj.parse(), min.parse()) else {
                continue;
            };
            for kv in it {
                let Some((k, v)) = kv.split_once('=') else {
                    continue;
                };
                let Ok(value) = v.parse() else { continue };
                let (list, op) = match k {
                    "rbytes" => (&mut s.blkio.io_service_bytes_recursive, "Read"),
                    "wbytes" => (&mut s.blkio.io_service_bytes_recursive, "Write"),
                    "rios" => (&mut s.blkio.io_serviced_recursive, "Read"),
                    "wios" => (&mut s.blkio.io_serviced_recursive, "Write"),
                    _ => continue,
                };
                list.push(BlkioEntry {
                    major,
                    minor,
                    op: op.into(),
                    value,
                });
            }
        }
    }
    v1::hugetlb::stats_v2(dir, &mut s)?;
    Ok(s)
}

pub mod devices;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_match_runc_and_crun() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262144), 10000);
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(1000), 10000);
        assert_eq!(blkio_weight_to_io_weight(500), 4950);
        assert_eq!(swap_to_v2(Some(64), Some(32)).unwrap(), Some(32));
        assert_eq!(swap_to_v2(Some(32), Some(32)).unwrap(), Some(0));
        assert_eq!(swap_to_v2(None, Some(-1)).unwrap(), Some(-1));
        assert_eq!(swap_to_v2(Some(-1), Some(32)).unwrap(), Some(-1));
        assert_eq!(swap_to_v2(None, Some(32)).unwrap(), None);
        assert!(swap_to_v2(Some(16), Some(32)).is_err());
        assert!(swap_to_v2(Some(16), None).is_err());
    }

    fn fake(dir: &Path) {
        for f in [
            "cpu.weight",
            "cpu.max",
            "memory.max",
            "memory.swap.max",
            "memory.low",
            "pids.max",
            "io.weight",
            "io.max",
            "cpuset.cpus",
            "cpuset.mems",
        ] {
            std::fs::write(dir.join(f), "").unwrap();
        }
    }

    #[test]
    fn set_writes_v2_files() {
        let t = tempfile::tempdir().unwrap();
        fake(t.path());
        let m = V2Manager::new(t.path().to_owned(), t.path().to_owned());
        let r: LinuxResources = serde_json::from_str(
            r#"{"cpu":{"shares":1024,"quota":10000,"period":100000,"cpus":"0","mems":"0"},
                "memory":{"limit":33554432,"swap":67108864,"reservation":1000},
                "pids":{"limit":0},
                "blockIO":{"weight":500,"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1000}]},
                "unified":{"memory.low":"2000"}}"#,
        )
        .unwrap();
        m.set(&r).unwrap();
        let rd = |f: &str| std::fs::read_to_string(t.path().join(f)).unwrap();
        assert_eq!(rd("cpu.weight"), "39");
        assert_eq!(rd("cpu.max"), "10000 100000");
        assert_eq!(rd("cpuset.cpus"), "0");
        assert_eq!(rd("memory.max"), "33554432");
        assert_eq!(rd("memory.swap.max"), "33554432");
        assert_eq!(rd("memory.low"), "2000");
        assert_eq!(rd("pids.max"), "max");
        assert_eq!(rd("io.weight"), "4950");
        assert_eq!(rd("io.max"), "8:0 rbps=1000");
    }

    #[test]
    fn no_controllers_enabled_in_a_cgroup_with_processes() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let w = |p: &Path, f: &str, v: &str| std::fs::write(p.join(f), v).unwrap();
        // The root has processes too but is exempt (no cgroup.type).
        w(root, "cgroup.controllers", "cpu memory");
        w(root, "cgroup.subtree_control", "");
        w(root, "cgroup.procs", "1\n");
        let scope = root.join("scope");
        std::fs::create_dir(&scope).unwrap();
        for (f, v) in [
            ("cgroup.type", "domain"),
            ("cgroup.controllers", "cpu memory"),
            ("cgroup.subtree_control", ""),
            ("cgroup.procs", "42\n"),
        ] {
            w(&scope, f, v);
        }
        let e = enable_controllers(root, &scope.join("c"), &["memory"]).unwrap_err();
        assert!(e.to_string().contains("no-internal-process"), "{e}");
        assert_eq!(
            std::fs::read_to_string(scope.join("cgroup.subtree_control")).unwrap(),
            ""
        );
        enable_controllers(root, &scope.join("c"), &[]).unwrap();
        assert_eq!(
            std::fs::read_to_string(scope.join("cgroup.subtree_control")).unwrap(),
            ""
        );
        assert!(std::fs::read_to_string(root.join("cgroup.subtree_control"))
            .unwrap()
            .starts_with('+'));
        // Without processes, the same cgroup gets them.
        w(&scope, "cgroup.procs", "");
        enable_controllers(root, &scope.join("c"), &["memory"]).unwrap();
        assert_eq!(
            std::fs::read_to_string(scope.join("cgroup.subtree_control")).unwrap(),
            "+memory"
        );
    }

    #[test]
    fn quota_without_limit_is_max() {
        let t = tempfile::tempdir().unwrap();
        fake(t.path());
        set_cpu(
            t.path(),
            &serde_json::from_str(r#"{"quota":-1,"period":50000}"#).unwrap(),
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(t.path().join("cpu.max")).unwrap(),
            "max 50000"
        );
    }

    #[test]
    fn v1_only_settings_are_refused() {
        let t = tempfile::tempdir().unwrap();
        fake(t.path());
        let m = V2Manager::new(t.path().to_owned(), t.path().to_owned());
        for json in [
            r#"{"memory":{"swappiness":10}}"#,
            r#"{"cpu":{"realtimeRuntime":1000}}"#,
            r#"{"network":{"classID":1}}"#,
            r#"{"unified":{"memory.nonexistent":"1"}}"#,
            r#"{"unified":{"../x":"1"}}"#,
        ] {
            assert!(
                m.set(&serde_json::from_str(json).unwrap()).is_err(),
                "{json}"
            );
        }
    }

    #[test]
    fn reads_v2_stats() {
        let t = tempfile::tempdir().unwrap();
        let w = |f: &str, v: &str| std::fs::write(t.path().join(f), v).unwrap();
        w("cpu.stat", "usage_usec 10\nuser_usec 6\nsystem_usec 4\nnr_periods 5\nnr_throttled 2\nthrottled_usec 7\n");
        w("memory.current", "4096\n");
        w("memory.max", "max\n");
        w("memory.stat", "anon 1\nfile 2\n");
        w("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n");
        w(
            "io.stat",
            "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n",
        );
        let s = stats(t.path()).unwrap();
        assert_eq!(
            (
                s.cpu.usage.total,
                s.cpu.throttling.throttled_periods,
                s.cpu.throttling.throttled_time
            ),
            (10000, 2, 7000)
        );
        assert_eq!(
            (
                s.memory.usage.usage,
                s.memory.usage.limit,
                s.memory.usage.failcnt,
                s.memory.cache
            ),
            (4096, 0, 3, 2)
        );
        assert_eq!(s.blkio.io_service_bytes_recursive.len(), 2);
        let m = V2Manager::new(t.path().to_owned(), t.path().to_owned());
        assert_eq!(m.oom_kill_count().unwrap(), 1);
    }
}
