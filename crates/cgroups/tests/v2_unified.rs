//! The v2 backend against a real cgroup2 mount: /sys/fs/cgroup on a v2 host, or the hybrid
//! host's /sys/fs/cgroup/unified (no controllers there, but cgroup.procs, cgroup.freeze,
//! cgroup.events, cgroup.kill and cpu.stat all work). Each test works below its own parent.

mod common;

use berth_cgroups::v2::V2Manager;
use berth_cgroups::{FreezerState, Version};
use common::{resources, Cg, Proc};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

/// A parent cgroup of our own on the cgroup2 mount, removed on drop; None when not writable.
fn parent(prefix: &str) -> Option<(PathBuf, berth_testkit::Defer<impl FnMut()>)> {
    let mount = if berth_cgroups::host_version().unwrap() == Version::V2 {
        Path::new("/sys/fs/cgroup")
    } else {
        Path::new("/sys/fs/cgroup/unified")
    };
    if !mount.join("cgroup.procs").exists() {
        eprintln!("skipped: no cgroup2 mount at {}", mount.display());
        return None;
    }
    let rel = format!("berth-cgtest-{}", berth_testkit::unique_id(prefix));
    let dir = mount.join(&rel);
    if let Err(e) = std::fs::create_dir(&dir) {
        eprintln!("skipped: {} is not writable: {e}", dir.display());
        return None;
    }
    Some((
        dir,
        berth_testkit::Defer(move || berth_testkit::remove_cgroup_everywhere(&rel)),
    ))
}

fn manager(parent: &Path) -> Cg {
    Cg {
        m: Box::new(V2Manager::new(parent.to_owned(), parent.join("c"))),
        rel: None,
    }
}

#[test]
fn apply_freeze_thaw_pids_destroy() {
    let Some((parent, _cleanup)) = parent("v2") else {
        return;
    };
    let cg = manager(&parent);
    assert_eq!(cg.m.version(), Version::V2);
    let mut p = Proc::spawn("exec busybox sleep 60");
    cg.m.apply(p.pid()).unwrap();
    p.go();
    let dir = cg.m.paths()[0].1.clone();
    assert_eq!(cg.m.paths(), vec![(String::new(), dir.clone())]);
    // A nested cgroup's process is listed too.
    let sub = dir.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let mut q = Proc::spawn("exec busybox sleep 60");
    std::fs::write(sub.join("cgroup.procs"), q.pid().to_string()).unwrap();
    q.go();
    let mut want = vec![p.pid(), q.pid()];
    want.sort();
    assert_eq!(cg.m.pids().unwrap(), want);

    assert_eq!(cg.m.freezer_state().unwrap(), FreezerState::Thawed);
    common::assert_freeze_stops_progress(&*cg.m);

    let s = cg.m.stats().unwrap();
    let json = serde_json::to_value(&s).unwrap();
    assert!(json["cpu"]["usage"].get("kernel").is_some(), "{json}");

    drop(p);
    drop(q);
    cg.m.destroy().unwrap();
    assert!(!dir.exists());
    cg.m.destroy().unwrap();
}

#[test]
fn cgroup_kill_kills_everything_inside() {
    let Some((parent, _cleanup)) = parent("kill") else {
        return;
    };
    let cg = manager(&parent);
    let mut p = Proc::spawn("exec busybox sleep 60");
    cg.m.apply(p.pid()).unwrap();
    p.go();
    let dir = cg.m.paths()[0].1.clone();
    if !dir.join("cgroup.kill").exists() {
        eprintln!("skipped: no cgroup.kill (kernel < 5.14)");
        return;
    }
    std::fs::write(dir.join("cgroup.kill"), "1").unwrap();
    let (status, _) = p.wait();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
}

#[test]
fn missing_controllers_are_reported_with_the_file() {
    let Some((parent, _cleanup)) = parent("noctl") else {
        return;
    };
    let cg = manager(&parent);
    cg.m.apply(0).unwrap();
    let dir = cg.m.paths()[0].1.clone();
    if dir.join("pids.max").exists() {
        eprintln!("skipped: the pids controller is enabled here");
        return;
    }
    let e =
        cg.m.set(&resources(r#"{"pids":{"limit":10}}"#))
            .unwrap_err()
            .to_string();
    assert!(e.contains("pids.max"), "{e}");
    let e =
        cg.m.set(&resources(r#"{"unified":{"memory.high":"1000"}}"#))
            .unwrap_err()
            .to_string();
    assert!(
        e.contains("memory.high") && e.contains("memory controller"),
        "{e}"
    );
}

#[test]
fn device_program_is_enforced_and_replaced() {
    let Some((parent, _cleanup)) = parent("dev") else {
        return;
    };
    let cg = manager(&parent);
    cg.m.apply(0).unwrap();
    cg.m.set(&resources(
        r#"{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}]}"#,
    ))
    .unwrap();
    let script =
        "echo ok > /dev/null || exit 3; busybox head -c 1 /dev/zero > /dev/null && exit 4; exit 0";
    let mut p = Proc::spawn(script);
    cg.m.apply(p.pid()).unwrap();
    p.go();
    let (status, stderr) = p.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("Operation not permitted"), "{stderr}");

    // A second set replaces the program instead of stacking on it: /dev/zero opens again.
    cg.m.set(&resources(r#"{"devices":[{"allow":true,"access":"rwm"}]}"#))
        .unwrap();
    let mut p = Proc::spawn("busybox head -c 1 /dev/zero > /dev/null");
    cg.m.apply(p.pid()).unwrap();
    p.go();
    let (status, stderr) = p.wait();
    assert_eq!(status.code(), Some(0), "{stderr}");
}
