//! `bench/run pull`: `berth pull` against `podman pull` of the debian fixture image from a
//! docker-registry on loopback (plain HTTP), side by side in one run, each into a fresh empty
//! store every iteration. The registry is filled once by `berth push`.

use crate::cmd::timed;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::Scratch;

use crate::podman;
use crate::stats::{print_table, Series};

const ARCHIVE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/images/debian.oci-archive.tar"
);

struct Registry(Child);

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_registry(dir: &Path) -> anyhow::Result<(Registry, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let cfg = dir.join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.join("data").display()
        ),
    )?;
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("docker-registry (scripts/deps installs it): {e}"))?;
    let reg = Registry(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&addr).is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "docker-registry did not start on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((reg, addr))
}

pub fn run(runs: Option<usize>, berth: &PathBuf) -> anyhow::Result<()> {
    let runs = runs.unwrap_or(5);
    let s = Scratch::new("bench-pull");
    std::fs::create_dir_all(s.join("reg"))?;
    let (_reg, addr) = start_registry(&s.join("reg"))?;
    let conf = s.join("registries.json");
    std::fs::write(&conf, format!("{{\"insecure-registries\": [\"{addr}\"]}}"))?;
    let name = format!("{addr}/bench/debian:bookworm");
    let berth_cmd = |root: &Path| {
        let mut c = Command::new(berth);
        c.arg("--root")
            .arg(root)
            .env("BERTH_REGISTRIES_CONF", &conf)
            .env("BERTH_AUTH_FILE", s.join("auth.json"));
        c
    };
    let src = s.join("src");
    let mut c = berth_cmd(&src);
    c.args(["load", "-q", "-i", ARCHIVE]);
    timed(c, "berth load")?;
    let mut c = berth_cmd(&src);
    c.args(["tag", "localhost/debian:bookworm", &name]);
    timed(c, "berth tag")?;
    let mut c = berth_cmd(&src);
    c.args(["push", "-q", &name]);
    timed(c, "berth push")?;

    let mut b = Series::new("berth");
    let mut p = podman::row(podman::missing());
    let mut stores: Vec<Scratch> = Vec::new();
    let mut podmans: Vec<podman::Podman> = Vec::new();
    for i in 0..runs {
        for is_berth in crate::stats::berth_first(i) {
            if is_berth {
                let st = Scratch::new("bench-pull-berth");
                let mut c = berth_cmd(&st.join("root"));
                c.args(["pull", "-q", &name]);
                b.push_duration(timed(c, "berth pull")?);
                stores.push(st);
            } else if !p.is_unavailable() {
                let pm = podman::Podman::new("bench-pull-podman");
                let mut c = pm.cmd();
                c.args(["pull", "-q", "--tls-verify=false", &name]);
                match timed(c, "podman pull") {
                    Ok(d) => p.push_duration(d),
                    Err(e) => p.fail(format!("{e:#}")),
                }
                podmans.push(pm);
            }
        }
    }
    drop(podmans);
    drop(stores);
    print_table(
        "pull debian:bookworm (one 121 MB layer) from a loopback registry into an empty store",
        "ms",
        &[b, p],
    );
    Ok(())
}
