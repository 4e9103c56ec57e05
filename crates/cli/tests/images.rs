//! The image commands' output shapes and exit codes, docker style.

mod common;

use berth_testkit::Scratch;
use common::*;
use serde_json::Value;

#[test]
fn load_list_inspect_history() {
    let s = Scratch::new("cli-images");
    let root = s.join("root");
    let out = ok(
        &root,
        &[
            "load",
            "-i",
            fixture("layered.docker-archive.tar").to_str().unwrap(),
        ],
    );
    assert_eq!(out, "Loaded image: localhost/layered:1\n");
    let out = ok(
        &root,
        &[
            "load",
            "-q",
            "-i",
            fixture("busybox.oci-archive.tar").to_str().unwrap(),
        ],
    );
    assert_eq!(out, "Loaded image: localhost/busybox:latest\n");

    let table = ok(&root, &["images"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0]
            .split("   ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>(),
        ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    );
    assert_eq!(lines.len(), 3);
    let row: Vec<&str> = lines
        .iter()
        .find(|l| l.starts_with("localhost/layered"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(&row[..3], ["localhost/layered", "1", "c05dcd2850d9"]);
    assert_eq!(row.last().unwrap(), &"12.7MB");
    assert!(table.contains(" ago "), "{table}");

    let json = ok(&root, &["image", "ls", "--format", "json"]);
    let rows: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    for key in [
        "Containers",
        "CreatedAt",
        "CreatedSince",
        "Digest",
        "ID",
        "Repository",
        "SharedSize",
        "Size",
        "Tag",
        "UniqueSize",
        "VirtualSize",
    ] {
        assert!(rows[0].get(key).is_some(), "json lacks {key}");
    }
    assert_eq!(ok(&root, &["images", "-q"]).lines().count(), 2);
    assert!(ok(&root, &["images", "--no-trunc", "-q"])
        .lines()
        .all(|l| l.starts_with("sha256:") && l.len() == 71));
    assert!(ok(&root, &["images", "--digests"])
        .lines()
        .next()
        .unwrap()
        .contains("DIGEST"));
    assert_eq!(
        ok(&root, &["images", "--filter", "reference=localhost/bus*"])
            .lines()
            .count(),
        2
    );
    assert_eq!(
        ok(&root, &["images", "--filter", "dangling=true"])
            .lines()
            .count(),
        1
    );
    assert_eq!(
        ok(&root, &["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .lines()
            .collect::<Vec<_>>()
            .len(),
        2
    );
    let t = ok(
        &root,
        &["images", "--format", "table {{.Repository}}\\t{{.ID}}"],
    );
    assert!(t.starts_with("REPOSITORY"), "{t}");
    assert!(t.lines().next().unwrap().contains("IMAGE ID"));

    let inspect: Value =
        serde_json::from_str(&ok(&root, &["image", "inspect", "localhost/layered:1"])).unwrap();
    let i = &inspect[0];
    assert_eq!(
        i["Id"],
        "sha256:c05dcd2850d99e276520bf83ef19708853272e3c47d0c41a85067cca11478caf"
    );
    assert_eq!(i["RepoTags"], serde_json::json!(["localhost/layered:1"]));
    assert_eq!(i["RootFS"]["Type"], "layers");
    assert_eq!(i["RootFS"]["Layers"].as_array().unwrap().len(), 4);
    assert_eq!(i["Config"]["WorkingDir"], "/data");
    assert!(i["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "LAYERED=yes"));
    assert_eq!(i["GraphDriver"]["Name"], "overlay");
    assert_eq!(
        i["GraphDriver"]["Data"]["LowerDir"]
            .as_str()
            .unwrap()
            .split(':')
            .count(),
        3
    );
    assert!(i["GraphDriver"]["Data"]["UpperDir"]
        .as_str()
        .unwrap()
        .ends_with("/diff"));
    assert_eq!(i["Os"], "linux");
    assert_eq!(i["Architecture"], "amd64");
    assert!(i["Size"].as_u64().unwrap() > 12_000_000);
    for key in [
        "RepoDigests",
        "Parent",
        "Comment",
        "Created",
        "Author",
        "Metadata",
    ] {
        assert!(i.get(key).is_some(), "inspect lacks {key}");
    }
    assert_eq!(
        ok(&root, &["inspect", "-f", "{{.Id}}", "busybox"]),
        "sha256:0d466fe76fe04368ca20d654ff473263050da99d3af48ea33ef1cd7952ab5f1a\n"
    );
    let rootfs: Value = serde_json::from_str(
        ok(
            &root,
            &["inspect", "--format", "{{json .RootFS}}", "c05dcd"],
        )
        .trim(),
    )
    .unwrap();
    assert_eq!(
        rootfs["Layers"][0],
        "sha256:de318fb297f9dbefa9f771f9615497e5542b77877f655153453b8455bb387ae9"
    );

    let h = ok(&root, &["history", "localhost/layered:1"]);
    let hl: Vec<&str> = h.lines().collect();
    for col in ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"] {
        assert!(hl[0].contains(col), "{}", hl[0]);
    }
    assert!(hl[1].starts_with("c05dcd2850d9"));
    assert!(hl[2].starts_with("<missing>"));
    assert_eq!(hl.len(), 8);
    let hj: Vec<Value> = ok(
        &root,
        &["history", "--format", "json", "localhost/layered:1"],
    )
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    assert_eq!(hj.len(), 7);
    assert!(hj
        .iter()
        .all(|e| e.get("CreatedBy").is_some() && e.get("Size").is_some()));
    assert_eq!(
        ok(&root, &["history", "-q", "busybox"]).trim(),
        "0d466fe76fe0"
    );

    let df = ok(&root, &["system", "df"]);
    let dl: Vec<&str> = df.lines().collect();
    assert!(dl[0].starts_with("TYPE") && dl[0].contains("RECLAIMABLE"));
    let images: Vec<&str> = dl[1].split_whitespace().collect();
    assert_eq!(&images[..3], ["Images", "2", "0"]);
    assert!(dl[1].ends_with("(100%)"));
}

#[test]
fn tag_rmi_prune_output() {
    let s = Scratch::new("cli-rmi");
    let root = s.join("root");
    common::load_fixture(&root, "busybox.docker-archive.tar");
    ok(&root, &["tag", "localhost/busybox", "mybox:2"]);
    assert!(ok(&root, &["images"]).contains("mybox "));
    assert_eq!(ok(&root, &["rmi", "mybox:2"]), "Untagged: mybox:2\n");
    let r = berth(&root, &["rmi", "nothere"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "Error: No such image: nothere\n")
    );
    let out = ok(&root, &["rmi", "busybox"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "Untagged: localhost/busybox:latest");
    assert_eq!(
        lines[1],
        "Deleted: sha256:0d466fe76fe04368ca20d654ff473263050da99d3af48ea33ef1cd7952ab5f1a"
    );
    assert_eq!(
        lines[2],
        "Deleted: sha256:de318fb297f9dbefa9f771f9615497e5542b77877f655153453b8455bb387ae9"
    );
    assert_eq!(ok(&root, &["images", "-q"]), "");

    common::load_fixture(&root, "busybox.docker-archive.tar");
    let out = ok(&root, &["image", "prune", "-f"]);
    assert_eq!(out, "Total reclaimed space: 0B\n");
    let out = ok(&root, &["image", "prune", "-a", "-f"]);
    assert!(
        out.starts_with(
            "Deleted Images:\nuntagged: localhost/busybox:latest\ndeleted: sha256:0d466fe"
        ),
        "{out}"
    );
    assert!(out.ends_with("Total reclaimed space: 2.14MB\n"), "{out}");
}

#[test]
fn import_with_changes() {
    let s = Scratch::new("cli-import");
    let root = s.join("root");
    let rootfs = s.join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    berth_testkit::busybox_rootfs(&rootfs).unwrap();
    let tarball = s.join("rootfs.tar.gz");
    let st = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(&rootfs)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let out = ok(
        &root,
        &[
            "import",
            "-c",
            r#"CMD ["/bin/sh", "-c", "echo hi"]"#,
            "--change",
            "ENV FOO=bar",
            "-m",
            "from a test",
            tarball.to_str().unwrap(),
            "mine:1",
        ],
    );
    assert!(
        out.starts_with("sha256:") && out.trim().len() == 71,
        "{out}"
    );
    let i: Value = serde_json::from_str(&ok(&root, &["image", "inspect", "mine:1"])).unwrap();
    assert_eq!(
        i[0]["Config"]["Cmd"],
        serde_json::json!(["/bin/sh", "-c", "echo hi"])
    );
    assert_eq!(i[0]["Config"]["Env"], serde_json::json!(["FOO=bar"]));
    assert_eq!(i[0]["Id"].as_str().unwrap(), out.trim());
    assert!(ok(&root, &["history", "mine:1"]).contains("from a test"));
    // From stdin too.
    let r: Run = berth_cmd(&root)
        .args(["import", "-", "piped"])
        .stdin(std::fs::File::open(&tarball).unwrap())
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Saved and loaded back: same id.
    let saved = s.join("mine.tar");
    ok(&root, &["save", "-o", saved.to_str().unwrap(), "mine:1"]);
    let other = s.join("other");
    assert_eq!(
        ok(&other, &["load", "-i", saved.to_str().unwrap()]),
        "Loaded image: mine:1\n"
    );
    assert_eq!(
        ok(&other, &["images", "-q", "--no-trunc"]).trim(),
        out.trim()
    );
    let r = berth(
        &root,
        &["import", "-c", "FROM scratch", tarball.to_str().unwrap()],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.starts_with("Error: invalid change"),
        "{}",
        r.stderr
    );
}

#[test]
fn load_from_stdin_and_save_to_stdout() {
    let s = Scratch::new("cli-stdio");
    let root = s.join("root");
    let r: Run = berth_cmd(&root)
        .arg("load")
        .stdin(std::fs::File::open(fixture("busybox.oci-archive.tar")).unwrap())
        .output()
        .unwrap()
        .into();
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "Loaded image: localhost/busybox:latest\n"),
        "{}",
        r.stderr
    );
    let out = berth_cmd(&root)
        .args(["save", "--format", "oci-archive", "busybox"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let other = s.join("other");
    let r: Run = berth_cmd(&other)
        .arg("load")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(&out.stdout).unwrap();
            c.wait_with_output().unwrap()
        })
        .unwrap()
        .into();
    assert_eq!(r.stdout, "Loaded image: localhost/busybox:latest\n");
    // Untagged image: saved by id, loaded as an id.
    let id = ok(&root, &["images", "-q", "--no-trunc"])
        .trim()
        .to_string();
    let saved = s.join("by-id.tar");
    ok(&root, &["save", "-o", saved.to_str().unwrap(), &id[7..19]]);
    let third = s.join("third");
    assert_eq!(
        ok(&third, &["load", "-i", saved.to_str().unwrap()]),
        format!("Loaded image ID: {id}\n")
    );
}

#[test]
fn bad_input_is_one_error_line() {
    let s = Scratch::new("cli-bad");
    let root = s.join("root");
    common::load_fixture(&root, "busybox.docker-archive.tar");
    let junk = s.join("junk.tar");
    std::fs::write(&junk, b"this is not a tar archive at all, just text").unwrap();
    for args in [
        vec!["load", "-i", junk.to_str().unwrap()],
        vec!["load", "-i", "/nonexistent/file.tar"],
        vec!["inspect", "nothere"],
        vec!["history", "nothere"],
        vec!["tag", "nothere", "x"],
        vec!["tag", "busybox", "Bad:Name"],
        vec!["save", "-o", s.join("x.tar").to_str().unwrap(), "nothere"],
    ] {
        let r = berth(&root, &args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert!(r.stderr.starts_with("Error: "), "{args:?}: {:?}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {:?}", r.stderr);
    }
    assert!(!s.join("x.tar").exists());
    assert_consistent(&root);
    assert_eq!(ok(&root, &["images", "-q"]).lines().count(), 1);
    let r = berth(&root, &["--storage-driver", "vfs", "images"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("conflicts"), "{}", r.stderr);
}
