//! docker's `--format` on the image commands (images, history, inspect, system df): Go
//! templates, `json` rows, `table` headers aligned like Go's tabwriter, `-q`, and the exit
//! statuses of bad templates.

mod common;

use berth_testkit::Scratch;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

const BUSYBOX_ID: &str = "0d466fe76fe04368ca20d654ff473263050da99d3af48ea33ef1cd7952ab5f1a";

fn loaded(name: &str) -> (Scratch, PathBuf) {
    let s = Scratch::new(name);
    let root = s.join("root");
    common::load_fixture(&root, "busybox.oci-archive.tar");
    (s, root)
}

#[test]
fn images_templates_json_and_tables() {
    let (_s, root) = loaded("fmt-images");
    let short = &BUSYBOX_ID[..12];
    assert_eq!(
        ok(&root, &["images", "--format", "{{.Repository}}:{{.Tag}}"]),
        "localhost/busybox:latest\n"
    );

    let json = ok(&root, &["images", "--format", "json"]);
    assert_eq!(json.lines().count(), 1, "{json}");
    let row: Value = serde_json::from_str(json.trim_end()).unwrap();
    assert_eq!(
        keys(&row),
        [
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
            "VirtualSize"
        ]
    );
    assert_eq!(row["ID"], short);
    assert_eq!(row["Repository"], "localhost/busybox");
    assert_eq!(row["Containers"], "N/A");
    let size = row["Size"].as_str().unwrap();
    assert!(size.ends_with("MB"), "{size}");

    // "IMAGE ID" pads to the 12-character id plus Go's padding of 3.
    assert_eq!(
        ok(&root, &["images", "--format", "table {{.ID}}\\t{{.Size}}"]),
        format!("IMAGE ID       SIZE\n{short}   {size}\n")
    );
    assert_eq!(
        ok(
            &root,
            &[
                "image",
                "ls",
                "--format",
                "table {{.Repository}}\t{{.CreatedAt}}"
            ]
        )
        .lines()
        .next()
        .unwrap(),
        "REPOSITORY          CREATED AT"
    );

    // The default table: docker's headers, every column aligned with the row below.
    let table = ok(&root, &["images"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(
        lines[0].starts_with("REPOSITORY          TAG       IMAGE ID       CREATED "),
        "{table}"
    );
    assert!(lines[0].ends_with("SIZE"), "{table}");
    assert!(
        lines[1].starts_with(&format!("localhost/busybox   latest    {short}   ")),
        "{table}"
    );
    assert_eq!(column_starts(lines[0]), column_starts(lines[1]), "{table}");
    let digests = ok(&root, &["images", "--digests"]);
    assert!(
        digests.starts_with("REPOSITORY          TAG       DIGEST"),
        "{digests}"
    );
    assert!(
        digests.contains(row["Digest"].as_str().unwrap()),
        "{digests}"
    );

    // -q replaces the default table only; a custom format wins, as in docker.
    assert_eq!(ok(&root, &["images", "-q"]), format!("{short}\n"));
    assert_eq!(
        ok(&root, &["images", "-q", "--no-trunc"]),
        format!("sha256:{BUSYBOX_ID}\n")
    );
    assert_eq!(
        ok(&root, &["images", "-q", "--format", "{{.Tag}}"]),
        "latest\n"
    );
}

#[test]
fn history_formats() {
    let (_s, root) = loaded("fmt-history");
    let short = &BUSYBOX_ID[..12];
    let json = ok(&root, &["history", "--format", "json", "busybox"]);
    let rows: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{json}");
    assert_eq!(
        keys(&rows[0]),
        [
            "Comment",
            "CreatedAt",
            "CreatedBy",
            "CreatedSince",
            "ID",
            "Size"
        ]
    );
    assert_eq!(rows[0]["ID"], short);
    assert!(rows[0]["CreatedSince"].as_str().unwrap().ends_with(" ago"));
    // Without -H docker's CREATED is the RFC 3339 time and SIZE plain bytes.
    let raw = ok(
        &root,
        &[
            "history",
            "-H=false",
            "--format",
            "{{.CreatedSince}}|{{.Size}}",
            "busybox",
        ],
    );
    let (created, size) = raw.trim_end().split_once('|').unwrap();
    assert_eq!(created, rows[0]["CreatedAt"].as_str().unwrap());
    assert!(size.parse::<u64>().unwrap() > 1_000_000, "{raw}");

    let table = ok(&root, &["history", "busybox"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("IMAGE          CREATED "), "{table}");
    assert_eq!(
        columns(lines[0]),
        ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
    );
    assert_eq!(column_starts(lines[0]), column_starts(lines[1]), "{table}");
    assert_eq!(
        ok(&root, &["history", "-q", "busybox"]),
        format!("{short}\n")
    );
    assert_eq!(
        ok(
            &root,
            &[
                "history",
                "--format",
                "table {{.ID}}\t{{.Comment}}",
                "busybox"
            ]
        ),
        format!("IMAGE          COMMENT\n{short}   imported from tarball\n")
    );
}

/// An image with a label, imported from a one-file tarball.
fn labelled(s: &Scratch, root: &Path) {
    let dir = s.join("content");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hello"), "hi\n").unwrap();
    let tarball = s.join("content.tar");
    let st = std::process::Command::new("tar")
        .arg("-cf")
        .arg(&tarball)
        .arg("-C")
        .arg(&dir)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    ok(
        root,
        &[
            "import",
            "-c",
            "LABEL x=hello-label",
            tarball.to_str().unwrap(),
            "labelled:1",
        ],
    );
}

#[test]
fn inspect_templates() {
    let (s, root) = loaded("fmt-inspect");
    assert_eq!(
        ok(&root, &["inspect", "--format", "{{.Id}}", "busybox"]),
        format!("sha256:{BUSYBOX_ID}\n")
    );
    assert_eq!(
        ok(
            &root,
            &[
                "image",
                "inspect",
                "-f",
                "{{.Os}}/{{.Architecture}}",
                "busybox"
            ]
        ),
        "linux/amd64\n"
    );
    let rootfs: Value = serde_json::from_str(&ok(
        &root,
        &["inspect", "--format", "{{json .RootFS}}", "busybox"],
    ))
    .unwrap();
    assert_eq!(rootfs["Type"], "layers");
    assert_eq!(rootfs["Layers"].as_array().unwrap().len(), 1);

    labelled(&s, &root);
    assert_eq!(
        ok(
            &root,
            &[
                "inspect",
                "--format",
                r#"{{index .Config.Labels "x"}}"#,
                "labelled:1"
            ]
        ),
        "hello-label\n"
    );
    // A missing key of a map prints nothing through index, as Go does.
    assert_eq!(
        ok(
            &root,
            &[
                "inspect",
                "--format",
                r#"{{index .Config.Labels "y"}}"#,
                "labelled:1"
            ]
        ),
        "\n"
    );
    // One line per object, in the order asked.
    assert_eq!(
        ok(
            &root,
            &[
                "image",
                "inspect",
                "--format",
                "{{.RepoTags}}",
                "busybox",
                "labelled:1"
            ]
        ),
        "[localhost/busybox:latest]\n[labelled:1]\n"
    );

    // The default output: docker's field order and 4-space indentation.
    let out = ok(&root, &["image", "inspect", "busybox"]);
    assert!(
        out.starts_with("[\n    {\n        \"Id\": \"sha256:"),
        "{out}"
    );
    let order: Vec<usize> = [
        "\"Id\"",
        "\"RepoTags\"",
        "\"Config\"",
        "\"Os\"",
        "\"RootFS\"",
        "\"Metadata\"",
    ]
    .iter()
    .map(|k| out.find(k).unwrap())
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{out}");
    let parsed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(parsed[0]["Id"], format!("sha256:{BUSYBOX_ID}"));
    let compact = ok(&root, &["inspect", "--format", "json", "busybox"]);
    let parsed: Value = serde_json::from_str(&compact).unwrap();
    assert_eq!(parsed[0]["RepoTags"][0], "localhost/busybox:latest");
}

#[test]
fn bad_templates_are_one_line_errors() {
    let (_s, root) = loaded("fmt-bad");
    // docker: an inspect template that does not parse exits 64, without "Error:".
    for args in [
        &["inspect", "--format", "{{.Id", "busybox"][..],
        &["image", "inspect", "-f", "{{.Id", "busybox"],
    ] {
        let r = berth(&root, args);
        assert_eq!(r.code, 64, "{args:?}: {}", r.stderr);
        assert_eq!(r.stdout, "");
        assert_eq!(
            r.stderr, "template parsing error: template: :1: unclosed action\n",
            "{args:?}"
        );
    }
    // Execution errors and list-command errors: "Error: ..." and exit status 1.
    for args in [
        &["inspect", "--format", "{{.Nope}}", "busybox"][..],
        &["images", "--format", "{{.Nope}}"],
        &["images", "--format", "{{.ID"],
        &["images", "--format", "table {{nosuchfunc .ID}}"],
        &["history", "--format", "{{.Size", "busybox"],
        &["system", "df", "--format", "{{.Nope}}"],
    ] {
        let r = berth(&root, args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert_eq!(r.stdout, "", "{args:?}");
        assert!(
            r.stderr.starts_with("Error: template"),
            "{args:?}: {}",
            r.stderr
        );
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
    }
}

#[test]
fn system_df_formats() {
    let (_s, root) = loaded("fmt-df");
    let json = ok(&root, &["system", "df", "--format", "json"]);
    let rows: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(
        keys(&rows[0]),
        ["Active", "Reclaimable", "Size", "TotalCount", "Type"]
    );
    let types: Vec<&str> = rows.iter().map(|r| r["Type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["Images", "Containers", "Local Volumes", "Build Cache"]
    );
    assert_eq!(rows[0]["TotalCount"], "1");
    assert_eq!(
        ok(
            &root,
            &["system", "df", "--format", "{{.Type}}={{.TotalCount}}"]
        ),
        "Images=1\nContainers=0\nLocal Volumes=0\nBuild Cache=0\n"
    );
    let table = ok(&root, &["system", "df"]);
    assert!(
        table.starts_with("TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n"),
        "{table}"
    );
}
