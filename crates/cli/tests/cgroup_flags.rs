//! docker's cgroup flags of `run` and `berth update` on this host's cgroup v1 hierarchies (the
//! same flags on a pure v2 kernel: scripts/test-cgroup-v2). Each test has its own root and its own
//! cgroup parent, removed on drop.

mod common;

use berth_testkit::{remove_cgroup_everywhere, require_busybox, unique_id, Scratch};
use common::{berth, ok};
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Env {
    _scratch: Scratch,
    root: PathBuf,
    /// A cgroup parent of this test's own, below each v1 hierarchy's root.
    parent: String,
}

impl Env {
    fn new(name: &str) -> Env {
        require_busybox();
        let scratch = Scratch::new(name);
        let root = scratch.join("root");
        common::load_fixture(&root, "busybox.oci-archive.tar");
        Env {
            _scratch: scratch,
            root,
            parent: format!("/berth-test/{}", unique_id(name)),
        }
    }
    fn ok(&self, args: &[&str]) -> String {
        ok(&self.root, args)
    }
    fn run(&self, args: &[&str]) -> common::Run {
        berth(&self.root, args)
    }
    fn id(&self, name: &str) -> String {
        self.ok(&["inspect", "-f", "{{.Id}}", name])
            .trim()
            .to_string()
    }
    /// A file of the container's cgroup in one v1 hierarchy.
    fn read(&self, hierarchy: &str, id: &str, file: &str) -> String {
        let p = format!("/sys/fs/cgroup/{hierarchy}{}/{id}/{file}", self.parent);
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .trim()
            .to_string()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let r = self.run(&["ps", "-aq", "--no-trunc"]);
        for id in r.stdout.lines() {
            let _ = self.run(&["rm", "-f", id]);
            remove_cgroup_everywhere(&format!("berth/{id}"));
            remove_cgroup_everywhere(&format!("{}/{id}", self.parent));
        }
        remove_cgroup_everywhere(&self.parent);
    }
}

/// A block device of this host ("major:minor", /dev path).
fn block_device() -> Option<(String, String)> {
    for e in std::fs::read_dir("/sys/block").ok()?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let dev = std::fs::read_to_string(e.path().join("dev")).ok()?;
        let path = format!("/dev/{name}");
        if !name.starts_with("loop") && std::path::Path::new(&path).exists() {
            return Some((dev.trim().to_string(), path));
        }
    }
    None
}

fn v1_host() -> bool {
    let v1 = berth_cgroups::host_version().unwrap() == berth_cgroups::Version::V1;
    if !v1 {
        eprintln!("skipped: this test reads cgroup v1 files (scripts/test-cgroup-v2 covers v2)");
    }
    v1
}

#[test]
fn run_flags_reach_the_v1_files() {
    if !v1_host() {
        return;
    }
    let env = Env::new("cgflags");
    let (dev, path) = block_device().expect("a block device");
    let bps = format!("{path}:1mb");
    let iops = format!("{path}:300");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "cc",
        "--cgroup-parent",
        &env.parent,
        "-m",
        "64m",
        "--memory-reservation",
        "32m",
        "--cpu-quota",
        "20000",
        "--cpu-period",
        "50000",
        "--device-read-bps",
        &bps,
        "--device-write-iops",
        &iops,
        "busybox",
        "sleep",
        "100",
    ]);
    let id = env.id("cc");
    assert_eq!(env.read("memory", &id, "memory.limit_in_bytes"), "67108864");
    assert_eq!(
        env.read("memory", &id, "memory.soft_limit_in_bytes"),
        "33554432"
    );
    assert_eq!(env.read("cpu", &id, "cpu.cfs_quota_us"), "20000");
    assert_eq!(env.read("cpu", &id, "cpu.cfs_period_us"), "50000");
    assert_eq!(
        env.read("blkio", &id, "blkio.throttle.read_bps_device"),
        format!("{dev} 1048576")
    );
    assert_eq!(
        env.read("blkio", &id, "blkio.throttle.write_iops_device"),
        format!("{dev} 300")
    );
    let hc = env.ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.CgroupParent}} {{.HostConfig.MemoryReservation}} {{.HostConfig.CpuQuota}}",
        "cc",
    ]);
    assert_eq!(hc.trim(), format!("{} 33554432 20000", env.parent));
    env.ok(&["rm", "-f", "cc"]);
    assert!(!std::path::Path::new(&format!("/sys/fs/cgroup/memory{}/{id}", env.parent)).exists());
}

#[test]
fn flag_errors_and_warnings_as_docker() {
    let env = Env::new("cgerrors");
    let cases: &[(&[&str], &str)] = &[
        (
            &["--blkio-weight", "5"],
            "Range of blkio weight is from 10 to 1000",
        ),
        (&["--device-read-bps", "/dev/sda"], "bad format: /dev/sda"),
        (
            &["--device-write-bps", "sda:1mb"],
            "bad format for device path: sda:1mb",
        ),
        (
            &["--device-read-iops", "/dev/sda:x"],
            "invalid rate for device: /dev/sda:x",
        ),
        (
            &["--blkio-weight-device", "/dev/sda:1"],
            "invalid weight for device: /dev/sda:1",
        ),
        (&["--cgroupns", "bogus"], "--cgroupns: invalid CGROUP mode"),
        (
            &["-m", "8m", "--memory-reservation", "16m"],
            "Minimum memory limit can not be less than memory reservation limit",
        ),
        (
            &["--cpus", "1", "--cpu-period", "50000"],
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        ),
        (
            &["--cpu-period", "10"],
            "CPU cfs period can not be less than 1ms",
        ),
    ];
    for (flags, msg) in cases {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend(["busybox", "true"]);
        let r = env.run(&args);
        assert_eq!(r.code, 125, "{flags:?}: {}", r.stderr);
        assert!(r.stderr.contains(msg), "{flags:?}: {}", r.stderr);
    }
    assert!(
        env.run(&["ps", "-aq"]).stdout.is_empty(),
        "a refused run left a container"
    );
}

#[test]
fn oom_kill_disable_and_cgroupns_on_v1() {
    if !v1_host() {
        return;
    }
    let env = Env::new("cgns");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "oo",
        "--cgroup-parent",
        &env.parent,
        "-m",
        "64m",
        "--oom-kill-disable",
        "busybox",
        "sleep",
        "100",
    ]);
    let id = env.id("oo");
    assert!(env
        .read("memory", &id, "memory.oom_control")
        .contains("oom_kill_disable 1"));
    // docker's default on v1 is the host's cgroup namespace.
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.HostConfig.CgroupnsMode}}", "oo"])
            .trim(),
        "host"
    );
    let out = env.ok(&["exec", "oo", "cat", "/proc/self/cgroup"]);
    assert!(
        out.contains(&format!("memory:{}/{id}", env.parent)),
        "{out}"
    );
    let out = env.ok(&[
        "run",
        "--rm",
        "--cgroupns",
        "private",
        "busybox",
        "cat",
        "/proc/self/cgroup",
    ]);
    assert!(out.lines().all(|l| l.ends_with(":/")), "{out}");
}

#[test]
fn update_a_running_container() {
    if !v1_host() {
        return;
    }
    let env = Env::new("cgupdate");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "uu",
        "--cgroup-parent",
        &env.parent,
        "-m",
        "64m",
        "--pids-limit",
        "10",
        "busybox",
        "sleep",
        "100",
    ]);
    let id = env.id("uu");
    let out = env.ok(&[
        "update",
        "--memory",
        "96m",
        "--memory-swap",
        "200m",
        "--cpus",
        "0.5",
        "--cpu-shares",
        "512",
        "--cpuset-cpus",
        "0",
        "--pids-limit",
        "20",
        "--restart",
        "on-failure:3",
        "uu",
    ]);
    assert_eq!(out, "uu\n");
    assert_eq!(
        env.read("memory", &id, "memory.limit_in_bytes"),
        "100663296"
    );
    assert_eq!(
        env.read("memory", &id, "memory.memsw.limit_in_bytes"),
        "209715200"
    );
    assert_eq!(env.read("cpu", &id, "cpu.cfs_quota_us"), "50000");
    assert_eq!(env.read("cpu", &id, "cpu.shares"), "512");
    assert_eq!(env.read("cpuset", &id, "cpuset.cpus"), "0");
    assert_eq!(env.read("pids", &id, "pids.max"), "20");
    let hc = env.ok(&["inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.NanoCpus}} {{.HostConfig.RestartPolicy.Name}}", "uu"]);
    assert_eq!(hc.trim(), "100663296 209715200 500000000 on-failure");
    env.ok(&["update", "--pids-limit", "-1", "uu"]);
    assert_eq!(env.read("pids", &id, "pids.max"), "max");
    // docker's refusals, exit 1.
    let r = env.run(&["update", "--memory", "300m", "uu"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("Memory limit should be smaller than already set memoryswap limit"),
        "{}",
        r.stderr
    );
    let r = env.run(&["update", "--cpu-quota", "20000", "uu"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("CPU Quota cannot be updated as NanoCPUs has already been set"),
        "{}",
        r.stderr
    );
    let r = env.run(&["update", "uu"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("you must provide one or more flags"),
        "{}",
        r.stderr
    );
    let r = env.run(&["update", "--memory", "64m", "nosuch"]);
    assert_eq!(r.code, 1);
    // A stopped container keeps the new settings for its next start.
    env.ok(&["rm", "-f", "uu"]);
    env.ok(&[
        "create",
        "--name",
        "ss",
        "--cgroup-parent",
        &env.parent,
        "busybox",
        "cat",
        "/sys/fs/cgroup/pids/pids.max",
    ]);
    env.ok(&["update", "--pids-limit", "7", "ss"]);
    env.ok(&["start", "ss"]);
    env.ok(&["wait", "ss"]);
    assert_eq!(env.ok(&["logs", "ss"]), "7\n");
}

#[test]
fn update_restart_policy_of_a_running_container() {
    let env = Env::new("cgrestart");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "rr",
        "busybox",
        "sh",
        "-c",
        "sleep 2; exit 3",
    ]);
    env.ok(&["update", "--restart", "on-failure:2", "rr"]);
    // The monitor reads the new policy when the container exits: two restarts, then exited.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = env.ok(&["inspect", "-f", "{{.State.Status}} {{.RestartCount}}", "rr"]);
        if s.trim() == "exited 2" {
            break;
        }
        assert!(Instant::now() < deadline, "restart policy not applied: {s}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
