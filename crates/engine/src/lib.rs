//! berth's engine: containers from images.
//!
//! ```text
//! <root>/containers.db            SQLite (WAL, busy_timeout): table `containers` (id, name UNIQUE,
//!                                 created, record JSON = model::Container without State)
//! <root>/runtime/<id>/            berth-runtime's state (state.json, exec fifo, lock)
//! <root>/bin/berth-monitor        read-only bind of the monitor binary (berth-monitor, next to
//!                                 berth): monitors run from it, so the runtime in them needs no
//!                                 re-exec to seal itself (CVE-2019-5736)
//! <root>/containers/<id>/
//!     lock                        flock held by lifecycle operations (start, stop, rm, ...)
//!     config.json                 the OCI spec (bundle = this dir, root.path = merged)
//!     state.json                  model::RunState, written only by the monitor (atomic rename),
//!                                 or by the engine when the monitor is provably dead
//!     stop-requested              marker: a user stopped it, the restart policy must not apply
//!     attach.sock                 the monitor's attach socket (protocol in `attach`)
//!     <id>-json.log               docker's json-file log
//!     init/                       the init layer: etc/{hosts,hostname,resolv.conf}, .dockerenv,
//!                                 dev/{pts,shm,console}, proc, sys, etc/mtab -> /proc/mounts
//!     diff/  work/  merged/       overlay upper, work and mount point (vfs: diff holds a full
//!                                 copy of the image and merged is a bind of it)
//!     l/                          short symlinks to the lower dirs (overlay options < a page)
//! ```
//! /etc/hosts, /etc/hostname and /etc/resolv.conf are also bind-mounted from `init/` (as docker
//! does), so edits land in the init layer and never in `diff/`: [`INIT_PATHS`] lists what diff,
//! commit and export must leave out of the upper dir anyway.
//!
//! The monitor (`monitor::main`, run by `berth-monitor __monitor`) is one small process per running
//! container, in its own session: it creates and starts the container through berth-runtime
//! (the init is its child; it is a subreaper), holds its stdio or pty master, writes the log,
//! serves attach clients, records the exit code, OOM kill and finish time, applies the restart
//! policy, and does --rm cleanup. If a monitor is killed, `Engine::get` notices (pid + start time
//! of both monitor and init) and reports the container "dead" with exit code 255 once its init is
//! gone; `remove(force)` cleans it like any other (runtime state, the processes left in its
//! cgroup, mounts, dirs, the row, the image's user record). While the container still runs
//! without a monitor it is reported running (true), just without logs or restarts.
//!
//! Sockets (attach, console) are reached through `/proc/self/fd/N/name` of their directory so
//! any root depth fits sun_path. Once the container runs, the monitor returns its freed heap and
//! its code pages (`sys::trim_memory`): its steady resident set is ~0.7-0.9 MB. --network none
//! is a network namespace the monitor unshares (lo up) and names in the spec so exec joins it;
//! bridge and user networks (the default is "bridge", as in docker) get a namespace pinned at
//! `<root>/netns/<id>` and attached by berth-network before the monitor starts (`network`),
//! detached by the monitor when the container ends and by rm. --init mounts a static init
//! from the host (tini/docker-init, else the static busybox running a reap-and-forward script).
//!
//! ```no_run
//! use berth_engine::{Engine, EngineOptions, CreateOptions, StartOptions};
//! # fn main() -> berth_engine::Result<()> {
//! let engine = Engine::open(std::path::Path::new("/var/lib/berth"), &EngineOptions::default())?;
//! let c = engine.create(&CreateOptions { image: "busybox".into(), cmd: vec!["true".into()], ..Default::default() })?;
//! let attach = engine.start(&c.id, &StartOptions { attach: true, ..Default::default() })?;
//! let ended = attach.unwrap().pump_stdio(false)?;
//! engine.remove(&c.id, true, false)?;
//! # let _ = ended; Ok(()) }
//! ```

pub mod attach;
pub mod commit;
mod db;
mod engine;
mod error;
pub mod events;
pub mod filters;
pub mod flags;
pub mod info;
mod init;
pub mod logs;
pub mod model;
pub mod monitor;
mod names;
mod network;
pub mod resources;
mod snapshot;
mod spec;
mod sys;
pub mod timefmt;
pub mod update;
mod user;
pub mod volumes;

pub use attach::{Attach, Ended};
pub use berth_archive::{Change, ChangeKind};
pub use berth_network::{Network, NetworkCreate, DEFAULT_NETWORK};
pub use commit::{CommitOptions, PathStat, Placement};
pub use engine::{
    CreateOptions, Engine, EngineOptions, ExecOptions, StartOptions, StatsEntry, StopOptions,
};
pub use error::{Error, ErrorKind, Result};
pub use model::{Config, Container, HostConfig, MountPoint, RunState, State};
pub use network::{network_matches, parse_publish};
pub use snapshot::INIT_PATHS;
pub use sys::tree_size;
pub use volumes::{Volume, VolumeCreate, VolumeFilter, VolumeStore};
