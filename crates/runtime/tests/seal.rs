//! CVE-2019-5736: after sealing, the runtime binary cannot be opened for writing through
//! /proc/<pid>/exe, neither our own nor a container init's, and the file on disk is unchanged.
//! Its own harness: sealing re-executes the binary, which must be a plain single-threaded main.

use berth_runtime::{CreateOptions, Runtime};
use berth_testkit::{busybox_rootfs, remove_cgroup_everywhere, unique_id, Scratch};
use std::os::unix::fs::OpenOptionsExt;

fn open_write_errno(path: &str) -> i32 {
    match std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
    {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        // nextest lists tests this way; one test, named like libtest would.
        if std::env::args().any(|a| a == "--ignored") {
            return;
        }
        println!("seal_exe: test");
        return;
    }
    // argv[0], not /proc/self/exe: after sealing that names a file on a detached mount.
    let exe = std::fs::canonicalize(std::env::args_os().next().unwrap()).unwrap();
    let before = std::fs::read(&exe).unwrap();
    berth_runtime::seal_exe().expect("seal");
    let st = unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        let p = std::ffi::CString::new("/proc/self/exe").unwrap();
        libc::statvfs(p.as_ptr(), &mut s);
        s
    };
    assert!(
        st.f_flag & libc::ST_RDONLY != 0,
        "binary is not on a read-only mount after sealing"
    );
    let e = open_write_errno("/proc/self/exe");
    assert!(
        e == libc::EROFS || e == libc::ETXTBSY,
        "open own exe for writing: errno {e}"
    );

    let scratch = Scratch::new("rt-seal");
    let bundle = scratch.join("bundle");
    busybox_rootfs(&bundle.join("rootfs")).unwrap();
    let id = unique_id("rt-seal");
    let mut spec = berth_runtime::default_spec(false);
    spec.process_mut()
        .as_mut()
        .unwrap()
        .set_terminal(Some(false));
    spec.process_mut()
        .as_mut()
        .unwrap()
        .set_args(Some(vec!["sleep".into(), "100".into()]));
    spec.linux_mut()
        .as_mut()
        .unwrap()
        .set_cgroups_path(Some(format!("/{id}").into()));
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec(&spec).unwrap(),
    )
    .unwrap();
    let rt = Runtime::new(scratch.join("state"));
    let opts = CreateOptions {
        bundle,
        ..Default::default()
    };
    rt.create(&id, &opts).expect("create");
    let pid = rt.state(&id).unwrap().pid;
    // The init is still the runtime binary while it waits for start.
    let e = open_write_errno(&format!("/proc/{pid}/exe"));
    // The classic attack keeps an O_PATH fd and reopens it for writing once the runtime exited.
    let held = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(format!("/proc/{pid}/exe"))
        .unwrap();
    let _ = rt.delete(&id, true);
    remove_cgroup_everywhere(&id);
    assert!(
        e == libc::EROFS || e == libc::ETXTBSY,
        "open init's exe for writing: errno {e}"
    );
    use std::os::fd::AsRawFd;
    // This test binary is the runtime and still runs, so a reopen gives ETXTBSY; what matters is
    // that the file sits on a read-only mount, which makes it EROFS once nothing executes it.
    let e2 = open_write_errno(&format!("/proc/self/fd/{}", held.as_raw_fd()));
    assert!(
        e2 == libc::EROFS || e2 == libc::ETXTBSY,
        "reopen a held O_PATH fd for writing: errno {e2}"
    );
    let mut vfs: libc::statvfs = unsafe { std::mem::zeroed() };
    let p = std::ffi::CString::new(format!("/proc/self/fd/{}", held.as_raw_fd())).unwrap();
    assert_eq!(unsafe { libc::statvfs(p.as_ptr(), &mut vfs) }, 0);
    assert!(
        vfs.f_flag & libc::ST_RDONLY != 0,
        "the init's exe is not on a read-only mount"
    );
    assert_eq!(
        std::fs::read(&exe).unwrap(),
        before,
        "runtime binary changed"
    );
    println!("test seal_exe ... ok");
}
