//! `bench/run engine`: `berth run --rm --network none busybox true` and `berth exec` against
//! `podman run --rm --network none` and `podman exec`, each with its own temp store loaded from
//! the busybox fixture (podman's is reset, unmounted and removed afterwards), interleaved with
//! alternating order so both see the same machine load; then the resident set of berth's
//! monitor against conmon's, both beside an idle running container. podman takes its runtime,
//! cgroup manager and ulimits from /etc/containers/containers.conf (scripts/test-deps writes it);
//! if it still fails, its rows carry the error.
//!
//! Goals (from the issue): run ≤ ¼ of podman's median (~165 ms → ≤ ~40 ms), exec ≤ ¼ of
//! podman's (~170 ms), monitor RSS ≤ conmon's (~2.1 MB).

use crate::cmd::output;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::Scratch;

use crate::podman;
use crate::stats::{print_table, Series};

const ARCHIVE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/images/busybox.oci-archive.tar"
);

fn berth(bin: &Path, root: &Path) -> Command {
    let mut c = Command::new(bin);
    c.arg("--root").arg(root).env_remove("BERTH_ROOT");
    c
}

fn timed(c: &mut Command, what: &str) -> anyhow::Result<Duration> {
    let start = Instant::now();
    output(c, what)?;
    Ok(start.elapsed())
}

/// One timed run into `s` unless the tool already failed; a failure ends that tool's row.
fn sample(s: &mut Series, keep: bool, c: &mut Command, what: &str) {
    if s.is_unavailable() {
        return;
    }
    match timed(c, what) {
        Ok(d) if keep => s.push_duration(d),
        Ok(_) => {}
        Err(e) => s.fail(format!("{e:#}")),
    }
}

fn status_kb(pid: u32, key: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn pids_named(name: &str, needle: &str) -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if comm.trim() == name && String::from_utf8_lossy(&cmd).contains(needle) {
            v.push(pid);
        }
    }
    v
}

const WARMUP: usize = 3;

pub fn run(runs: Option<usize>) -> anyhow::Result<()> {
    let runs = runs.unwrap_or(20);
    let bin = crate::beside_me("berth")?;
    let scratch = Scratch::new("bench-engine");
    let root = scratch.join("berth");
    output(
        berth(&bin, &root).args(["load", "-i", ARCHIVE]),
        "berth load",
    )?;
    let berth_cmd = |args: &[&str]| {
        let mut c = berth(&bin, &root);
        c.args(args);
        c
    };

    // podman's failure to load or start is its row's reason, not the bench's end.
    let mut pm = podman::Podman::new("bench-engine-podman");
    let podman_err = podman::missing().or_else(|| {
        output(pm.cmd().args(["load", "-q", "-i", ARCHIVE]), "podman load")
            .err()
            .map(|e| format!("{e:#}"))
    });
    let podman_row = || podman::row(podman_err.clone());
    println!(
        "\nengine: {runs} interleaved runs each after {WARMUP} warm-up runs; podman {}",
        podman_version()
    );

    // run --rm
    let (mut b, mut p) = (Series::new("berth"), podman_row());
    for i in 0..WARMUP + runs {
        let keep = i >= WARMUP;
        let mut bc = berth_cmd(&["run", "--rm", "--network", "none", "busybox", "true"]);
        let mut pc = pm.cmd();
        pc.args(["run", "--rm", "--network", "none", "busybox", "true"]);
        // Alternate who goes first: caches favour whoever follows.
        if i % 2 == 0 {
            sample(&mut b, keep, &mut bc, "berth run");
            sample(&mut p, keep, &mut pc, "podman run");
        } else {
            sample(&mut p, keep, &mut pc, "podman run");
            sample(&mut b, keep, &mut bc, "berth run");
        }
    }
    anyhow::ensure!(!b.is_unavailable(), "{}", b.unavailable.unwrap_or_default());
    print_table("run --rm --network none busybox true", "ms", &[b, p]);

    // exec into a running container
    let id = output(
        &mut berth_cmd(&["run", "-d", "--network", "none", "busybox", "sleep", "3600"]),
        "berth run -d",
    )?;
    let _rm = berth_testkit::Defer(|| {
        let _ = berth(&bin, &root)
            .args(["rm", "-f", &id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    });
    let (mut b, mut p) = (Series::new("berth"), podman_row());
    let mut pid_c = None;
    if !p.is_unavailable() {
        match output(
            pm.cmd()
                .args(["run", "-d", "--network", "none", "busybox", "sleep", "3600"]),
            "podman run -d",
        ) {
            Ok(pc) => {
                pm.track(&pc);
                pid_c = Some(pc);
            }
            Err(e) => p.fail(format!("{e:#}")),
        }
    }
    let pc_id = pid_c.clone().unwrap_or_default();
    for i in 0..WARMUP + runs {
        let keep = i >= WARMUP;
        let mut bc = berth_cmd(&["exec", &id, "true"]);
        let mut pc = pm.cmd();
        pc.args(["exec", &pc_id, "true"]);
        if i % 2 == 0 {
            sample(&mut b, keep, &mut bc, "berth exec");
            sample(&mut p, keep, &mut pc, "podman exec");
        } else {
            sample(&mut p, keep, &mut pc, "podman exec");
            sample(&mut b, keep, &mut bc, "berth exec");
        }
    }
    anyhow::ensure!(!b.is_unavailable(), "{}", b.unavailable.unwrap_or_default());
    print_table("exec CONTAINER true", "ms", &[b, p]);

    // monitor vs conmon resident set, with the container idle.
    std::thread::sleep(Duration::from_millis(300));
    let root_s = root.to_string_lossy().into_owned();
    let mut rss = Vec::new();
    for pid in pids_named("berth-monitor", "__monitor") {
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(&root_s) {
            rss.push((
                "berth monitor".to_string(),
                status_kb(pid, "VmRSS:"),
                status_kb(pid, "VmHWM:"),
            ));
        }
    }
    match (&pid_c, &podman_err) {
        (Some(pc), _) => {
            let found = pids_named("conmon", pc);
            if found.is_empty() {
                println!("(no conmon process found for podman container {pc})");
            }
            for pid in found {
                rss.push((
                    "conmon".to_string(),
                    status_kb(pid, "VmRSS:"),
                    status_kb(pid, "VmHWM:"),
                ));
            }
        }
        (None, Some(e)) => println!("(conmon: podman unavailable: {e})"),
        (None, None) => println!("(conmon: podman run -d failed, see the exec table)"),
    }
    println!("\n## resident set of the per-container monitor (idle `sleep` container)");
    println!("{:<14} {:>10} {:>10}", "process", "VmRSS kB", "VmHWM kB");
    for (n, r, h) in rss {
        println!(
            "{:<14} {:>10} {:>10}",
            n,
            r.map_or("?".into(), |v| format!("{v:.0}")),
            h.map_or("?".into(), |v| format!("{v:.0}"))
        );
    }
    Ok(())
}

fn podman_version() -> String {
    Command::new("podman")
        .arg("--version")
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .trim_start_matches("podman version ")
                .to_string()
        })
        .unwrap_or_else(|| "not on PATH".into())
}
