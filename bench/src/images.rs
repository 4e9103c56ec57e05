//! `bench/run images`: `berth load` against `podman load` of the debian oci-archive, side by
//! side in one run, each into a fresh empty store every iteration.
//!
//! The stores are removed after the last run, not between runs: this machine's ext4 has no
//! journal, and then every inode allocation skips inodes freed in the last ~30 s one by one
//! (`recently_deleted`), so a run right after removing 6675 files measures that cleanup instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use berth_testkit::Scratch;

use crate::stats::{print_table, Series};

const ARCHIVE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/images/debian.oci-archive.tar");

fn berth_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe.parent().map(|d| d.join("berth")).filter(|p| p.is_file());
    bin.ok_or_else(|| {
        anyhow::anyhow!(
            "berth binary not found beside {}: cargo build --release -p berth-cli",
            exe.display()
        )
    })
}

fn podman(dir: &Path) -> Command {
    let mut c = Command::new("podman");
    // podman refuses a runroot longer than 50 characters: short names.
    c.arg("--root")
        .arg(dir.join("s"))
        .arg("--runroot")
        .arg(dir.join("r"))
        .arg("--tmpdir")
        .arg(dir.join("t"));
    c.args([
        "--storage-driver",
        "overlay",
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "file",
    ]);
    c
}

fn timed(mut c: Command, what: &str) -> anyhow::Result<std::time::Duration> {
    let start = Instant::now();
    let out = c.stdout(Stdio::null()).stderr(Stdio::piped()).output()?;
    let d = start.elapsed();
    anyhow::ensure!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(d)
}

pub fn run(runs: Option<usize>) -> anyhow::Result<()> {
    let runs = runs.unwrap_or(5);
    let berth = berth_bin()?;
    let have_podman = Command::new("podman")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    // Warm the page cache so the first run is not the only one reading from disk.
    std::io::copy(&mut std::fs::File::open(ARCHIVE)?, &mut std::io::sink())?;
    let mut b = Series::new("berth");
    let mut p = Series::new("podman");
    let mut stores: Vec<Scratch> = Vec::new();
    let mut podman_dirs: Vec<PathBuf> = Vec::new();
    for i in 0..runs {
        // Alternate who goes first: the machine is noisy and ext4 remembers recent deletions.
        let order: [bool; 2] = if i % 2 == 0 { [true, false] } else { [false, true] };
        for is_berth in order {
            let s = Scratch::new("bench-load");
            if is_berth {
                let mut c = Command::new(&berth);
                c.arg("--root").arg(s.join("root")).args(["load", "-i", ARCHIVE]);
                b.push_duration(timed(c, "berth load")?);
            } else if have_podman {
                let dir = s.join("p");
                let mut c = podman(&dir);
                c.args(["load", "-q", "-i", ARCHIVE]);
                let d = timed(c, "podman load");
                podman_dirs.push(dir);
                p.push_duration(d?);
            }
            stores.push(s);
        }
    }
    for dir in podman_dirs {
        let _ = podman(&dir)
            .args(["system", "reset", "-f"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    drop(stores);
    print_table(
        "load debian.oci-archive.tar (121 MB, 6675 entries) into an empty store",
        "ms",
        &[b, p],
    );
    Ok(())
}
