//! Builds and registries through `berth serve`: `docker build` with the classic builder (its
//! JSON stream, --iidfile, -q, a failing step), and `docker push`/`pull`/`search` against
//! Debian's docker-registry on loopback.

mod apikit;
mod common;
mod regkit;

use apikit::Server;

#[test]
fn docker_build_classic_builder() {
    let s = Server::new("api-build");
    let ctx = s.scratch.join("ctx");
    std::fs::create_dir_all(ctx.join("sub")).unwrap();
    std::fs::create_dir_all(ctx.join("skipped")).unwrap();
    std::fs::write(ctx.join("hello.txt"), "hello from the context\n").unwrap();
    std::fs::write(ctx.join("skipped/big"), "not sent\n").unwrap();
    std::fs::write(ctx.join(".dockerignore"), "skipped\n").unwrap();
    std::fs::write(
        ctx.join("sub/Dockerfile"),
        "FROM busybox\nARG WHO\nCOPY . /ctx/\nRUN echo built-by-$WHO > /who && echo on-stderr >&2\nLABEL stage=api\nCMD [\"cat\", \"/who\", \"/ctx/hello.txt\"]\n",
    )
    .unwrap();
    let build = |args: &[&str]| {
        let mut c = s.docker_cmd(&["build"]);
        c.args(args).env("DOCKER_BUILDKIT", "0");
        let o = c.output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let iid = s.scratch.join("iid");
    let (code, out, err) = build(&[
        "-f",
        ctx.join("sub/Dockerfile").to_str().unwrap(),
        "--build-arg",
        "WHO=api",
        "-t",
        "built:1",
        "--iidfile",
        iid.to_str().unwrap(),
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    // The RUN's output and berth's steps came through the stream, then docker's last line.
    assert!(out.contains("on-stderr"), "{out}");
    let id = std::fs::read_to_string(&iid).unwrap();
    let id = id.trim().strip_prefix("sha256:").unwrap().to_string();
    assert_eq!(id.len(), 64);
    assert!(
        out.trim_end()
            .ends_with(&format!("Successfully built {}", &id[..12])),
        "{out}"
    );
    assert_eq!(
        s.ok(&["run", "--rm", "built:1"]),
        "built-by-api\nhello from the context\n"
    );
    assert_eq!(
        s.ok(&[
            "image",
            "inspect",
            "--format",
            "{{.Config.Labels.stage}}",
            "built:1"
        ])
        .trim(),
        "api"
    );
    // .dockerignore kept skipped/ out of the context the server got.
    let listed = s.ok(&["run", "--rm", "built:1", "ls", "-a", "/ctx"]);
    assert!(listed.contains("hello.txt"), "{listed}");
    assert!(!listed.contains("skipped"), "{listed}");
    // -q: only the id; the same build is cached to the same image.
    let (code, out, err) = build(&[
        "-q",
        "-f",
        ctx.join("sub/Dockerfile").to_str().unwrap(),
        "--build-arg",
        "WHO=api",
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), format!("sha256:{id}"));
    // A failing step: docker's error, exit 1, and no image tagged.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN echo doomed; exit 3\n",
    )
    .unwrap();
    let (code, out, err) = build(&["-t", "broken", ctx.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("doomed"), "{out}");
    assert!(err.contains("exit code: 3"), "{err}");
    assert_ne!(s.docker(&["image", "inspect", "broken"]).code, 0);
}

/// A RUN writing to both streams: each line comes through whole, each stream's lines in their
/// order, all of them between the step's own lines (dockerd's classic builder keeps them there).
#[test]
fn docker_build_run_output_keeps_whole_lines_in_order() {
    let s = Server::new("api-build-lines");
    let ctx = s.scratch.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\n\
         RUN for i in 1 2 3; do echo err-only-$i >&2; done\n\
         RUN for i in 1 2 3 4; do echo out-$i; echo err-$i >&2; done; printf split-; echo err-mid >&2; echo line; printf no-newline\n\
         LABEL done=1\n",
    )
    .unwrap();
    let o = s
        .docker_cmd(&["build", "-t", "lines", ctx.to_str().unwrap()])
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let lines: Vec<&str> = out.lines().collect();
    let at = |l: &str| {
        lines
            .iter()
            .position(|x| *x == l)
            .unwrap_or_else(|| panic!("no whole line {l:?} in:\n{out}"))
    };
    let step = |n: usize| {
        lines
            .iter()
            .position(|x| x.starts_with(&format!("STEP {n}/4: ")))
            .unwrap_or_else(|| panic!("no step {n} in:\n{out}"))
    };
    // Each step's output lies between its STEP line and the next one, each stream in order.
    let in_order = |prefix: &str, n: usize, step_no: usize| {
        let mut prev = step(step_no);
        for i in 1..=n {
            let l = format!("{prefix}-{i}");
            let now = at(&l);
            assert!(
                now > prev && now < step(step_no + 1),
                "{l:?} out of place:\n{out}"
            );
            prev = now;
        }
    };
    in_order("err-only", 3, 2);
    in_order("out", 4, 3);
    in_order("err", 4, 3);
    for l in ["split-line", "err-mid", "no-newline"] {
        let now = at(l);
        assert!(now > step(3) && now < step(4), "{l:?} out of place:\n{out}");
    }
}

#[test]
fn docker_push_pull_search_against_a_loopback_registry() {
    let s0 = berth_testkit::Scratch::new("api-reg-registry");
    let reg = regkit::Registry::start(s0.path(), &regkit::RegOpts::default());
    // Loopback registries are insecure for the server, as for dockerd: no registries.json needed.
    let s = Server::with_env(
        "api-reg",
        &[],
        &[("BERTH_REGISTRIES_CONF", s0.join("none.json"))],
    );
    let name = format!("{}/team/bb:v1", reg.addr);
    s.ok(&["tag", "busybox", &name]);
    let out = s.ok(&["push", &name]);
    assert!(
        out.contains(&format!(
            "The push refers to repository [{}/team/bb]",
            reg.addr
        )),
        "{out}"
    );
    assert!(out.contains(": Pushed"), "{out}");
    let digest_line = out
        .lines()
        .find(|l| l.starts_with("v1: digest: sha256:"))
        .unwrap();
    let digest = digest_line.split_whitespace().nth(2).unwrap().to_string();
    // Pushed again: every layer is already there.
    let again = s.ok(&["push", &name]);
    assert!(again.contains("Layer already exists"), "{again}");

    s.ok(&["rmi", &name, "busybox"]);
    assert_eq!(s.ok(&["images", "-q"]), "");
    let out = s.ok(&["pull", &name]);
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    assert!(out.contains("Status: Downloaded newer image for"), "{out}");
    assert_eq!(s.ok(&["run", "--rm", &name, "echo", "pulled"]), "pulled\n");
    let out = s.ok(&["pull", &name]);
    assert!(out.contains("Image is up to date"), "{out}");
    assert_eq!(
        s.ok(&[
            "image",
            "inspect",
            "--format",
            "{{index .RepoDigests 0}}",
            &name
        ])
        .trim(),
        format!("{}/team/bb@{digest}", reg.addr)
    );

    // A missing repository or tag is docker's HTTP error before any progress: the client says
    // "Error response from daemon" naming the reference, and exits 1.
    for missing in [
        format!("{}/team/nope:v1", reg.addr),
        format!("{}/team/bb:nope", reg.addr),
    ] {
        let r = s.docker(&["pull", &missing]);
        assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.starts_with("Error response from daemon: ")
                && r.stderr.contains(&missing)
                && r.stderr.contains("not found"),
            "{}",
            r.stderr
        );
        assert!(!r.stdout.contains("Pulling from"), "{}", r.stdout);
        let (image, tag) = missing.rsplit_once(':').unwrap();
        let resp = s
            .raw(&format!(
                "POST /images/create?fromImage={image}&tag={tag} HTTP/1.0\r\n\r\n"
            ))
            .unwrap();
        assert!(resp.starts_with("HTTP/1.0 404"), "{resp}");
        assert!(resp.contains(r#"{"message":"manifest for "#), "{resp}");
    }
    // A short name (the docker CLI sends docker.io/...; other clients send it as typed): each
    // unqualified-search registry in turn, the one that lacks it passed over before anything
    // is streamed.
    let s1 = berth_testkit::Scratch::new("api-reg-empty");
    let empty = regkit::Registry::start(s1.path(), &regkit::RegOpts::default());
    std::fs::write(
        s0.join("none.json"),
        serde_json::json!({"unqualified-search-registries": [empty.addr, reg.addr]}).to_string(),
    )
    .unwrap();
    s.ok(&["rmi", &name]);
    let resp = s
        .raw("POST /images/create?fromImage=team/bb&tag=v1 HTTP/1.0\r\n\r\n")
        .unwrap();
    assert!(resp.starts_with("HTTP/1.0 200"), "{resp}");
    assert_eq!(resp.matches("Pulling from").count(), 1, "{resp}");
    assert!(
        resp.contains(r#"{"id":"v1","status":"Pulling from team/bb"}"#)
            && resp.contains(&format!("Status: Downloaded newer image for {name}")),
        "{resp}"
    );
    let resp = s
        .raw("POST /images/create?fromImage=team/nothing&tag=v1 HTTP/1.0\r\n\r\n")
        .unwrap();
    assert!(resp.starts_with("HTTP/1.0 404"), "{resp}");
    assert!(resp.contains("team/nothing:v1 not found"), "{resp}");
    std::fs::remove_file(s0.join("none.json")).unwrap();

    let r = s.docker(&["push", &format!("{}/team/absent:v1", reg.addr)]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("absent"), "{}", r.stderr);

    // search: a plain registry has no /v1/search, so its catalog filtered by the term.
    let out = s.ok(&[
        "search",
        "--format",
        "{{.Name}}",
        &format!("{}/bb", reg.addr),
    ]);
    assert_eq!(out.trim(), format!("{}/team/bb", reg.addr));
    let r = s.docker(&["search", "--limit", "101", &format!("{}/bb", reg.addr)]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("outside the range"), "{}", r.stderr);
}

#[test]
fn docker_pull_from_a_registry_that_wants_a_login() {
    let s0 = berth_testkit::Scratch::new("api-reg-auth-registry");
    let reg = regkit::Registry::start(
        s0.path(),
        &regkit::RegOpts {
            htpasswd: Some(("tester".into(), "sekrit".into())),
            ..Default::default()
        },
    );
    let s = Server::with_env(
        "api-reg-auth",
        &[],
        &[("BERTH_REGISTRIES_CONF", s0.join("none.json"))],
    );
    let name = format!("{}/private/bb:v1", reg.addr);
    // Without a login: dockerd's 404 "pull access denied", not a 401 (the docker CLI would
    // answer a 401 by asking for a login), and nothing streamed.
    let r = s.docker(&["pull", &name]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.starts_with(&format!(
            "Error response from daemon: pull access denied for {}/private/bb, repository does not exist or may require 'docker login'",
            reg.addr
        )),
        "{}",
        r.stderr
    );
    assert!(!r.stdout.contains("Login prior to pull"), "{}", r.stdout);
    // Logged in, the CLI's credentials come with each push and pull.
    let out = s.ok(&["login", "-u", "tester", "-p", "sekrit", &reg.addr]);
    assert!(out.contains("Login Succeeded"), "{out}");
    s.ok(&["tag", "busybox", &name]);
    s.ok(&["push", &name]);
    s.ok(&["rmi", &name]);
    let out = s.ok(&["pull", &name]);
    assert!(
        out.contains("v1: Pulling from private/bb")
            && out.contains(&format!("Status: Downloaded newer image for {name}")),
        "{out}"
    );
}
