//! The build context: a directory, its ignore file (`<Dockerfile>.dockerignore`,
//! `.containerignore`, `.dockerignore`, as podman looks for them) and COPY's source matching.

use std::path::{Path, PathBuf};

use crate::ignore::{has_glob, path_glob, Ignore};
use crate::layers::components;
use crate::{Error, Result};

pub struct Context {
    pub root: PathBuf,
    pub ignore: Ignore,
}

impl Context {
    pub fn open(root: &Path, dockerfile: Option<&Path>) -> Result<Context> {
        let root = std::fs::canonicalize(root)
            .map_err(|e| Error::msg(format!("build context {}: {e}", root.display())))?;
        if !root.is_dir() {
            return Err(Error::msg(format!(
                "build context {} is not a directory",
                root.display()
            )));
        }
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(df) = dockerfile {
            if let Some(name) = df.file_name() {
                let mut n = name.to_os_string();
                n.push(".dockerignore");
                candidates.push(df.with_file_name(n));
            }
        }
        candidates.push(root.join(".containerignore"));
        candidates.push(root.join(".dockerignore"));
        let mut ignore = Ignore::default();
        for c in candidates {
            if let Ok(text) = std::fs::read_to_string(&c) {
                ignore = Ignore::parse(&text);
                break;
            }
        }
        Ok(Context { root, ignore })
    }

    pub fn excluded(&self, rel: &str) -> bool {
        self.ignore.excluded(rel)
    }

    /// The context paths a COPY source names: (host path, context-relative path). Globs match
    /// segment by segment; nothing outside the context, nothing ignored.
    pub fn sources(&self, src: &str) -> Result<Vec<(PathBuf, String)>> {
        let rel = components(src).join("/");
        if !has_glob(&rel) {
            let host = if rel.is_empty() {
                self.root.clone()
            } else {
                self.root.join(&rel)
            };
            if std::fs::symlink_metadata(&host).is_err() || (!rel.is_empty() && self.excluded(&rel))
            {
                return Err(Error::msg(format!(
                    "\"/{rel}\": not found in the build context"
                )));
            }
            return Ok(vec![(host, rel)]);
        }
        let mut out = Vec::new();
        let depth = rel.split('/').count();
        self.walk(&self.root, "", depth, &mut |host, r| {
            if path_glob(&rel, r) && !self.excluded(r) {
                out.push((host.to_path_buf(), r.to_string()));
            }
        });
        if out.is_empty() {
            return Err(Error::msg(format!(
                "no source files were specified: \"{src}\" matches nothing in the build context"
            )));
        }
        Ok(out)
    }

    fn walk(&self, dir: &Path, rel: &str, depth: usize, f: &mut dyn FnMut(&Path, &str)) {
        if depth == 0 {
            return;
        }
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut names: Vec<_> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for n in names {
            let r = if rel.is_empty() {
                n.clone()
            } else {
                format!("{rel}/{n}")
            };
            let p = dir.join(&n);
            f(&p, &r);
            if p.symlink_metadata().map(|m| m.is_dir()).unwrap_or(false) {
                self.walk(&p, &r, depth - 1, f);
            }
        }
    }
}

/// ADD's URL sources: an HTTP(S) GET (reqwest's blocking client, the system's roots or
/// `SSL_CERT_FILE`, redirects followed), saved below `<root>/build/`. Fails at once, naming the
/// host, when it cannot be reached.
pub fn fetch(url: &str, root: &Path) -> std::result::Result<crate::exec::TempPath, String> {
    use std::time::Duration;
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("ADD {url}: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "ADD {url}: unsupported URL scheme {:?}",
            parsed.scheme()
        ));
    }
    let host = match (parsed.host_str(), parsed.port_or_known_default()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => return Err(format!("ADD {url}: the URL names no host")),
    };
    let client = reqwest::blocking::Client::builder()
        .user_agent("berth")
        .connect_timeout(Duration::from_secs(10))
        .timeout(None)
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .map_err(|e| format!("ADD {url}: {e}"))?;
    let mut resp = client.get(parsed).send().map_err(|e| {
        if e.is_connect() || e.is_timeout() {
            format!("ADD {url}: {host} is unreachable: {}", cause(&e))
        } else {
            format!("ADD {url}: {}", cause(&e))
        }
    })?;
    if !resp.status().is_success() {
        return Err(format!("ADD {url}: server answered {}", resp.status()));
    }
    let dir = root.join("build/downloads");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let tmp = crate::exec::TempPath(dir.join(format!(
        "{}-{}",
        std::process::id(),
        crate::cache::key(&[url])
    )));
    let mut f = std::fs::File::create(&*tmp).map_err(|e| e.to_string())?;
    resp.copy_to(&mut f)
        .map_err(|e| format!("ADD {url}: the download failed: {}", cause(&e)))?;
    Ok(tmp)
}

/// The innermost cause of an error (reqwest's own text only says which request failed).
fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut c = e;
    while let Some(s) = c.source() {
        c = s;
    }
    c.to_string()
}
