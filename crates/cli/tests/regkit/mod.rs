//! Test registries: Debian's docker-registry on a free loopback port with its own storage
//! (plain HTTP, TLS from a test CA, htpasswd, or token auth from a token server in this
//! process), a tiny HTTP server for the token endpoint and for misbehaving registries, and
//! helpers that point berth at them. Everything stops on drop, also when a test fails.
#![allow(dead_code)]

use base64::Engine as _;
use berth_testkit::Scratch;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn sh(cmd: &str) {
    let st = Command::new("sh").arg("-c").arg(cmd).status().unwrap();
    assert!(st.success(), "{cmd} failed");
}

/// A CA and a server certificate for 127.0.0.1 signed by it (EC keys: quick to make).
pub struct TestCa {
    pub ca_crt: PathBuf,
    pub crt: PathBuf,
    pub key: PathBuf,
}

pub fn make_ca(dir: &Path) -> TestCa {
    let d = dir.display();
    sh(&format!(
        "set -e; cd {d}; \
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=berth-test-ca 2>/dev/null; \
         openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 2>/dev/null; \
         printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > ext; \
         openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out srv.crt -days 2 -extfile ext 2>/dev/null"
    ));
    TestCa {
        ca_crt: dir.join("ca.crt"),
        crt: dir.join("srv.crt"),
        key: dir.join("srv.key"),
    }
}

#[derive(Default)]
pub struct RegOpts {
    pub tls: Option<(PathBuf, PathBuf)>,
    /// (user, password) for htpasswd basic auth.
    pub htpasswd: Option<(String, String)>,
    /// (realm URL, service, issuer, root cert bundle) for token auth.
    pub token: Option<(String, String, String, PathBuf)>,
}

pub struct Registry {
    pub addr: String,
    pub data: PathBuf,
    pub log: PathBuf,
    child: Child,
}

impl Registry {
    pub fn start(dir: &Path, opts: &RegOpts) -> Registry {
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let mut auth = String::new();
        if let Some((u, p)) = &opts.htpasswd {
            let out = Command::new("htpasswd")
                .args(["-Bbn", u, p])
                .output()
                .expect("htpasswd (apache2-utils)");
            assert!(out.status.success());
            std::fs::write(dir.join("htpasswd"), &out.stdout).unwrap();
            auth = format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                dir.join("htpasswd").display()
            );
        }
        if let Some((realm, service, issuer, bundle)) = &opts.token {
            auth = format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {}\n",
                bundle.display()
            );
        }
        let tls = match &opts.tls {
            Some((crt, key)) => format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                crt.display(),
                key.display()
            ),
            None => String::new(),
        };
        for _ in 0..5 {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let cfg = format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{tls}{auth}",
                data.display()
            );
            let cfg_path = dir.join("config.yml");
            std::fs::write(&cfg_path, cfg).unwrap();
            let log = dir.join("registry.log");
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&cfg_path)
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&log).unwrap())
                .stderr(std::fs::File::create(dir.join("registry.err")).unwrap())
                .spawn()
                .expect(
                    "docker-registry (Debian package docker-registry: scripts/deps installs it)",
                );
            let mut reg = Registry {
                addr,
                data: data.clone(),
                log,
                child,
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if reg.child.try_wait().unwrap().is_some() {
                    break;
                }
                if TcpStream::connect(&reg.addr).is_ok() {
                    return reg;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // Exited (port taken meanwhile?) or never listened: try another port.
            let _ = reg.child.kill();
            let _ = reg.child.wait();
            std::mem::forget(reg);
        }
        panic!(
            "docker-registry did not start: {}",
            std::fs::read_to_string(dir.join("registry.err")).unwrap_or_default()
        );
    }

    /// The registry's stored file for a blob.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.data
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed request as the tiny server sees it.
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a handler answers: full bytes to write (head and body), then the connection closes.
pub type Handler = dyn Fn(&Request) -> Vec<u8> + Send + Sync;

/// A handler that writes its answer itself (a part of it, waiting in between if it likes).
pub type StreamHandler = dyn Fn(&Request, &mut TcpStream) + Send + Sync;

pub fn response(status: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    )
    .into_bytes();
    for (k, val) in headers {
        v.extend(format!("{k}: {val}\r\n").as_bytes());
    }
    v.extend(b"\r\n");
    v.extend(body);
    v
}

/// A one-request-per-connection HTTP server on a free loopback port, in threads of this test.
pub struct TinyServer {
    pub addr: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TinyServer {
    pub fn start(handler: Arc<Handler>) -> TinyServer {
        TinyServer::start_streaming(Arc::new(move |req: &Request, conn: &mut TcpStream| {
            let _ = conn.write_all(&handler(req));
        }))
    }

    pub fn start_streaming(handler: Arc<StreamHandler>) -> TinyServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(mut conn) = conn else { continue };
                let h = handler.clone();
                std::thread::spawn(move || {
                    conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
                    let mut r = BufReader::new(conn.try_clone().unwrap());
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let method = parts.next().unwrap_or("").to_string();
                    let path = parts.next().unwrap_or("").to_string();
                    let mut headers = Vec::new();
                    let mut len = 0usize;
                    loop {
                        let mut l = String::new();
                        if r.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
                            break;
                        }
                        if let Some((k, v)) = l.trim_end().split_once(':') {
                            if k.eq_ignore_ascii_case("content-length") {
                                len = v.trim().parse().unwrap_or(0);
                            }
                            headers.push((k.to_string(), v.trim().to_string()));
                        }
                    }
                    let mut body = vec![0u8; len];
                    let _ = r.read_exact(&mut body);
                    h(
                        &Request {
                            method,
                            path,
                            headers,
                            body,
                        },
                        &mut conn,
                    );
                    let _ = conn.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        TinyServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TinyServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends `req` to `upstream` as HTTP/1.0 (so the answer is never chunked) and returns the raw
/// answer, split into head (with its blank line) and body.
pub fn forward(upstream: &str, req: &Request) -> (Vec<u8>, Vec<u8>) {
    let mut c = TcpStream::connect(upstream).unwrap();
    let mut head = format!("{} {} HTTP/1.0\r\n", req.method, req.path);
    for (k, v) in &req.headers {
        if !k.eq_ignore_ascii_case("connection") {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(&req.body).unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    let end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(out.len(), |i| i + 4);
    let body = out.split_off(end);
    (out, body)
}

/// What a [`Proxy`] does with one blob's GETs.
#[derive(Clone)]
pub enum BlobFault {
    /// Once `ready()` says so, half the blob and the connection closes; a resumed request
    /// (Range) gets the headers and nothing more.
    Cut(Arc<dyn Fn() -> bool + Send + Sync>),
    /// Half the blob, then nothing until the proxy is released (or dropped).
    Stall,
}

/// A loopback proxy in front of a registry that counts blob GETs and can break one blob.
pub struct Proxy {
    pub addr: String,
    gets: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
    fault: Arc<std::sync::Mutex<Option<(String, BlobFault)>>>,
    released: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    _srv: TinyServer,
}

impl Proxy {
    pub fn start(upstream: &str) -> Proxy {
        let gets: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>> =
            Default::default();
        let fault: Arc<std::sync::Mutex<Option<(String, BlobFault)>>> = Default::default();
        let released: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)> = Default::default();
        let (g, f, r, up) = (
            gets.clone(),
            fault.clone(),
            released.clone(),
            upstream.to_string(),
        );
        let handler = move |req: &Request, conn: &mut TcpStream| {
            let digest = req
                .path
                .rsplit_once("/blobs/")
                .map(|(_, d)| d.split('?').next().unwrap_or(d).to_string());
            if let (Some(d), "GET") = (&digest, req.method.as_str()) {
                *g.lock().unwrap().entry(d.clone()).or_default() += 1;
            }
            let fault = f.lock().unwrap().clone();
            let (head, body) = forward(&up, req);
            let Some((_, fault)) = fault.filter(|(d, _)| Some(d) == digest.as_ref()) else {
                let _ = conn.write_all(&head);
                let _ = conn.write_all(&body);
                return;
            };
            let resumed = req.header("range").is_some();
            match fault {
                BlobFault::Cut(ready) => {
                    let deadline = Instant::now() + Duration::from_secs(60);
                    while !resumed && !ready() && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    let keep = if resumed { 0 } else { body.len() / 2 };
                    let _ = conn.write_all(&head);
                    let _ = conn.write_all(&body[..keep]);
                }
                BlobFault::Stall => {
                    let _ = conn.write_all(&head);
                    let _ = conn.write_all(&body[..body.len() / 2]);
                    let _ = conn.flush();
                    let (lock, cond) = &*r;
                    let done = lock.lock().unwrap();
                    let _ = cond.wait_timeout_while(done, Duration::from_secs(120), |d| !*d);
                }
            }
        };
        let srv = TinyServer::start_streaming(Arc::new(handler));
        Proxy {
            addr: srv.addr.clone(),
            gets,
            fault,
            released,
            _srv: srv,
        }
    }

    /// Breaks the GETs of blob `digest` from now on (`None`: every blob passes).
    pub fn set_fault(&self, fault: Option<(&str, BlobFault)>) {
        *self.fault.lock().unwrap() = fault.map(|(d, f)| (d.to_string(), f));
    }

    /// GET requests seen for a blob.
    pub fn blob_gets(&self, digest: &str) -> usize {
        self.gets.lock().unwrap().get(digest).copied().unwrap_or(0)
    }

    /// Lets stalled answers end.
    pub fn release(&self) {
        *self.released.0.lock().unwrap() = true;
        self.released.1.notify_all();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.release();
    }
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// `a%20b+c` → "a b c" (application/x-www-form-urlencoded and query values).
fn form_decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `k=v&k=w` → [(k, v), (k, w)], decoded.
pub fn form_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (form_decode(k), form_decode(v)))
        .collect()
}

/// A token server for docker's token auth, issuing RS256 JWTs with an x5c header signed by
/// `openssl dgst`, to `user`/`password` only: by GET with basic auth (docker's token spec) and,
/// with `oauth`, by distribution's OAuth2 POST (`grant_type=password` also issues a refresh
/// token, which `grant_type=refresh_token` takes). Without `oauth` a POST gets 404, as from GCR.
pub struct TokenServer {
    pub srv: TinyServer,
    /// The cert bundle the registry must trust.
    pub bundle: PathBuf,
    /// One line per request: "GET", "POST password", "POST refresh_token", "POST refused".
    pub log: Arc<std::sync::Mutex<Vec<String>>>,
}

pub const REFRESH_TOKEN: &str = "berth-test-refresh-token";

pub fn token_server(
    dir: &Path,
    service: &str,
    issuer: &str,
    user: &str,
    password: &str,
    oauth: bool,
) -> TokenServer {
    sh(&format!(
        "set -e; cd {}; openssl req -x509 -newkey rsa:2048 -nodes -keyout tok.key -out tok.crt -days 2 -subj /CN=berth-test-token 2>/dev/null; \
         openssl x509 -in tok.crt -outform DER -out tok.der",
        dir.display()
    ));
    let der = std::fs::read(dir.join("tok.der")).unwrap();
    let key = dir.join("tok.key");
    let (service, issuer) = (service.to_string(), issuer.to_string());
    let (user, password) = (user.to_string(), password.to_string());
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    );
    let log: Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let log2 = log.clone();
    let refused = || {
        response(
            "401 Unauthorized",
            &[],
            br#"{"details":"incorrect username or password"}"#,
        )
    };
    let handler = move |req: &Request| -> Vec<u8> {
        let (scopes, refresh) = if req.method == "POST" {
            let form = form_pairs(&String::from_utf8_lossy(&req.body));
            let get = |k: &str| {
                form.iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.as_str())
                    .unwrap_or("")
            };
            if !oauth {
                log2.lock().unwrap().push("POST refused".into());
                return response("404 Not Found", &[], b"404 page not found");
            }
            let grant = get("grant_type");
            log2.lock().unwrap().push(format!("POST {grant}"));
            let ok = match grant {
                "password" => get("username") == user && get("password") == password,
                "refresh_token" => get("refresh_token") == REFRESH_TOKEN,
                _ => false,
            };
            if !ok || get("service") != service || get("client_id").is_empty() {
                return refused();
            }
            let scopes: Vec<String> = get("scope").split(' ').map(str::to_string).collect();
            (
                scopes,
                grant == "password" && get("access_type") == "offline",
            )
        } else {
            log2.lock().unwrap().push("GET".into());
            if req.header("authorization") != Some(expected.as_str()) {
                return refused();
            }
            let query = req.path.split_once('?').map(|(_, q)| q).unwrap_or("");
            let scopes = form_pairs(query)
                .into_iter()
                .filter(|(k, _)| k == "scope")
                .map(|(_, v)| v)
                .collect();
            (scopes, false)
        };
        let mut access = Vec::new();
        for s in &scopes {
            let parts: Vec<&str> = s.split(':').collect();
            if parts.len() == 3 {
                access.push(serde_json::json!({"type": parts[0], "name": parts[1], "actions": parts[2].split(',').collect::<Vec<_>>()}));
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [base64::engine::general_purpose::STANDARD.encode(&der)]});
        let claims = serde_json::json!({"iss": issuer, "sub": "tester", "aud": service, "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", access.len()), "access": access});
        let signing_input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let mut child = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(signing_input.as_bytes())
            .unwrap();
        let sig = child.wait_with_output().unwrap().stdout;
        let token = format!("{signing_input}.{}", b64url(&sig));
        let body = if req.method == "POST" {
            let mut v = serde_json::json!({"access_token": token, "expires_in": 300});
            if refresh {
                v["refresh_token"] = serde_json::json!(REFRESH_TOKEN);
            }
            v
        } else {
            serde_json::json!({"token": token, "expires_in": 300})
        };
        response(
            "200 OK",
            &[("Content-Type", "application/json".into())],
            body.to_string().as_bytes(),
        )
    };
    TokenServer {
        srv: TinyServer::start(Arc::new(handler)),
        bundle: dir.join("tok.crt"),
        log,
    }
}

/// berth's registry settings and auth file for a test: HOME-independent, per test.
pub struct Env {
    pub conf: PathBuf,
    pub auth: PathBuf,
    pub certs: PathBuf,
}

impl Env {
    pub fn new(s: &Scratch, insecure: &[&str]) -> Env {
        let conf = s.join("registries.json");
        let certs = s.join("certs.d");
        std::fs::create_dir_all(&certs).unwrap();
        std::fs::write(
            &conf,
            serde_json::json!({"insecure-registries": insecure, "certs-dirs": [certs], "unqualified-search-registries": ["docker.io"]}).to_string(),
        )
        .unwrap();
        Env {
            conf,
            auth: s.join("auth.json"),
            certs,
        }
    }

    pub fn apply(&self, c: &mut Command) {
        c.env("BERTH_REGISTRIES_CONF", &self.conf)
            .env("BERTH_AUTH_FILE", &self.auth);
        // Loopback only, even where a proxy is configured.
        c.env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost");
    }
}
