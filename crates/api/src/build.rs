//! `POST /build`: docker's classic builder API. The context tar streams into a `berth build -`
//! child (the build crate writes its progress to stdout and stops on SIGINT, so it runs in its
//! own process, as `exec` does); its lines, stdout and stderr through one pipe in the order
//! written, come back as docker's `{"stream":...}` messages,
//! the image as `{"aux":{"ID":...}}`, a failure as `{"errorDetail":...}`.

use crate::http::{streamed, ApiError, ApiResult, Resp};
use crate::router::Req;
use crate::State;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::pipe::Receiver;
use tokio::sync::mpsc;

/// A JSON object parameter (`buildargs`, `labels`): string values; nulls are skipped.
fn json_map(q: &crate::http::Query, key: &str) -> ApiResult<BTreeMap<String, String>> {
    let Some(raw) = q.get(key).filter(|s| !s.is_empty()) else {
        return Ok(BTreeMap::new());
    };
    let m: BTreeMap<String, Option<String>> =
        serde_json::from_str(raw).map_err(|e| ApiError::bad(format!("invalid {key}: {e}")))?;
    Ok(m.into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect())
}

/// `berth build` arguments for the query (docker's BuildOptions as URL parameters).
fn build_args(q: &crate::http::Query) -> ApiResult<(Vec<String>, bool)> {
    if q.get("remote").is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::unsupported("building from a remote context"));
    }
    if q.get("version") == Some("2") {
        return Err(ApiError::unsupported(
            "BuildKit (use the classic builder: DOCKER_BUILDKIT=0)",
        ));
    }
    let mut a: Vec<String> = vec!["build".into()];
    if let Some(f) = q.get("dockerfile").filter(|f| !f.is_empty()) {
        a.extend(["-f".into(), f.to_string()]);
    }
    for t in q.all("t").into_iter().filter(|t| !t.is_empty()) {
        a.extend(["-t".into(), t]);
    }
    for (k, v) in json_map(q, "buildargs")? {
        a.extend(["--build-arg".into(), format!("{k}={v}")]);
    }
    for (k, v) in json_map(q, "labels")? {
        a.extend(["--label".into(), format!("{k}={v}")]);
    }
    if let Some(t) = q.get("target").filter(|t| !t.is_empty()) {
        a.extend(["--target".into(), t.to_string()]);
    }
    if let Some(n) = q.get("networkmode").filter(|n| !n.is_empty()) {
        a.extend(["--network".into(), n.to_string()]);
    }
    if let Some(p) = q.get("platform").filter(|p| !p.is_empty()) {
        a.extend(["--platform".into(), p.to_string()]);
    }
    if q.bool("nocache") {
        a.push("--no-cache".into());
    }
    if q.bool("pull") {
        a.push("--pull=always".into());
    }
    let quiet = q.bool("q");
    if quiet {
        a.push("-q".into());
    }
    a.push("-".into());
    Ok((a, quiet))
}

fn is_image_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A line `berth build` may end with: the image id on success, its `Error: ` line on failure.
fn may_be_last(line: &str) -> bool {
    is_image_id(line.trim()) || line.starts_with("Error: ")
}

pub async fn build(st: Arc<State>, r: Req) -> ApiResult<Resp> {
    let (args, quiet) = build_args(&r.query)?;
    // stdout and stderr share one pipe, so lines reach the stream in the order berth build
    // wrote them (two pipes read apart lose that; the build writes RUN output in whole lines).
    let (reader, writer) = std::io::pipe().map_err(|e| ApiError::internal(format!("pipe: {e}")))?;
    let writer2 = writer
        .try_clone()
        .map_err(|e| ApiError::internal(format!("pipe: {e}")))?;
    // The Command, holding our copies of the write end, is gone after this statement: the
    // reader sees the end when the child exits.
    let mut child = tokio::process::Command::new(&st.exe)
        .arg("--root")
        .arg(&st.root)
        .args(&args)
        .env_remove("BERTH_ROOT")
        .stdin(Stdio::piped())
        .stdout(writer)
        .stderr(writer2)
        .spawn()
        .map_err(|e| ApiError::internal(format!("start berth build: {e}")))?;
    let reader = Receiver::from_owned_fd(OwnedFd::from(reader))
        .map_err(|e| ApiError::internal(format!("pipe: {e}")))?;
    // The context: request body → the child's stdin (closed at the end of the body).
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut body = r.req.into_body();
    tokio::spawn(async move {
        while let Some(Ok(f)) = body.frame().await {
            if let Ok(d) = f.into_data() {
                if stdin.write_all(&d).await.is_err() {
                    return;
                }
            }
        }
    });
    let (tx, mut lines) = mpsc::channel::<String>(64);
    tokio::spawn(async move {
        let mut r = BufReader::new(reader);
        let mut buf = Vec::new();
        while r.read_until(b'\n', &mut buf).await.is_ok_and(|n| n > 0) {
            let s = String::from_utf8_lossy(&buf).into_owned();
            buf.clear();
            if tx.send(s).await.is_err() {
                return;
            }
        }
    });
    let (resp, w) = streamed(StatusCode::OK, "application/json");
    let out = w.tx;
    tokio::spawn(async move {
        let send = |v: Value| {
            let out = out.clone();
            async move {
                let mut s = serde_json::to_vec(&v).expect("json");
                s.push(b'\n');
                out.send(Bytes::from(s)).await.is_ok()
            }
        };
        // A line that may be the build's last waits for the next one; the rest go out at once.
        let mut held: Option<String> = None;
        let mut gone = false;
        loop {
            let l = tokio::select! {
                l = lines.recv() => l,
                _ = out.closed(), if !gone => {
                    // The client went away: stop the build as ^C would (it cleans up after itself).
                    gone = true;
                    if let Some(pid) = child.id() {
                        unsafe { libc::kill(pid as i32, libc::SIGINT) };
                    }
                    continue;
                }
            };
            let Some(l) = l else { break };
            if gone {
                continue;
            }
            if let Some(h) = held.take() {
                send(json!({ "stream": h })).await;
            }
            if may_be_last(&l) {
                held = Some(l);
            } else {
                send(json!({ "stream": l })).await;
            }
        }
        let status = child.wait().await;
        if gone {
            return;
        }
        let id = held
            .as_deref()
            .map(str::trim)
            .filter(|s| is_image_id(s))
            .map(str::to_string);
        match (status, id) {
            (Ok(s), Some(id)) if s.success() => {
                send(json!({"aux": {"ID": format!("sha256:{id}")}})).await;
                if quiet {
                    send(json!({ "stream": format!("sha256:{id}\n") })).await;
                } else {
                    send(json!({ "stream": format!("Successfully built {}\n", &id[..12]) })).await;
                }
            }
            (status, _) => {
                let msg = match held {
                    Some(e) if e.starts_with("Error: ") => {
                        Some(e.trim().trim_start_matches("Error: ").to_string())
                    }
                    Some(o) => {
                        send(json!({ "stream": o })).await;
                        None
                    }
                    None => None,
                }
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| match status {
                    Ok(s) => format!("berth build failed ({s})"),
                    Err(e) => format!("berth build: {e}"),
                });
                send(json!({"errorDetail": {"message": msg}, "error": msg})).await;
            }
        }
    });
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_to_arguments() {
        let q = crate::http::Query::parse(Some(
            "t=a%3A1&t=b&dockerfile=sub%2FDockerfile&buildargs=%7B%22X%22%3A%221%22%2C%22Y%22%3Anull%7D&labels=%7B%22l%22%3A%22v%22%7D&nocache=1&q=1&rm=1",
        ));
        let (a, quiet) = build_args(&q).unwrap();
        assert!(quiet);
        assert_eq!(
            a,
            [
                "build",
                "-f",
                "sub/Dockerfile",
                "-t",
                "a:1",
                "-t",
                "b",
                "--build-arg",
                "X=1",
                "--label",
                "l=v",
                "--no-cache",
                "-q",
                "-"
            ]
        );
        let e = build_args(&crate::http::Query::parse(Some("remote=https%3A%2F%2Fx"))).unwrap_err();
        assert_eq!(e.status, StatusCode::NOT_IMPLEMENTED);
        assert!(build_args(&crate::http::Query::parse(Some("buildargs=nope"))).is_err());
    }
}
