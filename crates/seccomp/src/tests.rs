//! Unit tests: run compiled programs through a small BPF interpreter.

use super::*;

fn data(audit: u32, nr: u32, args: [u64; 6]) -> [u8; 64] {
    let mut d = [0u8; 64];
    d[0..4].copy_from_slice(&nr.to_ne_bytes());
    d[4..8].copy_from_slice(&audit.to_ne_bytes());
    for (i, a) in args.iter().enumerate() {
        d[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
    }
    d
}

fn native(f: &Filter, name: &str, args: [u64; 6]) -> u32 {
    let nr = Abi::NATIVE.syscall_nr(name).unwrap();
    bpf::run(&f.prog, &data(Abi::NATIVE.audit_arch(), nr, args))
}

fn profile(json: &str) -> LinuxSeccomp {
    parse_profile(json).unwrap()
}

/// An operator's meaning: (argument, value, valueTwo) -> matches.
type Op = fn(u64, u64, u64) -> bool;

const OPS: [(&str, Op); 7] = [
    ("SCMP_CMP_EQ", |a, v, _| a == v),
    ("SCMP_CMP_NE", |a, v, _| a != v),
    ("SCMP_CMP_LT", |a, v, _| a < v),
    ("SCMP_CMP_LE", |a, v, _| a <= v),
    ("SCMP_CMP_GT", |a, v, _| a > v),
    ("SCMP_CMP_GE", |a, v, _| a >= v),
    ("SCMP_CMP_MASKED_EQ", |a, m, d| a & m == d),
];

const VALUES: [u64; 9] = [
    0,
    1,
    0xffff_ffff,
    0x1_0000_0000,
    0x1_0000_0001,
    0x2_0000_0000,
    0xffff_ffff_0000_0000,
    0x8000_0000_0000_0001,
    u64::MAX,
];

#[test]
fn every_operator_on_64_bit_values() {
    for (op, holds) in OPS {
        for &v in &VALUES {
            let v2 = v & 0xf0f0_f0f0_0f0f_0f0f;
            let json = format!(
                r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{{"names":["getpid"],
                "action":"SCMP_ACT_ERRNO","errnoRet":7,
                "args":[{{"index":3,"value":{v},"valueTwo":{v2},"op":"{op}"}}]}}]}}"#
            );
            let f = compile(&profile(&json)).unwrap();
            for &a in &VALUES {
                let want = if holds(a, v, v2) {
                    RET_ERRNO | 7
                } else {
                    RET_ALLOW
                };
                let got = native(&f, "getpid", [0, 0, 0, a, 0, 0]);
                assert_eq!(got, want, "{op} arg={a:#x} value={v:#x}");
            }
        }
    }
}

#[test]
fn args_are_anded_and_rules_ored() {
    let f = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
        {"names":["getpid"],"action":"SCMP_ACT_ALLOW","args":[
            {"index":0,"value":1,"op":"SCMP_CMP_EQ"},{"index":5,"value":2,"op":"SCMP_CMP_EQ"}]},
        {"names":["getpid"],"action":"SCMP_ACT_LOG","args":[{"index":0,"value":3,"op":"SCMP_CMP_EQ"}]}]}"#,
    ))
    .unwrap();
    assert_eq!(native(&f, "getpid", [1, 0, 0, 0, 0, 2]), RET_ALLOW);
    assert_eq!(native(&f, "getpid", [1, 0, 0, 0, 0, 3]), RET_ERRNO | 1);
    assert_eq!(native(&f, "getpid", [3, 0, 0, 0, 0, 0]), RET_LOG);
    assert_eq!(native(&f, "getppid", [1, 0, 0, 0, 0, 2]), RET_ERRNO | 1);
}

#[test]
fn unconditional_rule_overrides_conditional_ones() {
    let f = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
        {"names":["getpid"],"action":"SCMP_ACT_TRAP","args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]},
        {"names":["getpid"],"action":"SCMP_ACT_ERRNO","errnoRet":5}]}"#,
    ))
    .unwrap();
    assert_eq!(native(&f, "getpid", [1, 0, 0, 0, 0, 0]), RET_ERRNO | 5);
}

#[test]
fn wrong_arch_and_x32_get_the_bad_arch_action() {
    let f = compile(&profile(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#)).unwrap();
    assert_eq!(
        bpf::run(&f.prog, &data(0xdead_beef, 1, [0; 6])),
        RET_BAD_ARCH
    );
    if Abi::NATIVE == Abi::X86_64 {
        let x32 = data(Abi::X86_64.audit_arch(), X32_SYSCALL_BIT | 39, [0; 6]);
        assert_eq!(bpf::run(&f.prog, &x32), RET_BAD_ARCH);
    }
}

#[test]
fn far_jumps_use_trampolines() {
    // 300 conditional rules on one syscall put most targets > 255 away.
    let rules: Vec<String> = (0..300)
        .map(|i| {
            format!(
                r#"{{"names":["getpid"],"action":"SCMP_ACT_ERRNO","errnoRet":{},
                "args":[{{"index":1,"value":{i},"op":"SCMP_CMP_EQ"}}]}}"#,
                i + 1
            )
        })
        .collect();
    let json = format!(
        r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{}]}}"#,
        rules.join(",")
    );
    let f = compile(&profile(&json)).unwrap();
    assert!(f.instructions() > 1000);
    for i in [0u64, 150, 299] {
        assert_eq!(
            native(&f, "getpid", [0, i, 0, 0, 0, 0]),
            RET_ERRNO | (i as u32 + 1)
        );
    }
    assert_eq!(native(&f, "getpid", [0, 300, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(native(&f, "getppid", [0; 6]), RET_ALLOW);
}

#[test]
fn too_long_is_rejected() {
    let rules: Vec<String> = (0..1200)
        .map(|i| {
            format!(
                r#"{{"names":["getpid"],"action":"SCMP_ACT_ERRNO",
                "args":[{{"index":1,"value":{i},"op":"SCMP_CMP_EQ"}}]}}"#
            )
        })
        .collect();
    let json = format!(
        r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{}]}}"#,
        rules.join(",")
    );
    let err = compile(&profile(&json)).unwrap_err();
    assert!(matches!(err, Error::TooLong(n) if n > MAX_INSNS), "{err}");
}

#[test]
fn docker_default_fits_and_decides() {
    let caps: Vec<String> = ["CAP_CHOWN", "CAP_SETUID", "CAP_SYS_CHROOT"]
        .map(String::from)
        .to_vec();
    let f = compile(&docker_default(&caps)).unwrap();
    assert!(f.instructions() <= MAX_INSNS, "{}", f.instructions());
    assert_eq!(native(&f, "read", [0; 6]), RET_ALLOW);
    assert_eq!(native(&f, "mount", [0; 6]), RET_ERRNO | 1);
    assert_eq!(native(&f, "keyctl", [0; 6]), RET_ERRNO | 1);
    assert_eq!(native(&f, "clone3", [0; 6]), RET_ERRNO | 38);
    assert_eq!(
        native(&f, "personality", [0xffff_ffff, 0, 0, 0, 0, 0]),
        RET_ALLOW
    );
    assert_eq!(
        native(&f, "personality", [0x40000, 0, 0, 0, 0, 0]),
        RET_ERRNO | 1
    );
    let clone_newns = libc::CLONE_NEWNS as u64;
    let sigchld = libc::SIGCHLD as u64;
    if Abi::NATIVE == Abi::X86_64 {
        assert_eq!(native(&f, "clone", [sigchld, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(
            native(&f, "clone", [sigchld | clone_newns, 0, 0, 0, 0, 0]),
            RET_ERRNO | 1
        );
    }
}

#[test]
fn malformed_profiles_fail_clearly() {
    let e = parse_profile(r#"{"defaultAction":"SCMP_ACT_BOGUS"}"#).unwrap_err();
    assert!(e.to_string().contains("SCMP_ACT_BOGUS"), "{e}");
    let e = parse_profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getpid"],
        "action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_ALMOST"}]}]}"#,
    )
    .unwrap_err();
    assert!(e.to_string().contains("SCMP_CMP_ALMOST"), "{e}");
    let e = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getpid"],
        "action":"SCMP_ACT_ERRNO","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
    ))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "seccomp rule for getpid: argument index 6 is out of range 0-5"
    );
    let e = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getpid"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    ))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath"
    );
    // A listener path without a notify rule gets no listener; the killable flag needs one.
    let f = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock","flags":["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}"#,
    ))
    .unwrap();
    assert!(!f.has_listener());
    let f = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock","flags":["SECCOMP_FILTER_FLAG_TSYNC"],
            "syscalls":[{"names":["getpid"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    ))
    .unwrap();
    assert!(f.has_listener());
    assert_eq!(native(&f, "getpid", [0; 6]), 0x7fc0_0000);
    let e = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":70000}"#,
    ))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "seccomp default action: errno 70000 is out of range 0-65535"
    );
}

#[test]
fn unknown_names_are_skipped() {
    let f = compile(&profile(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["no_such_syscall","getpid"],"action":"SCMP_ACT_ERRNO"}]}"#,
    ))
    .unwrap();
    assert_eq!(native(&f, "getpid", [0; 6]), RET_ERRNO | 1);
}

#[test]
fn docker_default_instruction_counts() {
    // Sizes and paths are printed for the record (`--nocapture`); what is
    // asserted is the kernel limit and that the tree keeps paths short.
    for caps in [&[][..], &["CAP_SYS_ADMIN".to_string()][..]] {
        let f = compile(&docker_default(caps)).unwrap();
        assert!(f.instructions() <= MAX_INSNS);
        let (mut longest, mut total) = (0, 0);
        for nr in 0..500 {
            let d = data(Abi::NATIVE.audit_arch(), nr, [0; 6]);
            let (_, steps) = bpf::run_counted(&f.prog, &d);
            longest = longest.max(steps);
            total += steps;
        }
        println!(
            "docker default {caps:?}: {} instructions, native path longest {longest}, mean {:.1}",
            f.instructions(),
            total as f64 / 500.0
        );
        assert!(longest < 40, "longest path {longest}");
    }
}

/// Straightforward model of the documented semantics, to check the compiled
/// dispatch tree against for every syscall number.
fn model(p: &LinuxSeccomp, abi: Abi, nr: u32, args: [u64; 6]) -> u32 {
    let default = action_ret(p.default_action(), p.default_errno_ret(), "").unwrap();
    let mut uncond = None;
    let mut cond = None;
    for call in p.syscalls().iter().flatten() {
        if !call.names().iter().any(|n| abi.syscall_nr(n) == Some(nr)) {
            continue;
        }
        let ret = action_ret(call.action(), call.errno_ret(), "").unwrap();
        if ret == default {
            continue;
        }
        let call_args = call.args().clone().unwrap_or_default();
        if call_args.is_empty() {
            uncond = Some(ret);
            continue;
        }
        let width = if abi.wide_args() {
            u64::MAX
        } else {
            0xffff_ffff
        };
        let all = call_args.iter().all(|a| {
            let x = args[a.index()] & width;
            let (v, v2) = (a.value() & width, a.value_two().unwrap_or(0) & width);
            match a.op() {
                LinuxSeccompOperator::ScmpCmpEq => x == v,
                LinuxSeccompOperator::ScmpCmpNe => x != v,
                LinuxSeccompOperator::ScmpCmpLt => x < v,
                LinuxSeccompOperator::ScmpCmpLe => x <= v,
                LinuxSeccompOperator::ScmpCmpGt => x > v,
                LinuxSeccompOperator::ScmpCmpGe => x >= v,
                LinuxSeccompOperator::ScmpCmpMaskedEq => x & v == v2,
            }
        });
        if all && cond.is_none() {
            cond = Some(ret);
        }
    }
    uncond.or(cond).unwrap_or(default)
}

#[test]
fn dispatch_tree_matches_the_model_for_every_number() {
    let caps = ["CAP_CHOWN".to_string()];
    let mut p = docker_default(&caps);
    // Sprinkle in varied actions so neighbouring numbers differ.
    let mut calls = p.syscalls().clone().unwrap();
    calls.extend(
        serde_json::from_str::<Vec<oci_spec::runtime::LinuxSyscall>>(
            r#"[{"names":["read"],"action":"SCMP_ACT_TRAP","args":[{"index":2,"value":7,"op":"SCMP_CMP_GT"}]},
            {"names":["getpid","kill","mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":22},
            {"names":["write"],"action":"SCMP_ACT_LOG"},
            {"names":["exit"],"action":"SCMP_ACT_KILL_PROCESS"}]"#,
        )
        .unwrap(),
    );
    p.set_syscalls(Some(calls));
    let f = compile(&p).unwrap();
    let arg_sets = [
        [0u64; 6],
        [8, 8, 8, 8, 8, 8],
        [0x1_0000_0000, 0, 1, 0, 0, 0],
    ];
    for &abi in std::iter::once(&Abi::NATIVE).chain(Abi::compat()) {
        let base = if abi == Abi::X32 { X32_SYSCALL_BIT } else { 0 };
        for n in 0..1100u32 {
            for args in arg_sets {
                let got = bpf::run(&f.prog, &data(abi.audit_arch(), base | n, args));
                let want = model(&p, abi, base | n, args);
                assert_eq!(got, want, "{abi:?} nr {n} args {args:?}");
            }
        }
    }
}
