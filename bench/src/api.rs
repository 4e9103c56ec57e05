//! `bench/run api`: `docker run --rm busybox true` through `berth serve` against the same command
//! through a private dockerd (Debian's docker.io: its own data-root, exec-root, pidfile and
//! socket in a scratch dir, no iptables), interleaved with alternating order; then the idle
//! resident set of both servers (dockerd beside the containerd it started).
//!
//! Both servers run with the default bridge off (`--bridge none`: a container made without a
//! network gets its own network namespace with loopback only), so they do the same work and
//! the host's firewall is left alone. A second berth server on the same root keeps berth's
//! default bridge, and `berth run --rm` shows what the API adds over the engine itself.
//!
//! Goal (issue 9): berth's median at most a quarter of dockerd's.

use crate::cmd::output;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::Scratch;

use crate::dockerd::{children_named, docker, stop, wait_socket, Dockerd};
use crate::stats::{berth_first, print_table, Series};

const ARCHIVE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/images/busybox.oci-archive.tar"
);
const WARMUP: usize = 3;

fn rss_kb(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The berth server, stopped however the bench ends.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        stop(&mut self.0, Duration::from_secs(5));
    }
}

pub fn run_bench(runs: Option<usize>) -> anyhow::Result<()> {
    let runs = runs.unwrap_or(20);
    let bin = crate::beside_me("berth")?;
    let scratch = Scratch::new("bench-api");
    let root = scratch.join("berth");
    let config = scratch.join("docker-config");
    output(
        Command::new(&bin)
            .arg("--root")
            .arg(&root)
            .args(["load", "-i", ARCHIVE]),
        "berth load",
    )?;
    let archive = scratch.join("busybox.docker.tar");
    output(
        Command::new(&bin)
            .arg("--root")
            .arg(&root)
            .args(["save", "-o"])
            .arg(&archive)
            .arg("busybox"),
        "berth save",
    )?;

    let serve = |sock: &std::path::Path, bridge: &[&str]| -> anyhow::Result<Serve> {
        let mut s = Serve(
            Command::new(&bin)
                .arg("--root")
                .arg(&root)
                .arg("serve")
                .args(bridge)
                .arg("--host")
                .arg(format!("unix://{}", sock.display()))
                .env_remove("BERTH_ROOT")
                .stdin(Stdio::null())
                .spawn()?,
        );
        wait_socket(sock, &mut s.0, "berth serve")?;
        Ok(s)
    };
    let bsock = scratch.join("berth.sock");
    let server = serve(&bsock, &["--bridge", "none"])?;
    let bridged_sock = scratch.join("berth-bridge.sock");
    let bridged = serve(&bridged_sock, &[])?;

    // dockerd's failure to start or load is its row's reason, not the bench's end.
    let ddir = scratch.join("dockerd");
    std::fs::create_dir_all(&ddir)?;
    let mut d = Series::new("dockerd");
    let dockerd = match Dockerd::start(&ddir) {
        Ok(dd) => {
            let load = output(
                docker(&dd.sock, &config)
                    .arg("load")
                    .arg("-i")
                    .arg(&archive),
                "docker load",
            )
            .and_then(|_| {
                output(
                    docker(&dd.sock, &config).args(["tag", "localhost/busybox", "busybox"]),
                    "docker tag",
                )
            });
            if let Err(e) = load {
                d.fail(format!("{e:#}"));
            }
            Some(dd)
        }
        Err(e) => {
            d.fail(format!("{e:#}"));
            None
        }
    };
    let version = dockerd
        .as_ref()
        .and_then(|dd| {
            output(
                docker(&dd.sock, &config).args(["version", "--format", "{{.Server.Version}}"]),
                "docker version",
            )
            .ok()
        })
        .unwrap_or_else(|| "unavailable".into());
    println!("\napi: {runs} interleaved runs each after {WARMUP} warm-up runs; docker CLI {}, dockerd {version}", cli_version());

    let mut b = Series::new("berth serve");
    let mut bb = Series::new("berth serve, bridge");
    // The same container without the API in between: what the server adds on top of the engine.
    let mut cli = Series::new("berth run --network none");
    for i in 0..WARMUP + runs {
        let keep = i >= WARMUP;
        let start = Instant::now();
        match output(
            Command::new(&bin).arg("--root").arg(&root).args([
                "run",
                "--rm",
                "--network",
                "none",
                "busybox",
                "true",
            ]),
            "berth run",
        ) {
            Ok(_) if keep => cli.push_duration(start.elapsed()),
            Ok(_) => {}
            Err(e) => cli.fail(format!("{e:#}")),
        }
        let start = Instant::now();
        match output(
            docker(&bridged_sock, &config).args(["run", "--rm", "busybox", "true"]),
            "docker run",
        ) {
            Ok(_) if keep => bb.push_duration(start.elapsed()),
            Ok(_) => {}
            Err(e) => bb.fail(format!("{e:#}")),
        }
        for berth_turn in berth_first(i) {
            let (series, sock) = if berth_turn {
                (&mut b, Some(bsock.as_path()))
            } else {
                (&mut d, dockerd.as_ref().map(|dd| dd.sock.as_path()))
            };
            let Some(sock) = sock else { continue };
            if series.is_unavailable() {
                continue;
            }
            let start = Instant::now();
            match output(
                docker(sock, &config).args(["run", "--rm", "busybox", "true"]),
                "docker run",
            ) {
                Ok(_) if keep => series.push_duration(start.elapsed()),
                Ok(_) => {}
                Err(e) => series.fail(format!("{e:#}")),
            }
        }
    }
    anyhow::ensure!(
        !b.is_unavailable(),
        "{}",
        b.unavailable.clone().unwrap_or_default()
    );
    print_table(
        "docker run --rm busybox true (docker CLI against each server; both with --bridge none)",
        "ms",
        &[b, d, bb, cli],
    );

    std::thread::sleep(Duration::from_secs(1));
    println!("\n## idle resident set of the servers");
    println!("{:<22} {:>10}", "process", "VmRSS kB");
    let show = |n: &str, v: Option<f64>| {
        println!(
            "{:<22} {:>10}",
            n,
            v.map_or("?".into(), |v| format!("{v:.0}"))
        )
    };
    show("berth serve", rss_kb(server.0.id()));
    if let Some(dd) = &dockerd {
        show("dockerd", rss_kb(dd.child.id()));
        for pid in children_named(dd.child.id(), "containerd") {
            show("containerd (dockerd's)", rss_kb(pid));
        }
    }
    drop(server);
    drop(bridged);
    drop(dockerd);
    Ok(())
}

fn cli_version() -> String {
    Command::new("docker")
        .args(["version", "--format", "{{.Client.Version}}"])
        .env("DOCKER_HOST", "unix:///nonexistent")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
