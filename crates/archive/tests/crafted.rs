//! Hand-built tarballs: escapes, corrupt streams, devices. Every refused layer must name the
//! entry, have the right error kind, and leave the sentinel dir beside dest untouched.

mod common;
use common::*;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// A scratch with dest/ and a sentinel/ dir beside it holding a file.
fn setup(prefix: &str) -> (Scratch, std::path::PathBuf, String) {
    let s = Scratch::new(prefix);
    std::fs::create_dir_all(s.join("dest")).unwrap();
    std::fs::create_dir_all(s.join("sentinel/etc")).unwrap();
    std::fs::write(s.join("sentinel/etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    let snap = sentinel(&s.join("sentinel"));
    let dest = s.join("dest");
    (s, dest, snap)
}

fn assert_untouched(s: &Scratch, snap: &str) {
    assert_eq!(sentinel(&s.join("sentinel")), snap, "sentinel changed");
    let top: Vec<_> = std::fs::read_dir(s.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(top.len(), 2, "something was created beside dest: {top:?}");
}

fn expect_err(data: &[u8], dest: &Path, mode: WhiteoutMode, kind: ErrorKind, names: &str) -> Error {
    let err = apply(data, dest, mode).expect_err("layer must be refused");
    assert_eq!(err.kind(), kind, "{err}");
    assert!(
        err.to_string().contains(names),
        "error {err:?} does not name {names:?}"
    );
    err
}

#[test]
fn dotdot_components_are_refused() {
    for name in [
        "../x",
        "a/../../x",
        "./../sentinel/etc/passwd",
        "a/b/../../../x",
    ] {
        let (s, dest, snap) = setup("archive-dotdot");
        let tar = RawTar::new().dir("a/").file(name, b"evil").finish();
        let err = expect_err(&tar, &dest, WhiteoutMode::Direct, ErrorKind::Escape, name);
        assert!(
            err.to_string().contains("escapes the layer directory"),
            "{err}"
        );
        assert_untouched(&s, &snap);
    }
}

#[test]
fn absolute_names_are_taken_relative_to_dest() {
    let (s, dest, snap) = setup("archive-abs");
    let unique = berth_testkit::unique_id("berth-archive-abs");
    let tar = RawTar::new()
        .file(&format!("/{unique}/f"), b"inside")
        .finish();
    apply(&tar, &dest, WhiteoutMode::Overlay).unwrap();
    assert_eq!(
        std::fs::read(dest.join(&unique).join("f")).unwrap(),
        b"inside"
    );
    assert!(!Path::new("/").join(&unique).exists());
    assert_untouched(&s, &snap);
}

#[test]
fn symlink_parent_escapes_are_refused() {
    let sentinel_abs = |s: &Scratch| s.join("sentinel").display().to_string();
    type MakeTar = Box<dyn Fn(&Scratch) -> Vec<u8>>;
    let cases: Vec<(&str, MakeTar, &str)> = vec![
        (
            "absolute",
            Box::new(|_s: &Scratch| {
                RawTar::new()
                    .symlink("l", "/")
                    .file("l/etc/x", b"evil")
                    .finish()
            }),
            "l/etc/x",
        ),
        (
            "absolute-to-sentinel",
            Box::new(move |s: &Scratch| {
                RawTar::new()
                    .symlink("l", &sentinel_abs(s))
                    .file("l/etc/passwd", b"evil")
                    .finish()
            }),
            "l/etc/passwd",
        ),
        (
            "relative",
            Box::new(|_s: &Scratch| {
                RawTar::new()
                    .symlink("l", "../sentinel")
                    .file("l/etc/passwd", b"evil")
                    .finish()
            }),
            "l/etc/passwd",
        ),
        (
            "chained",
            Box::new(|_s: &Scratch| {
                RawTar::new()
                    .symlink("a", "..")
                    .symlink("b", "a/..")
                    .file("b/x", b"evil")
                    .finish()
            }),
            "b/x",
        ),
        (
            "chained-deeper",
            Box::new(|_s: &Scratch| {
                RawTar::new()
                    .dir("d/")
                    .symlink("d/a", "..")
                    .symlink("b", "d/a/../..")
                    .file("b/sentinel/etc/passwd", b"evil")
                    .finish()
            }),
            "b/sentinel/etc/passwd",
        ),
        (
            "dir-entry",
            Box::new(|_s: &Scratch| RawTar::new().symlink("l", "/tmp").dir("l/evil/").finish()),
            "l/evil/",
        ),
    ];
    for (what, make, entry) in cases {
        for mode in [WhiteoutMode::Overlay, WhiteoutMode::Direct] {
            let (s, dest, snap) = setup("archive-symlink");
            let tar = make(&s);
            let err = apply(&tar, &dest, mode).expect_err(what);
            assert_eq!(err.kind(), ErrorKind::Escape, "{what}: {err}");
            assert!(err.to_string().contains(entry), "{what}: {err}");
            assert_untouched(&s, &snap);
        }
    }
}

#[test]
fn symlinks_inside_dest_are_followed_for_parents_and_kept_as_is() {
    let (s, dest, snap) = setup("archive-symlink-ok");
    let tar = RawTar::new()
        .dir("usr/")
        .dir("usr/lib/")
        .symlink("lib", "usr/lib")
        .file("lib/libx.so", b"lib")
        .symlink("abs", "/etc/passwd")
        .finish();
    apply(&tar, &dest, WhiteoutMode::Direct).unwrap();
    assert_eq!(std::fs::read(dest.join("usr/lib/libx.so")).unwrap(), b"lib");
    assert_eq!(
        std::fs::read_link(dest.join("abs")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert_untouched(&s, &snap);
}

#[test]
fn hard_link_escapes_are_refused() {
    let (s, dest, snap) = setup("archive-hardlink");
    let tar = RawTar::new()
        .hardlink("h", "../sentinel/etc/passwd")
        .finish();
    expect_err(
        &tar,
        &dest,
        WhiteoutMode::Direct,
        ErrorKind::Escape,
        "\"h\"",
    );
    assert_untouched(&s, &snap);

    let (s, dest, snap) = setup("archive-hardlink2");
    let tar = RawTar::new()
        .hardlink("h", "../../../../../../etc/passwd")
        .finish();
    expect_err(
        &tar,
        &dest,
        WhiteoutMode::Direct,
        ErrorKind::Escape,
        "\"h\"",
    );
    assert_untouched(&s, &snap);

    // Through a symlink leading out of dest.
    let (s, dest, snap) = setup("archive-hardlink3");
    let target = s.join("sentinel/etc").display().to_string();
    let tar = RawTar::new()
        .symlink("l", &target)
        .hardlink("h", "l/passwd")
        .finish();
    expect_err(
        &tar,
        &dest,
        WhiteoutMode::Direct,
        ErrorKind::Escape,
        "\"h\"",
    );
    assert_untouched(&s, &snap);
    assert_eq!(
        std::fs::metadata(s.join("sentinel/etc/passwd"))
            .unwrap()
            .nlink(),
        1
    );

    // A hard link to a symlink links the symlink itself, never its target.
    let (s, dest, snap) = setup("archive-hardlink4");
    let tar = RawTar::new()
        .symlink("l", &s.join("sentinel/etc/passwd").display().to_string())
        .hardlink("h", "l")
        .finish();
    apply(&tar, &dest, WhiteoutMode::Direct).unwrap();
    assert!(std::fs::symlink_metadata(dest.join("h"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::metadata(s.join("sentinel/etc/passwd"))
            .unwrap()
            .nlink(),
        1
    );
    assert_untouched(&s, &snap);
}

#[test]
fn devices_and_fifos_are_kept() {
    let (s, dest, snap) = setup("archive-devices");
    let tar = RawTar::new()
        .dir("dev/")
        .entry_with("dev/null", b'3', "", b"", 0o666, |h| {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        })
        .entry_with("dev/loop0", b'4', "", b"", 0o660, |h| {
            h.set_device_major(7).unwrap();
            h.set_device_minor(0).unwrap();
            h.set_gid(6);
        })
        .entry("dev/fifo", b'6', "", b"", 0o600)
        .finish();
    apply(&tar, &dest, WhiteoutMode::Overlay).unwrap();
    let null = std::fs::symlink_metadata(dest.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(
        (
            libc::major(null.rdev()),
            libc::minor(null.rdev()),
            null.mode() & 0o7777
        ),
        (1, 3, 0o666)
    );
    let lp = std::fs::symlink_metadata(dest.join("dev/loop0")).unwrap();
    assert!(lp.file_type().is_block_device());
    assert_eq!(
        (
            libc::major(lp.rdev()),
            libc::minor(lp.rdev()),
            lp.gid(),
            lp.mode() & 0o7777
        ),
        (7, 0, 6, 0o660)
    );
    let fifo = std::fs::symlink_metadata(dest.join("dev/fifo")).unwrap();
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.mode() & 0o7777, 0o600);
    assert_untouched(&s, &snap);
}

#[test]
fn truncated_archives_are_refused() {
    let big = vec![7u8; 10_000];
    let full = RawTar::new().file("a", b"first").file("big", &big).finish();
    // Cut inside the data of "big".
    let (s, dest, snap) = setup("archive-trunc");
    expect_err(
        &full[..512 * 2 + 512 + 5000],
        &dest,
        WhiteoutMode::Overlay,
        ErrorKind::InvalidArchive,
        "big",
    );
    assert_untouched(&s, &snap);
    // Cut inside a header.
    let (s, dest, snap) = setup("archive-trunc2");
    let err = apply(&full[..1024 + 100], &dest, WhiteoutMode::Overlay).expect_err("cut header");
    assert_eq!(err.kind(), ErrorKind::InvalidArchive, "{err}");
    assert_untouched(&s, &snap);
    // Cut after a whole entry: no end-of-archive blocks.
    let (s, dest, snap) = setup("archive-trunc3");
    let err = apply(&full[..1024], &dest, WhiteoutMode::Overlay).expect_err("no end marker");
    assert_eq!(err.kind(), ErrorKind::InvalidArchive, "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");
    assert_untouched(&s, &snap);
    // The same cuts, gzip-compressed.
    let (s, dest, snap) = setup("archive-trunc4");
    let gz = gzip(&full);
    let err = apply(&gz[..gz.len() / 2], &dest, WhiteoutMode::Overlay).expect_err("cut gzip");
    assert_eq!(err.kind(), ErrorKind::InvalidArchive, "{err}");
    assert_untouched(&s, &snap);
}

#[test]
fn corrupt_gzip_is_refused() {
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    let full = RawTar::new().file("f", &data).finish();
    let gz = gzip(&full);
    let mut bad = gz.clone();
    let mid = bad.len() / 2;
    for b in &mut bad[mid..mid + 64] {
        *b ^= 0x5a;
    }
    let (s, dest, snap) = setup("archive-gzip");
    let err = apply(&bad, &dest, WhiteoutMode::Overlay).expect_err("corrupt gzip");
    assert_eq!(err.kind(), ErrorKind::InvalidArchive, "{err}");
    assert!(err.to_string().contains("gzip"), "{err}");
    assert_untouched(&s, &snap);

    // Trailing garbage after the gzip member.
    let mut trailing = gz.clone();
    trailing.extend_from_slice(b"garbage after the stream");
    let (s, dest, snap) = setup("archive-gzip2");
    let err = apply(&trailing, &dest, WhiteoutMode::Overlay).expect_err("trailing garbage");
    assert_eq!(err.kind(), ErrorKind::InvalidArchive, "{err}");
    assert_untouched(&s, &snap);

    // The intact stream applies, and its diff_id is the plain tar's sha256.
    let (_s, dest, _) = setup("archive-gzip3");
    let a = apply(&gz, &dest, WhiteoutMode::Overlay).unwrap();
    let plain = apply(&full, &_s.join("dest2"), WhiteoutMode::Overlay).unwrap();
    assert_eq!(a, plain);
    assert_eq!(a.size, full.len() as u64);
    assert_eq!(std::fs::read(dest.join("f")).unwrap(), data);
}

#[test]
fn corrupt_zstd_is_refused() {
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    let full = RawTar::new().file("f", &data).finish();
    // With a content checksum, as the zstd CLI writes by default: without one a flipped byte
    // can decode to other bytes silently (the layer digest catches that one).
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    enc.include_checksum(true).unwrap();
    std::io::Write::write_all(&mut enc, &full).unwrap();
    let zst = enc.finish().unwrap();
    assert_eq!(Compression::detect(&zst), Compression::Zstd);

    let (_s, dest, _) = setup("archive-zstd-ok");
    let a = apply(&zst, &dest, WhiteoutMode::Overlay).unwrap();
    assert_eq!(a.size, full.len() as u64);
    assert_eq!(std::fs::read(dest.join("f")).unwrap(), data);

    let mut bad = zst.clone();
    let mid = bad.len() / 2;
    for b in &mut bad[mid..mid + 64] {
        *b ^= 0x5a;
    }
    let (s, dest, snap) = setup("archive-zstd");
    let err = apply(&bad, &dest, WhiteoutMode::Overlay).expect_err("corrupt zstd");
    assert_eq!(err.kind(), ErrorKind::InvalidArchive, "{err}");
    assert!(err.to_string().contains("zstd"), "{err}");
    assert_untouched(&s, &snap);

    let mut trailing = zst.clone();
    trailing.extend_from_slice(b"garbage after the stream");
    let (s, dest, snap) = setup("archive-zstd2");
    let err = apply(&trailing, &dest, WhiteoutMode::Overlay).expect_err("trailing garbage");
    assert_eq!(err.kind(), ErrorKind::InvalidArchive, "{err}");
    assert_untouched(&s, &snap);
}

#[test]
fn digest_mismatch_is_refused() {
    let full = RawTar::new().file("f", b"data").finish();
    let (s, dest, snap) = setup("archive-digest");
    let opts = ApplyOptions {
        whiteouts: WhiteoutMode::Overlay,
        expected_diff_id: Some(format!("sha256:{}", "0".repeat(64))),
    };
    let err = apply_layer(full.as_slice(), &dest, &opts).expect_err("mismatch");
    assert_eq!(err.kind(), ErrorKind::DigestMismatch, "{err}");
    assert_untouched(&s, &snap);

    let good = apply(&full, &s.join("other"), WhiteoutMode::Overlay).unwrap();
    let opts = ApplyOptions {
        whiteouts: WhiteoutMode::Overlay,
        expected_diff_id: Some(good.diff_id.clone()),
    };
    std::fs::remove_dir_all(&dest).unwrap();
    std::fs::create_dir(&dest).unwrap();
    assert_eq!(apply_layer(full.as_slice(), &dest, &opts).unwrap(), good);
}

#[test]
fn detect_compression_by_magic() {
    assert_eq!(Compression::detect(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
    assert_eq!(
        Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
        Compression::Zstd
    );
    assert_eq!(Compression::detect(b"bin/"), Compression::None);
    assert_eq!(Compression::detect(b""), Compression::None);
}
