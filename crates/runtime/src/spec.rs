//! Loading and checking a bundle's config.json before anything is created.

use crate::error::{Error, ErrorKind, Result};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::path::{Path, PathBuf};

pub struct Bundle {
    pub dir: PathBuf,
    pub rootfs: PathBuf,
    pub spec: Spec,
}

pub fn load(bundle: &Path) -> Result<Bundle> {
    let dir = if bundle.is_absolute() {
        bundle.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::sys("getcwd", e))?
            .join(bundle)
    };
    let cfg = dir.join("config.json");
    let data = match std::fs::read(&cfg) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("bundle {}: config.json not found", dir.display()),
            ))
        }
        Err(e) => return Err(Error::sys(format!("read {}", cfg.display()), e)),
    };
    let spec: Spec = serde_json::from_slice(&data).map_err(|e| parse_error(&cfg, e))?;
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::invalid(format!("{}: root is missing", cfg.display())))?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        dir.join(root.path())
    };
    let rootfs = std::fs::canonicalize(&rootfs)
        .map_err(|e| Error::sys(format!("rootfs {}", rootfs.display()), e))?;
    if !rootfs.is_dir() {
        return Err(Error::invalid(format!(
            "rootfs {}: not a directory",
            rootfs.display()
        )));
    }
    validate(&spec, &cfg)?;
    Ok(Bundle { dir, rootfs, spec })
}

/// The newest runtime-spec minor version this runtime implements (features' ociVersionMax).
pub const OCI_VERSION_MAX: (u64, u64) = (1, 2);

/// A serde error, but an unknown capability is named plainly instead of with serde's list of
/// every variant.
fn parse_error(cfg: &Path, e: serde_json::Error) -> Error {
    let text = e.to_string();
    // oci-spec's capability parser says "no variant for CAP_X (converted to X)".
    if let Some(name) = text
        .strip_prefix("no variant for ")
        .and_then(|r| r.split(' ').next())
    {
        return Error::invalid(format!("{}: unknown capability {name:?}", cfg.display()));
    }
    Error::invalid(format!("parse {}: {}", cfg.display(), text.to_lowercase()))
}

/// ociVersion must be a 1.x this runtime knows (up to OCI_VERSION_MAX): a spec written for a
/// newer (or another major) version may mean things we would silently get wrong.
fn check_oci_version(v: &str) -> Result<()> {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let nums: Vec<Option<u64>> = core.split('.').map(|n| n.parse().ok()).collect();
    let ok = match nums.as_slice() {
        [Some(major), Some(minor), Some(_)] => {
            *major == OCI_VERSION_MAX.0 && *minor <= OCI_VERSION_MAX.1
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "unsupported ociVersion {v:?}: this runtime implements 1.0.0 to {}.{}.x",
            OCI_VERSION_MAX.0, OCI_VERSION_MAX.1
        )))
    }
}

fn validate(spec: &Spec, cfg: &Path) -> Result<()> {
    check_oci_version(spec.version())?;
    let Some(process) = spec.process() else {
        return Err(Error::invalid(format!(
            "{}: process is missing",
            cfg.display()
        )));
    };
    validate_process(process)?;
    if let Some(linux) = spec.linux() {
        let mut seen = 0u32;
        for ns in linux.namespaces().iter().flatten() {
            let bit = ns.typ() as u32;
            if seen & bit != 0 {
                return Err(Error::invalid(format!(
                    "namespace {} listed twice",
                    ns.typ()
                )));
            }
            seen |= bit;
            if let Some(p) = ns.path() {
                if !p.is_absolute() {
                    return Err(Error::invalid(format!(
                        "namespace {} path {} is not absolute",
                        ns.typ(),
                        p.display()
                    )));
                }
            }
        }
        let has_user = linux
            .namespaces()
            .iter()
            .flatten()
            .any(|n| n.typ() == LinuxNamespaceType::User);
        let maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty());
        if maps && !has_user {
            return Err(Error::invalid("uidMappings given without a user namespace"));
        }
        let new_user = linux
            .namespaces()
            .iter()
            .flatten()
            .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
        if new_user && !maps {
            return Err(Error::invalid(
                "a new user namespace needs uidMappings and gidMappings",
            ));
        }
        if spec.hostname().as_ref().is_some_and(|h| !h.is_empty())
            && !linux
                .namespaces()
                .iter()
                .flatten()
                .any(|n| n.typ() == LinuxNamespaceType::Uts)
        {
            return Err(Error::invalid(
                "unable to set hostname without a private UTS namespace",
            ));
        }
    }
    for m in spec.mounts().iter().flatten() {
        if !m.destination().is_absolute() {
            return Err(Error::invalid(format!(
                "mount destination {} is not absolute",
                m.destination().display()
            )));
        }
    }
    Ok(())
}

pub fn validate_process(process: &oci_spec::runtime::Process) -> Result<()> {
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(Error::invalid("process.args must not be empty"));
    }
    if !process.cwd().is_absolute() {
        return Err(Error::invalid(format!(
            "process.cwd {} is not absolute",
            process.cwd().display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn oci_versions() {
        for ok in ["1.0.0", "1.0.2-dev", "1.1.0", "1.2.0", "1.2.1+dev"] {
            assert!(super::check_oci_version(ok).is_ok(), "{ok}");
        }
        for bad in ["2.0.0", "1.3.0", "0.9.0", "", "1.0", "x.y.z"] {
            assert!(super::check_oci_version(bad).is_err(), "{bad}");
        }
    }
}
