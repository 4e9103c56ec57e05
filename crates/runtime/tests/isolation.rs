//! What the process sees inside: mounts in the root (never through an escaping symlink), masked
//! and read-only paths, capabilities, user, no leaked host fds or cwd, hooks, user namespaces.

mod common;

use berth_runtime::ErrorKind;
use common::{code, forked, kind_index, Fixture};
use oci_spec::runtime::{
    HookBuilder, HooksBuilder, LinuxIdMappingBuilder, LinuxNamespaceBuilder, LinuxNamespaceType,
    MountBuilder,
};
use std::os::unix::fs::symlink;

fn run_capture(f: &Fixture) -> (i32, String) {
    let (rt, opts, id) = (f.runtime(), f.opts(), f.id.clone());
    let out = f.out();
    let c = forked(Some(&out), || {
        rt.run(&id, &opts, false, false).unwrap_or_else(|e| {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "run: {e}");
            -1
        })
    });
    (c, f.output())
}

#[test]
fn mounts_masks_and_symlink_escape() {
    let f = Fixture::new("rt-mnt");
    let outside = f.scratch.join("outside");
    std::fs::create_dir(&outside).unwrap();
    // An image symlink pointing outside the rootfs: mounting "through" it must stay inside.
    symlink(&outside, f.bundle.join("rootfs/escape")).unwrap();
    let hostdata = f.scratch.join("data");
    std::fs::create_dir(&hostdata).unwrap();
    std::fs::write(hostdata.join("file"), "from-host").unwrap();
    let mut spec = f.spec(&[
        "sh",
        "-c",
        "cat /data/file; echo; touch /data/x && echo data-writable; cat /proc/kcore | wc -c; \
         echo 1 > /proc/sys/kernel/domainname && echo sys-writable; hostname; \
         grep CapEff /proc/self/status; ls /escape/sub >/dev/null && echo sub-ok; ls -l /dev/null",
    ]);
    let mut mounts = spec.mounts().clone().unwrap();
    mounts.push(
        MountBuilder::default()
            .destination("/data")
            .typ("bind")
            .source(&hostdata)
            .options(vec!["rbind".to_string(), "ro".to_string()])
            .build()
            .unwrap(),
    );
    mounts.push(
        MountBuilder::default()
            .destination("/escape/sub")
            .typ("tmpfs")
            .source("tmpfs")
            .build()
            .unwrap(),
    );
    spec.set_mounts(Some(mounts));
    spec.set_hostname(Some("berth-test".into()));
    f.write(&spec);
    let (c, out) = run_capture(&f);
    assert_eq!(c, 0, "{out}");
    assert!(out.contains("from-host"), "{out}");
    assert!(!out.contains("data-writable"), "ro bind: {out}");
    assert!(out.contains("\n0\n"), "kcore masked: {out}");
    assert!(!out.contains("sys-writable"), "/proc/sys read-only: {out}");
    assert!(out.contains("berth-test"), "{out}");
    assert!(
        out.contains("CapEff:\t0000000020000420"),
        "runc spec caps: {out}"
    );
    assert!(out.contains("sub-ok"), "{out}");
    assert!(out.contains("1,   3"), "/dev/null is 1:3: {out}");
    assert!(
        !outside.join("sub").exists(),
        "mount escaped the rootfs through a symlink"
    );
}

#[test]
fn user_process_and_no_host_fd_or_cwd_leak() {
    let f = Fixture::new("rt-user");
    let mut spec = f.spec(&["sh", "-c", "id; for x in /proc/self/fd/*; do readlink $x; done; readlink /proc/self/cwd; grep CapEff /proc/self/status; umask"]);
    {
        let p = spec.process_mut().as_mut().unwrap();
        let mut u = p.user().clone();
        u.set_uid(1000);
        u.set_gid(1000);
        u.set_additional_gids(Some(vec![100]));
        u.set_umask(Some(0o027));
        p.set_user(u);
        p.set_cwd("/tmp".into());
    }
    f.write(&spec);
    // A host directory fd without CLOEXEC and a host cwd in the runtime process must not leak.
    let (rt, opts, id) = (f.runtime(), f.opts(), f.id.clone());
    let out = f.out();
    let scratch = f.scratch.path().to_path_buf();
    let c = forked(Some(&out), move || {
        let d = std::ffi::CString::new(scratch.to_str().unwrap()).unwrap();
        unsafe {
            libc::open(d.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
            libc::chdir(d.as_ptr());
        }
        rt.run(&id, &opts, false, false).unwrap_or(-1)
    });
    let text = f.output();
    assert_eq!(c, 0, "{text}");
    assert!(
        text.contains("uid=1000(tester) gid=1000(tester) groups=100(users)"),
        "{text}"
    );
    // stdio is the caller's (out.txt); nothing else of the host may show up.
    let leaked: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(f.scratch.path().to_str().unwrap()) && !l.ends_with("out.txt"))
        .collect();
    assert!(leaked.is_empty(), "host path leaked: {text}");
    assert!(text.lines().any(|l| l == "/tmp"), "cwd: {text}");
    assert!(
        text.contains("CapEff:\t0000000000000000"),
        "non-root has no effective caps: {text}"
    );
    assert!(text.contains("0027"), "umask: {text}");
}

#[test]
fn hooks_run_with_state_and_failures_clean_up() {
    let f = Fixture::new("rt-hook");
    let log = f.scratch.join("hook.log");
    let hook = |args: &str| {
        HookBuilder::default()
            .path("/bin/sh")
            .args(vec!["sh".to_string(), "-c".to_string(), args.to_string()])
            .build()
            .unwrap()
    };
    let mut spec = f.spec(&["true"]);
    spec.set_hooks(Some(
        HooksBuilder::default()
            .create_runtime(vec![hook(&format!(
                "cat >> {}; echo >> {}",
                log.display(),
                log.display()
            ))])
            .poststop(vec![hook(&format!("echo poststop >> {}", log.display()))])
            .build()
            .unwrap(),
    ));
    f.write(&spec);
    let (c, out) = run_capture(&f);
    assert_eq!(c, 0, "{out}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains(&format!("\"id\":\"{}\"", f.id)), "{text}");
    assert!(text.contains("\"status\":\"created\""), "{text}");
    assert!(text.contains("poststop"), "{text}");

    spec.set_hooks(Some(
        HooksBuilder::default()
            .create_runtime(vec![hook("exit 1")])
            .build()
            .unwrap(),
    ));
    f.write(&spec);
    let (rt, opts, id) = (f.runtime(), f.opts(), f.id.clone());
    assert_eq!(
        forked(None, || code(rt.create(&id, &opts))),
        10 + kind_index(ErrorKind::Internal)
    );
    assert!(
        !f.root.join(&f.id).exists(),
        "failed hook left state behind"
    );
}

#[test]
fn user_namespace_with_maps() {
    let f = Fixture::new("rt-userns");
    let mut spec = f.spec(&[
        "sh",
        "-c",
        "id; cat /proc/self/uid_map; cat /proc/self/gid_map; echo x > /dev/null && echo null-ok",
    ]);
    {
        let linux = spec.linux_mut().as_mut().unwrap();
        let mut ns = linux.namespaces().clone().unwrap();
        ns.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::User)
                .build()
                .unwrap(),
        );
        ns.retain(|n| n.typ() != LinuxNamespaceType::Cgroup);
        linux.set_namespaces(Some(ns));
        let map = LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(200000u32)
            .size(65536u32)
            .build()
            .unwrap();
        linux.set_uid_mappings(Some(vec![map]));
        linux.set_gid_mappings(Some(vec![map]));
    }
    // The mapped root must be able to traverse the scratch dir to reach the rootfs.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(f.scratch.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    f.write(&spec);
    let (c, out) = run_capture(&f);
    assert_eq!(c, 0, "{out}");
    assert!(out.contains("uid=0(root) gid=0(root)"), "{out}");
    assert!(out.contains("200000"), "{out}");
    assert!(out.contains("null-ok"), "{out}");
}
