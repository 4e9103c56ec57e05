//! What a docker user hits first (issue 11): usage errors, volume specs, missing bind sources
//! and working directories, --rm on a failed start, ttys, exec and cp errors, detach keys.
//! Each test asserts docker's message, exit code or effect (docker CLI 28's wording).

mod common;

use berth_testkit::{require_busybox, Scratch};
use common::{berth, berth_cmd, ok};
use std::path::PathBuf;

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
    fn run(&self, args: &[&str]) -> common::Run {
        berth(&self.root, args)
    }
    fn ids(&self) -> Vec<String> {
        common::ids(&self.root)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        common::remove_all_containers(&self.root);
        let _ = &self.scratch;
    }
}

/// docker's usage hint after a flag error.
fn usage_tail(cmd: &str, usage: &str) -> String {
    format!("\n\nUsage:  berth {cmd} {usage}\n\nRun 'berth {cmd} --help' for more information\n")
}

// ---- item 6: usage errors --------------------------------------------------------------------

#[test]
fn unknown_flags_and_bad_values_exit_125_with_dockers_words() {
    let env = Env::new("usage-errors");
    let r = env.run(&["run", "--bogus", "busybox", "true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "unknown flag: --bogus{}",
            usage_tail("run", "[OPTIONS] IMAGE [COMMAND] [ARG...]")
        )
    );
    assert!(env.ids().is_empty(), "no container for a usage error");

    for (args, cmd, usage) in [
        (&["ps", "--bogus"][..], "ps", "[OPTIONS]"),
        (
            &["images", "--bogus"][..],
            "images",
            "[OPTIONS] [REPOSITORY[:TAG]]",
        ),
        (
            &["container", "ls", "--bogus"][..],
            "container ls",
            "[OPTIONS]",
        ),
    ] {
        let r = env.run(args);
        assert_eq!(r.code, 125, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr
                .starts_with("unknown flag: --bogus\n\nUsage:  berth "),
            "{args:?}: {}",
            r.stderr
        );
        assert!(
            r.stderr
                .ends_with(&format!("Run 'berth {cmd} --help' for more information\n")),
            "{args:?}: {}",
            r.stderr
        );
        let _ = usage;
    }
    let r = env.run(&["ps", "-z"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            125,
            format!(
                "unknown shorthand flag: 'z' in -z{}",
                usage_tail("ps", "[OPTIONS]")
            )
            .as_str()
        )
    );

    // Flags after the image belong to the command, as with docker.
    assert_eq!(
        env.ok(&["run", "--rm", "busybox", "echo", "--bogus", "-x"]),
        "--bogus -x\n"
    );
    // Negative values of flags that take them (-1: unlimited) are values, not flags, as with pflag.
    assert_eq!(
        env.ok(&[
            "run",
            "--rm",
            "-m",
            "64m",
            "--memory-swap",
            "-1",
            "--pids-limit",
            "-1",
            "--stop-timeout",
            "-1",
            "busybox",
            "echo",
            "ok"
        ]),
        "ok\n"
    );

    let r = env.run(&["run", "--pids-limit", "abc", "busybox"]);
    assert_eq!(r.code, 125);
    assert_eq!(
        r.stderr,
        format!(
            "invalid argument \"abc\" for \"--pids-limit\" flag: strconv.ParseInt: parsing \"abc\": invalid syntax{}",
            usage_tail("run", "[OPTIONS] IMAGE [COMMAND] [ARG...]")
        )
    );
    let r = env.run(&["create", "-c", "x", "busybox"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.starts_with("invalid argument \"x\" for \"-c, --cpu-shares\" flag: strconv.ParseInt: parsing \"x\": invalid syntax\n"), "{}", r.stderr);
    let r = env.run(&["run", "--name"]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr.starts_with("flag needs an argument: --name\n"),
        "{}",
        r.stderr
    );

    // A missing argument is docker's exit 1.
    let r = env.run(&["run"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .starts_with("berth: 'berth run' requires at least 1 argument\n"),
        "{}",
        r.stderr
    );
    assert!(env.ids().is_empty());
}

#[test]
fn bad_and_taken_names_exit_as_dockers_cli() {
    let env = Env::new("names");
    // docker create prints the daemon's refusal and exits 1; docker run exits 125.
    let r = env.run(&["create", "--name", "a b", "busybox", "true"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("Invalid container name (a b), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
        "{}",
        r.stderr
    );
    let r = env.run(&["run", "--name", "a b", "busybox", "true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(
        r.stderr.contains("Invalid container name (a b)"),
        "{}",
        r.stderr
    );

    let id = env
        .ok(&["create", "--name", "dup", "busybox", "true"])
        .trim()
        .to_string();
    let want = format!(
        "Conflict. The container name \"/dup\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
    );
    let r = env.run(&["create", "--name", "dup", "busybox", "true"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains(&want), "{}", r.stderr);
    let r = env.run(&["run", "--name", "dup", "busybox", "true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains(&want), "{}", r.stderr);
    assert_eq!(env.ids(), vec![id]);
}

// ---- item 7: malformed -v specs ---------------------------------------------------------------

#[test]
fn malformed_volume_specs_are_refused() {
    let env = Env::new("volume-specs");
    for (spec, msg) in [
        (":/x", "invalid spec: :/x: empty section between colons"),
        (
            "/a::/b",
            "invalid spec: /a::/b: empty section between colons",
        ),
        (
            "/x:/y:",
            "invalid spec: /x:/y:: empty section between colons",
        ),
        ("vol:/x:ro:z", "invalid spec: vol:/x:ro:z: too many colons"),
        ("", "invalid empty volume spec"),
        // docker's CLI lets this one through (a one-letter drive); its daemon refuses it.
        ("a:b:c:d", "invalid volume specification: 'a:b:c:d'"),
    ] {
        let r = env.run(&["run", "--rm", "-v", spec, "busybox", "true"]);
        assert_eq!(r.code, 125, "-v {spec:?}: {}", r.stderr);
        assert!(r.stderr.contains(msg), "-v {spec:?}: {}", r.stderr);
    }
    assert!(env.ids().is_empty());
    assert_eq!(
        env.ok(&["volume", "ls", "-q"]),
        "",
        "no anonymous volume was made"
    );
}

// ---- item 1: a missing -v host path is created ------------------------------------------------

#[test]
fn missing_bind_source_is_created_for_v_and_refused_for_mount() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new("bind-missing");
    let host = env.scratch.join("made/by/run");
    let spec = format!("{}:/x", host.display());
    let out = env.ok(&[
        "run",
        "--rm",
        "-v",
        &spec,
        "busybox",
        "sh",
        "-c",
        "echo hi > /x/f; stat -c %F /x",
    ]);
    assert_eq!(out, "directory\n");
    assert!(host.is_dir());
    assert_eq!(
        std::fs::metadata(&host).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    assert_eq!(std::fs::read_to_string(host.join("f")).unwrap(), "hi\n");

    // --mount type=bind refuses a missing source, before anything is created.
    let missing = env.scratch.join("not-there");
    let m = format!("type=bind,source={},target=/y", missing.display());
    let r = env.run(&["run", "--rm", "--mount", &m, "busybox", "true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    let want = format!(
        "invalid mount config for type \"bind\": bind source path does not exist: {}",
        missing.display()
    );
    assert!(r.stderr.contains(&want), "{}", r.stderr);
    let r = env.run(&["create", "--mount", &m, "busybox", "true"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(!missing.exists());
    assert!(env.ids().is_empty());
}

// ---- item 2: -w creates the working directory --------------------------------------------------

#[test]
fn workdir_missing_from_the_image_is_created() {
    let env = Env::new("workdir");
    let out = env.ok(&[
        "run",
        "--rm",
        "-w",
        "/new/work/dir",
        "busybox",
        "sh",
        "-c",
        "pwd; stat -c %a /new/work/dir /new/work /new",
    ]);
    assert_eq!(out, "/new/work/dir\n755\n755\n755\n");
    // An existing directory is left as it is.
    let out = env.ok(&[
        "run",
        "--rm",
        "-w",
        "/tmp",
        "busybox",
        "sh",
        "-c",
        "pwd; stat -c %a /tmp",
    ]);
    assert_eq!(out, "/tmp\n1777\n");
    let r = env.run(&["run", "--rm", "-w", "/etc/passwd", "busybox", "true"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("Cannot mkdir: /etc/passwd is not a directory"),
        "{}",
        r.stderr
    );
    assert!(env.ids().is_empty());
}

// ---- item 4: --rm removes a container whose start failed ---------------------------------------

#[test]
fn rm_removes_a_container_that_failed_to_start() {
    let env = Env::new("rm-failed");
    let file = env.scratch.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let under_file = format!("{}/sub:/x", file.display());
    for args in [
        &["-u", "nosuchuser", "busybox", "true"][..],
        &["busybox", "no-such-command"][..],
        &["-v", &under_file, "busybox", "true"][..],
        &["-w", "/etc/passwd", "busybox", "true"][..],
    ] {
        let mut a = vec!["run", "--rm", "--name", "once"];
        a.extend_from_slice(args);
        let r = env.run(&a);
        assert_ne!(r.code, 0, "{args:?}");
        assert!(env.ids().is_empty(), "{args:?} left a container");
        // The name is free again.
        env.ok(&["run", "--rm", "--name", "once", "busybox", "true"]);
    }
    // Also through create + start, and detached.
    env.ok(&[
        "create",
        "--rm",
        "--name",
        "later",
        "-u",
        "nosuchuser",
        "busybox",
        "true",
    ]);
    assert_ne!(env.run(&["start", "later"]).code, 0);
    assert!(env.ids().is_empty());
    assert_ne!(
        env.run(&["run", "-d", "--rm", "-u", "nosuchuser", "busybox", "true"])
            .code,
        0
    );
    assert!(env.ids().is_empty());
    assert_eq!(env.ok(&["volume", "ls", "-q"]), "");
}

// ---- item 3: -it without a terminal ----------------------------------------------------------

/// Runs berth with `args` (stdin /dev/null, not a terminal); fails the test if it has not
/// finished within 20 s (the bug was a hang).
fn run_bounded(env: &Env, args: &[&str]) -> common::Run {
    let mut child = berth_cmd(&env.root)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("berth {args:?} hung");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap().into()
}

#[test]
fn tty_with_stdin_that_is_not_a_terminal_fails_at_once() {
    let env = Env::new("not-a-tty");
    for args in [
        &["run", "-it", "--name", "t1", "busybox", "sh"][..],
        &["run", "-t", "-i", "--rm", "busybox", "cat"][..],
    ] {
        let r = run_bounded(&env, args);
        assert_eq!(
            (r.code, r.stderr.as_str(), r.stdout.as_str()),
            (1, "the input device is not a TTY\n", ""),
            "{args:?}"
        );
        assert!(env.ids().is_empty(), "{args:?} left a container");
    }
    // -t alone does not read stdin: docker runs it.
    let r = run_bounded(&env, &["run", "-t", "--rm", "busybox", "echo", "hi"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "hi\r\n"), "{}", r.stderr);
    // A detached -it is fine; exec -it and attach check as run does.
    env.ok(&["run", "-dit", "--name", "bg", "busybox", "sh"]);
    let r = run_bounded(&env, &["exec", "-it", "bg", "true"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "the input device is not a TTY\n")
    );
    let r = run_bounded(&env, &["attach", "bg"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "the input device is not a TTY\n")
    );
    assert_eq!(env.ids().len(), 1);
    env.ok(&["create", "-it", "--name", "later", "busybox", "sh"]);
    let r = run_bounded(&env, &["start", "-ai", "later"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "the input device is not a TTY\n")
    );
    assert_eq!(
        env.ok(&["inspect", "--format", "{{.State.Status}}", "later"]),
        "created\n",
        "not started"
    );
}

// ---- item 8: exec of a missing command, cp into a missing directory ---------------------------

#[test]
fn exec_of_a_missing_command_is_126_and_cp_errors_are_stable() {
    let env = Env::new("exec-cp");
    env.ok(&["run", "-d", "--name", "e1", "busybox", "sleep", "100"]);
    let r = env.run(&["exec", "e1", "no-such-command"]);
    assert_eq!(r.code, 126, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("exec: \"no-such-command\": executable file not found in $PATH"),
        "{}",
        r.stderr
    );
    let r = env.run(&["exec", "e1", "/etc/passwd"]);
    assert_eq!(r.code, 126, "{}", r.stderr);
    assert_eq!(
        env.run(&["exec", "e1", "sh", "-c", "exit 127"]).code,
        127,
        "the command's own code is kept"
    );

    // A file big enough that the archiver is still writing when the destination is refused.
    let big = env.scratch.join("big");
    let data: Vec<u8> = (0..4u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    std::fs::write(&big, &data).unwrap();
    let dest = "e1:/no/such/dir/f";
    for _ in 0..5 {
        let r = env.run(&["cp", big.to_str().unwrap(), dest]);
        assert_eq!(r.code, 1);
        assert_eq!(
            r.stderr,
            "Error: Could not find the file /no/such/dir in container e1\n"
        );
    }
    let small = env.scratch.join("small");
    std::fs::write(&small, b"x").unwrap();
    let r = env.run(&["cp", small.to_str().unwrap(), dest]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            1,
            "Error: Could not find the file /no/such/dir in container e1\n"
        )
    );
}

// ---- item 12: detach keys and --sig-proxy ------------------------------------------------------

/// A pty pair: the master, and the slave opened for a child's stdio.
fn open_pty() -> (std::fs::File, std::fs::File) {
    unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(m >= 0);
        assert_eq!(libc::grantpt(m), 0);
        assert_eq!(libc::unlockpt(m), 0);
        let mut buf = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(m, buf.as_mut_ptr(), buf.len()), 0);
        let p = std::ffi::CStr::from_ptr(buf.as_ptr())
            .to_string_lossy()
            .into_owned();
        let master = <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(m);
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(p)
            .unwrap();
        (master, slave)
    }
}

/// berth with the pty slave as its stdin, stdout and stderr.
fn spawn_on_pty(env: &Env, slave: &std::fs::File, args: &[&str]) -> std::process::Child {
    berth_cmd(&env.root)
        .args(args)
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave.try_clone().unwrap())
        .spawn()
        .unwrap()
}

/// Reads the master until `needle` shows up (bounded); returns all that was read.
fn read_until(master: &std::fs::File, needle: &str) -> String {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains(needle) {
        assert!(
            std::time::Instant::now() < deadline,
            "never saw {needle:?} in {:?}",
            String::from_utf8_lossy(&seen)
        );
        let mut p = libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        if unsafe { libc::poll(&mut p, 1, 100) } <= 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        match (&*master).read(&mut buf) {
            Ok(n) if n > 0 => seen.extend_from_slice(&buf[..n]),
            _ => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// Waits (bounded) for the child to exit; its code.
fn wait_bounded(child: &mut std::process::Child) -> Option<i32> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("berth did not exit");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn type_keys(master: &std::fs::File, keys: &[u8]) {
    use std::io::Write;
    (&*master).write_all(keys).unwrap();
}

#[test]
fn detach_keys_leave_the_container_running() {
    let env = Env::new("detach");
    // run -it: ctrl-p ctrl-q detaches; run exits 0 and the container runs on.
    let (master, slave) = open_pty();
    let mut run = spawn_on_pty(
        &env,
        &slave,
        &["run", "-it", "--name", "d1", "busybox", "sh"],
    );
    type_keys(&master, b"echo one$((1+1))\r");
    read_until(&master, "one2");
    type_keys(&master, b"\x10\x11");
    assert_eq!(wait_bounded(&mut run), Some(0));
    assert_eq!(
        env.ok(&["inspect", "--format", "{{.State.Status}}", "d1"]),
        "running\n"
    );

    // attach: the same keys; docker attach then says "read escape sequence" and exits 1.
    let mut att = spawn_on_pty(&env, &slave, &["attach", "d1"]);
    type_keys(&master, b"echo two$((1+2))\r");
    read_until(&master, "two3");
    type_keys(&master, b"\x10\x11");
    assert_eq!(wait_bounded(&mut att), Some(1));
    read_until(&master, "read escape sequence");
    assert_eq!(
        env.ok(&["inspect", "--format", "{{.State.Status}}", "d1"]),
        "running\n"
    );

    // --detach-keys: ctrl-p ctrl-q now reach the container, ctrl-a x detaches.
    let mut att = spawn_on_pty(&env, &slave, &["attach", "--detach-keys", "ctrl-a,x", "d1"]);
    type_keys(&master, b"\x10\x11echo three$((1+3))\r");
    read_until(&master, "three4");
    assert!(
        att.try_wait().unwrap().is_none(),
        "the default keys no longer detach"
    );
    type_keys(&master, b"\x01x");
    assert_eq!(wait_bounded(&mut att), Some(1));

    // The shell still works, and exiting it ends an attach with its code.
    let mut att = spawn_on_pty(&env, &slave, &["attach", "d1"]);
    type_keys(&master, b"exit 5\r");
    assert_eq!(wait_bounded(&mut att), Some(5));

    // run --detach-keys and start -ai --detach-keys.
    let mut run = spawn_on_pty(
        &env,
        &slave,
        &[
            "run",
            "-it",
            "--rm",
            "--name",
            "d2",
            "--detach-keys",
            "ctrl-a,x",
            "busybox",
            "sh",
        ],
    );
    type_keys(&master, b"echo four$((1+4))\r");
    read_until(&master, "four5");
    type_keys(&master, b"\x01x");
    assert_eq!(wait_bounded(&mut run), Some(0));
    assert_eq!(
        env.ok(&["inspect", "--format", "{{.State.Status}}", "d2"]),
        "running\n"
    );
    env.ok(&["create", "-it", "--name", "d3", "busybox", "sh"]);
    let mut st = spawn_on_pty(
        &env,
        &slave,
        &["start", "-ai", "--detach-keys", "ctrl-a,x", "d3"],
    );
    type_keys(&master, b"echo five$((1+5))\r");
    read_until(&master, "five6");
    type_keys(&master, b"\x01x");
    assert_eq!(wait_bounded(&mut st), Some(0));
    assert_eq!(
        env.ok(&["inspect", "--format", "{{.State.Status}}", "d3"]),
        "running\n"
    );

    // Bad keys are refused in docker's words before anything is created.
    let r = env.run(&[
        "run",
        "-d",
        "--detach-keys",
        "ctrl-",
        "--name",
        "keys-bad",
        "busybox",
        "true",
    ]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (125, "Error: Invalid detach keys (ctrl-) provided\n")
    );
    // Not "d4": a hex name can be the id prefix of another container or network.
    assert!(env.run(&["inspect", "keys-bad"]).code != 0);
}

#[test]
fn sig_proxy_passes_signals_on_or_leaves_them_to_us() {
    use std::io::{BufRead, BufReader};
    let env = Env::new("sig-proxy");
    let script = "trap 'echo got-usr1; exit 3' USR1; echo ready; while true; do sleep 0.05; done";
    for (proxy, name) in [("true", "p1"), ("false", "p2")] {
        let mut child = berth_cmd(&env.root)
            .args([
                "run",
                "--sig-proxy",
                proxy,
                "--name",
                name,
                "busybox",
                "sh",
                "-c",
                script,
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n");
        unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) };
        let code = wait_bounded(&mut child);
        if proxy == "true" {
            // The container got it, and run ends with its exit code.
            assert_eq!(code, Some(3));
            line.clear();
            out.read_line(&mut line).unwrap();
            assert_eq!(line, "got-usr1\n");
        } else {
            // Not passed on: the signal ends berth itself and the container runs on.
            assert_eq!(code, None, "killed by the signal");
            assert_eq!(
                env.ok(&["inspect", "--format", "{{.State.Status}}", name]),
                "running\n"
            );
        }
    }
}

// ---- item 16: ./setup installs only what berth needs ------------------------------------------

/// The package list a scripts/ file installs (its `pkgs=(...)` array).
fn script_pkgs(script: &str) -> Vec<String> {
    let text = std::fs::read_to_string(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/").to_string() + script,
    )
    .unwrap();
    let from = text.find("\npkgs=(").expect("a pkgs array") + "\npkgs=(".len();
    let to = from + text[from..].find(')').unwrap();
    text[from..to]
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn setup_installs_only_what_berth_needs_and_check_installs_the_rest() {
    let repo = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let deps = script_pkgs("deps");
    let test_deps = script_pkgs("test-deps");
    assert!(deps.contains(&"busybox-static".to_string()), "{deps:?}");
    for only_tests in [
        "podman",
        "skopeo",
        "conmon",
        "runc",
        "crun",
        "containernetworking-plugins",
        "netavark",
        "hyperfine",
        "uidmap",
    ] {
        assert!(
            !deps.iter().any(|p| p == only_tests),
            "scripts/deps installs {only_tests}: {deps:?}"
        );
        assert!(
            test_deps.iter().any(|p| p == only_tests),
            "scripts/test-deps lacks {only_tests}: {test_deps:?}"
        );
    }
    let read = |f: &str| std::fs::read_to_string(repo.join(f)).unwrap();
    let runs = |text: &str, script: &str| text.lines().any(|l| l.trim_start().starts_with(script));
    assert!(
        runs(&read("setup"), "scripts/deps") && !runs(&read("setup"), "scripts/test-deps"),
        "./setup: berth's own packages only"
    );
    assert!(
        !read("scripts/deps").contains("containers.conf"),
        "podman's configuration goes with the test packages"
    );
    assert!(read("scripts/test-deps").contains("containers.conf"));
    for f in ["check", "bench/run"] {
        assert!(
            runs(&read(f), "scripts/deps") && runs(&read(f), "scripts/test-deps"),
            "{f} installs its own packages"
        );
    }
}

#[test]
fn exec_detach_keys_leave_the_process_running() {
    let env = Env::new("exec-detach");
    env.ok(&["run", "-d", "--name", "x1", "busybox", "sleep", "1000"]);
    let shells = || {
        env.ok(&["exec", "x1", "ps", "-o", "args"])
            .lines()
            .filter(|l| l.trim() == "sh")
            .count()
    };
    let (master, slave) = open_pty();
    let mut ex = spawn_on_pty(&env, &slave, &["exec", "-it", "x1", "sh"]);
    type_keys(&master, b"echo one$((1+1))\r");
    read_until(&master, "one2");
    type_keys(&master, b"\x10\x11");
    assert_eq!(wait_bounded(&mut ex), Some(1));
    read_until(&master, "read escape sequence");
    assert_eq!(shells(), 1, "the detached shell runs on");

    let mut ex = spawn_on_pty(
        &env,
        &slave,
        &["exec", "-it", "--detach-keys", "ctrl-a,x", "x1", "sh"],
    );
    type_keys(&master, b"echo two$((1+2))\r");
    read_until(&master, "two3");
    type_keys(&master, b"\x01x");
    assert_eq!(wait_bounded(&mut ex), Some(1));
    assert_eq!(shells(), 2);
    // Without detaching, the exec ends with its command's code.
    let mut ex = spawn_on_pty(&env, &slave, &["exec", "-it", "x1", "sh"]);
    type_keys(&master, b"exit 4\r");
    assert_eq!(wait_bounded(&mut ex), Some(4));
}
