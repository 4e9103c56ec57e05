//! OCI hooks: each gets the state JSON on stdin, its own args and env, and an optional timeout.

use crate::error::{Error, ErrorKind, Result};
use crate::sys;
use oci_spec::runtime::Hook;
use std::ffi::CString;
use std::os::fd::AsRawFd;

/// Runs each hook in turn; the first failure stops the list.
pub fn run_all(hooks: Option<&Vec<Hook>>, state: &[u8], kind: &str) -> Result<()> {
    for h in hooks.into_iter().flatten() {
        run(h, state).map_err(|e| e.context(format!("{kind} hook {}", h.path().display())))?;
    }
    Ok(())
}

/// Runs every hook, turning failures into warnings (poststart, poststop): the spec wants the
/// remaining hooks and the lifecycle to go on.
pub fn run_all_warn(hooks: Option<&Vec<Hook>>, state: &[u8], kind: &str) {
    for h in hooks.into_iter().flatten() {
        if let Err(e) = run(h, state) {
            sys::warn(&format!("{kind} hook {}: {e}", h.path().display()));
        }
    }
}

/// startContainer hooks run in the container with its process's environment, the hook's own
/// variables taking precedence.
pub fn run_all_with_env(
    hooks: Option<&Vec<Hook>>,
    state: &[u8],
    kind: &str,
    base_env: &[CString],
) -> Result<()> {
    for h in hooks.into_iter().flatten() {
        run_env(h, state, Some(base_env))
            .map_err(|e| e.context(format!("{kind} hook {}", h.path().display())))?;
    }
    Ok(())
}

pub fn run(h: &Hook, state: &[u8]) -> Result<()> {
    run_env(h, state, None)
}

fn run_env(h: &Hook, state: &[u8], base_env: Option<&[CString]>) -> Result<()> {
    let path = sys::cstr(h.path());
    let args: Vec<CString> = match h.args() {
        Some(a) if !a.is_empty() => a.iter().map(sys::cstr).collect(),
        _ => vec![path.clone()],
    };
    let own: Vec<CString> = h.env().iter().flatten().map(sys::cstr).collect();
    let key = |e: &CString| {
        e.as_bytes()
            .split(|b| *b == b'=')
            .next()
            .map(<[u8]>::to_vec)
            .unwrap_or_default()
    };
    let mut env: Vec<CString> = base_env
        .unwrap_or(&[])
        .iter()
        .filter(|b| !own.iter().any(|o| key(o) == key(b)))
        .cloned()
        .collect();
    env.extend(own);
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    let (rd, wr) = sys::pipe().map_err(|e| Error::sys("pipe", e))?;
    let pid = sys::fork().map_err(|e| Error::sys("fork", e))?;
    if pid == 0 {
        unsafe {
            libc::dup2(rd.as_raw_fd(), 0);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
            let e = std::io::Error::last_os_error();
            sys::warn(&format!("exec hook {}: {e}", h.path().display()));
            libc::_exit(127);
        }
    }
    drop(rd);
    // A hook that does not read its stdin must not make us fail.
    let _ = sys::write_all_fd(wr.as_raw_fd(), state);
    drop(wr);
    let timeout_ms = match h.timeout() {
        Some(t) if t > 0 => (t.min(i32::MAX as i64 / 1000) * 1000) as i32,
        Some(t) => {
            return Err(Error::invalid(format!(
                "timeout {t} must be greater than zero"
            )))
        }
        None => -1,
    };
    if timeout_ms >= 0 {
        let pidfd = sys::pidfd_open(pid).map_err(|e| Error::sys("pidfd_open", e))?;
        let ready = sys::poll_one(pidfd.as_raw_fd(), libc::POLLIN, timeout_ms)
            .map_err(|e| Error::sys("poll", e))?;
        if ready == 0 {
            let _ = sys::kill(pid, libc::SIGKILL);
            let _ = sys::waitpid(pid, 0);
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!("timed out after {}s", h.timeout().unwrap_or(0)),
            ));
        }
    }
    let (_, status) = sys::waitpid(pid, 0).map_err(|e| Error::sys("wait", e))?;
    let code = sys::exit_code(status);
    if code != 0 {
        return Err(Error::internal(format!("exit status {code}")));
    }
    Ok(())
}
