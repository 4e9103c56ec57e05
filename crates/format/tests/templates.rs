//! Go text/template behaviour on docker-shaped data: printing like Go, docker's functions,
//! range/with/if, and inspect output.

use berth_format::{render_inspect, template};
use serde_json::{json, Value};

fn run(t: &str, data: &Value) -> String {
    template(t)
        .unwrap_or_else(|e| panic!("{t}: {e}"))
        .execute(data)
        .unwrap_or_else(|e| panic!("{t}: {e}"))
}

fn container() -> Value {
    json!({
        "Id": "4a5b6c7d8e9f00112233445566778899aabbccddeeff00112233445566778899",
        "Name": "/web",
        "Args": ["-c", "echo hi"],
        "State": {"Status": "running", "Running": true, "Paused": false, "Pid": 4242, "ExitCode": 0,
                  "StartedAt": "2024-01-01T00:00:00Z", "Health": null},
        "Config": {"Env": ["PATH=/usr/bin", "A=b"], "Cmd": ["sh"], "Labels": {"com.example.z": "last", "com.example.a": "first"},
                   "Entrypoint": null, "Volumes": null},
        "Mounts": [{"Type": "volume", "Source": "/var/lib/berth/volumes/data", "Destination": "/data", "RW": true},
                   {"Type": "bind", "Source": "/etc/hosts", "Destination": "/etc/hosts", "RW": false}],
        "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.2", "Gateway": "172.17.0.1"},
                                         "backend": {"IPAddress": "10.0.0.5", "Gateway": "10.0.0.1"}}},
        "SizeRw": 18446744073709551615u64,
        "CpuPercent": 0.25,
        "Whole": 3.0,
        "Tiny": 0.0000015,
        "Big": 12345678.5,
        "Empty": [],
        "NoLabels": {}
    })
}

#[test]
fn fields_and_nesting() {
    let c = container();
    assert_eq!(run("{{.Name}}", &c), "/web");
    assert_eq!(
        run(
            "{{.State.Pid}} {{.State.Status}} {{.State.Running}} {{.State.Paused}}",
            &c
        ),
        "4242 running true false"
    );
    assert_eq!(
        run("{{.NetworkSettings.Networks.bridge.IPAddress}}", &c),
        "172.17.0.2"
    );
    assert_eq!(
        run("{{$.Name}}{{with .State}}:{{.Pid}}:{{$.Name}}{{end}}", &c),
        "/web:4242:/web"
    );
}

#[test]
fn values_print_like_go() {
    let c = container();
    assert_eq!(run("{{.Args}}", &c), "[-c echo hi]");
    assert_eq!(
        run("{{.Config.Labels}}", &c),
        "map[com.example.a:first com.example.z:last]"
    );
    assert_eq!(run("{{.NoLabels}} {{.Empty}}", &c), "map[] []");
    assert_eq!(
        run("{{.State.Health}} {{.Config.Entrypoint}}", &c),
        "<nil> <nil>"
    );
    assert_eq!(run("{{.Config.Labels.missing}}", &c), "<no value>");
    // Integers exact, integral floats as integers, other floats as Go's %v.
    assert_eq!(run("{{.SizeRw}}", &c), "18446744073709551615");
    assert_eq!(
        run("{{.CpuPercent}} {{.Whole}} {{.Tiny}} {{.Big}}", &c),
        "0.25 3 1.5e-06 1.23456785e+07"
    );
    // Objects with Go field names print as structs: values only, in key order.
    assert_eq!(
        run("{{.NetworkSettings.Networks.bridge}}", &c),
        "{172.17.0.1 172.17.0.2}"
    );
    assert_eq!(
        run("{{.Mounts}}", &c),
        "[{/data true /var/lib/berth/volumes/data volume} {/etc/hosts false /etc/hosts bind}]"
    );
}

#[test]
fn struct_fields_print_in_order() {
    // Objects with Go field names print as structs: values only, in the data's key order
    // (sorted here, as serde_json keeps keys without preserve_order).
    let v = json!({"State": {"Pid": 1, "Running": true, "Status": "up"}});
    assert_eq!(run("{{.State}}", &v), "{1 true up}");
}

#[test]
fn index_on_labels() {
    let c = container();
    assert_eq!(
        run(r#"{{index .Config.Labels "com.example.a"}}"#, &c),
        "first"
    );
    // Go's index gives the zero value ("" for string maps) for a missing key or a nil map.
    assert_eq!(run(r#"[{{index .Config.Labels "nope"}}]"#, &c), "[]");
    assert_eq!(run(r#"[{{index .Config.Volumes "nope"}}]"#, &c), "[]");
    assert_eq!(run("{{index .Args 1}}", &c), "echo hi");
    assert_eq!(
        run(
            r#"{{(index .NetworkSettings.Networks "backend").IPAddress}}"#,
            &c
        ),
        "10.0.0.5"
    );
    assert!(template("{{index .Args 5}}")
        .unwrap()
        .execute(&c)
        .unwrap_err()
        .to_string()
        .contains("index out of range"));
}

#[test]
fn range_and_conditionals() {
    let c = container();
    assert_eq!(
        run("{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}", &c),
        "/var/lib/berth/volumes/data:/data /etc/hosts:/etc/hosts "
    );
    // Maps range in key order, with key and value variables.
    assert_eq!(
        run(
            "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}",
            &c
        ),
        "com.example.a=first;com.example.z=last;"
    );
    assert_eq!(
        run(
            "{{range $net, $s := .NetworkSettings.Networks}}{{$net}} {{$s.IPAddress}} {{.Gateway}}|{{end}}",
            &c
        ),
        "backend 10.0.0.5 10.0.0.1|bridge 172.17.0.2 172.17.0.1|"
    );
    assert_eq!(
        run(
            "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
            &c
        ),
        "10.0.0.5 172.17.0.2 "
    );
    assert_eq!(
        run(
            "{{range $i, $a := .Args}}{{if $i}},{{end}}{{$i}}={{$a}}{{end}}",
            &c
        ),
        "0=-c,1=echo hi"
    );
    assert_eq!(
        run("{{range $a := .Args}}<{{$a}}>{{end}}", &c),
        "<-c><echo hi>"
    );
    // else runs only for an empty or nil collection.
    assert_eq!(run("{{range .Args}}x{{else}}none{{end}}", &c), "xx");
    assert_eq!(run("{{range .Empty}}x{{else}}none{{end}}", &c), "none");
    assert_eq!(
        run("{{range .Config.Entrypoint}}x{{else}}nil{{end}}", &c),
        "nil"
    );
    // Falsy elements still become dot.
    assert_eq!(
        run("{{range .L}}[{{.}}]{{end}}", &json!({"L": ["", false, 0]})),
        "[][false][0]"
    );
    // Nested ranges, and variables from outside.
    assert_eq!(
        run(
            "{{$n := .Name}}{{range .Mounts}}{{range $.Args}}{{$n}}{{end}}{{end}}",
            &c
        ),
        "/web/web/web/web"
    );
    assert_eq!(
        run(
            "{{if .State.Running}}up{{else if .State.Paused}}paused{{else}}down{{end}}",
            &c
        ),
        "up"
    );
    assert_eq!(
        run(
            r#"{{if eq .State.Status "running" "paused"}}live{{end}}"#,
            &c
        ),
        "live"
    );
    assert_eq!(
        run("{{if and .State.Running (gt .State.Pid 1)}}ok{{end}}", &c),
        "ok"
    );
    assert_eq!(
        run(
            "{{with .State.Health}}{{.Status}}{{else}}no health{{end}}",
            &c
        ),
        "no health"
    );
    assert_eq!(
        run("{{len .Mounts}} {{len .Config.Labels}} {{len .Name}}", &c),
        "2 2 4"
    );
}

#[test]
fn trim_markers_and_comments() {
    let c = container();
    assert_eq!(
        run("{{- range .Args -}}\n  {{.}}\n{{- end -}}\n", &c),
        "-cecho hi"
    );
    assert_eq!(run("a {{/* note */}}b {{- /* trimmed */ -}} c", &c), "a bc");
}

#[test]
fn docker_functions() {
    let c = container();
    assert_eq!(
        run("{{json .State}}", &c),
        r#"{"ExitCode":0,"Health":null,"Paused":false,"Pid":4242,"Running":true,"StartedAt":"2024-01-01T00:00:00Z","Status":"running"}"#
    );
    assert_eq!(
        run(
            "{{json .Args}} {{json .Name}} {{json .SizeRw}} {{json .Tiny}} {{json .Config.Labels}}",
            &c
        ),
        r#"["-c","echo hi"] "/web" 18446744073709551615 0.0000015 {"com.example.a":"first","com.example.z":"last"}"#
    );
    assert_eq!(
        run(r#"{{join .Args " "}}|{{join .Config.Env ","}}"#, &c),
        "-c echo hi|PATH=/usr/bin,A=b"
    );
    assert_eq!(
        run(
            r#"{{split "a:b::c" ":"}} {{len (split "" ",")}} {{index (split .Name "/") 1}}"#,
            &c
        ),
        "[a b  c] 1 web"
    );
    assert_eq!(
        run(
            r#"{{upper "abc é"}} {{lower "ABC É"}} {{title "hello wide-world foo_bar"}}"#,
            &c
        ),
        "ABC É abc é Hello Wide-World Foo_bar"
    );
    assert_eq!(
        run(
            "{{truncate .Id 12}}|{{truncate \"ab\" 5}}|{{truncate \"日本語\" 4}}",
            &c
        ),
        "4a5b6c7d8e9f|ab|日"
    );
    assert_eq!(run(r#"[{{pad "x" 2 1}}][{{pad "" 2 1}}]"#, &c), "[  x ][]");
    assert_eq!(run("{{println .Name .State.Pid}}", &c), "/web 4242\n");
    assert_eq!(
        run("{{print .State.Pid .State.ExitCode \"s\" 1}}", &c),
        "4242 0s1"
    );
    assert_eq!(
        run(
            r#"{{printf "%-8s|%5d|%05.1f|%x|%q|%t|%v" "ab" .State.Pid .CpuPercent 255 "q\"" true .Args}}"#,
            &c
        ),
        r#"ab      | 4242|000.2|ff|"q\""|true|[-c echo hi]"#
    );
    assert_eq!(
        run(r#"{{printf "%s %s" "a"}}|{{printf "%d%%" 5}}"#, &c),
        "a %!s(MISSING)|5%"
    );
    assert_eq!(run(r#"{{.Name | printf "%s!" | upper}}"#, &c), "/WEB!");
}

#[test]
fn json_escapes_like_docker() {
    // docker's json function turns HTML escaping off; Go still escapes U+2028/U+2029.
    let v = json!({"S": "<a href=\"x\">&</a>\u{2028}\t\u{1}"});
    assert_eq!(
        run("{{json .S}}", &v),
        r#""<a href=\"x\">&</a>\u2028\t\u0001""#
    );
}

#[test]
fn errors() {
    let c = container();
    let exec = |t: &str| template(t).unwrap().execute(&c).unwrap_err().to_string();
    assert!(exec("{{.Nope}}").contains("can't evaluate field Nope"));
    assert!(exec("{{.State.Nope}}").contains("can't evaluate field Nope"));
    assert!(exec("{{join .State \",\"}}").contains("wrong type for value; expected []string"));
    assert!(exec("{{range .Name}}{{end}}").contains("range can't iterate over /web"));
    let parse = |t: &str| template(t).err().expect("parse error").to_string();
    assert_eq!(
        parse("{{range}}"),
        "template parsing error: template: :1: missing value for range"
    );
    assert_eq!(
        parse("{{end}}"),
        "template parsing error: template: :1: unexpected {{end}}"
    );
    assert_eq!(
        parse("ok\n{{bogus .}}"),
        "template parsing error: template: :2: function \"bogus\" not defined"
    );
    assert_eq!(
        parse("a {{ .Name"),
        "template parsing error: template: :1: unclosed action"
    );
}

#[test]
fn inspect_default_is_docker_indented_json() {
    let objs = vec![
        json!({"Id": "abc", "Args": [], "Config": {"Labels": {}, "Cmd": ["sh", "-c", "a && b > c"]}, "Size": 0, "F": 0.5, "N": null}),
    ];
    assert_eq!(
        render_inspect(None, &objs).unwrap(),
        "[\n    {\n        \"Args\": [],\n        \"Config\": {\n            \"Cmd\": [\n                \"sh\",\n                \"-c\",\n                \"a && b > c\"\n            ],\n            \"Labels\": {}\n        },\n        \"F\": 0.5,\n        \"Id\": \"abc\",\n        \"N\": null,\n        \"Size\": 0\n    }\n]\n"
    );
    assert_eq!(render_inspect(Some(""), &[]).unwrap(), "[]\n");
    assert_eq!(
        render_inspect(Some("json"), &objs).unwrap(),
        "[{\"Args\":[],\"Config\":{\"Cmd\":[\"sh\",\"-c\",\"a && b > c\"],\"Labels\":{}},\"F\":0.5,\"Id\":\"abc\",\"N\":null,\"Size\":0}]\n"
    );
}

#[test]
fn inspect_templates() {
    let objs = vec![container(), json!({"Name": "/db", "State": {"Pid": 7}})];
    assert_eq!(
        render_inspect(Some("{{.Name}}"), &objs).unwrap(),
        "/web\n/db\n"
    );
    assert_eq!(
        render_inspect(Some("{{.State.Pid}}"), &objs).unwrap(),
        "4242\n7\n"
    );
    // No \t replacement for inspect, as in docker.
    assert_eq!(
        render_inspect(Some("{{.Name}}\\t"), &objs[1..]).unwrap(),
        "/db\\t\n"
    );
    assert_eq!(render_inspect(Some("{{.Name}}"), &[]).unwrap(), "\n");
    let e = render_inspect(Some("{{.Name"), &objs).unwrap_err();
    assert!(matches!(e, berth_format::Error::Parse(_)));
}
