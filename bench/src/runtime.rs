//! `bench/run runtime`: `run` of one busybox bundle whose process is /bin/true (no terminal), by
//! berth-runc, crun and runc side by side: wall time and the peak RSS of the runtime process
//! (wait4's ru_maxrss), interleaved rounds after a warm-up.
//!
//! ru_maxrss also counts the mm a process had before its execve. A child spawned the usual way
//! (posix_spawn, sharing the bench's mm until exec) would report the bench's own RSS. So the RSS
//! runs fork a real copy (a pre_exec hook makes std fork) and exec static busybox's `env`, which
//! execs the runtime: the floor is then busybox's RSS, printed beside the table. The timed runs
//! start the runtime directly.
//!
//! Debian's crun 1.8 refuses this host's hybrid cgroups because the cgroup2 mount lists a
//! controller. Rather than a wrapper that adds an unshare and a shell to crun's figures only, the
//! bench itself enters a private mount namespace once, hides that file there, and then calls
//! every runtime directly, so all three pay the same.

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use berth_testkit::{busybox_rootfs, remove_cgroup_everywhere, Defer, Scratch};

use crate::stats::{print_table, Series};

const WARMUP: usize = 5;
const BUSYBOX: &str = berth_testkit::BUSYBOX;
const CONTROLLERS: &str = "/sys/fs/cgroup/unified/cgroup.controllers";

struct Tool {
    name: &'static str,
    bin: PathBuf,
    root: PathBuf,
    time: Series,
    rss: Series,
    /// The first failure, shown once; a failing tool drops out of the rounds.
    error: Option<String>,
}

pub fn run(runs: Option<usize>) -> Result<()> {
    let runs = runs.unwrap_or(50);
    let scratch = Scratch::new("bench-runtime");
    hide_unified_controllers(&scratch.join("empty-controllers"))?;
    let berth = crate::beside_me("berth-runc")?;
    // One absolute cgroup for every run (they run one at a time), removed at the end.
    let cgroup = format!("/berth-bench-runtime-{}", std::process::id());
    let _remove_cgroup = Defer(|| remove_cgroup_everywhere(&cgroup));
    let bundle = make_bundle(&scratch, &berth, &cgroup)?;

    let mut tools: Vec<Tool> = [
        ("berth-runc", Some(berth)),
        ("crun", which("crun")),
        ("runc", which("runc")),
    ]
    .into_iter()
    .map(|(name, bin)| Tool {
        name,
        root: scratch.join(format!("root-{name}")),
        time: Series::new(name),
        rss: Series::new(name),
        error: bin.is_none().then(|| format!("{name} not on PATH")),
        bin: bin.unwrap_or_default(),
    })
    .collect();

    let tag = format!("bench-{}", std::process::id());
    let mut n = 0usize;
    for round in 0..WARMUP + runs {
        // Rotate who goes first: the machine is noisy and caches favour whoever follows.
        for k in 0..tools.len() {
            let i = (round + k) % tools.len();
            let t = &mut tools[i];
            if t.error.is_some() {
                continue;
            }
            for through_env in [false, true] {
                n += 1;
                let id = format!("{tag}-{n}");
                match run_once(t, &bundle, &id, through_env) {
                    Ok((d, _)) if round >= WARMUP && !through_env => t.time.push_duration(d),
                    Ok((_, rss_kib)) if round >= WARMUP => {
                        t.rss.samples.push(rss_kib as f64 / 1024.0)
                    }
                    Ok(_) => {}
                    Err(e) => t.error = Some(format!("{e:#}")),
                }
                delete_leftover(t, &id);
            }
        }
    }

    println!("runtime: `run` of a busybox bundle running /bin/true, {runs} interleaved runs each after {WARMUP} warm-up runs");
    for t in &tools {
        if let Some(e) = &t.error {
            println!("{}: {e}", t.name);
        }
    }
    // A tool's first failure goes into its rows, so an empty row says why.
    let take = |t: &mut Tool, rss: bool| {
        let mut s = std::mem::replace(
            if rss { &mut t.rss } else { &mut t.time },
            Series::new(t.name),
        );
        s.unavailable = t.error.clone();
        s
    };
    let time: Vec<Series> = tools.iter_mut().map(|t| take(t, false)).collect();
    let rss: Vec<Series> = tools.iter_mut().map(|t| take(t, true)).collect();
    print_table("run /bin/true: wall time", "ms", &time);
    print_table(
        "run /bin/true: peak RSS of the runtime process",
        "MiB",
        &rss,
    );
    println!(
        "(measurement floor: {:.2} MiB, busybox true started the same way)",
        rss_floor_mib()?
    );
    Ok(())
}

/// One foreground `run`: wall time from spawn to reap, and the child's ru_maxrss in KiB.
fn run_once(t: &Tool, bundle: &Path, id: &str, through_env: bool) -> Result<(Duration, i64)> {
    let err = tempfile_in(&t.root)?;
    let mut cmd = if through_env {
        forked_env(&t.bin)
    } else {
        Command::new(&t.bin)
    };
    cmd.arg("--root")
        .arg(&t.root)
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(id)
        .stderr(err);
    let (elapsed, status, rss) =
        measure(cmd).with_context(|| format!("spawn {}", t.bin.display()))?;
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let msg = std::fs::read_to_string(t.root.join("stderr")).unwrap_or_default();
        bail!("run failed (wait status {status:#x}): {}", msg.trim());
    }
    Ok((elapsed, rss))
}

/// `busybox env BIN`, started by a real fork: see the module comment.
fn forked_env(bin: &Path) -> Command {
    let mut c = Command::new(BUSYBOX);
    c.arg("env").arg(bin);
    // Any pre_exec hook makes std fork instead of posix_spawn (which shares our mm until exec).
    unsafe { c.pre_exec(|| Ok(())) };
    c
}

/// Runs `cmd` with stdin/stdout on /dev/null: wall time, wait status, ru_maxrss (KiB).
fn measure(mut cmd: Command) -> Result<(Duration, i32, i64)> {
    let start = Instant::now();
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).spawn()?;
    let (status, rusage) = wait4(child.id() as i32)?;
    Ok((start.elapsed(), status, rusage.ru_maxrss))
}

/// The smallest ru_maxrss the RSS runs can report: busybox `true` started the same way.
fn rss_floor_mib() -> Result<f64> {
    let mut c = forked_env(Path::new(BUSYBOX));
    c.arg("true");
    Ok(measure(c)?.2 as f64 / 1024.0)
}

fn tempfile_in(dir: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(dir)?;
    Ok(std::fs::File::create(dir.join("stderr"))?)
}

/// Reaps `pid` with its resource usage.
fn wait4(pid: i32) -> Result<(i32, libc::rusage)> {
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r == pid {
            return Ok((status, ru));
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e).context("wait4");
        }
    }
}

/// A run that failed half-way may leave its state behind.
fn delete_leftover(t: &Tool, id: &str) {
    if t.root.join(id).exists() {
        let _ = Command::new(&t.bin)
            .arg("--root")
            .arg(&t.root)
            .args(["delete", "--force", id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The bundle every runtime runs: berth-runc's default spec, no terminal, /bin/true.
fn make_bundle(scratch: &Scratch, berth: &Path, cgroup: &str) -> Result<PathBuf> {
    let bundle = scratch.join("bundle");
    busybox_rootfs(&bundle.join("rootfs"))?;
    let out = Command::new(berth)
        .arg("spec")
        .arg("--bundle")
        .arg(&bundle)
        .output()?;
    if !out.status.success() {
        bail!(
            "berth-runc spec: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let path = bundle.join("config.json");
    let mut spec: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    // crun 1.8 knows spec versions up to 1.0.x; nothing here needs more.
    spec["ociVersion"] = serde_json::json!("1.0.2");
    spec["process"]["terminal"] = serde_json::json!(false);
    spec["process"]["args"] = serde_json::json!(["/bin/true"]);
    spec["linux"]["cgroupsPath"] = serde_json::json!(cgroup);
    std::fs::write(&path, serde_json::to_vec_pretty(&spec)?)?;
    Ok(bundle)
}

/// Enters a private mount namespace and binds an empty file over the cgroup2 controller list,
/// so crun sees a plain v1 host. The host's own mounts are untouched.
fn hide_unified_controllers(empty: &Path) -> Result<()> {
    if !Path::new(CONTROLLERS).exists() {
        return Ok(());
    }
    std::fs::write(empty, "")?;
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(std::io::Error::last_os_error())
            .context("unshare a mount namespace (run as root)");
    }
    mount(None, "/", libc::MS_REC | libc::MS_PRIVATE).context("make / private")?;
    mount(Some(empty), CONTROLLERS, libc::MS_BIND)
        .with_context(|| format!("bind an empty file over {CONTROLLERS}"))?;
    Ok(())
}

fn mount(src: Option<&Path>, target: &str, flags: libc::c_ulong) -> Result<()> {
    let src = src.map(|s| CString::new(s.as_os_str().as_encoded_bytes()).unwrap());
    let target = CString::new(target).unwrap();
    let r = unsafe {
        libc::mount(
            src.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            target.as_ptr(),
            std::ptr::null(),
            flags,
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}

fn which(cmd: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
}
