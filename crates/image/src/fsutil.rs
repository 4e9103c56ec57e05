//! Filesystem primitives: locks, owned temp dirs, atomic renames, syncfs, and the vfs tree copy.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{IoContext, Result};

/// flock(2) on an open file or directory; `false` when non-blocking and someone else holds it.
pub fn flock(f: &File, exclusive: bool, block: bool) -> io::Result<bool> {
    let mut op = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    };
    if !block {
        op |= libc::LOCK_NB;
    }
    loop {
        if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) if !block => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// syncfs(2): one flush of everything written to the filesystem holding `f`.
pub fn syncfs(f: &File) -> io::Result<()> {
    if unsafe { libc::syncfs(f.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// fsync of `dir` and every directory and regular file below it, when they are at most `limit`
/// (else nothing is done and false comes back): a few files flush only themselves, where
/// syncfs would also wait for everything other processes wrote to the filesystem.
pub fn fsync_small_tree(dir: &Path, limit: usize) -> io::Result<bool> {
    let mut found = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < found.len() {
        if std::fs::symlink_metadata(&found[i])?.is_dir() {
            for e in std::fs::read_dir(&found[i])? {
                let e = e?;
                let t = e.file_type()?;
                if t.is_dir() || t.is_file() {
                    if found.len() == limit {
                        return Ok(false);
                    }
                    found.push(e.path());
                }
            }
        }
        i += 1;
    }
    // Files first, then directories deepest first: each entry is durable before its parent.
    for p in found.iter().rev() {
        File::open(p)?.sync_all()?;
    }
    Ok(true)
}

/// rename(2) that fails with EEXIST instead of replacing `to`.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let f = std::ffi::CString::new(from.as_os_str().as_bytes())?;
    let t = std::ffi::CString::new(to.as_os_str().as_bytes())?;
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Publishes a finished file under its content name: flushed first, so a name in the store
/// always means complete content; an identical file already there wins.
pub fn publish(file: &File, tmp: &Path, dest: &Path) -> io::Result<()> {
    file.sync_all()?;
    match rename_noreplace(tmp, dest) {
        Err(e) if !already_exists(&e) => Err(e),
        _ => Ok(()),
    }
}

pub fn already_exists(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EEXIST) | Some(libc::ENOTEMPTY))
}

/// Removes a file or a whole tree; missing is fine.
pub fn remove_any(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// A working directory below `<root>/tmp` owned by this process through a flock on it: removed on
/// drop, and by the next berth process to open the store if we die first (its lock is gone then).
pub struct WorkDir {
    path: PathBuf,
    _lock: File,
}

impl WorkDir {
    pub fn create(tmp_root: &Path, what: &str) -> Result<WorkDir> {
        static N: AtomicU64 = AtomicU64::new(0);
        for _ in 0..100 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .subsec_nanos();
            let name = format!(
                "{what}-{}-{}-{nanos}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            );
            let path = tmp_root.join(name);
            match fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).ctx(|| format!("create {}", path.display())),
            }
            let lock = File::open(&path).ctx(|| format!("open {}", path.display()))?;
            if !flock(&lock, true, false).ctx(|| format!("lock {}", path.display()))? {
                continue;
            }
            // A cleaner may have taken and removed it between mkdir and flock: make sure it is still ours.
            match fs::metadata(&path) {
                Ok(m)
                    if m.ino()
                        == lock
                            .metadata()
                            .ctx(|| format!("stat {}", path.display()))?
                            .ino() =>
                {
                    return Ok(WorkDir { path, _lock: lock })
                }
                _ => continue,
            }
        }
        Err(io::Error::other("could not create a unique temp dir"))
            .ctx(|| tmp_root.display().to_string())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = remove_any(&self.path);
    }
}

/// Removes every entry of `tmp_root` that no live process holds a lock on.
pub fn clean_stale(tmp_root: &Path) {
    let Ok(entries) = fs::read_dir(tmp_root) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(f) = File::open(&p) else { continue };
        if let Ok(true) = flock(&f, true, false) {
            let _ = remove_any(&p);
        }
    }
}

/// Copies a whole tree preserving type, mode, owner, times, xattrs (overlay ones included),
/// device numbers and hard links: the parent step of a vfs layer.
pub fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut dirs: Vec<(PathBuf, fs::Metadata)> = Vec::new();
    copy_entry(src, dst, &mut links, &mut dirs)?;
    // Directory times last: creating children changes them.
    for (d, m) in dirs.iter().rev() {
        set_times(d, m)?;
    }
    Ok(())
}

fn copy_entry(
    src: &Path,
    dst: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
    dirs: &mut Vec<(PathBuf, fs::Metadata)>,
) -> io::Result<()> {
    let m = fs::symlink_metadata(src)?;
    let ft = m.file_type();
    if ft.is_dir() {
        match fs::create_dir(dst) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        for e in fs::read_dir(src)? {
            let e = e?;
            copy_entry(&e.path(), &dst.join(e.file_name()), links, dirs)?;
        }
        finish_meta(src, dst, &m)?;
        dirs.push((dst.to_path_buf(), m));
        return Ok(());
    }
    if !ft.is_symlink() && m.nlink() > 1 {
        if let Some(first) = links.get(&(m.dev(), m.ino())) {
            return fs::hard_link(first, dst);
        }
        links.insert((m.dev(), m.ino()), dst.to_path_buf());
    }
    if ft.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(src)?, dst)?;
    } else if ft.is_file() {
        fs::copy(src, dst)?;
    } else {
        let c = std::ffi::CString::new(dst.as_os_str().as_bytes())?;
        if unsafe { libc::mknod(c.as_ptr(), m.mode(), m.rdev()) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    finish_meta(src, dst, &m)?;
    set_times(dst, &m)
}

fn finish_meta(src: &Path, dst: &Path, m: &fs::Metadata) -> io::Result<()> {
    std::os::unix::fs::lchown(dst, Some(m.uid()), Some(m.gid()))?;
    if !m.file_type().is_symlink() {
        // chown clears setuid bits, so the mode goes after it.
        fs::set_permissions(dst, fs::Permissions::from_mode(m.mode() & 0o7777))?;
    }
    if let Ok(names) = xattr::list(src) {
        for n in names {
            if let Ok(Some(v)) = xattr::get(src, &n) {
                xattr::set(dst, &n, &v)?;
            }
        }
    }
    Ok(())
}

fn set_times(p: &Path, m: &fs::Metadata) -> io::Result<()> {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes())?;
    let ts = [
        libc::timespec {
            tv_sec: m.atime(),
            tv_nsec: m.atime_nsec(),
        },
        libc::timespec {
            tv_sec: m.mtime(),
            tv_nsec: m.mtime_nsec(),
        },
    ];
    if unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn copy_tree_keeps_links_devices_owners_and_xattrs() {
        let s = berth_testkit::Scratch::new("copy-tree");
        let src = s.join("src");
        fs::create_dir_all(src.join("d/sub")).unwrap();
        fs::write(src.join("d/a"), b"data").unwrap();
        fs::hard_link(src.join("d/a"), src.join("b")).unwrap();
        symlink("d/a", src.join("l")).unwrap();
        fs::set_permissions(src.join("d/a"), fs::Permissions::from_mode(0o4755)).unwrap();
        std::os::unix::fs::lchown(src.join("d/sub"), Some(1000), Some(1000)).unwrap();
        xattr::set(src.join("d/sub"), "trusted.overlay.opaque", b"y").unwrap();
        let fifo = std::ffi::CString::new(src.join("fifo").as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0);
        let wh = std::ffi::CString::new(src.join("d/.gone").as_os_str().as_bytes()).unwrap();
        assert_eq!(
            unsafe { libc::mknod(wh.as_ptr(), libc::S_IFCHR | 0o600, 0) },
            0
        );
        std::os::unix::fs::lchown(src.join("d/a"), Some(0), Some(0)).unwrap();
        fs::set_permissions(src.join("d/a"), fs::Permissions::from_mode(0o4755)).unwrap();

        let st = std::process::Command::new("touch")
            .arg("-d")
            .arg("@1000000")
            .arg(src.join("d"))
            .status()
            .unwrap();
        assert!(st.success());

        let dst = s.join("dst");
        copy_tree(&src, &dst).unwrap();
        let a = fs::metadata(dst.join("d/a")).unwrap();
        assert_eq!(
            a.ino(),
            fs::metadata(dst.join("b")).unwrap().ino(),
            "hard link kept"
        );
        assert_eq!(a.mode() & 0o7777, 0o4755, "setuid kept");
        assert_eq!(fs::read_link(dst.join("l")).unwrap(), Path::new("d/a"));
        let sub = fs::metadata(dst.join("d/sub")).unwrap();
        assert_eq!((sub.uid(), sub.gid()), (1000, 1000));
        assert_eq!(
            xattr::get(dst.join("d/sub"), "trusted.overlay.opaque")
                .unwrap()
                .as_deref(),
            Some(&b"y"[..])
        );
        assert_eq!(
            fs::metadata(dst.join("fifo")).unwrap().mode() & libc::S_IFMT,
            libc::S_IFIFO
        );
        let w = fs::symlink_metadata(dst.join("d/.gone")).unwrap();
        assert_eq!((w.mode() & libc::S_IFMT, w.rdev()), (libc::S_IFCHR, 0));
        assert_eq!(
            fs::metadata(dst.join("d")).unwrap().mtime(),
            1000000,
            "directory times set after their children"
        );
    }
}
