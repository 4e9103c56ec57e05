//! CVE-2019-5736: a container process must not be able to overwrite the runtime binary through
//! /proc/<pid>/exe. Rather than copying the binary into a memfd on every start (+65% start time
//! for runc), the runtime re-executes itself once through a read-only bind mount of its own
//! binary, made in a private mount namespace: /proc/<pid>/exe then points into a read-only
//! mount, so opening it for writing fails with EROFS (and ETXTBSY while it runs).

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
        return Err(Error::internal("runtime binary is still writable after sealing; refusing to go on"));
    }
    if sys::thread_count() > 1 {
        return Err(Error::internal("cannot seal the runtime binary from a multi-threaded process"));
    }
    let path = std::fs::read_link("/proc/self/exe").map_err(|e| Error::sys("readlink /proc/self/exe", e))?;
    let p = sys::cstr(&path);
    sys::unshare(libc::CLONE_NEWNS).map_err(|e| Error::sys("unshare mount namespace", e))?;
    // Slave, so nothing done here propagates back to the host.
    sys::mount(None, c"/", None, libc::MS_SLAVE | libc::MS_REC, None)
        .map_err(|e| Error::sys("make / rslave", e))?;
    sys::mount(Some(&p), &p, None, libc::MS_BIND, None).map_err(|e| Error::sys(format!("bind {}", path.display()), e))?;
    sys::mount(None, &p, None, libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY, None)
        .map_err(|e| Error::sys(format!("remount {} read-only", path.display()), e))?;
    let args: Vec<std::ffi::CString> = std::env::args_os().map(sys::cstr).collect();
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    std::env::set_var(SEALED_ENV, "1");
    unsafe { libc::execv(p.as_ptr(), argv.as_ptr()) };
    Err(Error::last(format!("re-exec {}", path.display())))
}

/// Removes the marker so it does not reach hooks or containers.
pub fn clear_marker() {
    if std::env::var_os(SEALED_ENV).is_some() {
        std::env::remove_var(SEALED_ENV);
    }
}
