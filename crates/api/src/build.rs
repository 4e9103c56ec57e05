//! `POST /build`: docker's classic builder API. The context tar streams into a `berth build -`
//! child (the build crate writes its progress to stdout and stops on SIGINT, so it runs in its
//! own process, as `exec` does); its lines come back as docker's `{"stream":...}` messages,
//! the image as `{"aux":{"ID":...}}`, a failure as `{"errorDetail":...}`.

use crate::http::{streamed, ApiError, ApiResult, Resp};
use crate::router::Req;
use crate::State;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
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

enum Line {
    Out(String),
    Err(String),
}

pub async fn build(st: Arc<State>, r: Req) -> ApiResult<Resp> {
    let (args, quiet) = build_args(&r.query)?;
    let mut child = tokio::process::Command::new(&st.exe)
        .arg("--root")
        .arg(&st.root)
        .args(&args)
        .env_remove("BERTH_ROOT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ApiError::internal(format!("start berth build: {e}")))?;
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
    let (tx, mut lines) = mpsc::channel::<Line>(64);
    for (pipe, is_err) in [
        (
            Box::new(child.stdout.take().expect("piped stdout"))
                as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            false,
        ),
        (Box::new(child.stderr.take().expect("piped stderr")), true),
    ] {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut r = BufReader::new(pipe);
            let mut buf = Vec::new();
            while r.read_until(b'\n', &mut buf).await.is_ok_and(|n| n > 0) {
                let s = String::from_utf8_lossy(&buf).into_owned();
                buf.clear();
                let l = if is_err { Line::Err(s) } else { Line::Out(s) };
                if tx.send(l).await.is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
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
        // stdout's last line is held back (the image id), and berth's `Error: ` line on stderr.
        let (mut last_out, mut last_err): (Option<String>, Option<String>) = (None, None);
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
            let prev = match l {
                Line::Out(s) => last_out.replace(s),
                // Only berth's own failure line waits; RUN's stderr goes out as it comes.
                Line::Err(s) if s.starts_with("Error: ") => last_err.replace(s),
                Line::Err(s) => Some(s),
            };
            if let Some(p) = prev {
                if !gone {
                    send(json!({ "stream": p })).await;
                }
            }
        }
        let status = child.wait().await;
        if gone {
            return;
        }
        let id = last_out
            .as_deref()
            .map(str::trim)
            .filter(|s| is_image_id(s))
            .map(str::to_string);
        match (status, id) {
            (Ok(s), Some(id)) if s.success() => {
                if let Some(e) = last_err {
                    send(json!({ "stream": e })).await;
                }
                send(json!({"aux": {"ID": format!("sha256:{id}")}})).await;
                if quiet {
                    send(json!({ "stream": format!("sha256:{id}\n") })).await;
                } else {
                    send(json!({ "stream": format!("Successfully built {}\n", &id[..12]) })).await;
                }
            }
            (status, _) => {
                if let Some(o) = last_out {
                    send(json!({ "stream": o })).await;
                }
                let msg = last_err
                    .map(|e| e.trim().trim_start_matches("Error: ").to_string())
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
