//! The container lifecycle through the CLI as podman/conmon drive it: spec, create, start, state,
//! list, kill, pause/resume, ps, events, update, exec, delete, console socket, hooks, logs.

mod common;

use std::fs;
use std::os::unix::io::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

use common::*;
use serde_json::{json, Value};

#[test]
fn spec_writes_a_config_and_refuses_to_overwrite_it() {
    let s = berth_testkit::Scratch::new("spec");
    let dir = s.path().to_str().unwrap();
    let out = cmd(&["spec", "--bundle", dir]);
    assert!(out.status.success(), "{}", stderr(&out));
    let spec: Value = serde_json::from_slice(&fs::read(s.join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["process"]["args"], json!(["sh"]));
    assert_eq!(spec["root"]["path"], "rootfs");
    assert!(spec["ociVersion"].as_str().unwrap().starts_with("1."));
    let before = fs::read(s.join("config.json")).unwrap();
    let again = cmd(&["spec", "--bundle", dir]);
    assert!(!again.status.success(), "spec overwrote config.json");
    assert!(stderr(&again).contains("config.json"), "{}", stderr(&again));
    assert_eq!(fs::read(s.join("config.json")).unwrap(), before);
}

#[test]
fn features_lists_namespaces_and_hooks() {
    let out = cmd(&["features"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let f: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(f["ociVersionMax"].is_string(), "{f}");
    let ns: Vec<&str> = f["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for n in ["pid", "mount", "network", "ipc", "uts", "user", "cgroup"] {
        assert!(ns.contains(&n), "namespace {n} missing from {ns:?}");
    }
    assert!(
        f["hooks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h == "poststop"),
        "{f}"
    );
}

#[test]
fn run_returns_the_exit_code_and_removes_the_container() {
    let mut c = Ctr::new("run-exit");
    let out = c.run_sh("echo hello; exit 3");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello\n");
    c.assert_no_traces();
    // Killed by a signal: 128 + N. (A pid-1 shell cannot SIGKILL itself, so kill it from outside.)
    c.set_args(&["sh", "-c", "echo up > /up; exec sleep 1000"]);
    c.write_spec();
    let (bin, root, bundle, id) = (bin(), c.root.clone(), c.bundle.clone(), c.id.clone());
    let run = std::thread::spawn(move || {
        run_cmd(
            std::process::Command::new(bin)
                .arg("--root")
                .arg(root)
                .arg("run")
                .arg("--bundle")
                .arg(bundle)
                .arg(id),
        )
    });
    wait_for("the container to start", || c.rootfs.join("up").exists());
    c.ok(&["kill", &c.id, "KILL"]);
    let out = run.join().unwrap();
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    c.assert_no_traces();
}

#[test]
fn run_keep_leaves_a_stopped_container_to_delete() {
    let mut c = Ctr::new("run-keep");
    c.set_args(&["true"]);
    c.write_spec();
    let id = c.id.clone();
    c.ok(&["run", "--keep", "--bundle", c.bundle.to_str().unwrap(), &id]);
    assert_eq!(c.status(), "stopped");
    c.ok(&["delete", &id]);
    c.assert_no_traces();
}

#[test]
fn run_detached_returns_once_started() {
    let mut c = Ctr::new("run-detach");
    c.set_args(&["sh", "-c", "echo up > /up; exec sleep 1000"]);
    c.write_spec();
    let id = c.id.clone();
    let pid_file = c.scratch.join("pid");
    c.ok(&[
        "run",
        "-d",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "--bundle",
        c.bundle.to_str().unwrap(),
        &id,
    ]);
    assert_eq!(c.status(), "running");
    let pid: i32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(c.state()["pid"], pid);
    wait_for("the container's marker", || c.rootfs.join("up").exists());
    c.ok(&["kill", &id, "KILL"]);
    wait_for("stopped", || c.status() == "stopped");
    c.ok(&["delete", &id]);
    c.assert_no_traces();
}

#[test]
fn create_leaves_init_blocked_until_start() {
    let mut c = Ctr::new("create");
    c.set_args(&["sh", "-c", "echo ran > /ran; exec sleep 1000"]);
    c.write_spec();
    let id = c.id.clone();
    let pid_file = c.scratch.join("pid");
    c.ok(&[
        "create",
        "--bundle",
        c.bundle.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
    ]);
    let st = c.state();
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(Path::new(st["bundle"].as_str().unwrap()), c.bundle);
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0);
    assert_eq!(
        fs::read_to_string(&pid_file).unwrap().trim(),
        pid.to_string()
    );
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "init is not alive after create"
    );
    assert!(
        !c.rootfs.join("ran").exists(),
        "the process ran before start"
    );
    // The init is already in its cgroup.
    let procs = fs::read_to_string(c.cgroup_dir("pids").join("cgroup.procs")).unwrap();
    assert!(
        procs.split_whitespace().any(|p| p == pid.to_string()),
        "{procs}"
    );

    c.ok(&["start", &id]);
    wait_for("the process to run", || c.rootfs.join("ran").exists());
    assert_eq!(c.status(), "running");
    assert_eq!(c.state()["pid"], pid);
    c.ok(&["kill", &id, "9"]);
    wait_for("stopped", || c.status() == "stopped");
    c.ok(&["delete", &id]);
    assert!(
        !c.runc(&["state", &id]).status.success(),
        "state still answers after delete"
    );
    c.assert_no_traces();
}

#[test]
fn list_shows_the_container_as_table_json_and_ids() {
    let mut c = Ctr::new("list");
    let pid = c.start_sh("exec sleep 1000");
    let table = c.ok(&["list"]);
    let mut lines = table.lines();
    assert!(lines
        .next()
        .unwrap()
        .split_whitespace()
        .eq(["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]));
    let row: Vec<&str> = lines
        .next()
        .expect("no container row")
        .split_whitespace()
        .collect();
    assert_eq!(
        &row[..4],
        &[
            c.id.as_str(),
            &pid.to_string(),
            "running",
            c.bundle.to_str().unwrap()
        ]
    );
    let json: Value = serde_json::from_str(&c.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(json[0]["id"], c.id.as_str());
    assert_eq!(json[0]["pid"], pid);
    assert_eq!(c.ok(&["ls", "-q"]), format!("{}\n", c.id));
}

#[test]
fn kill_takes_signal_names_and_numbers() {
    let mut c = Ctr::new("kill");
    // As pid 1 the shell only gets the signals it has handlers for.
    c.start_sh(
        "trap 'echo usr1 > /got-usr1' USR1; trap 'echo hup > /got-hup' HUP; trap 'exit 0' TERM; \
                while true; do sleep 0.05; done",
    );
    let id = c.id.clone();
    c.ok(&["kill", &id, "USR1"]);
    wait_for("USR1", || c.rootfs.join("got-usr1").exists());
    c.ok(&["kill", &id, "SIGHUP"]);
    wait_for("HUP", || c.rootfs.join("got-hup").exists());
    let bad = c.runc(&["kill", &id, "NOSUCHSIG"]);
    assert!(!bad.status.success());
    assert_eq!(c.status(), "running");
    c.ok(&["kill", &id]); // SIGTERM by default
    wait_for("stopped after SIGTERM", || c.status() == "stopped");
    c.ok(&["delete", &id]);
    c.assert_no_traces();
}

#[test]
fn kill_all_reaches_every_process() {
    let mut c = Ctr::new("kill-all");
    // Init ignores TERM; its children do not.
    c.start_sh("trap '' TERM; sleep 1000 & sleep 1000 & while true; do sleep 0.05; done");
    let id = c.id.clone();
    wait_for("three processes", || {
        c.ok(&["ps", "--format", "json", &id]).matches(',').count() >= 2
    });
    c.ok(&["kill", "--all", &id, "KILL"]);
    wait_for("stopped", || c.status() == "stopped");
    c.ok(&["delete", &id]);
}

#[test]
fn delete_force_kills_a_running_container_and_forgets_missing_ones() {
    let mut c = Ctr::new("delete-force");
    let pid = c.start_sh("exec sleep 1000");
    let id = c.id.clone();
    assert!(
        !c.runc(&["delete", &id]).status.success(),
        "deleted a running container without --force"
    );
    c.ok(&["delete", "--force", &id]);
    wait_for("init to exit", || {
        fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z"))
            .unwrap_or(true)
    });
    c.assert_no_traces();
    c.ok(&["delete", "-f", &id]);
    assert!(!c.runc(&["delete", &id]).status.success());
}

#[test]
fn pause_and_resume() {
    let mut c = Ctr::new("pause");
    c.start_sh("exec sleep 1000");
    let id = c.id.clone();
    c.ok(&["pause", &id]);
    assert_eq!(c.status(), "paused");
    let freezer = fs::read_to_string(c.cgroup_dir("freezer").join("freezer.state")).unwrap();
    assert_eq!(freezer.trim(), "FROZEN");
    c.ok(&["resume", &id]);
    assert_eq!(c.status(), "running");
    assert_eq!(stdout(&c.exec_sh("echo alive")), "alive\n");
}

#[test]
fn ps_lists_host_pids_as_json_and_table() {
    let mut c = Ctr::new("ps");
    let pid = c.start_sh("sleep 1000 & exec sleep 1001");
    let id = c.id.clone();
    wait_for("two processes", || {
        serde_json::from_str::<Vec<i32>>(&c.ok(&["ps", "--format", "json", &id]))
            .unwrap()
            .len()
            == 2
    });
    let pids: Vec<i32> = serde_json::from_str(&c.ok(&["ps", "-f", "json", &id])).unwrap();
    assert!(pids.contains(&pid), "{pids:?} lacks init {pid}");
    let table = c.ok(&["ps", &id]);
    let mut lines = table.lines();
    assert!(lines.next().unwrap().contains("PID"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(rows
        .iter()
        .any(|r| r.contains("sleep 1001") && r.split_whitespace().any(|f| f == pid.to_string())));
    let custom = c.ok(&["ps", &id, "-o", "pid,comm"]);
    assert!(
        custom
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .eq(["PID", "COMMAND"]),
        "{custom}"
    );
    assert_eq!(custom.lines().count(), 3, "{custom}");
}

#[test]
fn events_stats_prints_one_stats_object() {
    let mut c = Ctr::new("events");
    c.spec["linux"]["resources"]["pids"] = json!({ "limit": 50 });
    c.start_sh("sleep 1000 & exec sleep 1001");
    let id = c.id.clone();
    wait_for("two processes", || {
        c.ok(&["ps", "--format", "json", &id]).matches(',').count() == 1
    });
    let out = c.ok(&["events", "--stats", &id]);
    assert_eq!(out.lines().count(), 1, "{out}");
    let ev: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], id.as_str());
    assert_eq!(ev["data"]["pids"]["current"], 2, "{ev}");
    assert_eq!(ev["data"]["pids"]["limit"], 50, "{ev}");
    assert!(
        ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap() > 0,
        "{ev}"
    );
}

#[test]
fn update_raises_the_pids_limit_and_sets_memory_from_stdin_json() {
    let mut c = Ctr::new("update");
    c.spec["linux"]["resources"]["pids"] = json!({ "limit": 2 });
    c.start_sh("exec sleep 1000");
    let id = c.id.clone();
    // Init plus exec's shell make two: a third process cannot be forked.
    let denied = c.exec_sh("sleep 0; echo forked");
    assert!(
        !stdout(&denied).contains("forked"),
        "forked beyond pids.max=2"
    );
    c.ok(&["update", "--pids-limit", "20", &id]);
    assert_eq!(
        fs::read_to_string(c.cgroup_dir("pids").join("pids.max"))
            .unwrap()
            .trim(),
        "20"
    );
    assert_eq!(stdout(&c.exec_sh("sleep 0; echo forked")), "forked\n");

    let res = c.scratch.join("res.json");
    fs::write(&res, r#"{"memory": {"limit": 67108864}}"#).unwrap();
    c.ok(&["update", "-r", res.to_str().unwrap(), &id]);
    let limit = fs::read_to_string(c.cgroup_dir("memory").join("memory.limit_in_bytes")).unwrap();
    assert_eq!(limit.trim(), "67108864");
    c.ok(&["update", "--memory", "32m", "--cpu-share", "512", &id]);
    let limit = fs::read_to_string(c.cgroup_dir("memory").join("memory.limit_in_bytes")).unwrap();
    assert_eq!(limit.trim(), (32 << 20).to_string());
    assert_eq!(
        fs::read_to_string(c.cgroup_dir("cpu").join("cpu.shares"))
            .unwrap()
            .trim(),
        "512"
    );
}

#[test]
fn update_reads_resources_from_stdin() {
    let mut c = Ctr::new("update-stdin");
    c.start_sh("exec sleep 1000");
    let mut child = std::process::Command::new(bin())
        .arg("--root")
        .arg(&c.root)
        .args(["update", "-r", "-", &c.id])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"pids": {"limit": 33}}"#)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(
        fs::read_to_string(c.cgroup_dir("pids").join("pids.max"))
            .unwrap()
            .trim(),
        "33"
    );
}

fn ns_links(pid: &str) -> Vec<String> {
    ["mnt", "pid", "net", "ipc", "uts", "cgroup"]
        .iter()
        .map(|n| {
            fs::read_link(format!("/proc/{pid}/ns/{n}"))
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

#[test]
fn exec_joins_the_namespaces_and_returns_the_exit_code() {
    let mut c = Ctr::new("exec");
    c.spec["hostname"] = json!("exec-host");
    let ns = c.spec["linux"]["namespaces"].as_array_mut().unwrap();
    if !ns.iter().any(|n| n["type"] == "cgroup") {
        ns.push(json!({ "type": "cgroup" }));
    }
    let pid = c.start_sh("exec sleep 1000");
    let id = c.id.clone();
    let init_ns = ns_links(&pid.to_string());
    // The exec'd process reads its own namespaces from its /proc/self (the container's proc).
    let out = c.exec_sh("for n in mnt pid net ipc uts cgroup; do readlink /proc/self/ns/$n; done; hostname; ps -o pid,comm");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..6],
        init_ns.iter().map(String::as_str).collect::<Vec<_>>()[..],
        "namespaces differ"
    );
    assert_eq!(lines[6], "exec-host");
    assert!(
        lines
            .iter()
            .any(|l| l.split_whitespace().eq(["1", "sleep"])),
        "init not pid 1 in exec's view: {text}"
    );
    assert_eq!(c.exec_sh("exit 7").status.code(), Some(7));

    let out = c.runc(&[
        "exec",
        "-e",
        "FOO=bar",
        "--cwd",
        "/tmp",
        "-u",
        "1000:1000",
        "-g",
        "100",
        &id,
        "sh",
        "-c",
        "echo $FOO; pwd; id -u; id -g; id -G; grep CapEff /proc/self/status",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let l: Vec<&str> = text.lines().collect();
    assert_eq!(&l[..4], &["bar", "/tmp", "1000", "1000"], "{text}");
    assert!(l[4].split_whitespace().any(|g| g == "100"), "{text}");
    assert_eq!(
        l[5].split_whitespace().nth(1),
        Some("0000000000000000"),
        "non-root exec kept capabilities"
    );

    let process = json!({ "args": ["sh", "-c", "echo from-process-json; exit 4"], "cwd": "/", "env": ["PATH=/bin"],
                          "user": { "uid": 0, "gid": 0 }, "terminal": false });
    let pfile = c.scratch.join("process.json");
    fs::write(&pfile, process.to_string()).unwrap();
    let out = c.runc(&["exec", "--process", pfile.to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(stdout(&out), "from-process-json\n");

    let pid_file = c.scratch.join("exec.pid");
    c.ok(&[
        "exec",
        "-d",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
        "sh",
        "-c",
        "echo detached > /detached; sleep 1000",
    ]);
    let epid = fs::read_to_string(&pid_file).unwrap().trim().to_string();
    assert_eq!(ns_links(&epid), init_ns);
    wait_for("the detached exec", || c.rootfs.join("detached").exists());
    let pids: Vec<i32> = serde_json::from_str(&c.ok(&["ps", "-f", "json", &id])).unwrap();
    assert!(pids.contains(&epid.parse().unwrap()), "{pids:?}");
}

#[test]
fn exec_cap_adds_a_capability() {
    let mut c = Ctr::new("exec-cap");
    c.start_sh("exec sleep 1000");
    let out = c.runc(&[
        "exec",
        "--cap",
        "CAP_SYS_ADMIN",
        &c.id,
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let eff = u64::from_str_radix(stdout(&out).split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(eff, 0xa80425fb | (1 << 21), "CAP_SYS_ADMIN not added");
}

fn recv_fd(listener: &UnixListener) -> OwnedFd {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let (conn, _) = listener.accept().unwrap();
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::unix::io::RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .unwrap();
    for cmsg in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            return unsafe { OwnedFd::from_raw_fd(fds[0]) };
        }
    }
    panic!("no fd received on the console socket");
}

/// Reads the pty master until every one of `words` has been seen.
fn read_pty_until(master: OwnedFd, words: &[&str]) {
    use std::io::Read;
    let mut f = fs::File::from(master);
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    while !words.iter().all(|w| seen.contains(w)) {
        let n = f.read(&mut buf).expect("read the pty master");
        assert!(n > 0, "pty closed before {words:?}: {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

#[test]
fn console_socket_receives_the_pty_master() {
    let mut c = Ctr::new("console");
    c.spec["process"]["terminal"] = json!(true);
    c.set_args(&[
        "sh",
        "-c",
        "[ -t 0 ] && [ -t 1 ] && echo is-a-tty; tty; exec sleep 1000",
    ]);
    c.write_spec();
    let sock = c.scratch.join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let receiver = std::thread::spawn(move || recv_fd(&listener));
    let id = c.id.clone();
    c.ok(&[
        "create",
        "--console-socket",
        sock.to_str().unwrap(),
        "--bundle",
        c.bundle.to_str().unwrap(),
        &id,
    ]);
    let master = receiver.join().unwrap();
    // The fd is a pty master: TIOCGPTN answers with the slave's number.
    let mut n: libc::c_uint = 0;
    assert_eq!(
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) },
        0,
        "not a pty master"
    );
    c.ok(&["start", &id]);
    read_pty_until(master, &["is-a-tty", "/dev/pts/"]);
}

#[test]
fn exec_tty_sends_its_pty_to_the_console_socket() {
    let mut c = Ctr::new("exec-console");
    c.start_sh("exec sleep 1000");
    let sock = c.scratch.join("exec-console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let receiver = std::thread::spawn(move || recv_fd(&listener));
    let id = c.id.clone();
    let pid_file = c.scratch.join("exec.pid");
    c.ok(&[
        "exec",
        "-t",
        "-d",
        "--console-socket",
        sock.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
        "sh",
        "-c",
        "[ -t 0 ] && echo exec-on-a-tty; tty; sleep 1000",
    ]);
    read_pty_until(receiver.join().unwrap(), &["exec-on-a-tty", "/dev/pts/"]);
    assert!(
        fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse::<i32>()
            .unwrap()
            > 0
    );
}

#[test]
fn hooks_run_in_order_with_the_state_on_stdin() {
    let mut c = Ctr::new("hooks");
    let log_host = c.rootfs.join("hooks.log");
    let hook = |name: &str, log: &Path| json!({ "path": "/bin/sh", "args": ["sh", "-c", format!("s=$(cat); echo \"{name} $s\" >> {}", log.display())] });
    // startContainer runs inside the container, after pivot_root: it sees the rootfs as /.
    c.spec["hooks"] = json!({
        "prestart": [hook("prestart", &log_host)],
        "createRuntime": [hook("createRuntime", &log_host)],
        "createContainer": [hook("createContainer", &log_host)],
        "startContainer": [hook("startContainer", Path::new("/hooks.log"))],
        "poststart": [hook("poststart", &log_host)],
        "poststop": [hook("poststop", &c.scratch.join("poststop.log"))],
    });
    let id = c.id.clone();
    c.set_args(&["sh", "-c", "echo process >> /hooks.log; exec sleep 1000"]);
    c.write_spec();
    c.ok(&["create", "--bundle", c.bundle.to_str().unwrap(), &id]);
    let pid = c.state()["pid"].as_i64().unwrap();
    c.ok(&["start", &id]);
    wait_for("poststart and the process", || {
        fs::read_to_string(&log_host)
            .map(|s| s.contains("poststart") && s.contains("process"))
            .unwrap_or(false)
    });
    c.ok(&["kill", &id, "KILL"]);
    wait_for("stopped", || c.status() == "stopped");
    c.ok(&["delete", &id]);
    let log = fs::read_to_string(&log_host).unwrap()
        + &fs::read_to_string(c.scratch.join("poststop.log")).unwrap();
    let names: Vec<&str> = log
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .filter(|n| *n != "process")
        .collect();
    assert_eq!(
        names,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ],
        "{log}"
    );
    for line in log.lines().filter(|l| !l.starts_with("process")) {
        let (name, json) = line.split_once(' ').unwrap();
        let st: Value = serde_json::from_str(json)
            .unwrap_or_else(|e| panic!("{name} got no state JSON ({e}): {json}"));
        assert_eq!(st["id"], id.as_str(), "{name}: {st}");
        assert_eq!(
            Path::new(st["bundle"].as_str().unwrap()),
            c.bundle,
            "{name}: {st}"
        );
        // Runtime-namespace hooks see the host pid; runc reports 1 to the in-container ones.
        if ["prestart", "createRuntime", "poststart"].contains(&name) {
            assert_eq!(st["pid"], pid, "{name}: {st}");
        }
        let want: &[&str] = match name {
            // The spec's "created" starts after lifecycle step 2, before these hooks; runc says creating.
            "prestart" | "createRuntime" | "createContainer" => &["creating", "created"],
            "startContainer" => &["created"],
            "poststart" => &["created", "running"],
            _ => &["stopped"],
        };
        assert!(
            want.contains(&st["status"].as_str().unwrap()),
            "{name}: {st}"
        );
    }
    c.assert_no_traces();
}

#[test]
fn errors_are_one_line_on_stderr_and_json_in_the_log() {
    let s = berth_testkit::Scratch::new("log");
    let log = s.join("runc.log");
    let out = run_cmd(std::process::Command::new(bin()).args([
        "--root",
        s.join("state").to_str().unwrap(),
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "state",
        "no-such-container",
    ]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no-such-container"), "{err}");
    let last = fs::read_to_string(&log)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string();
    let v: Value = serde_json::from_str(&last).unwrap();
    assert_eq!(v["level"], "error");
    assert!(
        v["msg"].as_str().unwrap().contains("no-such-container"),
        "{v}"
    );
    assert!(
        v["time"].as_str().unwrap().ends_with('Z') || v["time"].as_str().unwrap().contains('+'),
        "{v}"
    );
}

#[test]
fn the_systemd_cgroup_driver_is_refused_clearly() {
    let c = Ctr::new("systemd");
    c.write_spec();
    let out = run_cmd(
        std::process::Command::new(bin())
            .arg("--root")
            .arg(&c.root)
            .args([
                "--systemd-cgroup",
                "create",
                "--bundle",
                c.bundle.to_str().unwrap(),
                &c.id,
            ]),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("systemd"), "{}", stderr(&out));
    c.assert_no_traces();
    // The other global flags runc callers pass are accepted (the process is `true`).
    let out = run_cmd(
        std::process::Command::new(bin())
            .arg("--root")
            .arg(&c.root)
            .args([
                "--rootless",
                "false",
                "--debug",
                "run",
                "--bundle",
                c.bundle.to_str().unwrap(),
                &c.id,
            ]),
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn events_streams_stats_until_the_container_stops() {
    let mut c = Ctr::new("events-stream");
    c.start_sh("exec sleep 1000");
    let out_path = c.scratch.join("events.out");
    let child = std::process::Command::new(bin())
        .arg("--root")
        .arg(&c.root)
        .args(["events", "--interval", "50ms", &c.id])
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut events = KillOnDrop(child);
    wait_for("three stats lines", || {
        fs::read_to_string(&out_path).unwrap().lines().count() >= 3
    });
    c.ok(&["kill", &c.id, "KILL"]);
    let mut status = None;
    wait_for("events to end with the container", || {
        status = events.0.try_wait().unwrap();
        status.is_some()
    });
    assert!(status.unwrap().success());
    let text = fs::read_to_string(&out_path).unwrap();
    for l in text.lines() {
        let e: Value = serde_json::from_str(l).unwrap();
        assert!(e["type"] == "stats" && e["id"] == c.id.as_str(), "{l}");
    }
}

#[test]
fn preserve_fds_passes_fd_3_on() {
    use std::os::unix::process::CommandExt;
    let mut c = Ctr::new("preserve-fds");
    c.set_args(&[
        "sh",
        "-c",
        "echo through-fd-3 >&3; ls /proc/self/fd | wc -l",
    ]);
    c.write_spec();
    let passed = c.scratch.join("fd3.txt");
    let file = fs::File::create(&passed).unwrap();
    let raw = file.as_raw_fd();
    let mut cmd = std::process::Command::new(bin());
    cmd.arg("--root").arg(&c.root).args([
        "run",
        "--preserve-fds",
        "1",
        "--bundle",
        c.bundle.to_str().unwrap(),
        &c.id,
    ]);
    unsafe {
        // dup2 onto itself would keep O_CLOEXEC: clear the flag when the file already is fd 3.
        cmd.pre_exec(move || {
            let r = if raw == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(raw, 3)
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = run_cmd(&mut cmd);
    drop(file);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(&passed).unwrap(), "through-fd-3\n");
    // 0, 1, 2, 3 and ls's own directory fd.
    assert_eq!(stdout(&out).trim(), "5");
}

#[test]
fn run_with_a_terminal_proxies_its_output() {
    let mut c = Ctr::new("run-tty");
    c.spec["process"]["terminal"] = json!(true);
    let out = c.run_sh("[ -t 0 ] && [ -t 1 ] && echo on-a-tty; exit 4");
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stdout(&out).contains("on-a-tty"), "{:?}", stdout(&out));
    c.assert_no_traces();
}

#[test]
fn text_log_and_debug_lines() {
    let s = berth_testkit::Scratch::new("log-text");
    let log = s.join("runc.log");
    let out = run_cmd(
        std::process::Command::new(bin())
            .arg("--root")
            .arg(s.join("state"))
            .arg("--log")
            .arg(&log)
            .args(["--debug", "kill", "missing-one"]),
    );
    assert_eq!(out.status.code(), Some(1));
    let text = fs::read_to_string(&log).unwrap();
    let last = text.lines().last().unwrap();
    assert!(
        last.starts_with("time=\"") && last.contains(" level=error msg=\""),
        "{text}"
    );
    assert!(last.contains("missing-one"), "{text}");
    assert!(
        text.lines().any(|l| l.contains("level=debug")),
        "--debug wrote nothing: {text}"
    );
}

#[test]
fn delete_of_a_created_container_needs_no_force() {
    let mut c = Ctr::new("delete-created");
    c.set_args(&["sh", "-c", "echo ran > /ran"]);
    c.write_spec();
    let id = c.id.clone();
    c.ok(&["create", "--bundle", c.bundle.to_str().unwrap(), &id]);
    let pid = c.state()["pid"].as_i64().unwrap();
    c.ok(&["delete", &id]);
    assert!(
        !c.rootfs.join("ran").exists(),
        "the process ran although never started"
    );
    wait_for("the init to be gone", || {
        fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z"))
            .unwrap_or(true)
    });
    c.assert_no_traces();
}
