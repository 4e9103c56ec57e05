//! cgroup v2 device control: the rules become a BPF_PROG_TYPE_CGROUP_DEVICE program attached
//! to the cgroup (the approach of runc's devicefilter and youki's v2/devices).
//!
//! Semantics follow v1: rules are applied in order over an initial "allow everything", so the
//! program checks them last to first and the first match decides. An allow rule matches only
//! when it grants every requested access bit; a deny rule when it covers any of them.

use crate::{fs, Error, Result};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// One eBPF instruction, laid out as the kernel's struct bpf_insn.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst in the low nibble, src in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const LDX_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const AND32_K: u8 = 0x54;
const RSH32_K: u8 = 0x74;
const MOV32_X: u8 = 0xbc;
const MOV64_K: u8 = 0xb7;
const JNE_K: u8 = 0x55;
const JEQ_K: u8 = 0x15;
const EXIT: u8 = 0x95;

// struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }; access_type = access << 16 | type.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

fn access_bits(a: &str) -> Result<i32> {
    let mut bits = 0;
    for c in a.chars() {
        bits |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => {
                return Err(Error::Invalid {
                    what: "device rule access".into(),
                    why: format!("{a:?} has {c:?}"),
                })
            }
        };
    }
    Ok(bits)
}

/// Builds the program for `rules`. Registers after the prologue: r2 type, r3 access, r4 major, r5 minor.
pub fn program(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>> {
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(AND32_K, 2, 0, 0, 0xffff),
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH32_K, 3, 0, 0, 16),
        insn(LDX_W, 4, 1, 4, 0),
        insn(LDX_W, 5, 1, 8, 0),
    ];
    for r in rules.iter().rev() {
        let typ = match r.typ().unwrap_or_default() {
            LinuxDeviceType::A => None,
            LinuxDeviceType::B => Some(DEV_BLOCK),
            LinuxDeviceType::C | LinuxDeviceType::U => Some(DEV_CHAR),
            // Device cgroups never see FIFOs; such a rule cannot match anything.
            LinuxDeviceType::P => continue,
        };
        let access = access_bits(
            r.access()
                .as_deref()
                .filter(|a| !a.is_empty())
                .unwrap_or("rwm"),
        )?;
        // Each check jumps past the rest of the block when it fails; build it, then fix offsets.
        let mut block: Vec<(Insn, bool)> = Vec::new();
        if let Some(t) = typ {
            block.push((insn(JNE_K, 2, 0, 0, t), true));
        }
        block.push((insn(MOV32_X, 1, 3, 0, 0), false));
        if r.allow() {
            block.push((insn(AND32_K, 1, 0, 0, !access & 0x7), false));
            block.push((insn(JNE_K, 1, 0, 0, 0), true));
        } else {
            block.push((insn(AND32_K, 1, 0, 0, access), false));
            block.push((insn(JEQ_K, 1, 0, 0, 0), true));
        }
        if let Some(m) = r.major().filter(|m| *m >= 0) {
            block.push((insn(JNE_K, 4, 0, 0, m as i32), true));
        }
        if let Some(m) = r.minor().filter(|m| *m >= 0) {
            block.push((insn(JNE_K, 5, 0, 0, m as i32), true));
        }
        block.push((insn(MOV64_K, 0, 0, 0, r.allow() as i32), false));
        block.push((insn(EXIT, 0, 0, 0, 0), false));
        let len = block.len();
        for (i, (mut ins, jumps)) in block.into_iter().enumerate() {
            if jumps {
                ins.off = (len - i - 1) as i16;
            }
            p.push(ins);
        }
    }
    p.push(insn(MOV64_K, 0, 0, 0, 1));
    p.push(insn(EXIT, 0, 0, 0, 0));
    Ok(p)
}

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_PROG_QUERY: libc::c_int = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

#[repr(C)]
#[derive(Default)]
struct LoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// The bpf(2) system call.
fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> std::io::Result<libc::c_long> {
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn load(insns: &[Insn]) -> std::io::Result<(OwnedFd, String)> {
    let license = c"Apache-2.0";
    let mut log = vec![0u8; 64 * 1024];
    let mut attr = LoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..Default::default()
    };
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => Ok((unsafe { OwnedFd::from_raw_fd(fd as i32) }, String::new())),
        Err(_) => {
            // Load again with the verifier log so the error says why.
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            let e = bpf(BPF_PROG_LOAD, &mut attr)
                .err()
                .unwrap_or_else(|| std::io::Error::other("load"));
            let text = String::from_utf8_lossy(&log)
                .trim_end_matches('\0')
                .trim()
                .to_owned();
            Err(std::io::Error::new(e.kind(), format!("{e}: {text}")))
        }
    }
}

/// Ids of the device programs attached to `cgroup`.
fn attached(cgroup: &OwnedFd) -> std::io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr)?;
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}

fn prog_fd(id: u32) -> std::io::Result<OwnedFd> {
    let mut attr = GetFdAttr {
        prog_id: id,
        ..Default::default()
    };
    Ok(unsafe { OwnedFd::from_raw_fd(bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)? as i32) })
}

fn attach_or_detach(cmd: libc::c_int, cgroup: &OwnedFd, prog: &OwnedFd) -> std::io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: if cmd == BPF_PROG_ATTACH {
            BPF_F_ALLOW_MULTI
        } else {
            0
        },
        ..Default::default()
    };
    bpf(cmd, &mut attr).map(|_| ())
}

/// Replaces the device programs of cgroup `dir` with one built from `rules`: the new program
/// is attached before the old ones are detached, so the cgroup is never unfiltered.
pub fn apply(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let insns = program(rules)?;
    let cgroup: OwnedFd = std::fs::File::open(dir)
        .map_err(|e| fs::io_err("open", dir, e))?
        .into();
    let bpf_err = |op: &'static str, e: std::io::Error| fs::io_err(op, dir, e);
    let old = attached(&cgroup).map_err(|e| bpf_err("query device programs of", e))?;
    let (prog, _) = load(&insns).map_err(|e| bpf_err("load device program for", e))?;
    attach_or_detach(BPF_PROG_ATTACH, &cgroup, &prog)
        .map_err(|e| bpf_err("attach device program to", e))?;
    for id in old {
        let fd = prog_fd(id).map_err(|e| bpf_err("open old device program of", e))?;
        attach_or_detach(BPF_PROG_DETACH, &cgroup, &fd)
            .map_err(|e| bpf_err("detach old device program from", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs our instruction subset the way the kernel would, for one device access.
    fn run(p: &[Insn], typ: i32, access: i32, major: u32, minor: u32) -> i64 {
        let ctx = [((access as u32) << 16) | typ as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_W => {
                    assert_eq!(src, 1);
                    r[dst] = ctx[i.off as usize / 4] as u64;
                }
                AND32_K => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                RSH32_K => r[dst] = (r[dst] as u32 >> i.imm) as u64,
                MOV32_X => r[dst] = r[src] as u32 as u64,
                MOV64_K => r[dst] = i.imm as i64 as u64,
                JNE_K if r[dst] != i.imm as i64 as u64 => pc += i.off as usize,
                JEQ_K if r[dst] == i.imm as i64 as u64 => pc += i.off as usize,
                JNE_K | JEQ_K => {}
                EXIT => return r[0] as i64,
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    fn rules(json: &str) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn docker_like_rules() {
        let p = program(&rules(
            r#"[{"allow":false,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
                {"allow":true,"type":"c","major":136,"access":"rw"},
                {"allow":true,"type":"c","major":1,"minor":5,"access":"r"},
                {"allow":false,"type":"c","major":1,"minor":3,"access":"m"}]"#,
        ))
        .unwrap();
        let (c, b) = (DEV_CHAR, DEV_BLOCK);
        assert_eq!(run(&p, c, ACC_READ | ACC_WRITE, 1, 3), 1);
        assert_eq!(run(&p, c, ACC_MKNOD, 1, 3), 0, "the later deny wins");
        assert_eq!(run(&p, b, ACC_READ, 1, 3), 0, "type must match");
        assert_eq!(run(&p, c, ACC_WRITE, 136, 7), 1, "wildcard minor");
        assert_eq!(run(&p, c, ACC_MKNOD, 136, 7), 0, "access not granted");
        assert_eq!(run(&p, c, ACC_READ, 1, 5), 1);
        assert_eq!(
            run(&p, c, ACC_READ | ACC_WRITE, 1, 5),
            0,
            "allow needs every bit"
        );
        assert_eq!(
            run(&p, b, ACC_READ, 8, 0),
            0,
            "default deny from the first rule"
        );
    }

    #[test]
    fn without_deny_all_the_default_is_allow() {
        let p = program(&rules(
            r#"[{"allow":false,"type":"c","major":10,"minor":229,"access":"rwm"}]"#,
        ))
        .unwrap();
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 10, 229), 0);
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 10, 200), 1);
        assert_eq!(run(&p, DEV_BLOCK, ACC_WRITE, 8, 0), 1);
    }

    #[test]
    fn a_read_only_device_is_not_writable() {
        // What the runtime sets for a linux.devices entry allowed "r": its rules, the default
        // nodes, and (while the init makes the node) a temporary "m".
        let base = r#"{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":240,"minor":42,"access":"r"},
                      {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}"#;
        let during = program(&rules(&format!(
            r#"[{base},{{"allow":true,"type":"c","major":240,"minor":42,"access":"m"}}]"#
        )))
        .unwrap();
        let after = program(&rules(&format!("[{base}]"))).unwrap();
        for p in [&during, &after] {
            assert_eq!(run(p, DEV_CHAR, ACC_READ, 240, 42), 1);
            assert_eq!(run(p, DEV_CHAR, ACC_WRITE, 240, 42), 0);
            assert_eq!(run(p, DEV_CHAR, ACC_READ | ACC_WRITE, 240, 42), 0);
        }
        assert_eq!(run(&during, DEV_CHAR, ACC_MKNOD, 240, 42), 1);
        assert_eq!(run(&after, DEV_CHAR, ACC_MKNOD, 240, 42), 0);
    }

    #[test]
    fn bad_access_is_invalid() {
        assert!(program(&rules(r#"[{"allow":true,"access":"rwx"}]"#)).is_err());
    }
}
