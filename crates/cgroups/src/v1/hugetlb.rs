//! hugetlb limits. Page sizes are named as the kernel names the files ("2MB", "1GB").

use crate::fs;
use crate::stats::{Hugetlb, Stats};
use crate::{Error, Result};
use oci_spec::runtime::LinuxHugepageLimit;
use std::path::Path;

/// Page sizes this kernel supports, from /sys/kernel/mm/hugepages ("hugepages-2048kB" -> "2MB").
pub fn page_sizes() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/sys/kernel/mm/hugepages") else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let kb: u64 = n
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            Some(size_name(kb * 1024))
        })
        .collect();
    out.sort();
    out
}

fn size_name(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let (mut v, mut i) = (bytes, 0);
    while v >= 1024 && i < UNITS.len() - 1 {
        v /= 1024;
        i += 1;
    }
    format!("{v}{}", UNITS[i])
}

fn check(l: &LinuxHugepageLimit, dir: &Path, file: &str) -> Result<()> {
    if !dir.join(file).exists() {
        return Err(Error::Unsupported {
            what: format!("hugepageLimits pageSize {:?}", l.page_size()),
            why: format!(
                "{} has no {file} (supported sizes: {:?})",
                dir.display(),
                page_sizes()
            ),
        });
    }
    Ok(())
}

/// v1: hugetlb.<size>.limit_in_bytes.
pub fn set_v1(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<()> {
    for l in limits {
        let f = format!("hugetlb.{}.limit_in_bytes", l.page_size());
        check(l, dir, &f)?;
        fs::write(&dir.join(f), l.limit().to_string())?;
    }
    Ok(())
}

/// v2: hugetlb.<size>.max, and the reservation limit too where the kernel has one.
pub fn set_v2(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<()> {
    for l in limits {
        let f = format!("hugetlb.{}.max", l.page_size());
        check(l, dir, &f)?;
        fs::write(&dir.join(f), l.limit().to_string())?;
        let rsvd = dir.join(format!("hugetlb.{}.rsvd.max", l.page_size()));
        if rsvd.exists() {
            fs::write(&rsvd, l.limit().to_string())?;
        }
    }
    Ok(())
}

pub fn stats_v1(dir: &Path, s: &mut Stats) -> Result<()> {
    for size in page_sizes() {
        let f = |n: &str| fs::read_u64_opt(&dir.join(format!("hugetlb.{size}.{n}")));
        s.hugetlb.insert(
            size.clone(),
            Hugetlb {
                usage: f("usage_in_bytes")?,
                max: f("max_usage_in_bytes")?,
                failcnt: f("failcnt")?,
            },
        );
    }
    Ok(())
}

pub fn stats_v2(dir: &Path, s: &mut Stats) -> Result<()> {
    for size in page_sizes() {
        let cur = dir.join(format!("hugetlb.{size}.current"));
        if !cur.exists() {
            continue;
        }
        let events = dir.join(format!("hugetlb.{size}.events"));
        let failcnt = if events.exists() {
            fs::keyed_value(&events, "max")?
        } else {
            0
        };
        s.hugetlb.insert(
            size,
            Hugetlb {
                usage: fs::read_u64(&cur)?,
                max: 0,
                failcnt,
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_files() {
        assert_eq!(size_name(2048 * 1024), "2MB");
        assert_eq!(size_name(1048576 * 1024), "1GB");
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("hugetlb.2MB.limit_in_bytes"), "").unwrap();
        std::fs::write(t.path().join("hugetlb.2MB.max"), "").unwrap();
        let limits: Vec<LinuxHugepageLimit> =
            serde_json::from_str(r#"[{"pageSize":"2MB","limit":4194304}]"#).unwrap();
        set_v1(t.path(), &limits).unwrap();
        set_v2(t.path(), &limits).unwrap();
        assert_eq!(
            std::fs::read_to_string(t.path().join("hugetlb.2MB.limit_in_bytes")).unwrap(),
            "4194304"
        );
        assert_eq!(
            std::fs::read_to_string(t.path().join("hugetlb.2MB.max")).unwrap(),
            "4194304"
        );
        let bad: Vec<LinuxHugepageLimit> =
            serde_json::from_str(r#"[{"pageSize":"3MB","limit":1}]"#).unwrap();
        assert!(set_v2(t.path(), &bad)
            .unwrap_err()
            .to_string()
            .contains("3MB"));
    }
}
