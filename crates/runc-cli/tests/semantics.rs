//! runc's exact semantics that podman, containerd and CRI-O rely on: error words and exit codes,
//! lifecycle errors, hooks at the spec's points, exec flags, config checks.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::{json, Value};

fn err(o: &std::process::Output) -> String {
    stderr(o)
}

#[test]
fn verbs_on_a_missing_container_fail_with_runcs_words() {
    let c = Ctr::new("missing");
    for verb in [
        &["state"][..],
        &["start"],
        &["kill"],
        &["delete"],
        &["pause"],
        &["resume"],
        &["ps"],
    ] {
        let mut args = verb.to_vec();
        args.push("no-such-ctr");
        let out = c.runc(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", err(&out));
        assert!(
            err(&out).contains("container does not exist"),
            "{args:?}: {}",
            err(&out)
        );
    }
    let out = c.runc(&["exec", "no-such-ctr", "true"]);
    assert_eq!(
        out.status.code(),
        Some(255),
        "exec failures exit 255 as runc's: {}",
        err(&out)
    );
    assert!(
        err(&out).contains("container does not exist"),
        "{}",
        err(&out)
    );
    // A forced delete of what is gone succeeds: cleanup paths rely on it.
    c.ok(&["delete", "--force", "no-such-ctr"]);
    for verb in ["state", "start", "kill", "delete"] {
        let out = c.runc(&[verb, ""]);
        assert_eq!(out.status.code(), Some(1), "{verb}");
        assert!(
            err(&out).contains("container id cannot be empty"),
            "{verb}: {}",
            err(&out)
        );
    }
}

#[test]
fn delete_of_a_running_container_without_force_changes_nothing() {
    let mut c = Ctr::new("del-running");
    let pid = c.start_sh("exec sleep 1000");
    let out = c.runc(&["delete", &c.id]);
    assert_eq!(out.status.code(), Some(1));
    let want = format!(
        "cannot delete container {} that is not stopped: running",
        c.id
    );
    assert!(err(&out).contains(&want), "{}", err(&out));
    assert_eq!(c.status(), "running");
    assert_eq!(c.state()["pid"].as_i64().unwrap() as i32, pid);
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert!(c.cgroup_dir("pids").exists(), "the cgroup must stay");
    c.ok(&["kill", &c.id, "KILL"]);
    wait_for("stopped", || c.status() == "stopped");
    // A stopped container cannot be signalled: runc's words.
    let out = c.runc(&["kill", &c.id, "TERM"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(err(&out).contains("container not running"), "{}", err(&out));
    let out = c.runc(&["kill", "--all", &c.id, "TERM"]);
    assert!(err(&out).contains("container not running"), "{}", err(&out));
    c.ok(&["delete", &c.id]);
    c.assert_no_traces();
}

#[test]
fn create_pid_file_holds_the_init_pid() {
    let mut c = Ctr::new("pidfile");
    c.set_args(&["sleep", "1000"]);
    c.write_spec();
    let pf = c.scratch.join("init.pid");
    c.ok(&[
        "create",
        "--bundle",
        c.bundle.to_str().unwrap(),
        "--pid-file",
        pf.to_str().unwrap(),
        &c.id,
    ]);
    let pid: i64 = fs::read_to_string(&pf).unwrap().trim().parse().unwrap();
    assert_eq!(c.state()["pid"].as_i64().unwrap(), pid);
    assert_eq!(c.status(), "created");
    c.ok(&["delete", "--force", &c.id]);
}

#[test]
fn exec_env_overrides_and_paused_containers() {
    let mut c = Ctr::new("exec-sem");
    c.spec["process"]["env"] = json!(["PATH=/bin:/usr/bin", "FOO=spec", "KEEP=1"]);
    c.start_sh("exec sleep 1000");
    let out = c.runc(&[
        "exec",
        "-e",
        "FOO=cli",
        &c.id,
        "sh",
        "-c",
        "echo $FOO $KEEP; env | grep -c ^FOO=",
    ]);
    assert!(out.status.success(), "{}", err(&out));
    assert_eq!(stdout(&out), "cli 1\n1\n");

    c.ok(&["pause", &c.id]);
    let out = c.runc(&["exec", &c.id, "true"]);
    assert_eq!(out.status.code(), Some(255));
    assert!(
        err(&out).contains("cannot exec in a paused container (use --ignore-paused to override)"),
        "{}",
        err(&out)
    );
    // With --ignore-paused the process joins the frozen container and runs once it is resumed.
    let marker = c.rootfs.join("ran");
    let mut exec = Command::new(bin());
    exec.arg("--root").arg(&c.root).args([
        "exec",
        "--ignore-paused",
        &c.id,
        "sh",
        "-c",
        "echo yes > /ran",
    ]);
    let child = std::thread::spawn(move || run_cmd(&mut exec));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!marker.exists(), "a frozen container runs nothing");
    c.ok(&["resume", &c.id]);
    let out = child.join().unwrap();
    assert!(out.status.success(), "{}", err(&out));
    assert_eq!(fs::read_to_string(&marker).unwrap(), "yes\n");
}

#[test]
fn config_checks_at_create() {
    let mut c = Ctr::new("cfg-checks");
    c.spec["process"]["capabilities"]["bounding"]
        .as_array_mut()
        .unwrap()
        .push(json!("CAP_NOT_A_CAP"));
    c.write_spec();
    let out = c.runc(&["create", "--bundle", c.bundle.to_str().unwrap(), &c.id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err(&out).contains("unknown capability \"CAP_NOT_A_CAP\""),
        "{}",
        err(&out)
    );
    assert_eq!(err(&out).lines().count(), 1, "{}", err(&out));
    c.assert_no_traces();

    let mut c = Ctr::new("cfg-version");
    for v in ["2.0.0", "1.9.0", "banana"] {
        c.spec["ociVersion"] = json!(v);
        c.write_spec();
        let out = c.runc(&["create", "--bundle", c.bundle.to_str().unwrap(), &c.id]);
        assert_eq!(out.status.code(), Some(1), "{v}");
        assert!(
            err(&out).contains(&format!("unsupported ociVersion \"{v}\"")),
            "{}",
            err(&out)
        );
        c.assert_no_traces();
    }
    // Unknown annotation keys are the caller's business.
    c.spec["ociVersion"] = json!("1.0.2-dev");
    c.spec["annotations"] =
        json!({ "org.example.unknown/key": "v", "io.kubernetes.cri.sandbox-id": "x" });
    c.sh_ok("true");
}

#[test]
fn warnings_go_to_the_log_not_the_containers_stderr() {
    let mut c = Ctr::new("warn-log");
    // Ignored on this host: one warned by the runtime, one by the container's init.
    c.spec["linux"]["mountLabel"] = json!("system_u:object_r:container_file_t:s0");
    c.spec["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0");
    c.set_args(&["sh", "-c", "echo out; echo err >&2"]);
    c.write_spec();
    let log = c.scratch.join("runc.log");
    let out = c.runc(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "run",
        "--bundle",
        c.bundle.to_str().unwrap(),
        &c.id,
    ]);
    assert!(out.status.success(), "{}", err(&out));
    assert_eq!(
        err(&out),
        "err\n",
        "the container's stderr holds only its own output"
    );
    let lines: Vec<Value> = fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let warns: Vec<&str> = lines
        .iter()
        .filter(|v| v["level"] == "warning")
        .map(|v| v["msg"].as_str().unwrap())
        .collect();
    assert!(warns.iter().any(|w| w.contains("mountLabel")), "{warns:?}");
    assert!(warns.iter().any(|w| w.contains("selinux")), "{warns:?}");
}

fn hook(name: &str, log: &Path, exit: i32) -> Value {
    json!({ "path": "/bin/sh", "args": ["sh", "-c", format!("s=$(cat); echo \"{name} $s\" >> {}; exit {exit}", log.display())] })
}

#[test]
fn failing_poststart_and_poststop_hooks_warn_and_the_lifecycle_goes_on() {
    let mut c = Ctr::new("hooks-fail");
    let log = c.scratch.join("hooks.log");
    c.spec["hooks"] = json!({
        "prestart": [hook("prestart", &log, 0)],
        "createRuntime": [hook("createRuntime", &log, 0)],
        "poststart": [hook("poststart1", &log, 3), hook("poststart2", &log, 0)],
        "poststop": [hook("poststop1", &log, 4), hook("poststop2", &log, 0)],
        // Inside the container, with the process's environment (the hook's own wins).
        "startContainer": [{ "path": "/bin/sh", "args": ["sh", "-c", "echo \"$FROM_SPEC $OWN\" > /start-env"],
                             "env": ["OWN=hook", "PATH=/bin"] }],
    });
    c.spec["process"]["env"] = json!(["PATH=/bin", "FROM_SPEC=spec", "OWN=spec"]);
    let rlog = c.scratch.join("runc.log");
    let rl = rlog.to_str().unwrap().to_string();
    c.set_args(&["sleep", "1000"]);
    c.write_spec();
    c.ok(&[
        "--log",
        &rl,
        "create",
        "--bundle",
        c.bundle.to_str().unwrap(),
        &c.id,
    ]);
    let out = c.runc(&["--log", &rl, "start", &c.id]);
    assert!(
        out.status.success(),
        "a failing poststart hook must not fail start: {}",
        err(&out)
    );
    assert_eq!(c.status(), "running");
    assert_eq!(
        fs::read_to_string(c.rootfs.join("start-env")).unwrap(),
        "spec hook\n"
    );
    c.ok(&["kill", &c.id, "KILL"]);
    wait_for("stopped", || c.status() == "stopped");
    c.ok(&["--log", &rl, "delete", &c.id]);
    c.assert_no_traces();
    let text = fs::read_to_string(&log).unwrap();
    let names: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        names,
        [
            "prestart",
            "createRuntime",
            "poststart1",
            "poststart2",
            "poststop1",
            "poststop2"
        ],
        "{text}"
    );
    for line in text.lines() {
        let (name, js) = line.split_once(' ').unwrap();
        let st: Value = serde_json::from_str(js).unwrap();
        let want = match name {
            "prestart" | "createRuntime" => "created",
            "poststart1" | "poststart2" => "running",
            _ => "stopped",
        };
        assert_eq!(st["status"], want, "{name}: {st}");
    }
    let rtext = fs::read_to_string(&rlog).unwrap();
    assert!(
        rtext.contains("level=warning")
            && rtext.contains("poststart hook")
            && rtext.contains("poststop hook"),
        "{rtext}"
    );
}

#[test]
fn without_a_mount_namespace_the_container_is_chrooted_as_runc_does() {
    for keep in [&["pid", "ipc", "uts", "network"][..], &[]] {
        let mut c = Ctr::new("no-mntns");
        c.spec["linux"]["namespaces"] = json!(keep
            .iter()
            .map(|t| json!({ "type": t }))
            .collect::<Vec<_>>());
        if keep.is_empty() {
            c.spec.as_object_mut().unwrap().remove("hostname");
        }
        c.spec["mounts"] = json!([]);
        c.spec["linux"]["maskedPaths"] = json!([]);
        c.spec["linux"]["readonlyPaths"] = json!([]);
        fs::write(c.rootfs.join("marker"), "in-rootfs\n").unwrap();
        let out = c.sh_ok("cat /marker; test -e /proc/self || echo no-proc; echo $$");
        let l: Vec<&str> = out.lines().collect();
        assert_eq!(&l[..2], &["in-rootfs", "no-proc"], "{keep:?}: {out}");
        // pid 1 only with a pid namespace.
        assert_eq!(l[2] == "1", !keep.is_empty(), "{keep:?}: {out}");
        c.assert_no_traces();
    }
    // What would need mounts is refused at once, in runc's words where runc has them.
    let mut c = Ctr::new("no-mntns-mounts");
    c.spec["linux"]["namespaces"] = json!([{ "type": "pid" }, { "type": "uts" }]);
    c.write_spec();
    let out = c.runc(&["create", "--bundle", c.bundle.to_str().unwrap(), &c.id]);
    assert!(
        err(&out).contains("unable to restrict sys entries without a private MNT namespace"),
        "{}",
        err(&out)
    );
    c.spec["linux"]["maskedPaths"] = json!([]);
    c.spec["linux"]["readonlyPaths"] = json!([]);
    c.write_spec();
    let out = c.runc(&["create", "--bundle", c.bundle.to_str().unwrap(), &c.id]);
    assert!(
        err(&out).contains("mounts need a private mount namespace"),
        "{}",
        err(&out)
    );
    c.assert_no_traces();
}

#[test]
fn kernel_tcp_is_applied_where_the_kernel_has_it() {
    let mut c = Ctr::new("kernel-tcp");
    c.spec["linux"]["resources"]["memory"] = json!({ "kernelTCP": 16 * 1024 * 1024 });
    c.set_args(&["sleep", "1000"]);
    c.write_spec();
    c.ok(&["create", "--bundle", c.bundle.to_str().unwrap(), &c.id]);
    let f = c
        .cgroup_dir("memory")
        .join("memory.kmem.tcp.limit_in_bytes");
    if fs::metadata(c.cgroup_dir("memory")).is_ok() {
        match fs::read_to_string(&f) {
            Ok(v) => assert_eq!(v.trim(), (16 * 1024 * 1024).to_string()),
            Err(_) => eprintln!(
                "{} missing: this kernel has no kernelTCP limit",
                f.display()
            ),
        }
    } else {
        eprintln!("no v1 memory hierarchy here: kernelTCP is a v1 file");
    }
    c.ok(&["delete", "--force", &c.id]);
}
