//! CVE-2019-5736: a container process must not be able to overwrite the runtime binary through
//! /proc/<pid>/exe. Rather than copying the binary into a memfd on every start (+65% start time
//! for runc), the runtime re-executes itself once through a read-only bind mount of its own
//! binary: /proc/<pid>/exe then points into a read-only mount, so opening it for writing fails
//! with EROFS (and ETXTBSY while it runs). The bind is a detached mount (open_tree
//! OPEN_TREE_CLONE + mount_setattr RDONLY + execveat), so no mount namespace is created and
//! nothing is left to tear down; kernels without open_tree get a private mount namespace instead.

use crate::error::{Error, Result};
use crate::sys;

const SEALED_ENV: &str = "_BERTH_RUNTIME_SEALED";

/// Makes sure the running binary sits on a read-only mount, re-executing through one if not.
/// Returns only when sealed (or when the binary already was on a read-only filesystem).
pub fn seal_exe() -> Result<()> {
    let exe = c"/proc/self/exe";
    if let Ok(st) = sys::statvfs(exe) {
        if st.f_flag & libc::ST_RDONLY != 0 {
            return Ok(());
        }
    }
    if std::env::var_os(SEALED_ENV).is_some() {
        return Err(Error::internal(
            "runtime binary is still writable after sealing; refusing to go on",
        ));
    }
    if sys::thread_count() > 1 {
        return Err(Error::internal(
            "cannot seal the runtime binary from a multi-threaded process",
        ));
    }
    let args: Vec<std::ffi::CString> = std::env::args_os().map(sys::cstr).collect();
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    std::env::set_var(SEALED_ENV, "1");
    match detached_ro_exe() {
        Ok(fd) => {
            extern "C" {
                static environ: *const *const libc::c_char;
            }
            unsafe {
                libc::syscall(
                    libc::SYS_execveat,
                    fd,
                    c"".as_ptr(),
                    argv.as_ptr(),
                    environ,
                    libc::AT_EMPTY_PATH,
                );
            }
            return Err(Error::last(
                "re-exec the runtime through its read-only bind",
            ));
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {}
        Err(e) => return Err(Error::sys("read-only bind of the runtime binary", e)),
    }
    let path = std::fs::read_link("/proc/self/exe")
        .map_err(|e| Error::sys("readlink /proc/self/exe", e))?;
    let p = sys::cstr(&path);
    sys::unshare(libc::CLONE_NEWNS).map_err(|e| Error::sys("unshare mount namespace", e))?;
    // Slave, so nothing done here propagates back to the host.
    sys::mount(None, c"/", None, libc::MS_SLAVE | libc::MS_REC, None)
        .map_err(|e| Error::sys("make / rslave", e))?;
    sys::mount(Some(&p), &p, None, libc::MS_BIND, None)
        .map_err(|e| Error::sys(format!("bind {}", path.display()), e))?;
    sys::mount(
        None,
        &p,
        None,
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
        None,
    )
    .map_err(|e| Error::sys(format!("remount {} read-only", path.display()), e))?;
    unsafe { libc::execv(p.as_ptr(), argv.as_ptr()) };
    Err(Error::last(format!("re-exec {}", path.display())))
}

/// Removes the marker so it does not reach hooks or containers.
pub fn clear_marker() {
    if std::env::var_os(SEALED_ENV).is_some() {
        std::env::remove_var(SEALED_ENV);
    }
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A detached, read-only bind mount of our own binary, as an fd to exec.
fn detached_ro_exe() -> std::io::Result<libc::c_int> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const MOUNT_ATTR_RDONLY: u64 = 1;
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c"/proc/self/exe".as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        unsafe { libc::close(fd as libc::c_int) };
        return Err(e);
    }
    Ok(fd as libc::c_int)
}
