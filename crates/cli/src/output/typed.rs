//! docker's typed structures for `--format` templates. docker runs `inspect` templates over Go
//! structs, so every field exists even when the JSON omits it, a nil slice prints `[]` and a
//! nil map `map[]`. Before a template runs, berth's inspect objects are completed from
//! skeletons of those structs: missing fields get their zero value, JSON nulls of slices and
//! maps become `[]` / `{}` (a skeleton `null` is a Go pointer: added when missing, kept nil).

use serde_json::{json, Value};

fn config() -> Value {
    json!({
        "Hostname": "", "Domainname": "", "User": "", "AttachStdin": false, "AttachStdout": false,
        "AttachStderr": false, "ExposedPorts": {}, "Tty": false, "OpenStdin": false, "StdinOnce": false,
        "Env": [], "Cmd": [], "Healthcheck": null, "ArgsEscaped": false, "Image": "", "Volumes": {},
        "WorkingDir": "", "Entrypoint": [], "NetworkDisabled": false, "MacAddress": "", "OnBuild": [],
        "Labels": {}, "StopSignal": "", "StopTimeout": null, "Shell": [],
    })
}

/// types.MountPoint.
fn mount_point() -> Value {
    json!({"Type": "", "Name": "", "Source": "", "Destination": "", "Driver": "", "Mode": "", "RW": false, "Propagation": ""})
}

/// container.HostConfig.
fn host_config() -> Value {
    serde_json::from_str(
        r#"{
            "Binds": [], "ContainerIDFile": "", "LogConfig": {"Type": "", "Config": {}}, "NetworkMode": "",
            "PortBindings": {}, "RestartPolicy": {"Name": "", "MaximumRetryCount": 0}, "AutoRemove": false,
            "VolumeDriver": "", "VolumesFrom": [], "ConsoleSize": [0, 0], "Annotations": {}, "CapAdd": [],
            "CapDrop": [], "CgroupnsMode": "", "Dns": [], "DnsOptions": [], "DnsSearch": [], "ExtraHosts": [],
            "GroupAdd": [], "IpcMode": "", "Cgroup": "", "Links": [], "OomScoreAdj": 0, "PidMode": "",
            "Privileged": false, "PublishAllPorts": false, "ReadonlyRootfs": false, "SecurityOpt": [],
            "StorageOpt": {}, "Tmpfs": {}, "UTSMode": "", "UsernsMode": "", "ShmSize": 0, "Sysctls": {},
            "Runtime": "", "Isolation": "", "CpuShares": 0, "Memory": 0, "NanoCpus": 0, "CgroupParent": "",
            "BlkioWeight": 0, "BlkioWeightDevice": [], "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [],
            "BlkioDeviceReadIOps": [], "BlkioDeviceWriteIOps": [], "CpuPeriod": 0, "CpuQuota": 0,
            "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "", "Devices": [],
            "DeviceCgroupRules": [], "DeviceRequests": [], "MemoryReservation": 0, "MemorySwap": 0,
            "MemorySwappiness": null, "OomKillDisable": null, "PidsLimit": null, "Ulimits": [], "CpuCount": 0,
            "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0, "Mounts": [], "MaskedPaths": [],
            "ReadonlyPaths": [], "Init": null
}"#,
    )
    .expect("HostConfig skeleton")
}

/// types.ContainerJSON.
fn container() -> Value {
    let mut v: Value = serde_json::from_str(
        r#"{
        "Id": "", "Created": "", "Path": "", "Args": [],
        "State": {"Status": "", "Running": false, "Paused": false, "Restarting": false, "OOMKilled": false,
                  "Dead": false, "Pid": 0, "ExitCode": 0, "Error": "", "StartedAt": "", "FinishedAt": "", "Health": null},
        "Image": "", "ResolvConfPath": "", "HostnamePath": "", "HostsPath": "", "LogPath": "", "Node": null,
        "Name": "", "RestartCount": 0, "Driver": "", "Platform": "", "MountLabel": "", "ProcessLabel": "",
        "AppArmorProfile": "", "ExecIDs": [],
        "GraphDriver": {"Data": {}, "Name": ""}, "SizeRw": null, "SizeRootFs": null,
        "NetworkSettings": {
            "Bridge": "", "SandboxID": "", "SandboxKey": "", "Ports": {}, "HairpinMode": false,
            "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "SecondaryIPAddresses": [],
            "SecondaryIPv6Addresses": [], "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
            "Networks": {}
        }
    }"#,
    )
    .expect("ContainerJSON skeleton");
    v["HostConfig"] = host_config();
    v["Mounts"] = json!([mount_point()]);
    v["Config"] = config();
    v
}

/// image.InspectResponse.
fn image() -> Value {
    json!({
        "Id": "", "RepoTags": [], "RepoDigests": [], "Parent": "", "Comment": "", "Created": "",
        "DockerVersion": "", "Author": "", "Config": config(), "Architecture": "", "Variant": "", "Os": "",
        "OsVersion": "", "Size": 0, "GraphDriver": {"Data": {}, "Name": ""},
        "RootFS": {"Type": "", "Layers": []}, "Metadata": {"LastTagTime": ""},
    })
}

/// volume.Volume.
fn volume() -> Value {
    json!({"CreatedAt": "", "Driver": "", "Labels": {}, "Mountpoint": "", "Name": "", "Options": {}, "Scope": "", "Status": {}, "UsageData": null})
}

/// Completes `v` from `skel` (see the module docs). A one-element skeleton array is the shape
/// of every element of the data's array.
fn fill(v: &mut Value, skel: &Value) {
    match (v, skel) {
        (Value::Object(m), Value::Object(s)) => {
            for (k, sv) in s {
                match m.get_mut(k) {
                    None => {
                        m.insert(k.clone(), zero(sv));
                    }
                    Some(x) if x.is_null() => *x = zero(sv),
                    Some(x) => fill(x, sv),
                }
            }
        }
        (Value::Array(a), Value::Array(s)) if s.len() == 1 => {
            a.iter_mut().for_each(|x| fill(x, &s[0]))
        }
        _ => {}
    }
}

/// The zero value a skeleton stands for: an empty list for a list of structs.
fn zero(skel: &Value) -> Value {
    match skel {
        Value::Array(a) if a.len() == 1 && a[0].is_object() => json!([]),
        other => other.clone(),
    }
}

/// `v` (a container, image or volume inspect object) as docker's template sees it.
pub fn for_template(v: &Value) -> Value {
    let mut out = v.clone();
    let has = |k: &str| v.get(k).is_some();
    let skel = if has("State") && has("HostConfig") {
        container()
    } else if has("RootFS") && has("RepoTags") {
        image()
    } else if has("Mountpoint") && has("Scope") {
        volume()
    } else {
        return out;
    };
    fill(&mut out, &skel);
    out
}
