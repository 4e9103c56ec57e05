//! Guards shared by the real-kernel tests: every cgroup and process is removed on drop,
//! even when an assertion fails first.

#![allow(dead_code)]

use berth_cgroups::Manager;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A cgroup created by a test; kills what is inside and removes the directories on drop.
pub struct Cg {
    pub m: Box<dyn Manager>,
    pub rel: Option<String>,
}

impl Cg {
    /// A fresh absolute cgroup path unique to this test.
    pub fn new(prefix: &str) -> Cg {
        let rel = format!("/berth-cgtest-{}", berth_testkit::unique_id(prefix));
        let m = berth_cgroups::open(Some(std::path::Path::new(&rel)), "unused").unwrap();
        Cg { m, rel: Some(rel) }
    }
}

impl Drop for Cg {
    fn drop(&mut self) {
        for _ in 0..20 {
            let pids = self.m.pids().unwrap_or_default();
            if pids.is_empty() {
                break;
            }
            let _ = self.m.freeze(berth_cgroups::FreezerState::Thawed);
            for p in pids {
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.m.destroy();
        if let Some(rel) = &self.rel {
            berth_testkit::remove_cgroup_everywhere(rel);
        }
        for (_, p) in self.m.paths() {
            let _ = std::fs::remove_dir(p);
        }
    }
}

/// A child that waits for a line on stdin before running its script, so the test can move it
/// into a cgroup first. Killed and reaped on drop.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    pub fn spawn(script: &str) -> Proc {
        berth_testkit::require_busybox();
        let child = Command::new(berth_testkit::BUSYBOX)
            .args(["sh", "-c", &format!("read go; {script}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Proc { child }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn go(&mut self) {
        let mut stdin = self.child.stdin.take().unwrap();
        stdin.write_all(b"go\n").unwrap();
    }

    /// Waits for exit; returns (status, stderr).
    pub fn wait(mut self) -> (std::process::ExitStatus, String) {
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        (self.child.wait().unwrap(), err)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn resources(json: &str) -> oci_spec::runtime::LinuxResources {
    serde_json::from_str(json).unwrap()
}

pub fn path_of(m: &dyn Manager, controller: &str) -> PathBuf {
    m.paths()
        .into_iter()
        .find(|(c, _)| c == controller)
        .map(|(_, p)| p)
        .unwrap()
}

/// Freezes a process that keeps rewriting a counter file in `m`'s cgroup: the file must stop
/// changing while frozen and change again once thawed.
pub fn assert_freeze_stops_progress(m: &dyn Manager) {
    use berth_cgroups::FreezerState;
    use std::time::Duration;
    let scratch = berth_testkit::Scratch::new("cg-freeze");
    let f = scratch.join("n");
    let read = || std::fs::read_to_string(&f).unwrap_or_default();
    let mut p = Proc::spawn(&format!(
        "i=0; while :; do i=$((i+1)); echo $i > {}; done",
        f.display()
    ));
    m.apply(p.pid()).unwrap();
    p.go();
    let mut started = false;
    for _ in 0..400 {
        if !read().is_empty() {
            started = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(started, "the counter never started");
    m.freeze(FreezerState::Frozen).unwrap();
    assert_eq!(m.freezer_state().unwrap(), FreezerState::Frozen);
    let frozen = read();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(read(), frozen, "a frozen process kept running");
    m.freeze(FreezerState::Thawed).unwrap();
    assert_eq!(m.freezer_state().unwrap(), FreezerState::Thawed);
    let mut moved = false;
    for _ in 0..400 {
        if read() != frozen {
            moved = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(moved, "the process did not resume after thaw");
    drop(p);
}
