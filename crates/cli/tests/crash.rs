//! Interrupted and concurrent loads: kill -9 at varying points leaves a store that works and
//! loads again; several loads of one archive at once all succeed and share one layer dir.

mod common;

use berth_testkit::{Defer, Scratch};
use common::*;
use std::time::Duration;

#[test]
fn kill_9_during_load_leaves_a_consistent_store() {
    let s = Scratch::new("cli-kill");
    let root = s.join("root");
    // Something already there must survive every kill.
    common::load_fixture(&root, "busybox.docker-archive.tar");
    let archives = [
        "layered.docker-archive.tar",
        "debian.oci-archive.tar",
        "layered.oci-archive.tar",
    ];
    for (i, delay_ms) in [0u64, 3, 10, 25, 60, 120, 250, 500, 900]
        .into_iter()
        .enumerate()
    {
        let archive = fixture(archives[i % archives.len()]);
        let mut child = berth_cmd(&root)
            .args(["load", "-i", archive.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let _reap = Defer(move || unsafe {
            libc::kill(pid, libc::SIGKILL);
        });
        std::thread::sleep(Duration::from_millis(delay_ms));
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let _ = child.wait();
        // The next command works and cleans the dead load's work dir.
        let images = ok(&root, &["images"]);
        assert!(images.contains("localhost/busybox"), "{images}");
        assert_consistent(&root);
    }
    // Every load can be redone and gives podman's tree.
    for a in archives {
        ok(&root, &["load", "-i", fixture(a).to_str().unwrap()]);
    }
    let merged = mount_image(&root, "localhost/layered:1", s.path());
    assert_eq!(listing(&merged), expected_listing("layered"));
    assert_consistent(&root);
    // A deletion collects whatever the killed loads left in layers/ and blobs/.
    ok(&root, &["image", "prune", "-a", "-f"]);
    assert_eq!(std::fs::read_dir(root.join("layers")).unwrap().count(), 0);
    assert_eq!(
        std::fs::read_dir(root.join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn concurrent_loads_share_one_layer_dir() {
    let s = Scratch::new("cli-concurrent");
    let root = s.join("root");
    let archive = fixture("layered.docker-archive.tar");
    let children: Vec<_> = (0..4)
        .map(|_| {
            berth_cmd(&root)
                .args(["load", "-i", archive.to_str().unwrap()])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let r: Run = c.wait_with_output().unwrap().into();
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.stdout, "Loaded image: localhost/layered:1\n");
    }
    assert_eq!(ok(&root, &["images", "-q"]).lines().count(), 1);
    assert_eq!(std::fs::read_dir(root.join("layers")).unwrap().count(), 4);
    assert_consistent(&root);
    let merged = mount_image(&root, "localhost/layered:1", s.path());
    assert_eq!(listing(&merged), expected_listing("layered"));
}
