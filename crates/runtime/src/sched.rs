//! process.ioPriority, process.scheduler, process.execCPUAffinity and linux.memoryPolicy:
//! prepared in the parent, applied by the child with one syscall each (ioprio_set,
//! sched_setattr, sched_setaffinity, set_mempolicy), all inherited across execve.

use crate::error::{Error, ErrorKind, Result};
use oci_spec::runtime::{
    IOPriorityClass, Linux, LinuxSchedulerFlag, LinuxSchedulerPolicy, MemoryPolicyFlagType,
    MemoryPolicyModeType, Process,
};

/// The kernel's struct sched_attr (SCHED_ATTR_SIZE_VER0, 48 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
}

pub struct Sched {
    /// ioprio_set value: class << 13 | level.
    pub ioprio: Option<i32>,
    pub attr: Option<SchedAttr>,
    /// execCPUAffinity (exec'd processes only): before joining the cgroup, and right before execve.
    pub affinity_initial: Option<libc::cpu_set_t>,
    pub affinity_final: Option<libc::cpu_set_t>,
    /// set_mempolicy(mode | flags, nodemask).
    pub mempolicy: Option<(libc::c_int, [u64; 16])>,
}

const IOPRIO_WHO_PROCESS: libc::c_int = 1;

impl Sched {
    pub fn new(p: &Process, linux: Option<&Linux>) -> Result<Sched> {
        let ioprio = match p.io_priority() {
            Some(io) => {
                let class = match io.class() {
                    IOPriorityClass::IoprioClassRt => 1,
                    IOPriorityClass::IoprioClassBe => 2,
                    IOPriorityClass::IoprioClassIdle => 3,
                };
                if !(0..=7).contains(&io.priority()) {
                    return Err(Error::invalid(format!(
                        "process.ioPriority.priority {} is out of range 0-7",
                        io.priority()
                    )));
                }
                Some(class << 13 | io.priority() as i32)
            }
            None => None,
        };
        let attr = match p.scheduler() {
            Some(s) => Some(sched_attr(s)?),
            None => None,
        };
        let (mut initial, mut fin) = (None, None);
        if let Some(a) = p.exec_cpu_affinity() {
            initial = a.initial().as_deref().map(cpu_set).transpose()?;
            fin = a.cpu_affinity_final().as_deref().map(cpu_set).transpose()?;
        }
        let mempolicy = linux
            .and_then(|l| l.memory_policy().as_ref())
            .map(mempolicy)
            .transpose()?;
        Ok(Sched {
            ioprio,
            attr,
            affinity_initial: initial,
            affinity_final: fin,
            mempolicy,
        })
    }

    /// I/O priority and scheduling policy of the calling process (inherited across execve).
    pub fn apply(&self) -> Result<()> {
        if let Some(v) = self.ioprio {
            if unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, v) } < 0 {
                return Err(Error::last("set process.ioPriority"));
            }
        }
        if let Some((mode, mask)) = &self.mempolicy {
            let r = unsafe {
                libc::syscall(
                    libc::SYS_set_mempolicy,
                    *mode,
                    mask.as_ptr(),
                    (mask.len() * 64) as u64,
                )
            };
            if r < 0 {
                return Err(Error::last("set linux.memoryPolicy"));
            }
        }
        if let Some(a) = &self.attr {
            if unsafe { libc::syscall(libc::SYS_sched_setattr, 0, a as *const SchedAttr, 0) } < 0 {
                return Err(Error::last("set process.scheduler"));
            }
        }
        Ok(())
    }
}

pub fn set_affinity(set: &Option<libc::cpu_set_t>, which: &str) -> Result<()> {
    if let Some(s) = set {
        if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), s) } < 0 {
            return Err(Error::last(format!("set execCPUAffinity.{which}")));
        }
    }
    Ok(())
}

fn sched_attr(s: &oci_spec::runtime::Scheduler) -> Result<SchedAttr> {
    let policy = match s.policy() {
        LinuxSchedulerPolicy::SchedOther => libc::SCHED_OTHER,
        LinuxSchedulerPolicy::SchedFifo => libc::SCHED_FIFO,
        LinuxSchedulerPolicy::SchedRr => libc::SCHED_RR,
        LinuxSchedulerPolicy::SchedBatch => libc::SCHED_BATCH,
        LinuxSchedulerPolicy::SchedIdle => libc::SCHED_IDLE,
        LinuxSchedulerPolicy::SchedDeadline => 6,
        LinuxSchedulerPolicy::SchedIso => {
            return Err(Error::new(
                ErrorKind::Unavailable,
                "process.scheduler: SCHED_ISO is not implemented by Linux",
            ))
        }
    } as u32;
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        };
    }
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        return Err(Error::invalid(format!(
            "process.scheduler.nice {nice} is out of range -20..19"
        )));
    }
    Ok(SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice,
        priority: s.priority().unwrap_or(0).max(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
    })
}

fn mempolicy(m: &oci_spec::runtime::LinuxMemoryPolicy) -> Result<(libc::c_int, [u64; 16])> {
    let mode = match m.mode() {
        MemoryPolicyModeType::MpolDefault => 0,
        MemoryPolicyModeType::MpolPreferred => 1,
        MemoryPolicyModeType::MpolBind => 2,
        MemoryPolicyModeType::MpolInterleave => 3,
        MemoryPolicyModeType::MpolLocal => 4,
        MemoryPolicyModeType::MpolPreferredMany => 5,
        MemoryPolicyModeType::MpolWeightedInterleave => 6,
    };
    let mut flags = 0;
    for f in m.flags().iter().flatten() {
        flags |= match f {
            MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
            MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
            MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
        };
    }
    let mut mask = [0u64; 16];
    if let Some(nodes) = m.nodes().as_deref().filter(|n| !n.is_empty()) {
        for n in parse_list(nodes, mask.len() * 64).map_err(|_| {
            Error::invalid(format!(
                "linux.memoryPolicy.nodes {nodes:?}: not a node list"
            ))
        })? {
            mask[n / 64] |= 1 << (n % 64);
        }
    }
    Ok((mode | flags, mask))
}

/// "0-3,7" to the listed numbers, each below `max`.
fn parse_list(list: &str, max: usize) -> std::result::Result<Vec<usize>, ()> {
    let mut out = Vec::new();
    for part in list.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = (
            a.trim().parse().map_err(|_| ())?,
            b.trim().parse().map_err(|_| ())?,
        );
        if a > b || b >= max {
            return Err(());
        }
        out.extend(a..=b);
    }
    Ok(out)
}

/// "0-3,7" to a cpu_set_t.
fn cpu_set(list: &str) -> Result<libc::cpu_set_t> {
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
    let cpus = parse_list(list, max)
        .map_err(|_| Error::invalid(format!("execCPUAffinity {list:?}: not a cpu list")))?;
    for cpu in cpus {
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_lists() {
        let s = super::cpu_set("0-2,5").unwrap();
        let on: Vec<usize> = (0..8)
            .filter(|c| unsafe { libc::CPU_ISSET(*c, &s) })
            .collect();
        assert_eq!(on, [0, 1, 2, 5]);
        assert!(super::cpu_set("3-1").is_err());
        assert!(super::cpu_set("x").is_err());
    }

    #[test]
    fn sched_attr_is_the_kernels_size() {
        assert_eq!(std::mem::size_of::<super::SchedAttr>(), 48);
    }
}
