//! Running the berth binary against a per-test root.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");

pub fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURES).join("images").join(name)
}

pub fn berth_cmd(root: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
    c.arg("--root").arg(root).env_remove("BERTH_ROOT").stdin(Stdio::null());
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
    berth_cmd(root).args(args).output().expect("run berth").into()
}

/// Runs berth and fails the test unless it exits 0.
pub fn ok(root: &Path, args: &[&str]) -> String {
    let r = berth(root, args);
    assert_eq!(r.code, 0, "berth {args:?} failed: {}{}", r.stdout, r.stderr);
    r.stdout
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
    let merged = at.join(format!("merged-{}", &img.id[..12]));
    let empty = at.join("empty-lower");
    std::fs::create_dir_all(&merged).unwrap();
    std::fs::create_dir_all(&empty).unwrap();
    let mut lowers: Vec<String> = img.layer_dirs().iter().rev().map(|d| d.display().to_string()).collect();
    lowers.push(empty.display().to_string());
    let opts = format!("lowerdir={}", lowers.join(":"));
    nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        nix::mount::MsFlags::MS_RDONLY,
        Some(opts.as_str()),
    )
    .expect("mount");
    merged
}

/// Every image's layers exist and nothing is left in tmp/.
pub fn assert_consistent(root: &Path) {
    let store = berth_image::ImageStore::open(root, &Default::default()).unwrap();
    for img in store.list().unwrap() {
        for d in img.layer_dirs() {
            assert!(d.is_dir(), "image {} lacks layer {}", img.id, d.display());
        }
        for l in &img.layers {
            assert!(store.blob_path(&l.blob_digest).unwrap().is_file(), "missing blob {}", l.blob_digest);
        }
    }
    let left: Vec<_> = std::fs::read_dir(root.join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "leftovers in tmp: {left:?}");
}
