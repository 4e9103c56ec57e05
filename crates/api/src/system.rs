//! /_ping, /version, /info, /system/df, /events and /volumes.

use crate::http::{
    self, blocking, json_ok, json_status, parse_json, read_body, streamed, ApiError, ApiResult,
    Resp,
};
use crate::router::Req;
use crate::{State, API_VERSION, MIN_API_VERSION};
use berth_engine::events::{self, Filter, ReadOptions};
use berth_engine::{Volume, VolumeCreate, VolumeFilter};
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

pub fn ping(head: bool) -> Resp {
    let mut r = if head {
        http::empty(StatusCode::OK)
    } else {
        http::bytes(StatusCode::OK, "text/plain; charset=utf-8", "OK")
    };
    let h = r.headers_mut();
    h.insert("builder-version", "1".parse().expect("header"));
    h.insert("docker-experimental", "false".parse().expect("header"));
    h.insert(
        "cache-control",
        "no-cache, no-store, must-revalidate"
            .parse()
            .expect("header"),
    );
    h.insert("pragma", "no-cache".parse().expect("header"));
    r
}

fn uname() -> (String, String) {
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    unsafe { libc::uname(&mut u) };
    let s = |f: &[libc::c_char]| {
        unsafe { std::ffi::CStr::from_ptr(f.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    (s(&u.release), s(&u.machine))
}

fn goarch(m: &str) -> &str {
    match m {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub async fn version(_st: Arc<State>) -> ApiResult<Resp> {
    let (kernel, machine) = uname();
    let v = env!("CARGO_PKG_VERSION");
    Ok(json_ok(&json!({
        "Platform": {"Name": "berth"},
        "Components": [{"Name": "Engine", "Version": v, "Details": {
            "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux", "Arch": goarch(&machine),
            "KernelVersion": kernel, "Experimental": "false", "GitCommit": "", "GoVersion": "", "BuildTime": ""}}],
        "Version": v, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "GitCommit": "", "GoVersion": "",
        "Os": "linux", "Arch": goarch(&machine), "KernelVersion": kernel, "BuildTime": "",
    })))
}

fn meminfo_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |k| k * 1024)
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|s| s.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

pub async fn info(st: Arc<State>) -> ApiResult<Resp> {
    let v = blocking(move || {
        let e = st.engine()?;
        let list = e.list(true)?;
        let running = list.iter().filter(|c| c.state.running && !c.state.paused).count();
        let paused = list.iter().filter(|c| c.state.paused).count();
        let store = e.store()?;
        let images = store.list()?.len();
        let driver = store.driver();
        let (kernel, machine) = uname();
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string();
        let cgv2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        Ok(json!({
            "ID": "berth", "Containers": list.len(), "ContainersRunning": running, "ContainersPaused": paused,
            "ContainersStopped": list.len() - running - paused, "Images": images,
            "Driver": if driver == berth_image::Driver::Vfs { "vfs" } else { "overlay2" }, "DriverStatus": [],
            "Plugins": {"Volume": ["local"], "Network": [], "Authorization": null, "Log": ["json-file"]},
            "MemoryLimit": true, "SwapLimit": true, "CpuCfsPeriod": true, "CpuCfsQuota": true, "CPUShares": true, "CPUSet": true,
            "PidsLimit": true, "OomKillDisable": !cgv2, "IPv4Forwarding": false, "Debug": false, "NFd": 0, "NGoroutines": 0,
            "SystemTime": berth_engine::timefmt::now(), "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs", "CgroupVersion": if cgv2 { "2" } else { "1" }, "NEventsListener": 0,
            "KernelVersion": kernel, "OperatingSystem": os_name(), "OSVersion": "", "OSType": "linux", "Architecture": machine,
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"], "Mirrors": []},
            "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1), "MemTotal": meminfo_total(),
            "DockerRootDir": st.root, "Name": host, "Labels": [], "ExperimentalBuild": false,
            "ServerVersion": env!("CARGO_PKG_VERSION"), "Runtimes": {"berth": {"path": "berth-runtime"}}, "DefaultRuntime": "berth",
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": null},
            "LiveRestoreEnabled": true, "Isolation": "", "InitBinary": "", "SecurityOptions": ["name=seccomp,profile=builtin"],
            "Warnings": [],
        }))
    })
    .await?;
    Ok(json_ok(&v))
}

fn volume_json(v: &Volume, usage: Option<(u64, usize)>) -> Value {
    let mut j = serde_json::to_value(v).expect("volume");
    if let Some((size, refs)) = usage {
        j["UsageData"] = json!({"Size": size, "RefCount": refs});
    }
    j
}

pub async fn df(st: Arc<State>) -> ApiResult<Resp> {
    let v = blocking(move || {
        let e = st.engine()?;
        let store = e.store()?;
        let du = store.disk_usage()?;
        let images: Vec<Value> = store
            .list()?
            .iter()
            .map(|img| {
                json!({"Id": format!("sha256:{}", img.id), "ParentId": "", "RepoTags": img.names.iter().map(|n| n.familiar()).collect::<Vec<_>>(),
                       "RepoDigests": [], "Created": img.created, "Size": img.size, "SharedSize": 0, "VirtualSize": img.size,
                       "Labels": {}, "Containers": img.users.len()})
            })
            .collect();
        let containers: Vec<Value> = e
            .list(true)?
            .iter()
            .map(|c| {
                let rw = c.graph_driver.data.get("UpperDir").map_or(0, |d| berth_engine::tree_size(Path::new(d)));
                json!({"Id": c.id, "Names": [format!("/{}", c.name)], "Image": c.image_name, "ImageID": c.image,
                       "Command": c.command_line(), "Created": 0, "State": c.state.status, "Status": c.state.status,
                       "SizeRw": rw, "SizeRootFs": rw, "Labels": c.config.labels, "Mounts": [], "Ports": []})
            })
            .collect();
        let volumes: Vec<Value> = e
            .volumes()?
            .list(&VolumeFilter::default())?
            .iter()
            .map(|v| volume_json(v, Some((berth_engine::tree_size(Path::new(&v.mountpoint)), v.users.len()))))
            .collect();
        Ok(json!({"LayersSize": du.size, "Images": images, "Containers": containers, "Volumes": volumes, "BuildCache": []}))
    })
    .await?;
    Ok(json_ok(&v))
}

pub async fn events(st: Arc<State>, r: Req) -> ApiResult<Resp> {
    let filter = Filter(r.query.filters()?);
    filter.validate().map_err(ApiError::bad)?;
    let since = match r.query.get("since").filter(|s| !s.is_empty()) {
        Some(s) => Some(events::parse_time_nanos(s)?),
        None => None,
    };
    let until = match r.query.get("until").filter(|s| !s.is_empty()) {
        Some(s) => Some(events::parse_time_nanos(s)?),
        None => None,
    };
    // Without --since only what happens from now on; with it, the log from the start.
    let offset = if since.is_some() {
        0
    } else {
        events::end_offset(&st.root)
    };
    let o = ReadOptions {
        since,
        until,
        follow: true,
        filter,
    };
    let (resp, mut w) = streamed(StatusCode::OK, "application/json");
    tokio::task::spawn_blocking(move || {
        let _ = events::read(&st.root, offset, &o, &mut |e| {
            if e.typ.is_empty() {
                return !w.closed();
            }
            w.send_json(&serde_json::to_value(e).expect("event"))
                .is_ok()
        });
    });
    Ok(resp)
}

fn volume_filter(filters: &[(String, String)]) -> ApiResult<(VolumeFilter, bool)> {
    let mut f = VolumeFilter::default();
    let mut all = false;
    for (k, v) in filters {
        match k.as_str() {
            "dangling" => f.dangling = Some(v == "true" || v == "1"),
            "name" => f.names.push(v.clone()),
            "label" => f.labels.push(v.clone()),
            "driver" => f.drivers.push(v.clone()),
            "all" => all = v == "true" || v == "1",
            _ => return Err(ApiError::bad(format!("invalid filter '{k}'"))),
        }
    }
    Ok((f, all))
}

pub async fn volumes_list(st: Arc<State>, r: Req) -> ApiResult<Resp> {
    let (f, _) = volume_filter(&r.query.filters()?)?;
    let v = blocking(move || {
        Ok(st
            .engine()?
            .volumes()?
            .list(&f)?
            .iter()
            .map(|v| volume_json(v, None))
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(json_ok(&json!({"Volumes": v, "Warnings": []})))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct VolumeBody {
    name: String,
    driver: String,
    driver_opts: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
}

pub async fn volume_create(st: Arc<State>, r: Req) -> ApiResult<Resp> {
    let body = read_body(r.req.into_body(), 1 << 20).await?;
    let b: VolumeBody = parse_json(&body)?;
    let req = VolumeCreate {
        name: Some(b.name).filter(|n| !n.is_empty()),
        driver: Some(b.driver).filter(|d| !d.is_empty()),
        labels: b.labels,
        options: b.driver_opts,
    };
    let v = blocking(move || Ok(volume_json(&st.engine()?.volumes()?.create(&req)?, None))).await?;
    Ok(json_status(StatusCode::CREATED, &v))
}

pub async fn volume_inspect(st: Arc<State>, name: &str) -> ApiResult<Resp> {
    let name = name.to_string();
    let v =
        blocking(move || Ok(volume_json(&st.engine()?.volumes()?.inspect(&name)?, None))).await?;
    Ok(json_ok(&v))
}

pub async fn volume_remove(st: Arc<State>, name: &str, r: Req) -> ApiResult<Resp> {
    let name = name.to_string();
    let force = r.query.bool("force");
    blocking(move || Ok(st.engine()?.volumes()?.remove(&name, force)?)).await?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

pub async fn volumes_prune(st: Arc<State>, r: Req) -> ApiResult<Resp> {
    let (f, all) = volume_filter(&r.query.filters()?)?;
    let (names, bytes) = blocking(move || Ok(st.engine()?.volumes()?.prune(all, &f)?)).await?;
    Ok(json_ok(
        &json!({"VolumesDeleted": names, "SpaceReclaimed": bytes}),
    ))
}
