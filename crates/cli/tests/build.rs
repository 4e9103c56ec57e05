//! `berth build` end to end on the busybox fixture: every instruction and the config, layers
//! and files it makes, the cache (hit, miss, invalidation), multi-stage builds, .dockerignore,
//! heredocs, stdin contexts, failing and interrupted steps. Each test has its own root; the
//! RUN containers must be gone when a build ends, whatever way it ends.

mod common;
mod regkit;

use berth_testkit::{mounts_below, require_busybox, Scratch};
use common::{berth, berth_cmd, ok};
use serde_json::Value;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

struct Env {
    scratch: Scratch,
    root: PathBuf,
    ctx: PathBuf,
}

impl Env {
    fn new(name: &str) -> Env {
        require_busybox();
        let scratch = Scratch::new(name);
        let root = scratch.join("root");
        let ctx = scratch.join("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        common::load_fixture(&root, "busybox.oci-archive.tar");
        Env { scratch, root, ctx }
    }
    fn file(&self, rel: &str, content: &str) {
        let p = self.ctx.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    fn run(&self, args: &[&str]) -> common::Run {
        berth(&self.root, args)
    }
    fn ok(&self, args: &[&str]) -> String {
        ok(&self.root, args)
    }
    /// `berth build ARGS CTX`.
    fn build(&self, args: &[&str]) -> common::Run {
        let mut a: Vec<&str> = vec!["build"];
        a.extend_from_slice(args);
        let ctx = self.ctx.to_str().unwrap().to_string();
        a.push(&ctx);
        berth(&self.root, &a)
    }
    fn build_ok(&self, args: &[&str]) -> (String, String) {
        let r = self.build(args);
        assert_eq!(r.code, 0, "build failed: {}{}", r.stdout, r.stderr);
        let id = r.stdout.lines().last().unwrap().to_string();
        assert_eq!(id.len(), 64, "the last line is the image id: {}", r.stdout);
        (id, r.stdout)
    }
    fn config(&self, image: &str) -> Value {
        let out = self.ok(&["image", "inspect", image]);
        let v: Value = serde_json::from_str(&out).unwrap();
        v[0].clone()
    }
    /// The image's config blob as stored (history included).
    fn raw_config(&self, image: &str) -> Value {
        let store = berth_image::ImageStore::open(&self.root, &Default::default()).unwrap();
        store.resolve(image).unwrap().config_json
    }
    fn sh(&self, image: &str, script: &str) -> String {
        self.ok(&["run", "--rm", image, "sh", "-c", script])
    }
    fn containers(&self) -> Vec<String> {
        self.run(&["ps", "-aq"])
            .stdout
            .lines()
            .map(str::to_string)
            .collect()
    }
    fn image_count(&self) -> usize {
        self.run(&["images", "-aq"]).stdout.lines().count()
    }
    /// Nothing a build leaves behind: containers, mounts, tmp dirs.
    fn assert_clean(&self) {
        assert!(
            self.containers().is_empty(),
            "containers left: {:?}",
            self.containers()
        );
        let mounts: Vec<PathBuf> = mounts_below(&self.root)
            .into_iter()
            .filter(|m| !m.ends_with(common::SEALED_MONITOR))
            .collect();
        assert!(mounts.is_empty(), "mounts left: {mounts:?}");
        common::assert_consistent(&self.root);
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for id in self.containers() {
            let _ = berth(&self.root, &["rm", "-f", &id]);
        }
        let _ = &self.scratch;
    }
}

#[test]
fn every_instruction_makes_docker_config_layers_and_files() {
    let env = Env::new("build-all");
    env.file("a.txt", "hello\n");
    env.file("dir/one", "1\n");
    env.file("dir/sub/two", "2\n");
    env.file("multi/x.conf", "x\n");
    env.file("multi/y.conf", "y\n");
    env.file("multi/z.txt", "z\n");
    // A tar for ADD to extract.
    {
        let f = std::fs::File::create(env.ctx.join("bundle.tar")).unwrap();
        let mut b = tar::Builder::new(f);
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o640);
        h.set_cksum();
        b.append_data(&mut h, "inner/file", &b"tar\n"[..]).unwrap();
        b.finish().unwrap();
    }
    env.file(
        "Dockerfile",
        r#"# syntax=docker/dockerfile:1
ARG BASE=busybox
FROM ${BASE}
LABEL org.example.name="demo app" version=1
MAINTAINER someone@example.com
ENV APP=/srv/app \
    MODE=prod
ENV LEGACY some value
ARG GREETING=hi
WORKDIR $APP
COPY a.txt .
COPY dir/ ./dir/
COPY --chown=1000:1000 --chmod=0640 multi/*.conf /etc/conf.d/
ADD bundle.tar /opt/
ADD --chmod=755 a.txt /opt/script
COPY <<EOF /srv/app/here.txt
mode=${MODE}
EOF
RUN echo "$GREETING from $MODE" > greeting && echo builder:x:2000:2000::/home:/bin/sh >> /etc/passwd
RUN <<EOT
set -e
echo heredoc > /heredoc.txt
EOT
RUN ["/bin/sh", "-c", "echo exec form > /exec.txt"]
RUN true
SHELL ["/bin/sh", "-ec"]
USER builder
EXPOSE 8080 53/udp 9000-9001
VOLUME ["/data"]
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=30s --timeout=5s --retries=2 CMD wget -q -O- localhost:8080 || exit 1
ONBUILD RUN echo child
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo default"]
"#,
    );
    let (id, out) = env.build_ok(&["-t", "demo:1"]);
    assert!(out.contains("STEP 1/26: FROM ${BASE}"), "{out}");
    assert!(
        out.contains("STEP 14/26: RUN echo \"$GREETING from $MODE\""),
        "{out}"
    );
    let c = env.config("demo:1");
    assert_eq!(c["Id"], format!("sha256:{id}"));
    let cfg = &c["Config"];
    let env_list: Vec<&str> = cfg["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        env_list.contains(&"APP=/srv/app")
            && env_list.contains(&"MODE=prod")
            && env_list.contains(&"LEGACY=some value"),
        "{env_list:?}"
    );
    assert!(
        !env_list.iter().any(|e| e.starts_with("GREETING=")),
        "ARGs are not kept in the image"
    );
    assert_eq!(cfg["WorkingDir"], "/srv/app");
    assert_eq!(cfg["User"], "builder");
    assert_eq!(cfg["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(cfg["Cmd"], serde_json::json!(["echo default"]));
    assert_eq!(
        cfg["Labels"],
        serde_json::json!({"org.example.name": "demo app", "version": "1"})
    );
    assert_eq!(
        cfg["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}, "53/udp": {}, "9000/tcp": {}, "9001/tcp": {}})
    );
    assert_eq!(cfg["Volumes"], serde_json::json!({"/data": {}}));
    assert_eq!(cfg["StopSignal"], "SIGUSR1");
    assert_eq!(cfg["OnBuild"], serde_json::json!(["RUN echo child"]));
    let raw = env.raw_config("demo:1");
    assert_eq!(
        raw["config"]["Shell"],
        serde_json::json!(["/bin/sh", "-ec"])
    );
    assert_eq!(
        raw["config"]["Healthcheck"],
        serde_json::json!({"Test": ["CMD-SHELL", "wget -q -O- localhost:8080 || exit 1"], "Interval": 30_000_000_000i64, "Timeout": 5_000_000_000i64, "Retries": 2})
    );
    assert_eq!(raw["author"], "someone@example.com");

    // Layers: the base's one, then one per COPY/ADD and per RUN that changed files
    // (RUN true changes nothing: a history entry with empty_layer and no layer).
    let diff_ids = raw["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(diff_ids.len(), 1 + 6 + 3, "{diff_ids:?}");
    let history = raw["history"].as_array().unwrap();
    let non_empty = history.iter().filter(|h| h["empty_layer"] != true).count();
    assert_eq!(
        non_empty,
        diff_ids.len(),
        "one non-empty history entry per layer"
    );
    let run_true = history
        .iter()
        .find(|h| {
            h["created_by"]
                .as_str()
                .unwrap()
                .ends_with("/bin/sh -c true")
        })
        .expect("RUN true entry");
    assert_eq!(run_true["empty_layer"], true);
    assert!(
        run_true["created_by"]
            .as_str()
            .unwrap()
            .starts_with("|1 GREETING=hi "),
        "{run_true}"
    );
    let env_entry = history
        .iter()
        .find(|h| {
            h["created_by"]
                .as_str()
                .unwrap()
                .contains("ENV APP=/srv/app MODE=prod")
        })
        .unwrap();
    assert_eq!(env_entry["empty_layer"], true);

    // Files.
    let files = env.ok(&[
        "run", "--rm", "--user", "root", "--entrypoint", "", "demo:1", "sh", "-c",
        "cat a.txt dir/one dir/sub/two greeting /heredoc.txt /exec.txt here.txt /opt/inner/file; \
         stat -c '%n %u:%g %a' /etc/conf.d/x.conf /etc/conf.d/y.conf /opt/inner/file /opt/script a.txt; \
         ls /etc/conf.d; id -un; pwd",
    ]);
    assert_eq!(
        files,
        "hello\n1\n2\nhi from prod\nheredoc\nexec form\nmode=prod\ntar\n\
         /etc/conf.d/x.conf 1000:1000 640\n/etc/conf.d/y.conf 1000:1000 640\n/opt/inner/file 0:0 640\n/opt/script 0:0 755\na.txt 0:0 644\n\
         x.conf\ny.conf\nroot\n/srv/app\n"
    );
    // The image runs its ENTRYPOINT + CMD.
    assert_eq!(env.ok(&["run", "--rm", "demo:1"]), "default\n");
    // ONBUILD fires in a child build, and the child doesn't inherit it.
    env.file(
        "Dockerfile",
        "FROM demo:1\nUSER root\nRUN test -f /srv/app/a.txt\n",
    );
    let (_, out) = env.build_ok(&["-t", "child"]);
    assert!(ran(&out, "child"), "the ONBUILD trigger ran: {out}");
    assert_eq!(env.config("child")["Config"]["OnBuild"], Value::Null);
    // Only the tagged images show without -a.
    let listed = env.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let mut listed: Vec<&str> = listed.lines().collect();
    listed.sort();
    assert_eq!(
        listed,
        ["child:latest", "demo:1", "localhost/busybox:latest"]
    );
    env.assert_clean();
}

/// A line the RUN step printed (the STEP line that shows the command doesn't count).
fn ran(out: &str, line: &str) -> bool {
    out.lines().any(|l| l == line)
}

#[test]
fn cache_hits_misses_and_invalidation() {
    let env = Env::new("build-cache");
    env.file("src/app.txt", "v1\n");
    env.file("other.txt", "o\n");
    env.file(
        "Dockerfile",
        "FROM busybox\nCOPY other.txt /other.txt\nRUN echo ran-step-one && echo one > /one\nARG VERSION=1\nCOPY src /src\nRUN echo ran-step-two version=$VERSION && cat /src/app.txt > /two\nCMD [\"cat\", \"/two\"]\n",
    );
    let (id1, out) = env.build_ok(&["-t", "app"]);
    assert!(
        ran(&out, "ran-step-one") && ran(&out, "ran-step-two version=1"),
        "{out}"
    );
    assert!(!out.contains("Using cache"), "{out}");
    let images = env.image_count();

    // Nothing changed: every step is a hit, no container runs, no image or layer is made.
    let (id2, out) = env.build_ok(&["-t", "app"]);
    assert_eq!(id1, id2);
    assert_eq!(out.matches("Using cache").count(), 5, "{out}");
    assert!(
        !ran(&out, "ran-step-one") && !ran(&out, "ran-step-two version=1"),
        "a cached RUN must not run: {out}"
    );
    assert_eq!(env.image_count(), images);

    // A changed file invalidates its COPY and every later step, not the earlier ones.
    env.file("src/app.txt", "v2\n");
    let (id3, out) = env.build_ok(&["-t", "app"]);
    assert_ne!(id3, id1);
    assert!(!ran(&out, "ran-step-one"), "{out}");
    assert!(ran(&out, "ran-step-two version=1"), "{out}");
    assert_eq!(out.matches("Using cache").count(), 2, "{out}");
    assert_eq!(env.ok(&["run", "--rm", "app"]), "v2\n");
    // A touched file with the same content still hits.
    let f = std::fs::File::options()
        .append(true)
        .open(env.ctx.join("src/app.txt"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(60))
        .unwrap();
    let (id4, out) = env.build_ok(&["-t", "app"]);
    assert_eq!(
        (id4.as_str(), out.matches("Using cache").count()),
        (id3.as_str(), 5),
        "{out}"
    );

    // A changed build arg invalidates the RUN that sees it.
    let (id5, out) = env.build_ok(&["-t", "app", "--build-arg", "VERSION=2"]);
    assert_ne!(id5, id3);
    assert!(
        ran(&out, "ran-step-two version=2") && !ran(&out, "ran-step-one"),
        "{out}"
    );
    let (id6, out) = env.build_ok(&["-t", "app", "--build-arg", "VERSION=2"]);
    assert_eq!(id6, id5);
    assert!(!ran(&out, "ran-step-two version=2"), "{out}");

    // --no-cache runs everything again.
    let (_, out) = env.build_ok(&["--no-cache"]);
    assert!(
        ran(&out, "ran-step-one")
            && ran(&out, "ran-step-two version=1")
            && !out.contains("Using cache"),
        "{out}"
    );

    // -q prints only the id, --iidfile writes it.
    let iid = env.scratch.join("iid");
    let r = env.build(&["-q", "--iidfile", iid.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.trim().len(), 64, "{:?}", r.stdout);
    assert_eq!(r.stdout.lines().count(), 1, "{:?}", r.stdout);
    assert_eq!(
        std::fs::read_to_string(&iid).unwrap(),
        format!("sha256:{}", r.stdout.trim())
    );
    env.assert_clean();
}

#[test]
fn multi_stage_target_and_copy_from() {
    let env = Env::new("build-stages");
    env.file(
        "Containerfile",
        r#"FROM busybox AS base
RUN echo base > /base.txt

FROM busybox AS tools
RUN mkdir -p /out/bin && echo tool > /out/bin/tool && ln -s tool /out/bin/link && chmod 750 /out/bin/tool

FROM busybox AS broken
RUN echo this stage is not needed && exit 9

FROM base AS final
COPY --from=tools /out/ /opt/
COPY --from=tools /out/bin/tool /usr/local/bin/renamed
COPY --from=0 /base.txt /copied-base.txt
RUN cat /base.txt /opt/bin/tool /copied-base.txt

FROM final AS test
RUN echo testing
"#,
    );
    let r = env.build(&["--target", "final", "-t", "multi"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        !r.stdout.contains("not needed") && !r.stdout.contains("testing"),
        "unneeded stages must not build: {}",
        r.stdout
    );
    assert!(r.stdout.contains("base\ntool\nbase\n"), "{}", r.stdout);
    // Numbered over the stages that build: base (2), tools (2), final (5).
    assert!(r.stdout.contains("STEP 9/9: RUN cat"), "{}", r.stdout);
    let out = env.sh("multi", "stat -c '%n %a %F' /opt/bin/tool /opt/bin/link /usr/local/bin/renamed; readlink /opt/bin/link");
    assert_eq!(out, "/opt/bin/tool 750 regular file\n/opt/bin/link 777 symbolic link\n/usr/local/bin/renamed 750 regular file\ntool\n");
    // The default target is the last stage; the base stages come from the cache.
    let (_, out) = env.build_ok(&[]);
    assert!(
        out.contains("testing") && !out.contains("not needed"),
        "{out}"
    );
    assert!(
        !out.contains("base\ntool\nbase\n"),
        "the final stage's RUN was cached: {out}"
    );
    let r = env.build(&["--target", "nope"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("nope"), "{}", r.stderr);
    env.assert_clean();
}

#[test]
fn dockerignore_rules() {
    let env = Env::new("build-ignore");
    for f in [
        "keep.txt",
        "debug.log",
        "important.log",
        "build/out.bin",
        "docs/a.md",
        "docs/README.md",
        "deep/x/tmp/junk",
        "secret.key",
    ] {
        env.file(f, f);
    }
    env.file(".dockerignore", "# comment\n*.log\n!important.log\nbuild\n**/tmp\ndocs/*.md\n!docs/README.md\n/secret.key\nDockerfile\n");
    env.file("Dockerfile", "FROM busybox\nCOPY . /ctx/\n");
    env.build_ok(&["-t", "ign"]);
    let listing = env.sh("ign", "cd /ctx && find . -type f | sort");
    assert_eq!(
        listing,
        "./.dockerignore\n./docs/README.md\n./important.log\n./keep.txt\n"
    );
    // An ignored file cannot be copied by name either.
    env.file("Dockerfile", "FROM busybox\nCOPY secret.key /\n");
    let r = env.build(&[]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("secret.key") && r.stderr.contains("Dockerfile:2"),
        "{}",
        r.stderr
    );
    // Containerfile.dockerignore beside the Containerfile wins over .dockerignore.
    std::fs::remove_file(env.ctx.join("Dockerfile")).unwrap();
    env.file("Containerfile", "FROM busybox\nCOPY . /ctx/\n");
    env.file("Containerfile.dockerignore", "*\n!keep.txt\n");
    env.build_ok(&["-t", "ign2"]);
    assert_eq!(env.sh("ign2", "cd /ctx && find . -type f"), "./keep.txt\n");
    env.assert_clean();
}

#[test]
fn failing_step_stops_and_leaves_nothing() {
    let env = Env::new("build-fail");
    env.file("Dockerfile", "FROM busybox\nRUN echo before > /before\nRUN echo output-of-failing-step; exit 3\nRUN echo never\n");
    let images = env.image_count();
    let r = env.build(&["-t", "bad"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("output-of-failing-step") && !r.stdout.contains("never"),
        "{}",
        r.stdout
    );
    let err = r.stderr.trim();
    assert!(
        err.contains("RUN echo output-of-failing-step; exit 3")
            && err.contains("exit code: 3")
            && err.contains("Dockerfile:3"),
        "{err}"
    );
    assert!(
        err.contains("/bin/sh -c echo output-of-failing-step; exit 3"),
        "{err}"
    );
    assert_eq!(
        // "bad:latest", not "bad": a hex word can be an image id prefix.
        env.run(&["image", "inspect", "bad:latest"]).code,
        1,
        "no image is tagged"
    );
    // Only the one good step's image was added (the cache keeps it).
    assert_eq!(env.image_count(), images + 1);
    env.assert_clean();

    // Malformed files fail before anything runs, naming the line.
    env.file("Dockerfile", "FROM busybox\nRUN echo hi\nCOPY [\"a\", \n");
    let r = env.build(&[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("Dockerfile:3"), "{}", r.stderr);
    env.file("Dockerfile", "FROM no-such-image:7\n");
    let r = env.build(&[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no-such-image:7"), "{}", r.stderr);
    env.assert_clean();
}

#[test]
fn interrupt_kills_the_step_and_cleans_up() {
    let env = Env::new("build-int");
    env.file("Dockerfile", "FROM busybox\nRUN echo started; sleep 60\n");
    let mut child = berth_cmd(&env.root)
        .args(["build", env.ctx.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 256];
    while !ran(&String::from_utf8_lossy(&seen), "started") {
        assert!(Instant::now() < deadline, "the RUN step never started");
        let n = stdout.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "build ended early: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    let t = Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "interrupt took {:?}",
        t.elapsed()
    );
    assert!(err.contains("interrupted"), "{err}");
    env.assert_clean();
}

#[test]
fn stdin_contexts_mounts_network_and_add_urls() {
    let env = Env::new("build-stdin");
    // A Dockerfile on stdin, no context.
    let mut c = berth_cmd(&env.root)
        .args(["build", "-t", "fromstdin", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(b"FROM busybox\nRUN echo piped > /p\n")
        .unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(env.sh("fromstdin", "cat /p"), "piped\n");
    // A tar context on stdin.
    let mut tarball = Vec::new();
    {
        let mut b = tar::Builder::new(&mut tarball);
        for (name, data) in [
            ("Dockerfile", &b"FROM busybox\nCOPY f /f\n"[..]),
            ("f", &b"from tar\n"[..]),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, data).unwrap();
        }
        b.finish().unwrap();
    }
    let mut c = berth_cmd(&env.root)
        .args(["build", "-t", "tarctx", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(&tarball).unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(env.sh("tarctx", "cat /f"), "from tar\n");
    assert!(
        !env.root.join("build").read_dir().unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("context-")),
        "the stdin context is removed"
    );

    // RUN --mount: a cache that persists between builds, a tmpfs and a bind of the context,
    // none of them in the layer; --network none leaves only lo.
    env.file("data.txt", "bound\n");
    env.file(
        "Dockerfile",
        "FROM busybox\nARG N\nRUN --mount=type=cache,target=/cache echo $N >> /cache/runs && cat /cache/runs | wc -l > /count\n\
         RUN --mount=type=tmpfs,target=/scratch --mount=type=bind,target=/ctx cat /ctx/data.txt > /scratch/x && cp /scratch/x /bound\n\
         RUN ls /sys/class/net > /nets\n",
    );
    env.build_ok(&["-t", "mnt", "--build-arg", "N=1", "--network", "none"]);
    env.build_ok(&["-t", "mnt", "--build-arg", "N=2", "--network", "none"]);
    assert_eq!(
        env.sh(
            "mnt",
            "cat /count /bound /nets; ls /cache /scratch /ctx 2>/dev/null | wc -l"
        ),
        "2\nbound\nlo\n0\n"
    );

    // ADD of a URL: served from loopback by this test; an unreachable host is a clear error.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        // Exactly one request, then the thread ends.
        let (mut s, _) = listener.accept().unwrap();
        // The whole request head, then the answer.
        let mut req = Vec::new();
        let mut b = [0u8; 1024];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut b).unwrap();
            assert!(n > 0, "request cut short");
            req.extend_from_slice(&b[..n]);
        }
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\ndownload\n")
            .unwrap();
    });
    env.file(
        "Dockerfile",
        &format!("FROM busybox\nADD http://127.0.0.1:{port}/files/got.txt /dl/\n"),
    );
    env.build_ok(&["-t", "url"]);
    server.join().unwrap();
    assert_eq!(
        env.sh("url", "cat /dl/got.txt; stat -c %a /dl/got.txt"),
        "download\n600\n"
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    env.file(
        "Dockerfile",
        &format!("FROM busybox\nADD http://127.0.0.1:{closed}/x /x\n"),
    );
    let r = env.build(&["--no-cache"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("unreachable") && r.stderr.contains(&format!("127.0.0.1:{closed}")),
        "{}",
        r.stderr
    );
    // --checksum mismatch on a local file is refused.
    env.file("Dockerfile", "FROM busybox\nADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 data.txt /d\n");
    let r = env.build(&[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("checksum mismatch"), "{}", r.stderr);
    env.assert_clean();
}

#[test]
fn layered_fixture_builds_the_tree_podman_built() {
    // The fixture's Containerfile, built by podman into layered.*-archive.tar: berth's build of
    // it must unpack to the same tree (modes, owners, contents, links, fifo, whiteouts applied).
    let env = Env::new("build-layered");
    let src = std::path::Path::new(common::FIXTURES).join("images/layered-context");
    for f in ["Containerfile", "note.txt"] {
        std::fs::copy(src.join(f), env.ctx.join(f)).unwrap();
        // The shared fixtures are read-only; podman built from a 0644 context.
        std::fs::set_permissions(
            env.ctx.join(f),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
    }
    let (_, out) = env.build_ok(&["-t", "localhost/layered:1"]);
    assert!(out.contains("STEP 7/7"), "{out}");
    let raw = env.raw_config("localhost/layered:1");
    assert_eq!(
        raw["rootfs"]["diff_ids"].as_array().unwrap().len(),
        4,
        "base, 2 RUN, 1 COPY: {raw}"
    );
    assert_eq!(raw["config"]["WorkingDir"], "/data");
    assert_eq!(
        raw["config"]["Cmd"],
        serde_json::json!(["/bin/sh", "-c", "cat /data/keep/a"])
    );
    assert!(raw["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "LAYERED=yes"));
    let mnt = env.scratch.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let merged = common::mount_image(&env.root, "localhost/layered:1", &mnt);
    let strip = |s: &str| {
        s.lines()
            .map(|l| l.split(" mtime=").next().unwrap().to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mine = strip(&common::listing(&merged));
    let want = strip(&common::expected_listing("layered"));
    berth_testkit::unmount_below(&mnt);
    if mine != want {
        let a: std::collections::BTreeSet<&str> = mine.lines().collect();
        let b: std::collections::BTreeSet<&str> = want.lines().collect();
        panic!(
            "only in berth's: {:?}\nonly in podman's: {:?}",
            a.difference(&b).collect::<Vec<_>>(),
            b.difference(&a).collect::<Vec<_>>()
        );
    }
    env.assert_clean();
}

/// `berth ARGS` pointed at the test's registry settings.
fn berth_reg(env: &regkit::Env, root: &std::path::Path, args: &[&str]) -> common::Run {
    let mut c = berth_cmd(root);
    env.apply(&mut c);
    c.args(args).output().expect("run berth").into()
}

fn ok_reg(env: &regkit::Env, root: &std::path::Path, args: &[&str]) -> String {
    let r = berth_reg(env, root, args);
    assert_eq!(r.code, 0, "berth {args:?}: {}{}", r.stdout, r.stderr);
    r.stdout
}

#[test]
fn from_pulls_a_missing_image_as_the_pull_policy_says() {
    let e = Env::new("build-pull");
    let regdir = e.scratch.join("reg");
    std::fs::create_dir_all(&regdir).unwrap();
    let reg = regkit::Registry::start(&regdir, &regkit::RegOpts::default());
    let renv = regkit::Env::new(&e.scratch, &[&reg.addr]);
    let image = format!("{}/base/img:1", reg.addr);
    // The base is a committed image (its layer kept only unpacked): push rebuilds its tar.
    let publish = |text: &str| {
        e.ok(&[
            "run",
            "--network",
            "none",
            "--name",
            "maker",
            "busybox",
            "sh",
            "-c",
            &format!("echo {text} > /marker"),
        ]);
        e.ok(&["commit", "maker", &image]);
        e.ok(&["rm", "maker"]);
        ok_reg(&renv, &e.root, &["push", &image]);
    };
    publish("one");

    let b = e.scratch.join("b");
    std::fs::create_dir_all(&b).unwrap();
    e.file(
        "Dockerfile",
        &format!("FROM {image}\nRUN cp /marker /copied\n"),
    );
    let ctx = e.ctx.to_str().unwrap();
    let build = |pull: &str, tag: &str| {
        berth_reg(
            &renv,
            &b,
            &["build", "-q", pull, "--network", "none", "-t", tag, ctx],
        )
    };
    let copied = |tag: &str| {
        ok(
            &b,
            &["run", "--rm", "--network", "none", tag, "cat", "/copied"],
        )
    };
    // never: the missing base is an error naming it, and nothing is pulled.
    let r = build("--pull=never", "out:0");
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(&image) && r.stderr.contains("--pull=never"),
        "{}",
        r.stderr
    );
    assert!(berth(&b, &["image", "inspect", &image]).code != 0);
    // missing (the default): pulled once, then used as it is.
    assert_eq!(build("--pull=missing", "out:1").code, 0);
    assert_eq!(copied("out:1"), "one\n");
    publish("two");
    let r = build("--pull=missing", "out:2");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(copied("out:2"), "one\n");
    // always: the registry's newer image.
    let r = build("--pull=always", "out:3");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(copied("out:3"), "two\n");
    // COPY --from of an image the store lacks pulls it too.
    let c = e.scratch.join("c");
    std::fs::create_dir_all(&c).unwrap();
    e.file(
        "Dockerfile",
        &format!("FROM busybox\nCOPY --from={image} /marker /got\n"),
    );
    common::load_fixture(&c, "busybox.oci-archive.tar");
    let r = berth_reg(&renv, &c, &["build", "-q", "-t", "got:1", ctx]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        ok(
            &c,
            &["run", "--rm", "--network", "none", "got:1", "cat", "/got"]
        ),
        "two\n"
    );
    for root in [&b, &c] {
        common::remove_all_containers(root);
        common::assert_consistent(root);
    }
}

/// An HTTPS file server on loopback (`openssl s_server -WWW`, serving `dir`), stopped on drop.
struct HttpsServer {
    port: u16,
    child: std::process::Child,
}

impl HttpsServer {
    fn start(dir: &std::path::Path, ca: &regkit::TestCa) -> HttpsServer {
        let port = regkit::free_port();
        let child = std::process::Command::new("openssl")
            .args(["s_server", "-quiet", "-WWW", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&ca.crt)
            .arg("-key")
            .arg(&ca.key)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut server = HttpsServer { port, child };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            assert!(
                server.child.try_wait().unwrap().is_none(),
                "s_server exited"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("s_server never listened on {port}");
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn https_add_bind_from_stages_copy_from_globs_and_link() {
    let e = Env::new("build-more");
    let tls = e.scratch.join("tls");
    let www = tls.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let ca = regkit::make_ca(&tls);
    std::fs::write(www.join("got.txt"), "secure\n").unwrap();
    let server = HttpsServer::start(&www, &ca);
    let sum = berth_image::sha256_digest(b"secure\n");
    e.file("f", "linked\n");
    // Two sources of one name: the second overwrites the first in the same layer.
    e.file("a/dup", "first, longer\n");
    e.file("b/dup", "second\n");
    e.file(
        "Dockerfile",
        &format!(
            "FROM busybox AS tools\n\
             RUN mkdir -p /out/sub && echo one > /out/a.txt && echo two > /out/b.txt && echo no > /out/c.log && echo deep > /out/sub/d.txt\n\
             FROM busybox AS base1\n\
             RUN mkdir -p /a && chmod 700 /a\n\
             COPY --link f /a/b/f\n\
             FROM busybox\n\
             COPY --from=tools /out/*.txt /txt/\n\
             COPY --from=tools /out/s*/d.txt /deep/\n\
             RUN --mount=type=bind,from=tools,source=/out,target=/mnt cat /mnt/a.txt /mnt/sub/d.txt > /from-bind && (touch /mnt/x 2>/dev/null && echo rw || echo ro) >> /from-bind\n\
             RUN --mount=type=bind,from=tools,source=/out,target=/mnt,rw touch /mnt/new && ls /mnt > /rw-listing\n\
             ADD --checksum={sum} https://127.0.0.1:{}/got.txt /got.txt\n\
             COPY --link f /a/b/f\n\
             COPY a/dup b/dup /dup/\n",
            server.port
        ),
    );
    let build = |args: &[&str]| {
        let mut a: Vec<&str> = vec!["build", "--network", "none"];
        a.extend_from_slice(args);
        let ctx = e.ctx.to_str().unwrap().to_string();
        a.push(&ctx);
        let mut c = berth_cmd(&e.root);
        c.env("SSL_CERT_FILE", &ca.ca_crt);
        let r: common::Run = c.args(&a).output().unwrap().into();
        r
    };
    let r = build(&["-t", "more:1"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        e.sh(
            "more:1",
            "ls /txt /deep; cat /from-bind /got.txt /a/b/f; grep -c new /rw-listing; stat -c %a /a; cat /dup/dup"
        ),
        "/deep:\nd.txt\n\n/txt:\na.txt\nb.txt\none\ndeep\nro\nsecure\nlinked\n1\n755\nsecond\n"
    );
    // COPY/ADD/RUN layers are kept unpacked with their tar-split: save rebuilds each tar and a
    // fresh store loads the same image (a load checks every layer against its diff id).
    let saved = e.scratch.join("more.tar");
    e.ok(&["save", "-o", saved.to_str().unwrap(), "more:1"]);
    let other = e.scratch.join("other");
    ok(&other, &["load", "-i", saved.to_str().unwrap()]);
    assert_eq!(
        ok(&other, &["inspect", "-f", "{{.Id}}", "more:1"]),
        e.ok(&["inspect", "-f", "{{.Id}}", "more:1"])
    );
    // The copies bound into RUN are gone, and the rw bind's write stayed in its copy.
    assert_eq!(
        std::fs::read_dir(e.root.join("build/mounts"))
            .unwrap()
            .count(),
        0
    );
    // --link: the same layer on either base (the parent's /a, 0700, does not shape it).
    let r = build(&["--target", "base1", "-t", "base1:1"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // Paths, modes, owners and contents of an image's layer `back` from the top (mtimes are
    // the build's).
    let layer = |image: &str, back: usize| {
        let store = berth_image::ImageStore::open(&e.root, &Default::default()).unwrap();
        let dirs = store.resolve(image).unwrap().layer_dirs();
        let dir = dirs[dirs.len() - 1 - back].clone();
        let mut v = Vec::new();
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            for ent in std::fs::read_dir(&d).unwrap() {
                let p = ent.unwrap().path();
                let m = std::fs::symlink_metadata(&p).unwrap();
                use std::os::unix::fs::MetadataExt;
                let data = if m.is_file() {
                    std::fs::read(&p).unwrap()
                } else {
                    Vec::new()
                };
                v.push((
                    p.strip_prefix(&dir).unwrap().to_path_buf(),
                    m.mode(),
                    m.uid(),
                    data,
                ));
                if m.is_dir() {
                    stack.push(p);
                }
            }
        }
        v.sort();
        v
    };
    assert_eq!(layer("base1:1", 0), layer("more:1", 1));
    assert_eq!(layer("base1:1", 0).len(), 3, "a/, a/b/ and a/b/f");
    assert_eq!(
        e.sh("base1:1", "stat -c %a /a; cat /a/b/f"),
        "755\nlinked\n"
    );

    // A wrong checksum and an unreachable host are one-line errors naming the step.
    let wrong = format!("sha256:{}", "0".repeat(64));
    e.file(
        "Dockerfile",
        &format!(
            "FROM busybox\nADD --checksum={wrong} https://127.0.0.1:{}/got.txt /x\n",
            server.port
        ),
    );
    let r = build(&[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("checksum mismatch"), "{}", r.stderr);
    let closed = regkit::free_port();
    e.file(
        "Dockerfile",
        &format!("FROM busybox\nADD https://127.0.0.1:{closed}/x /x\n"),
    );
    let r = build(&[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("unreachable") && r.stderr.contains(&format!("127.0.0.1:{closed}")),
        "{}",
        r.stderr
    );
    drop(server);
    e.assert_clean();
}
