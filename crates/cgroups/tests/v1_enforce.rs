//! Real enforcement on a cgroup v1 (or hybrid) host, as root. Skipped on cgroup v2 hosts, whose
//! behaviour tests/v2_unified.rs covers.

mod common;

use berth_cgroups::{FreezerState, Version};
use common::{path_of, resources, Cg, Proc};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

fn v1_host() -> bool {
    let v1 = berth_cgroups::host_version().unwrap() == Version::V1;
    if !v1 {
        eprintln!("skipped: not a cgroup v1 host");
    }
    v1
}

#[test]
fn memory_limit_oom_kills_a_hog() {
    if !v1_host() {
        return;
    }
    let cg = Cg::new("oom");
    cg.m.apply(0).unwrap();
    cg.m.set(&resources(
        r#"{"memory":{"limit":33554432,"swap":33554432}}"#,
    ))
    .unwrap();
    let mem = path_of(&*cg.m, "memory");
    assert_eq!(
        std::fs::read_to_string(mem.join("memory.limit_in_bytes"))
            .unwrap()
            .trim(),
        "33554432"
    );
    // dd fills a 200 MiB buffer with one read, touching every page.
    let mut p = Proc::spawn("exec busybox dd if=/dev/zero of=/dev/null bs=200M count=1");
    cg.m.apply(p.pid()).unwrap();
    p.go();
    let (status, stderr) = p.wait();
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "dd was not OOM-killed: {status:?} {stderr}"
    );
    assert!(cg.m.oom_kill_count().unwrap() >= 1);
    let s = cg.m.stats().unwrap();
    assert_eq!(s.memory.usage.limit, 33554432);
    assert!(
        s.memory.usage.max > 16 << 20,
        "peak usage {} never neared the limit",
        s.memory.usage.max
    );
}

#[test]
fn pids_limit_stops_a_fork_loop() {
    if !v1_host() {
        return;
    }
    let cg = Cg::new("pids");
    cg.m.apply(0).unwrap();
    cg.m.set(&resources(r#"{"pids":{"limit":4}}"#)).unwrap();
    // A bounded loop of background sleeps: the 4th fork (shell + 3 sleeps) must fail.
    let mut p = Proc::spawn(
        "i=0; while [ $i -lt 16 ]; do busybox sleep 60 </dev/null >/dev/null 2>&1 & i=$((i+1)); done; echo forked-all",
    );
    cg.m.apply(p.pid()).unwrap();
    p.go();
    let (_, stderr) = p.wait();
    let pids_dir = path_of(&*cg.m, "pids");
    let events = std::fs::read_to_string(pids_dir.join("pids.events")).unwrap();
    let max: u64 = events.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(
        max >= 1,
        "no fork was refused: pids.events {events:?}, stderr {stderr}"
    );
    assert!(stderr.contains("fork"), "{stderr}");
    let s = cg.m.stats().unwrap();
    assert_eq!(s.pids.limit, 4);
    assert!(s.pids.current <= 4);
}

#[test]
fn cpu_quota_throttles_a_busy_loop() {
    if !v1_host() {
        return;
    }
    let cg = Cg::new("cpu");
    cg.m.apply(0).unwrap();
    cg.m.set(&resources(
        r#"{"cpu":{"quota":10000,"period":100000,"shares":512}}"#,
    ))
    .unwrap();
    let mut p = Proc::spawn("while :; do :; done");
    cg.m.apply(p.pid()).unwrap();
    p.go();
    // Bounded wait for the counter; the assertion is on the counter, not on how long it took.
    let mut throttled = 0;
    for _ in 0..200 {
        throttled = cg.m.stats().unwrap().cpu.throttling.throttled_periods;
        if throttled > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    drop(p);
    assert!(throttled > 0, "no throttled period recorded");
    let s = cg.m.stats().unwrap();
    assert!(s.cpu.usage.total > 0 && s.cpu.throttling.periods > 0);
    let json = serde_json::to_value(&s).unwrap();
    assert!(
        json["cpu"]["throttling"]["throttledPeriods"]
            .as_u64()
            .unwrap()
            > 0,
        "{json}"
    );
    assert!(json["memory"]["usage"].get("limit").is_some(), "{json}");
}

#[test]
fn freeze_thaw_pids_and_destroy() {
    if !v1_host() {
        return;
    }
    let cg = Cg::new("freeze");
    let mut p = Proc::spawn("exec busybox sleep 60");
    cg.m.apply(p.pid()).unwrap();
    p.go();
    // A second process in a sub-cgroup of the pids hierarchy counts too.
    let sub = path_of(&*cg.m, "pids").join("sub");
    std::fs::create_dir(&sub).unwrap();
    let mut q = Proc::spawn("exec busybox sleep 60");
    std::fs::write(sub.join("cgroup.procs"), q.pid().to_string()).unwrap();
    std::fs::write(
        path_of(&*cg.m, "freezer").join("cgroup.procs"),
        q.pid().to_string(),
    )
    .unwrap();
    q.go();
    assert_eq!(cg.m.pids().unwrap(), {
        let mut v = vec![p.pid(), q.pid()];
        v.sort();
        v
    });

    assert_eq!(cg.m.freezer_state().unwrap(), FreezerState::Thawed);
    common::assert_freeze_stops_progress(&*cg.m);

    drop(p);
    drop(q);
    cg.m.destroy().unwrap();
    for (c, dir) in cg.m.paths() {
        assert!(
            !dir.exists(),
            "{c} directory {} survived destroy",
            dir.display()
        );
    }
    // Destroying again is fine.
    cg.m.destroy().unwrap();
}

#[test]
fn device_rules_are_enforced() {
    if !v1_host() {
        return;
    }
    let cg = Cg::new("dev");
    cg.m.apply(0).unwrap();
    cg.m.set(&resources(
        r#"{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}]}"#,
    ))
    .unwrap();
    let list = std::fs::read_to_string(path_of(&*cg.m, "devices").join("devices.list")).unwrap();
    assert_eq!(list.trim(), "c 1:3 rwm");
    let mut p = Proc::spawn(
        "echo ok > /dev/null || exit 3; busybox head -c 1 /dev/zero > /dev/null && exit 4; exit 0",
    );
    cg.m.apply(p.pid()).unwrap();
    p.go();
    let (status, stderr) = p.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("Operation not permitted"), "{stderr}");
}

#[test]
fn nested_cpuset_inherits_and_accepts_tasks() {
    if !v1_host() {
        return;
    }
    let outer = Cg::new("cpuset");
    let rel = format!("{}/inner", outer.rel.as_deref().unwrap());
    let inner = Cg {
        m: berth_cgroups::open(Some(Path::new(&rel)), "x").unwrap(),
        rel: None,
    };
    // A parent someone else created and left with empty cpus/mems is filled in as well.
    let outer_dir = path_of(&*outer.m, "cpuset");
    std::fs::create_dir(&outer_dir).unwrap();
    assert_eq!(
        std::fs::read_to_string(outer_dir.join("cpuset.cpus"))
            .unwrap()
            .trim(),
        ""
    );
    let mut p = Proc::spawn("exec busybox sleep 60");
    inner.m.apply(p.pid()).unwrap();
    p.go();
    inner
        .m
        .set(&resources(r#"{"cpu":{"cpus":"0","mems":"0"}}"#))
        .unwrap();
    let s = inner.m.stats().unwrap();
    assert_eq!(s.cpuset.cpus, vec![0]);
    let allowed = std::fs::read_to_string(format!("/proc/{}/status", p.pid())).unwrap();
    assert!(
        allowed
            .lines()
            .any(|l| l.starts_with("Cpus_allowed_list:") && l.ends_with("\t0")),
        "{allowed}"
    );
    drop(p);
    drop(inner);
}

#[test]
fn hybrid_hugetlb_limit_goes_to_the_unified_mount() {
    if !v1_host() {
        return;
    }
    let cg = Cg::new("huge");
    let Some((_, unified)) = cg.m.paths().into_iter().find(|(c, _)| c.is_empty()) else {
        eprintln!("skipped: not a hybrid host");
        return;
    };
    let root = Path::new("/sys/fs/cgroup/unified");
    let has = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    if cg.m.paths().iter().any(|(c, _)| c == "hugetlb") || !has.contains("hugetlb") {
        eprintln!("skipped: hugetlb is a v1 hierarchy or absent");
        return;
    }
    let before = std::fs::read_to_string(root.join("cgroup.subtree_control")).unwrap();
    let _restore = berth_testkit::Defer(|| {
        if !before.contains("hugetlb") {
            let _ = std::fs::write(root.join("cgroup.subtree_control"), "-hugetlb");
        }
    });
    cg.m.apply(0).unwrap();
    cg.m.set(&resources(
        r#"{"hugepageLimits":[{"pageSize":"2MB","limit":4194304}]}"#,
    ))
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(unified.join("hugetlb.2MB.max"))
            .unwrap()
            .trim(),
        "4194304"
    );
    assert!(cg.m.stats().unwrap().hugetlb.contains_key("2MB"));
    drop(cg);
}

#[test]
fn network_and_unified_are_clear_errors_here() {
    if !v1_host() {
        return;
    }
    let cg = Cg::new("net");
    cg.m.apply(0).unwrap();
    let e =
        cg.m.set(&resources(r#"{"network":{"classID":1048577}}"#))
            .unwrap_err()
            .to_string();
    assert!(e.contains("net_cls"), "{e}");
    let e =
        cg.m.set(&resources(r#"{"unified":{"memory.high":"1"}}"#))
            .unwrap_err()
            .to_string();
    assert!(e.contains("unified"), "{e}");
}

#[test]
fn default_path_is_the_id_below_our_own_cgroup() {
    if !v1_host() {
        return;
    }
    let id = berth_testkit::unique_id("berth-cgtest-rel");
    let cg = Cg {
        m: berth_cgroups::open(None, &id).unwrap(),
        rel: None,
    };
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let mine = own
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{}:memory:", l.split(':').next().unwrap())))
        .unwrap();
    let want = Path::new("/sys/fs/cgroup/memory")
        .join(mine.trim_start_matches('/'))
        .join(&id);
    assert_eq!(path_of(&*cg.m, "memory"), want);
    cg.m.apply(0).unwrap();
    assert!(want.is_dir());
    cg.m.destroy().unwrap();
    assert!(!want.exists());
}

#[test]
fn systemd_paths_are_refused() {
    let e = berth_cgroups::open(Some(Path::new("system.slice:berth:abc")), "abc")
        .err()
        .unwrap();
    assert!(e.to_string().contains("systemd"), "{e}");
}

#[test]
fn memory_and_swap_limits_can_be_raised_and_lowered() {
    if !v1_host() {
        return;
    }
    let cg = Cg::new("memorder");
    cg.m.apply(0).unwrap();
    let mem = path_of(&*cg.m, "memory");
    let read = |f: &str| {
        std::fs::read_to_string(mem.join(f))
            .unwrap()
            .trim()
            .to_owned()
    };
    // Each step needs a different write order to satisfy the kernel's memsw >= limit check.
    for (limit, swap) in [
        (64u64 << 20, 128u64 << 20),
        (32 << 20, 32 << 20),
        (256 << 20, 512 << 20),
        (16 << 20, 16 << 20),
    ] {
        cg.m.set(&resources(&format!(
            r#"{{"memory":{{"limit":{limit},"swap":{swap},"kernel":67108864,"swappiness":30}}}}"#
        )))
        .unwrap();
        assert_eq!(read("memory.limit_in_bytes"), limit.to_string());
        assert_eq!(read("memory.memsw.limit_in_bytes"), swap.to_string());
    }
    assert_eq!(read("memory.swappiness"), "30");
    cg.m.set(&resources(r#"{"memory":{"limit":-1}}"#)).unwrap();
    assert_eq!(
        read("memory.memsw.limit_in_bytes"),
        read("memory.limit_in_bytes")
    );
    assert!(read("memory.limit_in_bytes").parse::<u64>().unwrap() > 1 << 40);
}
