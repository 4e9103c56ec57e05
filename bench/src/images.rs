//! `bench/run images`: `berth load` against `podman load` of the debian oci-archive, side by
//! side in one run, each into a fresh empty store every iteration.
//!
//! The stores are removed after the last run, not between runs: this machine's ext4 has no
//! journal, and then every inode allocation skips inodes freed in the last ~30 s one by one
//! (`recently_deleted`), so a run right after removing 6675 files measures that cleanup instead.

use crate::cmd::timed;
use std::process::Command;

use berth_testkit::Scratch;

use crate::podman;
use crate::stats::{print_table, Series};

const ARCHIVE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/images/debian.oci-archive.tar"
);

pub fn run(runs: Option<usize>) -> anyhow::Result<()> {
    let runs = runs.unwrap_or(5);
    let berth = crate::beside_me("berth")?;
    // Warm the page cache so the first run is not the only one reading from disk.
    std::io::copy(&mut std::fs::File::open(ARCHIVE)?, &mut std::io::sink())?;
    let mut b = Series::new("berth");
    let mut p = podman::row(podman::missing());
    let mut stores: Vec<Scratch> = Vec::new();
    let mut podmans: Vec<podman::Podman> = Vec::new();
    for i in 0..runs {
        // Alternate who goes first: the machine is noisy and ext4 remembers recent deletions.
        let order = crate::stats::berth_first(i);
        for is_berth in order {
            if is_berth {
                let s = Scratch::new("bench-load");
                let mut c = Command::new(&berth);
                c.arg("--root")
                    .arg(s.join("root"))
                    .args(["load", "-i", ARCHIVE]);
                b.push_duration(timed(c, "berth load")?);
                stores.push(s);
            } else if !p.is_unavailable() {
                let pm = podman::Podman::new("bench-load-podman");
                let mut c = pm.cmd();
                c.args(["load", "-q", "-i", ARCHIVE]);
                match timed(c, "podman load") {
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
        "load debian.oci-archive.tar (121 MB, 6675 entries) into an empty store",
        "ms",
        &[b, p],
    );
    Ok(())
}
