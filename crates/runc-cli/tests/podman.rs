//! podman drives berth-runc exactly as it drives runc (through conmon): run, exec, stop, rm, and
//! the runtime's JSON error log shown to the user. Each test has its own podman storage.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use berth_testkit::{remove_cgroup_everywhere, unique_id, Defer, Scratch};
use common::{bin, run_cmd, stderr, stdout, try_run_cmd};

const BUSYBOX_ARCHIVE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/fixtures/images/busybox.oci-archive.tar"
);
const IMAGE: &str = "localhost/busybox:latest";

/// What scripts/test-deps writes to /etc/containers/containers.conf, per test so the suite does not
/// depend on the host's file: root here cannot raise hard rlimits to podman's defaults.
const CONTAINERS_CONF: &str = r#"[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
"#;

struct Podman {
    base: Vec<String>,
    conf: PathBuf,
    cgroup_parent: String,
    _cleanup: Defer<Box<dyn FnMut()>>,
    _scratch: Scratch,
}

impl Podman {
    /// A podman with its own storage, run dir and cgroup parent, using berth-runc, with busybox loaded.
    fn new(name: &str) -> Podman {
        let scratch = Scratch::new(name);
        let s = |p: &str| scratch.join(p).to_str().unwrap().to_string();
        let runtime: PathBuf = bin();
        let base = vec![
            "--root".into(),
            s("storage"),
            "--runroot".into(),
            s("run"),
            "--tmpdir".into(),
            s("tmp"),
            "--cgroup-manager".into(),
            "cgroupfs".into(),
            "--events-backend".into(),
            "file".into(),
            "--runtime".into(),
            runtime.to_str().unwrap().into(),
        ];
        let conf = scratch.join("containers.conf");
        std::fs::write(&conf, CONTAINERS_CONF).unwrap();
        let cgroup_parent = format!("/berth-test/{}", unique_id(name));
        let cleanup = {
            let (base, cg, conf) = (base.clone(), cgroup_parent.clone(), conf.clone());
            Defer(Box::new(move || {
                let podman = || {
                    let mut c = Command::new("podman");
                    c.env("CONTAINERS_CONF", &conf).args(&base);
                    c
                };
                let _ = try_run_cmd(
                    podman().args(["rm", "-af", "-t", "0"]),
                    Duration::from_secs(30),
                );
                let _ = try_run_cmd(
                    podman().args(["system", "reset", "-f"]),
                    Duration::from_secs(30),
                );
                remove_cgroup_everywhere(&cg);
            }) as Box<dyn FnMut()>)
        };
        let p = Podman {
            base,
            conf,
            cgroup_parent,
            _cleanup: cleanup,
            _scratch: scratch,
        };
        p.ok(&["load", "-i", BUSYBOX_ARCHIVE]);
        p
    }

    fn podman(&self, args: &[&str]) -> Output {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", &self.conf)
            .args(&self.base)
            .args(args);
        // podman missing is a failure of the machine's setup, not a reason to skip.
        assert!(which("podman"), "podman is not installed: run ./setup");
        run_cmd(&mut c)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.podman(args);
        assert!(
            out.status.success(),
            "podman {args:?} failed ({:?}): {}{}",
            out.status,
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    /// `podman run` flags that keep the container off the host's shared network and cgroups.
    fn run_args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec![
            "run",
            "--network",
            "none",
            "--cgroup-parent",
            self.cgroup_parent.as_str(),
        ];
        v.extend_from_slice(extra);
        v
    }
}

fn which(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false)
}

#[test]
fn podman_run_rm_prints_hello() {
    let p = Podman::new("podman-run");
    assert_eq!(
        p.ok(&p.run_args(&["--rm", IMAGE, "echo", "hello"])),
        "hello\n"
    );
    let out = p.podman(&p.run_args(&["--rm", IMAGE, "sh", "-c", "exit 5"]));
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert_eq!(p.ok(&["ps", "-aq"]), "");
}

#[test]
fn podman_detached_exec_stop_rm() {
    let p = Podman::new("podman-exec");
    let name = unique_id("berth-podman");
    p.ok(&p.run_args(&[
        "-d",
        "--name",
        &name,
        "--hostname",
        "podhost",
        IMAGE,
        "sleep",
        "1000",
    ]));
    assert!(
        p.ok(&["inspect", "--format", "{{.OCIRuntime}}", &name])
            .contains("berth-runc")
            || std::env::var_os("BERTH_RUNC_UNDER_TEST").is_some()
    );
    assert_eq!(
        p.ok(&["exec", &name, "sh", "-c", "echo in-exec; hostname"]),
        "in-exec\npodhost\n"
    );
    let out = p.podman(&["exec", &name, "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(p.ok(&["top", &name, "pid", "args"]).contains("sleep 1000"));
    p.ok(&["stop", "-t", "1", &name]);
    assert!(p
        .ok(&[
            "ps",
            "-a",
            "--format",
            "{{.Status}}",
            "--filter",
            &format!("name={name}")
        ])
        .starts_with("Exited"));
    p.ok(&["rm", &name]);
    assert_eq!(p.ok(&["ps", "-aq"]), "");
}

#[test]
fn podman_shows_the_runtime_error() {
    let p = Podman::new("podman-err");
    let out = p.podman(&p.run_args(&["--rm", IMAGE, "/no/such/binary"]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("/no/such/binary"), "{}", stderr(&out));
}
