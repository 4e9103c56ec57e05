//! /images and /commit.

use crate::http::{
    self, blocking, json_ok, json_status, streamed, ApiError, ApiResult, BodyReader, Resp,
};
use crate::router::Req;
use crate::State;
use berth_engine::events;
use berth_image::{ArchiveFormat, Image, ImageStore, RemoveEvent};
use hyper::StatusCode;
use serde_json::{json, Value};
use std::io::Write;
use std::sync::Arc;

fn summary(img: &Image, containers: i64) -> Value {
    let labels = img
        .config_json
        .pointer("/config/Labels")
        .cloned()
        .filter(|v| !v.is_null())
        .unwrap_or(json!({}));
    json!({
        "Id": format!("sha256:{}", img.id),
        "ParentId": "",
        "RepoTags": img.names.iter().map(|n| n.familiar()).collect::<Vec<_>>(),
        "RepoDigests": img.repo_digests().iter().map(|d| berth_image::familiar_repository(d)).collect::<Vec<_>>(),
        "Created": img.created,
        "Size": img.size,
        "SharedSize": -1,
        "VirtualSize": img.size,
        "Labels": labels,
        "Containers": containers,
    })
}

pub(crate) fn image_event(st: &State, action: &str, id: &str, name: &str) {
    events::record(&st.root, "image", action, id, &[("name", name)]);
}

pub async fn list(st: Arc<State>, r: Req) -> ApiResult<Resp> {
    let filters = r.query.filters()?;
    let all = r.query.bool("all");
    let v = blocking(move || {
        let e = st.engine()?;
        let store = e.store()?;
        let mut out = Vec::new();
        for img in store.list()? {
            let mut ok = true;
            let mut keys: Vec<&str> = filters.iter().map(|(k, _)| k.as_str()).collect();
            keys.dedup();
            for key in keys {
                let vals = filters
                    .iter()
                    .filter(|(k, _)| k == key)
                    .map(|(_, v)| v.as_str());
                let any = match key {
                    "dangling" => vals
                        .clone()
                        .any(|v| (v == "true" || v == "1") == img.names.is_empty()),
                    "reference" => vals.clone().any(|v| {
                        img.names.iter().any(|n| {
                            glob(v, &n.familiar())
                                || glob(v, n.familiar().split(':').next().unwrap_or(""))
                        })
                    }),
                    "label" => vals.clone().any(|v| {
                        let labels = img.config_json.pointer("/config/Labels");
                        match v.split_once('=') {
                            Some((k, val)) => {
                                labels.and_then(|l| l.get(k)).and_then(Value::as_str) == Some(val)
                            }
                            None => labels.and_then(|l| l.get(v)).is_some(),
                        }
                    }),
                    _ => return Err(ApiError::bad(format!("invalid filter '{key}'"))),
                };
                ok &= any;
            }
            if !all
                && img.names.is_empty()
                && !filters.iter().any(|(k, _)| k == "dangling")
                && !img.users.is_empty()
            {
                ok = false;
            }
            if ok {
                out.push(summary(&img, img.users.len() as i64));
            }
        }
        Ok(out)
    })
    .await?;
    Ok(json_ok(&Value::Array(v)))
}

/// docker's reference filter: a path.Match-like glob.
fn glob(pattern: &str, s: &str) -> bool {
    fn m(p: &[char], s: &[char]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some('*'), _) => m(&p[1..], s) || (!s.is_empty() && s[0] != '/' && m(p, &s[1..])),
            (Some('?'), Some(c)) if *c != '/' => m(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &s[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = s.chars().collect();
    m(&p, &s)
}

fn no_such_image(name: &str, e: berth_image::Error) -> ApiError {
    if e.kind() == berth_image::ErrorKind::NotFound {
        ApiError::not_found(format!("No such image: {name}"))
    } else {
        e.into()
    }
}

pub async fn inspect(st: Arc<State>, name: &str) -> ApiResult<Resp> {
    let name = name.to_string();
    let v = blocking(move || {
        let e = st.engine()?;
        let store = e.store()?;
        let img = store
            .resolve(&name)
            .map_err(|err| no_such_image(&name, err))?;
        Ok(berth_image::inspect_json(store, &img))
    })
    .await?;
    Ok(json_ok(&v))
}

pub async fn history(st: Arc<State>, name: &str) -> ApiResult<Resp> {
    let name = name.to_string();
    let v = blocking(move || {
        let e = st.engine()?;
        let img = e.store()?.resolve(&name).map_err(|err| no_such_image(&name, err))?;
        let history = img.config_json.get("history").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut out = Vec::new();
        let mut layer = 0;
        for h in &history {
            let empty = h.get("empty_layer").and_then(Value::as_bool).unwrap_or(false);
            let size = if empty {
                0
            } else {
                layer += 1;
                img.layers.get(layer - 1).map_or(0, |l| l.size)
            };
            let s = |k: &str| h.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            out.push(json!({"Id": "<missing>", "Created": berth_image::timefmt::parse_rfc3339(&s("created")).unwrap_or(0),
                            "CreatedBy": s("created_by"), "Tags": null, "Size": size, "Comment": s("comment")}));
        }
        if history.is_empty() {
            for l in &img.layers {
                out.push(json!({"Id": "<missing>", "Created": img.created, "CreatedBy": "", "Tags": null, "Size": l.size, "Comment": ""}));
            }
        }
        out.reverse();
        if let Some(first) = out.first_mut() {
            first["Id"] = json!(format!("sha256:{}", img.id));
            first["Tags"] = json!(img.names.iter().map(|n| n.familiar()).collect::<Vec<_>>());
        }
        Ok(out)
    })
    .await?;
    Ok(json_ok(&Value::Array(v)))
}

pub async fn tag(st: Arc<State>, name: &str, r: Req) -> ApiResult<Resp> {
    let repo = r.query.get("repo").unwrap_or("").to_string();
    let tag = r
        .query
        .get("tag")
        .filter(|t| !t.is_empty())
        .unwrap_or("latest")
        .to_string();
    if repo.is_empty() {
        return Err(ApiError::bad(
            "repository name must have at least one component",
        ));
    }
    let name = name.to_string();
    blocking(move || {
        let e = st.engine()?;
        let store = e.store()?;
        let img = store
            .resolve(&name)
            .map_err(|err| no_such_image(&name, err))?;
        let target = format!("{repo}:{tag}");
        store.tag(&img.id, &target)?;
        Ok(())
    })
    .await?;
    Ok(http::empty(StatusCode::CREATED))
}

fn remove_events(events: &[RemoveEvent]) -> Vec<Value> {
    events
        .iter()
        .map(|e| match e {
            RemoveEvent::Untagged(n) => json!({"Untagged": n}),
            RemoveEvent::Deleted(d) => json!({"Deleted": d}),
        })
        .collect()
}

pub async fn remove(st: Arc<State>, name: &str, r: Req) -> ApiResult<Resp> {
    let force = r.query.bool("force");
    let name = name.to_string();
    let v = blocking(move || {
        let e = st.engine()?;
        let events = e
            .store()?
            .remove(&name, force)
            .map_err(|err| no_such_image(&name, err))?;
        Ok(remove_events(&events))
    })
    .await?;
    Ok(json_ok(&Value::Array(v)))
}

pub async fn prune(st: Arc<State>, r: Req) -> ApiResult<Resp> {
    let filters = r.query.filters()?;
    let mut all = false;
    for (k, v) in &filters {
        match k.as_str() {
            "dangling" => all = v == "false" || v == "0",
            _ => return Err(ApiError::bad(format!("invalid filter '{k}'"))),
        }
    }
    let v = blocking(move || {
        let e = st.engine()?;
        let rep = e.store()?.prune(all)?;
        Ok(json!({"ImagesDeleted": remove_events(&rep.events), "SpaceReclaimed": rep.reclaimed}))
    })
    .await?;
    Ok(json_ok(&v))
}

pub async fn save(st: Arc<State>, names: Vec<String>) -> ApiResult<Resp> {
    if names.is_empty() {
        return Err(ApiError::bad("no image names given"));
    }
    let st2 = st.clone();
    let n2 = names.clone();
    blocking(move || {
        let e = st2.engine()?;
        let store = e.store()?;
        for n in &n2 {
            store.resolve(n).map_err(|err| no_such_image(n, err))?;
        }
        Ok(())
    })
    .await?;
    let (resp, w) = streamed(StatusCode::OK, "application/x-tar");
    tokio::task::spawn_blocking(move || {
        let Ok(e) = st.engine() else { return };
        let Ok(store) = e.store() else { return };
        let mut bw = std::io::BufWriter::with_capacity(1 << 20, w);
        if store
            .save(&names, ArchiveFormat::DockerArchive, &mut bw)
            .is_ok()
            && bw.flush().is_ok()
        {
            for n in &names {
                image_event(&st, "save", n, n);
            }
        }
    });
    Ok(resp)
}

/// Progress messages go out as a JSON stream. As in docker, a failure before the first message
/// is an HTTP error with its status; after it, an `{"errorDetail":...}` message.
pub(crate) async fn json_stream<F>(st: Arc<State>, f: F) -> ApiResult<Resp>
where
    F: FnOnce(&ImageStore, &mut (dyn FnMut(Value) + Send)) -> ApiResult<()> + Send + 'static,
{
    let (resp, mut w) = streamed(StatusCode::OK, "application/json");
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<Option<ApiError>>();
    tokio::task::spawn_blocking(move || {
        let mut first = Some(first_tx);
        let r = st.engine().and_then(|e| {
            let store = e.store()?;
            let mut emit = |v: Value| {
                if let Some(t) = first.take() {
                    let _ = t.send(None);
                }
                let _ = w.send_json(&v);
            };
            f(store, &mut emit)
        });
        match (r, first.take()) {
            (Err(e), Some(t)) => {
                let _ = t.send(Some(e));
            }
            (Err(e), None) => {
                let _ = w
                    .send_json(&json!({"errorDetail": {"message": e.message}, "error": e.message}));
            }
            (Ok(()), Some(t)) => {
                let _ = t.send(None);
            }
            (Ok(()), None) => {}
        }
    });
    match first_rx.await {
        Ok(Some(e)) => Err(e),
        _ => Ok(resp),
    }
}

pub async fn load(st: Arc<State>, r: Req) -> ApiResult<Resp> {
    let quiet = r.query.bool("quiet");
    let reader = BodyReader::new(r.req.into_body());
    json_stream(st, move |store, emit| {
        let loaded = store.load(reader)?;
        for img in loaded {
            if img.names.is_empty() {
                emit(json!({"stream": format!("Loaded image ID: sha256:{}\n", img.id)}));
            }
            for n in &img.names {
                emit(json!({"stream": format!("Loaded image: {}\n", n.familiar())}));
            }
        }
        let _ = quiet;
        Ok(())
    })
    .await
}

/// `POST /images/create`: pull (`fromImage`) or import from the body (`fromSrc=-`).
pub async fn create(st: Arc<State>, r: Req) -> ApiResult<Resp> {
    let q = &r.query;
    if let Some(image) = q.get("fromImage").filter(|s| !s.is_empty()) {
        let name = match q.get("tag").filter(|t| !t.is_empty()) {
            Some(t) if t.starts_with("sha256:") => format!("{image}@{t}"),
            Some(t) => format!("{image}:{t}"),
            None => image.to_string(),
        };
        let platform = q
            .get("platform")
            .filter(|p| !p.is_empty())
            .map(str::to_string);
        return crate::registry::pull(st, name, platform, crate::registry::auth_header(&r)?).await;
    }
    match q.get("fromSrc") {
        Some("-") => {}
        Some(s) if !s.is_empty() => return Err(ApiError::unsupported("importing from a URL")),
        _ => return Err(ApiError::bad("fromImage or fromSrc is required")),
    }
    let repo = q.get("repo").unwrap_or("").to_string();
    let tag = q.get("tag").filter(|t| !t.is_empty()).map(str::to_string);
    let reference = if repo.is_empty() {
        None
    } else {
        Some(match tag {
            Some(t) => format!("{repo}:{t}"),
            None => repo,
        })
    };
    let opts = berth_image::CommitOptions {
        changes: q.all("changes"),
        comment: Some(
            q.get("message")
                .filter(|m| !m.is_empty())
                .unwrap_or("Imported from -")
                .to_string(),
        ),
        reference,
        platform: q
            .get("platform")
            .filter(|p| !p.is_empty())
            .map(str::to_string),
        ..Default::default()
    };
    let reader = BodyReader::new(r.req.into_body());
    let st2 = st.clone();
    json_stream(st, move |store, emit| {
        let id = store.commit(reader, &opts)?;
        image_event(
            &st2,
            "import",
            &format!("sha256:{id}"),
            opts.reference.as_deref().unwrap_or(""),
        );
        emit(json!({"status": format!("sha256:{id}")}));
        Ok(())
    })
    .await
}

pub async fn commit(st: Arc<State>, r: Req) -> ApiResult<Resp> {
    let q = &r.query;
    let container = q
        .get("container")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::bad("container is required"))?
        .to_string();
    let repo = q.get("repo").unwrap_or("").to_string();
    let reference = if repo.is_empty() {
        None
    } else {
        Some(format!(
            "{repo}:{}",
            q.get("tag").filter(|t| !t.is_empty()).unwrap_or("latest")
        ))
    };
    // Config changes arrive in the body too (docker commit --change sends them as `changes`).
    let o = berth_engine::CommitOptions {
        reference,
        comment: q
            .get("comment")
            .filter(|c| !c.is_empty())
            .map(str::to_string),
        author: q
            .get("author")
            .filter(|a| !a.is_empty())
            .map(str::to_string),
        changes: q
            .all("changes")
            .into_iter()
            .filter(|c| !c.is_empty())
            .collect(),
        pause: q.get("pause").is_none() || q.bool("pause"),
    };
    let id = blocking(move || Ok(st.engine()?.commit(&container, &o)?)).await?;
    Ok(json_status(
        StatusCode::CREATED,
        &json!({"Id": format!("sha256:{id}")}),
    ))
}
