//! Pull (`POST /images/create?fromImage=`), push, search and `/auth` over berth-registry, with
//! docker's JSON progress messages (`{"status","progressDetail","id"}`).

use crate::http::{blocking, json_ok, parse_json, read_body, ApiError, ApiResult, Resp};
use crate::images::json_stream;
use crate::router::Req;
use crate::State;
use berth_image::Reference;
use berth_registry::credentials::Credentials;
use berth_registry::{Client, Config, LayerStatus, Progress, PullOptions, PullReport, PushOptions};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

impl From<berth_registry::Error> for ApiError {
    fn from(e: berth_registry::Error) -> ApiError {
        use berth_image::ErrorKind as K;
        use hyper::StatusCode as S;
        let status = match (&e, e.kind()) {
            (berth_registry::Error::Unauthorized(_), _) => S::UNAUTHORIZED,
            (_, K::NotFound) => S::NOT_FOUND,
            (_, K::AlreadyExists | K::Conflict) => S::CONFLICT,
            (_, K::InvalidArgument) => S::BAD_REQUEST,
            (_, K::PermissionDenied) => S::FORBIDDEN,
            _ => S::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

/// docker's AuthConfig, as `/auth` takes it and `X-Registry-Auth` carries it (base64url JSON).
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct AuthConfig {
    username: String,
    password: String,
    #[serde(rename = "serveraddress")]
    server_address: String,
    #[serde(rename = "identitytoken")]
    identity_token: String,
}

impl AuthConfig {
    fn credentials(&self) -> Option<Credentials> {
        (!self.username.is_empty() || !self.identity_token.is_empty()).then(|| Credentials {
            username: self.username.clone(),
            password: self.password.clone(),
            identity_token: Some(self.identity_token.clone()).filter(|t| !t.is_empty()),
        })
    }
}

pub fn auth_header(r: &Req) -> ApiResult<AuthConfig> {
    use base64::Engine as _;
    let Some(h) = r.req.headers().get("x-registry-auth") else {
        return Ok(AuthConfig::default());
    };
    let raw = h.as_bytes();
    let trimmed: Vec<u8> = raw.iter().copied().filter(|b| *b != b'=').collect();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&trimmed)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&trimmed))
        .map_err(|_| ApiError::bad("invalid X-Registry-Auth header: not base64"))?;
    parse_json(&json)
}

/// A client with the request's X-Registry-Auth credentials, else those stored for the host;
/// loopback and configured insecure registries as berth-registry decides (dockerd's default).
fn client(cfg: &Config, host: &str, auth: &AuthConfig) -> berth_registry::Result<Client> {
    match auth.credentials() {
        Some(c) => Client::with_credentials(host, cfg, None, Some(c)),
        None => Client::new(host, cfg, None),
    }
}

/// Per-layer status as docker's JSON messages; byte counts at most every 100 ms per layer.
struct JsonProgress<'a> {
    emit: Mutex<&'a mut (dyn FnMut(Value) + Send)>,
    last: Mutex<HashMap<String, Instant>>,
}

impl<'a> JsonProgress<'a> {
    fn new(emit: &'a mut (dyn FnMut(Value) + Send)) -> Self {
        JsonProgress {
            emit: Mutex::new(emit),
            last: Mutex::new(HashMap::new()),
        }
    }
    fn send(&self, v: Value) {
        (self.emit.lock().unwrap_or_else(|e| e.into_inner()))(v)
    }
}

impl Progress for JsonProgress<'_> {
    fn layer(&self, id: &str, status: LayerStatus) {
        let msg = match &status {
            LayerStatus::Downloading { current, total }
            | LayerStatus::Pushing { current, total } => {
                let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                if current < total
                    && last
                        .get(id)
                        .is_some_and(|t| now.duration_since(*t) < Duration::from_millis(100))
                {
                    return;
                }
                last.insert(id.to_string(), now);
                json!({"status": status.text(), "progressDetail": {"current": current, "total": total}, "id": id})
            }
            LayerStatus::Waiting => {
                json!({"status": "Pulling fs layer", "progressDetail": {}, "id": id})
            }
            s => json!({"status": s.text(), "progressDetail": {}, "id": id}),
        };
        self.send(msg);
    }
}

impl PullReport for JsonProgress<'_> {
    fn status(&self, id: Option<&str>, text: &str) {
        self.send(match id {
            Some(id) => json!({"status": text, "id": id}),
            None => json!({"status": text}),
        });
    }
}

/// A pull's failure as dockerd answers it: a missing image, and access the registry denies
/// (which is how a missing private repository looks), are 404 "not found" with docker's
/// wording; not 401, which makes the docker CLI ask for a login and try again.
fn pull_error(name: &str, e: berth_registry::Error) -> ApiError {
    match e {
        berth_registry::Error::NotFound(m) => ApiError::not_found(m),
        berth_registry::Error::Unauthorized(m) => {
            let repo = Reference::parse(name)
                .map(|r| berth_image::familiar_repository(&r.repository()))
                .unwrap_or_else(|_| name.to_string());
            ApiError::not_found(format!(
                "pull access denied for {repo}, repository does not exist or may require 'docker login': {m}"
            ))
        }
        e => e.into(),
    }
}

/// Pulls `name` (each unqualified-search registry in turn for a short name), as `berth pull`
/// does. Nothing is sent until the image resolved, so a missing one is an HTTP error.
pub async fn pull(
    st: Arc<State>,
    name: String,
    platform: Option<String>,
    auth: AuthConfig,
) -> ApiResult<Resp> {
    json_stream(st, move |store, emit| {
        let cfg = Config::load()?;
        let opts = PullOptions {
            platform: platform
                .as_deref()
                .map(berth_registry::Platform::parse)
                .transpose()?,
            ..Default::default()
        };
        let progress = JsonProgress::new(emit);
        let client = |host: &str| client(&cfg, host, &auth);
        berth_registry::pull(store, &cfg, &name, &opts, &client, &progress)
            .map_err(|e| pull_error(&name, e))?;
        Ok(())
    })
    .await
}

/// `POST /images/{name}/push?tag=`: one tag, or every tag of the repository when none is given.
pub async fn push(st: Arc<State>, name: &str, r: Req) -> ApiResult<Resp> {
    let auth = auth_header(&r)?;
    let tag = r
        .query
        .get("tag")
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let name = name.to_string();
    json_stream(st, move |store, emit| {
        let cfg = Config::load()?;
        let repo = Reference::parse_name_only(&name)?;
        let refs: Vec<Reference> = match &tag {
            Some(t) => vec![Reference::parse(&format!("{}:{t}", repo.repository()))?],
            None => {
                let mut v: Vec<Reference> = store
                    .list()?
                    .iter()
                    .flat_map(|i| i.names.clone())
                    .filter(|n| n.repository() == repo.repository() && n.tag.is_some())
                    .collect();
                v.sort_by_key(|n| n.full());
                v
            }
        };
        if refs.is_empty() {
            return Err(ApiError::not_found(format!(
                "An image does not exist locally with the tag: {}",
                repo.familiar()
            )));
        }
        let images = refs
            .into_iter()
            .map(|t| match store.resolve(&t.full()) {
                Ok(i) => Ok((i, t)),
                Err(e) if e.kind() == berth_image::ErrorKind::NotFound => Err(ApiError::not_found(
                    format!("An image does not exist locally with the tag: {}", t.familiar()),
                )),
                Err(e) => Err(e.into()),
            })
            .collect::<ApiResult<Vec<_>>>()?;
        let c = client(&cfg, &repo.domain, &auth)?;
        emit(json!({"status": format!("The push refers to repository [{}]", repo.repository())}));
        for (image, target) in images {
            let pushed = {
                let progress = JsonProgress::new(emit);
                berth_registry::push(store, &c, &image, &target, &PushOptions::default(), &progress)?
            };
            let t = target.tag.clone().unwrap_or_else(|| "latest".into());
            emit(json!({"status": format!("{t}: digest: {} size: {}", pushed.digest, pushed.size)}));
            emit(json!({"progressDetail": {}, "aux": {"Tag": t, "Digest": pushed.digest, "Size": pushed.size}}));
        }
        Ok(())
    })
    .await
}

/// `GET /images/search?term=[REGISTRY/]TERM`: the registry's search (Docker Hub's index for a
/// bare term), or its catalog filtered by TERM where it has none, as `berth search`.
pub async fn search(_st: Arc<State>, r: Req) -> ApiResult<Resp> {
    let term = r.query.get("term").unwrap_or("").to_string();
    let limit = r.query.int("limit")?.unwrap_or(25);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad(format!(
            "limit {limit} is outside the range of [1, 100]"
        )));
    }
    let auth = auth_header(&r)?;
    let (host, word) = match term.split_once('/') {
        Some((h, t)) if berth_registry::config::is_qualified(&term) => {
            (h.to_string(), t.to_string())
        }
        _ => (
            "docker.io".to_string(),
            term.strip_prefix("library/").unwrap_or(&term).to_string(),
        ),
    };
    let v = blocking(move || {
        let cfg = Config::load()?;
        let c = client(&cfg, &host, &auth)?;
        let found = berth_registry::search(&c, &word, limit as usize)?;
        Ok(found
            .iter()
            .map(|r| {
                json!({"name": r.name, "description": r.description, "star_count": r.star_count,
                            "is_official": r.is_official, "is_automated": false})
            })
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(json_ok(&Value::Array(v)))
}

/// `POST /auth` (docker login): checks the credentials against the registry. The docker CLI
/// keeps them itself and sends them back with each pull and push.
pub async fn auth(_st: Arc<State>, r: Req) -> ApiResult<Resp> {
    let body = read_body(r.req.into_body(), 1 << 20).await?;
    let a: AuthConfig = parse_json(&body)?;
    let creds = a
        .credentials()
        .ok_or_else(|| ApiError::bad("a username is required"))?;
    let host = a
        .server_address
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("")
        .to_string();
    let host = match host.as_str() {
        "" | "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        h => h.to_string(),
    };
    blocking(move || {
        let cfg = Config::load()?;
        Client::with_credentials(&host, &cfg, None, Some(creds))?.login()?;
        Ok(())
    })
    .await?;
    Ok(json_ok(
        &json!({"Status": "Login Succeeded", "IdentityToken": ""}),
    ))
}
