//! `berth serve`: the Docker Engine API (versions 1.24 to 1.47) over berth's engine, so the
#![recursion_limit = "256"]
//! docker CLI, docker-py and other Docker clients drive berth unmodified.
//!
//! This crate owns the HTTP side only: routing, Docker's wire types and streams. Every handler
//! calls the engine (crates/engine, crates/image) on tokio's blocking pool, exactly as the CLI
//! does, so containers made here are the CLI's and the other way round. Containers start through
//! their monitor, a separate process the engine forks and execs; `exec` runs `berth exec` as a
//! child process. Nothing here clones a container from the server's threads.
//!
//! The async runtime lives only here and in the `serve` command: the rest of berth is
//! synchronous, and the runtime and monitor never start tokio.

mod build;
mod containers;
mod exec;
mod http;
mod images;
mod networks;
mod registry;
mod router;
mod streams;
mod system;

use berth_engine::{Engine, EngineOptions};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use http::ApiError;

/// The newest and oldest API versions served.
pub const API_VERSION: &str = "1.47";
pub const MIN_API_VERSION: &str = "1.24";
pub const DEFAULT_SOCKET: &str = "unix:///run/berth/berth.sock";

#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    pub root: PathBuf,
    pub engine: EngineOptions,
    /// `unix:///path` or `tcp://addr:port` (default: [`DEFAULT_SOCKET`]).
    pub hosts: Vec<String>,
    /// Exit after this long without a request or an open connection (None: never).
    pub idle: Option<Duration>,
    pub tls: Option<TlsOptions>,
    /// The network of a container created without one ("default"): berth's `bridge`, or `none`
    /// as with `dockerd --bridge none`.
    pub default_network: String,
}

#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    pub verify: bool,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// What every handler shares.
pub(crate) struct State {
    pub root: PathBuf,
    pub engine_opts: EngineOptions,
    pub default_network: String,
    /// The berth binary (`berth exec` runs from it).
    pub exe: PathBuf,
    /// Attach requests made before their container started (docker run attaches, then starts).
    pub pending: Mutex<HashMap<String, Vec<streams::Pending>>>,
    pub execs: Mutex<HashMap<String, Arc<exec::ExecEntry>>>,
    engines: Mutex<Vec<Engine>>,
    active: AtomicUsize,
    last: Mutex<Instant>,
}

impl State {
    /// An engine from the pool, or a new one: opening one per request (its databases, their
    /// schema check, the root's canonical path) cost ~0.5 ms on each of `docker run`'s calls.
    pub fn engine(&self) -> http::ApiResult<PooledEngine<'_>> {
        let idle = self.engines.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let e = match idle {
            Some(e) => e,
            None => Engine::open(&self.root, &self.engine_opts)?,
        };
        Ok(PooledEngine {
            st: self,
            e: Some(e),
        })
    }
    fn touch(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }
}

/// Engines kept for the next request: about one per blocking thread that ran at once.
const IDLE_ENGINES: usize = 8;

/// An engine lent by [`State::engine`]; back to the pool when dropped.
pub(crate) struct PooledEngine<'a> {
    st: &'a State,
    e: Option<Engine>,
}

impl std::ops::Deref for PooledEngine<'_> {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        self.e.as_ref().expect("engine")
    }
}

impl Drop for PooledEngine<'_> {
    fn drop(&mut self) {
        let mut idle = self.st.engines.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE_ENGINES {
            idle.extend(self.e.take());
        }
    }
}

/// Counts a connection as active for the idle timer while it lives.
struct Active(Arc<State>);

impl Active {
    fn new(s: &Arc<State>) -> Active {
        s.active.fetch_add(1, Ordering::SeqCst);
        s.touch();
        Active(s.clone())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.touch();
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

enum Listener {
    /// With the path the server made (removed at exit); None for an inherited socket.
    Unix(tokio::net::UnixListener, Option<PathBuf>),
    Tcp(tokio::net::TcpListener),
}

/// systemd's socket activation (sd_listen_fds): the listening fds from 3 on, when LISTEN_PID
/// names this process. The variables are cleared so children (`berth exec`, `berth build`,
/// monitors) do not take the sockets for theirs. Call before any thread starts.
fn activated_fds() -> Vec<i32> {
    let var = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
    let ours = var("LISTEN_PID") == Some(std::process::id());
    let n = var("LISTEN_FDS").unwrap_or(0).min(64) as i32;
    for k in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(k);
    }
    if !ours {
        return Vec::new();
    }
    (3..3 + n).collect()
}

/// A listening stream socket passed by the service manager, unix or TCP.
fn inherited(fd: i32) -> Result<Listener, String> {
    use std::os::fd::FromRawFd;
    let bad = |what: &str| format!("socket activation: fd {fd} {what}");
    let int_opt = |opt: libc::c_int| {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        (r == 0).then_some(v)
    };
    if int_opt(libc::SO_TYPE) != Some(libc::SOCK_STREAM) || int_opt(libc::SO_ACCEPTCONN) != Some(1)
    {
        return Err(bad("is not a listening stream socket"));
    }
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    match int_opt(libc::SO_DOMAIN) {
        Some(libc::AF_UNIX) => {
            let l = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
            l.set_nonblocking(true).map_err(|e| bad(&e.to_string()))?;
            let l = tokio::net::UnixListener::from_std(l).map_err(|e| bad(&e.to_string()))?;
            Ok(Listener::Unix(l, None))
        }
        Some(libc::AF_INET | libc::AF_INET6) => {
            let l = unsafe { std::net::TcpListener::from_raw_fd(fd) };
            l.set_nonblocking(true).map_err(|e| bad(&e.to_string()))?;
            let l = tokio::net::TcpListener::from_std(l).map_err(|e| bad(&e.to_string()))?;
            Ok(Listener::Tcp(l))
        }
        _ => Err(bad("is neither a unix nor a TCP socket")),
    }
}

fn bind(host: &str) -> Result<Listener, String> {
    if let Some(path) = host.strip_prefix("unix://") {
        let path = Path::new(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        }
        // A socket left by a server that died: nobody answers on it, so it can go.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!("{} is in use by another server", path.display()));
        }
        let _ = std::fs::remove_file(path);
        let l = tokio::net::UnixListener::bind(path)
            .map_err(|e| format!("listen on {}: {e}", path.display()))?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660));
        Ok(Listener::Unix(l, Some(path.to_path_buf())))
    } else if let Some(addr) = host.strip_prefix("tcp://") {
        let std =
            std::net::TcpListener::bind(addr).map_err(|e| format!("listen on {addr}: {e}"))?;
        std.set_nonblocking(true)
            .map_err(|e| format!("listen on {addr}: {e}"))?;
        Ok(Listener::Tcp(
            tokio::net::TcpListener::from_std(std).map_err(|e| format!("listen on {addr}: {e}"))?,
        ))
    } else {
        Err(format!(
            "invalid host {host:?}: use unix:///path, tcp://addr:port or fd:// (socket activation)"
        ))
    }
}

/// Runs the server until SIGINT/SIGTERM or the idle timeout. Containers keep running after it
/// exits: they belong to their monitors, not to the server.
pub fn serve(o: ServeOptions) -> Result<(), String> {
    let tls = o.tls.as_ref().map(tls_acceptor).transpose()?;
    if tls.is_some()
        && o.hosts
            .iter()
            .all(|h| !h.starts_with("tcp://") && !h.starts_with("fd://"))
    {
        return Err("TLS options need a tcp:// host".into());
    }
    let exe = match &o.engine.exe {
        Some(e) => e.clone(),
        None => std::env::current_exe().map_err(|e| format!("locate the berth binary: {e}"))?,
    };
    let activated = activated_fds();
    // Fail before serving if the root cannot be opened.
    Engine::open(&o.root, &o.engine).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(512)
        .thread_keep_alive(Duration::from_secs(10))
        .enable_all()
        .build()
        .map_err(|e| format!("start the server runtime: {e}"))?;
    let state = Arc::new(State {
        root: o.root.clone(),
        engine_opts: o.engine.clone(),
        default_network: o.default_network.clone(),
        exe,
        pending: Mutex::new(HashMap::new()),
        execs: Mutex::new(HashMap::new()),
        engines: Mutex::new(Vec::new()),
        active: AtomicUsize::new(0),
        last: Mutex::new(Instant::now()),
    });
    // A client that goes away mid-write must be an error on that connection, not our death.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    rt.block_on(async move {
        let hosts = if o.hosts.is_empty() {
            vec![DEFAULT_SOCKET.to_string()]
        } else {
            o.hosts.clone()
        };
        // `fd://` takes every activated socket, `fd://N` one of them; with sockets passed and
        // only the default host asked for, the passed sockets replace it (as podman does).
        let default_only = hosts.len() == 1 && hosts[0] == DEFAULT_SOCKET;
        let mut listeners = Vec::new();
        for h in &hosts {
            match h.strip_prefix("fd://") {
                Some("") => listeners.extend(
                    activated
                        .iter()
                        .map(|fd| inherited(*fd))
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                Some(n) => {
                    let fd: i32 = n.parse().map_err(|_| format!("invalid host {h:?}"))?;
                    if !activated.contains(&fd) {
                        return Err(format!(
                            "{h}: fd {fd} was not passed by socket activation (LISTEN_FDS)"
                        ));
                    }
                    listeners.push(inherited(fd)?);
                }
                None if default_only && !activated.is_empty() => {
                    for fd in &activated {
                        listeners.push(inherited(*fd)?);
                    }
                }
                None => listeners.push(bind(h)?),
            }
        }
        if listeners.is_empty() {
            return Err("fd://: no socket was passed (LISTEN_FDS/LISTEN_PID unset)".into());
        }
        let mut sockets = Vec::new();
        for l in listeners {
            let st = state.clone();
            if let Listener::Unix(_, Some(p)) = &l {
                sockets.push(p.clone());
            }
            tokio::spawn(accept_loop(l, st, tls.clone()));
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| e.to_string())?;
        let idle = async {
            match o.idle {
                None => std::future::pending::<()>().await,
                Some(limit) => loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    let last = *state.last.lock().unwrap_or_else(|e| e.into_inner());
                    if state.active.load(Ordering::SeqCst) == 0 && last.elapsed() >= limit {
                        break;
                    }
                },
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            _ = idle => {}
        }
        for p in sockets {
            let _ = std::fs::remove_file(p);
        }
        Ok::<(), String>(())
    })?;
    // Streams still open (follows, attaches) end with the process; blocking threads are not waited for.
    rt.shutdown_timeout(Duration::from_millis(100));
    Ok(())
}

async fn accept_loop(l: Listener, state: Arc<State>, tls: Option<tokio_rustls::TlsAcceptor>) {
    loop {
        match &l {
            Listener::Unix(u, _) => match u.accept().await {
                Ok((s, _)) => spawn_conn(TokioIo::new(s), state.clone()),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            Listener::Tcp(t) => match t.accept().await {
                Ok((s, _)) => {
                    let _ = s.set_nodelay(true);
                    match &tls {
                        None => spawn_conn(TokioIo::new(s), state.clone()),
                        Some(acceptor) => {
                            // The handshake runs in its own task: a slow client cannot stall accepts.
                            let (acceptor, st) = (acceptor.clone(), state.clone());
                            tokio::spawn(async move {
                                let hs = tokio::time::timeout(
                                    Duration::from_secs(30),
                                    acceptor.accept(s),
                                )
                                .await;
                                if let Ok(Ok(tls)) = hs {
                                    spawn_conn(TokioIo::new(tls), st);
                                }
                            });
                        }
                    }
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
        }
    }
}

/// docker's daemon TLS: a server certificate, and with `verify` client certificates signed by the CA.
fn tls_acceptor(t: &TlsOptions) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls;
    let (Some(cert), Some(key)) = (&t.cert, &t.key) else {
        return Err("TLS needs --tlscert and --tlskey".into());
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("read {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", cert.display()));
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("read {}: {e}", key.display()))?;
    // ring, not aws-lc-rs: no cmake and C toolchain in the build for the one server that uses TLS.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = if t.verify {
        let ca = t.ca.as_ref().ok_or("--tlsverify needs --tlscacert")?;
        let mut roots = rustls::RootCertStore::empty();
        for c in
            CertificateDer::pem_file_iter(ca).map_err(|e| format!("read {}: {e}", ca.display()))?
        {
            let c = c.map_err(|e| format!("read {}: {e}", ca.display()))?;
            roots.add(c).map_err(|e| format!("{}: {e}", ca.display()))?;
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("TLS client verification: {e}"))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS certificate: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

fn spawn_conn<I>(io: TokioIo<I>, state: Arc<State>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let _active = Active::new(&state);
        let st = state.clone();
        let svc = service_fn(move |req| {
            let st = st.clone();
            async move {
                st.touch();
                Ok::<_, std::convert::Infallible>(router::route(st, req).await)
            }
        });
        let _ = http1::Builder::new()
            .keep_alive(true)
            .serve_connection(io, svc)
            .with_upgrades()
            .await;
    });
}
