//! Round trips with podman: what berth saves podman loads with the same diff ids, and what
//! podman saves berth loads with the same diff ids and tree. Each test has its own podman storage.

mod common;

use berth_testkit::{Defer, Scratch};
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Podman {
    dir: PathBuf,
}

impl Podman {
    fn new(s: &Scratch) -> Podman {
        let found = Command::new("podman").arg("--version").output();
        assert!(
            found.map(|o| o.status.success()).unwrap_or(false),
            "podman is missing: ./setup installs it"
        );
        // podman refuses a runroot longer than 50 characters: keep the names short.
        Podman { dir: s.join("p") }
    }
    fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(self.dir.join("s"))
            .arg("--runroot")
            .arg(self.dir.join("r"));
        // Its own tmpdir too: the default /run/libpod is shared with every other podman here.
        c.arg("--tmpdir").arg(self.dir.join("t"));
        c.args([
            "--storage-driver",
            "overlay",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
        ]);
        c
    }
    fn run(&self, args: &[&str]) -> String {
        let o = self.cmd().args(args).output().unwrap();
        assert!(
            o.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }
    fn layers(&self, image: &str) -> Vec<String> {
        serde_json::from_str(
            self.run(&[
                "image",
                "inspect",
                "--format",
                "{{json .RootFS.Layers}}",
                image,
            ])
            .trim(),
        )
        .unwrap()
    }
    fn reset(dir: &Path) {
        let _ = Command::new("podman")
            .arg("--root")
            .arg(dir.join("s"))
            .arg("--runroot")
            .arg(dir.join("r"))
            .arg("--tmpdir")
            .arg(dir.join("t"))
            .args(["--storage-driver", "overlay", "system", "reset", "-f"])
            .output();
    }
}

fn berth_layers(root: &Path, image: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(
        ok(
            root,
            &["inspect", "--format", "{{json .RootFS.Layers}}", image],
        )
        .trim(),
    )
    .unwrap();
    serde_json::from_value(v).unwrap()
}

/// `berth save --format FORMAT -o OUT NAME` in `root`.
fn berth_save(root: &Path, format: &str, out: &Path, name: &str) {
    ok(
        root,
        &[
            "save",
            "--format",
            format,
            "-o",
            out.to_str().unwrap(),
            name,
        ],
    );
}

#[test]
fn berth_save_loads_in_podman() {
    for format in ["docker-archive", "oci-archive"] {
        let s = Scratch::new("pd");
        let p = Podman::new(&s);
        let dir = p.dir.clone();
        let _reset = Defer(move || Podman::reset(&dir));
        let root = s.join("root");
        common::load_fixture(&root, "layered.oci-archive.tar");
        ok(&root, &["tag", "localhost/layered:1", "berth/saved:x"]);
        let out = s.join("saved.tar");
        berth_save(&root, format, &out, "berth/saved:x");
        let loaded = p.run(&["load", "-i", out.to_str().unwrap()]);
        assert!(loaded.contains("berth/saved:x"), "{format}: {loaded}");
        assert_eq!(
            p.layers("docker.io/berth/saved:x"),
            berth_layers(&root, "berth/saved:x"),
            "{format}"
        );
        let id = p.run(&[
            "image",
            "inspect",
            "--format",
            "{{.Id}}",
            "docker.io/berth/saved:x",
        ]);
        assert_eq!(
            format!("sha256:{}", id.trim()),
            ok(&root, &["inspect", "-f", "{{.Id}}", "berth/saved:x"]).trim(),
            "{format}: same config blob"
        );
    }
}

#[test]
fn podman_save_loads_in_berth() {
    for format in ["docker-archive", "oci-archive"] {
        let s = Scratch::new("pd");
        let p = Podman::new(&s);
        let dir = p.dir.clone();
        let _reset = Defer(move || Podman::reset(&dir));
        p.run(&[
            "load",
            "-i",
            fixture("layered.docker-archive.tar").to_str().unwrap(),
        ]);
        let out = s.join("podman.tar");
        p.run(&[
            "save",
            "--format",
            format,
            "-o",
            out.to_str().unwrap(),
            "localhost/layered:1",
        ]);
        let root = s.join("root");
        assert_eq!(
            ok(&root, &["load", "-i", out.to_str().unwrap()]),
            "Loaded image: localhost/layered:1\n",
            "{format}"
        );
        assert_eq!(
            berth_layers(&root, "localhost/layered:1"),
            p.layers("localhost/layered:1"),
            "{format}"
        );
        let merged = mount_image(&root, "localhost/layered:1", s.path());
        assert_eq!(listing(&merged), expected_listing("layered"), "{format}");
    }
}

#[test]
fn a_committed_layer_is_stored_once_and_saves_with_its_diff_id() {
    let s = Scratch::new("pdc");
    let root = s.join("root");
    common::load_fixture(&root, "busybox.oci-archive.tar");
    let _cleanup = Defer({
        let root = root.clone();
        move || remove_all_containers(&root)
    });
    ok(
        &root,
        &[
            "run",
            "--network",
            "none",
            "--name",
            "writer",
            "busybox",
            "sh",
            "-c",
            "seq 1 200000 > /numbers && mkdir -p /d && echo hi > /d/hi && ln /d/hi /d/link && rm /bin/ls",
        ],
    );
    ok(&root, &["commit", "writer", "berth/committed:1"]);
    let layers = berth_layers(&root, "berth/committed:1");
    let top = layers.last().unwrap().trim_start_matches("sha256:");
    // Written once: the layer is unpacked in the store and no tar blob of it is kept.
    assert!(!root.join("blobs/sha256").join(top).exists());
    let splits = std::fs::read_dir(root.join("layers"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().join("tar-split").is_file())
        .count();
    assert_eq!(splits, 1);

    for format in ["docker-archive", "oci-archive"] {
        let p = Podman::new(&s);
        let dir = p.dir.clone();
        let _reset = Defer(move || Podman::reset(&dir));
        let out = s.join(format!("{format}.tar"));
        berth_save(&root, format, &out, "berth/committed:1");
        // podman hashes each layer tar as it loads: the diff ids must match the rebuilt bytes.
        p.run(&["load", "-i", out.to_str().unwrap()]);
        assert_eq!(p.layers("docker.io/berth/committed:1"), layers, "{format}");
        // And berth loads its own archive back into a fresh store as the same image.
        let other = s.join(format!("other-{format}"));
        ok(&other, &["load", "-i", out.to_str().unwrap()]);
        assert_eq!(
            ok(&other, &["inspect", "-f", "{{.Id}}", "berth/committed:1"]),
            ok(&root, &["inspect", "-f", "{{.Id}}", "berth/committed:1"]),
        );
        let merged = mount_image(&other, "berth/committed:1", &s.join(format!("m-{format}")));
        assert_eq!(
            std::fs::read_to_string(merged.join("d/link")).unwrap(),
            "hi\n"
        );
        assert!(!merged.join("bin/ls").exists());
    }
}
