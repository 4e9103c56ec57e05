//! diff, commit, cp, export and volumes end to end: real containers from the busybox fixture
//! in a per-test root; a guard removes every container (and so its mounts) even on failure.

mod common;

use berth_testkit::{Defer, Scratch};
use common::*;
use std::path::{Path, PathBuf};

/// A root with busybox loaded, and a guard that force-removes its containers and volumes.
fn setup(prefix: &str) -> (Scratch, PathBuf, Defer<impl FnMut()>) {
    let s = Scratch::new(prefix);
    let root = s.join("root");
    common::load_fixture(&root, "busybox.oci-archive.tar");
    let r = root.clone();
    let guard = Defer(move || {
        for id in berth(&r, &["ps", "-aq", "--no-trunc"]).stdout.lines() {
            let _ = berth(&r, &["rm", "-f", "-v", id]);
        }
        for v in berth(&r, &["volume", "ls", "-q"]).stdout.lines() {
            let _ = berth(&r, &["volume", "rm", "-f", v]);
        }
    });
    (s, root, guard)
}

/// Runs a container detached, waits for it and returns its stdout from the log (the
/// container is removed after).
fn output(root: &Path, args: &[&str]) -> String {
    let name = berth_testkit::unique_id("out").replace('-', "");
    let mut a = vec!["run", "-d", "--name", name.as_str()];
    a.extend_from_slice(args);
    ok(root, &a);
    ok(root, &["wait", &name]);
    let out = ok(root, &["logs", &name]);
    ok(root, &["rm", "-v", &name]);
    out
}

/// `run -d --name NAME ...` and waits for the container to exit.
fn run_wait(root: &Path, args: &[&str]) {
    let i = args.iter().position(|a| *a == "--name").expect("a --name");
    let mut a = vec!["run", "-d"];
    a.extend_from_slice(args);
    ok(root, &a);
    ok(root, &["wait", args[i + 1]]);
}

fn fails(root: &Path, args: &[&str]) -> Run {
    let r = berth(root, args);
    assert_ne!(
        r.code, 0,
        "berth {args:?} should fail: {}{}",
        r.stdout, r.stderr
    );
    r
}

fn inspect(root: &Path, what: &[&str]) -> serde_json::Value {
    let mut args = vec!["inspect"];
    args.extend_from_slice(what);
    let v: serde_json::Value = serde_json::from_str(&ok(root, &args)).unwrap();
    v[0].clone()
}

fn image_inspect(root: &Path, image: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(&ok(root, &["image", "inspect", image])).unwrap();
    v[0].clone()
}

#[test]
fn seed_scenario_commit_carries_writes_and_deletions_but_not_hosts_edits() {
    let (_s, root, _g) = setup("fsv-seed");
    run_wait(
        &root,
        &[
            "--name", "first", "busybox", "sh", "-c",
            "echo written > /hello; mkdir -p /srv/app; echo cfg > /srv/app/cfg; rm /bin/ls; rm -rf /home; echo '10.9.9.9 edited' >> /etc/hosts",
        ],
    );
    let parent_layers = image_inspect(&root, "busybox")["RootFS"]["Layers"]
        .as_array()
        .unwrap()
        .len();
    let id = ok(&root, &["commit", "first", "seeded:1"]);
    assert!(
        id.trim().starts_with("sha256:") && id.trim().len() == 71,
        "{id}"
    );
    let img = image_inspect(&root, "seeded:1");
    assert_eq!(
        img["RootFS"]["Layers"].as_array().unwrap().len(),
        parent_layers + 1
    );
    let out = output(
        &root,
        &["seeded:1", "sh", "-c", "cat /hello /srv/app/cfg; test -e /bin/ls && echo LS; test -e /home && echo HOME; grep -c edited /etc/hosts; true"],
    );
    assert_eq!(out, "written\ncfg\n0\n");
}

#[test]
fn diff_lists_added_changed_deleted_without_init_paths() {
    let (_s, root, _g) = setup("fsv-diff");
    run_wait(
        &root,
        &[
            "--name", "dd", "busybox", "sh", "-c",
            "echo x > /new; echo y >> /etc/passwd; rm /bin/ls; rm -rf /home; echo h >> /etc/hosts; echo n > /etc/hostname; mkdir /tmp/dir",
        ],
    );
    let out = ok(&root, &["diff", "dd"]);
    let lines: Vec<&str> = out.lines().collect();
    for want in [
        "A /new",
        "C /etc/passwd",
        "C /etc",
        "D /bin/ls",
        "C /bin",
        "D /home",
        "A /tmp/dir",
        "C /tmp",
    ] {
        assert!(lines.contains(&want), "missing {want:?} in:\n{out}");
    }
    for init in [
        "/etc/hosts",
        "/etc/hostname",
        "/etc/resolv.conf",
        "/.dockerenv",
        "/dev",
        "/proc",
        "/sys",
    ] {
        assert!(
            !lines.iter().any(|l| l[2..] == *init),
            "{init} listed:\n{out}"
        );
    }
    assert!(fails(&root, &["diff", "nosuch"])
        .stderr
        .to_lowercase()
        .contains("no such container"));
}

#[test]
fn commit_applies_changes_message_author_and_pauses_a_running_container() {
    let (_s, root, _g) = setup("fsv-commit");
    ok(
        &root,
        &[
            "run",
            "-d",
            "--name",
            "live",
            "busybox",
            "sh",
            "-c",
            "echo data > /state; sleep 300",
        ],
    );
    // The write happens right after start: wait for it (bounded).
    for _ in 0..200 {
        if ok(&root, &["diff", "live"]).contains("A /state") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    ok(
        &root,
        &[
            "commit",
            "-m",
            "a message",
            "-a",
            "Jane <jane@example.com>",
            "-c",
            "CMD [\"cat\", \"/state\"]",
            "-c",
            "ENV MODE=prod",
            "live",
            "app:v1",
        ],
    );
    let st = inspect(&root, &["live"]);
    assert_eq!(
        st["State"]["Status"], "running",
        "commit must resume the container"
    );
    let img = image_inspect(&root, "app:v1");
    assert_eq!(img["Author"], "Jane <jane@example.com>");
    assert_eq!(img["Config"]["Cmd"], serde_json::json!(["cat", "/state"]));
    assert!(
        img["Config"]["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "MODE=prod"),
        "{}",
        img["Config"]
    );
    let hist = ok(&root, &["history", "--no-trunc", "app:v1"]);
    assert!(hist.lines().nth(1).unwrap().contains("a message"), "{hist}");
    assert_eq!(output(&root, &["app:v1"]), "data\n");
    assert_eq!(
        output(&root, &["app:v1", "sh", "-c", "echo $MODE"]),
        "prod\n"
    );
    // Without pausing, and with an image name only given later by tag.
    let id = ok(&root, &["commit", "--pause=false", "live"]);
    let short = &id.trim()["sha256:".len()..][..12];
    assert!(ok(&root, &["images", "-a", "-q"]).contains(short));
    // cp works on the running container too, both ways, and shows up in its diff.
    let host = root.parent().unwrap().join("hostfile");
    std::fs::write(&host, "while running").unwrap();
    ok(&root, &["cp", host.to_str().unwrap(), "live:/copied-in"]);
    assert!(ok(&root, &["diff", "live"])
        .lines()
        .any(|l| l == "A /copied-in"));
    let back = root.parent().unwrap().join("back");
    ok(&root, &["cp", "live:/state", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "data\n");
    // A bad change is refused before anything happens.
    assert!(fails(&root, &["commit", "-c", "FROM x", "live"])
        .stderr
        .contains("FROM"));
    assert_eq!(inspect(&root, &["live"])["State"]["Status"], "running");
}

#[test]
fn commit_leaves_out_volume_and_bind_mount_points() {
    let (s, root, _g) = setup("fsv-commit-mounts");
    let host = s.join("hostdir");
    std::fs::create_dir_all(&host).unwrap();
    let bind = format!("{}:/bound", host.display());
    run_wait(
        &root,
        &[
            "--name",
            "mm",
            "-v",
            "vol1:/vdata",
            "-v",
            &bind,
            "busybox",
            "sh",
            "-c",
            "echo v > /vdata/f; echo b > /bound/f; echo keep > /kept",
        ],
    );
    assert_eq!(std::fs::read_to_string(host.join("f")).unwrap(), "b\n");
    ok(&root, &["commit", "mm", "mounts:1"]);
    let out = output(
        &root,
        &[
            "mounts:1",
            "sh",
            "-c",
            "cat /kept; ls -d /vdata /bound 2>/dev/null; true",
        ],
    );
    assert_eq!(out, "keep\n");
}

#[test]
fn cp_both_ways_stays_inside_the_container() {
    let (s, root, _g) = setup("fsv-cp");
    run_wait(
        &root,
        &["--name", "cc", "busybox", "sh", "-c", "ln -s / /rootlink; ln -s ../../.. /up; mkdir /d; echo inside > /d/f; chown 1234:99 /d/f; ln -s /d/f /flink"],
    );
    let host = s.join("host");
    std::fs::create_dir_all(&host).unwrap();
    // A host file the escape attempts would hit if resolved on the host.
    let marker = s.join("host/marker");
    std::fs::write(&marker, "host").unwrap();
    let h = |p: &str| host.join(p).to_string_lossy().into_owned();

    // Out: a symlink to "/" in the container resolves inside the container.
    ok(&root, &["cp", "cc:/rootlink/d/f", &h("f1")]);
    assert_eq!(
        std::fs::read_to_string(host.join("f1")).unwrap(),
        "inside\n"
    );
    ok(&root, &["cp", "cc:/up/d", &h("dcopy")]);
    assert_eq!(
        std::fs::read_to_string(host.join("dcopy/f")).unwrap(),
        "inside\n"
    );
    // A symlink is copied as a link unless -L.
    ok(&root, &["cp", "cc:/rootlink", &h("link")]);
    assert_eq!(
        std::fs::read_link(host.join("link")).unwrap(),
        Path::new("/")
    );
    ok(&root, &["cp", "cc:/flink", &h("flink")]);
    assert_eq!(
        std::fs::read_link(host.join("flink")).unwrap(),
        Path::new("/d/f")
    );
    ok(&root, &["cp", "-L", "cc:/flink", &h("followed")]);
    assert_eq!(
        std::fs::read_to_string(host.join("followed")).unwrap(),
        "inside\n"
    );
    // Archive mode keeps owners; without it the copier owns the files.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(host.join("f1")).unwrap().uid(), 0);
    ok(&root, &["cp", "-a", "cc:/d/f", &h("f2")]);
    assert_eq!(std::fs::metadata(host.join("f2")).unwrap().uid(), 1234);
    // Contents of a directory with "/.".
    ok(&root, &["cp", "cc:/d/.", &h("contents")]);
    assert!(host.join("contents/f").is_file());

    // In: through the container's symlinks, never onto the host.
    let src = s.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/g"), "from host").unwrap();
    std::os::unix::fs::symlink(&marker, src.join("hostlink")).unwrap();
    ok(&root, &["cp", src.to_str().unwrap(), "cc:/up/tmp/"]);
    ok(
        &root,
        &[
            "cp",
            src.join("sub/g").to_str().unwrap(),
            "cc:/rootlink/renamed",
        ],
    );
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "host");
    // The container is stopped: cp mounted its rootfs for the call and unmounted it after.
    let merged = PathBuf::from(
        inspect(&root, &["cc"])["GraphDriver"]["Data"]["MergedDir"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    assert!(
        !berth_testkit::mounts_below(&root).contains(&merged),
        "rootfs left mounted"
    );
    ok(&root, &["start", "cc"]);
    ok(&root, &["wait", "cc"]);
    ok(&root, &["commit", "cc", "copied:1"]);
    let out = output(
        &root,
        &["copied:1", "sh", "-c", "cat /tmp/src/sub/g; echo; readlink /tmp/src/hostlink; cat /renamed; echo; stat -c %u /renamed"],
    );
    assert_eq!(
        out,
        format!("from host\n{}\nfrom host\n0\n", marker.display())
    );

    // "-" streams: a tar on stdout, and a tar from stdin into a directory.
    let r = berth_cmd(&root)
        .args(["cp", "cc:/d", "-"])
        .output()
        .unwrap();
    assert!(r.status.success());
    let mut ar = tar_names(&r.stdout);
    ar.sort();
    assert_eq!(ar, vec!["d/", "d/f"]);
    let mut child = berth_cmd(&root)
        .args(["cp", "-", "cc:/tmp"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&r.stdout).unwrap();
    assert!(child.wait().unwrap().success());
    ok(&root, &["cp", "cc:/tmp/d/f", &h("streamed")]);
    assert_eq!(
        std::fs::read_to_string(host.join("streamed")).unwrap(),
        "inside\n"
    );
    // "-" into a path that is not a directory is refused; a missing source is reported.
    fails(&root, &["cp", "-", "cc:/d/f"]);
    assert!(fails(&root, &["cp", "cc:/nonexistent", &h("x")])
        .stderr
        .contains("could not find"));
}

/// Names in a tar, parsed with the system tar.
fn tar_names(data: &[u8]) -> Vec<String> {
    let mut child = std::process::Command::new("tar")
        .args(["-tf", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// `tar -tv` lines without dates: "perm owner size name".
fn tar_listing(path: &Path) -> Vec<String> {
    let out = std::process::Command::new("tar")
        .args(["--numeric-owner", "-tvf"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            format!("{} {} {} {}", f[0], f[1], f[2], f[5..].join(" "))
        })
        .filter(|l| {
            !["etc/hosts", "etc/hostname", "etc/resolv.conf"]
                .iter()
                .any(|i| l.ends_with(&format!(" {i}")))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn export_then_import_round_trips_the_tree() {
    let (s, root, _g) = setup("fsv-export");
    run_wait(
        &root,
        &[
            "--name",
            "ex",
            "busybox",
            "sh",
            "-c",
            "mkdir -p /x/y; echo z > /x/y/z; chmod 4711 /x/y/z; ln -s y /x/l; rm /bin/ls",
        ],
    );
    let t1 = s.join("e.tar");
    ok(&root, &["export", "-o", t1.to_str().unwrap(), "ex"]);
    ok(&root, &["import", t1.to_str().unwrap(), "exported:1"]);
    ok(&root, &["create", "--name", "e2", "exported:1", "true"]);
    let t2 = s.join("e2.tar");
    let r = berth_cmd(&root).args(["export", "e2"]).output().unwrap();
    assert!(r.status.success());
    std::fs::write(&t2, &r.stdout).unwrap();
    let (a, b) = (tar_listing(&t1), tar_listing(&t2));
    let only_a: Vec<&String> = a.iter().filter(|x| !b.contains(x)).collect();
    let only_b: Vec<&String> = b.iter().filter(|x| !a.contains(x)).collect();
    assert!(
        only_a.is_empty() && only_b.is_empty(),
        "export: {only_a:?}\nre-export: {only_b:?}"
    );
    assert!(
        a.iter().any(|l| l.starts_with("-rws--x--x 0/0 2 x/y/z")),
        "{a:?}"
    );
    assert!(!a.iter().any(|l| l.ends_with(" bin/ls")));
}

#[test]
fn volumes_create_ls_inspect_rm_prune() {
    let (_s, root, _g) = setup("fsv-vol");
    assert_eq!(ok(&root, &["volume", "create", "alpha"]), "alpha\n");
    assert_eq!(
        ok(
            &root,
            &["volume", "create", "--name", "beta", "-l", "team=x", "-l", "tier"]
        ),
        "beta\n"
    );
    let anon = ok(&root, &["volume", "create"]).trim().to_string();
    assert_eq!(anon.len(), 64);
    let ls = ok(&root, &["volume", "ls"]);
    assert!(ls.starts_with("DRIVER    VOLUME NAME\n"), "{ls}");
    assert!(ls.contains("local     alpha\n") && ls.contains(&anon));
    assert_eq!(
        ok(&root, &["volume", "ls", "-q", "--filter", "label=team=x"]),
        "beta\n"
    );
    assert_eq!(
        ok(&root, &["volume", "ls", "-q", "--filter", "name=alp"]),
        "alpha\n"
    );
    let json: serde_json::Value = serde_json::from_str(
        ok(
            &root,
            &["volume", "ls", "--format", "json", "--filter", "name=beta"],
        )
        .trim(),
    )
    .unwrap();
    assert_eq!(
        (
            json["Name"].as_str(),
            json["Driver"].as_str(),
            json["Labels"].as_str()
        ),
        (Some("beta"), Some("local"), Some("team=x,tier="))
    );
    let v: serde_json::Value =
        serde_json::from_str(&ok(&root, &["volume", "inspect", "beta"])).unwrap();
    let v = &v[0];
    assert_eq!(v["Name"], "beta");
    assert_eq!(v["Scope"], "local");
    assert_eq!(v["Driver"], "local");
    assert_eq!(v["Labels"]["team"], "x");
    assert!(v["CreatedAt"].as_str().unwrap().starts_with("20"));
    let mp = PathBuf::from(v["Mountpoint"].as_str().unwrap());
    assert_eq!(mp, root.canonicalize().unwrap().join("volumes/beta/_data"));
    assert!(mp.is_dir());
    assert!(fails(&root, &["volume", "inspect", "nosuch"])
        .stderr
        .contains("no such volume"));
    assert!(fails(&root, &["volume", "create", "-d", "nfs", "x1"])
        .stderr
        .contains("plugin"));
    // In use: refused with docker's message; dangling filter sees the user.
    ok(
        &root,
        &[
            "create", "--name", "user", "-v", "alpha:/a", "busybox", "true",
        ],
    );
    let id = inspect(&root, &["user"])["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let e = fails(&root, &["volume", "rm", "alpha"]);
    assert!(
        e.stderr
            .contains(&format!("remove alpha: volume is in use - [{id}]")),
        "{}",
        e.stderr
    );
    assert!(!ok(&root, &["volume", "ls", "-q", "--filter", "dangling=true"]).contains("alpha"));
    assert!(ok(&root, &["volume", "ls", "-q", "--filter", "dangling=false"]).contains("alpha"));
    // prune: anonymous only, unless -a; used volumes stay.
    let out = ok(&root, &["volume", "prune", "-f"]);
    assert!(out.contains(&anon) && !out.contains("beta"), "{out}");
    let out = ok(&root, &["volume", "prune", "-f", "-a"]);
    assert!(out.contains("beta") && !out.contains("alpha"), "{out}");
    assert_eq!(ok(&root, &["volume", "ls", "-q"]), "alpha\n");
    ok(&root, &["rm", "user"]);
    assert_eq!(ok(&root, &["volume", "rm", "alpha"]), "alpha\n");
    assert!(fails(&root, &["volume", "rm", "alpha"])
        .stderr
        .contains("no such volume"));
    ok(&root, &["volume", "rm", "-f", "alpha"]);
    assert_eq!(ok(&root, &["volume", "ls", "-q"]), "");
}

#[test]
fn named_volume_survives_is_reused_and_is_filled_from_the_image() {
    let (_s, root, _g) = setup("fsv-vol-use");
    // An image with content (owned 1000:1000, mode 0750 dir) at /data, and VOLUME /data.
    run_wait(&root, &["--name", "bb", "busybox", "sh", "-c", "mkdir /data; echo seed > /data/f; chown -R 1000:1000 /data; chmod 750 /data; chmod 600 /data/f"]);
    ok(&root, &["commit", "-c", "VOLUME /data", "bb", "withdata:1"]);
    // Named volume: filled on first use, keeps owners and modes.
    let out = output(
        &root,
        &[
            "-v",
            "named:/data",
            "withdata:1",
            "sh",
            "-c",
            "stat -c '%u %a' /data /data/f; cat /data/f; echo more > /data/g",
        ],
    );
    assert_eq!(out, "1000 750\n1000 600\nseed\n");
    // Survives the container and is reused (no second copy-up over its content).
    output(
        &root,
        &["-v", "named:/data", "busybox", "sh", "-c", "rm /data/f"],
    );
    assert_eq!(
        output(&root, &["-v", "named:/data", "withdata:1", "ls", "/data"]),
        "g\n"
    );
    // The image's VOLUME becomes an anonymous volume, filled too, removed by rm -v.
    run_wait(&root, &["--name", "a1", "withdata:1", "cat", "/data/f"]);
    let mounts = inspect(&root, &["a1"])["Mounts"].clone();
    let name = mounts[0]["Name"].as_str().unwrap().to_string();
    assert_eq!(
        (name.len(), mounts[0]["Destination"].as_str()),
        (64, Some("/data"))
    );
    let v: serde_json::Value =
        serde_json::from_str(&ok(&root, &["volume", "inspect", &name])).unwrap();
    assert!(v[0]["Labels"]
        .as_object()
        .unwrap()
        .contains_key("com.docker.volume.anonymous"));
    ok(&root, &["rm", "-v", "a1"]);
    assert!(!ok(&root, &["volume", "ls", "-q"]).contains(&name));
    // Without -v the anonymous volume stays (dangling) and the named one always stays.
    run_wait(&root, &["--name", "a2", "withdata:1", "true"]);
    let name2 = inspect(&root, &["a2"])["Mounts"][0]["Name"]
        .as_str()
        .unwrap()
        .to_string();
    ok(&root, &["rm", "a2"]);
    let dangling = ok(&root, &["volume", "ls", "-q", "--filter", "dangling=true"]);
    assert!(
        dangling.contains(&name2) && dangling.contains("named"),
        "{dangling}"
    );
    // Copy-up takes the image's files, not the init layer's (hosts, hostname, resolv.conf, mtab).
    ok(
        &root,
        &[
            "create",
            "--name",
            "etc",
            "-v",
            "etcvol:/etc",
            "busybox",
            "true",
        ],
    );
    let data = root.join("volumes/etcvol/_data");
    assert!(data.join("passwd").is_file());
    for f in ["hosts", "hostname", "resolv.conf", "mtab"] {
        assert!(
            std::fs::symlink_metadata(data.join(f)).is_err(),
            "{f} copied into the volume"
        );
    }
    ok(&root, &["rm", "etc"]);
    // --rm removes anonymous volumes too (docker's behaviour).
    let before = ok(&root, &["volume", "ls", "-q"]).lines().count();
    ok(
        &root,
        &["run", "-d", "--rm", "--name", "gone", "withdata:1", "true"],
    );
    for _ in 0..1000 {
        if berth(&root, &["inspect", "gone"]).code != 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(ok(&root, &["volume", "ls", "-q"]).lines().count(), before);
}

#[test]
fn bind_mounts_read_only_read_write_and_propagation() {
    let (s, root, _g) = setup("fsv-bind");
    let host = s.join("shared");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("in"), "host file").unwrap();
    let rw = format!("{}:/rw:rw,rslave", host.display());
    let ro = format!("{}:/ro:ro", host.display());
    run_wait(
        &root,
        &["--name", "bm", "-v", &rw, "-v", &ro, "--mount", &format!("type=bind,source={},target=/m,bind-propagation=rprivate", host.display()),
          "busybox", "sh", "-c", "cat /ro/in; echo; echo w > /rw/out && echo rw-ok; echo x > /ro/nope 2>/dev/null || echo ro-refused"],
    );
    assert_eq!(ok(&root, &["logs", "bm"]), "host file\nrw-ok\nro-refused\n");
    assert_eq!(std::fs::read_to_string(host.join("out")).unwrap(), "w\n");
    assert!(!host.join("nope").exists());
    let mounts = inspect(&root, &["bm"])["Mounts"].clone();
    let by_dest = |d: &str| {
        mounts
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["Destination"] == d)
            .unwrap()
            .clone()
    };
    assert_eq!(
        (
            by_dest("/rw")["RW"].as_bool(),
            by_dest("/rw")["Propagation"].as_str()
        ),
        (Some(true), Some("rslave"))
    );
    assert_eq!(by_dest("/ro")["RW"].as_bool(), Some(false));
    assert_eq!(by_dest("/m")["Propagation"].as_str(), Some("rprivate"));
    // cp into a read-only mount is refused; into a read-write one lands on the host.
    fails(
        &root,
        &["cp", host.join("in").to_str().unwrap(), "bm:/ro/copy"],
    );
    ok(
        &root,
        &["cp", host.join("in").to_str().unwrap(), "bm:/rw/copy"],
    );
    assert_eq!(
        std::fs::read_to_string(host.join("copy")).unwrap(),
        "host file"
    );
}

#[test]
fn concurrent_containers_share_one_named_volume() {
    let (_s, root, _g) = setup("fsv-vol-race");
    let children: Vec<_> = (0..4)
        .map(|i| {
            berth_cmd(&root)
                .args([
                    "create",
                    "--name",
                    &format!("share{i}"),
                    "-v",
                    "shared:/d",
                    "busybox",
                    "true",
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(ok(&root, &["volume", "ls", "-q"]), "shared\n");
    let e = fails(&root, &["volume", "rm", "shared"]);
    assert_eq!(
        e.stderr.matches(", ").count(),
        3,
        "four users expected: {}",
        e.stderr
    );
    for i in 0..4 {
        ok(&root, &["rm", &format!("share{i}")]);
    }
    ok(&root, &["volume", "rm", "shared"]);
}
