//! Hijacked streams: `POST /containers/{id}/attach` and `POST /exec/{id}/start` answer
//! `101 UPGRADED` and then carry raw bytes both ways; without a TTY the output is docker's
//! multiplexed frames (8-byte header: stream, 0, 0, 0, size big-endian).

use crate::http::{self, frame_header, ApiError, ApiResult, Resp};
use crate::router::Req;
use crate::{Active, State};
use berth_engine::attach::{self, take_frame};
use berth_engine::{Attach, Container, Engine, StartOptions};
use hyper::upgrade::Upgraded;
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

/// An attach that waits for its container to start.
pub struct Pending {
    pub stdin: bool,
    pub tx: oneshot::Sender<ApiResult<Attach>>,
}

/// The 101 answer; the stream itself is served once hyper hands over the connection.
pub fn upgrade_response(tty: bool) -> Resp {
    let mut r = http::empty(StatusCode::SWITCHING_PROTOCOLS);
    let h = r.headers_mut();
    let ct = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    h.insert("content-type", ct.parse().expect("header"));
    h.insert("connection", "Upgrade".parse().expect("header"));
    h.insert("upgrade", "tcp".parse().expect("header"));
    r
}

pub fn wants_upgrade(r: &Req) -> bool {
    r.req.headers().get("upgrade").is_some()
}

/// Starts a container for the API: an attach request waiting for it gets the monitor connection
/// made before the start, so it misses no output.
pub fn start_with_pending(st: &State, e: &Engine, c: &Container) -> ApiResult<()> {
    let mut waiting: Vec<Pending> = {
        let mut p = st.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.remove(&c.id).unwrap_or_default()
    };
    waiting.retain(|p| !p.tx.is_closed());
    if waiting.is_empty() {
        e.start(&c.id, &StartOptions::default())?;
        return Ok(());
    }
    let first = waiting.remove(0);
    match e.start(
        &c.id,
        &StartOptions {
            attach: true,
            stdin: first.stdin,
        },
    ) {
        Ok(Some(a)) => {
            let _ = first.tx.send(Ok(a));
        }
        Ok(None) => {
            let _ = first.tx.send(Err(ApiError::internal(
                "the container started without an attach connection",
            )));
        }
        Err(err) => {
            let msg = err.message().to_string();
            let _ = first.tx.send(Err(ApiError::internal(msg)));
            for p in waiting {
                let _ =
                    p.tx.send(Err(ApiError::internal(err.message().to_string())));
            }
            return Err(err.into());
        }
    }
    for p in waiting {
        let _ = p.tx.send(e.attach(&c.id, p.stdin).map_err(Into::into));
    }
    Ok(())
}

pub fn resize_container(e: &Engine, c: &Container, rows: u16, cols: u16) -> ApiResult<()> {
    if !c.config.tty {
        return Ok(());
    }
    let fd = attach::connect(
        &e.container_dir(&c.id)
            .join(berth_engine::monitor::ATTACH_SOCKET),
    )?;
    let mut p = rows.to_le_bytes().to_vec();
    p.extend_from_slice(&cols.to_le_bytes());
    let mut msg = vec![0u8];
    msg.extend(attach::frame(attach::RESIZE, &p));
    use std::io::Write;
    let mut s = std::os::unix::net::UnixStream::from(fd);
    s.write_all(&msg)
        .map_err(|e| ApiError::internal(format!("resize: {e}")))?;
    Ok(())
}

pub async fn attach(st: Arc<State>, id: &str, mut r: Req) -> ApiResult<Resp> {
    let q = &r.query;
    let (stdin, stdout, stderr) = (q.bool("stdin"), q.bool("stdout"), q.bool("stderr"));
    if !q.bool("stream") && !q.bool("logs") {
        return Err(ApiError::bad("either stream or logs must be set"));
    }
    let id = id.to_string();
    let st2 = st.clone();
    // Running: connect now. Created: wait for the start (docker run attaches, then starts).
    let (c, now, later) = http::blocking(move || {
        let e = st2.engine()?;
        let c = e.get(&id)?;
        if c.state.running {
            let a = e.attach(&c.id, stdin)?;
            return Ok((c, Some(a), None));
        }
        if c.state.status != "created" && c.state.status != "exited" {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("container {} is {}", c.id, c.state.status),
            ));
        }
        let (tx, rx) = oneshot::channel();
        st2.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(c.id.clone())
            .or_default()
            .push(Pending { stdin, tx });
        Ok((c, None, Some(rx)))
    })
    .await?;
    let tty = c.config.tty;
    let on_upgrade = hyper::upgrade::on(&mut r.req);
    let active = Active::new(&st);
    tokio::spawn(async move {
        let _active = active;
        let a = match (now, later) {
            (Some(a), _) => a,
            (None, Some(rx)) => match rx.await {
                Ok(Ok(a)) => a,
                _ => return,
            },
            _ => return,
        };
        let Ok(up) = on_upgrade.await else { return };
        bridge_attach(up, a.into_fd(), tty, stdin, stdout, stderr).await;
    });
    Ok(upgrade_response(tty))
}

fn to_tokio(fd: OwnedFd) -> std::io::Result<tokio::net::UnixStream> {
    let s = std::os::unix::net::UnixStream::from(fd);
    s.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(s)
}

/// Monitor frames → docker frames (or raw with a TTY); client bytes → stdin frames.
async fn bridge_attach(
    up: Upgraded,
    monitor: OwnedFd,
    tty: bool,
    stdin: bool,
    stdout: bool,
    stderr: bool,
) {
    let Ok(mon) = to_tokio(monitor) else { return };
    let (mut mr, mut mw) = mon.into_split();
    let (mut cr, mut cw) = tokio::io::split(TokioIo::new(up));
    let input = tokio::spawn(async move {
        let mut buf = vec![0u8; 32 << 10];
        loop {
            match cr.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    if stdin {
                        let _ = mw.write_all(&attach::frame(attach::STDIN_EOF, &[])).await;
                    }
                    // Keep the write half open: the monitor connection lives until the output ends.
                    std::future::pending::<()>().await;
                }
                Ok(n) if stdin => {
                    if mw
                        .write_all(&attach::frame(attach::STDIN, &buf[..n]))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(_) => {}
            }
        }
    });
    let mut pending = Vec::new();
    let mut buf = vec![0u8; 32 << 10];
    'out: loop {
        let n = match mr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        while let Some((kind, p)) = take_frame(&mut pending) {
            let (want, stream) = match kind {
                attach::STDOUT => (stdout, 1u8),
                attach::STDERR => (stderr, 2u8),
                attach::EXIT => break 'out,
                _ => continue,
            };
            if !want || p.is_empty() {
                continue;
            }
            let r = if tty {
                cw.write_all(&p).await
            } else {
                let mut v = frame_header(stream, p.len()).to_vec();
                v.extend_from_slice(&p);
                cw.write_all(&v).await
            };
            if r.is_err() {
                break 'out;
            }
        }
    }
    input.abort();
    let _ = cw.flush().await;
    let _ = cw.shutdown().await;
}
