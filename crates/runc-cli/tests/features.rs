//! Spec fields runc 1.2 and crun implement, checked from inside the container: personality,
//! ioPriority, scheduler, memoryPolicy, execCPUAffinity, rootfs propagation, recursive mount
//! attributes, and `features` listing them.

mod common;

use std::fs;
use std::os::unix::fs::symlink;

use common::*;
use serde_json::{json, Value};

#[test]
fn features_lists_the_implemented_fields() {
    let f: Value = serde_json::from_slice(&cmd(&["features"]).stdout).unwrap();
    let opts: Vec<&str> = f["mountOptions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for o in ["rnosymfollow", "nosymfollow", "rro", "unbindable", "shared"] {
        assert!(opts.contains(&o), "{o} missing: {opts:?}");
    }
    assert_eq!(
        f["linux"]["memoryPolicy"]["modes"]
            .as_array()
            .unwrap()
            .len(),
        7,
        "{f}"
    );
    assert!(
        f["linux"]["seccomp"]["actions"]
            .as_array()
            .unwrap()
            .contains(&json!("SCMP_ACT_NOTIFY")),
        "{f}"
    );
    assert_eq!(f["linux"]["netDevices"]["enabled"], true, "{f}");
    assert_eq!(
        f["linux"]["mountExtensions"]["idmap"]["enabled"], true,
        "{f}"
    );
    assert_eq!(
        f["linux"]["intelRdt"]["enabled"],
        fs::metadata("/sys/fs/resctrl/schemata").is_ok(),
        "{f}"
    );
}

#[test]
fn personality_linux32() {
    let mut c = Ctr::new("personality");
    c.spec["linux"]["personality"] = json!({ "domain": "LINUX32" });
    assert_eq!(c.sh_ok("uname -m"), "i686\n");
}

/// Fields 19 (nice) and 41 (policy) of /proc/self/stat.
fn nice_and_policy(stat: &str) -> (i64, i64) {
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    // after ") " the first field is 3 (state).
    (f[19 - 3].parse().unwrap(), f[41 - 3].parse().unwrap())
}

#[test]
fn io_priority_and_scheduler() {
    let mut c = Ctr::new("sched");
    c.spec["process"]["ioPriority"] = json!({ "class": "IOPRIO_CLASS_IDLE", "priority": 0 });
    c.spec["process"]["scheduler"] = json!({ "policy": "SCHED_BATCH", "nice": 7 });
    let out = c.sh_ok("ionice -p $$; cat /proc/self/stat");
    let mut l = out.lines();
    assert!(l.next().unwrap().starts_with("idle"), "{out}");
    assert_eq!(
        nice_and_policy(l.next().unwrap()),
        (7, libc::SCHED_BATCH as i64),
        "{out}"
    );

    let mut c = Ctr::new("sched-bad");
    c.spec["process"]["ioPriority"] = json!({ "class": "IOPRIO_CLASS_BE", "priority": 9 });
    let out = c.run_sh("true");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("ioPriority.priority 9"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn memory_policy_bind_to_node_0() {
    if fs::metadata("/sys/devices/system/node/node0").is_err() {
        eprintln!("no NUMA node 0 on this host: skipping");
        return;
    }
    let mut c = Ctr::new("mempolicy");
    c.spec["linux"]["memoryPolicy"] = json!({ "mode": "MPOL_BIND", "nodes": "0" });
    let out = c.sh_ok("grep -c 'bind:0' /proc/self/numa_maps");
    assert!(out.trim().parse::<u32>().unwrap() > 0, "{out}");
    c.spec["linux"]["memoryPolicy"] = json!({ "mode": "MPOL_BIND", "nodes": "0-" });
    let out = c.run_sh("true");
    assert!(
        !out.status.success() && stderr(&out).contains("memoryPolicy"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn exec_cpu_affinity_final_applies_to_exec() {
    let cpus = std::thread::available_parallelism().unwrap().get();
    let mut c = Ctr::new("affinity");
    c.start_sh("exec sleep 1000");
    let last = cpus - 1;
    let process = json!({ "args": ["sh", "-c", "grep Cpus_allowed_list /proc/self/status"], "cwd": "/",
        "env": ["PATH=/bin"], "user": { "uid": 0, "gid": 0 },
        "execCPUAffinity": { "initial": "0", "final": format!("{last}") } });
    let pj = c.scratch.join("process.json");
    fs::write(&pj, process.to_string()).unwrap();
    let out = c.ok(&["exec", "--process", pj.to_str().unwrap(), &c.id]);
    assert_eq!(
        out.split_whitespace().last().unwrap(),
        last.to_string(),
        "{out}"
    );
}

fn root_line(mountinfo: &str) -> String {
    mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap()
        .to_string()
}

#[test]
fn rootfs_propagation_shared_and_unbindable() {
    for (prop, want) in [("shared", "shared:"), ("unbindable", "unbindable")] {
        let mut c = Ctr::new(&format!("prop-{prop}"));
        c.spec["linux"]["rootfsPropagation"] = json!(prop);
        let out = c.sh_ok("cat /proc/self/mountinfo");
        let line = root_line(&out);
        assert!(line.contains(want), "{prop}: {line}");
    }
}

#[test]
fn rnosymfollow_is_applied_with_mount_setattr() {
    let mut c = Ctr::new("nosymfollow");
    let src = c.scratch.join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("sub/f"), "data\n").unwrap();
    symlink("f", src.join("sub/l")).unwrap();
    c.spec["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "destination": "/mnt", "type": "bind",
        "source": src, "options": ["rbind", "rnosymfollow"] }));
    let out = c.sh_ok("cat /mnt/sub/f; cat /mnt/sub/l 2>&1; readlink /mnt/sub/l; grep ' /mnt ' /proc/self/mountinfo");
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "data", "{out}");
    assert!(
        l[1].contains("Too many levels of symbolic links") || l[1].contains("Symbolic link loop"),
        "{out}"
    );
    assert_eq!(l[2], "f", "{out}");
    assert!(l[3].contains("nosymfollow"), "{out}");
}

/// A seccomp agent: takes the notify fd from the runtime, answers every notification with
/// EROFS until told to stop. Returns the state the runtime sent with the fd.
fn seccomp_agent(
    sock: std::path::PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<(Value, u32)> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let conn = loop {
            match listener.accept() {
                Ok((c, _)) => break c,
                Err(_) if !stop.load(std::sync::atomic::Ordering::Relaxed) => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                Err(e) => panic!("no connection from the runtime: {e}"),
            }
        };
        conn.set_nonblocking(false).unwrap();
        let mut buf = vec![0u8; 8192];
        let mut cbuf = [0u8; 64];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
        hdr.msg_iov = &mut iov;
        hdr.msg_iovlen = 1;
        hdr.msg_control = cbuf.as_mut_ptr().cast();
        hdr.msg_controllen = cbuf.len();
        let n = unsafe { libc::recvmsg(conn.as_raw_fd(), &mut hdr, 0) };
        assert!(n > 0, "recvmsg: {}", std::io::Error::last_os_error());
        let state: Value = serde_json::from_slice(&buf[..n as usize]).unwrap();
        let fd = unsafe {
            let c = libc::CMSG_FIRSTHDR(&hdr);
            assert!(
                !c.is_null() && (*c).cmsg_type == libc::SCM_RIGHTS,
                "no fd with the state"
            );
            OwnedFd::from_raw_fd(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<i32>()))
        };
        const NOTIF_RECV: libc::c_ulong = 0xC050_2100;
        const NOTIF_SEND: libc::c_ulong = 0xC018_2101;
        let mut answered = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let mut p = libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            if unsafe { libc::poll(&mut p, 1, 50) } <= 0 || p.revents & libc::POLLIN == 0 {
                continue;
            }
            let mut notif = [0u64; 10]; // struct seccomp_notif, 80 bytes
            if unsafe { libc::ioctl(fd.as_raw_fd(), NOTIF_RECV, notif.as_mut_ptr()) } < 0 {
                continue;
            }
            // struct seccomp_notif_resp { u64 id; s64 val; s32 error; u32 flags; }
            let mut resp = [0u8; 24];
            resp[..8].copy_from_slice(&notif[0].to_ne_bytes());
            resp[16..20].copy_from_slice(&(-libc::EROFS).to_ne_bytes());
            if unsafe { libc::ioctl(fd.as_raw_fd(), NOTIF_SEND, resp.as_mut_ptr()) } == 0 {
                answered += 1;
            }
        }
        (state, answered)
    })
}

#[test]
fn seccomp_notify_hands_the_fd_to_the_listener() {
    let mut c = Ctr::new("seccomp-notify");
    let sock = c.scratch.join("agent.sock");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let agent = seccomp_agent(sock.clone(), stop.clone());
    c.spec["linux"]["seccomp"] = json!({ "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": sock,
        "listenerMetadata": "meta-1", "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{ "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY" }] });
    let out = c.run_sh("mkdir /made 2>&1; test -d /made && echo made; echo done");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (state, answered) = agent.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("Read-only file system") && !text.contains("made\n") && text.contains("done"),
        "{text}"
    );
    assert!(answered >= 1, "the agent answered nothing");
    assert_eq!(state["fds"], json!(["seccompFd"]), "{state}");
    assert_eq!(state["metadata"], "meta-1", "{state}");
    assert_eq!(state["state"]["id"], c.id.as_str(), "{state}");
    assert!(state["pid"].as_i64().unwrap() > 0, "{state}");

    // Without a listener, SCMP_ACT_NOTIFY fails at once, naming it.
    c.spec["linux"]["seccomp"] = json!({ "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{ "names": ["mkdir"], "action": "SCMP_ACT_NOTIFY" }] });
    let out = c.run_sh("true");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath"),
        "{}",
        stderr(&out)
    );
}

/// Deletes a host interface when dropped (a failed test must not leave it behind).
struct Link(String);

impl Drop for Link {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.0])
            .output();
    }
}

fn link_exists(name: &str) -> bool {
    fs::metadata(format!("/sys/class/net/{name}")).is_ok()
}

#[test]
fn net_devices_move_a_host_interface_into_the_container() {
    let n = std::process::id() % 100_000;
    let (a, b) = (format!("bta{n}"), format!("btb{n}"));
    let add = std::process::Command::new("ip")
        .args(["link", "add", &a, "type", "veth", "peer", "name", &b])
        .output()
        .unwrap();
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let _guard = (Link(a.clone()), Link(b.clone()));
    let mut c = Ctr::new("netdev");
    c.spec["linux"]["netDevices"] = json!({ a.clone(): { "name": "ctr0" } });
    c.start_sh("exec sleep 1000");
    assert!(!link_exists(&a), "{a} must have left the host");
    let out = c.exec_sh("ip -o link show ctr0");
    assert!(
        out.status.success() && stdout(&out).contains("ctr0"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    c.ok(&["delete", "--force", &c.id]);

    // A missing host interface fails at once, naming it.
    let mut c = Ctr::new("netdev-missing");
    c.spec["linux"]["netDevices"] = json!({ "nosuchif0": {} });
    let out = c.run_sh("true");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no interface \"nosuchif0\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn idmapped_bind_mount_shows_the_mapped_owner() {
    let mut c = Ctr::new("idmap");
    let src = c.scratch.join("owned");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("f"), "x").unwrap();
    std::os::unix::fs::chown(&src.join("f"), Some(0), Some(0)).unwrap();
    std::os::unix::fs::chown(&src.join("sub"), Some(5), Some(6)).unwrap();
    let map = |host: u32| json!([{ "containerID": 0, "hostID": host, "size": 10 }]);
    c.spec["mounts"].as_array_mut().unwrap().push(
        json!({ "destination": "/mnt", "type": "bind", "source": src,
        "options": ["rbind", "idmap"], "uidMappings": map(1000), "gidMappings": map(2000) }),
    );
    let out = c.sh_ok("stat -c '%u %g' /mnt/f /mnt/sub; grep ' /mnt ' /proc/self/mountinfo");
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(&l[..2], &["1000 2000", "1005 2006"], "{out}");
    assert!(l[2].contains("idmapped"), "{out}");
    // On the host nothing changed.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(src.join("f")).unwrap().uid(), 0);

    // A mapping on something other than a bind mount is refused at once.
    c.spec["mounts"].as_array_mut().unwrap().pop();
    c.spec["mounts"].as_array_mut().unwrap().push(
        json!({ "destination": "/mnt", "type": "tmpfs", "source": "tmpfs",
        "options": ["idmap"], "uidMappings": map(1000), "gidMappings": map(1000) }),
    );
    let out = c.run_sh("true");
    assert!(
        !out.status.success() && stderr(&out).contains("idmapped mounts need a bind mount"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn intel_rdt_only_where_resctrl_is_mounted() {
    let mut c = Ctr::new("rdt");
    c.spec["linux"]["intelRdt"] = json!({ "l3CacheSchema": "L3:0=f" });
    c.set_args(&["sleep", "1000"]);
    c.write_spec();
    let out = c.runc(&["create", "--bundle", c.bundle.to_str().unwrap(), &c.id]);
    if fs::metadata("/sys/fs/resctrl/schemata").is_err() {
        assert!(
            !out.status.success(),
            "intelRdt without resctrl must fail, not be ignored"
        );
        assert!(
            stderr(&out).contains("linux.intelRdt: resctrl is not mounted"),
            "{}",
            stderr(&out)
        );
        c.assert_no_traces();
        return;
    }
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = c.state()["pid"].as_i64().unwrap().to_string();
    let group = std::path::Path::new("/sys/fs/resctrl").join(&c.id);
    assert!(fs::read_to_string(group.join("tasks"))
        .unwrap()
        .lines()
        .any(|l| l == pid));
    c.ok(&["delete", "--force", &c.id]);
    assert!(
        !group.exists(),
        "the group the runtime made is removed at delete"
    );
}
