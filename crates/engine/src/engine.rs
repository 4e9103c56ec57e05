//! The engine: container records in SQLite, snapshots on disk, lifecycle through the monitor
//! and berth-runtime.

use crate::attach::{self, Attach, Ended};
use crate::db::Db;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{
    Config, Container, GraphDriver, HostConfig, LogConfig, MountPoint, RunState, State, ZERO_TIME,
};
use crate::monitor::{self, MonitorConfig};
use crate::snapshot::Snapshot;
use crate::{names, spec, sys, timefmt};
use berth_image::{Driver, ImageStore, StoreOptions};
use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Storage driver for a new root (else the root's own).
    pub driver: Option<Driver>,
    /// The berth binary (network helpers run from it; monitors from [`monitor::BIN`] next to
    /// it); default: the running binary.
    pub exe: Option<PathBuf>,
}

/// `berth create` / `run`: the flags, before the image's config is merged in.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub image: String,
    pub name: Option<String>,
    /// The arguments after the image (replace the image's Cmd when not empty).
    pub cmd: Vec<String>,
    /// --entrypoint: Some("") clears the image's entrypoint.
    pub entrypoint: Option<String>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub tty: bool,
    pub open_stdin: bool,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<i64>,
    /// --network-alias, --ip, --ip6, --mac-address: for the network named by network_mode.
    pub network_aliases: Vec<String>,
    pub ip: Option<String>,
    pub ip6: Option<String>,
    pub mac_address: Option<String>,
    /// --expose: "80", "53/udp", "8000-8002".
    pub expose: Vec<String>,
    /// Resources, mounts, security, restart policy, ... as parsed by `flags`.
    pub host_config: HostConfig,
}

#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Return an [`Attach`] connected before the container starts (no output is lost).
    pub attach: bool,
    /// Forward our stdin (needs the container's OpenStdin).
    pub stdin: bool,
}

#[derive(Debug, Clone, Default)]
pub struct StopOptions {
    /// Seconds before SIGKILL (default: the container's StopTimeout, else 10).
    pub timeout: Option<i64>,
    /// Default: the container's StopSignal, else SIGTERM.
    pub signal: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub tty: bool,
    pub interactive: bool,
    pub detach: bool,
    pub privileged: bool,
    /// With tty and interactive: the detach keys (empty: docker's ctrl-p ctrl-q).
    pub detach_keys: Vec<u8>,
}

/// One line of `berth stats`.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StatsEntry {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    pub cpu_nanos: u64,
    pub system_nanos: u64,
    pub online_cpus: u32,
    pub mem_usage: u64,
    pub mem_limit: u64,
    pub blk_read: u64,
    pub blk_write: u64,
    pub pids: u64,
}

pub struct Engine {
    root: PathBuf,
    pub(crate) db: Db,
    pub(crate) opts: EngineOptions,
    store: OnceCell<ImageStore>,
}

const STATE_FILE: &str = "state.json";
const STOP_MARKER: &str = "stop-requested";

impl Engine {
    pub fn open(root: &Path, opts: &EngineOptions) -> Result<Engine> {
        std::fs::create_dir_all(root.join("containers"))
            .map_err(|e| Error::io(format!("create {}", root.display()), e))?;
        let root = std::fs::canonicalize(root)
            .map_err(|e| Error::io(format!("resolve {}", root.display()), e))?;
        let db = Db::open(&root.join("containers.db"))?;
        Ok(Engine {
            root,
            db,
            opts: opts.clone(),
            store: OnceCell::new(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The image store of the same root (opened on first use).
    pub fn store(&self) -> Result<&ImageStore> {
        if let Some(s) = self.store.get() {
            return Ok(s);
        }
        let s = ImageStore::open(
            &self.root,
            &StoreOptions {
                driver: self.opts.driver,
            },
        )?;
        Ok(self.store.get_or_init(|| s))
    }

    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    fn runtime_root(&self) -> PathBuf {
        self.root.join("runtime")
    }

    pub fn runtime(&self) -> berth_runtime::Runtime {
        berth_runtime::Runtime::new(self.runtime_root())
    }

    fn volumes_dir(&self) -> PathBuf {
        self.root.join("volumes")
    }

    // ---- create ---------------------------------------------------------------------------

    pub fn create(&self, o: &CreateOptions) -> Result<Container> {
        let store = self.store()?;
        let image = store.resolve(&o.image).map_err(|e| {
            if e.kind() == berth_image::ErrorKind::NotFound {
                Error::new(
                    ErrorKind::NotFound,
                    format!("unable to find image '{}' locally", o.image),
                )
            } else {
                e.into()
            }
        })?;
        let vfs = store.driver() == Driver::Vfs;
        let id = sys::random_id();
        let ic = image.config.config().clone().unwrap_or_default();

        // docker's merge of image config and flags.
        let mut env: Vec<String> = ic.env().clone().unwrap_or_default();
        for e in &o.env {
            let key = e.split('=').next().unwrap_or("");
            env.retain(|x| x.split('=').next() != Some(key));
            env.push(e.clone());
        }
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(0, format!("PATH={}", spec::DEFAULT_PATH));
        }
        let hostname = o
            .hostname
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| id[..12].to_string());
        let host_network = o.host_config.network_mode == "host";
        let mut exposed: BTreeMap<String, serde_json::Value> = ic
            .exposed_ports()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|k| (k, serde_json::json!({})))
            .collect();
        for e in &o.expose {
            let (p, proto) = e.split_once('/').unwrap_or((e, "tcp"));
            let (a, b) = p.split_once('-').unwrap_or((p, p));
            let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) else {
                return Err(Error::invalid(format!(
                    "invalid range format for --expose: {e}"
                )));
            };
            for port in a..=b {
                exposed.insert(format!("{port}/{proto}"), serde_json::json!({}));
            }
        }
        let hostname = if host_network && o.hostname.is_none() {
            host_hostname()
        } else {
            hostname
        };
        if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
            env.insert(1.min(env.len()), format!("HOSTNAME={hostname}"));
        }
        if o.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        let entrypoint: Option<Vec<String>> = match &o.entrypoint {
            Some(e) if e.is_empty() => None,
            Some(e) => Some(vec![e.clone()]),
            None => ic.entrypoint().clone(),
        };
        let cmd: Option<Vec<String>> = if !o.cmd.is_empty() {
            Some(o.cmd.clone())
        } else if o.entrypoint.is_some() {
            None
        } else {
            ic.cmd().clone()
        };
        let mut argv: Vec<String> = entrypoint.clone().unwrap_or_default();
        argv.extend(cmd.clone().unwrap_or_default());
        if argv.is_empty() {
            return Err(Error::invalid("no command specified"));
        }
        let mut labels: BTreeMap<String, String> = ic
            .labels()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        labels.extend(o.labels.clone());
        let config = Config {
            hostname: hostname.clone(),
            user: o
                .user
                .clone()
                .unwrap_or_else(|| ic.user().clone().unwrap_or_default()),
            attach_stdin: o.attach_stdin,
            attach_stdout: o.attach_stdout,
            attach_stderr: o.attach_stderr,
            tty: o.tty,
            open_stdin: o.open_stdin,
            stdin_once: o.open_stdin && o.attach_stdin,
            env,
            cmd,
            image: o.image.clone(),
            working_dir: o
                .workdir
                .clone()
                .unwrap_or_else(|| ic.working_dir().clone().unwrap_or_default()),
            entrypoint,
            labels,
            stop_signal: o.stop_signal.clone().or_else(|| ic.stop_signal().clone()),
            stop_timeout: o.stop_timeout,
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            ..Default::default()
        };
        if let Some(s) = &config.stop_signal {
            sys::parse_signal(s)?;
        }
        let mut hc = o.host_config.clone();
        validate_host_config(&mut hc)?;
        let networking = self.validate_network(&mut hc, o)?;
        crate::volumes::add_image_volumes(ic.volumes().as_ref(), &mut hc);
        let dir = self.container_dir(&id);
        let snap = Snapshot::new(dir.clone());
        let mut lowers = image.layer_dirs();
        let mut c = Container {
            id: id.clone(),
            created: timefmt::now(),
            path: argv[0].clone(),
            args: argv[1..].to_vec(),
            image: image.id.clone(),
            image_name: o.image.clone(),
            resolv_conf_path: dir
                .join("init/etc/resolv.conf")
                .to_string_lossy()
                .into_owned(),
            hostname_path: dir.join("init/etc/hostname").to_string_lossy().into_owned(),
            hosts_path: dir.join("init/etc/hosts").to_string_lossy().into_owned(),
            log_path: dir
                .join(format!("{id}-json.log"))
                .to_string_lossy()
                .into_owned(),
            driver: if vfs { "vfs".into() } else { "overlay2".into() },
            platform: "linux".into(),
            mounts: mount_points(&hc, &self.volumes_dir()),
            config,
            host_config: hc,
            networking,
            ..Default::default()
        };
        let mut data = BTreeMap::new();
        lowers.reverse();
        if !vfs {
            let mut l = vec![snap.init().to_string_lossy().into_owned()];
            l.extend(lowers.iter().map(|p| p.to_string_lossy().into_owned()));
            data.insert("LowerDir".into(), l.join(":"));
            data.insert("WorkDir".into(), snap.work().to_string_lossy().into_owned());
        }
        data.insert(
            "UpperDir".into(),
            snap.upper().to_string_lossy().into_owned(),
        );
        data.insert(
            "MergedDir".into(),
            snap.merged().to_string_lossy().into_owned(),
        );
        c.graph_driver = GraphDriver {
            name: c.driver.clone(),
            data,
        };
        lowers.reverse();

        // The name is reserved by the insert (UNIQUE); generated names retry on collision.
        let mut retry = 0;
        loop {
            c.name = match &o.name {
                Some(n) => {
                    let n = n.strip_prefix('/').unwrap_or(n);
                    if !names::valid(n) {
                        return Err(Error::invalid(format!("Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")));
                    }
                    n.to_string()
                }
                None => names::generate(sys::random_u64(), retry),
            };
            match self.db.insert(&c) {
                Ok(()) => break,
                Err(e)
                    if e.kind() == ErrorKind::AlreadyExists && o.name.is_none() && retry < 10 =>
                {
                    retry += 1
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    let owner = self
                        .db
                        .find(&c.name)
                        .ok()
                        .flatten()
                        .map(|o| o.id)
                        .unwrap_or_default();
                    return Err(Error::new(
                        ErrorKind::Conflict,
                        format!(
                            "Conflict. The container name \"/{}\" is already in use by container \"{owner}\". You have to remove (or rename) that container to be able to reuse that name.",
                            c.name
                        ),
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        let r = (|| {
            store.add_user(&image.id, &id)?;
            snap.prepare(&lowers, vfs, &c.config.hostname, host_network)?;
            crate::volumes::attach_container(self, &c, &snap, vfs)?;
            write_state(
                &dir,
                &RunState {
                    status: "created".into(),
                    ..Default::default()
                },
            )
        })();
        if let Err(e) = r {
            let _ = snap.remove();
            let _ = crate::volumes::release_container(self, &c, true);
            let _ = self.db.delete(&id);
            let _ = store.remove_user(&image.id, &id);
            return Err(e);
        }
        c.state = self.live_state(&c);
        self.event(&c, "create", &[]);
        Ok(c)
    }

    /// Appends a container event with docker's attributes (image, name, labels).
    pub(crate) fn event(&self, c: &Container, action: &str, extra: &[(&str, &str)]) {
        let mut attrs: Vec<(&str, &str)> = vec![("image", &c.image_name), ("name", &c.name)];
        attrs.extend(
            c.config
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        attrs.extend_from_slice(extra);
        crate::events::record(&self.root, "container", action, &c.id, &attrs);
    }

    // ---- lookup ---------------------------------------------------------------------------

    /// By id, name or unique id prefix, with its live state.
    pub fn get(&self, key: &str) -> Result<Container> {
        let mut c = self
            .db
            .find(key)?
            .ok_or_else(|| Error::no_such_container(key))?;
        c.state = self.live_state(&c);
        c.restart_count = self.read_state(&c.id).restart_count;
        Ok(c)
    }

    /// Every container (only running ones unless `all`), newest first.
    pub fn list(&self, all: bool) -> Result<Vec<Container>> {
        let mut v = self.db.list()?;
        for c in &mut v {
            c.state = self.live_state(c);
            c.restart_count = self.read_state(&c.id).restart_count;
        }
        if !all {
            v.retain(|c| c.state.running);
        }
        Ok(v)
    }

    pub fn read_state(&self, id: &str) -> RunState {
        read_state(&self.container_dir(id))
    }

    /// The truth about a container: the monitor's record, checked against the processes.
    fn live_state(&self, c: &Container) -> State {
        let rs = self.read_state(&c.id);
        let mut st = State {
            status: rs.status.clone(),
            pid: 0,
            exit_code: rs.exit_code,
            oom_killed: rs.oom_killed,
            error: rs.error.clone(),
            started_at: if rs.started_at.is_empty() {
                ZERO_TIME.into()
            } else {
                rs.started_at.clone()
            },
            finished_at: if rs.finished_at.is_empty() {
                ZERO_TIME.into()
            } else {
                rs.finished_at.clone()
            },
            ..Default::default()
        };
        if st.status.is_empty() {
            st.status = "created".into();
        }
        match rs.status.as_str() {
            "running" | "restarting" => {
                let monitor = sys::alive(rs.monitor_pid, rs.monitor_start);
                let init = rs.status == "running" && sys::alive(rs.pid, rs.pid_start);
                if init {
                    st.running = true;
                    st.pid = rs.pid;
                    st.status = "running".into();
                    if let Ok(s) = self.runtime().state(&c.id) {
                        if s.status == berth_runtime::Status::Paused {
                            st.paused = true;
                            st.status = "paused".into();
                        }
                    }
                } else if monitor {
                    // Between the init's exit and the monitor's record of it (or a restart
                    // backoff): still running as far as waiters are concerned.
                    st.status = rs.status.clone();
                    st.restarting = rs.status == "restarting";
                    st.running = true;
                } else {
                    st.status = "dead".into();
                    st.dead = true;
                    st.exit_code = 255;
                    st.error = "container monitor died; exit status unknown".into();
                }
            }
            _ => {}
        }
        st
    }

    // ---- start ----------------------------------------------------------------------------

    /// The monitor binary: [`monitor::BIN`] next to the berth binary (the running one unless
    /// the options name it).
    fn monitor_exe(&self) -> Result<PathBuf> {
        let exe = match &self.opts.exe {
            Some(e) => e.clone(),
            None => std::env::current_exe().map_err(|e| Error::io("locate the berth binary", e))?,
        };
        let bin = exe.with_file_name(monitor::BIN);
        if !bin.is_file() {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "container monitor {} not found: install {} next to {} (scripts/build-release builds both)",
                    bin.display(),
                    monitor::BIN,
                    exe.display()
                ),
            ));
        }
        Ok(bin)
    }

    /// The read-only bind of the monitor binary monitors run from (see the crate docs).
    fn sealed_monitor(&self) -> Result<PathBuf> {
        use std::os::unix::fs::MetadataExt;
        let exe = self.monitor_exe()?;
        let bin = self.root.join("bin");
        let target = bin.join(monitor::BIN);
        let same = |a: &Path, b: &Path| match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.ino() == y.ino() && x.dev() == y.dev(),
            _ => false,
        };
        if sys::is_mountpoint(&target) && same(&exe, &target) {
            return Ok(target);
        }
        std::fs::create_dir_all(&bin)
            .map_err(|e| Error::io(format!("create {}", bin.display()), e))?;
        let _lock = sys::lock_file(&bin.join(".lock"))?;
        if sys::is_mountpoint(&target) && same(&exe, &target) {
            return Ok(target);
        }
        // A rebuilt binary: swap the bind (running monitors keep theirs).
        while sys::is_mountpoint(&target) {
            sys::umount(&target)?;
        }
        std::fs::write(&target, b"")
            .map_err(|e| Error::io(format!("create {}", target.display()), e))?;
        sys::mount(&exe.to_string_lossy(), &target, None, libc::MS_BIND, None)?;
        sys::mount(
            "none",
            &target,
            None,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
            None,
        )?;
        Ok(target)
    }

    /// Starts a created or stopped container: mounts its rootfs, writes its spec, and hands it
    /// to a new monitor. With `attach`, the returned [`Attach`] is connected before the start.
    pub fn start(&self, key: &str, o: &StartOptions) -> Result<Option<Attach>> {
        let c = self.get(key)?;
        let dir = self.container_dir(&c.id);
        let _lock = sys::lock_file(&dir.join("lock"))?;
        let c = self.get(&c.id)?;
        if c.state.running {
            if c.state.paused {
                return Err(Error::conflict(format!(
                    "cannot start a paused container {}, try unpause instead",
                    c.id
                )));
            }
            return if o.attach {
                Ok(Some(self.attach(&c.id, o.stdin)?))
            } else {
                Ok(None)
            };
        }
        if c.state.dead {
            self.cleanup_runtime(&c);
        }
        // The previous monitor records the exit before it unmounts the rootfs: a start (restart)
        // right after a stop waits for it to finish, or its unmount would hit our new mount.
        let prev = self.read_state(&c.id);
        let deadline = Instant::now() + Duration::from_secs(10);
        while prev.monitor_pid > 0
            && sys::alive(prev.monitor_pid, prev.monitor_start)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = std::fs::remove_file(dir.join(STOP_MARKER));
        let vfs = c.driver == "vfs";
        let snap = Snapshot::new(dir.clone());
        // Every failure below, the mount and the monitor binary included, takes the --rm
        // cleanup: `docker run --rm` waits for the removal after a failed start.
        let r = (|| {
            snap.mount_with(vfs, c.host_config.auto_remove)?;
            let exe = self.sealed_monitor()?;
            if !c.config.working_dir.is_empty() {
                // docker creates a working directory the image lacks.
                crate::commit::mkdir_all_in_root(&snap.merged(), &c.config.working_dir)?;
            }
            crate::volumes::mount_devices(self, &c)?;
            let init = if c.host_config.init == Some(true) {
                Some(crate::init::install(&self.root)?)
            } else {
                None
            };
            let mut spec = spec::generate(
                &c,
                &dir,
                &snap.merged(),
                &self.volumes_dir(),
                init.as_deref(),
            )?;
            if let Some(ns) = self.network_setup(&c)? {
                set_netns_path(&mut spec, &ns);
            }
            sys::write_atomic(
                &dir.join("config.json"),
                serde_json::to_string(&spec).expect("spec").as_bytes(),
            )?;
            let prev = self.read_state(&c.id);
            let mc = MonitorConfig {
                root: self.root.clone(),
                id: c.id.clone(),
                tty: c.config.tty,
                open_stdin: c.config.open_stdin,
                stdin_once: c.config.stdin_once,
                restart: c.host_config.restart_policy.name.clone(),
                max_retries: c.host_config.restart_policy.maximum_retry_count,
                auto_remove: c.host_config.auto_remove,
                network: c.host_config.network_mode.clone(),
                log_path: PathBuf::from(&c.log_path),
                restart_count: prev.restart_count,
                image: c.image.clone(),
                vfs,
                cgroups_path: crate::resources::cgroups_path(&c.host_config, &c.id),
                name: c.name.clone(),
                image_name: c.image_name.clone(),
            };
            sys::write_atomic(
                &dir.join(monitor::CONFIG_FILE),
                serde_json::to_string(&mc)
                    .expect("monitor config")
                    .as_bytes(),
            )?;
            let (mine, theirs) = if o.attach {
                let (a, b) = sys::socketpair()?;
                attach::hello(&a, o.stdin)?;
                (Some(a), Some(b))
            } else {
                (None, None)
            };
            // The monitor records "start" itself, before the container can die.
            self.spawn_monitor(&exe, &c.id, theirs)?;
            Ok(mine.map(|fd| Attach::new(fd, c.config.tty, o.stdin)))
        })();
        if r.is_err() && self.read_state(&c.id).status != "running" {
            if crate::network::is_bridged(&c.host_config.network_mode) {
                self.network_teardown(&c.id);
            }
            let _ = snap.unmount();
            if c.host_config.auto_remove {
                // docker's --rm also covers a start that failed: the container and its name go.
                let _ = self.cleanup(&c, true);
            }
        }
        r
    }

    /// Starts the monitor (in a session of its own; it forks once more at once, so it outlives
    /// us and is nobody's child) and waits for its report: started, or the error that kept the
    /// container from starting.
    fn spawn_monitor(&self, exe: &Path, id: &str, attach: Option<OwnedFd>) -> Result<()> {
        let (rd, wr) = sys::pipe()?;
        let attach_fd = attach.as_ref().map_or(-1, |f| f.as_raw_fd());
        let args = [
            sys::cstr("berth"),
            sys::cstr(monitor::ARG),
            sys::cstr(&self.root),
            sys::cstr(id),
            sys::cstr(wr.as_raw_fd().to_string()),
            sys::cstr(attach_fd.to_string()),
        ];
        let keep: Vec<std::os::fd::RawFd> = [wr.as_raw_fd(), attach_fd]
            .into_iter()
            .filter(|fd| *fd >= 0)
            .collect();
        let pid = sys::spawn_session(&sys::cstr(exe), &args, &keep)?;
        drop(wr);
        drop(attach);
        let mut status = 0;
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n) = sys::read(rd.as_raw_fd(), &mut chunk) {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        monitor::parse_report(&buf, id)
    }

    // ---- attach ---------------------------------------------------------------------------

    /// Connects to a running container's monitor.
    pub fn attach(&self, key: &str, stdin: bool) -> Result<Attach> {
        let c = self.get(key)?;
        if !c.state.running {
            return Err(Error::conflict(
                "you cannot attach to a stopped container, start it first",
            ));
        }
        let fd = attach::connect(&self.container_dir(&c.id).join(monitor::ATTACH_SOCKET))?;
        attach::hello(&fd, stdin && c.config.open_stdin)?;
        Ok(Attach::new(fd, c.config.tty, stdin && c.config.open_stdin))
    }

    // ---- stop / kill / wait ---------------------------------------------------------------

    /// Blocks until the container is not running; returns its exit code.
    pub fn wait(&self, key: &str) -> Result<i32> {
        let c = self.get(key)?;
        loop {
            let st = self.get(&c.id).map(|c| c.state);
            match st {
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    // Removed (--rm): the monitor recorded the code before it went.
                    return Ok(self.read_state(&c.id).exit_code);
                }
                Err(e) => return Err(e),
                Ok(s) if !s.running && s.status != "created" => return Ok(s.exit_code),
                Ok(_) => {}
            }
            // Sleep on the monitor's socket when it has one; poll otherwise.
            let sock = self.container_dir(&c.id).join(monitor::ATTACH_SOCKET);
            match attach::connect(&sock) {
                Ok(fd) if attach::hello_wait(&fd).is_ok() => {
                    if let Some(code) = attach::wait_exit(&fd) {
                        return Ok(code);
                    }
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    pub fn kill(&self, key: &str, signal: &str) -> Result<()> {
        let c = self.get(key)?;
        if !c.state.running {
            return Err(Error::conflict(format!(
                "cannot kill container: {}: container {} is not running",
                key, c.id
            )));
        }
        let sig = sys::parse_signal(signal)?;
        if c.state.restarting {
            return Ok(());
        }
        self.runtime().kill(&c.id, sig, false)?;
        self.event(&c, "kill", &[("signal", &sig.to_string())]);
        Ok(())
    }

    /// Stop signal, then SIGKILL after the timeout; returns when the monitor recorded the exit.
    pub fn stop(&self, key: &str, o: &StopOptions) -> Result<()> {
        let c = self.get(key)?;
        let dir = self.container_dir(&c.id);
        let _lock = sys::lock_file(&dir.join("lock"))?;
        let r = self.stop_locked(&c, o);
        if r.is_ok() {
            self.event(&c, "stop", &[]);
        }
        r
    }

    fn stop_locked(&self, c: &Container, o: &StopOptions) -> Result<()> {
        let dir = self.container_dir(&c.id);
        std::fs::write(dir.join(STOP_MARKER), b"").map_err(|e| Error::io("mark stop", e))?;
        let c = self.get(&c.id)?;
        if !c.state.running {
            return Ok(());
        }
        let rt = self.runtime();
        let rs = self.read_state(&c.id);
        if c.state.paused {
            let _ = rt.resume(&c.id);
        }
        let sig = sys::parse_signal(
            o.signal
                .as_deref()
                .or(c.config.stop_signal.as_deref())
                .unwrap_or("SIGTERM"),
        )?;
        let timeout = o.timeout.or(c.config.stop_timeout).unwrap_or(10).max(0) as u64;
        if rs.status == "running" {
            let _ = rt.kill(&c.id, sig, false);
            let deadline = Instant::now() + Duration::from_secs(timeout);
            while sys::alive(rs.pid, rs.pid_start) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if sys::alive(rs.pid, rs.pid_start) {
                let _ = rt.kill(&c.id, libc::SIGKILL, true);
            }
        }
        self.wait_monitor(&c.id, Duration::from_secs(10));
        Ok(())
    }

    /// Until the monitor is gone or has recorded the exit (bounded).
    fn wait_monitor(&self, id: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let rs = self.read_state(id);
            let monitor = sys::alive(rs.monitor_pid, rs.monitor_start);
            if !monitor || (rs.status != "running" && rs.status != "restarting") {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn restart(&self, key: &str, o: &StopOptions) -> Result<()> {
        let c = self.get(key)?;
        {
            let _lock = sys::lock_file(&self.container_dir(&c.id).join("lock"))?;
            self.stop_locked(&c, o)?;
        }
        self.start(&c.id, &StartOptions::default()).map(drop)
    }

    pub fn pause(&self, key: &str) -> Result<()> {
        let c = self.get(key)?;
        if !c.state.running {
            return Err(Error::conflict(format!(
                "container {} is not running",
                c.id
            )));
        }
        if c.state.paused {
            return Err(Error::conflict(format!(
                "container {} is already paused",
                c.id
            )));
        }
        self.runtime().pause(&c.id)?;
        self.event(&c, "pause", &[]);
        Ok(())
    }

    pub fn unpause(&self, key: &str) -> Result<()> {
        let c = self.get(key)?;
        if !c.state.paused {
            return Err(Error::conflict(format!("container {} is not paused", c.id)));
        }
        self.runtime().resume(&c.id)?;
        self.event(&c, "unpause", &[]);
        Ok(())
    }

    pub fn rename(&self, key: &str, new: &str) -> Result<()> {
        let mut c = self.get(key)?;
        let old = format!("/{}", c.name);
        let n = new.strip_prefix('/').unwrap_or(new);
        if !names::valid(n) {
            return Err(Error::invalid(format!(
                "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        if c.name == n {
            return Err(Error::invalid(
                "renaming a container with the same name as its current name",
            ));
        }
        c.name = n.to_string();
        let st = std::mem::take(&mut c.state);
        self.db.update(&c).map_err(|e| {
            if e.kind() == ErrorKind::AlreadyExists {
                Error::conflict(format!(
                    "error when allocating new name: the container name \"/{n}\" is already in use"
                ))
            } else {
                e
            }
        })?;
        c.state = st;
        self.event(&c, "rename", &[("oldName", &old)]);
        Ok(())
    }

    // ---- remove ---------------------------------------------------------------------------

    /// `rm`: refuses a running container unless `force` (then kills it first).
    pub fn remove(&self, key: &str, force: bool, volumes: bool) -> Result<()> {
        let c = self.get(key)?;
        let dir = self.container_dir(&c.id);
        let _lock = match sys::lock_file(&dir.join("lock")) {
            // A cleanup killed half-way (or racing us) removed the directory but not the record:
            // cleanup is idempotent, so recreate the directory just to hold the lock and finish it.
            Err(e) if e.kind() == ErrorKind::NotFound => {
                std::fs::create_dir_all(&dir)
                    .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
                sys::lock_file(&dir.join("lock"))?
            }
            other => other?,
        };
        let c = match self.get(&c.id) {
            Ok(c) => c,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if c.state.running && !force {
            let what = if c.state.paused { "paused" } else { "running" };
            return Err(Error::conflict(format!(
                "cannot remove container \"/{}\": container is {what}: stop the container before removing or force remove",
                c.name
            )));
        }
        let _ = std::fs::write(dir.join(STOP_MARKER), b"");
        if c.state.running {
            let rt = self.runtime();
            if c.state.paused {
                let _ = rt.resume(&c.id);
            }
            let _ = rt.kill(&c.id, libc::SIGKILL, true);
            self.wait_monitor(&c.id, Duration::from_secs(10));
        }
        let rs = self.read_state(&c.id);
        if sys::alive(rs.monitor_pid, rs.monitor_start) {
            // Stuck (or doing --rm cleanup right now): it must not outlive its container.
            sys::kill(rs.monitor_pid, libc::SIGKILL);
        }
        self.cleanup(&c, volumes)
    }

    fn cleanup_runtime(&self, c: &Container) {
        let rt = self.runtime();
        let _ = rt.kill(&c.id, libc::SIGKILL, true);
        let _ = rt.delete(&c.id, true);
        // A monitor killed in the middle of create leaves an init the runtime never recorded:
        // whatever is still in the container's cgroup goes, then the cgroup.
        if let Ok(cg) = berth_cgroups::open(
            Some(Path::new(&crate::resources::cgroups_path(
                &c.host_config,
                &c.id,
            ))),
            &c.id,
        ) {
            for _ in 0..200 {
                let pids = cg.pids().unwrap_or_default();
                if pids.is_empty() {
                    break;
                }
                let _ = cg.freeze(berth_cgroups::FreezerState::Thawed);
                for p in pids {
                    sys::kill(p, libc::SIGKILL);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = cg.destroy();
        }
        if rt.root().join(&c.id).exists() {
            let _ = std::fs::remove_dir_all(rt.root().join(&c.id));
        }
    }

    /// Removes everything of a container; safe to run twice and concurrently with the monitor's
    /// own --rm cleanup.
    pub fn cleanup(&self, c: &Container, volumes: bool) -> Result<()> {
        self.cleanup_runtime(c);
        if crate::network::is_bridged(&c.host_config.network_mode) {
            self.network_teardown(&c.id);
        }
        let files = Snapshot::new(self.container_dir(&c.id)).discard()?;
        crate::volumes::release_container(self, c, volumes)?;
        if self.db.delete(&c.id)? {
            self.event(c, "destroy", &[]);
        }
        drop(files);
        if let Ok(s) = self.store() {
            let _ = s.remove_user(&c.image, &c.id);
        }
        Ok(())
    }

    /// `container prune`: removes every stopped container; returns their ids.
    pub fn prune(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for c in self.list(true)? {
            if !c.state.running {
                self.remove(&c.id, false, false)?;
                out.push(c.id);
            }
        }
        Ok(out)
    }

    // ---- inside running containers --------------------------------------------------------

    pub fn pids(&self, key: &str) -> Result<Vec<i32>> {
        let c = self.get(key)?;
        if !c.state.running {
            return Err(Error::conflict(format!(
                "container {} is not running",
                c.id
            )));
        }
        Ok(self.runtime().pids(&c.id)?)
    }

    pub fn stats(&self, key: &str) -> Result<StatsEntry> {
        let c = self.get(key)?;
        let mut e = StatsEntry {
            id: c.id.clone(),
            name: c.name.clone(),
            ..Default::default()
        };
        e.online_cpus = std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1);
        e.system_nanos = system_cpu_nanos();
        if !c.state.running {
            return Ok(e);
        }
        let s = self.runtime().stats(&c.id)?;
        e.cpu_nanos = s.cpu.usage.total;
        e.mem_usage = s.memory.usage.usage.saturating_sub(
            s.memory
                .raw
                .get("total_inactive_file")
                .copied()
                .unwrap_or(0),
        );
        e.mem_limit = s.memory.usage.limit;
        let total = host_mem_total();
        if e.mem_limit == 0 || e.mem_limit > total {
            e.mem_limit = total;
        }
        for b in &s.blkio.io_service_bytes_recursive {
            match b.op.as_str() {
                "Read" | "read" => e.blk_read += b.value,
                "Write" | "write" => e.blk_write += b.value,
                _ => {}
            }
        }
        e.pids = s.pids.current;
        Ok(e)
    }

    /// `exec`: runs a process in the running container through the runtime (setns into every
    /// namespace of its init, its cgroup, its capabilities, seccomp and no_new_privs). The
    /// process uses our stdio. Returns its exit code, or Detached when the user typed the
    /// detach keys (tty and interactive only; the process runs on, as with docker).
    pub fn exec(&self, key: &str, o: &ExecOptions) -> Result<Ended> {
        let c = self.get(key)?;
        if !c.state.running {
            return Err(Error::conflict(format!(
                "container {} is not running",
                c.id
            )));
        }
        if c.state.paused {
            return Err(Error::conflict(format!(
                "container {} is paused, unpause the container before exec",
                c.id
            )));
        }
        if o.cmd.is_empty() {
            return Err(Error::invalid("no command specified"));
        }
        let dir = self.container_dir(&c.id);
        let text = std::fs::read_to_string(dir.join("config.json"))
            .map_err(|e| Error::io("read config.json", e))?;
        let spec: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::internal(format!("config.json: {e}")))?;
        let merged = Snapshot::new(dir).merged();
        let user_spec = o.user.clone().unwrap_or_else(|| c.config.user.clone());
        let u = crate::user::resolve(&merged, &user_spec)?;
        let mut env = c.config.env.clone();
        for e in &o.env {
            let key = e.split('=').next().unwrap_or("");
            env.retain(|x| x.split('=').next() != Some(key));
            env.push(e.clone());
        }
        if o.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        let mut caps = spec["process"]["capabilities"]["bounding"].clone();
        if o.privileged {
            caps = serde_json::json!(spec::capabilities(true, &[], &[])?);
        }
        let eff = if u.uid == 0 {
            caps.clone()
        } else {
            serde_json::json!([])
        };
        let cwd = o
            .workdir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| spec["process"]["cwd"].as_str().unwrap_or("/").to_string());
        let process = serde_json::json!({
            "terminal": o.tty,
            "user": {"uid": u.uid, "gid": u.gid, "additionalGids": u.additional_gids},
            "args": o.cmd,
            "env": env,
            "cwd": cwd,
            "capabilities": {"bounding": caps, "effective": eff, "permitted": eff},
            "noNewPrivileges": spec["process"]["noNewPrivileges"],
            "rlimits": spec["process"]["rlimits"],
        });
        let mut process = process;
        if process["rlimits"].is_null() {
            process.as_object_mut().unwrap().remove("rlimits");
        }
        let process: oci_spec::runtime::Process = serde_json::from_value(process)
            .map_err(|e| Error::internal(format!("exec process: {e}")))?;
        let keys = match &o.detach_keys {
            k if k.is_empty() => attach::DEFAULT_DETACH_KEYS.to_vec(),
            k => k.clone(),
        };
        let detach_keys = (o.tty && o.interactive && !o.detach).then_some(keys);
        let eo = berth_runtime::ExecOptions {
            process,
            console_socket: None,
            detach: o.detach,
            pid_file: None,
            preserve_fds: 0,
            detach_keys,
            ignore_paused: false,
        };
        match self.runtime().exec(&c.id, &eo)? {
            berth_runtime::DETACHED => Ok(Ended::Detached),
            code => Ok(Ended::Exited(code)),
        }
    }
}

fn set_netns_path(spec: &mut serde_json::Value, ns: &Path) {
    if let Some(list) = spec["linux"]["namespaces"].as_array_mut() {
        for n in list {
            if n["type"] == "network" {
                n["path"] = serde_json::json!(ns.to_string_lossy());
            }
        }
    }
}

impl Engine {
    pub(crate) fn save(&self, c: &Container) -> Result<()> {
        let mut c = c.clone();
        c.state = State::default();
        self.db.update(&c)
    }

    /// The network mode as stored: "container:<full id>", a network that exists; returns the
    /// endpoint request (aliases, ip, mac) for it. Published host ports are checked now, so a
    /// port in use fails `run` before any container exists.
    fn validate_network(
        &self,
        hc: &mut HostConfig,
        o: &CreateOptions,
    ) -> Result<BTreeMap<String, crate::model::EndpointConfig>> {
        let mode = hc.network_mode.clone();
        let mut out = BTreeMap::new();
        let custom = !o.network_aliases.is_empty()
            || o.ip.is_some()
            || o.ip6.is_some()
            || o.mac_address.is_some();
        if let Some(other) = mode.strip_prefix("container:") {
            let oc = self.get(other)?;
            hc.network_mode = format!("container:{}", oc.id);
        } else if crate::network::is_bridged(&mode) {
            let mut nets = self.networks()?;
            let n = nets.get(&mode)?;
            if !o.network_aliases.is_empty() && !n.dns {
                return Err(Error::invalid(
                    "network-scoped aliases are only supported for user-defined networks",
                ));
            }
            if let (Some(ip6), false) = (&o.ip6, n.ipv6) {
                return Err(Error::invalid(format!(
                    "--ip6 {ip6}: network {} has no IPv6 (create it with --ipv6)",
                    n.name
                )));
            }
            if custom {
                out.insert(
                    n.name.clone(),
                    crate::model::EndpointConfig {
                        aliases: o.network_aliases.clone(),
                        ipv4_address: o.ip.clone().unwrap_or_default(),
                        ipv6_address: o.ip6.clone().unwrap_or_default(),
                        mac_address: o.mac_address.clone().unwrap_or_default(),
                    },
                );
            }
            let _ = &mut nets;
        } else if custom {
            return Err(Error::invalid(format!(
                "--network-alias, --ip, --ip6 and --mac-address need a bridge network, not {mode}"
            )));
        }
        if (!hc.port_bindings.is_empty() || hc.publish_all_ports)
            && !crate::network::is_bridged(&hc.network_mode)
        {
            if hc.network_mode != "host" {
                return Err(Error::invalid(format!(
                    "published ports need a bridge network, not --network {}",
                    hc.network_mode
                )));
            }
        }
        if crate::network::is_bridged(&hc.network_mode) {
            let mut reqs = Vec::new();
            for (k, binds) in &hc.port_bindings {
                let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
                for b in binds.iter().filter(|b| !b.host_port.is_empty()) {
                    let hp = b.host_port.parse::<u16>().map_err(|_| {
                        Error::invalid(format!("invalid host port {}", b.host_port))
                    })?;
                    let cp = p
                        .parse::<u16>()
                        .map_err(|_| Error::invalid(format!("invalid port {k}")))?;
                    reqs.push(berth_network::PortRequest {
                        host_ip: b.host_ip.clone(),
                        host_port: hp,
                        container_port: cp,
                        proto: proto.to_string(),
                    });
                }
            }
            if !reqs.is_empty() {
                self.networks()?.check_ports(&reqs)?;
            }
        }
        Ok(out)
    }
}

fn validate_host_config(hc: &mut HostConfig) -> Result<()> {
    crate::resources::verify(hc, crate::resources::host_version())?;
    if hc.memory != 0 && hc.memory < 6 << 20 {
        return Err(Error::invalid("minimum memory limit allowed is 6MB"));
    }
    if hc.memory_swap > 0 && hc.memory > 0 && hc.memory_swap < hc.memory {
        return Err(Error::invalid(
            "minimum memoryswap limit should be larger than memory limit, see usage",
        ));
    }
    if hc.memory_swap != 0 && hc.memory == 0 {
        return Err(Error::invalid(
            "you should always set the memory limit when using memoryswap limit, see usage",
        ));
    }
    if hc.network_mode.is_empty() || hc.network_mode == "default" {
        hc.network_mode = berth_network::DEFAULT_NETWORK.into();
    }
    if hc.restart_policy.name.is_empty() {
        hc.restart_policy.name = "no".into();
    }
    if hc.auto_remove && hc.restart_policy.name != "no" {
        return Err(Error::invalid(
            "conflicting options: cannot specify both --restart and --rm",
        ));
    }
    // docker refuses a --mount bind of a missing path when the container is created.
    for m in hc.mounts.iter().flatten() {
        if m.typ == "bind"
            && !crate::flags::is_volume_flag_bind(hc, m)
            && std::fs::symlink_metadata(&m.source).is_err()
        {
            return Err(Error::invalid(format!(
                "invalid mount config for type \"bind\": bind source path does not exist: {}",
                m.source
            )));
        }
    }
    if hc.shm_size == 0 {
        hc.shm_size = 64 << 20;
    }
    if hc.log_config.typ.is_empty() {
        hc.log_config = LogConfig {
            typ: "json-file".into(),
            config: BTreeMap::new(),
        };
    }
    // Stored as docker's daemon stores them: upper case with the CAP_ prefix ("ALL" stays).
    for caps in [&mut hc.cap_add, &mut hc.cap_drop].into_iter().flatten() {
        *caps = caps.iter().map(|c| spec::norm_cap(c)).collect();
    }
    spec::capabilities(
        false,
        hc.cap_add.as_deref().unwrap_or(&[]),
        hc.cap_drop.as_deref().unwrap_or(&[]),
    )?;
    if hc.masked_paths.is_empty() && !hc.privileged {
        hc.masked_paths = spec::MASKED_PATHS.iter().map(|s| s.to_string()).collect();
        hc.readonly_paths = spec::READONLY_PATHS.iter().map(|s| s.to_string()).collect();
    }
    Ok(())
}

fn mount_points(hc: &HostConfig, volumes: &Path) -> Vec<MountPoint> {
    // docker's Mode is the options part of a `-v SRC:DST:MODE` ("ro", "ro,z", ...); a volume
    // given without one gets "z", `--mount` binds "".
    let bind_mode = |dst: &str| {
        hc.binds.iter().flatten().find_map(|b| {
            let parts: Vec<&str> = b.split(':').collect();
            (parts.len() >= 2 && parts[1] == dst).then(|| parts.get(2).map(|m| m.to_string()))
        })
    };
    let mut v = Vec::new();
    for m in hc.mounts.iter().flatten() {
        let (source, name, driver) = match m.typ.as_str() {
            "volume" => (
                volumes
                    .join(&m.source)
                    .join("_data")
                    .to_string_lossy()
                    .into_owned(),
                Some(m.source.clone()),
                "local".to_string(),
            ),
            "tmpfs" => (String::new(), None, String::new()),
            _ => (m.source.clone(), None, String::new()),
        };
        v.push(MountPoint {
            typ: m.typ.clone(),
            name,
            source,
            destination: m.target.clone(),
            driver,
            mode: match (bind_mode(&m.target), m.typ.as_str()) {
                (Some(Some(mode)), _) => mode,
                (_, "volume") => "z".into(),
                _ => String::new(),
            },
            rw: !m.read_only,
            propagation: m
                .bind_options
                .as_ref()
                .map(|b| b.propagation.clone())
                .unwrap_or_default(),
        });
    }
    v
}

fn host_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn system_cpu_nanos() -> u64 {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = s.lines().next() else {
        return 0;
    };
    let ticks: u64 = line
        .split_whitespace()
        .skip(1)
        .take(7)
        .filter_map(|x| x.parse::<u64>().ok())
        .sum();
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * (1_000_000_000 / hz)
}

fn host_mem_total() -> u64 {
    let s = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |k| k * 1024)
}

pub(crate) fn read_state(dir: &Path) -> RunState {
    std::fs::read(dir.join(STATE_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

pub(crate) fn write_state(dir: &Path, s: &RunState) -> Result<()> {
    sys::write_atomic(
        &dir.join(STATE_FILE),
        serde_json::to_string(s).expect("state").as_bytes(),
    )
}

pub(crate) fn stop_requested(dir: &Path) -> bool {
    dir.join(STOP_MARKER).exists()
}
