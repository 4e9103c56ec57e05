//! Running the berth binary against a per-test root.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");

pub fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURES).join("images").join(name)
}

pub fn berth_cmd(root: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
    c.arg("--root")
        .arg(root)
        .env_remove("BERTH_ROOT")
        .stdin(Stdio::null());
    c
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

pub fn berth(root: &Path, args: &[&str]) -> Run {
    berth_cmd(root)
        .args(args)
        .output()
        .expect("run berth")
        .into()
}

/// Runs berth and fails the test unless it exits 0.
pub fn ok(root: &Path, args: &[&str]) -> String {
    let r = berth(root, args);
    assert_eq!(r.code, 0, "berth {args:?} failed: {}{}", r.stdout, r.stderr);
    r.stdout
}

/// `berth load -q -i` of a fixture image archive into `root`.
pub fn load_fixture(root: &Path, archive: &str) {
    ok(
        root,
        &["load", "-q", "-i", fixture(archive).to_str().unwrap()],
    );
}

pub fn listing(dir: &Path) -> String {
    let out = Command::new("python3")
        .arg(Path::new(FIXTURES).join("listing.py"))
        .arg("--mtime")
        .arg(dir)
        .output()
        .expect("listing.py");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

pub fn expected_listing(name: &str) -> String {
    std::fs::read_to_string(fixture(&format!("{name}.listing"))).unwrap()
}

/// Mounts the image's layers read-only (overlay) under `at` and returns the mount point.
pub fn mount_image(root: &Path, image: &str, at: &Path) -> PathBuf {
    let store = berth_image::ImageStore::open(root, &Default::default()).unwrap();
    let img = store.resolve(image).unwrap();
    berth_testkit::mount_layers_ro(&img.layer_dirs(), at, &format!("merged-{}", &img.id[..12]))
}

/// Every image's layers exist and nothing is left in tmp/.
pub fn assert_consistent(root: &Path) {
    let store = berth_image::ImageStore::open(root, &Default::default()).unwrap();
    for img in store.list().unwrap() {
        for d in img.layer_dirs() {
            assert!(d.is_dir(), "image {} lacks layer {}", img.id, d.display());
        }
        for l in &img.layers {
            // A committed layer keeps no tar blob: its tar is rebuilt from the unpacked layer.
            assert!(
                store.blob_path(&l.blob_digest).unwrap().is_file()
                    || (l.blob_digest == l.diff_id && store.layer_tar(&l.diff_id).is_ok()),
                "missing blob {}",
                l.blob_digest
            );
        }
    }
    let left: Vec<_> = std::fs::read_dir(root.join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "leftovers in tmp: {left:?}");
}

/// The keys of a JSON object, in order.
pub fn keys(v: &Value) -> Vec<String> {
    v.as_object().expect("object").keys().cloned().collect()
}

/// Display columns (chars) where each column of `line` starts (columns are separated by 2+ spaces).
pub fn column_starts(line: &str) -> Vec<usize> {
    let b: Vec<char> = line.chars().collect();
    (0..b.len())
        .filter(|&i| b[i] != ' ' && (i == 0 || (i >= 2 && b[i - 1] == ' ' && b[i - 2] == ' ')))
        .collect()
}

/// The cells of a table line (columns are separated by 2+ spaces).
pub fn columns(line: &str) -> Vec<&str> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// The full ids of every container in `root`.
pub fn ids(root: &Path) -> Vec<String> {
    berth(root, &["ps", "-aq", "--no-trunc"])
        .stdout
        .lines()
        .map(str::to_string)
        .collect()
}

/// The engine's read-only bind of berth-monitor, mounted once per root and left there.
pub const SEALED_MONITOR: &str = "bin/berth-monitor";

/// The pids of the monitors of `root`'s containers (`berth-monitor __monitor ROOT ...`).
pub fn monitors(root: &Path) -> Vec<i32> {
    let root = root.to_string_lossy().into_owned();
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.get(1).map(String::as_str) == Some("__monitor") && args.get(2) == Some(&root) {
            v.push(pid);
        }
    }
    v
}

/// What a test's drop runs, even after a failure: every container of `root` removed, monitors a
/// failed test left killed, and the containers' cgroups removed.
pub fn remove_all_containers(root: &Path) {
    let ids = ids(root);
    for id in &ids {
        let _ = berth(root, &["rm", "-f", id]);
    }
    for pid in monitors(root) {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    for id in &ids {
        berth_testkit::remove_cgroup_everywhere(&format!("berth/{id}"));
    }
    berth_testkit::end_network_reapers(root);
}
