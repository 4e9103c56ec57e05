//! Process-level features: seccomp, rlimits, oom score, no_new_privs, joined and time
//! namespaces (the two-stage clone), and the pty handed to a console socket.

mod common;

use common::{code, forked, Fixture};
use oci_spec::runtime::{
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxSeccompAction, LinuxSeccompBuilder,
    LinuxSyscallBuilder, PosixRlimitBuilder, PosixRlimitType,
};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

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
fn seccomp_rlimits_oom_and_no_new_privs() {
    let f = Fixture::new("rt-proc");
    let mut spec = f.spec(&["sh", "-c", "mkdir /tmp/x || echo mkdir-denied; ulimit -n; cat /proc/self/oom_score_adj; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status"]);
    {
        let p = spec.process_mut().as_mut().unwrap();
        p.set_rlimits(Some(vec![PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .soft(123u64)
            .hard(456u64)
            .build()
            .unwrap()]));
        p.set_oom_score_adj(Some(321));
        p.set_no_new_privileges(Some(true));
        let rule = LinuxSyscallBuilder::default()
            .names(vec!["mkdir".to_string(), "mkdirat".to_string()])
            .action(LinuxSeccompAction::ScmpActErrno)
            .errno_ret(1u32)
            .build()
            .unwrap();
        let prof = LinuxSeccompBuilder::default()
            .default_action(LinuxSeccompAction::ScmpActAllow)
            .syscalls(vec![rule])
            .build()
            .unwrap();
        spec.linux_mut().as_mut().unwrap().set_seccomp(Some(prof));
    }
    f.write(&spec);
    let (c, out) = run_capture(&f);
    assert_eq!(c, 0, "{out}");
    assert!(out.contains("mkdir-denied"), "{out}");
    assert!(out.contains("\n123\n"), "{out}");
    assert!(out.contains("\n321\n"), "{out}");
    assert!(
        out.contains("NoNewPrivs:\t1") && out.contains("Seccomp:\t2"),
        "{out}"
    );
}

#[test]
fn joins_namespace_by_path_and_offsets_time() {
    let a = Fixture::new("rt-nsa");
    a.write(&a.spec(&["sleep", "100"]));
    let (rt, opts, id) = (a.runtime(), a.opts(), a.id.clone());
    assert_eq!(forked(None, || code(rt.run(&id, &opts, true, false))), 0);
    let apid = rt.state(&a.id).unwrap().pid;
    let a_net = std::fs::read_link(format!("/proc/{apid}/ns/net")).unwrap();

    let b = Fixture::new("rt-nsb");
    let mut spec = b.spec(&[
        "sh",
        "-c",
        "echo pid=$$; readlink /proc/self/ns/net; cut -d. -f1 /proc/uptime",
    ]);
    {
        let linux = spec.linux_mut().as_mut().unwrap();
        let mut ns: Vec<_> = linux
            .namespaces()
            .clone()
            .unwrap()
            .into_iter()
            .filter(|n| n.typ() != LinuxNamespaceType::Network)
            .collect();
        ns.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .path(format!("/proc/{apid}/ns/net"))
                .build()
                .unwrap(),
        );
        ns.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Time)
                .build()
                .unwrap(),
        );
        linux.set_namespaces(Some(ns));
        let off: oci_spec::runtime::LinuxTimeOffset =
            serde_json::from_str(r#"{"secs": 8640000}"#).unwrap();
        linux.set_time_offsets(Some([("boottime".to_string(), off)].into_iter().collect()));
    }
    b.write(&spec);
    let (c, out) = run_capture(&b);
    assert_eq!(c, 0, "{out}");
    assert!(
        out.contains("pid=1\n"),
        "the init is pid 1 after the two-stage clone: {out}"
    );
    assert!(
        out.contains(&a_net.to_string_lossy().to_string()),
        "joined A's network namespace: {out}"
    );
    let uptime: u64 = out.lines().last().unwrap().trim().parse().unwrap();
    assert!(uptime >= 8640000, "boottime offset applied: {out}");
}

#[test]
fn console_socket_receives_the_pty() {
    let f = Fixture::new("rt-tty");
    let mut spec = f.spec(&["sh", "-c", "tty; stty size"]);
    {
        let p = spec.process_mut().as_mut().unwrap();
        p.set_terminal(Some(true));
        p.set_console_size(Some(
            serde_json::from_str(r#"{"height": 31, "width": 97}"#).unwrap(),
        ));
    }
    f.write(&spec);
    let sock = f.scratch.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let (rt, id) = (f.runtime(), f.id.clone());
    let mut opts = f.opts();
    opts.console_socket = Some(sock.clone());
    assert_eq!(forked(None, || code(rt.create(&id, &opts))), 0);
    let (conn, _) = listener.accept().unwrap();
    let master = recv_fd(conn.as_raw_fd()).expect("pty master over SCM_RIGHTS");
    assert_eq!(forked(None, || code(rt.start(&id))), 0);
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = unsafe { libc::read(master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break; // EIO once the last slave fd closed
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("/dev/pts/0"), "{text}");
    assert!(text.contains("31 97"), "{text}");
}

fn recv_fd(sock: i32) -> Option<OwnedFd> {
    let mut data = [0u8; 64];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut cbuf = [0u64; 8];
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = cbuf.as_mut_ptr().cast();
    hdr.msg_controllen = std::mem::size_of_val(&cbuf);
    if unsafe { libc::recvmsg(sock, &mut hdr, 0) } < 0 {
        return None;
    }
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&hdr);
        if c.is_null() || (*c).cmsg_type != libc::SCM_RIGHTS {
            return None;
        }
        Some(OwnedFd::from_raw_fd(std::ptr::read_unaligned(
            libc::CMSG_DATA(c).cast::<i32>(),
        )))
    }
}
