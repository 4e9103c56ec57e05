//! Bad input: a one-line error, a non-zero exit, and nothing left behind (no state entry, no cgroup).

mod common;

use std::fs;

use common::*;
use serde_json::json;

/// `create` must fail with one line on stderr and leave no trace.
fn assert_create_fails(c: &Ctr, bundle: &str, expect_in_msg: &str) {
    let out = c.runc(&["create", "--bundle", bundle, &c.id]);
    assert!(!out.status.success(), "create succeeded");
    let err = stderr(&out);
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    assert!(
        err.to_lowercase().contains(expect_in_msg),
        "{expect_in_msg:?} not in {err:?}"
    );
    c.assert_no_traces();
    assert!(!c.runc(&["state", &c.id]).status.success());
}

#[test]
fn missing_bundle() {
    let c = Ctr::new("bad-bundle");
    let missing = c.scratch.join("no-such-bundle");
    assert_create_fails(&c, missing.to_str().unwrap(), "no-such-bundle");
}

#[test]
fn invalid_json() {
    let c = Ctr::new("bad-json");
    fs::write(
        c.bundle.join("config.json"),
        "{\"ociVersion\": \"1.0.2\", \"process\": ",
    )
    .unwrap();
    assert_create_fails(&c, c.bundle.to_str().unwrap(), "config.json");
}

#[test]
fn unknown_namespace_type() {
    let mut c = Ctr::new("bad-ns");
    c.spec["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "type": "bogus" }));
    c.write_spec();
    assert_create_fails(&c, c.bundle.to_str().unwrap(), "bogus");
}

#[test]
fn rootfs_that_does_not_exist() {
    let mut c = Ctr::new("bad-rootfs");
    c.spec["root"]["path"] = json!("no-such-rootfs");
    c.write_spec();
    assert_create_fails(&c, c.bundle.to_str().unwrap(), "no-such-rootfs");
}

#[test]
fn process_that_does_not_exist() {
    let mut c = Ctr::new("bad-exe");
    c.set_args(&["/no/such/binary"]);
    c.write_spec();
    let out = c.runc(&["run", "--bundle", c.bundle.to_str().unwrap(), &c.id]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("/no/such/binary"), "{}", stderr(&out));
    c.assert_no_traces();
}

#[test]
fn container_id_that_exists() {
    let mut c = Ctr::new("dup");
    let pid = c.start_sh("exec sleep 1000");
    let out = c.runc(&["create", "--bundle", c.bundle.to_str().unwrap(), &c.id]);
    assert!(!out.status.success(), "a second container took the same id");
    let err = stderr(&out);
    assert_eq!(err.trim_end().lines().count(), 1, "{err:?}");
    assert!(err.contains("exist"), "{err}");
    // The first container is untouched.
    let st = c.state();
    assert_eq!(
        (st["status"].as_str(), st["pid"].as_i64()),
        (Some("running"), Some(pid as i64))
    );
    assert!(c.cgroup_dir("pids").join("cgroup.procs").exists());
}

#[test]
fn container_id_with_a_path_separator() {
    let c = Ctr::new("bad-id");
    c.write_spec();
    let out = c.runc(&[
        "create",
        "--bundle",
        c.bundle.to_str().unwrap(),
        "../escape",
    ]);
    assert!(!out.status.success());
    assert!(!c.root.join("..").join("escape").exists() && !c.scratch.join("escape").exists());
}

#[test]
fn unknown_container() {
    let c = Ctr::new("unknown");
    for args in [
        vec!["start", "nope"],
        vec!["state", "nope"],
        vec!["kill", "nope"],
        vec!["exec", "nope", "true"],
        vec!["pause", "nope"],
        vec!["ps", "nope"],
        vec!["events", "--stats", "nope"],
    ] {
        let out = c.runc(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = stderr(&out);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err:?}");
        assert!(err.contains("nope"), "{args:?}: {err}");
    }
}
