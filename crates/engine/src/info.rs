//! `docker info`'s Info object for berth: the host (kernel, OS, CPUs, memory, cgroups), the
//! engine's root and storage driver, and counts of containers and images. Tools that probe
//! `docker info --format '{{.OSType}}'` and friends find every field docker has.

use crate::error::Result;
use crate::{sys, timefmt, Engine};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// moby's `api/types/system.Info`, field for field (JSON names as docker's).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Info {
    #[serde(rename = "ID")]
    pub id: String,
    pub containers: usize,
    pub containers_running: usize,
    pub containers_paused: usize,
    pub containers_stopped: usize,
    pub images: usize,
    pub driver: String,
    pub driver_status: Vec<[String; 2]>,
    pub plugins: Plugins,
    pub memory_limit: bool,
    pub swap_limit: bool,
    pub cpu_cfs_period: bool,
    pub cpu_cfs_quota: bool,
    #[serde(rename = "CPUShares")]
    pub cpu_shares: bool,
    #[serde(rename = "CPUSet")]
    pub cpu_set: bool,
    pub pids_limit: bool,
    #[serde(rename = "IPv4Forwarding")]
    pub ipv4_forwarding: bool,
    pub debug: bool,
    #[serde(rename = "NFd")]
    pub nfd: usize,
    pub oom_kill_disable: bool,
    #[serde(rename = "NGoroutines")]
    pub ngoroutines: usize,
    pub system_time: String,
    pub logging_driver: String,
    pub cgroup_driver: String,
    pub cgroup_version: String,
    #[serde(rename = "NEventsListener")]
    pub nevents_listener: usize,
    pub kernel_version: String,
    pub operating_system: String,
    #[serde(rename = "OSVersion")]
    pub os_version: String,
    #[serde(rename = "OSType")]
    pub os_type: String,
    pub architecture: String,
    pub index_server_address: String,
    pub registry_config: Value,
    #[serde(rename = "NCPU")]
    pub ncpu: usize,
    pub mem_total: u64,
    pub generic_resources: Option<Vec<Value>>,
    pub docker_root_dir: String,
    pub http_proxy: String,
    pub https_proxy: String,
    pub no_proxy: String,
    pub name: String,
    pub labels: Vec<String>,
    pub experimental_build: bool,
    pub server_version: String,
    pub runtimes: BTreeMap<String, Value>,
    pub default_runtime: String,
    pub swarm: Value,
    pub live_restore_enabled: bool,
    pub isolation: String,
    pub init_binary: String,
    pub containerd_commit: Value,
    pub runc_commit: Value,
    pub init_commit: Value,
    pub security_options: Vec<String>,
    #[serde(rename = "CDISpecDirs")]
    pub cdi_spec_dirs: Vec<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Plugins {
    pub volume: Vec<String>,
    pub network: Vec<String>,
    pub authorization: Option<Vec<String>>,
    pub log: Vec<String>,
}

/// The runtime berth runs containers with (in process, the same code as `berth-runc`).
pub const RUNTIME: &str = "berth-runc";

/// What `--init` runs (built into berth).
pub const INIT_BINARY: &str = "berth-init";

impl Engine {
    /// `docker info` for this root.
    pub fn info(&self) -> Result<Info> {
        let mut info = host_info();
        let (mut running, mut paused, mut stopped, mut total) = (0, 0, 0, 0);
        for c in self.list(true)? {
            total += 1;
            match c.state.status.as_str() {
                "paused" => paused += 1,
                "running" | "restarting" => running += 1,
                _ => stopped += 1,
            }
        }
        let store = self.store()?;
        let driver = match store.driver() {
            berth_image::Driver::Overlay => "overlay",
            berth_image::Driver::Vfs => "vfs",
        };
        info.id = self.engine_id();
        info.containers = total;
        info.containers_running = running;
        info.containers_paused = paused;
        info.containers_stopped = stopped;
        info.images = store.list()?.len();
        info.driver = driver.to_string();
        info.driver_status = vec![
            ["Backing Filesystem".into(), backing_filesystem(self.root())],
            ["Supports d_type".into(), "true".into()],
        ];
        info.docker_root_dir = self.root().display().to_string();
        Ok(info)
    }

    /// docker's engine ID: made once per root, kept in `<root>/engine-id`.
    fn engine_id(&self) -> String {
        let path = self.root().join("engine-id");
        if let Ok(s) = std::fs::read_to_string(&path) {
            if !s.trim().is_empty() {
                return s.trim().to_string();
            }
        }
        let r = sys::random_id();
        let id = format!(
            "{}-{}-{}-{}-{}",
            &r[..8],
            &r[8..12],
            &r[12..16],
            &r[16..20],
            &r[20..32]
        );
        // Two berth processes may race here: whichever rename lands last wins, and both
        // answers are valid ids; later calls read the stored one.
        let _ = sys::write_atomic(&path, id.as_bytes());
        std::fs::read_to_string(&path)
            .map(|s| s.trim().to_string())
            .unwrap_or(id)
    }
}

/// Everything that depends on the host only.
fn host_info() -> Info {
    let uts = rustix::system::uname();
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let os_field = |k: &str| {
        os_release
            .lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_default()
    };
    let v2 = matches!(
        berth_cgroups::host_version(),
        Ok(berth_cgroups::Version::V2)
    );
    let mut security = vec!["name=seccomp,profile=builtin".to_string()];
    if v2 {
        security.push("name=cgroupns".into());
    }
    let env = |k: &str| {
        std::env::var(k)
            .or_else(|_| std::env::var(k.to_lowercase()))
            .unwrap_or_default()
    };
    let nfd = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0);
    Info {
        id: String::new(),
        containers: 0,
        containers_running: 0,
        containers_paused: 0,
        containers_stopped: 0,
        images: 0,
        driver: String::new(),
        driver_status: Vec::new(),
        plugins: Plugins {
            volume: vec!["local".into()],
            network: vec!["host".into(), "none".into()],
            authorization: None,
            log: vec!["json-file".into()],
        },
        memory_limit: true,
        swap_limit: true,
        cpu_cfs_period: true,
        cpu_cfs_quota: true,
        cpu_shares: true,
        cpu_set: true,
        pids_limit: true,
        ipv4_forwarding: std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .is_ok_and(|s| s.trim() == "1"),
        debug: false,
        nfd,
        oom_kill_disable: !v2,
        ngoroutines: 0,
        system_time: timefmt::now(),
        logging_driver: "json-file".into(),
        cgroup_driver: "cgroupfs".into(),
        cgroup_version: if v2 { "2" } else { "1" }.into(),
        nevents_listener: 0,
        kernel_version: kernel_version(),
        operating_system: os_field("PRETTY_NAME"),
        os_version: os_field("VERSION_ID"),
        os_type: "linux".into(),
        architecture: uts.machine().to_string_lossy().into_owned(),
        index_server_address: "https://index.docker.io/v1/".into(),
        registry_config: json!({
            "InsecureRegistryCIDRs": ["::1/128", "127.0.0.0/8"],
            "IndexConfigs": {"docker.io": {"Mirrors": [], "Name": "docker.io", "Official": true, "Secure": true}},
            "Mirrors": null,
        }),
        ncpu: std::thread::available_parallelism().map_or(1, |n| n.get()),
        mem_total: mem_total(),
        generic_resources: None,
        docker_root_dir: String::new(),
        http_proxy: env("HTTP_PROXY"),
        https_proxy: env("HTTPS_PROXY"),
        no_proxy: env("NO_PROXY"),
        name: uts.nodename().to_string_lossy().into_owned(),
        labels: Vec::new(),
        experimental_build: false,
        server_version: env!("CARGO_PKG_VERSION").into(),
        runtimes: BTreeMap::from([(RUNTIME.to_string(), json!({"path": RUNTIME}))]),
        default_runtime: RUNTIME.into(),
        swarm: json!({"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": null}),
        live_restore_enabled: false,
        isolation: String::new(),
        init_binary: INIT_BINARY.into(),
        containerd_commit: json!({"ID": ""}),
        runc_commit: json!({"ID": ""}),
        init_commit: json!({"ID": ""}),
        security_options: security,
        cdi_spec_dirs: Vec::new(),
        warnings: Vec::new(),
    }
}

/// The running kernel's release ("6.1.0-18-amd64").
pub fn kernel_version() -> String {
    rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned()
}

fn mem_total() -> u64 {
    let s = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |k| k * 1024)
}

/// docker's name for the filesystem holding the root ("extfs", "xfs", "btrfs", "tmpfs", ...).
fn backing_filesystem(root: &std::path::Path) -> String {
    let Ok(st) = rustix::fs::statfs(root) else {
        return "<unknown>".into();
    };
    match st.f_type as u64 {
        0xEF53 => "extfs",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x794C_7630 => "overlayfs",
        0x2FC1_2FC1 => "zfs",
        0x6969 => "nfs",
        _ => "<unknown>",
    }
    .into()
}
