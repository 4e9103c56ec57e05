//! The OCI spec of a container, from its record, with docker's defaults.

use crate::error::{Error, Result};
use crate::model::Container;
use crate::user;
use serde_json::{json, Value};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// docker's default capability set.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// "ALL": every capability in our own bounding set (a container cannot get more than we have).
fn all_caps() -> Vec<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let bnd = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(u64::MAX);
    ALL_CAPS
        .iter()
        .enumerate()
        .filter(|(i, _)| bnd & (1u64 << i) != 0)
        .map(|(_, s)| s.to_string())
        .collect()
}

pub(crate) fn norm_cap(c: &str) -> String {
    let up = c.to_ascii_uppercase();
    if up.starts_with("CAP_") || up == "ALL" {
        up
    } else {
        format!("CAP_{up}")
    }
}

/// docker's rules: ALL in cap-add gives everything, ALL in cap-drop drops the defaults, then
/// explicit adds apply.
pub fn capabilities(privileged: bool, add: &[String], drop: &[String]) -> Result<Vec<String>> {
    if privileged {
        return Ok(all_caps());
    }
    let add: Vec<String> = add.iter().map(|c| norm_cap(c)).collect();
    let drop: Vec<String> = drop.iter().map(|c| norm_cap(c)).collect();
    let known = all_caps();
    for c in add.iter().chain(drop.iter()) {
        if c != "ALL" && !ALL_CAPS.contains(&c.as_str()) {
            return Err(Error::invalid(format!("unknown capability: {c:?}")));
        }
    }
    let mut caps: Vec<String> = if add.iter().any(|c| c == "ALL") {
        known
    } else if drop.iter().any(|c| c == "ALL") {
        vec![]
    } else {
        DEFAULT_CAPS
            .iter()
            .map(|s| s.to_string())
            .filter(|c| !drop.contains(c))
            .collect()
    };
    for c in &add {
        if c != "ALL" && !caps.contains(c) {
            caps.push(c.clone());
        }
    }
    if !add.iter().any(|c| c == "ALL") {
        caps.retain(|c| !drop.contains(c) || add.contains(c));
    }
    Ok(caps)
}

fn rlimit_name(n: &str) -> Result<String> {
    let known = [
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
        "as",
    ];
    if !known.contains(&n) {
        return Err(Error::invalid(format!("invalid ulimit type: {n}")));
    }
    Ok(format!("RLIMIT_{}", n.to_ascii_uppercase()))
}

fn device_rule(allow: bool, typ: &str, major: i64, minor: i64, access: &str) -> Value {
    let mut v = json!({"allow": allow, "type": typ, "access": access});
    if major >= 0 {
        v["major"] = json!(major);
    }
    if minor >= 0 {
        v["minor"] = json!(minor);
    }
    v
}

/// A host device node as an OCI device and its cgroup rule.
fn host_device(host: &str, ctr: &str, perms: &str) -> Result<(Value, Value)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let md = std::fs::metadata(host).map_err(|e| {
        Error::io(
            format!("error gathering device information while adding custom device {host:?}"),
            e,
        )
    })?;
    let ft = md.file_type();
    let typ = if ft.is_char_device() {
        "c"
    } else if ft.is_block_device() {
        "b"
    } else {
        return Err(Error::invalid(format!("{host} is not a device node")));
    };
    let rdev = md.rdev();
    let (major, minor) = (libc::major(rdev) as i64, libc::minor(rdev) as i64);
    let dev = json!({
        "path": ctr, "type": typ, "major": major, "minor": minor,
        "fileMode": md.mode() & 0o7777, "uid": md.uid(), "gid": md.gid()
    });
    Ok((dev, device_rule(true, typ, major, minor, perms)))
}

/// Every device node in the host's /dev and its subdirectories (one level), for --privileged.
fn all_host_devices() -> Vec<(Value, Value)> {
    use std::os::unix::fs::FileTypeExt;
    let mut out = Vec::new();
    let mut dirs = vec![(PathBuf::from("/dev"), 0)];
    while let Some((dir, depth)) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            let p = e.path();
            let name = e.file_name();
            if ft.is_dir() && depth == 0 && !matches!(name.to_str(), Some("pts" | "shm" | "mqueue"))
            {
                dirs.push((p, 1));
            } else if ft.is_char_device() || ft.is_block_device() {
                let s = p.to_string_lossy().into_owned();
                // The container gets its own console and ptmx.
                if s == "/dev/console" || s == "/dev/ptmx" {
                    continue;
                }
                if let Ok(d) = host_device(&s, &s, "rwm") {
                    out.push(d);
                }
            }
        }
    }
    out
}

/// Builds config.json for container `c` whose rootfs is mounted at `rootfs`; `dir` is the
/// container dir (init layer files are bind-mounted from it), `volumes` the named-volume root.
pub fn generate(
    c: &Container,
    dir: &Path,
    rootfs: &Path,
    volumes: &Path,
    init_exe: Option<&Path>,
) -> Result<Value> {
    let h = &c.host_config;
    let cfg = &c.config;
    let mut args = vec![c.path.clone()];
    args.extend(c.args.iter().cloned());
    let init_dest = init_exe.map(|_| crate::init::DESTINATION);
    if h.init == Some(true) {
        let Some(dest) = init_dest else {
            return Err(Error::invalid("--init: no init binary available"));
        };
        let mut a = vec![dest.to_string(), "--".to_string()];
        a.extend(args);
        args = a;
    }
    let u = user::resolve(rootfs, &cfg.user)?;
    let mut env = cfg.env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!(
            "HOME={}",
            u.home
                .clone()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "/".into())
        ));
    }
    let caps = capabilities(
        h.privileged,
        h.cap_add.as_deref().unwrap_or(&[]),
        h.cap_drop.as_deref().unwrap_or(&[]),
    )?;
    let (eff, perm): (Vec<String>, Vec<String>) = if u.uid == 0 {
        (caps.clone(), caps.clone())
    } else {
        (vec![], vec![])
    };
    let sec = h.security_opt.clone().unwrap_or_default();
    let no_new_privs = sec.iter().any(|s| {
        s == "no-new-privileges" || s == "no-new-privileges:true" || s == "no-new-privileges=true"
    });
    let mut rlimits = Vec::new();
    for ul in h.ulimits.iter().flatten() {
        rlimits.push(
            json!({"type": rlimit_name(&ul.name)?, "soft": ul.soft as u64, "hard": ul.hard as u64}),
        );
    }
    let cwd = if cfg.working_dir.is_empty() {
        "/".to_string()
    } else {
        cfg.working_dir.clone()
    };
    let mut process = json!({
        "terminal": cfg.tty,
        "user": {"uid": u.uid, "gid": u.gid, "additionalGids": u.additional_gids, "umask": 0o022},
        "args": args,
        "env": env,
        "cwd": cwd,
        "capabilities": {"bounding": caps, "effective": eff, "permitted": perm},
        "noNewPrivileges": no_new_privs,
        "oomScoreAdj": 0,
    });
    if !rlimits.is_empty() {
        process["rlimits"] = json!(rlimits);
    }

    let shm = if h.shm_size > 0 { h.shm_size } else { 64 << 20 };
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", if h.privileged { "rw" } else { "ro" }]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", if h.privileged { "rw" } else { "ro" }]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={shm}")]}),
    ];
    for f in ["etc/resolv.conf", "etc/hostname", "etc/hosts"] {
        mounts.push(json!({"destination": format!("/{f}"), "type": "bind", "source": dir.join("init").join(f), "options": ["rbind", "rprivate"]}));
    }
    if let (Some(init), Some(dest)) = (init_exe, init_dest) {
        mounts.push(json!({"destination": dest, "type": "bind", "source": init, "options": ["bind", "ro", "nosuid", "nodev"]}));
    }
    let mut user_mounts: Vec<Value> = Vec::new();
    for m in h.mounts.iter().flatten() {
        let mut opts: Vec<String> = Vec::new();
        match m.typ.as_str() {
            "bind" | "volume" => {
                let src = if m.typ == "volume" {
                    let d = volumes.join(&m.source).join("_data");
                    std::fs::create_dir_all(&d)
                        .map_err(|e| Error::io(format!("create volume {}", d.display()), e))?;
                    d.to_string_lossy().into_owned()
                } else {
                    m.source.clone()
                };
                if m.typ == "bind" && std::fs::symlink_metadata(&src).is_err() {
                    // docker creates a missing -v host path; only --mount refuses it.
                    if !crate::flags::is_volume_flag_bind(h, m) {
                        return Err(Error::invalid(format!("invalid mount config for type \"bind\": bind source path does not exist: {src}")));
                    }
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o755)
                        .create(&src)
                        .map_err(|e| Error::io(format!("create bind source {src}"), e))?;
                    std::fs::set_permissions(
                        &src,
                        std::os::unix::fs::PermissionsExt::from_mode(0o755),
                    )
                    .map_err(|e| Error::io(format!("chmod {src}"), e))?;
                }
                opts.push("rbind".into());
                opts.push(if m.read_only {
                    "ro".into()
                } else {
                    "rw".into()
                });
                let prop = m
                    .bind_options
                    .as_ref()
                    .map(|b| b.propagation.as_str())
                    .filter(|p| !p.is_empty())
                    .unwrap_or("rprivate");
                opts.push(prop.to_string());
                user_mounts.push(json!({"destination": m.target, "type": "bind", "source": src, "options": opts}));
            }
            "tmpfs" => {
                opts.extend([
                    "nosuid".to_string(),
                    "nodev".to_string(),
                    "noexec".to_string(),
                ]);
                if let Some(t) = &m.tmpfs_options {
                    if t.size_bytes > 0 {
                        opts.push(format!("size={}", t.size_bytes));
                    }
                    if t.mode != 0 {
                        opts.push(format!("mode={:o}", t.mode));
                    }
                }
                if m.read_only {
                    opts.push("ro".into());
                }
                user_mounts.push(json!({"destination": m.target, "type": "tmpfs", "source": "tmpfs", "options": opts}));
            }
            t => return Err(Error::invalid(format!("unsupported mount type {t:?}"))),
        }
    }
    for (dest, o) in h.tmpfs.iter().flatten() {
        let mut opts: Vec<String> = vec!["nosuid".into(), "nodev".into(), "noexec".into()];
        opts.extend(o.split(',').filter(|x| !x.is_empty()).map(str::to_string));
        user_mounts.push(
            json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": opts}),
        );
    }
    // Parents before children.
    user_mounts.sort_by_key(|m| m["destination"].as_str().unwrap_or("").matches('/').count());
    // A user mount replaces a default one at the same place (e.g. -v x:/dev/shm).
    mounts.retain(|d| {
        !user_mounts
            .iter()
            .any(|u| u["destination"] == d["destination"])
    });
    mounts.extend(user_mounts);

    let mut devices: Vec<Value> = Vec::new();
    let mut rules = vec![device_rule(false, "a", -1, -1, "rwm")];
    if h.privileged {
        rules = vec![device_rule(true, "a", -1, -1, "rwm")];
        for (d, _) in all_host_devices() {
            devices.push(d);
        }
    } else {
        for (t, ma, mi) in [
            ("c", 1, 3),
            ("c", 1, 5),
            ("c", 1, 7),
            ("c", 1, 8),
            ("c", 1, 9),
            ("c", 5, 0),
            ("c", 5, 1),
            ("c", 5, 2),
            ("c", 136, -1),
        ] {
            rules.push(device_rule(true, t, ma, mi, "rwm"));
        }
        rules.push(device_rule(true, "c", -1, -1, "m"));
        rules.push(device_rule(true, "b", -1, -1, "m"));
        rules.push(device_rule(false, "c", 10, 229, "rwm"));
        for d in &h.devices {
            let ctr = if d.path_in_container.is_empty() {
                &d.path_on_host
            } else {
                &d.path_in_container
            };
            let perms = if d.cgroup_permissions.is_empty() {
                "rwm"
            } else {
                &d.cgroup_permissions
            };
            let (dev, rule) = host_device(&d.path_on_host, ctr, perms)?;
            devices.push(dev);
            rules.push(rule);
        }
    }

    let mut resources = crate::resources::linux_resources(h)?;
    resources.insert("devices".into(), json!(rules));
    let resources = Value::Object(resources);

    // The network namespace is the monitor's own (for --network none it made one with lo up);
    // naming it lets exec join it like the others.
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
        json!({"type": "network", "path": "/proc/self/ns/net"}),
    ];
    if h.cgroupns_mode == "private" {
        namespaces.push(json!({"type": "cgroup"}));
    }

    let mut linux = json!({
        "namespaces": namespaces,
        "resources": resources,
        "cgroupsPath": crate::resources::cgroups_path(h, &c.id),
        "devices": devices,
    });
    if !h.privileged {
        let mut masked: Vec<String> = MASKED_PATHS.iter().map(|s| s.to_string()).collect();
        if let Ok(rd) = std::fs::read_dir("/sys/devices/system/cpu") {
            for e in rd.flatten() {
                let t = e.path().join("thermal_throttle");
                if t.exists() {
                    masked.push(t.to_string_lossy().into_owned());
                }
            }
        }
        linux["maskedPaths"] = json!(masked);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
        let unconfined = sec
            .iter()
            .any(|s| s == "seccomp=unconfined" || s == "seccomp:unconfined");
        if let Some(file) = sec
            .iter()
            .find_map(|s| {
                s.strip_prefix("seccomp=")
                    .or_else(|| s.strip_prefix("seccomp:"))
            })
            .filter(|f| *f != "unconfined")
        {
            let text = std::fs::read_to_string(file)
                .map_err(|e| Error::io(format!("opening seccomp profile ({file}) failed"), e))?;
            let prof = berth_seccomp::parse_profile(&text)
                .map_err(|e| Error::invalid(format!("seccomp profile {file}: {e}")))?;
            linux["seccomp"] = serde_json::to_value(prof).expect("seccomp serializes");
        } else if !unconfined {
            let prof = berth_seccomp::docker_default(&caps);
            linux["seccomp"] = serde_json::to_value(prof).expect("seccomp serializes");
        }
    }
    Ok(json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": rootfs, "readonly": h.readonly_rootfs},
        "hostname": cfg.hostname,
        "mounts": mounts,
        "linux": linux,
        "annotations": c.config.labels,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_rules() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(capabilities(false, &[], &[]).unwrap().len(), 14);
        let c = capabilities(false, &s(&["sys_admin"]), &s(&["NET_RAW"])).unwrap();
        assert!(
            c.contains(&"CAP_SYS_ADMIN".to_string()) && !c.contains(&"CAP_NET_RAW".to_string())
        );
        assert_eq!(
            capabilities(false, &s(&["CHOWN"]), &s(&["ALL"])).unwrap(),
            s(&["CAP_CHOWN"])
        );
        assert!(capabilities(false, &s(&["BOGUS"]), &[]).is_err());
    }
}
