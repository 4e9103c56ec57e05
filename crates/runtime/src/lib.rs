//! The container runtime: an OCI bundle becomes an isolated process.
//!
//! `Runtime` keeps one directory per container under its root (state.json, the exec fifo, a lock).
//! `create` clones the container init straight from the (single-threaded) caller with the
//! namespace flags, sets up the root filesystem and the process inside, and leaves it blocked on
//! the exec fifo until `start` opens the fifo for reading — the create/start split of runc.
//!
//! Layout: `process/init.rs` (the init, child side) and `container.rs` (the parent side and the
//! other verbs) talk over `sync.rs`; `namespaces.rs`, `rootfs/` (mounts, devices, pivot,
//! masking), `setup.rs` (rlimits, user, capabilities.rs, seccomp, execve), `hooks.rs`, `tty.rs`,
//! `process/exec.rs` (setns into a running container), `state.rs`, `seal.rs` (CVE-2019-5736),
//! `sched.rs` (ioPriority, scheduler, CPU affinity, memory policy), `netdev.rs` (netDevices over
//! rtnetlink), `rdt.rs` (intelRdt via resctrl), `rootfs/idmap.rs` (idmapped bind mounts).
//! A seccomp filter with a listenerPath is loaded before the init reports ready, and its notify
//! fd travels child -> parent -> agent (SCM_RIGHTS both times), so nothing waits on a hand-off.
//!
//! Start-time choices: no threads, no async runtime; one clone with every new namespace when
//! nothing is joined (two stages otherwise: setns/unshare, then fork the pid-1 init); the parent
//! creates the cgroup while the init mounts, and on cgroup v1 the init moves itself in through
//! `tasks`, which avoids the RCU grace period a cgroup.procs write costs. No timed polling:
//! `start` waits on the exec fifo and the init's pidfd, `delete` on the pidfd.

mod capabilities;
mod container;
mod defaults;
mod error;
mod hooks;
mod namespaces;
mod netdev;
mod process;
mod rdt;
mod rootfs;
mod sched;
mod seal;
mod setup;
mod spec;
mod state;
mod sync;
mod sys;
mod tty;

use std::path::PathBuf;

pub use defaults::{default_spec, features};
pub use error::{Error, ErrorKind, Result};
pub use seal::seal_exe;
pub use state::{State, Status};
/// A wait status as a shell (and docker) reports it: the code, or 128+N for signal N.
pub use sys::exit_code;
pub use tty::Escape;

/// Sends the runtime's warnings (ignored fields, fallbacks) to `sink` instead of stderr, which
/// may be the container's own; the child processes of `create` use it too.
pub fn set_warning_sink(sink: Box<dyn Fn(&str) + Send + Sync>) {
    sys::set_warning_sink(sink)
}

/// Where `create` and `run` find the bundle and how they hand over the process's stdio.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Directory holding config.json (and usually the rootfs).
    pub bundle: PathBuf,
    /// Written with the init's pid (host pid namespace) once created.
    pub pid_file: Option<PathBuf>,
    /// With process.terminal: a unix stream socket that receives the pty master (SCM_RIGHTS).
    pub console_socket: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root.
    pub no_pivot: bool,
    /// Do not give the container its own session keyring.
    pub no_new_keyring: bool,
    /// Pass fds 3..3+N of the caller on to the container process as they are (one still
    /// close-on-exec is closed at execve); the runtime's own fds stay above 3+N.
    pub preserve_fds: u32,
}

/// An extra process in a running container.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub process: oci_spec::runtime::Process,
    pub console_socket: Option<PathBuf>,
    /// Return 0 as soon as the process is started instead of waiting for it.
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    /// With a terminal: these keys typed on our stdin (docker's detach keys) end the proxying
    /// and `exec` returns [`DETACHED`] while the process runs on. None: nothing detaches.
    pub detach_keys: Option<Vec<u8>>,
    /// Exec into a paused container too (the process stays frozen until it is resumed).
    pub ignore_paused: bool,
}

/// What `exec` returns when the user typed the detach keys (never an exit code).
pub const DETACHED: i32 = -1;

/// The runtime: container state lives in one directory per container below `root`.
#[derive(Debug, Clone)]
pub struct Runtime {
    root: PathBuf,
    seal: bool,
}

impl Runtime {
    /// `root` is the CLI's --root (runc's default is /run/runc, ours /run/berth-runc).
    pub fn new(root: impl Into<PathBuf>) -> Runtime {
        Runtime {
            root: root.into(),
            seal: true,
        }
    }

    /// Turns off the CVE-2019-5736 re-exec through a read-only bind of the runtime binary
    /// (`create`, `run` and `exec` do it by default). For library tests whose binary is a test
    /// harness that must not be re-executed.
    pub fn without_exe_sealing(mut self) -> Runtime {
        self.seal = false;
        self
    }

    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// Creates the container; its init stays blocked until `start`, like runc.
    pub fn create(&self, id: &str, opts: &CreateOptions) -> Result<()> {
        self.maybe_seal()?;
        container::create(self, id, opts, container::Mode::Create).map(drop)
    }

    /// Lets a created container's init exec the user process.
    pub fn start(&self, id: &str) -> Result<()> {
        container::start(self, id)
    }

    /// create + start. In the foreground (`detach == false`) it forwards signals, proxies a
    /// terminal when process.terminal is set and no console socket was given, waits, deletes
    /// the container unless `keep`, and returns the exit code (128+N when killed by signal N).
    /// With `detach` it returns 0 once the container is started.
    pub fn run(&self, id: &str, opts: &CreateOptions, detach: bool, keep: bool) -> Result<i32> {
        self.maybe_seal()?;
        container::run(self, id, opts, detach, keep)
    }

    /// runc's `state`.
    pub fn state(&self, id: &str) -> Result<State> {
        container::state(self, id)
    }

    /// Every container below the root, sorted by id.
    pub fn list(&self) -> Result<Vec<State>> {
        container::list(self)
    }

    /// Sends `signal` to the init, or with `all` to every process in the container's cgroup.
    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        container::kill(self, id, signal, all)
    }

    /// Removes a stopped (or, with `force`, any) container: poststop hooks, cgroup, state.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        container::delete(self, id, force)
    }

    /// Runs another process in the container; returns its exit code (0 right away with detach).
    pub fn exec(&self, id: &str, opts: &ExecOptions) -> Result<i32> {
        self.maybe_seal()?;
        process::exec::exec(self, id, opts)
    }

    /// Host pids of every process in the container's cgroup.
    pub fn pids(&self, id: &str) -> Result<Vec<i32>> {
        container::pids(self, id)
    }

    pub fn pause(&self, id: &str) -> Result<()> {
        container::pause(self, id)
    }

    pub fn resume(&self, id: &str) -> Result<()> {
        container::resume(self, id)
    }

    pub fn stats(&self, id: &str) -> Result<berth_cgroups::Stats> {
        container::stats(self, id)
    }

    /// Applies new cgroup limits to a live container.
    pub fn update(&self, id: &str, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
        container::update(self, id, resources)
    }

    fn maybe_seal(&self) -> Result<()> {
        if self.seal {
            seal::seal_exe()?;
        }
        sys::trim_text();
        Ok(())
    }
}
