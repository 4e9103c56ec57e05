//! `berth update`: new resource limits (and restart policy) for a container, applied to its
//! cgroup at once when it runs, kept in its record for the next start. docker's checks and
//! messages (daemon/update.go, container.UpdateContainer).

use crate::error::{Error, ErrorKind, Result};
use crate::model::{HostConfig, RestartPolicy};
use crate::monitor::{self, MonitorConfig};
use crate::Engine;

/// What `docker update` can change; None leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct UpdateOptions {
    pub memory: Option<i64>,
    /// memory+swap; -1 unlimited.
    pub memory_swap: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<i64>,
    pub cpu_period: Option<i64>,
    pub cpu_quota: Option<i64>,
    pub cpu_realtime_runtime: Option<i64>,
    pub cpuset_cpus: Option<String>,
    /// 0 or -1: unlimited.
    pub pids_limit: Option<i64>,
    pub blkio_weight: Option<u16>,
    pub restart_policy: Option<RestartPolicy>,
}

fn cannot(id: &str, msg: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!("Cannot update container {id}: {msg}"),
    )
}

/// The HostConfig after the update, with docker's conflict checks against the current one.
pub fn merge(id: &str, cur: &HostConfig, u: &UpdateOptions) -> Result<HostConfig> {
    let mut h = cur.clone();
    let nano = u.nano_cpus.unwrap_or(0);
    if nano > 0 && cur.cpu_period > 0 {
        return Err(cannot(
            id,
            "Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set",
        ));
    }
    if nano > 0 && cur.cpu_quota > 0 {
        return Err(cannot(
            id,
            "Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set",
        ));
    }
    if u.cpu_period.unwrap_or(0) > 0 && cur.nano_cpus > 0 {
        return Err(cannot(
            id,
            "Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set",
        ));
    }
    if u.cpu_quota.unwrap_or(0) > 0 && cur.nano_cpus > 0 {
        return Err(cannot(
            id,
            "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set",
        ));
    }
    // docker keeps memory+swap at twice the memory when it was not given; so does this.
    let cur_swap = if cur.memory_swap == 0 && cur.memory > 0 {
        cur.memory * 2
    } else {
        cur.memory_swap
    };
    if let Some(m) = u.memory.filter(|m| *m != 0) {
        if u.memory_swap.unwrap_or(0) == 0 && cur_swap != -1 && m > cur_swap {
            return Err(cannot(
                id,
                "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time",
            ));
        }
        h.memory = m;
        if u.memory_swap.unwrap_or(0) == 0 {
            h.memory_swap = cur_swap;
        }
    }
    if let Some(s) = u.memory_swap.filter(|s| *s != 0) {
        h.memory_swap = s;
    }
    if let Some(r) = u.memory_reservation.filter(|r| *r != 0) {
        h.memory_reservation = r;
    }
    if nano > 0 {
        h.nano_cpus = nano;
    }
    if let Some(s) = u.cpu_shares.filter(|s| *s != 0) {
        h.cpu_shares = s;
    }
    if let Some(p) = u.cpu_period.filter(|p| *p != 0) {
        h.cpu_period = p;
    }
    if let Some(q) = u.cpu_quota.filter(|q| *q != 0) {
        h.cpu_quota = q;
    }
    if let Some(r) = u.cpu_realtime_runtime.filter(|r| *r != 0) {
        h.cpu_realtime_runtime = r;
    }
    if let Some(c) = u.cpuset_cpus.as_ref().filter(|c| !c.is_empty()) {
        h.cpuset_cpus = c.clone();
    }
    if let Some(p) = u.pids_limit {
        h.pids_limit = if p <= 0 { None } else { Some(p) };
    }
    if let Some(w) = u.blkio_weight.filter(|w| *w != 0) {
        h.blkio_weight = w;
    }
    if let Some(rp) = &u.restart_policy {
        if cur.auto_remove && rp.name != "no" {
            return Err(cannot(
                id,
                "Restart policy cannot be updated because AutoRemove is enabled for the container",
            ));
        }
        h.restart_policy = rp.clone();
    }
    if h.memory_swap > 0 && h.memory > 0 && h.memory_swap < h.memory {
        return Err(cannot(
            id,
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ));
    }
    let warnings = crate::resources::verify(&mut h, crate::resources::host_version())
        .map_err(|e| cannot(id, e))?;
    for w in warnings {
        eprintln!("WARNING: {w}");
    }
    Ok(h)
}

impl Engine {
    /// Updates the container's limits (live when it runs) and its restart policy.
    pub fn update(&self, key: &str, u: &UpdateOptions) -> Result<()> {
        let mut c = self.get(key)?;
        let h = merge(&c.id, &c.host_config, u)?;
        if c.state.running {
            let mut r = crate::resources::linux_resources(&h).map_err(|e| cannot(&c.id, e))?;
            if u.pids_limit.is_some_and(|p| p <= 0) {
                r.insert("pids".into(), serde_json::json!({"limit": -1}));
            }
            let r: oci_spec::runtime::LinuxResources =
                serde_json::from_value(serde_json::Value::Object(r))
                    .map_err(|e| cannot(&c.id, e))?;
            self.runtime()
                .update(&c.id, &r)
                .map_err(|e| cannot(&c.id, e))?;
        }
        if u.restart_policy.is_some() {
            // A running monitor reads its restart policy from this file when the container exits.
            let p = self.container_dir(&c.id).join(monitor::CONFIG_FILE);
            if let Some(mut mc) = std::fs::read(&p)
                .ok()
                .and_then(|t| serde_json::from_slice::<MonitorConfig>(&t).ok())
            {
                mc.restart = h.restart_policy.name.clone();
                mc.max_retries = h.restart_policy.maximum_retry_count;
                crate::sys::write_atomic(
                    &p,
                    serde_json::to_string(&mc)
                        .expect("monitor config")
                        .as_bytes(),
                )?;
            }
        }
        c.host_config = h;
        self.db.update(&c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_update_rules() {
        let cur = HostConfig {
            memory: 64 << 20,
            ..Default::default()
        };
        // Twice the memory is the implicit memory+swap.
        let h = merge(
            "c",
            &cur,
            &UpdateOptions {
                memory: Some(100 << 20),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!((h.memory, h.memory_swap), (100 << 20, 128 << 20));
        let e = merge(
            "c",
            &cur,
            &UpdateOptions {
                memory: Some(200 << 20),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("update the memoryswap at the same time"),
            "{e}"
        );
        let h = merge(
            "c",
            &cur,
            &UpdateOptions {
                memory: Some(200 << 20),
                memory_swap: Some(-1),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!((h.memory, h.memory_swap), (200 << 20, -1));
        let cur = HostConfig {
            nano_cpus: 500_000_000,
            ..Default::default()
        };
        assert!(merge(
            "c",
            &cur,
            &UpdateOptions {
                cpu_quota: Some(20000),
                ..Default::default()
            }
        )
        .is_err());
        let cur = HostConfig {
            pids_limit: Some(10),
            auto_remove: true,
            ..Default::default()
        };
        assert_eq!(
            merge(
                "c",
                &cur,
                &UpdateOptions {
                    pids_limit: Some(-1),
                    ..Default::default()
                }
            )
            .unwrap()
            .pids_limit,
            None
        );
        let rp = RestartPolicy {
            name: "always".into(),
            maximum_retry_count: 0,
        };
        let e = merge(
            "c",
            &cur,
            &UpdateOptions {
                restart_policy: Some(rp),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("AutoRemove"), "{e}");
    }
}
