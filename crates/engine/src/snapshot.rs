//! A container's root filesystem: the image's layers read-only, the init layer, the container's
//! writable layer, unioned with overlayfs (or, with the vfs driver, a full copy).

use crate::error::{Error, Result};
use crate::sys;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// Paths the init layer owns: diff, commit and export leave them out of the writable layer.
pub const INIT_PATHS: &[&str] = &[
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/.dockerenv",
    "/dev",
    "/proc",
    "/sys",
    "/etc/mtab",
];

/// Where a container's layers live: `<root>/containers/<id>`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub dir: PathBuf,
}

impl Snapshot {
    pub fn new(dir: PathBuf) -> Snapshot {
        Snapshot { dir }
    }
    pub fn init(&self) -> PathBuf {
        self.dir.join("init")
    }
    pub fn upper(&self) -> PathBuf {
        self.dir.join("diff")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    pub fn merged(&self) -> PathBuf {
        self.dir.join("merged")
    }
    fn links(&self) -> PathBuf {
        self.dir.join("l")
    }

    /// Creates init/, diff/, work/, merged/ and the short links to the image's layers
    /// (`lowers` bottom → top). For vfs, diff/ receives a full copy of the image.
    pub fn prepare(
        &self,
        lowers: &[PathBuf],
        vfs: bool,
        hostname: &str,
        host_network: bool,
    ) -> Result<()> {
        for d in [self.init(), self.upper(), self.merged()] {
            mkdir(&d)?;
        }
        write_init_layer(&self.init(), hostname, host_network)?;
        if vfs {
            if let Some(top) = lowers.last() {
                copy_tree(top, &self.upper())?;
            }
            copy_tree(&self.init(), &self.upper())?;
            return Ok(());
        }
        mkdir(&self.work())?;
        mkdir(&self.links())?;
        for (i, l) in lowers.iter().rev().enumerate() {
            let link = self.links().join(i.to_string());
            symlink(l, &link).map_err(|e| Error::io(format!("symlink {}", link.display()), e))?;
        }
        Ok(())
    }

    /// The lower dirs top → bottom as the overlay sees them (init first).
    pub fn lower_dirs(&self) -> Vec<PathBuf> {
        let mut v = vec![self.init()];
        let mut i = 0;
        while let Ok(t) = std::fs::read_link(self.links().join(i.to_string())) {
            v.push(t);
            i += 1;
        }
        v
    }

    pub fn is_mounted(&self) -> bool {
        sys::is_mountpoint(&self.merged())
    }

    /// Mounts merged/ (idempotent).
    pub fn mount(&self, vfs: bool) -> Result<()> {
        self.mount_with(vfs, false)
    }

    /// Mounts merged/; `volatile` (a container that is removed when it ends, as podman does
    /// for --rm) skips overlayfs' sync of the upper dir at unmount, a journal commit that can
    /// take tens of ms on a busy disk. Kernels without it (< 5.10) get a plain mount.
    pub fn mount_with(&self, vfs: bool, volatile: bool) -> Result<()> {
        if self.is_mounted() {
            return Ok(());
        }
        // A volatile mount leaves work/work/incompat/volatile, which makes overlayfs refuse
        // the next mount of this upper dir (its contents are suspect only after a crash).
        let _ = std::fs::remove_dir_all(self.work().join("work/incompat"));
        if volatile && !vfs {
            match self.mount_overlay(",volatile") {
                Err(e) if e.kind() == crate::ErrorKind::InvalidArgument => {}
                r => return r,
            }
        }
        self.mount_overlay_or_bind(vfs)
    }

    fn mount_overlay_or_bind(&self, vfs: bool) -> Result<()> {
        if vfs {
            return sys::mount(
                &self.upper().to_string_lossy(),
                &self.merged(),
                None,
                libc::MS_BIND,
                None,
            );
        }
        self.mount_overlay("")
    }

    /// The overlay mount, `extra` appended to its options.
    fn mount_overlay(&self, extra: &str) -> Result<()> {
        let n = self.lower_dirs().len() - 1;
        let abs: Vec<String> = std::iter::once(self.init())
            .chain((0..n).map(|i| self.links().join(i.to_string())))
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let data = format!(
            "lowerdir={},upperdir={},workdir={}{extra}",
            abs.join(":"),
            self.upper().display(),
            self.work().display()
        );
        if data.len() < 4000 {
            return sys::mount("overlay", &self.merged(), Some("overlay"), 0, Some(&data));
        }
        // Too long for one page: relative paths from the container dir (moby's l/ links).
        let rel: Vec<String> = std::iter::once("init".to_string())
            .chain((0..n).map(|i| format!("l/{i}")))
            .collect();
        let data = format!(
            "lowerdir={},upperdir=diff,workdir=work{extra}",
            rel.join(":")
        );
        with_cwd(&self.dir, || {
            sys::mount(
                "overlay",
                Path::new("merged"),
                Some("overlay"),
                0,
                Some(&data),
            )
        })
    }

    pub fn unmount(&self) -> Result<()> {
        sys::umount(&self.merged())
    }

    /// Unmounts and deletes everything below the container dir.
    pub fn remove(&self) -> Result<()> {
        self.discard().map(drop)
    }

    /// Unmounts, then moves the container dir into the root's `tmp/` with one rename, so the
    /// container's files are out of its tree at once; they are deleted when the returned
    /// value drops, which a removal does after recording it ("destroy" ends `docker run
    /// --rm`, and deleting the tree took 1.5 ms). A `tmp/` entry nobody holds is swept by
    /// the next process that opens the image store, should this one die first. Deletes in
    /// place when the rename cannot be done, or the rootfs is still mounted.
    pub fn discard(&self) -> Result<Discarded> {
        let _ = self.unmount();
        let tmp = self
            .dir
            .parent()
            .and_then(Path::parent)
            .map(|r| r.join("tmp"));
        if let (Some(tmp), Some(name)) = (tmp, self.dir.file_name()) {
            let mut to = tmp.join("removed-");
            to.as_mut_os_string().push(name);
            if !sys::is_mountpoint(&self.merged()) && std::fs::rename(&self.dir, &to).is_ok() {
                return Ok(Discarded(Some(to)));
            }
        }
        remove_tree(&self.dir)?;
        Ok(Discarded(None))
    }
}

/// A container tree moved out by [`Snapshot::discard`]: deleted on drop.
pub struct Discarded(Option<PathBuf>);

impl Drop for Discarded {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = remove_tree(&p);
        }
    }
}

fn remove_tree(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("remove {}", dir.display()), e)),
    }
}

fn mkdir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|e| Error::io(format!("create {}", p.display()), e))
}

fn with_cwd<T>(dir: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let old = std::env::current_dir().map_err(|e| Error::io("getcwd", e))?;
    std::env::set_current_dir(dir).map_err(|e| Error::io(format!("chdir {}", dir.display()), e))?;
    let r = f();
    let _ = std::env::set_current_dir(old);
    r
}

fn write(p: &Path, data: &str) -> Result<()> {
    std::fs::write(p, data).map_err(|e| Error::io(format!("write {}", p.display()), e))
}

/// The files docker's init layer holds.
fn write_init_layer(init: &Path, hostname: &str, host_network: bool) -> Result<()> {
    for d in ["etc", "dev/pts", "dev/shm", "proc", "sys"] {
        mkdir(&init.join(d))?;
    }
    let hosts = if host_network {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n127.0.0.1\t{hostname}\n"
        )
    };
    write(&init.join("etc/hosts"), &hosts)?;
    write(&init.join("etc/hostname"), &format!("{hostname}\n"))?;
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    write(
        &init.join("etc/resolv.conf"),
        &container_resolv_conf(&host_resolv, host_network),
    )?;
    write(&init.join(".dockerenv"), "")?;
    write(&init.join("dev/console"), "")?;
    let mtab = init.join("etc/mtab");
    let _ = std::fs::remove_file(&mtab);
    symlink("/proc/mounts", &mtab).map_err(|e| Error::io(format!("symlink {}", mtab.display()), e))
}

/// The host's resolv.conf without loopback nameservers (unreachable from the container's
/// network namespace); docker falls back to Google's servers when none is left.
pub fn container_resolv_conf(host: &str, host_network: bool) -> String {
    if host_network {
        return host.to_string();
    }
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let t = line.trim();
        if let Some(addr) = t.strip_prefix("nameserver") {
            let addr = addr.trim();
            if addr.starts_with("127.") || addr == "::1" {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg("--reflink=auto")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .map_err(|e| Error::io("run cp", e))?;
    if !st.success() {
        return Err(Error::internal(format!(
            "copy {} to {}: cp failed",
            from.display(),
            to.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_drops_loopback() {
        let r = container_resolv_conf(
            "search x\nnameserver 127.0.0.53\nnameserver 10.0.0.1\n",
            false,
        );
        assert_eq!(r, "search x\nnameserver 10.0.0.1\n");
        let r = container_resolv_conf("nameserver 127.0.0.1\n", false);
        assert!(r.contains("8.8.8.8") && !r.contains("127.0.0.1"));
    }

    #[test]
    fn discard_moves_the_tree_out_at_once_and_deletes_it_on_drop() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("containers").join("c1");
        std::fs::create_dir_all(dir.join("diff/etc")).unwrap();
        std::fs::write(dir.join("diff/etc/f"), b"x").unwrap();
        std::fs::create_dir_all(root.path().join("tmp")).unwrap();
        let gone = Snapshot::new(dir.clone()).discard().unwrap();
        assert!(!dir.exists());
        let moved = root.path().join("tmp/removed-c1");
        assert!(moved.join("diff/etc/f").is_file());
        drop(gone);
        assert!(!moved.exists());

        // Without the root's tmp/ it deletes in place.
        std::fs::remove_dir(root.path().join("tmp")).unwrap();
        std::fs::create_dir_all(dir.join("diff")).unwrap();
        let gone = Snapshot::new(dir.clone()).discard().unwrap();
        assert!(!dir.exists());
        drop(gone);
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
    }
}
