//! `berth image inspect` / `berth inspect`: Docker's JSON shape.

use clap::Args;
use serde_json::{json, Map, Value};

use crate::output::{indented_json, print_inspect, InOrder, KeyOrder};
use crate::{CmdResult, Ctx, Failure};
use berth_image::{Driver, Image, ImageStore};

#[derive(Args)]
pub struct InspectArgs {
    /// Format output using a custom template ('json' or a Go-style template)
    #[arg(short, long)]
    format: Option<String>,
    /// Images to inspect
    #[arg(required = true)]
    images: Vec<String>,
}

pub fn run(ctx: &Ctx, a: InspectArgs) -> CmdResult {
    let store = ctx.store()?;
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for name in &a.images {
        match store.resolve(name) {
            Ok(img) => out.push(inspect_json(&store, &img)),
            Err(e) => missing.push(e.to_string()),
        }
    }
    print_inspect(a.format.as_deref(), &out, docker_order)?;
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Failure(missing.join("\nError: ")))
    }
}

pub fn inspect_json(store: &ImageStore, img: &Image) -> Value {
    let c = img.config_json.get("config").cloned().unwrap_or(Value::Null);
    let get = |k: &str| c.get(k).cloned().unwrap_or(Value::Null);
    let string = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut config = Map::new();
    config.insert("Hostname".into(), json!(""));
    config.insert("Domainname".into(), json!(""));
    config.insert("User".into(), json!(string("User")));
    config.insert("AttachStdin".into(), json!(false));
    config.insert("AttachStdout".into(), json!(false));
    config.insert("AttachStderr".into(), json!(false));
    if let Some(p) = c.get("ExposedPorts").filter(|v| !v.is_null()) {
        config.insert("ExposedPorts".into(), p.clone());
    }
    config.insert("Tty".into(), json!(false));
    config.insert("OpenStdin".into(), json!(false));
    config.insert("StdinOnce".into(), json!(false));
    config.insert("Env".into(), get("Env"));
    config.insert("Cmd".into(), get("Cmd"));
    config.insert("Image".into(), json!(""));
    config.insert("Volumes".into(), get("Volumes"));
    config.insert("WorkingDir".into(), json!(string("WorkingDir")));
    config.insert("Entrypoint".into(), get("Entrypoint"));
    config.insert("OnBuild".into(), get("OnBuild"));
    config.insert("Labels".into(), get("Labels"));
    if let Some(s) = c.get("StopSignal").filter(|v| !v.is_null()) {
        config.insert("StopSignal".into(), s.clone());
    }
    let top = |k: &str| img.config_json.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let dirs: Vec<String> = img.layer_dirs().iter().map(|d| d.display().to_string()).collect();
    let graph = match store.driver() {
        Driver::Overlay => {
            let mut data = Map::new();
            if dirs.len() > 1 {
                let lowers: Vec<&str> = dirs[..dirs.len() - 1].iter().rev().map(String::as_str).collect();
                data.insert("LowerDir".into(), json!(lowers.join(":")));
            }
            if let Some(top) = dirs.last() {
                data.insert("UpperDir".into(), json!(top));
            }
            json!({"Name": "overlay", "Data": data})
        }
        Driver::Vfs => json!({"Name": "vfs", "Data": {"Dir": dirs.last()}}),
    };
    let mut v = Map::new();
    v.insert("Id".into(), json!(format!("sha256:{}", img.id)));
    v.insert("RepoTags".into(), json!(img.names.iter().map(|n| n.familiar()).collect::<Vec<_>>()));
    v.insert(
        "RepoDigests".into(),
        json!(img
            .repo_digests()
            .iter()
            .map(|d| berth_image::familiar_repository(d))
            .collect::<Vec<_>>()),
    );
    let parent = store.parent(&img.id).ok().flatten().map(|p| format!("sha256:{p}")).unwrap_or_default();
    v.insert("Parent".into(), json!(parent));
    v.insert("Comment".into(), json!(top("comment")));
    v.insert("Created".into(), json!(top("created")));
    v.insert("DockerVersion".into(), json!(top("docker_version")));
    v.insert("Author".into(), json!(top("author")));
    v.insert("Config".into(), Value::Object(config));
    v.insert("Architecture".into(), json!(top("architecture")));
    if let Some(var) = img.config_json.get("variant").filter(|x| !x.is_null()) {
        v.insert("Variant".into(), var.clone());
    }
    v.insert("Os".into(), json!(top("os")));
    v.insert("Size".into(), json!(img.size));
    v.insert("GraphDriver".into(), graph);
    v.insert("RootFS".into(), json!({"Type": "layers", "Layers": img.diff_ids()}));
    v.insert(
        "Metadata".into(),
        json!({"LastTagTime": img.last_tag_time.clone().unwrap_or_else(|| "0001-01-01T00:00:00Z".into())}),
    );
    Value::Object(v)
}

/// The default `inspect` output in docker's key order: images and containers in the order of
/// docker's Go structs, other objects (volumes: already alphabetical in docker) sorted.
pub fn docker_order(objects: &[Value]) -> String {
    let shown: Vec<InOrder> = objects
        .iter()
        .map(|v| {
            let order = if v.get("RootFS").is_some() && v.get("RepoTags").is_some() {
                &IMAGE_ORDER
            } else if v.get("State").is_some() && v.get("HostConfig").is_some() {
                &CONTAINER_ORDER
            } else {
                &KeyOrder(&[])
            };
            InOrder {
                v,
                order,
                path: String::new(),
            }
        })
        .collect();
    indented_json(&shown)
}

/// container.Config's fields, shared by images and containers.
const CONFIG_KEYS: &[&str] = &[
    "Hostname",
    "Domainname",
    "User",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "ExposedPorts",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "Env",
    "Cmd",
    "Healthcheck",
    "ArgsEscaped",
    "Image",
    "Volumes",
    "WorkingDir",
    "Entrypoint",
    "NetworkDisabled",
    "MacAddress",
    "OnBuild",
    "Labels",
    "StopSignal",
    "StopTimeout",
    "Shell",
];

/// types.ImageInspect.
const IMAGE_ORDER: KeyOrder = KeyOrder(&[
    (
        "",
        &[
            "Id",
            "RepoTags",
            "RepoDigests",
            "Parent",
            "Comment",
            "Created",
            "DockerVersion",
            "Author",
            "Config",
            "Architecture",
            "Variant",
            "Os",
            "Size",
            "GraphDriver",
            "RootFS",
            "Metadata",
        ],
    ),
    ("Config", CONFIG_KEYS),
    ("GraphDriver", &["Data", "Name"]),
    ("RootFS", &["Type", "Layers"]),
]);

/// types.ContainerJSON.
const CONTAINER_ORDER: KeyOrder = KeyOrder(&[
    (
        "",
        &[
            "Id",
            "Created",
            "Path",
            "Args",
            "State",
            "Image",
            "ResolvConfPath",
            "HostnamePath",
            "HostsPath",
            "LogPath",
            "Node",
            "Name",
            "RestartCount",
            "Driver",
            "Platform",
            "MountLabel",
            "ProcessLabel",
            "AppArmorProfile",
            "ExecIDs",
            "HostConfig",
            "GraphDriver",
            "SizeRw",
            "SizeRootFs",
            "Mounts",
            "Config",
            "NetworkSettings",
        ],
    ),
    (
        "State",
        &[
            "Status",
            "Running",
            "Paused",
            "Restarting",
            "OOMKilled",
            "Dead",
            "Pid",
            "ExitCode",
            "Error",
            "StartedAt",
            "FinishedAt",
            "Health",
        ],
    ),
    (
        "HostConfig",
        &[
            "Binds",
            "ContainerIDFile",
            "LogConfig",
            "NetworkMode",
            "PortBindings",
            "RestartPolicy",
            "AutoRemove",
            "VolumeDriver",
            "VolumesFrom",
            "ConsoleSize",
            "Annotations",
            "CapAdd",
            "CapDrop",
            "CgroupnsMode",
            "Dns",
            "DnsOptions",
            "DnsSearch",
            "ExtraHosts",
            "GroupAdd",
            "IpcMode",
            "Cgroup",
            "Links",
            "OomScoreAdj",
            "PidMode",
            "Privileged",
            "PublishAllPorts",
            "ReadonlyRootfs",
            "SecurityOpt",
            "StorageOpt",
            "Tmpfs",
            "UTSMode",
            "UsernsMode",
            "ShmSize",
            "Sysctls",
            "Runtime",
            "Isolation",
            "CpuShares",
            "Memory",
            "NanoCpus",
            "CgroupParent",
            "BlkioWeight",
            "BlkioWeightDevice",
            "BlkioDeviceReadBps",
            "BlkioDeviceWriteBps",
            "BlkioDeviceReadIOps",
            "BlkioDeviceWriteIOps",
            "CpuPeriod",
            "CpuQuota",
            "CpuRealtimePeriod",
            "CpuRealtimeRuntime",
            "CpusetCpus",
            "CpusetMems",
            "Devices",
            "DeviceCgroupRules",
            "DeviceRequests",
            "MemoryReservation",
            "MemorySwap",
            "MemorySwappiness",
            "OomKillDisable",
            "PidsLimit",
            "Ulimits",
            "CpuCount",
            "CpuPercent",
            "IOMaximumIOps",
            "IOMaximumBandwidth",
            "Mounts",
            "MaskedPaths",
            "ReadonlyPaths",
            "Init",
        ],
    ),
    ("HostConfig.LogConfig", &["Type", "Config"]),
    ("HostConfig.RestartPolicy", &["Name", "MaximumRetryCount"]),
    ("GraphDriver", &["Data", "Name"]),
    (
        "Mounts",
        &["Type", "Name", "Source", "Destination", "Driver", "Mode", "RW", "Propagation"],
    ),
    ("Config", CONFIG_KEYS),
    (
        "NetworkSettings",
        &[
            "Bridge",
            "SandboxID",
            "SandboxKey",
            "Ports",
            "HairpinMode",
            "LinkLocalIPv6Address",
            "LinkLocalIPv6PrefixLen",
            "SecondaryIPAddresses",
            "SecondaryIPv6Addresses",
            "EndpointID",
            "Gateway",
            "GlobalIPv6Address",
            "GlobalIPv6PrefixLen",
            "IPAddress",
            "IPPrefixLen",
            "IPv6Gateway",
            "MacAddress",
            "Networks",
        ],
    ),
]);
