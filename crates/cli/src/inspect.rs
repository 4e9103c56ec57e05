//! `berth image inspect` / `berth inspect`: Docker's JSON shape.

use clap::Args;
use serde_json::Value;

use crate::output::{indented_json, print_inspect, InOrder, KeyOrder};
use crate::{CmdResult, Ctx, Failure};

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

pub use berth_image::inspect_json;

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
        &[
            "Type",
            "Name",
            "Source",
            "Destination",
            "Driver",
            "Mode",
            "RW",
            "Propagation",
        ],
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
