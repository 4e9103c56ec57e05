//! `bench/run build`: `berth build` against `podman build --layers` on the same Dockerfiles and
//! contexts, side by side in one run: a cold build (a fresh store holding only busybox) and a
//! fully cached rebuild (the same build again in that store). Both with `--network none`
//! (berth has no bridge network yet) and podman with `--pull=never` (no registry here).
//! Cases: one RUN step; the layered fixture's Containerfile (2 RUNs, a COPY, metadata); a
//! multi-stage build (two independent builder stages and COPY --from).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::Scratch;

use crate::podman;
use crate::stats::{print_table, Series};

const ARCHIVE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/images/busybox.oci-archive.tar");
const LAYERED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/images/layered-context");

const ONE_STEP: &str = "FROM localhost/busybox\nRUN echo hello > /hello\n";
const MULTI: &str = "FROM localhost/busybox AS a\nRUN mkdir /out && seq 1 2000 > /out/numbers\n\
FROM localhost/busybox AS b\nRUN mkdir /out && for i in 1 2 3 4 5; do echo $i > /out/f$i; done\n\
FROM localhost/busybox\nCOPY --from=a /out/ /a/\nCOPY --from=b /out/ /b/\nCOPY note.txt /\nENV X=1\nCMD [\"sh\"]\n";

fn berth_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe.parent().map(|d| d.join("berth")).filter(|p| p.is_file());
    bin.ok_or_else(|| anyhow::anyhow!("berth binary not found beside {}: cargo build --release -p berth-cli", exe.display()))
}

fn output(mut c: Command, what: &str) -> anyhow::Result<String> {
    let out = c.stdin(Stdio::null()).stderr(Stdio::piped()).output()?;
    anyhow::ensure!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

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
    let berth = berth_bin()?;
    let layered = std::fs::read_to_string(Path::new(LAYERED).join("Containerfile"))?;
    let cases: [(&str, &str); 3] = [("one RUN step", ONE_STEP), ("layered fixture (2 RUN, COPY, ENV, WORKDIR, CMD)", &layered), ("multi-stage (2 parallel stages, COPY --from)", MULTI)];
    let ctx_dir = Scratch::new("bench-build-ctx");
    for (name, file) in cases {
        let ctx = ctx_dir.join(name.split_whitespace().next().unwrap_or("case"));
        context(&ctx, file)?;
        let ctx_s = ctx.to_string_lossy().into_owned();
        let (mut bc, mut bw) = (Series::new("berth"), Series::new("berth"));
        let (mut pc, mut pw) = (podman::row(podman::missing()), podman::row(podman::missing()));
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
                    anyhow::ensure!(id1 == id2, "berth's cached rebuild made another image ({id1} then {id2})");
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
                        let build = ["build", "-q", "--layers", "--pull=never", "--network", "none", "-t", "bench:1", &ctx_s];
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
        }
        print_table(&format!("build, cold: {name}"), "ms", &[bc, pc]);
        print_table(&format!("build, fully cached: {name}"), "ms", &[bw, pw]);
    }
    Ok(())
}
