//! `berth run --device HOST:CONTAINER:PERMS`: the permissions reach the device cgroup as given,
//! so a device passed read-only cannot be opened for writing.

mod common;

use berth_testkit::{require_busybox, Scratch};
use common::*;

/// A char major no driver registers here: opens the device cgroup allows fail with ENXIO
/// ("No such device or address"), the ones it refuses with EPERM.
const FREE_MAJOR: u32 = 241;

#[test]
fn a_device_passed_read_only_is_not_writable() {
    require_busybox();
    let devs = std::fs::read_to_string("/proc/devices").unwrap();
    if devs
        .lines()
        .any(|l| l.trim().split(' ').next() == Some(&FREE_MAJOR.to_string()))
    {
        eprintln!("char major {FREE_MAJOR} is in use on this host: skipping");
        return;
    }
    let scratch = Scratch::new("dev-perms");
    let root = scratch.join("root");
    common::load_fixture(&root, "busybox.oci-archive.tar");
    let node = scratch.join("node");
    let c = std::ffi::CString::new(node.to_str().unwrap()).unwrap();
    assert_eq!(
        unsafe {
            libc::mknod(
                c.as_ptr(),
                libc::S_IFCHR | 0o666,
                libc::makedev(FREE_MAJOR, 7),
            )
        },
        0
    );
    let script = "(exec 3</dev/x) 2>&1; (exec 3>/dev/x) 2>&1; true";
    let out = ok(
        &root,
        &[
            "run",
            "--rm",
            "--device",
            &format!("{}:/dev/x:r", node.display()),
            "busybox",
            "sh",
            "-c",
            script,
        ],
    );
    let l: Vec<&str> = out.lines().collect();
    assert!(
        l[0].contains("No such device or address"),
        "read is allowed: {out}"
    );
    assert!(
        l[1].contains("Operation not permitted"),
        "write is refused: {out}"
    );
    let out = ok(
        &root,
        &[
            "run",
            "--rm",
            "--device",
            &format!("{}:/dev/x:rw", node.display()),
            "busybox",
            "sh",
            "-c",
            script,
        ],
    );
    assert!(
        out.lines().all(|l| l.contains("No such device or address")),
        "rw allows both: {out}"
    );
}
