//! /dev: the default nodes, the spec's devices, the usual symlinks.

use super::{mkdir_all_in_root, open_in_root, touch_in_root};
use crate::error::{Error, Result};
use crate::sys;
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

/// One node to create.
pub struct Node<'a> {
    pub path: &'a Path,
    pub kind: u32,
    pub major: i64,
    pub minor: i64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

pub const DEFAULTS: [(&str, i64, i64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

pub fn node_of(d: &LinuxDevice) -> Result<Node<'_>> {
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
        LinuxDeviceType::B => libc::S_IFBLK,
        LinuxDeviceType::P => libc::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(Error::invalid(format!(
                "device {}: type a is not a node type",
                d.path().display()
            )))
        }
    };
    Ok(Node {
        path: d.path(),
        kind,
        major: d.major(),
        minor: d.minor(),
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

/// mknod in the root, or (in a user namespace, where mknod is refused) a bind of the host's node.
pub fn create(root: RawFd, n: &Node, bind: bool) -> Result<()> {
    if !n.path.starts_with("/dev") {
        return Err(Error::invalid(format!(
            "device {}: not below /dev",
            n.path.display()
        )));
    }
    if bind {
        let fd = touch_in_root(root, n.path, 0)?;
        let src = sys::cstr(n.path);
        return sys::mount(
            Some(&src),
            &sys::fd_path(fd.as_raw_fd()),
            None,
            libc::MS_BIND,
            None,
        )
        .map_err(|e| Error::sys(format!("bind device {}", n.path.display()), e));
    }
    let parent = n.path.parent().unwrap_or(Path::new("/dev"));
    let name = n
        .path
        .file_name()
        .ok_or_else(|| Error::invalid(format!("device {}: no name", n.path.display())))?;
    let dir = mkdir_all_in_root(root, parent, 0o755)?;
    let cname = sys::cstr(name);
    match sys::mknodat(
        dir.as_raw_fd(),
        &cname,
        n.kind | n.mode,
        sys::makedev(n.major, n.minor),
    ) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            // Replace whatever the image had there (a file, a symlink planted to escape...).
            unsafe { libc::unlinkat(dir.as_raw_fd(), cname.as_ptr(), 0) };
            sys::mknodat(
                dir.as_raw_fd(),
                &cname,
                n.kind | n.mode,
                sys::makedev(n.major, n.minor),
            )
            .map_err(|e| Error::sys(format!("mknod {}", n.path.display()), e))?;
        }
        Err(e) => return Err(Error::sys(format!("mknod {}", n.path.display()), e)),
    }
    let fd = open_in_root(root, n.path, libc::O_PATH | libc::O_NOFOLLOW)
        .map_err(|e| Error::sys(format!("open {}", n.path.display()), e))?;
    sys::fchownat_empty(fd.as_raw_fd(), n.uid, n.gid)
        .map_err(|e| Error::sys(format!("chown {}", n.path.display()), e))?;
    sys::fchmod_path_fd(fd.as_raw_fd(), n.mode)
        .map_err(|e| Error::sys(format!("chmod {}", n.path.display()), e))?;
    Ok(())
}

/// Default nodes not overridden by the spec, then the spec's devices.
pub fn create_all(root: RawFd, devices: &[LinuxDevice], bind: bool) -> Result<()> {
    for (path, major, minor) in DEFAULTS {
        if devices.iter().any(|d| d.path() == Path::new(path)) {
            continue;
        }
        let n = Node {
            path: Path::new(path),
            kind: libc::S_IFCHR,
            major,
            minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        };
        create(root, &n, bind)?;
    }
    for d in devices {
        create(root, &node_of(d)?, bind)?;
    }
    Ok(())
}

/// /dev/fd, stdin, stdout, stderr, ptmx (-> pts/ptmx) and core, as runc makes them.
pub fn symlinks(root: RawFd, with_kcore: bool) -> Result<()> {
    let dev = mkdir_all_in_root(root, Path::new("/dev"), 0o755)?;
    let mut links: Vec<(&std::ffi::CStr, &std::ffi::CStr)> = vec![
        (c"/proc/self/fd", c"fd"),
        (c"/proc/self/fd/0", c"stdin"),
        (c"/proc/self/fd/1", c"stdout"),
        (c"/proc/self/fd/2", c"stderr"),
    ];
    if with_kcore {
        links.push((c"/proc/kcore", c"core"));
    }
    for (target, name) in links {
        match sys::symlinkat(target, dev.as_raw_fd(), name) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => {
                return Err(Error::sys(
                    format!("symlink /dev/{}", name.to_string_lossy()),
                    e,
                ))
            }
        }
    }
    // ptmx must point at this devpts instance's ptmx, whatever the image shipped.
    unsafe { libc::unlinkat(dev.as_raw_fd(), c"ptmx".as_ptr(), 0) };
    sys::symlinkat(c"pts/ptmx", dev.as_raw_fd(), c"ptmx")
        .map_err(|e| Error::sys("symlink /dev/ptmx", e))?;
    Ok(())
}
