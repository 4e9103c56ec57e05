//! `bench/run commit`: `berth commit` against `podman commit` and `docker commit` (a private
//! dockerd, see dockerd.rs) of a busybox container whose writable layer holds one 100 MB file
//! (the same random bytes for all), side by side in one run; berth and podman with a fresh store
//! per iteration, docker with one daemon whose image and container are removed after each
//! commit. Only the commit is timed. Goal (issue 12): berth at most half of docker's median.
//!
//! Every tool writes the file the same way, from inside the container: `run --network none -v
//! DATA:/data:ro busybox cp /data/big /big`, then commit the exited container, after a `sync`.
//! berth flushes the layer it wrote (fsync, or syncfs for a layer of many files) before it
//! records the image; docker and podman do not flush layer contents.

use crate::cmd::output;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use berth_testkit::Scratch;

use crate::dockerd::{docker, Dockerd};
use crate::podman;
use crate::stats::{print_table, Series};

const ARCHIVE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/images/busybox.oci-archive.tar"
);
const SIZE: usize = 100 << 20;

/// Times `c` after a sync: each tool's commit starts with nothing of the runs before it (its own
/// container's 100 MB, the other tools' stores) still waiting to be written, so a tool that
/// flushes its layer does not also pay for the others' writeback.
fn timed(c: Command, what: &str) -> anyhow::Result<std::time::Duration> {
    output(Command::new("sync"), "sync")?;
    let start = Instant::now();
    output(c, what)?;
    Ok(start.elapsed())
}

/// 100 MB from /dev/urandom (incompressible, like real data).
fn random_file(path: &Path) -> anyhow::Result<()> {
    use std::io::Read;
    let mut buf = vec![0u8; SIZE];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    std::fs::write(path, &buf)?;
    Ok(())
}

pub fn run(runs: Option<usize>) -> anyhow::Result<()> {
    let runs = runs.unwrap_or(5);
    let berth = crate::beside_me("berth")?;
    let data = Scratch::new("bench-commit-data");
    random_file(&data.join("big"))?;
    let volume = format!("{}:/data:ro", data.path().display());
    let write = [
        "run",
        "--network",
        "none",
        "-v",
        &volume,
        "--name",
        "big",
        "busybox",
        "cp",
        "/data/big",
        "/big",
    ];
    let mut b = Series::new("berth");
    let mut p = podman::row(podman::missing());
    // Stores stay until the end: removing 100 MB trees between runs would slow the next one.
    let mut stores: Vec<Scratch> = Vec::new();
    let mut podmans: Vec<podman::Podman> = Vec::new();
    let ddir = Scratch::new("bench-commit-dockerd");
    let mut d = Series::new("docker");
    let dockerd = Dockerd::with_busybox(&berth, ARCHIVE, ddir.path())
        .map_err(|e| d.fail(format!("{e:#}")))
        .ok();
    for i in 0..runs {
        if let Some(dd) = &dockerd {
            if !d.is_unavailable() {
                if let Err(e) = docker_once(dd, &ddir.join("config"), &write, &mut d) {
                    d.fail(format!("{e:#}"));
                }
            }
        }
        let order = crate::stats::berth_first(i);
        for is_berth in order {
            if is_berth {
                let s = Scratch::new("bench-commit");
                let root = s.join("root");
                let cmd = |args: &[&str]| {
                    let mut c = Command::new(&berth);
                    c.arg("--root").arg(&root).args(args);
                    c
                };
                output(cmd(&["load", "-i", ARCHIVE]), "berth load")?;
                output(cmd(&write), "berth run (write 100 MB)")?;
                b.push_duration(timed(
                    cmd(&["commit", "big", "committed:1"]),
                    "berth commit",
                )?);
                // The image must hold the file: a wrong fast commit is no result.
                let v: serde_json::Value = serde_json::from_str(&output(
                    cmd(&["image", "inspect", "committed:1"]),
                    "berth image inspect",
                )?)?;
                let layers = v[0]["RootFS"]["Layers"].as_array().map_or(0, Vec::len);
                anyhow::ensure!(layers == 2, "berth commit made {layers} layers");
                output(cmd(&["rm", "-f", "big"]), "berth rm")?;
                stores.push(s);
            } else if !p.is_unavailable() {
                let mut pm = podman::Podman::new("bench-commit-podman");
                if let Err(e) = podman_once(&mut pm, &write, &mut p) {
                    p.fail(format!("{e:#}"));
                }
                podmans.push(pm);
            }
        }
    }
    drop(podmans);
    drop(stores);
    drop(dockerd);
    print_table(
        "commit a busybox container with a 100 MB written file (fresh store each run)",
        "ms",
        &[b, p, d],
    );
    Ok(())
}

fn docker_once(dd: &Dockerd, config: &Path, write: &[&str], d: &mut Series) -> anyhow::Result<()> {
    let cmd = |args: &[&str]| {
        let mut c = docker(&dd.sock, config);
        c.args(args);
        c
    };
    output(cmd(write), "docker run (write 100 MB)")?;
    d.push_duration(commit_one_layer(
        &cmd,
        "docker",
        &["commit", "big", "committed:1"],
    )?);
    output(cmd(&["rm", "-f", "big"]), "docker rm")?;
    output(cmd(&["rmi", "committed:1"]), "docker rmi")?;
    Ok(())
}

/// Times `commit` (container "big" to committed:1, through `cmd`) and checks the image is
/// busybox's layer plus one.
fn commit_one_layer(
    cmd: &dyn Fn(&[&str]) -> Command,
    tool: &str,
    commit: &[&str],
) -> anyhow::Result<std::time::Duration> {
    let took = timed(cmd(commit), &format!("{tool} commit"))?;
    let layers = output(
        cmd(&[
            "image",
            "inspect",
            "--format",
            "{{len .RootFS.Layers}}",
            "committed:1",
        ]),
        &format!("{tool} image inspect"),
    )?;
    anyhow::ensure!(layers == "2", "{tool} commit made {layers} layers");
    Ok(took)
}

fn podman_once(pm: &mut podman::Podman, write: &[&str], p: &mut Series) -> anyhow::Result<()> {
    let cmd = |args: &[&str]| {
        let mut c = pm.cmd();
        c.args(args);
        c
    };
    output(cmd(&["load", "-q", "-i", ARCHIVE]), "podman load")?;
    output(cmd(write), "podman run (write 100 MB)")?;
    let id = output(
        cmd(&["inspect", "--format", "{{.Id}}", "big"]),
        "podman inspect",
    )?;
    p.push_duration(commit_one_layer(
        &cmd,
        "podman",
        &["commit", "-q", "big", "committed:1"],
    )?);
    pm.track(&id);
    Ok(())
}
