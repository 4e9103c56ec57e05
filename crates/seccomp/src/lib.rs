//! OCI seccomp profiles compiled to BPF, and Docker's default profile.
//!
//! `compile` turns `linux.seccomp` into one classic-BPF program; `Filter::apply`
//! loads it with `seccomp(2)` without allocating, so it can run in a forked
//! child right before execve.
//!
//! Why our own emitter rather than composing `seccompiler` filters: a
//! seccompiler filter has one match and one mismatch action, while an OCI
//! profile has a default action plus per-syscall actions and errno values.
//! Stacking one filter per action does not give OCI semantics: the kernel runs
//! every filter and keeps the highest-precedence result (KILL > TRAP > ERRNO >
//! TRACE > LOG > ALLOW), so a profile with default ERRNO and an ALLOW list, or
//! two ERRNO rules with different errno values, would resolve by action
//! precedence and filter order instead of by which rule matched. It would also
//! cost one full program run per stacked filter on every syscall. One program
//! in which the first matching rule returns its own action is both correct and
//! cheaper; the emitter (`bpf.rs`) is about a hundred lines.
//!
//! Semantics follow runc/crun with libseccomp:
//! - the native arch is always covered; listed compat arches (x86, x32 on
//!   x86_64; arm on aarch64) get their own section; any other arch, and x32
//!   syscalls (`nr | 0x40000000`) when x32 is not listed, get libseccomp's
//!   bad-arch action, KILL_THREAD;
//! - names this kernel's table does not know are skipped;
//! - a rule whose action equals the default action is dropped (libseccomp
//!   refuses such rules);
//! - for one syscall, an unconditional rule overrides conditional ones (the
//!   last unconditional rule wins); conditional rules are tried in profile
//!   order and the first whose arguments all match (AND) decides (rules are
//!   alternatives: OR);
//! - the per-ABI dispatch is a balanced `jge` tree over the sorted syscall
//!   numbers rather than libseccomp's linear chain (same decisions, fewer
//!   instructions run per syscall);
//! - comparisons are unsigned and 64-bit on 64-bit ABIs, low 32 bits only on
//!   32-bit ABIs (x86, x32, arm), as libseccomp does.

mod arch;
mod bpf;
mod docker;
mod syscalls;

use std::io;

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use arch::{Abi, X32_SYSCALL_BIT};
use bpf::{Asm, Jmp, Label};

pub use docker::docker_default;

/// Errors of this crate; messages are lower-case one-liners.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("seccomp notify is not supported")]
    NotifyUnsupported,
    #[error("SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath")]
    NotifyWithoutListener,
    #[error("seccomp flag {0} is not supported")]
    FlagUnsupported(&'static str),
    #[error("seccomp rule for {syscall}: argument index {index} is out of range 0-5")]
    ArgIndex { syscall: String, index: usize },
    #[error("seccomp {rule}: errno {errno} is out of range 0-65535")]
    Errno { rule: String, errno: u32 },
    #[error("seccomp rule has an empty syscall name")]
    EmptyName,
    #[error("seccomp program has {0} instructions, more than the kernel limit of 4096")]
    TooLong(usize),
    #[error("invalid seccomp profile: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("seccomp(SECCOMP_SET_MODE_FILTER): {0}")]
    Load(io::Error),
    #[error("seccomp tsync: thread {0} could not be synchronised")]
    Tsync(i64),
}

pub type Result<T> = std::result::Result<T, Error>;

// seccomp(2) return values (SECCOMP_RET_*).
const RET_KILL_THREAD: u32 = 0x0000_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_USER_NOTIF: u32 = 0x7fc0_0000;
const RET_ALLOW: u32 = 0x7fff_0000;
/// libseccomp's default action for a syscall from an arch the filter lacks.
const RET_BAD_ARCH: u32 = RET_KILL_THREAD;

const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
const FLAG_TSYNC: libc::c_ulong = 1;
const FLAG_LOG: libc::c_ulong = 2;
const FLAG_SPEC_ALLOW: libc::c_ulong = 4;
const FLAG_NEW_LISTENER: libc::c_ulong = 8;
const FLAG_WAIT_KILLABLE_RECV: libc::c_ulong = 32;

/// Kernel limit on one classic-BPF program (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;

// Offsets into struct seccomp_data.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;

/// A compiled seccomp program plus the flags to load it with.
#[derive(Clone)]
pub struct Filter {
    prog: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("instructions", &self.prog.len())
            .field("flags", &self.flags)
            .finish()
    }
}

impl Filter {
    /// Loads the filter into the calling thread (all threads with TSYNC).
    /// Allocates nothing, so it is safe between fork and execve. Without
    /// no_new_privs the caller needs CAP_SYS_ADMIN.
    pub fn apply(&self) -> Result<()> {
        let prog = libc::sock_fprog {
            len: self.prog.len() as libc::c_ushort,
            filter: self.prog.as_ptr() as *mut libc::sock_filter,
        };
        match seccomp_set_mode_filter(self.flags, &prog) {
            0 => Ok(()),
            rc if rc < 0 => Err(Error::Load(io::Error::last_os_error())),
            // With a listener the kernel returns its fd, which the caller takes with `listener`.
            fd if self.has_listener() => {
                LISTENER.store(fd as i32, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
            tid => Err(Error::Tsync(tid)),
        }
    }

    /// The profile has a listenerPath: loading returns a notify fd to hand to the agent.
    pub fn has_listener(&self) -> bool {
        self.flags & FLAG_NEW_LISTENER != 0
    }

    /// The notify fd the last `apply` of a filter with a listener got from the kernel.
    pub fn listener() -> Option<std::os::fd::RawFd> {
        let fd = LISTENER.swap(-1, std::sync::atomic::Ordering::Relaxed);
        (fd >= 0).then_some(fd)
    }

    /// Number of BPF instructions (at most 4096).
    pub fn instructions(&self) -> usize {
        self.prog.len()
    }
}

static LISTENER: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// seccomp(SECCOMP_SET_MODE_FILTER, flags, prog); with TSYNC a positive
/// return is the id of a thread that could not be synchronised.
fn seccomp_set_mode_filter(flags: libc::c_ulong, prog: &libc::sock_fprog) -> i64 {
    // SAFETY: prog points to a valid program that outlives the call.
    unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags,
            prog as *const libc::sock_fprog,
        ) as i64
    }
}

/// Parses a JSON `linux.seccomp` object, so malformed profiles (unknown
/// action, bad operator) fail with a clear message.
pub fn parse_profile(json: &str) -> Result<LinuxSeccomp> {
    Ok(serde_json::from_str(json)?)
}

/// One validated rule: the syscall names, the seccomp return value, the args.
struct Rule<'a> {
    names: &'a [String],
    ret: u32,
    args: &'a [LinuxSeccompArg],
}

/// What one syscall of one ABI does.
struct Syscall<'a> {
    nr: u32,
    conds: Vec<(u32, &'a [LinuxSeccompArg])>,
    uncond: Option<u32>,
}

/// Compiles an OCI seccomp profile for this machine's architecture(s).
pub fn compile(profile: &LinuxSeccomp) -> Result<Filter> {
    let mut flags = filter_flags(profile)?;
    let notifies = profile.default_action() == LinuxSeccompAction::ScmpActNotify
        || profile
            .syscalls()
            .iter()
            .flatten()
            .any(|c| c.action() == LinuxSeccompAction::ScmpActNotify);
    if notifies {
        if profile
            .listener_path()
            .as_deref()
            .is_none_or(|p| p.as_os_str().is_empty())
        {
            return Err(Error::NotifyWithoutListener);
        }
        // The kernel refuses TSYNC with a listener; one thread is all a container init has.
        flags = (flags & !FLAG_TSYNC) | FLAG_NEW_LISTENER;
    } else {
        flags &= !FLAG_WAIT_KILLABLE_RECV;
    }
    let default = action_ret(
        profile.default_action(),
        profile.default_errno_ret(),
        "default action",
    )?;
    let rules = validate(profile, default)?;

    let mut abis = vec![Abi::NATIVE];
    for arch in profile.architectures().iter().flatten() {
        if let Some(abi) = Abi::from_oci(*arch) {
            if !abis.contains(&abi) {
                abis.push(abi);
            }
        }
    }

    // Program order: arch dispatch, native section, x32 section, other
    // compat sections. Emitted backwards.
    let mut asm = Asm::default();
    let mut sections = Vec::new();
    for &abi in Abi::compat().iter().rev() {
        if abi != Abi::X32 && abis.contains(&abi) {
            let chain = chain(&mut asm, abi, &rules, default);
            sections.push((abi.audit_arch(), asm.load(OFF_NR, chain)));
        }
    }
    let x32 = if abis.contains(&Abi::X32) {
        chain(&mut asm, Abi::X32, &rules, default)
    } else {
        asm.ret(RET_BAD_ARCH)
    };
    let native_chain = chain(&mut asm, Abi::NATIVE, &rules, default);
    let native = if Abi::NATIVE == Abi::X86_64 {
        // x32 syscalls share x86_64's audit arch; without this check they
        // would bypass every rule.
        let j = asm.jump(Jmp::Ge, X32_SYSCALL_BIT, x32, native_chain);
        asm.load(OFF_NR, j)
    } else {
        asm.load(OFF_NR, native_chain)
    };
    let mut next = asm.ret(RET_BAD_ARCH);
    for (audit, entry) in sections {
        next = asm.jump(Jmp::Eq, audit, entry, next);
    }
    next = asm.jump(Jmp::Eq, Abi::NATIVE.audit_arch(), native, next);
    asm.load(OFF_ARCH, next);

    let prog = asm.finish();
    if prog.len() > MAX_INSNS {
        return Err(Error::TooLong(prog.len()));
    }
    Ok(Filter { prog, flags })
}

fn filter_flags(profile: &LinuxSeccomp) -> Result<libc::c_ulong> {
    let mut flags = 0;
    for flag in profile.flags().iter().flatten() {
        flags |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
            // Only meaningful with a notify listener (dropped without one).
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => FLAG_WAIT_KILLABLE_RECV,
        };
    }
    Ok(flags)
}

fn action_ret(action: LinuxSeccompAction, errno: Option<u32>, rule: &str) -> Result<u32> {
    let data = |errno: Option<u32>| {
        let errno = errno.unwrap_or(libc::EPERM as u32);
        if errno > 0xffff {
            return Err(Error::Errno {
                rule: rule.to_string(),
                errno,
            });
        }
        Ok(errno)
    };
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => RET_KILL_THREAD,
        LinuxSeccompAction::ScmpActKillProcess => RET_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => RET_TRAP,
        LinuxSeccompAction::ScmpActErrno => RET_ERRNO | data(errno)?,
        LinuxSeccompAction::ScmpActTrace => RET_TRACE | data(errno)?,
        LinuxSeccompAction::ScmpActLog => RET_LOG,
        LinuxSeccompAction::ScmpActAllow => RET_ALLOW,
        LinuxSeccompAction::ScmpActNotify => RET_USER_NOTIF,
    })
}

/// Checks every rule and drops the ones that only repeat the default action.
fn validate(profile: &LinuxSeccomp, default: u32) -> Result<Vec<Rule<'_>>> {
    let mut rules = Vec::new();
    for call in profile.syscalls().iter().flatten() {
        let names = call.names();
        if names.iter().any(|n| n.is_empty()) {
            return Err(Error::EmptyName);
        }
        let first = names.first().map(String::as_str).unwrap_or("?");
        let ret = action_ret(
            call.action(),
            call.errno_ret(),
            &format!("rule for {first}"),
        )?;
        let args = call.args().as_deref().unwrap_or(&[]);
        if let Some(bad) = args.iter().find(|a| a.index() > 5) {
            return Err(Error::ArgIndex {
                syscall: first.to_string(),
                index: bad.index(),
            });
        }
        if ret != default {
            rules.push(Rule { names, ret, args });
        }
    }
    Ok(rules)
}

/// Resolves the rules for one ABI, in order of first mention.
fn resolve<'a>(abi: Abi, rules: &[Rule<'a>]) -> Vec<Syscall<'a>> {
    let mut out: Vec<Syscall<'a>> = Vec::new();
    for rule in rules {
        for name in rule.names {
            let Some(nr) = abi.syscall_nr(name) else {
                continue; // not in this kernel's table: skipped like libseccomp
            };
            let i = match out.iter().position(|s| s.nr == nr) {
                Some(i) => i,
                None => {
                    out.push(Syscall {
                        nr,
                        conds: Vec::new(),
                        uncond: None,
                    });
                    out.len() - 1
                }
            };
            if rule.args.is_empty() {
                out[i].uncond = Some(rule.ret);
            } else {
                out[i].conds.push((rule.ret, rule.args));
            }
        }
    }
    out
}

/// The syscall dispatch of one ABI; expects the syscall number in A.
///
/// Syscalls are sorted by number and split by `jge` into a balanced tree with
/// short linear runs at the leaves, so a syscall costs about log2(n) + LEAF
/// comparisons instead of up to n: Docker's ~360 names take ~15 instructions
/// per syscall instead of up to ~360 in a plain chain.
fn chain(asm: &mut Asm, abi: Abi, rules: &[Rule], default: u32) -> Label {
    let mut syscalls = resolve(abi, rules);
    syscalls.sort_by_key(|s| s.nr);
    tree(asm, abi, &syscalls, default)
}

/// Syscalls per linear leaf of the dispatch tree.
const LEAF: usize = 4;

fn tree(asm: &mut Asm, abi: Abi, syscalls: &[Syscall], default: u32) -> Label {
    if syscalls.len() > LEAF {
        let mid = syscalls.len() / 2;
        let high = tree(asm, abi, &syscalls[mid..], default);
        let low = tree(asm, abi, &syscalls[..mid], default);
        return asm.jump(Jmp::Ge, syscalls[mid].nr, high, low);
    }
    let mut next = asm.ret(default);
    for sys in syscalls.iter().rev() {
        let target = match sys.uncond {
            Some(ret) => asm.ret(ret),
            None => block(asm, abi, &sys.conds, default),
        };
        next = asm.jump(Jmp::Eq, sys.nr, target, next);
    }
    next
}

/// Conditional rules of one syscall: first rule whose args all match wins.
fn block(asm: &mut Asm, abi: Abi, conds: &[(u32, &[LinuxSeccompArg])], default: u32) -> Label {
    let mut next = asm.ret(default);
    for (ret, args) in conds.iter().rev() {
        let mut ok = asm.ret(*ret);
        for arg in args.iter().rev() {
            ok = compare(asm, abi, arg, ok, next);
        }
        next = ok;
    }
    next
}

/// One argument comparison: jumps to `t` if it holds, else to `f`.
fn compare(asm: &mut Asm, abi: Abi, arg: &LinuxSeccompArg, t: Label, f: Label) -> Label {
    let off = OFF_ARGS + 8 * arg.index() as u32;
    let (lo, hi) = if cfg!(target_endian = "little") {
        (off, off + 4)
    } else {
        (off + 4, off)
    };
    let w = Words {
        lo,
        hi: abi.wide_args().then_some(hi),
    };
    let v = arg.value();
    match arg.op() {
        LinuxSeccompOperator::ScmpCmpEq => w.eq(asm, v, t, f),
        LinuxSeccompOperator::ScmpCmpNe => w.eq(asm, v, f, t),
        LinuxSeccompOperator::ScmpCmpGt => w.greater(asm, Jmp::Gt, v, t, f),
        LinuxSeccompOperator::ScmpCmpGe => w.greater(asm, Jmp::Ge, v, t, f),
        LinuxSeccompOperator::ScmpCmpLt => w.greater(asm, Jmp::Ge, v, f, t),
        LinuxSeccompOperator::ScmpCmpLe => w.greater(asm, Jmp::Gt, v, f, t),
        // OCI (like libseccomp) puts the mask in value and the datum in valueTwo.
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            w.masked_eq(asm, v, arg.value_two().unwrap_or(0), t, f)
        }
    }
}

/// Where the two halves of a 64-bit argument live; `hi` is `None` on 32-bit
/// ABIs, where only the low word is compared.
struct Words {
    lo: u32,
    hi: Option<u32>,
}

fn split(v: u64) -> (u32, u32) {
    (v as u32, (v >> 32) as u32)
}

impl Words {
    fn eq(&self, asm: &mut Asm, v: u64, t: Label, f: Label) -> Label {
        let (vlo, vhi) = split(v);
        let j = asm.jump(Jmp::Eq, vlo, t, f);
        let mut entry = asm.load(self.lo, j);
        if let Some(hi) = self.hi {
            let j = asm.jump(Jmp::Eq, vhi, entry, f);
            entry = asm.load(hi, j);
        }
        entry
    }

    /// `arg > v` (Jmp::Gt) or `arg >= v` (Jmp::Ge): the high words decide
    /// unless equal, then the low words.
    fn greater(&self, asm: &mut Asm, op: Jmp, v: u64, t: Label, f: Label) -> Label {
        let (vlo, vhi) = split(v);
        let j = asm.jump(op, vlo, t, f);
        let mut entry = asm.load(self.lo, j);
        if let Some(hi) = self.hi {
            let same = asm.jump(Jmp::Eq, vhi, entry, f);
            let above = asm.jump(Jmp::Gt, vhi, t, same);
            entry = asm.load(hi, above);
        }
        entry
    }

    fn masked_eq(&self, asm: &mut Asm, mask: u64, datum: u64, t: Label, f: Label) -> Label {
        let (mlo, mhi) = split(mask);
        let (dlo, dhi) = split(datum);
        let j = asm.jump(Jmp::Eq, dlo, t, f);
        let a = asm.and(mlo, j);
        let mut entry = asm.load(self.lo, a);
        if let Some(hi) = self.hi {
            let j = asm.jump(Jmp::Eq, dhi, entry, f);
            let a = asm.and(mhi, j);
            entry = asm.load(hi, a);
        }
        entry
    }
}

#[cfg(test)]
mod tests;
