//! The spec's mounts: option parsing and one mount each, in order.

use super::{mkdir_all_in_root, open_in_root, touch_in_root};
use crate::error::{Error, Result};
use crate::sys;
use oci_spec::runtime::Mount;
use std::ffi::CString;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

/// (option, clear?, flag)
pub const KNOWN_FLAGS: [(&str, bool, libc::c_ulong); 26] = [
    ("async", true, libc::MS_SYNCHRONOUS),
    ("atime", true, libc::MS_NOATIME),
    ("defaults", false, 0),
    ("dev", true, libc::MS_NODEV),
    ("diratime", true, libc::MS_NODIRATIME),
    ("dirsync", false, libc::MS_DIRSYNC),
    ("exec", true, libc::MS_NOEXEC),
    ("iversion", false, libc::MS_I_VERSION),
    ("lazytime", false, libc::MS_LAZYTIME),
    ("loud", true, libc::MS_SILENT),
    ("mand", false, libc::MS_MANDLOCK),
    ("noatime", false, libc::MS_NOATIME),
    ("nodev", false, libc::MS_NODEV),
    ("nodiratime", false, libc::MS_NODIRATIME),
    ("noexec", false, libc::MS_NOEXEC),
    ("nomand", true, libc::MS_MANDLOCK),
    ("norelatime", true, libc::MS_RELATIME),
    ("nostrictatime", true, libc::MS_STRICTATIME),
    ("nosuid", false, libc::MS_NOSUID),
    ("nosymfollow", false, MS_NOSYMFOLLOW),
    ("relatime", false, libc::MS_RELATIME),
    ("ro", false, libc::MS_RDONLY),
    ("rw", true, libc::MS_RDONLY),
    ("strictatime", false, libc::MS_STRICTATIME),
    ("suid", true, libc::MS_NOSUID),
    ("symfollow", true, MS_NOSYMFOLLOW),
];

/// Linux 5.10; not in the libc crate.
const MS_NOSYMFOLLOW: libc::c_ulong = 256;

pub const PROPAGATION: [(&str, libc::c_ulong); 8] = [
    ("private", libc::MS_PRIVATE),
    ("rprivate", libc::MS_PRIVATE | libc::MS_REC),
    ("shared", libc::MS_SHARED),
    ("rshared", libc::MS_SHARED | libc::MS_REC),
    ("slave", libc::MS_SLAVE),
    ("rslave", libc::MS_SLAVE | libc::MS_REC),
    ("unbindable", libc::MS_UNBINDABLE),
    ("runbindable", libc::MS_UNBINDABLE | libc::MS_REC),
];

/// A mount's options split into flags, propagation changes and the data string.
#[derive(Debug, Default, PartialEq)]
pub struct Options {
    pub flags: libc::c_ulong,
    pub propagation: Vec<libc::c_ulong>,
    pub bind: bool,
    pub recursive: bool,
    pub data: String,
    /// Recursive attributes (rro, rnosuid...) applied with mount_setattr(AT_RECURSIVE).
    pub attr_set: u64,
    pub attr_clr: u64,
    /// tmpfs only: copy what the image had at the destination into the new tmpfs.
    pub tmpcopyup: bool,
    /// ridmap: the idmapping covers the submounts of an rbind too.
    pub ridmap: bool,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const MOUNT_ATTR__ATIME: u64 = 0x70;
const MOUNT_ATTR_RELATIME: u64 = 0x0;
const MOUNT_ATTR_NOATIME: u64 = 0x10;
const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

/// (option, set?, attribute)
pub const RECURSIVE: [(&str, bool, u64); 17] = [
    ("rro", true, MOUNT_ATTR_RDONLY),
    ("rrw", false, MOUNT_ATTR_RDONLY),
    ("rnosuid", true, MOUNT_ATTR_NOSUID),
    ("rsuid", false, MOUNT_ATTR_NOSUID),
    ("rnodev", true, MOUNT_ATTR_NODEV),
    ("rdev", false, MOUNT_ATTR_NODEV),
    ("rnoexec", true, MOUNT_ATTR_NOEXEC),
    ("rexec", false, MOUNT_ATTR_NOEXEC),
    ("rnodiratime", true, MOUNT_ATTR_NODIRATIME),
    ("rdiratime", false, MOUNT_ATTR_NODIRATIME),
    ("rrelatime", true, MOUNT_ATTR_RELATIME),
    ("rnorelatime", false, MOUNT_ATTR_RELATIME),
    ("rnoatime", true, MOUNT_ATTR_NOATIME),
    ("ratime", false, MOUNT_ATTR_NOATIME),
    ("rstrictatime", true, MOUNT_ATTR_STRICTATIME),
    ("rnosymfollow", true, MOUNT_ATTR_NOSYMFOLLOW),
    ("rsymfollow", false, MOUNT_ATTR_NOSYMFOLLOW),
];

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE).
fn setattr_recursive(fd: RawFd, set: u64, clr: u64) -> std::io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

pub fn parse_options(opts: &[String]) -> Result<Options> {
    let mut o = Options::default();
    for opt in opts {
        let s = opt.as_str();
        if let Some((_, clear, f)) = KNOWN_FLAGS.iter().find(|(n, ..)| *n == s) {
            if *clear {
                o.flags &= !f;
            } else {
                o.flags |= f;
            }
        } else if let Some((_, f)) = PROPAGATION.iter().find(|(n, _)| *n == s) {
            o.propagation.push(*f);
        } else if s == "bind" {
            o.bind = true;
        } else if s == "rbind" {
            o.bind = true;
            o.recursive = true;
        } else if s == "tmpcopyup" {
            o.tmpcopyup = true;
        } else if s == "idmap" || s == "ridmap" {
            // The mapping itself comes from the mount's uidMappings/gidMappings (rootfs::idmap).
            o.ridmap |= s == "ridmap";
        } else if let Some((_, set, a)) = RECURSIVE.iter().find(|(n, ..)| *n == s) {
            // The atime modes are one field: setting one clears the others.
            let field = if *a & MOUNT_ATTR__ATIME != 0
                || *a == MOUNT_ATTR_RELATIME && s.contains("relatime")
            {
                MOUNT_ATTR__ATIME
            } else {
                0
            };
            if *set {
                o.attr_set = (o.attr_set & !field) | a;
                o.attr_clr |= field;
            } else {
                o.attr_clr |= a | field;
                o.attr_set &= !a;
            }
        } else {
            if !o.data.is_empty() {
                o.data.push(',');
            }
            o.data.push_str(s);
        }
    }
    Ok(o)
}

/// Flags that a bind remount must keep (they may be locked in a user namespace).
fn locked_flags(target: &std::ffi::CStr) -> libc::c_ulong {
    let Ok(st) = sys::statvfs(target) else {
        return 0;
    };
    let mut f = 0;
    for (vfs, ms) in [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_RDONLY, libc::MS_RDONLY),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if st.f_flag & vfs != 0 {
            f |= ms;
        }
    }
    f
}

/// Remounts a bind mount with `flags`, keeping the locked ones it already has.
pub fn remount_bind(target: &std::ffi::CStr, flags: libc::c_ulong, what: &Path) -> Result<()> {
    let keep = locked_flags(target) & (libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC);
    let all = libc::MS_BIND | libc::MS_REMOUNT | flags | keep;
    match sys::mount(None, target, None, all, None) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            // Atime flags may be locked too; retry keeping everything the mount has.
            let all = libc::MS_BIND | libc::MS_REMOUNT | flags | locked_flags(target);
            sys::mount(None, target, None, all, None)
                .map_err(|e| Error::sys(format!("remount {}", what.display()), e))
        }
        Err(e) => Err(Error::sys(format!("remount {}", what.display()), e)),
    }
}

pub struct Ctx {
    pub root: RawFd,
    /// In a new cgroup namespace (cgroup v1 hierarchies are mounted, not bound).
    pub cgroupns: bool,
    /// In a user namespace we created: sysfs falls back to a bind of /sys.
    pub userns: bool,
}

/// `userns`: the user namespace of an idmapped bind (see rootfs::idmap).
pub fn mount_one(ctx: &Ctx, m: &Mount, userns: Option<RawFd>) -> Result<()> {
    let dest = m.destination();
    let typ = m.typ().as_deref().unwrap_or("");
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]))?;
    let bind = opts.bind || typ == "bind";
    let src = m.source().as_deref();
    if typ == "cgroup" && !bind {
        return mount_cgroup(ctx, m, &opts);
    }
    if (typ == "proc" || typ == "sysfs") && !bind {
        ordinary_dir(ctx.root, dest, typ)?;
    }
    let target_fd = if bind {
        let src =
            src.ok_or_else(|| Error::invalid(format!("bind mount {}: no source", dest.display())))?;
        let st = std::fs::metadata(src)
            .map_err(|e| Error::sys(format!("bind mount source {}", src.display()), e))?;
        if st.is_dir() {
            mkdir_all_in_root(ctx.root, dest, 0o755)?
        } else {
            touch_in_root(ctx.root, dest, 0o644)?
        }
    } else {
        mkdir_all_in_root(ctx.root, dest, 0o755)?
    };
    let target = sys::fd_path(target_fd.as_raw_fd());
    let in_ctx = |e: std::io::Error| {
        Error::sys(
            format!("mount {} on {}", typ_or_src(typ, src), dest.display()),
            e,
        )
    };
    if bind {
        let s = sys::cstr(src.unwrap());
        let rec = if opts.recursive { libc::MS_REC } else { 0 };
        match userns {
            Some(ns) => {
                super::idmap::bind(&s, target_fd.as_raw_fd(), ns, opts.recursive, opts.ridmap)
                    .map_err(|e| {
                        e.context(format!(
                            "idmapped bind of {} on {}",
                            src.unwrap().display(),
                            dest.display()
                        ))
                    })?
            }
            None => {
                sys::mount(Some(&s), &target, None, libc::MS_BIND | rec, None).map_err(in_ctx)?
            }
        }
        // The bind above created a new mount: reopen the destination to address it.
        drop(target_fd);
        let fd = open_in_root(ctx.root, dest, libc::O_PATH)
            .map_err(|e| Error::sys(format!("open {}", dest.display()), e))?;
        let target = sys::fd_path(fd.as_raw_fd());
        let extra = opts.flags & !(libc::MS_BIND | libc::MS_REC);
        if extra != 0 {
            remount_bind(&target, extra, dest)?;
        }
        for p in &opts.propagation {
            sys::mount(None, &target, None, *p, None)
                .map_err(|e| Error::sys(format!("set propagation of {}", dest.display()), e))?;
        }
        if opts.attr_set | opts.attr_clr != 0 {
            setattr_recursive(fd.as_raw_fd(), opts.attr_set, opts.attr_clr).map_err(|e| {
                Error::sys(format!("set recursive attributes of {}", dest.display()), e)
            })?;
        }
        return Ok(());
    }
    // tmpcopyup: keep a handle on what the image has there, to copy it into the new tmpfs.
    let below = if opts.tmpcopyup && typ == "tmpfs" {
        Some(
            open_in_root(ctx.root, dest, libc::O_RDONLY | libc::O_DIRECTORY)
                .map_err(|e| Error::sys(format!("open {}", dest.display()), e))?,
        )
    } else {
        None
    };
    let fstype = sys::cstr(typ);
    let source = sys::cstr(src.map_or(Path::new(typ), |s| s));
    let data = if opts.data.is_empty() {
        None
    } else {
        Some(CString::new(opts.data.clone()).unwrap_or_default())
    };
    match sys::mount(
        Some(&source),
        &target,
        Some(&fstype),
        opts.flags,
        data.as_deref(),
    ) {
        Ok(()) => {}
        Err(e) if typ == "sysfs" && e.raw_os_error() == Some(libc::EPERM) => {
            // Without our own network namespace sysfs cannot be mounted: bind the host's, like runc.
            sys::mount(
                Some(c"/sys"),
                &target,
                None,
                libc::MS_BIND | libc::MS_REC,
                None,
            )
            .map_err(in_ctx)?;
            drop(target_fd);
            let fd = open_in_root(ctx.root, dest, libc::O_PATH)
                .map_err(|e| Error::sys(format!("open {}", dest.display()), e))?;
            remount_bind(&sys::fd_path(fd.as_raw_fd()), opts.flags, dest)?;
        }
        Err(e) if typ == "mqueue" && e.raw_os_error() == Some(libc::EPERM) && ctx.userns => {
            sys::mount(
                Some(c"/dev/mqueue"),
                &target,
                None,
                libc::MS_BIND | libc::MS_REC,
                None,
            )
            .map_err(in_ctx)?;
        }
        Err(e) => return Err(in_ctx(e)),
    }
    if let Some(below) = below {
        let top = open_in_root(ctx.root, dest, libc::O_RDONLY | libc::O_DIRECTORY)
            .map_err(|e| Error::sys(format!("open {}", dest.display()), e))?;
        copy_tree(below.as_raw_fd(), top.as_raw_fd(), 0)
            .map_err(|e| Error::sys(format!("tmpcopyup {}", dest.display()), e))?;
    }
    if !opts.propagation.is_empty() || opts.attr_set | opts.attr_clr != 0 {
        let fd = open_in_root(ctx.root, dest, libc::O_PATH)
            .map_err(|e| Error::sys(format!("open {}", dest.display()), e))?;
        for p in &opts.propagation {
            sys::mount(None, &sys::fd_path(fd.as_raw_fd()), None, *p, None)
                .map_err(|e| Error::sys(format!("set propagation of {}", dest.display()), e))?;
        }
        if opts.attr_set | opts.attr_clr != 0 {
            setattr_recursive(fd.as_raw_fd(), opts.attr_set, opts.attr_clr).map_err(|e| {
                Error::sys(format!("set recursive attributes of {}", dest.display()), e)
            })?;
        }
    }
    Ok(())
}

/// proc and sysfs go on a directory of the rootfs, never through a symlink or onto a file there
/// (an image could point them somewhere the runtime later trusts): runc's check and wording.
fn ordinary_dir(root: RawFd, dest: &Path, typ: &str) -> Result<()> {
    let parent = dest.parent().unwrap_or(Path::new("/"));
    let Some(name) = dest.file_name() else {
        return Ok(());
    };
    let dir = match open_in_root(root, parent, libc::O_PATH | libc::O_DIRECTORY) {
        Ok(d) => d,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(Error::sys(format!("open {}", parent.display()), e)),
    };
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let n = sys::cstr(name);
    if unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            n.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } < 0
    {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOENT) {
            return Ok(());
        }
        return Err(Error::sys(format!("stat {}", dest.display()), e));
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(Error::invalid(format!(
            "error mounting {typ:?} to rootfs at {:?}: filesystem {typ:?} must be mounted on ordinary directory",
            dest.display().to_string()
        )));
    }
    Ok(())
}

/// Copies directory `from` into `to` (files, directories, symlinks, with modes and owners),
/// all through fds so nothing resolves outside the two trees.
fn copy_tree(from: RawFd, to: RawFd, depth: u32) -> std::io::Result<()> {
    if depth > 64 {
        return Err(std::io::Error::from_raw_os_error(libc::ELOOP));
    }
    let dup = unsafe { libc::fcntl(from, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let dir = unsafe { libc::fdopendir(dup) };
    if dir.is_null() {
        unsafe { libc::close(dup) };
        return Err(std::io::Error::last_os_error());
    }
    let result = (|| -> std::io::Result<()> {
        loop {
            let ent = unsafe { libc::readdir64(dir) };
            if ent.is_null() {
                return Ok(());
            }
            let name = unsafe { std::ffi::CStr::from_ptr((*ent).d_name.as_ptr()) };
            if name == c"." || name == c".." {
                continue;
            }
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            if unsafe { libc::fstatat(from, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            let mode = st.st_mode & 0o7777;
            match st.st_mode & libc::S_IFMT {
                libc::S_IFDIR => {
                    sys::mkdirat(to, name, mode)?;
                    let s = sys::openat(
                        from,
                        name,
                        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                        0,
                    )?;
                    let d = sys::openat(
                        to,
                        name,
                        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                        0,
                    )?;
                    copy_tree(s.as_raw_fd(), d.as_raw_fd(), depth + 1)?;
                }
                libc::S_IFREG => {
                    let s = sys::openat(from, name, libc::O_RDONLY | libc::O_NOFOLLOW, 0)?;
                    let d = sys::openat(
                        to,
                        name,
                        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                        mode,
                    )?;
                    let mut sf = std::fs::File::from(s);
                    let mut df = std::fs::File::from(d);
                    std::io::copy(&mut sf, &mut df)?;
                }
                libc::S_IFLNK => {
                    let mut buf = [0u8; 4096];
                    let n = unsafe {
                        libc::readlinkat(from, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
                    };
                    if n < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let target = std::ffi::CString::new(&buf[..n as usize]).unwrap_or_default();
                    sys::symlinkat(&target, to, name)?;
                }
                _ => continue, // device nodes, fifos and sockets are not copied
            }
            unsafe {
                libc::fchownat(
                    to,
                    name.as_ptr(),
                    st.st_uid,
                    st.st_gid,
                    libc::AT_SYMLINK_NOFOLLOW,
                );
                if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
                    libc::fchmodat(to, name.as_ptr(), mode, 0);
                }
            }
        }
    })();
    unsafe { libc::closedir(dir) };
    result
}

fn typ_or_src(typ: &str, src: Option<&Path>) -> String {
    match (typ, src) {
        ("" | "none" | "bind", Some(s)) => s.display().to_string(),
        (t, _) => t.to_string(),
    }
}

/// One v1 hierarchy of the host: its directory name under /sys/fs/cgroup and mount options.
struct Hierarchy {
    dir: String,
    opts: String,
    /// The caller's cgroup path in this hierarchy (for binds without a cgroup namespace).
    path: String,
}

fn v1_hierarchies() -> Vec<Hierarchy> {
    let Ok(s) = std::fs::read_to_string("/proc/self/cgroup") else {
        return vec![];
    };
    let mut out = Vec::new();
    for line in s.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or("/"));
        if ctrls.is_empty() {
            continue; // the cgroup2 line of a hybrid host
        }
        let (dir, opts) = match ctrls.strip_prefix("name=") {
            Some(n) => (n.to_string(), format!("none,{ctrls}")),
            None => (ctrls.to_string(), ctrls.to_string()),
        };
        out.push(Hierarchy {
            dir,
            opts,
            path: path.to_string(),
        });
    }
    out
}

/// `type: cgroup`: cgroup2 when the host is unified; otherwise a tmpfs with each v1 hierarchy
/// mounted (own cgroup namespace) or bound (host's) below it, read-only when asked.
fn mount_cgroup(ctx: &Ctx, m: &Mount, opts: &super::mounts::Options) -> Result<()> {
    let dest = m.destination();
    let fd = mkdir_all_in_root(ctx.root, dest, 0o755)?;
    let target = sys::fd_path(fd.as_raw_fd());
    let unified = sys::statfs_magic(c"/sys/fs/cgroup") == Some(CGROUP2_SUPER_MAGIC);
    let flags = opts.flags;
    let err = |what: &str, e| Error::sys(format!("mount {what} on {}", dest.display()), e);
    if unified {
        return match sys::mount(Some(c"cgroup2"), &target, Some(c"cgroup2"), flags, None) {
            Ok(()) => Ok(()),
            Err(e)
                if e.raw_os_error() == Some(libc::EPERM)
                    || e.raw_os_error() == Some(libc::EBUSY) =>
            {
                sys::mount(
                    Some(c"/sys/fs/cgroup"),
                    &target,
                    None,
                    libc::MS_BIND | libc::MS_REC,
                    None,
                )
                .map_err(|e| err("cgroup2", e))?;
                let fd = open_in_root(ctx.root, dest, libc::O_PATH)
                    .map_err(|e| Error::sys("reopen cgroup mount", e))?;
                remount_bind(&sys::fd_path(fd.as_raw_fd()), flags, dest)
            }
            Err(e) => Err(err("cgroup2", e)),
        };
    }
    sys::mount(
        Some(c"tmpfs"),
        &target,
        Some(c"tmpfs"),
        flags & !libc::MS_RDONLY,
        Some(c"mode=755"),
    )
    .map_err(|e| err("tmpfs", e))?;
    drop(fd);
    let base = open_in_root(ctx.root, dest, libc::O_PATH | libc::O_DIRECTORY)
        .map_err(|e| Error::sys("reopen cgroup tmpfs", e))?;
    for h in v1_hierarchies() {
        let sub = dest.join(&h.dir);
        let sfd = mkdir_all_in_root(ctx.root, &sub, 0o755)?;
        let t = sys::fd_path(sfd.as_raw_fd());
        let r = if ctx.cgroupns {
            let o = CString::new(h.opts.clone()).unwrap_or_default();
            sys::mount(Some(c"cgroup"), &t, Some(c"cgroup"), flags, Some(&o))
        } else {
            Err(std::io::Error::from_raw_os_error(libc::EPERM))
        };
        if let Err(e) = r {
            if e.raw_os_error() != Some(libc::EPERM) {
                return Err(err(&format!("cgroup {}", h.opts), e));
            }
            // No cgroup namespace of our own (or not allowed): bind our own cgroup of the host.
            let host = PathBuf::from("/sys/fs/cgroup")
                .join(&h.dir)
                .join(h.path.trim_start_matches('/'));
            sys::mount(
                Some(&sys::cstr(&host)),
                &t,
                None,
                libc::MS_BIND | libc::MS_REC,
                None,
            )
            .map_err(|e| err(&host.display().to_string(), e))?;
            drop(sfd);
            let fd = open_in_root(ctx.root, &sub, libc::O_PATH)
                .map_err(|e| Error::sys("reopen cgroup bind", e))?;
            remount_bind(
                &sys::fd_path(fd.as_raw_fd()),
                flags | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                &sub,
            )?;
        }
        // Co-mounted controllers get symlinks, as on the host (cpu -> cpu,cpuacct).
        if h.dir.contains(',') {
            for part in h.dir.split(',') {
                let _ = sys::symlinkat(&sys::cstr(&h.dir), base.as_raw_fd(), &sys::cstr(part));
            }
        }
    }
    if flags & libc::MS_RDONLY != 0 {
        remount_bind_fs(&sys::fd_path(base.as_raw_fd()), flags, dest)?;
    }
    Ok(())
}

/// Remount of a filesystem (not a bind) with new flags.
fn remount_bind_fs(target: &std::ffi::CStr, flags: libc::c_ulong, what: &Path) -> Result<()> {
    sys::mount(
        None,
        target,
        None,
        libc::MS_REMOUNT | flags,
        Some(c"mode=755"),
    )
    .map_err(|e| Error::sys(format!("remount {} read-only", what.display()), e))
}

pub const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split() {
        let o = parse_options(&[
            "rbind".into(),
            "ro".into(),
            "nosuid".into(),
            "rprivate".into(),
            "mode=755".into(),
            "size=1k".into(),
        ])
        .unwrap();
        assert!(o.bind && o.recursive);
        assert_eq!(o.flags, libc::MS_RDONLY | libc::MS_NOSUID);
        assert_eq!(o.propagation, vec![libc::MS_PRIVATE | libc::MS_REC]);
        assert_eq!(o.data, "mode=755,size=1k");
        let o = parse_options(&["ro".into(), "rw".into()]).unwrap();
        assert_eq!(o.flags, 0);
        let o = parse_options(&[
            "rro".into(),
            "rnosuid".into(),
            "rnoatime".into(),
            "tmpcopyup".into(),
        ])
        .unwrap();
        assert_eq!(
            o.attr_set,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOATIME
        );
        assert_eq!(o.attr_clr, MOUNT_ATTR__ATIME);
        assert!(o.tmpcopyup && o.data.is_empty());
        assert!(parse_options(&["ridmap".into()]).unwrap().ridmap);
    }
}
