//! Broken and malicious archives fail with a clear error and leave the store as it was:
//! earlier images intact, no new layers or blobs, no temp leftovers.

mod common;

use berth_image::{sha256_digest, Driver, ImageStore};
use berth_testkit::Scratch;
use common::*;
use serde_json::json;
use std::fs;
use std::io::Write;

/// A store holding busybox, and a snapshot of what it looks like.
struct Before {
    layers: usize,
    blobs: usize,
    top_listing: String,
}

fn snapshot(store: &ImageStore) -> Before {
    let img = store.resolve("localhost/busybox").unwrap();
    Before {
        layers: fs::read_dir(store.root().join("layers")).unwrap().count(),
        blobs: fs::read_dir(store.root().join("blobs/sha256"))
            .unwrap()
            .count(),
        top_listing: listing(img.layer_dirs().last().unwrap()),
    }
}

fn assert_intact(store: &ImageStore, before: &Before) {
    let img = store
        .resolve("localhost/busybox")
        .expect("busybox still resolves");
    assert_eq!(
        listing(img.layer_dirs().last().unwrap()),
        before.top_listing,
        "busybox's layer changed"
    );
    assert_eq!(
        fs::read_dir(store.root().join("layers")).unwrap().count(),
        before.layers,
        "layers added"
    );
    assert_eq!(
        fs::read_dir(store.root().join("blobs/sha256"))
            .unwrap()
            .count(),
        before.blobs,
        "blobs added"
    );
    assert!(
        tmp_leftovers(store.root()).is_empty(),
        "temp leftovers: {:?}",
        tmp_leftovers(store.root())
    );
    assert_eq!(store.list().unwrap().len(), 1);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// An oci-archive whose pieces the test controls.
struct Oci {
    config: Vec<u8>,
    layers: Vec<Vec<u8>>,
    layer_digests: Option<Vec<String>>,
    skip_blobs: Vec<String>,
}

impl Oci {
    fn valid() -> Oci {
        let layer = tar_of(&[("hello.txt", b"hello\n".to_vec())]);
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux", "config": {},
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(&layer)]}
        }))
        .unwrap();
        Oci {
            config,
            layers: vec![gzip(&layer)],
            layer_digests: None,
            skip_blobs: vec![],
        }
    }

    fn build(&self) -> Vec<u8> {
        let digests = self
            .layer_digests
            .clone()
            .unwrap_or_else(|| self.layers.iter().map(|l| sha256_digest(l)).collect());
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256_digest(&self.config), "size": self.config.len()},
            "layers": self.layers.iter().zip(&digests).map(|(l, d)| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": l.len()})).collect::<Vec<_>>(),
        }))
        .unwrap();
        let index = serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha256_digest(&manifest), "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "localhost/crafted:1"}}]}))
        .unwrap();
        let mut files: Vec<(String, Vec<u8>)> = vec![
            (
                "oci-layout".into(),
                br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            ),
            ("index.json".into(), index),
        ];
        let mut blobs = vec![manifest, self.config.clone()];
        blobs.extend(self.layers.iter().cloned());
        for (i, b) in blobs.into_iter().enumerate() {
            // Layer blobs are stored under the digest the manifest names (which a test may falsify).
            let d = if i >= 2 {
                digests[i - 2].clone()
            } else {
                sha256_digest(&b)
            };
            if self.skip_blobs.contains(&d) {
                continue;
            }
            files.push((
                format!("blobs/sha256/{}", d.strip_prefix("sha256:").unwrap()),
                b,
            ));
        }
        tar_of(
            &files
                .iter()
                .map(|(n, d)| (n.as_str(), d.clone()))
                .collect::<Vec<_>>(),
        )
    }
}

fn store_with_busybox(s: &Scratch) -> (ImageStore, Before) {
    let store = open(&s.join("root"), Driver::Overlay);
    load_file(&store, "busybox.docker-archive.tar");
    let before = snapshot(&store);
    (store, before)
}

fn expect_error(store: &ImageStore, archive: &[u8], contains: &str) {
    let err = store
        .load(archive)
        .expect_err("a broken archive must not load");
    let msg = err.to_string();
    assert!(
        msg.to_lowercase().contains(&contains.to_lowercase()),
        "error {msg:?} should mention {contains:?}"
    );
    assert!(!msg.contains('\n'), "one-line error: {msg:?}");
}

#[test]
fn the_crafting_helper_makes_loadable_archives() {
    let s = Scratch::new("crafted-ok");
    let (store, _) = store_with_busybox(&s);
    let loaded = store.load(Oci::valid().build().as_slice()).unwrap();
    assert_eq!(loaded[0].names[0].full(), "localhost/crafted:1");
    let img = store.resolve("localhost/crafted:1").unwrap();
    assert_eq!(
        fs::read(img.layer_dirs()[0].join("hello.txt")).unwrap(),
        b"hello\n"
    );
}

#[test]
fn truncated_archive() {
    let s = Scratch::new("crafted-trunc");
    let (store, before) = store_with_busybox(&s);
    let full = fs::read(fixture("layered.docker-archive.tar")).unwrap();
    for cut in [
        full.len() / 3,
        full.len() / 2 + 100,
        full.len() - 1024 - 300,
    ] {
        assert!(store.load(&full[..cut]).is_err(), "cut at {cut} loaded");
        assert_intact(&store, &before);
    }
}

#[test]
fn corrupt_gzip_layer() {
    let s = Scratch::new("crafted-gzip");
    let (store, before) = store_with_busybox(&s);
    let mut oci = Oci::valid();
    let big = tar_of(&[(
        "big.bin",
        (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect(),
    )]);
    oci.config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(&big)]}}))
    .unwrap();
    let mut gz = gzip(&big);
    let mid = gz.len() / 2;
    for b in &mut gz[mid..mid + 64] {
        *b ^= 0x5a;
    }
    oci.layers = vec![gz];
    assert!(store.load(oci.build().as_slice()).is_err());
    assert_intact(&store, &before);
}

#[test]
fn layer_digest_mismatch() {
    let s = Scratch::new("crafted-digest");
    let (store, before) = store_with_busybox(&s);
    let mut oci = Oci::valid();
    oci.layer_digests = Some(vec![sha256_digest(b"something else")]);
    expect_error(&store, &oci.build(), "digest");
    assert_intact(&store, &before);
}

#[test]
fn diff_id_mismatch() {
    let s = Scratch::new("crafted-diffid");
    let (store, before) = store_with_busybox(&s);
    let mut oci = Oci::valid();
    oci.config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(b"not the layer")]}}))
    .unwrap();
    expect_error(&store, &oci.build(), "digest");
    assert_intact(&store, &before);
}

#[test]
fn config_is_not_json() {
    let s = Scratch::new("crafted-config");
    let (store, before) = store_with_busybox(&s);
    let mut oci = Oci::valid();
    oci.config = b"{this is not json".to_vec();
    expect_error(&store, &oci.build(), "config");
    assert_intact(&store, &before);
}

#[test]
fn missing_blobs() {
    let s = Scratch::new("crafted-missing");
    let (store, before) = store_with_busybox(&s);
    let mut oci = Oci::valid();
    oci.skip_blobs = vec![sha256_digest(&oci.layers[0])];
    expect_error(&store, &oci.build(), "missing");
    let mut oci = Oci::valid();
    oci.skip_blobs = vec![sha256_digest(&oci.config)];
    expect_error(&store, &oci.build(), "missing");
    assert_intact(&store, &before);
}

#[test]
fn docker_archive_without_its_layer() {
    let s = Scratch::new("crafted-docker");
    let (store, before) = store_with_busybox(&s);
    let layer = tar_of(&[("x", b"x".to_vec())]);
    let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(&layer)]}}))
    .unwrap();
    let manifest = serde_json::to_vec(
        &json!([{"Config": "c.json", "RepoTags": ["x:1"], "Layers": ["l.tar"]}]),
    )
    .unwrap();
    expect_error(
        &store,
        &tar_of(&[("c.json", config), ("manifest.json", manifest)]),
        "missing",
    );
    expect_error(
        &store,
        &tar_of(&[("hello", b"hi".to_vec())]),
        "manifest.json",
    );
    assert_intact(&store, &before);
}

#[test]
fn layer_escaping_its_directory() {
    let s = Scratch::new("crafted-escape");
    let (store, before) = store_with_busybox(&s);
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    // set_path refuses "..", so write the name bytes directly.
    h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"../escaped.tx");
    h.set_cksum();
    b.append(&h, &b"hi"[..]).unwrap();
    let layer = b.into_inner().unwrap();
    let mut oci = Oci::valid();
    oci.config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(&layer)]}}))
    .unwrap();
    oci.layers = vec![gzip(&layer)];
    assert!(store.load(oci.build().as_slice()).is_err());
    assert!(!store.root().join("tmp/escaped.tx").exists());
    assert_intact(&store, &before);
}

#[test]
fn full_disk_loses_nothing() {
    let s = Scratch::new("crafted-enospc");
    let root = s.join("root");
    fs::create_dir_all(&root).unwrap();
    // 9 MiB: room for busybox (blob + unpacked), not for layered's 10 MiB layer.
    nix::mount::mount(
        Some("tmpfs"),
        &root,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=9m"),
    )
    .unwrap();
    let store = open(&root, Driver::Overlay);
    load_file(&store, "busybox.docker-archive.tar");
    let before = snapshot(&store);
    let err = store
        .load(fs::File::open(fixture("layered.docker-archive.tar")).unwrap())
        .expect_err("cannot fit");
    assert!(err.to_string().to_lowercase().contains("no space"), "{err}");
    assert_intact(&store, &before);
    // And the store still takes what fits.
    let small = Oci::valid().build();
    store.load(small.as_slice()).unwrap();
}

#[test]
fn plain_and_zstd_layers_load_too() {
    let s = Scratch::new("crafted-zstd");
    let (store, _) = store_with_busybox(&s);
    let layer = tar_of(&[("hello.txt", b"hello\n".to_vec())]);
    for (i, blob) in [
        layer.clone(),
        zstd::encode_all(layer.as_slice(), 3).unwrap(),
    ]
    .into_iter()
    .enumerate()
    {
        let mut oci = Oci::valid();
        // A different config per variant, so each is its own image.
        oci.config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "config": {"Labels": {"v": i.to_string()}},
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(&layer)]}}))
        .unwrap();
        oci.layers = vec![blob];
        let loaded = store.load(oci.build().as_slice()).unwrap();
        let img = store.image(&loaded[0].id).unwrap();
        assert_eq!(
            fs::read(img.layer_dirs()[0].join("hello.txt")).unwrap(),
            b"hello\n"
        );
    }
}
