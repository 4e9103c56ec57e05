//! berth against a real registry (Debian's docker-registry on loopback): push the fixtures,
//! pull them back into an empty store, compare digests and trees; TLS from a test CA, htpasswd
//! and token auth, podman interop, and bad input that must fail cleanly leaving the store intact.

mod common;
mod regkit;

use berth_testkit::Scratch;
use common::*;
use regkit::*;
use std::path::Path;
use std::process::Command;

fn berth_env(env: &Env, root: &Path, args: &[&str]) -> Run {
    let mut c = berth_cmd(root);
    env.apply(&mut c);
    c.args(args).output().expect("run berth").into()
}

fn ok_env(env: &Env, root: &Path, args: &[&str]) -> String {
    let r = berth_env(env, root, args);
    assert_eq!(r.code, 0, "berth {args:?} failed: {}{}", r.stdout, r.stderr);
    r.stdout
}

fn fails(env: &Env, root: &Path, args: &[&str], needle: &str) -> String {
    let r = berth_env(env, root, args);
    assert_ne!(r.code, 0, "berth {args:?} should fail: {}", r.stdout);
    assert!(
        r.stderr.contains(needle),
        "berth {args:?}: expected {needle:?} in {:?}",
        r.stderr
    );
    assert_eq!(
        r.stderr.trim().lines().count(),
        1,
        "one-line error expected: {:?}",
        r.stderr
    );
    r.stderr
}

fn inspect(root: &Path, name: &str) -> serde_json::Value {
    let out = ok(root, &["image", "inspect", name]);
    serde_json::from_str::<serde_json::Value>(&out).unwrap()[0].clone()
}

/// The manifest digest `berth push` printed ("TAG: digest: sha256:... size: N").
fn pushed_digest(out: &str) -> String {
    let l = out
        .lines()
        .find(|l| l.contains(": digest: "))
        .expect("digest line");
    l.split_whitespace().nth(2).unwrap().to_string()
}

/// No images and nothing left below tmp/.
fn assert_empty_store(root: &Path) {
    assert_consistent(root);
    let store = berth_image::ImageStore::open(root, &Default::default()).unwrap();
    assert!(store.list().unwrap().is_empty(), "an image was recorded");
    let blobs: Vec<_> = std::fs::read_dir(root.join("blobs/sha256"))
        .unwrap()
        .collect();
    assert!(blobs.is_empty(), "blobs were stored: {blobs:?}");
    let layers: Vec<_> = std::fs::read_dir(root.join("layers")).unwrap().collect();
    assert!(layers.is_empty(), "layers were stored: {layers:?}");
}

fn tree_matches(root: &Path, s: &Scratch, image: &str, fixture: &str) {
    let m = mount_image(root, image, &s.join(format!("mnt-{fixture}")));
    let got = listing(&m);
    berth_testkit::unmount_below(&s.join(format!("mnt-{fixture}")));
    assert_eq!(got, expected_listing(fixture), "tree of {image}");
}

#[test]
fn push_and_pull_fixtures_over_plain_http() {
    let s = Scratch::new("reg-plain");
    let reg = Registry::start(&s.join("reg").tap_mkdir(), &RegOpts::default());
    let env = Env::new(&s, &[&reg.addr]);
    let (a, b) = (s.join("a"), s.join("b"));
    common::load_fixture(&a, "busybox.oci-archive.tar");
    common::load_fixture(&a, "layered.docker-archive.tar");
    let bb = format!("{}/test/busybox:1", reg.addr);
    let ly = format!("{}/test/layered:1", reg.addr);
    ok(&a, &["tag", "busybox", &bb]);
    ok(&a, &["tag", "localhost/layered:1", &ly]);
    let out = ok_env(&env, &a, &["push", &bb]);
    assert!(
        out.contains(&format!(
            "The push refers to repository [{}/test/busybox]",
            reg.addr
        )),
        "{out}"
    );
    assert!(out.contains("Pushed"), "{out}");
    let bb_digest = pushed_digest(&out);
    let ly_digest = pushed_digest(&ok_env(&env, &a, &["push", &ly]));
    // The second push of the same image finds every blob there.
    let again = ok_env(&env, &a, &["push", &bb]);
    assert!(again.contains("Layer already exists"), "{again}");
    assert_eq!(pushed_digest(&again), bb_digest);
    // The registry stored the original blobs: the manifest digest is what berth holds.
    assert!(
        inspect(&a, &bb)["RepoDigests"]
            .to_string()
            .contains(&bb_digest),
        "{}",
        inspect(&a, &bb)["RepoDigests"]
    );

    let out = ok_env(&env, &b, &["pull", &bb]);
    assert!(out.contains("Pull complete"), "{out}");
    assert!(out.contains(&format!("Digest: {bb_digest}")), "{out}");
    assert!(out.trim_end().ends_with(&bb), "{out}");
    ok_env(&env, &b, &["pull", "-q", &ly]);
    for (name, digest, fixture_name) in [(&bb, &bb_digest, "busybox"), (&ly, &ly_digest, "layered")]
    {
        let (x, y) = (inspect(&a, name), inspect(&b, name));
        assert_eq!(x["Id"], y["Id"], "{name}: same config");
        assert_eq!(x["RootFS"], y["RootFS"], "{name}: same diff ids");
        assert!(
            y["RepoDigests"].to_string().contains(digest.as_str()),
            "{name}: {}",
            y["RepoDigests"]
        );
        tree_matches(&b, &s, name, fixture_name);
    }
    // Another repository of the same registry: blobs are mounted, not uploaded again.
    let other = format!("{}/test2/busybox:1", reg.addr);
    ok(&a, &["tag", "busybox", &other]);
    let out = ok_env(&env, &a, &["push", &other]);
    assert!(out.contains("Mounted from test/busybox"), "{out}");
    assert_eq!(pushed_digest(&out), bb_digest);
    // Up to date: nothing fetched again.
    let out = ok_env(&env, &b, &["pull", &bb]);
    assert!(out.contains("Status: Image is up to date"), "{out}");
    // Pull by digest; a layer the store holds is not fetched again.
    ok(&b, &["rmi", &bb]);
    let by_digest = format!("{}/test/busybox@{bb_digest}", reg.addr);
    let out = ok_env(&env, &b, &["pull", &by_digest]);
    assert!(
        out.contains("Already exists") || out.contains("Pull complete"),
        "{out}"
    );
    assert_consistent(&b);
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}
impl TapMkdir for std::path::PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}

#[test]
fn bad_references_fail_cleanly() {
    let s = Scratch::new("reg-bad");
    let reg = Registry::start(&s.join("reg").tap_mkdir(), &RegOpts::default());
    let env = Env::new(&s, &[&reg.addr]);
    let root = s.join("r");
    fails(
        &env,
        &root,
        &["pull", &format!("{}/nope/nothing:1", reg.addr)],
        "not found",
    );
    common::load_fixture(&root, "busybox.docker-archive.tar");
    let name = format!("{}/x/bb:1", reg.addr);
    ok(&root, &["tag", "busybox", &name]);
    ok_env(&env, &root, &["push", "-q", &name]);
    let empty = s.join("e");
    fails(
        &env,
        &empty,
        &["pull", &format!("{}/x/bb:2", reg.addr)],
        "manifest unknown",
    );
    assert_empty_store(&empty);
    // --tls-verify requires HTTPS: the plain-HTTP registry is refused.
    let s2 = Scratch::new("reg-strict");
    let strict = Env::new(&s2, &[]);
    fails(&strict, &empty, &["pull", "--tls-verify=true", &name], "");
    assert_empty_store(&empty);
    // Without it a loopback registry needs no insecure entry, as in docker.
    ok_env(&strict, &empty, &["pull", "-q", &name]);
    assert_consistent(&empty);
}

/// A short name is tried in each unqualified-search registry in turn: one that lacks it is
/// passed over without a word, as docker reports only the registry it pulls from.
#[test]
fn a_short_name_is_tried_in_each_search_registry() {
    let s = Scratch::new("reg-search");
    let empty = Registry::start(&s.join("empty").tap_mkdir(), &RegOpts::default());
    let reg = Registry::start(&s.join("reg").tap_mkdir(), &RegOpts::default());
    let env = Env::new(&s, &[]);
    std::fs::write(
        &env.conf,
        serde_json::json!({"unqualified-search-registries": [empty.addr, reg.addr]}).to_string(),
    )
    .unwrap();
    let a = s.join("a");
    common::load_fixture(&a, "busybox.docker-archive.tar");
    let name = format!("{}/x/bb:1", reg.addr);
    ok(&a, &["tag", "busybox", &name]);
    ok_env(&env, &a, &["push", "-q", &name]);
    let b = s.join("b");
    let out = ok_env(&env, &b, &["pull", "x/bb:1"]);
    assert_eq!(out.matches("Pulling from").count(), 1, "{out}");
    assert!(out.starts_with("1: Pulling from x/bb\n"), "{out}");
    assert!(
        out.ends_with(&format!(
            "Status: Downloaded newer image for {name}\n{}/x/bb:1\n",
            reg.addr
        )),
        "{out}"
    );
    fails(&env, &b, &["pull", "x/nothing:1"], "not found");
    assert_consistent(&b);
}

#[test]
fn corrupted_blob_in_the_registry_is_refused() {
    let s = Scratch::new("reg-corrupt");
    let reg = Registry::start(&s.join("reg").tap_mkdir(), &RegOpts::default());
    let env = Env::new(&s, &[&reg.addr]);
    let a = s.join("a");
    common::load_fixture(&a, "busybox.oci-archive.tar");
    let name = format!("{}/c/bb:1", reg.addr);
    ok(&a, &["tag", "busybox", &name]);
    ok_env(&env, &a, &["push", "-q", &name]);
    let layer = inspect(&a, &name);
    let store = berth_image::ImageStore::open(&a, &Default::default()).unwrap();
    let blob = store.resolve(&name).unwrap().layers[0].blob_digest.clone();
    let _ = layer;
    // Same size, one byte changed: only the digest can tell.
    let f = reg.blob_file(&blob);
    let mut bytes = std::fs::read(&f).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&f, &bytes).unwrap();
    let b = s.join("b");
    fails(&env, &b, &["pull", &name], "content digest is");
    assert_empty_store(&b);
}

/// A registry serving busybox's real blobs, with `layer` deciding how the layer blob is served
/// (`range_start`, the full blob) -> raw response bytes.
fn fake_registry(
    s: &Scratch,
    manifest_override: Option<(String, Vec<u8>)>,
    layer: impl Fn(Option<u64>, &[u8]) -> Vec<u8> + Send + Sync + 'static,
) -> (TinyServer, String) {
    let src = s.join("src");
    common::load_fixture(&src, "busybox.oci-archive.tar");
    let store = berth_image::ImageStore::open(&src, &Default::default()).unwrap();
    let img = store.resolve("busybox").unwrap();
    let manifest = store.read_blob(&img.manifest_digest).unwrap();
    let config = store.read_blob(&format!("sha256:{}", img.id)).unwrap();
    let layer_digest = img.layers[0].blob_digest.clone();
    let layer_bytes = store.read_blob(&layer_digest).unwrap();
    let config_digest = format!("sha256:{}", img.id);
    let handler = move |req: &Request| -> Vec<u8> {
        let path = req.path.as_str();
        if path == "/v2/" {
            return response("200 OK", &[], b"{}");
        }
        if path == "/v2/t/img/manifests/1" {
            let (ct, body) = manifest_override.clone().unwrap_or_else(|| {
                (
                    "application/vnd.oci.image.manifest.v1+json".into(),
                    manifest.clone(),
                )
            });
            if ct == "redirect" {
                return response("302 Found", &[("Location", path.to_string())], b"");
            }
            return response("200 OK", &[("Content-Type", ct)], &body);
        }
        if path == format!("/v2/t/img/blobs/{config_digest}") {
            return response("200 OK", &[], &config);
        }
        // Where a registry may redirect blob downloads to (a blob store).
        if path == "/store/layer" {
            let start = req
                .header("range")
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.trim_end_matches('-').parse().ok());
            return cut(start.unwrap_or(0), &layer_bytes, layer_bytes.len());
        }
        if path == format!("/v2/t/img/blobs/{layer_digest}") {
            let start = req
                .header("range")
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.trim_end_matches('-').parse().ok());
            return layer(start, &layer_bytes);
        }
        response(
            "404 Not Found",
            &[],
            br#"{"errors":[{"code":"NOT_FOUND","message":"not here"}]}"#,
        )
    };
    let srv = TinyServer::start(std::sync::Arc::new(handler));
    let name = format!("{}/t/img:1", srv.addr);
    (srv, name)
}

/// Headers for the whole blob (or the range from `start`), then only `send` bytes of it.
fn cut(start: u64, blob: &[u8], send: usize) -> Vec<u8> {
    let rest = &blob[start as usize..];
    let mut v = if start == 0 {
        format!("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n", rest.len())
    } else {
        format!(
            "HTTP/1.1 206 Partial Content\r\nConnection: close\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{}\r\n\r\n",
            rest.len(),
            blob.len() - 1,
            blob.len()
        )
    }
    .into_bytes();
    v.extend(&rest[..send.min(rest.len())]);
    v
}

#[test]
fn a_registry_closing_mid_blob_fails_cleanly() {
    let s = Scratch::new("reg-cut");
    // Half the blob, then the connection closes; a resumed request gets nothing more.
    let (srv, name) = fake_registry(&s, None, |start, blob| match start {
        None => cut(0, blob, blob.len() / 2),
        Some(st) => cut(st, blob, 0),
    });
    let env = Env::new(&s, &[&srv.addr]);
    let root = s.join("r");
    fails(&env, &root, &["pull", &name], "connection closed after");
    assert_empty_store(&root);
}

#[test]
fn an_interrupted_blob_resumes_with_range() {
    let s = Scratch::new("reg-resume");
    let (srv, name) = fake_registry(&s, None, |start, blob| match start {
        None => cut(0, blob, blob.len() / 3),
        Some(st) => cut(st, blob, blob.len()),
    });
    let env = Env::new(&s, &[&srv.addr]);
    let root = s.join("r");
    let out = ok_env(&env, &root, &["pull", &name]);
    assert!(out.contains("Retrying from byte"), "{out}");
    tree_matches(&root, &s, &name, "busybox");
    assert_consistent(&root);
}

#[test]
fn redirect_loops_oversize_and_schema1_manifests_are_refused() {
    let s = Scratch::new("reg-manifests");
    let root = s.join("r");
    let full = |start: Option<u64>, blob: &[u8]| cut(start.unwrap_or(0), blob, blob.len());
    let (srv, name) = fake_registry(&s, Some(("redirect".into(), vec![])), full);
    let env = Env::new(&s, &[&srv.addr]);
    fails(&env, &root, &["pull", &name], "redirect");
    drop(srv);
    let big = format!(
        "{{\"schemaVersion\": 2, \"pad\": \"{}\"}}",
        "x".repeat(5 << 20)
    )
    .into_bytes();
    let (srv, name) = fake_registry(
        &s,
        Some(("application/vnd.oci.image.manifest.v1+json".into(), big)),
        full,
    );
    let env = Env::new(&s, &[&srv.addr]);
    fails(&env, &root, &["pull", &name], "too large");
    drop(srv);
    let v1 = br#"{"schemaVersion": 1, "name": "t/img", "tag": "1", "fsLayers": [], "history": []}"#
        .to_vec();
    let (srv, name) = fake_registry(
        &s,
        Some((
            "application/vnd.docker.distribution.manifest.v1+prettyjws".into(),
            v1,
        )),
        full,
    );
    let env = Env::new(&s, &[&srv.addr]);
    fails(&env, &root, &["pull", &name], "schema 1");
    drop(srv);
    assert_empty_store(&root);
}

/// A registry's manifest for `repo:tag`, fetched with curl (loopback only).
fn registry_manifest(addr: &str, repo: &str, tag: &str) -> serde_json::Value {
    let out = Command::new("curl")
        .args([
            "-sf",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
        ])
        .arg(format!("http://{addr}/v2/{repo}/manifests/{tag}"))
        .output()
        .expect("curl");
    assert!(out.status.success(), "curl manifest {repo}:{tag}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn committed_layers_are_compressed_once_and_kept() {
    let s = Scratch::new("reg-compress");
    let reg = Registry::start(&s.join("reg").tap_mkdir(), &RegOpts::default());
    let env = Env::new(&s, &[&reg.addr]);
    let a = s.join("a");
    // An imported layer is stored as a plain tar (its blob digest is its diff id).
    let tree = s.join("tree").tap_mkdir();
    std::fs::write(tree.join("hello"), "hello from an import\n".repeat(1000)).unwrap();
    let tar = s.join("layer.tar");
    assert!(Command::new("tar")
        .arg("-C")
        .arg(&tree)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap()
        .success());
    let name = format!("{}/cmp/imported:1", reg.addr);
    ok(&a, &["import", tar.to_str().unwrap(), &name]);
    let d1 = pushed_digest(&ok_env(&env, &a, &["push", &name]));
    let m = registry_manifest(&reg.addr, "cmp/imported", "1");
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let gz = m["layers"][0]["digest"].as_str().unwrap().to_string();
    // The compressed blob is kept: the next push (another tag) sends the same bytes.
    let name2 = format!("{}/cmp/imported:2", reg.addr);
    ok(&a, &["tag", &name, &name2]);
    let out = ok_env(&env, &a, &["push", &name2]);
    assert!(out.contains("Layer already exists"), "{out}");
    assert_eq!(pushed_digest(&out), d1);
    assert!(a
        .join("blobs/sha256")
        .join(gz.trim_start_matches("sha256:"))
        .is_file());
    // zstd on request.
    let name3 = format!("{}/cmp/imported:3", reg.addr);
    ok(&a, &["tag", &name, &name3]);
    ok_env(&env, &a, &["push", "--compression-format", "zstd", &name3]);
    let m3 = registry_manifest(&reg.addr, "cmp/imported", "3");
    assert_eq!(
        m3["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    // Pulled back, the image is the same (config, diff ids) and so is its tree.
    for n in [&name, &name3] {
        let b = s.join(format!("b{}", n.len()));
        ok_env(&env, &b, &["pull", "-q", n]);
        assert_eq!(inspect(&a, n)["Id"], inspect(&b, n)["Id"]);
        let m = mount_image(&b, n, &s.join("mnt"));
        assert_eq!(
            std::fs::read_to_string(m.join("hello")).unwrap(),
            "hello from an import\n".repeat(1000)
        );
        berth_testkit::unmount_below(&s.join("mnt"));
    }
    // Removing the image collects the compressed copies too.
    for n in [&name, &name2, &name3] {
        ok(&a, &["rmi", n]);
    }
    assert!(!a
        .join("blobs/sha256")
        .join(gz.trim_start_matches("sha256:"))
        .exists());
}

#[test]
fn pull_all_tags_and_run_pulls_a_missing_image() {
    let s = Scratch::new("reg-alltags");
    let reg = Registry::start(&s.join("reg").tap_mkdir(), &RegOpts::default());
    let env = Env::new(&s, &[&reg.addr]);
    let a = s.join("a");
    common::load_fixture(&a, "busybox.docker-archive.tar");
    for t in ["1", "2"] {
        let n = format!("{}/all/bb:{t}", reg.addr);
        ok(&a, &["tag", "busybox", &n]);
        ok_env(&env, &a, &["push", "-q", &n]);
    }
    let b = s.join("b");
    let out = ok_env(
        &env,
        &b,
        &["pull", "-a", "-q", &format!("{}/all/bb", reg.addr)],
    );
    assert_eq!(out.lines().count(), 2, "{out}");
    for t in ["1", "2"] {
        assert_eq!(
            inspect(&b, &format!("{}/all/bb:{t}", reg.addr))["Id"],
            inspect(&a, "busybox")["Id"]
        );
    }
    // create: --pull never refuses a missing image, the default pulls it.
    let c = s.join("c");
    let n = format!("{}/all/bb:1", reg.addr);
    let r = berth_env(&env, &c, &["create", "--pull", "never", &n, "true"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.to_lowercase().contains("unable to find image"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("Pulling"), "{}", r.stderr);
    let r = berth_env(&env, &c, &["create", &n, "true"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("Unable to find image"), "{}", r.stderr);
    let id = r.stdout.trim().to_string();
    ok(&c, &["rm", &id]);
    // --pull always asks the registry even when the image is here.
    let r = berth_env(&env, &c, &["create", "--pull", "always", &n, "true"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("Status: Image is up to date"),
        "{}",
        r.stderr
    );
    ok(&c, &["rm", r.stdout.trim()]);
    assert_eq!(inspect(&c, &n)["Id"], inspect(&a, "busybox")["Id"]);
}

#[test]
fn blob_downloads_follow_redirects() {
    let s = Scratch::new("reg-redirect");
    let (srv, name) = fake_registry(&s, None, |_, _| {
        response(
            "307 Temporary Redirect",
            &[("Location", "/store/layer".into())],
            b"",
        )
    });
    let env = Env::new(&s, &[&srv.addr]);
    let root = s.join("r");
    ok_env(&env, &root, &["pull", &name]);
    tree_matches(&root, &s, &name, "busybox");
}

#[test]
fn chunked_uploads() {
    let s = Scratch::new("reg-chunked");
    let reg = Registry::start(&s.join("reg").tap_mkdir(), &RegOpts::default());
    let env = Env::new(&s, &[&reg.addr]);
    let a = s.join("a");
    common::load_fixture(&a, "layered.oci-archive.tar");
    let name = format!("{}/chunked/layered:1", reg.addr);
    ok(&a, &["tag", "localhost/layered:1", &name]);
    let mut c = berth_cmd(&a);
    env.apply(&mut c);
    let r: Run = c
        .env("BERTH_PUSH_CHUNK_SIZE", "65536")
        .args(["push", &name])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let b = s.join("b");
    ok_env(&env, &b, &["pull", "-q", &name]);
    assert_eq!(inspect(&a, &name)["Id"], inspect(&b, &name)["Id"]);
    tree_matches(&b, &s, &name, "layered");
}

#[test]
fn an_index_yields_the_platform_asked_for() {
    let s = Scratch::new("reg-index");
    let reg = Registry::start(&s.join("reg").tap_mkdir(), &RegOpts::default());
    let env = Env::new(&s, &[&reg.addr]);
    let a = s.join("a");
    common::load_fixture(&a, "busybox.oci-archive.tar");
    common::load_fixture(&a, "layered.oci-archive.tar");
    let (bb, ly) = (
        format!("{}/multi/img:bb", reg.addr),
        format!("{}/multi/img:ly", reg.addr),
    );
    ok(&a, &["tag", "busybox", &bb]);
    ok(&a, &["tag", "localhost/layered:1", &ly]);
    let bb_digest = pushed_digest(&ok_env(&env, &a, &["push", &bb]));
    let ly_digest = pushed_digest(&ok_env(&env, &a, &["push", &ly]));
    let size = |d: &str| {
        std::fs::metadata(a.join("blobs/sha256").join(d.trim_start_matches("sha256:")))
            .unwrap()
            .len()
    };
    let host = berth_image::host_arch();
    let other = if host == "arm64" { "amd64" } else { "arm64" };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": ly_digest, "size": size(&ly_digest), "platform": {"architecture": other, "os": "linux"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": bb_digest, "size": size(&bb_digest), "platform": {"architecture": host, "os": "linux"}},
        ]
    });
    let file = s.join("index.json");
    std::fs::write(&file, index.to_string()).unwrap();
    let st = Command::new("curl")
        .args([
            "-sf",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/vnd.oci.image.index.v1+json",
            "--data-binary",
        ])
        .arg(format!("@{}", file.display()))
        .arg(format!("http://{}/v2/multi/img/manifests/multi", reg.addr))
        .status()
        .unwrap();
    assert!(st.success(), "PUT index");
    let multi = format!("{}/multi/img:multi", reg.addr);
    let b = s.join("b");
    ok_env(&env, &b, &["pull", "-q", &multi]);
    assert_eq!(
        inspect(&b, &multi)["Id"],
        inspect(&a, &bb)["Id"],
        "the host's platform by default"
    );
    let c = s.join("c");
    ok_env(
        &env,
        &c,
        &[
            "pull",
            "-q",
            "--platform",
            &format!("linux/{other}"),
            &multi,
        ],
    );
    assert_eq!(
        inspect(&c, &multi)["Id"],
        inspect(&a, &ly)["Id"],
        "--platform linux/{other}"
    );
    let d = s.join("d");
    fails(
        &env,
        &d,
        &["pull", "--platform", "linux/s390x", &multi],
        "no image for platform linux/s390x",
    );
    assert_empty_store(&d);
    // search lists the registry's repositories.
    let out = ok_env(&env, &d, &["search", &format!("{}/multi", reg.addr)]);
    assert!(out.contains(&format!("{}/multi/img", reg.addr)), "{out}");
}

#[test]
fn layers_unpack_while_they_download() {
    let s = Scratch::new("reg-stream");
    let root = s.join("r");
    let tmp = root.join("tmp");
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen2 = seen.clone();
    // The first request stops halfway; before answering the resumed one, wait until files of the
    // first half are in the layer's unpack dir: unpacking ran ahead of the download.
    let (srv, name) = fake_registry(&s, None, move |start, blob| match start {
        None => cut(0, blob, blob.len() / 2),
        Some(st) => {
            for _ in 0..500 {
                let unpacked = std::fs::read_dir(&tmp)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .any(|d| d.path().join("unpack-0/diff/bin").is_dir());
                if unpacked {
                    seen2.store(true, std::sync::atomic::Ordering::SeqCst);
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            cut(st, blob, blob.len())
        }
    });
    let env = Env::new(&s, &[&srv.addr]);
    ok_env(&env, &root, &["pull", &name]);
    assert!(
        seen.load(std::sync::atomic::Ordering::SeqCst),
        "nothing was unpacked before the download finished"
    );
    tree_matches(&root, &s, &name, "busybox");
}

/// The layered fixture pushed to a fresh registry with a counting proxy in front: (registry,
/// proxy, the name to pull through the proxy, the layer blob digests).
fn layered_behind_a_proxy(s: &Scratch) -> (Registry, Proxy, String, Vec<String>) {
    let reg = Registry::start(&s.join("reg").tap_mkdir(), &RegOpts::default());
    // Loopback registries need no insecure entry.
    let env = Env::new(s, &[]);
    let a = s.join("a");
    common::load_fixture(&a, "layered.oci-archive.tar");
    let pushed = format!("{}/keep/layered:1", reg.addr);
    ok(&a, &["tag", "localhost/layered:1", &pushed]);
    ok_env(&env, &a, &["push", "-q", &pushed]);
    let store = berth_image::ImageStore::open(&a, &Default::default()).unwrap();
    let layers = store
        .resolve(&pushed)
        .unwrap()
        .layers
        .iter()
        .map(|l| l.blob_digest.clone())
        .collect();
    let proxy = Proxy::start(&reg.addr);
    let name = format!("{}/keep/layered:1", proxy.addr);
    (reg, proxy, name, layers)
}

fn has_blob(root: &Path, digest: &str) -> bool {
    root.join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
        .is_file()
}

/// After an interrupted pull: no image, nothing in tmp, the broken blob not stored, every
/// other layer blob stored (verified); the next pull fetches only the broken one again.
fn next_pull_reuses_what_was_verified(
    s: &Scratch,
    env: &Env,
    root: &Path,
    proxy: &Proxy,
    name: &str,
    layers: &[String],
    broken: &str,
) {
    assert_consistent(root);
    assert_eq!(
        ok(root, &["images", "-q"]).trim(),
        "",
        "an image was recorded"
    );
    assert!(!has_blob(root, broken), "the broken blob was stored");
    for d in layers.iter().filter(|d| *d != broken) {
        assert!(has_blob(root, d), "verified blob {d} was not kept");
    }
    let gets_before: Vec<usize> = layers.iter().map(|d| proxy.blob_gets(d)).collect();
    proxy.set_fault(None);
    let out = ok_env(env, root, &["pull", name]);
    assert!(out.contains("Already exists"), "{out}");
    for (d, before) in layers.iter().zip(gets_before) {
        let fetched = proxy.blob_gets(d) - before;
        assert_eq!(
            fetched,
            usize::from(d == broken),
            "GETs of {d} in the second pull"
        );
    }
    tree_matches(root, s, name, "layered");
    assert_consistent(root);
}

#[test]
fn a_pull_cut_mid_blob_keeps_the_verified_layers() {
    let s = Scratch::new("reg-keep");
    let (_reg, proxy, name, layers) = layered_behind_a_proxy(&s);
    let env = Env::new(&s, &[]);
    let root = s.join("b");
    // The first layer is cut once the three others are in the store: they were verified.
    let broken = layers[0].clone();
    let (r, others) = (root.clone(), layers[1..].to_vec());
    let ready = move || others.iter().all(|d| has_blob(&r, d));
    proxy.set_fault(Some((
        broken.as_str(),
        BlobFault::Cut(std::sync::Arc::new(ready)),
    )));
    fails(&env, &root, &["pull", &name], "connection closed after");
    assert!(
        proxy.blob_gets(&broken) >= 2,
        "the cut blob was not resumed"
    );
    next_pull_reuses_what_was_verified(&s, &env, &root, &proxy, &name, &layers, &broken);
}

#[test]
fn a_pull_killed_mid_blob_keeps_the_verified_layers() {
    let s = Scratch::new("reg-kill");
    let (_reg, proxy, name, layers) = layered_behind_a_proxy(&s);
    let env = Env::new(&s, &[]);
    let root = s.join("b");
    let broken = layers[0].clone();
    proxy.set_fault(Some((broken.as_str(), BlobFault::Stall)));
    let mut c = berth_cmd(&root);
    env.apply(&mut c);
    let mut child = c
        .args(["pull", "-q", &name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once the other layers are stored and the stalled one has half its bytes sent.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !(proxy.blob_gets(&broken) == 1 && layers[1..].iter().all(|d| has_blob(&root, d))) {
        assert!(
            std::time::Instant::now() < deadline,
            "the pull did not get there"
        );
        assert!(child.try_wait().unwrap().is_none(), "the pull ended early");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    proxy.release();
    next_pull_reuses_what_was_verified(&s, &env, &root, &proxy, &name, &layers, &broken);
}

/// `berth search` on a registry without /v1/search: its catalog, filtered, in docker's columns.
#[test]
fn search_falls_back_to_the_catalog() {
    let s = Scratch::new("reg-search");
    let reg = Registry::start(&s.join("reg").tap_mkdir(), &RegOpts::default());
    let env = Env::new(&s, &[]);
    let a = s.join("a");
    common::load_fixture(&a, "busybox.oci-archive.tar");
    for repo in ["find/busybox", "find/busybox-two", "other/thing"] {
        let name = format!("{}/{repo}:1", reg.addr);
        ok(&a, &["tag", "busybox", &name]);
        ok_env(&env, &a, &["push", "-q", &name]);
    }
    let out = ok_env(&env, &a, &["search", &format!("{}/busybox", reg.addr)]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        columns(lines[0]),
        ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"],
        "{out}"
    );
    assert_eq!(lines.len(), 3, "{out}");
    let first = format!("{}/find/busybox", reg.addr);
    assert_eq!(columns(lines[1]), [first.as_str(), "0"]);
    let out = ok_env(
        &env,
        &a,
        &[
            "search",
            "--limit",
            "1",
            "--format",
            "{{.Name}}",
            &format!("{}/find", reg.addr),
        ],
    );
    assert_eq!(out, format!("{}/find/busybox\n", reg.addr));
    let out = ok_env(
        &env,
        &a,
        &[
            "search",
            "--filter",
            "stars=1",
            &format!("{}/busybox", reg.addr),
        ],
    );
    assert_eq!(out.lines().count(), 1, "{out}");
    fails(
        &env,
        &a,
        &["search", "--limit", "0", &format!("{}/x", reg.addr)],
        "limit 0 is outside the range of [1, 100]",
    );
    fails(
        &env,
        &a,
        &["search", "-f", "colour=red", &format!("{}/x", reg.addr)],
        "invalid filter 'colour'",
    );
}

/// `berth search` where the registry serves docker's /v1/search (as Docker Hub does).
#[test]
fn search_asks_v1_search() {
    let s = Scratch::new("reg-search-v1");
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let asked2 = asked.clone();
    let handler = move |req: &Request| -> Vec<u8> {
        if let Some(q) = req.path.strip_prefix("/v1/search?") {
            asked2.lock().unwrap().push(q.to_string());
            let body = serde_json::json!({"num_results": 3, "query": "busy", "page": 1, "page_size": 25, "results": [
                {"name": "busybox", "description": "Busybox base image.\nWith a second line that is long.", "star_count": 3400, "is_official": true, "is_automated": false},
                {"name": "someone/busybox", "description": "mine", "star_count": 7, "is_official": false, "is_automated": true},
                {"name": "other/busy", "description": "", "star_count": 0, "is_official": false, "is_automated": false}
            ]});
            return response(
                "200 OK",
                &[("Content-Type", "application/json".into())],
                body.to_string().as_bytes(),
            );
        }
        response("404 Not Found", &[], b"404 page not found")
    };
    let srv = TinyServer::start(std::sync::Arc::new(handler));
    let env = Env::new(&s, &[]);
    let root = s.join("r");
    let term = format!("{}/busy", srv.addr);
    let out = ok_env(&env, &root, &["search", &term]);
    assert_eq!(asked.lock().unwrap()[0], "q=busy&n=25");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(
        columns(lines[0]),
        ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"]
    );
    // docker's 45 characters, newlines as spaces, and [OK] for official images.
    assert_eq!(
        columns(lines[1]),
        [
            "busybox",
            "Busybox base image. With a second line that …",
            "3400",
            "[OK]"
        ]
    );
    assert_eq!(columns(lines[3]), ["other/busy", "0"]);
    let out = ok_env(
        &env,
        &root,
        &["search", "--no-trunc", "--limit", "2", &term],
    );
    assert!(
        out.contains("Busybox base image. With a second line that is long."),
        "{out}"
    );
    assert_eq!(out.lines().count(), 3, "{out}");
    assert_eq!(asked.lock().unwrap()[1], "q=busy&n=2");
    let names = |args: &[&str]| -> Vec<String> {
        let mut v = vec!["search", "--format", "{{.Name}}"];
        v.extend(args);
        v.push(&term);
        ok_env(&env, &root, &v)
            .lines()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(names(&["-f", "stars=5"]), ["busybox", "someone/busybox"]);
    assert_eq!(names(&["-f", "is-official=true"]), ["busybox"]);
    assert_eq!(
        names(&["-f", "is-official=false", "-f", "stars=1"]),
        ["someone/busybox"]
    );
    assert!(names(&["-f", "is-automated=true"]).is_empty());
    let out = ok_env(
        &env,
        &root,
        &["search", "--format", "json", "--limit", "1", &term],
    );
    let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"Name": "busybox", "Description": "Busybox base image. With a second line that …", "StarCount": "3400", "IsOfficial": "true"})
    );
    fails(
        &env,
        &root,
        &["search", "-f", "stars=many", &term],
        "invalid filter 'stars=many'",
    );
}
