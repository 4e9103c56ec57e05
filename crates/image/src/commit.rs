//! New images from a layer tar: `berth import` (no parent) and, for the engine, `commit`
//! (a container's diff on top of its image), with Dockerfile-style config changes.

use serde_json::{json, Map, Value};
use std::io::Read;

use crate::derive::StagedLayer;
use crate::error::{Error, Result};
use crate::fsutil::WorkDir;
use crate::reference::Reference;
use crate::store::ImageStore;
use crate::unpacked::LayerWriter;

#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// The image the layer goes on top of (name or id); none for an import.
    pub parent: Option<String>,
    /// Dockerfile instructions: `CMD ["x"]`, `ENV A=b`, `EXPOSE 80`, `LABEL`, `USER`, `VOLUME`, `WORKDIR`, `ENTRYPOINT`, `STOPSIGNAL`.
    pub changes: Vec<String>,
    /// The history entry's comment (`-m`).
    pub comment: Option<String>,
    pub author: Option<String>,
    /// The history entry's created_by.
    pub created_by: Option<String>,
    /// Name to give the new image.
    pub reference: Option<String>,
    /// "os/arch" for an import without parent; the host's by default.
    pub platform: Option<String>,
}

impl ImageStore {
    /// Makes an image from `layer` (a tar, plain or compressed) on top of `opts.parent`;
    /// returns the new image's id (hex).
    pub fn commit<R: Read>(&self, layer: R, opts: &CommitOptions) -> Result<String> {
        self.commit_with(opts, |store, work| store.stage_layer(work, layer))
    }

    /// [`ImageStore::commit`] of a layer that `write` writes: it is unpacked as it is written
    /// and kept only unpacked, with its tar-split (see unpacked.rs), so its bytes are written once.
    pub fn commit_from(&self, write: LayerWriter, opts: &CommitOptions) -> Result<String> {
        self.commit_with(opts, |store, work| store.stage_unpacked(work, write))
    }

    fn commit_with(
        &self,
        opts: &CommitOptions,
        stage: impl FnOnce(&ImageStore, &WorkDir) -> Result<StagedLayer>,
    ) -> Result<String> {
        let reference = opts
            .reference
            .as_deref()
            .map(Reference::parse)
            .transpose()?;
        if reference.as_ref().is_some_and(|r| r.digest.is_some()) {
            return Err(Error::InvalidReference(
                opts.reference.clone().unwrap_or_default(),
            ));
        }
        let _lock = self.lock(false)?;
        let parent = opts
            .parent
            .as_deref()
            .map(|p| self.resolve(p))
            .transpose()?;
        let mut config = match &parent {
            Some(p) => p.config_json.clone(),
            None => {
                let (os, arch) = match opts.platform.as_deref() {
                    Some(p) => {
                        let mut it = p.split('/');
                        (
                            it.next().unwrap_or("linux").to_string(),
                            it.next().unwrap_or(crate::host_arch()).to_string(),
                        )
                    }
                    None => ("linux".to_string(), crate::host_arch().to_string()),
                };
                json!({"architecture": arch, "os": os, "config": {}, "rootfs": {"type": "layers", "diff_ids": []}})
            }
        };
        let work = self.work_dir("commit")?;
        // The layer is kept uncompressed: its digest is its diff id.
        let staged = stage(self, &work)?;

        let now = crate::timefmt::now_rfc3339();
        let obj = config.as_object_mut().ok_or_else(|| Error::InvalidConfig {
            id: "parent".into(),
            reason: "not an object".into(),
        })?;
        obj.insert("created".into(), json!(now));
        if let Some(a) = &opts.author {
            obj.insert("author".into(), json!(a));
        }
        // docker's image Comment is the commit message; the parent's does not carry over.
        match &opts.comment {
            Some(c) => obj.insert("comment".into(), json!(c)),
            None => obj.remove("comment"),
        };
        let inner = obj.entry("config").or_insert_with(|| json!({}));
        if inner.is_null() {
            *inner = json!({});
        }
        apply_changes(inner.as_object_mut().expect("config object"), &opts.changes)?;
        // rootfs.diff_ids is set from the layers by install_derived.
        let mut entry = Map::new();
        entry.insert("created".into(), json!(now));
        if let Some(c) = &opts.created_by {
            entry.insert("created_by".into(), json!(c));
        }
        if let Some(c) = &opts.comment {
            entry.insert("comment".into(), json!(c));
        }
        if let Some(a) = &opts.author {
            entry.insert("author".into(), json!(a));
        }
        match obj.get_mut("history").and_then(Value::as_array_mut) {
            Some(h) => h.push(Value::Object(entry)),
            None => {
                obj.insert("history".into(), json!([entry]));
            }
        }
        let names = reference.into_iter().collect();
        self.install_derived(&work, parent.as_ref(), Some(staged), config, names)
    }
}

/// Applies Dockerfile-style instructions to an image config's `config` object.
pub fn apply_changes(cfg: &mut Map<String, Value>, changes: &[String]) -> Result<()> {
    for change in changes {
        let bad = |reason: &str| Error::InvalidChange {
            change: change.clone(),
            reason: reason.to_string(),
        };
        let trimmed = change.trim();
        let (word, rest) = trimmed
            .split_once(char::is_whitespace)
            .unwrap_or((trimmed, ""));
        let rest = rest.trim();
        match word.to_ascii_uppercase().as_str() {
            "CMD" | "ENTRYPOINT" => {
                let v = if rest.starts_with('[') {
                    serde_json::from_str::<Vec<String>>(rest).map_err(|_| bad("expected a JSON array of strings"))?
                } else {
                    vec!["/bin/sh".into(), "-c".into(), rest.to_string()]
                };
                cfg.insert(if word.eq_ignore_ascii_case("CMD") { "Cmd" } else { "Entrypoint" }.into(), json!(v));
            }
            "ENV" => {
                let pairs = key_values(rest).ok_or_else(|| bad("expected KEY=VALUE or KEY VALUE"))?;
                let env = cfg.entry("Env").or_insert_with(|| json!([]));
                if !env.is_array() {
                    *env = json!([]);
                }
                let list = env.as_array_mut().expect("array");
                for (k, v) in pairs {
                    list.retain(|e| e.as_str().and_then(|s| s.split_once('=')).map(|(ek, _)| ek != k).unwrap_or(true));
                    list.push(json!(format!("{k}={v}")));
                }
            }
            "LABEL" => {
                let pairs = key_values(rest).ok_or_else(|| bad("expected KEY=VALUE"))?;
                let labels = object_field(cfg, "Labels");
                for (k, v) in pairs {
                    labels.insert(k, json!(v));
                }
            }
            "EXPOSE" => {
                if rest.is_empty() {
                    return Err(bad("expected a port"));
                }
                let ports = object_field(cfg, "ExposedPorts");
                for p in rest.split_whitespace() {
                    let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
                    if num.parse::<u16>().is_err() || !matches!(proto, "tcp" | "udp" | "sctp") {
                        return Err(bad("invalid port"));
                    }
                    ports.insert(format!("{num}/{proto}"), json!({}));
                }
            }
            "VOLUME" => {
                let list: Vec<String> = if rest.starts_with('[') {
                    serde_json::from_str(rest).map_err(|_| bad("expected a JSON array of strings"))?
                } else {
                    rest.split_whitespace().map(str::to_string).collect()
                };
                if list.is_empty() {
                    return Err(bad("expected a path"));
                }
                let vols = object_field(cfg, "Volumes");
                for v in list {
                    vols.insert(v, json!({}));
                }
            }
            "USER" | "WORKDIR" | "STOPSIGNAL" => {
                if rest.is_empty() {
                    return Err(bad("expected a value"));
                }
                let key = match word.to_ascii_uppercase().as_str() {
                    "USER" => "User",
                    "WORKDIR" => "WorkingDir",
                    _ => "StopSignal",
                };
                cfg.insert(key.into(), json!(rest));
            }
            _ => {
                return Err(bad(
                    "unknown instruction: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL",
                ))
            }
        }
    }
    Ok(())
}

fn object_field<'a>(cfg: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let v = cfg.entry(key).or_insert_with(|| json!({}));
    if !v.is_object() {
        *v = json!({});
    }
    v.as_object_mut().expect("object")
}

/// `A=1 "B=two words"` / `A="x y"` pairs, or the legacy `KEY some value` form.
fn key_values(s: &str) -> Option<Vec<(String, String)>> {
    let words = split_words(s)?;
    let first = words.first()?;
    if !first.contains('=') {
        let (k, v) = s.split_once(char::is_whitespace)?;
        return Some(vec![(k.to_string(), unquote(v.trim()))]);
    }
    words
        .into_iter()
        .map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect::<Option<Vec<_>>>()
        .filter(|v| v.iter().all(|(k, _)| !k.is_empty()))
}

/// Splits on whitespace outside double quotes, dropping the quotes.
fn split_words(s: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            '\\' if quoted => cur.push(chars.next()?),
            c if c.is_whitespace() && !quoted => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => cur.push(c),
        }
    }
    if quoted {
        return None;
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    Some(out)
}

fn unquote(s: &str) -> String {
    s.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(s)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_shape_the_config() {
        let mut cfg = Map::new();
        let changes: Vec<String> = [
            r#"CMD ["/bin/echo", "hi"]"#,
            "ENTRYPOINT /bin/sh",
            "ENV A=1 B=\"two words\"",
            "ENV C three",
            "ENV A=2",
            "LABEL x=y",
            "EXPOSE 80 53/udp",
            "VOLUME /data",
            "USER 1000:1000",
            "WORKDIR /srv",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        apply_changes(&mut cfg, &changes).unwrap();
        let v = Value::Object(cfg);
        assert_eq!(v["Cmd"], json!(["/bin/echo", "hi"]));
        assert_eq!(v["Entrypoint"], json!(["/bin/sh", "-c", "/bin/sh"]));
        assert_eq!(v["Env"], json!(["B=two words", "C=three", "A=2"]));
        assert_eq!(v["Labels"], json!({"x": "y"}));
        assert_eq!(v["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(v["Volumes"], json!({"/data": {}}));
        assert_eq!(v["User"], json!("1000:1000"));
        assert_eq!(v["WorkingDir"], json!("/srv"));
    }

    #[test]
    fn bad_changes_are_refused() {
        for c in ["FROM x", "CMD [oops", "EXPOSE http", "ENV", "USER"] {
            assert!(
                apply_changes(&mut Map::new(), &[c.to_string()]).is_err(),
                "{c}"
            );
        }
    }
}
