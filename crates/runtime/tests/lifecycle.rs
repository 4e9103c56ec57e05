//! Containers through the library: lifecycle, exit codes, bad input leaving no state, exec.

mod common;

use berth_runtime::{ErrorKind, ExecOptions, Status};
use common::{code, forked, kind_index, Fixture};

#[test]
fn run_returns_exit_code_and_signal() {
    let f = Fixture::new("rt-exit");
    f.write(&f.spec(&["sh", "-c", "exit 3"]));
    let (rt, opts, id) = (f.runtime(), f.opts(), f.id.clone());
    assert_eq!(
        forked(None, || rt.run(&id, &opts, false, false).unwrap_or(-1)),
        3
    );
    assert!(
        !f.root.join(&f.id).exists(),
        "run without keep deletes the container"
    );

    // Signals to the foreground `run` are forwarded to the init; a SIGKILL shows as 137.
    f.write(&f.spec(&[
        "sh",
        "-c",
        "trap 'exit 42' TERM; while true; do sleep 0.05; done",
    ]));
    assert_eq!(run_and_signal(&f, libc::SIGTERM), 42);
    f.write(&f.spec(&["sleep", "100"]));
    assert_eq!(run_and_signal(&f, libc::SIGKILL), 137);
}

/// Runs the container in the foreground in a child; once it runs, signals `run` (SIGTERM, to be
/// forwarded) or kills the init through the runtime (SIGKILL). Returns run's result.
fn run_and_signal(f: &Fixture, sig: i32) -> i32 {
    let (rt, opts, id) = (f.runtime(), f.opts(), f.id.clone());
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let c = rt.run(&id, &opts, false, false).unwrap_or(-1);
        unsafe { libc::_exit(c) };
    }
    let _reap = berth_testkit::Defer(|| unsafe {
        libc::kill(pid, libc::SIGKILL);
    });
    for _ in 0..2000 {
        if rt.state(&id).is_ok_and(|s| s.status == Status::Running) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // Give sh time to install its trap.
    std::thread::sleep(std::time::Duration::from_millis(200));
    if sig == libc::SIGKILL {
        rt.kill(&id, sig, false).unwrap();
    } else {
        unsafe { libc::kill(pid, sig) };
    }
    let mut status = 0;
    unsafe { libc::waitpid(pid, &mut status, 0) };
    libc::WEXITSTATUS(status)
}

#[test]
fn create_start_kill_delete() {
    let f = Fixture::new("rt-life");
    f.write(&f.spec(&["sleep", "100"]));
    let (rt, opts, id) = (f.runtime(), f.opts(), f.id.clone());
    assert_eq!(forked(None, || code(rt.create(&id, &opts))), 0);
    let st = rt.state(&id).unwrap();
    assert_eq!(st.status, Status::Created);
    assert!(st.pid > 0);
    assert_eq!(st.bundle, f.bundle);
    // The init is blocked on the exec fifo: still our runtime, not sleep.
    let comm = std::fs::read_to_string(format!("/proc/{}/cmdline", st.pid)).unwrap();
    assert!(!comm.starts_with("sleep"), "{comm}");
    assert_eq!(forked(None, || code(rt.start(&id))), 0);
    assert_eq!(rt.state(&id).unwrap().status, Status::Running);
    // Starting twice is a conflict.
    assert_eq!(
        forked(None, || code(rt.start(&id))),
        10 + kind_index(ErrorKind::Conflict)
    );
    assert_eq!(
        rt.delete(&id, false).unwrap_err().kind(),
        ErrorKind::Conflict
    );
    assert_eq!(rt.pids(&id).unwrap(), vec![st.pid]);
    rt.pause(&id).unwrap();
    assert_eq!(rt.state(&id).unwrap().status, Status::Paused);
    rt.resume(&id).unwrap();
    assert_eq!(rt.state(&id).unwrap().status, Status::Running);
    rt.kill(&id, libc::SIGKILL, false).unwrap();
    for _ in 0..400 {
        if rt.state(&id).unwrap().status == Status::Stopped {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(rt.state(&id).unwrap().status, Status::Stopped);
    rt.delete(&id, false).unwrap();
    assert_eq!(rt.state(&id).unwrap_err().kind(), ErrorKind::NotFound);
    assert!(rt.list().unwrap().is_empty());
}

#[test]
fn bad_input_leaves_no_state() {
    let f = Fixture::new("rt-bad");
    let (rt, id) = (f.runtime(), f.id.clone());
    let mut opts = f.opts();
    let expect = |opts: &berth_runtime::CreateOptions, id: &str, kind: ErrorKind| {
        let (rt, opts, id2) = (&rt, opts.clone(), id.to_string());
        assert_eq!(
            forked(None, move || code(rt.create(&id2, &opts))),
            10 + kind_index(kind),
            "{id}"
        );
        let left: Vec<_> = std::fs::read_dir(&f.root)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "state left behind: {left:?}");
    };
    // No config.json.
    expect(&opts, &id, ErrorKind::NotFound);
    // Invalid JSON.
    std::fs::write(f.bundle.join("config.json"), "{not json").unwrap();
    expect(&opts, &id, ErrorKind::InvalidArgument);
    // Unknown namespace type.
    let mut v = serde_json::to_value(f.spec(&["true"])).unwrap();
    v["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "bogus"}));
    std::fs::write(f.bundle.join("config.json"), v.to_string()).unwrap();
    expect(&opts, &id, ErrorKind::InvalidArgument);
    // Invalid id.
    f.write(&f.spec(&["true"]));
    expect(&opts, "../escape", ErrorKind::InvalidArgument);
    // Missing executable: reported by create itself.
    f.write(&f.spec(&["/no/such/binary"]));
    expect(&opts, &id, ErrorKind::NotFound);
    // cwd that does not exist inside the container.
    let mut spec = f.spec(&["true"]);
    spec.process_mut()
        .as_mut()
        .unwrap()
        .set_cwd("/does/not/exist".into());
    f.write(&spec);
    expect(&opts, &id, ErrorKind::NotFound);
    // Missing rootfs.
    opts.bundle = f.scratch.join("nowhere");
    std::fs::create_dir_all(&opts.bundle).unwrap();
    std::fs::write(
        opts.bundle.join("config.json"),
        serde_json::to_vec(&f.spec(&["true"])).unwrap(),
    )
    .unwrap();
    expect(&opts, &id, ErrorKind::NotFound);
    // An id that exists.
    f.write(&f.spec(&["sleep", "100"]));
    let opts = f.opts();
    let (rt2, o2, id2) = (&rt, opts.clone(), id.clone());
    assert_eq!(forked(None, move || code(rt2.create(&id2, &o2))), 0);
    let (rt2, o2, id2) = (&rt, opts.clone(), id.clone());
    assert_eq!(
        forked(None, move || code(rt2.create(&id2, &o2))),
        10 + kind_index(ErrorKind::AlreadyExists)
    );
    assert_eq!(
        rt.state(&id).unwrap().status,
        Status::Created,
        "the existing container is untouched"
    );
}

#[test]
fn exec_joins_the_container() {
    let f = Fixture::new("rt-exec");
    f.write(&f.spec(&["sleep", "100"]));
    let (rt, opts, id) = (f.runtime(), f.opts(), f.id.clone());
    assert_eq!(forked(None, || code(rt.run(&id, &opts, true, false))), 0);
    let init = rt.state(&id).unwrap().pid;
    let mut p = f.spec(&[]).process().clone().unwrap();
    p.set_args(Some(vec![
        "sh".into(),
        "-c".into(),
        "echo pid=$$; cat /proc/1/cmdline; readlink /proc/self/ns/pid; exit 5".into(),
    ]));
    let eo = ExecOptions {
        process: p,
        ..Default::default()
    };
    let out = f.out();
    assert_eq!(forked(Some(&out), || rt.exec(&id, &eo).unwrap_or(-1)), 5);
    let text = f.output();
    let host_ns = std::fs::read_link(format!("/proc/{init}/ns/pid")).unwrap();
    assert!(
        text.contains("sleep"),
        "exec sees the init as pid 1: {text}"
    );
    assert!(
        text.contains(&host_ns.to_string_lossy().to_string()),
        "same pid namespace: {text}"
    );
    assert!(!text.contains("pid=1\n"), "{text}");
}

#[test]
fn init_joins_every_v1_cgroup_with_limits_set() {
    let f = Fixture::new("rt-cg");
    let mut spec = f.spec(&["sleep", "100"]);
    let r: oci_spec::runtime::LinuxResources =
        serde_json::from_str(r#"{"pids": {"limit": 7}}"#).unwrap();
    spec.linux_mut().as_mut().unwrap().set_resources(Some(r));
    f.write(&spec);
    let (rt, opts, id) = (f.runtime(), f.opts(), f.id.clone());
    assert_eq!(forked(None, || code(rt.create(&id, &opts))), 0);
    let pid = rt.state(&id).unwrap().pid;
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in cgroups.lines().filter(|l| !l.starts_with("0::")) {
        assert!(
            line.ends_with(&format!("/{id}")),
            "not in its cgroup: {line}\n{cgroups}"
        );
        if line.contains(":pids:") {
            let max =
                std::fs::read_to_string(format!("/sys/fs/cgroup/pids/{id}/pids.max")).unwrap();
            assert_eq!(max.trim(), "7");
        }
    }
    assert_eq!(rt.pids(&id).unwrap(), vec![pid]);
    // An exec'd process lands in the same cgroups.
    let mut p = f.spec(&[]).process().clone().unwrap();
    p.set_args(Some(vec!["cat".into(), "/proc/self/cgroup".into()]));
    let eo = ExecOptions {
        process: p,
        ..Default::default()
    };
    assert_eq!(forked(None, || code(rt.start(&id))), 0);
    let out = f.out();
    assert_eq!(forked(Some(&out), || rt.exec(&id, &eo).unwrap_or(-1)), 0);
    let text = f.output();
    // The default spec has a cgroup namespace rooted at the container's cgroup: the exec'd
    // process sees itself at its root, in every hierarchy.
    assert!(text.lines().any(|l| l.contains(":pids:")), "{text}");
    assert!(
        text.lines()
            .filter(|l| !l.starts_with("0::"))
            .all(|l| l.ends_with(":/")),
        "{text}"
    );
}
