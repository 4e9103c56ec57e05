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

/// ADD's URL sources: a plain HTTP/1.1 GET (redirects followed), saved below `<root>/build/`.
/// Fails at once, naming the host, when it cannot be reached.
pub fn fetch(url: &str, root: &Path) -> std::result::Result<crate::exec::TempPath, String> {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpStream, ToSocketAddrs};
    use std::time::Duration;
    let mut url = url.to_string();
    for _ in 0..5 {
        if url.starts_with("https://") {
            return Err(format!("ADD {url}: https URLs are not supported yet (no TLS client in berth); use http:// or COPY a downloaded file"));
        }
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("ADD {url}: unsupported URL"))?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let path = path.split('#').next().unwrap_or("/");
        let addr = if hostport.contains(':') && !hostport.ends_with(']') {
            hostport.to_string()
        } else {
            format!("{hostport}:80")
        };
        let addrs: Vec<_> = addr
            .to_socket_addrs()
            .map_err(|e| format!("ADD {url}: cannot resolve {hostport}: {e}"))?
            .collect();
        let mut stream = None;
        let mut last = String::new();
        for a in addrs {
            match TcpStream::connect_timeout(&a, Duration::from_secs(10)) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e.to_string(),
            }
        }
        let mut s =
            stream.ok_or_else(|| format!("ADD {url}: {hostport} is unreachable: {last}"))?;
        s.set_read_timeout(Some(Duration::from_secs(60))).ok();
        // One write: a server may answer (and close) as soon as it has the request.
        let req = format!("GET {path} HTTP/1.1\r\nHost: {hostport}\r\nUser-Agent: berth\r\nAccept: */*\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes())
            .map_err(|e| format!("ADD {url}: {e}"))?;
        let mut r = BufReader::new(s);
        let mut status = String::new();
        r.read_line(&mut status)
            .map_err(|e| format!("ADD {url}: {e}"))?;
        let code: u16 = status
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("ADD {url}: not an HTTP response"))?;
        let mut headers = Vec::new();
        loop {
            let mut l = String::new();
            if r.read_line(&mut l).map_err(|e| format!("ADD {url}: {e}"))? == 0
                || l.trim().is_empty()
            {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let h = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        if (300..400).contains(&code) {
            let loc =
                h("location").ok_or_else(|| format!("ADD {url}: redirect without a location"))?;
            url = if loc.starts_with('/') {
                format!("http://{hostport}{loc}")
            } else {
                loc
            };
            continue;
        }
        if code != 200 {
            return Err(format!("ADD {url}: server answered {}", status.trim()));
        }
        let dir = root.join("build/downloads");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let tmp = crate::exec::TempPath(dir.join(format!(
            "{}-{}",
            std::process::id(),
            crate::cache::key(&[&url])
        )));
        let mut f = std::fs::File::create(&*tmp).map_err(|e| e.to_string())?;
        let chunked = h("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        if chunked {
            loop {
                let mut l = String::new();
                r.read_line(&mut l).map_err(|e| format!("ADD {url}: {e}"))?;
                let n = usize::from_str_radix(l.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|_| format!("ADD {url}: bad chunked encoding"))?;
                if n == 0 {
                    break;
                }
                std::io::copy(&mut (&mut r).take(n as u64), &mut f)
                    .map_err(|e| format!("ADD {url}: {e}"))?;
                let mut crlf = String::new();
                r.read_line(&mut crlf)
                    .map_err(|e| format!("ADD {url}: {e}"))?;
            }
        } else if let Some(len) = h("content-length").and_then(|l| l.parse::<u64>().ok()) {
            let got = std::io::copy(&mut (&mut r).take(len), &mut f)
                .map_err(|e| format!("ADD {url}: {e}"))?;
            if got != len {
                return Err(format!(
                    "ADD {url}: the download ended after {got} of {len} bytes"
                ));
            }
        } else {
            std::io::copy(&mut r, &mut f).map_err(|e| format!("ADD {url}: {e}"))?;
        }
        return Ok(tmp);
    }
    Err(format!("ADD {url}: too many redirects"))
}
