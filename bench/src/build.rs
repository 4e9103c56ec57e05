//! `bench/run build`: `berth build` against `podman build --layers` and docker's BuildKit
//! (`DOCKER_BUILDKIT=1` through Debian's docker.io client, /usr/bin/docker, against a private
//! dockerd, see dockerd.rs) on the same Dockerfiles and contexts, side by side in one run: a cold
//! build (a fresh store holding only busybox; for docker, its image removed and the build cache
//! pruned) and a fully cached rebuild (the same build again). All with `--network none`, podman
//! with `--pull=never` (no registry here); BuildKit finds busybox in dockerd's image store.
//! Goals (issue 12): berth at most half of podman's median and no slower than BuildKit.
//! Cases: one RUN step; the layered fixture's Containerfile (2 RUNs, a COPY, metadata); a
//! multi-stage build (two independent builder stages and COPY --from).

use crate::cmd::output;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_testkit::Scratch;

use crate::dockerd::{debian_docker, Dockerd};
use crate::podman;
use crate::stats::{print_table, Series};

const ARCHIVE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/images/busybox.oci-archive.tar"
);
const LAYERED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/images/layered-context"
);

const ONE_STEP: &str = "FROM localhost/busybox\nRUN echo hello > /hello\n";
const MULTI: &str = "FROM localhost/busybox AS a\nRUN mkdir /out && seq 1 2000 > /out/numbers\n\
FROM localhost/busybox AS b\nRUN mkdir /out && for i in 1 2 3 4 5; do echo $i > /out/f$i; done\n\
FROM localhost/busybox\nCOPY --from=a /out/ /a/\nCOPY --from=b /out/ /b/\nCOPY note.txt /\nENV X=1\nCMD [\"sh\"]\n";

fn timed(c: Command, what: &str) -> anyhow::Result<(Duration, String)> {
    let start = Instant::now();
    let out = output(c, what)?;
    Ok((start.elapsed(), out))
}

/// A context dir holding `containerfile` (and the layered fixture's note.txt).
fn context(dir: &Path, containerfile: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("Containerfile"), containerfile)?;
    std::fs::copy(Path::new(LAYERED).join("note.txt"), dir.join("note.txt"))?;
    Ok(())
}

pub fn run(runs: Option<usize>) -> anyhow::Result<()> {
    let runs = runs.unwrap_or(5);
    let berth = crate::beside_me("berth")?;
    let layered = std::fs::read_to_string(Path::new(LAYERED).join("Containerfile"))?;
    let cases: [(&str, &str); 3] = [
        ("one RUN step", ONE_STEP),
        ("layered fixture (2 RUN, COPY, ENV, WORKDIR, CMD)", &layered),
        ("multi-stage (2 parallel stages, COPY --from)", MULTI),
    ];
    let ctx_dir = Scratch::new("bench-build-ctx");
    let ddir = Scratch::new("bench-build-dockerd");
    let mut down = None;
    let dockerd = Dockerd::with_busybox(&berth, ARCHIVE, ddir.path())
        .map_err(|e| down = Some(format!("{e:#}")))
        .ok();
    let config = ddir.join("config");
    for (name, file) in cases {
        let ctx = ctx_dir.join(name.split_whitespace().next().unwrap_or("case"));
        context(&ctx, file)?;
        let ctx_s = ctx.to_string_lossy().into_owned();
        let (mut bc, mut bw) = (Series::new("berth"), Series::new("berth"));
        let (mut pc, mut pw) = (
            podman::row(podman::missing()),
            podman::row(podman::missing()),
        );
        let buildkit = |reason: &Option<String>| match reason {
            Some(r) => Series::unavailable("docker BuildKit", r.clone()),
            None => Series::new("docker BuildKit"),
        };
        let (mut dc, mut dw) = (buildkit(&down), buildkit(&down));
        for i in 0..runs {
            for is_berth in crate::stats::berth_first(i) {
                if is_berth {
                    let s = Scratch::new("bench-build");
                    let root = s.join("root");
                    let cmd = |args: &[&str]| {
                        let mut c = Command::new(&berth);
                        c.arg("--root").arg(&root).args(args);
                        c
                    };
                    output(cmd(&["load", "-i", ARCHIVE]), "berth load")?;
                    let build = ["build", "-q", "--network", "none", "-t", "bench:1", &ctx_s];
                    let (cold, id1) = timed(cmd(&build), "berth build (cold)")?;
                    let (warm, id2) = timed(cmd(&build), "berth build (cached)")?;
                    anyhow::ensure!(
                        id1 == id2,
                        "berth's cached rebuild made another image ({id1} then {id2})"
                    );
                    bc.push_duration(cold);
                    bw.push_duration(warm);
                } else if !pc.is_unavailable() {
                    let pm = podman::Podman::new("bench-build-podman");
                    let r = (|| -> anyhow::Result<(Duration, Duration)> {
                        let cmd = |args: &[&str]| {
                            let mut c = pm.cmd();
                            c.args(args);
                            c
                        };
                        output(cmd(&["load", "-q", "-i", ARCHIVE]), "podman load")?;
                        let build = [
                            "build",
                            "-q",
                            "--layers",
                            "--pull=never",
                            "--network",
                            "none",
                            "-t",
                            "bench:1",
                            &ctx_s,
                        ];
                        let (cold, id1) = timed(cmd(&build), "podman build (cold)")?;
                        let (warm, id2) = timed(cmd(&build), "podman build (cached)")?;
                        anyhow::ensure!(id1 == id2, "podman's cached rebuild made another image");
                        Ok((cold, warm))
                    })();
                    match r {
                        Ok((c, w)) => {
                            pc.push_duration(c);
                            pw.push_duration(w);
                        }
                        Err(e) => {
                            pc.fail(format!("{e:#}"));
                            pw.fail(format!("{e:#}"));
                        }
                    }
                    drop(pm);
                }
            }
            if let Some(dd) = dockerd.as_ref().filter(|_| !dc.is_unavailable()) {
                match buildkit_once(dd, &config, &ctx_s) {
                    Ok((c, w)) => {
                        dc.push_duration(c);
                        dw.push_duration(w);
                    }
                    Err(e) => {
                        dc.fail(format!("{e:#}"));
                        dw.fail(format!("{e:#}"));
                    }
                }
            }
        }
        print_table(&format!("build, cold: {name}"), "ms", &[bc, pc, dc]);
        print_table(&format!("build, fully cached: {name}"), "ms", &[bw, pw, dw]);
    }
    Ok(())
}

/// One cold build and one cached rebuild with BuildKit: the previous result and the build
/// cache are removed first, so the cold build starts from busybox alone, as berth's does.
fn buildkit_once(dd: &Dockerd, config: &Path, ctx: &str) -> anyhow::Result<(Duration, Duration)> {
    let cmd = |args: &[&str]| {
        let mut c = debian_docker(&dd.sock, config);
        c.args(args);
        c
    };
    let _ = output(cmd(&["rmi", "-f", "bench:1"]), "docker rmi");
    output(cmd(&["builder", "prune", "-af"]), "docker builder prune")?;
    // docker 20.10 looks for a Dockerfile only.
    let file = format!("{ctx}/Containerfile");
    let build = [
        "build",
        "-q",
        "--network",
        "none",
        "-f",
        &file,
        "-t",
        "bench:1",
        ctx,
    ];
    let (cold, id1) = timed(cmd(&build), "docker build (cold)")?;
    let (warm, id2) = timed(cmd(&build), "docker build (cached)")?;
    anyhow::ensure!(
        id1 == id2,
        "BuildKit's cached rebuild made another image ({id1} then {id2})"
    );
    Ok((cold, warm))
}
