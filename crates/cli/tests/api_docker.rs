//! `berth serve` driven by the real docker CLI (and raw HTTP for bad input): each test starts
//! its own server on a socket in its scratch dir, over its own root loaded with the busybox
//! fixture, and stops it afterwards. They live with the CLI's tests because they need the
//! `berth` binary, which only this package's tests can name.

mod apikit;
mod common;

use apikit::{wait_until, Server};
use berth_testkit::Scratch;
use common::{berth, ok};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn docker_cli_runs_containers() {
    let s = Server::new("api-run");
    let v = s.ok(&[
        "version",
        "--format",
        "{{.Server.APIVersion}} {{.Server.Os}}",
    ]);
    assert_eq!(v.trim(), "1.47 linux");
    let info = s.ok(&[
        "info",
        "--format",
        "{{.Images}} {{.OSType}} {{.DockerRootDir}}",
    ]);
    assert_eq!(
        info.trim(),
        format!(
            "1 linux {}",
            std::fs::canonicalize(&s.root).unwrap().display()
        )
    );

    // Attached: output, both streams, the exit code.
    assert_eq!(
        s.ok(&["run", "--rm", "busybox", "echo", "hello"]),
        "hello\n"
    );
    let r = s.docker(&[
        "run",
        "--name",
        "fail",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(r.stdout, "out\n");
    assert!(r.stderr.contains("err\n"), "{}", r.stderr);
    // --rm removed its container; the other is there, exited, for berth too.
    let all = s.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert_eq!(all.lines().count(), 1, "{all}");
    assert!(all.starts_with("fail Exited (3)"), "{all}");
    assert!(berth(&s.root, &["ps", "-a", "--format", "{{.Names}}"])
        .stdout
        .contains("fail"));
    // stdin into an attached container.
    let mut child = s
        .docker_cmd(&[
            "run",
            "--rm",
            "-i",
            "busybox",
            "sh",
            "-c",
            "read x; echo got $x",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"ping\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got ping\n");

    // Detached, then logs, exec, inspect, stop, kill, rm.
    let id = s
        .ok(&[
            "run",
            "-d",
            "--name",
            "web",
            "busybox",
            "sh",
            "-c",
            "echo started; exec sleep 1000",
        ])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64);
    wait_until("the log line", || {
        s.docker(&["logs", "web"]).stdout == "started\n"
    });
    assert_eq!(
        s.ok(&["exec", "web", "cat", "/etc/hostname"]).trim(),
        &id[..12]
    );
    let r = s.docker(&["exec", "web", "sh", "-c", "echo to-err >&2; exit 7"]);
    assert_eq!(r.code, 7);
    assert_eq!(r.stderr, "to-err\n");
    let piped = s
        .docker_cmd(&["exec", "-i", "web", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut piped = piped;
    piped
        .stdin
        .take()
        .unwrap()
        .write_all(b"through exec\n")
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&piped.wait_with_output().unwrap().stdout),
        "through exec\n"
    );
    assert_eq!(
        s.ok(&["inspect", "--format", "{{.State.Status}} {{.Name}}", "web"])
            .trim(),
        "running /web"
    );
    let ps = s.ok(&["ps", "--format", "{{.ID}} {{.Image}} {{.Names}}"]);
    assert_eq!(ps.trim(), format!("{} busybox web", &id[..12]));
    // A container berth made is the API's too.
    ok(
        &s.root,
        &[
            "run",
            "-d",
            "--name",
            "fromberth",
            "busybox",
            "sleep",
            "1000",
        ],
    );
    assert!(s
        .ok(&["ps", "--format", "{{.Names}}"])
        .contains("fromberth"));
    s.ok(&["stop", "-t", "1", "web"]);
    assert_eq!(
        s.ok(&["inspect", "--format", "{{.State.Status}}", "web"])
            .trim(),
        "exited"
    );
    s.ok(&["kill", "fromberth"]);
    wait_until("fromberth to exit", || {
        s.ok(&["inspect", "--format", "{{.State.Status}}", "fromberth"])
            .trim()
            == "exited"
    });
    assert_eq!(
        s.ok(&["inspect", "--format", "{{.State.ExitCode}}", "fromberth"])
            .trim(),
        "137"
    );
    let r = s.docker(&["kill", "web"]);
    assert_ne!(r.code, 0, "kill of a stopped container must fail");
    s.ok(&["rm", "web", "fromberth", "fail"]);
    assert_eq!(s.ok(&["ps", "-aq"]), "");
    let r = s.docker(&["inspect", "web"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("No such") || r.stderr.contains("no such"),
        "{}",
        r.stderr
    );
    assert!(s.monitors().is_empty());
}

#[test]
fn docker_cli_files_and_images() {
    let s = Server::new("api-files");
    s.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"]);
    // cp both ways.
    let host = s.scratch.join("in.txt");
    std::fs::write(&host, "from the host\n").unwrap();
    s.ok(&["cp", host.to_str().unwrap(), "box:/tmp/in.txt"]);
    assert_eq!(
        s.ok(&["exec", "box", "cat", "/tmp/in.txt"]),
        "from the host\n"
    );
    s.ok(&[
        "exec",
        "box",
        "sh",
        "-c",
        "mkdir -p /data/sub && echo inside > /data/sub/f",
    ]);
    let out = s.scratch.join("out");
    s.ok(&["cp", "box:/data", out.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(out.join("sub/f")).unwrap(),
        "inside\n"
    );
    let r = s.docker(&["cp", "box:/nope", out.to_str().unwrap()]);
    assert_ne!(r.code, 0);
    // diff and commit.
    let diff = s.ok(&["diff", "box"]);
    assert!(diff.lines().any(|l| l == "A /data/sub/f"), "{diff}");
    assert!(diff.lines().any(|l| l == "C /tmp"), "{diff}");
    let id = s
        .ok(&["commit", "-c", "ENV COMMITTED=yes", "box", "snap:v1"])
        .trim()
        .to_string();
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(
        s.ok(&[
            "run",
            "--rm",
            "snap:v1",
            "sh",
            "-c",
            "cat /data/sub/f; echo $COMMITTED"
        ]),
        "inside\nyes\n"
    );
    // images, inspect, tag, history, rmi.
    let images = s.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        images.contains("busybox:latest") && images.contains("snap:v1"),
        "{images}"
    );
    assert_eq!(
        s.ok(&["image", "inspect", "--format", "{{.Id}}", "snap:v1"])
            .trim(),
        id
    );
    s.ok(&["tag", "snap:v1", "other/snap:v2"]);
    assert_eq!(
        s.ok(&["image", "inspect", "--format", "{{.Id}}", "other/snap:v2"])
            .trim(),
        id
    );
    assert!(s.ok(&["history", "snap:v1"]).lines().count() >= 2);
    let rmi = s.ok(&["rmi", "other/snap:v2"]);
    assert!(rmi.contains("Untagged: other/snap:v2"), "{rmi}");
    // save, load, import, export.
    let tar = s.scratch.join("snap.tar");
    s.ok(&["save", "-o", tar.to_str().unwrap(), "snap:v1"]);
    s.ok(&["rm", "-f", "box"]);
    let rmi = s.ok(&["rmi", "snap:v1"]);
    assert!(rmi.contains("Deleted: sha256:"), "{rmi}");
    let loaded = s.ok(&["load", "-i", tar.to_str().unwrap()]);
    assert!(loaded.contains("Loaded image: snap:v1"), "{loaded}");
    assert_eq!(
        s.ok(&["image", "inspect", "--format", "{{.Id}}", "snap:v1"])
            .trim(),
        id
    );
    s.ok(&["create", "--name", "exp", "snap:v1"]);
    let flat = s.scratch.join("flat.tar");
    s.ok(&["export", "-o", flat.to_str().unwrap(), "exp"]);
    let imported = s
        .ok(&["import", flat.to_str().unwrap(), "flat:1"])
        .trim()
        .to_string();
    assert!(imported.starts_with("sha256:"), "{imported}");
    assert_eq!(
        s.ok(&["run", "--rm", "flat:1", "cat", "/data/sub/f"]),
        "inside\n"
    );
    s.ok(&["rm", "exp"]);
    assert!(s.docker(&["rmi", "no-such-image"]).code != 0);
}

#[test]
fn docker_cli_volumes_events_df_prune() {
    let s = Server::new("api-vol");
    let since = s.ok(&["version", "--format", "{{.Server.Version}}"]);
    assert!(!since.trim().is_empty());
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    s.ok(&["volume", "create", "--label", "k=v", "data"]);
    assert_eq!(
        s.ok(&["volume", "ls", "--format", "{{.Name}}"]).trim(),
        "data"
    );
    assert_eq!(
        s.ok(&["volume", "inspect", "--format", "{{.Labels.k}}", "data"])
            .trim(),
        "v"
    );
    assert_eq!(
        s.ok(&[
            "run",
            "--rm",
            "-v",
            "data:/data",
            "busybox",
            "sh",
            "-c",
            "echo kept > /data/f; cat /data/f"
        ]),
        "kept\n"
    );
    assert_eq!(
        s.ok(&[
            "run",
            "--rm",
            "-v",
            "data:/data",
            "busybox",
            "cat",
            "/data/f"
        ]),
        "kept\n"
    );
    s.ok(&["run", "--name", "gone", "busybox", "true"]);
    // The image store records its events too, whoever drives it (here the berth CLI).
    ok(&s.root, &["tag", "busybox", "fromcli:1"]);
    let df = s.ok(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"]);
    assert!(
        df.contains("Images 1") && df.contains("Containers 1") && df.contains("Local Volumes 1"),
        "{df}"
    );
    // Events: the log every berth process appends to.
    let until = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1)
    .to_string();
    std::thread::sleep(Duration::from_millis(1100));
    let ev = s.ok(&[
        "events",
        "--since",
        &t0,
        "--until",
        &until,
        "--filter",
        "container=gone",
        "--format",
        "{{.Action}}",
    ]);
    assert_eq!(
        ev.split_whitespace().collect::<Vec<_>>(),
        ["create", "start", "die"],
        "{ev}"
    );
    let vol = s.ok(&[
        "events",
        "--since",
        &t0,
        "--until",
        &until,
        "--filter",
        "type=volume",
        "--format",
        "{{.Action}} {{.Actor.ID}}",
    ]);
    assert!(vol.lines().next() == Some("create data"), "{vol}");
    let img = s.ok(&[
        "events",
        "--since",
        &t0,
        "--until",
        &until,
        "--filter",
        "type=image",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]);
    assert!(img.lines().any(|l| l == "tag fromcli:1"), "{img}");
    // `berth events` reads the same log.
    let b = ok(
        &s.root,
        &[
            "events",
            "--since",
            &t0,
            "--until",
            &until,
            "--filter",
            "container=gone",
            "--format",
            "{{.Action}}",
        ],
    );
    assert_eq!(b, ev);
    // A streaming `docker events` sees what happens next.
    let mut follow = s
        .docker_cmd(&["events", "--format", "{{.Type}} {{.Action}}"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    s.ok(&["volume", "create", "later"]);
    let mut got = String::new();
    let mut stdout = follow.stdout.take().unwrap();
    let mut buf = [0u8; 256];
    while !got.contains("volume create") {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "events stream ended: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let _ = follow.kill();
    let _ = follow.wait();
    // Prunes.
    let r = s.docker(&["volume", "rm", "data"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let cp = s.ok(&["container", "prune", "-f"]);
    assert!(
        cp.contains("Deleted Containers") || cp.contains("Total reclaimed space"),
        "{cp}"
    );
    assert_eq!(s.ok(&["ps", "-aq"]), "");
    s.ok(&["volume", "prune", "-a", "-f"]);
    assert_eq!(s.ok(&["volume", "ls", "-q"]), "");
    s.ok(&["tag", "busybox", "spare:1"]);
    s.ok(&["rmi", "busybox"]);
    s.ok(&["image", "prune", "-a", "-f"]);
    assert_eq!(s.ok(&["images", "-q"]), "");
}

/// Sends a request and returns (status, body) of the answer.
fn http(sock: &Path, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: berth\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn api_bad_input_concurrency_and_server_death() {
    let mut s = Server::new("api-bad");
    let (code, body) = http(&s.sock, "POST", "/v1.47/containers/create", "{not json");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("\"message\""), "{body}");
    let (code, body) = http(&s.sock, "GET", "/v1.47/no/such/endpoint", "");
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("page not found"));
    let (code, body) = http(&s.sock, "GET", "/v1.99/info", "");
    assert_eq!(code, 400);
    assert!(body.contains("too new"), "{body}");
    let (code, body) = http(&s.sock, "GET", "/v1.47/containers/nope/json", "");
    assert_eq!(code, 404, "{body}");
    let (code, body) = http(
        &s.sock,
        "POST",
        "/v1.47/containers/create",
        r#"{"Image":"no-such-image"}"#,
    );
    assert_eq!(code, 404, "{body}");
    let (code, body) = http(&s.sock, "GET", "/v1.47/plugins", "");
    assert_eq!(code, 501, "{body}");
    assert!(body.contains("plugins is not supported"), "{body}");
    let (code, _) = http(
        &s.sock,
        "POST",
        "/v1.47/containers/create?name=dup",
        r#"{"Image":"busybox","Cmd":["true"]}"#,
    );
    assert_eq!(code, 201);
    let (code, body) = http(
        &s.sock,
        "POST",
        "/v1.47/containers/create?name=dup",
        r#"{"Image":"busybox","Cmd":["true"]}"#,
    );
    assert_eq!(code, 409, "{body}");
    let (code, _) = http(&s.sock, "POST", "/v1.47/containers/dup/stop", "");
    assert_eq!(code, 304);

    let fds = s.fd_count();
    // Clients that go away in the middle of a stream.
    for path in [
        "/v1.47/events",
        "/v1.47/containers/dup/wait?condition=next-exit",
    ] {
        let mut c = UnixStream::connect(&s.sock).unwrap();
        c.write_all(
            format!(
                "{} {path} HTTP/1.1\r\nHost: x\r\n\r\n",
                if path.contains("wait") { "POST" } else { "GET" }
            )
            .as_bytes(),
        )
        .unwrap();
        let mut b = [0u8; 64];
        let _ = c.read(&mut b).unwrap();
        drop(c);
    }
    // 200 requests at once.
    let sock = s.sock.clone();
    let threads: Vec<_> = (0..200)
        .map(|i| {
            let sock = sock.clone();
            std::thread::spawn(move || {
                let path = if i % 2 == 0 {
                    "/v1.47/containers/json?all=1"
                } else {
                    "/v1.47/images/json"
                };
                http(&sock, "GET", path, "").0
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 200);
    }
    // Nothing held on to: the followers noticed their clients were gone (bounded wait).
    wait_until("the server's fds to settle", || s.fd_count() <= fds + 2);
    assert_eq!(http(&s.sock, "GET", "/_ping", "").0, 200);

    // Killing the server loses no container.
    s.ok(&[
        "run", "-d", "--name", "survivor", "busybox", "sleep", "1000",
    ]);
    let pid = s.child.as_ref().unwrap().id() as i32;
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let _ = s.child.take().unwrap().wait();
    let st = ok(
        &s.root,
        &["inspect", "--format", "{{.State.Status}}", "survivor"],
    );
    assert_eq!(st.trim(), "running");
    s.start();
    assert_eq!(
        s.ok(&["inspect", "--format", "{{.State.Status}}", "survivor"])
            .trim(),
        "running"
    );
    s.ok(&["rm", "-f", "survivor", "dup"]);
}

#[test]
fn docker_py_common_calls() {
    // Debian's python3-docker (scripts/deps) lives with Debian's python3.
    let py = "/usr/bin/python3";
    let has = Command::new(py)
        .args(["-c", "import docker"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has,
        "{py} cannot import docker: install Debian's python3-docker (scripts/deps does)"
    );
    let s = Server::new("api-py");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/docker_py_calls.py");
    let o = Command::new(py)
        .arg(script)
        .arg(&s.sock)
        .arg(s.scratch.path())
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "docker-py script failed:\n{out}\n{err}");
    assert!(out.contains("docker-py ok"), "{out}");
}

/// Runs `cmd` under a pseudo-terminal (util-linux `script`), feeding it `input`.
fn under_pty(s: &Server, cmd: &str, input: &str) -> (i32, String) {
    let mut c = Command::new("script");
    c.args(["-qec", cmd, "/dev/null"])
        .env("DOCKER_HOST", format!("unix://{}", s.sock.display()))
        .env("DOCKER_CONFIG", s.scratch.join("docker-config"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    // stdin stays open until the command ends: script turns its EOF into the terminal's ^D.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    drop(stdin);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).replace('\r', ""),
    )
}

#[test]
fn docker_cli_terminals_follow_tcp_and_idle_exit() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let s = Server::with_args("api-tty", &["--host", &tcp]);
    // -it under a terminal: the container's stdio is a tty, input reaches it, its code comes back.
    let (code, out) = under_pty(
        &s,
        "docker run -it --rm busybox sh",
        "echo hi-$((6*7)); tty; exit 5\n",
    );
    assert_eq!(code, 5, "{out}");
    assert!(out.contains("hi-42") && out.contains("/dev/pts/0"), "{out}");
    s.ok(&[
        "run",
        "-d",
        "--name",
        "tt",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo line$i; sleep 0.2; done; exec sleep 1000",
    ]);
    let (code, out) = under_pty(&s, "docker exec -it tt sh", "tty; exit 3\n");
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("/dev/pts/"), "{out}");
    // logs -f follows until the container stops.
    let follow = s
        .docker_cmd(&["logs", "-f", "tt"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("all three lines", || {
        s.docker(&["logs", "tt"]).stdout == "line1\nline2\nline3\n"
    });
    s.ok(&["stop", "-t", "0", "tt"]);
    let o = follow.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout), "line1\nline2\nline3\n");
    // The same server on TCP.
    let o = Command::new("docker")
        .args(["-H", &tcp, "ps", "-a", "--format", "{{.Names}}"])
        .env("DOCKER_CONFIG", s.scratch.join("docker-config"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "tt");
    s.ok(&["rm", "tt"]);

    // --time: a server nobody talks to exits by itself and removes its socket.
    let mut idle = Server::with_args("api-idle", &["--time", "1"]);
    let mut child = idle.child.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "berth serve --time 1 did not exit"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(child.wait().unwrap().success());
    assert!(!idle.sock.exists());
}

fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn docker_cli_over_tls_with_client_certificates() {
    let tmp = Scratch::new("api-tls-certs");
    let d = tmp.path();
    // A CA, a server certificate for 127.0.0.1 and a client certificate, as docker's docs make them.
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=berth-test-ca",
        ],
    );
    std::fs::write(
        d.join("server.ext"),
        "subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server-key.pem",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-out",
            "server-cert.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
    std::fs::write(d.join("client.ext"), "extendedKeyUsage = clientAuth\n").unwrap();
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "client.csr",
            "-subj",
            "/CN=client",
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-extfile",
            "client.ext",
        ],
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let p = |f: &str| d.join(f).to_string_lossy().into_owned();
    let s = Server::with_args(
        "api-tls",
        &[
            "--host",
            &tcp,
            "--tlsverify",
            "--tlscacert",
            &p("ca.pem"),
            "--tlscert",
            &p("server-cert.pem"),
            "--tlskey",
            &p("server-key.pem"),
        ],
    );
    let docker_tls = |with_cert: bool, args: &[&str]| {
        let mut c = Command::new("docker");
        c.env("DOCKER_CONFIG", s.scratch.join("docker-config"))
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CERT_PATH");
        c.args(["-H", &tcp, "--tlsverify", "--tlscacert", &p("ca.pem")]);
        if with_cert {
            c.args(["--tlscert", &p("cert.pem"), "--tlskey", &p("key.pem")]);
        }
        c.args(args).stdin(Stdio::null()).output().unwrap()
    };
    let o = docker_tls(true, &["run", "--rm", "busybox", "echo", "over-tls"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "over-tls\n");
    // Without a client certificate the handshake is refused.
    let o = docker_tls(false, &["version", "--format", "{{.Server.Version}}"]);
    assert!(!o.status.success());
    // The unix socket still serves alongside.
    assert_eq!(s.ok(&["ps", "-aq"]), "");
}

#[test]
fn docker_cli_pause_rename_restart_top_stats_system_prune() {
    let s = Server::new("api-life");
    s.ok(&["run", "-d", "--name", "lf", "busybox", "sleep", "1000"]);
    s.ok(&["pause", "lf"]);
    assert_eq!(
        s.ok(&["inspect", "--format", "{{.State.Status}}", "lf"])
            .trim(),
        "paused"
    );
    assert_ne!(
        s.docker(&["exec", "lf", "true"]).code,
        0,
        "exec into a paused container must fail"
    );
    s.ok(&["unpause", "lf"]);
    s.ok(&["rename", "lf", "lf2"]);
    let top = s.ok(&["top", "lf2"]);
    assert!(top.contains("PID") && top.contains("sleep 1000"), "{top}");
    let stats = s.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.PIDs}}",
        "lf2",
    ]);
    assert_eq!(stats.trim(), "lf2 1");
    let before = s.ok(&["inspect", "--format", "{{.State.StartedAt}}", "lf2"]);
    s.ok(&["restart", "-t", "0", "lf2"]);
    assert_eq!(
        s.ok(&["inspect", "--format", "{{.State.Status}}", "lf2"])
            .trim(),
        "running"
    );
    assert_ne!(
        s.ok(&["inspect", "--format", "{{.State.StartedAt}}", "lf2"]),
        before
    );
    s.ok(&["stop", "-t", "0", "lf2"]);
    s.ok(&["run", "--name", "done", "busybox", "true"]);
    let out = s.ok(&["system", "prune", "-f"]);
    assert!(out.contains("Total reclaimed space"), "{out}");
    assert_eq!(s.ok(&["ps", "-aq"]), "");
}

/// Kills a server started by hand when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// systemd socket activation: a listening socket as fd 3, LISTEN_FDS=1 and LISTEN_PID set to
/// the server's own pid (the shell's, which exec keeps), as systemd passes them.
#[test]
fn socket_activation_serves_the_passed_socket() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let s = Server::new("api-activation");
    let sock = s.scratch.join("activated.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let lfd = listener.as_raw_fd();
    let spawn = |host: &str, pid: &str| {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!(
                "LISTEN_PID={pid} LISTEN_FDS=1 exec \"$0\" --root \"$1\" serve --host {host}"
            ))
            .arg(env!("CARGO_BIN_EXE_berth"))
            .arg(&s.root)
            .env_remove("BERTH_ROOT")
            .stdin(Stdio::null())
            .stderr(Stdio::piped());
        // dup2 and fcntl are async-signal-safe; fd 3 must survive the exec.
        unsafe {
            c.pre_exec(move || {
                let r = if lfd == 3 {
                    libc::fcntl(3, libc::F_SETFD, 0)
                } else {
                    libc::dup2(lfd, 3)
                };
                if r < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        c.spawn().expect("start berth serve")
    };
    // LISTEN_PID naming another process: the sockets are not ours, and fd:// says so at once.
    let out = spawn("fd://", "1").wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no socket was passed"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let server = Killed(spawn("fd://", "$$"));
    drop(listener);
    let docker = |args: &[&str]| {
        let o = Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", sock.display()))
            .env("DOCKER_CONFIG", s.scratch.join("docker-config"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(
        docker(&["version", "--format", "{{.Server.APIVersion}}"]).trim(),
        "1.47"
    );
    assert_eq!(
        docker(&["run", "--rm", "busybox", "sh", "-c", "echo activated"]),
        "activated\n"
    );
    // The socket belongs to the service manager: the server leaves it in place when it exits,
    // and its children (monitors, exec) do not inherit the activation variables.
    docker(&["run", "-d", "--name", "bg", "busybox", "sleep", "60"]);
    let monitors = common::monitors(&s.root);
    assert!(!monitors.is_empty());
    for pid in monitors {
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&env).contains("LISTEN_"),
            "monitor {pid}"
        );
    }
    docker(&["rm", "-f", "bg"]);
    drop(server);
    assert!(sock.exists());
}
