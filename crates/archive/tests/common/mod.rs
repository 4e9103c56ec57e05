//! Helpers shared by the integration tests: OCI archive reading, listings, overlay mounts and
//! hand-built tar entries.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use berth_archive::*;
pub use berth_testkit::{Defer, Scratch};

pub fn fixtures() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures"
    ))
}

pub struct Image {
    pub layers: Vec<Vec<u8>>,
    pub diff_ids: Vec<String>,
}

/// Reads an oci-archive: index.json → manifest → config diff_ids and layer blobs.
pub fn read_oci(path: &Path) -> Image {
    let mut files = std::collections::HashMap::new();
    let mut ar = tar::Archive::new(std::fs::File::open(path).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        files.insert(name, data);
    }
    let blob = |digest: &str| {
        files[&format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))].clone()
    };
    let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
    Image {
        layers: manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| blob(l["digest"].as_str().unwrap()))
            .collect(),
        diff_ids: config["rootfs"]["diff_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_string())
            .collect(),
    }
}

pub fn listing(root: &Path) -> String {
    let out = Command::new("python3")
        .arg(fixtures().join("listing.py"))
        .arg("--mtime")
        .arg(root)
        .output()
        .expect("run listing.py");
    assert!(
        out.status.success(),
        "listing.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Compares two listings line by line, failing with the first differences.
pub fn assert_same_listing(want: &str, got: &str, what: &str) {
    let w: Vec<&str> = want.lines().collect();
    let g: Vec<&str> = got.lines().collect();
    let missing: Vec<_> = w.iter().filter(|l| !g.contains(l)).take(10).collect();
    let extra: Vec<_> = g.iter().filter(|l| !w.contains(l)).take(10).collect();
    assert!(
        missing.is_empty() && extra.is_empty() && w == g,
        "{what}: listing differs\nmissing: {missing:#?}\nextra: {extra:#?}"
    );
}

pub fn apply(data: &[u8], dest: &Path, mode: WhiteoutMode) -> Result<Applied> {
    std::fs::create_dir_all(dest).unwrap();
    apply_layer(
        data,
        dest,
        &ApplyOptions {
            whiteouts: mode,
            expected_diff_id: None,
        },
    )
}

/// Mounts overlayfs at `target`; with no upper it is read-only. Unmounted by the returned guard.
pub fn mount_overlay(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
) -> Defer<impl FnMut()> {
    std::fs::create_dir_all(target).unwrap();
    let mut opts = format!(
        "lowerdir={}",
        lowers
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    );
    let mut flags = nix::mount::MsFlags::empty();
    match upper {
        Some((u, w)) => opts.push_str(&format!(
            ",upperdir={},workdir={}",
            u.display(),
            w.display()
        )),
        None => flags |= nix::mount::MsFlags::MS_RDONLY,
    }
    nix::mount::mount(
        Some("overlay"),
        target,
        Some("overlay"),
        flags,
        Some(opts.as_str()),
    )
    .unwrap_or_else(|e| panic!("mount overlay {opts}: {e}"));
    let t = target.to_path_buf();
    Defer(move || {
        let _ = nix::mount::umount2(&t, nix::mount::MntFlags::MNT_DETACH);
    })
}

/// Tar builder writing raw headers, so tests can make entries the tar crate refuses.
pub struct RawTar(pub Vec<u8>);

impl RawTar {
    pub fn new() -> RawTar {
        RawTar(Vec::new())
    }

    pub fn entry(&mut self, name: &str, kind: u8, link: &str, data: &[u8], mode: u32) -> &mut Self {
        self.entry_with(name, kind, link, data, mode, |_| {})
    }

    pub fn entry_with(
        &mut self,
        name: &str,
        kind: u8,
        link: &str,
        data: &[u8],
        mode: u32,
        f: impl FnOnce(&mut tar::Header),
    ) -> &mut Self {
        let mut h = tar::Header::new_ustar();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_000_000_000);
        h.set_size(data.len() as u64);
        f(&mut h);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.entry(name, b'0', "", data, 0o644)
    }
    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.entry(name, b'5', "", b"", 0o755)
    }
    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(name, b'2', target, b"", 0o777)
    }
    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(name, b'1', target, b"", 0o644)
    }
    pub fn finish(&mut self) -> Vec<u8> {
        let mut v = self.0.clone();
        v.extend(std::iter::repeat_n(0u8, 1024));
        v
    }
}

/// A snapshot of everything in `dir` (path, type, mode, owner, size, mtime, content), to prove
/// nothing changed there.
pub fn sentinel(dir: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    fn walk(dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let content = if md.is_file() {
                std::fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            out.push(format!(
                "{} {:o} {}:{} {} {} {:?}",
                p.display(),
                md.mode(),
                md.uid(),
                md.gid(),
                md.len(),
                md.mtime(),
                content
            ));
            if md.is_dir() {
                walk(&p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out.join("\n")
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut e, data).unwrap();
    e.finish().unwrap()
}
