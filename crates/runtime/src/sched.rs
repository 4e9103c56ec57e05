//! process.ioPriority, process.scheduler and process.execCPUAffinity: prepared in the parent,
//! applied by the child with one syscall each (ioprio_set, sched_setattr, sched_setaffinity).

use crate::error::{Error, ErrorKind, Result};
use oci_spec::runtime::{IOPriorityClass, LinuxSchedulerFlag, LinuxSchedulerPolicy, Process};

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
}

const IOPRIO_WHO_PROCESS: libc::c_int = 1;

impl Sched {
    pub fn new(p: &Process) -> Result<Sched> {
        let ioprio = match p.io_priority() {
            Some(io) => {
                let class = match io.class() {
                    IOPriorityClass::IoprioClassRt => 1,
                    IOPriorityClass::IoprioClassBe => 2,
                    IOPriorityClass::IoprioClassIdle => 3,
                };
                if !(0..=7).contains(&io.priority()) {
                    return Err(Error::invalid(format!("process.ioPriority.priority {} is out of range 0-7", io.priority())));
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
        Ok(Sched { ioprio, attr, affinity_initial: initial, affinity_final: fin })
    }

    /// I/O priority and scheduling policy of the calling process (inherited across execve).
    pub fn apply(&self) -> Result<()> {
        if let Some(v) = self.ioprio {
            if unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, v) } < 0 {
                return Err(Error::last("set process.ioPriority"));
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
            return Err(Error::new(ErrorKind::Unavailable, "process.scheduler: SCHED_ISO is not implemented by Linux"))
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
        return Err(Error::invalid(format!("process.scheduler.nice {nice} is out of range -20..19")));
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

/// "0-3,7" to a cpu_set_t.
fn cpu_set(list: &str) -> Result<libc::cpu_set_t> {
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
    let bad = || Error::invalid(format!("execCPUAffinity {list:?}: not a cpu list"));
    for part in list.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
        if a > b || b >= max {
            return Err(bad());
        }
        for cpu in a..=b {
            unsafe { libc::CPU_SET(cpu, &mut set) };
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_lists() {
        let s = super::cpu_set("0-2,5").unwrap();
        let on: Vec<usize> = (0..8).filter(|c| unsafe { libc::CPU_ISSET(*c, &s) }).collect();
        assert_eq!(on, [0, 1, 2, 5]);
        assert!(super::cpu_set("3-1").is_err());
        assert!(super::cpu_set("x").is_err());
    }

    #[test]
    fn sched_attr_is_the_kernels_size() {
        assert_eq!(std::mem::size_of::<super::SchedAttr>(), 48);
    }
}
