//! Cloning the container init (init.rs) and the processes exec'd into a running container (exec.rs).

pub mod exec;
pub mod init;

use crate::sys;

/// The signal state a child must not inherit into the container: our blocked mask and Rust's
/// ignored SIGPIPE.
pub fn reset_signals() {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// State JSON as hooks receive it on stdin.
pub fn hook_state(
    id: &str,
    pid: i32,
    status: &str,
    bundle: &std::path::Path,
    spec: &oci_spec::runtime::Spec,
) -> Vec<u8> {
    let v = serde_json::json!({
        "ociVersion": spec.version(),
        "id": id,
        "status": status,
        "pid": pid,
        "bundle": bundle,
        "annotations": spec.annotations().clone().unwrap_or_default(),
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

/// The runtime spec's containerProcessState, sent with a seccomp notify fd to its agent.
pub fn listener_state(
    st: &crate::State,
    pid: i32,
    status: &str,
    spec: &oci_spec::runtime::Spec,
) -> Vec<u8> {
    let metadata = spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .and_then(|s| s.listener_metadata().clone());
    let v = serde_json::json!({
        "ociVersion": spec.version(),
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": metadata.unwrap_or_default(),
        "state": {
            "ociVersion": spec.version(),
            "id": st.id,
            "status": status,
            "pid": st.pid,
            "bundle": st.bundle,
            "annotations": st.annotations,
        },
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Ends a forked child after reporting `err` to the parent (or stderr when it is gone).
pub fn child_fail(chan: Option<&crate::sync::Channel>, err: &crate::Error) -> ! {
    let sent = chan.is_some_and(|c| {
        c.send(&crate::sync::Msg::Fail(err.kind(), err.to_string()))
            .is_ok()
    });
    if !sent {
        let _ = sys::write_all_fd(2, format!("berth-runc: {err}\n").as_bytes());
    }
    unsafe { libc::_exit(1) }
}
