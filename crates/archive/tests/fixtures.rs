//! Every layer of the podman-saved fixture images, applied in both whiteout modes, must give
//! exactly the root filesystem podman itself produced (NAME.listing), with matching diff_ids.

mod common;
use common::*;
use std::os::unix::fs::MetadataExt;

fn check_image(name: &str) {
    let s = Scratch::new("archive-fixture");
    let img = read_oci(&fixtures().join(format!("images/{name}.oci-archive.tar")));
    assert_eq!(img.layers.len(), img.diff_ids.len());
    let want = std::fs::read_to_string(fixtures().join(format!("images/{name}.listing"))).unwrap();

    // Overlay mode: one dir per layer, merged by a read-only overlay mount.
    let mut lowers = Vec::new();
    for (i, (blob, diff_id)) in img.layers.iter().zip(&img.diff_ids).enumerate() {
        let dir = s.join(format!("layer{i}"));
        std::fs::create_dir(&dir).unwrap();
        let opts = ApplyOptions {
            whiteouts: WhiteoutMode::Overlay,
            expected_diff_id: Some(diff_id.clone()),
        };
        let applied = apply_layer(blob.as_slice(), &dir, &opts).unwrap();
        assert_eq!(&applied.diff_id, diff_id, "{name} layer {i}");
        assert!(applied.entries > 0 && applied.size % 512 == 0);
        lowers.insert(0, dir);
    }
    if lowers.len() == 1 {
        // overlayfs needs two lowers when it has no upper.
        let empty = s.join("empty");
        std::fs::create_dir(&empty).unwrap();
        lowers.push(empty);
    }
    let merged = s.join("merged");
    let guard = mount_overlay(&lowers, None, &merged);
    assert_same_listing(&want, &listing(&merged), &format!("{name} (overlay)"));
    drop(guard);

    // Direct mode: all layers into one dir.
    let direct = s.join("direct");
    std::fs::create_dir(&direct).unwrap();
    for (blob, diff_id) in img.layers.iter().zip(&img.diff_ids) {
        let opts = ApplyOptions {
            whiteouts: WhiteoutMode::Direct,
            expected_diff_id: Some(diff_id.clone()),
        };
        apply_layer(blob.as_slice(), &direct, &opts).unwrap();
    }
    assert_same_listing(&want, &listing(&direct), &format!("{name} (direct)"));
}

#[test]
fn busybox_fixture() {
    check_image("busybox");
}

#[test]
fn layered_fixture() {
    check_image("layered");
}

#[test]
fn debian_fixture() {
    check_image("debian");
}

#[test]
fn layered_whiteouts_and_sparse_file_in_layer_dirs() {
    let s = Scratch::new("archive-layered");
    let img = read_oci(&fixtures().join("images/layered.oci-archive.tar"));
    let l1 = s.join("l1");
    let l2 = s.join("l2");
    apply(&img.layers[1], &l1, WhiteoutMode::Overlay).unwrap();
    apply(&img.layers[2], &l2, WhiteoutMode::Overlay).unwrap();

    // The 10 MiB zero file keeps (almost) no blocks.
    let md = std::fs::metadata(l1.join("data/sparse")).unwrap();
    assert_eq!(md.len(), 10 << 20);
    assert!(
        md.blocks() * 512 < 64 * 1024,
        "sparse file uses {} blocks",
        md.blocks()
    );

    // Whiteouts are 0/0 char devices; the replaced dir is opaque.
    for gone in [
        "bin/vi",
        "data/gone",
        "data/link",
        "data/hard2",
        "data/deep/a",
    ] {
        let md = std::fs::symlink_metadata(l2.join(gone)).unwrap();
        assert!(
            std::os::unix::fs::FileTypeExt::is_char_device(&md.file_type()) && md.rdev() == 0,
            "{gone}"
        );
    }
    let opq = xattr::get(l2.join("data/opq"), "trusted.overlay.opaque").unwrap();
    assert_eq!(opq.as_deref(), Some(&b"y"[..]));
    assert!(std::fs::symlink_metadata(l2.join("data/opq/.wh..wh..opq")).is_err());
    // The setuid bit survives chown.
    assert_eq!(
        std::fs::metadata(l2.join("data/keep/a")).unwrap().mode() & 0o7777,
        0o4755
    );
}
