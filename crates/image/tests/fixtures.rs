//! Every fixture image loads, unpacks to exactly what podman unpacked (listing compared,
//! deletions included), and keeps its diff ids; with the overlay and the vfs driver alike.

mod common;

use berth_image::Driver;
use berth_testkit::Scratch;
use common::*;

fn check(fixture_file: &str, name: &str, reference: &str, driver: Driver) {
    let s = Scratch::new("image-fixture");
    let store = open(&s.join("root"), driver);
    let loaded = load_file(&store, fixture_file);
    assert_eq!(loaded.len(), 1);
    assert_eq!(
        loaded[0].names.iter().map(|n| n.full()).collect::<Vec<_>>(),
        vec![reference.to_string()]
    );
    let image = store.resolve(reference).unwrap();
    assert_eq!(image.id, loaded[0].id);
    assert_eq!(image.diff_ids(), fixture_diff_ids(fixture_file));
    for d in image.layer_dirs() {
        assert!(d.is_dir(), "{} missing", d.display());
        assert!(d.starts_with(s.join("root").canonicalize().unwrap().join("layers")));
    }
    let root = rootfs(&s, &store, &image);
    let got = listing(&root);
    let want = expected_listing(name);
    if got != want {
        let diff: Vec<_> = want
            .lines()
            .filter(|l| !got.contains(l))
            .chain(got.lines().filter(|l| !want.contains(l)))
            .take(20)
            .collect();
        panic!(
            "{fixture_file} ({driver:?}) unpacked differently from podman; differing lines:\n{}",
            diff.join("\n")
        );
    }
    assert!(
        tmp_leftovers(store.root()).is_empty(),
        "temp leftovers: {:?}",
        tmp_leftovers(store.root())
    );
}

#[test]
fn busybox_docker_archive_overlay() {
    check(
        "busybox.docker-archive.tar",
        "busybox",
        "localhost/busybox:latest",
        Driver::Overlay,
    );
}

#[test]
fn busybox_oci_archive_overlay() {
    check(
        "busybox.oci-archive.tar",
        "busybox",
        "localhost/busybox:latest",
        Driver::Overlay,
    );
}

#[test]
fn layered_docker_archive_overlay() {
    check(
        "layered.docker-archive.tar",
        "layered",
        "localhost/layered:1",
        Driver::Overlay,
    );
}

#[test]
fn layered_oci_archive_overlay() {
    check(
        "layered.oci-archive.tar",
        "layered",
        "localhost/layered:1",
        Driver::Overlay,
    );
}

#[test]
fn busybox_docker_archive_vfs() {
    check(
        "busybox.docker-archive.tar",
        "busybox",
        "localhost/busybox:latest",
        Driver::Vfs,
    );
}

#[test]
fn busybox_oci_archive_vfs() {
    check(
        "busybox.oci-archive.tar",
        "busybox",
        "localhost/busybox:latest",
        Driver::Vfs,
    );
}

#[test]
fn layered_docker_archive_vfs() {
    check(
        "layered.docker-archive.tar",
        "layered",
        "localhost/layered:1",
        Driver::Vfs,
    );
}

#[test]
fn layered_oci_archive_vfs() {
    check(
        "layered.oci-archive.tar",
        "layered",
        "localhost/layered:1",
        Driver::Vfs,
    );
}

#[test]
fn debian_oci_archive_overlay() {
    check(
        "debian.oci-archive.tar",
        "debian",
        "localhost/debian:bookworm",
        Driver::Overlay,
    );
}

#[test]
fn shared_layers_are_unpacked_once() {
    let s = Scratch::new("image-shared");
    let store = open(&s.join("root"), Driver::Overlay);
    load_file(&store, "busybox.oci-archive.tar");
    load_file(&store, "layered.docker-archive.tar");
    let busybox = store.resolve("localhost/busybox").unwrap();
    let layered = store.resolve("localhost/layered:1").unwrap();
    assert_eq!(busybox.layer_dirs()[0], layered.layer_dirs()[0]);
    assert_eq!(
        std::fs::read_dir(store.root().join("layers"))
            .unwrap()
            .count(),
        4
    );
}

#[test]
fn save_and_reload_keeps_digests() {
    for format in [
        berth_image::ArchiveFormat::DockerArchive,
        berth_image::ArchiveFormat::OciArchive,
    ] {
        let s = Scratch::new("image-save");
        let store = open(&s.join("a"), Driver::Overlay);
        load_file(&store, "layered.oci-archive.tar");
        let before = store.resolve("localhost/layered:1").unwrap();
        let out = s.join("saved.tar");
        store
            .save(
                &["localhost/layered:1".to_string()],
                format,
                std::fs::File::create(&out).unwrap(),
            )
            .unwrap();
        let other = open(&s.join("b"), Driver::Overlay);
        let loaded = other.load(std::fs::File::open(&out).unwrap()).unwrap();
        assert_eq!(
            loaded[0].id, before.id,
            "{format:?}: the config blob is kept byte for byte"
        );
        let after = other.resolve("localhost/layered:1").unwrap();
        assert_eq!(after.diff_ids(), before.diff_ids());
        if format == berth_image::ArchiveFormat::OciArchive {
            assert_eq!(
                after.manifest_digest, before.manifest_digest,
                "oci save carries the manifest as received"
            );
            let blobs = |i: &berth_image::Image| {
                i.layers
                    .iter()
                    .map(|l| l.blob_digest.clone())
                    .collect::<Vec<_>>()
            };
            assert_eq!(blobs(&after), blobs(&before));
        }
        let root = rootfs(&s, &other, &after);
        assert_eq!(listing(&root), expected_listing("layered"));
    }
}
