//! The monitor: one per running container, started by [`crate::Engine::start`] as
//! `berth-monitor __monitor ROOT ID SYNC_FD ATTACH_FD` in its own session. It creates and starts the
//! container through berth-runtime (the init is its child), holds the container's stdio (pipes,
//! or the pty master received on a console socket), writes the json-file log, serves attach
//! clients, records exit code, OOM kill and finish time in `state.json`, applies the restart
//! policy with a bounded backoff, unmounts the rootfs, and does --rm cleanup.
//!
//! It touches neither clap nor SQLite while the container runs (SQLite only for --rm at the
//! end), which keeps its resident set small. It runs from its own binary, [`BIN`], which links
//! only the engine: berth's API server, registry client and their async stack would add
//! relocations that every monitor applies at exec, each one a dirty page it keeps.

use crate::attach::{self, frame, take_frame};
use crate::engine::{read_state, stop_requested, write_state};
use crate::error::{Error, ErrorKind, Result};
use crate::model::RunState;
use crate::snapshot::Snapshot;
use crate::{logs, sys, timefmt};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// argv[1] of a monitor.
pub const ARG: &str = "__monitor";
/// The monitor's binary, installed next to `berth`; it also runs the network helpers.
pub const BIN: &str = "berth-monitor";
pub const CONFIG_FILE: &str = "monitor.json";
pub const ATTACH_SOCKET: &str = "attach.sock";
const CONSOLE_SOCKET: &str = "console.sock";

/// What the monitor needs, written by the engine next to the container's spec.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MonitorConfig {
    pub root: PathBuf,
    pub id: String,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub restart: String,
    pub max_retries: i64,
    pub auto_remove: bool,
    pub network: String,
    pub log_path: PathBuf,
    pub restart_count: i64,
    pub image: String,
    pub vfs: bool,
    /// The spec's cgroupsPath (for the OOM kill count).
    pub cgroups_path: String,
    /// For the events this monitor records (die): the container's name and image as given.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub image_name: String,
}

fn kind_code(k: ErrorKind) -> u8 {
    match k {
        ErrorKind::NotFound => 0,
        ErrorKind::AlreadyExists => 1,
        ErrorKind::InvalidArgument => 2,
        ErrorKind::Conflict => 3,
        ErrorKind::PermissionDenied => 4,
        ErrorKind::Unavailable => 5,
        ErrorKind::Internal => 6,
        ErrorKind::CannotInvoke => 7,
        ErrorKind::CommandNotFound => 8,
    }
}

fn code_kind(c: u8) -> ErrorKind {
    match c {
        0 => ErrorKind::NotFound,
        1 => ErrorKind::AlreadyExists,
        2 => ErrorKind::InvalidArgument,
        3 => ErrorKind::Conflict,
        4 => ErrorKind::PermissionDenied,
        5 => ErrorKind::Unavailable,
        7 => ErrorKind::CannotInvoke,
        8 => ErrorKind::CommandNotFound,
        _ => ErrorKind::Internal,
    }
}

/// The engine's side of the sync pipe: "ok", or "err <kind> <message>".
pub fn parse_report(buf: &[u8], id: &str) -> Result<()> {
    let s = String::from_utf8_lossy(buf);
    if s.starts_with("ok") {
        return Ok(());
    }
    if let Some(rest) = s.strip_prefix("err ") {
        let (k, msg) = rest.split_once(' ').unwrap_or((rest, ""));
        return Err(Error::new(
            code_kind(k.parse().unwrap_or(6)),
            msg.trim_end().to_string(),
        ));
    }
    Err(Error::internal(format!(
        "container {id}: the monitor exited without reporting"
    )))
}

struct Client {
    fd: OwnedFd,
    hello: Option<u8>,
    buf: Vec<u8>,
}

/// A container's output stream: the pipe or pty master and the partial line not yet logged.
struct Stream {
    fd: Option<OwnedFd>,
    name: &'static str,
    kind: u8,
    partial: Vec<u8>,
}

struct Monitor {
    cfg: MonitorConfig,
    log: Option<File>,
    clients: Vec<Client>,
    listener: OwnedFd,
    sigfd: OwnedFd,
    /// Give memory back ([`sys::trim_memory`]) before the next sleep in poll: the code that
    /// runs between a trim and the sleep is faulted in again, so the closer the better.
    trim: bool,
}

/// The helper processes berth starts (monitor, DNS responder, port proxy, network reaper),
/// dispatched on argv[1] before anything else runs; None for any other command line.
pub fn helper_main(args: &[String]) -> Option<i32> {
    let (cmd, rest) = args.split_first()?;
    match cmd.as_str() {
        ARG => Some(main(rest)),
        berth_network::DNS_ARG => Some(berth_network::dns_main(rest)),
        berth_network::PROXY_ARG => Some(berth_network::proxy_main(rest)),
        berth_network::REAP_ARG => Some(berth_network::reap_main(rest)),
        _ => None,
    }
}

/// Entry point of `berth-monitor __monitor`; returns the process exit status.
pub fn main(args: &[String]) -> i32 {
    // berth spawned us as its child: leave at once (it waits for that) and go on in a child of
    // our own that nobody waits for, so no berth process ends up reaping a monitor. Forking here,
    // with almost nothing mapped yet, is cheaper than in the spawner.
    match unsafe { libc::fork() } {
        0 => {}
        pid if pid > 0 => unsafe { libc::_exit(0) },
        _ => return 1,
    }
    let (Some(root), Some(id), Some(sync_fd), Some(attach_fd)) =
        (args.first(), args.get(1), args.get(2), args.get(3))
    else {
        return 2;
    };
    let sync_fd: RawFd = sync_fd.parse().unwrap_or(-1);
    let attach_fd: RawFd = attach_fd.parse().unwrap_or(-1);
    for fd in [sync_fd, attach_fd] {
        if fd >= 0 {
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
    let sync = (sync_fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(sync_fd) });
    let initial = (attach_fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(attach_fd) });
    let dir = Path::new(root).join("containers").join(id);
    match run(&dir, sync, initial) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

fn report(sync: &mut Option<OwnedFd>, r: &Result<()>) {
    if let Some(fd) = sync.take() {
        let msg = match r {
            Ok(()) => "ok\n".to_string(),
            Err(e) => format!("err {} {}\n", kind_code(e.kind()), e.message()),
        };
        sys::write_all(fd.as_raw_fd(), msg.as_bytes());
    }
}

fn run(dir: &Path, mut sync: Option<OwnedFd>, initial: Option<OwnedFd>) -> Result<()> {
    let setup = (|| -> Result<Monitor> {
        let text = std::fs::read(dir.join(CONFIG_FILE))
            .map_err(|e| Error::io("read monitor config", e))?;
        let cfg: MonitorConfig = serde_json::from_slice(&text)
            .map_err(|e| Error::internal(format!("monitor config: {e}")))?;
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        }
        if cfg.network == "none" {
            sys::unshare(libc::CLONE_NEWNET)?;
            sys::loopback_up()?;
        }
        let sigfd = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGCHLD);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
            if fd < 0 {
                return Err(Error::io("signalfd", std::io::Error::last_os_error()));
            }
            OwnedFd::from_raw_fd(fd)
        };
        let sock = dir.join(ATTACH_SOCKET);
        let _ = std::fs::remove_file(&sock);
        let (_dir, short) = sys::short_socket_path(&sock)?;
        let l = std::os::unix::net::UnixListener::bind(&short)
            .map_err(|e| Error::io(format!("listen on {}", sock.display()), e))?;
        l.set_nonblocking(true)
            .map_err(|e| Error::io("nonblocking", e))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&cfg.log_path)
            .map_err(|e| Error::io(format!("open {}", cfg.log_path.display()), e))?;
        Ok(Monitor {
            cfg,
            log: Some(log),
            clients: Vec::new(),
            listener: OwnedFd::from(l),
            sigfd,
            trim: false,
        })
    })();
    let mut m = match setup {
        Ok(m) => m,
        Err(e) => {
            let r = Err(e);
            report(&mut sync, &r);
            return r;
        }
    };
    if let Some(fd) = initial {
        // Its hello was written before we were forked: read it now so no output is missed.
        let mut b = [0u8; 1];
        let hello = match sys::read(fd.as_raw_fd(), &mut b) {
            Ok(1) => Some(b[0]),
            _ => None,
        };
        sys::set_nonblock(fd.as_raw_fd());
        m.clients.push(Client {
            fd,
            hello,
            buf: Vec::new(),
        });
    }
    let rt = berth_runtime::Runtime::new(m.cfg.root.join("runtime"));
    let id = m.cfg.id.clone();
    let me = std::process::id() as i32;
    let me_start = sys::proc_start_time(me).unwrap_or(0);
    let mut restart_count = m.cfg.restart_count;
    let mut state = read_state(dir);
    let mut first = true;
    let mut failure = None;
    let reap;
    let final_code;
    loop {
        let launched = launch(&rt, &m.cfg, dir);
        let l = match launched {
            Ok(l) => l,
            Err(e) => {
                reap = release_network(&m.cfg);
                state.status = if first {
                    "created".into()
                } else {
                    "exited".into()
                };
                state.exit_code = e.exit_code();
                state.error = e.message().to_string();
                state.pid = 0;
                state.finished_at = timefmt::now();
                let _ = write_state(dir, &state);
                let _ = rt.delete(&id, true);
                final_code = state.exit_code;
                failure = Some(e);
                break;
            }
        };
        state = RunState {
            status: "running".into(),
            pid: l.pid,
            pid_start: sys::proc_start_time(l.pid).unwrap_or(0),
            monitor_pid: me,
            monitor_start: me_start,
            started_at: timefmt::now(),
            finished_at: String::new(),
            exit_code: 0,
            oom_killed: false,
            restart_count,
            error: String::new(),
        };
        write_state(dir, &state)?;
        // Recorded before the event loop, so "die" always follows it (restarts included).
        let attrs = [
            ("image", m.cfg.image_name.as_str()),
            ("name", m.cfg.name.as_str()),
        ];
        crate::events::record(&m.cfg.root, "container", "start", &id, &attrs);
        if first {
            report(&mut sync, &Ok(()));
            first = false;
        }
        let cg = berth_cgroups::open(Some(Path::new(&m.cfg.cgroups_path)), &id).ok();
        m.trim = true;
        let code = m.event_loop(l);
        let oom = cg
            .as_ref()
            .and_then(|c| c.oom_kill_count().ok())
            .unwrap_or(0)
            > 0;
        let _ = rt.delete(&id, true);
        state.status = "exited".into();
        state.pid = 0;
        state.exit_code = code;
        state.oom_killed = oom;
        state.finished_at = timefmt::now();
        // `berth update --restart` rewrites the config while the container runs.
        if let Some(c) = std::fs::read(dir.join(CONFIG_FILE))
            .ok()
            .and_then(|t| serde_json::from_slice::<MonitorConfig>(&t).ok())
        {
            m.cfg.restart = c.restart;
            m.cfg.max_retries = c.max_retries;
        }
        let die = |state: &RunState| {
            let code = state.exit_code.to_string();
            let attrs = [
                ("exitCode", code.as_str()),
                ("image", m.cfg.image_name.as_str()),
                ("name", m.cfg.name.as_str()),
            ];
            crate::events::record(&m.cfg.root, "container", "die", &id, &attrs);
        };
        let restart = !stop_requested(dir)
            && match m.cfg.restart.as_str() {
                "always" | "unless-stopped" => true,
                "on-failure" => {
                    code != 0 && (m.cfg.max_retries <= 0 || restart_count < m.cfg.max_retries)
                }
                _ => false,
            };
        if !restart {
            reap = release_network(&m.cfg);
            write_state(dir, &state)?;
            die(&state);
            final_code = code;
            break;
        }
        restart_count += 1;
        state.status = "restarting".into();
        state.restart_count = restart_count;
        write_state(dir, &state)?;
        die(&state);
        // docker's backoff: 100ms doubling, bounded here at 10s; a stop cancels it.
        let delay = Duration::from_millis(100u64 << (restart_count - 1).clamp(0, 7) as u32)
            .min(Duration::from_secs(10));
        let until = Instant::now() + delay;
        while Instant::now() < until && !stop_requested(dir) {
            m.serve_clients(50);
        }
        if stop_requested(dir) {
            reap = release_network(&m.cfg);
            state.status = "exited".into();
            write_state(dir, &state)?;
            final_code = code;
            break;
        }
    }
    let snap = Snapshot::new(dir.to_path_buf());
    let _ = snap.unmount();
    drop(m.log.take());
    if m.cfg.auto_remove {
        remove_container(&m.cfg);
    }
    drop(reap);
    let _ = std::fs::remove_file(dir.join(ATTACH_SOCKET));
    // A start failure is reported once the container is cleaned up (docker run --rm).
    if let Some(e) = failure {
        report(&mut sync, &Err(e));
    }
    let exit = frame(attach::EXIT, &final_code.to_le_bytes());
    for c in &m.clients {
        sys::write_all(c.fd.as_raw_fd(), &exit);
    }
    Ok(())
}

/// The container is over (no restart follows): its network goes before the exit is recorded,
/// so whoever waits for the exit finds the network free. With --rm the reaper (host veths,
/// empty bridges; an exec to start) is returned, to start once the removal is recorded.
fn release_network(cfg: &MonitorConfig) -> Option<berth_network::Reap> {
    if crate::network::is_bridged(&cfg.network) {
        if let Ok(mut nets) = crate::network::open(&cfg.root, None) {
            let reap = nets.detach(&cfg.id).ok();
            if cfg.auto_remove {
                return reap;
            }
        }
    }
    None
}

/// --rm: everything goes; the engine's cleanup is idempotent, so a racing `rm -f` is fine.
fn remove_container(cfg: &MonitorConfig) {
    let Ok(engine) = crate::Engine::open(&cfg.root, &Default::default()) else {
        return;
    };
    if let Ok(c) = engine.get(&cfg.id) {
        let _ = engine.cleanup(&c, true);
    } else {
        let _ = Snapshot::new(engine.container_dir(&cfg.id)).remove();
    }
}

struct Launched {
    pid: i32,
    out: Option<OwnedFd>,
    err: Option<OwnedFd>,
    pty: Option<OwnedFd>,
    stdin: Option<OwnedFd>,
}

/// Creates and starts the container with our pipes (or a pty) as its stdio.
fn launch(rt: &berth_runtime::Runtime, cfg: &MonitorConfig, dir: &Path) -> Result<Launched> {
    let devnull = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| Error::io("open /dev/null", e))?;
    let mut opts = berth_runtime::CreateOptions {
        bundle: dir.to_path_buf(),
        ..Default::default()
    };
    let mut l = Launched {
        pid: 0,
        out: None,
        err: None,
        pty: None,
        stdin: None,
    };
    if cfg.tty {
        let sock = dir.join(CONSOLE_SOCKET);
        let _ = std::fs::remove_file(&sock);
        let (_dir, short) = sys::short_socket_path(&sock)?;
        let listener = std::os::unix::net::UnixListener::bind(&short)
            .map_err(|e| Error::io(format!("listen on {}", sock.display()), e))?;
        opts.console_socket = Some(short.clone());
        let r = rt.create(&cfg.id, &opts);
        let _ = std::fs::remove_file(&sock);
        r?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("nonblocking", e))?;
        let (conn, _) = listener
            .accept()
            .map_err(|e| Error::io("accept console", e))?;
        l.pty = Some(recv_fd(conn.as_raw_fd())?);
        if cfg.open_stdin {
            l.stdin = Some(
                l.pty
                    .as_ref()
                    .unwrap()
                    .try_clone()
                    .map_err(|e| Error::io("dup pty", e))?,
            );
        }
    } else {
        let (or, ow) = sys::pipe()?;
        let (er, ew) = sys::pipe()?;
        let (ir, iw) = if cfg.open_stdin {
            let (a, b) = sys::pipe()?;
            (Some(a), Some(b))
        } else {
            (None, None)
        };
        let in_fd = ir.as_ref().map_or(devnull.as_raw_fd(), |f| f.as_raw_fd());
        unsafe {
            libc::dup2(in_fd, 0);
            libc::dup2(ow.as_raw_fd(), 1);
            libc::dup2(ew.as_raw_fd(), 2);
        }
        let r = rt.create(&cfg.id, &opts);
        unsafe {
            libc::dup2(devnull.as_raw_fd(), 0);
            libc::dup2(devnull.as_raw_fd(), 1);
            libc::dup2(devnull.as_raw_fd(), 2);
        }
        drop((ow, ew, ir));
        r?;
        l.out = Some(or);
        l.err = Some(er);
        l.stdin = iw;
    }
    // Before start: a short-lived command may be gone (and its state say pid 0) right after.
    l.pid = rt.state(&cfg.id)?.pid;
    if let Err(e) = rt.start(&cfg.id) {
        let _ = rt.delete(&cfg.id, true);
        return Err(e.into());
    }
    for fd in [&l.out, &l.err, &l.pty, &l.stdin].into_iter().flatten() {
        sys::set_nonblock(fd.as_raw_fd());
    }
    Ok(l)
}

fn recv_fd(sock: RawFd) -> Result<OwnedFd> {
    let mut p = libc::pollfd {
        fd: sock,
        events: libc::POLLIN,
        revents: 0,
    };
    unsafe { libc::poll(&mut p, 1, 10_000) };
    let mut data = [0u8; 256];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut cbuf = [0u64; 8];
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf);
    let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(Error::io(
            "receive the pty master",
            std::io::Error::last_os_error(),
        ));
    }
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        if c.is_null() || (*c).cmsg_type != libc::SCM_RIGHTS {
            return Err(Error::internal(
                "console socket: no file descriptor received",
            ));
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const RawFd);
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

impl Monitor {
    fn log_and_send(&mut self, s: &mut Stream, data: &[u8]) {
        let f = frame(s.kind, data);
        for c in &self.clients {
            if c.hello.is_some_and(|h| h & attach::HELLO_OUTPUT != 0) {
                sys::write_all(c.fd.as_raw_fd(), &f);
            }
        }
        s.partial.extend_from_slice(data);
        let now = timefmt::now();
        let mut out = Vec::new();
        while let Some(i) = s.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = s.partial.drain(..=i).collect();
            out.extend(logs::encode(s.name, &line, &now));
        }
        if s.partial.len() >= 16 * 1024 {
            out.extend(logs::encode(s.name, &s.partial, &now));
            s.partial.clear();
        }
        if let Some(l) = &mut self.log {
            let _ = l.write_all(&out);
        }
    }

    fn flush_partial(&mut self, s: &mut Stream) {
        if !s.partial.is_empty() {
            let line = logs::encode(s.name, &s.partial, &timefmt::now());
            if let Some(l) = &mut self.log {
                let _ = l.write_all(&line);
            }
            s.partial.clear();
        }
    }

    /// Accepts and serves attach clients for up to `ms` milliseconds (used while restarting).
    fn serve_clients(&mut self, ms: i32) {
        let mut l = Launched {
            pid: 0,
            out: None,
            err: None,
            pty: None,
            stdin: None,
        };
        self.poll_once(&mut [], &mut l, ms, 0);
    }

    /// Runs until the init exited and its output is drained; returns its exit code.
    fn event_loop(&mut self, mut l: Launched) -> i32 {
        let mut streams = vec![];
        if let Some(fd) = l.pty.take() {
            streams.push(Stream {
                fd: Some(fd),
                name: "stdout",
                kind: attach::STDOUT,
                partial: vec![],
            });
        }
        if let Some(fd) = l.out.take() {
            streams.push(Stream {
                fd: Some(fd),
                name: "stdout",
                kind: attach::STDOUT,
                partial: vec![],
            });
        }
        if let Some(fd) = l.err.take() {
            streams.push(Stream {
                fd: Some(fd),
                name: "stderr",
                kind: attach::STDERR,
                partial: vec![],
            });
        }
        let mut code: Option<i32> = None;
        let mut drain_deadline: Option<Instant> = None;
        loop {
            if let Some(c) = code {
                let open = streams.iter().any(|s| s.fd.is_some());
                let late = drain_deadline.is_some_and(|d| Instant::now() >= d);
                if !open || late {
                    for s in &mut streams {
                        self.flush_partial(s);
                    }
                    return c;
                }
            }
            let timeout = if code.is_some() { 50 } else { -1 };
            let init = l.pid;
            if let Some(c) = self.poll_once(&mut streams, &mut l, timeout, init) {
                code = Some(c);
                drain_deadline = Some(Instant::now() + Duration::from_secs(2));
                l.stdin = None;
            }
        }
    }

    /// One poll round over the signalfd, the streams, the listener and the clients.
    /// Returns the init's exit code once it is reaped.
    fn poll_once(
        &mut self,
        streams: &mut [Stream],
        l: &mut Launched,
        timeout: i32,
        init: i32,
    ) -> Option<i32> {
        let mut fds = vec![
            libc::pollfd {
                fd: self.sigfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.listener.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        for s in streams.iter() {
            fds.push(libc::pollfd {
                fd: s.fd.as_ref().map_or(-1, |f| f.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        for c in &self.clients {
            fds.push(libc::pollfd {
                fd: c.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if std::mem::take(&mut self.trim) {
            sys::trim_memory();
        }
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if r <= 0 {
            return None;
        }
        let mut code = None;
        if fds[0].revents != 0 {
            let mut info = [0u8; 128];
            while unsafe { libc::read(self.sigfd.as_raw_fd(), info.as_mut_ptr().cast(), 128) } > 0 {
            }
            loop {
                let mut status = 0;
                let p = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
                if p <= 0 {
                    break;
                }
                if p == init {
                    code = Some(berth_runtime::exit_code(status));
                }
            }
        }
        let mut buf = vec![0u8; 64 * 1024];
        for (i, s) in streams.iter_mut().enumerate() {
            if fds[2 + i].revents == 0 {
                continue;
            }
            let Some(fd) = s.fd.as_ref().map(|f| f.as_raw_fd()) else {
                continue;
            };
            loop {
                match sys::read(fd, &mut buf) {
                    Ok(0) => {
                        s.fd = None;
                        break;
                    }
                    Ok(n) => {
                        let data = buf[..n].to_vec();
                        self.log_and_send(s, &data);
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => break,
                    Err(_) => {
                        // EIO: the pty's last slave closed.
                        s.fd = None;
                        break;
                    }
                }
            }
        }
        let base = 2 + streams.len();
        let mut gone = Vec::new();
        for i in 0..self.clients.len() {
            if fds[base + i].revents == 0 {
                continue;
            }
            let n = sys::read(self.clients[i].fd.as_raw_fd(), &mut buf).unwrap_or(0);
            if n == 0 {
                gone.push(i);
                continue;
            }
            let c = &mut self.clients[i];
            c.buf.extend_from_slice(&buf[..n]);
            if c.hello.is_none() && !c.buf.is_empty() {
                c.hello = Some(c.buf.remove(0));
            }
            while let Some((kind, p)) = take_frame(&mut c.buf) {
                let stdin_ok = c.hello.is_some_and(|h| h & attach::HELLO_STDIN != 0);
                match kind {
                    attach::STDIN if stdin_ok => {
                        if let Some(fd) = &l.stdin {
                            sys::write_all(fd.as_raw_fd(), &p);
                        }
                    }
                    attach::STDIN_EOF if stdin_ok && self.cfg.stdin_once && !self.cfg.tty => {
                        l.stdin = None
                    }
                    attach::RESIZE if p.len() >= 4 => {
                        if let Some(fd) = streams
                            .iter()
                            .find_map(|s| s.fd.as_ref().filter(|_| self.cfg.tty))
                        {
                            let ws = libc::winsize {
                                ws_row: u16::from_le_bytes([p[0], p[1]]),
                                ws_col: u16::from_le_bytes([p[2], p[3]]),
                                ws_xpixel: 0,
                                ws_ypixel: 0,
                            };
                            unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
                        }
                    }
                    attach::SIGNAL if p.len() >= 4 && init > 0 => {
                        sys::kill(init, i32::from_le_bytes([p[0], p[1], p[2], p[3]]));
                    }
                    _ => {}
                }
            }
        }
        for i in gone.into_iter().rev() {
            let c = self.clients.remove(i);
            if c.hello.is_some_and(|h| h & attach::HELLO_STDIN != 0)
                && self.cfg.stdin_once
                && !self.cfg.tty
            {
                l.stdin = None;
            }
        }
        if fds[1].revents != 0 {
            loop {
                let fd = unsafe {
                    libc::accept4(
                        self.listener.as_raw_fd(),
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                        libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                    )
                };
                if fd < 0 {
                    break;
                }
                self.clients.push(Client {
                    fd: unsafe { OwnedFd::from_raw_fd(fd) },
                    hello: None,
                    buf: Vec::new(),
                });
            }
        }
        code
    }
}
