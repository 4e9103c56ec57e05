//! The five capability sets: bounding via PR_CAPBSET_DROP, effective/permitted/inheritable via
//! capset, ambient via PR_CAP_AMBIENT.

use crate::error::{Error, Result};
use crate::sys;
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

/// Capability names (without CAP_) by number.
pub const NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The capability sets as bit masks, computed in the parent before cloning.
#[derive(Debug, Clone, Copy, Default)]
pub struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

fn mask(set: &Option<Capabilities>, warnings: &mut Vec<String>) -> u64 {
    let mut m = 0u64;
    for c in set.iter().flatten() {
        let name = c.to_string();
        let name = name.strip_prefix("CAP_").unwrap_or(&name);
        match NAMES.iter().position(|n| *n == name) {
            Some(i) => m |= 1 << i,
            None => warnings.push(format!(
                "capability CAP_{name} is unknown to this runtime; ignored"
            )),
        }
    }
    m
}

pub fn from_spec(caps: &LinuxCapabilities) -> (CapSets, Vec<String>) {
    let mut w = Vec::new();
    let sets = CapSets {
        bounding: mask(caps.bounding(), &mut w),
        effective: mask(caps.effective(), &mut w),
        permitted: mask(caps.permitted(), &mut w),
        inheritable: mask(caps.inheritable(), &mut w),
        ambient: mask(caps.ambient(), &mut w),
    };
    (sets, w)
}

/// The highest capability number the kernel knows (read once in the parent).
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Drops everything outside `bounding` from the bounding set (needs CAP_SETPCAP: call before
/// changing uid).
pub fn drop_bounding(bounding: u64, last: u32) -> Result<()> {
    for cap in 0..=last.min(63) {
        if bounding & (1 << cap) == 0 {
            match sys::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                Err(e) => {
                    return Err(Error::sys(
                        format!("drop capability {} from bounding set", cap_name(cap)),
                        e,
                    ))
                }
            }
        }
    }
    Ok(())
}

fn cap_name(cap: u32) -> String {
    NAMES
        .get(cap as usize)
        .map_or_else(|| cap.to_string(), |n| format!("CAP_{n}"))
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// capset for effective/permitted/inheritable, then ambient (which needs the cap in permitted
/// and inheritable; runc warns instead of failing).
pub fn apply(sets: &CapSets, last: u32) -> Result<()> {
    let known = if last >= 63 {
        u64::MAX
    } else {
        (1u64 << (last + 1)) - 1
    };
    let hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let (e, p, i) = (
        sets.effective & known,
        sets.permitted & known,
        sets.inheritable & known,
    );
    let data = [
        CapData {
            effective: e as u32,
            permitted: p as u32,
            inheritable: i as u32,
        },
        CapData {
            effective: (e >> 32) as u32,
            permitted: (p >> 32) as u32,
            inheritable: (i >> 32) as u32,
        },
    ];
    let r = unsafe { libc::syscall(libc::SYS_capset, &hdr as *const CapHeader, data.as_ptr()) };
    if r < 0 {
        return Err(Error::last("capset"));
    }
    let _ = sys::prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
        0,
        0,
        0,
    );
    for cap in 0..=last.min(63) {
        // The kernel only raises ambient caps that are permitted and inheritable; runc-generated
        // specs list ambient caps without inheritable ones, so those are skipped like runc does.
        if sets.ambient & sets.inheritable & sets.permitted & (1 << cap) != 0 {
            if let Err(e) = sys::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                cap as libc::c_ulong,
                0,
                0,
            ) {
                return Err(Error::sys(
                    format!("raise ambient capability {}", cap_name(cap)),
                    e,
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::Capability;

    #[test]
    fn masks_follow_kernel_numbers() {
        let mut caps = LinuxCapabilities::default();
        caps.set_bounding(Some(
            [Capability::Chown, Capability::AuditWrite, Capability::Bpf]
                .into_iter()
                .collect(),
        ));
        let (sets, w) = from_spec(&caps);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(sets.bounding, (1 << 0) | (1 << 29) | (1 << 39));
    }
}
