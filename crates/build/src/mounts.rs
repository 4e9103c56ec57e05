//! `RUN --mount=type=cache|bind|tmpfs,...` as BuildKit spells them.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    Bind,
    Cache,
    Tmpfs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMount {
    pub kind: MountKind,
    pub target: String,
    pub source: Option<String>,
    /// bind: a stage or image to take the source from (else the build context).
    pub from: Option<String>,
    /// cache: its id (default: the target).
    pub id: Option<String>,
    pub read_only: bool,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<String>,
}

impl RunMount {
    pub fn parse(spec: &str) -> Result<RunMount, String> {
        let mut m = RunMount {
            kind: MountKind::Bind,
            target: String::new(),
            source: None,
            from: None,
            id: None,
            read_only: true,
            mode: None,
            uid: None,
            gid: None,
            size: None,
        };
        let mut rw_set = None;
        for field in spec.split(',') {
            let (k, v) = field.split_once('=').unwrap_or((field, "true"));
            let k = k.trim().to_ascii_lowercase();
            let num = |v: &str, radix: u32| {
                u32::from_str_radix(v, radix).map_err(|_| format!("invalid {k} value {v:?}"))
            };
            match k.as_str() {
                "type" => {
                    m.kind = match v {
                        "bind" => MountKind::Bind,
                        "cache" => MountKind::Cache,
                        "tmpfs" => MountKind::Tmpfs,
                        "secret" | "ssh" => return Err(format!("mount type {v} is not supported")),
                        _ => return Err(format!("unknown mount type {v:?}")),
                    }
                }
                "target" | "dst" | "destination" => m.target = v.to_string(),
                "source" | "src" => m.source = Some(v.to_string()),
                "from" => m.from = Some(v.to_string()),
                "id" => m.id = Some(v.to_string()),
                "readonly" | "ro" => rw_set = Some(v != "true"),
                "rw" | "readwrite" => rw_set = Some(v == "true"),
                "mode" => m.mode = Some(num(v, 8)?),
                "uid" => m.uid = Some(num(v, 10)?),
                "gid" => m.gid = Some(num(v, 10)?),
                "size" => m.size = Some(v.to_string()),
                "sharing" => {
                    if !matches!(v, "shared" | "private" | "locked") {
                        return Err(format!("invalid sharing {v:?}"));
                    }
                }
                _ => return Err(format!("unknown mount option {k:?}")),
            }
        }
        if m.target.is_empty() {
            return Err("a mount needs a target".into());
        }
        if !m.target.starts_with('/') {
            m.target = format!("/{}", m.target);
        }
        m.read_only = match (rw_set, &m.kind) {
            (Some(rw), _) => !rw,
            (None, MountKind::Bind) => true,
            (None, _) => false,
        };
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_parse() {
        let m = RunMount::parse("type=cache,target=/root/.cache,id=x,uid=1000,mode=0700").unwrap();
        assert_eq!(
            (
                m.kind,
                m.target.as_str(),
                m.id.as_deref(),
                m.uid,
                m.mode,
                m.read_only
            ),
            (
                MountKind::Cache,
                "/root/.cache",
                Some("x"),
                Some(1000),
                Some(0o700),
                false
            )
        );
        let m = RunMount::parse("target=/src").unwrap();
        assert!(m.kind == MountKind::Bind && m.read_only);
        let m = RunMount::parse("type=bind,src=a,dst=b,rw").unwrap();
        assert_eq!(
            (m.source.as_deref(), m.target.as_str(), m.read_only),
            (Some("a"), "/b", false)
        );
        assert!(RunMount::parse("type=bogus,target=/x").is_err());
        assert!(RunMount::parse("type=tmpfs").is_err());
        assert!(RunMount::parse("type=cache,target=/x,color=red").is_err());
    }
}
