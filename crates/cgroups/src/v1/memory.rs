//! v1 memory controller.

use crate::fs::{self, raw_os_error};
use crate::stats::{Memory, MemoryEntry, Stats};
use crate::{Error, Result};
use oci_spec::runtime::LinuxMemory;
use std::path::Path;

const LIMIT: &str = "memory.limit_in_bytes";
const MEMSW: &str = "memory.memsw.limit_in_bytes";

pub fn set(dir: &Path, m: &LinuxMemory) -> Result<()> {
    let limit = m.limit();
    let mut swap = m.swap();
    let has_memsw = dir.join(MEMSW).exists();

    if m.check_before_update() == Some(true) {
        if let Some(l) = limit.filter(|l| *l > 0) {
            let usage = fs::read_u64(&dir.join("memory.usage_in_bytes"))?;
            if (l as u64) < usage {
                return Err(Error::Invalid {
                    what: format!("memory limit for {}", dir.display()),
                    why: format!("{l} is below the current usage {usage} (checkBeforeUpdate)"),
                });
            }
        }
    }

    // "-1 memory, swap unset" means both unlimited, as in runc.
    if limit == Some(-1) && swap.is_none() && has_memsw {
        swap = Some(-1);
    }
    if !has_memsw {
        match swap {
            // Without swap accounting memory+swap == memory already; only a different cap is an error.
            Some(s) if s != -1 && Some(s) != limit => {
                return Err(Error::Unsupported {
                    what: format!("memory.swap {s} for {}", dir.display()),
                    why: format!(
                        "{MEMSW} is missing (swap accounting is off; boot with swapaccount=1)"
                    ),
                })
            }
            _ => swap = None,
        }
    }

    match (limit, swap) {
        (Some(l), Some(s)) => set_limit_and_swap(dir, l, s)?,
        (Some(l), None) => fs::write(&dir.join(LIMIT), l.to_string())?,
        (None, Some(s)) => fs::write(&dir.join(MEMSW), s.to_string())?,
        (None, None) => {}
    }

    if let Some(r) = m.reservation() {
        fs::write(&dir.join("memory.soft_limit_in_bytes"), r.to_string())?;
    }
    if let Some(k) = m.kernel() {
        set_kernel(dir, k)?;
    }
    if let Some(t) = m.kernel_tcp() {
        // Still a real limit where the kernel has the file (v1 memory controllers up to now).
        let p = dir.join("memory.kmem.tcp.limit_in_bytes");
        if p.exists() {
            fs::write(&p, t.to_string())?;
        } else {
            tracing::warn!(
                "linux.resources.memory.kernelTCP ignored: {} does not exist",
                p.display()
            );
        }
    }
    if let Some(s) = m.swappiness() {
        if s > 100 {
            return Err(Error::Invalid {
                what: "memory.swappiness".into(),
                why: format!("{s} is above 100"),
            });
        }
        fs::write(&dir.join("memory.swappiness"), s.to_string())?;
    }
    if m.disable_oom_killer() == Some(true) {
        fs::write(&dir.join("memory.oom_control"), "1")?;
    }
    if let Some(h) = m.use_hierarchy() {
        let p = dir.join("memory.use_hierarchy");
        // Kernels since 5.x are always hierarchical and reject 0; 1 is a no-op there.
        fs::write(&p, if h { "1" } else { "0" })?;
    }
    Ok(())
}

/// The kernel checks memsw >= limit on every write, so the order depends on whether the
/// limits go up or down; runc picks by the current limit, and we retry the other order if the
/// kernel still refuses (for example when the current memsw is below the new limit).
fn set_limit_and_swap(dir: &Path, limit: i64, swap: i64) -> Result<()> {
    let current = fs::read_u64(&dir.join(LIMIT))?;
    let swap_first = swap == -1 || current < swap as u64;
    let attempt = |swap_first: bool| -> Result<()> {
        if swap_first {
            fs::write(&dir.join(MEMSW), swap.to_string())?;
            fs::write(&dir.join(LIMIT), limit.to_string())
        } else {
            fs::write(&dir.join(LIMIT), limit.to_string())?;
            fs::write(&dir.join(MEMSW), swap.to_string())
        }
    };
    match attempt(swap_first) {
        Err(e) if raw_os_error(&e) == Some(libc::EINVAL) => attempt(!swap_first),
        r => r,
    }
}

fn set_kernel(dir: &Path, k: i64) -> Result<()> {
    let p = dir.join("memory.kmem.limit_in_bytes");
    if !p.exists() {
        tracing::warn!(
            "linux.resources.memory.kernel ignored: {} does not exist",
            p.display()
        );
        return Ok(());
    }
    match fs::write(&p, k.to_string()) {
        // Since Linux 5.16 kmem limits are gone: writes are refused or accepted and dropped.
        Err(e) if raw_os_error(&e) == Some(libc::EOPNOTSUPP) => {
            tracing::warn!(
                "linux.resources.memory.kernel ignored: the kernel no longer supports kmem limits"
            );
            Ok(())
        }
        Ok(()) => {
            if k > 0 && fs::read_u64(&p)? != k as u64 {
                tracing::warn!("linux.resources.memory.kernel ignored: the kernel no longer supports kmem limits");
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

pub fn oom_kill_count(dir: &Path) -> Result<u64> {
    let p = dir.join("memory.oom_control");
    match fs::keyed_value(&p, "oom_kill") {
        Ok(v) => Ok(v),
        // Kernels before 4.13 have no oom_kill line.
        Err(Error::Parse { .. }) => Ok(0),
        Err(e) => Err(e),
    }
}

fn entry(dir: &Path, prefix: &str) -> Result<MemoryEntry> {
    let f = |name: &str| fs::read_u64_opt(&dir.join(format!("{prefix}{name}")));
    Ok(MemoryEntry {
        usage: f("usage_in_bytes")?,
        max: f("max_usage_in_bytes")?,
        failcnt: f("failcnt")?,
        limit: f("limit_in_bytes")?,
    })
}

pub fn stats(dir: &Path, s: &mut Stats) -> Result<()> {
    let raw: std::collections::BTreeMap<String, u64> = fs::read_keyed(&dir.join("memory.stat"))?
        .into_iter()
        .collect();
    s.memory = Memory {
        cache: raw.get("cache").copied().unwrap_or(0),
        usage: entry(dir, "memory.")?,
        swap: entry(dir, "memory.memsw.")?,
        kernel: entry(dir, "memory.kmem.")?,
        kernel_tcp: entry(dir, "memory.kmem.tcp.")?,
        raw,
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(dir: &Path, memsw: bool) {
        for f in [
            LIMIT,
            "memory.soft_limit_in_bytes",
            "memory.swappiness",
            "memory.oom_control",
            "memory.kmem.limit_in_bytes",
        ] {
            std::fs::write(dir.join(f), "0").unwrap();
        }
        std::fs::write(dir.join(LIMIT), "9223372036854771712").unwrap();
        std::fs::write(dir.join("memory.usage_in_bytes"), "1000").unwrap();
        crate::fs::touch(dir, &["memory.use_hierarchy"]);
        if memsw {
            std::fs::write(dir.join(MEMSW), "9223372036854771712").unwrap();
        }
    }

    fn mem(json: &str) -> LinuxMemory {
        serde_json::from_str(json).unwrap()
    }

    fn read(dir: &Path, f: &str) -> String {
        std::fs::read_to_string(dir.join(f)).unwrap()
    }

    #[test]
    fn writes_each_file() {
        let t = tempfile::tempdir().unwrap();
        fake(t.path(), true);
        set(
            t.path(),
            &mem(r#"{"limit":33554432,"swap":67108864,"reservation":1048576,"swappiness":10,"disableOOMKiller":true,"kernelTCP":1}"#),
        )
        .unwrap();
        assert_eq!(read(t.path(), LIMIT), "33554432");
        assert_eq!(read(t.path(), MEMSW), "67108864");
        assert_eq!(read(t.path(), "memory.soft_limit_in_bytes"), "1048576");
        assert_eq!(read(t.path(), "memory.swappiness"), "10");
        assert_eq!(read(t.path(), "memory.oom_control"), "1");
    }

    #[test]
    fn unlimited_memory_makes_swap_unlimited() {
        let t = tempfile::tempdir().unwrap();
        fake(t.path(), true);
        set(t.path(), &mem(r#"{"limit":-1}"#)).unwrap();
        assert_eq!(read(t.path(), LIMIT), "-1");
        assert_eq!(read(t.path(), MEMSW), "-1");
    }

    #[test]
    fn missing_memsw_is_an_error_only_for_a_real_swap_cap() {
        let t = tempfile::tempdir().unwrap();
        fake(t.path(), false);
        set(t.path(), &mem(r#"{"limit":1000000,"swap":1000000}"#)).unwrap();
        assert_eq!(read(t.path(), LIMIT), "1000000");
        set(t.path(), &mem(r#"{"limit":1000000,"swap":-1}"#)).unwrap();
        let e = set(t.path(), &mem(r#"{"limit":1000000,"swap":2000000}"#)).unwrap_err();
        assert!(e.to_string().contains(MEMSW), "{e}");
    }

    #[test]
    fn check_before_update_refuses_limit_below_usage() {
        let t = tempfile::tempdir().unwrap();
        fake(t.path(), true);
        let e = set(t.path(), &mem(r#"{"limit":500,"checkBeforeUpdate":true}"#)).unwrap_err();
        assert!(e.to_string().contains("below the current usage"), "{e}");
        set(t.path(), &mem(r#"{"limit":5000,"checkBeforeUpdate":true}"#)).unwrap();
    }

    #[test]
    fn swappiness_above_100_is_invalid() {
        let t = tempfile::tempdir().unwrap();
        fake(t.path(), true);
        assert!(set(t.path(), &mem(r#"{"swappiness":101}"#)).is_err());
    }
}
