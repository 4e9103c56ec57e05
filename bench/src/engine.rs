//! `bench/run engine`: `berth run --rm busybox true` and `berth exec` against
//! `podman run --rm --network none` and `podman exec`, each with its own fresh store loaded from
//! the busybox fixture, interleaved so both see the same machine load; then the resident set of
//! berth's monitor against conmon's.
//!
//! Goals (from the issue): run ≤ ¼ of podman's median (~165 ms → ≤ ~40 ms), exec ≤ ¼ of
//! podman's (~170 ms), monitor RSS ≤ conmon's (~2.1 MB).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::Scratch;

use crate::stats::{print_table, Series};

const ARCHIVE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/images/busybox.oci-archive.tar");

fn berth_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe.parent().map(|d| d.join("berth")).filter(|p| p.is_file());
    bin.ok_or_else(|| anyhow::anyhow!("berth binary not found beside {}: cargo build --release -p berth-cli", exe.display()))
}

fn berth(bin: &Path, root: &Path) -> Command {
    let mut c = Command::new(bin);
    c.arg("--root").arg(root).env_remove("BERTH_ROOT");
    c
}

fn podman(dir: &Path) -> Command {
    let mut c = Command::new("podman");
    // podman refuses a runroot longer than 50 characters: short names.
    c.arg("--root").arg(dir.join("s")).arg("--runroot").arg(dir.join("r")).arg("--tmpdir").arg(dir.join("t"));
    c.args(["--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--events-backend", "file"]);
    c
}

fn output(c: &mut Command, what: &str) -> anyhow::Result<String> {
    let out = c.stdin(Stdio::null()).stderr(Stdio::piped()).output()?;
    anyhow::ensure!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn timed(c: &mut Command, what: &str) -> anyhow::Result<Duration> {
    let start = Instant::now();
    output(c, what)?;
    Ok(start.elapsed())
}

/// podman's default ulimits exceed this sandbox's hard limits: ask for exactly ours.
fn podman_limits(c: &mut Command) {
    let lim = |r| {
        let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        unsafe { libc::getrlimit(r, &mut l) };
        l.rlim_max
    };
    c.arg("--ulimit").arg(format!("nofile={0}:{0}", lim(libc::RLIMIT_NOFILE)));
    c.arg("--ulimit").arg(format!("nproc={0}:{0}", lim(libc::RLIMIT_NPROC)));
}

fn status_kb(pid: u32, key: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn pids_named(name: &str, needle: &str) -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if comm.trim() == name && String::from_utf8_lossy(&cmd).contains(needle) {
            v.push(pid);
        }
    }
    v
}

pub fn run(runs: Option<usize>) -> anyhow::Result<()> {
    let runs = runs.unwrap_or(30);
    let bin = berth_bin()?;
    let scratch = Scratch::new("bench-engine");
    let root = scratch.join("berth");
    output(berth(&bin, &root).args(["load", "-i", ARCHIVE]), "berth load")?;
    let pdir = scratch.join("p");
    let have_podman = Command::new("podman").arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    let mut podman_ok = have_podman && output(podman(&pdir).args(["load", "-q", "-i", ARCHIVE]), "podman load").is_ok();
    let podman_run = || {
        let mut c = podman(&pdir);
        c.args(["run", "--rm", "--network", "none"]);
        podman_limits(&mut c);
        c.args(["busybox", "true"]);
        c
    };
    if podman_ok {
        if let Err(e) = output(&mut podman_run(), "podman run") {
            println!("podman cannot run containers here: {e}");
            podman_ok = false;
        }
    }

    // run --rm
    let (mut b, mut p) = (Series::new("berth"), Series::new("podman"));
    for i in 0..runs + 3 {
        let d = timed(&mut { let mut c = berth(&bin, &root); c.args(["run", "--rm", "busybox", "true"]); c }, "berth run")?;
        if i >= 3 {
            b.push_duration(d);
        }
        if podman_ok {
            let d = timed(&mut podman_run(), "podman run")?;
            if i >= 3 {
                p.push_duration(d);
            }
        }
    }
    print_table("run --rm busybox true", "ms", &[b, p]);

    // exec into a running container
    let id = output(berth(&bin, &root).args(["run", "-d", "busybox", "sleep", "3600"]), "berth run -d")?;
    let _rm = berth_testkit::Defer(|| {
        let _ = berth(&bin, &root).args(["rm", "-f", &id]).output();
    });
    let pid_c = if podman_ok {
        let mut c = podman(&pdir);
        c.args(["run", "-d", "--network", "none"]);
        podman_limits(&mut c);
        c.args(["busybox", "sleep", "3600"]);
        output(&mut c, "podman run -d").ok()
    } else {
        None
    };
    let (mut b, mut p) = (Series::new("berth"), Series::new("podman"));
    for i in 0..runs + 3 {
        let d = timed(&mut { let mut c = berth(&bin, &root); c.args(["exec", &id, "true"]); c }, "berth exec")?;
        if i >= 3 {
            b.push_duration(d);
        }
        if let Some(pc) = &pid_c {
            let d = timed(&mut { let mut c = podman(&pdir); c.args(["exec", pc, "true"]); c }, "podman exec")?;
            if i >= 3 {
                p.push_duration(d);
            }
        }
    }
    print_table("exec CONTAINER true", "ms", &[b, p]);

    // monitor vs conmon resident set, with the container idle.
    std::thread::sleep(Duration::from_millis(300));
    let root_s = root.to_string_lossy().into_owned();
    let mut rss = Vec::new();
    for pid in pids_named("berth", "__monitor") {
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(&root_s) {
            rss.push(("berth monitor", status_kb(pid, "VmRSS:"), status_kb(pid, "VmHWM:")));
        }
    }
    if let Some(pc) = &pid_c {
        for pid in pids_named("conmon", pc) {
            rss.push(("conmon", status_kb(pid, "VmRSS:"), status_kb(pid, "VmHWM:")));
        }
    }
    println!("\n## resident set of the per-container monitor (idle container)");
    println!("{:<14} {:>10} {:>10}", "process", "VmRSS kB", "VmHWM kB");
    for (n, r, h) in rss {
        println!("{:<14} {:>10} {:>10}", n, r.map_or("?".into(), |v| format!("{v:.0}")), h.map_or("?".into(), |v| format!("{v:.0}")));
    }
    if let Some(pc) = &pid_c {
        let _ = podman(&pdir).args(["rm", "-f", pc]).output();
    }
    if !podman_ok {
        println!("(podman figures unavailable on this machine; the issue quotes ~165 ms run, ~170 ms exec, conmon ~2.1 MB)");
    }
    Ok(())
}
