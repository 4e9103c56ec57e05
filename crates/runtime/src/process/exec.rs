//! `exec`: a new process in a running container. A child joins every namespace of the init via
//! setns on /proc/<init>/ns/* (user first, mount last), then forks so the process lands in the
//! container's pid namespace, applies the same process setup as the init and execs.

use crate::error::{Error, Result};
use crate::namespaces::{self, Plan, JOIN_ORDER};
use crate::setup::ProcSetup;
use crate::state::{self, Status};
use crate::sync::{self, Channel, Msg};
use crate::{sys, tty, ExecOptions, Runtime};
use std::os::fd::{AsRawFd, RawFd};

pub fn exec(rt: &Runtime, id: &str, opts: &ExecOptions) -> Result<i32> {
    let saved = state::load(&rt.root, id)?;
    let status = state::status(&rt.root, &saved);
    if status == Status::Paused && !opts.ignore_paused {
        // runc's words.
        return Err(Error::new(
            crate::ErrorKind::Conflict,
            format!("cannot exec in a paused container (use --ignore-paused to override): {id}"),
        ));
    }
    if !matches!(status, Status::Created | Status::Running | Status::Paused) {
        return Err(state::conflict(id, "exec in", status));
    }
    let process = &opts.process;
    let terminal = process.terminal().unwrap_or(false);
    if terminal && opts.console_socket.is_none() && opts.detach {
        return Err(Error::invalid(
            "process.terminal needs a console socket when the process is detached",
        ));
    }
    if !terminal && opts.console_socket.is_some() {
        return Err(Error::invalid(
            "a console socket was given but process.terminal is false",
        ));
    }
    let linux = saved.config.linux().as_ref();
    let setup = ProcSetup::new(process, linux, opts.preserve_fds)?;
    // Our own fds (namespaces, sync socket) must land above the range the process inherits.
    let _reserved = sys::reserve_fd_range(opts.preserve_fds).map_err(|e| {
        Error::sys(
            format!(
                "reserve fds 3..{} for --preserve-fds",
                3 + opts.preserve_fds as u64
            ),
            e,
        )
    })?;
    let init = saved.state.pid;
    let plan = container_namespaces(init, linux)?;
    let cg = berth_cgroups::open(saved.cgroups_path.as_deref(), id)?;
    // v1: the child joins by itself before setns, still in the host's namespaces (fast path, see
    // process::init::self_join).
    let self_join = cg.version() == berth_cgroups::Version::V1;
    let join_unified = linux
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.hugepage_limits().as_ref())
        .is_some_and(|h| !h.is_empty());
    let (parent_chan, child_chan) = sync::pair()?;
    let _block = (!opts.detach).then(SigBlock::all);
    let _ = sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    let threads = sys::thread_count();
    if threads != 1 {
        return Err(Error::internal(format!(
            "refusing to enter a container from a process with {threads} threads"
        )));
    }
    let c1 = sys::fork().map_err(|e| Error::sys("fork", e))?;
    if c1 == 0 {
        drop(parent_chan);
        let join = self_join.then_some((&*cg, join_unified));
        child(&child_chan, &plan, &setup, join);
    }
    drop(child_chan);
    let mut pids = vec![c1];
    let r = parent(
        &parent_chan,
        c1,
        (!self_join).then_some(&*cg),
        opts,
        &saved,
        &mut pids,
    );
    let (pid, console) = match r {
        Ok(x) => x,
        Err(e) => {
            for &p in &pids {
                let _ = sys::kill(p, libc::SIGKILL);
                let _ = sys::waitpid(p, 0);
            }
            return Err(e);
        }
    };
    if let Some(pf) = &opts.pid_file {
        crate::container::write_pid_file(pf, pid)?;
    }
    if opts.detach {
        return Ok(0);
    }
    crate::container::wait_forwarding(pid, console.as_ref(), opts.detach_keys.as_deref())
}

fn parent(
    chan: &Channel,
    c1: i32,
    cg: Option<&dyn berth_cgroups::Manager>,
    opts: &ExecOptions,
    saved: &state::Saved,
    pids: &mut Vec<i32>,
) -> Result<(i32, Option<std::os::fd::OwnedFd>)> {
    if let Some(cg) = cg {
        cg.apply(c1)?;
    }
    chan.send(&Msg::Go(0))?;
    let mut pid = 0;
    let mut console = None;
    loop {
        match chan.recv()? {
            Some((Msg::Pid(p), _)) => {
                pid = p;
                pids.insert(0, p);
                let _ = sys::waitpid(c1, 0);
                pids.retain(|&x| x != c1);
            }
            Some((Msg::Console, Some(fd))) => match &opts.console_socket {
                Some(sock) => sync::send_fd_to_socket(sock, fd.as_raw_fd(), "/dev/ptmx")?,
                None => console = Some(fd),
            },
            Some((Msg::SeccompFd, Some(fd))) => {
                let st =
                    crate::process::listener_state(&saved.state, pid, "running", &saved.config);
                let path = listener_path(&saved.config);
                sync::send_seccomp_fd(&path, fd.as_raw_fd(), &st)?;
            }
            Some((Msg::Ready, _)) => {}
            Some((Msg::Fail(kind, msg), _)) => return Err(Error::new(kind, msg)),
            Some((m, _)) => return Err(Error::internal(format!("sync channel: unexpected {m:?}"))),
            // The channel is close-on-exec: EOF after Ready means the process is running.
            None if pid > 0 => return Ok((pid, console)),
            None => return Err(Error::internal("exec: child exited during setup")),
        }
    }
}

pub(crate) fn listener_path(spec: &oci_spec::runtime::Spec) -> std::path::PathBuf {
    spec.linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .and_then(|s| s.listener_path().clone())
        .unwrap_or_default()
}

/// Namespaces of the container's init that differ from ours, in join order.
fn container_namespaces(init: i32, linux: Option<&oci_spec::runtime::Linux>) -> Result<Plan> {
    let mut plan = Plan::default();
    let types: Vec<libc::c_int> = linux
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .map(|n| namespaces::flag(n.typ()))
        .collect();
    for t in JOIN_ORDER {
        if !types.contains(&t) {
            continue;
        }
        let path = format!("/proc/{init}/ns/{}", namespaces::proc_name(t));
        let fd = sys::open(&sys::cstr(&path), libc::O_RDONLY, 0)
            .map_err(|e| Error::sys(format!("open {path}"), e))?;
        let own = format!("/proc/self/ns/{}", namespaces::proc_name(t));
        let same = match (sys::fstat(fd.as_raw_fd()), sys::stat(&sys::cstr(&own))) {
            (Ok(a), Ok(b)) => a.st_ino == b.st_ino && a.st_dev == b.st_dev,
            _ => false,
        };
        if !same {
            plan.join.push((t, fd));
        }
    }
    Ok(plan)
}

fn child(
    chan: &Channel,
    plan: &Plan,
    setup: &ProcSetup,
    join: Option<(&dyn berth_cgroups::Manager, bool)>,
) -> ! {
    super::reset_signals();
    let mut keep: Vec<RawFd> = vec![chan.raw()];
    keep.extend(plan.join.iter().map(|(_, fd)| fd.as_raw_fd()));
    sys::close_fds_from(3 + setup.preserve_fds as RawFd, &keep);
    let _ = sys::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    crate::seal::clear_marker();
    let err = match enter(chan, plan, setup, join) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    super::child_fail(Some(chan), &err)
}

enum Never {}

fn enter(
    chan: &Channel,
    plan: &Plan,
    setup: &ProcSetup,
    join: Option<(&dyn berth_cgroups::Manager, bool)>,
) -> Result<Never> {
    chan.wait_go()?;
    crate::sched::set_affinity(&setup.sched.affinity_initial, "initial")?;
    if let Some((cg, unified)) = join {
        super::init::self_join(cg, unified)?;
    }
    namespaces::join(plan, None)?;
    namespaces::close_joined(plan);
    let pid = sys::fork().map_err(|e| Error::sys("fork into the pid namespace", e))?;
    if pid > 0 {
        let _ = chan.send(&Msg::Pid(pid));
        unsafe { libc::_exit(0) };
    }
    if setup.terminal {
        let (master, slave) = tty::open_pty(setup.console_size)?;
        chan.send_with_fd(&Msg::Console, Some(master.as_raw_fd()))?;
        drop(master);
        tty::make_controlling(&slave)?;
    }
    setup.privileged_part()?;
    setup.become_user()?;
    let exe = setup.resolve_exe()?;
    setup.send_seccomp_fd(chan)?;
    chan.send(&Msg::Ready)?;
    crate::sched::set_affinity(&setup.sched.affinity_final, "final")?;
    Err(setup.exec(&exe))
}

struct SigBlock {
    old: libc::sigset_t,
}

impl SigBlock {
    fn all() -> SigBlock {
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut set);
            libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old);
            SigBlock { old }
        }
    }
}

impl Drop for SigBlock {
    fn drop(&mut self) {
        unsafe { libc::sigprocmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}
