//! Whiteouts, replacement, metadata, long names, sparse files, and the writer/diff side.

mod common;
use common::*;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

fn lower_tree(root: &Path) {
    let t = RawTar::new()
        .dir("d/")
        .file("d/old", b"old")
        .dir("d/sub/")
        .file("d/sub/deep", b"deep")
        .file("d/keep", b"keep")
        .dir("x/")
        .file("x/gone", b"gone")
        .file("f", b"file")
        .dir("todir/")
        .file("todir/child", b"c")
        .file("tofile", b"was a file")
        .finish();
    apply(&t, root, WhiteoutMode::Direct).unwrap();
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn direct_mode_opaque_marker_is_order_independent() {
    // The marker before and after this layer's own entries in the dir gives the same result.
    let before = RawTar::new()
        .dir("d/")
        .file("d/.wh..wh..opq", b"")
        .file("d/new", b"new")
        .dir("d/sub/")
        .file("d/sub/n2", b"2")
        .finish();
    let after = RawTar::new()
        .dir("d/")
        .file("d/new", b"new")
        .dir("d/sub/")
        .file("d/sub/n2", b"2")
        .file("d/.wh..wh..opq", b"")
        .finish();
    for (what, layer) in [("before", before), ("after", after)] {
        let s = Scratch::new("archive-opq");
        let root = s.join("root");
        lower_tree(&root);
        apply(&layer, &root, WhiteoutMode::Direct).unwrap();
        assert_eq!(names(&root.join("d")), ["new", "sub"], "{what}");
        assert_eq!(
            names(&root.join("d/sub")),
            ["n2"],
            "{what}: lower content of a kept subdir is hidden too"
        );
        assert_eq!(fs::read(root.join("f")).unwrap(), b"file");
    }
}

#[test]
fn direct_mode_whiteouts_delete_lower_entries_only() {
    for order in 0..2 {
        let s = Scratch::new("archive-wh");
        let root = s.join("root");
        lower_tree(&root);
        let mut t = RawTar::new();
        if order == 0 {
            t.file(".wh.x", b"")
                .file(".wh.f", b"")
                .dir("d/")
                .file("d/.wh.old", b"")
                .file("d/.wh.keep", b"")
                .file("d/keep", b"new keep");
        } else {
            t.dir("d/")
                .file("d/keep", b"new keep")
                .file("d/.wh.keep", b"")
                .file("d/.wh.old", b"")
                .file(".wh.f", b"")
                .file(".wh.x", b"");
        }
        t.file(".wh.never-existed", b"");
        apply(&t.finish(), &root, WhiteoutMode::Direct).unwrap();
        assert_eq!(names(&root), ["d", "todir", "tofile"], "order {order}");
        assert_eq!(names(&root.join("d")), ["keep", "sub"]);
        assert_eq!(
            fs::read(root.join("d/keep")).unwrap(),
            b"new keep",
            "a same-layer entry survives its whiteout"
        );
    }
}

#[test]
fn overlay_mode_whiteouts_and_opaque_markers() {
    let s = Scratch::new("archive-owh");
    let root = s.join("layer");
    let t = RawTar::new()
        .file("d/.wh..wh..opq", b"")
        .dir("d/")
        .file("d/new", b"n")
        .entry_with("e/.wh.gone", b'0', "", b"", 0o600, |h| {
            h.set_uid(1000);
            h.set_gid(1001);
        })
        .file(".wh..wh..opq", b"")
        .finish();
    apply(&t, &root, WhiteoutMode::Overlay).unwrap();
    assert_eq!(names(&root.join("d")), ["new"]);
    assert_eq!(
        xattr::get(root.join("d"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(
        xattr::get(&root, "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    let wh = fs::symlink_metadata(root.join("e/gone")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!((wh.rdev(), wh.uid(), wh.gid()), (0, 1000, 1001));

    // A whiteout and an entry of the same name in one layer conflict, in either order.
    for t in [
        RawTar::new().file("a", b"x").file(".wh.a", b"").finish(),
        RawTar::new().file(".wh.a", b"").file("a", b"x").finish(),
        RawTar::new().file("a/b", b"x").file(".wh.a", b"").finish(),
    ] {
        let s = Scratch::new("archive-owh2");
        let err = apply(&t, &s.join("l"), WhiteoutMode::Overlay).expect_err("conflict");
        assert_eq!(err.kind(), ErrorKind::InvalidArchive, "{err}");
        assert!(err.to_string().contains("a\""), "{err}");
    }
}

#[test]
fn entries_replace_what_is_there() {
    let s = Scratch::new("archive-replace");
    let root = s.join("root");
    lower_tree(&root);
    fs::set_permissions(root.join("d"), fs::Permissions::from_mode(0o700)).unwrap();
    let t = RawTar::new()
        .file("todir", b"dir became a file")
        .dir("tofile/")
        .file("tofile/inside", b"file became a dir")
        .entry("d/", b'5', "", b"", 0o750)
        .symlink("f", "d/keep")
        // Replaced twice within the layer: a file, then a dir, then a symlink.
        .file("twice", b"1")
        .dir("twice/")
        .file("twice/x", b"x")
        .symlink("twice", "f")
        .finish();
    apply(&t, &root, WhiteoutMode::Direct).unwrap();
    assert_eq!(fs::read(root.join("todir")).unwrap(), b"dir became a file");
    assert_eq!(
        fs::read(root.join("tofile/inside")).unwrap(),
        b"file became a dir"
    );
    // A dir replacing a dir merges and takes the new metadata.
    assert_eq!(names(&root.join("d")), ["keep", "old", "sub"]);
    assert_eq!(fs::metadata(root.join("d")).unwrap().mode() & 0o7777, 0o750);
    assert_eq!(fs::read_link(root.join("f")).unwrap(), Path::new("d/keep"));
    assert_eq!(fs::read_link(root.join("twice")).unwrap(), Path::new("f"));
}

#[test]
fn metadata_owners_modes_mtimes_and_hard_links() {
    let s = Scratch::new("archive-meta");
    let root = s.join("root");
    let t = RawTar::new()
        .entry_with("dir/", b'5', "", b"", 0o2775, |h| {
            h.set_uid(1000);
            h.set_gid(1000);
            h.set_mtime(1_234_567_890);
        })
        .entry_with("dir/suid", b'0', "", b"#!/bin/sh\n", 0o4755, |h| {
            h.set_uid(1000);
            h.set_gid(1000);
            h.set_mtime(981_173_106);
        })
        .entry_with("dir/sticky/", b'5', "", b"", 0o1777, |_| {})
        .entry_with("dir/link", b'2', "suid", b"", 0o777, |h| {
            h.set_uid(5);
            h.set_gid(6);
            h.set_mtime(1_000);
        })
        .hardlink("dir/hard", "dir/suid")
        .finish();
    apply(&t, &root, WhiteoutMode::Overlay).unwrap();
    let d = fs::metadata(root.join("dir")).unwrap();
    assert_eq!(
        (d.mode() & 0o7777, d.uid(), d.gid(), d.mtime()),
        (0o2775, 1000, 1000, 1_234_567_890)
    );
    let f = fs::metadata(root.join("dir/suid")).unwrap();
    assert_eq!(
        (f.mode() & 0o7777, f.uid(), f.gid(), f.mtime()),
        (0o4755, 1000, 1000, 981_173_106)
    );
    assert_eq!(f.nlink(), 2);
    assert_eq!(fs::metadata(root.join("dir/hard")).unwrap().ino(), f.ino());
    assert_eq!(
        fs::metadata(root.join("dir/sticky")).unwrap().mode() & 0o7777,
        0o1777
    );
    let l = fs::symlink_metadata(root.join("dir/link")).unwrap();
    assert_eq!((l.uid(), l.gid(), l.mtime()), (5, 6, 1_000));
}

/// A capability set (vfs_cap_data v2: cap_net_bind_service=ep) as setcap writes it.
fn cap_net_bind() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0x0200_0001u32.to_le_bytes()); // VFS_CAP_REVISION_2 | effective
    v.extend_from_slice(&(1u32 << 10).to_le_bytes()); // permitted lo: CAP_NET_BIND_SERVICE
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v
}

#[test]
fn xattrs_and_capabilities_round_trip() {
    let s = Scratch::new("archive-xattr");
    let src = s.join("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("ping"), b"binary").unwrap();
    std::os::unix::fs::chown(src.join("ping"), Some(1000), Some(1000)).unwrap();
    xattr::set(src.join("ping"), "security.capability", &cap_net_bind()).unwrap();
    xattr::set(src.join("ping"), "user.note", b"hello").unwrap();
    xattr::set(src.join("d"), "trusted.berth", b"dir xattr").unwrap();
    std::os::unix::fs::symlink("ping", src.join("l")).unwrap();

    let mut tar = Vec::new();
    write_tree(&src, &mut tar).unwrap();
    let dst = s.join("dst");
    apply(&tar, &dst, WhiteoutMode::Overlay).unwrap();
    assert_eq!(
        xattr::get(dst.join("ping"), "security.capability").unwrap(),
        Some(cap_net_bind())
    );
    assert_eq!(
        xattr::get(dst.join("ping"), "user.note")
            .unwrap()
            .as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(
        xattr::get(dst.join("d"), "trusted.berth")
            .unwrap()
            .as_deref(),
        Some(&b"dir xattr"[..])
    );
    assert_eq!(fs::metadata(dst.join("ping")).unwrap().uid(), 1000);
    let getcap = Command::new("getcap")
        .arg(dst.join("ping"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&getcap.stdout).contains("cap_net_bind_service"),
        "{getcap:?}"
    );
}

#[test]
fn long_names_and_link_names() {
    let s = Scratch::new("archive-long");
    let src = s.join("src");
    let comp = "c".repeat(200);
    let deep = src.join(&comp).join(&comp).join("x".repeat(250));
    fs::create_dir_all(deep.parent().unwrap()).unwrap();
    fs::write(&deep, b"deep").unwrap();
    let target = format!("{comp}/{comp}/{}", "x".repeat(250));
    std::os::unix::fs::symlink(&target, src.join("longlink")).unwrap();
    fs::hard_link(&deep, src.join("hard")).unwrap();

    // Our writer (PAX) and the tar crate's builder (GNU long names) both apply.
    let mut ours = Vec::new();
    write_tree(&src, &mut ours).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", &src).unwrap();
    let gnu = b.into_inner().unwrap();
    for (what, t) in [("pax", ours), ("gnu", gnu)] {
        let dst = s.join(what);
        apply(&t, &dst, WhiteoutMode::Overlay).unwrap();
        assert_eq!(fs::read(dst.join(&target)).unwrap(), b"deep", "{what}");
        assert_eq!(
            fs::read_link(dst.join("longlink")).unwrap(),
            Path::new(&target),
            "{what}"
        );
        assert_eq!(fs::read(dst.join("hard")).unwrap(), b"deep", "{what}");
    }
}

#[test]
fn sparse_files_keep_their_holes() {
    let s = Scratch::new("archive-sparse");
    let src = s.join("src");
    fs::create_dir_all(&src).unwrap();
    let f = fs::File::create(src.join("sparse")).unwrap();
    f.set_len(64 << 20).unwrap();
    std::os::unix::fs::FileExt::write_at(&f, b"middle", 32 << 20).unwrap();
    std::os::unix::fs::FileExt::write_at(&f, b"end", (64 << 20) - 3).unwrap();
    drop(f);
    let want = fs::read(src.join("sparse")).unwrap();
    // GNU sparse headers, PAX sparse 1.0 (map in the data) and 0.1 (map in a PAX record).
    for (format, args) in [
        ("gnu", &["--format=gnu"][..]),
        ("pax", &["--format=pax"]),
        ("pax01", &["--format=pax", "--sparse-version=0.1"]),
    ] {
        let tarfile = s.join(format!("{format}.tar"));
        let st = Command::new("tar")
            .arg("--sparse")
            .args(args)
            .arg("-cf")
            .arg(&tarfile)
            .arg("-C")
            .arg(&src)
            .arg("sparse")
            .status()
            .unwrap();
        assert!(st.success());
        let t = fs::read(&tarfile).unwrap();
        assert!(t.len() < 1 << 20, "{format}: GNU tar wrote a sparse entry");
        let dst = s.join(format);
        apply(&t, &dst, WhiteoutMode::Overlay).unwrap();
        let md = fs::metadata(dst.join("sparse")).unwrap();
        assert_eq!(md.len(), 64 << 20, "{format}");
        assert!(
            md.blocks() * 512 <= 64 * 1024,
            "{format}: {} blocks",
            md.blocks()
        );
        assert!(
            fs::read(dst.join("sparse")).unwrap() == want,
            "{format}: content differs"
        );
    }
}

/// Builds a lower layer, mounts an overlay with an upper, makes changes through it.
struct Changed {
    s: Scratch,
    lower: std::path::PathBuf,
    upper: std::path::PathBuf,
    merged: std::path::PathBuf,
}

fn changed_overlay() -> (Changed, Defer<impl FnMut()>) {
    let s = Scratch::new("archive-upper");
    let lower = s.join("lower");
    berth_testkit::busybox_rootfs(&lower).unwrap();
    fs::create_dir_all(lower.join("data/old/sub")).unwrap();
    fs::write(lower.join("data/old/a"), b"a").unwrap();
    fs::write(lower.join("data/old/sub/b"), b"b").unwrap();
    fs::write(lower.join("data/keep"), b"keep").unwrap();
    let (upper, work, merged) = (s.join("upper"), s.join("work"), s.join("merged"));
    fs::create_dir_all(&upper).unwrap();
    fs::create_dir_all(&work).unwrap();
    let guard = mount_overlay(std::slice::from_ref(&lower), Some((&upper, &work)), &merged);
    // Changes, as a container would make them.
    fs::write(merged.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n").unwrap();
    fs::write(merged.join("new-file"), b"new").unwrap();
    fs::create_dir_all(merged.join("newdir/inner")).unwrap();
    fs::write(merged.join("newdir/inner/f"), vec![0u8; 1 << 20]).unwrap();
    fs::hard_link(merged.join("new-file"), merged.join("newdir/hard")).unwrap();
    fs::remove_file(merged.join("bin/ls")).unwrap();
    fs::remove_dir_all(merged.join("data/old")).unwrap();
    fs::create_dir(merged.join("data/old")).unwrap();
    fs::write(merged.join("data/old/c"), b"c").unwrap();
    fs::set_permissions(merged.join("data/keep"), fs::Permissions::from_mode(0o4755)).unwrap();
    std::os::unix::fs::symlink("/nowhere", merged.join("data/dangling")).unwrap();
    Command::new("mkfifo")
        .arg(merged.join("data/fifo"))
        .status()
        .unwrap();
    fs::write(merged.join("excluded"), b"left out").unwrap();
    (
        Changed {
            s,
            lower,
            upper,
            merged,
        },
        guard,
    )
}

fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn upper_dir_round_trips_through_a_layer() {
    let (c, guard) = changed_overlay();
    let mut tar = Vec::new();
    let info = write_layer_from_upper(&c.upper, &["excluded".into()], &mut tar).unwrap();
    assert_eq!(info.size, tar.len() as u64);
    // Deterministic: the same upper gives the same bytes.
    let mut again = Vec::new();
    assert_eq!(
        write_layer_from_upper(&c.upper, &["/excluded".into()], &mut again).unwrap(),
        info
    );
    assert_eq!(again, tar);

    let names: Vec<String> = tar::Archive::new(tar.as_slice())
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    for want in [
        "bin/.wh.ls",
        "data/old/",
        "data/old/.wh..wh..opq",
        "data/old/c",
        "newdir/hard",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:#?}"
        );
    }
    assert!(!names.iter().any(|n| n.starts_with("excluded")));

    // Overlay mode gives back the upper dir itself.
    let layer = c.s.join("layer");
    let applied = apply(&tar, &layer, WhiteoutMode::Overlay).unwrap();
    assert_eq!(applied.diff_id, info.diff_id);
    let mut want = listing(&c.upper);
    want = want
        .lines()
        .filter(|l| !l.starts_with("/excluded "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_same_listing(&want, &listing(&layer), "upper vs applied layer");
    assert_eq!(
        xattr::get(layer.join("data/old"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    let hard = fs::metadata(layer.join("newdir/hard")).unwrap();
    assert_eq!(
        hard.ino(),
        fs::metadata(layer.join("new-file")).unwrap().ino()
    );

    // Direct mode onto a copy of the lower gives the merged view.
    let direct = c.s.join("direct");
    copy_tree(&c.lower, &direct);
    apply(&tar, &direct, WhiteoutMode::Direct).unwrap();
    let merged: String = listing(&c.merged)
        .lines()
        .filter(|l| !l.starts_with("/excluded "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_same_listing(&merged, &listing(&direct), "merged vs lower + layer");
    let big = fs::metadata(direct.join("newdir/inner/f")).unwrap();
    assert!(big.blocks() * 512 < 64 * 1024, "zero file written sparse");
    drop(guard);
}

#[test]
fn changes_of_an_upper_dir() {
    let (c, guard) = changed_overlay();
    let got: Vec<String> = changes(&c.upper, std::slice::from_ref(&c.lower))
        .unwrap()
        .into_iter()
        .map(|ch| {
            let k = match ch.kind {
                ChangeKind::Added => "A",
                ChangeKind::Changed => "C",
                ChangeKind::Deleted => "D",
            };
            format!("{k} {}", ch.path.display())
        })
        .collect();
    let want = [
        "D /bin/ls",
        "C /bin",
        "C /data",
        "A /data/dangling",
        "A /data/fifo",
        "C /data/keep",
        "C /data/old",
        "D /data/old/a",
        "A /data/old/c",
        "D /data/old/sub",
        "C /etc",
        "C /etc/passwd",
        "A /excluded",
        "A /new-file",
        "A /newdir",
        "A /newdir/hard",
        "A /newdir/inner",
        "A /newdir/inner/f",
    ];
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort_by(|a, b| a[2..].cmp(&b[2..]));
    assert_eq!(got, want);
    drop(guard);
}

/// A writer for the tar-split that the test can read back after the tar writer is done.
#[derive(Clone, Default)]
struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn tar_split_rebuilds_the_exact_tar_from_the_unpacked_layer() {
    let (c, guard) = changed_overlay();
    // Sizes that are not multiples of 512, an empty file, and a PAX-named file.
    fs::write(c.merged.join("odd"), vec![7u8; 1000 * 1000 + 3]).unwrap();
    fs::write(c.merged.join("empty"), b"").unwrap();
    let long = c.merged.join("p".repeat(120)).join("n".repeat(130));
    fs::create_dir_all(long.parent().unwrap()).unwrap();
    fs::write(&long, b"long name").unwrap();
    xattr::set(c.merged.join("odd"), "user.note", b"kept").unwrap();

    let split = Shared::default();
    let mut tar = Vec::new();
    let info = write_layer_split(
        &c.upper,
        &["excluded".into()],
        &mut tar,
        Box::new(split.clone()),
    )
    .unwrap();
    // The split is what the tar is without file contents: far smaller than the tar.
    let recorded = split.0.lock().unwrap().clone();
    assert!(
        recorded.len() < tar.len() / 10,
        "{} of {}",
        recorded.len(),
        tar.len()
    );

    let layer = c.s.join("layer");
    apply(&tar, &layer, WhiteoutMode::Overlay).unwrap();
    let mut rebuilt = Vec::new();
    std::io::Read::read_to_end(
        &mut rebuild(recorded.as_slice(), &layer).unwrap(),
        &mut rebuilt,
    )
    .unwrap();
    assert!(
        rebuilt == tar,
        "the rebuilt tar differs from the written one"
    );

    // A layer file that lost bytes is an error, not another tar.
    fs::write(layer.join("odd"), b"short").unwrap();
    let err = std::io::Read::read_to_end(
        &mut rebuild(recorded.as_slice(), &layer).unwrap(),
        &mut Vec::new(),
    )
    .expect_err("short file");
    assert!(err.to_string().contains("odd"), "{err}");
    // And a symlink planted in the layer is never followed.
    fs::remove_file(layer.join("odd")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", layer.join("odd")).unwrap();
    assert!(std::io::Read::read_to_end(
        &mut rebuild(recorded.as_slice(), &layer).unwrap(),
        &mut Vec::new()
    )
    .is_err());
    drop(guard);
}
