//! Idmapped bind mounts (a mount's uidMappings/gidMappings, options idmap/ridmap): the parent
//! makes one user namespace per mapped mount (a short-lived child's, with the mount's maps) and
//! the init applies it with open_tree + mount_setattr(MOUNT_ATTR_IDMAP) + move_mount.

use crate::error::{Error, Result};
use crate::sys;
use oci_spec::runtime::{LinuxIdMapping, Mount};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

/// Whether a mount asks for an idmapped mount.
pub fn wanted(m: &Mount) -> bool {
    let opts = m.options().as_deref().unwrap_or(&[]);
    let maps = m.uid_mappings().as_ref().is_some_and(|v| !v.is_empty())
        || m.gid_mappings().as_ref().is_some_and(|v| !v.is_empty());
    maps || opts.iter().any(|o| o == "idmap" || o == "ridmap")
}

/// One user-namespace fd per idmapped mount, by index in spec.mounts.
pub fn prepare(mounts: &[Mount]) -> Result<Vec<(usize, OwnedFd)>> {
    let mut out = Vec::new();
    for (i, m) in mounts.iter().enumerate().filter(|(_, m)| wanted(m)) {
        let bind = m.typ().as_deref() == Some("bind")
            || m.options()
                .iter()
                .flatten()
                .any(|o| o == "bind" || o == "rbind");
        let (uids, gids) = (
            m.uid_mappings().as_deref().unwrap_or(&[]),
            m.gid_mappings().as_deref().unwrap_or(&[]),
        );
        if !bind || uids.is_empty() || gids.is_empty() {
            return Err(Error::invalid(format!(
                "mount {}: idmapped mounts need a bind mount with both uidMappings and gidMappings",
                m.destination().display()
            )));
        }
        out.push((
            i,
            userns_with(uids, gids)
                .map_err(|e| e.context(format!("idmapped mount {}", m.destination().display())))?,
        ));
    }
    Ok(out)
}

fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// A user namespace with these maps: a child unshares one and waits while we write its maps
/// and open it; then it exits.
fn userns_with(uids: &[LinuxIdMapping], gids: &[LinuxIdMapping]) -> Result<OwnedFd> {
    let (ready_r, ready_w) = sys::pipe().map_err(|e| Error::sys("pipe", e))?;
    let (done_r, done_w) = sys::pipe().map_err(|e| Error::sys("pipe", e))?;
    let pid = sys::fork().map_err(|e| Error::sys("fork", e))?;
    if pid == 0 {
        drop(ready_r);
        drop(done_w);
        let ok = unsafe { libc::unshare(libc::CLONE_NEWUSER) } == 0;
        let _ = sys::write_all_fd(ready_w.as_raw_fd(), if ok { b"1" } else { b"0" });
        let mut b = [0u8; 1];
        unsafe { libc::read(done_r.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
        unsafe { libc::_exit(0) };
    }
    drop(ready_w);
    drop(done_r);
    let result = (|| {
        let mut b = [0u8; 1];
        let n = unsafe { libc::read(ready_r.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
        if n != 1 || b[0] != b'1' {
            return Err(Error::internal(
                "could not create a user namespace for the mapping",
            ));
        }
        for (file, text) in [("uid_map", map_text(uids)), ("gid_map", map_text(gids))] {
            let path = format!("/proc/{pid}/{file}");
            std::fs::write(&path, &text).map_err(|e| Error::sys(format!("write {path}"), e))?;
        }
        let path = format!("/proc/{pid}/ns/user");
        Ok(std::fs::File::open(&path)
            .map_err(|e| Error::sys(format!("open {path}"), e))?
            .into())
    })();
    drop(done_w);
    let _ = sys::waitpid(pid, 0);
    result
}

/// Clones `src` (with its submounts for rbind), idmaps the clone (all of it with `recursive`,
/// option ridmap) with `userns` and attaches it on `target` (an O_PATH fd of the destination).
pub fn bind(
    src: &std::ffi::CStr,
    target: RawFd,
    userns: RawFd,
    rbind: bool,
    recursive: bool,
) -> Result<()> {
    let rec = if rbind {
        libc::AT_RECURSIVE as libc::c_uint
    } else {
        0
    };
    let tree = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            src.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | rec,
        )
    };
    if tree < 0 {
        return Err(Error::last("open_tree"));
    }
    let tree = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(tree as i32) };
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns as u64,
    };
    let flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(Error::last("mount_setattr MOUNT_ATTR_IDMAP"));
    }
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target,
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(Error::last("move_mount"));
    }
    Ok(())
}
