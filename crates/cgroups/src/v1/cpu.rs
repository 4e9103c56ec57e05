//! v1 cpu (bandwidth, shares, realtime) and cpuacct (usage) controllers.

use crate::fs::{self, raw_os_error};
use crate::stats::{CpuUsage, Stats, Throttling};
use crate::{Error, Result};
use oci_spec::runtime::LinuxCpu;
use std::path::Path;

pub fn set(dir: &Path, c: &LinuxCpu) -> Result<()> {
    if let Some(shares) = c.shares().filter(|s| *s != 0) {
        let p = dir.join("cpu.shares");
        fs::write(&p, shares.to_string())?;
        // The kernel clamps out-of-range shares silently; say so instead of pretending.
        let got = fs::read_u64(&p)?;
        if got != shares {
            return Err(Error::Invalid {
                what: format!("cpu.shares for {}", dir.display()),
                why: format!("requested {shares}, the kernel set {got} (out of range)"),
            });
        }
    }
    // A shorter period can be refused while the old quota is in place; retry it after the quota.
    let mut period_pending = None;
    if let Some(period) = c.period().filter(|p| *p != 0) {
        match fs::write(&dir.join("cpu.cfs_period_us"), period.to_string()) {
            Err(e)
                if raw_os_error(&e) == Some(libc::EINVAL) && c.quota().is_some_and(|q| q != 0) =>
            {
                period_pending = Some(period)
            }
            r => r?,
        }
    }
    if let Some(quota) = c.quota().filter(|q| *q != 0) {
        fs::write(&dir.join("cpu.cfs_quota_us"), quota.to_string())?;
        if let Some(period) = period_pending {
            fs::write(&dir.join("cpu.cfs_period_us"), period.to_string())?;
        }
    }
    if let Some(burst) = c.burst() {
        fs::write(&dir.join("cpu.cfs_burst_us"), burst.to_string())?;
    }
    // The runtime can only be raised once the period allows it, so the period goes first.
    if let Some(p) = c.realtime_period().filter(|p| *p != 0) {
        fs::write(&dir.join("cpu.rt_period_us"), p.to_string())?;
    }
    if let Some(r) = c.realtime_runtime().filter(|r| *r != 0) {
        fs::write(&dir.join("cpu.rt_runtime_us"), r.to_string())?;
    }
    if let Some(idle) = c.idle() {
        fs::write(&dir.join("cpu.idle"), idle.to_string())?;
    }
    Ok(())
}

/// cpu.stat throttling counters (v1 reports throttled_time in ns).
pub fn stats(dir: &Path, s: &mut Stats) -> Result<()> {
    let mut t = Throttling::default();
    for (k, v) in fs::read_keyed(&dir.join("cpu.stat"))? {
        match k.as_str() {
            "nr_periods" => t.periods = v,
            "nr_throttled" => t.throttled_periods = v,
            "throttled_time" => t.throttled_time = v,
            _ => {}
        }
    }
    s.cpu.throttling = t;
    Ok(())
}

fn read_list(p: &Path) -> Result<Vec<u64>> {
    if !p.exists() {
        return Ok(Vec::new());
    }
    let s = fs::read(p)?;
    s.split_whitespace()
        .map(|v| v.parse().map_err(|_| fs::parse_err(p, &s)))
        .collect()
}

/// cpuacct usage in ns; cpuacct.stat is in USER_HZ ticks.
pub fn acct_stats(dir: &Path, s: &mut Stats) -> Result<()> {
    let ticks = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        t if t > 0 => t as u64,
        _ => 100,
    };
    let mut u = CpuUsage {
        total: fs::read_u64(&dir.join("cpuacct.usage"))?,
        percpu: read_list(&dir.join("cpuacct.usage_percpu"))?,
        percpu_kernel: read_list(&dir.join("cpuacct.usage_percpu_sys"))?,
        percpu_user: read_list(&dir.join("cpuacct.usage_percpu_user"))?,
        ..Default::default()
    };
    for (k, v) in fs::read_keyed(&dir.join("cpuacct.stat"))? {
        match k.as_str() {
            "user" => u.user = v * 1_000_000_000 / ticks,
            "system" => u.kernel = v * 1_000_000_000 / ticks,
            _ => {}
        }
    }
    s.cpu.usage = u;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_bandwidth_and_realtime() {
        let t = tempfile::tempdir().unwrap();
        crate::fs::touch(
            t.path(),
            &[
                "cpu.shares",
                "cpu.cfs_quota_us",
                "cpu.cfs_period_us",
                "cpu.cfs_burst_us",
                "cpu.rt_period_us",
                "cpu.rt_runtime_us",
                "cpu.idle",
            ],
        );
        std::fs::write(t.path().join("cpu.shares"), "512").unwrap();
        let c: LinuxCpu = serde_json::from_str(
            r#"{"shares":512,"quota":10000,"period":100000,"burst":5000,"realtimePeriod":1000000,"realtimeRuntime":950000,"idle":1}"#,
        )
        .unwrap();
        set(t.path(), &c).unwrap();
        let r = |f: &str| std::fs::read_to_string(t.path().join(f)).unwrap();
        assert_eq!(r("cpu.shares"), "512");
        assert_eq!(r("cpu.cfs_quota_us"), "10000");
        assert_eq!(r("cpu.cfs_period_us"), "100000");
        assert_eq!(r("cpu.cfs_burst_us"), "5000");
        assert_eq!(r("cpu.rt_period_us"), "1000000");
        assert_eq!(r("cpu.rt_runtime_us"), "950000");
        assert_eq!(r("cpu.idle"), "1");
    }

    #[test]
    fn reads_throttling_and_usage() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(
            t.path().join("cpu.stat"),
            "nr_periods 10\nnr_throttled 4\nthrottled_time 123\nnr_bursts 0\n",
        )
        .unwrap();
        std::fs::write(t.path().join("cpuacct.usage"), "5000\n").unwrap();
        std::fs::write(t.path().join("cpuacct.usage_percpu"), "2000 3000 \n").unwrap();
        std::fs::write(t.path().join("cpuacct.stat"), "user 1\nsystem 2\n").unwrap();
        let mut s = Stats::default();
        stats(t.path(), &mut s).unwrap();
        acct_stats(t.path(), &mut s).unwrap();
        assert_eq!(
            (
                s.cpu.throttling.periods,
                s.cpu.throttling.throttled_periods,
                s.cpu.throttling.throttled_time
            ),
            (10, 4, 123)
        );
        assert_eq!(s.cpu.usage.total, 5000);
        assert_eq!(s.cpu.usage.percpu, vec![2000, 3000]);
        assert!(s.cpu.usage.user > 0 && s.cpu.usage.kernel == 2 * s.cpu.usage.user);
    }
}
