//! Image references parsed and normalised like docker's distribution/reference:
//! `busybox` → `docker.io/library/busybox:latest`, `localhost/busybox` stays on `localhost`,
//! `host:5000/a/b@sha256:...`; displayed the familiar way (`docker.io/library/` dropped).

use crate::error::{Error, Result};

pub const DEFAULT_DOMAIN: &str = "docker.io";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Registry host[:port], e.g. "docker.io", "localhost", "registry:5000".
    pub domain: String,
    /// Repository path below the domain, e.g. "library/busybox".
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and normalises; a reference with neither tag nor digest gets `:latest`.
    pub fn parse(s: &str) -> Result<Reference> {
        let mut r = Self::parse_name_only(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some("latest".into());
        }
        Ok(r)
    }

    /// Parses without adding the implicit `:latest`.
    pub fn parse_name_only(s: &str) -> Result<Reference> {
        let bad = || Error::InvalidReference(s.to_string());
        if s.is_empty() || s.len() > 512 {
            return Err(bad());
        }
        let (rest, digest) = match s.split_once('@') {
            Some((n, d)) => {
                let (alg, hex) = d.split_once(':').ok_or_else(bad)?;
                if alg != "sha256" || !crate::digest::is_hex64(hex) {
                    return Err(bad());
                }
                (n, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A tag follows the last ':' only when no '/' comes after it (else it is a port).
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => {
                (&rest[..i], Some(rest[i + 1..].to_string()))
            }
            _ => (rest, None),
        };
        if let Some(t) = &tag {
            if !valid_tag(t) {
                return Err(bad());
            }
        }
        let (domain, path) = match name.find('/') {
            Some(i)
                if name[..i].contains(['.', ':'])
                    || &name[..i] == "localhost"
                    || name[..i].to_lowercase() != name[..i] =>
            {
                (name[..i].to_string(), name[i + 1..].to_string())
            }
            _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        };
        let domain = if domain == "index.docker.io" {
            DEFAULT_DOMAIN.to_string()
        } else {
            domain
        };
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if !valid_domain(&domain) || path.is_empty() || !path.split('/').all(valid_path_component) {
            return Err(bad());
        }
        if domain.len() + 1 + path.len() > 255 {
            return Err(bad());
        }
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// "docker.io/library/busybox".
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The full normalised form: "docker.io/library/busybox:latest".
    pub fn full(&self) -> String {
        self.with_tag_and_digest(self.repository())
    }

    /// As docker prints it: "busybox:latest", "localhost/busybox:latest".
    pub fn familiar(&self) -> String {
        self.with_tag_and_digest(familiar_repository(&self.repository()))
    }

    /// `repo` followed by ":tag" and "@digest" where present.
    fn with_tag_and_digest(&self, mut repo: String) -> String {
        if let Some(t) = &self.tag {
            repo.push(':');
            repo.push_str(t);
        }
        if let Some(d) = &self.digest {
            repo.push('@');
            repo.push_str(d);
        }
        repo
    }
}

/// "docker.io/library/busybox" → "busybox", "docker.io/me/x" → "me/x"; others unchanged.
pub fn familiar_repository(repo: &str) -> String {
    match repo.strip_prefix("docker.io/") {
        Some(rest) => rest
            .strip_prefix("library/")
            .filter(|r| !r.contains('/'))
            .unwrap_or(rest)
            .to_string(),
        None => repo.to_string(),
    }
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
        })
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum_lower(b[0]) || !is_alnum_lower(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum_lower(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum_lower(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

fn is_alnum_lower(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(s: &str) -> String {
        Reference::parse(s).unwrap().full()
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(full("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(full("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(full("me/app"), "docker.io/me/app:latest");
        assert_eq!(
            full("index.docker.io/library/x"),
            "docker.io/library/x:latest"
        );
        assert_eq!(full("localhost/busybox"), "localhost/busybox:latest");
        assert_eq!(full("registry:5000/a/b:v1"), "registry:5000/a/b:v1");
        assert_eq!(full("quay.io/x/y"), "quay.io/x/y:latest");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            full(&format!("busybox@{d}")),
            format!("docker.io/library/busybox@{d}")
        );
    }

    #[test]
    fn familiar_forms() {
        assert_eq!(
            Reference::parse("busybox").unwrap().familiar(),
            "busybox:latest"
        );
        assert_eq!(
            Reference::parse("docker.io/me/app:2").unwrap().familiar(),
            "me/app:2"
        );
        assert_eq!(
            Reference::parse("localhost/busybox").unwrap().familiar(),
            "localhost/busybox:latest"
        );
    }

    #[test]
    fn rejects_bad_references() {
        for s in [
            "",
            "Busybox",
            "a//b",
            "a:",
            "a:-x",
            "-a",
            "a@sha256:12",
            "a b",
            "x/.y",
        ] {
            assert!(Reference::parse(s).is_err(), "{s:?} should be rejected");
        }
    }
}
