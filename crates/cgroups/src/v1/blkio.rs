//! v1 blkio controller. CFQ files (blkio.weight) are gone on modern kernels; BFQ offers
//! blkio.bfq.weight instead, so weights go to whichever exists.

use crate::fs;
use crate::stats::{Blkio, BlkioEntry, Stats};
use crate::{Error, Result};
use oci_spec::runtime::{LinuxBlockIo, LinuxThrottleDevice};
use std::path::Path;

fn weight_file(dir: &Path, cfq: &str, bfq: &str) -> Option<std::path::PathBuf> {
    [cfq, bfq].iter().map(|f| dir.join(f)).find(|p| p.exists())
}

pub fn set(dir: &Path, b: &LinuxBlockIo) -> Result<()> {
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        let p = weight_file(dir, "blkio.weight", "blkio.bfq.weight")
            .ok_or_else(|| missing(dir, "blkio.weight"))?;
        fs::write(&p, w.to_string())?;
    }
    if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
        let p = dir.join("blkio.leaf_weight");
        if !p.exists() {
            return Err(missing(
                dir,
                "blkio.leaf_weight (leafWeight needs the CFQ scheduler)",
            ));
        }
        fs::write(&p, w.to_string())?;
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight() {
            let p = weight_file(dir, "blkio.weight_device", "blkio.bfq.weight_device")
                .ok_or_else(|| missing(dir, "blkio.weight_device"))?;
            fs::write(&p, format!("{}:{} {}", d.major(), d.minor(), w))?;
        }
        if let Some(w) = d.leaf_weight() {
            let p = dir.join("blkio.leaf_weight_device");
            if !p.exists() {
                return Err(missing(
                    dir,
                    "blkio.leaf_weight_device (leafWeight needs the CFQ scheduler)",
                ));
            }
            fs::write(&p, format!("{}:{} {}", d.major(), d.minor(), w))?;
        }
    }
    throttle(
        dir,
        "blkio.throttle.read_bps_device",
        b.throttle_read_bps_device(),
    )?;
    throttle(
        dir,
        "blkio.throttle.write_bps_device",
        b.throttle_write_bps_device(),
    )?;
    throttle(
        dir,
        "blkio.throttle.read_iops_device",
        b.throttle_read_iops_device(),
    )?;
    throttle(
        dir,
        "blkio.throttle.write_iops_device",
        b.throttle_write_iops_device(),
    )?;
    Ok(())
}

fn missing(dir: &Path, what: &str) -> Error {
    Error::Unsupported {
        what: format!("blockIO {what}"),
        why: format!("no such file in {}", dir.display()),
    }
}

fn throttle(dir: &Path, file: &str, devs: &Option<Vec<LinuxThrottleDevice>>) -> Result<()> {
    for d in devs.iter().flatten() {
        fs::write(
            &dir.join(file),
            format!("{}:{} {}", d.major(), d.minor(), d.rate()),
        )?;
    }
    Ok(())
}

/// "8:0 Read 4096" lines; the trailing "Total N" line has no device and is skipped, as runc does.
pub fn parse_entries(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (dev, op, value) = match f.as_slice() {
                [dev, op, value] => (*dev, op.to_string(), *value),
                [dev, value] => (*dev, String::new(), *value),
                _ => return None,
            };
            let (maj, min) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: maj.parse().ok()?,
                minor: min.parse().ok()?,
                op,
                value: value.parse().ok()?,
            })
        })
        .collect()
}

pub fn stats(dir: &Path, s: &mut Stats) -> Result<()> {
    // Prefer CFQ's full set, then BFQ's, then the throttle layer which every kernel has.
    let family = ["blkio.", "blkio.bfq.", "blkio.throttle."]
        .into_iter()
        .find(|p| dir.join(format!("{p}io_service_bytes_recursive")).exists());
    let Some(prefix) = family else { return Ok(()) };
    let read = |name: &str| -> Result<Vec<BlkioEntry>> {
        let p = dir.join(format!("{prefix}{name}"));
        if !p.exists() {
            return Ok(Vec::new());
        }
        Ok(parse_entries(&fs::read(&p)?))
    };
    s.blkio = Blkio {
        io_service_bytes_recursive: read("io_service_bytes_recursive")?,
        io_serviced_recursive: read("io_serviced_recursive")?,
        io_queued_recursive: read("io_queued_recursive")?,
        io_service_time_recursive: read("io_service_time_recursive")?,
        io_wait_time_recursive: read("io_wait_time_recursive")?,
        io_merged_recursive: read("io_merged_recursive")?,
        io_time_recursive: read("time_recursive")?,
        sectors_recursive: read("sectors_recursive")?,
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_weights_and_throttles() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("blkio.bfq.weight"), "100").unwrap();
        std::fs::write(t.path().join("blkio.bfq.weight_device"), "").unwrap();
        crate::fs::touch(
            t.path(),
            &[
                "blkio.throttle.read_bps_device",
                "blkio.throttle.write_iops_device",
            ],
        );
        let b: LinuxBlockIo = serde_json::from_str(
            r#"{"weight":300,"weightDevice":[{"major":8,"minor":0,"weight":500}],
                "throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1048576}],
                "throttleWriteIOPSDevice":[{"major":8,"minor":16,"rate":100}]}"#,
        )
        .unwrap();
        set(t.path(), &b).unwrap();
        let r = |f: &str| std::fs::read_to_string(t.path().join(f)).unwrap();
        assert_eq!(r("blkio.bfq.weight"), "300");
        assert_eq!(r("blkio.bfq.weight_device"), "8:0 500");
        assert_eq!(r("blkio.throttle.read_bps_device"), "8:0 1048576");
        assert_eq!(r("blkio.throttle.write_iops_device"), "8:16 100");
        let e = set(
            t.path(),
            &serde_json::from_str(r#"{"leafWeight":300}"#).unwrap(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("leaf_weight"), "{e}");
    }

    #[test]
    fn parses_recursive_stats() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(
            t.path().join("blkio.throttle.io_service_bytes_recursive"),
            "8:0 Read 4096\n8:0 Write 0\nTotal 4096\n",
        )
        .unwrap();
        let mut s = Stats::default();
        stats(t.path(), &mut s).unwrap();
        assert_eq!(s.blkio.io_service_bytes_recursive.len(), 2);
        assert_eq!(
            s.blkio.io_service_bytes_recursive[0],
            BlkioEntry {
                major: 8,
                minor: 0,
                op: "Read".into(),
                value: 4096
            }
        );
    }
}
