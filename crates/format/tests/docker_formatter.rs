//! Expected outputs from docker/cli's formatter tests (cli/command/formatter/container_test.go,
//! image_test.go) with today's tabwriter settings (minwidth 10, padding 3).

use berth_format::{render_list, Headers};
use serde_json::{json, Value};

const PS_HEADERS: Headers = Headers(&[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
]);
const PS_TABLE: &str =
    "table {{.ID}}\\t{{.Image}}\\t{{.Command}}\\t{{.RunningFor}}\\t{{.Status}}\\t{{.Ports}}\\t{{.Names}}";

const IMAGE_HEADERS: Headers = Headers(&[
    ("ID", "IMAGE ID"),
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("Digest", "DIGEST"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
    ("Containers", "CONTAINERS"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
]);
const IMAGES_TABLE: &str =
    "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.CreatedSince}}\\t{{.Size}}";

/// The two containers of TestContainerContextWrite, as `ps` rows.
fn containers() -> Vec<Value> {
    ["containerID1", "containerID2"]
        .iter()
        .zip(["foobar_baz", "foobar_bar"])
        .map(|(id, name)| {
            json!({"Command": "\"\"", "CreatedAt": "2024-01-01 00:00:00 +0000 UTC", "ID": id, "Image": "ubuntu",
                   "Labels": "", "LocalVolumes": "0", "Mounts": "", "Names": name, "Networks": "", "Ports": "",
                   "RunningFor": "24 hours ago", "Size": "0B", "State": "running", "Status": ""})
        })
        .collect()
}

fn ps(format: &str) -> String {
    render_list(Some(format), PS_TABLE, &PS_HEADERS, &containers()).unwrap()
}

#[test]
fn ps_default_table() {
    let want = "CONTAINER ID   IMAGE     COMMAND   CREATED        STATUS    PORTS     NAMES\n\
                containerID1   ubuntu    \"\"        24 hours ago                       foobar_baz\n\
                containerID2   ubuntu    \"\"        24 hours ago                       foobar_bar\n";
    assert_eq!(ps("table"), want);
    assert_eq!(
        render_list(None, PS_TABLE, &PS_HEADERS, &containers()).unwrap(),
        want
    );
    assert_eq!(
        render_list(Some(""), PS_TABLE, &PS_HEADERS, &containers()).unwrap(),
        want
    );
}

#[test]
fn ps_default_table_with_size() {
    let with_size = format!("{PS_TABLE}\\t{{{{.Size}}}}");
    assert_eq!(
        ps(&with_size),
        "CONTAINER ID   IMAGE     COMMAND   CREATED        STATUS    PORTS     NAMES        SIZE\n\
         containerID1   ubuntu    \"\"        24 hours ago                       foobar_baz   0B\n\
         containerID2   ubuntu    \"\"        24 hours ago                       foobar_bar   0B\n"
    );
}

#[test]
fn table_with_chosen_columns() {
    assert_eq!(ps("table {{.Image}}"), "IMAGE\nubuntu\nubuntu\n");
    assert_eq!(ps("table {{.State}}"), "STATE\nrunning\nrunning\n");
    assert_eq!(
        ps("table {{.ID}}\t{{.Names}}"),
        "CONTAINER ID   NAMES\ncontainerID1   foobar_baz\ncontainerID2   foobar_bar\n"
    );
    // The escaped form users type in a shell works too.
    assert_eq!(
        ps("table {{.ID}}\\t{{.Names}}"),
        ps("table {{.ID}}\t{{.Names}}")
    );
    assert_eq!(
        ps("table {{split .Image \":\"}}"),
        "IMAGE\n[ubuntu]\n[ubuntu]\n"
    );
}

#[test]
fn custom_format_one_line_per_row() {
    assert_eq!(ps("{{.Image}}"), "ubuntu\nubuntu\n");
    assert_eq!(
        ps("{{.ID}}: {{.Names}}\\n"),
        "containerID1: foobar_baz\n\ncontainerID2: foobar_bar\n\n"
    );
}

#[test]
fn special_headers() {
    // TestContainerContextWrite "Special headers for customized table format": functions pass
    // the header name through, except pad, which pads it like the cells.
    let f = "table {{truncate .ID 5}}\\t{{json .Image}} {{.RunningFor}}/{{title .Status}}/{{pad .Ports 2 2}}.{{upper .Names}} {{lower .Status}}";
    assert_eq!(
        ps(f),
        "CONTAINER ID   IMAGE CREATED/STATUS/  PORTS  .NAMES STATUS\n\
         conta          \"ubuntu\" 24 hours ago//.FOOBAR_BAZ \n\
         conta          \"ubuntu\" 24 hours ago//.FOOBAR_BAR \n"
    );
}

#[test]
fn no_rows() {
    let none: Vec<Value> = Vec::new();
    let r = |f: &str| render_list(Some(f), PS_TABLE, &PS_HEADERS, &none).unwrap();
    assert_eq!(r("{{.Image}}"), "");
    assert_eq!(r("table {{.Image}}"), "IMAGE\n");
    assert_eq!(r("table {{.Image}}\t{{.Size}}"), "IMAGE     SIZE\n");
    assert_eq!(r("json"), "");
    // A field no header names still gets one, from its name.
    assert_eq!(r("table {{.Foo}}\t{{.Image}}"), "FOO       IMAGE\n");
}

#[test]
fn json_lines() {
    let out = ps("json");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[0],
        r#"{"Command":"\"\"","CreatedAt":"2024-01-01 00:00:00 +0000 UTC","ID":"containerID1","Image":"ubuntu","Labels":"","LocalVolumes":"0","Mounts":"","Names":"foobar_baz","Networks":"","Ports":"","RunningFor":"24 hours ago","Size":"0B","State":"running","Status":""}"#
    );
    // `{{json .}}` is what docker runs for `json`.
    assert_eq!(ps("{{json .}}"), out);
    assert_eq!(ps("{{json .ID}}"), "\"containerID1\"\n\"containerID2\"\n");
}

#[test]
fn json_rows_escape_html_like_json_marshal() {
    // `docker images --format json` prints "\u003cnone\u003e": rows go through json.Marshal.
    // A single field goes through docker's json function, which does not escape.
    let rows = vec![json!({"Repository": "<none>", "Tag": "a&b"})];
    let r = |f: &str| render_list(Some(f), IMAGES_TABLE, &IMAGE_HEADERS, &rows).unwrap();
    assert_eq!(
        r("json"),
        "{\"Repository\":\"\\u003cnone\\u003e\",\"Tag\":\"a\\u0026b\"}\n"
    );
    assert_eq!(r("{{json .}}"), r("json"));
    assert_eq!(
        r("{{json .Repository}} {{json .Tag}}"),
        "\"<none>\" \"a&b\"\n"
    );
}

#[test]
fn errors_are_one_line() {
    let e = render_list(
        Some("{{InvalidFunction}}"),
        PS_TABLE,
        &PS_HEADERS,
        &containers(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "template parsing error: template: :1: function \"InvalidFunction\" not defined"
    );
    assert!(matches!(e, berth_format::Error::Parse(_)));
    let e = render_list(Some("{{nil}}"), PS_TABLE, &PS_HEADERS, &containers()).unwrap_err();
    assert!(e.to_string().ends_with("nil is not a command"), "{e}");
    let e = render_list(Some("{{.Nope}}"), PS_TABLE, &PS_HEADERS, &containers()).unwrap_err();
    assert!(e.to_string().contains("can't evaluate field Nope"), "{e}");
    assert!(matches!(e, berth_format::Error::Exec(_)));
    let e = render_list(Some("table {{.ID"), PS_TABLE, &PS_HEADERS, &containers()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "template parsing error: template: :1: unclosed action"
    );
    // A multi-line template's error is still one line.
    let e = render_list(
        Some("{{if .ID}}\n{{.ID}}"),
        PS_TABLE,
        &PS_HEADERS,
        &containers(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "template parsing error: template: :2: unexpected EOF"
    );
}

#[test]
fn header_keeps_columns_before_a_failing_action() {
    // docker ignores header errors and keeps what was printed: `.State.Pid` has no header
    // (STATE is a string), so only NAMES remains, with its column.
    let rows = vec![json!({"Names": "web", "State": {"Pid": 42}})];
    let out = render_list(
        Some("table {{.Names}}\t{{.State.Pid}}"),
        PS_TABLE,
        &PS_HEADERS,
        &rows,
    )
    .unwrap();
    assert_eq!(out, "NAMES     \nweb       42\n");
}

fn images() -> Vec<Value> {
    vec![
        json!({"Containers": "N/A", "CreatedAt": "2024-01-01 00:00:00 +0000 UTC", "CreatedSince": "24 hours ago",
               "Digest": "sha256:cbbf2f9a99b47fc460d422812b6a5adff7dfee951d8fa2e4a98caa0382cfbdbf", "ID": "imageID1",
               "Repository": "image", "SharedSize": "N/A", "Size": "0B", "Tag": "tag1", "UniqueSize": "N/A", "VirtualSize": "0B"}),
        json!({"Containers": "N/A", "CreatedAt": "2024-01-01 00:00:00 +0000 UTC", "CreatedSince": "24 hours ago",
               "Digest": "<none>", "ID": "imageID2", "Repository": "image", "SharedSize": "N/A", "Size": "0B",
               "Tag": "tag2", "UniqueSize": "N/A", "VirtualSize": "0B"}),
        json!({"Containers": "N/A", "CreatedAt": "2024-01-01 00:00:00 +0000 UTC", "CreatedSince": "24 hours ago",
               "Digest": "<none>", "ID": "imageID3", "Repository": "<none>", "SharedSize": "N/A", "Size": "0B",
               "Tag": "<none>", "UniqueSize": "N/A", "VirtualSize": "0B"}),
    ]
}

#[test]
fn images_tables() {
    let r = |f: Option<&str>| render_list(f, IMAGES_TABLE, &IMAGE_HEADERS, &images()).unwrap();
    assert_eq!(
        r(None),
        "REPOSITORY   TAG       IMAGE ID   CREATED        SIZE\n\
         image        tag1      imageID1   24 hours ago   0B\n\
         image        tag2      imageID2   24 hours ago   0B\n\
         <none>       <none>    imageID3   24 hours ago   0B\n"
    );
    assert_eq!(
        r(Some("table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}")),
        "REPOSITORY   TAG       DIGEST                                                                    IMAGE ID\n\
         image        tag1      sha256:cbbf2f9a99b47fc460d422812b6a5adff7dfee951d8fa2e4a98caa0382cfbdbf   imageID1\n\
         image        tag2      <none>                                                                    imageID2\n\
         <none>       <none>    <none>                                                                    imageID3\n"
    );
    assert_eq!(
        r(Some("table {{.Repository}}")),
        "REPOSITORY\nimage\nimage\n<none>\n"
    );
    assert_eq!(
        r(Some("{{.Repository}}:{{.Tag}}")),
        "image:tag1\nimage:tag2\n<none>:<none>\n"
    );
}
