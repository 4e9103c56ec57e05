//! Shared helpers for the image store's tests.
#![allow(dead_code)]

use berth_image::{Driver, Image, ImageStore, StoreOptions};
use berth_testkit::Scratch;
use std::fs;
use std::path::{Path, PathBuf};

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");

pub fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURES).join("images").join(name)
}

pub fn open(root: &Path, driver: Driver) -> ImageStore {
    ImageStore::open(
        root,
        &StoreOptions {
            driver: Some(driver),
        },
    )
    .expect("open store")
}

pub fn load_file(store: &ImageStore, name: &str) -> Vec<berth_image::LoadedImage> {
    store
        .load(fs::File::open(fixture(name)).expect("fixture"))
        .expect("load")
}

/// `listing.py --mtime DIR`.
pub fn listing(dir: &Path) -> String {
    let out = std::process::Command::new("python3")
        .arg(Path::new(FIXTURES).join("listing.py"))
        .arg("--mtime")
        .arg(dir)
        .output()
        .expect("run listing.py");
    assert!(
        out.status.success(),
        "listing.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn expected_listing(name: &str) -> String {
    fs::read_to_string(fixture(&format!("{name}.listing"))).unwrap()
}

/// The image's root as a container would see it: a read-only overlay of its layers (overlay
/// driver), or the top layer dir (vfs).
pub fn rootfs(s: &Scratch, store: &ImageStore, image: &Image) -> PathBuf {
    match store.driver() {
        Driver::Vfs => image.layer_dirs().last().unwrap().clone(),
        Driver::Overlay => berth_testkit::mount_layers_ro(
            &image.layer_dirs(),
            s.path(),
            &format!("merged-{}", &image.id[..12]),
        ),
    }
}

/// Entries left in `<root>/tmp`.
pub fn tmp_leftovers(root: &Path) -> Vec<String> {
    fs::read_dir(root.join("tmp"))
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Diff ids of a fixture, from its config (read with the tar crate, independently of the store).
pub fn fixture_diff_ids(name: &str) -> Vec<String> {
    let mut files = std::collections::HashMap::new();
    let mut a = tar::Archive::new(fs::File::open(fixture(name)).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.header().entry_type().is_file() && e.size() < 1 << 20 {
            let p = e.path().unwrap().to_string_lossy().into_owned();
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut v).unwrap();
            files.insert(p, v);
        }
    }
    let config: serde_json::Value = if let Some(m) = files.get("manifest.json") {
        let m: serde_json::Value = serde_json::from_slice(m).unwrap();
        serde_json::from_slice(&files[m[0]["Config"].as_str().unwrap()]).unwrap()
    } else {
        let idx: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
        let blob = |d: &str| {
            files[&format!("blobs/sha256/{}", d.strip_prefix("sha256:").unwrap())].clone()
        };
        let m: serde_json::Value =
            serde_json::from_slice(&blob(idx["manifests"][0]["digest"].as_str().unwrap())).unwrap();
        serde_json::from_slice(&blob(m["config"]["digest"].as_str().unwrap())).unwrap()
    };
    config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect()
}

/// A layer tar of regular files (0644, root-owned, fixed mtime).
pub fn tar_of(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}
