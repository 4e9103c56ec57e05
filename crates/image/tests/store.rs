//! Names, id prefixes, tag/rmi/prune rules, users, import/commit, driver choice.

mod common;

use berth_image::{CommitOptions, Driver, ErrorKind, ImageStore, RemoveEvent, StoreOptions};
use berth_testkit::Scratch;
use common::*;
use std::fs;
use std::io::Write;

fn busybox_tar_gz(s: &Scratch) -> Vec<u8> {
    let root = s.join("rootfs");
    fs::create_dir_all(&root).unwrap();
    berth_testkit::busybox_rootfs(&root).unwrap();
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    b.follow_symlinks(false);
    b.append_dir_all(".", &root).unwrap();
    b.into_inner().unwrap().finish().unwrap()
}

fn deleted(events: &[RemoveEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| {
            if let RemoveEvent::Deleted(d) = e {
                Some(d.clone())
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn names_ids_and_prefixes_resolve() {
    let s = Scratch::new("store-resolve");
    let store = open(&s.join("root"), Driver::Overlay);
    let id = load_file(&store, "busybox.oci-archive.tar")[0].id.clone();
    for name in [
        "localhost/busybox",
        "localhost/busybox:latest",
        "busybox",
        "busybox:latest",
        &id,
        &format!("sha256:{id}"),
        &id[..5],
    ] {
        assert_eq!(store.resolve(name).unwrap().id, id, "{name}");
    }
    let by_digest = format!(
        "localhost/busybox@{}",
        store.resolve("busybox").unwrap().manifest_digest
    );
    assert_eq!(store.resolve(&by_digest).unwrap().id, id);
    for missing in [
        "nothere",
        "busybox:other",
        "docker.io/library/busybox",
        "ffffffff",
    ] {
        let e = store.resolve(missing).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{missing}");
        assert_eq!(e.to_string(), format!("No such image: {missing}"));
    }
    assert_eq!(
        store.resolve("Bad Name").unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // Make images until two ids share their first hex digit (pigeonhole: at most 17), then that digit is ambiguous.
    let tar = busybox_tar_gz(&s);
    let mut ids = vec![id];
    let ambiguous = loop {
        assert!(ids.len() <= 17);
        let opts = CommitOptions {
            changes: vec![format!("LABEL n={}", ids.len())],
            ..Default::default()
        };
        let new = store.commit(tar.as_slice(), &opts).unwrap();
        if let Some(prev) = ids.iter().find(|i| i[..1] == new[..1]) {
            let _ = prev;
            break new[..1].to_string();
        }
        ids.push(new);
    };
    assert_eq!(
        store.resolve(&ambiguous).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    // Every import shares the one rootfs layer.
    assert_eq!(
        fs::read_dir(store.root().join("layers")).unwrap().count(),
        2
    );
}

#[test]
fn tag_and_rmi_follow_docker() {
    let s = Scratch::new("store-rmi");
    let store = open(&s.join("root"), Driver::Overlay);
    let busybox = load_file(&store, "busybox.docker-archive.tar")[0]
        .id
        .clone();
    let layered = load_file(&store, "layered.oci-archive.tar")[0].id.clone();
    store.tag("localhost/busybox", "mybox:1").unwrap();
    store
        .tag(&busybox[..8], "registry.example:5000/team/box")
        .unwrap();
    assert_eq!(store.resolve("mybox:1").unwrap().id, busybox);
    let names: Vec<String> = store
        .resolve(&busybox)
        .unwrap()
        .names
        .iter()
        .map(|n| n.familiar())
        .collect();
    assert_eq!(
        names,
        vec![
            "mybox:1",
            "localhost/busybox:latest",
            "registry.example:5000/team/box:latest"
        ]
    );

    // By id with several names: refused without force.
    assert_eq!(
        store.remove(&busybox, false).unwrap_err().kind(),
        ErrorKind::Conflict
    );
    // One name of several: untag only.
    assert_eq!(
        store.remove("mybox:1", false).unwrap(),
        vec![RemoveEvent::Untagged("mybox:1".into())]
    );
    assert_eq!(
        store
            .remove("registry.example:5000/team/box", false)
            .unwrap()
            .len(),
        1
    );
    let base_layer = store.resolve(&busybox).unwrap().layer_dirs()[0].clone();
    // The last name deletes; the layer stays because layered uses it.
    let ev = store.remove("localhost/busybox", false).unwrap();
    assert_eq!(
        ev[0],
        RemoveEvent::Untagged("localhost/busybox:latest".into())
    );
    assert_eq!(deleted(&ev), vec![format!("sha256:{busybox}")]);
    assert!(base_layer.is_dir());
    assert!(store.resolve(&busybox).is_err());
    assert!(store.root().join("blobs/sha256").join(&layered).is_file());
    assert!(!store.root().join("blobs/sha256").join(&busybox).exists());
    // Deleting layered takes all four layers and every blob with it.
    let ev = store.remove(&layered[..12], false).unwrap();
    assert_eq!(deleted(&ev).len(), 1 + 4);
    assert!(!base_layer.exists());
    assert_eq!(
        fs::read_dir(store.root().join("layers")).unwrap().count(),
        0
    );
    assert_eq!(
        fs::read_dir(store.root().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert!(store.list().unwrap().is_empty());
    assert_eq!(
        store.remove("localhost/busybox", false).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn images_in_use_are_kept() {
    let s = Scratch::new("store-users");
    let store = open(&s.join("root"), Driver::Overlay);
    let id = load_file(&store, "busybox.docker-archive.tar")[0]
        .id
        .clone();
    store.add_user(&id, "container-1").unwrap();
    assert_eq!(store.resolve(&id).unwrap().users, vec!["container-1"]);
    let e = store.remove("localhost/busybox", false).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.to_string().contains("container-1"), "{e}");
    assert_eq!(
        store.remove(&id, false).unwrap_err().kind(),
        ErrorKind::Conflict
    );
    assert!(store.prune(true).unwrap().events.is_empty());
    assert_eq!(store.disk_usage().unwrap().active, 1);
    assert_eq!(store.disk_usage().unwrap().reclaimable, 0);
    // Forced: the names go, the image stays for its user.
    let ev = store.remove("localhost/busybox", true).unwrap();
    assert_eq!(
        ev,
        vec![RemoveEvent::Untagged("localhost/busybox:latest".into())]
    );
    let img = store.resolve(&id).unwrap();
    assert!(img.names.is_empty());
    assert!(img.layer_dirs()[0].is_dir());
    assert!(store.prune(false).unwrap().events.is_empty());
    store.remove_user(&id, "container-1").unwrap();
    let report = store.prune(false).unwrap();
    assert_eq!(deleted(&report.events)[0], format!("sha256:{id}"));
    assert!(report.reclaimed > 2_000_000);
    assert!(store.list().unwrap().is_empty());
    // A container cannot start using an image that is gone.
    assert_eq!(
        store.add_user(&id, "container-2").unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn prune_takes_dangling_or_all() {
    let s = Scratch::new("store-prune");
    let store = open(&s.join("root"), Driver::Overlay);
    let busybox = load_file(&store, "busybox.oci-archive.tar")[0].id.clone();
    let layered = load_file(&store, "layered.docker-archive.tar")[0]
        .id
        .clone();
    // Loading another image under the same name leaves the old one dangling.
    store.tag(&busybox, "localhost/layered:1").unwrap();
    assert!(store.resolve(&layered).unwrap().names.is_empty());
    let report = store.prune(false).unwrap();
    assert_eq!(deleted(&report.events)[0], format!("sha256:{layered}"));
    assert_eq!(store.list().unwrap().len(), 1);
    let report = store.prune(true).unwrap();
    assert!(report
        .events
        .contains(&RemoveEvent::Untagged("localhost/busybox:latest".into())));
    assert!(store.list().unwrap().is_empty());
    assert_eq!(store.disk_usage().unwrap().size, 0);
}

#[test]
fn import_with_changes_then_save_and_load() {
    let s = Scratch::new("store-import");
    let store = open(&s.join("a"), Driver::Overlay);
    let tar = busybox_tar_gz(&s);
    let opts = CommitOptions {
        changes: vec![
            r#"CMD ["/bin/sh", "-c", "echo hi"]"#.into(),
            "ENV A=b".into(),
            "WORKDIR /srv".into(),
            "EXPOSE 8080".into(),
        ],
        comment: Some("Imported from -".into()),
        reference: Some("imported:v1".into()),
        ..Default::default()
    };
    let id = store.commit(tar.as_slice(), &opts).unwrap();
    let img = store.resolve("imported:v1").unwrap();
    assert_eq!(img.id, id);
    let c = img.config.config().clone().unwrap();
    assert_eq!(c.cmd().clone().unwrap(), vec!["/bin/sh", "-c", "echo hi"]);
    assert_eq!(c.env().clone().unwrap(), vec!["A=b"]);
    assert_eq!(c.working_dir().clone().unwrap(), "/srv");
    assert_eq!(img.layers.len(), 1);
    assert!(img.layer_dirs()[0].join("bin/busybox").is_file());
    assert_eq!(img.config_json["history"][0]["comment"], "Imported from -");

    let out = s.join("imported.tar");
    store
        .save(
            &["imported:v1".into()],
            berth_image::ArchiveFormat::DockerArchive,
            fs::File::create(&out).unwrap(),
        )
        .unwrap();
    let other = open(&s.join("b"), Driver::Vfs);
    let loaded = other.load(fs::File::open(&out).unwrap()).unwrap();
    assert_eq!(loaded[0].id, id);
    assert_eq!(
        other.resolve("imported:v1").unwrap().diff_ids(),
        img.diff_ids()
    );
    assert_eq!(
        listing(&other.resolve(&id).unwrap().layer_dirs()[0]),
        listing(&img.layer_dirs()[0])
    );
}

#[test]
fn commit_on_a_parent_adds_a_layer() {
    for driver in [Driver::Overlay, Driver::Vfs] {
        let s = Scratch::new("store-commit");
        let store = open(&s.join("root"), driver);
        let parent = load_file(&store, "busybox.docker-archive.tar")[0]
            .id
            .clone();
        // A diff: a new file and a whiteout for /bin/ls.
        let diff = tar_of(&[("etc/added", b"new\n".to_vec()), ("bin/.wh.ls", vec![])]);
        let opts = CommitOptions {
            parent: Some("localhost/busybox".into()),
            changes: vec!["USER nobody".into()],
            created_by: Some("berth commit".into()),
            reference: Some("derived".into()),
            ..Default::default()
        };
        let id = store.commit(diff.as_slice(), &opts).unwrap();
        store.add_user(&parent, "c1").unwrap();
        let img = store.resolve("derived").unwrap();
        assert_eq!(img.id, id);
        assert_eq!(img.layers.len(), 2);
        assert_eq!(
            img.layers[0].chain_id,
            store.resolve(&parent).unwrap().layers[0].chain_id
        );
        assert_eq!(
            img.config.config().clone().unwrap().cmd().clone().unwrap(),
            vec!["/bin/sh"],
            "parent's CMD kept"
        );
        assert_eq!(
            img.config.config().clone().unwrap().user().clone().unwrap(),
            "nobody"
        );
        let root = rootfs(&s, &store, &img);
        assert_eq!(fs::read(root.join("etc/added")).unwrap(), b"new\n");
        assert!(root.join("bin/sh").symlink_metadata().is_ok());
        assert!(
            root.join("bin/ls").symlink_metadata().is_err(),
            "{driver:?}: whiteout applied"
        );
    }
}

#[test]
fn the_driver_cannot_change_silently() {
    let s = Scratch::new("store-driver");
    let root = s.join("root");
    drop(open(&root, Driver::Vfs));
    assert_eq!(
        ImageStore::open(&root, &StoreOptions::default())
            .unwrap()
            .driver(),
        Driver::Vfs
    );
    let e = ImageStore::open(
        &root,
        &StoreOptions {
            driver: Some(Driver::Overlay),
        },
    )
    .err()
    .unwrap();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    let fresh = s.join("fresh");
    fs::create_dir_all(&fresh).unwrap();
    fs::File::create(fresh.join("config.json"))
        .unwrap()
        .write_all(br#"{"storage-driver": "vfs"}"#)
        .unwrap();
    assert_eq!(
        ImageStore::open(&fresh, &StoreOptions::default())
            .unwrap()
            .driver(),
        Driver::Vfs
    );
    assert!(ImageStore::open(
        &fresh,
        &StoreOptions {
            driver: Some(Driver::Overlay)
        }
    )
    .is_err());
}

#[test]
fn stale_work_dirs_are_removed_at_open() {
    let s = Scratch::new("store-stale");
    let root = s.join("root");
    drop(open(&root, Driver::Overlay));
    // What a killed process leaves: a work dir nobody holds a lock on.
    fs::create_dir_all(root.join("tmp/load-1-2-3/abc/diff")).unwrap();
    fs::write(root.join("tmp/load-1-2-3/in-0"), b"partial").unwrap();
    // One that is still in use (we hold its lock) must survive.
    fs::create_dir_all(root.join("tmp/busy")).unwrap();
    let held = fs::File::open(root.join("tmp/busy")).unwrap();
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&held), libc::LOCK_EX) },
        0
    );
    drop(open(&root, Driver::Overlay));
    assert_eq!(tmp_leftovers(&root), vec!["busy"]);
    drop(held);
    drop(open(&root, Driver::Overlay));
    assert!(tmp_leftovers(&root).is_empty());
}
