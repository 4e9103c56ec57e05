//! /containers: Docker's wire types in and out, the engine in between.

use crate::http::{
    self, blocking, json_ok, json_status, parse_json, read_body, streamed, ApiError, ApiResult,
    MuxWriter, Resp,
};
use crate::router::Req;
use crate::State;
use berth_engine::events::{self, ReadOptions};
use berth_engine::model::{HostConfig, Mount};
use berth_engine::{flags, timefmt, Container, CreateOptions, StopOptions};
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

/// The body of `POST /containers/create`: docker's Config with HostConfig inside.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    hostname: String,
    user: String,
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    tty: bool,
    open_stdin: bool,
    env: Vec<String>,
    cmd: Option<StrOrVec>,
    image: String,
    volumes: BTreeMap<String, Value>,
    working_dir: String,
    entrypoint: Option<StrOrVec>,
    labels: BTreeMap<String, String>,
    stop_signal: Option<String>,
    stop_timeout: Option<i64>,
    host_config: Option<Value>,
    exposed_ports: BTreeMap<String, Value>,
    mac_address: String,
    networking_config: Option<Value>,
}

/// Cmd and Entrypoint are arrays, but old clients send a string.
#[derive(Deserialize)]
#[serde(untagged)]
enum StrOrVec {
    Str(String),
    Vec(Vec<String>),
}

impl StrOrVec {
    fn into_vec(self) -> Vec<String> {
        match self {
            StrOrVec::Str(s) => vec![s],
            StrOrVec::Vec(v) => v,
        }
    }
}

pub async fn create(st: Arc<State>, r: Req) -> ApiResult<Resp> {
    let name = r
        .query
        .get("name")
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    let body = read_body(r.req.into_body(), 8 << 20).await?;
    let b: CreateBody = parse_json(&body)?;
    if b.image.is_empty() {
        return Err(ApiError::bad(
            "config cannot be empty in order to create a container: no image given",
        ));
    }
    let mut hc: HostConfig = match b.host_config {
        Some(v) => serde_json::from_value(http::strip_nulls(v))
            .map_err(|e| ApiError::bad(format!("invalid HostConfig: {e}")))?,
        None => HostConfig::default(),
    };
    let mut mounts: Vec<Mount> = hc.mounts.take().unwrap_or_default();
    for bind in hc.binds.iter().flatten() {
        mounts.push(flags::parse_volume(bind)?);
    }
    for dst in b.volumes.keys() {
        if !mounts.iter().any(|m| m.target == *dst) {
            mounts.push(flags::parse_volume(dst)?);
        }
    }
    if !mounts.is_empty() {
        hc.mounts = Some(mounts);
    }
    // docker's CLI sends "default" for the default network: berth's bridge unless the server
    // was started with `--bridge none`.
    if hc.network_mode.is_empty() || hc.network_mode == "default" {
        hc.network_mode = st.default_network.clone();
    }
    let endpoint = b
        .networking_config
        .as_ref()
        .and_then(|n| n["EndpointsConfig"].get(&hc.network_mode))
        .cloned()
        .unwrap_or(Value::Null);
    let network_aliases: Vec<String> = endpoint["Aliases"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let ip = endpoint["IPAMConfig"]["IPv4Address"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let ip6 = endpoint["IPAMConfig"]["IPv6Address"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    // CreateOptions takes docker run's one-word --entrypoint: the rest of a longer entrypoint
    // leads the command, which gives the same argv.
    let mut cmd = b.cmd.map(StrOrVec::into_vec).unwrap_or_default();
    let entrypoint = match b.entrypoint.map(StrOrVec::into_vec) {
        None => None,
        Some(v) if v.is_empty() => Some(String::new()),
        Some(mut v) => {
            let first = v.remove(0);
            v.extend(cmd);
            cmd = v;
            Some(first)
        }
    };
    let o = CreateOptions {
        image: b.image,
        name,
        cmd,
        entrypoint,
        env: b.env,
        workdir: Some(b.working_dir).filter(|w| !w.is_empty()),
        user: Some(b.user).filter(|u| !u.is_empty()),
        hostname: Some(b.hostname).filter(|h| !h.is_empty()),
        tty: b.tty,
        open_stdin: b.open_stdin,
        attach_stdin: b.attach_stdin,
        attach_stdout: b.attach_stdout,
        attach_stderr: b.attach_stderr,
        labels: b.labels,
        stop_signal: b.stop_signal.filter(|s| !s.is_empty()),
        stop_timeout: b.stop_timeout,
        network_aliases,
        ip,
        ip6,
        mac_address: Some(b.mac_address).filter(|m| !m.is_empty()),
        expose: b.exposed_ports.into_keys().collect(),
        host_config: hc,
    };
    let c = blocking(move || {
        let e = st.engine()?;
        e.create(&o).map_err(|err| {
            if err.kind() == berth_engine::ErrorKind::NotFound
                && err.message().starts_with("unable to find image")
            {
                ApiError::not_found(format!("No such image: {}", o.image))
            } else {
                err.into()
            }
        })
    })
    .await?;
    Ok(json_status(
        StatusCode::CREATED,
        &json!({"Id": c.id, "Warnings": []}),
    ))
}

/// docker ps's STATUS.
fn status_text(c: &Container) -> String {
    let s = &c.state;
    match s.status.as_str() {
        "running" => format!("Up {}", timefmt::since(&s.started_at)),
        "paused" => format!("Up {} (Paused)", timefmt::since(&s.started_at)),
        "restarting" => format!(
            "Restarting ({}) {} ago",
            s.exit_code,
            timefmt::since(&s.finished_at)
        ),
        "exited" => format!(
            "Exited ({}) {} ago",
            s.exit_code,
            timefmt::since(&s.finished_at)
        ),
        "dead" => "Dead".into(),
        _ => "Created".into(),
    }
}

fn unix(rfc: &str) -> i64 {
    timefmt::parse(rfc)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64)
}

/// docker's ContainerSummary (ports and networks from the engine's NetworkSettings).
fn summary(e: &berth_engine::Engine, c: &Container) -> Value {
    let ns = e.network_settings(c);
    let mut ports = Vec::new();
    for (k, binds) in ns["Ports"].as_object().into_iter().flatten() {
        let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
        let private: u16 = p.parse().unwrap_or(0);
        match binds.as_array() {
            Some(b) => ports.extend(b.iter().map(|b| {
                json!({"IP": b["HostIp"], "PrivatePort": private, "Type": proto,
                       "PublicPort": b["HostPort"].as_str().and_then(|p| p.parse::<u16>().ok()).unwrap_or(0)})
            })),
            None => ports.push(json!({"PrivatePort": private, "Type": proto})),
        }
    }
    let mounts: Vec<Value> = c
        .mounts
        .iter()
        .map(|m| {
            json!({"Type": m.typ, "Name": m.name.clone().unwrap_or_default(), "Source": m.source, "Destination": m.destination,
                   "Driver": m.driver, "Mode": m.mode, "RW": m.rw, "Propagation": m.propagation})
        })
        .collect();
    json!({
        "Id": c.id,
        "Names": [format!("/{}", c.name)],
        "Image": c.image_name,
        "ImageID": c.image,
        "Command": c.command_line(),
        "Created": unix(&c.created),
        "Ports": ports,
        "Labels": c.config.labels,
        "State": c.state.status,
        "Status": status_text(c),
        "HostConfig": {"NetworkMode": c.host_config.network_mode},
        "NetworkSettings": {"Networks": ns["Networks"]},
        "Mounts": mounts,
    })
}

fn matches(c: &Container, filters: &[(String, String)]) -> ApiResult<bool> {
    let mut keys: Vec<&str> = filters.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        if !matches!(
            key,
            "status"
                | "name"
                | "id"
                | "label"
                | "ancestor"
                | "exited"
                | "volume"
                | "network"
                | "before"
                | "since"
        ) {
            return Err(ApiError::bad(format!("invalid filter '{key}'")));
        }
        let mut values = filters.iter().filter(|(k, _)| k == key);
        let test = |(_, v): &(String, String)| match key {
            "status" => c.state.status == *v,
            "name" => c.name.contains(v.trim_start_matches('/')),
            "id" => c.id.starts_with(v.as_str()),
            "label" => match v.split_once('=') {
                Some((k, val)) => c.config.labels.get(k).is_some_and(|x| x == val),
                None => c.config.labels.contains_key(v.as_str()),
            },
            "ancestor" => {
                let strip = |s: &str| s.strip_suffix(":latest").unwrap_or(s).to_string();
                strip(&c.image_name) == strip(v)
                    || c.image
                        .trim_start_matches("sha256:")
                        .starts_with(v.trim_start_matches("sha256:"))
            }
            "exited" => {
                c.state.status == "exited" && v.parse::<i32>().ok() == Some(c.state.exit_code)
            }
            "volume" => c
                .mounts
                .iter()
                .any(|m| m.name.as_deref() == Some(v.as_str()) || m.destination == *v),
            "network" => c.host_config.network_mode == *v || c.networking.contains_key(v),
            _ => true,
        };
        // Every label must match (moby's MatchKVList); other keys match any of their values.
        let ok = if key == "label" {
            values.all(test)
        } else {
            values.any(test)
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

pub async fn list(st: Arc<State>, r: Req) -> ApiResult<Resp> {
    let filters = r.query.filters()?;
    let limit = r.query.int("limit")?.filter(|l| *l > 0);
    let all = r.query.bool("all") || limit.is_some();
    let v = blocking(move || {
        let e = st.engine()?;
        let mut list =
            e.list(all || filters.iter().any(|(k, _)| k == "status" || k == "exited"))?;
        let mut out = Vec::new();
        for c in &list {
            if matches(c, &filters)? {
                out.push(summary(&e, c));
            }
        }
        list.clear();
        if let Some(l) = limit {
            out.truncate(l as usize);
        }
        Ok(out)
    })
    .await?;
    Ok(json_ok(&Value::Array(v)))
}

pub async fn inspect(st: Arc<State>, id: &str) -> ApiResult<Resp> {
    let id = id.to_string();
    let v = blocking(move || {
        let e = st.engine()?;
        Ok(e.inspect(&e.get(&id)?))
    })
    .await?;
    Ok(json_ok(&v))
}

pub async fn start(st: Arc<State>, id: &str) -> ApiResult<Resp> {
    let id = id.to_string();
    let started = blocking(move || {
        let e = st.engine()?;
        let c = e.get(&id)?;
        if c.state.running {
            return Ok(false);
        }
        crate::streams::start_with_pending(&st, &e, &c)?;
        Ok(true)
    })
    .await?;
    Ok(http::empty(if started {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    }))
}

pub async fn stop(st: Arc<State>, id: &str, r: Req, restart: bool) -> ApiResult<Resp> {
    let id = id.to_string();
    let o = StopOptions {
        timeout: r.query.int("t")?,
        signal: r
            .query
            .get("signal")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    };
    let changed = blocking(move || {
        let e = st.engine()?;
        let c = e.get(&id)?;
        if restart {
            e.restart(&c.id, &o)?;
            return Ok(true);
        }
        if !c.state.running {
            return Ok(false);
        }
        e.stop(&c.id, &o)?;
        Ok(true)
    })
    .await?;
    Ok(http::empty(if changed {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    }))
}

pub async fn kill(st: Arc<State>, id: &str, r: Req) -> ApiResult<Resp> {
    let id = id.to_string();
    let sig = r
        .query
        .get("signal")
        .filter(|s| !s.is_empty())
        .unwrap_or("SIGKILL")
        .to_string();
    blocking(move || Ok(st.engine()?.kill(&id, &sig)?)).await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

pub async fn pause(st: Arc<State>, id: &str, pause: bool) -> ApiResult<Resp> {
    let id = id.to_string();
    blocking(move || {
        let e = st.engine()?;
        if pause {
            e.pause(&id)?
        } else {
            e.unpause(&id)?
        }
        Ok(())
    })
    .await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

pub async fn rename(st: Arc<State>, id: &str, r: Req) -> ApiResult<Resp> {
    let id = id.to_string();
    let name = r.query.get("name").unwrap_or("").to_string();
    blocking(move || Ok(st.engine()?.rename(&id, &name)?)).await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

pub async fn resize(st: Arc<State>, id: &str, r: Req) -> ApiResult<Resp> {
    let id = id.to_string();
    let (h, w) = (
        r.query.int("h")?.unwrap_or(0),
        r.query.int("w")?.unwrap_or(0),
    );
    blocking(move || {
        let e = st.engine()?;
        let c = e.get(&id)?;
        if !c.state.running {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("container {} is not running", c.id),
            ));
        }
        crate::streams::resize_container(&e, &c, h as u16, w as u16)
    })
    .await?;
    Ok(http::empty(StatusCode::OK))
}

pub async fn remove(st: Arc<State>, id: &str, r: Req) -> ApiResult<Resp> {
    let id = id.to_string();
    let (force, volumes) = (r.query.bool("force"), r.query.bool("v"));
    blocking(move || Ok(st.engine()?.remove(&id, force, volumes)?)).await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

pub async fn prune(st: Arc<State>, r: Req) -> ApiResult<Resp> {
    let filters = r.query.filters()?;
    for (k, _) in &filters {
        if k != "label" && k != "until" {
            return Err(ApiError::bad(format!("invalid filter '{k}'")));
        }
    }
    let ids = blocking(move || {
        let e = st.engine()?;
        let mut out = Vec::new();
        for c in e.list(true)? {
            let labels: Vec<(String, String)> = filters
                .iter()
                .filter(|(k, _)| k == "label")
                .cloned()
                .collect();
            if c.state.running || !matches(&c, &labels)? {
                continue;
            }
            if let Some((_, u)) = filters.iter().find(|(k, _)| k == "until") {
                let until = events::parse_time_nanos(u)? / 1_000_000_000;
                if unix(&c.created) >= until {
                    continue;
                }
            }
            e.remove(&c.id, false, false)?;
            out.push(c.id);
        }
        Ok(out)
    })
    .await?;
    Ok(json_ok(
        &json!({"ContainersDeleted": ids, "SpaceReclaimed": 0}),
    ))
}

/// `POST /containers/{id}/wait`: the status line and headers go out at once (clients wait for
/// them before starting the container), the body when the condition is met.
pub async fn wait(st: Arc<State>, id: &str, r: Req) -> ApiResult<Resp> {
    let id = id.to_string();
    let cond = r
        .query
        .get("condition")
        .filter(|c| !c.is_empty())
        .unwrap_or("not-running")
        .to_string();
    if !matches!(cond.as_str(), "not-running" | "next-exit" | "removed") {
        return Err(ApiError::bad(format!("invalid condition: {cond:?}")));
    }
    let st2 = st.clone();
    let id2 = id.clone();
    // From here on, every exit is in the log after `offset`: none can slip between check and follow.
    let (offset, c) = blocking(move || {
        let offset = events::end_offset(&st2.root);
        Ok((offset, st2.engine()?.get(&id2)?))
    })
    .await?;
    let (resp, w) = streamed(StatusCode::OK, "application/json");
    tokio::task::spawn_blocking(move || wait_for(&st, &c, &cond, offset, w));
    Ok(resp)
}

/// Sends the body and ends it (the writer dropped) the moment the condition is met, from inside
/// the log reader: closing its inotify watch waits out an RCU grace period (~15 ms) that
/// `docker run` would otherwise wait for too.
fn wait_for(st: &State, c: &Container, cond: &str, offset: u64, mut w: http::ChanWriter) {
    let reply = |w: &mut http::ChanWriter, code: i64| {
        let _ = w.send_json(&json!({"StatusCode": code, "Error": null}));
    };
    if cond == "not-running" && !c.state.running {
        return reply(&mut w, c.state.exit_code as i64);
    }
    let mut out = Some(w);
    let mut code: Option<i64> = None;
    // Heartbeats also come after every line appended to the log: time, not their count,
    // decides when to look the container up (an engine open, possibly waiting on the lock of
    // a removal in progress, on the path of every `docker run`).
    let mut last_check = std::time::Instant::now();
    let o = ReadOptions {
        follow: true,
        ..Default::default()
    };
    let _ = events::read(&st.root, offset, &o, &mut |e| {
        if out.as_ref().is_none_or(|w| w.closed()) {
            return false;
        }
        let done = if e.typ.is_empty() {
            // A heartbeat: catch a container that went away without a word (its monitor killed).
            if last_check.elapsed() < Duration::from_secs(1) {
                return true;
            }
            last_check = std::time::Instant::now();
            match st.engine().and_then(|en| Ok(en.get(&c.id)?)) {
                Err(_) => {
                    code = code.or(Some(c.state.exit_code as i64));
                    true
                }
                Ok(now) if now.state.dead && cond != "removed" => {
                    code = Some(now.state.exit_code as i64);
                    true
                }
                Ok(now) if cond == "not-running" && !now.state.running => {
                    code = Some(now.state.exit_code as i64);
                    true
                }
                _ => false,
            }
        } else if e.typ != "container" || e.actor.id != c.id {
            false
        } else {
            match e.action.as_str() {
                "die" => {
                    code = e
                        .actor
                        .attributes
                        .get("exitCode")
                        .and_then(|x| x.parse().ok())
                        .or(Some(0));
                    cond != "removed"
                }
                "destroy" => {
                    code = code.or(Some(c.state.exit_code as i64));
                    true
                }
                _ => false,
            }
        };
        if done {
            if let Some(mut w) = out.take() {
                reply(&mut w, code.unwrap_or_default());
            }
        }
        !done
    });
}

pub async fn logs(st: Arc<State>, id: &str, r: Req) -> ApiResult<Resp> {
    let id = id.to_string();
    let q = &r.query;
    let tail = match q.get("tail").filter(|t| !t.is_empty() && *t != "all") {
        Some(t) => Some(
            t.parse::<usize>()
                .map_err(|_| ApiError::bad(format!("invalid tail: {t:?}")))?,
        ),
        None => None,
    };
    let time = |k: &str| -> ApiResult<Option<std::time::SystemTime>> {
        match q.get(k).filter(|s| !s.is_empty() && *s != "0") {
            Some(s) => Ok(Some(berth_engine::logs::parse_time(s)?)),
            None => Ok(None),
        }
    };
    let o = berth_engine::logs::LogOptions {
        stdout: q.bool("stdout"),
        stderr: q.bool("stderr"),
        follow: q.bool("follow"),
        tail,
        since: time("since")?,
        until: time("until")?,
        timestamps: q.bool("timestamps"),
    };
    if !o.stdout && !o.stderr {
        return Err(ApiError::bad("you must choose at least one stream"));
    }
    let st2 = st.clone();
    let c = blocking(move || Ok(st2.engine()?.get(&id)?)).await?;
    let ctype = if c.config.tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    let (resp, w) = streamed(StatusCode::OK, ctype);
    tokio::task::spawn_blocking(move || {
        let raw = c.config.tty;
        let mut out = MuxWriter {
            inner: w.clone(),
            stream: 1,
            raw,
        };
        let mut err = MuxWriter {
            inner: w.clone(),
            stream: 2,
            raw,
        };
        let Ok(e) = st.engine() else { return };
        let running = || !w.closed() && e.get(&c.id).map(|c| c.state.running).unwrap_or(false);
        let _ = berth_engine::logs::read(
            std::path::Path::new(&c.log_path),
            &o,
            &mut out,
            &mut err,
            &running,
        );
    });
    Ok(resp)
}

pub async fn top(st: Arc<State>, id: &str, r: Req) -> ApiResult<Resp> {
    let id = id.to_string();
    let args = r
        .query
        .get("ps_args")
        .filter(|a| !a.is_empty())
        .unwrap_or("-ef")
        .to_string();
    let v = blocking(move || {
        let pids = st.engine()?.pids(&id)?;
        let out = std::process::Command::new("ps")
            .args(args.split_whitespace())
            .output()
            .map_err(|e| ApiError::internal(format!("run ps: {e}")))?;
        if !out.status.success() {
            return Err(ApiError::internal(format!(
                "ps: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let titles: Vec<String> = lines
            .next()
            .unwrap_or("")
            .split_whitespace()
            .map(String::from)
            .collect();
        let col = titles
            .iter()
            .position(|h| h == "PID")
            .ok_or_else(|| ApiError::internal("couldn't find PID field in ps output"))?;
        let n = titles.len();
        let mut procs = Vec::new();
        for l in lines {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.get(col)
                .and_then(|p| p.parse::<i32>().ok())
                .is_some_and(|p| pids.contains(&p))
                && f.len() >= n
            {
                let mut row: Vec<String> = f[..n - 1].iter().map(|s| s.to_string()).collect();
                row.push(f[n - 1..].join(" "));
                procs.push(row);
            }
        }
        Ok(json!({"Titles": titles, "Processes": procs}))
    })
    .await?;
    Ok(json_ok(&v))
}

fn stats_json(s: &berth_engine::StatsEntry, pre: Option<&berth_engine::StatsEntry>) -> Value {
    let now = timefmt::now();
    let cpu = |e: Option<&berth_engine::StatsEntry>| {
        json!({"cpu_usage": {"total_usage": e.map_or(0, |e| e.cpu_nanos), "usage_in_kernelmode": 0, "usage_in_usermode": 0},
               "system_cpu_usage": e.map_or(0, |e| e.system_nanos), "online_cpus": s.online_cpus, "throttling_data": {}})
    };
    json!({
        "name": format!("/{}", s.name), "id": s.id, "read": now, "preread": berth_engine::model::ZERO_TIME,
        "pids_stats": {"current": s.pids},
        "cpu_stats": cpu(Some(s)),
        "precpu_stats": cpu(pre),
        "memory_stats": {"usage": s.mem_usage, "limit": s.mem_limit, "stats": {}},
        "blkio_stats": {"io_service_bytes_recursive": [
            {"major": 0, "minor": 0, "op": "read", "value": s.blk_read},
            {"major": 0, "minor": 0, "op": "write", "value": s.blk_write}]},
        "networks": {},
    })
}

pub async fn stats(st: Arc<State>, id: &str, r: Req) -> ApiResult<Resp> {
    let id = id.to_string();
    let stream = r.query.get("stream").is_none() || r.query.bool("stream");
    let one_shot = r.query.bool("one-shot");
    let st2 = st.clone();
    let id2 = id.clone();
    let first = blocking(move || Ok(st2.engine()?.stats(&id2)?)).await?;
    let (resp, mut w) = streamed(StatusCode::OK, "application/json");
    tokio::task::spawn_blocking(move || {
        let Ok(e) = st.engine() else { return };
        let mut prev = first;
        if !stream {
            // One sample, with the previous one a moment earlier so CPU% means something.
            if !one_shot {
                std::thread::sleep(Duration::from_millis(500));
                if let Ok(s) = e.stats(&id) {
                    let _ = w.send_json(&stats_json(&s, Some(&prev)));
                    return;
                }
            }
            let _ = w.send_json(&stats_json(&prev, None));
            return;
        }
        let _ = w.send_json(&stats_json(&prev, None));
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let Ok(s) = e.stats(&id) else { return };
            if w.send_json(&stats_json(&s, Some(&prev))).is_err() {
                return;
            }
            prev = s;
        }
    });
    Ok(resp)
}

pub async fn changes(st: Arc<State>, id: &str) -> ApiResult<Resp> {
    let id = id.to_string();
    let v = blocking(move || {
        let ch = st.engine()?.diff(&id)?;
        Ok(ch
            .iter()
            .map(|c| {
                let k = match c.kind {
                    berth_engine::ChangeKind::Changed => 0,
                    berth_engine::ChangeKind::Added => 1,
                    berth_engine::ChangeKind::Deleted => 2,
                };
                json!({"Path": c.path.display().to_string(), "Kind": k})
            })
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(json_ok(&Value::Array(v)))
}

/// Streams what `f` writes as the response body, once the engine accepted the request
/// (`check` runs first, so a missing container is a 404 and not a broken stream).
async fn stream_tar(
    st: Arc<State>,
    check: impl FnOnce(&berth_engine::Engine) -> ApiResult<()> + Send + 'static,
    f: impl FnOnce(&berth_engine::Engine, &mut dyn Write) -> ApiResult<()> + Send + 'static,
    extra: Vec<(&'static str, String)>,
) -> ApiResult<Resp> {
    let st2 = st.clone();
    blocking(move || check(&*st2.engine()?)).await?;
    let (mut resp, w) = streamed(StatusCode::OK, "application/x-tar");
    for (k, v) in extra {
        if let Ok(v) = v.parse() {
            resp.headers_mut().insert(k, v);
        }
    }
    tokio::task::spawn_blocking(move || {
        let Ok(e) = st.engine() else { return };
        let mut bw = std::io::BufWriter::with_capacity(256 << 10, w);
        if f(&e, &mut bw).is_ok() {
            let _ = bw.flush();
        }
    });
    Ok(resp)
}

pub async fn export(st: Arc<State>, id: &str) -> ApiResult<Resp> {
    let (a, b) = (id.to_string(), id.to_string());
    stream_tar(
        st,
        move |e| e.get(&a).map(drop).map_err(Into::into),
        move |e, w| Ok(e.export(&b, w)?),
        Vec::new(),
    )
    .await
}

fn base64(b: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for ch in b.chunks(3) {
        let n = (ch[0] as u32) << 16
            | (*ch.get(1).unwrap_or(&0) as u32) << 8
            | *ch.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= ch.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

pub async fn archive_get(st: Arc<State>, id: &str, r: Req, head: bool) -> ApiResult<Resp> {
    let path = r
        .query
        .get("path")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::bad("path is required"))?
        .to_string();
    let (id1, p1) = (id.to_string(), path.clone());
    let st2 = st.clone();
    let stat = blocking(move || Ok(st2.engine()?.stat_path(&id1, &p1)?)).await?;
    let header = base64(&serde_json::to_vec(&stat).expect("stat"));
    if head {
        let mut resp = http::empty(StatusCode::OK);
        resp.headers_mut().insert(
            "x-docker-container-path-stat",
            header
                .parse()
                .map_err(|_| ApiError::internal("stat header"))?,
        );
        return Ok(resp);
    }
    let id2 = id.to_string();
    let p = if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    };
    stream_tar(
        st,
        |_| Ok(()),
        move |e, w| Ok(e.copy_from(&id2, &p, false, w)?),
        vec![("x-docker-container-path-stat", header)],
    )
    .await
}

pub async fn archive_put(st: Arc<State>, id: &str, r: Req) -> ApiResult<Resp> {
    let path = r
        .query
        .get("path")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::bad("path is required"))?
        .to_string();
    let archive = r.query.bool("copyUIDGID");
    let id = id.to_string();
    let reader = http::BodyReader::new(r.req.into_body());
    blocking(move || {
        let e = st.engine()?;
        let c = e.get(&id)?;
        let p = if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        };
        Ok(e.copy_to(&c.id, &p, reader, berth_engine::Placement::Into, archive)?)
    })
    .await?;
    Ok(http::empty(StatusCode::OK))
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_go() {
        assert_eq!(super::base64(b"hello"), "aGVsbG8=");
        assert_eq!(super::base64(b"hi!"), "aGkh");
        assert_eq!(super::base64(b"a"), "YQ==");
    }
}
