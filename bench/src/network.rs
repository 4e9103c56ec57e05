//! `bench/run network`: what the default network adds to `run --rm busybox true` over
//! `--network none`, for berth (the bridge: pinned netns, veth, lease, nftables, teardown) and
//! for podman (netavark), all four interleaved in rotating order in one run so every series
//! sees the same machine load. Goal (issue 7): berth's added cost at most ¼ of podman's.

use crate::cmd::check;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use berth_testkit::Scratch;

use crate::podman;
use crate::stats::{print_table, Series};

const ARCHIVE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/images/busybox.oci-archive.tar"
);
const WARMUP: usize = 3;

fn sample(s: &mut Series, keep: bool, mut c: Command, what: &str) {
    if s.is_unavailable() {
        return;
    }
    let t = Instant::now();
    match check(&mut c, what) {
        Ok(()) if keep => s.push_duration(t.elapsed()),
        Ok(()) => {}
        Err(e) => s.fail(format!("{e:#}")),
    }
}

pub fn run(runs: Option<usize>) -> anyhow::Result<()> {
    let runs = runs.unwrap_or(20);
    let bin = crate::beside_me("berth")?;
    let scratch = Scratch::new("bench-network");
    let root = scratch.join("berth");
    let berth = |root: &Path, args: &[&str]| {
        let mut c = Command::new(&bin);
        c.arg("--root")
            .arg(root)
            .env_remove("BERTH_ROOT")
            .args(args);
        c
    };
    check(&mut berth(&root, &["load", "-i", ARCHIVE]), "berth load")?;
    let pm = podman::Podman::new("bench-network-podman");
    let podman_err = podman::missing().or_else(|| {
        check(pm.cmd().args(["load", "-q", "-i", ARCHIVE]), "podman load")
            .err()
            .map(|e| format!("{e:#}"))
    });
    println!("\nnetwork: {runs} interleaved runs of each after {WARMUP} warm-up runs");
    let mut s = [
        Series::new("berth none"),
        Series::new("berth bridge"),
        podman::row(podman_err.clone()),
        podman::row(podman_err),
    ];
    s[2].tool = "podman none".into();
    s[3].tool = "podman default".into();
    for i in 0..WARMUP + runs {
        let keep = i >= WARMUP;
        // Rotate who goes first: caches favour whoever follows.
        for k in 0..4 {
            let j = (i + k) % 4;
            let c = match j {
                0 => berth(
                    &root,
                    &["run", "--rm", "--network", "none", "busybox", "true"],
                ),
                1 => berth(&root, &["run", "--rm", "busybox", "true"]),
                2 => {
                    let mut c = pm.cmd();
                    c.args(["run", "--rm", "--network", "none", "busybox", "true"]);
                    c
                }
                _ => {
                    let mut c = pm.cmd();
                    c.args(["run", "--rm", "busybox", "true"]);
                    c
                }
            };
            let what = s[j].tool.clone();
            sample(&mut s[j], keep, c, &what);
        }
    }
    anyhow::ensure!(
        !s[0].is_unavailable() && !s[1].is_unavailable(),
        "{:?} {:?}",
        s[0].unavailable,
        s[1].unavailable
    );
    let added = |a: &Series, b: &Series| b.median() - a.median();
    let (b_add, p_add) = (added(&s[0], &s[1]), added(&s[2], &s[3]));
    let [bn, bb, pn, pd] = s;
    print_table(
        "run --rm busybox true: --network none vs the default network",
        "ms",
        &[bn, bb, pn, pd],
    );
    println!("\n## added by the default network (median minus median of --network none)");
    println!("berth  {b_add:>8.2} ms");
    if p_add.is_nan() {
        println!("podman      n/a");
    } else {
        println!("podman {p_add:>8.2} ms");
        println!("berth / podman: {:.2} (goal: at most 0.25)", b_add / p_add);
    }
    Ok(())
}
