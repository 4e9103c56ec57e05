//! docker's flag syntaxes (-v, --mount, --tmpfs, --ulimit, --device, --restart, sizes), parsed
//! into the record's types so every front end agrees.

use crate::error::{Error, Result};
use crate::model::{BindOptions, DeviceMapping, Mount, RestartPolicy, TmpfsOptions, Ulimit};

/// "64m", "1g", "512", "1.5g" → bytes (docker's RAMInBytes: binary units).
pub fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = match t.strip_suffix('b') {
        Some(x) if x.ends_with(|c: char| c.is_ascii_alphabetic()) => x,
        _ => &t,
    };
    let (num, mul) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| Error::invalid(format!("invalid size: '{s}'")))?;
    if n < 0.0 {
        return Err(Error::invalid(format!("invalid size: '{s}'")));
    }
    Ok((n * mul as f64) as i64)
}

/// docker CLI's first look at a -v spec (its compose loader): empty sections and a fourth
/// section are refused with its "invalid spec" words. Like docker's, a one-letter section
/// followed by ':' counts as a drive letter (`c:\x`), so "a:b:c:d" passes here and is refused by
/// the second look in [`parse_volume`], as the daemon does.
fn check_volume_sections(spec: &str) -> Result<()> {
    if spec.is_empty() {
        return Err(Error::invalid("invalid empty volume spec"));
    }
    if spec.chars().count() <= 2 {
        return Ok(());
    }
    let mut buf = String::new();
    let mut sections = 0;
    let chars: Vec<char> = spec.chars().collect();
    for (i, &ch) in chars.iter().chain(std::iter::once(&'\0')).enumerate() {
        let end = i == chars.len();
        let drive = ch == ':' && buf.chars().count() == 1 && buf.chars().all(char::is_alphabetic);
        if drive {
            buf.push(ch);
        } else if ch == ':' || end {
            if buf.is_empty() {
                return Err(Error::invalid(format!(
                    "invalid spec: {spec}: empty section between colons"
                )));
            }
            sections += 1;
            if sections == 3 && !end {
                return Err(Error::invalid(format!(
                    "invalid spec: {spec}: too many colons"
                )));
            }
            buf.clear();
        } else {
            buf.push(ch);
        }
    }
    Ok(())
}

/// "-v SRC:DST[:OPTS]" → a bind (SRC absolute) or named volume mount; "-v DST" → anonymous volume.
pub fn parse_volume(spec: &str) -> Result<Mount> {
    check_volume_sections(spec)?;
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [d] => ("", *d, ""),
        [s, d] if !s.is_empty() => (*s, *d, ""),
        [s, d, o] if !s.is_empty() => (*s, *d, *o),
        _ => {
            return Err(Error::invalid(format!(
                "invalid volume specification: '{spec}'"
            )))
        }
    };
    if !dst.starts_with('/') {
        return Err(Error::invalid(format!(
            "invalid volume specification: '{spec}': destination must be absolute"
        )));
    }
    let mut m = Mount {
        target: dst.to_string(),
        ..Default::default()
    };
    if src.starts_with('/') {
        m.typ = "bind".into();
        m.source = src.to_string();
    } else {
        m.typ = "volume".into();
        m.source = if src.is_empty() {
            crate::sys::random_id()
        } else {
            src.to_string()
        };
    }
    let mut prop = String::new();
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => m.read_only = true,
            "rw" => m.read_only = false,
            "z" | "Z" | "nocopy" | "copy" => {}
            "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                prop = o.to_string()
            }
            _ => return Err(Error::invalid(format!("invalid mode: {o}"))),
        }
    }
    if m.typ == "bind" {
        m.bind_options = Some(BindOptions {
            propagation: if prop.is_empty() {
                "rprivate".into()
            } else {
                prop
            },
        });
    }
    Ok(m)
}

/// Whether bind mount `m` of `hc` came from -v (kept in Binds) rather than --mount: docker
/// creates a missing host path for the former and refuses it for the latter.
pub fn is_volume_flag_bind(hc: &crate::model::HostConfig, m: &Mount) -> bool {
    hc.binds
        .iter()
        .flatten()
        .filter_map(|b| parse_volume(b).ok())
        .any(|b| b.typ == "bind" && b.source == m.source && b.target == m.target)
}

/// "--mount type=bind,source=/x,target=/y,readonly,bind-propagation=rshared".
pub fn parse_mount(spec: &str) -> Result<Mount> {
    let mut m = Mount {
        typ: "volume".into(),
        ..Default::default()
    };
    let mut prop = None;
    let mut tmpfs = TmpfsOptions::default();
    for kv in spec.split(',') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "type" => m.typ = v.to_string(),
            "source" | "src" => m.source = v.to_string(),
            "target" | "destination" | "dst" => m.target = v.to_string(),
            "readonly" | "ro" => m.read_only = v.is_empty() || v == "true" || v == "1",
            "bind-propagation" => prop = Some(v.to_string()),
            "tmpfs-size" => tmpfs.size_bytes = parse_bytes(v)?,
            "tmpfs-mode" => {
                tmpfs.mode = u32::from_str_radix(v, 8)
                    .map_err(|_| Error::invalid(format!("invalid tmpfs-mode: {v}")))?
            }
            "volume-driver" | "volume-label" | "volume-nocopy" | "consistency" => {}
            _ => {
                return Err(Error::invalid(format!(
                    "invalid field '{k}' must be a key=value pair"
                )))
            }
        }
    }
    if m.target.is_empty() {
        return Err(Error::invalid(
            "invalid argument for --mount: target is required",
        ));
    }
    match m.typ.as_str() {
        "bind" => {
            if m.source.is_empty() {
                return Err(Error::invalid(
                    "invalid argument for --mount: source is required for bind mounts",
                ));
            }
            m.bind_options = Some(BindOptions {
                propagation: prop.unwrap_or_else(|| "rprivate".into()),
            });
        }
        "volume" => {
            if m.source.is_empty() {
                m.source = crate::sys::random_id();
            }
        }
        "tmpfs" => {
            if tmpfs != TmpfsOptions::default() {
                m.tmpfs_options = Some(tmpfs);
            }
        }
        t => return Err(Error::invalid(format!("invalid mount type: {t}"))),
    }
    Ok(m)
}

/// "--tmpfs /run:rw,size=64m" → (destination, options).
pub fn parse_tmpfs(spec: &str) -> Result<(String, String)> {
    let (d, o) = spec.split_once(':').unwrap_or((spec, ""));
    if !d.starts_with('/') {
        return Err(Error::invalid(format!("invalid tmpfs destination: {d}")));
    }
    Ok((d.to_string(), o.to_string()))
}

/// "nofile=1024:2048" or "nproc=512".
pub fn parse_ulimit(spec: &str) -> Result<Ulimit> {
    let (name, v) = spec
        .split_once('=')
        .ok_or_else(|| Error::invalid(format!("invalid ulimit argument: {spec}")))?;
    let (s, h) = v.split_once(':').unwrap_or((v, v));
    let p = |x: &str| {
        x.parse::<i64>()
            .map_err(|_| Error::invalid(format!("invalid ulimit argument: {spec}")))
    };
    let (soft, hard) = (p(s)?, p(h)?);
    if soft > hard && hard != -1 {
        return Err(Error::invalid(format!(
            "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        )));
    }
    Ok(Ulimit {
        name: name.to_string(),
        soft,
        hard,
    })
}

/// "/dev/x[:/dev/y][:rwm]".
pub fn parse_device(spec: &str) -> Result<DeviceMapping> {
    let parts: Vec<&str> = spec.split(':').collect();
    let is_perm = |s: &str| !s.is_empty() && s.chars().all(|c| "rwm".contains(c));
    let (h, c, p) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, x] if is_perm(x) => (*h, *h, *x),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] if is_perm(p) => (*h, *c, *p),
        _ => {
            return Err(Error::invalid(format!(
                "invalid device specification: {spec}"
            )))
        }
    };
    Ok(DeviceMapping {
        path_on_host: h.into(),
        path_in_container: c.into(),
        cgroup_permissions: p.into(),
    })
}

/// "no", "always", "unless-stopped", "on-failure[:N]".
pub fn parse_restart(spec: &str) -> Result<RestartPolicy> {
    let (name, n) = spec.split_once(':').unwrap_or((spec, ""));
    let max = if n.is_empty() {
        0
    } else {
        n.parse()
            .map_err(|_| Error::invalid(format!("invalid restart policy format: {spec}")))?
    };
    match name {
        "" | "no" if n.is_empty() => Ok(RestartPolicy {
            name: "no".into(),
            maximum_retry_count: 0,
        }),
        "always" | "unless-stopped" if n.is_empty() => Ok(RestartPolicy {
            name: name.into(),
            maximum_retry_count: 0,
        }),
        "on-failure" => Ok(RestartPolicy {
            name: name.into(),
            maximum_retry_count: max,
        }),
        _ => Err(Error::invalid(format!(
            "invalid restart policy format: {spec}"
        ))),
    }
}

/// docker's --detach-keys ("ctrl-p,ctrl-q", "ctrl-a,x", "DEL"): comma-separated single
/// characters or ctrl-<a-z @ [ \ ] ^ _> (moby/term's ToBytes), refused in the daemon's words.
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>> {
    const CTRL: &[u8] = b"@abcdefghijklmnopqrstuvwxyz[\\]^_";
    let mut out = Vec::new();
    for key in spec.split(',') {
        let code = match key.as_bytes() {
            [c] => Some(*c),
            _ if key == "DEL" => Some(127),
            _ => key.strip_prefix("ctrl-").and_then(|c| match c.as_bytes() {
                [c] => CTRL.iter().position(|x| x == c).map(|i| i as u8),
                _ => None,
            }),
        };
        match code {
            Some(c) => out.push(c),
            None => {
                return Err(Error::invalid(format!(
                    "Invalid detach keys ({spec}) provided"
                )))
            }
        }
    }
    Ok(out)
}

/// "1.5" → nano cpus.
pub fn parse_cpus(s: &str) -> Result<i64> {
    let f: f64 = s
        .parse()
        .map_err(|_| Error::invalid(format!("failed to parse {s} as a rational number")))?;
    if f <= 0.0 {
        return Err(Error::invalid(format!("invalid value for --cpus: {s}")));
    }
    Ok((f * 1e9) as i64)
}

/// An --env-file: KEY=VALUE lines, "#" comments, bare KEY taken from our environment.
pub fn parse_env_file(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            if l.contains('=') {
                Some(l.to_string())
            } else {
                std::env::var(l).ok().map(|v| format!("{l}={v}"))
            }
        })
        .collect()
}

/// "-e KEY" takes KEY from our environment (dropped if unset), "-e KEY=V" as is.
pub fn expand_env(e: &str) -> Option<String> {
    if e.contains('=') {
        Some(e.to_string())
    } else {
        std::env::var(e).ok().map(|v| format!("{e}={v}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("512").unwrap(), 512);
        assert_eq!(parse_bytes("6MB").unwrap(), 6 << 20);
        assert!(parse_bytes("x").is_err());
    }

    #[test]
    fn volumes_and_mounts() {
        let m = parse_volume("/a:/b:ro").unwrap();
        assert_eq!((m.typ.as_str(), m.read_only), ("bind", true));
        assert_eq!(parse_volume("data:/d").unwrap().typ, "volume");
        let m = parse_mount("type=tmpfs,target=/t,tmpfs-size=1m").unwrap();
        assert_eq!(m.tmpfs_options.unwrap().size_bytes, 1 << 20);
        assert!(parse_mount("type=bind,target=/x").is_err());
    }

    #[test]
    fn detach_keys() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("ctrl-a,x").unwrap(), vec![1, b'x']);
        assert_eq!(
            parse_detach_keys("ctrl-@,ctrl-_,DEL").unwrap(),
            vec![0, 31, 127]
        );
        assert_eq!(parse_detach_keys("ctrl-\\").unwrap(), vec![28]);
        for bad in ["bogus", "ctrl-", "ctrl-A", "a,", ""] {
            assert_eq!(
                parse_detach_keys(bad).unwrap_err().to_string(),
                format!("Invalid detach keys ({bad}) provided")
            );
        }
    }

    #[test]
    fn malformed_volume_specs() {
        let msg = |s: &str| parse_volume(s).unwrap_err().to_string();
        assert_eq!(msg(""), "invalid empty volume spec");
        assert_eq!(
            msg(":/x"),
            "invalid spec: :/x: empty section between colons"
        );
        assert_eq!(
            msg("/a::/b"),
            "invalid spec: /a::/b: empty section between colons"
        );
        assert_eq!(
            msg("/x:/y:"),
            "invalid spec: /x:/y:: empty section between colons"
        );
        assert_eq!(
            msg("vol:/x:ro:z"),
            "invalid spec: vol:/x:ro:z: too many colons"
        );
        assert_eq!(msg("a:b:c:d"), "invalid volume specification: 'a:b:c:d'");
        assert_eq!(parse_volume("/x").unwrap().typ, "volume");
    }

    #[test]
    fn restart_ulimit_device() {
        assert_eq!(
            parse_restart("on-failure:2").unwrap().maximum_retry_count,
            2
        );
        assert!(parse_restart("sometimes").is_err());
        assert_eq!(parse_ulimit("nofile=10:20").unwrap().hard, 20);
        assert_eq!(
            parse_device("/dev/null:/dev/n:r")
                .unwrap()
                .cgroup_permissions,
            "r"
        );
    }
}
