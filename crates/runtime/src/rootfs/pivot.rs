//! Switching the root: pivot_root without a put_old directory (crun's way), or MS_MOVE + chroot.

use crate::error::{Error, Result};
use crate::sys;
use std::os::fd::AsRawFd;
use std::path::Path;

pub enum Switched {
    Pivot,
    Chroot,
}

/// fchdir(new); pivot_root(".", "."); fchdir(old); make it rslave; umount2(".", MNT_DETACH);
/// chdir("/"). Falls back to chroot when the root is on ramfs/initramfs (EINVAL).
pub fn pivot_root(rootfs: &Path, no_pivot: bool) -> Result<Switched> {
    if no_pivot {
        move_chroot(rootfs)?;
        return Ok(Switched::Chroot);
    }
    let old = sys::open(c"/", libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(|e| Error::sys("open /", e))?;
    let new = sys::open(&sys::cstr(rootfs), libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(|e| Error::sys(format!("open {}", rootfs.display()), e))?;
    sys::fchdir(new.as_raw_fd())
        .map_err(|e| Error::sys(format!("chdir {}", rootfs.display()), e))?;
    match sys::pivot_root(c".", c".") {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            sys::warn(&format!(
                "pivot_root {}: {e}; the root is probably on ramfs, falling back to chroot",
                rootfs.display()
            ));
            move_chroot(rootfs)?;
            return Ok(Switched::Chroot);
        }
        Err(e) => return Err(Error::sys(format!("pivot_root {}", rootfs.display()), e)),
    }
    sys::fchdir(old.as_raw_fd()).map_err(|e| Error::sys("chdir to the old root", e))?;
    // Slave so the detach below cannot propagate to the host.
    sys::mount(None, c".", None, libc::MS_SLAVE | libc::MS_REC, None)
        .map_err(|e| Error::sys("make old root rslave", e))?;
    sys::umount2(c".", libc::MNT_DETACH).map_err(|e| Error::sys("detach old root", e))?;
    sys::chdir(c"/").map_err(|e| Error::sys("chdir /", e))?;
    Ok(Switched::Pivot)
}

fn move_chroot(rootfs: &Path) -> Result<()> {
    let r = sys::cstr(rootfs);
    sys::chdir(&r).map_err(|e| Error::sys(format!("chdir {}", rootfs.display()), e))?;
    sys::mount(Some(&r), c"/", None, libc::MS_MOVE, None)
        .map_err(|e| Error::sys(format!("move {} to /", rootfs.display()), e))?;
    sys::chroot(c".").map_err(|e| Error::sys(format!("chroot {}", rootfs.display()), e))?;
    sys::chdir(c"/").map_err(|e| Error::sys("chdir /", e))
}
