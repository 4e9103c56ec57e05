//! `bench/run commit`: `berth commit` against `podman commit` of a busybox container whose
//! writable layer holds one 100 MB file (the same random bytes for both), side by side in one
//! run, each tool with a fresh store per iteration. Only the commit is timed.
//!
//! The file goes in without running the container (berth: `cp` into the created container;
//! podman: `podman mount` and a host write, since podman's runtimes cannot raise this sandbox's
//! rlimits): the commit sees the same upper dir either way.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use berth_testkit::Scratch;

use crate::stats::{print_table, Series};

const ARCHIVE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/images/busybox.oci-archive.tar");
const SIZE: usize = 100 << 20;

fn berth_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe.parent().map(|d| d.join("berth")).filter(|p| p.is_file());
    bin.ok_or_else(|| anyhow::anyhow!("berth binary not found beside {}: cargo build --release -p berth-cli", exe.display()))
}

fn podman(dir: &Path) -> Command {
    let mut c = Command::new("podman");
    // podman refuses a runroot longer than 50 characters: short names.
    c.arg("--root").arg(dir.join("s")).arg("--runroot").arg(dir.join("r")).arg("--tmpdir").arg(dir.join("t"));
    c.args(["--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--events-backend", "file"]);
    c
}

fn output(mut c: Command, what: &str) -> anyhow::Result<String> {
    let out = c.stdin(Stdio::null()).stderr(Stdio::piped()).output()?;
    anyhow::ensure!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn timed(c: Command, what: &str) -> anyhow::Result<std::time::Duration> {
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
    let berth = berth_bin()?;
    let have_podman = Command::new("podman").arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    let data = Scratch::new("bench-commit-data");
    let big = data.join("big");
    random_file(&big)?;
    let mut b = Series::new("berth");
    let mut p = Series::new("podman");
    let mut stores: Vec<Scratch> = Vec::new();
    let mut podman_dirs: Vec<PathBuf> = Vec::new();
    for i in 0..runs {
        let order: [bool; 2] = if i % 2 == 0 { [true, false] } else { [false, true] };
        for is_berth in order {
            let s = Scratch::new("bench-commit");
            if is_berth {
                let root = s.join("root");
                let cmd = |args: &[&str]| {
                    let mut c = Command::new(&berth);
                    c.arg("--root").arg(&root).args(args);
                    c
                };
                output(cmd(&["load", "-i", ARCHIVE]), "berth load")?;
                output(cmd(&["create", "--network", "none", "--name", "big", "busybox", "true"]), "berth create")?;
                output(cmd(&["cp", big.to_str().unwrap(), "big:/big"]), "berth cp")?;
                b.push_duration(timed(cmd(&["commit", "big", "committed:1"]), "berth commit")?);
                // The image must hold the file: a wrong fast commit is no result.
                let v: serde_json::Value = serde_json::from_str(&output(cmd(&["image", "inspect", "committed:1"]), "berth image inspect")?)?;
                let layers = v[0]["RootFS"]["Layers"].as_array().map_or(0, Vec::len);
                anyhow::ensure!(layers == 2, "berth commit made {layers} layers");
                output(cmd(&["rm", "-f", "big"]), "berth rm")?;
            } else if have_podman {
                let dir = s.join("p");
                podman_dirs.push(dir.clone());
                let cmd = |args: &[&str]| {
                    let mut c = podman(&dir);
                    c.args(args);
                    c
                };
                output(cmd(&["load", "-q", "-i", ARCHIVE]), "podman load")?;
                output(cmd(&["create", "--network", "none", "--name", "big", "busybox", "true"]), "podman create")?;
                let merged = output(cmd(&["mount", "big"]), "podman mount")?;
                std::fs::copy(&big, Path::new(&merged).join("big"))?;
                output(cmd(&["unmount", "big"]), "podman unmount")?;
                p.push_duration(timed(cmd(&["commit", "-q", "big", "committed:1"]), "podman commit")?);
            }
            stores.push(s);
        }
    }
    for dir in podman_dirs {
        let _ = podman(&dir).args(["system", "reset", "-f"]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
    drop(stores);
    print_table("commit a busybox container with a 100 MB written file (fresh store each run)", "ms", &[b, p]);
    Ok(())
}
