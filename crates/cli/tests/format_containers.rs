//! docker's `--format` on the container and volume commands (ps / container ls, inspect,
//! stats --no-stream, volume ls/inspect), with a created (never started) busybox container.

mod common;

use berth_testkit::{require_busybox, unique_id, Defer, Scratch};
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn loaded(name: &str) -> (Scratch, PathBuf) {
    require_busybox();
    let s = Scratch::new(name);
    let root = s.join("root");
    common::load_fixture(&root, "busybox.oci-archive.tar");
    (s, root)
}

/// Creates a `true` container; it is removed (rm -f) when the guard drops, even on panic.
fn created(root: &Path, name: &str) -> (String, Defer<impl FnMut()>) {
    let id = ok(root, &["create", "--name", name, "busybox", "true"])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "{id}");
    let (root, rm) = (root.to_path_buf(), id.clone());
    (id, Defer(move || drop(berth(&root, &["rm", "-f", &rm]))))
}

#[test]
fn ps_formats() {
    let (_s, root) = loaded("fmt-ps");
    let name = unique_id("fmtps");
    let (id, _rm) = created(&root, &name);
    let short = &id[..12];

    assert_eq!(
        ok(&root, &["ps", "-a", "--format", "{{.Names}}\\t{{.Status}}"]),
        format!("{name}\tCreated\n")
    );
    assert_eq!(
        ok(
            &root,
            &["container", "ls", "-a", "--format", "{{.ID}} {{.State}}"]
        ),
        format!("{short} created\n")
    );
    assert_eq!(
        ok(
            &root,
            &[
                "container",
                "list",
                "-a",
                "--no-trunc",
                "--format",
                "{{.ID}}"
            ]
        ),
        format!("{id}\n")
    );
    // Not running: plain ps lists nothing, not even a header for a custom template.
    assert_eq!(ok(&root, &["ps", "--format", "{{.ID}}"]), "");

    let json = ok(&root, &["ps", "-a", "--format", "json"]);
    assert_eq!(json.lines().count(), 1, "{json}");
    let row: Value = serde_json::from_str(json.trim_end()).unwrap();
    assert_eq!(
        keys(&row),
        [
            "Command",
            "CreatedAt",
            "ID",
            "Image",
            "Labels",
            "LocalVolumes",
            "Mounts",
            "Names",
            "Networks",
            "Ports",
            "RunningFor",
            "Size",
            "State",
            "Status"
        ]
    );
    assert_eq!(row["ID"], short);
    assert_eq!(row["Image"], "busybox");
    assert_eq!(row["Command"], "\"true\"");
    assert_eq!(row["Names"], name.as_str());
    assert_eq!(row["State"], "created");

    assert_eq!(
        ok(
            &root,
            &["ps", "-a", "--format", "table {{.ID}}\t{{.Image}}"]
        ),
        format!("CONTAINER ID   IMAGE\n{short}   busybox\n")
    );
    let t = ok(
        &root,
        &[
            "ps",
            "-a",
            "--format",
            "table {{.Names}}\t{{.RunningFor}}\t{{.CreatedAt}}",
        ],
    );
    let header = t.lines().next().unwrap();
    assert_eq!(columns(header), ["NAMES", "CREATED", "CREATED AT"]);
    assert_eq!(
        column_starts(header),
        column_starts(t.lines().nth(1).unwrap()),
        "{t}"
    );

    // The default table: docker's headers, columns aligned with the row.
    let table = ok(&root, &["ps", "-a"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert_eq!(
        columns(lines[0]),
        [
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES"
        ]
    );
    assert!(
        lines[1].starts_with(&format!("{short}   busybox   \"true\"    ")),
        "{table}"
    );
    assert!(
        lines[1].ends_with(&format!("Created             {name}")),
        "{table}"
    );
    let header_cols = column_starts(lines[0]);
    let row_cols = column_starts(lines[1]);
    // The row has no PORTS cell; every other column starts under its header.
    assert_eq!(
        row_cols,
        [&header_cols[..5], &header_cols[6..]].concat(),
        "{table}"
    );
    let sized = ok(&root, &["ps", "-a", "-s"]);
    assert_eq!(
        columns(sized.lines().next().unwrap()),
        [
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES",
            "SIZE"
        ]
    );
    assert!(sized.contains("(virtual "), "{sized}");

    // -q wins over --format in ps, with docker's warning.
    let r = berth(&root, &["ps", "-aq", "--format", "{{.Names}}"]);
    assert_eq!(r.code, 0);
    assert_eq!(r.stdout, format!("{short}\n"));
    assert_eq!(
        r.stderr,
        "WARNING: Ignoring custom format, because both --format and --quiet are set.\n"
    );

    // COMMAND: arguments with spaces in single quotes (moby), the whole quoted like Go's strconv.Quote, and truncated to 20 characters unless --no-trunc.
    let quoting = unique_id("fmtq");
    let _id = ok(
        &root,
        &[
            "create",
            "--name",
            &quoting,
            "busybox",
            "sh",
            "-c",
            r#"echo "hi there""#,
        ],
    )
    .trim()
    .to_string();
    let _rm2 = Defer({
        let (root, id) = (root.clone(), _id.clone());
        move || drop(berth(&root, &["rm", "-f", &id]))
    });
    let filter = format!("name={quoting}");
    assert_eq!(
        ok(
            &root,
            &[
                "ps",
                "-a",
                "--no-trunc",
                "--filter",
                &filter,
                "--format",
                "{{.Command}}"
            ]
        ),
        "\"sh -c 'echo \\\"hi there\\\"'\"\n"
    );
    assert_eq!(
        ok(
            &root,
            &["ps", "-a", "--filter", &filter, "--format", "{{.Command}}"]
        ),
        "\"sh -c 'echo \\\"hi the…\"\n"
    );

    let r = berth(&root, &["ps", "-a", "--format", "{{.Nope}}"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.starts_with("Error: template"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}

#[test]
fn container_inspect_formats() {
    let (_s, root) = loaded("fmt-cinspect");
    let name = unique_id("fmtci");
    let (id, _rm) = created(&root, &name);
    assert_eq!(
        ok(&root, &["inspect", "--format", "{{.State.Status}}", &name]),
        "created\n"
    );
    assert_eq!(
        ok(
            &root,
            &["container", "inspect", "-f", "{{.Name}} {{.Id}}", &id[..12]]
        ),
        format!("/{name} {id}\n")
    );
    assert_eq!(
        ok(&root, &["inspect", "--format", "{{json .Args}}", &name]),
        "[]\n"
    );
    assert_eq!(
        ok(
            &root,
            &["inspect", "--format", "{{.Path}} {{.State.Running}}", &name]
        ),
        "true false\n"
    );
    // A container and an image in one call, each through the same template.
    assert_eq!(
        ok(&root, &["inspect", "--format", "{{.Id}}", &name, "busybox"]),
        format!("{id}\nsha256:0d466fe76fe04368ca20d654ff473263050da99d3af48ea33ef1cd7952ab5f1a\n")
    );
    let out = ok(&root, &["inspect", &name]);
    assert!(out.starts_with("[\n    {\n"), "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["Id"], id.as_str());
    // docker's struct order, not sorted keys: Id, Created, Path, Args, State (Status first), ...
    assert!(
        out.starts_with(&format!(
            "[\n    {{\n        \"Id\": \"{id}\",\n        \"Created\": "
        )),
        "{out}"
    );
    let at = |k: &str| {
        out.find(&format!("\n        \"{k}\": "))
            .unwrap_or_else(|| panic!("no top-level {k}: {out}"))
    };
    let order = [
        "Id",
        "Created",
        "Path",
        "Args",
        "State",
        "Image",
        "Name",
        "HostConfig",
        "GraphDriver",
        "Mounts",
        "Config",
        "NetworkSettings",
    ];
    assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "{out}");
    assert!(
        out.contains(
            "\"State\": {\n            \"Status\": \"created\",\n            \"Running\": false,"
        ),
        "{out}"
    );

    let r = berth(
        &root,
        &["container", "inspect", "--format", "{{.State", &name],
    );
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert_eq!(r.stdout, "");
    assert_eq!(
        r.stderr,
        "template parsing error: template: :1: unclosed action\n"
    );
    // Still exit 1 (and the objects found printed) when one name is missing.
    let r = berth(
        &root,
        &["inspect", "--format", "{{.Name}}", &name, "no-such-thing"],
    );
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, format!("/{name}\n"));
    assert_eq!(r.stderr, "Error: No such object: no-such-thing\n");
}

#[test]
fn stats_no_stream_formats() {
    let (_s, root) = loaded("fmt-stats");
    let name = unique_id("fmtst");
    let (id, _rm) = created(&root, &name);
    let out = ok(
        &root,
        &[
            "stats",
            "--no-stream",
            "--format",
            "{{.ID}} {{.Name}} {{.NetIO}}",
            &name,
        ],
    );
    assert_eq!(out, format!("{} {name} 0B / 0B\n", &id[..12]));
    let out = ok(&root, &["stats", "--no-stream", "--format", "json", &name]);
    let row: Value = serde_json::from_str(out.trim_end()).unwrap();
    assert_eq!(
        keys(&row),
        [
            "BlockIO",
            "CPUPerc",
            "Container",
            "ID",
            "MemPerc",
            "MemUsage",
            "Name",
            "NetIO",
            "PIDs"
        ]
    );
    let table = ok(&root, &["stats", "--no-stream", &name]);
    assert_eq!(
        columns(table.lines().next().unwrap()),
        [
            "CONTAINER ID",
            "NAME",
            "CPU %",
            "MEM USAGE / LIMIT",
            "MEM %",
            "NET I/O",
            "BLOCK I/O",
            "PIDS"
        ]
    );
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(column_starts(lines[0]), column_starts(lines[1]), "{table}");
}

#[test]
fn volume_formats() {
    let s = Scratch::new("fmt-volumes");
    let root = s.join("root");
    let name = unique_id("fmtvol");
    assert_eq!(
        ok(&root, &["volume", "create", "--label", "k=v", &name]),
        format!("{name}\n")
    );
    assert_eq!(
        ok(
            &root,
            &[
                "volume",
                "ls",
                "--format",
                "{{.Name}} {{.Driver}} {{.Labels}}"
            ]
        ),
        format!("{name} local k=v\n")
    );
    let json = ok(&root, &["volume", "ls", "--format", "json"]);
    let row: Value = serde_json::from_str(json.trim_end()).unwrap();
    assert_eq!(
        keys(&row),
        [
            "Availability",
            "Driver",
            "Group",
            "Labels",
            "Links",
            "Mountpoint",
            "Name",
            "Scope",
            "Size",
            "Status"
        ]
    );
    assert_eq!(row["Name"], name.as_str());
    assert_eq!(
        ok(
            &root,
            &["volume", "ls", "--format", "table {{.Name}}\t{{.Scope}}"]
        ),
        format!(
            "VOLUME NAME{}SCOPE\n{name}   local\n",
            " ".repeat(name.len() + 3 - 11)
        )
    );
    assert_eq!(
        ok(&root, &["volume", "ls"]),
        format!("DRIVER    VOLUME NAME\nlocal     {name}\n")
    );
    assert_eq!(ok(&root, &["volume", "ls", "-q"]), format!("{name}\n"));
    assert_eq!(
        ok(
            &root,
            &["volume", "inspect", "-f", "{{.Name}} {{.Labels}}", &name]
        ),
        format!("{name} map[k:v]\n")
    );
    let r = berth(&root, &["volume", "inspect", "-f", "{{.Name", &name]);
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert_eq!(
        r.stderr,
        "template parsing error: template: :1: unclosed action\n"
    );
    // system df counts it: unused, so all of its size is reclaimable.
    let mountpoint = ok(
        &root,
        &["volume", "inspect", "-f", "{{.Mountpoint}}", &name],
    );
    std::fs::write(
        Path::new(mountpoint.trim_end()).join("data"),
        vec![7u8; 5000],
    )
    .unwrap();
    let df = ok(
        &root,
        &[
            "system",
            "df",
            "--format",
            "{{.Type}}|{{.TotalCount}}|{{.Active}}|{{.Size}}|{{.Reclaimable}}",
        ],
    );
    assert!(df.contains("Local Volumes|1|0|5kB|5kB (100%)\n"), "{df}");
    ok(&root, &["volume", "rm", &name]);
}
