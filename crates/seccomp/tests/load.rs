//! Filters loaded into real child processes (never into the test process).
//! Each child sets no_new_privs and loads a precompiled filter in `pre_exec`,
//! then execs busybox or a python3 one-liner that makes the exact syscall.

use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Output};

use berth_seccomp::{compile, docker_default, parse_profile, Error, Filter};
use berth_testkit::Scratch;
use oci_spec::runtime::LinuxSeccomp;

const BUSYBOX: &str = "/bin/busybox";
const PYTHON: &str = "/usr/bin/python3";
const SIGSYS: i32 = libc::SIGSYS;

/// Runs in the forked child: only a prctl and the seccomp syscall, no allocation.
fn load(filter: &Filter) -> io::Result<()> {
    // SAFETY: plain prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    match filter.apply() {
        Ok(()) => Ok(()),
        Err(Error::Load(e)) => Err(e),
        Err(_) => Err(io::Error::from_raw_os_error(libc::EINVAL)),
    }
}

fn run(filter: Option<&Filter>, prog: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(prog);
    cmd.args(args);
    if let Some(f) = filter {
        let f = f.clone();
        // SAFETY: the closure only calls async-signal-safe syscalls.
        unsafe { cmd.pre_exec(move || load(&f)) };
    }
    cmd.output().unwrap_or_else(|e| panic!("spawn {prog}: {e}"))
}

fn busybox(filter: &Filter, args: &[&str]) -> Output {
    run(Some(filter), BUSYBOX, args)
}

/// Runs python code (with an `sc(nr, *args)` raw-syscall helper) under the filter.
fn python(filter: Option<&Filter>, code: &str) -> Output {
    let prelude = "import ctypes, os, sys\n\
        libc = ctypes.CDLL(None, use_errno=True)\n\
        libc.syscall.restype = ctypes.c_long\n\
        def sc(nr, *args):\n\
        \x20   ctypes.set_errno(0)\n\
        \x20   r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_ulong(a) for a in args])\n\
        \x20   return r if r >= 0 else -ctypes.get_errno()\n";
    run(filter, PYTHON, &["-c", &format!("{prelude}{code}")])
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn profile(json: &str) -> LinuxSeccomp {
    parse_profile(json).unwrap()
}

fn filter(json: &str) -> Filter {
    compile(&profile(json)).unwrap()
}

fn nr(name: &str) -> u64 {
    // x86_64 numbers for the raw syscalls the python probes make.
    match name {
        "getpid" => libc::SYS_getpid as u64,
        "personality" => libc::SYS_personality as u64,
        "clone" => libc::SYS_clone as u64,
        "clone3" => libc::SYS_clone3 as u64,
        "keyctl" => libc::SYS_keyctl as u64,
        "mkdir" => libc::SYS_mkdir as u64,
        _ => unreachable!("{name}"),
    }
}

#[test]
fn errno_rule_denies_mkdir() {
    let dir = Scratch::new("seccomp-mkdir");
    let target = dir.join("x");
    let target = target.to_str().unwrap();

    let allow = filter(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#);
    let o = busybox(&allow, &["mkdir", target]);
    assert!(o.status.success(), "control: {}", stderr(&o));
    std::fs::remove_dir(target).unwrap();

    let deny = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {"names":["mkdir","mkdirat","no_such_syscall"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    let o = busybox(&deny, &["mkdir", target]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("Operation not permitted"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.join("x").exists());

    let enosys = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#,
    );
    let o = busybox(&enosys, &["mkdir", target]);
    assert!(
        stderr(&o).contains("Function not implemented"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.join("x").exists());
}

#[test]
fn default_errno_uses_default_errno_ret() {
    let dir = Scratch::new("seccomp-default-errno");
    let mut p = docker_without(&["mkdir", "mkdirat"]);
    p.set_default_errno_ret(Some(libc::EACCES as u32));
    let f = compile(&p).unwrap();
    let o = busybox(&f, &["mkdir", dir.join("x").to_str().unwrap()]);
    assert!(stderr(&o).contains("Permission denied"), "{}", stderr(&o));
    assert!(!dir.join("x").exists());
}

/// Docker's profile (no extra caps) with `names` removed from every rule.
fn docker_without(names: &[&str]) -> LinuxSeccomp {
    let mut p = docker_default(&[]);
    let mut calls = p.syscalls().clone().unwrap();
    for c in &mut calls {
        let kept: Vec<String> = c
            .names()
            .iter()
            .filter(|n| !names.contains(&n.as_str()))
            .cloned()
            .collect();
        c.set_names(kept);
    }
    p.set_syscalls(Some(calls));
    p
}

#[test]
fn personality_only_with_query_value() {
    let f = filter(&format!(
        r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {{"names":["personality"],"action":"SCMP_ACT_ERRNO",
          "args":[{{"index":0,"value":{},"op":"SCMP_CMP_NE"}}]}}]}}"#,
        0xffff_ffffu32
    ));
    let o = python(
        Some(&f),
        &format!(
            "print(sc({n}, 0xffffffff), sc({n}, 8), sc({n}, 0))",
            n = nr("personality")
        ),
    );
    assert_eq!(stdout(&o).trim(), "0 -1 -1", "{}", stderr(&o));
    let o = busybox(&f, &["linux32", "true"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("Operation not permitted"),
        "{}",
        stderr(&o)
    );
}

/// Every operator through the kernel: getpid ignores its arguments, so a
/// rule per operator (selected by arg0, testing arg5) shows which matched.
#[test]
fn argument_operators_in_the_kernel() {
    type Op = fn(u64, u64, u64) -> bool;
    let ops: [(&str, Op); 7] = [
        ("SCMP_CMP_EQ", |a, v, _| a == v),
        ("SCMP_CMP_NE", |a, v, _| a != v),
        ("SCMP_CMP_LT", |a, v, _| a < v),
        ("SCMP_CMP_LE", |a, v, _| a <= v),
        ("SCMP_CMP_GT", |a, v, _| a > v),
        ("SCMP_CMP_GE", |a, v, _| a >= v),
        ("SCMP_CMP_MASKED_EQ", |a, m, d| a & m == d),
    ];
    let value: u64 = 0x1_0000_0005;
    let value_two: u64 = 0x1_0000_0004;
    let probes: [u64; 8] = [
        0,
        4,
        5,
        6,
        0x1_0000_0004,
        0x1_0000_0005,
        0x1_0000_0006,
        0xffff_ffff_ffff_fff4,
    ];
    let rules: Vec<String> = ops
        .iter()
        .enumerate()
        .map(|(i, (op, _))| {
            format!(
                r#"{{"names":["getpid"],"action":"SCMP_ACT_ERRNO","errnoRet":{},
                "args":[{{"index":0,"value":{},"op":"SCMP_CMP_EQ"}},
                        {{"index":5,"value":{value},"valueTwo":{value_two},"op":"{op}"}}]}}"#,
                100 + i,
                i + 1
            )
        })
        .collect();
    let f = filter(&format!(
        r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{}]}}"#,
        rules.join(",")
    ));
    let mut code = String::from("r = []\n");
    let mut want = Vec::new();
    for (i, (_, holds)) in ops.iter().enumerate() {
        for &p in &probes {
            code += &format!(
                "r.append(sc({}, {}, 0, 0, 0, 0, {p}))\n",
                nr("getpid"),
                i + 1
            );
            want.push(if holds(p, value, value_two) {
                format!("-{}", 100 + i)
            } else {
                "pid".to_string()
            });
        }
    }
    code += "print(' '.join('pid' if x == os.getpid() else str(x) for x in r))\n";
    let o = python(Some(&f), &code);
    assert_eq!(stdout(&o).trim(), want.join(" "), "{}", stderr(&o));
}

#[test]
fn masked_eq_on_clone_flags() {
    let f = filter(&format!(
        r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {{"names":["clone"],"action":"SCMP_ACT_ERRNO",
          "args":[{{"index":0,"value":{m},"valueTwo":{m},"op":"SCMP_CMP_MASKED_EQ"}}]}}]}}"#,
        m = libc::CLONE_NEWUTS
    ));
    let code = format!(
        "pid = os.fork()\n\
         if pid == 0: os._exit(7)\n\
         _, st = os.waitpid(pid, 0)\n\
         r = sc({clone}, {flags}, 0, 0, 0, 0)\n\
         if r == 0: os._exit(0)\n\
         if r > 0: os.waitpid(r, 0)\n\
         print(os.WEXITSTATUS(st), r)\n",
        clone = nr("clone"),
        flags = libc::CLONE_NEWUTS | libc::SIGCHLD
    );
    let o = python(Some(&f), &code);
    assert_eq!(stdout(&o).trim(), "7 -1", "{}", stderr(&o));
}

#[test]
fn kill_process_dies_with_sigsys() {
    let dir = Scratch::new("seccomp-kill");
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_KILL_PROCESS"}]}"#,
    );
    let o = busybox(&f, &["mkdir", dir.join("x").to_str().unwrap()]);
    assert_eq!(o.status.signal(), Some(SIGSYS), "{:?}", o.status);
    assert!(!dir.join("x").exists());
}

#[test]
fn trap_raises_a_catchable_sigsys() {
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {"names":["getpid"],"action":"SCMP_ACT_TRAP",
          "args":[{"index":0,"value":42,"op":"SCMP_CMP_EQ"}]}]}"#,
    );
    let code = format!(
        "import signal\n\
         signal.signal(signal.SIGSYS, lambda s, f: print('trapped'))\n\
         print('pid' if sc({g}) == os.getpid() else 'bad')\n\
         sc({g}, 42)\n\
         print('after')\n",
        g = nr("getpid")
    );
    let o = python(Some(&f), &code);
    let out = stdout(&o);
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words, ["pid", "trapped", "after"], "{}", stderr(&o));
}

#[test]
fn trace_without_tracer_is_enosys() {
    let dir = Scratch::new("seccomp-trace");
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_TRACE"}]}"#,
    );
    let o = busybox(&f, &["mkdir", dir.join("x").to_str().unwrap()]);
    assert!(
        stderr(&o).contains("Function not implemented"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.join("x").exists());
}

#[test]
fn log_allows_as_default_and_as_rule() {
    let dir = Scratch::new("seccomp-log");
    let target = dir.join("x");
    let target = target.to_str().unwrap();

    // LOG as the default action lets everything not denied run.
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_LOG","syscalls":[
        {"names":["rmdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    assert!(busybox(&f, &["mkdir", target]).status.success());
    let o = busybox(&f, &["rmdir", target]);
    assert!(
        stderr(&o).contains("Operation not permitted"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir(target).unwrap();

    // LOG as a rule action over a deny-by-default profile: Docker's profile
    // without mkdir/mkdirat in its allow list, plus a LOG rule for them.
    let mut p = docker_without(&["mkdir", "mkdirat"]);
    let mut calls = p.syscalls().clone().unwrap();
    let denied = compile(&p).unwrap();
    let o = busybox(&denied, &["mkdir", target]);
    assert!(
        stderr(&o).contains("Operation not permitted"),
        "control: {}",
        stderr(&o)
    );

    let log: oci_spec::runtime::LinuxSyscall =
        serde_json::from_str(r#"{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_LOG"}"#).unwrap();
    calls.push(log);
    p.set_syscalls(Some(calls));
    let logged = compile(&p).unwrap();
    let o = busybox(&logged, &["mkdir", target]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(dir.join("x").is_dir());
}

fn docker_caps(extra: &[&str]) -> Vec<String> {
    [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
    ]
    .iter()
    .chain(extra)
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn docker_default_profile() {
    let dir = Scratch::new("seccomp-docker");
    let f = compile(&docker_default(&docker_caps(&[]))).unwrap();
    assert!(f.instructions() <= 4096);

    let o = busybox(&f, &["sh", "-c", "echo ok; cat /proc/self/status"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("ok\n"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");

    let o = busybox(&f, &["unshare", "-m", "true"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("Operation not permitted"),
        "{}",
        stderr(&o)
    );

    let mnt = dir.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let o = busybox(&f, &["mount", "-t", "tmpfs", "none", mnt.to_str().unwrap()]);
    assert!(!o.status.success());
    // busybox words EPERM from mount(2) as "permission denied (are you root?)"
    assert!(stderr(&o).contains("permission denied"), "{}", stderr(&o));
    assert!(berth_testkit::mounts_below(dir.path()).is_empty());

    // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING) works unfiltered.
    let code = format!(
        "print(sc({k}, 0, 0xfffffffffffffffd, 0) > 0 or 'denied', sc({k}, 0, 0xfffffffffffffffd, 0), \
         sc({c3}, 0, 0), sc({p}, 0xffffffff) >= 0, sc({p}, 0x40000))\n\
         pid = os.fork()\n\
         if pid == 0: os._exit(3)\n\
         print(os.WEXITSTATUS(os.waitpid(pid, 0)[1]), sc({cl}, {newns}, 0, 0, 0, 0))\n",
        k = nr("keyctl"),
        c3 = nr("clone3"),
        p = nr("personality"),
        cl = nr("clone"),
        newns = libc::CLONE_NEWNS | libc::SIGCHLD,
    );
    let o = python(None, "print(sc(250, 0, 0xfffffffffffffffd, 0) > 0)");
    assert_eq!(stdout(&o).trim(), "True", "control: {}", stderr(&o));
    let o = python(Some(&f), &code);
    let lines: Vec<String> = stdout(&o).lines().map(String::from).collect();
    assert_eq!(lines, ["denied -1 -38 True -1", "3 -1"], "{}", stderr(&o));
}

#[test]
fn docker_default_with_sys_admin_allows_unshare() {
    let f = compile(&docker_default(&docker_caps(&["CAP_SYS_ADMIN"]))).unwrap();
    let o = busybox(&f, &["unshare", "-m", "true"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn x32_syscalls_cannot_bypass() {
    let x32_mkdir = (libc::SYS_mkdir as u64) | 0x4000_0000;
    let dir = Scratch::new("seccomp-x32");
    let path = dir.join("x");
    let code = format!(
        "p = ctypes.create_string_buffer(b'{}')\n\
         sys.stdout.write('start\\n'); sys.stdout.flush()\n\
         print(libc.syscall(ctypes.c_long({x32_mkdir}), p, ctypes.c_ulong(0o755)), ctypes.get_errno())\n",
        path.display()
    );
    // Without x32 in the list, an x32 syscall is a wrong-arch syscall: killed.
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    let o = python(Some(&f), &code);
    assert_eq!(stdout(&o).trim(), "start");
    assert_eq!(
        o.status.signal(),
        Some(SIGSYS),
        "{:?} {}",
        o.status,
        stderr(&o)
    );
    assert!(!path.exists());

    // With x32 listed, x32 mkdir meets the x32 rule.
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X32"],
        "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#,
    );
    let o = python(Some(&f), &code);
    assert_eq!(stdout(&o).trim(), "start\n-1 13", "{}", stderr(&o));
    assert!(!path.exists());
}

/// i386 syscalls via `int 0x80` from a 64-bit process: AUDIT_ARCH_I386.
#[test]
fn compat_x86_arch_section() {
    let code = format!(
        "import mmap\n\
        buf = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n\
        buf.write(b'\\xb8\\x40\\x00\\x00\\x00\\xcd\\x80\\xc3')  # mov eax, 64 (i386 getppid); int 0x80; ret\n\
        f = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(buf)))\n\
        sys.stdout.write('start\\n'); sys.stdout.flush()\n\
        r = f()\n\
        print('ppid' if r == {} else r)\n",
        std::process::id()
    );
    let o = python(None, &code);
    assert_eq!(stdout(&o).trim(), "start\nppid", "control: {}", stderr(&o));

    // x86 not listed: killed as a wrong arch.
    let f = filter(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#);
    let o = python(Some(&f), &code);
    assert_eq!(stdout(&o).trim(), "start");
    assert_eq!(o.status.signal(), Some(SIGSYS), "{:?}", o.status);

    // x86 listed: the rule applies with i386 numbering (getppid is 64 there).
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
        "syscalls":[{"names":["getppid"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#,
    );
    let o = python(Some(&f), &code);
    assert_eq!(stdout(&o).trim(), "start\n-13", "{}", stderr(&o));

    // Docker's profile lists x86: 32-bit getppid is allowed.
    let f = compile(&docker_default(&docker_caps(&[]))).unwrap();
    let o = python(Some(&f), &code);
    assert_eq!(stdout(&o).trim(), "start\nppid", "{}", stderr(&o));
}

#[test]
fn tsync_and_log_flags_load() {
    let f = filter(
        r#"{"defaultAction":"SCMP_ACT_ALLOW",
        "flags":["SECCOMP_FILTER_FLAG_TSYNC","SECCOMP_FILTER_FLAG_LOG","SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    let dir = Scratch::new("seccomp-flags");
    let o = busybox(&f, &["mkdir", dir.join("x").to_str().unwrap()]);
    assert!(
        stderr(&o).contains("Operation not permitted"),
        "{}",
        stderr(&o)
    );
}
