//! --preserve-fds N when the caller has fewer than N extra fds open: the runtime's own fds (the
//! state-dir lock, the exec fifo, the sync socket) must not fall into [3, 3+N), where they would
//! leak into the container and, held by the blocked init, deadlock `start` on the state lock.

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;

/// Generous: a healthy run takes well under a second; a leaked lock or fifo hangs forever.
const BOUND: Duration = Duration::from_secs(20);

/// The runtime with this container's --root, started with every fd above stderr closed.
fn bare(c: &Ctr, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.arg("--root").arg(&c.root).args(args);
    unsafe {
        cmd.pre_exec(|| {
            if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

fn bounded(c: &Ctr, args: &[&str]) -> Output {
    let mut cmd = bare(c, args);
    try_run_cmd(&mut cmd, BOUND)
        .unwrap_or_else(|| panic!("berth-runc {args:?} hung (killed after {BOUND:?})"))
}

/// `ls -l` of the container shell's own fds: only stdio may be there (nothing was preserved),
/// and nothing may point into the state dir.
fn assert_only_stdio(listing: &str, state_dir: &Path) {
    let fds: Vec<&str> = listing.lines().filter(|l| l.starts_with('l')).collect();
    assert!(!fds.is_empty(), "no fd listing: {listing}");
    for l in &fds {
        assert!(
            !l.contains(state_dir.to_str().unwrap()),
            "a runtime fd leaked into the container: {l}"
        );
        let name = l
            .split(" -> ")
            .next()
            .unwrap()
            .split_whitespace()
            .last()
            .unwrap();
        assert!(
            ["0", "1", "2"].contains(&name),
            "unexpected fd {name} in the container:\n{listing}"
        );
    }
}

#[test]
fn run_with_more_preserved_fds_than_the_caller_has_finishes_and_leaks_nothing() {
    let mut c = Ctr::new("preserve-none-run");
    // `; true` keeps sh from exec'ing ls, so $$ is the container's process itself.
    c.set_args(&["sh", "-c", "ls -l /proc/$$/fd; true"]);
    c.write_spec();
    let out = bounded(
        &c,
        &[
            "run",
            "--preserve-fds",
            "2",
            "--bundle",
            c.bundle.to_str().unwrap(),
            &c.id,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_only_stdio(&stdout(&out), &c.root);
    c.assert_no_traces();
}

#[test]
fn detached_run_with_more_preserved_fds_than_the_caller_has() {
    let mut c = Ctr::new("preserve-none-detach");
    c.set_args(&["sh", "-c", "exec > /listing; ls -l /proc/$$/fd; true"]);
    c.write_spec();
    // run -d is create + start in one process: start must not block on a lock the init holds.
    let out = bounded(
        &c,
        &[
            "run",
            "--detach",
            "--preserve-fds",
            "2",
            "--bundle",
            c.bundle.to_str().unwrap(),
            &c.id,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for("the container to stop", || c.status() == "stopped");
    assert_only_stdio(
        &std::fs::read_to_string(c.rootfs.join("listing")).unwrap(),
        &c.root,
    );
    let out = bounded(&c, &["delete", &c.id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    c.assert_no_traces();
}

#[test]
fn create_then_start_with_more_preserved_fds_than_the_caller_has() {
    let mut c = Ctr::new("preserve-none-split");
    c.set_args(&["sh", "-c", "exec > /listing; ls -l /proc/$$/fd; true"]);
    c.write_spec();
    let out = bounded(
        &c,
        &[
            "create",
            "--preserve-fds",
            "2",
            "--bundle",
            c.bundle.to_str().unwrap(),
            &c.id,
        ],
    );
    assert!(out.status.success(), "create: {}", stderr(&out));
    // The blocked init holds nothing of the state dir (its lock would deadlock start).
    let pid = c.state()["pid"].as_i64().unwrap();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let target = std::fs::read_link(e.path()).unwrap_or_default();
        let n: i32 = e.file_name().to_str().unwrap().parse().unwrap();
        if target.starts_with(&c.root) {
            assert!(
                n >= 5,
                "the init holds {} at fd {n}, inside the preserved range",
                target.display()
            );
            assert!(
                target.ends_with("exec.fifo"),
                "the init holds {} (fd {n})",
                target.display()
            );
        }
    }
    let out = bounded(&c, &["start", &c.id]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    wait_for("the container to stop", || c.status() == "stopped");
    let listing = std::fs::read_to_string(c.rootfs.join("listing")).unwrap();
    assert_only_stdio(&listing, &c.root);
    let out = bounded(&c, &["delete", &c.id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    c.assert_no_traces();
}

#[test]
fn start_fails_instead_of_waiting_when_the_init_died() {
    let mut c = Ctr::new("start-dead-init");
    c.set_args(&["true"]);
    c.write_spec();
    c.ok(&[
        "create",
        "--bundle",
        c.bundle.to_str().unwrap(),
        &c.id.clone(),
    ]);
    let pid = c.state()["pid"].as_i64().unwrap() as i32;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    wait_for("the init to die", || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z"))
            .unwrap_or(true)
    });
    let out = bounded(&c, &["start", &c.id]);
    assert!(!out.status.success(), "start of a dead init succeeded");
    let out = bounded(&c, &["delete", &c.id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    c.assert_no_traces();
}

#[test]
fn exec_with_more_preserved_fds_than_the_caller_has() {
    let mut c = Ctr::new("preserve-none-exec");
    c.start_sh("sleep 100");
    let out = bounded(
        &c,
        &[
            "exec",
            "--preserve-fds",
            "2",
            &c.id,
            "sh",
            "-c",
            "ls -l /proc/$$/fd; true",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_only_stdio(&stdout(&out), &c.root);
    c.ok(&["delete", "--force", &c.id.clone()]);
    c.assert_no_traces();
}
