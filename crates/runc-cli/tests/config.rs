//! Each config.json feature, checked from inside the container with busybox.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use serde_json::json;

fn add_namespace(c: &mut Ctr, ty: &str) {
    let ns = c.spec["linux"]["namespaces"].as_array_mut().unwrap();
    if !ns.iter().any(|n| n["type"] == ty) {
        ns.push(json!({ "type": ty }));
    }
}

fn mount_line<'a>(mounts: &'a str, target: &str) -> Vec<&'a str> {
    mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == Some(target))
        .unwrap_or_else(|| panic!("{target} not mounted:\n{mounts}"))
        .split(' ')
        .collect()
}

fn opts<'a>(line: &[&'a str]) -> Vec<&'a str> {
    line[3].split(',').collect()
}

#[test]
fn hostname_and_domainname() {
    let mut c = Ctr::new("uts");
    c.spec["hostname"] = json!("box-one");
    c.spec["domainname"] = json!("example.test");
    let out = c.sh_ok("hostname; cat /proc/sys/kernel/domainname");
    assert_eq!(out, "box-one\nexample.test\n");
}

#[test]
fn docker_default_capabilities() {
    let mut c = Ctr::new("caps");
    let status = c.sh_ok("cat /proc/self/status");
    assert_eq!(status_field(&status, "CapEff"), "00000000a80425fb");
    assert_eq!(status_field(&status, "CapPrm"), "00000000a80425fb");
    assert_eq!(status_field(&status, "CapBnd"), "00000000a80425fb");
    assert_eq!(status_field(&status, "CapInh"), "0000000000000000");
    assert_eq!(status_field(&status, "CapAmb"), "0000000000000000");
}

#[test]
fn ambient_and_inheritable_capabilities_for_a_non_root_user() {
    let mut c = Ctr::new("caps-amb");
    let kill = json!(["CAP_KILL"]);
    c.spec["process"]["capabilities"] = json!({ "bounding": ["CAP_KILL", "CAP_CHOWN"], "effective": kill,
        "permitted": kill, "inheritable": kill, "ambient": kill });
    c.spec["process"]["user"] = json!({ "uid": 1000, "gid": 1000 });
    let status = c.sh_ok("cat /proc/self/status");
    // CAP_KILL is bit 5, CAP_CHOWN bit 0; ambient survives execve for a non-root user.
    assert_eq!(status_field(&status, "CapBnd"), "0000000000000021");
    assert_eq!(status_field(&status, "CapAmb"), "0000000000000020");
    assert_eq!(status_field(&status, "CapInh"), "0000000000000020");
    assert_eq!(status_field(&status, "CapEff"), "0000000000000020");
}

#[test]
fn default_mounts_have_docker_types_and_options() {
    let mut c = Ctr::new("mounts");
    add_namespace(&mut c, "cgroup");
    // Docker's mount list (moby's oci/defaults.go), so the runtime's handling is what is tested.
    let m = |dest: &str, ty: &str, opts: &[&str]| json!({ "destination": dest, "type": ty, "source": ty, "options": opts });
    c.spec["mounts"] = json!([
        m("/proc", "proc", &["nosuid", "noexec", "nodev"]),
        m(
            "/dev",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"]
        ),
        m(
            "/dev/pts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5"
            ]
        ),
        m("/sys", "sysfs", &["nosuid", "noexec", "nodev", "ro"]),
        m(
            "/sys/fs/cgroup",
            "cgroup",
            &["ro", "nosuid", "noexec", "nodev"]
        ),
        m("/dev/mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
        m(
            "/dev/shm",
            "tmpfs",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]
        ),
    ]);
    let m = c.sh_ok("cat /proc/self/mounts");
    let proc_ = mount_line(&m, "/proc");
    assert_eq!(proc_[2], "proc");
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(opts(&proc_).contains(&o), "/proc lacks {o}: {proc_:?}");
    }
    let sys = mount_line(&m, "/sys");
    assert_eq!((sys[2], opts(&sys)[0]), ("sysfs", "ro"), "{sys:?}");
    let dev = mount_line(&m, "/dev");
    assert_eq!(dev[2], "tmpfs");
    assert!(opts(&dev).contains(&"nosuid"), "{dev:?}");
    let pts = mount_line(&m, "/dev/pts");
    assert_eq!(pts[2], "devpts");
    assert!(
        opts(&pts).contains(&"gid=5") && opts(&pts).contains(&"ptmxmode=666"),
        "{pts:?}"
    );
    assert_eq!(mount_line(&m, "/dev/mqueue")[2], "mqueue");
    let shm = mount_line(&m, "/dev/shm");
    assert_eq!(shm[2], "tmpfs");
    assert!(
        opts(&shm).contains(&"size=65536k") && opts(&shm).contains(&"noexec"),
        "{shm:?}"
    );
    let cg: Vec<&str> = m
        .lines()
        .filter(|l| {
            l.split(' ')
                .nth(1)
                .is_some_and(|t| t.starts_with("/sys/fs/cgroup/"))
        })
        .collect();
    assert!(
        cg.iter()
            .any(|l| l.contains(" cgroup ") && l.contains("memory")),
        "no memory cgroup mount:\n{m}"
    );
    for l in &cg {
        assert!(
            l.split(' ').nth(3).unwrap().starts_with("ro"),
            "cgroup mount not read-only: {l}"
        );
    }
    let root = mount_line(&m, "/");
    assert_eq!(opts(&root)[0], "rw");
}

#[test]
fn bind_rbind_readonly_and_propagation() {
    let mut c = Ctr::new("binds");
    let src = c.scratch.join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("file"), "from-host").unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &src.join("sub"),
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    fs::write(src.join("sub/inner"), "submount").unwrap();
    let s = src.to_str().unwrap();
    for (dest, options) in [
        ("/bind", json!(["bind"])),
        ("/rbind", json!(["rbind"])),
        ("/robind", json!(["rbind", "ro"])),
        ("/private", json!(["rbind", "rprivate"])),
    ] {
        c.spec["mounts"].as_array_mut().unwrap().push(json!({
            "destination": dest, "type": "bind", "source": s, "options": options }));
    }
    let out = c.sh_ok(
        "cat /bind/file; echo; cat /bind/sub/inner 2>/dev/null || echo no-submount; cat /rbind/sub/inner; echo; \
         touch /robind/x 2>/dev/null && echo wrote || echo ro-refused; touch /rbind/y && echo rw-ok; \
         cat /proc/self/mountinfo",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        &lines[..5],
        &[
            "from-host",
            "no-submount",
            "submount",
            "ro-refused",
            "rw-ok"
        ],
        "{out}"
    );
    let info = |target: &str| {
        lines
            .iter()
            .find(|l| l.split(' ').nth(4) == Some(target))
            .unwrap_or_else(|| panic!("{target}: {out}"))
            .to_string()
    };
    assert!(
        info("/robind").split(' ').nth(5).unwrap().starts_with("ro"),
        "{}",
        info("/robind")
    );
    assert!(
        !info("/private").contains("master:") && !info("/private").contains("shared:"),
        "{}",
        info("/private")
    );
    assert!(
        fs::metadata(src.join("y")).is_ok(),
        "rbind write did not reach the host"
    );
}

#[test]
fn masked_and_readonly_paths() {
    let mut c = Ctr::new("masked");
    c.spec["linux"]["maskedPaths"] = json!([
        "/proc/timer_list",
        "/proc/keys",
        "/proc/acpi",
        "/sys/firmware",
        "/proc/does-not-exist"
    ]);
    c.spec["linux"]["readonlyPaths"] = json!(["/proc/sys", "/proc/sysrq-trigger", "/proc/bus"]);
    let out = c.sh_ok(
        "wc -c < /proc/timer_list; wc -c < /proc/keys; ls -A /proc/acpi | wc -l; ls -A /sys/firmware | wc -l; \
         touch /sys/firmware/x 2>/dev/null && echo firmware-writable || echo firmware-ro; \
         (echo 1 > /proc/sys/kernel/printk_ratelimit) 2>/dev/null && echo sys-writable || echo sys-ro; \
         (echo h > /proc/sysrq-trigger) 2>/dev/null && echo sysrq-writable || echo sysrq-ro; \
         grep -E ' /proc/(acpi|sys) ' /proc/self/mounts",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        &lines[..7],
        &["0", "0", "0", "0", "firmware-ro", "sys-ro", "sysrq-ro"],
        "{out}"
    );
    let acpi = mount_line(&out, "/proc/acpi");
    assert_eq!((acpi[2], opts(&acpi)[0]), ("tmpfs", "ro"), "{out}");
    assert_eq!(opts(&mount_line(&out, "/proc/sys"))[0], "ro", "{out}");
}

#[test]
fn readonly_rootfs() {
    let mut c = Ctr::new("ro-root");
    c.spec["root"]["readonly"] = json!(true);
    let out = c.sh_ok("touch /x 2>&1 || true; echo tmp > /dev/shm/ok && cat /dev/shm/ok; grep ' / ' /proc/self/mounts");
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(out.contains("tmp\n"));
    assert_eq!(opts(&mount_line(&out, "/"))[0], "ro", "{out}");
    assert!(!c.rootfs.join("x").exists());
}

#[test]
fn user_groups_and_umask() {
    let mut c = Ctr::new("user");
    c.spec["process"]["user"] =
        json!({ "uid": 1000, "gid": 1000, "additionalGids": [100, 5], "umask": 63 });
    c.spec["process"]["cwd"] = json!("/tmp");
    let out = c.sh_ok("id -u; id -g; id -G; umask; pwd; grep CapEff /proc/self/status");
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(&l[..2], &["1000", "1000"], "{out}");
    let mut groups: Vec<&str> = l[2].split_whitespace().collect();
    groups.sort();
    assert_eq!(groups, ["100", "1000", "5"], "{out}");
    assert_eq!(l[3], "0077");
    assert_eq!(l[4], "/tmp");
    assert!(
        l[5].ends_with("0000000000000000"),
        "non-root kept effective caps: {out}"
    );
}

#[test]
fn rlimits() {
    let mut c = Ctr::new("rlimit");
    c.spec["process"]["rlimits"] = json!([{ "type": "RLIMIT_NOFILE", "soft": 123, "hard": 456 },
                                         { "type": "RLIMIT_NPROC", "soft": 777, "hard": 777 }]);
    assert_eq!(
        c.sh_ok("ulimit -n; ulimit -Hn; ulimit -u"),
        "123\n456\n777\n"
    );
}

#[test]
fn no_new_privileges() {
    let mut c = Ctr::new("nnp");
    c.spec["process"]["noNewPrivileges"] = json!(false);
    assert_eq!(
        status_field(&c.sh_ok("cat /proc/self/status"), "NoNewPrivs"),
        "0"
    );
    c.spec["process"]["noNewPrivileges"] = json!(true);
    assert_eq!(
        status_field(&c.sh_ok("cat /proc/self/status"), "NoNewPrivs"),
        "1"
    );
}

#[test]
fn seccomp_denies_mkdir_with_eperm() {
    let mut c = Ctr::new("seccomp");
    c.spec["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{ "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1 }]
    });
    let out = c
        .sh_ok("mkdir /tmp/d 2>&1; grep Seccomp: /proc/self/status; touch /tmp/f && echo touch-ok");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().eq(["Seccomp:", "2"])),
        "{out}"
    );
    assert!(out.contains("touch-ok"));
    assert!(!c.rootfs.join("tmp/d").exists());
}

#[test]
fn seccomp_without_no_new_privs_as_podman_sets_it() {
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: the runtime must load it
    // before it drops capabilities (podman's containers look like this).
    let mut c = Ctr::new("seccomp-nnp");
    c.spec["process"]["noNewPrivileges"] = json!(false);
    c.spec["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{ "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1 }]
    });
    let out =
        c.sh_ok("mkdir /tmp/d 2>&1; grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/self/status");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert_eq!(status_field(&out, "Seccomp"), "2");
    assert_eq!(status_field(&out, "NoNewPrivs"), "0");
    assert_eq!(status_field(&out, "CapEff"), "00000000a80425fb");
}

#[test]
fn oom_score_adj() {
    let mut c = Ctr::new("oomadj");
    c.spec["process"]["oomScoreAdj"] = json!(500);
    assert_eq!(c.sh_ok("cat /proc/self/oom_score_adj"), "500\n");
}

#[test]
fn sysctls_in_new_net_and_ipc_namespaces() {
    let mut c = Ctr::new("sysctl");
    add_namespace(&mut c, "network");
    add_namespace(&mut c, "ipc");
    let host_fwd = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let host_shm = fs::read_to_string("/proc/sys/kernel/shmmni").unwrap();
    c.spec["linux"]["sysctl"] = json!({ "net.ipv4.ip_forward": "1", "kernel.shmmni": "1234" });
    c.spec["linux"]["readonlyPaths"] = json!([]);
    assert_eq!(
        c.sh_ok("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni"),
        "1\n1234\n"
    );
    assert_eq!(
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_fwd,
        "host sysctl changed"
    );
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/shmmni").unwrap(),
        host_shm,
        "host sysctl changed"
    );
}

#[test]
fn devices_nodes_and_symlinks() {
    let mut c = Ctr::new("devices");
    c.spec["linux"]["devices"] = json!([{ "path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 438, "uid": 0, "gid": 0 }]);
    let out = c.sh_ok(
        "stat -c '%F %t %T %a' /dev/mynull; echo x > /dev/mynull && echo mynull-ok; echo x > /dev/null && echo null-ok; \
         head -c 4 /dev/zero | wc -c; for f in /dev/fd /dev/stdin /dev/stdout /dev/stderr /dev/ptmx; do readlink $f; done; \
         stat -c '%F %t %T' /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty",
    );
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "character special file 1 3 666", "{out}");
    assert_eq!(&l[1..4], &["mynull-ok", "null-ok", "4"], "{out}");
    assert_eq!(
        &l[4..9],
        &[
            "/proc/self/fd",
            "/proc/self/fd/0",
            "/proc/self/fd/1",
            "/proc/self/fd/2",
            "pts/ptmx"
        ],
        "{out}"
    );
    assert_eq!(
        &l[9..15],
        &[
            "character special file 1 3",
            "character special file 1 5",
            "character special file 1 7",
            "character special file 1 8",
            "character special file 1 9",
            "character special file 5 0"
        ],
        "{out}"
    );
    // The device cgroup denies what is not allowed: a node for /dev/kmsg (1:11) cannot be opened.
    let mut c2 = Ctr::new("devices-deny");
    c2.spec["linux"]["resources"]["devices"] = json!([{ "allow": false, "access": "rwm" },
        { "allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm" }]);
    let out = c2.sh_ok("mknod /tmp/kmsg c 1 11 2>&1; cat /tmp/kmsg 2>&1 | head -c 200; echo; echo x > /dev/null && echo null-ok");
    assert!(
        out.contains("Operation not permitted") && out.contains("null-ok"),
        "{out}"
    );
}

#[test]
fn user_namespace_with_id_mappings() {
    let max: u64 = fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    if max == 0 {
        eprintln!("user namespaces are disabled on this kernel: skipping");
        return;
    }
    let mut c = Ctr::new("userns");
    add_namespace(&mut c, "user");
    c.spec["linux"]["uidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    c.spec["linux"]["gidMappings"] = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    // sysfs cannot be mounted from a user namespace without a net namespace of its own.
    add_namespace(&mut c, "network");
    let out = c.sh_ok("cat /proc/self/uid_map /proc/self/gid_map; id -u; ls -n /bin/busybox");
    let l: Vec<&str> = out.lines().collect();
    assert!(
        l[0].split_whitespace().eq(["0", "100000", "65536"]),
        "{out}"
    );
    assert!(
        l[1].split_whitespace().eq(["0", "100000", "65536"]),
        "{out}"
    );
    assert_eq!(l[2], "0");
    // Files owned by host root are unmapped: they show as the overflow uid.
    assert_eq!(l[3].split_whitespace().nth(2), Some("65534"), "{out}");
}

#[test]
fn memory_limit_oom_kills_with_137() {
    let mut c = Ctr::new("oom");
    c.spec["linux"]["resources"]["memory"] = json!({ "limit": 16 << 20 });
    // Command substitution makes the shell itself hold 64 MiB.
    let out = c.run_sh("x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived");
    assert_eq!(
        out.status.code(),
        Some(137),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(!stdout(&out).contains("survived"));
    c.assert_no_traces();
}

#[test]
fn pids_limit_stops_a_fork_loop() {
    let mut c = Ctr::new("pids");
    c.spec["linux"]["resources"]["pids"] = json!({ "limit": 8 });
    c.start_sh("exec sleep 1000");
    // A failed fork ends the shell ("can't fork"), so the loop cannot complete.
    let out = c.exec_sh("i=0; while [ $i -lt 30 ]; do sleep 1000 </dev/null >/dev/null 2>&1 & i=$((i+1)); done; echo all-forked");
    assert!(
        !stdout(&out).contains("all-forked"),
        "30 forks under pids.max=8"
    );
    assert!(stderr(&out).contains("fork"), "{}", stderr(&out));
    let dir = c.cgroup_dir("pids");
    let current: u64 = fs::read_to_string(dir.join("pids.current"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(current <= 8, "pids.current {current} above the limit");
    let events = fs::read_to_string(dir.join("pids.events")).unwrap();
    let hits: u64 = events.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(hits > 0, "the limit was never hit: {events}");
}

#[test]
fn cpu_quota_throttles() {
    let mut c = Ctr::new("cpu");
    c.spec["linux"]["resources"]["cpu"] =
        json!({ "quota": 10000, "period": 100000, "shares": 256 });
    c.start_sh("while true; do :; done");
    let dir = c.cgroup_dir("cpu");
    assert_eq!(
        fs::read_to_string(dir.join("cpu.cfs_quota_us"))
            .unwrap()
            .trim(),
        "10000"
    );
    assert_eq!(
        fs::read_to_string(dir.join("cpu.cfs_period_us"))
            .unwrap()
            .trim(),
        "100000"
    );
    assert_eq!(
        fs::read_to_string(dir.join("cpu.shares")).unwrap().trim(),
        "256"
    );
    wait_for("throttling", || {
        let stat = fs::read_to_string(dir.join("cpu.stat")).unwrap();
        stat.lines().any(|l| {
            l.strip_prefix("nr_throttled ")
                .is_some_and(|n| n.trim() != "0")
        })
    });
}

#[test]
fn pivot_root_and_no_pivot_both_hide_the_old_root() {
    for no_pivot in [false, true] {
        let mut c = Ctr::new("pivot");
        c.set_args(&[
            "sh",
            "-c",
            "ls -a /; cd /../..; pwd; ls / | wc -l; cat /proc/self/mountinfo",
        ]);
        c.write_spec();
        let id = c.id.clone();
        let bundle = c.bundle.to_str().unwrap().to_string();
        let mut args = vec!["run", "--bundle", &bundle];
        if no_pivot {
            args.push("--no-pivot");
        }
        args.push(&id);
        let out = c.runc(&args);
        assert!(
            out.status.success(),
            "no_pivot={no_pivot}: {}",
            stderr(&out)
        );
        let text = stdout(&out);
        let listing: Vec<String> = text
            .lines()
            .take_while(|l| *l != "/")
            .map(String::from)
            .collect();
        let mut expected: Vec<String> = fs::read_dir(&c.rootfs)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        expected.extend([".".to_string(), "..".to_string()]);
        expected.sort();
        let mut got = listing.clone();
        got.sort();
        assert_eq!(got, expected, "no_pivot={no_pivot}: / is not the rootfs");
        // Mount points (mountinfo's 5th field) are all the container's own.
        let scratch = c.scratch.path().to_str().unwrap();
        for point in text
            .lines()
            .skip(listing.len() + 2)
            .filter_map(|l| l.split(' ').nth(4))
        {
            assert!(
                !point.starts_with(scratch) && !point.starts_with("/work"),
                "no_pivot={no_pivot}: host mount {point} visible"
            );
        }
    }
}

#[test]
fn mount_destinations_through_symlinks_stay_inside_the_rootfs() {
    let mut c = Ctr::new("escape");
    let tag = c.id.clone();
    std::os::unix::fs::symlink("/", c.rootfs.join("abs-escape")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../..", c.rootfs.join("rel-escape")).unwrap();
    let (abs_dest, rel_dest) = (
        format!("/abs-escape/{tag}-a"),
        format!("/rel-escape/{tag}-r"),
    );
    for d in [&abs_dest, &rel_dest] {
        c.spec["mounts"].as_array_mut().unwrap().push(json!({
            "destination": d, "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "size=1m"] }));
    }
    let host_a = Path::new("/").join(format!("{tag}-a"));
    let host_r = Path::new("/").join(format!("{tag}-r"));
    let _cleanup = berth_testkit::Defer(|| {
        for p in [&host_a, &host_r] {
            let _ = nix::mount::umount2(p.as_path(), nix::mount::MntFlags::MNT_DETACH);
            let _ = fs::remove_dir(p);
        }
    });
    let out = c.run_sh(&format!("grep -E '{tag}-(a|r)' /proc/self/mounts"));
    // Refusing the config is fine; what matters is that nothing outside the rootfs changed.
    assert!(
        !host_a.exists(),
        "a mount through an absolute symlink created {}",
        host_a.display()
    );
    assert!(
        !host_r.exists(),
        "a mount through a relative symlink created {}",
        host_r.display()
    );
    assert!(
        berth_testkit::mounts_below(&host_a).is_empty()
            && berth_testkit::mounts_below(&host_r).is_empty()
    );
    if out.status.success() {
        // Then both landed inside: /<tag>-a and /<tag>-r in the container are the tmpfs mounts.
        let text = stdout(&out);
        assert!(
            text.contains(&format!(" /{tag}-a tmpfs"))
                && text.contains(&format!(" /{tag}-r tmpfs")),
            "{text}"
        );
    }
}

#[test]
fn no_fd_points_outside_and_cwd_is_inside() {
    let mut c = Ctr::new("fds");
    c.spec["process"]["cwd"] = json!("/tmp");
    let out = c.sh_ok("ls /proc/$$/fd; readlink /proc/$$/cwd; cd ..; cd ..; pwd");
    let l: Vec<&str> = out.lines().collect();
    let fds: Vec<&str> = l[..l.len() - 2].to_vec();
    assert_eq!(
        fds,
        ["0", "1", "2"],
        "the container process holds extra fds: {out}"
    );
    assert_eq!(&l[l.len() - 2..], &["/tmp", "/"]);
    let mut c2 = Ctr::new("fds-exec");
    c2.start_sh("exec sleep 1000");
    let out = c2.exec_sh("ls /proc/$$/fd; readlink /proc/$$/cwd");
    assert_eq!(
        stdout(&out),
        "0\n1\n2\n/\n",
        "exec'd process: {}",
        stderr(&out)
    );
}

#[test]
fn environment_and_args_reach_the_process() {
    let mut c = Ctr::new("env");
    c.spec["process"]["env"] = json!(["PATH=/usr/bin:/bin", "GREETING=hi there"]);
    assert_eq!(
        c.sh_ok("echo \"$GREETING\" $#; env | grep -c ^GREETING="),
        "hi there 0\n1\n"
    );
}

#[test]
fn bind_propagation_rslave_sees_later_host_mounts_rprivate_does_not() {
    use nix::mount::{mount, MsFlags};
    let mut c = Ctr::new("propagation");
    let src = c.scratch.join("shared-src");
    fs::create_dir_all(&src).unwrap();
    mount(
        Some("tmpfs"),
        &src,
        Some("tmpfs"),
        MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    mount(
        None::<&str>,
        &src,
        None::<&str>,
        MsFlags::MS_SHARED,
        None::<&str>,
    )
    .unwrap();
    fs::create_dir(src.join("late")).unwrap();
    for (dest, prop) in [("/slave", "rslave"), ("/private", "rprivate")] {
        c.spec["mounts"].as_array_mut().unwrap().push(json!({
            "destination": dest, "type": "bind", "source": src.to_str().unwrap(), "options": ["rbind", prop] }));
    }
    c.start_sh("exec sleep 1000");
    let info = stdout(&c.exec_sh("cat /proc/self/mountinfo"));
    let line = |target: &str| {
        info.lines()
            .find(|l| l.split(' ').nth(4) == Some(target))
            .unwrap_or_else(|| panic!("{info}"))
    };
    assert!(line("/slave").contains(" master:"), "{}", line("/slave"));
    assert!(
        !line("/private").contains(" master:") && !line("/private").contains(" shared:"),
        "{}",
        line("/private")
    );
    // A mount made on the host after start reaches the slave only.
    mount(
        Some("tmpfs"),
        &src.join("late"),
        Some("tmpfs"),
        MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    fs::write(src.join("late/marker"), "late").unwrap();
    let out = c.exec_sh(
        "cat /slave/late/marker; echo; cat /private/late/marker 2>/dev/null || echo not-in-private",
    );
    assert_eq!(stdout(&out), "late\nnot-in-private\n");
}
