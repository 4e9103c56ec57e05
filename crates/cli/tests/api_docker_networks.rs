//! Networks through `berth serve`: the docker CLI's network commands, and Debian's
//! docker-compose (1.29) bringing a two-service project up and down (a user network, a named
//! volume, a published port on 127.0.0.1). Traffic goes only to loopback and to the test's own
//! containers; every wait is bounded.

mod apikit;
mod common;

use apikit::{wait_until, Server};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The first object `docker ... inspect` prints.
fn inspect(s: &Server, args: &[&str]) -> Value {
    let v: Value = serde_json::from_str(&s.ok(args)).unwrap();
    v[0].clone()
}

#[test]
fn docker_cli_network_commands() {
    let s = Server::new("api-net");
    let id = s.ok(&[
        "network",
        "create",
        "--label",
        "team=a",
        "--subnet",
        "10.231.7.0/24",
        "app",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    s.ok(&["network", "create", "spare"]);
    // A name taken is docker's conflict.
    let r = s.docker(&["network", "create", "app"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("app"), "{}", r.stderr);
    let ls = s.ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    let mut names: Vec<&str> = ls.lines().collect();
    names.sort();
    assert_eq!(names, ["app bridge", "bridge bridge", "spare bridge"]);
    assert_eq!(
        s.ok(&["network", "ls", "-q", "--filter", "label=team=a"])
            .trim(),
        &id[..12]
    );
    let net = inspect(&s, &["network", "inspect", "app"]);
    assert_eq!(net["Id"], id);
    assert_eq!(net["IPAM"]["Config"][0]["Subnet"], "10.231.7.0/24");
    assert_eq!(net["Labels"]["team"], "a");

    // A container on the network, another connected later with an alias: names resolve.
    s.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "app",
        "busybox",
        "sleep",
        "60",
    ]);
    s.ok(&["run", "-d", "--name", "other", "busybox", "sleep", "60"]);
    s.ok(&["network", "connect", "--alias", "friend", "app", "other"]);
    let net = inspect(&s, &["network", "inspect", "app"]);
    let members: Vec<&str> = net["Containers"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["Name"].as_str().unwrap())
        .collect();
    assert_eq!(members.len(), 2, "{net}");
    assert!(members.contains(&"web") && members.contains(&"other"));
    let ip = inspect(&s, &["container", "inspect", "other"])["NetworkSettings"]["Networks"]["app"]
        ["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ip.starts_with("10.231.7."), "{ip}");
    let looked = s.ok(&["exec", "web", "nslookup", "friend"]);
    assert!(looked.contains(&ip), "{looked}");
    // In use: rm refuses (docker's 403), prune leaves it, disconnect frees it.
    let r = s.docker(&["network", "rm", "app"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("active endpoints"), "{}", r.stderr);
    let pruned = s.ok(&["network", "prune", "-f"]);
    assert!(
        pruned.contains("spare") && !pruned.contains("app"),
        "{pruned}"
    );
    s.ok(&["network", "disconnect", "app", "other"]);
    let net = inspect(&s, &["network", "inspect", "app"]);
    assert_eq!(net["Containers"].as_object().unwrap().len(), 1, "{net}");
    let r = s.docker(&["network", "inspect", "nope"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("nope"), "{}", r.stderr);
    s.ok(&["rm", "-f", "web", "other"]);
    assert_eq!(s.ok(&["network", "rm", "app"]).trim(), "app");
    assert_eq!(
        s.ok(&["network", "ls", "--format", "{{.Name}}"]).trim(),
        "bridge"
    );
}

const COMPOSE: &str = r#"version: "2.4"
services:
  web:
    image: busybox
    command: ["sh", "-c", "echo served-by-web > /data/index.html && exec httpd -f -p 8080 -h /data"]
    volumes:
      - site:/data
    ports:
      - "127.0.0.1:PORT:8080"
    networks: [back]
    stop_grace_period: 1s
  client:
    image: busybox
    command: ["sleep", "120"]
    networks: [back]
    stop_grace_period: 1s
volumes:
  site: {}
networks:
  back: {}
"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.0 GET to 127.0.0.1:port; None while nothing answers.
fn get(port: u16) -> Option<String> {
    let mut c = TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    c.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    c.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn docker_compose_up_and_down() {
    let s = Server::new("api-compose");
    let dir = s.scratch.join("project");
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    std::fs::write(
        dir.join("docker-compose.yml"),
        COMPOSE.replace("PORT", &port.to_string()),
    )
    .unwrap();
    let compose = |args: &[&str]| {
        let o = Command::new("docker-compose")
            .args(["--project-name", "demo"])
            .args(args)
            .current_dir(&dir)
            .env("DOCKER_HOST", format!("unix://{}", s.sock.display()))
            .env("DOCKER_CONFIG", s.scratch.join("docker-config"))
            .env_remove("COMPOSE_FILE")
            .stdin(Stdio::null())
            .output()
            .expect(
                "docker-compose (Debian package docker-compose: scripts/test-deps installs it)",
            );
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        );
        assert!(o.status.success(), "docker-compose {args:?}: {out}{err}");
        out
    };
    compose(&["up", "-d"]);
    // compose's names, labels, network, volume and port, as docker would have them.
    let ps = s.ok(&[
        "ps",
        "--filter",
        "label=com.docker.compose.project=demo",
        "--format",
        "{{.Names}}",
    ]);
    let mut names: Vec<&str> = ps.lines().collect();
    names.sort();
    assert_eq!(names, ["demo_client_1", "demo_web_1"]);
    let listed = compose(&["ps", "-q"]);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert_eq!(
        s.ok(&[
            "network",
            "ls",
            "--filter",
            "name=demo_back",
            "--format",
            "{{.Name}}"
        ])
        .trim(),
        "demo_back"
    );
    assert_eq!(
        s.ok(&["volume", "ls", "--format", "{{.Name}}"]).trim(),
        "demo_site"
    );
    // The client reaches web by its service name over the project network.
    let mut page = String::new();
    for _ in 0..50 {
        page = compose(&[
            "exec",
            "-T",
            "client",
            "sh",
            "-c",
            "wget -qO- http://web:8080/index.html || true",
        ]);
        if !page.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(page, "served-by-web\n");
    // The published port answers on 127.0.0.1.
    let mut answer = None;
    wait_until("the published port", || {
        answer = get(port);
        answer.is_some()
    });
    let answer = answer.unwrap();
    assert!(answer.ends_with("served-by-web\n"), "{answer}");

    compose(&["down", "--volumes"]);
    assert_eq!(s.ok(&["ps", "-aq"]), "");
    assert_eq!(
        s.ok(&["network", "ls", "--format", "{{.Name}}"]).trim(),
        "bridge"
    );
    assert_eq!(s.ok(&["volume", "ls", "-q"]), "");
    assert!(get(port).is_none(), "port {port} still answers after down");
}

/// `berth serve --bridge none` (dockerd's flag): a container made without a network gets its
/// own namespace with loopback only; a network asked for by name still joins it.
#[test]
fn bridge_none_leaves_default_containers_with_loopback_only() {
    let s = Server::with_args("api-nobridge", &["--bridge", "none"]);
    let links = s.ok(&["run", "--rm", "busybox", "ip", "-o", "link"]);
    let names: Vec<&str> = links
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(str::trim))
        .collect();
    assert_eq!(names, ["lo"], "{links}");
    s.ok(&["network", "create", "joined"]);
    let addrs = s.ok(&[
        "run",
        "--rm",
        "--network",
        "joined",
        "busybox",
        "ip",
        "-o",
        "-4",
        "addr",
    ]);
    assert!(addrs.lines().any(|l| l.contains("eth0")), "{addrs}");

    // Any other bridge is refused at once, naming it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--root")
        .arg(&s.root)
        .args(["serve", "--bridge", "br-x", "--host"])
        .arg(format!("unix://{}", s.scratch.join("x.sock").display()))
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--bridge br-x"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
