//! docker's cgroup flags of `run`/`create` (flattened into RunArgs) and `berth update`.

use berth_engine::{flags, model::HostConfig, resources, update::UpdateOptions};
use clap::Args;

use super::die;
use crate::{CmdResult, Ctx};

fn or_die<T>(r: berth_engine::Result<T>) -> T {
    r.unwrap_or_else(|e| die(e, 125))
}

#[derive(Args, Default)]
pub struct CgroupArgs {
    /// Cgroup namespace to use (host|private)
    #[arg(long = "cgroupns")]
    cgroupns: Option<String>,
    /// Optional parent cgroup for the container
    #[arg(long)]
    cgroup_parent: Option<String>,
    /// Memory soft limit
    #[arg(long)]
    memory_reservation: Option<String>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long, allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long)]
    cpu_period: Option<i64>,
    /// Limit CPU real-time runtime in microseconds
    #[arg(long)]
    cpu_rt_runtime: Option<i64>,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)
    #[arg(long)]
    blkio_weight: Option<u16>,
    /// Block IO weight (relative device weight)
    #[arg(long)]
    blkio_weight_device: Vec<String>,
    /// Limit read rate (bytes per second) from a device
    #[arg(long)]
    device_read_bps: Vec<String>,
    /// Limit write rate (bytes per second) to a device
    #[arg(long)]
    device_write_bps: Vec<String>,
    /// Limit read rate (IO per second) from a device
    #[arg(long)]
    device_read_iops: Vec<String>,
    /// Limit write rate (IO per second) to a device
    #[arg(long)]
    device_write_iops: Vec<String>,
}

impl CgroupArgs {
    pub fn apply(&self, hc: &mut HostConfig) {
        if let Some(m) = &self.cgroupns {
            if m != "host" && m != "private" {
                die("--cgroupns: invalid CGROUP mode", 125);
            }
            hc.cgroupns_mode = m.clone();
        }
        hc.cgroup_parent = self.cgroup_parent.clone().unwrap_or_default();
        if let Some(r) = &self.memory_reservation {
            hc.memory_reservation = or_die(flags::parse_bytes(r));
        }
        hc.cpu_quota = self.cpu_quota.unwrap_or(0);
        hc.cpu_period = self.cpu_period.unwrap_or(0);
        hc.cpu_realtime_runtime = self.cpu_rt_runtime.unwrap_or(0);
        hc.blkio_weight = self.blkio_weight.unwrap_or(0);
        hc.blkio_weight_device = self
            .blkio_weight_device
            .iter()
            .map(|v| or_die(resources::parse_weight_device(v)))
            .collect();
        hc.blkio_device_read_bps = self
            .device_read_bps
            .iter()
            .map(|v| or_die(resources::parse_throttle_bps(v)))
            .collect();
        hc.blkio_device_write_bps = self
            .device_write_bps
            .iter()
            .map(|v| or_die(resources::parse_throttle_bps(v)))
            .collect();
        hc.blkio_device_read_iops = self
            .device_read_iops
            .iter()
            .map(|v| or_die(resources::parse_throttle_iops(v)))
            .collect();
        hc.blkio_device_write_iops = self
            .device_write_iops
            .iter()
            .map(|v| or_die(resources::parse_throttle_iops(v)))
            .collect();
    }

    /// docker's daemon warnings for this host (printed by the CLI as "WARNING: ...").
    pub fn warn(hc: &HostConfig) {
        let mut probe = hc.clone();
        if let Ok(ws) = resources::verify(&mut probe, resources::host_version()) {
            for w in ws {
                eprintln!("WARNING: {w}");
            }
        }
    }
}

#[derive(Args)]
pub struct UpdateArgs {
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)
    #[arg(long)]
    blkio_weight: Option<u16>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long)]
    cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long, allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    /// Limit the CPU real-time runtime in microseconds
    #[arg(long)]
    cpu_rt_runtime: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(short, long)]
    cpu_shares: Option<i64>,
    /// Number of CPUs
    #[arg(long)]
    cpus: Option<String>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long)]
    cpuset_cpus: Option<String>,
    /// Memory limit
    #[arg(short, long)]
    memory: Option<String>,
    /// Memory soft limit
    #[arg(long)]
    memory_reservation: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long, allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long, allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    restart: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

/// `berth update`: prints each container it updated; failures together at the end (exit 1).
pub fn update(ctx: &Ctx, a: UpdateArgs) -> CmdResult {
    let u = UpdateOptions {
        memory: a.memory.as_deref().map(|m| or_die(flags::parse_bytes(m))),
        memory_swap: a.memory_swap.as_deref().map(|m| {
            if m == "-1" {
                -1
            } else {
                or_die(flags::parse_bytes(m))
            }
        }),
        memory_reservation: a
            .memory_reservation
            .as_deref()
            .map(|m| or_die(flags::parse_bytes(m))),
        nano_cpus: a.cpus.as_deref().map(|c| or_die(flags::parse_cpus(c))),
        cpu_shares: a.cpu_shares,
        cpu_period: a.cpu_period,
        cpu_quota: a.cpu_quota,
        cpu_realtime_runtime: a.cpu_rt_runtime,
        cpuset_cpus: a.cpuset_cpus.clone(),
        pids_limit: a.pids_limit,
        blkio_weight: a.blkio_weight,
        restart_policy: a
            .restart
            .as_deref()
            .map(|r| or_die(flags::parse_restart(r))),
    };
    let any = a.blkio_weight.is_some()
        || a.cpu_period.is_some()
        || a.cpu_quota.is_some()
        || a.cpu_rt_runtime.is_some()
        || a.cpu_shares.is_some()
        || a.cpus.is_some()
        || a.cpuset_cpus.is_some()
        || a.memory.is_some()
        || a.memory_reservation.is_some()
        || a.memory_swap.is_some()
        || a.pids_limit.is_some()
        || a.restart.is_some();
    if !any {
        return Err("you must provide one or more flags when using this command".into());
    }
    let e = super::engine(ctx)?;
    let mut errors = Vec::new();
    for n in &a.containers {
        match e.update(n, &u) {
            Ok(()) => println!("{n}"),
            Err(err) => errors.push(err.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(crate::Failure(errors.join("\nError: ")))
    }
}
