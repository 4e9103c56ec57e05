//! Pinned network namespaces: a namespace bind-mounted on a file (as `ip netns` and podman do),
//! made before the runtime starts the container, so its network is ready before its process
//! runs. Work inside a namespace happens on a short-lived thread that setns()es, so the
//! caller's own namespace never changes.

use crate::error::{Error, Result};
use crate::netlink::Netlink;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).expect("path without NUL")
}

fn last(what: String) -> Error {
    Error::io(what, std::io::Error::last_os_error())
}

/// Makes a new network namespace pinned at `path` with `lo` up.
pub fn create(path: &Path) -> Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| Error::io(format!("create {}", d.display()), e))?;
    }
    std::fs::File::create(path).map_err(|e| Error::io(format!("create {}", path.display()), e))?;
    let p = path.to_path_buf();
    let r = std::thread::spawn(move || -> Result<()> {
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(last("unshare network namespace".into()));
        }
        let src = c"/proc/thread-self/ns/net";
        let dst = cstr(&p);
        if unsafe {
            libc::mount(
                src.as_ptr(),
                dst.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        } != 0
        {
            return Err(last(format!("pin network namespace on {}", p.display())));
        }
        let mut nl = Netlink::open()?;
        let lo = nl
            .link_index("lo")?
            .ok_or_else(|| Error::internal("no lo in a new network namespace"))?;
        nl.set_up(lo, None)
    })
    .join()
    .unwrap_or_else(|_| Err(Error::internal("netns thread panicked")));
    if r.is_err() {
        remove(path);
    }
    r
}

/// Unpins and deletes the namespace file (the namespace goes with its last process).
pub fn remove(path: &Path) {
    let c = cstr(path);
    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    let _ = std::fs::remove_file(path);
}

pub fn open(path: &Path) -> Result<OwnedFd> {
    let f = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("open network namespace {}", path.display()), e))?;
    Ok(OwnedFd::from(f))
}

/// Runs `f` with a netlink socket inside the namespace `ns`.
pub fn with_netlink<T: Send + 'static>(
    ns: &OwnedFd,
    f: impl FnOnce(&mut Netlink) -> Result<T> + Send + 'static,
) -> Result<T> {
    let fd = ns.try_clone().map_err(|e| Error::io("dup netns fd", e))?;
    std::thread::spawn(move || -> Result<T> {
        if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(last("enter network namespace".into()));
        }
        let mut nl = Netlink::open()?;
        f(&mut nl)
    })
    .join()
    .unwrap_or_else(|_| Err(Error::internal("netns thread panicked")))
}
