//! `berth serve` for the API tests: a server on a socket in the test's scratch dir, over its
//! own root loaded with the busybox fixture, driven by the docker CLI; stopped, and everything it
//! made (containers, networks) removed on drop, also when a test fails.
#![allow(dead_code)]

use crate::common::{self, berth};
use berth_testkit::{require_busybox, Scratch};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub scratch: Scratch,
    pub root: PathBuf,
    pub sock: PathBuf,
    pub child: Option<Child>,
    extra: Vec<String>,
    env: Vec<(String, PathBuf)>,
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Server {
    pub fn new(name: &str) -> Server {
        Server::with_args(name, &[])
    }

    /// A server with extra `berth serve` arguments (more hosts, --time).
    pub fn with_args(name: &str, extra: &[&str]) -> Server {
        Server::with_env(name, extra, &[])
    }

    /// A server with extra arguments and environment (registry settings for pull and push).
    pub fn with_env(name: &str, extra: &[&str], env: &[(&str, PathBuf)]) -> Server {
        require_busybox();
        let scratch = Scratch::new(name);
        let root = scratch.join("root");
        common::load_fixture(&root, "busybox.oci-archive.tar");
        let sock = scratch.join("docker.sock");
        let mut s = Server {
            scratch,
            root,
            sock,
            child: None,
            extra: extra.iter().map(|a| a.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        };
        s.start();
        s
    }

    pub fn start(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("--root")
            .arg(&self.root)
            .arg("serve")
            .arg("--host")
            .arg(format!("unix://{}", self.sock.display()))
            .args(&self.extra)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost")
            .env_remove("BERTH_ROOT")
            .stdin(Stdio::null())
            .spawn()
            .expect("start berth serve");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.raw("GET /_ping HTTP/1.0\r\n\r\n").is_none() {
            assert!(
                Instant::now() < deadline,
                "berth serve never answered on {}",
                self.sock.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }

    /// One raw HTTP/1.0 exchange; None if nobody listens.
    pub fn raw(&self, req: &str) -> Option<String> {
        let mut s = UnixStream::connect(&self.sock).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        s.write_all(req.as_bytes()).ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).ok()?;
        Some(String::from_utf8_lossy(&out).into_owned())
    }

    pub fn docker_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("docker");
        c.args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", self.scratch.join("docker-config"))
            .env("DOCKER_CLI_HINTS", "false")
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null());
        c
    }

    pub fn docker(&self, args: &[&str]) -> Out {
        let o = self.docker_cmd(args).output().expect("run docker");
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Runs docker and fails the test unless it exits 0.
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.docker(args);
        assert_eq!(
            r.code, 0,
            "docker {args:?} failed: {}{}",
            r.stdout, r.stderr
        );
        r.stdout
    }

    pub fn monitors(&self) -> Vec<i32> {
        common::monitors(&self.root)
    }

    /// The server's open descriptors, less those on the root's SQLite files: the server keeps
    /// a bounded pool of engines (their database connections) between requests.
    pub fn fd_count(&self) -> usize {
        let pid = self.child.as_ref().unwrap().id();
        let root = std::fs::canonicalize(&self.root).unwrap_or(self.root.clone());
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
            .filter(|e| {
                let t = std::fs::read_link(e.path()).unwrap_or_default();
                let t = t.to_string_lossy();
                !(t.starts_with(&*root.to_string_lossy())
                    && [".db", ".db-wal", ".db-shm"].iter().any(|x| t.ends_with(x)))
            })
            .count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        common::remove_all_containers(&self.root);
        remove_all_networks(&self.root);
        let _ = &self.scratch;
    }
}

/// The networks a test made through the API, gone even after a failure: the networks, then
/// any DNS responder, network reaper (with the links it would delete) and nftables table of
/// this root.
fn remove_all_networks(root: &Path) {
    let _ = berth(root, &["network", "prune", "-f"]);
    let Ok(canon) = std::fs::canonicalize(root) else {
        return;
    };
    for (pid, _) in berth_testkit::processes_with(&["__dns", &canon.to_string_lossy()]) {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    berth_testkit::end_network_reapers(root);
}

pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
