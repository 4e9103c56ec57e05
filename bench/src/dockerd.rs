//! A private dockerd (Debian's docker.io) for the benches that compare with docker: its own
//! data-root, exec-root, pidfile and socket in a scratch dir, no bridge and no iptables, stopped
//! (with the containerd it started) when dropped.

use crate::cmd::check;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The docker CLI on PATH against the private daemon.
pub fn docker(sock: &Path, config: &Path) -> Command {
    client("docker", sock, config)
}

/// Debian's docker.io client (20.10): with DOCKER_BUILDKIT=1 its `build` drives dockerd's own
/// BuildKit, offline; the newer CLI on PATH would want the buildx plugin instead.
pub fn debian_docker(sock: &Path, config: &Path) -> Command {
    let mut c = client("/usr/bin/docker", sock, config);
    c.env("DOCKER_BUILDKIT", "1");
    c
}

fn client(bin: &str, sock: &Path, config: &Path) -> Command {
    let mut c = Command::new(bin);
    c.env("DOCKER_HOST", format!("unix://{}", sock.display()))
        .env("DOCKER_CONFIG", config)
        .env("DOCKER_CLI_HINTS", "false");
    c
}

pub fn wait_socket(sock: &Path, child: &mut Child, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::os::unix::net::UnixStream::connect(sock).is_err() {
        if let Some(st) = child.try_wait()? {
            anyhow::bail!("{what} exited ({st}) before listening");
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{what} never listened on {}",
            sock.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

pub fn children_named(parent: u32, name: &str) -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) && comm.trim() == name {
            v.push(pid);
        }
    }
    v
}

/// Stops a server: SIGTERM, then SIGKILL after `grace`.
pub fn stop(child: &mut Child, grace: Duration) {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A private dockerd; None (with the reason) when it cannot run here.
pub struct Dockerd {
    pub child: Child,
    pub sock: PathBuf,
}

impl Dockerd {
    /// A private dockerd in `dir` holding the busybox of `archive` as `localhost/busybox` and
    /// `busybox` (loaded through a docker-archive that `berth` saves).
    pub fn with_busybox(berth: &Path, archive: &str, dir: &Path) -> anyhow::Result<Dockerd> {
        let root = dir.join("berth");
        let saved = dir.join("busybox.docker.tar");
        check(
            Command::new(berth)
                .arg("--root")
                .arg(&root)
                .args(["load", "-i", archive]),
            "berth load",
        )?;
        check(
            Command::new(berth)
                .arg("--root")
                .arg(&root)
                .args(["save", "-o"])
                .arg(&saved)
                .arg("busybox"),
            "berth save",
        )?;
        let dd = Dockerd::start(&dir.join("d"))?;
        check(
            docker(&dd.sock, &dir.join("config"))
                .arg("load")
                .arg("-i")
                .arg(&saved),
            "docker load",
        )?;
        check(
            docker(&dd.sock, &dir.join("config")).args(["tag", "localhost/busybox", "busybox"]),
            "docker tag",
        )?;
        Ok(dd)
    }

    pub fn start(dir: &Path) -> anyhow::Result<Dockerd> {
        anyhow::ensure!(
            Command::new("dockerd")
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
            "dockerd not on PATH (Debian's docker.io)"
        );
        std::fs::create_dir_all(dir)?;
        let sock = dir.join("d.sock");
        let log = std::fs::File::create(dir.join("dockerd.log"))?;
        let mut child = Command::new("dockerd")
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .args([
                "--bridge",
                "none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
                "--userland-proxy=false",
            ])
            .args(["--storage-driver", "overlay2", "--log-level", "error"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        if let Err(e) = wait_socket(&sock, &mut child, "dockerd") {
            stop(&mut child, Duration::from_secs(10));
            return Err(e);
        }
        Ok(Dockerd { child, sock })
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let containerd = children_named(self.child.id(), "containerd");
        stop(&mut self.child, Duration::from_secs(20));
        for pid in containerd {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}
