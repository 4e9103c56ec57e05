//! Containers from the busybox fixture, end to end through the `berth` binary: run and exit
//! codes, detached containers and their logs, stdin and ttys, lifecycle verbs, ps and inspect,
//! exec, the init layer, docker's defaults, limits and mounts, and robustness when processes
//! die. Every test has its own root and removes its containers, monitors, mounts and cgroups.

mod common;

use berth_testkit::{remove_cgroup_everywhere, require_busybox, Scratch};
use common::{berth, berth_cmd, fixture, ok};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A loaded root whose containers, monitors and cgroups go away on drop (even on panic).
struct Env {
    scratch: Scratch,
    root: PathBuf,
}

impl Env {
    fn new(name: &str) -> Env {
        require_busybox();
        let scratch = Scratch::new(name);
        let root = scratch.join("root");
        common::load_fixture(&root, "busybox.oci-archive.tar");
        Env { scratch, root }
    }
    fn ok(&self, args: &[&str]) -> String {
        ok(&self.root, args)
    }
    fn run(&self, args: &[&str]) -> common::Run {
        berth(&self.root, args)
    }
    fn inspect(&self, name: &str) -> serde_json::Value {
        let out = self.ok(&["inspect", name]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v[0].clone()
    }
    fn status(&self, name: &str) -> String {
        self.inspect(name)["State"]["Status"]
            .as_str()
            .unwrap()
            .to_string()
    }
    /// Polls (bounded) until the container's status is `want`.
    fn wait_status(&self, name: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        // The container may not even exist yet (its CLI is still creating it).
        let status = |n: &str| {
            let r = self.run(&["inspect", "--format", "{{.State.Status}}", n]);
            r.stdout.trim().to_string()
        };
        while status(name) != want {
            assert!(Instant::now() < deadline, "{name} never became {want}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    fn ids(&self) -> Vec<String> {
        common::ids(&self.root)
    }
    fn monitors(&self) -> Vec<i32> {
        common::monitors(&self.root)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        common::remove_all_containers(&self.root);
        let _ = &self.scratch;
    }
}

#[test]
fn run_exit_codes() {
    let env = Env::new("exit-codes");
    let r = env.run(&["run", "--rm", "busybox", "echo", "hello"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "hello\n"));
    let r = env.run(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(r.code, 3);
    assert_eq!(r.stdout, "out\n");
    assert_eq!(r.stderr, "err\n");
    let r = env.run(&["run", "--rm", "no-such-image"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("no-such-image"), "{}", r.stderr);
    let r = env.run(&["run", "--rm", "busybox", "/etc/passwd"]);
    assert_eq!(r.code, 126, "{}", r.stderr);
    let r = env.run(&["run", "--rm", "busybox", "no-such-command"]);
    assert_eq!(r.code, 127, "{}", r.stderr);
    assert!(r.stderr.contains("not found"), "{}", r.stderr);
    let r = env.run(&["run", "--memory", "1m", "busybox", "true"]);
    assert_eq!(r.code, 125);
    assert!(env.ids().is_empty(), "--rm left containers behind");
}

#[test]
fn detached_logs_wait_and_exit_code_kept() {
    let env = Env::new("detached");
    let id = env.ok(&[
        "run",
        "-d",
        "--name",
        "d1",
        "busybox",
        "sh",
        "-c",
        "echo one; echo two >&2; sleep 0.2; exit 4",
    ]);
    assert_eq!(id.trim().len(), 64);
    assert_eq!(env.ok(&["wait", "d1"]).trim(), "4");
    let st = env.inspect("d1");
    assert_eq!(st["State"]["Status"], "exited");
    assert_eq!(st["State"]["ExitCode"], 4);
    assert_ne!(st["State"]["FinishedAt"], "0001-01-01T00:00:00Z");
    let r = env.run(&["logs", "d1"]);
    assert_eq!(r.stdout, "one\n");
    assert_eq!(r.stderr, "two\n");
    // docker's json-file lines.
    let log = std::fs::read_to_string(st["LogPath"].as_str().unwrap()).unwrap();
    let first: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(first["stream"], "stdout");
    assert_eq!(first["log"], "one\n");
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        env.run(&["logs", "--tail", "1", "d1"]).stdout.len()
            + env.run(&["logs", "--tail", "1", "d1"]).stderr.len(),
        4
    );
    let t = env.ok(&["logs", "-t", "d1"]);
    assert!(t.starts_with("20") && t.contains(" one"), "{t}");
    let ps = env.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited (4)"), "{ps}");
    // follow returns once the container is gone
    let f = env.run(&["logs", "-f", "d1"]);
    assert_eq!(f.stdout, "one\n");
}

#[test]
fn interactive_stdin() {
    let env = Env::new("stdin");
    let mut child = berth_cmd(&env.root)
        .args([
            "run",
            "-i",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "read a; echo got:$a; cat",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello\nrest\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got:hello\nrest\n");
}

/// A pty pair: (master, slave path).
fn open_pty() -> (OwnedFd, PathBuf) {
    unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(m >= 0);
        assert_eq!(libc::grantpt(m), 0);
        assert_eq!(libc::unlockpt(m), 0);
        let mut buf = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(m, buf.as_mut_ptr(), buf.len()), 0);
        let p = std::ffi::CStr::from_ptr(buf.as_ptr())
            .to_string_lossy()
            .into_owned();
        (OwnedFd::from_raw_fd(m), PathBuf::from(p))
    }
}

#[test]
fn tty_is_a_terminal() {
    let env = Env::new("tty");
    let (master, slave) = open_pty();
    let s = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&slave)
        .unwrap();
    let mut child = berth_cmd(&env.root)
        .args([
            "run",
            "-it",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "test -t 0 && test -t 1 && echo IS-A-TTY; stty size",
        ])
        .stdin(s.try_clone().unwrap())
        .stdout(s.try_clone().unwrap())
        .stderr(s)
        .spawn()
        .unwrap();
    let status = child.wait().unwrap();
    let mut out = Vec::new();
    let mut f = std::fs::File::from(master);
    unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let mut buf = [0u8; 4096];
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&out);
    assert_eq!(status.code(), Some(0), "{text}");
    assert!(text.contains("IS-A-TTY"), "{text}");
}

#[test]
fn rm_leaves_nothing() {
    let env = Env::new("rm-nothing");
    env.ok(&["run", "--rm", "--name", "gone", "busybox", "true"]);
    env.ok(&["run", "-d", "--rm", "--name", "gone2", "busybox", "true"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !env.ids().is_empty() {
        assert!(Instant::now() < deadline, "--rm -d container not removed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let left: Vec<_> = std::fs::read_dir(env.root.join("containers"))
        .unwrap()
        .flatten()
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let mounts: Vec<_> = berth_testkit::mounts_below(&env.root)
        .into_iter()
        .filter(|m| !m.ends_with(common::SEALED_MONITOR))
        .collect();
    assert!(mounts.is_empty(), "{mounts:?}");
    let rt: Vec<_> = std::fs::read_dir(env.root.join("runtime"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(rt.is_empty(), "{rt:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !env.monitors().is_empty() {
        assert!(Instant::now() < deadline, "monitors left");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Source paths of crates only berth's API server and registry client link; they show up in
/// a binary as panic locations and symbol names.
const NOT_IN_MONITOR: [&str; 6] = [
    "crates/api/src",
    "crates/registry/src",
    "/tokio-1.",
    "/hyper-1.",
    "/reqwest-0.",
    "/rustls-0.",
];

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The monitor runs from a read-only bind of berth-monitor (CVE-2019-5736), and berth-monitor
/// links none of the async stack berth carries for `serve` and `pull`: the relocations of that
/// code made every monitor's idle resident set ~440 kB and its peak ~2.7 MB bigger.
#[test]
fn monitor_is_the_small_sealed_binary() {
    use std::os::unix::fs::MetadataExt;
    let monitor_bin = Path::new(env!("CARGO_BIN_EXE_berth-monitor"));
    let small = std::fs::read(monitor_bin).unwrap();
    let big = std::fs::read(env!("CARGO_BIN_EXE_berth")).unwrap();
    for needle in NOT_IN_MONITOR {
        assert!(
            contains(&big, needle),
            "berth lacks {needle}: pick a needle it links"
        );
        assert!(!contains(&small, needle), "berth-monitor links {needle}");
    }

    let env = Env::new("monitor-bin");
    env.ok(&["run", "-d", "--network", "none", "busybox", "sleep", "60"]);
    let pids = env.monitors();
    assert_eq!(pids.len(), 1, "{pids:?}");
    let exe = format!("/proc/{}/exe", pids[0]);
    assert_eq!(
        std::fs::read_link(&exe).unwrap(),
        env.root.join(common::SEALED_MONITOR)
    );
    let (a, b) = (
        std::fs::metadata(&exe).unwrap(),
        std::fs::metadata(monitor_bin).unwrap(),
    );
    assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()), "not berth-monitor");
    // Read-only, so not writable through /proc/PID/exe even once nothing executes it.
    let vfs = nix::sys::statvfs::statvfs(exe.as_str()).unwrap();
    assert!(vfs.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
    let err = std::fs::OpenOptions::new()
        .write(true)
        .open(&exe)
        .expect_err("the monitor's binary opened for writing");
    let code = err.raw_os_error();
    assert!(
        code == Some(libc::EROFS) || code == Some(libc::ETXTBSY),
        "{err}"
    );
}

/// Without berth-monitor next to berth, run fails at once, naming it, and --rm leaves nothing.
#[test]
fn missing_monitor_binary_is_named() {
    let env = Env::new("monitor-missing");
    let dir = env.scratch.join("lone");
    std::fs::create_dir(&dir).unwrap();
    let lone = dir.join("berth");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_berth"), &lone).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_berth"), &lone).unwrap();
    }
    let r: common::Run = std::process::Command::new(&lone)
        .args(["--root", env.root.to_str().unwrap()])
        .args(["run", "--rm", "--network", "none", "busybox", "true"])
        .env_remove("BERTH_ROOT")
        .stdin(Stdio::null())
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 125, "{}", r.stderr);
    let want = format!("{} not found", dir.join("berth-monitor").display());
    assert!(r.stderr.contains(&want), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(env.ids().is_empty(), "--rm left a container");
    assert!(berth_testkit::mounts_below(&env.root).is_empty());
}

#[test]
fn stop_uses_signal_then_kill() {
    let env = Env::new("stop");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "polite",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 7' TERM; while true; do sleep 0.05; done",
    ]);
    env.ok(&["stop", "polite"]);
    assert_eq!(env.inspect("polite")["State"]["ExitCode"], 7);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        "busybox",
        "sh",
        "-c",
        "trap '' TERM; while true; do sleep 0.05; done",
    ]);
    env.ok(&["stop", "-t", "1", "stubborn"]);
    let st = env.inspect("stubborn");
    assert_eq!(st["State"]["ExitCode"], 137);
    assert_eq!(st["State"]["Running"], false);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "usr1",
        "--stop-signal",
        "USR1",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 9' USR1; while true; do sleep 0.05; done",
    ]);
    env.ok(&["stop", "usr1"]);
    assert_eq!(env.inspect("usr1")["State"]["ExitCode"], 9);
    env.ok(&["restart", "usr1"]);
    assert_eq!(env.status("usr1"), "running");
    env.ok(&["stop", "-s", "KILL", "usr1"]);
    assert_eq!(env.inspect("usr1")["State"]["ExitCode"], 137);
    // --init: the command is not pid 1, gets the stop signal forwarded, and its status comes back.
    assert_eq!(
        env.ok(&["run", "--rm", "--init", "busybox", "sh", "-c", "echo $$"]),
        "2\n"
    );
    env.ok(&[
        "run", "-d", "--init", "--name", "inited", "busybox", "sleep", "100",
    ]);
    env.ok(&["stop", "-t", "30", "inited"]);
    assert_eq!(env.inspect("inited")["State"]["ExitCode"], 143);
}

#[test]
fn kill_sends_signals() {
    let env = Env::new("kill");
    // The init ignores signals it has no handler for (pid 1), so the shell traps them.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "k1",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 10' USR1; while true; do sleep 0.05; done",
    ]);
    env.ok(&["kill", "-s", "USR1", "k1"]);
    assert_eq!(env.ok(&["wait", "k1"]).trim(), "10");
    env.ok(&["run", "-d", "--name", "k2", "busybox", "sleep", "100"]);
    env.ok(&["kill", "k2"]);
    assert_eq!(env.ok(&["wait", "k2"]).trim(), "137");
    let r = env.run(&["kill", "k1"]);
    assert_ne!(r.code, 0, "killing a stopped container must fail");
}

#[test]
fn restart_policy_on_failure_counts() {
    let env = Env::new("restart");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo run; exit 1",
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = env.inspect("flaky");
        if st["State"]["Status"] == "exited" && st["RestartCount"] == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{st}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(env.ok(&["logs", "flaky"]), "run\nrun\nrun\n");
    assert_eq!(
        env.inspect("flaky")["HostConfig"]["RestartPolicy"]["MaximumRetryCount"],
        2
    );
}

#[test]
fn create_start_pause_rename() {
    let env = Env::new("lifecycle");
    let id = env
        .ok(&["create", "--name", "c1", "busybox", "sleep", "100"])
        .trim()
        .to_string();
    assert_eq!(env.status("c1"), "created");
    assert!(env.ok(&["ps", "-a"]).contains("Created"));
    assert!(
        env.ok(&["ps"]).lines().count() == 1,
        "created containers are not running"
    );
    env.ok(&["start", "c1"]);
    assert_eq!(env.status("c1"), "running");
    env.ok(&["pause", "c1"]);
    let st = env.inspect("c1");
    assert_eq!(
        (
            st["State"]["Status"].as_str(),
            st["State"]["Paused"].as_bool()
        ),
        (Some("paused"), Some(true))
    );
    assert!(env.ok(&["ps"]).contains("(Paused)"));
    env.ok(&["unpause", "c1"]);
    assert_eq!(env.status("c1"), "running");
    env.ok(&["rename", "c1", "c2"]);
    assert_eq!(env.inspect("c2")["Name"], "/c2");
    assert_eq!(env.inspect(&id[..12])["Id"], id.as_str());
    // No container is named c1 any more ("c1" may still be an id prefix, hence the name).
    let old = env.run(&["inspect", "--format", "{{.Name}}", "c1"]);
    assert!(old.code != 0 || old.stdout != "/c1\n", "{}", old.stdout);
    let r = env.run(&["rm", "c2"]);
    assert_ne!(r.code, 0, "rm of a running container needs -f");
    env.ok(&["rm", "-f", "c2"]);
    assert!(env.ids().is_empty());
    // Names are unique.
    env.ok(&["create", "--name", "dup", "busybox", "true"]);
    let r = env.run(&["create", "--name", "dup", "busybox", "true"]);
    assert_eq!(r.code, 1, "docker create exits 1 on the daemon's conflict");
    assert!(r.stderr.contains("already in use"), "{}", r.stderr);
}

#[test]
fn ps_columns_filters_and_json() {
    let env = Env::new("ps");
    env.ok(&[
        "run", "-d", "--name", "up1", "--label", "tier=web", "busybox", "sleep", "100",
    ]);
    assert_eq!(
        env.run(&["run", "--name", "ex1", "busybox", "sh", "-c", "exit 2"])
            .code,
        2
    );
    let ps = env.ok(&["ps", "-a"]);
    let header = ps.lines().next().unwrap();
    for col in [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert!(ps.contains("Up "), "{ps}");
    assert!(ps.contains("Exited (2)"), "{ps}");
    let running = env.ok(&["ps", "-q"]);
    assert_eq!(running.lines().count(), 1);
    assert_eq!(running.trim().len(), 12);
    assert_eq!(
        env.ok(&[
            "ps",
            "-a",
            "--filter",
            "status=exited",
            "--format",
            "{{.Names}}"
        ])
        .trim(),
        "ex1"
    );
    assert_eq!(
        env.ok(&[
            "ps",
            "-a",
            "--filter",
            "label=tier=web",
            "--format",
            "{{.Names}}"
        ])
        .trim(),
        "up1"
    );
    assert_eq!(
        env.ok(&["ps", "-a", "--filter", "exited=2", "-q"])
            .lines()
            .count(),
        1
    );
    assert_eq!(
        env.ok(&["ps", "-a", "--filter", "name=up", "-q"])
            .lines()
            .count(),
        1
    );
    assert_eq!(
        env.ok(&["ps", "-a", "--filter", "ancestor=busybox", "-q"])
            .lines()
            .count(),
        2
    );
    let json = env.ok(&["ps", "-a", "--format", "json"]);
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert!(rows
        .iter()
        .any(|r| r["State"] == "running" && r["Names"] == "up1" && r["Image"] == "busybox"));
    assert_eq!(env.ok(&["ps", "-l", "-q"]).lines().count(), 1);
}

#[test]
fn inspect_shape_and_graph_driver() {
    let env = Env::new("inspect");
    env.ok(&[
        "run", "-d", "--name", "i1", "-e", "A=1", "busybox", "sleep", "100",
    ]);
    let v = env.inspect("i1");
    for k in [
        "Id",
        "Created",
        "Path",
        "Args",
        "State",
        "Image",
        "ResolvConfPath",
        "HostnamePath",
        "HostsPath",
        "LogPath",
        "Name",
        "RestartCount",
        "Driver",
        "Platform",
        "HostConfig",
        "GraphDriver",
        "Mounts",
        "Config",
        "NetworkSettings",
    ] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    let s = &v["State"];
    assert_eq!(s["Running"], true);
    assert!(s["Pid"].as_i64().unwrap() > 0);
    for k in [
        "Status",
        "Paused",
        "Restarting",
        "OOMKilled",
        "Dead",
        "ExitCode",
        "Error",
        "StartedAt",
        "FinishedAt",
    ] {
        assert!(s.get(k).is_some(), "missing State.{k}");
    }
    assert_eq!(v["Path"], "sleep");
    assert!(v["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "A=1"));
    let gd = &v["GraphDriver"]["Data"];
    for k in ["UpperDir", "WorkDir", "MergedDir"] {
        assert!(Path::new(gd[k].as_str().unwrap()).is_dir(), "{k}");
    }
    for l in gd["LowerDir"].as_str().unwrap().split(':') {
        assert!(Path::new(l).is_dir(), "{l}");
    }
    assert!(Path::new(gd["MergedDir"].as_str().unwrap())
        .join("bin/busybox")
        .exists());
    assert_eq!(
        env.ok(&["inspect", "--format", "{{.State.Status}}", "i1"])
            .trim(),
        "running"
    );
    // Images still resolve through the same command.
    let img = env.ok(&["inspect", "busybox"]);
    assert!(img.contains("RootFS"), "{img}");
}

#[test]
fn exec_joins_the_container() {
    let env = Env::new("exec");
    env.ok(&["run", "-d", "--name", "e1", "busybox", "sleep", "100"]);
    let pid = env.inspect("e1")["State"]["Pid"].as_i64().unwrap();
    let inside = env.ok(&[
        "exec",
        "e1",
        "sh",
        "-c",
        "for n in mnt pid net uts ipc; do readlink /proc/self/ns/$n; done",
    ]);
    let host: String = ["mnt", "pid", "net", "uts", "ipc"]
        .iter()
        .map(|n| {
            format!(
                "{}\n",
                std::fs::read_link(format!("/proc/{pid}/ns/{n}"))
                    .unwrap()
                    .display()
            )
        })
        .collect();
    assert_eq!(inside, host);
    let ps = env.ok(&["exec", "e1", "ps", "-o", "pid,comm"]);
    assert!(ps.lines().any(|l| l.trim() == "1 sleep"), "{ps}");
    assert_eq!(env.run(&["exec", "e1", "sh", "-c", "exit 42"]).code, 42);
    assert_eq!(
        env.run(&["exec", "e1", "no-such"]).code,
        126,
        "docker exec: 126"
    );
    assert_eq!(env.run(&["exec", "e1", "/etc/passwd"]).code, 126);
    assert_eq!(
        env.ok(&[
            "exec",
            "-u",
            "nobody",
            "-w",
            "/tmp",
            "-e",
            "X=y",
            "e1",
            "sh",
            "-c",
            "id -u; pwd; echo $X"
        ]),
        "65534\n/tmp\ny\n"
    );
    let status = env.ok(&[
        "exec",
        "e1",
        "grep",
        "-E",
        "^(CapEff|Seccomp):",
        "/proc/self/status",
    ]);
    assert!(
        status.contains("00000000a80425fb") && status.contains("Seccomp:\t2"),
        "{status}"
    );
    let top = env.ok(&["top", "e1"]);
    assert!(top.contains("sleep 100"), "{top}");
    let stats = env.ok(&["stats", "--no-stream", "e1"]);
    assert!(
        stats.contains("MEM USAGE / LIMIT") && stats.contains("e1"),
        "{stats}"
    );
}

#[test]
fn init_layer_files() {
    let env = Env::new("init-layer");
    let out = env.ok(&["run", "--name", "h1", "--hostname", "box1", "busybox", "sh", "-c",
        "hostname; cat /etc/hostname; grep box1 /etc/hosts; cat /etc/resolv.conf; echo edited >> /etc/hosts; ls -a / | grep dockerenv; readlink /etc/mtab"]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("box1"));
    assert_eq!(lines.next(), Some("box1"));
    assert!(out.contains("\tbox1"), "{out}");
    assert!(
        !out.lines().any(|l| l.starts_with("nameserver 127.")),
        "{out}"
    );
    assert!(
        out.contains(".dockerenv") && out.contains("/proc/mounts"),
        "{out}"
    );
    let v = env.inspect("h1");
    let upper = PathBuf::from(v["GraphDriver"]["Data"]["UpperDir"].as_str().unwrap());
    assert!(
        !upper.join("etc/hosts").exists(),
        "/etc/hosts edits must stay out of the writable layer"
    );
    assert!(std::fs::read_to_string(v["HostsPath"].as_str().unwrap())
        .unwrap()
        .contains("edited"));
    // Default hostname: the first 12 hex digits of the id.
    let id = env
        .ok(&["create", "busybox", "hostname"])
        .trim()
        .to_string();
    env.ok(&["start", &id]);
    env.ok(&["wait", &id]);
    assert_eq!(env.ok(&["logs", &id]).trim(), &id[..12]);
}

#[test]
fn docker_defaults_inside() {
    let env = Env::new("defaults");
    let out = env.ok(&["run", "--rm", "busybox", "sh", "-c",
        "grep -E '^(CapEff|CapBnd|Seccomp|NoNewPrivs):' /proc/self/status; wc -c < /proc/interrupts; df -k /dev/shm | tail -1; cat /proc/sys/kernel/hostname > /proc/sys/kernel/hostname 2>/dev/null || echo ro-sys"]);
    assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(out.contains("NoNewPrivs:\t0"), "{out}");
    assert!(
        out.lines().any(|l| l.trim() == "0"),
        "/proc/kcore must be masked: {out}"
    );
    assert!(out.contains(" 65536 "), "/dev/shm must be 64m: {out}");
    assert!(out.contains("ro-sys"), "{out}");
    let out = env.ok(&[
        "run",
        "--rm",
        "--privileged",
        "busybox",
        "grep",
        "-E",
        "^(CapEff|Seccomp):",
        "/proc/self/status",
    ]);
    assert!(
        out.contains("Seccomp:\t0") && !out.contains("a80425fb"),
        "{out}"
    );
    let out = env.ok(&[
        "run",
        "--rm",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "CHOWN",
        "--security-opt",
        "no-new-privileges",
        "--security-opt",
        "seccomp=unconfined",
        "busybox",
        "grep",
        "-E",
        "^(CapEff|Seccomp|NoNewPrivs):",
        "/proc/self/status",
    ]);
    assert!(
        out.contains("CapEff:\t0000000000000001")
            && out.contains("Seccomp:\t0")
            && out.contains("NoNewPrivs:\t1"),
        "{out}"
    );
    let out = env.ok(&[
        "run",
        "--rm",
        "-u",
        "nobody",
        "busybox",
        "grep",
        "^CapEff:",
        "/proc/self/status",
    ]);
    assert!(out.contains("0000000000000000"), "{out}");
}

#[test]
fn memory_oom_and_pids_limit() {
    let env = Env::new("limits");
    let r = env.run(&[
        "run",
        "--name",
        "oom",
        "--memory",
        "8m",
        "--memory-swap",
        "8m",
        "busybox",
        "sh",
        "-c",
        "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done",
    ]);
    assert_eq!(r.code, 137, "{}", r.stderr);
    assert_eq!(env.inspect("oom")["State"]["OOMKilled"], true);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "p1",
        "--pids-limit",
        "12",
        "--cpus",
        "0.5",
        "--cpu-shares",
        "512",
        "busybox",
        "sleep",
        "100",
    ]);
    let id = env.inspect("p1")["Id"].as_str().unwrap().to_string();
    let read = |p: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{p}"))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    assert_eq!(read(&format!("pids/berth/{id}/pids.max")), "12");
    assert_eq!(read(&format!("cpu/berth/{id}/cpu.cfs_quota_us")), "50000");
    assert_eq!(read(&format!("cpu/berth/{id}/cpu.shares")), "512");
    let out = env.run(&[
        "exec",
        "p1",
        "sh",
        "-c",
        "for i in $(seq 30); do sleep 5 & done 2>&1; echo done",
    ]);
    assert!(
        out.stdout.contains("done") && !out.stderr.is_empty()
            || out.stdout.contains("can't fork")
            || out.stderr.contains("fork"),
        "{} {}",
        out.stdout,
        out.stderr
    );
    let out = env.ok(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=100:200",
        "busybox",
        "sh",
        "-c",
        "ulimit -n; ulimit -Hn",
    ]);
    assert_eq!(out, "100\n200\n");
}

#[test]
fn mounts_and_process_flags() {
    let env = Env::new("mounts");
    let host = env.scratch.join("data");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("in.txt"), "from host").unwrap();
    let bind = format!("{}:/data", host.display());
    env.ok(&[
        "run",
        "--rm",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "cat /data/in.txt > /data/out.txt",
    ]);
    assert_eq!(
        std::fs::read_to_string(host.join("out.txt")).unwrap(),
        "from host"
    );
    let bind_ro = format!("{}:/data:ro", host.display());
    let r = env.run(&["run", "--rm", "-v", &bind_ro, "busybox", "touch", "/data/x"]);
    assert_ne!(r.code, 0);
    let m = format!("type=bind,source={},target=/m,readonly", host.display());
    let r = env.run(&["run", "--rm", "--mount", &m, "busybox", "touch", "/m/x"]);
    assert_ne!(r.code, 0);
    let out = env.ok(&["run", "--rm", "--tmpfs", "/scratch:size=1m", "--read-only", "busybox", "sh", "-c", "touch /scratch/ok && echo tmpfs-ok; touch /nope 2>/dev/null || echo ro-ok; grep /scratch /proc/mounts"]);
    assert!(
        out.contains("tmpfs-ok") && out.contains("ro-ok") && out.contains("tmpfs"),
        "{out}"
    );
    let envf = env.scratch.join("env.list");
    std::fs::write(&envf, "# comment\nFROMFILE=1\n").unwrap();
    let out = env.ok(&[
        "run",
        "--rm",
        "-u",
        "65534:65534",
        "-w",
        "/tmp",
        "-e",
        "FOO=bar",
        "--env-file",
        envf.to_str().unwrap(),
        "--entrypoint",
        "sh",
        "busybox",
        "-c",
        "id -u; id -g; pwd; echo $FOO $FROMFILE",
    ]);
    assert_eq!(out, "65534\n65534\n/tmp\nbar 1\n");
    let out = env.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "ls /sys/class/net; ip -o link show lo | grep -c UP",
    ]);
    assert_eq!(out, "lo\n1\n");
    // The host's own network namespace (counting interfaces raced with other tests' veths).
    let host_ns = std::fs::read_link("/proc/self/ns/net").unwrap();
    let out = env.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "readlink",
        "/proc/self/ns/net",
    ]);
    assert_eq!(out.trim(), host_ns.to_string_lossy(), "{out}");
}

#[test]
fn twenty_runs_at_once() {
    let env = Env::new("parallel");
    let children: Vec<_> = (0..20)
        .map(|i| {
            berth_cmd(&env.root)
                .args(["run", "--rm", "busybox", "sh", "-c", &format!("echo {i}")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let o = c.wait_with_output().unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "run {i}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&o.stdout), format!("{i}\n"));
    }
    assert!(env.ids().is_empty());
}

#[test]
fn killed_cli_and_monitor_leave_a_truthful_state() {
    let env = Env::new("crash");
    // The CLI of an attached run dies: the container keeps running under its monitor.
    let child = berth_cmd(&env.root)
        .args([
            "run",
            "--name",
            "att",
            "busybox",
            "sh",
            "-c",
            "echo hi; sleep 100",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Killed even if an assertion fails first, so it cannot mount anything after cleanup.
    let pid = child.id() as i32;
    let _reap = berth_testkit::Defer(move || unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    });
    env.wait_status("att", "running");
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(env.status("att"), "running");
    // The monitor dies: the container still runs, so ps says running; once it exits, dead.
    env.ok(&["run", "-d", "--name", "orphan", "busybox", "sleep", "100"]);
    let before = env.monitors();
    assert_eq!(before.len(), 2);
    let st: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            env.root
                .join("containers")
                .join(env.inspect("orphan")["Id"].as_str().unwrap())
                .join("state.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mon = st["monitor_pid"].as_i64().unwrap() as i32;
    unsafe { libc::kill(mon, libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(env.status("orphan"), "running");
    let pid = env.inspect("orphan")["State"]["Pid"].as_i64().unwrap() as i32;
    unsafe { libc::kill(pid, libc::SIGKILL) };
    env.wait_status("orphan", "dead");
    assert!(env.ok(&["ps", "-a"]).contains("Dead"));
    env.ok(&["rm", "-f", "orphan", "att"]);
    assert!(env.ids().is_empty());
    let left: Vec<_> = std::fs::read_dir(env.root.join("containers"))
        .unwrap()
        .flatten()
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // A detached container that exits with nobody attached keeps its code and logs.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "lonely",
        "busybox",
        "sh",
        "-c",
        "echo bye; exit 5",
    ]);
    env.wait_status("lonely", "exited");
    assert_eq!(env.inspect("lonely")["State"]["ExitCode"], 5);
    assert_eq!(env.ok(&["logs", "lonely"]), "bye\n");
}

#[test]
fn seed_scenario_commit_sees_writes_not_deletes_nor_hosts() {
    let env = Env::new("seed");
    env.ok(&[
        "run",
        "--name",
        "seed",
        "busybox",
        "sh",
        "-c",
        "echo data > /new.txt; rm /bin/ls; echo '10.1.2.3 extra' >> /etc/hosts",
    ]);
    let layers = |img: &str| {
        let v: serde_json::Value =
            serde_json::from_str(&env.ok(&["image", "inspect", img])).unwrap();
        v[0]["RootFS"]["Layers"].as_array().unwrap().len()
    };
    let before = layers("busybox");
    env.ok(&["commit", "seed", "seeded:1"]);
    assert_eq!(layers("seeded:1"), before + 1);
    let out = env.run(&[
        "run",
        "--rm",
        "seeded:1",
        "sh",
        "-c",
        "cat /new.txt; test -e /bin/ls && echo ls-present; grep -c extra /etc/hosts",
    ]);
    assert_eq!(out.stdout, "data\n0\n", "{}", out.stderr);
}

#[test]
fn attach_prune_and_vfs() {
    let env = Env::new("attach");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "talker",
        "busybox",
        "sh",
        "-c",
        "sleep 0.5; echo later; exit 6",
    ]);
    let r = env.run(&["attach", "--no-stdin", "talker"]);
    assert_eq!((r.code, r.stdout.as_str()), (6, "later\n"));
    env.ok(&["create", "--name", "idle", "busybox", "true"]);
    env.ok(&["run", "-d", "--name", "busy", "busybox", "sleep", "100"]);
    let out = env.ok(&["container", "prune", "-f"]);
    assert!(out.contains("Deleted Containers"), "{out}");
    assert_eq!(
        env.ok(&["ps", "-a", "--format", "{{.Names}}"]).trim(),
        "busy"
    );
    // start -a of a stopped container attaches to its new run.
    env.ok(&["create", "--name", "again", "busybox", "echo", "hi"]);
    let r = env.run(&["start", "-a", "again"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "hi\n"));

    let vfs_root = env.scratch.join("vfs");
    ok(
        &vfs_root,
        &[
            "--storage-driver",
            "vfs",
            "load",
            "-i",
            fixture("busybox.oci-archive.tar").to_str().unwrap(),
        ],
    );
    let _clean = berth_testkit::Defer(|| {
        let ids = berth(&vfs_root, &["ps", "-aq", "--no-trunc"]).stdout;
        for id in ids.lines() {
            let _ = berth(&vfs_root, &["rm", "-f", id]);
            remove_cgroup_everywhere(&format!("berth/{id}"));
        }
    });
    let r = berth(
        &vfs_root,
        &[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "echo vfs > /f; cat /f",
        ],
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, "vfs\n"), "{}", r.stderr);
}

#[test]
fn rm_f_finishes_a_cleanup_that_removed_the_directory_but_not_the_record() {
    let env = Env::new("half-cleaned");
    let id = env.ok(&["create", "busybox", "true"]).trim().to_string();
    // What a cleanup killed between removing the snapshot and deleting the record leaves behind.
    std::fs::remove_dir_all(env.root.join("containers").join(&id)).unwrap();
    env.ok(&["rm", "-f", &id]);
    assert!(env.ids().is_empty());
}

#[test]
fn kill_9_at_random_points_then_rm_f_cleans() {
    let env = Env::new("random-kill");
    for i in 0..12u64 {
        let child = berth_cmd(&env.root)
            .args(["run", "-d", "busybox", "sh", "-c", "echo up; sleep 100"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let _reap = berth_testkit::Defer(move || unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        });
        // Spread the kills over the CLI's whole run (a few ms to a few tens of ms).
        std::thread::sleep(Duration::from_micros(1500 * i * i));
        unsafe { libc::kill(pid, libc::SIGKILL) };
        // Every other round, the monitor dies too.
        if i % 2 == 1 {
            for m in env.monitors() {
                unsafe { libc::kill(m, libc::SIGKILL) };
            }
        }
    }
    let ps = env.run(&["ps", "-a", "--format", "{{.State}}"]);
    assert_eq!(ps.code, 0, "{}", ps.stderr);
    for state in ps.stdout.lines() {
        assert!(
            ["created", "running", "exited", "dead"].contains(&state),
            "{}",
            ps.stdout
        );
    }
    for id in env.ids() {
        env.ok(&["rm", "-f", &id]);
    }
    assert!(env.ids().is_empty());
    let left: Vec<_> = std::fs::read_dir(env.root.join("containers"))
        .unwrap()
        .flatten()
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let mounts: Vec<_> = berth_testkit::mounts_below(&env.root)
        .into_iter()
        .filter(|m| !m.ends_with(common::SEALED_MONITOR))
        .collect();
    assert!(mounts.is_empty(), "{mounts:?}");
    assert!(env.monitors().is_empty());
}
