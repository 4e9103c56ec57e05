//! Test support shared by every crate's tests: a busybox root filesystem made from Debian's
//! busybox-static, per-test scratch directories, and guards that undo what a test left behind
//! (mounts, processes, cgroups) even when the test panics.

use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Where Debian's busybox-static installs its binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// Fails the calling test with a clear message when busybox-static is missing.
pub fn require_busybox() {
    assert!(
        is_static_elf(Path::new(BUSYBOX)),
        "{BUSYBOX} is missing or not static: install Debian's busybox-static (./setup does)"
    );
}

fn is_static_elf(path: &Path) -> bool {
    // A static busybox has no PT_INTERP program header; checking for the interpreter string is enough here.
    match fs::read(path) {
        Ok(bytes) => {
            bytes.starts_with(b"\x7fELF") && !contains(&bytes[..bytes.len().min(4096)], b"ld-linux")
        }
        Err(_) => false,
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Fills `root` with a minimal busybox system: the binary, one symlink per applet (as
/// `busybox --install -s` would make), the usual top-level directories, /etc/passwd and /etc/group.
pub fn busybox_rootfs(root: &Path) -> io::Result<()> {
    require_busybox();
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root", "home",
        "var", "run",
    ] {
        fs::create_dir_all(root.join(d))?;
    }
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777))?;
    fs::copy(BUSYBOX, root.join("bin/busybox"))?;
    let out = std::process::Command::new(BUSYBOX)
        .arg("--list-full")
        .output()?;
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let link = root.join(applet);
        if applet == "bin/busybox" || link.symlink_metadata().is_ok() {
            continue;
        }
        fs::create_dir_all(link.parent().unwrap())?;
        symlink("/bin/busybox", &link)?;
    }
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\n\
         nobody:x:65534:65534:nobody:/nonexistent:/bin/false\ntester:x:1000:1000:tester:/home/tester:/bin/sh\n",
    )?;
    fs::write(
        root.join("etc/group"),
        "root:x:0:\ndaemon:x:1:\ntty:x:5:\nusers:x:100:tester\nnogroup:x:65534:\ntester:x:1000:\n",
    )?;
    Ok(())
}

/// A per-test scratch directory. On drop it detaches every mount below it, then removes it.
pub struct Scratch {
    dir: Option<tempfile::TempDir>,
}

impl Scratch {
    pub fn new(prefix: &str) -> Scratch {
        let base = std::env::var_os("BERTH_TEST_TMP")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        fs::create_dir_all(&base).expect("create test tmp base");
        let dir = tempfile::Builder::new()
            .prefix(&format!("berth-test-{prefix}-"))
            .tempdir_in(base)
            .expect("create scratch dir");
        Scratch { dir: Some(dir) }
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path().join(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            unmount_below(dir.path());
            let _ = dir.close();
        }
    }
}

/// Lazily unmounts every mount point at or below `dir`, deepest first.
pub fn unmount_below(dir: &Path) {
    for _ in 0..4 {
        let mut points = mounts_below(dir);
        if points.is_empty() {
            return;
        }
        points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
        for p in points {
            let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Mounts `layers` (bottom first, as an image lists them) read-only as one overlay at
/// `at/name` and returns that path. An empty bottom lower `at/empty-lower` is added because
/// overlay wants two lowers when there is no upper. `Scratch` unmounts it on drop.
pub fn mount_layers_ro(layers: &[PathBuf], at: &Path, name: &str) -> PathBuf {
    let merged = at.join(name);
    let empty = at.join("empty-lower");
    fs::create_dir_all(&merged).unwrap();
    fs::create_dir_all(&empty).unwrap();
    // Top first for lowerdir=.
    let mut lowers: Vec<String> = layers
        .iter()
        .rev()
        .map(|d| d.display().to_string())
        .collect();
    lowers.push(empty.display().to_string());
    let opts = format!("lowerdir={}", lowers.join(":"));
    nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        nix::mount::MsFlags::MS_RDONLY,
        Some(opts.as_str()),
    )
    .expect("mount overlay");
    merged
}

/// Mount points at or below `dir`, read from /proc/self/mountinfo.
pub fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return vec![];
    };
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mountinfo(p)))
        .filter(|p| p.starts_with(dir))
        .collect()
}

fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A name unique to this test process and call, safe for container ids and cgroup names.
pub fn unique_id(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `f` when dropped: for ad-hoc cleanup (kill a container, remove a cgroup) that must happen
/// even when an assertion fails first.
pub struct Defer<F: FnMut()>(pub F);

impl<F: FnMut()> Drop for Defer<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// Removes a cgroup directory (and its children, deepest first) in every v1 hierarchy and in
/// the unified one, after killing anything still inside. `rel` is relative to each hierarchy root.
pub fn remove_cgroup_everywhere(rel: &str) {
    let rel = rel.trim_start_matches('/');
    if rel.is_empty() {
        return;
    }
    let Ok(entries) = fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let mut roots: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    roots.push(PathBuf::from("/sys/fs/cgroup"));
    for root in roots {
        let dir = root.join(rel);
        if dir.is_dir() {
            remove_cgroup_tree(&dir);
        }
    }
}

fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    for _ in 0..50 {
        if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
            for pid in procs
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        if fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Running processes whose argument list holds every one of `words` (each an argument, or
/// within one): their pids and arguments.
pub fn processes_with(words: &[&str]) -> Vec<(i32, Vec<String>)> {
    let mut v = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return v;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if words.iter().all(|w| args.iter().any(|a| a.contains(w))) {
            v.push((pid, args));
        }
    }
    v
}

/// The nft table berth-network gives a root: an FNV-1a hash of its canonical path.
pub fn network_table(root: &Path) -> String {
    let canon = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let h = canon.to_string_lossy().bytes().fold(0x811c9dc5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x01000193)
    });
    format!("berth_{h:08x}")
}

/// Ends what a root's network reapers would still do, before a test removes the root: a reaper
/// (`berth __netreap ROOT TABLE BRIDGES VETH...`) that woke while the root was being deleted
/// rebuilt its table from a half-removed database and left the table, bridges and files behind.
/// Kills them, deletes their veths and bridges, then the root's tables.
pub fn end_network_reapers(root: &Path) {
    let Ok(canon) = fs::canonicalize(root) else {
        return;
    };
    let canon = canon.to_string_lossy().into_owned();
    let mut links = Vec::new();
    for (pid, args) in processes_with(&["__netreap", &canon]) {
        // SAFETY: a signal to a pid we just read; no memory is involved.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        if let Some(i) = args.iter().position(|a| a == "__netreap") {
            let bridges = args.get(i + 3).map(String::as_str).unwrap_or("");
            links.extend(args.iter().skip(i + 4).cloned());
            links.extend(
                bridges
                    .split(',')
                    .filter(|b| !b.is_empty())
                    .map(String::from),
            );
        }
    }
    links.sort();
    links.dedup();
    for l in links {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &l])
            .output();
    }
    let table = network_table(root);
    for family in ["ip", "ip6"] {
        let _ = std::process::Command::new("nft")
            .args(["delete", "table", family, &table])
            .output();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busybox_rootfs_has_shell_and_users() {
        let s = Scratch::new("testkit");
        busybox_rootfs(s.path()).unwrap();
        assert!(s.join("bin/busybox").is_file());
        assert_eq!(
            fs::read_link(s.join("bin/sh")).unwrap(),
            Path::new("/bin/busybox")
        );
        assert!(fs::read_to_string(s.join("etc/passwd"))
            .unwrap()
            .starts_with("root:x:0:0:"));
    }

    #[test]
    fn scratch_unmounts_on_drop() {
        let s = Scratch::new("testkit");
        let m = s.join("m");
        fs::create_dir(&m).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            &m,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        let path = s.path().to_path_buf();
        drop(s);
        assert!(mounts_below(&path).is_empty());
        assert!(!path.exists());
    }

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
    }
}
