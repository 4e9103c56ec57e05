//! The lifecycle verbs: create, start, run, state, list, kill, delete, pause, resume, pids,
//! stats, update.

use crate::error::{Error, ErrorKind, Result};
use crate::namespaces::{self, Plan};
use crate::process::init::{self, InitArgs};
use crate::setup::ProcSetup;
use crate::state::{self, Saved, State, Status, EXEC_FIFO};
use crate::sync::{self, Msg};
use crate::{hooks, spec, sys, tty, CreateOptions, Runtime};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Create,
    /// `run` in the foreground: keep the pty master when there is no console socket.
    RunForeground,
    RunDetached,
}

pub struct Created {
    pub pid: i32,
    pub console: Option<OwnedFd>,
    /// What was saved, so `run` need not read it back.
    pub saved: Saved,
    pub cgroup: Box<dyn berth_cgroups::Manager>,
}

/// Undoes a half-made container unless disarmed.
struct Cleanup<'a> {
    dir: &'a Path,
    pids: Vec<i32>,
    cgroup: Option<Box<dyn berth_cgroups::Manager>>,
    armed: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        for &p in &self.pids {
            let _ = sys::kill(p, libc::SIGKILL);
        }
        for &p in &self.pids {
            let _ = sys::waitpid(p, 0);
        }
        if let Some(cg) = &self.cgroup {
            let _ = cg.destroy();
        }
        let _ = std::fs::remove_dir_all(self.dir);
    }
}

pub fn create(rt: &Runtime, id: &str, opts: &CreateOptions, mode: Mode) -> Result<Created> {
    state::validate_id(id)?;
    let bundle = spec::load(&opts.bundle)?;
    let spec = &bundle.spec;
    let process = spec.process().as_ref().expect("validated");
    let linux = spec.linux().as_ref();
    let terminal = process.terminal().unwrap_or(false);
    if terminal && opts.console_socket.is_none() && mode != Mode::RunForeground {
        return Err(Error::invalid(
            "process.terminal needs a console socket when the container is detached",
        ));
    }
    if !terminal && opts.console_socket.is_some() {
        return Err(Error::invalid(
            "a console socket was given but process.terminal is false",
        ));
    }
    warn_unsupported(spec)?;
    let plan = Plan::from_linux(linux)?;
    let mount_ns = plan.has(libc::CLONE_NEWNS) || plan.joins(libc::CLONE_NEWNS);
    if !mount_ns {
        check_without_mount_ns(spec, terminal)?;
    }
    let setup = ProcSetup::new(process, linux, opts.preserve_fds)?;
    let net_devices = linux
        .and_then(|l| l.net_devices().clone())
        .unwrap_or_default();
    crate::netdev::check(
        &net_devices,
        plan.has(libc::CLONE_NEWNET) || plan.joins(libc::CLONE_NEWNET),
    )?;
    let rdt = linux.and_then(|l| l.intel_rdt().as_ref());
    crate::rdt::check(rdt, id)?;
    // Before the runtime opens anything that must not reach the container (the lock on the
    // state dir, the fifo, the sync socket): those land above the preserved range.
    let _reserved = sys::reserve_fd_range(opts.preserve_fds).map_err(|e| {
        Error::sys(
            format!(
                "reserve fds 3..{} for --preserve-fds",
                3 + opts.preserve_fds as u64
            ),
            e,
        )
    })?;

    let idmaps = crate::rootfs::idmap::prepare(spec.mounts().as_deref().unwrap_or(&[]))?;

    std::fs::create_dir_all(&rt.root)
        .map_err(|e| Error::sys(format!("create {}", rt.root.display()), e))?;
    let dir = state::dir(&rt.root, id);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("container {id}: already exists"),
            ))
        }
        Err(e) => return Err(Error::sys(format!("create {}", dir.display()), e)),
    }
    let mut cleanup = Cleanup {
        dir: &dir,
        pids: Vec::new(),
        cgroup: None,
        armed: true,
    };
    let _lock = state::lock(&rt.root, id)?;
    let fifo_path = dir.join(EXEC_FIFO);
    let fifo_c = sys::cstr(&fifo_path);
    if unsafe { libc::mkfifo(fifo_c.as_ptr(), 0o622) } < 0 {
        return Err(Error::last(format!("mkfifo {}", fifo_path.display())));
    }
    unsafe { libc::chmod(fifo_c.as_ptr(), 0o622) };
    let fifo = sys::open(&fifo_c, libc::O_PATH, 0)
        .map_err(|e| Error::sys(format!("open {}", fifo_path.display()), e))?;
    // Without a mount namespace the init has no /proc after its chroot to reopen the fifo by.
    let fifo_dir = if mount_ns {
        None
    } else {
        Some(
            sys::open(&sys::cstr(&dir), libc::O_PATH | libc::O_DIRECTORY, 0)
                .map_err(|e| Error::sys(format!("open {}", dir.display()), e))?,
        )
    };
    let cgroups_path = linux.and_then(|l| l.cgroups_path().clone());
    let cg = berth_cgroups::open(cgroups_path.as_deref(), id)?;
    // On v1 the init moves itself in (fast path, see process::init::self_join); it cannot in a
    // user namespace, where host cgroup files are not its own.
    let self_join = cg.version() == berth_cgroups::Version::V1
        && !plan.has(libc::CLONE_NEWUSER)
        && !plan.joins(libc::CLONE_NEWUSER);
    let join_unified = linux
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.hugepage_limits().as_ref())
        .is_some_and(|h| !h.is_empty());
    cleanup.cgroup = Some(cg);
    let (parent_chan, child_chan) = sync::pair()?;

    let threads = sys::thread_count();
    if threads != 1 {
        return Err(Error::internal(format!(
            "refusing to clone a container from a process with {threads} threads"
        )));
    }
    let clone_flags = if plan.direct() {
        (plan.new & !libc::CLONE_NEWCGROUP) as libc::c_ulong
    } else {
        0
    };
    let child = sys::clone_fork(clone_flags).map_err(|e| Error::sys("clone container init", e))?;
    if child == 0 {
        drop(parent_chan);
        let args = InitArgs {
            id,
            bundle: &bundle.dir,
            rootfs: &bundle.rootfs,
            spec,
            plan: &plan,
            setup: &setup,
            fifo: fifo.as_raw_fd(),
            fifo_dir: fifo_dir.as_ref().map(|d| d.as_raw_fd()),
            no_pivot: opts.no_pivot,
            no_new_keyring: opts.no_new_keyring,
            chan: &child_chan,
            self_join: if self_join {
                cleanup.cgroup.as_deref()
            } else {
                None
            },
            join_unified,
            idmaps: &idmaps,
        };
        init::child_main(&args);
    }
    drop(child_chan);
    cleanup.pids.push(child);
    let mut init_pid = child;
    let mut got_pid = plan.direct();
    let mut cgroup_pending = false;
    let mut console = None;
    // The child's own report, when it failed first, says more than our failed reply to it.
    let handshake = (|| -> Result<()> {
        loop {
            let msg = parent_chan.recv()?;
            match msg {
                Some((Msg::NeedMaps, _)) => {
                    namespaces::write_maps(child, linux.expect("user namespace needs linux"))?;
                    parent_chan.send(&Msg::Go(0))?;
                }
                Some((Msg::Pid(p), _)) => {
                    init_pid = p;
                    got_pid = true;
                    cleanup.pids.insert(0, p);
                    let _ = sys::waitpid(child, 0);
                    cleanup.pids.retain(|&x| x != child);
                    if cgroup_pending {
                        cgroup_pending = false;
                        join_cgroup(
                            cleanup.cgroup.as_deref().unwrap(),
                            init_pid,
                            linux,
                            self_join,
                        )?;
                        parent_chan.send(&Msg::Go(init_pid))?;
                    }
                }
                Some((Msg::NeedCgroup, _)) => {
                    // In two stages the init's request can overtake the intermediate's Pid message.
                    if !got_pid {
                        cgroup_pending = true;
                        continue;
                    }
                    join_cgroup(
                        cleanup.cgroup.as_deref().unwrap(),
                        init_pid,
                        linux,
                        self_join,
                    )?;
                    parent_chan.send(&Msg::Go(init_pid))?;
                }
                Some((Msg::NeedHooks, _)) => {
                    // The spec's "created" begins once the environment is made, before these hooks run.
                    let st = crate::process::hook_state(id, init_pid, "created", &bundle.dir, spec);
                    let h = spec.hooks().as_ref();
                    #[allow(deprecated)]
                    hooks::run_all(h.and_then(|h| h.prestart().as_ref()), &st, "prestart")?;
                    hooks::run_all(
                        h.and_then(|h| h.create_runtime().as_ref()),
                        &st,
                        "createRuntime",
                    )?;
                    parent_chan.send(&Msg::Go(0))?;
                }
                Some((Msg::Console, fd)) => {
                    let fd = fd.ok_or_else(|| {
                        Error::internal("console message without a file descriptor")
                    })?;
                    match &opts.console_socket {
                        Some(sock) => sync::send_fd_to_socket(sock, fd.as_raw_fd(), "/dev/ptmx")?,
                        None => console = Some(fd),
                    }
                }
                Some((Msg::SeccompFd, fd)) => {
                    let fd = fd.ok_or_else(|| {
                        Error::internal("seccomp message without a file descriptor")
                    })?;
                    let st = State {
                        oci_version: spec.version().clone(),
                        id: id.to_string(),
                        pid: init_pid,
                        status: Status::Creating,
                        bundle: bundle.dir.clone(),
                        rootfs: bundle.rootfs.clone(),
                        created: String::new(),
                        owner: String::new(),
                        annotations: spec.annotations().clone().unwrap_or_default(),
                    };
                    let msg = crate::process::listener_state(&st, init_pid, "creating", spec);
                    sync::send_seccomp_fd(
                        &crate::process::exec::listener_path(spec),
                        fd.as_raw_fd(),
                        &msg,
                    )?;
                }
                Some((Msg::Ready, _)) => {
                    // Before the user process can run, after the init made its network namespace.
                    crate::netdev::move_all(&net_devices, init_pid)?;
                    if let Some(r) = rdt {
                        if let Err(e) = crate::rdt::apply(r, id, init_pid) {
                            crate::rdt::remove(Some(r), id);
                            return Err(e);
                        }
                    }
                    return Ok(());
                }
                Some((Msg::Fail(kind, msg), _)) => return Err(Error::new(kind, msg)),
                Some((Msg::Go(_), _)) => {
                    return Err(Error::internal(
                        "sync channel: unexpected go from the child",
                    ))
                }
                None => {
                    return Err(Error::internal(format!(
                        "container {id}: init exited during setup"
                    )));
                }
            }
        }
    })();
    if let Err(e) = handshake {
        return Err(parent_chan.pending_failure().unwrap_or(e));
    }
    if needs_mknod_rules(linux) {
        final_device_rules(cleanup.cgroup.as_deref().unwrap(), linux.expect("checked"))?;
    }
    let (start_time, _) = sys::proc_start_time(init_pid)
        .ok_or_else(|| Error::internal(format!("container {id}: init {init_pid} vanished")))?;
    let cg = cleanup.cgroup.as_ref().unwrap();
    let saved = Saved {
        state: State {
            oci_version: spec.version().clone(),
            id: id.to_string(),
            pid: init_pid,
            status: Status::Created,
            bundle: bundle.dir.clone(),
            rootfs: bundle.rootfs.clone(),
            created: state::rfc3339_now(),
            owner: state::owner_name(sys::getuid()),
            annotations: spec.annotations().clone().unwrap_or_default(),
        },
        init_start_time: start_time,
        cgroups_path,
        cgroup_paths: cg.paths(),
        config: bundle.spec.clone(),
    };
    state::save(&rt.root, &saved)?;
    if let Some(pf) = &opts.pid_file {
        write_pid_file(pf, init_pid)?;
    }
    cleanup.armed = false;
    let cgroup = cleanup.cgroup.take().unwrap();
    Ok(Created {
        pid: init_pid,
        console,
        saved,
        cgroup,
    })
}

/// Creates the cgroup and sets its limits; moves `pid` in unless the init joins by itself.
fn join_cgroup(
    cg: &dyn berth_cgroups::Manager,
    pid: i32,
    linux: Option<&oci_spec::runtime::Linux>,
    self_join: bool,
) -> Result<()> {
    cg.apply(if self_join { 0 } else { pid })?;
    if let Some(r) = linux.and_then(|l| l.resources().as_ref()) {
        let devices = linux.and_then(|l| l.devices().as_deref()).unwrap_or(&[]);
        cg.set(&with_default_devices(r, devices, needs_mknod_rules(linux)))?;
    }
    Ok(())
}

/// The device nodes the runtime itself creates stay usable under a deny-all device rule, as with
/// runc: their allow rules are appended after the spec's rules. The spec's own devices get no
/// rule of their own: the spec's rules decide (a device allowed `r` stays read-only), and a
/// default node the spec redefines (same path) loses its default rule too, as in runc.
/// `mknod_spec_devices` adds a temporary `m` rule for each spec device so the init can create
/// its node whatever the spec allows; `create` drops it again before the container can run.
fn with_default_devices(
    r: &oci_spec::runtime::LinuxResources,
    devices: &[oci_spec::runtime::LinuxDevice],
    mknod_spec_devices: bool,
) -> oci_spec::runtime::LinuxResources {
    use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
    let Some(rules) = r.devices().as_ref().filter(|d| !d.is_empty()) else {
        return r.clone();
    };
    let mut rules = rules.clone();
    let rule = |typ: LinuxDeviceType, major: i64, minor: Option<i64>, access: &str| {
        let mut d = LinuxDeviceCgroup::default();
        d.set_allow(true);
        d.set_typ(Some(typ));
        d.set_major(Some(major));
        d.set_minor(minor);
        d.set_access(Some(access.into()));
        d
    };
    for (path, major, minor) in crate::rootfs::devices::DEFAULTS {
        if !devices
            .iter()
            .any(|d| d.path() == std::path::Path::new(path))
        {
            rules.push(rule(LinuxDeviceType::C, major, Some(minor), "rwm"));
        }
    }
    rules.push(rule(LinuxDeviceType::C, 5, Some(1), "rwm")); // console
    rules.push(rule(LinuxDeviceType::C, 5, Some(2), "rwm")); // ptmx
    rules.push(rule(LinuxDeviceType::C, 136, None, "rwm")); // pts
    if mknod_spec_devices {
        for d in devices.iter().filter(|d| d.typ() != LinuxDeviceType::P) {
            let t = if d.typ() == LinuxDeviceType::B {
                LinuxDeviceType::B
            } else {
                LinuxDeviceType::C
            };
            rules.push(rule(t, d.major(), Some(d.minor()), "m"));
        }
    }
    let mut out = r.clone();
    out.set_devices(Some(rules));
    out
}

/// Whether the device rules set while the init creates its nodes differ from the final ones.
fn needs_mknod_rules(linux: Option<&oci_spec::runtime::Linux>) -> bool {
    let Some(l) = linux else { return false };
    let has_rules = l
        .resources()
        .as_ref()
        .and_then(|r| r.devices().as_ref())
        .is_some_and(|d| !d.is_empty());
    has_rules
        && l.devices()
            .iter()
            .flatten()
            .any(|d| d.typ() != oci_spec::runtime::LinuxDeviceType::P)
}

/// The final device rules, once the init has made its nodes: only the devices part is set again.
fn final_device_rules(
    cg: &dyn berth_cgroups::Manager,
    linux: &oci_spec::runtime::Linux,
) -> Result<()> {
    let Some(r) = linux.resources().as_ref() else {
        return Ok(());
    };
    let full = with_default_devices(r, linux.devices().as_deref().unwrap_or(&[]), false);
    let mut only = oci_spec::runtime::LinuxResources::default();
    only.set_devices(full.devices().clone());
    Ok(cg.set(&only)?)
}

fn warn_unsupported(spec: &oci_spec::runtime::Spec) -> Result<()> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    if linux.mount_label().as_ref().is_some_and(|l| !l.is_empty()) {
        sys::warn("linux.mountLabel: selinux is not supported by this runtime; ignored");
    }
    Ok(())
}

/// Without a mount namespace the container runs chrooted into its rootfs in the caller's mount
/// namespace, as runc runs it: nothing may be mounted there, which would land on the host.
fn check_without_mount_ns(spec: &oci_spec::runtime::Spec, terminal: bool) -> Result<()> {
    let linux = spec.linux().as_ref();
    let restricts = linux.is_some_and(|l| {
        l.masked_paths().as_ref().is_some_and(|p| !p.is_empty())
            || l.readonly_paths().as_ref().is_some_and(|p| !p.is_empty())
    });
    if restricts {
        // runc's words.
        return Err(Error::invalid(
            "unable to restrict sys entries without a private MNT namespace",
        ));
    }
    if spec.mounts().as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(Error::invalid(
            "mounts need a private mount namespace (add a mount namespace or drop the mounts)",
        ));
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        return Err(Error::invalid(
            "a read-only root needs a private mount namespace",
        ));
    }
    if terminal {
        return Err(Error::invalid(
            "process.terminal needs a private mount namespace (for /dev/console)",
        ));
    }
    if linux.is_some_and(|l| l.devices().as_ref().is_some_and(|d| !d.is_empty())) {
        return Err(Error::invalid(
            "linux.devices need a private mount namespace",
        ));
    }
    Ok(())
}

/// Atomically (temp + rename), like runc.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    std::fs::write(&tmp, pid.to_string())
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| Error::sys(format!("write pid file {}", path.display()), e))
}

pub fn start(rt: &Runtime, id: &str) -> Result<()> {
    let _lock = state::lock(&rt.root, id)?;
    let saved = state::load(&rt.root, id)?;
    start_loaded(rt, &saved)
}

fn start_loaded(rt: &Runtime, saved: &Saved) -> Result<()> {
    let id = saved.state.id.as_str();
    let st = state::status(&rt.root, saved);
    if st != Status::Created {
        return Err(state::conflict(id, "start", st));
    }
    // The init's exit, not a timer, ends every wait below. Checked after opening: pid reuse.
    let pidfd = sys::pidfd_open(saved.state.pid)
        .ok()
        .filter(|_| saved.init_alive());
    let Some(pidfd) = pidfd else {
        return Err(Error::internal(format!(
            "container {id}: init exited before start"
        )));
    };
    let fifo_path = state::dir(&rt.root, id).join(EXEC_FIFO);
    let fifo = sys::open(&sys::cstr(&fifo_path), libc::O_RDONLY | libc::O_NONBLOCK, 0)
        .map_err(|e| Error::sys(format!("open {}", fifo_path.display()), e))?;
    let watch = [
        (fifo.as_raw_fd(), libc::POLLIN),
        (pidfd.as_raw_fd(), libc::POLLIN),
    ];
    // First the init's byte: it is past setup and about to exec.
    loop {
        let [ev, died] = sys::poll_fds(watch, -1).map_err(|e| Error::sys("poll exec fifo", e))?;
        match read_fifo(fifo.as_raw_fd()) {
            FifoRead::Data => break,
            FifoRead::Eof if ev & libc::POLLHUP != 0 => {
                return Err(Error::internal(format!(
                    "container {id}: init exited before start"
                )))
            }
            _ if died & libc::POLLIN != 0 => {
                return Err(Error::internal(format!(
                    "container {id}: init exited before start"
                )))
            }
            _ => {}
        }
    }
    // Then EOF: the init's write end closes when it execs the user process (or dies).
    loop {
        let [_, died] = sys::poll_fds(watch, -1).map_err(|e| Error::sys("poll exec fifo", e))?;
        match read_fifo(fifo.as_raw_fd()) {
            FifoRead::Eof => break,
            FifoRead::Data => continue,
            FifoRead::Empty if died & libc::POLLIN != 0 => break,
            FifoRead::Empty => {}
        }
    }
    let _ = std::fs::remove_file(&fifo_path);
    let h = saved.config.hooks().as_ref();
    if let Some(list) = h.and_then(|h| h.poststart().as_ref()) {
        let st = crate::process::hook_state(
            id,
            saved.state.pid,
            "running",
            &saved.state.bundle,
            &saved.config,
        );
        hooks::run_all_warn(Some(list), &st, "poststart");
    }
    Ok(())
}

enum FifoRead {
    Data,
    /// No writer left (only meaningful once a writer had opened it).
    Eof,
    /// Nothing to read yet (EAGAIN).
    Empty,
}

fn read_fifo(fd: std::os::fd::RawFd) -> FifoRead {
    let mut b = [0u8; 16];
    loop {
        let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), b.len()) };
        match n {
            n if n > 0 => return FifoRead::Data,
            0 => return FifoRead::Eof,
            _ if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => continue,
            _ => return FifoRead::Empty,
        }
    }
}

/// Blocks the signals `run` forwards, until dropped.
struct SignalBlock {
    old: libc::sigset_t,
}

impl SignalBlock {
    fn all() -> SignalBlock {
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut set);
            libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old);
            SignalBlock { old }
        }
    }
}

impl Drop for SignalBlock {
    fn drop(&mut self) {
        unsafe { libc::sigprocmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

pub fn run(rt: &Runtime, id: &str, opts: &CreateOptions, detach: bool, keep: bool) -> Result<i32> {
    if detach {
        create(rt, id, opts, Mode::RunDetached)?;
        return match start(rt, id) {
            Ok(()) => Ok(0),
            Err(e) => {
                let _ = delete(rt, id, true);
                Err(e)
            }
        };
    }
    let _block = SignalBlock::all();
    // A two-stage init is our grandchild: be its reaper.
    let _ = sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    let created = create(rt, id, opts, Mode::RunForeground)?;
    if let Err(e) = start_loaded(rt, &created.saved) {
        let _ = delete(rt, id, true);
        return Err(e);
    }
    let code = wait_forwarding(created.pid, created.console.as_ref(), None);
    if !keep {
        let lock = state::lock(&rt.root, id)?;
        delete_loaded(rt, &created.saved, true, Some(created.cgroup), lock)?;
    }
    code
}

/// Forwards signals to `pid`, proxies the terminal if any, and returns its exit code; or
/// [`crate::DETACHED`] once `detach_keys` are typed on a terminal (the process runs on).
pub fn wait_forwarding(
    pid: i32,
    console: Option<&OwnedFd>,
    detach_keys: Option<&[u8]>,
) -> Result<i32> {
    let mut escape = detach_keys
        .filter(|k| !k.is_empty() && console.is_some())
        .map(tty::Escape::new);
    let sigfd = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::signalfd(-1, &set, libc::SFD_CLOEXEC)
    };
    if sigfd < 0 {
        return Err(Error::last("signalfd"));
    }
    let sigfd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(sigfd) };
    let _raw = console.map(|_| tty::RawMode::enter());
    if let Some(m) = console {
        tty::copy_size(0, m.as_raw_fd());
    }
    let mut stdin_open = console.is_some();
    // The child may already be gone before we got here.
    if let Some(code) = reap(pid) {
        drain(console);
        return Ok(code);
    }
    loop {
        let mut fds = [
            libc::pollfd {
                fd: sigfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: console.map_or(-1, |m| m.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if stdin_open { 0 } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 3, -1) };
        if r < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(Error::last("poll"));
        }
        if fds[1].revents != 0 {
            if let Some(m) = console {
                if !tty::pump(m.as_raw_fd(), 1) && fds[1].revents & libc::POLLIN == 0 {
                    // Master hung up: wait for the exit status via SIGCHLD only.
                }
            }
        }
        if fds[2].revents != 0 {
            if let Some(m) = console {
                match escape.as_mut() {
                    None => {
                        if !tty::pump(0, m.as_raw_fd()) {
                            stdin_open = false;
                        }
                    }
                    Some(esc) => {
                        let mut buf = [0u8; 8192];
                        let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
                        if n <= 0 {
                            let eintr =
                                std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR);
                            stdin_open = n < 0 && eintr;
                        } else {
                            let (out, detached) = esc.feed(&buf[..n as usize]);
                            if !out.is_empty() && sys::write_all_fd(m.as_raw_fd(), &out).is_err() {
                                stdin_open = false;
                            }
                            if detached {
                                tty::hold_master(m);
                                return Ok(crate::DETACHED);
                            }
                        }
                    }
                }
            }
        }
        if fds[0].revents & libc::POLLIN != 0 {
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let n = unsafe {
                libc::read(
                    sigfd.as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    std::mem::size_of_val(&info),
                )
            };
            if n <= 0 {
                continue;
            }
            match info.ssi_signo as i32 {
                libc::SIGCHLD => {
                    if let Some(code) = reap(pid) {
                        drain(console);
                        return Ok(code);
                    }
                }
                libc::SIGWINCH => {
                    if let Some(m) = console {
                        tty::copy_size(0, m.as_raw_fd());
                    }
                }
                libc::SIGURG => {}
                sig => {
                    let _ = sys::kill(pid, sig);
                }
            }
        }
    }
}

/// Reaps every exited child; Some(code) once `pid` is among them.
fn reap(pid: i32) -> Option<i32> {
    let mut result = None;
    loop {
        match sys::waitpid(-1, libc::WNOHANG) {
            Ok((0, _)) | Err(_) => return result,
            Ok((p, status)) if p == pid => result = Some(sys::exit_code(status)),
            Ok(_) => {}
        }
    }
}

/// Copies what the container left in the pty to stdout.
fn drain(console: Option<&OwnedFd>) {
    let Some(m) = console else { return };
    unsafe { libc::fcntl(m.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    while tty::pump(m.as_raw_fd(), 1) {}
}

pub fn state(rt: &Runtime, id: &str) -> Result<State> {
    let saved = state::load(&rt.root, id)?;
    let status = state::status(&rt.root, &saved);
    let mut st = saved.state;
    st.status = status;
    if status == Status::Stopped {
        st.pid = 0;
    }
    Ok(st)
}

pub fn list(rt: &Runtime) -> Result<Vec<State>> {
    let rd = match std::fs::read_dir(&rt.root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(Error::sys(format!("read {}", rt.root.display()), e)),
    };
    let mut out = Vec::new();
    for ent in rd.flatten() {
        let name = ent.file_name();
        let Some(id) = name.to_str() else { continue };
        match state(rt, id) {
            Ok(s) => out.push(s),
            Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::InvalidArgument => {
            }
            Err(e) => return Err(e),
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

fn cgroup_of(saved: &Saved) -> Result<Box<dyn berth_cgroups::Manager>> {
    Ok(berth_cgroups::open_saved(
        saved.cgroups_path.as_deref(),
        &saved.state.id,
        &saved.cgroup_paths,
    )?)
}

pub fn kill(rt: &Runtime, id: &str, signal: i32, all: bool) -> Result<()> {
    let saved = state::load(&rt.root, id)?;
    if !(0..=64).contains(&signal) {
        return Err(Error::invalid(format!("invalid signal {signal}")));
    }
    if all {
        let cg = cgroup_of(&saved)?;
        let pids = cg.pids()?;
        if pids.is_empty() && !saved.init_alive() {
            return Err(Error::not_running(id));
        }
        for p in pids {
            let _ = sys::kill(p, signal);
        }
        return Ok(());
    }
    if !saved.init_alive() {
        return Err(Error::not_running(id));
    }
    sys::kill(saved.state.pid, signal)
        .map_err(|e| Error::sys(format!("container {id}: kill {}", saved.state.pid), e))
}

pub fn delete(rt: &Runtime, id: &str, force: bool) -> Result<()> {
    let lock = state::lock(&rt.root, id)?;
    let saved = match state::load(&rt.root, id) {
        Ok(s) => s,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            // A directory without state.json is what a create killed half-way leaves: forget it.
            let _ = std::fs::remove_dir_all(state::dir(&rt.root, id));
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let cg = cgroup_of(&saved).ok();
    delete_loaded(rt, &saved, force, cg, lock)
}

fn delete_loaded(
    rt: &Runtime,
    saved: &Saved,
    force: bool,
    cg: Option<Box<dyn berth_cgroups::Manager>>,
    lock: state::Lock,
) -> Result<()> {
    let id = saved.state.id.as_str();
    let status = state::status(&rt.root, saved);
    if matches!(status, Status::Running | Status::Paused) && !force {
        return Err(Error::new(
            ErrorKind::Conflict,
            // runc's words: callers match them.
            format!("cannot delete container {id} that is not stopped: {status}"),
        ));
    }
    if status != Status::Stopped {
        if let Some(cg) = &cg {
            for p in cg.pids().unwrap_or_default() {
                let _ = sys::kill(p, libc::SIGKILL);
            }
            if status == Status::Paused {
                let _ = cg.freeze(berth_cgroups::FreezerState::Thawed);
            }
        }
        let _ = sys::kill(saved.state.pid, libc::SIGKILL);
        wait_gone(saved);
    }
    if let Some(cg) = &cg {
        cg.destroy()?;
    }
    crate::rdt::remove(
        saved
            .config
            .linux()
            .as_ref()
            .and_then(|l| l.intel_rdt().as_ref()),
        id,
    );
    let h = saved.config.hooks().as_ref();
    if let Some(list) = h.and_then(|h| h.poststop().as_ref()) {
        let st = crate::process::hook_state(
            id,
            saved.state.pid,
            "stopped",
            &saved.state.bundle,
            &saved.config,
        );
        hooks::run_all_warn(Some(list), &st, "poststop");
    }
    let dir = state::dir(&rt.root, id);
    drop(lock);
    std::fs::remove_dir_all(&dir).map_err(|e| Error::sys(format!("remove {}", dir.display()), e))
}

/// Waits (bounded) until the SIGKILLed init is dead; reaps it if it is our child.
fn wait_gone(saved: &Saved) {
    if let Ok(pidfd) = sys::pidfd_open(saved.state.pid) {
        if saved.init_alive() {
            // SIGKILL was sent: the bound only guards against a process stuck in the kernel.
            let _ = sys::poll_fds([(pidfd.as_raw_fd(), libc::POLLIN)], 10_000);
        }
    }
    let _ = sys::waitpid(saved.state.pid, libc::WNOHANG);
}

pub fn pids(rt: &Runtime, id: &str) -> Result<Vec<i32>> {
    let saved = state::load(&rt.root, id)?;
    Ok(cgroup_of(&saved)?.pids()?)
}

pub fn pause(rt: &Runtime, id: &str) -> Result<()> {
    let _lock = state::lock(&rt.root, id)?;
    let saved = state::load(&rt.root, id)?;
    let st = state::status(&rt.root, &saved);
    if st != Status::Running && st != Status::Created {
        return Err(state::conflict(id, "pause", st));
    }
    Ok(cgroup_of(&saved)?.freeze(berth_cgroups::FreezerState::Frozen)?)
}

pub fn resume(rt: &Runtime, id: &str) -> Result<()> {
    let _lock = state::lock(&rt.root, id)?;
    let saved = state::load(&rt.root, id)?;
    let st = state::status(&rt.root, &saved);
    if st != Status::Paused {
        return Err(state::conflict(id, "resume", st));
    }
    Ok(cgroup_of(&saved)?.freeze(berth_cgroups::FreezerState::Thawed)?)
}

pub fn stats(rt: &Runtime, id: &str) -> Result<berth_cgroups::Stats> {
    let saved = state::load(&rt.root, id)?;
    if !saved.init_alive() {
        return Err(Error::not_running(id));
    }
    Ok(cgroup_of(&saved)?.stats()?)
}

pub fn update(rt: &Runtime, id: &str, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
    let _lock = state::lock(&rt.root, id)?;
    let mut saved = state::load(&rt.root, id)?;
    if !saved.init_alive() {
        return Err(Error::not_running(id));
    }
    cgroup_of(&saved)?.set(resources)?;
    if let Some(l) = saved.config.linux_mut() {
        l.set_resources(Some(resources.clone()));
    }
    state::save(&rt.root, &saved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_devices_get_no_rule_of_their_own() {
        let r: oci_spec::runtime::LinuxResources =
            serde_json::from_str(r#"{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":240,"minor":42,"access":"r"}]}"#).unwrap();
        let devs: Vec<oci_spec::runtime::LinuxDevice> = serde_json::from_str(
            r#"[{"path":"/dev/ro","type":"c","major":240,"minor":42},{"path":"/dev/null","type":"c","major":1,"minor":3}]"#,
        )
        .unwrap();
        let rule_for =
            |out: &oci_spec::runtime::LinuxResources, major: i64, minor: i64| -> Vec<String> {
                out.devices()
                    .iter()
                    .flatten()
                    .filter(|d| d.major() == Some(major) && d.minor() == Some(minor))
                    .map(|d| d.access().clone().unwrap_or_default())
                    .collect()
            };
        let fin = with_default_devices(&r, &devs, false);
        assert_eq!(rule_for(&fin, 240, 42), ["r"]);
        assert!(
            rule_for(&fin, 1, 3).is_empty(),
            "a redefined default node loses its rwm rule"
        );
        assert_eq!(rule_for(&fin, 1, 5), ["rwm"]);
        let during = with_default_devices(&r, &devs, true);
        assert_eq!(rule_for(&during, 240, 42), ["r", "m"]);
    }
}
