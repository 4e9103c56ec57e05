//! The container init, child side: namespaces, cgroup handshake, root filesystem, terminal,
//! process setup, then blocked on the exec fifo until `start`, then execve.

use crate::error::{Error, ErrorKind, Result};
use crate::namespaces::{self, Plan, CLONE_NEWTIME};
use crate::rootfs::{self, devices, masking, mounts, pivot};
use crate::setup::ProcSetup;
use crate::sync::{Channel, Msg};
use crate::{hooks, sys, tty};
use oci_spec::runtime::Spec;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

pub struct InitArgs<'a> {
    pub id: &'a str,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub spec: &'a Spec,
    pub plan: &'a Plan,
    pub setup: &'a ProcSetup,
    pub fifo: RawFd,
    /// The state dir, when there is no mount namespace (the fifo is opened in it, not via /proc).
    pub fifo_dir: Option<RawFd>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub chan: &'a Channel,
    /// Set when the init moves itself into its (v1) cgroup: see `self_join`.
    pub self_join: Option<&'a dyn berth_cgroups::Manager>,
    pub join_unified: bool,
    /// User namespaces of idmapped mounts, by index in spec.mounts.
    pub idmaps: &'a [(usize, std::os::fd::OwnedFd)],
}

/// Entry of the cloned child; never returns.
pub fn child_main(a: &InitArgs) -> ! {
    super::reset_signals();
    let mut keep: Vec<RawFd> = vec![a.chan.raw(), a.fifo];
    keep.extend(a.fifo_dir);
    keep.extend(a.plan.join.iter().map(|(_, fd)| fd.as_raw_fd()));
    keep.extend(a.idmaps.iter().map(|(_, fd)| fd.as_raw_fd()));
    sys::close_fds_from(3 + a.setup.preserve_fds as RawFd, &keep);
    // Not dumpable: container processes cannot reach our fds or memory through /proc while we
    // still hold host resources. execve makes the user process dumpable again.
    let _ = sys::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    crate::seal::clear_marker();
    let err = match init(a) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    super::child_fail(Some(a.chan), &err)
}

enum Never {}

fn init(a: &InitArgs) -> Result<Never> {
    let plan = a.plan;
    let linux = a.spec.linux().as_ref();
    let new_user = plan.has(libc::CLONE_NEWUSER);
    if plan.direct() {
        if new_user {
            a.chan.ask(&Msg::NeedMaps)?;
        }
    } else {
        namespaces::join(plan, None)?;
        namespaces::close_joined(plan);
        if new_user {
            sys::unshare(libc::CLONE_NEWUSER)
                .map_err(|e| Error::sys("unshare user namespace", e))?;
            a.chan.ask(&Msg::NeedMaps)?;
        }
        let rest = plan.new & !(libc::CLONE_NEWUSER | libc::CLONE_NEWCGROUP);
        if rest != 0 {
            sys::unshare(rest).map_err(|e| Error::sys("unshare namespaces", e))?;
        }
        if plan.has(CLONE_NEWTIME) {
            write_time_offsets(a.spec)?;
        }
        // setns/unshare of pid and time namespaces apply to children: the init is a fork.
        let pid = sys::fork().map_err(|e| Error::sys("fork init", e))?;
        if pid > 0 {
            let _ = a.chan.send(&Msg::Pid(pid));
            unsafe { libc::_exit(0) };
        }
    }
    if new_user {
        become_ns_root()?;
    }
    // The parent moves us into the cgroup (the first cgroup.procs write of a run waits for an RCU
    // grace period) while we set up mounts; we wait for it before anything that needs it.
    a.chan.send(&Msg::NeedCgroup)?;
    let mut cgroup = CgroupWait {
        host_pid: None,
        new_ns: plan.has(libc::CLONE_NEWCGROUP),
        self_join: a.self_join,
        join_unified: a.join_unified,
    };
    if !a.no_new_keyring {
        join_session_keyring(a.id)?;
    }
    if let Some(h) = a.spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        if unsafe { libc::sethostname(h.as_ptr().cast(), h.len()) } < 0 {
            return Err(Error::last(format!("sethostname {h}")));
        }
    }
    if let Some(d) = a.spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } < 0 {
            return Err(Error::last(format!("setdomainname {d}")));
        }
    }
    if let Some(p) = linux.and_then(|l| l.personality().as_ref()) {
        set_personality(p)?;
    }
    unsafe { libc::umask(0) };

    if a.fifo_dir.is_some() {
        return no_mount_ns(a, &mut cgroup);
    }
    // Root filesystem, still seeing the host's paths.
    let propagation = root_propagation(linux.and_then(|l| l.rootfs_propagation().as_deref()))?;
    // shared and unbindable are set on the container's own / after the switch: shared here would
    // reach the host, and an unbindable / could not be bound as the rootfs (runc does the same).
    let late = libc::MS_SHARED | libc::MS_UNBINDABLE;
    let pre = if propagation & late != 0 {
        libc::MS_SLAVE | libc::MS_REC
    } else {
        propagation
    };
    sys::mount(None, c"/", None, pre, None).map_err(|e| Error::sys("set propagation of /", e))?;
    let rootfs_c = sys::cstr(a.rootfs);
    sys::mount(
        Some(&rootfs_c),
        &rootfs_c,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )
    .map_err(|e| Error::sys(format!("bind rootfs {}", a.rootfs.display()), e))?;
    sys::mount(None, &rootfs_c, None, libc::MS_PRIVATE, None)
        .map_err(|e| Error::sys(format!("make rootfs {} private", a.rootfs.display()), e))?;
    let root = sys::open(&rootfs_c, libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(|e| Error::sys(format!("open rootfs {}", a.rootfs.display()), e))?;
    let in_userns = new_user || plan.joins(libc::CLONE_NEWUSER);
    let ctx = mounts::Ctx {
        root: root.as_raw_fd(),
        cgroupns: plan.has(libc::CLONE_NEWCGROUP),
        userns: in_userns,
    };
    let spec_mounts = a.spec.mounts().as_deref().unwrap_or(&[]);
    for (i, m) in spec_mounts.iter().enumerate() {
        if m.typ().as_deref() == Some("cgroup") {
            cgroup.wait(a.chan)?;
        }
        let userns = a
            .idmaps
            .iter()
            .find(|(j, _)| *j == i)
            .map(|(_, fd)| fd.as_raw_fd());
        mounts::mount_one(&ctx, m, userns)?;
    }
    let dev_is_bind = spec_mounts.iter().any(|m| {
        m.destination() == Path::new("/dev")
            && (m.typ().as_deref() == Some("bind")
                || m.options()
                    .iter()
                    .flatten()
                    .any(|o| o == "bind" || o == "rbind"))
    });
    // Device nodes after the device cgroup rules are in place (deny-all then allows would race).
    let host_pid = cgroup.wait(a.chan)?;
    if !dev_is_bind {
        let devs = linux.and_then(|l| l.devices().as_deref()).unwrap_or(&[]);
        devices::create_all(root.as_raw_fd(), devs, in_userns)?;
        devices::symlinks(root.as_raw_fd(), sys::path_exists(Path::new("/proc/kcore")))?;
    }
    if a.setup.terminal {
        rootfs::touch_in_root(root.as_raw_fd(), Path::new("/dev/console"), 0o666)?;
    }
    let hooks = a.spec.hooks().as_ref();
    let wants_runtime_hooks = hooks.is_some_and(|h| {
        #[allow(deprecated)]
        let pre = h.prestart().as_ref().is_some_and(|v| !v.is_empty());
        pre || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
    });
    if wants_runtime_hooks {
        a.chan.ask(&Msg::NeedHooks)?;
    }
    if let Some(list) = hooks.and_then(|h| h.create_container().as_ref()) {
        let st = super::hook_state(a.id, host_pid, "created", a.bundle, a.spec);
        hooks::run_all(Some(list), &st, "createContainer")?;
    }
    drop(root);
    pivot::pivot_root(a.rootfs, a.no_pivot)?;

    // Inside the container's root from here on.
    if propagation & late != 0 {
        sys::mount(None, c"/", None, propagation, None)
            .map_err(|e| Error::sys("set propagation of /", e))?;
    }
    if let Some(sysctl) = linux.and_then(|l| l.sysctl().as_ref()) {
        let mut keys: Vec<_> = sysctl.iter().collect();
        keys.sort();
        for (k, v) in keys {
            masking::sysctl(k, v)?;
        }
    }
    if a.setup.terminal {
        let (master, slave) = tty::open_pty(a.setup.console_size)?;
        let n = tty::pty_number(master.as_raw_fd())?;
        let pts = sys::cstr(format!("/dev/pts/{n}"));
        sys::mount(Some(&pts), c"/dev/console", None, libc::MS_BIND, None)
            .map_err(|e| Error::sys("bind pty to /dev/console", e))?;
        a.chan
            .send_with_fd(&Msg::Console, Some(master.as_raw_fd()))?;
        drop(master);
        tty::make_controlling(&slave)?;
    }
    for p in linux
        .and_then(|l| l.masked_paths().as_ref())
        .into_iter()
        .flatten()
    {
        masking::mask(p)?;
    }
    for p in linux
        .and_then(|l| l.readonly_paths().as_ref())
        .into_iter()
        .flatten()
    {
        masking::readonly(p)?;
    }
    if a.spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        masking::readonly_root()?;
    }
    finish(a, host_pid)
}

/// No mount namespace: hooks, then a plain chroot into the rootfs (runc's way); nothing is
/// mounted (create refused every spec field that would need it).
fn no_mount_ns(a: &InitArgs, cgroup: &mut CgroupWait) -> Result<Never> {
    let host_pid = cgroup.wait(a.chan)?;
    let hooks = a.spec.hooks().as_ref();
    #[allow(deprecated)]
    let wants_runtime_hooks = hooks.is_some_and(|h| {
        h.prestart().as_ref().is_some_and(|v| !v.is_empty())
            || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
    });
    if wants_runtime_hooks {
        a.chan.ask(&Msg::NeedHooks)?;
    }
    if let Some(list) = hooks.and_then(|h| h.create_container().as_ref()) {
        let st = super::hook_state(a.id, host_pid, "created", a.bundle, a.spec);
        hooks::run_all(Some(list), &st, "createContainer")?;
    }
    let r = sys::cstr(a.rootfs);
    sys::chroot(&r).map_err(|e| Error::sys(format!("chroot {}", a.rootfs.display()), e))?;
    sys::chdir(c"/").map_err(|e| Error::sys("chdir /", e))?;
    if let Some(sysctl) = a.spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        let mut keys: Vec<_> = sysctl.iter().collect();
        keys.sort();
        for (k, v) in keys {
            masking::sysctl(k, v)?;
        }
    }
    finish(a, host_pid)
}

/// User, capabilities, seccomp, then blocked on the exec fifo until `start`, then execve.
fn finish(a: &InitArgs, host_pid: i32) -> Result<Never> {
    let hooks = a.spec.hooks().as_ref();
    a.setup.privileged_part()?;
    a.setup.become_user()?;
    let exe = a.setup.resolve_exe()?;
    a.setup.send_seccomp_fd(a.chan)?;
    a.chan.send(&Msg::Ready)?;
    let _ = sys::close_range(a.chan.raw() as u32, a.chan.raw() as u32, 0);

    // Blocks until `start` opens the fifo for reading.
    let fifo = match a.fifo_dir {
        Some(d) => sys::openat(d, &sys::cstr(crate::state::EXEC_FIFO), libc::O_WRONLY, 0),
        None => sys::open(&sys::fd_path(a.fifo), libc::O_WRONLY, 0),
    };
    let fifo = match fifo {
        Ok(f) => f,
        Err(e) => post_start_fail(Error::sys("open exec fifo", e)),
    };
    let _ = sys::write_all_fd(fifo.as_raw_fd(), b"0");
    // The write end stays open (close-on-exec) so `start` sees EOF only once the user process
    // has been exec'd: poststart hooks then run after it, as the spec wants.
    std::mem::forget(fifo);
    let _ = sys::close_range(a.fifo as u32, a.fifo as u32, 0);
    if let Some(d) = a.fifo_dir {
        let _ = sys::close_range(d as u32, d as u32, 0);
    }
    if let Some(list) = hooks.and_then(|h| h.start_container().as_ref()) {
        let st = super::hook_state(a.id, host_pid, "created", a.bundle, a.spec);
        if let Err(e) = hooks::run_all_with_env(Some(list), &st, "startContainer", &a.setup.env) {
            post_start_fail(e);
        }
    }
    post_start_fail(a.setup.exec(&exe))
}

/// The pending cgroup join: `wait` returns the init's host pid once the parent is done, then
/// enters a new cgroup namespace if asked (rooted at the container's cgroup).
struct CgroupWait<'a> {
    host_pid: Option<i32>,
    new_ns: bool,
    self_join: Option<&'a dyn berth_cgroups::Manager>,
    join_unified: bool,
}

impl CgroupWait<'_> {
    fn wait(&mut self, chan: &Channel) -> Result<i32> {
        if let Some(p) = self.host_pid {
            return Ok(p);
        }
        let p = chan.wait_go()?;
        if let Some(cg) = self.self_join {
            self_join(cg, self.join_unified)?;
        }
        if self.new_ns {
            sys::unshare(libc::CLONE_NEWCGROUP)
                .map_err(|e| Error::sys("unshare cgroup namespace", e))?;
        }
        self.host_pid = Some(p);
        Ok(p)
    }
}

/// Moves the (single-threaded) init into its v1 cgroups by writing "0" to each `tasks` file.
/// Moving one's own single thread skips the global threadgroup rwsem that every cgroup.procs
/// write takes for writing, whose first acquisition in a while waits for an RCU grace period
/// (about 15 ms here, the largest single cost of a container start).
pub fn self_join(cg: &dyn berth_cgroups::Manager, join_unified: bool) -> Result<()> {
    let mut done: Vec<std::path::PathBuf> = Vec::new();
    for (ctrl, dir) in cg.paths() {
        if done.contains(&dir) {
            continue;
        }
        let file = if ctrl.is_empty() {
            // The hybrid host's cgroup2 tree only carries hugetlb: join it when limits need it.
            if !join_unified {
                continue;
            }
            dir.join("cgroup.procs")
        } else {
            dir.join("tasks")
        };
        std::fs::write(&file, "0")
            .map_err(|e| Error::sys(format!("join cgroup {}", file.display()), e))?;
        done.push(dir);
    }
    Ok(())
}

/// After `create` returned nobody listens on the sync channel: report on the container's stderr.
fn post_start_fail(e: Error) -> ! {
    let _ = sys::write_all_fd(2, format!("berth-runc: {e}\n").as_bytes());
    let code = match e.kind() {
        ErrorKind::NotFound => 127,
        _ => 126,
    };
    unsafe { libc::_exit(code) }
}

fn become_ns_root() -> Result<()> {
    if unsafe { libc::setresgid(0, 0, 0) } < 0 {
        return Err(Error::last("setgid 0 in the user namespace"));
    }
    if unsafe { libc::setresuid(0, 0, 0) } < 0 {
        return Err(Error::last("setuid 0 in the user namespace"));
    }
    Ok(())
}

fn root_propagation(p: Option<&str>) -> Result<libc::c_ulong> {
    Ok(match p {
        None | Some("") => libc::MS_SLAVE | libc::MS_REC,
        Some(s) => match mounts::PROPAGATION.iter().find(|(n, _)| *n == s) {
            Some((_, f)) => *f,
            None => {
                return Err(Error::invalid(format!(
                    "rootfsPropagation {s:?} is not a propagation mode"
                )))
            }
        },
    })
}

fn join_session_keyring(id: &str) -> Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_int = 1;
    let name = sys::cstr(format!("_ses.{id}"));
    let r = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENOSYS) {
            return Err(Error::sys("join session keyring", e));
        }
    }
    Ok(())
}

fn set_personality(p: &oci_spec::runtime::LinuxPersonality) -> Result<()> {
    use oci_spec::runtime::LinuxPersonalityDomain as D;
    let persona: libc::c_ulong = match p.domain() {
        D::PerLinux => 0x0000,
        D::PerLinux32 => 0x0008,
    };
    if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(Error::new(
            ErrorKind::Unavailable,
            "personality flags are not supported",
        ));
    }
    if unsafe { libc::personality(persona) } < 0 {
        return Err(Error::last("personality"));
    }
    Ok(())
}

fn write_time_offsets(spec: &Spec) -> Result<()> {
    let offsets = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref());
    let mut text = String::new();
    for (clock, off) in offsets.into_iter().flatten() {
        let name = match clock.as_str() {
            "monotonic" | "boottime" => clock.as_str(),
            other => {
                return Err(Error::invalid(format!(
                    "time offset for unknown clock {other:?}"
                )))
            }
        };
        text.push_str(&format!(
            "{name} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    if !text.is_empty() {
        std::fs::write("/proc/self/timens_offsets", text)
            .map_err(|e| Error::sys("write timens_offsets", e))?;
    }
    Ok(())
}
