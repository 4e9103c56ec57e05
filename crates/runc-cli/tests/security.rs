//! Issue 10's "security first": device rules keep their access, a rootfs cannot redirect /proc,
//! /sys or a masked path through a symlink, and nothing refused hangs.

mod common;

use std::fs;
use std::os::unix::fs::symlink;

use common::*;
use serde_json::json;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// 240 is a "local/experimental" char major no driver registers here: an open that the device
/// cgroup lets through fails with ENXIO, one it refuses with EPERM.
const FREE_MAJOR: i64 = 240;

fn free_major_is_free() -> bool {
    let devs = fs::read_to_string("/proc/devices").unwrap();
    !devs
        .lines()
        .any(|l| l.trim().split(' ').next() == Some(&FREE_MAJOR.to_string()))
}

#[test]
fn a_read_only_device_rule_does_not_allow_writes() {
    if !free_major_is_free() {
        eprintln!("char major {FREE_MAJOR} is in use on this host: skipping");
        return;
    }
    let mut c = Ctr::new("dev-ro");
    c.spec["linux"]["devices"] = json!([{ "path": "/dev/ro", "type": "c", "major": FREE_MAJOR, "minor": 42, "fileMode": 438 }]);
    c.spec["linux"]["resources"]["devices"] = json!([{ "allow": false, "access": "rwm" },
        { "allow": true, "type": "c", "major": FREE_MAJOR, "minor": 42, "access": "r" }]);
    let out = c.sh_ok("stat -c '%F %t %T' /dev/ro; (exec 3</dev/ro) 2>&1; (exec 3>/dev/ro) 2>&1; (exec 3<>/dev/ro) 2>&1; \
                       mknod /tmp/again c 240 42 2>&1; true");
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "character special file f0 2a", "{out}");
    assert!(
        l[1].contains("No such device or address"),
        "read must pass the device cgroup: {out}"
    );
    assert!(
        l[2].contains("Operation not permitted"),
        "write must be refused: {out}"
    );
    assert!(
        l[3].contains("Operation not permitted"),
        "read-write must be refused: {out}"
    );
    assert!(
        l[4].contains("Operation not permitted"),
        "mknod must be refused once created: {out}"
    );

    // A spec device redefining a default node (same path) drops the default's rwm rule, as runc.
    let mut c = Ctr::new("dev-ro-null");
    c.spec["linux"]["devices"] =
        json!([{ "path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 438 }]);
    c.spec["linux"]["resources"]["devices"] = json!([{ "allow": false, "access": "rwm" },
        { "allow": true, "type": "c", "major": 1, "minor": 3, "access": "r" }]);
    let out = c.sh_ok("cat /dev/null && echo read-ok; (echo x > /dev/null) 2>&1; true");
    assert!(
        out.contains("read-ok") && out.contains("Operation not permitted"),
        "{out}"
    );
}

fn refused_at_create(c: &Ctr, want: &str) {
    let out = c.runc(&["create", "--bundle", c.bundle.to_str().unwrap(), &c.id]);
    assert!(!out.status.success(), "create must fail");
    assert!(stderr(&out).contains(want), "{}", stderr(&out));
    let st = c.runc(&["state", &c.id]);
    assert!(
        !st.status.success(),
        "nothing may be left of a refused container"
    );
    c.assert_no_traces();
}

#[test]
fn proc_or_sys_as_a_symlink_in_the_rootfs_is_refused() {
    for (dir, fs_name) in [("proc", "proc"), ("sys", "sysfs")] {
        let c = Ctr::new(&format!("link-{dir}"));
        let target = c.scratch.join("elsewhere");
        fs::create_dir_all(&target).unwrap();
        let p = c.rootfs.join(dir);
        let _ = fs::remove_dir(&p);
        symlink(&target, &p).unwrap();
        c.write_spec();
        refused_at_create(
            &c,
            &format!("filesystem \"{fs_name}\" must be mounted on ordinary directory"),
        );
        assert_eq!(
            fs::read_dir(&target).unwrap().count(),
            0,
            "nothing may be mounted through the link"
        );
        // A relative link that stays inside the rootfs is refused all the same.
        fs::remove_file(&p).unwrap();
        symlink("tmp", &p).unwrap();
        refused_at_create(&c, "must be mounted on ordinary directory");
    }
}

#[test]
fn a_masked_path_that_is_a_symlink_is_refused() {
    let mut c = Ctr::new("mask-link");
    fs::create_dir_all(c.rootfs.join("etc")).unwrap();
    fs::write(c.rootfs.join("etc/secret"), "s").unwrap();
    symlink("/etc/secret", c.rootfs.join("masked")).unwrap();
    c.spec["linux"]["maskedPaths"] = json!(["/masked"]);
    c.write_spec();
    refused_at_create(&c, "masked path /masked is a symlink");
    // A masked regular file still gets masked.
    c.spec["linux"]["maskedPaths"] = json!(["/etc/secret"]);
    let out = c.sh_ok("cat /etc/secret; echo end");
    assert_eq!(out, "end\n");
}
