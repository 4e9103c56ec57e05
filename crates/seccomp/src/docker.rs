//! Docker's default seccomp profile, resolved the way moby's `setupSeccomp`
//! (profiles/seccomp/seccomp_linux.go) does.
//!
//! `profiles/docker-default.json` is moby's `profiles/seccomp/default.json`
//! (the version with the AF_VSOCK socket rule, CAP_BPF and CAP_PERFMON) with
//! `io_uring_*` removed from the allow list, as moby#46762 did.

use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSyscall};
use serde::Deserialize;

static PROFILE: &str = include_str!("../profiles/docker-default.json");

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: LinuxSeccompAction,
    default_errno_ret: Option<u32>,
    arch_map: Vec<ArchMap>,
    syscalls: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: Arch,
    sub_architectures: Option<Vec<Arch>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    names: Vec<String>,
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Vec<LinuxSeccompArg>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    caps: Vec<String>,
    min_kernel: Option<String>,
}

/// The libseccomp-style arch name moby matches `arches` against, and the
/// archMap entry for it.
#[cfg(target_arch = "x86_64")]
const NATIVE: (&str, Arch) = ("amd64", Arch::ScmpArchX86_64);
#[cfg(target_arch = "aarch64")]
const NATIVE: (&str, Arch) = ("arm64", Arch::ScmpArchAarch64);

/// Docker's default profile resolved for these capabilities ("CAP_SYS_ADMIN"
/// style, matched like moby matches the bounding set) on this arch.
pub fn docker_default(capabilities: &[String]) -> LinuxSeccomp {
    let profile: Profile =
        serde_json::from_str(PROFILE).expect("embedded docker profile is valid JSON");
    let kernel = kernel_version();
    resolve(profile, capabilities, kernel)
}

fn resolve(profile: Profile, caps: &[String], kernel: (u32, u32)) -> LinuxSeccomp {
    let (arch, seccomp_arch) = NATIVE;
    let has = |c: &String| caps.iter().any(|x| x == c);
    let at_least = |v: &Option<String>| v.as_deref().map(|v| kernel >= parse_version(v));

    let mut archs = Vec::new();
    if let Some(m) = profile
        .arch_map
        .iter()
        .find(|m| m.architecture == seccomp_arch)
    {
        archs.push(m.architecture);
        archs.extend(m.sub_architectures.iter().flatten().copied());
    }

    let mut syscalls = Vec::new();
    for rule in profile.syscalls {
        let ex = &rule.excludes;
        let inc = &rule.includes;
        let excluded = ex.arches.iter().any(|a| a == arch)
            || ex.caps.iter().any(has)
            || at_least(&ex.min_kernel) == Some(true)
            || (!inc.arches.is_empty() && !inc.arches.iter().any(|a| a == arch))
            || !inc.caps.iter().all(has)
            || at_least(&inc.min_kernel) == Some(false);
        if excluded {
            continue;
        }
        let mut call = LinuxSyscall::default();
        call.set_names(rule.names);
        call.set_action(rule.action);
        call.set_errno_ret(rule.errno_ret);
        call.set_args((!rule.args.is_empty()).then_some(rule.args));
        syscalls.push(call);
    }

    let mut out = LinuxSeccomp::default();
    out.set_default_action(profile.default_action);
    out.set_default_errno_ret(profile.default_errno_ret);
    out.set_architectures(Some(archs));
    out.set_syscalls(Some(syscalls));
    out
}

/// "4.8" -> (4, 8); missing or malformed parts count as 0.
fn parse_version(v: &str) -> (u32, u32) {
    let mut parts = v.split(['.', '-']).map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// The running kernel's major.minor, from uname(2).
fn kernel_version() -> (u32, u32) {
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uts is a valid, writable utsname.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return (0, 0);
    }
    // SAFETY: uname NUL-terminates release.
    let release = unsafe { std::ffi::CStr::from_ptr(uts.release.as_ptr()) };
    parse_version(&release.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(p: &LinuxSeccomp) -> Vec<String> {
        p.syscalls()
            .iter()
            .flatten()
            .flat_map(|s| s.names().clone())
            .collect()
    }

    fn parsed() -> Profile {
        serde_json::from_str(PROFILE).unwrap()
    }

    #[test]
    fn default_caps_gate_admin_syscalls() {
        let caps: Vec<String> = ["CAP_CHOWN", "CAP_SYS_CHROOT", "CAP_KILL"]
            .map(String::from)
            .to_vec();
        let p = resolve(parsed(), &caps, (6, 1));
        let n = names(&p);
        assert!(n.contains(&"chroot".to_string()));
        assert!(!n.contains(&"mount".to_string()));
        assert!(!n.contains(&"io_uring_setup".to_string()));
        assert!(!n.contains(&"keyctl".to_string()));
        // clone is only allowed through the namespace-flag mask, clone3 gets ENOSYS
        let clone: Vec<_> = p
            .syscalls()
            .iter()
            .flatten()
            .filter(|s| s.names().contains(&"clone".to_string()))
            .collect();
        assert_eq!(clone.len(), 1);
        assert!(clone[0].args().is_some());
        let clone3 = p
            .syscalls()
            .iter()
            .flatten()
            .find(|s| s.names() == &["clone3".to_string()])
            .unwrap();
        assert_eq!(clone3.errno_ret(), Some(38));
        assert_eq!(p.default_errno_ret(), Some(1));
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            p.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
        );
    }

    #[test]
    fn sys_admin_lifts_the_gates() {
        let p = resolve(parsed(), &["CAP_SYS_ADMIN".to_string()], (6, 1));
        let n = names(&p);
        assert!(n.contains(&"mount".to_string()) && n.contains(&"clone3".to_string()));
        assert!(p
            .syscalls()
            .iter()
            .flatten()
            .all(|s| s.action() == LinuxSeccompAction::ScmpActAllow));
    }

    #[test]
    fn min_kernel_is_honoured() {
        let old = names(&resolve(parsed(), &[], (4, 4)));
        let new = names(&resolve(parsed(), &[], (4, 8)));
        assert!(!old.contains(&"ptrace".to_string()));
        assert!(new.contains(&"ptrace".to_string()));
        assert_eq!(parse_version("6.18.0-rc1"), (6, 18));
    }
}
