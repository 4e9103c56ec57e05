//! docker's `{{.Label "key"}}` method on listing rows (ps, volume ls, ...), next to `{{.Labels}}`
//! and docker's functions, as `docker ps --format` runs them.

use berth_format::{render_list, template, Headers};
use serde_json::json;

const H: Headers = Headers(&[
    ("ID", "CONTAINER ID"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
]);

fn rows() -> Vec<serde_json::Value> {
    vec![
        json!({"ID": "4a5b6c7d8e9f", "Names": "web", "Labels": "com.example.vendor=ACME,tier=front,solo="}),
        json!({"ID": "0123456789ab", "Names": "db", "Labels": ""}),
    ]
}

fn list(f: &str) -> String {
    render_list(Some(f), "table {{.ID}}", &H, &rows()).unwrap_or_else(|e| panic!("{f}: {e}"))
}

#[test]
fn label_method_on_rows() {
    assert_eq!(list(r#"{{.Names}} {{.Label "tier"}}"#), "web front\ndb \n");
    assert_eq!(
        list(r#"{{.Label "com.example.vendor"}}|{{.Label "solo"}}|{{.Label "nope"}}"#),
        "ACME||\n||\n"
    );
    assert_eq!(
        list(r#"{{.Labels}}"#),
        "com.example.vendor=ACME,tier=front,solo=\n\n"
    );
    // In pipelines, parentheses, conditions, with docker's functions.
    assert_eq!(list(r#"{{.Label "tier" | upper}}"#), "FRONT\n\n");
    assert_eq!(
        list(r#"{{if eq (.Label "tier") "front"}}F{{else}}-{{end}}"#),
        "F\n-\n"
    );
    assert_eq!(
        list(r#"{{lower (.Label "com.example.vendor")}}{{json (.Label "tier")}}"#),
        "acme\"front\"\n\"\"\n"
    );
    // Quoted text is left alone.
    assert_eq!(
        list(r#"{{printf "%s .Label x" .Names}}"#),
        "web .Label x\ndb .Label x\n"
    );
    // The table header of a label column is its last dotted part, as docker's.
    assert_eq!(
        list(r#"table {{.Names}}\t{{.Label "com.example.vendor"}}"#),
        "NAMES     VENDOR\nweb       ACME\ndb        \n"
    );
}

#[test]
fn docker_functions_on_rows() {
    assert_eq!(
        list(r#"{{join (split .Labels ",") " "}}"#),
        "com.example.vendor=ACME tier=front solo=\n\n"
    );
    assert_eq!(
        list(r#"{{title .Names}} {{truncate (upper .ID) 4}}"#),
        "Web 4A5B\nDb 0123\n"
    );
    assert_eq!(list(r#"[{{pad .Names 1 2}}]"#), "[ web  ]\n[ db  ]\n");
    assert_eq!(list("{{println .Names}}"), "web\n\ndb\n\n");
    assert_eq!(
        list("{{json .}}").lines().next().unwrap(),
        r#"{"ID":"4a5b6c7d8e9f","Labels":"com.example.vendor=ACME,tier=front,solo=","Names":"web"}"#
    );
    assert_eq!(
        list("table {{.ID}}"),
        "CONTAINER ID\n4a5b6c7d8e9f\n0123456789ab\n"
    );
    // A method needs its argument, as in Go.
    assert!(template(r#"{{.Label}}"#)
        .unwrap()
        .execute(&rows()[0])
        .is_err());
}
