//! Black-box harness: each container gets its own scratch dir (bundle, busybox rootfs, --root
//! state dir), a unique id and cgroup, and a guard that force-deletes it, removes its cgroup and
//! unmounts everything even when an assertion fails first.
//!
//! BERTH_RUNC_UNDER_TEST=/usr/sbin/runc runs the same suite against another runtime, to check
//! the tests themselves.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::{busybox_rootfs, remove_cgroup_everywhere, unique_id, Defer, Scratch};
use serde_json::{json, Value};

pub fn bin() -> PathBuf {
    std::env::var_os("BERTH_RUNC_UNDER_TEST")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_berth-runc")))
}

/// Docker's default capability set (CapEff 00000000a80425fb).
pub const DOCKER_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// No test waits longer than this for one runtime command (a hung runtime fails, not blocks).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Ctr {
    pub id: String,
    /// cgroupsPath, relative to every hierarchy root.
    pub cgroup: String,
    pub spec: Value,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub root: PathBuf,
    _cleanup: Defer<Box<dyn FnMut()>>,
    // Dropped after the guard above: unmounts and removes the bundle.
    pub scratch: Scratch,
}

impl Ctr {
    /// A busybox bundle from `berth-runc spec`, made non-interactive, with Docker's capabilities
    /// and its own cgroup.
    pub fn new(name: &str) -> Ctr {
        let scratch = Scratch::new(name);
        // The container's root user may be a mapped uid: let it traverse to the rootfs.
        fs::set_permissions(scratch.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let id = unique_id(name);
        let cgroup = format!("/berth-test/{id}");
        let bundle = scratch.join("bundle");
        let rootfs = bundle.join("rootfs");
        let root = scratch.join("state");
        fs::create_dir_all(&rootfs).unwrap();
        busybox_rootfs(&rootfs).unwrap();
        let out = cmd(&["spec", "--bundle", bundle.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "spec failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut spec: Value =
            serde_json::from_slice(&fs::read(bundle.join("config.json")).unwrap()).unwrap();
        spec["process"]["terminal"] = json!(false);
        spec["process"]["args"] = json!(["true"]);
        spec["root"] = json!({ "path": "rootfs", "readonly": false });
        spec["linux"]["cgroupsPath"] = json!(cgroup);
        let caps = json!(DOCKER_CAPS);
        spec["process"]["capabilities"] = json!({ "bounding": caps, "effective": caps, "permitted": caps, "inheritable": [], "ambient": [] });
        let cleanup = {
            let (id, root, cgroup) = (id.clone(), root.clone(), cgroup.clone());
            Defer(Box::new(move || {
                let mut delete = Command::new(bin());
                delete
                    .arg("--root")
                    .arg(&root)
                    .args(["delete", "--force", &id]);
                let _ = try_run_cmd(&mut delete, Duration::from_secs(20));
                remove_cgroup_everywhere(&cgroup);
            }) as Box<dyn FnMut()>)
        };
        Ctr {
            id,
            cgroup,
            spec,
            bundle,
            rootfs,
            root,
            _cleanup: cleanup,
            scratch,
        }
    }

    pub fn write_spec(&self) {
        fs::write(
            self.bundle.join("config.json"),
            serde_json::to_vec_pretty(&self.spec).unwrap(),
        )
        .unwrap();
    }

    pub fn set_args(&mut self, args: &[&str]) {
        self.spec["process"]["args"] = json!(args);
    }

    /// The runtime binary with this container's --root.
    pub fn runc(&self, args: &[&str]) -> Output {
        run_cmd(Command::new(bin()).arg("--root").arg(&self.root).args(args))
    }

    /// Like `runc`, but the command must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.runc(args);
        assert!(
            out.status.success(),
            "berth-runc {args:?} failed ({:?}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Writes the spec with `sh -c script` as the process and runs it in the foreground.
    pub fn run_sh(&mut self, script: &str) -> Output {
        self.set_args(&["sh", "-c", script]);
        self.write_spec();
        self.runc(&[
            "run",
            "--bundle",
            self.bundle.to_str().unwrap(),
            &self.id.clone(),
        ])
    }

    /// `run_sh` that must exit 0; returns stdout.
    pub fn sh_ok(&mut self, script: &str) -> String {
        let out = self.run_sh(script);
        assert!(
            out.status.success(),
            "container script {script:?} failed ({:?}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// create + start of a long-running `sh -c script`; returns the init's host pid.
    pub fn start_sh(&mut self, script: &str) -> i32 {
        self.set_args(&["sh", "-c", script]);
        self.write_spec();
        self.ok(&[
            "create",
            "--bundle",
            self.bundle.to_str().unwrap(),
            &self.id.clone(),
        ]);
        self.ok(&["start", &self.id.clone()]);
        self.state()["pid"].as_i64().unwrap() as i32
    }

    pub fn state(&self) -> Value {
        serde_json::from_str(&self.ok(&["state", &self.id])).unwrap()
    }

    pub fn status(&self) -> String {
        self.state()["status"].as_str().unwrap().to_string()
    }

    /// `exec` of `sh -c script` in this container; returns the whole output.
    pub fn exec_sh(&self, script: &str) -> Output {
        self.runc(&["exec", &self.id, "sh", "-c", script])
    }

    /// The container's cgroup directory in one v1 hierarchy (e.g. "pids").
    pub fn cgroup_dir(&self, controller: &str) -> PathBuf {
        Path::new("/sys/fs/cgroup")
            .join(controller)
            .join(self.cgroup.trim_start_matches('/'))
    }

    /// Nothing of this container remains: no state entry under --root, no cgroup directory.
    pub fn assert_no_traces(&self) {
        assert!(
            !self.root.join(&self.id).exists(),
            "state of {} left in {}",
            self.id,
            self.root.display()
        );
        for c in [
            "memory", "pids", "cpu", "devices", "freezer", "blkio", "cpuset", "unified",
        ] {
            assert!(
                !self.cgroup_dir(c).exists(),
                "cgroup left behind: {}",
                self.cgroup_dir(c).display()
            );
        }
    }
}

/// The runtime binary without --root (spec, features, ...).
pub fn cmd(args: &[&str]) -> Output {
    run_cmd(Command::new(bin()).args(args))
}

/// Runs a command with stdout/stderr in files, not pipes: a detached container inherits them
/// and would keep a pipe open long after the runtime returned.
pub fn run_cmd(c: &mut Command) -> Output {
    try_run_cmd(c, COMMAND_TIMEOUT)
        .unwrap_or_else(|| panic!("{c:?} did not finish within {COMMAND_TIMEOUT:?}"))
}

/// `run_cmd` that kills the command and returns None after `timeout`: for cleanup guards,
/// which must not panic while a failed test is already unwinding.
pub fn try_run_cmd(c: &mut Command, timeout: Duration) -> Option<Output> {
    let dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = c
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("spawn runtime");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Some(Output {
        status,
        stdout: fs::read(&out_path).unwrap(),
        stderr: fs::read(&err_path).unwrap(),
    })
}

/// Polls `cond` every 20 ms for up to 20 s; a bounded wait for something asynchronous.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A capability set as /proc/<pid>/status prints it.
pub fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in status:\n{status}"))
        .trim()
        .to_string()
}
