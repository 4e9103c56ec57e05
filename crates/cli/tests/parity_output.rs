//! What a docker user hits first (issue 11): `version` and `info`, management-command aliases
//! and `inspect --type`, `ps` columns and filters, prune filters, docker's template structures,
//! commit metadata and history, `images -a`, local-driver volume options, `--init` and root's
//! groups. Each test asserts docker's documented output, exit code or effect.

mod common;

use berth_testkit::{require_busybox, unique_id, Scratch};
use common::{berth, ok, Run};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A loaded root whose containers, monitors and cgroups go away on drop (even on panic).
struct Env {
    scratch: Scratch,
    root: PathBuf,
}

impl Env {
    fn new(name: &str) -> Env {
        require_busybox();
        let scratch = Scratch::new(name);
        let root = scratch.join("root");
        common::load_fixture(&root, "busybox.oci-archive.tar");
        Env { scratch, root }
    }
    fn ok(&self, args: &[&str]) -> String {
        ok(&self.root, args)
    }
    fn run(&self, args: &[&str]) -> Run {
        berth(&self.root, args)
    }
    fn inspect(&self, name: &str) -> Value {
        let v: Value = serde_json::from_str(&self.ok(&["inspect", name])).unwrap();
        v[0].clone()
    }
    fn wait_status(&self, name: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self
            .run(&["inspect", "--format", "{{.State.Status}}", name])
            .stdout
            .trim()
            != want
        {
            assert!(Instant::now() < deadline, "{name} never became {want}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        common::remove_all_containers(&self.root);
        let _ = &self.scratch;
    }
}

fn fails(r: Run) -> Run {
    assert_ne!(r.code, 0, "expected a failure: {}{}", r.stdout, r.stderr);
    r
}

// ---- item 5: version and info ------------------------------------------------------------

#[test]
fn info_has_dockers_fields() {
    let env = Env::new("info");
    env.ok(&["create", "--name", &unique_id("inf"), "busybox", "true"]);
    let root = std::fs::canonicalize(&env.root).unwrap();
    let f = "{{.OSType}}|{{.Architecture}}|{{.NCPU}}|{{.MemTotal}}|{{.CgroupVersion}}|{{.CgroupDriver}}|{{.Driver}}|\
             {{.Containers}}|{{.ContainersRunning}}|{{.ContainersPaused}}|{{.ContainersStopped}}|{{.Images}}|\
             {{.KernelVersion}}|{{.DockerRootDir}}|{{.LoggingDriver}}|{{.ServerVersion}}";
    let out = env.ok(&["info", "--format", f]);
    let v: Vec<&str> = out.trim_end().split('|').collect();
    let uname = |flag: &str| {
        String::from_utf8(
            std::process::Command::new("uname")
                .arg(flag)
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
    };
    let nproc =
        String::from_utf8(std::process::Command::new("nproc").output().unwrap().stdout).unwrap();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let mem_kb: u64 = meminfo
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let cgroup2 = nix::sys::statfs::statfs("/sys/fs/cgroup")
        .unwrap()
        .filesystem_type()
        == nix::sys::statfs::CGROUP2_SUPER_MAGIC;
    assert_eq!(v[0], "linux");
    assert_eq!(v[1], uname("-m").trim());
    assert_eq!(v[2], nproc.trim());
    assert_eq!(v[3], (mem_kb * 1024).to_string());
    assert_eq!(v[4], if cgroup2 { "2" } else { "1" });
    assert_eq!(v[5], "cgroupfs");
    assert_eq!(v[6], "overlay");
    assert_eq!(&v[7..12], ["1", "0", "0", "1", "1"]);
    assert_eq!(v[12], uname("-r").trim());
    assert_eq!(v[13], root.to_str().unwrap());
    assert_eq!(v[14], "json-file");
    assert_eq!(v[15], env!("CARGO_PKG_VERSION"));
    // docker's typed fields: lists print as Go lists, the seccomp option as docker words it.
    let sec = env.ok(&[
        "system",
        "info",
        "-f",
        "{{json .SecurityOptions}} {{.Runtimes}} {{.Swarm.LocalNodeState}} {{.Labels}}",
    ]);
    assert!(
        sec.starts_with("[\"name=seccomp,profile=builtin\""),
        "{sec}"
    );
    assert!(sec.trim_end().ends_with(" inactive []"), "{sec}");
    // json: one line, docker's keys.
    let json = env.ok(&["info", "--format", "json"]);
    assert_eq!(json.lines().count(), 1);
    let j: Value = serde_json::from_str(&json).unwrap();
    for k in [
        "ID",
        "OSType",
        "NCPU",
        "MemTotal",
        "CgroupVersion",
        "SecurityOptions",
        "Runtimes",
        "DefaultRuntime",
        "OperatingSystem",
        "ClientInfo",
    ] {
        assert!(j.get(k).is_some(), "no {k} in {json}");
    }
    assert_eq!(j["CpuCfsPeriod"], true);
    // The default text: docker's sections, the root and where configuration comes from.
    let text = env.ok(&["info"]);
    assert!(text.starts_with("Client:\n Version:    "), "{text}");
    for line in [
        "\nServer:\n Containers: 1\n  Running: 0\n  Paused: 0\n  Stopped: 1\n Images: 1\n",
        " Storage Driver: overlay\n",
        &format!(" Docker Root Dir: {}\n", root.display()),
        &format!(
            " Configuration: {}/config.json (absent, not needed)\n",
            root.display()
        ),
        " OSType: linux\n",
    ] {
        assert!(text.contains(line), "no {line:?} in\n{text}");
    }
    // A template that does not parse: docker's exit 64.
    let r = env.run(&["info", "--format", "{{.OSType"]);
    assert_eq!(r.code, 64, "{}", r.stderr);
}

#[test]
fn version_has_client_and_server() {
    let s = Scratch::new("version");
    let root = s.join("root");
    let v = env!("CARGO_PKG_VERSION");
    assert_eq!(
        ok(&root, &["version", "--format", "{{.Client.Version}} {{.Server.Version}} {{.Client.Os}}/{{.Client.Arch}} {{(index .Server.Components 0).Name}}"]),
        format!("{v} {v} linux/amd64 Engine\n")
    );
    let j: Value = serde_json::from_str(&ok(&root, &["version", "-f", "json"])).unwrap();
    assert_eq!(j["Server"]["Version"], v);
    assert_eq!(j["Client"]["Context"], "default");
    let text = ok(&root, &["version"]);
    assert!(
        text.starts_with(&format!("Client:\n Version:           {v}\n")),
        "{text}"
    );
    assert!(
        text.contains("\nServer: berth\n Engine:\n  Version:          "),
        "{text}"
    );
}

// ---- item 13: management-command aliases and inspect --type -----------------------------

#[test]
fn container_and_image_aliases() {
    let env = Env::new("aliases");
    let name = unique_id("ali");
    env.ok(&[
        "container",
        "create",
        "--name",
        &name,
        "busybox",
        "sh",
        "-c",
        "echo hi > /made",
    ]);
    env.ok(&["container", "start", "-a", &name]);
    assert_eq!(env.ok(&["container", "diff", &name]), "A /made\n");
    let out = env.scratch.join("out");
    std::fs::create_dir(&out).unwrap();
    env.ok(&[
        "container",
        "cp",
        &format!("{name}:/made"),
        out.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(out.join("made")).unwrap(), "hi\n");
    env.ok(&[
        "container",
        "export",
        "-o",
        out.join("fs.tar").to_str().unwrap(),
        &name,
    ]);
    assert!(std::fs::metadata(out.join("fs.tar")).unwrap().len() > 1024);
    let id = env.ok(&["container", "commit", &name, "aliased:v1"]);
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(env.ok(&["container", "logs", &name]), "");
    assert_eq!(
        env.ok(&["container", "ls", "-a", "--format", "{{.Names}}"]),
        format!("{name}\n")
    );
    assert_eq!(
        env.ok(&["container", "inspect", "-f", "{{.Name}}", &name]),
        format!("/{name}\n")
    );
    // image X forms.
    env.ok(&["image", "tag", "aliased:v1", "aliased:v2"]);
    let ls = env.ok(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        ls.contains("aliased:v1\n") && ls.contains("aliased:v2\n"),
        "{ls}"
    );
    assert!(env
        .ok(&["image", "history", "-q", "aliased:v1"])
        .starts_with(&id.trim()[7..19]));
    env.ok(&[
        "image",
        "save",
        "-o",
        out.join("img.tar").to_str().unwrap(),
        "aliased:v2",
    ]);
    env.ok(&["image", "rm", "aliased:v2"]);
    env.ok(&["image", "load", "-i", out.join("img.tar").to_str().unwrap()]);
    env.ok(&["image", "inspect", "aliased:v2"]);
    env.ok(&["container", "rm", &name]);
    let pruned = env.ok(&["image", "prune", "-f"]);
    assert!(pruned.contains("Total reclaimed space"), "{pruned}");
    env.ok(&["container", "prune", "-f"]);
}

#[test]
fn inspect_finds_volumes_and_honours_type() {
    let env = Env::new("inspect-type");
    let vol = unique_id("vol");
    env.ok(&["volume", "create", &vol]);
    let name = unique_id("ins");
    env.ok(&["create", "--name", &name, "busybox", "true"]);
    // No --type: containers, images, then volumes, as docker's inspectAll.
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.Name}} {{.Driver}}", &vol]),
        format!("{vol} local\n")
    );
    let v = env.inspect(&vol);
    assert_eq!(
        v["Mountpoint"],
        env.root
            .canonicalize()
            .unwrap()
            .join("volumes")
            .join(&vol)
            .join("_data")
            .to_str()
            .unwrap()
    );
    assert_eq!(
        env.ok(&["inspect", "--type", "volume", "-f", "{{.Scope}}", &vol]),
        "local\n"
    );
    assert_eq!(
        env.ok(&["inspect", "--type", "container", "-f", "{{.Name}}", &name]),
        format!("/{name}\n")
    );
    assert!(env
        .ok(&["inspect", "--type", "image", "-f", "{{.Id}}", "busybox"])
        .starts_with("sha256:"));
    // With --type, the object must be of that type; the error is that type's own.
    let r = fails(env.run(&["inspect", "--type", "image", &name]));
    assert_eq!(r.stderr, format!("Error: No such image: {name}\n"));
    let r = fails(env.run(&["inspect", "--type", "volume", &name]));
    assert_eq!(r.stderr, format!("Error: get {name}: no such volume\n"));
    let r = fails(env.run(&["inspect", "--type", "network", &name]));
    assert_eq!(r.stderr, format!("Error: No such network: {name}\n"));
    let r = fails(env.run(&["inspect", "nothing-here"]));
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "Error: No such object: nothing-here\n")
    );
    let r = fails(env.run(&["inspect", "--type", "bogus", &name]));
    assert_eq!(
        r.stderr,
        "Error: unknown type: \"bogus\": must be one of \"config\", \"container\", \"image\", \"network\", \"node\", \"plugin\", \"secret\", \"service\", \"task\", \"volume\"\n"
    );
    // container inspect is containers only.
    fails(env.run(&["container", "inspect", &vol]));
}

// ---- item 10: ps COMMAND, ps filters, prune filters ----------------------------------------

fn v(x: &[&String]) -> Vec<String> {
    x.iter().map(|s| s.to_string()).collect()
}

/// Names listed by `ps -a` with these filters (newest first), or the error.
fn ps_names(env: &Env, filters: &[&str]) -> Result<Vec<String>, String> {
    let mut args = vec!["ps", "-a", "--format", "{{.Names}}"];
    for f in filters {
        args.extend(["--filter", f]);
    }
    let r = env.run(&args);
    if r.code != 0 {
        return Err(r.stderr);
    }
    Ok(r.stdout.lines().map(str::to_string).collect())
}

#[test]
fn ps_command_column_and_filters() {
    let env = Env::new("ps-filters");
    let [a, b, c] = [unique_id("psa"), unique_id("psb"), unique_id("psc")];
    let vol = unique_id("psv");
    let r = env.run(&[
        "run", "--name", &a, "--label", "tier=web", "--label", "solo", "busybox", "sh", "-c",
        "exit 2",
    ]);
    assert_eq!(r.code, 2);
    env.ok(&[
        "run",
        "--name",
        &b,
        "-v",
        &format!("{vol}:/data"),
        "--label",
        "tier=db",
        "busybox",
        "true",
    ]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        &c,
        "--network",
        "host",
        "busybox",
        "sleep",
        "60",
    ]);
    env.wait_status(&c, "running");
    // docker's COMMAND: arguments with spaces in single quotes, the whole Go-quoted.
    assert_eq!(
        env.ok(&[
            "ps",
            "-a",
            "--filter",
            &format!("name={a}"),
            "--format",
            "{{.Command}}"
        ]),
        "\"sh -c 'exit 2'\"\n"
    );
    let table = env.ok(&["ps", "-a", "--filter", &format!("name={a}")]);
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .contains("   \"sh -c 'exit 2'\"   "),
        "{table}"
    );

    let n = |f: &[&str]| ps_names(&env, f).unwrap();
    assert_eq!(n(&[]), v(&[&c, &b, &a]));
    assert_eq!(n(&["exited=2"]), v(&[&a]));
    assert_eq!(n(&["exited=0"]), v(&[&b]));
    assert_eq!(n(&["status=exited"]), v(&[&b, &a]));
    assert_eq!(n(&["status=running"]), v(&[&c]));
    assert_eq!(n(&["status=running", "status=exited"]), v(&[&c, &b, &a]));
    assert_eq!(n(&["label=tier=web"]), v(&[&a]));
    assert_eq!(n(&["label=tier"]), v(&[&b, &a]));
    assert_eq!(n(&["label=tier", "label=solo"]), v(&[&a]));
    assert_eq!(n(&[&format!("name=^{b}$")]), v(&[&b]));
    assert_eq!(n(&[&format!("name=^/{b}$")]), v(&[&b]));
    let id_b = env.inspect(&b)["Id"].as_str().unwrap().to_string();
    assert_eq!(n(&[&format!("id={}", &id_b[..10])]), v(&[&b]));
    assert_eq!(n(&["ancestor=busybox"]), v(&[&c, &b, &a]));
    assert_eq!(n(&["ancestor=busybox:latest", "status=running"]), v(&[&c]));
    assert_eq!(n(&[&format!("before={c}")]), v(&[&b, &a]));
    assert_eq!(n(&[&format!("since={a}")]), v(&[&c, &b]));
    assert_eq!(n(&[&format!("volume={vol}")]), v(&[&b]));
    assert_eq!(n(&["volume=/data"]), v(&[&b]));
    assert_eq!(n(&["network=host"]), v(&[&c]));
    assert_eq!(n(&["health=none"]), v(&[&c, &b, &a]));
    assert!(n(&["health=healthy"]).is_empty());
    assert_eq!(n(&["is-task=false"]), v(&[&c, &b, &a]));
    assert!(n(&["is-task=true"]).is_empty());
    assert!(n(&["publish=80"]).is_empty());
    assert!(n(&["expose=8000-8080/tcp"]).is_empty());
    // Without -a, status and exited still see stopped containers, as docker's do.
    assert_eq!(
        env.ok(&["ps", "--filter", "exited=2", "--format", "{{.Names}}"]),
        format!("{a}\n")
    );
    assert_eq!(env.ok(&["ps", "--format", "{{.Names}}"]), format!("{c}\n"));
    // docker's errors.
    assert_eq!(
        ps_names(&env, &["bogus=1"]).unwrap_err(),
        "Error: invalid filter 'bogus'\n"
    );
    assert_eq!(
        ps_names(&env, &["status=sleeping"]).unwrap_err(),
        "Error: invalid filter 'status=sleeping'\n"
    );
    assert_eq!(
        ps_names(&env, &["exited=x"]).unwrap_err(),
        "Error: invalid filter 'exited=x'\n"
    );
    assert!(ps_names(&env, &["noequals"])
        .unwrap_err()
        .contains("bad format of filter"));
    env.ok(&["rm", "-f", &c]);
}

#[test]
fn prune_commands_take_filters() {
    let env = Env::new("prune-filters");
    let [a, b] = [unique_id("pra"), unique_id("prb")];
    env.ok(&[
        "create", "--name", &a, "--label", "keep=no", "busybox", "true",
    ]);
    env.ok(&["create", "--name", &b, "busybox", "true"]);
    // Created just now: nothing is older than an hour.
    let out = env.ok(&["container", "prune", "-f", "--filter", "until=1h"]);
    assert_eq!(out, "Total reclaimed space: 0B\n");
    assert_eq!(ps_names(&env, &[]).unwrap(), v(&[&b, &a]));
    let out = env.ok(&["container", "prune", "-f", "--filter", "label=keep=no"]);
    let id_a = out.lines().nth(1).unwrap().to_string();
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    assert_eq!(ps_names(&env, &[]).unwrap(), v(&[&b]));
    assert_eq!(id_a.len(), 64);
    env.ok(&[
        "container",
        "prune",
        "-f",
        "--filter",
        "label!=keep",
        "--filter",
        "until=2100-01-01",
    ]);
    assert!(ps_names(&env, &[]).unwrap().is_empty());
    let r = fails(env.run(&["container", "prune", "-f", "--filter", "status=exited"]));
    assert_eq!(r.stderr, "Error: invalid filter 'status'\n");

    // image prune: a dangling image (a commit without a name) with a label.
    let c = unique_id("pri");
    env.ok(&["create", "--name", &c, "busybox", "true"]);
    let img = env
        .ok(&["commit", "-c", "LABEL stage=tmp", &c])
        .trim()
        .to_string();
    let img2 = env.ok(&["commit", &c]).trim().to_string();
    env.ok(&["rm", &c]);
    let out = env.ok(&["image", "prune", "-f", "--filter", "label=stage=other"]);
    assert_eq!(out, "Total reclaimed space: 0B\n");
    let out = env.ok(&["image", "prune", "-f", "--filter", "label=stage=tmp"]);
    assert!(
        out.contains(&format!("deleted: {img}\n")) && !out.contains(&img2),
        "{out}"
    );
    let out = env.ok(&[
        "image",
        "prune",
        "-f",
        "--filter",
        "until=2100-01-01T00:00:00Z",
    ]);
    assert!(out.contains(&format!("deleted: {img2}\n")), "{out}");
    assert!(env.ok(&["images", "-q"]).lines().count() == 1);
    let r = fails(env.run(&["image", "prune", "-f", "--filter", "until=whenever"]));
    assert!(r.stderr.contains("whenever"), "{}", r.stderr);

    // volume prune: label and label!, all.
    let [v1, v2] = [unique_id("pv1"), unique_id("pv2")];
    env.ok(&["volume", "create", "--label", "keep", &v1]);
    env.ok(&["volume", "create", &v2]);
    let out = env.ok(&[
        "volume",
        "prune",
        "-f",
        "--filter",
        "all=true",
        "--filter",
        "label!=keep",
    ]);
    assert!(out.contains(&format!("Deleted Volumes:\n{v2}\n")), "{out}");
    assert_eq!(env.ok(&["volume", "ls", "-q"]), format!("{v1}\n"));
    let r = fails(env.run(&["volume", "prune", "-f", "--filter", "until=1h"]));
    assert_eq!(r.stderr, "Error: invalid filter 'until'\n");
}

// ---- item 11: docker's typed structures in templates ---------------------------------------

#[test]
fn templates_see_dockers_typed_structures() {
    let env = Env::new("typed");
    let name = unique_id("typ");
    let vol = unique_id("tyv");
    let host = env.scratch.join("host");
    std::fs::create_dir(&host).unwrap();
    let bind = format!("{}:/h:ro", host.display());
    env.ok(&[
        "create",
        "--name",
        &name,
        "-v",
        &bind,
        "-v",
        &format!("{vol}:/v"),
        "--cap-add",
        "net_admin",
        "--cap-drop",
        "CAP_MKNOD",
        "--label",
        "tier=web",
        "busybox",
        "true",
    ]);
    // Every mount has a Name ("" for a bind); Mode as docker records it.
    assert_eq!(
        env.ok(&[
            "inspect",
            "-f",
            "{{range .Mounts}}[{{.Type}}|{{.Name}}|{{.Mode}}|{{.RW}}]{{end}}",
            &name
        ]),
        format!("[bind||ro|false][volume|{vol}|z|true]\n")
    );
    // Capabilities as docker's daemon stores them; empty lists print [], nil maps map[], nil pointers <nil>.
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.HostConfig.CapAdd}} {{.HostConfig.CapDrop}} {{.Config.Entrypoint}} {{.HostConfig.Dns}} {{.HostConfig.ExtraHosts}} {{.Config.ExposedPorts}} {{.HostConfig.Sysctls}} {{.State.Health}} {{.HostConfig.PidsLimit}} {{len .ExecIDs}}", &name]),
        "[CAP_NET_ADMIN] [CAP_MKNOD] [] [] [] map[] map[] <nil> <nil> 0\n"
    );
    let j = env.inspect(&name);
    assert_eq!(
        j["HostConfig"]["CapAdd"],
        serde_json::json!(["CAP_NET_ADMIN"])
    );
    // The default JSON keeps docker's omissions (a bind mount has no Name key).
    assert!(j["Mounts"][0].get("Name").is_none(), "{}", j["Mounts"][0]);
    // A container without mounts: range over nothing, no error.
    let bare = unique_id("bare");
    env.ok(&["create", "--name", &bare, "busybox", "true"]);
    assert_eq!(
        env.ok(&[
            "inspect",
            "-f",
            "{{range .Mounts}}{{.Name}}{{end}}|{{.Mounts}}|{{.HostConfig.Binds}}",
            &bare
        ]),
        "|[]|[]\n"
    );
    // Images and volumes are completed as well.
    assert_eq!(
        env.ok(&[
            "image",
            "inspect",
            "-f",
            "{{.Config.Entrypoint}} {{.Config.OnBuild}} {{.Variant}}|{{.Config.Shell}}",
            "busybox"
        ]),
        "[] [] |[]\n"
    );
    assert_eq!(
        env.ok(&["volume", "inspect", "-f", "{{.Status}} {{.Labels}}", &vol]),
        "map[] map[]\n"
    );
    // ps rows: .Label and .Labels, docker's functions.
    assert_eq!(
        env.ok(&[
            "ps",
            "-a",
            "--filter",
            &format!("name={name}"),
            "--format",
            r#"{{.Label "tier"}} {{.Labels}} {{upper .Names | printf "%.3s"}}"#
        ]),
        format!("web tier=web {}\n", &name.to_uppercase()[..3])
    );
    // An unknown capability is refused when the container is created, as docker's daemon does.
    let r = fails(env.run(&["create", "--cap-add", "nope", "busybox", "true"]));
    assert!(
        r.stderr.contains("unknown capability: \"CAP_NOPE\""),
        "{}",
        r.stderr
    );
}

// ---- item 9: commit's Comment and Parent, history ids --------------------------------------

#[test]
fn commit_sets_comment_and_parent_history_shows_local_ids() {
    let env = Env::new("commit-meta");
    let short = |id: &str| id.trim().trim_start_matches("sha256:")[..12].to_string();
    let base = env.inspect("busybox")["Id"].as_str().unwrap().to_string();
    let base_entries = env.ok(&["history", "-q", "busybox"]).lines().count();
    let c1 = unique_id("cm1");
    env.ok(&[
        "run",
        "--name",
        &c1,
        "busybox",
        "sh",
        "-c",
        "echo one > /one",
    ]);
    let v1 = env
        .ok(&[
            "commit",
            "-m",
            "first change",
            "-a",
            "Jo <jo@example.com>",
            &c1,
            "meta:v1",
        ])
        .trim()
        .to_string();
    let j = env.inspect("meta:v1");
    assert_eq!(j["Id"], v1.as_str());
    assert_eq!(j["Comment"], "first change");
    assert_eq!(j["Author"], "Jo <jo@example.com>");
    assert_eq!(j["Parent"], base.as_str());
    assert_eq!(
        env.ok(&[
            "image",
            "inspect",
            "-f",
            "{{.Parent}}|{{.Comment}}",
            "busybox"
        ]),
        "|\n"
    );

    // A second generation, without a message: no Comment, its parent is meta:v1.
    let c2 = unique_id("cm2");
    env.ok(&[
        "run",
        "--name",
        &c2,
        "meta:v1",
        "sh",
        "-c",
        "echo two > /two",
    ]);
    let v2 = env.ok(&["commit", &c2, "meta:v2"]).trim().to_string();
    assert_eq!(
        env.ok(&[
            "image",
            "inspect",
            "-f",
            "{{.Parent}}|{{.Comment}}",
            "meta:v2"
        ]),
        format!("{v1}|\n")
    );

    // history: the id of each local image on its own newest entry, <missing> below it.
    let ids: Vec<String> = env
        .ok(&["history", "--format", "{{.ID}}|{{.Comment}}", "meta:v2"])
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(ids.len(), base_entries + 2, "{ids:?}");
    assert_eq!(ids[0], format!("{}|", short(&v2)));
    assert_eq!(ids[1], format!("{}|first change", short(&v1)));
    assert_eq!(ids[2].split('|').next().unwrap(), short(&base));
    assert!(
        ids[3..].iter().all(|l| l.starts_with("<missing>|")),
        "{ids:?}"
    );
    let full = env.ok(&["history", "--no-trunc", "-q", "meta:v2"]);
    assert_eq!(
        full.lines().take(3).collect::<Vec<_>>(),
        [v2.as_str(), v1.as_str(), base.as_str()]
    );
    // The default table keeps docker's COMMENT column.
    let table = env.ok(&["history", "meta:v1"]);
    assert!(
        table.lines().next().unwrap().ends_with("SIZE      COMMENT"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .trim_end()
            .ends_with("first change"),
        "{table}"
    );
}

// ---- item 14: images -a, local-driver volume options --------------------------------------

#[test]
fn images_all_lists_intermediate_images() {
    let env = Env::new("images-all");
    let c1 = unique_id("ia1");
    env.ok(&["run", "--name", &c1, "busybox", "touch", "/one"]);
    let mid = env.ok(&["commit", &c1]).trim().to_string();
    let mid_short = &mid[7..19];
    // Untagged and nobody's parent: dangling, listed as <none>.
    assert!(env
        .ok(&["images", "--format", "{{.ID}}"])
        .contains(mid_short));
    let c2 = unique_id("ia2");
    env.ok(&["run", "--name", &c2, &mid, "touch", "/two"]);
    env.ok(&["commit", &c2, "top:1"]);
    // Now the parent of top:1: an intermediate image, shown only with -a.
    let plain = env.ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    assert!(!plain.contains(mid_short), "{plain}");
    assert!(plain.contains("top:1 "), "{plain}");
    let all = env.ok(&[
        "images",
        "-a",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}}",
    ]);
    assert!(
        all.contains(&format!("<none>:<none> {mid_short}\n")),
        "{all}"
    );
    assert_eq!(all.lines().count(), plain.lines().count() + 1, "{all}");
    assert!(env.ok(&["images", "-aq"]).contains(mid_short));
    assert!(!env.ok(&["images", "-q"]).contains(mid_short));
}

/// The mount at `path` in the host's mount table: (fstype, options).
fn host_mount(path: &std::path::Path) -> Option<(String, String)> {
    let p = path.to_str().unwrap();
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .rfind(|f| f.len() > 3 && f[1] == p)
        .map(|f| (f[2].to_string(), f[3].to_string()))
}

#[test]
fn volume_create_local_driver_options() {
    let env = Env::new("vol-opts");
    let root = std::fs::canonicalize(&env.root).unwrap();
    // tmpfs: mounted when a container uses it, with the o= options.
    let tv = unique_id("tmpv");
    env.ok(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=2m,uid=1234",
        &tv,
    ]);
    assert_eq!(
        env.ok(&["volume", "inspect", "-f", "{{.Options}}", &tv]),
        "map[device:tmpfs o:size=2m,uid=1234 type:tmpfs]\n"
    );
    let data = root.join("volumes").join(&tv).join("_data");
    assert_eq!(host_mount(&data), None);
    let c = unique_id("tmpc");
    let out = env.ok(&[
        "run",
        "--name",
        &c,
        "-v",
        &format!("{tv}:/t"),
        "busybox",
        "sh",
        "-c",
        "grep ' /t ' /proc/mounts | cut -d' ' -f3; stat -c %u /t; echo hi > /t/f; cat /t/f",
    ]);
    assert_eq!(out, "tmpfs\n1234\nhi\n");
    let (fs, opts) = host_mount(&data).expect("tmpfs mounted on the volume");
    assert_eq!(fs, "tmpfs");
    assert!(
        opts.contains("size=2048k") && opts.contains("uid=1234"),
        "{opts}"
    );
    // The last user gone, the tmpfs is unmounted (its content with it).
    env.ok(&["rm", &c]);
    assert_eq!(host_mount(&data), None);
    env.ok(&["volume", "rm", &tv]);

    // type=none with o=bind: a host directory as a named volume; o=bind,ro read-only.
    let host = env.scratch.join("hostdir");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("seed"), "from host\n").unwrap();
    let bv = unique_id("bindv");
    env.ok(&[
        "volume",
        "create",
        "--driver",
        "local",
        "--opt",
        "type=none",
        "--opt",
        &format!("device={}", host.display()),
        "--opt",
        "o=bind",
        &bv,
    ]);
    let out = env.ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{bv}:/b"),
        "busybox",
        "sh",
        "-c",
        "cat /b/seed; echo made > /b/new",
    ]);
    assert_eq!(out, "from host\n");
    assert_eq!(std::fs::read_to_string(host.join("new")).unwrap(), "made\n");
    let ro = unique_id("rov");
    env.ok(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        &format!("device={}", host.display()),
        "-o",
        "o=bind,ro",
        &ro,
    ]);
    let r = env.run(&[
        "run",
        "--rm",
        "-v",
        &format!("{ro}:/r"),
        "busybox",
        "touch",
        "/r/x",
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("Read-only file system"), "{}", r.stderr);
    assert!(!host.join("x").exists());
    // Removing the volume leaves the device's files alone.
    env.ok(&["volume", "rm", &bv, &ro]);
    assert!(host.join("seed").exists() && host.join("new").exists());

    // docker's validation of the options.
    let err = |args: &[&str]| fails(env.run(args)).stderr;
    assert_eq!(
        err(&["volume", "create", "-o", "type=tmpfs", "x1"]),
        "Error: missing required option: \"device\"\n"
    );
    assert_eq!(
        err(&["volume", "create", "-o", "device=/tmp", "x2"]),
        "Error: missing required option: \"type\"\n"
    );
    assert_eq!(
        err(&["volume", "create", "-o", "o=size=1m", "x3"]),
        "Error: missing required option: \"device\"\n"
    );
    assert_eq!(
        err(&["volume", "create", "-o", "colour=red", "x4"]),
        "Error: invalid option: \"colour\"\n"
    );
    assert_eq!(env.ok(&["volume", "ls", "-q"]), "");
}

// ---- item 15: root's groups, --init, progress bars ---------------------------------------

/// Alpine's /etc/group (root is a member of most system groups).
const ALPINE_GROUP: &str = "root:x:0:root\nbin:x:1:root,bin,daemon\ndaemon:x:2:root,bin,daemon\nsys:x:3:root,bin,adm\nadm:x:4:root,adm,daemon\ntty:x:5:\ndisk:x:6:root,adm\nlp:x:7:lp\nkmem:x:9:\nwheel:x:10:root\nfloppy:x:11:root\nmail:x:12:mail\nnews:x:13:news\nuucp:x:14:uucp\ncron:x:16:cron\nconsole:x:19:\naudio:x:18:\ncdrom:x:19:\ndialout:x:20:root\nftp:x:21:\nsshd:x:22:\ninput:x:23:\ntape:x:26:root\nvideo:x:27:root\nnetdev:x:28:\nkvm:x:34:kvm\ngames:x:35:\nshadow:x:42:\nwww-data:x:82:\nusers:x:100:games\nntp:x:123:\nabuild:x:300:\nutmp:x:406:\nping:x:999:\nnogroup:x:65533:\nnobody:x:65534:\n";

#[test]
fn root_gets_its_supplementary_groups() {
    let env = Env::new("groups");
    // The busybox fixture lists no members: root has its own group only.
    assert_eq!(
        env.ok(&["run", "--rm", "busybox", "id"]),
        "uid=0(root) gid=0(root) groups=0(root)\n"
    );
    let c = unique_id("grp");
    let group_file = env.scratch.join("group");
    std::fs::write(&group_file, ALPINE_GROUP).unwrap();
    env.ok(&["create", "--name", &c, "busybox", "true"]);
    env.ok(&[
        "cp",
        group_file.to_str().unwrap(),
        &format!("{c}:/etc/group"),
    ]);
    env.ok(&["commit", &c, "alpinegroups:1"]);
    // What `id` prints in docker's alpine containers.
    assert_eq!(
        env.ok(&["run", "--rm", "alpinegroups:1", "id"]),
        "uid=0(root) gid=0(root) groups=0(root),1(bin),2(daemon),3(sys),4(adm),6(disk),10(wheel),11(floppy),20(dialout),26(tape),27(video)\n"
    );
    // An explicit group: that group only, as moby's getUser gives.
    assert_eq!(
        env.ok(&["run", "--rm", "-u", "0:10", "alpinegroups:1", "id"]),
        "uid=0(root) gid=10(wheel) groups=10(wheel)\n"
    );
}

#[test]
fn init_is_berths_own() {
    let env = Env::new("init");
    // pid 1 is berth's init, mounted read-only; the command runs as its child.
    let out = env.ok(&["run", "--rm", "--init", "busybox", "sh", "-c", "echo $$; tr '\\0' ' ' < /proc/1/cmdline; echo; readlink /proc/1/exe; echo x > /dev/init || echo refused"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "2");
    assert_eq!(lines[1], "/dev/init -- sh -c echo $$; tr '\\0' ' ' < /proc/1/cmdline; echo; readlink /proc/1/exe; echo x > /dev/init || echo refused ");
    assert_eq!(lines[2], "/dev/init");
    assert_eq!(lines.last(), Some(&"refused"));
    // Not the host's tini nor a shell script: a static executable kept in the root.
    let init = std::fs::read(env.root.join("bin/berth-init")).unwrap();
    assert_eq!(&init[..4], b"\x7fELF");
    // The command's status comes back; orphans are reaped.
    assert_eq!(
        env.run(&["run", "--rm", "--init", "busybox", "sh", "-c", "exit 7"])
            .code,
        7
    );
    let ps = env.ok(&[
        "run",
        "--rm",
        "--init",
        "busybox",
        "sh",
        "-c",
        "(sleep 0.2 &); sleep 1; ps -o stat,comm",
    ]);
    assert!(!ps.lines().any(|l| l.starts_with('Z')), "{ps}");
    // Signals are forwarded: stop's SIGTERM ends sleep (which has no handler) at once.
    let name = unique_id("ini");
    env.ok(&[
        "run", "-d", "--init", "--name", &name, "busybox", "sleep", "100",
    ]);
    env.wait_status(&name, "running");
    let t = Instant::now();
    env.ok(&["stop", "-t", "20", &name]);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "stop waited for the kill timeout"
    );
    assert_eq!(env.inspect(&name)["State"]["ExitCode"], 143);
    env.ok(&["start", &name]);
    env.ok(&["kill", "-s", "USR1", &name]);
    assert_eq!(env.ok(&["wait", &name]).trim(), "138");
    // A missing command: docker's 127.
    let r = env.run(&["run", "--rm", "--init", "busybox", "no-such-command"]);
    assert_eq!(r.code, 127, "{}", r.stderr);
}

/// Runs berth with stderr on a new pty; returns (exit code, stdout, what the terminal got).
fn on_terminal(root: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    let (master, slave) = unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(m >= 0);
        assert_eq!(libc::grantpt(m), 0);
        assert_eq!(libc::unlockpt(m), 0);
        let mut buf = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(m, buf.as_mut_ptr(), buf.len()), 0);
        let p = std::ffi::CStr::from_ptr(buf.as_ptr())
            .to_string_lossy()
            .into_owned();
        (std::fs::File::from_raw_fd(m), p)
    };
    let s = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&slave)
        .unwrap();
    let child = common::berth_cmd(root)
        .args(args)
        .stderr(s)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read the terminal while berth runs (it must never block on a full pty).
    let reader = std::thread::spawn(move || {
        let mut m = master;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = m.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    });
    let out = child.wait_with_output().unwrap();
    // The slave is closed with berth: the reader sees EIO and ends.
    let term = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        term,
    )
}

#[test]
fn commit_and_save_show_progress_on_a_terminal() {
    let env = Env::new("progress");
    let c = unique_id("prg");
    env.ok(&[
        "run",
        "--name",
        &c,
        "busybox",
        "sh",
        "-c",
        "head -c 8000000 /dev/urandom > /big",
    ]);
    let (code, out, term) = on_terminal(&env.root, &["commit", &c, "prog:1"]);
    assert_eq!(code, 0, "{term}");
    assert!(
        out.starts_with("sha256:") && out.lines().count() == 1,
        "{out}"
    );
    assert!(term.contains("Committing"), "{term:?}");
    let tar = env.scratch.join("prog.tar");
    let (code, _, term) = on_terminal(&env.root, &["save", "-o", tar.to_str().unwrap(), "prog:1"]);
    assert_eq!(code, 0, "{term}");
    assert!(term.contains("Saving") && term.contains("MiB"), "{term:?}");
    assert!(std::fs::metadata(&tar).unwrap().len() > 8_000_000);
    // Not a terminal: nothing but the id.
    let r = env.run(&["commit", &c, "prog:2"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert!(r.stdout.starts_with("sha256:"));
    let r = env.run(&["save", "-o", tar.to_str().unwrap(), "prog:2"]);
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (0, "", ""));
}
