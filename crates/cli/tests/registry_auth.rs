//! Registries that want credentials (htpasswd basic auth, token auth) or TLS from a test CA,
//! and podman interop: what berth pushes podman pulls with the same digest, and back.

mod common;
mod regkit;

use berth_testkit::Scratch;
use common::*;
use regkit::*;
use std::path::Path;
use std::process::{Command, Stdio};

fn berth_env(env: &Env, root: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    let mut c = berth_cmd(root);
    env.apply(&mut c);
    c.args(args);
    match stdin {
        Some(input) => {
            c.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = c.spawn().unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap().into()
        }
        None => c.output().expect("run berth").into(),
    }
}

fn ok_env(env: &Env, root: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let r = berth_env(env, root, args, stdin);
    assert_eq!(r.code, 0, "berth {args:?} failed: {}{}", r.stdout, r.stderr);
    r.stdout
}

fn fails(env: &Env, root: &Path, args: &[&str], stdin: Option<&str>, needle: &str) {
    let r = berth_env(env, root, args, stdin);
    assert_ne!(r.code, 0, "berth {args:?} should fail: {}", r.stdout);
    assert!(
        r.stderr.contains(needle),
        "berth {args:?}: expected {needle:?} in {:?}",
        r.stderr
    );
}

fn mkdir(p: std::path::PathBuf) -> std::path::PathBuf {
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn image_id(root: &Path, name: &str) -> String {
    let out = ok(root, &["image", "inspect", "--format", "{{.Id}}", name]);
    out.trim().to_string()
}

/// Login with a wrong password fails, pushing without login fails, login works and is kept in
/// docker's config.json format (`kept`: the entry expected there), push and pull work with it,
/// logout forgets it.
fn auth_round_trip(s: &Scratch, env: &Env, addr: &str, kept: serde_json::Value) {
    let a = s.join("a");
    common::load_fixture(&a, "busybox.oci-archive.tar");
    let name = format!("{addr}/auth/busybox:1");
    ok(&a, &["tag", "busybox", &name]);
    fails(env, &a, &["push", &name], None, "authentication required");
    fails(
        env,
        &a,
        &["login", "-u", "tester", "--password-stdin", addr],
        Some("wrong\n"),
        "unauthorized",
    );
    assert!(!env.auth.exists() || !std::fs::read_to_string(&env.auth).unwrap().contains(addr));
    let out = ok_env(
        env,
        &a,
        &["login", "-u", "tester", "--password-stdin", addr],
        Some("s3cret\n"),
    );
    assert!(out.contains("Login Succeeded"), "{out}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&env.auth).unwrap()).unwrap();
    assert_eq!(cfg["auths"][addr], kept);
    ok_env(env, &a, &["push", &name], None);
    let b = s.join("b");
    ok_env(env, &b, &["pull", &name], None);
    assert_eq!(image_id(&a, &name), image_id(&b, &name));
    let out = ok_env(env, &b, &["logout", addr], None);
    assert!(out.contains("Removing login credentials"), "{out}");
    let c = s.join("c");
    fails(env, &c, &["pull", &name], None, "authentication required");
}

#[test]
fn htpasswd_basic_auth() {
    let s = Scratch::new("reg-basic");
    let opts = RegOpts {
        htpasswd: Some(("tester".into(), "s3cret".into())),
        ..Default::default()
    };
    let reg = Registry::start(&mkdir(s.join("reg")), &opts);
    let env = Env::new(&s, &[&reg.addr]);
    auth_round_trip(
        &s,
        &env,
        &reg.addr,
        serde_json::json!({"auth": "dGVzdGVyOnMzY3JldA=="}),
    );
}

/// docker-registry with `auth: token` trusting a token server of this test (its issuer,
/// service and the certificate bundle that signs the JWTs).
fn token_registry(s: &Scratch, oauth: bool) -> (TokenServer, Registry) {
    let tok = token_server(
        &mkdir(s.join("tok")),
        "berth-test",
        "berth-issuer",
        "tester",
        "s3cret",
        oauth,
    );
    let opts = RegOpts {
        token: Some((
            format!("http://{}/token", tok.srv.addr),
            "berth-test".into(),
            "berth-issuer".into(),
            tok.bundle.clone(),
        )),
        ..Default::default()
    };
    let reg = Registry::start(&mkdir(s.join("reg")), &opts);
    (tok, reg)
}

/// OAuth2 as distribution's token spec has it: login posts the password and keeps the refresh
/// token the server issues as docker's identitytoken (not the password); later pulls and
/// pushes post the refresh token. No GET was needed.
#[test]
fn token_auth_with_oauth2() {
    let s = Scratch::new("reg-token");
    let (tok, reg) = token_registry(&s, true);
    let env = Env::new(&s, &[&reg.addr]);
    auth_round_trip(
        &s,
        &env,
        &reg.addr,
        serde_json::json!({"auth": "dGVzdGVyOg==", "identitytoken": REFRESH_TOKEN}),
    );
    // Logged in, everything goes by POST: the password once, then the refresh token.
    let before = tok.log.lock().unwrap().len();
    let a = s.join("a");
    ok_env(
        &env,
        &a,
        &["login", "-u", "tester", "--password-stdin", &reg.addr],
        Some("s3cret\n"),
    );
    let name = format!("{}/auth/busybox:2", reg.addr);
    ok(&a, &["tag", "busybox", &name]);
    ok_env(&env, &a, &["push", &name], None);
    let log = tok.log.lock().unwrap()[before..].to_vec();
    assert_eq!(log[0], "POST password", "{log:?}");
    assert!(log.len() > 1, "{log:?}");
    assert!(
        log[1..].iter().all(|l| l == "POST refresh_token"),
        "{log:?}"
    );
}

/// A token server without OAuth (404 to the POST): the GET with basic auth, as docker falls back.
#[test]
fn token_auth_falls_back_to_get() {
    let s = Scratch::new("reg-token-get");
    let (tok, reg) = token_registry(&s, false);
    let env = Env::new(&s, &[&reg.addr]);
    auth_round_trip(
        &s,
        &env,
        &reg.addr,
        serde_json::json!({"auth": "dGVzdGVyOnMzY3JldA=="}),
    );
    let log = tok.log.lock().unwrap().clone();
    assert!(log.contains(&"POST refused".to_string()), "{log:?}");
    assert!(log.contains(&"GET".to_string()), "{log:?}");
}

#[test]
fn tls_with_a_test_ca_in_certs_d() {
    let s = Scratch::new("reg-tls");
    let ca = make_ca(&mkdir(s.join("ca")));
    let opts = RegOpts {
        tls: Some((ca.crt.clone(), ca.key.clone())),
        ..Default::default()
    };
    let reg = Registry::start(&mkdir(s.join("reg")), &opts);
    // Loopback is insecure by default (as in docker): --tls-verify makes the certificate count.
    let env = Env::new(&s, &[]);
    let a = s.join("a");
    common::load_fixture(&a, "layered.oci-archive.tar");
    let name = format!("{}/tls/layered:1", reg.addr);
    ok(&a, &["tag", "localhost/layered:1", &name]);
    fails(
        &env,
        &a,
        &["push", "--tls-verify=true", &name],
        None,
        "certificate",
    );
    let dir = mkdir(env.certs.join(&reg.addr));
    std::fs::copy(&ca.ca_crt, dir.join("ca.crt")).unwrap();
    ok_env(&env, &a, &["push", "--tls-verify=true", &name], None);
    let b = s.join("b");
    ok_env(&env, &b, &["pull", "--tls-verify=true", &name], None);
    // Without the flag the loopback registry is insecure: TLS still, unverified.
    let c = s.join("c");
    std::fs::remove_file(dir.join("ca.crt")).unwrap();
    ok_env(&env, &c, &["pull", &name], None);
    assert_eq!(image_id(&a, &name), image_id(&c, &name));
    assert_eq!(image_id(&a, &name), image_id(&b, &name));
}

struct Podman {
    dir: std::path::PathBuf,
}

impl Podman {
    fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(self.dir.join("s"))
            .arg("--runroot")
            .arg(self.dir.join("r"));
        c.arg("--tmpdir").arg(self.dir.join("t"));
        c.args([
            "--storage-driver",
            "overlay",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
        ]);
        c
    }
    fn run(&self, args: &[&str]) -> String {
        let out = self.cmd().args(args).output().expect("podman");
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd().args(["rmi", "-a", "-f"]).output();
        let _ = self.cmd().args(["system", "reset", "-f"]).output();
        berth_testkit::unmount_below(&self.dir);
    }
}

#[test]
fn podman_pulls_what_berth_pushed_and_back() {
    let s = Scratch::new("reg-podman");
    let reg = Registry::start(&mkdir(s.join("reg")), &RegOpts::default());
    let env = Env::new(&s, &[&reg.addr]);
    let podman = Podman { dir: s.join("p") };
    // berth → registry → podman.
    let a = s.join("a");
    common::load_fixture(&a, "layered.oci-archive.tar");
    let name = format!("{}/pm/layered:1", reg.addr);
    ok(&a, &["tag", "localhost/layered:1", &name]);
    let out = ok_env(&env, &a, &["push", &name], None);
    let digest = out
        .lines()
        .find(|l| l.contains(": digest: "))
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap()
        .to_string();
    podman.run(&["pull", "-q", "--tls-verify=false", &name]);
    let p_digest = podman.run(&["image", "inspect", "--format", "{{.Digest}}", &name]);
    assert_eq!(p_digest.trim(), digest);
    let p_id = podman.run(&["image", "inspect", "--format", "{{.Id}}", &name]);
    assert_eq!(
        p_id.trim(),
        image_id(&a, &name).trim_start_matches("sha256:")
    );
    // podman → registry → berth.
    podman.run(&[
        "load",
        "-q",
        "-i",
        fixture("busybox.docker-archive.tar").to_str().unwrap(),
    ]);
    let bb = format!("{}/pm/busybox:2", reg.addr);
    podman.run(&["tag", "localhost/busybox:latest", &bb]);
    let df = s.join("digestfile");
    podman.run(&[
        "push",
        "-q",
        "--tls-verify=false",
        "--digestfile",
        df.to_str().unwrap(),
        &bb,
    ]);
    let pushed = std::fs::read_to_string(&df).unwrap();
    let b = s.join("b");
    let out = ok_env(&env, &b, &["pull", &bb], None);
    assert!(out.contains(&format!("Digest: {}", pushed.trim())), "{out}");
    let m = mount_image(&b, &bb, &s.join("mnt"));
    let got = listing(&m);
    berth_testkit::unmount_below(&s.join("mnt"));
    assert_eq!(got, expected_listing("busybox"));
}

#[test]
fn credential_helpers_keep_the_login() {
    let s = Scratch::new("reg-helper");
    let opts = RegOpts {
        htpasswd: Some(("tester".into(), "s3cret".into())),
        ..Default::default()
    };
    let reg = Registry::start(&mkdir(s.join("reg")), &opts);
    let env = Env::new(&s, &[&reg.addr]);
    // A helper in docker's protocol that keeps one secret in a file.
    let bin = mkdir(s.join("bin"));
    let store = s.join("helper-store");
    let script = format!(
        "#!/bin/sh\ncase \"$1\" in\n store) cat > {st} ;;\n get) read url; if [ -f {st} ]; then cat {st}; else echo 'credentials not found in native keychain'; exit 1; fi ;;\n erase) rm -f {st} ;;\nesac\n",
        st = store.display()
    );
    let helper = bin.join("docker-credential-berthtest");
    std::fs::write(&helper, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(&env.auth, r#"{"credsStore": "berthtest"}"#).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |root: &Path, args: &[&str], stdin: Option<&str>| -> Run {
        let mut c = berth_cmd(root);
        env.apply(&mut c);
        c.env("PATH", &path).args(args);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.unwrap_or("").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap().into()
    };
    let a = s.join("a");
    common::load_fixture(&a, "busybox.oci-archive.tar");
    let name = format!("{}/helper/busybox:1", reg.addr);
    ok(&a, &["tag", "busybox", &name]);
    let r = run(
        &a,
        &["login", "-u", "tester", "--password-stdin", &reg.addr],
        Some("s3cret"),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let kept: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&store).unwrap()).unwrap();
    assert_eq!(kept["Secret"], "s3cret");
    assert!(
        !std::fs::read_to_string(&env.auth)
            .unwrap()
            .contains("auths"),
        "the secret went to the helper"
    );
    let r = run(&a, &["push", "-q", &name], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(&a, &["logout", &reg.addr], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!store.exists());
    let r = run(&s.join("b"), &["pull", &name], None);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("authentication required"), "{}", r.stderr);
}
