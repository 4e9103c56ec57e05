//! berth's registry settings, `/etc/berth/registries.json` (or `$BERTH_REGISTRIES_CONF`):
//! ```json
//! {"unqualified-search-registries": ["docker.io"],
//!  "insecure-registries": ["127.0.0.1:5000"],
//!  "certs-dirs": ["/etc/berth/certs.d", "/etc/docker/certs.d", "/etc/containers/certs.d"]}
//! ```
//! Credentials live in docker's config.json (see [`crate::credentials`]).

use serde::Deserialize;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub const DEFAULT_CONFIG: &str = "/etc/berth/registries.json";

#[derive(Debug, Clone)]
pub struct Config {
    /// Registries tried in order for a short name (podman's unqualified-search-registries).
    pub search: Vec<String>,
    /// Hosts (host[:port]) reached over plain HTTP or HTTPS without certificate checks.
    pub insecure: Vec<String>,
    /// Directories holding `<host[:port]>/{ca.crt, *.crt, client.cert, client.key}`.
    pub certs_dirs: Vec<PathBuf>,
    /// docker's config.json holding credentials.
    pub auth_file: PathBuf,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct File {
    unqualified_search_registries: Option<Vec<String>>,
    insecure_registries: Option<Vec<String>>,
    certs_dirs: Option<Vec<PathBuf>>,
}

impl Config {
    /// From `$BERTH_REGISTRIES_CONF` or /etc/berth/registries.json (absent: the defaults).
    pub fn load() -> Result<Config> {
        let path = std::env::var_os("BERTH_REGISTRIES_CONF")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
        Config::from_file(&path)
    }

    pub fn from_file(path: &Path) -> Result<Config> {
        let f: File = match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => File::default(),
            Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
        };
        Ok(Config {
            search: f
                .unqualified_search_registries
                .unwrap_or_else(|| vec!["docker.io".into()]),
            insecure: f.insecure_registries.unwrap_or_default(),
            certs_dirs: f.certs_dirs.unwrap_or_else(|| {
                [
                    "/etc/berth/certs.d",
                    "/etc/docker/certs.d",
                    "/etc/containers/certs.d",
                ]
                .iter()
                .map(PathBuf::from)
                .collect()
            }),
            auth_file: crate::credentials::default_auth_file(),
        })
    }

    /// Listed as insecure, or on loopback: docker treats 127.0.0.0/8, ::1 and localhost as
    /// insecure registries without being told (plain HTTP, or HTTPS without checks).
    pub fn is_insecure(&self, host: &str) -> bool {
        self.insecure.iter().any(|h| h == host) || is_loopback(host)
    }

    /// The references a user's name stands for, in the order to try them: a name that names its
    /// registry is itself; a short name is tried in each search registry (docker: docker.io only).
    pub fn candidates(&self, name: &str) -> Result<Vec<berth_image::Reference>> {
        if is_qualified(name) || self.search.is_empty() {
            return Ok(vec![berth_image::Reference::parse(name)?]);
        }
        self.search
            .iter()
            .map(|reg| {
                if reg == "docker.io" {
                    berth_image::Reference::parse(name)
                } else {
                    berth_image::Reference::parse(&format!("{reg}/{name}"))
                }
            })
            .collect::<std::result::Result<_, _>>()
            .map_err(Error::from)
    }
}

/// Whether a name starts with a registry host (docker's rule: a first component with '.' or ':',
/// or "localhost").
pub fn is_qualified(name: &str) -> bool {
    match name.split_once('/') {
        Some((first, _)) => first.contains(['.', ':']) || first == "localhost",
        None => false,
    }
}

/// Whether `host[:port]` names this machine: localhost, 127.0.0.0/8 or ::1 (`[::1]:5000`).
pub fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(rest, |(h, _)| h),
        None if host.matches(':').count() > 1 => host,
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `os/arch[/variant]`, e.g. linux/amd64, linux/arm/v7.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn host() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: berth_image::host_arch().into(),
            variant: None,
        }
    }

    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || {
            Error::Config(format!(
                "invalid platform {s:?}: expected os/arch[/variant]"
            ))
        };
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, v] if !os.is_empty() && !arch.is_empty() && !v.is_empty() => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(v.to_string()),
            }),
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_follow_the_search_list() {
        let mut c = Config::from_file(Path::new("/nonexistent")).unwrap();
        assert_eq!(
            c.candidates("busybox").unwrap()[0].full(),
            "docker.io/library/busybox:latest"
        );
        c.search = vec!["quay.io".into(), "docker.io".into()];
        let v: Vec<String> = c
            .candidates("me/app:1")
            .unwrap()
            .iter()
            .map(|r| r.full())
            .collect();
        assert_eq!(v, ["quay.io/me/app:1", "docker.io/me/app:1"]);
        let v: Vec<String> = c
            .candidates("localhost:5000/app")
            .unwrap()
            .iter()
            .map(|r| r.full())
            .collect();
        assert_eq!(v, ["localhost:5000/app:latest"]);
    }

    #[test]
    fn loopback_registries_are_insecure() {
        let c = Config::from_file(Path::new("/nonexistent")).unwrap();
        for h in [
            "127.0.0.1:5000",
            "127.3.2.1",
            "localhost:5000",
            "LOCALHOST",
            "[::1]:5000",
            "::1",
        ] {
            assert!(c.is_insecure(h), "{h}");
        }
        for h in [
            "quay.io",
            "10.0.0.1:5000",
            "localhost.example.com",
            "[::2]:5000",
            "128.0.0.1",
        ] {
            assert!(!c.is_insecure(h), "{h}");
        }
    }

    #[test]
    fn platforms() {
        assert_eq!(
            Platform::parse("linux/arm/v7").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux//").is_err());
    }
}
