//! berth-init: what `--init` runs as the container's pid 1 (docker's docker-init is tini).
//! It starts the command as its child, forwards every signal it gets to it, reaps all
//! orphans, and exits with the command's status (128+N when a signal N ended it).
//!
//! Built by the engine's build.rs as its own small static executable (no loader, no
//! libraries needed in the image), embedded in berth and bind-mounted read-only into the
//! container. Only std and the C library: it cannot use the workspace's crates.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::{exit, Command};

#[repr(C)]
struct SigSet([u64; 16]);

#[repr(C)]
struct SigInfo {
    signo: i32,
    _rest: [i32; 31],
}

#[repr(C)]
struct TimeSpec {
    sec: i64,
    nsec: i64,
}

extern "C" {
    fn sigfillset(set: *mut SigSet) -> i32;
    fn sigdelset(set: *mut SigSet, sig: i32) -> i32;
    fn sigprocmask(how: i32, set: *const SigSet, old: *mut SigSet) -> i32;
    fn sigtimedwait(set: *const SigSet, info: *mut SigInfo, timeout: *const TimeSpec) -> i32;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    fn kill(pid: i32, sig: i32) -> i32;
    fn prctl(option: i32, arg2: u64, arg3: u64, arg4: u64, arg5: u64) -> i32;
}

const SIG_SETMASK: i32 = 2;
const SIGCHLD: i32 = 17;
const WNOHANG: i32 = 1;
const PR_SET_CHILD_SUBREAPER: i32 = 36;
/// Signals about the init's own faults stay deliverable (tini's list).
const SYNCHRONOUS: [i32; 7] = [4, 5, 6, 7, 8, 11, 31]; // ILL TRAP ABRT BUS FPE SEGV SYS

fn fatal(msg: String, code: i32) -> ! {
    eprintln!("berth-init: {msg}");
    exit(code)
}

/// A wait status as a shell reports it.
fn exit_code(status: i32) -> i32 {
    let sig = status & 0x7f;
    if sig == 0 {
        (status >> 8) & 0xff
    } else {
        128 + sig
    }
}

fn main() {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == "--") {
        args.remove(0);
    }
    if args.is_empty() {
        fatal("usage: berth-init [--] COMMAND [ARGS...]".into(), 1);
    }
    // Outside a pid namespace (--pid host) orphans still come to us.
    unsafe { prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let mut set = SigSet([0; 16]);
    unsafe {
        sigfillset(&mut set);
        for s in SYNCHRONOUS {
            sigdelset(&mut set, s);
        }
        sigprocmask(SIG_SETMASK, &set, std::ptr::null_mut());
    }
    // The child gets an empty signal mask back before exec (std leaves the mask alone; it
    // resets SIGPIPE itself).
    let mut cmd = Command::new(&args[0]);
    cmd.args(&args[1..]);
    unsafe {
        cmd.pre_exec(|| {
            let empty = SigSet([0; 16]);
            sigprocmask(SIG_SETMASK, &empty, std::ptr::null_mut());
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(c) => c.id() as i32,
        Err(e) => {
            let code = match e.kind() {
                std::io::ErrorKind::NotFound => 127,
                std::io::ErrorKind::PermissionDenied => 126,
                _ => 1,
            };
            fatal(format!("exec {} failed: {e}", args[0].to_string_lossy()), code)
        }
    };
    let mut info = SigInfo { signo: 0, _rest: [0; 31] };
    let tick = TimeSpec { sec: 1, nsec: 0 };
    loop {
        let sig = unsafe { sigtimedwait(&set, &mut info, &tick) };
        if sig > 0 && sig != SIGCHLD {
            unsafe { kill(child, sig) };
        }
        // Reap every exited process; the command's own status ends us.
        loop {
            let mut status = 0;
            let pid = unsafe { waitpid(-1, &mut status, WNOHANG) };
            if pid <= 0 {
                break;
            }
            if pid == child {
                exit(exit_code(status));
            }
        }
    }
}
