//! A container's cgroup: where it lives (`--cgroup-parent`), its namespace (`--cgroupns`), the
//! checks and warnings docker's daemon gives for resource flags, and `linux.resources` built from
//! a HostConfig (used by create and by `berth update`).

use crate::error::{Error, Result};
use crate::model::{HostConfig, ThrottleDevice};
use berth_cgroups::Version;
use serde_json::{json, Value};

/// docker's cgroupfs parent when `--cgroup-parent` is not given is /docker; ours is /berth.
pub const DEFAULT_PARENT: &str = "/berth";

/// The OCI cgroupsPath: `<parent>/<id>` (a relative parent stays relative, as with docker, and
/// the runtime resolves it from its own cgroup: v1 below it, v2 beside it).
pub fn cgroups_path(hc: &HostConfig, id: &str) -> String {
    let parent = if hc.cgroup_parent.is_empty() {
        DEFAULT_PARENT
    } else {
        hc.cgroup_parent.as_str()
    };
    format!("{}/{id}", parent.trim_end_matches('/'))
}

/// This host's cgroup layout (v1 when it cannot be read).
pub fn host_version() -> Version {
    berth_cgroups::host_version().unwrap_or(Version::V1)
}

/// docker daemon's checks of the resource settings for this host: errors as docker words them,
/// settings the host cannot honour dropped with docker's warning (returned for the CLI to print
/// as "WARNING: ..."). Also fills docker's default cgroup namespace mode.
pub fn verify(hc: &mut HostConfig, v: Version) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    match hc.cgroupns_mode.as_str() {
        "" => hc.cgroupns_mode = if v == Version::V2 { "private" } else { "host" }.into(),
        "host" | "private" => {}
        m => {
            return Err(Error::invalid(format!(
                "invalid cgroup namespace mode: {m}"
            )))
        }
    }
    if hc.cgroup_parent.split(':').count() == 3 && !hc.cgroup_parent.starts_with('/') {
        return Err(Error::invalid(format!(
            "cgroup-parent for systemd cgroup should be a valid slice named as \"xxx.slice\" (cgroupfs driver only: {})",
            hc.cgroup_parent
        )));
    }
    if hc.oom_kill_disable == Some(true) {
        if v == Version::V2 {
            warnings.push(
                "Your kernel does not support OomKillDisable. OomKillDisable discarded."
                    .to_string(),
            );
            hc.oom_kill_disable = Some(false);
        } else if hc.memory == 0 {
            warnings.push("OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources.".to_string());
        }
    }
    if hc.memory_reservation != 0 && hc.memory_reservation < 6 << 20 {
        return Err(Error::invalid("Minimum memory reservation allowed is 6MB"));
    }
    if hc.memory > 0 && hc.memory_reservation > 0 && hc.memory < hc.memory_reservation {
        return Err(Error::invalid(
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        ));
    }
    if hc.nano_cpus > 0 && hc.cpu_period > 0 {
        return Err(Error::invalid(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        ));
    }
    if hc.nano_cpus > 0 && hc.cpu_quota > 0 {
        return Err(Error::invalid(
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
        ));
    }
    if hc.cpu_period != 0 && (hc.cpu_period < 1000 || hc.cpu_period > 1_000_000) {
        return Err(Error::invalid(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ));
    }
    if hc.cpu_quota > 0 && hc.cpu_quota < 1000 {
        return Err(Error::invalid(
            "CPU cfs quota can not be less than 1ms (i.e. 1000)",
        ));
    }
    if hc.cpu_realtime_runtime != 0 {
        let rt = std::path::Path::new("/sys/fs/cgroup/cpu,cpuacct/cpu.rt_runtime_us").exists()
            || std::path::Path::new("/sys/fs/cgroup/cpu/cpu.rt_runtime_us").exists();
        if v == Version::V2 || !rt {
            return Err(Error::invalid(
                "Your kernel does not support CPU real-time scheduler",
            ));
        }
    }
    if hc.blkio_weight > 0 && !(10..=1000).contains(&hc.blkio_weight) {
        return Err(Error::invalid("Range of blkio weight is from 10 to 1000"));
    }
    // v1 has weights only with the CFQ/BFQ schedulers; docker drops them with a warning.
    let v1_weight = |f: &str| {
        std::path::Path::new("/sys/fs/cgroup/blkio")
            .join(f)
            .exists()
    };
    if v == Version::V1
        && hc.blkio_weight > 0
        && !v1_weight("blkio.weight")
        && !v1_weight("blkio.bfq.weight")
    {
        warnings.push("Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.".into());
        hc.blkio_weight = 0;
    }
    if v == Version::V1
        && !hc.blkio_weight_device.is_empty()
        && !v1_weight("blkio.weight_device")
        && !v1_weight("blkio.bfq.weight_device")
    {
        warnings.push(
            "Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded."
                .into(),
        );
        hc.blkio_weight_device.clear();
    }
    Ok(warnings)
}

/// `--blkio-weight-device /dev/sda:200`, with docker's messages.
pub fn parse_weight_device(v: &str) -> Result<crate::model::WeightDevice> {
    let (path, w) = device_and_value(v)?;
    let weight: u16 = w
        .parse()
        .map_err(|_| Error::invalid(format!("invalid weight for device: {v}")))?;
    if !(10..=1000).contains(&weight) {
        return Err(Error::invalid(format!("invalid weight for device: {v}")));
    }
    Ok(crate::model::WeightDevice {
        path: path.into(),
        weight,
    })
}

/// `--device-{read,write}-bps /dev/sda:1mb`, with docker's messages.
pub fn parse_throttle_bps(v: &str) -> Result<ThrottleDevice> {
    let (path, r) = device_and_value(v)?;
    let rate = crate::flags::parse_bytes(r).ok().filter(|r| *r >= 0).ok_or_else(|| {
        Error::invalid(format!(
            "invalid rate for device: {v}. The correct format is <device-path>:<number>[<unit>]. Number must be a positive integer. Unit is optional and can be kb, mb, or gb"
        ))
    })?;
    Ok(ThrottleDevice {
        path: path.into(),
        rate: rate as u64,
    })
}

/// `--device-{read,write}-iops /dev/sda:1000`, with docker's messages.
pub fn parse_throttle_iops(v: &str) -> Result<ThrottleDevice> {
    let (path, r) = device_and_value(v)?;
    let rate: u64 = r.parse().map_err(|_| {
        Error::invalid(format!("invalid rate for device: {v}. The correct format is <device-path>:<number>. Number must be a positive integer"))
    })?;
    Ok(ThrottleDevice {
        path: path.into(),
        rate,
    })
}

fn device_and_value(v: &str) -> Result<(&str, &str)> {
    let (path, rest) = v
        .split_once(':')
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| Error::invalid(format!("bad format: {v}")))?;
    if !path.starts_with("/dev/") {
        return Err(Error::invalid(format!("bad format for device path: {v}")));
    }
    Ok((path, rest))
}

/// (major, minor) of a block device path, as docker's daemon does it (stat, no symlink games).
fn dev_numbers(path: &str) -> Result<(i64, i64)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let md = std::fs::metadata(path).map_err(|e| Error::invalid(format!("{path}: {e}")))?;
    if !md.file_type().is_block_device() {
        return Err(Error::invalid(format!("{path} is not a block device")));
    }
    let r = md.rdev();
    Ok((libc::major(r) as i64, libc::minor(r) as i64))
}

fn throttle(list: &[ThrottleDevice]) -> Result<Vec<Value>> {
    list.iter()
        .map(|d| {
            let (major, minor) = dev_numbers(&d.path)?;
            Ok(json!({"major": major, "minor": minor, "rate": d.rate}))
        })
        .collect()
}

/// `linux.resources` without devices: memory, cpu, pids, blockIO from the HostConfig, as
/// docker's daemon translates them.
pub fn linux_resources(h: &HostConfig) -> Result<serde_json::Map<String, Value>> {
    let mut resources = serde_json::Map::new();
    let mut mem = serde_json::Map::new();
    if h.memory > 0 {
        mem.insert("limit".into(), json!(h.memory));
        // docker: --memory-swap is memory+swap; unset means twice the memory, -1 unlimited.
        let swap = match h.memory_swap {
            0 => h.memory * 2,
            s => s,
        };
        mem.insert("swap".into(), json!(swap));
    }
    if h.memory_reservation > 0 {
        mem.insert("reservation".into(), json!(h.memory_reservation));
    }
    if h.oom_kill_disable == Some(true) {
        mem.insert("disableOOMKiller".into(), json!(true));
    }
    if !mem.is_empty() {
        resources.insert("memory".into(), Value::Object(mem));
    }
    let mut cpu = serde_json::Map::new();
    if h.cpu_shares > 0 {
        cpu.insert("shares".into(), json!(h.cpu_shares));
    }
    if h.nano_cpus > 0 {
        let period: i64 = 100_000;
        cpu.insert("period".into(), json!(period));
        cpu.insert("quota".into(), json!(h.nano_cpus * period / 1_000_000_000));
    } else {
        if h.cpu_quota != 0 {
            cpu.insert("quota".into(), json!(h.cpu_quota));
        }
        if h.cpu_period > 0 {
            cpu.insert("period".into(), json!(h.cpu_period));
        } else if h.cpu_quota > 0 {
            cpu.insert("period".into(), json!(100_000));
        }
    }
    if h.cpu_realtime_runtime != 0 {
        cpu.insert("realtimeRuntime".into(), json!(h.cpu_realtime_runtime));
    }
    if !h.cpuset_cpus.is_empty() {
        cpu.insert("cpus".into(), json!(h.cpuset_cpus));
    }
    if !cpu.is_empty() {
        resources.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(p) = h.pids_limit.filter(|p| *p != 0) {
        resources.insert("pids".into(), json!({"limit": p}));
    }
    let mut io = serde_json::Map::new();
    if h.blkio_weight > 0 {
        io.insert("weight".into(), json!(h.blkio_weight));
    }
    if !h.blkio_weight_device.is_empty() {
        let mut v = Vec::new();
        for d in &h.blkio_weight_device {
            let (major, minor) = dev_numbers(&d.path)?;
            v.push(json!({"major": major, "minor": minor, "weight": d.weight}));
        }
        io.insert("weightDevice".into(), json!(v));
    }
    for (key, list) in [
        ("throttleReadBpsDevice", &h.blkio_device_read_bps),
        ("throttleWriteBpsDevice", &h.blkio_device_write_bps),
        ("throttleReadIOPSDevice", &h.blkio_device_read_iops),
        ("throttleWriteIOPSDevice", &h.blkio_device_write_iops),
    ] {
        if !list.is_empty() {
            io.insert(key.into(), json!(throttle(list)?));
        }
    }
    if !io.is_empty() {
        resources.insert("blockIO".into(), Value::Object(io));
    }
    Ok(resources)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_flags() {
        assert_eq!(
            parse_throttle_bps("/dev/sda:1mb").unwrap(),
            ThrottleDevice {
                path: "/dev/sda".into(),
                rate: 1 << 20
            }
        );
        assert_eq!(parse_throttle_iops("/dev/sda:300").unwrap().rate, 300);
        assert_eq!(parse_weight_device("/dev/sda:200").unwrap().weight, 200);
        assert_eq!(
            parse_throttle_bps("/dev/sda").unwrap_err().to_string(),
            "bad format: /dev/sda"
        );
        assert_eq!(
            parse_throttle_bps("sda:1").unwrap_err().to_string(),
            "bad format for device path: sda:1"
        );
        assert!(parse_throttle_bps("/dev/sda:x")
            .unwrap_err()
            .to_string()
            .starts_with("invalid rate for device: /dev/sda:x."));
        assert!(parse_throttle_iops("/dev/sda:1k").is_err());
        assert_eq!(
            parse_weight_device("/dev/sda:5").unwrap_err().to_string(),
            "invalid weight for device: /dev/sda:5"
        );
    }

    #[test]
    fn parent_and_id() {
        let mut hc = HostConfig::default();
        assert_eq!(cgroups_path(&hc, "abc"), "/berth/abc");
        hc.cgroup_parent = "/my/parent/".into();
        assert_eq!(cgroups_path(&hc, "abc"), "/my/parent/abc");
        hc.cgroup_parent = "rel".into();
        assert_eq!(cgroups_path(&hc, "abc"), "rel/abc");
    }

    #[test]
    fn oom_kill_disable_on_v2_is_a_warning() {
        let mut hc = HostConfig {
            oom_kill_disable: Some(true),
            memory: 64 << 20,
            ..Default::default()
        };
        let w = verify(&mut hc, Version::V2).unwrap();
        assert_eq!(
            w,
            vec!["Your kernel does not support OomKillDisable. OomKillDisable discarded."]
        );
        assert_eq!(hc.oom_kill_disable, Some(false));
        assert_eq!(hc.cgroupns_mode, "private");
        let mut hc = HostConfig {
            oom_kill_disable: Some(true),
            memory: 64 << 20,
            ..Default::default()
        };
        assert!(verify(&mut hc, Version::V1).unwrap().is_empty());
        assert_eq!(
            (hc.oom_kill_disable, hc.cgroupns_mode.as_str()),
            (Some(true), "host")
        );
    }

    #[test]
    fn docker_checks() {
        let bad = |hc: HostConfig, v: Version| {
            let mut hc = hc;
            verify(&mut hc, v).unwrap_err().to_string()
        };
        let d = HostConfig::default;
        assert!(bad(
            HostConfig {
                cgroupns_mode: "x".into(),
                ..d()
            },
            Version::V2
        )
        .contains("invalid cgroup namespace mode"));
        assert!(bad(
            HostConfig {
                memory: 8 << 20,
                memory_reservation: 16 << 20,
                ..d()
            },
            Version::V1
        )
        .contains("can not be less than memory reservation"));
        assert!(bad(
            HostConfig {
                nano_cpus: 1,
                cpu_period: 5000,
                ..d()
            },
            Version::V1
        )
        .contains("Conflicting options"));
        assert!(bad(
            HostConfig {
                cpu_period: 10,
                ..d()
            },
            Version::V1
        )
        .contains("CPU cfs period"));
        assert!(bad(
            HostConfig {
                cpu_quota: 10,
                ..d()
            },
            Version::V1
        )
        .contains("CPU cfs quota"));
        assert!(bad(
            HostConfig {
                cpu_realtime_runtime: 1000,
                ..d()
            },
            Version::V2
        )
        .contains("real-time"));
        assert!(bad(
            HostConfig {
                blkio_weight: 5,
                ..d()
            },
            Version::V1
        )
        .contains("Range of blkio weight"));
    }

    #[test]
    fn resources_from_flags() {
        let hc = HostConfig {
            memory: 64 << 20,
            memory_reservation: 32 << 20,
            cpu_quota: 50_000,
            cpu_period: 200_000,
            blkio_weight: 300,
            pids_limit: Some(10),
            ..Default::default()
        };
        let r = Value::Object(linux_resources(&hc).unwrap());
        assert_eq!(
            r["memory"],
            json!({"limit": 64 << 20, "swap": 128 << 20, "reservation": 32 << 20})
        );
        assert_eq!(r["cpu"], json!({"quota": 50_000, "period": 200_000}));
        assert_eq!(r["blockIO"], json!({"weight": 300}));
        assert_eq!(r["pids"], json!({"limit": 10}));
        let bad = HostConfig {
            blkio_device_read_bps: vec![ThrottleDevice {
                path: "/dev/null".into(),
                rate: 1,
            }],
            ..Default::default()
        };
        assert!(linux_resources(&bad)
            .unwrap_err()
            .to_string()
            .contains("not a block device"));
    }
}
