//! The process setup shared by the init and exec'd processes: everything from the spec's
//! `process` prepared in the parent (so the child only makes syscalls), then applied in order:
//! oom score, rlimits, LSM labels, cwd, user, capabilities, no_new_privs, seccomp, execve.

use crate::capabilities::{self, CapSets};
use crate::error::{Error, ErrorKind, Result};
use crate::sys;
use oci_spec::runtime::{Linux, PosixRlimitType, Process};
use std::ffi::CString;

pub struct ProcSetup {
    pub caps: Option<CapSets>,
    pub last_cap: u32,
    pub rlimits: Vec<(libc::__rlimit_resource_t, libc::rlimit)>,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<libc::gid_t>,
    pub umask: u32,
    pub no_new_privs: bool,
    pub oom_score_adj: Option<i32>,
    pub apparmor: Option<String>,
    pub selinux: Option<String>,
    pub cwd: CString,
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    pub path_env: Option<String>,
    pub seccomp: Option<berth_seccomp::Filter>,
    pub preserve_fds: u32,
    pub terminal: bool,
    pub console_size: Option<(u16, u16)>,
    pub sched: crate::sched::Sched,
}

fn rlimit_resource(t: PosixRlimitType) -> Result<libc::__rlimit_resource_t> {
    Ok(match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    })
}

impl ProcSetup {
    pub fn new(p: &Process, linux: Option<&Linux>, preserve_fds: u32) -> Result<ProcSetup> {
        crate::spec::validate_process(p)?;
        let caps = match p.capabilities() {
            Some(c) => {
                let (sets, warnings) = capabilities::from_spec(c);
                for w in warnings {
                    sys::warn(&w);
                }
                Some(sets)
            }
            None => None,
        };
        let mut rlimits = Vec::new();
        for r in p.rlimits().iter().flatten() {
            let res = rlimit_resource(r.typ())?;
            if rlimits.iter().any(|(x, _)| *x == res) {
                return Err(Error::invalid(format!("rlimit {:?} given twice", r.typ())));
            }
            rlimits.push((
                res,
                libc::rlimit {
                    rlim_cur: r.soft(),
                    rlim_max: r.hard(),
                },
            ));
        }
        let env: Vec<CString> = p.env().iter().flatten().map(sys::cstr).collect();
        let path_env = p
            .env()
            .iter()
            .flatten()
            .find_map(|e| e.strip_prefix("PATH="))
            .map(str::to_string);
        let seccomp = match linux.and_then(|l| l.seccomp().as_ref()) {
            Some(s) => Some(berth_seccomp::compile(s)?),
            None => None,
        };
        let apparmor = p.apparmor_profile().clone().filter(|s| !s.is_empty());
        let selinux = p.selinux_label().clone().filter(|s| !s.is_empty());
        Ok(ProcSetup {
            caps,
            last_cap: capabilities::last_cap(),
            rlimits,
            uid: p.user().uid(),
            gid: p.user().gid(),
            additional_gids: p.user().additional_gids().clone().unwrap_or_default(),
            umask: p.user().umask().unwrap_or(0o022),
            no_new_privs: p.no_new_privileges().unwrap_or(false),
            oom_score_adj: p.oom_score_adj(),
            apparmor,
            selinux,
            cwd: sys::cstr(p.cwd()),
            args: p.args().iter().flatten().map(sys::cstr).collect(),
            env,
            path_env,
            seccomp,
            preserve_fds,
            terminal: p.terminal().unwrap_or(false),
            console_size: p
                .console_size()
                .map(|b| (b.height() as u16, b.width() as u16)),
            sched: crate::sched::Sched::new(p, linux)?,
        })
    }

    /// What must happen while still privileged: oom score, rlimits, LSM labels for the exec.
    pub fn privileged_part(&self) -> Result<()> {
        if let Some(adj) = self.oom_score_adj {
            std::fs::write("/proc/self/oom_score_adj", adj.to_string())
                .map_err(|e| Error::sys(format!("set oom_score_adj {adj}"), e))?;
        }
        self.sched.apply()?;
        for (res, lim) in &self.rlimits {
            if unsafe { libc::setrlimit(*res, lim) } < 0 {
                return Err(Error::last(format!("setrlimit {res}")));
            }
        }
        if let Some(profile) = &self.apparmor {
            if std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
                .is_ok_and(|s| s.trim() == "Y")
            {
                std::fs::write("/proc/self/attr/apparmor/exec", format!("exec {profile}"))
                    .or_else(|_| std::fs::write("/proc/self/attr/exec", format!("exec {profile}")))
                    .map_err(|e| Error::sys(format!("apparmor profile {profile}"), e))?;
            } else {
                sys::warn(&format!(
                    "apparmor is not enabled on this host; profile {profile} not applied"
                ));
            }
        }
        if let Some(label) = &self.selinux {
            if sys::path_exists(std::path::Path::new("/sys/fs/selinux/enforce")) {
                std::fs::write("/proc/self/attr/exec", label)
                    .map_err(|e| Error::sys(format!("selinux label {label}"), e))?;
            } else {
                sys::warn(&format!(
                    "selinux is not enabled on this host; label {label} not applied"
                ));
            }
        }
        Ok(())
    }

    /// cwd, uid/gid/groups, capabilities, no_new_privs. The bounding set is dropped first (needs
    /// CAP_SETPCAP), caps are kept across setuid with PR_SET_KEEPCAPS.
    pub fn become_user(&self) -> Result<()> {
        // Without no_new_privs loading a filter needs CAP_SYS_ADMIN: do it while we still have
        // it (runc does the same); with no_new_privs it waits until right before execve.
        if !self.no_new_privs {
            if let Some(f) = &self.seccomp {
                f.apply()?;
            }
        }
        let early_cwd = unsafe { libc::chdir(self.cwd.as_ptr()) } == 0;
        if let Some(c) = &self.caps {
            capabilities::drop_bounding(c.bounding, self.last_cap)?;
        }
        sys::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0)
            .map_err(|e| Error::sys("keep capabilities", e))?;
        let setgroups_denied =
            std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
        if !setgroups_denied {
            if unsafe { libc::setgroups(self.additional_gids.len(), self.additional_gids.as_ptr()) }
                < 0
            {
                return Err(Error::last("setgroups"));
            }
        } else if !self.additional_gids.is_empty() {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "additionalGids: setgroups is denied in this user namespace",
            ));
        }
        if unsafe { libc::setresgid(self.gid, self.gid, self.gid) } < 0 {
            return Err(Error::last(format!("setgid {}", self.gid)));
        }
        if unsafe { libc::setresuid(self.uid, self.uid, self.uid) } < 0 {
            return Err(Error::last(format!("setuid {}", self.uid)));
        }
        sys::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0)
            .map_err(|e| Error::sys("keep capabilities", e))?;
        if !early_cwd {
            sys::chdir(&self.cwd).map_err(|e| {
                Error::sys(format!("chdir to cwd {}", self.cwd.to_string_lossy()), e)
            })?;
        }
        check_cwd()?;
        if let Some(c) = &self.caps {
            capabilities::apply(c, self.last_cap)?;
        }
        unsafe { libc::umask(self.umask) };
        if self.no_new_privs {
            sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
                .map_err(|e| Error::sys("set no_new_privs", e))?;
            // A notify filter is loaded while the parent still listens, so the fd can reach it.
            if let Some(f) = self.seccomp.as_ref().filter(|f| f.has_listener()) {
                f.apply()?;
            }
        }
        Ok(())
    }

    /// The notify fd of a filter with a listenerPath, to the parent (which hands it to the agent).
    pub fn send_seccomp_fd(&self, chan: &crate::sync::Channel) -> Result<()> {
        if let Some(fd) = berth_seccomp::Filter::listener() {
            let r = chan.send_with_fd(&crate::sync::Msg::SeccompFd, Some(fd));
            unsafe { libc::close(fd) };
            r?;
        }
        Ok(())
    }

    /// args[0] resolved through the process's PATH, inside the container.
    pub fn resolve_exe(&self) -> Result<CString> {
        let arg0 = self
            .args
            .first()
            .ok_or_else(|| Error::invalid("process.args must not be empty"))?;
        let bytes = arg0.as_bytes();
        if bytes.contains(&b'/') {
            check_executable(arg0)?;
            return Ok(arg0.clone());
        }
        let path = self
            .path_env
            .as_deref()
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        let mut last = libc::ENOENT;
        for dir in path.split(':').filter(|d| !d.is_empty()) {
            let mut cand = Vec::with_capacity(dir.len() + bytes.len() + 1);
            cand.extend_from_slice(dir.as_bytes());
            cand.push(b'/');
            cand.extend_from_slice(bytes);
            let c = CString::new(cand).unwrap_or_default();
            match check_executable(&c) {
                Ok(()) => return Ok(c),
                Err(e) if e.kind() == ErrorKind::PermissionDenied => last = libc::EACCES,
                Err(_) => {}
            }
        }
        Err(Error::errno(
            format!(
                "exec: {:?}: executable file not found in $PATH",
                arg0.to_string_lossy()
            ),
            last,
        ))
    }

    /// Marks every fd above stdio and the preserved ones close-on-exec, loads seccomp (last,
    /// after no_new_privs) and execs. Only returns on failure.
    pub fn exec(&self, exe: &CString) -> Error {
        let _ = sys::close_range(3 + self.preserve_fds, u32::MAX, sys::CLOSE_RANGE_CLOEXEC);
        let mut argv: Vec<*const libc::c_char> = self.args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = self.env.iter().map(|a| a.as_ptr()).collect();
        envp.push(std::ptr::null());
        if self.no_new_privs {
            if let Some(f) = self.seccomp.as_ref().filter(|f| !f.has_listener()) {
                if let Err(e) = f.apply() {
                    return Error::from(e);
                }
            }
        }
        unsafe { libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        Error::last(format!("exec {}", exe.to_string_lossy()))
    }
}

fn check_executable(p: &CString) -> Result<()> {
    let st = sys::stat(p).map_err(|e| Error::sys(format!("exec: {:?}", p.to_string_lossy()), e))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(Error::errno(
            format!("exec: {:?}", p.to_string_lossy()),
            libc::EACCES,
        ));
    }
    if unsafe { libc::access(p.as_ptr(), libc::X_OK) } < 0 {
        return Err(Error::last(format!("exec: {:?}", p.to_string_lossy())));
    }
    Ok(())
}

/// CVE-2024-21626: the cwd must be inside the container's root, never a leaked host directory.
pub fn check_cwd() -> Result<()> {
    let mut buf = [0u8; 4096];
    let p = unsafe { libc::getcwd(buf.as_mut_ptr().cast(), buf.len()) };
    if p.is_null() {
        return Err(Error::last(
            "getcwd: current working directory is outside of the container",
        ));
    }
    if buf[0] != b'/' {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            "current working directory is outside of the container",
        ));
    }
    Ok(())
}
