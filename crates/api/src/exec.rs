//! /exec: an exec instance is a `berth exec` child process of the server (the engine joins the
//! container's namespaces in that process, never in one of our threads).

use crate::http::{
    self, blocking, frame_header, json_ok, json_status, parse_json, read_body, ApiError, ApiResult,
    Resp,
};
use crate::router::Req;
use crate::{Active, State};
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::json;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecConfig {
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    tty: bool,
    cmd: Vec<String>,
    env: Vec<String>,
    user: String,
    working_dir: String,
    privileged: bool,
    detach_keys: String,
}

pub struct ExecEntry {
    id: String,
    container: String,
    cfg: ExecConfig,
    started: AtomicBool,
    running: AtomicBool,
    pid: AtomicI32,
    exit_code: Mutex<Option<i32>>,
    /// The pty master of a TTY exec (for resize).
    pty: Mutex<Option<OwnedFd>>,
    /// When it ended: a finished exec is forgotten a while later (docker forgets it with its container).
    ended: Mutex<Option<std::time::Instant>>,
}

/// How long the exit code of a finished exec stays available to `GET /exec/{id}/json`.
const KEEP_FINISHED: std::time::Duration = std::time::Duration::from_secs(600);

fn random_id() -> String {
    let mut b = [0u8; 32];
    let _ = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b));
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub async fn create(st: Arc<State>, id: &str, r: Req) -> ApiResult<Resp> {
    let body = read_body(r.req.into_body(), 1 << 20).await?;
    let cfg: ExecConfig = parse_json(&body)?;
    if cfg.cmd.is_empty() {
        return Err(ApiError::bad("no exec command specified"));
    }
    let id = id.to_string();
    let st2 = st.clone();
    let c = blocking(move || Ok(st2.engine()?.get(&id)?)).await?;
    if !c.state.running {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("container {} is not running", c.id),
        ));
    }
    if c.state.paused {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "container {} is paused, unpause the container before exec",
                c.id
            ),
        ));
    }
    let e = Arc::new(ExecEntry {
        id: random_id(),
        container: c.id.clone(),
        cfg,
        started: AtomicBool::new(false),
        running: AtomicBool::new(false),
        pid: AtomicI32::new(0),
        exit_code: Mutex::new(None),
        pty: Mutex::new(None),
        ended: Mutex::new(None),
    });
    berth_engine::events::record(
        &st.root,
        "container",
        &format!("exec_create: {}", e.cfg.cmd.join(" ")),
        &c.id,
        &[("name", &c.name)],
    );
    let eid = e.id.clone();
    let mut execs = st.execs.lock().unwrap_or_else(|e| e.into_inner());
    execs.retain(|_, x| {
        !x.ended
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| t.elapsed() > KEEP_FINISHED)
    });
    execs.insert(eid.clone(), e);
    Ok(json_status(StatusCode::CREATED, &json!({"Id": eid})))
}

fn find(st: &State, id: &str) -> ApiResult<Arc<ExecEntry>> {
    st.execs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))
}

pub async fn inspect(st: Arc<State>, id: &str) -> ApiResult<Resp> {
    let e = find(&st, id)?;
    let code = *e.exit_code.lock().unwrap_or_else(|e| e.into_inner());
    Ok(json_ok(&json!({
        "ID": e.id, "ContainerID": e.container, "Running": e.running.load(Ordering::SeqCst),
        "ExitCode": code, "Pid": e.pid.load(Ordering::SeqCst), "CanRemove": false, "DetachKeys": e.cfg.detach_keys,
        "OpenStdin": e.cfg.attach_stdin, "OpenStdout": e.cfg.attach_stdout, "OpenStderr": e.cfg.attach_stderr,
        "ProcessConfig": {"tty": e.cfg.tty, "entrypoint": e.cfg.cmd[0], "arguments": e.cfg.cmd[1..],
                          "privileged": e.cfg.privileged, "user": e.cfg.user},
    })))
}

pub async fn resize(st: Arc<State>, id: &str, r: Req) -> ApiResult<Resp> {
    let e = find(&st, id)?;
    let (h, w) = (
        r.query.int("h")?.unwrap_or(0),
        r.query.int("w")?.unwrap_or(0),
    );
    if let Some(fd) = e.pty.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        let ws = libc::winsize {
            ws_row: h as u16,
            ws_col: w as u16,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
    Ok(http::empty(StatusCode::OK))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct StartBody {
    detach: bool,
}

fn command(st: &State, e: &ExecEntry, detach: bool) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(&st.exe);
    c.arg("--root").arg(&st.root).arg("exec");
    if e.cfg.attach_stdin {
        c.arg("-i");
    }
    if e.cfg.tty {
        c.arg("-t");
    }
    if detach {
        c.arg("-d");
    }
    if e.cfg.privileged {
        c.arg("--privileged");
    }
    if !e.cfg.user.is_empty() {
        c.arg("-u").arg(&e.cfg.user);
    }
    if !e.cfg.working_dir.is_empty() {
        c.arg("-w").arg(&e.cfg.working_dir);
    }
    for v in &e.cfg.env {
        c.arg("-e").arg(v);
    }
    c.arg(&e.container).args(&e.cfg.cmd);
    c.env_remove("BERTH_ROOT").kill_on_drop(false);
    c
}

fn openpty() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (mut m, mut s) = (-1, -1);
    if unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    } != 0
    {
        return Err(std::io::Error::last_os_error());
    }
    unsafe {
        libc::fcntl(m, libc::F_SETFD, libc::FD_CLOEXEC);
        libc::fcntl(s, libc::F_SETFD, libc::FD_CLOEXEC);
        Ok((OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)))
    }
}

pub async fn start(st: Arc<State>, id: &str, mut r: Req) -> ApiResult<Resp> {
    let e = find(&st, id)?;
    let hijack = crate::streams::wants_upgrade(&r);
    let on_upgrade = hyper::upgrade::on(&mut r.req);
    let body = read_body(r.req.into_body(), 1 << 20).await?;
    let b: StartBody = parse_json(&body)?;
    if e.started.swap(true, Ordering::SeqCst) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("exec {} has already started", e.id),
        ));
    }
    if b.detach {
        let mut cmd = command(&st, &e, true);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let status = cmd
            .status()
            .await
            .map_err(|err| ApiError::internal(format!("run berth exec: {err}")))?;
        record(&e, status.code());
        return Ok(http::empty(StatusCode::OK));
    }
    let tty = e.cfg.tty;
    let mut cmd = command(&st, &e, false);
    let mut pty_master = None;
    if tty {
        let (m, s) = openpty().map_err(|err| ApiError::internal(format!("openpty: {err}")))?;
        let dup = |f: &OwnedFd| {
            f.try_clone()
                .map_err(|err| ApiError::internal(format!("dup: {err}")))
        };
        cmd.stdin(Stdio::from(dup(&s)?))
            .stdout(Stdio::from(dup(&s)?))
            .stderr(Stdio::from(s));
        pty_master = Some(m);
    } else {
        cmd.stdin(if e.cfg.attach_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stdout(if e.cfg.attach_stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stderr(if e.cfg.attach_stderr {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|err| ApiError::internal(format!("run berth exec: {err}")))?;
    drop(cmd);
    e.running.store(true, Ordering::SeqCst);
    e.pid
        .store(child.id().unwrap_or(0) as i32, Ordering::SeqCst);
    if let Some(m) = &pty_master {
        *e.pty.lock().unwrap_or_else(|e| e.into_inner()) = m.try_clone().ok();
    }
    let active = Active::new(&st);
    let entry = e.clone();
    tokio::spawn(async move {
        let _active = active;
        let up = if hijack { on_upgrade.await.ok() } else { None };
        let (mut cr, mut cw) = match up {
            Some(u) => {
                let (r, w) = tokio::io::split(TokioIo::new(u));
                (Some(r), Some(w))
            }
            None => (None, None),
        };
        // Output: one task per stream, all writing into one channel so frames never interleave.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
        let mut readers = Vec::new();
        let mut pump = |mut src: Box<dyn AsyncRead + Unpin + Send>, stream: u8| {
            let tx = tx.clone();
            readers.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 32 << 10];
                loop {
                    let n = match src.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let v = if tty {
                        buf[..n].to_vec()
                    } else {
                        let mut v = frame_header(stream, n).to_vec();
                        v.extend_from_slice(&buf[..n]);
                        v
                    };
                    if tx.send(v).await.is_err() {
                        return;
                    }
                }
            }));
        };
        let mut stdin_writer: Option<Box<dyn tokio::io::AsyncWrite + Unpin + Send>> = None;
        if let Some(m) = pty_master {
            if let (Ok(r), Ok(w)) = (m.try_clone(), m.try_clone()) {
                pump(
                    Box::new(tokio::fs::File::from_std(std::fs::File::from(r))),
                    1,
                );
                stdin_writer = Some(Box::new(tokio::fs::File::from_std(std::fs::File::from(w))));
            }
        } else {
            if let Some(o) = child.stdout.take() {
                pump(Box::new(o), 1);
            }
            if let Some(o) = child.stderr.take() {
                pump(Box::new(o), 2);
            }
            if let Some(i) = child.stdin.take() {
                stdin_writer = Some(Box::new(i));
            }
        }
        drop(tx);
        let input = tokio::spawn(async move {
            let (Some(mut r), Some(mut w)) = (cr.take(), stdin_writer) else {
                return;
            };
            let mut buf = vec![0u8; 32 << 10];
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = w.shutdown().await;
                        return;
                    }
                    Ok(n) => {
                        if w.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                        let _ = w.flush().await;
                    }
                }
            }
        });
        let mut client_gone = false;
        let mut exited = false;
        loop {
            tokio::select! {
                // Once the child is gone, what is still buffered in the pty is drained (bounded).
                msg = async {
                    if exited {
                        tokio::time::timeout(std::time::Duration::from_secs(2), rx.recv()).await.unwrap_or(None)
                    } else {
                        rx.recv().await
                    }
                } => match msg {
                    Some(chunk) => {
                        let chunk: Vec<u8> = chunk;
                        if let Some(w) = cw.as_mut() {
                            if w.write_all(&chunk).await.is_err() {
                                client_gone = true;
                                break;
                            }
                        }
                    }
                    None => break,
                },
                // With a TTY the master reads EOF (EIO) only after the child is gone.
                s = child.wait(), if tty && !exited => {
                    record(&entry, s.ok().and_then(|s| s.code()));
                    exited = true;
                    // The readers hold the master: close ours so they see EIO once the buffer is empty.
                    *entry.pty.lock().unwrap_or_else(|e| e.into_inner()) = None;
                }
            }
        }
        if client_gone {
            // Docker keeps the process running when the client goes away; so do we.
        }
        if entry.running.load(Ordering::SeqCst) {
            let s = child.wait().await;
            record(&entry, s.ok().and_then(|s| s.code()));
        }
        input.abort();
        for r in readers {
            r.abort();
        }
        *entry.pty.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if let Some(mut w) = cw {
            let _ = w.flush().await;
            let _ = w.shutdown().await;
        }
    });
    if hijack {
        Ok(crate::streams::upgrade_response(tty))
    } else {
        Ok(http::empty(StatusCode::OK))
    }
}

fn record(e: &ExecEntry, code: Option<i32>) {
    *e.exit_code.lock().unwrap_or_else(|e| e.into_inner()) = Some(code.unwrap_or(126));
    *e.ended.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::time::Instant::now());
    e.running.store(false, Ordering::SeqCst);
}
